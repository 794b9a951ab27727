// self_block.cu — cuemu self-test: block reduction through __shared__ and __syncthreads,
// the predicate barriers, and 2-D / 3-D grids and blocks. Expected values come from plain
// host loops.
#include <vector>

#include "mnrl/cuda_launch.h"
#include "test.h"

static const int kBlock = 256;

// Tree reduction: each block sums its kBlock elements; the barriers order the steps.
__global__ void block_sum(const int *in, int n, int *block_sums) {
    __shared__ int partial[kBlock];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? in[i] : 0;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) block_sums[blockIdx.x] = partial[0];
}

static void check_block_sum(void) {
    const int n = 10007, blocks = (n + kBlock - 1) / kBlock;
    std::vector<int> host(n), sums(blocks);
    for (int i = 0; i < n; i++) host[i] = (i * 37) % 101 - 50;
    int *in, *out;
    CHECK(cudaMalloc(&in, n * sizeof(int)) == cudaSuccess);
    CHECK(cudaMalloc(&out, blocks * sizeof(int)) == cudaSuccess);
    cudaMemcpy(in, host.data(), n * sizeof(int), cudaMemcpyHostToDevice);
    CUDA_LAUNCH(blocks, kBlock, 0, 0, block_sum)(in, n, out);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(sums.data(), out, blocks * sizeof(int), cudaMemcpyDeviceToHost);
    for (int b = 0; b < blocks; b++) {
        int expect = 0;
        for (int i = b * kBlock; i < n && i < (b + 1) * kBlock; i++) expect += host[i];
        CHECK_EQ_INT(sums[b], expect);
    }
    cudaFree(in);
    cudaFree(out);
}

// out[b * 3 + {0,1,2}] = __syncthreads_count / _and / _or of (threadIdx.x % divisor == 0).
__global__ void predicate_barriers(int divisor, int *out) {
    int p = threadIdx.x % divisor == 0;
    int count = __syncthreads_count(p);
    int all = __syncthreads_and(p);
    int any = __syncthreads_or(p);
    if (threadIdx.x == blockDim.x - 1) {
        out[0] = count;
        out[1] = all;
        out[2] = any;
    }
}

static void check_predicate_barriers(void) {
    const int threads = 200;
    const int divisors[] = {1, 3, 1000};
    for (int divisor : divisors) {
        int *out, host[3];
        cudaMalloc(&out, sizeof host);
        CUDA_LAUNCH(1, threads, 0, 0, predicate_barriers)(divisor, out);
        CHECK(cudaGetLastError() == cudaSuccess);
        cudaMemcpy(host, out, sizeof host, cudaMemcpyDeviceToHost);
        int expect = 0;
        for (int t = 0; t < threads; t++) expect += t % divisor == 0;
        CHECK_EQ_INT(host[0], expect);
        CHECK_EQ_INT(host[1], expect == threads);
        CHECK_EQ_INT(host[2], expect > 0);
        cudaFree(out);
    }
}

// A 2-D grid of 2-D blocks over a width x height matrix with partial edge blocks.
__global__ void coordinates_2d(int width, int height, int *out) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x < width && y < height) out[y * width + x] = y * 1000 + x;
}

static void check_grid_2d(void) {
    const int width = 70, height = 21;
    dim3 block(16, 8), grid((width + 15) / 16, (height + 7) / 8);
    int *out;
    std::vector<int> host(width * height + 1);
    cudaMalloc(&out, host.size() * sizeof(int));
    CUDA_LAUNCH(grid, block, 0, 0, coordinates_2d)(width, height, out);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(host.data(), out, host.size() * sizeof(int), cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) wrong += host[y * width + x] != y * 1000 + x;
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(host[width * height], -1);  // past the end: still cudaMalloc's 0xFF fill
    cudaFree(out);
}

// 3-D blocks in a 3-D grid: every thread writes its global linear id where it belongs.
__global__ void coordinates_3d(int *out) {
    unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned id = bx * blockDim.x * blockDim.y * blockDim.z + t;
    out[id] = (int)id;
}

static void check_grid_3d(void) {
    dim3 block(4, 3, 2), grid(2, 3, 4);
    const int n = 4 * 3 * 2 * 2 * 3 * 4;
    int *out;
    std::vector<int> host(n);
    cudaMalloc(&out, n * sizeof(int));
    CUDA_LAUNCH(grid, block, 0, 0, coordinates_3d)(out);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(host.data(), out, n * sizeof(int), cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += host[i] != i;
    CHECK_EQ_INT(wrong, 0);
    cudaFree(out);
}

int main(void) {
    check_block_sum();
    check_predicate_barriers();
    check_grid_2d();
    check_grid_3d();
    TEST_END();
}
