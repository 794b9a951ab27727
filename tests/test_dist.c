// test_dist.c — rank discovery from launcher environments, the GPU choice, the single-rank
// collectives, start-up errors, and the file rendezvous of the environment launch with real
// processes: N forked children with torchrun-style RANK/WORLD_SIZE/LOCAL_RANK, no mpirun.
// When mpirun is installed, this binary also runs itself under `mpirun -np 2` to see what
// discovery makes of a real MPI launch (without MPI built in: the "rebuild" error).
// The MPI collectives themselves are tested under mpirun by tests/mpi/ (ctest -L mpi).
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mnrl/dist.h"
#include "test.h"

#ifdef MNRL_HAVE_MPI
static const int have_mpi = 1;
#else
static const int have_mpi = 0;
#endif

static void clear_launcher_env(void) {
    static const char *const vars[] = {
        "RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
        "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

static void set_env3(const char *a, const char *va, const char *b, const char *vb, const char *c,
                     const char *vc) {
    clear_launcher_env();
    if (a) setenv(a, va, 1);
    if (b) setenv(b, vb, 1);
    if (c) setenv(c, vc, 1);
}

// Discovery under the current environment; the message (or "") into msg.
static int discover(MnrlDistBackend backend, MnrlDistPlace *p, char *msg, size_t cap) {
    MnrlError err = {{0}};
    int rc = dist_discover(backend, p, &err);
    snprintf(msg, cap, "%s", rc == 0 ? "" : err.msg);
    return rc;
}

static void test_discover_places(void) {
    MnrlDistPlace p;
    char msg[MNRL_ERROR_MAX];

    set_env3(NULL, NULL, NULL, NULL, NULL, NULL);
    CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.launch, MNRL_DIST_LAUNCH_SINGLE);
    CHECK_EQ_INT(p.rank, 0);
    CHECK_EQ_INT(p.world, 1);

    set_env3("RANK", "2", "WORLD_SIZE", "4", "LOCAL_RANK", "1");
    CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.launch, MNRL_DIST_LAUNCH_ENV);
    CHECK_EQ_INT(p.rank, 2);
    CHECK_EQ_INT(p.world, 4);
    CHECK_EQ_INT(p.local_rank, 1);
    CHECK_STR(p.source, "RANK/WORLD_SIZE/LOCAL_RANK");
    CHECK_EQ_INT(discover(MNRL_DIST_ENV, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.rank, 2);

    set_env3("SLURM_PROCID", "5", "SLURM_NTASKS", "8", "SLURM_LOCALID", "1");
    CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.launch, MNRL_DIST_LAUNCH_ENV);
    CHECK_EQ_INT(p.rank, 5);
    CHECK_EQ_INT(p.world, 8);
    CHECK_EQ_INT(p.local_rank, 1);
    CHECK_STR(p.source, "SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID");

    // torchrun's variables win over SLURM's (torchrun inside an allocation).
    setenv("RANK", "3", 1);
    setenv("WORLD_SIZE", "16", 1);
    setenv("LOCAL_RANK", "3", 1);
    CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.rank, 3);
    CHECK_EQ_INT(p.world, 16);

    // One rank needs no LOCAL_RANK.
    set_env3("RANK", "0", "WORLD_SIZE", "1", NULL, NULL);
    CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.world, 1);
    CHECK_EQ_INT(p.local_rank, 0);

    // "single" inside a SLURM batch script (SLURM_NTASKS set for the whole job) is one process.
    set_env3("SLURM_PROCID", "0", "SLURM_NTASKS", "4", "SLURM_LOCALID", "0");
    CHECK_EQ_INT(discover(MNRL_DIST_SINGLE, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.launch, MNRL_DIST_LAUNCH_SINGLE);
    CHECK_EQ_INT(p.world, 1);
}

static void expect_discover_error(MnrlDistBackend backend, const char *needle) {
    MnrlDistPlace p;
    char msg[MNRL_ERROR_MAX];
    CHECK_EQ_INT(discover(backend, &p, msg, sizeof msg), -1);
    CHECK_CONTAINS(msg, needle);
}

static void test_discover_errors(void) {
    set_env3("RANK", "4", "WORLD_SIZE", "4", "LOCAL_RANK", "0");
    expect_discover_error(MNRL_DIST_AUTO, "RANK=4 is not below WORLD_SIZE=4");
    set_env3("RANK", "one", "WORLD_SIZE", "4", "LOCAL_RANK", "0");
    expect_discover_error(MNRL_DIST_AUTO, "RANK=\"one\": expected an integer");
    set_env3("RANK", "1", "WORLD_SIZE", "0", "LOCAL_RANK", "0");
    expect_discover_error(MNRL_DIST_AUTO, "WORLD_SIZE=\"0\"");
    set_env3("RANK", "1", NULL, NULL, NULL, NULL);
    expect_discover_error(MNRL_DIST_AUTO, "RANK is set but WORLD_SIZE is not");
    set_env3("RANK", "1", "WORLD_SIZE", "2", NULL, NULL);
    expect_discover_error(MNRL_DIST_AUTO, "LOCAL_RANK is not");
    set_env3("SLURM_PROCID", "1", "SLURM_NTASKS", "2", "SLURM_LOCALID", "-1");
    expect_discover_error(MNRL_DIST_AUTO, "SLURM_LOCALID=\"-1\"");

    set_env3(NULL, NULL, NULL, NULL, NULL, NULL);
    expect_discover_error(MNRL_DIST_ENV, "dist.backend is \"env\" but neither RANK/WORLD_SIZE");
    set_env3("RANK", "0", "WORLD_SIZE", "4", "LOCAL_RANK", "0");
    expect_discover_error(MNRL_DIST_SINGLE, "dist.backend is \"single\" but the launcher "
                                            "started 4 processes (WORLD_SIZE)");
    set_env3("OMPI_COMM_WORLD_SIZE", "8", "OMPI_COMM_WORLD_RANK", "0", NULL, NULL);
    expect_discover_error(MNRL_DIST_SINGLE, "started 8 processes (OMPI_COMM_WORLD_SIZE)");
}

// An MPI launcher's variables: MPI in an MPI build; otherwise the "rebuild" error unless
// torchrun-style variables say where this process stands.
static void test_discover_mpi_launch(void) {
    static const char *const rebuild =
        "this binary was built without MPI; rebuild with -DMNRL_MPI=ON or launch with "
        "torchrun-style RANK/WORLD_SIZE";
    MnrlDistPlace p;
    char msg[MNRL_ERROR_MAX];
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (int i = 0; i < 2; i++) {
        set_env3(size_vars[i], "4", NULL, NULL, NULL, NULL);
        if (have_mpi) {
            CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
            CHECK_EQ_INT(p.launch, MNRL_DIST_LAUNCH_MPI);
            CHECK_EQ_INT(p.world, 4);
        } else {
            expect_discover_error(MNRL_DIST_AUTO, rebuild);
            expect_discover_error(MNRL_DIST_AUTO, size_vars[i]);
        }
    }
    set_env3("PMIX_RANK", "0", NULL, NULL, NULL, NULL);
    if (have_mpi) {
        CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
        CHECK_EQ_INT(p.launch, MNRL_DIST_LAUNCH_MPI);
    } else {
        expect_discover_error(MNRL_DIST_AUTO, "one of several ranks started by an MPI launcher (PMIX_RANK");
    }
    // mpirun -np 1 of a build without MPI is one process, as it should be.
    set_env3("OMPI_COMM_WORLD_SIZE", "1", NULL, NULL, NULL, NULL);
    CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.world, 1);
    // With the torchrun variables as well, a build without MPI uses them.
    set_env3("OMPI_COMM_WORLD_SIZE", "2", "RANK", "1", "WORLD_SIZE", "2");
    setenv("LOCAL_RANK", "1", 1);
    CHECK_EQ_INT(discover(MNRL_DIST_AUTO, &p, msg, sizeof msg), 0);
    CHECK_EQ_INT(p.launch, have_mpi ? MNRL_DIST_LAUNCH_MPI : MNRL_DIST_LAUNCH_ENV);
    CHECK_EQ_INT(p.world, 2);

    set_env3(NULL, NULL, NULL, NULL, NULL, NULL);
    if (have_mpi) {
        CHECK_EQ_INT(discover(MNRL_DIST_MPI, &p, msg, sizeof msg), 0);
        CHECK_EQ_INT(p.launch, MNRL_DIST_LAUNCH_MPI);
    } else {
        expect_discover_error(MNRL_DIST_MPI, "dist.backend is \"mpi\" but this binary was "
                                             "built without MPI; rebuild with -DMNRL_MPI=ON");
    }
}

static void test_gpu_index(void) {
    MnrlDist d;
    memset(&d, 0, sizeof d);
    d.rank = 11;
    d.world = 16;
    d.local_rank = 3;
    MnrlError err = {{0}};
    int gpu = -1;
    CHECK_EQ_INT(dist_gpu_index(&d, 8, &gpu, &err), 0);
    CHECK_EQ_INT(gpu, 3);
    CHECK_EQ_INT(dist_gpu_index(&d, 1, &gpu, &err), 0);  // the launcher pinned one GPU
    CHECK_EQ_INT(gpu, 0);
    CHECK_EQ_INT(dist_gpu_index(&d, 2, &gpu, &err), -1);
    CHECK_CONTAINS(err.msg, "local rank 3 but its node shows only 2 CUDA devices");
    CHECK_EQ_INT(dist_gpu_index(&d, 0, &gpu, &err), -1);
    CHECK_CONTAINS(err.msg, "sees no CUDA device");
}

static MnrlDistConfig dist_config(MnrlDistBackend backend, const char *init_dir, int timeout_s) {
    MnrlDistConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.backend = backend;
    cfg.init_dir = (char *)init_dir;
    cfg.init_timeout_s = timeout_s;
    return cfg;
}

// World 1: gathers and scatters are copies (blocks keep their layout), sums are identities.
static void test_single_collectives(void) {
    clear_launcher_env();
    MnrlDistConfig cfg = dist_config(MNRL_DIST_AUTO, "", 5);
    MnrlDist d;
    MnrlError err = {{0}};
    CHECK_EQ_INT(dist_init(&d, &cfg, "/nonexistent", MNRL_DIST_HOST_MEMORY, &err), 0);
    CHECK_STR(d.ops->name, "single");
    CHECK_EQ_INT(d.world, 1);
    CHECK_EQ_INT(d.rank, 0);

    float in[12], out[12], back[12];
    for (int i = 0; i < 12; i++) in[i] = 0.5f * (float)i - 3.25f;
    memset(out, 0, sizeof out);
    CHECK_EQ_INT(d.ops->all_gather(&d, out, in, 4, 3, &err), 0);
    CHECK(memcmp(out, in, sizeof in) == 0);
    CHECK_EQ_INT(d.ops->reduce_scatter(&d, back, out, 4, 3, &err), 0);
    CHECK(memcmp(back, in, sizeof in) == 0);
    CHECK_EQ_INT(d.ops->all_gather(&d, out, out, 4, 3, &err), 0);  // in place: nothing moves
    CHECK(memcmp(out, in, sizeof in) == 0);
    CHECK_EQ_INT(d.ops->all_reduce(&d, out, 12, &err), 0);
    CHECK(memcmp(out, in, sizeof in) == 0);
    char bytes[5] = "abcd";
    CHECK_EQ_INT(d.ops->broadcast(&d, bytes, 4, 0, &err), 0);
    CHECK_STR(bytes, "abcd");
    CHECK_EQ_INT(d.ops->broadcast(&d, bytes, 4, 1, &err), -1);
    CHECK_CONTAINS(err.msg, "broadcast from rank 1 of 1");
    CHECK_EQ_INT(d.ops->barrier(&d, &err), 0);
    int any = -1;
    CHECK_EQ_INT(d.ops->any(&d, 0, &any, &err), 0);
    CHECK_EQ_INT(any, 0);
    CHECK_EQ_INT(d.ops->any(&d, 7, &any, &err), 0);
    CHECK_EQ_INT(any, 1);
    dist_abort(&d, 3);  // one process: returns, the caller exits as usual
    dist_close(&d);
    CHECK(d.ops == NULL);
}

// Several ranks without MPI on the CPU backend; device memory without CUDA.
static void test_init_errors(void) {
    MnrlDistConfig cfg = dist_config(MNRL_DIST_AUTO, "", 5);
    MnrlDist d;
    MnrlError err = {{0}};
    set_env3("RANK", "1", "WORLD_SIZE", "2", "LOCAL_RANK", "1");
    CHECK_EQ_INT(dist_init(&d, &cfg, "/tmp", MNRL_DIST_HOST_MEMORY, &err), -1);
    CHECK_CONTAINS(err.msg, "2 ranks on the CPU backend exchange data through MPI");
    CHECK_CONTAINS(err.msg, have_mpi ? "launch with mpirun -np 2" : "rebuild with -DMNRL_MPI=ON");
#ifndef MNRL_HAVE_CUDA
    CHECK_EQ_INT(dist_init(&d, &cfg, "/tmp", MNRL_DIST_DEVICE_MEMORY, &err), -1);
    CHECK_CONTAINS(err.msg, "device memory in a build without CUDA");
#endif
    clear_launcher_env();
}

// ---- the rendezvous with real processes -------------------------------------------------------

enum { N_RANKS = 4, PAYLOAD = 128 };

typedef struct {
    int rc, rank, world, local_rank;
    unsigned char payload[PAYLOAD];
    char msg[MNRL_ERROR_MAX];
} ChildReport;

static void make_temp_dir(char *out, size_t cap) {
    snprintf(out, cap, "/tmp/mnrl-test-dist-XXXXXX");
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// One rank: discovery from the environment the parent set, then the rendezvous; rank 0's
// payload is made from its pid, which no other process knows.
static void child_rank(const char *dir, int delay_ms, int timeout_s, int fd) {
    ChildReport report;
    memset(&report, 0, sizeof report);
    MnrlError err = {{0}};
    MnrlDistPlace place;
    sleep_ms(delay_ms);
    report.rc = dist_discover(MNRL_DIST_AUTO, &place, &err);
    if (report.rc == 0) {
        report.rank = place.rank;
        report.world = place.world;
        report.local_rank = place.local_rank;
        if (place.rank == 0) {
            uint64_t seed = (uint64_t)getpid();
            for (int i = 0; i < PAYLOAD; i++) report.payload[i] = (unsigned char)mnrl_splitmix64(&seed);
        }
        report.rc = dist_file_rendezvous(dir, place.rank, place.world, timeout_s, report.payload,
                                         PAYLOAD, &err);
    }
    snprintf(report.msg, sizeof report.msg, "%s", report.rc == 0 ? "" : err.msg);
    ssize_t written = write(fd, &report, sizeof report);
    _exit(written == (ssize_t)sizeof report ? 0 : 2);
}

// Forks n ranks (rank r starts after delays[r] ms) and collects their reports.
static void run_ranks(const char *dir, int n, const int *delays, int timeout_s,
                      ChildReport *reports) {
    int fds[N_RANKS][2];
    pid_t pids[N_RANKS];
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < n; r++) {
        if (pipe(fds[r]) != 0) {
            perror("pipe");
            exit(1);
        }
        pids[r] = fork();
        if (pids[r] == 0) {
            char rank[16], world[16];
            snprintf(rank, sizeof rank, "%d", r);
            snprintf(world, sizeof world, "%d", n);
            set_env3("RANK", rank, "WORLD_SIZE", world, "LOCAL_RANK", rank);
            close(fds[r][0]);
            child_rank(dir, delays[r], timeout_s, fds[r][1]);
        }
        close(fds[r][1]);
    }
    for (int r = 0; r < n; r++) {
        memset(&reports[r], 0, sizeof reports[r]);
        reports[r].rc = -99;
        ssize_t got = read(fds[r][0], &reports[r], sizeof reports[r]);
        CHECK_EQ_INT(got, (long long)sizeof reports[r]);
        close(fds[r][0]);
        int status = 0;
        waitpid(pids[r], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

// Names in dir starting with "mnrl-rendezvous" (the file, its acks, temporaries).
static int rendezvous_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, "mnrl-rendezvous", 15) == 0;
    closedir(d);
    return n;
}

static void check_agreement(const ChildReport *reports, int n) {
    unsigned char zero[PAYLOAD] = {0};
    CHECK(memcmp(reports[0].payload, zero, PAYLOAD) != 0);
    for (int r = 0; r < n; r++) {
        CHECK_MSG(reports[r].rc == 0, "rank %d: %s", r, reports[r].msg);
        CHECK_EQ_INT(reports[r].rank, r);
        CHECK_EQ_INT(reports[r].world, n);
        CHECK_EQ_INT(reports[r].local_rank, r);
        CHECK_MSG(memcmp(reports[r].payload, reports[0].payload, PAYLOAD) == 0,
                  "rank %d received another payload than rank 0 wrote", r);
    }
}

static void test_rendezvous_processes(void) {
    char dir[64];
    make_temp_dir(dir, sizeof dir);
    ChildReport reports[N_RANKS];

    // Rank 0 first, the others later.
    int early_lead[N_RANKS] = {0, 50, 100, 150};
    run_ranks(dir, N_RANKS, early_lead, 30, reports);
    check_agreement(reports, N_RANKS);
    CHECK_EQ_INT(rendezvous_leftovers(dir), 0);

    // Rank 0 last, with an earlier run's file and acknowledgements still there: one of the
    // same world size and one of another; neither may be taken for this run's.
    char path[256], ack[300];
    snprintf(path, sizeof path, "%s/mnrl-rendezvous", dir);
    for (int round = 0; round < 2; round++) {
        char stale[600];
        int n = snprintf(stale, sizeof stale, "mnrl rendezvous 1\nworld %d\nnonce "
                         "00000000deadbeef\npayload ", round == 0 ? N_RANKS : 3);
        for (int i = 0; i < PAYLOAD; i++) n += snprintf(stale + n, sizeof stale - (size_t)n, "ab");
        snprintf(stale + n, sizeof stale - (size_t)n, "\n");
        test_write_file(path, stale);
        for (int r = 1; r < N_RANKS; r++) {
            snprintf(ack, sizeof ack, "%s.rank-%d", path, r);
            test_write_file(ack, "00000000deadbeef\n");
        }
        int late_lead[N_RANKS] = {300, 0, 20, 40};
        run_ranks(dir, N_RANKS, late_lead, 30, reports);
        check_agreement(reports, N_RANKS);
        unsigned char stale_payload[PAYLOAD];
        memset(stale_payload, 0xab, sizeof stale_payload);
        CHECK(memcmp(reports[1].payload, stale_payload, PAYLOAD) != 0);
        CHECK_EQ_INT(rendezvous_leftovers(dir), 0);
    }

    // The job id goes into the file name, so that jobs can share a folder.
    setenv("SLURM_JOB_ID", "4711", 1);
    int together[N_RANKS] = {0, 0, 0, 0};
    run_ranks(dir, 2, together, 30, reports);
    check_agreement(reports, 2);
    unsetenv("SLURM_JOB_ID");
    rmdir(dir);
}

static void test_rendezvous_timeouts(void) {
    char dir[64], path[256];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/mnrl-rendezvous", dir);
    MnrlError err = {{0}};
    unsigned char payload[8] = {0};
    clear_launcher_env();

    double start = mnrl_now();
    CHECK_EQ_INT(dist_file_rendezvous(dir, 1, 2, 1, payload, sizeof payload, &err), -1);
    CHECK(mnrl_now() - start >= 1.0);
    CHECK_CONTAINS(err.msg, "rank 1 waited 1 s (dist.init_timeout_s) for rank 0 to write");
    CHECK_CONTAINS(err.msg, path);

    CHECK_EQ_INT(dist_file_rendezvous(dir, 0, 3, 1, payload, sizeof payload, &err), -1);
    CHECK_CONTAINS(err.msg, "rank 0 waited 1 s (dist.init_timeout_s) for 2 of 3 ranks");
    CHECK_CONTAINS(err.msg, "missing: rank 1, 2");
    CHECK_CONTAINS(err.msg, path);
    CHECK_EQ_INT(rendezvous_leftovers(dir), 0);  // nothing stale left for the next run

    test_write_file(path, "mnrl rendezvous 1\nworld 5\nnonce 0000000000000001\npayload "
                          "0000000000000000\n");
    CHECK_EQ_INT(dist_file_rendezvous(dir, 1, 2, 1, payload, sizeof payload, &err), -1);
    CHECK_CONTAINS(err.msg, "is for 5 ranks, not 2: a stale one");
    unlink(path);

    CHECK_EQ_INT(dist_file_rendezvous("", 1, 2, 1, payload, sizeof payload, &err), -1);
    CHECK_CONTAINS(err.msg, "set dist.init_dir");
    rmdir(dir);
}

// dist_abort on one of several ranks exits with the code, also right after a failed
// dist_init (here: the CPU backend without an MPI launch).
static void test_abort_exits(void) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        set_env3("RANK", "1", "WORLD_SIZE", "2", "LOCAL_RANK", "1");
        MnrlDistConfig cfg = dist_config(MNRL_DIST_AUTO, "", 5);
        MnrlDist d;
        MnrlError err = {{0}};
        if (dist_init(&d, &cfg, "/tmp", MNRL_DIST_HOST_MEMORY, &err) == 0) _exit(10);
        dist_abort(&d, 5);
        _exit(11);  // dist_abort returned: wrong with two ranks
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ_INT(WEXITSTATUS(status), 5);
}

// ---- a real mpirun --------------------------------------------------------------------------

// Child mode under mpirun: report what discovery says, exit 3 on an error.
static int discover_child(void) {
    MnrlDistPlace p;
    MnrlError err = {{0}};
    if (dist_discover(MNRL_DIST_AUTO, &p, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 3;
    }
    printf("discovered launch %d world %d\n", (int)p.launch, p.world);
    return 0;
}

// Child mode under mpirun (MPI builds): rank 1 fails and aborts while rank 0 waits in a
// barrier it can never leave; the whole job must end, non-zero, with rank 1's message.
static int abort_child(void) {
    MnrlDistConfig cfg = dist_config(MNRL_DIST_AUTO, "", 30);
    MnrlDist d;
    MnrlError err = {{0}};
    if (dist_init(&d, &cfg, "/tmp", MNRL_DIST_HOST_MEMORY, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 4;
    }
    if (d.rank == 1) {
        fprintf(stderr, "rank 1: simulated failure\n");
        dist_abort(&d, 5);
    }
    if (d.ops->barrier(&d, &err) == 0) printf("rank %d passed the barrier\n", d.rank);
    dist_close(&d);
    return 0;
}

// Runs `mpirun -np 2 THIS_TEST ARG` (at most 120 s); its output into out, its status back.
static int run_self_under_mpirun(const char *arg, char *out, size_t cap) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = '\0';
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof cmd, "timeout 120 mpirun --oversubscribe --allow-run-as-root -np 2 "
             "'%s' %s 2>&1", self, arg);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t len = fread(out, 1, cap - 1, p);
    out[len] = '\0';
    return pclose(p);
}

static void test_under_mpirun(void) {
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        printf("note: mpirun not installed; the real MPI launch check did not run\n");
        return;
    }
    char out[8192];
    int status = run_self_under_mpirun("--discover-child", out, sizeof out);
    if (have_mpi) {
        CHECK_MSG(status == 0, "mpirun exit status %d: %s", status, out);
        CHECK_CONTAINS(out, "discovered launch 1 world 2");
    } else {
        CHECK_MSG(status != 0, "mpirun exited 0 though every rank should fail: %s", out);
        CHECK_CONTAINS(out, "one of 2 ranks started by an MPI launcher (OMPI_COMM_WORLD_SIZE "
                            "is set), but this binary was built without MPI; rebuild with "
                            "-DMNRL_MPI=ON or launch with torchrun-style RANK/WORLD_SIZE");
    }
    if (!have_mpi) return;
    double start = mnrl_now();
    status = run_self_under_mpirun("--abort-child", out, sizeof out);
    CHECK_MSG(status != 0 && WIFEXITED(status) && WEXITSTATUS(status) != 124,
              "mpirun status %d (124: it hung until the timeout): %s", status, out);
    CHECK(mnrl_now() - start < 100);
    CHECK_CONTAINS(out, "rank 1: simulated failure");
    CHECK(strstr(out, "passed the barrier") == NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--discover-child") == 0) return discover_child();
    if (argc > 1 && strcmp(argv[1], "--abort-child") == 0) return abort_child();
    test_discover_places();
    test_discover_errors();
    test_discover_mpi_launch();
    test_gpu_index();
    test_single_collectives();
    test_init_errors();
    test_rendezvous_processes();
    test_rendezvous_timeouts();
    test_abort_exits();
    test_under_mpirun();
    TEST_END();
}
