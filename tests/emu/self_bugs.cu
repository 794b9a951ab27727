// self_bugs.cu — cuemu negative self-test: deliberate kernel bugs must be caught.
//  - a missing __syncthreads gives a wrong result in at least one of the three orders;
//  - a barrier skipped by some threads is reported as a divergent barrier with its
//    file:line (not a hang);
//  - a full-mask shuffle with lanes that returned early is reported as a deadlock;
//  - a shuffle reading a lane outside its mask is reported.
// The kernels set their own order through cuemu_set_order, so the three ctest runs of
// this file all check every order.
#include <vector>

#include "mnrl/cuda_launch.h"
#include "test.h"

// Each thread writes its value to shared memory, then reads its neighbour's — without the
// barrier in between, so a thread can read before its neighbour has written.
__global__ void neighbour_without_barrier(const int *in, int *out) {
    __shared__ int slots[64];
    slots[threadIdx.x] = in[threadIdx.x];
    // (missing __syncthreads)
    out[threadIdx.x] = slots[(threadIdx.x + 1) % blockDim.x];
}

static int wrong_results(const char *order) {
    const int n = 64;
    std::vector<int> host(n), got(n);
    int *in, *out;
    cudaMalloc(&in, n * sizeof(int));
    cudaMalloc(&out, n * sizeof(int));
    // The stale shared contents from a previous run must not hide the bug: use new values.
    static int run = 0;
    run++;
    for (int i = 0; i < n; i++) host[i] = i + 1000 * run;
    cudaMemcpy(in, host.data(), n * sizeof(int), cudaMemcpyHostToDevice);
    CHECK_EQ_INT(cuemu_set_order(order), 0);
    CUDA_LAUNCH(1, n, 0, 0, neighbour_without_barrier)(in, out);
    CHECK(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(got.data(), out, n * sizeof(int), cudaMemcpyDeviceToHost);
    int wrong = 0;
    for (int i = 0; i < n; i++) wrong += got[i] != host[(i + 1) % n];
    cudaFree(in);
    cudaFree(out);
    return wrong;
}

static void check_missing_barrier(void) {
    int forward = wrong_results("forward"), reverse = wrong_results("reverse"), random = wrong_results("random");
    printf("missing __syncthreads: wrong results forward %d, reverse %d, random %d (of 64)\n", forward, reverse, random);
    CHECK(forward + reverse + random > 0);
    CHECK_EQ_INT(cuemu_set_order("sideways"), -1);
}

// Threads past `active` return before the barrier that the others wait at.
enum { kDivergentLine = __LINE__ + 4 };
__global__ void early_return_then_barrier(int active, int *out) {
    if ((int)threadIdx.x >= active) return;
    out[threadIdx.x] = 1;
    __syncthreads();
    out[threadIdx.x] = 2;
}

// Half the block waits at one barrier, half at another.
__global__ void two_barriers(int *out) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 0;
}

// A full-mask warp reduction after half of the warp has left.
enum { kShuffleLine = __LINE__ + 4 };
__global__ void partial_warp_shuffle(float *out) {
    if (threadIdx.x >= 16) return;
    float v = (float)threadIdx.x;
    v += __shfl_down_sync(0xffffffffu, v, 8);
    out[threadIdx.x] = v;
}

// Lanes 0-15 shuffle among themselves but read lane 16.
__global__ void shuffle_outside_mask(float *out) {
    if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, 1.0f, 16);
}

static void check_reported(const char *what, const char *needle, int line) {
    cudaError_t status = cudaGetLastError();
    CHECK_MSG(status == cudaErrorLaunchFailure, "%s: status %s", what, cudaGetErrorName(status));
    const char *report = cuemu_last_report();
    CHECK_CONTAINS(report, needle);
    if (line > 0) {
        char where[64];
        snprintf(where, sizeof where, "self_bugs.cu:%d", line);
        CHECK_CONTAINS(report, where);
    }
}

static void check_reports(void) {
    const char *orders[] = {"forward", "reverse", "random"};
    int *out;
    float *fout;
    cudaMalloc(&out, 256 * sizeof(int));
    cudaMalloc(&fout, 64 * sizeof(float));
    for (const char *order : orders) {
        cuemu_set_order(order);
        fprintf(stderr, "(order %s: the reports below are expected)\n", order);
        CUDA_LAUNCH(2, 128, 0, 0, early_return_then_barrier)(100, out);
        check_reported("early return", "divergent barrier", kDivergentLine);
        CHECK_CONTAINS(cuemu_last_report(), "exited");
        CUDA_LAUNCH(1, 64, 0, 0, two_barriers)(out);
        check_reported("two barriers", "divergent barrier", 0);
        CUDA_LAUNCH(1, 32, 0, 0, partial_warp_shuffle)(fout);
        check_reported("partial warp", "deadlock", kShuffleLine);
        CUDA_LAUNCH(1, 32, 0, 0, shuffle_outside_mask)(fout);
        check_reported("outside mask", "not in mask", 0);
        // After an aborted launch the emulator still runs correct kernels.
        CUDA_LAUNCH(2, 128, 0, 0, early_return_then_barrier)(128, out);
        CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
    }
    cudaFree(out);
    cudaFree(fout);
}

int main(void) {
    check_missing_barrier();
    check_reports();
    TEST_END();
}
