// kernel_util.cuh — device helpers shared by the kernel files (included after
// mnrl/cuda_launch.h):
//  - to_f32 / from_f32 / store: one spelling of "read an act element as fp32" and "round
//    fp32 to the act dtype" for the fp32 and bf16 template instances (round to nearest
//    even, as torch's .to(torch.bfloat16));
//  - Pack / load_f32 / store_f32: V consecutive elements moved as one access; with
//    V = kVec<T> that is one 16-byte load or store (8 bf16 or 4 fp32), the widest a thread
//    issues. The launchers pick V = kVec<T> only when aligned16() holds for every pointer
//    and the row length is a multiple of V, and V = 1 otherwise (same arithmetic);
//  - elementwise_kernel / launch_elementwise: a grid-stride loop over size_t n (any n fits
//    the capped grid) in vectors of V = Body::kWidth elements when body.aligned(), else 1;
//    the n % V elements after the last whole vector go one per thread;
//  - warp_sum: a butterfly sum over the 32 lanes of a warp; every lane ends with the same
//    bits (each level adds the same two values in either order);
//  - add_partial_sums: the deterministic second stage of a column reduction whose first
//    stage left one fp32 partial per block and column in a workspace:
//    acc[c] += Σ_k partials[k][c], summed in fp64 in a fixed order (slice s of a block
//    adds parts s, s + kPartialSlices, ...; the slices are then added in slice order), so
//    the result is the same for any scheduling, without float atomics. One launch can
//    serve up to three outputs of C columns each (LayerNorm's dweight and dbias, and the
//    bias gradient of the residual branch);
//  - DropoutMask: the multipliers of ops.h's dropout masks on the device, exactly as the
//    CPU's (rng.h): element e uses word e % 4 of Philox block e / 4 of (seed, stream);
//    check_keep_prob, the launchers' one check of a keep_prob;
//  - gelu_cdf / gelu_grad: the exact GELU's Φ and derivative, one definition for the
//    elementwise kernels and the fused GELU-bias backward of matmul.cu; the roundings are
//    explicit (__fmul_rn, __fmaf_rn), so every kernel that inlines them gets the same bits;
//  - Carve / carve_size / carve_max: regions of the block's dynamic shared memory, from a
//    base rounded up to 128 bytes, each region's size a multiple of 128 (wmma pointers
//    must be 32-byte aligned; mnrl_dyn_smem is only 16).
#ifndef MNRL_KERNEL_UTIL_CUH
#define MNRL_KERNEL_UTIL_CUH

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cuda_bf16.h>

#include "mnrl/rng.h"

// `#pragma unroll` for nvcc, where a loop over a register array must be unrolled to keep
// the array in registers; the emulation (cuemu.h, g++) has no such pragma.
#ifdef CUEMU
#define MNRL_UNROLL
#else
#define MNRL_UNROLL _Pragma("unroll")
#endif

namespace {

// A region's size rounded up to 128 bytes, so that the region Carve takes after it starts
// 128-byte aligned too.
__host__ __device__ constexpr size_t carve_size(size_t bytes) { return (bytes + 127) / 128 * 128; }

// The larger of two region sizes: a region that serves two uses in turn.
__host__ __device__ constexpr size_t carve_max(size_t a, size_t b) { return a > b ? a : b; }

// Carves the block's dynamic shared memory into regions (base rounded up to 128 bytes).
struct Carve {
    unsigned char *next;
    __device__ Carve() : next(reinterpret_cast<unsigned char *>(((uintptr_t)mnrl_dyn_smem + 127) & ~(uintptr_t)127)) {}
    template <class T>
    __device__ T *take(size_t bytes) {
        T *p = reinterpret_cast<T *>(next);
        next += bytes;
        return p;
    }
};

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <class T>
__device__ __forceinline__ void store(T *p, float x) { *p = from_f32<T>(x); }

// V consecutive elements of T, aligned to their size so that a copy is one access.
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
    T v[V];
};

template <class T>
constexpr int kVec = 16 / (int)sizeof(T);  // elements per 16-byte access: 4 fp32, 8 bf16

// The unsigned type of each access size: a Pack moves through one of these, which is what
// makes the compiler issue one wide access (a struct copy is split into its elements).
template <int BYTES>
struct Raw;
template <>
struct Raw<2> { typedef unsigned short type; };
template <>
struct Raw<4> { typedef unsigned int type; };
template <>
struct Raw<8> { typedef uint2 type; };
template <>
struct Raw<16> { typedef uint4 type; };

template <class T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const T *p) {
    typedef typename Raw<sizeof(Pack<T, V>)>::type R;
    const R raw = *reinterpret_cast<const R *>(p);
    Pack<T, V> out;
    memcpy(&out, &raw, sizeof out);
    return out;
}

template <class T, int V>
__device__ __forceinline__ void store_pack(T *p, const Pack<T, V> &x) {
    typedef typename Raw<sizeof(Pack<T, V>)>::type R;
    R raw;
    memcpy(&raw, &x, sizeof raw);
    *reinterpret_cast<R *>(p) = raw;
}

template <class T, int V>
__device__ __forceinline__ void load_f32(float (&x)[V], const Pack<T, V> &p) {
    for (int e = 0; e < V; e++) x[e] = to_f32(p.v[e]);
}

template <class T, int V>
__device__ __forceinline__ void load_f32(float (&x)[V], const T *p) {
    load_f32(x, load_pack<T, V>(p));
}

template <class T, int V>
__device__ __forceinline__ void store_f32(T *p, const float (&x)[V]) {
    Pack<T, V> out;
    for (int e = 0; e < V; e++) out.v[e] = from_f32<T>(x[e]);
    store_pack(p, out);
}

// Host side: whether every pointer allows 16-byte accesses (NULL does).
inline bool aligned16() { return true; }
template <class... P>
inline bool aligned16(const void *p, P... rest) {
    return (uintptr_t)p % 16 == 0 && aligned16(rest...);
}

const int kElementwiseThreads = 256;
const size_t kElementwiseMaxBlocks = 8192;

// A body's run<W>(e) does elements [e, e + W) (W = V, or 1 for the tail).
template <int V, class Body>
__global__ void __launch_bounds__(kElementwiseThreads) elementwise_kernel(size_t n, Body body) {
    const size_t first = (size_t)blockIdx.x * kElementwiseThreads + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * kElementwiseThreads, whole = n / V * V;
    for (size_t e = first * V; e < whole; e += stride * V) body.template run<V>(e);
    for (size_t e = whole + first; e < n; e += stride) body.template run<1>(e);
}

inline unsigned elementwise_blocks(size_t items) {
    const size_t blocks = (items + kElementwiseThreads - 1) / kElementwiseThreads;
    return (unsigned)(blocks < kElementwiseMaxBlocks ? blocks : kElementwiseMaxBlocks);
}

template <class Body>
int launch_elementwise(const Body &body, size_t n, cudaStream_t stream, MnrlError *err) {
    constexpr int V = Body::kWidth;
    if (n == 0) return 0;
    if (body.aligned())
        CUDA_LAUNCH(elementwise_blocks((n + V - 1) / V), kElementwiseThreads, 0, stream,
                    elementwise_kernel<V, Body>)(n, body);
    else
        CUDA_LAUNCH(elementwise_blocks(n), kElementwiseThreads, 0, stream, elementwise_kernel<1, Body>)(n, body);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

template <class F>
__device__ __forceinline__ F warp_sum(F x) {
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    return x;
}

const int kPartialCols = 32;    // columns per block of add_partial_sums_kernel
const int kPartialSlices = 32;  // rows of threads: independent fp64 sums over the parts

// Up to three fp32 outputs of C columns each: output o takes columns [o·C, o·C + C) of
// every partial row (row stride outputs·C); a NULL output's columns are not added.
struct ColumnSums {
    float *acc[3];
    int outputs;
};

__global__ void __launch_bounds__(kPartialCols *kPartialSlices)
    add_partial_sums_kernel(ColumnSums out, const float *partials, int parts, int C) {
    __shared__ double slice_sums[kPartialSlices][kPartialCols];
    const int cols = out.outputs * C, c = blockIdx.x * kPartialCols + threadIdx.x;
    double sum = 0.0;
    if (c < cols)
        for (int k = threadIdx.y; k < parts; k += kPartialSlices) sum += partials[(size_t)k * cols + c];
    slice_sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double total = 0.0;
        for (int s = 0; s < kPartialSlices; s++) total += slice_sums[s][threadIdx.x];
        const int o = c / C;  // selected, not indexed: an indexed parameter array goes to local memory
        float *acc = o == 0 ? out.acc[0] : o == 1 ? out.acc[1] : out.acc[2];
        if (acc) acc[c % C] += (float)total;
    }
}

// Enqueues out.acc[o][c] += Σ_k partials[k·outputs·C + o·C + c]; fp64 sums in the fixed
// order above.
inline int add_partial_sums(ColumnSums out, const float *partials, int parts, int C, cudaStream_t stream,
                            MnrlError *err) {
    const unsigned blocks = (unsigned)((out.outputs * C + kPartialCols - 1) / kPartialCols);
    CUDA_LAUNCH(blocks, dim3(kPartialCols, kPartialSlices), 0, stream, add_partial_sums_kernel)(out, partials,
                                                                                              parts, C);
    CUDA_CHECK(cudaGetLastError(), err);
    return 0;
}

// A dropout mask of ops.h on the device. An element is kept when its Philox word's top 24
// bits are < keep_below = ceil(keep_prob·2^24) (the CPU's mnrl_rng_uniform(word) <
// keep_prob, exact, without an int-to-float conversion per element), and then multiplied
// by the fp32 1/keep_prob: the CPU's product, so fp32 results are the CPU's bit for bit.
struct DropoutMask {
    uint32_t keep_below;
    float keep_scale;
    uint64_t seed, stream, first;

    // x[k] *= the multiplier of element first + i + k of the masked tensor. A W-vector
    // starting at a multiple of 4 draws whole Philox blocks; any start works.
    template <int W>
    __device__ __forceinline__ void apply(float (&x)[W], uint64_t i) const {
        MnrlPhilox4 words;
        for (int k = 0; k < W; k++) {
            const uint64_t e = first + i + k;
            if (k == 0 || e % 4 == 0) words = mnrl_rng_block(seed, stream, e / 4);
            x[k] = __fmul_rn(x[k], words.v[e % 4] >> 8 < keep_below ? keep_scale : 0.0f);
        }
    }
};

// Φ(x) = erfc(-x/√2)/2: 1 + erf(x/√2) would cancel for negative x (x = -3 leaves 0.0027
// of 2), erfc keeps full relative precision there.
__device__ __forceinline__ float gelu_cdf(float x) {
    return __fmul_rn(0.5f, erfcf(__fmul_rn(-x, 0.70710678118654752440f)));
}

// gelu'(x) = Φ(x) + x·φ(x), φ(x) = e^(-x²/2)/√(2π).
__device__ __forceinline__ float gelu_grad(float x) {
    const float pdf = __fmul_rn(0.39894228040143267794f, expf(__fmul_rn(__fmul_rn(-0.5f, x), x)));
    return __fmaf_rn(x, pdf, gelu_cdf(x));
}

// The launchers' check of a dropout's keep_prob (ops.h: in (0, 1], 1 = no dropout).
inline int check_keep_prob(const char *what, float keep_prob, MnrlError *err) {
    if (!(keep_prob > 0.0f && keep_prob <= 1.0f))
        return mnrl_fail(err, "%s:%d: %s: keep_prob %g is outside (0, 1]; this is a bug in the caller", __FILE__,
                         __LINE__, what, (double)keep_prob);
    return 0;
}

// keep_prob must be in (0, 1]; the caller skips apply() when it is 1.
inline DropoutMask dropout_mask(float keep_prob, uint64_t seed, uint64_t stream, uint64_t first) {
    return DropoutMask{(uint32_t)ceilf(keep_prob * 16777216.0f), 1.0f / keep_prob, seed, stream, first};
}

}  // namespace

#endif
