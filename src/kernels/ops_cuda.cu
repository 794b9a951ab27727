// ops_cuda.cu — the CUDA ops table (ops_cuda.h) over the launchers of kernels.h, and device
// discovery (cuda_info.h). CPU counterpart: src/host/ops_cpu.c (the reference every
// launcher is tested against). One template per op serves both activation dtypes: A is
// float ("cuda-fp32") or mnrl_bf16 ("cuda-bf16"); LAUNCHER(name) picks name_f32 or
// name_bf16 to match.
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>

#include "mnrl/cuda_info.h"
#include "mnrl/cuda_launch.h"
#include "mnrl/kernels.h"
#include "mnrl/ops_cuda.h"

extern "C" int mnrl_cuda_describe(char *out, size_t cap) {
    int runtime = 0, driver = 0, devices = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess) {
        snprintf(out, cap, "CUDA runtime %d.%d, no usable device (%s)", runtime / 1000,
                 (runtime % 1000) / 10, cudaGetErrorString(status));
        return 0;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) prop.name[0] = '\0';
    snprintf(out, cap, "CUDA runtime %d.%d, driver %d.%d, %d device(s), device 0: %s (sm_%d%d)",
             runtime / 1000, (runtime % 1000) / 10, driver / 1000, (driver % 1000) / 10,
             devices, prop.name, prop.major, prop.minor);
    return devices;
}

// ---- the sticky error ----------------------------------------------------------------------
// Table entries return void, so the first failure is kept here and every later op is
// skipped (its inputs may be garbage) until cuda_last_error hands the failure over.
static MnrlError first_error;
static int failed;
static MnrlGemmContext gemm;  // the one cuBLASLt handle and workspace (ops_cuda creates it)
static const cudaStream_t stream = 0;  // the default stream: dist.h's collectives' too

// Runs a launcher (which fills first_error when it fails) unless an op failed before.
#define RUN(call)                                     \
    do {                                              \
        if (!failed && (call) != 0) failed = 1;       \
    } while (0)

static int record_cuda(cudaError_t status, const char *what, const char *file, int line) {
    if (status == cudaSuccess) return 0;
    return mnrl_fail(&first_error, "%s:%d: %s failed: %s (%s); rerun with CUDA_LAUNCH_BLOCKING=1 "
                     "to find the failing kernel", file, line, what, cudaGetErrorString(status),
                     cudaGetErrorName(status));
}
#define RUN_CUDA(call) RUN(record_cuda((call), #call, __FILE__, __LINE__))

static int cuda_last_error(MnrlError *err) {
    RUN_CUDA(cudaStreamSynchronize(stream));  // faults of queued kernels surface here
    if (!failed) return 0;
    failed = 0;
    return mnrl_fail(err, "%s", first_error.msg);
}

// ---- memory -----------------------------------------------------------------------------------
static int cuda_alloc(void **out, size_t bytes, MnrlError *err) {
    *out = NULL;
    cudaError_t status = cudaMalloc(out, bytes ? bytes : 1);  // 256-byte aligned
    if (status != cudaSuccess) {
        *out = NULL;
        return mnrl_fail(err, "%s:%d: cannot allocate %zu bytes of GPU memory: %s; lower "
                         "train.batch_size or model.max_seq_length", __FILE__, __LINE__, bytes,
                         cudaGetErrorString(status));
    }
    CUDA_CHECK(cudaMemset(*out, 0, bytes), err);
    return 0;
}

static void cuda_release(void *buf) { cudaFree(buf); }

static unsigned long long uploads, downloads;  // ops_cuda_counts()

// Synchronous copies: the host buffer may be reused as soon as they return.
static void cuda_upload(void *dst, const void *host_src, size_t bytes) {
    uploads++;
    RUN_CUDA(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
}

static void cuda_download(void *host_dst, const void *src, size_t bytes) {
    downloads++;
    RUN_CUDA(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}

static void cuda_zero(void *dst, size_t bytes) { RUN_CUDA(cudaMemsetAsync(dst, 0, bytes, stream)); }

// ---- the per-dtype ops --------------------------------------------------------------------------
template <class A> struct Pick;
template <> struct Pick<float> {
    template <class F, class B> static F of(F f32, B) { return f32; }
};
template <> struct Pick<mnrl_bf16> {
    template <class F, class B> static B of(F, B bf16) { return bf16; }
};
#define LAUNCHER(name) Pick<A>::of(mnrl_cuda_##name##_f32, mnrl_cuda_##name##_bf16)

static int copy_f32(float *dst, const float *src, size_t n, cudaStream_t s, MnrlError *err) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, s), err);
    return 0;
}

template <class A> static void f32_to_act(void *dst, const float *src, size_t n) {
    RUN(Pick<A>::of(copy_f32, mnrl_cuda_f32_to_bf16)((A *)dst, src, n, stream, &first_error));
}

template <class A> static void act_to_f32(float *dst, const void *src, size_t n) {
    RUN(Pick<A>::of(copy_f32, mnrl_cuda_bf16_to_f32)(dst, (const A *)src, n, stream, &first_error));
}

template <class A>
static void embedding_forward(void *out, const int32_t *ids, const int32_t *cu_seqlens, int S, int T,
                              const void *wte, const void *wpe, const void *wtt, int C) {
    RUN(LAUNCHER(embedding_forward)((A *)out, ids, cu_seqlens, S, T, (const A *)wte, (const A *)wpe,
                                    (const A *)wtt, C, stream, &first_error));
}

template <class A>
static void embedding_backward(float *dwte, float *dwpe, float *dwtt, const void *dout, const int32_t *ids,
                               const int32_t *cu_seqlens, int S, int T, int C, void *workspace) {
    RUN(LAUNCHER(embedding_backward)(dwte, dwpe, dwtt, (const A *)dout, ids, cu_seqlens, S, T, C, workspace,
                                     stream, &first_error));
}

template <class A>
static void layernorm_forward(void *out, float *mean, float *rstd, const void *inp, const void *weight,
                              const void *bias, int T, int C, float eps) {
    RUN(LAUNCHER(layernorm_forward)((A *)out, mean, rstd, (const A *)inp, (const A *)weight, (const A *)bias, T,
                                    C, eps, stream, &first_error));
}

template <class A>
static void residual_layernorm_forward(void *res, void *out, float *mean, float *rstd, const void *a,
                                       const void *b, const MnrlDropout *drop, const void *weight, const void *bias,
                                       int T, int C, float eps) {
    RUN(LAUNCHER(residual_layernorm_forward)((A *)res, (A *)out, mean, rstd, (const A *)a, (const A *)b, drop,
                                             (const A *)weight, (const A *)bias, T, C, eps, stream,
                                             &first_error));
}

template <class A>
static void layernorm_backward(void *dinp, float *dweight, float *dbias, const void *dout, const void *inp,
                               const void *weight, const float *mean, const float *rstd, int T, int C,
                               void *workspace) {
    RUN(LAUNCHER(layernorm_backward)((A *)dinp, dweight, dbias, (const A *)dout, (const A *)inp,
                                     (const A *)weight, mean, rstd, T, C, workspace, stream, &first_error));
}

template <class A>
static void residual_layernorm_backward(void *dres, void *dbranch, float *dbranch_bias, float *dweight,
                                        float *dbias, const void *dout, const void *res, const void *weight,
                                        const float *mean, const float *rstd, int T, int C, const MnrlDropout *drop,
                                        void *workspace) {
    RUN(LAUNCHER(residual_layernorm_backward)((A *)dres, (A *)dbranch, dbranch_bias, dweight, dbias,
                                              (const A *)dout, (const A *)res, (const A *)weight, mean, rstd, T, C,
                                              drop, workspace, stream, &first_error));
}

template <class A>
static void matmul_forward(void *out, void *pre_gelu, const void *inp, const void *weight, const void *bias,
                           int T, int C, int OC) {
    RUN(LAUNCHER(matmul_forward)((A *)out, (A *)pre_gelu, (const A *)inp, (const A *)weight, (const A *)bias,
                                 T, C, OC, &gemm, stream, &first_error));
}

template <class A>
static void matmul_backward(void *dinp, float *dweight, float *dbias, const void *dout, const void *inp,
                            const void *weight, int T, int C, int OC, int accumulate_dinp, void *workspace) {
    RUN(LAUNCHER(matmul_backward)((A *)dinp, dweight, dbias, (const A *)dout, (const A *)inp,
                                  (const A *)weight, T, C, OC, accumulate_dinp, workspace, &gemm, stream,
                                  &first_error));
}

template <class A> static void gelu_forward(void *out, const void *inp, size_t n) {
    RUN(LAUNCHER(gelu_forward)((A *)out, (const A *)inp, n, stream, &first_error));
}

template <class A> static void gelu_backward(void *dinp, const void *inp, const void *dout, size_t n) {
    RUN(LAUNCHER(gelu_backward)((A *)dinp, (const A *)inp, (const A *)dout, n, stream, &first_error));
}
template <class A>
static void gelu_bias_backward(void *dinp, float *dbias, const void *inp, const void *dout, int T, int OC,
                               void *workspace) {
    RUN(LAUNCHER(gelu_bias_backward)((A *)dinp, dbias, (const A *)inp, (const A *)dout, T, OC, workspace, stream,
                                     &first_error));
}

template <class A>
static void dropout(void *out, const void *inp, size_t n, float keep_prob, uint64_t seed, uint64_t rng_stream,
                    uint64_t first) {
    RUN(LAUNCHER(dropout)((A *)out, (const A *)inp, n, keep_prob, seed, rng_stream, first, stream, &first_error));
}

template <class A>
static void attention_forward(void *out, float *saved, const void *qkv, const int32_t *cu_seqlens, int S, int T,
                              int max_seqlen, int C, int NH, float keep_prob, uint64_t seed,
                              uint64_t rng_stream, int token_offset) {
    RUN(LAUNCHER(attention_forward)((A *)out, saved, (const A *)qkv, cu_seqlens, S, T, max_seqlen, C, NH,
                                    keep_prob, seed, rng_stream, token_offset, stream, &first_error));
}

template <class A>
static void attention_backward(void *dqkv, const void *dout, const void *qkv, const void *out,
                               const float *saved, const int32_t *cu_seqlens, int S, int T, int max_seqlen,
                               int C, int NH, float keep_prob, uint64_t seed, uint64_t rng_stream,
                               int token_offset, void *workspace) {
    RUN(LAUNCHER(attention_backward)((A *)dqkv, (const A *)dout, (const A *)qkv, (const A *)out, saved,
                                     cu_seqlens, S, T, max_seqlen, C, NH, keep_prob, seed, rng_stream,
                                     token_offset, workspace, stream, &first_error));
}

template <class A>
static void mean_pool_forward(float *out, const void *inp, const int32_t *cu_seqlens, int S, int C) {
    RUN(LAUNCHER(mean_pool_forward)(out, (const A *)inp, cu_seqlens, S, C, stream, &first_error));
}

template <class A>
static void mean_pool_backward(void *dinp, const float *dout, const int32_t *cu_seqlens, int S, int C) {
    RUN(LAUNCHER(mean_pool_backward)((A *)dinp, dout, cu_seqlens, S, C, stream, &first_error));
}

// The bf16 table writes the compute copy; the fp32 one has none (model.c passes NULL).
template <class A>
static void adamw(float *params, void *params_act, float *grads, float *m, float *v, const MnrlParamRun *runs,
                  size_t n_runs, const float *norm, const MnrlAdamwParams *hp, int step) {
    mnrl_bf16 *act = sizeof(A) == sizeof(mnrl_bf16) ? (mnrl_bf16 *)params_act : NULL;
    RUN(mnrl_cuda_adamw(params, act, grads, m, v, runs, n_runs, norm, hp, step, stream, &first_error));
}

// The loss takes fp32 embeddings in both tables; bf16 runs take its products on tensor
// cores (split operands: mnrl_loss.cu), fp32 runs keep them in fp32 as the CPU does.
template <class A>
static void mnrl_loss(float *loss, float *dA, float *dCd, const float *Ae, const float *Cd, int b, int N, int H,
                      float scale, int label_offset, int global_batch, void *workspace) {
    RUN(mnrl_cuda_mnrl_loss(loss, dA, dCd, Ae, Cd, b, N, H, scale, label_offset, global_batch,
                            sizeof(A) == sizeof(mnrl_bf16), workspace, stream, &first_error));
}

// ---- the dtype-independent ops ----------------------------------------------------------------
static void grad_norm(float *norm, const float *grads, size_t n, void *workspace) {
    RUN(mnrl_cuda_grad_norm(norm, grads, n, workspace, stream, &first_error));
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

// The largest workspace any one kernel of the step asks for (ops share one buffer).
static size_t workspace_bytes(const MnrlOpsLimits *l) {
    int widest_out = l->channels * 3 > l->ffn ? l->channels * 3 : l->ffn;  // OC of the linear layers
    size_t bytes = mnrl_cuda_grad_norm_workspace_bytes();
    bytes = max_size(bytes, mnrl_cuda_embedding_backward_workspace_bytes(l->max_tokens, l->channels));
    bytes = max_size(bytes, mnrl_cuda_layernorm_backward_workspace_bytes(l->channels));
    bytes = max_size(bytes, mnrl_cuda_attention_backward_workspace_bytes(l->max_tokens, l->heads));
    bytes = max_size(bytes, mnrl_cuda_matmul_backward_workspace_bytes(l->max_tokens, widest_out));
    bytes = max_size(bytes, mnrl_cuda_matmul_backward_workspace_bytes(l->max_tokens, l->channels));
    if (l->max_anchors > 0 && l->max_candidates > 0)
        bytes = max_size(bytes, mnrl_cuda_mnrl_loss_workspace_bytes(l->max_anchors, l->max_candidates,
                                                                    l->channels));
    return bytes;
}

// The CUDA attention keeps each row's log-sum-exp, fp32 [T, NH], and its dropout bits.
static size_t attention_saved_bytes(int T, int NH, int max_seqlen) {
    return mnrl_cuda_attention_saved_bytes(T, NH, max_seqlen);
}

template <class A> static MnrlOps make_table(const char *name) {
    MnrlOps t = {};
    t.name = name;
    t.act_bytes = sizeof(A);
    t.alloc = cuda_alloc;
    t.release = cuda_release;
    t.upload = cuda_upload;
    t.download = cuda_download;
    t.zero = cuda_zero;
    t.f32_to_act = f32_to_act<A>;
    t.act_to_f32 = act_to_f32<A>;
    t.workspace_bytes = workspace_bytes;
    t.attention_saved_bytes = attention_saved_bytes;
    t.embedding_forward = embedding_forward<A>;
    t.embedding_backward = embedding_backward<A>;
    t.layernorm_forward = layernorm_forward<A>;
    t.residual_layernorm_forward = residual_layernorm_forward<A>;
    t.layernorm_backward = layernorm_backward<A>;
    t.residual_layernorm_backward = residual_layernorm_backward<A>;
    t.matmul_forward = matmul_forward<A>;
    t.matmul_backward = matmul_backward<A>;
    t.gelu_forward = gelu_forward<A>;
    t.gelu_backward = gelu_backward<A>;
    t.gelu_bias_backward = gelu_bias_backward<A>;
    t.dropout = dropout<A>;
    t.attention_forward = attention_forward<A>;
    t.attention_backward = attention_backward<A>;
    t.mean_pool_forward = mean_pool_forward<A>;
    t.mean_pool_backward = mean_pool_backward<A>;
    t.mnrl_loss = mnrl_loss<A>;
    t.grad_norm = grad_norm;
    t.adamw = adamw<A>;
    t.last_error = cuda_last_error;
    return t;
}

extern "C" void ops_cuda_counts(MnrlCudaCounts *out) {
    *out = MnrlCudaCounts{mnrl_cuda_launches, uploads, downloads};
}

extern "C" int ops_cuda(int bf16, const MnrlOps **ops, MnrlError *err) {
    static MnrlOps tables[2];  // [0] fp32, [1] bf16; set up once, with the cuBLASLt handle
    static int ready;
    if (!ready) {
        char description[512];
        if (mnrl_cuda_describe(description, sizeof description) < 1) {
            return mnrl_fail(err, "CUDA backend: %s; check the NVIDIA driver (nvidia-smi) and "
                                  "CUDA_VISIBLE_DEVICES, or set model.backend to \"cpu\"",
                             description);
        }
        // The current device: 0, or the rank's GPU that dist_init selected (GPU = local rank).
        if (mnrl_cuda_gemm_context_create(&gemm, (size_t)32 << 20, err) != 0) return -1;
        tables[0] = make_table<float>("cuda-fp32");
        tables[1] = make_table<mnrl_bf16>("cuda-bf16");
        ready = 1;
    }
    *ops = &tables[bf16 ? 1 : 0];
    return 0;
}
