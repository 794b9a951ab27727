// test_ops_cuda_step.c — whole training steps of the tiny model through the CUDA ops table
// (ops_cuda.h, every src/kernels/*.cu, here emulated on the CPU) against the CPU backend:
// model.c, loss.c and the AdamW step run unchanged over both tables from the same weights
// and batches, dropout off (eval-mode forward), so every difference is the kernels'.
//
// Model: tests/data/parity/tiny with num_attention_heads 2 instead of 4 (head size 16, the
// smallest the CUDA attention takes; the weights do not depend on the head count), hidden
// 32, FFN 64, 2 layers. Batch: 5 rows of anchor, positive, 1 negative (15 sentences) with
// lengths 1, 2, 31, 33, 75 among random ones, random token ids.
//
// Compared after one step (forward, MNRL loss, backward, AdamW at lr 1e-3), each error
// relative to the CPU tensor's largest magnitude (tensor by tensor for the gradients):
//  - fp32 activations: both sides compute in fp32 and differ only in summation order
//    (tiled GEMM, online softmax, fixed-order reductions): observed errors ~1e-6 relative;
//    tolerances 1e-4 for pooled, loss and every gradient, a 100x margin for the
//    roundoff growth through 2 layers' forward and backward. Updated parameters: AdamW
//    moves each by lr·m̂/(√v̂ + eps), nearly ±lr at step 1, so a gradient that is ~0 on
//    the CPU can flip the sign of its step; the bound is |Δp| ≤ 2·lr everywhere and
//    ≤ 1e-3·lr for parameters whose CPU gradient exceeds 1e-3 of its tensor's largest.
//    The key biases' gradients are zero in exact arithmetic (a key bias adds the same
//    q·b to every score of a softmax row), so theirs are compared with the model's
//    largest gradient.
//  - bf16 activations (weights' compute copy and activations rounded to bf16, u = 2^-8;
//    statistics, softmax, pooling, loss and optimizer fp32): each activation carries
//    ~u relative error, a layer ~a few u: pooled 2e-2, loss 1e-2 relative,
//    gradients 1e-1 (backward compounds the forward's errors twice over); observed
//    4e-3, 5e-4 and 3e-2. Updated parameters: ≤ lr where the CPU gradient exceeds 0.2 of
//    its tensor's largest (observed 0.43·lr: near eps-sized clipped gradients the step
//    lr·g/(|g| + eps) still follows g's ~1e-2 error), 2·lr everywhere.
// Then 20 steps of loss trajectory (new random batch each step, AdamW at lr 1e-3, the
// 20 losses compared step by step): fp32 ≤ 1e-4 absolute, bf16 ≤ 2e-2 absolute (the
// loss is ~1.4; bf16 rounding of the updated weights moves it by ~u·loss).
// Then cached MNRL (gradcache.h): one train-mode step with dropout on (config.json's 0.1)
// through the CUDA table in chunks of 2 rows (6 + 6 + 3 sentences, so the kernels draw the
// dropout and attention masks at token offsets inside the step) against the CPU's
// uncached step: pooled, loss and gradients under the one-step tolerances above (the
// masks are the same on both backends, rng.h, and chunking only reorders the gradient
// sums, which test_gradcache bounds at ~1e-6).
// `gpu_ops_cuda_step 200` (tests/gpu/run.sh) runs a 200-step trajectory under the same
// tolerances: the GPU's loss curve must track the CPU's over a longer run too.
// Run time (2 cores, one test at a time): about 26 s in Release, about 30 s under ASan.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnrl/batch.h"
#include "mnrl/common.h"
#include "mnrl/gradcache.h"
#include "mnrl/loss.h"
#include "mnrl/model.h"
#include "mnrl/ops.h"
#include "mnrl/ops_cuda.h"
#include "test.h"

#define ROWS 5
#define COLS 3
#define MAX_SEQLEN 80
#define LR 1e-3f
#define TRAJECTORY_STEPS 20
#define CACHED_ROWS 2  // rows per chunk of the cached step

static void die_on(int rc, const MnrlError *err) {
    if (rc != 0) {
        fprintf(stderr, "%s\n", err->msg);
        exit(1);
    }
}

// A copy of the tiny model with 2 attention heads, in a fresh temporary folder.
static void make_model_dir(char *dir) {
    MnrlError err = {{0}};
    strcpy(dir, "/tmp/mnrl_ops_cuda_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char *data = NULL, path[512];
    size_t len = 0;
    die_on(mnrl_read_file(MNRL_TEST_DATA_DIR "/parity/tiny/model.safetensors", &data, &len, &err), &err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    die_on(mnrl_write_file_atomic(path, data, len, &err), &err);
    free(data);
    die_on(mnrl_read_file(MNRL_TEST_DATA_DIR "/parity/tiny/config.json", &data, &len, &err), &err);
    char *heads = strstr(data, "\"num_attention_heads\": 4");
    CHECK(heads != NULL);
    heads[strlen("\"num_attention_heads\": ")] = '2';
    snprintf(path, sizeof path, "%s/config.json", dir);
    die_on(mnrl_write_file_atomic(path, data, len, &err), &err);
    free(data);
}

static void remove_model_dir(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    remove(path);
    rmdir(dir);
}

// ROWS x COLS sentences of random ids; the first step gets the awkward lengths.
static void make_batch(PackedBatch *pb, uint64_t seed, int vocab) {
    static const int awkward[] = {1, 2, 31, 33, 75};
    uint64_t rng = seed;
    pb->S = ROWS * COLS;
    pb->rows = ROWS;
    pb->cols = COLS;
    pb->cu_seqlens[0] = 0;
    pb->max_len = 0;
    for (int s = 0; s < pb->S; s++) {
        int len = seed == 1 && s < 5 ? awkward[s] : 1 + (int)mnrl_rand_below(&rng, 40);
        for (int i = 0; i < len; i++) pb->ids[pb->cu_seqlens[s] + i] = (int32_t)mnrl_rand_below(&rng, (uint64_t)vocab);
        pb->cu_seqlens[s + 1] = pb->cu_seqlens[s] + len;
        if (len > pb->max_len) pb->max_len = len;
    }
    pb->T = pb->cu_seqlens[pb->S];
}

typedef struct {
    Model model;
    MnrlLoss loss;
    PackedBatch chunk;  // cached sides: one chunk's packing
    int cached;
} Side;

// cached: the model sized for chunks of CACHED_ROWS rows (gradcache.h).
static void side_open(Side *side, const char *dir, const MnrlOps *ops, int cached) {
    MnrlError err = {{0}};
    int seqs = (cached ? CACHED_ROWS : ROWS) * COLS;
    ModelLimits limits = {.max_tokens = seqs * MAX_SEQLEN, .max_seqs = seqs, .max_seqlen = MAX_SEQLEN,
                          .max_anchors = ROWS, .max_candidates = ROWS * (COLS - 1), .max_step_seqs = ROWS * COLS};
    side->cached = cached;
    if (cached) die_on(batch_init(&side->chunk, seqs, limits.max_tokens, MAX_SEQLEN, &err), &err);
    die_on(model_create(&side->model, dir, ops, &limits, &err), &err);
    die_on(mnrl_loss_init(&side->loss, ops, 20.0f, &err), &err);
}

static void side_close(Side *side) {
    if (side->cached) batch_free(&side->chunk);
    mnrl_loss_free(&side->loss);
    model_free(&side->model);
}

// Forward, loss and backward of one batch (gradients zeroed first); returns the loss.
static double side_step(Side *side, const PackedBatch *pb) {
    MnrlError err = {{0}};
    Model *m = &side->model;
    model_zero_grad(m);
    die_on(model_forward(m, pb, 0, 0, 0, 0, &err), &err);
    double loss = mnrl_loss_step(&side->loss, m->pooled, m->dpooled, ROWS, COLS, m->C, m->workspace);
    model_backward(m, m->dpooled);
    die_on(mnrl_ops_check(m->ops, &err), &err);
    return loss;
}

// A train-mode step (dropout on): cached sides through gradcache_step, the others as
// side_step with model_forward in train mode. Returns the loss.
static double side_train_step(Side *side, const PackedBatch *pb) {
    MnrlError err = {{0}};
    Model *m = &side->model;
    model_zero_grad(m);
    if (side->cached) {
        StepTexts st = {pb, ROWS, COLS, 5, 3, 0};
        die_on(gradcache_step(m, &side->loss, &st, &side->chunk, &err), &err);
    } else {
        die_on(model_forward(m, pb, 1, 5, 3, 0, &err), &err);
        mnrl_loss_step(&side->loss, m->pooled, m->dpooled, ROWS, COLS, m->C, m->workspace);
        model_backward(m, m->dpooled);
    }
    die_on(mnrl_ops_check(m->ops, &err), &err);
    return mnrl_loss_read(&side->loss);
}

static void side_update(Side *side) {
    static const AdamWOptions opt = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-6f, .weight_decay = 0.01f,
                                     .max_grad_norm = 1.0f};
    MnrlError err = {{0}};
    model_optimizer_step(&side->model, LR, &opt);
    CHECK(isfinite(model_optimizer_finish(&side->model)));
    die_on(mnrl_ops_check(side->model.ops, &err), &err);
}

static float *download(const Side *side, const float *dev, size_t n) {
    float *host = mnrl_malloc(n * sizeof(float));
    side->model.ops->download(host, dev, n * sizeof(float));
    return host;
}

static double max_abs_diff(const float *got, const float *want, size_t n) {
    double diff = 0.0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)got[i] - want[i]));
    return diff;
}

// max |got - want| / max |want| over n values.
static double relative_error(const float *got, const float *want, size_t n) {
    double scale = 1e-30;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)want[i]));
    return max_abs_diff(got, want, n) / scale;
}

// Pooled and loss of the step both sides just ran, under the one-step tolerances.
static void compare_pooled_loss(const char *what, Side *cpu, Side *gpu, const PackedBatch *pb, double loss_cpu,
                                double loss_gpu, int bf16) {
    double tol_pooled = bf16 ? 2e-2 : 1e-4, tol_loss = bf16 ? 1e-2 : 1e-4;
    const char *name = gpu->model.ops->name;
    size_t pooled_n = (size_t)pb->S * (size_t)cpu->model.C;
    float *pooled_cpu = download(cpu, cpu->model.pooled, pooled_n), *pooled_gpu = download(gpu, gpu->model.pooled, pooled_n);
    double pooled_err = relative_error(pooled_gpu, pooled_cpu, pooled_n);
    double loss_err = fabs(loss_gpu - loss_cpu) / fabs(loss_cpu);
    printf("%s %s: loss %.7f (cpu %.7f, rel. error %.2e), pooled rel. error %.2e\n", name, what, loss_gpu, loss_cpu,
           loss_err, pooled_err);
    CHECK_MSG(pooled_err <= tol_pooled, "%s %s: pooled error %.3e > %.1e", name, what, pooled_err, tol_pooled);
    CHECK_MSG(loss_err <= tol_loss, "%s %s: loss error %.3e > %.1e", name, what, loss_err, tol_loss);
    free(pooled_cpu);
    free(pooled_gpu);
}

// Every gradient tensor of the step both sides just ran; returns the CPU's gradients.
static float *compare_gradients(const char *what, Side *cpu, Side *gpu, int bf16) {
    double tol_grad = bf16 ? 1e-1 : 1e-4;
    const char *name = gpu->model.ops->name;
    size_t n = cpu->model.table.n_floats;
    float *grad_cpu = download(cpu, cpu->model.grads, n), *grad_gpu = download(gpu, gpu->model.grads, n);
    const ParamTable *t = &cpu->model.table;
    double worst = 0.0, grad_max = 0.0;
    const char *worst_name = "";
    for (size_t i = 0; i < n; i++) grad_max = fmax(grad_max, fabs(grad_cpu[i]));
    for (size_t i = 0; i < t->n_tensors; i++) {
        const ParamTensor *p = &t->tensors[i];
        // The key bias adds q·b to every score of a softmax row, which changes nothing: its
        // gradient is zero but for roundoff on both sides, so its error is measured against
        // the model's largest gradient instead of its own.
        double e = strstr(p->name, "attention.self.key.bias")
                       ? max_abs_diff(grad_gpu + p->offset, grad_cpu + p->offset, p->numel) / grad_max
                       : relative_error(grad_gpu + p->offset, grad_cpu + p->offset, p->numel);
        CHECK_MSG(e <= tol_grad, "%s %s: gradient of %s: error %.3e > %.1e", name, what, p->name, e, tol_grad);
        if (e > worst) worst = e, worst_name = p->name;
    }
    printf("%s %s: worst gradient rel. error %.2e (%s) over %zu tensors\n", name, what, worst, worst_name,
           t->n_tensors);
    free(grad_gpu);
    return grad_cpu;
}

// One step on both sides: pooled, loss, every gradient tensor, the updated parameters.
static void check_one_step(Side *cpu, Side *gpu, const PackedBatch *pb, int bf16) {
    double loss_cpu = side_step(cpu, pb), loss_gpu = side_step(gpu, pb);
    const char *name = gpu->model.ops->name;
    compare_pooled_loss("step 1", cpu, gpu, pb, loss_cpu, loss_gpu, bf16);
    float *grad_cpu = compare_gradients("step 1", cpu, gpu, bf16);
    const ParamTable *t = &cpu->model.table;
    size_t n = t->n_floats;

    side_update(cpu);
    side_update(gpu);
    float *par_cpu = mnrl_malloc(n * sizeof(float)), *par_gpu = mnrl_malloc(n * sizeof(float));
    model_params_host(&cpu->model, par_cpu);
    model_params_host(&gpu->model, par_gpu);
    double worst_any = 0.0, worst_clear = 0.0, clear = bf16 ? 0.2 : 1e-3;
    for (size_t i = 0; i < t->n_tensors; i++) {
        const ParamTensor *p = &t->tensors[i];
        double gmax = 0.0;
        for (size_t j = 0; j < p->numel; j++) gmax = fmax(gmax, fabs(grad_cpu[p->offset + j]));
        for (size_t j = 0; j < p->numel; j++) {
            size_t k = p->offset + j;
            double d = fabs((double)par_gpu[k] - par_cpu[k]);
            worst_any = fmax(worst_any, d);
            if (fabs(grad_cpu[k]) > clear * gmax) worst_clear = fmax(worst_clear, d);
        }
    }
    double tol_clear = bf16 ? LR : 1e-3 * LR;
    printf("%s step 1: updated parameters differ by at most %.2e (%.2e where the gradient is clear of 0)\n", name,
           worst_any, worst_clear);
    CHECK_MSG(worst_any <= 2.0 * LR + 1e-7, "%s: a parameter moved %.3e away from the CPU's", name, worst_any);
    CHECK_MSG(worst_clear <= tol_clear, "%s: a parameter with a clear gradient is %.3e away", name, worst_clear);
    free(grad_cpu);
    free(par_cpu);
    free(par_gpu);
}

// One training step as train.c runs it (dropout on; gradcache_step, the loss read after
// the backward pass, the optimizer, the norm read), counted by ops_cuda_counts().
// The host waits for the GPU only at the two reads (downloads) and at the two uploads of
// the batch (ids, cu_seqlens), which find the GPU idle after the previous step's norm
// read; nothing else in the step may copy to or from the host. Launches (counted under the
// emulation, where GEMMs are one portable kernel each, as cuBLASLt's usually are): model.c
// makes kLayerLaunches per layer (forward 8: four GEMMs, the GELU, attention, two residual
// LayerNorms with their dropout fused; backward 19, the FFN's GELU and bias gradient in
// one pass) and kStepLaunches around them
// (embeddings, LayerNorm, dropout and pooling 4 forward and 7 backward, the MNRL loss 9,
// the optimizer 3: two norm kernels and one AdamW launch). The budget is that count, so a
// change that adds a launch fails here until the budget is raised on purpose. (Before the
// dropout and GELU-bias fusions a layer made 36: bert-base's 12 layers went from 455 to
// 347 launches.)
enum { kLayerLaunches = 27, kStepLaunches = 23 };
static void check_step_budget(Side *gpu, const PackedBatch *pb) {
    static const AdamWOptions opt = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-6f, .weight_decay = 0.01f,
                                     .max_grad_norm = 1.0f};
    MnrlError err = {{0}};
    Model *m = &gpu->model;
    MnrlCudaCounts before, after;
    ops_cuda_counts(&before);
    StepTexts st = {pb, ROWS, COLS, 5, 3, 0};
    die_on(gradcache_step(m, &gpu->loss, &st, NULL, &err), &err);
    CHECK(isfinite(mnrl_loss_read(&gpu->loss)));
    model_optimizer_step(m, LR, &opt);
    CHECK(isfinite(model_optimizer_finish(m)));
    die_on(mnrl_ops_check(m->ops, &err), &err);
    ops_cuda_counts(&after);
    unsigned long long launches = after.launches - before.launches, budget = kStepLaunches + kLayerLaunches * m->L;
    printf("%s: one training step of %d layers: %llu launches (budget %llu), %llu uploads, %llu downloads\n",
           m->ops->name, m->L, launches, budget, after.uploads - before.uploads, after.downloads - before.downloads);
    CHECK_MSG(launches <= budget, "%s: a training step launched %llu kernels, over its budget of %llu",
              m->ops->name, launches, budget);
    CHECK_MSG(after.uploads - before.uploads == 2 && after.downloads - before.downloads == 2,
              "%s: a training step copied %llu times to and %llu times from the GPU (2 and 2 expected)",
              m->ops->name, after.uploads - before.uploads, after.downloads - before.downloads);
}

static void check_trajectory(Side *cpu, Side *gpu, PackedBatch *pb, int bf16, int steps) {
    double tol = bf16 ? 2e-2 : 1e-4, worst = 0.0;
    for (int step = 0; step < steps; step++) {
        make_batch(pb, 100 + (uint64_t)step, (int)cpu->model.table.config.vocab_size);
        double loss_cpu = side_step(cpu, pb), loss_gpu = side_step(gpu, pb);
        side_update(cpu);
        side_update(gpu);
        worst = fmax(worst, fabs(loss_gpu - loss_cpu));
        if (step == 0 || (step + 1) % 20 == 0)
            printf("%s trajectory step %d: loss %.6f, cpu %.6f\n", gpu->model.ops->name, step + 1, loss_gpu, loss_cpu);
    }
    printf("%s: %d steps, largest loss difference %.2e (tolerance %.0e)\n", gpu->model.ops->name, steps, worst, tol);
    CHECK_MSG(worst <= tol, "%s: loss trajectory differs by %.3e > %.1e", gpu->model.ops->name, worst, tol);
}

// Cached MNRL through the CUDA table against the CPU's uncached step (see the top).
static void check_cached_step(const char *dir, const MnrlOps *ops, PackedBatch *pb, int bf16) {
    Side cpu, gpu;
    side_open(&cpu, dir, ops_cpu(), 0);
    side_open(&gpu, dir, ops, 1);
    CHECK(gpu.model.hidden_keep < 1.0f && gpu.model.attn_keep < 1.0f);
    make_batch(pb, 1, (int)cpu.model.table.config.vocab_size);
    double loss_cpu = side_train_step(&cpu, pb), loss_gpu = side_train_step(&gpu, pb);
    compare_pooled_loss("cached, dropout on", &cpu, &gpu, pb, loss_cpu, loss_gpu, bf16);
    free(compare_gradients("cached, dropout on", &cpu, &gpu, bf16));
    side_close(&cpu);
    side_close(&gpu);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : TRAJECTORY_STEPS;
    if (argc > 2 || steps < 1) {
        fprintf(stderr, "usage: %s [TRAJECTORY_STEPS >= 1, default %d]\n", argv[0], TRAJECTORY_STEPS);
        return 2;
    }
    MnrlError err = {{0}};
    const MnrlOps *ops = NULL;
    die_on(ops_cuda(0, &ops, &err), &err);  // no device: stop before making the folder
    char dir[64];
    make_model_dir(dir);
    PackedBatch pb;
    die_on(batch_init(&pb, ROWS * COLS, ROWS * COLS * MAX_SEQLEN, MAX_SEQLEN, &err), &err);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        die_on(ops_cuda(bf16, &ops, &err), &err);
        CHECK_STR(ops->name, bf16 ? "cuda-bf16" : "cuda-fp32");
        Side cpu, gpu;
        side_open(&cpu, dir, ops_cpu(), 0);
        side_open(&gpu, dir, ops, 0);
        make_batch(&pb, 1, (int)cpu.model.table.config.vocab_size);
        check_one_step(&cpu, &gpu, &pb, bf16);
        check_trajectory(&cpu, &gpu, &pb, bf16, steps);
        check_step_budget(&gpu, &pb);
        side_close(&cpu);
        side_close(&gpu);
        check_cached_step(dir, ops, &pb, bf16);
    }
    batch_free(&pb);
    remove_model_dir(dir);
    TEST_END();
}
