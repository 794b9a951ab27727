// mma.h — nvcuda::wmma for the CPU emulation (cuemu.h). Emulated .cu files include <mma.h>
// as under nvcc; this header shadows the toolkit's, which defines nothing without nvcc
// (its contents sit under `#if defined(__cplusplus) && defined(__CUDACC__)`): the
// emulation build puts this folder on the include path ahead of the toolkit's.
//
// What it provides: the 16x16x16 shape with bf16 operands and fp32 accumulators,
//   fragment<matrix_a | matrix_b, 16, 16, 16, __nv_bfloat16, row_major | col_major>,
//   fragment<accumulator, 16, 16, 16, float>,
//   fill_fragment, load_matrix_sync (operands; accumulators with mem_row_major or
//   mem_col_major), mma_sync (every layout pair), store_matrix_sync (accumulators),
//   frag.num_elements and frag.x[i] (8 elements per lane).
// Any other shape or type is a compile error naming what is supported.
//
// Semantics, as CUDA documents them:
//  - load/store/mma are warp-collective: all 32 lanes of the warp call them from the same
//    call site with the same arguments (cuemu::warp_apply). A lane that does not arrive is
//    reported like a divergent __shfl_sync, lanes at different call sites or with different
//    pointers, strides or layouts are reported, and so are a pointer that is not 32-byte
//    aligned or a stride (ldm, in elements) that is not a multiple of 16 bytes.
//  - mma_sync computes D = A·B + C in fp32: the products of bf16 values are exact in fp32,
//    each sum D_rc = C_rc + A_r0·B_0c + ... + A_r15·B_15c is added in k order with fp32
//    rounding (the hardware's order and rounding are unspecified; kernels need tolerances
//    for that). D may be C.
//  - Which lane holds which element of a fragment is unspecified by CUDA. The emulation's
//    mapping is deliberately not an obvious one: element (r, c) of a 16x16 fragment sits in
//    slot s = (16r + c)·mul + add mod 256, lane s % 32, x[s / 32], with constants that
//    differ between matrix_a, matrix_b, the accumulator and the two layouts. So code that
//    assumes a mapping (reads a row out of x[], or reuses an accumulator's x[] as an
//    operand) computes wrong values here. Element-wise operations that treat every element
//    alike (scaling, conversion, fill) are what x[i] is for.
#ifndef CUEMU_MMA_H
#define CUEMU_MMA_H

#ifndef CUEMU
#error "tests/emu/mma.h is the CPU emulation's nvcuda::wmma; nvcc uses the toolkit's mma.h"
#endif

#include <stdint.h>

#include <cuda_bf16.h>

#include <type_traits>

namespace nvcuda {
namespace wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;

enum layout_t { mem_row_major, mem_col_major };

}  // namespace wmma
}  // namespace nvcuda

namespace cuemu {
namespace wmma {

using nvcuda::wmma::accumulator;
using nvcuda::wmma::col_major;
using nvcuda::wmma::matrix_a;
using nvcuda::wmma::matrix_b;
using nvcuda::wmma::row_major;

const int kDim = 16;          // m = n = k
const int kPerLane = 8;       // elements of a fragment per lane: 256 / 32
const int kFragElements = 256;

// The element type and lane mapping of each supported fragment (see the header comment).
template <class Use, class T, class Layout>
struct Traits {
    static const bool supported = false;
};
template <int MUL, int ADD>
struct Mapping {
    static const bool supported = true;
    // Slot (lane + 32·i) of element (r, c).
    static int slot(int r, int c) { return ((r * kDim + c) * MUL + ADD) & (kFragElements - 1); }
};
template <>
struct Traits<matrix_a, __nv_bfloat16, row_major> : Mapping<37, 101> {};
template <>
struct Traits<matrix_a, __nv_bfloat16, col_major> : Mapping<83, 7> {};
template <>
struct Traits<matrix_b, __nv_bfloat16, row_major> : Mapping<149, 58> {};
template <>
struct Traits<matrix_b, __nv_bfloat16, col_major> : Mapping<213, 190> {};
template <>
struct Traits<accumulator, float, void> : Mapping<171, 29> {};

template <class T>
struct Identity {
    typedef T type;
};

inline float as_float(float x) { return x; }
inline float as_float(__nv_bfloat16 x) { return __bfloat162float(x); }
// What each lane passes to a collective: its fragments and the memory arguments, which must
// be the same in every lane.
struct LaneCall {
    void *frag;           // the fragment loaded, stored or (mma_sync) written: D
    const void *a, *b, *c;  // mma_sync's operands
    const void *ptr;
    unsigned ldm;
    int col_major;  // element (r, c) at ptr[c·ldm + r] instead of ptr[r·ldm + c]
};

// The same arguments in every lane, a 32-byte aligned pointer and a stride of whole 16-byte
// units, as the CUDA programming guide requires of load_matrix_sync / store_matrix_sync.
inline void check_memory_call(void *const lanes[32], size_t elem_bytes, const char *what, const char *file,
                              int line) {
    const LaneCall *first = static_cast<const LaneCall *>(lanes[0]);
    for (int lane = 1; lane < 32; lane++) {
        const LaneCall *c = static_cast<const LaneCall *>(lanes[lane]);
        if (c->ptr != first->ptr || c->ldm != first->ldm || c->col_major != first->col_major)
            fail("cuemu: %s at %s:%d: the lanes of a warp pass different arguments (lane 0: %p, ldm %u, %s; "
                 "lane %d: %p, ldm %u, %s); every lane must pass the same",
                 what, file, line, first->ptr, first->ldm, first->col_major ? "col-major" : "row-major", lane,
                 c->ptr, c->ldm, c->col_major ? "col-major" : "row-major");
    }
    if (reinterpret_cast<uintptr_t>(first->ptr) % 32 != 0)
        fail("cuemu: %s at %s:%d: pointer %p is not 32-byte (256-bit) aligned", what, file, line, first->ptr);
    if (first->ldm * elem_bytes % 16 != 0)
        fail("cuemu: %s at %s:%d: ldm %u elements of %zu bytes is not a multiple of 16 bytes", what, file, line,
             first->ldm, elem_bytes);
}

inline size_t offset(const LaneCall &c, int r, int col) {
    return c.col_major ? (size_t)col * c.ldm + r : (size_t)r * c.ldm + col;
}

template <class Frag>
struct Ops {
    typedef typename Frag::element_type T;
    typedef Traits<typename Frag::use, T, typename Frag::layout> Map;

    static T &element(void *const lanes[32], int r, int c) {
        const int s = Map::slot(r, c);
        return static_cast<Frag *>(static_cast<LaneCall *>(lanes[s % 32])->frag)->x[s / 32];
    }
    // The whole matrix of the lanes' fragments `which` (LaneCall::a, b or c) as floats.
    static void gather(void *const lanes[32], const void *LaneCall::*which, float (&m)[kDim][kDim]) {
        for (int r = 0; r < kDim; r++)
            for (int c = 0; c < kDim; c++) {
                const int s = Map::slot(r, c);
                const LaneCall *call = static_cast<const LaneCall *>(lanes[s % 32]);
                m[r][c] = as_float(static_cast<const Frag *>(call->*which)->x[s / 32]);
            }
    }

    static void load(void *const lanes[32], const char *what, const char *file, int line) {
        check_memory_call(lanes, sizeof(T), what, file, line);
        const LaneCall &c = *static_cast<const LaneCall *>(lanes[0]);
        const T *src = static_cast<const T *>(c.ptr);
        for (int r = 0; r < kDim; r++)
            for (int col = 0; col < kDim; col++) element(lanes, r, col) = src[offset(c, r, col)];
    }

    static void store(void *const lanes[32], const char *what, const char *file, int line) {
        check_memory_call(lanes, sizeof(T), what, file, line);
        const LaneCall &c = *static_cast<const LaneCall *>(lanes[0]);
        T *dst = static_cast<T *>(const_cast<void *>(c.ptr));
        for (int r = 0; r < kDim; r++)
            for (int col = 0; col < kDim; col++) dst[offset(c, r, col)] = element(lanes, r, col);
    }
};

// D = A·B + C for the lanes' fragments (D may be C: the operands are gathered first).
template <class FragA, class FragB, class FragC>
void mma(void *const lanes[32], const char *, const char *, int) {
    float a[kDim][kDim], b[kDim][kDim], d[kDim][kDim];
    Ops<FragA>::gather(lanes, &LaneCall::a, a);
    Ops<FragB>::gather(lanes, &LaneCall::b, b);
    Ops<FragC>::gather(lanes, &LaneCall::c, d);
    for (int r = 0; r < kDim; r++)
        for (int k = 0; k < kDim; k++)  // d[r][c] += a[r][k]·b[k][c] in k order for every c
            for (int c = 0; c < kDim; c++) d[r][c] += a[r][k] * b[k][c];
    for (int r = 0; r < kDim; r++)
        for (int c = 0; c < kDim; c++) Ops<FragC>::element(lanes, r, c) = d[r][c];
}

template <class Use, class T, class Layout>
struct FragBase {
    static_assert(Traits<Use, T, Layout>::supported,
                  "cuemu emulates wmma fragments matrix_a/matrix_b of __nv_bfloat16 (row_major or col_major) "
                  "and accumulator of float, shape 16x16x16");
    typedef Use use;
    typedef Layout layout;
    typedef T element_type;
    typedef T storage_element_type;
    enum { num_elements = kPerLane, num_storage_elements = kPerLane };
    T x[kPerLane];
};

}  // namespace wmma
}  // namespace cuemu

namespace nvcuda {
namespace wmma {

template <typename Use, int m, int n, int k, typename T, typename Layout = void>
class fragment : public ::cuemu::wmma::FragBase<Use, T, Layout> {
    static_assert(m == 16 && n == 16 && k == 16, "cuemu emulates the wmma shape 16x16x16 only");
};

template <typename Use, int m, int n, int k, typename T, typename Layout>
inline void fill_fragment(fragment<Use, m, n, k, T, Layout> &f, const typename ::cuemu::wmma::Identity<T>::type &v) {
    for (int i = 0; i < f.num_elements; i++) f.x[i] = v;
}

template <typename Use, typename Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout> &f, const __nv_bfloat16 *p,
                             unsigned ldm, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    static_assert(!std::is_same<Use, accumulator>::value, "accumulators take a layout_t");
    ::cuemu::wmma::LaneCall call = {&f, nullptr, nullptr, nullptr, p, ldm, std::is_same<Layout, col_major>::value};
    ::cuemu::warp_apply(::cuemu::wmma::Ops<fragment<Use, 16, 16, 16, __nv_bfloat16, Layout>>::load, &call,
                        "wmma::load_matrix_sync", file, line);
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ldm,
                             layout_t layout, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    ::cuemu::wmma::LaneCall call = {&f, nullptr, nullptr, nullptr, p, ldm, layout == mem_col_major};
    ::cuemu::warp_apply(::cuemu::wmma::Ops<fragment<accumulator, 16, 16, 16, float>>::load, &call,
                        "wmma::load_matrix_sync", file, line);
}

inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm,
                              layout_t layout, const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
    ::cuemu::wmma::LaneCall call = {const_cast<fragment<accumulator, 16, 16, 16, float> *>(&f), nullptr, nullptr,
                                      nullptr, p, ldm, layout == mem_col_major};
    ::cuemu::warp_apply(::cuemu::wmma::Ops<fragment<accumulator, 16, 16, 16, float>>::store, &call,
                        "wmma::store_matrix_sync", file, line);
}

template <typename LayoutA, typename LayoutB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c, const char *file = __builtin_FILE(),
                     int line = __builtin_LINE()) {
    typedef fragment<accumulator, 16, 16, 16, float> Acc;
    ::cuemu::wmma::LaneCall call = {&d, &a, &b, &c, nullptr, 0, 0};
    ::cuemu::warp_apply(::cuemu::wmma::mma<fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA>,
                                           fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB>, Acc>,
                        &call, "wmma::mma_sync", file, line);
}

}  // namespace wmma
}  // namespace nvcuda

#endif
