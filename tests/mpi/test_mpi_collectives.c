// test_mpi_collectives.c — run by ctest under `mpirun -np 2` and `-np 4` (label "mpi", only in
// -DMNRL_MPI=ON builds): the ranks MPI reports against the launcher's variables, then every
// collective of the MPI implementation on host buffers against values written out from the
// definitions in dist.h. The data are small integers and halves/quarters, so every sum is
// exact in fp32 in any order and the results must match bit for bit.
#include <stdlib.h>
#include <string.h>

#include "mnrl/dist.h"
#include "test.h"

// Rank r's element i of block blk for the gather: distinct for every (r, blk, i).
static float gather_value(int r, int blk, size_t i) {
    return (float)(r * 1000 + blk * 100) + (float)i + 0.25f * (float)(i % 3) - 17.0f;
}

// Rank r's element i of the part destined for rank q in block blk of the scatter input.
static float scatter_value(int r, int blk, int q, size_t i) {
    return (float)((r + 1) * (q * 10 + blk + 1)) + 0.5f * (float)(i % 5) - (float)r;
}

static int env_int(const char *name) {
    const char *v = getenv(name);
    return v ? atoi(v) : -1;
}

static void test_place(const MnrlDist *d) {
    CHECK_EQ_INT(d->launch, MNRL_DIST_LAUNCH_MPI);
    CHECK_STR(d->ops->name, "mpi");
    CHECK_EQ_INT(d->world, env_int("OMPI_COMM_WORLD_SIZE"));
    CHECK_EQ_INT(d->rank, env_int("OMPI_COMM_WORLD_RANK"));
    CHECK_EQ_INT(d->local_rank, env_int("OMPI_COMM_WORLD_LOCAL_RANK"));
}

// Block all-gather: 3 blocks (an MNRL step with 2 negatives) of an odd count.
static void test_all_gather(MnrlDist *d) {
    const size_t count = 5;
    const int blocks = 3, W = d->world;
    float in[15], *out = calloc((size_t)blocks * (size_t)W * count, sizeof(float));
    for (int blk = 0; blk < blocks; blk++)
        for (size_t i = 0; i < count; i++) in[(size_t)blk * count + i] = gather_value(d->rank, blk, i);
    MnrlError err = {{0}};
    CHECK_EQ_INT(d->ops->all_gather(d, out, in, count, blocks, &err), 0);
    int wrong = 0;
    for (int blk = 0; blk < blocks; blk++)
        for (int r = 0; r < W; r++)
            for (size_t i = 0; i < count; i++)
                wrong += out[((size_t)blk * (size_t)W + (size_t)r) * count + i] != gather_value(r, blk, i);
    CHECK_EQ_INT(wrong, 0);
    free(out);
}

// Reduce-scatter: this rank gets, per block, the sum over ranks of the part destined for it.
static void test_reduce_scatter(MnrlDist *d) {
    const size_t count = 7;
    const int blocks = 3, W = d->world;
    float *in = malloc((size_t)blocks * (size_t)W * count * sizeof(float));
    float out[21];
    for (int blk = 0; blk < blocks; blk++)
        for (int q = 0; q < W; q++)
            for (size_t i = 0; i < count; i++)
                in[((size_t)blk * (size_t)W + (size_t)q) * count + i] = scatter_value(d->rank, blk, q, i);
    MnrlError err = {{0}};
    CHECK_EQ_INT(d->ops->reduce_scatter(d, out, in, count, blocks, &err), 0);
    int wrong = 0;
    for (int blk = 0; blk < blocks; blk++) {
        for (size_t i = 0; i < count; i++) {
            double expected = 0;
            for (int r = 0; r < W; r++) expected += scatter_value(r, blk, d->rank, i);
            wrong += out[(size_t)blk * count + i] != (float)expected;
        }
    }
    CHECK_EQ_INT(wrong, 0);
    free(in);
}

// All-reduce of a gradient-sized buffer (more than any eager-protocol limit).
static void test_all_reduce(MnrlDist *d) {
    const size_t n = 100003;
    const int W = d->world;
    float *buf = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) buf[i] = (float)(d->rank + 1) + 0.5f * (float)(i % 7);
    MnrlError err = {{0}};
    CHECK_EQ_INT(d->ops->all_reduce(d, buf, n, &err), 0);
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        wrong += buf[i] != (float)(W * (W + 1) / 2) + (float)W * 0.5f * (float)(i % 7);
    CHECK_EQ_INT(wrong, 0);
    free(buf);
}

static void test_broadcast_barrier_any(MnrlDist *d) {
    MnrlError err = {{0}};
    for (int root = 0; root < d->world; root += d->world - 1) {
        unsigned char bytes[37];
        for (int i = 0; i < 37; i++) bytes[i] = (unsigned char)(d->rank * 37 + i);
        CHECK_EQ_INT(d->ops->broadcast(d, bytes, sizeof bytes, root, &err), 0);
        int wrong = 0;
        for (int i = 0; i < 37; i++) wrong += bytes[i] != (unsigned char)(root * 37 + i);
        CHECK_EQ_INT(wrong, 0);
        if (d->world == 1) break;
    }
    CHECK_EQ_INT(d->ops->broadcast(d, &err, 1, d->world, &err), -1);
    CHECK_CONTAINS(err.msg, "broadcast from rank");
    CHECK_EQ_INT(d->ops->barrier(d, &err), 0);

    int any = -1;
    CHECK_EQ_INT(d->ops->any(d, d->rank == d->world - 1 ? 42 : 0, &any, &err), 0);
    CHECK_EQ_INT(any, 1);  // the last rank alone wants to stop: everyone stops
    CHECK_EQ_INT(d->ops->any(d, 0, &any, &err), 0);
    CHECK_EQ_INT(any, 0);
}

int main(void) {
    if (!getenv("OMPI_COMM_WORLD_SIZE")) SKIP("run under Open MPI's mpirun (ctest -L mpi does)");
    MnrlDistConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.backend = MNRL_DIST_AUTO;
    cfg.init_dir = "";
    cfg.init_timeout_s = 60;
    MnrlDist d;
    MnrlError err = {{0}};
    if (dist_init(&d, &cfg, "", MNRL_DIST_HOST_MEMORY, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        dist_abort(&d, 1);
        return 1;
    }
    test_place(&d);
    test_all_gather(&d);
    test_reduce_scatter(&d);
    test_all_reduce(&d);
    test_broadcast_barrier_any(&d);
    printf("rank %d of %d: ", d.rank, d.world);
    dist_close(&d);
    TEST_END();
}
