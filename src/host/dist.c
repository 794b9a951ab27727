// dist.c — rank discovery, start-up (MPI or file rendezvous) and the single-rank
// collectives (see dist.h). The MPI collectives are in dist_mpi.c, NCCL in dist_nccl.cu.
#include "mnrl/dist.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// ---- the launcher's environment -------------------------------------------------------------

// Reads integer variable name into *out when it is set. Returns 1 when set and valid, 0 when
// unset, -1 (with a message) when set to something that is not an integer in [lo, hi].
static int env_int(const char *name, int lo, int hi, int *out, MnrlError *err) {
    const char *text = getenv(name);
    if (!text) return 0;
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || value < lo || value > hi) {
        return mnrl_fail(err, "dist: environment variable %s=\"%s\": expected an integer in "
                         "[%d, %d]; fix the launch command or unset it", name, text, lo, hi);
    }
    *out = (int)value;
    return 1;
}

// Rank, world size and local rank from three variables; 1 when the first two are set.
static int env_place(const char *rank_var, const char *world_var, const char *local_var,
                     MnrlDistPlace *p, MnrlError *err) {
    int world = 0, rank = 0, local = 0;
    int has_world = env_int(world_var, 1, INT_MAX, &world, err);
    if (has_world < 0) return -1;
    int has_rank = env_int(rank_var, 0, INT_MAX, &rank, err);
    if (has_rank < 0) return -1;
    if (!has_world && !has_rank) return 0;
    if (!has_world || !has_rank) {
        return mnrl_fail(err, "dist: %s is set but %s is not; a launcher sets both (or "
                         "neither, for one process)", has_rank ? rank_var : world_var,
                         has_rank ? world_var : rank_var);
    }
    if (rank >= world) {
        return mnrl_fail(err, "dist: %s=%d is not below %s=%d", rank_var, rank, world_var,
                         world);
    }
    int has_local = env_int(local_var, 0, INT_MAX, &local, err);
    if (has_local < 0) return -1;
    // Several ranks need the local rank to pick their GPU; one rank has GPU 0.
    if (!has_local && world > 1) {
        return mnrl_fail(err, "dist: %s and %s are set but %s is not: set it to the rank's "
                         "index on its node (it picks the GPU)", rank_var, world_var,
                         local_var);
    }
    p->rank = rank;
    p->world = world;
    p->local_rank = has_local ? local : 0;
    return 1;
}

// An MPI launcher (Open MPI, MPICH/Hydra PMI, PMIx) started this process. *world is its
// world size, or 0 when only PMIX_RANK says so.
static int mpi_launched(int *world, MnrlError *err) {
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof size_vars / sizeof size_vars[0]; i++) {
        int found = env_int(size_vars[i], 1, INT_MAX, world, err);
        if (found != 0) return found;
    }
    *world = 0;
    return getenv("PMIX_RANK") != NULL;
}

static const char *mpi_size_source(void) {
    if (getenv("OMPI_COMM_WORLD_SIZE")) return "OMPI_COMM_WORLD_SIZE";
    if (getenv("PMI_SIZE")) return "PMI_SIZE";
    return "PMIX_RANK";
}

#ifdef MNRL_HAVE_MPI
static const int built_with_mpi = 1;
#else
static const int built_with_mpi = 0;
#endif

// The environment launches: torchrun's variables first, then SLURM's.
static int env_launch(MnrlDistPlace *p, MnrlError *err) {
    int found = env_place("RANK", "WORLD_SIZE", "LOCAL_RANK", p, err);
    if (found != 0) {
        p->source = "RANK/WORLD_SIZE/LOCAL_RANK";
    } else {
        found = env_place("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", p, err);
        p->source = "SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID";
    }
    if (found == 1) p->launch = MNRL_DIST_LAUNCH_ENV;
    return found;
}

static int discover_auto(MnrlDistPlace *p, MnrlError *err) {
    int mpi_world;
    int under_mpi = mpi_launched(&mpi_world, err);
    if (under_mpi < 0) return -1;
    if (under_mpi && built_with_mpi) {
        // MPI_Init gives the real place; until then, what the launcher says.
        p->launch = MNRL_DIST_LAUNCH_MPI;
        p->world = mpi_world > 0 ? mpi_world : 1;
        p->source = mpi_size_source();
        return 0;
    }
    int found = env_launch(p, err);
    if (found != 0) return found < 0 ? -1 : 0;
    if (under_mpi && mpi_world != 1) {
        char ranks[32] = "several";
        if (mpi_world > 0) snprintf(ranks, sizeof ranks, "%d", mpi_world);
        return mnrl_fail(err, "dist: this process is one of %s ranks started by an MPI launcher "
                         "(%s is set), but this binary was built without MPI; rebuild with "
                         "-DMNRL_MPI=ON or launch with torchrun-style RANK/WORLD_SIZE "
                         "(and LOCAL_RANK) instead of starting copies that would each train "
                         "alone", ranks, mpi_size_source());
    }
    return 0;
}

int dist_discover(MnrlDistBackend backend, MnrlDistPlace *out, MnrlError *err) {
    MnrlDistPlace p = {MNRL_DIST_LAUNCH_SINGLE, 0, 1, 0, "no launcher"};
    int mpi_world = 0, found;
    switch (backend) {
    case MNRL_DIST_AUTO:
        if (discover_auto(&p, err) != 0) return -1;
        break;
    case MNRL_DIST_MPI:
        if (!built_with_mpi) {
            return mnrl_fail(err, "dist.backend is \"mpi\" but this binary was built without "
                             "MPI; rebuild with -DMNRL_MPI=ON (libopenmpi-dev) or set "
                             "dist.backend to \"env\" or \"auto\"");
        }
        if (mpi_launched(&mpi_world, err) < 0) return -1;
        p.launch = MNRL_DIST_LAUNCH_MPI;
        p.world = mpi_world > 0 ? mpi_world : 1;
        p.source = "dist.backend \"mpi\"";
        break;
    case MNRL_DIST_ENV:
        found = env_launch(&p, err);
        if (found < 0) return -1;
        if (found == 0) {
            return mnrl_fail(err, "dist.backend is \"env\" but neither RANK/WORLD_SIZE/"
                             "LOCAL_RANK (torchrun style) nor SLURM_PROCID/SLURM_NTASKS/"
                             "SLURM_LOCALID are set; set them for every process or use "
                             "dist.backend \"auto\"");
        }
        break;
    case MNRL_DIST_SINGLE:
        // A launcher that started several processes sets these per process; SLURM_NTASKS
        // alone is also set in a batch script, where one process is legitimate.
        if (mpi_launched(&mpi_world, err) < 0) return -1;
        int env_world = 1;
        if (env_int("WORLD_SIZE", 1, INT_MAX, &env_world, err) < 0) return -1;
        if (mpi_world > 1 || env_world > 1) {
            return mnrl_fail(err, "dist.backend is \"single\" but the launcher started %d "
                             "processes (%s); each would train alone: launch one process or "
                             "set dist.backend to \"auto\"", mpi_world > 1 ? mpi_world : env_world,
                             mpi_world > 1 ? mpi_size_source() : "WORLD_SIZE");
        }
        break;
    }
    *out = p;
    return 0;
}

int dist_gpu_index(const MnrlDist *d, int visible_devices, int *gpu, MnrlError *err) {
    if (visible_devices < 1) {
        return mnrl_fail(err, "dist: rank %d sees no CUDA device; check CUDA_VISIBLE_DEVICES "
                         "and the launcher's GPU binding, or use model.backend \"cpu\"", d->rank);
    }
    if (visible_devices == 1) {
        *gpu = 0;
        return 0;
    }
    if (d->local_rank >= visible_devices) {
        return mnrl_fail(err, "dist: rank %d has local rank %d but its node shows only %d CUDA "
                         "devices; start at most %d ranks per node (GPU = local rank)", d->rank,
                         d->local_rank, visible_devices, visible_devices);
    }
    *gpu = d->local_rank;
    return 0;
}

// ---- file rendezvous -------------------------------------------------------------------------

enum { RENDEZVOUS_MAX_PAYLOAD = 4096, RENDEZVOUS_POLL_MS = 10 };

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// dir/mnrl-rendezvous, with the job's id when the launcher gives one.
static int rendezvous_path(char *out, size_t cap, const char *dir, MnrlError *err) {
    const char *job = getenv("SLURM_JOB_ID");
    if (!job || !*job) job = getenv("TORCHELASTIC_RUN_ID");
    char name[160] = "mnrl-rendezvous";
    if (job && *job && strcmp(job, "none") != 0) {
        size_t n = strlen(name);
        name[n++] = '-';
        // Only file-name-safe characters of the id.
        for (const char *c = job; *c && n + 1 < sizeof name; c++) {
            int safe = (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                       (*c >= 'A' && *c <= 'Z') || *c == '-' || *c == '_' || *c == '.';
            name[n++] = safe ? *c : '_';
        }
        name[n] = '\0';
    }
    if (mnrl_path_join(out, cap, dir, name) != 0)
        return mnrl_fail(err, "dist.init_dir \"%s\": path too long", dir);
    return 0;
}

typedef struct {
    int world;
    unsigned long long nonce;
    unsigned char payload[RENDEZVOUS_MAX_PAYLOAD];
    size_t bytes;
} RendezvousNote;

static char *rendezvous_format(const RendezvousNote *note) {
    char *text = mnrl_malloc(128 + 2 * note->bytes);
    int n = sprintf(text, "mnrl rendezvous 1\nworld %d\nnonce %016llx\npayload ", note->world,
                    note->nonce);
    for (size_t i = 0; i < note->bytes; i++) n += sprintf(text + n, "%02x", note->payload[i]);
    sprintf(text + n, "\n");
    return text;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// Reads the rendezvous file; 0 when it is absent, unreadable or not complete (rank 0 renames
// it into place whole, so a partial one is another writer's or damage: wait for rank 0's).
static int rendezvous_read(const char *path, RendezvousNote *note, size_t bytes) {
    char *text;
    size_t len;
    MnrlError ignored;
    if (mnrl_read_file(path, &text, &len, &ignored) != 0) return 0;
    int offset = 0;
    int ok = sscanf(text, "mnrl rendezvous 1\nworld %d\nnonce %llx\npayload %n", &note->world,
                    &note->nonce, &offset) == 2 && offset > 0 &&
             len >= (size_t)offset + 2 * bytes + 1 && text[offset + 2 * bytes] == '\n';
    for (size_t i = 0; ok && i < bytes; i++) {
        int hi = hex_digit(text[offset + 2 * i]), lo = hex_digit(text[offset + 2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        note->payload[i] = (unsigned char)(hi * 16 + lo);
    }
    note->bytes = bytes;
    free(text);
    return ok;
}

static void ack_path(char *out, size_t cap, const char *path, int rank) {
    snprintf(out, cap, "%s.rank-%d", path, rank);
}

// The nonce an ack file holds; 0 (never a nonce) when absent or unreadable.
static unsigned long long ack_read(const char *path) {
    char *text;
    size_t len;
    MnrlError ignored;
    if (mnrl_read_file(path, &text, &len, &ignored) != 0) return 0;
    unsigned long long nonce = 0;
    if (sscanf(text, "%llx", &nonce) != 1) nonce = 0;
    free(text);
    return nonce;
}

static unsigned long long fresh_nonce(void) {
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed[3] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid()};
    unsigned long long nonce = mnrl_hash64(host, strlen(host), mnrl_hash64(seed, sizeof seed, 0));
    return nonce ? nonce : 1;
}

// Lists up to a few ranks that have not acknowledged, for the timeout message.
static void list_missing(char *out, size_t cap, const unsigned char *joined, int world) {
    size_t n = 0;
    int listed = 0, missing = 0;
    out[0] = '\0';
    for (int r = 1; r < world; r++) {
        if (joined[r]) continue;
        missing++;
        if (listed < 8 && n < cap) {
            n += (size_t)snprintf(out + n, cap - n, "%s%d", listed ? ", " : "", r);
            listed++;
        }
    }
    if (missing > listed && n < cap) snprintf(out + n, cap - n, " and %d more", missing - listed);
}

static int rendezvous_lead(const char *path, int world, int timeout_s, const void *payload,
                           size_t bytes, MnrlError *err) {
    RendezvousNote note = {world, fresh_nonce(), {0}, bytes};
    memcpy(note.payload, payload, bytes);
    char *text = rendezvous_format(&note);
    int written = mnrl_write_file_atomic(path, text, strlen(text), err);
    free(text);
    if (written != 0) return mnrl_fail_context(err, "dist: writing the rendezvous file");

    unsigned char *joined = mnrl_calloc((size_t)world, 1);
    int waiting = world - 1;
    char ack[4200];
    double deadline = mnrl_now() + timeout_s;
    while (waiting > 0 && mnrl_now() < deadline) {
        for (int r = 1; r < world; r++) {
            ack_path(ack, sizeof ack, path, r);
            if (!joined[r] && ack_read(ack) == note.nonce) {
                joined[r] = 1;
                waiting--;
            }
        }
        if (waiting > 0) sleep_ms(RENDEZVOUS_POLL_MS);
    }
    char missing[160];
    list_missing(missing, sizeof missing, joined, world);
    free(joined);
    // Done or given up: no file of this run stays behind to mislead a later one.
    for (int r = 1; r < world; r++) {
        ack_path(ack, sizeof ack, path, r);
        unlink(ack);
    }
    unlink(path);
    if (waiting > 0) {
        return mnrl_fail(err, "dist: rank 0 waited %d s (dist.init_timeout_s) for %d of %d "
                         "ranks to join through %s; missing: rank %s. Are they running, and "
                         "is dist.init_dir a folder every rank shares?", timeout_s, waiting,
                         world, path, missing);
    }
    return 0;
}

static int rendezvous_follow(const char *path, int rank, int world, int timeout_s,
                             void *payload, size_t bytes, MnrlError *err) {
    char ack[4200];
    ack_path(ack, sizeof ack, path, rank);
    unsigned long long acked = 0;
    int other_world = 0;
    double deadline = mnrl_now() + timeout_s;
    while (mnrl_now() < deadline) {
        RendezvousNote note;
        int present = mnrl_file_exists(path);
        if (present && rendezvous_read(path, &note, bytes)) {
            if (note.world != world) {
                other_world = note.world;  // an earlier run's: rank 0 will replace it
            } else if (note.nonce != acked) {
                char text[32];
                snprintf(text, sizeof text, "%016llx\n", note.nonce);
                if (mnrl_write_file_atomic(ack, text, strlen(text), err) != 0)
                    return mnrl_fail_context(err, "dist: rank %d acknowledging the rendezvous",
                                             rank);
                memcpy(payload, note.payload, bytes);
                acked = note.nonce;
            }
        } else if (!present && acked) {
            return 0;  // rank 0 saw every rank take this nonce and removed the file
        }
        sleep_ms(RENDEZVOUS_POLL_MS);
    }
    if (acked) {
        return mnrl_fail(err, "dist: rank %d joined through %s but rank 0 did not see all %d "
                         "ranks within %d s (dist.init_timeout_s); see rank 0's message",
                         rank, path, world, timeout_s);
    }
    char stale[128] = "";
    if (other_world) {
        snprintf(stale, sizeof stale, " (the file there is for %d ranks, not %d: a stale one "
                 "from another run?)", other_world, world);
    }
    return mnrl_fail(err, "dist: rank %d waited %d s (dist.init_timeout_s) for rank 0 to write "
                     "%s%s; is rank 0 running, and is dist.init_dir the same shared folder on "
                     "every node?", rank, timeout_s, path, stale);
}

int dist_file_rendezvous(const char *dir, int rank, int world, int timeout_s, void *payload,
                         size_t bytes, MnrlError *err) {
    if (bytes > RENDEZVOUS_MAX_PAYLOAD)
        return mnrl_fail(err, "dist: rendezvous payload of %zu bytes is over %d", bytes,
                         RENDEZVOUS_MAX_PAYLOAD);
    if (!dir || !*dir) return mnrl_fail(err, "dist: no folder for the rendezvous file; set "
                                        "dist.init_dir to a folder every rank shares");
    char path[4096];
    if (rendezvous_path(path, sizeof path, dir, err) != 0) return -1;
    if (rank == 0) {
        if (mnrl_mkdir_p(dir, err) != 0) return mnrl_fail_context(err, "dist.init_dir");
        return rendezvous_lead(path, world, timeout_s, payload, bytes, err);
    }
    return rendezvous_follow(path, rank, world, timeout_s, payload, bytes, err);
}

// ---- one rank -------------------------------------------------------------------------------

// With one rank every gather and scatter layout is the input's: a copy, or nothing in place.
static int single_copy(MnrlDist *d, float *out, const float *in, size_t count, int blocks,
                       MnrlError *err) {
    size_t bytes = count * (size_t)blocks * sizeof(float);
    if (out == in || bytes == 0) return 0;
    if (d->memory == MNRL_DIST_HOST_MEMORY) {
        memcpy(out, in, bytes);
        return 0;
    }
#ifdef MNRL_HAVE_CUDA
    return dist_cuda_copy(out, in, bytes, d->cuda_stream, err);
#else
    return mnrl_fail(err, "dist: device memory in a build without CUDA");
#endif
}

static int single_all_reduce(MnrlDist *d, float *buf, size_t count, MnrlError *err) {
    (void)d, (void)buf, (void)count, (void)err;
    return 0;
}

static int single_broadcast(MnrlDist *d, void *buf, size_t bytes, int root, MnrlError *err) {
    (void)d, (void)buf, (void)bytes;
    if (root != 0) return mnrl_fail(err, "dist: broadcast from rank %d of 1", root);
    return 0;
}

static int single_barrier(MnrlDist *d, MnrlError *err) {
    (void)d, (void)err;
    return 0;
}

static int single_any(MnrlDist *d, int flag, int *any, MnrlError *err) {
    (void)d, (void)err;
    *any = flag != 0;
    return 0;
}

static void single_abort(MnrlDist *d, int code) {
    (void)d, (void)code;
}

static void single_close(MnrlDist *d) {
    (void)d;
}

static const MnrlDistOps single_ops = {
    "single", single_copy, single_copy, single_all_reduce, single_broadcast, single_barrier,
    single_any, single_abort, single_close,
};

// ---- start-up ---------------------------------------------------------------------------------

// Device memory with several ranks: one NCCL communicator, its id from rank 0 by MPI_Bcast
// (MPI launch) or the rendezvous file (environment launch).
static int open_nccl(MnrlDist *d, const char *init_dir, int timeout_s, MnrlError *err) {
#ifdef MNRL_HAVE_NCCL
    unsigned char id[MNRL_NCCL_ID_BYTES] = {0};
    if (d->rank == 0 && dist_nccl_make_id(id, err) != 0) return -1;
    int shared;
#ifdef MNRL_HAVE_MPI
    if (d->launch == MNRL_DIST_LAUNCH_MPI)
        shared = dist_mpi_broadcast_bytes(id, sizeof id, 0, err);
    else
#endif
        shared = dist_file_rendezvous(init_dir, d->rank, d->world, timeout_s, id, sizeof id, err);
    if (shared != 0) return -1;
    return dist_nccl_open(d, id, err);
#else
    (void)init_dir, (void)timeout_s;
    return mnrl_fail(err, "dist: %d ranks on the CUDA backend need NCCL, and this binary was "
                     "built without it; install NCCL (libnccl-dev) and rebuild", d->world);
#endif
}

// World > 1 on host buffers: MPI's collectives, which only an MPI launch has.
static int open_host(MnrlDist *d, MnrlError *err) {
#ifdef MNRL_HAVE_MPI
    if (d->launch == MNRL_DIST_LAUNCH_MPI) {
        d->ops = dist_mpi_ops();
        return 0;
    }
    return mnrl_fail(err, "dist: %d ranks on the CPU backend exchange data through MPI, but "
                     "these were started without an MPI launcher; launch with mpirun -np %d "
                     "(or srun --mpi=pmix)", d->world, d->world);
#else
    return mnrl_fail(err, "dist: %d ranks on the CPU backend exchange data through MPI, and "
                     "this binary was built without MPI; rebuild with -DMNRL_MPI=ON and "
                     "launch with mpirun -np %d", d->world, d->world);
#endif
}

int dist_init(MnrlDist *d, const MnrlDistConfig *cfg, const char *output_dir,
              MnrlDistMemory memory, MnrlError *err) {
    memset(d, 0, sizeof *d);
    MnrlDistPlace place;
    if (dist_discover(cfg->backend, &place, err) != 0) return -1;
    d->rank = place.rank;
    d->world = place.world;
    d->local_rank = place.local_rank;
    d->launch = place.launch;
    d->memory = memory;
    d->ops = &single_ops;
#ifdef MNRL_HAVE_MPI
    if (d->launch == MNRL_DIST_LAUNCH_MPI && dist_mpi_start(d, err) != 0) return -1;
#endif
    // One rank keeps the current device (0), so that a missing GPU is reported by the
    // backend that needs it; several take GPU = local rank before the backend starts.
    if (memory == MNRL_DIST_DEVICE_MEMORY && d->world > 1) {
#ifdef MNRL_HAVE_CUDA
        if (dist_cuda_select_device(d, err) != 0) return -1;
#else
        return mnrl_fail(err, "dist: device memory in a build without CUDA");
#endif
    }
    if (d->world == 1) return 0;
    const char *init_dir = cfg->init_dir && *cfg->init_dir ? cfg->init_dir : output_dir;
    if (memory == MNRL_DIST_DEVICE_MEMORY) return open_nccl(d, init_dir, cfg->init_timeout_s, err);
    return open_host(d, err);
}

void dist_abort(MnrlDist *d, int code) {
    if (d->ops) d->ops->abort(d, code);
#ifdef MNRL_HAVE_MPI
    if (d->launch == MNRL_DIST_LAUNCH_MPI) dist_mpi_abort(code);
#endif
    if (d->world > 1) exit(code);
}

void dist_close(MnrlDist *d) {
    if (d->ops) d->ops->close(d);
#ifdef MNRL_HAVE_MPI
    if (d->launch == MNRL_DIST_LAUNCH_MPI) dist_mpi_finish();
#endif
    memset(d, 0, sizeof *d);
}
