// self_smem.cu — cuemu self-test of memory spaces: the project-wide dynamic shared memory
// buffer (mnrl_dyn_smem): fresh 0xFF contents in every block, sharing between the threads
// of a block, the 48 KiB default limit and cudaFuncSetAttribute raising it; __constant__
// memory through cudaMemcpyToSymbol; launch configuration errors.
#include <vector>

#include "mnrl/cuda_launch.h"
#include "test.h"

// Each block: count bytes that are not the 0xFF fill, then reverse its slice of `in`
// through shared memory.
__global__ void reverse_through_smem(const float *in, float *out, int per_block, int *not_fill) {
    float *tile = reinterpret_cast<float *>(mnrl_dyn_smem);
    const unsigned char *bytes = mnrl_dyn_smem;
    int dirty = 0;
    for (int i = threadIdx.x; i < per_block * 4; i += blockDim.x) dirty += bytes[i] != 0xFF;
    if (dirty) atomicAdd(not_fill, dirty);
    __syncthreads();
    for (int i = threadIdx.x; i < per_block; i += blockDim.x) tile[i] = in[blockIdx.x * per_block + i];
    __syncthreads();
    for (int i = threadIdx.x; i < per_block; i += blockDim.x)
        out[blockIdx.x * per_block + i] = tile[per_block - 1 - i];
}

static void check_reverse(int per_block, int blocks, int threads) {
    int n = per_block * blocks;
    std::vector<float> host(n), got(n);
    for (int i = 0; i < n; i++) host[i] = (float)i;
    float *in, *out;
    int *not_fill, host_not_fill = -1;
    cudaMalloc(&in, n * sizeof(float));
    cudaMalloc(&out, n * sizeof(float));
    cudaMalloc(&not_fill, sizeof(int));
    cudaMemset(not_fill, 0, sizeof(int));
    cudaMemcpy(in, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    CUDA_LAUNCH(blocks, threads, per_block * sizeof(float), 0, reverse_through_smem)(in, out, per_block, not_fill);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(got.data(), out, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaMemcpy(&host_not_fill, not_fill, sizeof(int), cudaMemcpyDeviceToHost);
    CHECK_EQ_INT(host_not_fill, 0);
    int wrong = 0;
    for (int b = 0; b < blocks; b++)
        for (int i = 0; i < per_block; i++) wrong += got[b * per_block + i] != host[b * per_block + per_block - 1 - i];
    CHECK_MSG(wrong == 0, "per_block %d: %d wrong", per_block, wrong);
    cudaFree(in);
    cudaFree(out);
    cudaFree(not_fill);
}

__constant__ float kWeights[4];
__constant__ int kOffset;

__global__ void weighted(float *out) {
    out[threadIdx.x] = kWeights[threadIdx.x % 4] * (float)threadIdx.x + (float)kOffset;
}

static void check_constant(void) {
    const float weights[4] = {0.5f, -1.0f, 2.0f, 4.0f};
    const int offset = 7;
    CHECK(cudaMemcpyToSymbol(kWeights, weights, sizeof weights) == cudaSuccess);
    CHECK(cudaMemcpyToSymbol(kOffset, &offset, sizeof offset) == cudaSuccess);
    int back = 0;
    CHECK(cudaMemcpyFromSymbol(&back, kOffset, sizeof back) == cudaSuccess);
    CHECK_EQ_INT(back, 7);
    float *out, host[32];
    cudaMalloc(&out, sizeof host);
    CUDA_LAUNCH(1, 32, 0, 0, weighted)(out);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(host, out, sizeof host, cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int i = 0; i < 32; i++) wrong += host[i] != weights[i % 4] * (float)i + 7.0f;
    CHECK_EQ_INT(wrong, 0);
    cudaFree(out);
}

__global__ void empty_kernel(int *unused) { (void)unused; }

static void check_limits(void) {
    const int big = 100 * 1024;
    fprintf(stderr, "(the launch errors reported below are expected)\n");
    // Over the 48 KiB default without the attribute: refused.
    CUDA_LAUNCH(1, 32, big, 0, reverse_through_smem)(NULL, NULL, 1, NULL);
    CHECK_EQ_INT(cudaGetLastError(), cudaErrorInvalidValue);
    CHECK_CONTAINS(cuemu_last_report(), "cudaFuncSetAttribute");
    // Raised for this kernel: accepted.
    CHECK(cudaFuncSetAttribute(reverse_through_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, big) == cudaSuccess);
    check_reverse(big / 4, 2, 256);
    // Beyond what an H100 offers at all: refused.
    CHECK_EQ_INT(cudaFuncSetAttribute(reverse_through_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024),
                 cudaErrorInvalidValue);
    CHECK_EQ_INT(cudaGetLastError(), cudaErrorInvalidValue);
    // Bad shapes.
    CUDA_LAUNCH(1, 1025, 0, 0, empty_kernel)(NULL);
    CHECK_EQ_INT(cudaGetLastError(), cudaErrorInvalidConfiguration);
    CUDA_LAUNCH(0, 32, 0, 0, empty_kernel)(NULL);
    CHECK_EQ_INT(cudaGetLastError(), cudaErrorInvalidConfiguration);
    CUDA_LAUNCH(dim3(1, 1, 1), dim3(8, 8, 65), 0, 0, empty_kernel)(NULL);
    CHECK_EQ_INT(cudaGetLastError(), cudaErrorInvalidConfiguration);
    CUDA_LAUNCH(1, 1024, 0, 0, empty_kernel)(NULL);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
}

int main(void) {
    check_reverse(1000, 3, 128);
    check_reverse(12 * 1024, 4, 64);  // exactly 48 KiB
    check_limits();
    check_constant();
    TEST_END();
}
