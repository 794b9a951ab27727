// dist_nccl.cu — the CUDA side of dist (see dist.h): this rank's GPU, the device copy of
// the single-rank collectives, and, with NCCL, the collectives on device buffers, all queued
// on d->cuda_stream in call order. Under the CPU emulation of tests/emu there is no device
// and no NCCL, so the file compiles to nothing there.
#ifndef CUEMU
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/dist.h"

static cudaStream_t stream_of(const MnrlDist *d) {
    return (cudaStream_t)d->cuda_stream;
}

extern "C" int dist_cuda_select_device(const MnrlDist *d, MnrlError *err) {
    int visible = 0, gpu = 0;
    cudaError_t status = cudaGetDeviceCount(&visible);
    if (status != cudaSuccess) visible = 0;
    if (dist_gpu_index(d, visible, &gpu, err) != 0) return -1;
    CUDA_CHECK(cudaSetDevice(gpu), err);
    return 0;
}

extern "C" int dist_cuda_copy(void *dst, const void *src, size_t bytes, void *stream,
                              MnrlError *err) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, (cudaStream_t)stream),
               err);
    return 0;
}

#ifdef MNRL_HAVE_NCCL
#include <nccl.h>

static_assert(sizeof(ncclUniqueId) == MNRL_NCCL_ID_BYTES, "ncclUniqueId size changed");

#define NCCL_CHECK(call, err)                                                                \
    do {                                                                                     \
        ncclResult_t nccl_status_ = (call);                                                  \
        if (nccl_status_ != ncclSuccess)                                                     \
            return mnrl_fail((err), "%s:%d: %s failed: %s; rerun with NCCL_DEBUG=WARN for "  \
                             "NCCL's own account", __FILE__, __LINE__, #call,                \
                             ncclGetErrorString(nccl_status_));                              \
    } while (0)

typedef struct {
    ncclComm_t comm;
    int32_t *flag;  // device int of any() and barrier()
} NcclState;

static NcclState *state_of(const MnrlDist *d) {
    return (NcclState *)d->impl;
}

extern "C" int dist_nccl_make_id(unsigned char id[MNRL_NCCL_ID_BYTES], MnrlError *err) {
    ncclUniqueId unique;
    NCCL_CHECK(ncclGetUniqueId(&unique), err);
    memcpy(id, &unique, sizeof unique);
    return 0;
}

// One call per block; grouped so NCCL launches them as one operation.
static int nccl_all_gather(MnrlDist *d, float *out, const float *in, size_t count, int blocks,
                           MnrlError *err) {
    NCCL_CHECK(ncclGroupStart(), err);
    for (int blk = 0; blk < blocks; blk++) {
        ncclResult_t r = ncclAllGather(in + (size_t)blk * count,
                                       out + (size_t)blk * (size_t)d->world * count, count,
                                       ncclFloat32, state_of(d)->comm, stream_of(d));
        if (r != ncclSuccess) {
            ncclGroupEnd();
            NCCL_CHECK(r, err);
        }
    }
    NCCL_CHECK(ncclGroupEnd(), err);
    return 0;
}

static int nccl_reduce_scatter(MnrlDist *d, float *out, const float *in, size_t count,
                               int blocks, MnrlError *err) {
    NCCL_CHECK(ncclGroupStart(), err);
    for (int blk = 0; blk < blocks; blk++) {
        ncclResult_t r = ncclReduceScatter(in + (size_t)blk * (size_t)d->world * count,
                                           out + (size_t)blk * count, count, ncclFloat32,
                                           ncclSum, state_of(d)->comm, stream_of(d));
        if (r != ncclSuccess) {
            ncclGroupEnd();
            NCCL_CHECK(r, err);
        }
    }
    NCCL_CHECK(ncclGroupEnd(), err);
    return 0;
}

static int nccl_all_reduce(MnrlDist *d, float *buf, size_t count, MnrlError *err) {
    NCCL_CHECK(ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, state_of(d)->comm,
                             stream_of(d)), err);
    return 0;
}

static int nccl_broadcast(MnrlDist *d, void *buf, size_t bytes, int root, MnrlError *err) {
    if (root < 0 || root >= d->world)
        return mnrl_fail(err, "dist: broadcast from rank %d of %d", root, d->world);
    NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, state_of(d)->comm, stream_of(d)),
               err);
    return 0;
}

// The maximum of a host int over the ranks, through the device flag; waits for the stream.
static int nccl_max_int(MnrlDist *d, int value, int *max, MnrlError *err) {
    int32_t v = value;
    NcclState *s = state_of(d);
    CUDA_CHECK(cudaMemcpyAsync(s->flag, &v, sizeof v, cudaMemcpyHostToDevice, stream_of(d)), err);
    NCCL_CHECK(ncclAllReduce(s->flag, s->flag, 1, ncclInt32, ncclMax, s->comm, stream_of(d)), err);
    CUDA_CHECK(cudaMemcpyAsync(&v, s->flag, sizeof v, cudaMemcpyDeviceToHost, stream_of(d)), err);
    CUDA_CHECK(cudaStreamSynchronize(stream_of(d)), err);
    *max = v;
    return 0;
}

// NCCL has no barrier: a one-int all-reduce every rank must join, then the stream drains.
static int nccl_barrier(MnrlDist *d, MnrlError *err) {
    int ignored;
    return nccl_max_int(d, 0, &ignored, err);
}

static int nccl_any(MnrlDist *d, int flag, int *any, MnrlError *err) {
    return nccl_max_int(d, flag != 0, any, err);
}

static void nccl_release(MnrlDist *d, int abort_comm) {
    NcclState *s = state_of(d);
    if (!s) return;
    if (s->comm) abort_comm ? ncclCommAbort(s->comm) : ncclCommDestroy(s->comm);
    if (s->flag) cudaFree(s->flag);
    free(s);
    d->impl = NULL;
}

// Stops this rank's NCCL work at once, so that exiting does not wait for peers.
static void nccl_abort(MnrlDist *d, int code) {
    (void)code;
    nccl_release(d, 1);
}

static void nccl_close(MnrlDist *d) {
    nccl_release(d, 0);
}

static const MnrlDistOps nccl_ops = {
    "nccl", nccl_all_gather, nccl_reduce_scatter, nccl_all_reduce, nccl_broadcast,
    nccl_barrier, nccl_any, nccl_abort, nccl_close,
};

extern "C" int dist_nccl_open(MnrlDist *d, const unsigned char id[MNRL_NCCL_ID_BYTES],
                              MnrlError *err) {
    NcclState *s = (NcclState *)mnrl_calloc(1, sizeof *s);
    d->impl = s;
    d->ops = &nccl_ops;
    ncclUniqueId unique;
    memcpy(&unique, id, sizeof unique);
    CUDA_CHECK(cudaMalloc((void **)&s->flag, sizeof *s->flag), err);
    NCCL_CHECK(ncclCommInitRank(&s->comm, d->world, unique, d->rank), err);
    return 0;
}
#endif  // MNRL_HAVE_NCCL
#endif  // CUEMU
