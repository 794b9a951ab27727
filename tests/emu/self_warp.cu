// self_warp.cu — cuemu self-test: warp reductions and scans with shuffles (full warps,
// sub-warp widths, a partial last warp), broadcasts, votes and __syncwarp. Expected
// values come from plain host loops.
#include <vector>

#include "mnrl/cuda_launch.h"
#include "test.h"

// Sum of the warp by butterfly (xor) and by tree (down); both must give every lane /
// lane 0 the total.
__global__ void warp_sums(const float *in, float *xor_out, float *down_out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float a = in[i], b = in[i];
    for (int offset = 16; offset > 0; offset /= 2) {
        a += __shfl_xor_sync(0xffffffffu, a, offset);
        b += __shfl_down_sync(0xffffffffu, b, offset);
    }
    xor_out[i] = a;
    if (threadIdx.x % 32 == 0) down_out[i / 32] = b;
}

static void check_warp_sums(void) {
    const int n = 4 * 128;
    std::vector<float> host(n), xs(n), downs(n / 32);
    for (int i = 0; i < n; i++) host[i] = (float)((i * 13) % 17) - 8.0f;  // sums are exact
    float *in, *xo, *dn;
    cudaMalloc(&in, n * sizeof(float));
    cudaMalloc(&xo, n * sizeof(float));
    cudaMalloc(&dn, n / 32 * sizeof(float));
    cudaMemcpy(in, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    CUDA_LAUNCH(4, 128, 0, 0, warp_sums)(in, xo, dn);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(xs.data(), xo, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaMemcpy(downs.data(), dn, n / 32 * sizeof(float), cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int w = 0; w < n / 32; w++) {
        float expect = 0;
        for (int l = 0; l < 32; l++) expect += host[w * 32 + l];
        for (int l = 0; l < 32; l++) wrong += xs[w * 32 + l] != expect;
        CHECK_NEAR(downs[w], expect, 0);
    }
    CHECK_EQ_INT(wrong, 0);
    cudaFree(in);
    cudaFree(xo);
    cudaFree(dn);
}

// Inclusive scan within segments of `width` lanes (shfl_up), the segment's first value
// broadcast (shfl idx with an out-of-range source, taken modulo width), and the value of
// lane ^ 1 fetched as a double.
__global__ void segment_ops(const int *in, int width, int *scan, int *first, double *pair) {
    int i = threadIdx.x;
    int v = in[i];
    for (int delta = 1; delta < width; delta *= 2) {
        int up = __shfl_up_sync(0xffffffffu, v, delta, width);
        if ((i % width) >= delta) v += up;
    }
    scan[i] = v;
    first[i] = __shfl_sync(0xffffffffu, in[i], width * 3, width);
    pair[i] = __shfl_xor_sync(0xffffffffu, (double)in[i] + 0.5, 1, width);
}

static void check_segments(void) {
    const int n = 64;
    const int widths[] = {2, 8, 32};
    std::vector<int> host(n), scan(n), first(n);
    std::vector<double> pair(n);
    for (int i = 0; i < n; i++) host[i] = i * 3 - 50;
    int *in, *sc, *fi;
    double *pa;
    cudaMalloc(&in, n * sizeof(int));
    cudaMalloc(&sc, n * sizeof(int));
    cudaMalloc(&fi, n * sizeof(int));
    cudaMalloc(&pa, n * sizeof(double));
    cudaMemcpy(in, host.data(), n * sizeof(int), cudaMemcpyHostToDevice);
    for (int width : widths) {
        CUDA_LAUNCH(1, n, 0, 0, segment_ops)(in, width, sc, fi, pa);
        CHECK(cudaGetLastError() == cudaSuccess);
        cudaMemcpy(scan.data(), sc, n * sizeof(int), cudaMemcpyDeviceToHost);
        cudaMemcpy(first.data(), fi, n * sizeof(int), cudaMemcpyDeviceToHost);
        cudaMemcpy(pair.data(), pa, n * sizeof(double), cudaMemcpyDeviceToHost);
        int wrong = 0;
        for (int i = 0; i < n; i++) {
            int start = i - i % width, expect = 0;
            for (int j = start; j <= i; j++) expect += host[j];
            wrong += scan[i] != expect;
            wrong += first[i] != host[start];
            wrong += pair[i] != host[i ^ 1] + 0.5;
        }
        CHECK_MSG(wrong == 0, "width %d: %d wrong values", width, wrong);
    }
    cudaFree(in);
    cudaFree(sc);
    cudaFree(fi);
    cudaFree(pa);
}

// Votes on a 48-thread block: the second warp has 16 lanes, so it names only those.
__global__ void votes(const int *pred, unsigned *ballot, int *any, int *all) {
    unsigned mask = threadIdx.x < 32 ? 0xffffffffu : 0x0000ffffu;
    int p = pred[threadIdx.x];
    unsigned b = __ballot_sync(mask, p);
    int a = __any_sync(mask, p), l = __all_sync(mask, p);
    __syncwarp(mask);
    if (threadIdx.x % 32 == 0) {
        ballot[threadIdx.x / 32] = b;
        any[threadIdx.x / 32] = a;
        all[threadIdx.x / 32] = l;
    }
}

static void check_votes(void) {
    const int n = 48;
    // Cases: mixed predicates, all true, all false.
    for (int c = 0; c < 3; c++) {
        std::vector<int> pred(n);
        for (int i = 0; i < n; i++) pred[i] = c == 0 ? (i % 5 == 1) : c == 1;
        int *p, *any, *all, hany[2], hall[2];
        unsigned *ballot, hballot[2];
        cudaMalloc(&p, n * sizeof(int));
        cudaMalloc(&ballot, sizeof hballot);
        cudaMalloc(&any, sizeof hany);
        cudaMalloc(&all, sizeof hall);
        cudaMemcpy(p, pred.data(), n * sizeof(int), cudaMemcpyHostToDevice);
        CUDA_LAUNCH(1, n, 0, 0, votes)(p, ballot, any, all);
        CHECK(cudaGetLastError() == cudaSuccess);
        cudaMemcpy(hballot, ballot, sizeof hballot, cudaMemcpyDeviceToHost);
        cudaMemcpy(hany, any, sizeof hany, cudaMemcpyDeviceToHost);
        cudaMemcpy(hall, all, sizeof hall, cudaMemcpyDeviceToHost);
        for (int w = 0; w < 2; w++) {
            unsigned expect = 0;
            int lanes = w == 0 ? 32 : 16;
            for (int l = 0; l < lanes; l++) expect |= (unsigned)(pred[w * 32 + l] != 0) << l;
            CHECK_EQ_INT(hballot[w], expect);
            CHECK_EQ_INT(hany[w], expect != 0);
            CHECK_EQ_INT(hall[w], lanes == 32 ? expect == 0xffffffffu : expect == 0xffffu);
        }
        cudaFree(p);
        cudaFree(ballot);
        cudaFree(any);
        cudaFree(all);
    }
}

int main(void) {
    check_warp_sums();
    check_segments();
    check_votes();
    TEST_END();
}
