// self_wmma.cu — cuemu self-test of nvcuda::wmma (tests/emu/mma.h): bf16 16x16x16 fragments
// with fp32 accumulators, against plain host loops.
//  - one 16x16x16 product D = A·B + C for every combination of A and B layouts (row/col
//    major), C loaded and D stored row- or column-major, random bf16 inputs: bit for bit
//    the host's fp32 sums in k order (the emulation's documented arithmetic);
//  - a multi-tile GEMM (48x32 output, k = 64; a warp per 16x16 tile, 4 warps a block, the
//    accumulator chained over the k tiles): bit for bit the host's sequential fp32 sums;
//  - element-wise operations on accumulator fragments through x[] / num_elements;
//  - the lane mapping is not the obvious one: reusing an accumulator's x[] as a matrix_a
//    fragment does not give the accumulator's matrix back;
//  - misuse is reported, not silently run: a lane that skips mma_sync (deadlock, with the
//    call site), lanes passing different pointers, a misaligned pointer, an ldm that is not
//    a multiple of 16 bytes, lanes at different call sites, a warp of 16 threads.
// The checks set every thread order themselves, so each ctest order runs them all.
#include <mma.h>

#include <vector>

#include "mnrl/cuda_launch.h"
#include "test.h"

using namespace nvcuda;

static const char *const kOrders[] = {"forward", "reverse", "random"};

static float bf16_value(uint64_t *rng) {  // a random value in [-4, 4) that bf16 holds exactly
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    return __bfloat162float(__float2bfloat16((float)(*rng >> 40) / (float)(1 << 21) - 4.0f));
}

static __nv_bfloat16 *device_bf16(const std::vector<float> &x) {
    std::vector<__nv_bfloat16> bits(x.size());
    for (size_t i = 0; i < x.size(); i++) bits[i] = __float2bfloat16(x[i]);
    __nv_bfloat16 *dev;
    cudaMalloc(&dev, x.size() * sizeof(__nv_bfloat16));
    cudaMemcpy(dev, bits.data(), x.size() * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice);
    return dev;
}

static float *device_f32(const std::vector<float> &x) {
    float *dev;
    cudaMalloc(&dev, x.size() * sizeof(float));
    cudaMemcpy(dev, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice);
    return dev;
}

static std::vector<float> host_f32(const float *dev, size_t n) {
    std::vector<float> x(n);
    cudaMemcpy(x.data(), dev, n * sizeof(float), cudaMemcpyDeviceToHost);
    return x;
}

// Element (r, c) of a 16x16 matrix stored with stride 24 (a padded tile), row- or column-major.
static const int kLd = 24;
static size_t at(bool col_major, int r, int c) { return col_major ? (size_t)c * kLd + r : (size_t)r * kLd + c; }

template <class LayoutA, class LayoutB>
__global__ void one_product(float *d, const __nv_bfloat16 *a, const __nv_bfloat16 *b, const float *c, int c_col,
                            int d_col, float alpha) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(fa, a, kLd);
    wmma::load_matrix_sync(fb, b, kLd);
    wmma::load_matrix_sync(acc, c, kLd, c_col ? wmma::mem_col_major : wmma::mem_row_major);
    wmma::mma_sync(acc, fa, fb, acc);
    for (int i = 0; i < acc.num_elements; i++) acc.x[i] = acc.x[i] * alpha - 1.0f;  // element-wise
    wmma::store_matrix_sync(d, acc, kLd, d_col ? wmma::mem_col_major : wmma::mem_row_major);
}

template <class LayoutA, class LayoutB>
static void check_one_product(uint64_t *rng) {
    const bool a_col = std::is_same<LayoutA, wmma::col_major>::value;
    const bool b_col = std::is_same<LayoutB, wmma::col_major>::value;
    const float alpha = 0.75f;
    for (int c_col = 0; c_col < 2; c_col++)
        for (int d_col = 0; d_col < 2; d_col++) {
            std::vector<float> a(16 * kLd), b(16 * kLd), c(16 * kLd), want(16 * kLd, -7.0f);
            for (auto *m : {&a, &b, &c})
                for (float &x : *m) x = bf16_value(rng);
            for (int r = 0; r < 16; r++)
                for (int col = 0; col < 16; col++) {
                    float acc = c[at(c_col, r, col)];
                    for (int k = 0; k < 16; k++) acc += a[at(a_col, r, k)] * b[at(b_col, k, col)];
                    want[at(d_col, r, col)] = acc * alpha - 1.0f;
                }
            __nv_bfloat16 *da = device_bf16(a), *db = device_bf16(b);
            float *dc = device_f32(c), *dd = device_f32(std::vector<float>(16 * kLd, -7.0f));
            for (const char *order : kOrders) {
                cuemu_set_order(order);
                CUDA_LAUNCH(1, 32, 0, 0, one_product<LayoutA, LayoutB>)(dd, da, db, dc, c_col, d_col, alpha);
                CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
                std::vector<float> got = host_f32(dd, want.size());
                int wrong = 0;
                for (size_t i = 0; i < want.size(); i++)  // the padding must be untouched too
                    wrong += memcmp(&got[i], &want[i], 4) != 0;
                CHECK_MSG(wrong == 0, "A %s, B %s, C %s, D %s (%s): %d of %zu values differ", a_col ? "col" : "row",
                          b_col ? "col" : "row", c_col ? "col" : "row", d_col ? "col" : "row", order, wrong,
                          want.size());
            }
            cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dd);
        }
}

// C [M, N] = A [M, K] · B [K, N], all row-major: warp w of block b computes output tile
// (b·4 + w) of the (M/16)·(N/16) tiles, chaining its accumulator over the K/16 k tiles.
__global__ void gemm(float *c, const __nv_bfloat16 *a, const __nv_bfloat16 *b, int M, int N, int K) {
    const int tile = blockIdx.x * 4 + threadIdx.x / 32, tiles_n = N / 16;
    if (tile >= (M / 16) * tiles_n) return;  // whole warps leave together
    const int r0 = tile / tiles_n * 16, c0 = tile % tiles_n * 16;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k0 = 0; k0 < K; k0 += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, a + (size_t)r0 * K + k0, K);
        wmma::load_matrix_sync(fb, b + (size_t)k0 * N + c0, N);
        wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(c + (size_t)r0 * N + c0, acc, N, wmma::mem_row_major);
}

static void check_gemm(uint64_t *rng) {
    const int M = 48, N = 32, K = 64;
    std::vector<float> a((size_t)M * K), b((size_t)K * N), want((size_t)M * N);
    for (float &x : a) x = bf16_value(rng);
    for (float &x : b) x = bf16_value(rng);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++) acc += a[(size_t)i * K + k] * b[(size_t)k * N + j];
            want[(size_t)i * N + j] = acc;
        }
    __nv_bfloat16 *da = device_bf16(a), *db = device_bf16(b);
    float *dc;
    cudaMalloc(&dc, want.size() * sizeof(float));
    for (const char *order : kOrders) {
        cuemu_set_order(order);
        CUDA_LAUNCH(2, 128, 0, 0, gemm)(dc, da, db, M, N, K);  // 6 tiles: the second block's last 2 warps idle
        CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
        std::vector<float> got = host_f32(dc, want.size());
        CHECK_MSG(memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0,
                  "GEMM %dx%dx%d (%s) differs from the sequential fp32 sums", M, N, K, order);
    }
    cudaFree(da), cudaFree(db), cudaFree(dc);
}

// D = A·I, then E = D'·I with D' the accumulator's elements put into a matrix_a fragment
// through x[] (a mapping assumption CUDA does not make): E must not be A.
__global__ void reuse_accumulator_as_operand(float *e, const __nv_bfloat16 *a, const __nv_bfloat16 *identity) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa, reused;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fi;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(fa, a, 16);
    wmma::load_matrix_sync(fi, identity, 16);
    wmma::fill_fragment(acc, 0.0f);
    wmma::mma_sync(acc, fa, fi, acc);
    for (int i = 0; i < acc.num_elements; i++) reused.x[i] = __float2bfloat16(acc.x[i]);
    wmma::fill_fragment(acc, 0.0f);
    wmma::mma_sync(acc, reused, fi, acc);
    wmma::store_matrix_sync(e, acc, 16, wmma::mem_row_major);
}

static void check_mapping_is_not_assumed(uint64_t *rng) {
    std::vector<float> a(256), identity(256, 0.0f);
    for (float &x : a) x = bf16_value(rng);
    for (int i = 0; i < 16; i++) identity[i * 16 + i] = 1.0f;
    __nv_bfloat16 *da = device_bf16(a), *di = device_bf16(identity);
    float *de;
    cudaMalloc(&de, 256 * sizeof(float));
    CUDA_LAUNCH(1, 32, 0, 0, reuse_accumulator_as_operand)(de, da, di);
    CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
    std::vector<float> got = host_f32(de, 256);
    int moved = 0;
    for (int i = 0; i < 256; i++) moved += got[i] != a[i];
    printf("accumulator x[] reused as a matrix_a fragment: %d of 256 elements land elsewhere\n", moved);
    CHECK(moved > 200);
    cudaFree(da), cudaFree(di), cudaFree(de);
}

// Misuse: mode 0 lane 31 returns before mma_sync; 1 lanes pass different pointers; 2 a
// pointer 16 bytes off alignment; 3 ldm 12 (24 bytes); 4 odd and even lanes load from
// different lines; 5 none (a correct launch).
enum { kSkipLine = __LINE__ + 11, kOtherSiteLine = __LINE__ + 19 };
__global__ void misuse(float *out, const __nv_bfloat16 *a, int mode) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    const int lane = threadIdx.x % 32;
    if (mode == 0) {
        wmma::load_matrix_sync(fa, a, 16);
        wmma::load_matrix_sync(fb, a, 16);
        if (lane == 31) return;
        wmma::mma_sync(acc, fa, fb, acc);
    } else if (mode == 1) {
        wmma::load_matrix_sync(fa, a + (lane == 5 ? 256 : 0), 16);
    } else if (mode == 2) {
        wmma::load_matrix_sync(fa, a + 8, 16);
    } else if (mode == 3) {
        wmma::load_matrix_sync(fa, a, 12);
    } else if (mode == 4) {
        if (lane % 2) wmma::load_matrix_sync(fa, a, 16);
        else wmma::load_matrix_sync(fa, a, 16);
    }
    wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

static void check_reported(const char *what, const char *needle, int line) {
    cudaError_t status = cudaGetLastError();
    CHECK_MSG(status == cudaErrorLaunchFailure, "%s: status %s", what, cudaGetErrorName(status));
    CHECK_CONTAINS(cuemu_last_report(), needle);
    if (line > 0) {
        char where[64];
        snprintf(where, sizeof where, "self_wmma.cu:%d", line);
        CHECK_CONTAINS(cuemu_last_report(), where);
    }
}

static void check_misuse(void) {
    std::vector<float> zeros(512, 0.0f);
    __nv_bfloat16 *da = device_bf16(zeros);
    float *out;
    cudaMalloc(&out, 256 * sizeof(float));
    for (const char *order : kOrders) {
        cuemu_set_order(order);
        fprintf(stderr, "(order %s: the reports below are expected)\n", order);
        CUDA_LAUNCH(1, 64, 0, 0, misuse)(out, da, 0);
        check_reported("lane 31 skips mma_sync", "deadlock", kSkipLine);
        CHECK_CONTAINS(cuemu_last_report(), "wmma::mma_sync");
        CUDA_LAUNCH(1, 32, 0, 0, misuse)(out, da, 1);
        check_reported("different pointers", "different arguments", 0);
        CUDA_LAUNCH(1, 32, 0, 0, misuse)(out, da, 2);
        check_reported("misaligned pointer", "not 32-byte", 0);
        CUDA_LAUNCH(1, 32, 0, 0, misuse)(out, da, 3);
        check_reported("ldm 12", "not a multiple of 16 bytes", 0);
        CUDA_LAUNCH(1, 32, 0, 0, misuse)(out, da, 4);
        check_reported("two call sites", "different collectives", kOtherSiteLine);
        CUDA_LAUNCH(1, 16, 0, 0, misuse)(out, da, 1);
        check_reported("a warp of 16 threads", "beyond the block's last thread", 0);
        // After the aborted launches a correct one still runs.
        CUDA_LAUNCH(1, 32, 0, 0, misuse)(out, da, 5);
        CHECK_EQ_INT(cudaGetLastError(), cudaSuccess);
    }
    cudaFree(da), cudaFree(out);
}

int main(void) {
    uint64_t rng = 11;
    check_one_product<wmma::row_major, wmma::row_major>(&rng);
    check_one_product<wmma::row_major, wmma::col_major>(&rng);
    check_one_product<wmma::col_major, wmma::row_major>(&rng);
    check_one_product<wmma::col_major, wmma::col_major>(&rng);
    check_gemm(&rng);
    check_mapping_is_not_assumed(&rng);
    check_misuse();
    TEST_END();
}
