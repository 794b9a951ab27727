// cuemu.h — runs the project's real .cu kernels on the CPU, for machines without a GPU.
// Force-included into every emulated translation unit:
//   g++ -std=c++17 -I tests/emu -isystem /usr/local/cuda/include -include cuemu.h -x c++ f.cu
// Each CUDA thread is a fiber (cuemu.cpp switches between them with a few lines of
// assembly); the blocks of a grid run one after another on the calling OS thread. So
// __shared__ is plain static storage, atomics are plain read-modify-writes, and a
// barrier or warp collective is a point where a fiber waits until its peers arrive.
// The toolkit's own <cuda_runtime.h> and <cuda_bf16.h> supply the types (dim3,
// cudaError_t, __nv_bfloat16 and its host arithmetic); cuemu.cpp implements the runtime
// API calls as host memory operations. Design notes: ../shared/notes/cuda-emulation.md.
// nvcuda::wmma comes from this folder's mma.h (bf16 16x16x16 fragments, deliberately
// permuted lane mapping). Not emulated: inline PTX, cp.async, mma.sync/wgmma, TMA,
// cooperative groups, CUB, grid sync, spin-waits on other threads (fibers are never
// preempted). __CUDA_ARCH__ stays
// undefined, so architecture-specific paths compile out and their portable path runs.
#ifndef CUEMU_H
#define CUEMU_H

#ifndef __cplusplus
#error "cuemu.h emulates CUDA C++: compile the .cu file as C++ (-x c++)"
#endif

#define CUEMU 1

// Execution spaces: every function is a host function. Defined before the toolkit
// headers, which keep a definition they find. __shared__ is static (one copy, shared by
// the fibers of the running block); `extern __shared__` therefore does not compile here:
// kernels use the one project-wide dynamic buffer of mnrl/cuda_launch.h instead.
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __constant__
#define __managed__
#define __launch_bounds__(...)

#include <cuda_runtime.h>
#include <cuda_bf16.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <tuple>
#include <type_traits>

namespace cuemu {

// The running fiber's threadIdx and the running block's coordinates; the scheduler
// updates them on every switch.
extern const uint3 *current_thread_idx;
extern uint3 block_idx;
extern dim3 block_dim, grid_dim;
// The running block's dynamic shared memory: a fresh allocation of exactly the launch's
// size (so ASan catches overruns), filled with 0xFF before each block.
extern unsigned char *dynamic_smem;

// Block barriers. kind selects what the barrier returns over the predicates.
enum BarrierKind { BAR_SYNC, BAR_COUNT, BAR_AND, BAR_OR };
int block_barrier(BarrierKind kind, int predicate, const char *what, const char *file, int line);

// Warp collectives: the calling lane deposits value and waits until every lane named in
// mask arrives; returns, per kind, the value of the source lane or the ballot.
enum WarpKind { WARP_SYNC, WARP_SHFL_IDX, WARP_SHFL_UP, WARP_SHFL_DOWN, WARP_SHFL_XOR, WARP_BALLOT, WARP_APPLY };
uint64_t warp_collective(WarpKind kind, unsigned mask, uint64_t value, int param, int width,
                         const char *what, const char *file, int line);

// A warp-collective operation on what the lanes hold (nvcuda::wmma, tests/emu/mma.h): all
// 32 lanes of the warp call it from the same call site, each with its own ctx; when the
// last one arrives, op runs once with the lanes' ctx in lane order (it may read and write
// the lanes' data: they are all suspended there), then every lane continues. A lane that
// never arrives is reported like a divergent shuffle; lanes that arrive from different
// call sites are reported as meeting at different collectives.
typedef void (*WarpOp)(void *const lanes[32], const char *what, const char *file, int line);
void warp_apply(WarpOp op, void *ctx, const char *what, const char *file, int line);
// Stops the running launch with a report on stderr (cudaErrorLaunchFailure); for a
// WarpOp that finds a bug, e.g. lanes that pass different pointers.
[[noreturn]] void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

template <class T>
T warp_shuffle(WarpKind kind, unsigned mask, T var, int param, int width, const char *what,
               const char *file, int line) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "warp shuffles move at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, static_cast<const void *>(&var), sizeof(T));
    bits = warp_collective(kind, mask, bits, param, width, what, file, line);
    memcpy(static_cast<void *>(&var), &bits, sizeof(T));
    return var;
}

// Kernel launch: runs body(ctx) as every thread of every block. Returns (and records for
// cudaGetLastError) cudaSuccess, a configuration error, or cudaErrorLaunchFailure after
// a deadlock / divergent barrier / bad warp collective, which it reports on stderr.
typedef void (*KernelBody)(void *ctx);
cudaError_t launch(const void *kernel, const char *name, dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, KernelBody body, void *ctx, const char *file, int line);

// What CUDA_LAUNCH(grid, block, smem, stream, kernel) returns: calling it with the kernel's
// arguments converts them to the parameter types (as a launch does) and runs the grid.
template <class... Params>
struct Launch {
    void (*kernel)(Params...);
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    const char *name, *file;
    int line;

    // Takes the kernel's own parameter types, so arguments convert as in a call (NULL
    // for a pointer, an int for a size_t).
    void operator()(Params... args) const {
        struct Call {
            void (*kernel)(Params...);
            std::tuple<Params...> params;
        } call{kernel, std::tuple<Params...>(args...)};
        // Every thread gets its own copy of the parameters, as on the device.
        KernelBody body = [](void *ctx) {
            Call *c = static_cast<Call *>(ctx);
            std::apply(c->kernel, c->params);
        };
        launch(reinterpret_cast<const void *>(kernel), name, grid, block, smem, stream, body,
               &call, file, line);
    }
};

template <class... Params>
Launch<Params...> make_launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                              cudaStream_t stream, const char *name,
                              const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return Launch<Params...>{kernel, grid, block, smem, stream, name, file, line};
}

}  // namespace cuemu

// The runtime API's kernel-pointer overload (the toolkit declares it for nvcc only).
template <class... Params>
cudaError_t cudaFuncSetAttribute(void (*kernel)(Params...), enum cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel), attr, value);
}

// The symbol-reference overloads, likewise nvcc-only in the toolkit: __constant__ and
// __device__ variables are ordinary host variables here.
template <class T>
cudaError_t cudaMemcpyToSymbol(const T &symbol, const void *src, size_t count, size_t offset = 0,
                               enum cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
    return cudaMemcpyToSymbol(static_cast<const void *>(&symbol), src, count, offset, kind);
}
template <class T>
cudaError_t cudaMemcpyFromSymbol(void *dst, const T &symbol, size_t count, size_t offset = 0,
                                 enum cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
    return cudaMemcpyFromSymbol(dst, static_cast<const void *>(&symbol), count, offset, kind);
}

// ---- built-in variables -----------------------------------------------------------------
#define threadIdx (*::cuemu::current_thread_idx)
#define blockIdx (static_cast<const uint3 &>(::cuemu::block_idx))
#define blockDim (static_cast<const dim3 &>(::cuemu::block_dim))
#define gridDim (static_cast<const dim3 &>(::cuemu::grid_dim))
static constexpr int warpSize = 32;

// ---- synchronisation (the call site is recorded for deadlock reports) --------------------
inline void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    ::cuemu::block_barrier(::cuemu::BAR_SYNC, 0, "__syncthreads", file, line);
}
inline int __syncthreads_count(int p, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::block_barrier(::cuemu::BAR_COUNT, p, "__syncthreads_count", file, line);
}
inline int __syncthreads_and(int p, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::block_barrier(::cuemu::BAR_AND, p, "__syncthreads_and", file, line);
}
inline int __syncthreads_or(int p, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::block_barrier(::cuemu::BAR_OR, p, "__syncthreads_or", file, line);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char *file = __builtin_FILE(),
                       int line = __builtin_LINE()) {
    ::cuemu::warp_collective(::cuemu::WARP_SYNC, mask, 0, 0, 32, "__syncwarp", file, line);
}
template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32,
              const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::warp_shuffle(::cuemu::WARP_SHFL_IDX, mask, var, src_lane, width, "__shfl_sync", file, line);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32,
                 const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::warp_shuffle(::cuemu::WARP_SHFL_UP, mask, var, (int)delta, width, "__shfl_up_sync", file, line);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32,
                   const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::warp_shuffle(::cuemu::WARP_SHFL_DOWN, mask, var, (int)delta, width, "__shfl_down_sync", file, line);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32,
                  const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::warp_shuffle(::cuemu::WARP_SHFL_XOR, mask, var, lane_mask, width, "__shfl_xor_sync", file, line);
}
inline unsigned __ballot_sync(unsigned mask, int p, const char *file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
    return (unsigned)::cuemu::warp_collective(::cuemu::WARP_BALLOT, mask, p != 0, 0, 32, "__ballot_sync", file, line);
}
inline int __any_sync(unsigned mask, int p, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::warp_collective(::cuemu::WARP_BALLOT, mask, p != 0, 0, 32, "__any_sync", file, line) != 0;
}
inline int __all_sync(unsigned mask, int p, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    return ::cuemu::warp_collective(::cuemu::WARP_BALLOT, mask, p != 0, 0, 32, "__all_sync", file, line) == mask;
}
// One OS thread runs every fiber, so memory is always coherent.
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---- atomics: fibers are never preempted, so a plain read-modify-write is atomic --------
#define CUEMU_ATOMIC(T, name, update)   \
    inline T name(T *address, T val) { \
        T old = *address;              \
        *address = (update);           \
        return old;                    \
    }
// Integer addition wraps as on the device (done in unsigned arithmetic: no UB).
CUEMU_ATOMIC(int, atomicAdd, (int)((unsigned)old + (unsigned)val))
CUEMU_ATOMIC(unsigned, atomicAdd, old + val)
CUEMU_ATOMIC(unsigned long long, atomicAdd, old + val)
CUEMU_ATOMIC(float, atomicAdd, old + val)
CUEMU_ATOMIC(double, atomicAdd, old + val)
CUEMU_ATOMIC(__nv_bfloat16, atomicAdd, __float2bfloat16(__bfloat162float(old) + __bfloat162float(val)))
CUEMU_ATOMIC(int, atomicSub, (int)((unsigned)old - (unsigned)val))
CUEMU_ATOMIC(unsigned, atomicSub, old - val)
CUEMU_ATOMIC(int, atomicExch, val)
CUEMU_ATOMIC(unsigned, atomicExch, val)
CUEMU_ATOMIC(unsigned long long, atomicExch, val)
CUEMU_ATOMIC(float, atomicExch, val)
CUEMU_ATOMIC(int, atomicMax, old > val ? old : val)
CUEMU_ATOMIC(unsigned, atomicMax, old > val ? old : val)
CUEMU_ATOMIC(long long, atomicMax, old > val ? old : val)
CUEMU_ATOMIC(unsigned long long, atomicMax, old > val ? old : val)
CUEMU_ATOMIC(int, atomicMin, old < val ? old : val)
CUEMU_ATOMIC(unsigned, atomicMin, old < val ? old : val)
CUEMU_ATOMIC(long long, atomicMin, old < val ? old : val)
CUEMU_ATOMIC(unsigned long long, atomicMin, old < val ? old : val)
CUEMU_ATOMIC(int, atomicAnd, old & val)
CUEMU_ATOMIC(unsigned, atomicAnd, old & val)
CUEMU_ATOMIC(int, atomicOr, old | val)
CUEMU_ATOMIC(unsigned, atomicOr, old | val)
CUEMU_ATOMIC(int, atomicXor, old ^ val)
CUEMU_ATOMIC(unsigned, atomicXor, old ^ val)
#undef CUEMU_ATOMIC
template <class T>
T atomicCAS(T *address, T compare, T val) {
    static_assert(std::is_integral<T>::value, "atomicCAS takes integers");
    T old = *address;
    if (old == compare) *address = val;
    return old;
}

// ---- fast math and bit intrinsics: the exact function stands in for the approximation ----
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float_as_int(float x) { int i; memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int i) { float x; memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; memcpy(&x, &i, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
template <class T>
T __ldg(const T *p) { return *p; }
// CUDA's integer and floating min/max overloads.
#define CUEMU_MINMAX(T)                                    \
    inline T min(T a, T b) { return a < b ? a : b; }       \
    inline T max(T a, T b) { return a > b ? a : b; }
CUEMU_MINMAX(int)
CUEMU_MINMAX(unsigned)
CUEMU_MINMAX(long long)
CUEMU_MINMAX(unsigned long long)
#undef CUEMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// ---- bf16 helpers that cuda_bf16.h declares for device code only ------------------------
// Computed in float and rounded once to bf16 (the fused multiply-add in double: the
// product of two bf16 values is exact there).
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
    return __double2bfloat16((double)__bfloat162float(a) * __bfloat162float(b) + __bfloat162float(c));
}
inline __nv_bfloat162 __hfma2(__nv_bfloat162 a, __nv_bfloat162 b, __nv_bfloat162 c) {
    return __halves2bfloat162(__hfma(__low2bfloat16(a), __low2bfloat16(b), __low2bfloat16(c)),
                              __hfma(__high2bfloat16(a), __high2bfloat16(b), __high2bfloat16(c)));
}
inline __nv_bfloat16 hexp(__nv_bfloat16 a) { return __float2bfloat16(expf(__bfloat162float(a))); }
inline __nv_bfloat16 hlog(__nv_bfloat16 a) { return __float2bfloat16(logf(__bfloat162float(a))); }
inline __nv_bfloat16 hsqrt(__nv_bfloat16 a) { return __float2bfloat16(sqrtf(__bfloat162float(a))); }
inline __nv_bfloat16 hrsqrt(__nv_bfloat16 a) { return __float2bfloat16(1.0f / sqrtf(__bfloat162float(a))); }
inline __nv_bfloat162 h2exp(__nv_bfloat162 a) { return __halves2bfloat162(hexp(__low2bfloat16(a)), hexp(__high2bfloat16(a))); }

// ---- controls for tests -----------------------------------------------------------------
extern "C" {
// Thread (and block) scheduling order: "forward", "reverse" or "random"; the environment
// variable CUEMU_ORDER sets it at start-up (CUEMU_SEED seeds "random"). Returns -1 for an
// unknown name.
int cuemu_set_order(const char *name);
// The report of the last failed launch ("" when none failed).
const char *cuemu_last_report(void);
}

#endif
