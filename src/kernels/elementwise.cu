// elementwise.cu — exact GELU forward/backward, dropout, and fp32 <-> bf16 conversion,
// for fp32 and bf16 activations (fp32 arithmetic inside).
// CPU ops it must match: ops_cpu()->gelu_forward / gelu_backward / dropout (ops.h), and
// for the conversions the f32_to_act / act_to_f32 of a bf16 backend: round to nearest
// even, as torch's .to(torch.bfloat16) (safetensors_f32_to_bf16 on the host).
//
// GELU is x·Φ(x) with Φ(x) = erfc(-x/√2)/2 (kernel_util's gelu_cdf and gelu_grad).
// Dropout follows the rng.h mapping exactly as ops_cpu does: element e (counted from the
// call's `first`, ops.h) uses word e % 4 of Philox block e / 4 of (seed, rng_stream),
// kept when its 24-bit uniform < keep_prob and then multiplied by the fp32 1/keep_prob —
// the same product as the CPU's, so fp32 results are the CPU's bit for bit.
// Every op is a body for kernel_util's elementwise_kernel: vectors of 8 bf16 or 4 fp32
// elements (conversions 4, the fp32 side's width), one 16-byte access per operand when the
// pointers allow. With first a multiple of 4 (model.c's chunks start at a token, first =
// t·C) a dropout vector covers whole Philox blocks; any first works, a vector then draws
// the blocks its elements fall in.
#include <math.h>

#include <cuda_bf16.h>

#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "mnrl/rng.h"
#include "kernel_util.cuh"

namespace {

template <class T>
struct GeluForward {
    static constexpr int kWidth = kVec<T>;
    T *out;
    const T *inp;
    bool aligned() const { return aligned16(out, inp); }
    template <int W>
    __device__ void run(size_t e) const {
        float x[W];
        load_f32(x, inp + e);
        for (int k = 0; k < W; k++) x[k] = __fmul_rn(x[k], gelu_cdf(x[k]));
        store_f32(out + e, x);
    }
};

// gelu'(x) = Φ(x) + x·φ(x). dinp may be dout: each element is read before it is written.
template <class T>
struct GeluBackward {
    static constexpr int kWidth = kVec<T>;
    T *dinp;
    const T *inp, *dout;
    bool aligned() const { return aligned16(dinp, inp, dout); }
    template <int W>
    __device__ void run(size_t e) const {
        float x[W], d[W];
        load_f32(x, inp + e);
        load_f32(d, dout + e);
        for (int k = 0; k < W; k++) d[k] = __fmul_rn(d[k], gelu_grad(x[k]));
        store_f32(dinp + e, d);
    }
};

// out may be inp; element i is element first + i of the masked tensor (kernel_util's
// DropoutMask).
template <class T>
struct Dropout {
    static constexpr int kWidth = kVec<T>;
    T *out;
    const T *inp;
    DropoutMask mask;
    bool aligned() const { return aligned16(out, inp); }
    template <int W>
    __device__ void run(size_t i) const {
        float x[W];
        load_f32(x, inp + i);
        mask.apply(x, i);
        store_f32(out + i, x);
    }
};

template <class D, class S>
struct Convert {
    static constexpr int kWidth = kVec<D> < kVec<S> ? kVec<D> : kVec<S>;
    D *dst;
    const S *src;
    bool aligned() const { return aligned16(dst, src); }
    template <int W>
    __device__ void run(size_t e) const {
        float x[W];
        load_f32(x, src + e);
        store_f32(dst + e, x);
    }
};

template <class T>
int gelu_forward(T *out, const T *inp, size_t n, cudaStream_t stream, MnrlError *err) {
    return launch_elementwise(GeluForward<T>{out, inp}, n, stream, err);
}

template <class T>
int gelu_backward(T *dinp, const T *inp, const T *dout, size_t n, cudaStream_t stream, MnrlError *err) {
    return launch_elementwise(GeluBackward<T>{dinp, inp, dout}, n, stream, err);
}

// keep_prob = 1 is the identity and draws no numbers (ops.h): a copy unless in place.
template <class T>
int dropout(const char *what, T *out, const T *inp, size_t n, float keep_prob, uint64_t seed,
            uint64_t rng_stream, uint64_t first, cudaStream_t stream, MnrlError *err) {
    if (check_keep_prob(what, keep_prob, err) != 0) return -1;
    if (n == 0) return 0;
    if (keep_prob == 1.0f) {
        if (out != inp) CUDA_CHECK(cudaMemcpyAsync(out, inp, n * sizeof(T), cudaMemcpyDeviceToDevice, stream), err);
        return 0;
    }
    return launch_elementwise(Dropout<T>{out, inp, dropout_mask(keep_prob, seed, rng_stream, first)}, n, stream,
                              err);
}

template <class D, class S>
int convert(D *dst, const S *src, size_t n, cudaStream_t stream, MnrlError *err) {
    return launch_elementwise(Convert<D, S>{dst, src}, n, stream, err);
}

}  // namespace

extern "C" int mnrl_cuda_gelu_forward_f32(float *out, const float *inp, size_t n, cudaStream_t stream,
                                          MnrlError *err) {
    return gelu_forward(out, inp, n, stream, err);
}

extern "C" int mnrl_cuda_gelu_forward_bf16(mnrl_bf16 *out, const mnrl_bf16 *inp, size_t n, cudaStream_t stream,
                                           MnrlError *err) {
    return gelu_forward(out, inp, n, stream, err);
}

extern "C" int mnrl_cuda_gelu_backward_f32(float *dinp, const float *inp, const float *dout, size_t n,
                                           cudaStream_t stream, MnrlError *err) {
    return gelu_backward(dinp, inp, dout, n, stream, err);
}

extern "C" int mnrl_cuda_gelu_backward_bf16(mnrl_bf16 *dinp, const mnrl_bf16 *inp, const mnrl_bf16 *dout,
                                            size_t n, cudaStream_t stream, MnrlError *err) {
    return gelu_backward(dinp, inp, dout, n, stream, err);
}

extern "C" int mnrl_cuda_dropout_f32(float *out, const float *inp, size_t n, float keep_prob, uint64_t seed,
                                     uint64_t rng_stream, uint64_t first, cudaStream_t stream, MnrlError *err) {
    return dropout("dropout_f32", out, inp, n, keep_prob, seed, rng_stream, first, stream, err);
}

extern "C" int mnrl_cuda_dropout_bf16(mnrl_bf16 *out, const mnrl_bf16 *inp, size_t n, float keep_prob,
                                      uint64_t seed, uint64_t rng_stream, uint64_t first, cudaStream_t stream,
                                      MnrlError *err) {
    return dropout("dropout_bf16", out, inp, n, keep_prob, seed, rng_stream, first, stream, err);
}

extern "C" int mnrl_cuda_f32_to_bf16(mnrl_bf16 *dst, const float *src, size_t n, cudaStream_t stream,
                                     MnrlError *err) {
    return convert(dst, src, n, stream, err);
}

extern "C" int mnrl_cuda_bf16_to_f32(float *dst, const mnrl_bf16 *src, size_t n, cudaStream_t stream,
                                     MnrlError *err) {
    return convert(dst, src, n, stream, err);
}
