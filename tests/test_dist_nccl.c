// test_dist_nccl.c — the CUDA side of dist on a real GPU: the NCCL collectives with world
// size 1 (NCCL refuses two ranks on one GPU; several GPUs are the README's mpirun/torchrun
// runs) and the device copy of the single-rank collectives, against values written out from
// dist.h's definitions. Skipped in builds without CUDA or NCCL and on machines without a
// usable GPU; tests/gpu/README.md has the command for a GPU machine.
#include <stdio.h>
#include <string.h>

#include "mnrl/dist.h"
#include "test.h"

#if defined(MNRL_HAVE_CUDA) && defined(MNRL_HAVE_NCCL)
#include <cuda_runtime_api.h>

enum { COUNT = 6, BLOCKS = 3, N = COUNT * BLOCKS };

static float *device_copy_of(const float *host, size_t n) {
    float *dev = NULL;
    if (cudaMalloc((void **)&dev, n * sizeof(float)) != cudaSuccess) return NULL;
    cudaMemcpy(dev, host, n * sizeof(float), cudaMemcpyHostToDevice);
    return dev;
}

static void download(float *host, const float *dev, size_t n) {
    CHECK_EQ_INT(cudaMemcpy(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
}

// With one rank, gather and scatter keep the block layout and sums are identities.
static void check_collectives(MnrlDist *d) {
    float host[N], back[N];
    for (int i = 0; i < N; i++) host[i] = 0.75f * (float)i - 4.0f;
    float *in = device_copy_of(host, N), *out = device_copy_of(host, N);
    CHECK(in != NULL && out != NULL);
    if (!in || !out) return;
    MnrlError err = {{0}};
    CHECK_EQ_INT(cudaMemset(out, 0, sizeof host), cudaSuccess);
    CHECK_MSG(d->ops->all_gather(d, out, in, COUNT, BLOCKS, &err) == 0, "%s", err.msg);
    download(back, out, N);
    CHECK(memcmp(back, host, sizeof host) == 0);
    CHECK_EQ_INT(cudaMemset(in, 0, sizeof host), cudaSuccess);
    CHECK_MSG(d->ops->reduce_scatter(d, in, out, COUNT, BLOCKS, &err) == 0, "%s", err.msg);
    download(back, in, N);
    CHECK(memcmp(back, host, sizeof host) == 0);
    CHECK_MSG(d->ops->all_reduce(d, in, N, &err) == 0, "%s", err.msg);
    download(back, in, N);
    CHECK(memcmp(back, host, sizeof host) == 0);
    CHECK_MSG(d->ops->broadcast(d, in, sizeof host, 0, &err) == 0, "%s", err.msg);
    CHECK_MSG(d->ops->barrier(d, &err) == 0, "%s", err.msg);
    int any = -1;
    CHECK_MSG(d->ops->any(d, 3, &any, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(any, 1);
    CHECK_MSG(d->ops->any(d, 0, &any, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(any, 0);
    download(back, in, N);
    CHECK(memcmp(back, host, sizeof host) == 0);
    cudaFree(in);
    cudaFree(out);
}

static void run_checks(void) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) SKIP("no usable CUDA device");
    static const char *const vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID",
                                       "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                       "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
    MnrlDistConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.backend = MNRL_DIST_AUTO;
    cfg.init_dir = "";
    cfg.init_timeout_s = 60;
    MnrlError err = {{0}};

    // One process on a GPU: the single-rank collectives with device copies.
    MnrlDist d;
    CHECK_MSG(dist_init(&d, &cfg, "", MNRL_DIST_DEVICE_MEMORY, &err) == 0, "%s", err.msg);
    CHECK_STR(d.ops->name, "single");
    check_collectives(&d);
    dist_close(&d);

    // NCCL itself, world size 1.
    memset(&d, 0, sizeof d);
    d.world = 1;
    d.memory = MNRL_DIST_DEVICE_MEMORY;
    unsigned char id[MNRL_NCCL_ID_BYTES];
    CHECK_MSG(dist_cuda_select_device(&d, &err) == 0, "%s", err.msg);
    CHECK_MSG(dist_nccl_make_id(id, &err) == 0, "%s", err.msg);
    int opened = dist_nccl_open(&d, id, &err);
    CHECK_MSG(opened == 0, "%s", err.msg);
    if (opened == 0) {
        CHECK_STR(d.ops->name, "nccl");
        check_collectives(&d);
    }
    dist_close(&d);
}
#endif

int main(void) {
#if defined(MNRL_HAVE_CUDA) && defined(MNRL_HAVE_NCCL)
    run_checks();
#else
    SKIP("built without CUDA and NCCL: the NCCL collectives need both (and a GPU)");
#endif
    TEST_END();
}
