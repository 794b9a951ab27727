// train.c — the training loop (see include/mnrl/train.h). Everything the loop touches is
// created in trainer_open; a step only packs, computes and logs (no allocation).
//
// Data-parallel (DESIGN §1 "Across ranks"; the functions under "ranks" below): every rank
// runs this same program on the same data. The sampler builds each global batch of
// train.batch_size rows identically on every rank; rank r trains rows [r·b, (r+1)·b), b =
// batch / world; the loss (loss.c) gathers the candidates of all ranks and returns the
// global loss; the parameter gradients are all-reduced (summed), so clip and AdamW take
// the same step on every rank. Rank 0 alone prints, evaluates, writes output.dir and
// exports. A final short global batch of n rows is split evenly, n / world rows per rank;
// the n mod world rows left over are not trained on (a batch of fewer rows than ranks is
// skipped), so that every rank holds the same number of rows in every collective.
//
// Checkpoints and resume (checkpoint.h; the functions under "checkpoints" below): the
// state of a run after a step is the weights, the AdamW moments and step, the step count
// (which also keys the dropout masks and the lr schedule), the bad-step count and the
// sampler's position, replayed by sampler_seek. Restoring all of it makes the resumed
// steps the same computation as the uninterrupted ones, so on the CPU backend the losses
// and weights are bit-identical. Rank 0 reads a checkpoint and broadcasts it; rank 0
// writes one after every rank confirmed that its weights equal rank 0's.
//
// Gradient accumulation (train.grad_accum_steps = N; the Hugging Face Trainer's
// semantics): an optimizer step draws N consecutive batches of the sampler (micro-batches,
// each a whole MNRL batch: its anchors see only its own candidates, so accumulation adds no
// negatives; the config check warns), runs each one's forward, loss and backward with its
// loss divided by the step's micro-batch count (loss.h), so the parameter gradients sum to
// their mean, then all-reduces, clips and takes one AdamW step. Everything counted in steps
// (the schedule, max_steps, logging, evaluation, checkpoints, `step` in metrics.jsonl and
// state.json) counts optimizer steps. An epoch of n batches has ceil(n / N) of them (the
// sampler keeps short batches, no drop_last): its last step takes the k <= N batches left
// and averages over those k, as the Trainer does (its current_gradient_accumulation_steps).
// The logged loss is the mean of the micro-batches' losses; tok/s and seq/s count them all.
// Micro-batch j of step s draws the dropout masks of gradcache_micro_step(s, N, j), so N = 1
// trains exactly as without accumulation. Checkpoints and stops fall between optimizer
// steps only, where the sampler stands after a whole step's batches.
#include "mnrl/train.h"

#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mnrl/batch.h"
#include "mnrl/checkpoint.h"
#include "mnrl/cli.h"
#include "mnrl/data_cache.h"
#include "mnrl/dist.h"
#include "mnrl/encode.h"
#include "mnrl/eval.h"
#include "mnrl/export.h"
#include "mnrl/gradcache.h"
#include "mnrl/log.h"
#include "mnrl/loss.h"
#include "mnrl/model.h"
#include "mnrl/ops.h"
#include "mnrl/sampler.h"
#include "mnrl/tokenizer.h"
#ifdef MNRL_HAVE_CUDA
#include "mnrl/cuda_info.h"
#include "mnrl/ops_cuda.h"
#endif

// One micro-batch of an optimizer step (one batch of the sampler).
typedef struct {
    const uint32_t *global;  // the global batch's rows that all ranks train on
    size_t n_global;
    const uint32_t *rows;    // this rank's part of them
    size_t n_rows;
} MicroBatch;

typedef struct {
    const MnrlConfig *cfg;
    MnrlDist *dist;          // the ranks (world 1: one process)
    int lead;                // rank 0: prints, evaluates, writes output.dir
    size_t per_rank;         // rows of a full global batch on each rank
    uint64_t rows_left_over; // rows of short final batches that did not split evenly
    float *step_counts;      // backend [2]: tokens and texts of a step, summed over ranks
    const MnrlOps *ops;
    Tokenizer *tok;
    DataCache cache;
    Sampler sampler;
    Model model;
    MnrlLoss loss;
    PackedBatch batch;
    PackedBatch chunk;       // cached MNRL (loss.mini_batch_size): one chunk's packing
    int cached;              // steps run in chunks (gradcache.h)
    int accum;               // train.grad_accum_steps: batches per optimizer step
    uint32_t *rows;          // accum global batches of row indices
    MicroBatch *micro;       // the current optimizer step's batches (accum)
    Encoder encoder;
    int have_sts;            // eval.sts_file is set
    StsSet sts_dev, sts_test;
    StsEvaluator ev_dev, ev_test;
    StepLog log;
    FILE *batch_order;       // OUT/batch_order.txt: each step's row indices
    AdamWOptions adam;
    int64_t total_steps, warmup_steps, steps_per_epoch, step;
    int bad_steps;           // consecutive steps with a non-finite loss or norm
    ExportScores scores;
    // Checkpoints and stops.
    const TrainInvocation *inv;
    char resume_dir[4096];   // rank 0: the checkpoint resumed from ("": a new run)
    int resumed;             // every rank: the state came from a checkpoint
    int continuing;          // resume_dir is one of output.dir's own checkpoints
    int positioned;          // the sampler stands where the checkpoint left it
    int64_t last_checkpoint; // the step of the last checkpoint written or resumed (-1: none)
    int stopped_by;          // the signal that stopped training early (-1: on another rank)
    // What has been opened, for trainer_close after a failure half way.
    int opened_cache, opened_sampler, opened_model, opened_loss, opened_batch, opened_encoder,
        opened_sts, opened_log;
} Trainer;

// The ops backend for model.backend: "cpu"; "cuda" (an error naming the driver/runtime
// problem when there is no usable GPU); "auto": CUDA when a GPU is usable, else the CPU
// with a one-line note. On CUDA, model.precision picks bf16 or fp32 activations.
static int select_backend(const MnrlConfig *cfg, int lead, const MnrlOps **ops, MnrlError *err) {
    *ops = ops_cpu();
    if (cfg->model.backend == MNRL_BACKEND_CPU) return 0;
#ifdef MNRL_HAVE_CUDA
    char description[512];
    mnrl_cuda_describe(description, sizeof description);
    if (train_dist_memory(cfg) == MNRL_DIST_DEVICE_MEMORY) {  // the one place that decides
        if (ops_cuda(cfg->model.precision == MNRL_PRECISION_BF16, ops, err) != 0) {
            return mnrl_fail_context(err, "model.backend \"%s\"",
                                     cfg->model.backend == MNRL_BACKEND_CUDA ? "cuda" : "auto");
        }
        if (lead) fprintf(stderr, "backend: %s, %s\n", (*ops)->name, description);
        return 0;
    }
#else
    const char *description = "this build has no CUDA kernels: built without nvcc or with MNRL_CUDA=OFF";
    if (cfg->model.backend == MNRL_BACKEND_CUDA) {
        return mnrl_fail(err, "model.backend: \"cuda\": %s; rebuild with the CUDA toolkit "
                              "(cmake -DMNRL_CUDA=ON), or use \"cpu\" or \"auto\"", description);
    }
#endif
    if (lead) fprintf(stderr, "backend: no usable GPU (%s), training on the CPU\n", description);
    return 0;
}

MnrlDistMemory train_dist_memory(const MnrlConfig *cfg) {
    if (cfg->model.backend == MNRL_BACKEND_CPU) return MNRL_DIST_HOST_MEMORY;
#ifdef MNRL_HAVE_CUDA
    char description[512];
    if (cfg->model.backend == MNRL_BACKEND_CUDA || mnrl_cuda_describe(description, sizeof description) > 0) {
        return MNRL_DIST_DEVICE_MEMORY;
    }
#endif
    return MNRL_DIST_HOST_MEMORY;
}

// The collectives work on the backend's own buffers: dist_init must have been given the
// memory of the backend select_backend chose (train_dist_memory).
static int check_dist_memory(const Trainer *tr, MnrlError *err) {
    int on_device = tr->ops != ops_cpu();
    if (on_device == (tr->dist->memory == MNRL_DIST_DEVICE_MEMORY)) return 0;
    return mnrl_fail(err, "train.c: the %s backend with collectives on %s memory; dist_init must be given "
                          "train_dist_memory(cfg) (a bug)", tr->ops->name, on_device ? "host" : "device");
}

// A broadcast from rank 0 of host bytes. Collectives on device memory (NCCL) take the bytes
// through a buffer of the backend, allocated for the call: between steps only.
static int broadcast_host(Trainer *tr, void *buf, size_t bytes, MnrlError *err) {
    MnrlDist *d = tr->dist;
    if (d->world == 1) return 0;
    if (d->memory == MNRL_DIST_HOST_MEMORY) return d->ops->broadcast(d, buf, bytes, 0, err);
    void *staged = NULL;
    if (tr->ops->alloc(&staged, bytes, err) != 0) return -1;
    tr->ops->upload(staged, buf, bytes);
    int rc = d->ops->broadcast(d, staged, bytes, 0, err);
    if (rc == 0) {
        tr->ops->download(buf, staged, bytes);
        rc = mnrl_ops_check(tr->ops, err);
    }
    tr->ops->release(staged);
    return rc;
}

// output.dir must not hold the results of another run unless output.overwrite (which
// removes its metrics and checkpoints; final/ is replaced by the export). A run resumed
// from one of output.dir's own checkpoints continues that folder and keeps everything.
static int prepare_output(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    char final_dir[4096], metrics[4096], checkpoints[4096];
    if (mnrl_path_join(final_dir, sizeof final_dir, cfg->output.dir, "final") != 0 ||
        mnrl_path_join(metrics, sizeof metrics, cfg->output.dir, "metrics.jsonl") != 0 ||
        mnrl_path_join(checkpoints, sizeof checkpoints, cfg->output.dir, "checkpoints") != 0) {
        return mnrl_fail(err, "output.dir: path too long: %s", cfg->output.dir);
    }
    if (tr->continuing) return 0;
    int used = mnrl_file_exists(final_dir) || mnrl_file_exists(metrics) || mnrl_file_exists(checkpoints);
    if (used && !cfg->output.overwrite) {
        return mnrl_fail(err, "output.dir: %s already holds a run (final/, metrics.jsonl or checkpoints/); %s"
                              "choose another output.dir or set output.overwrite to true",
                         cfg->output.dir, checkpoint_latest_step(cfg->output.dir) >= 0
                                              ? "continue it with --resume latest, " : "");
    }
    if (used && mnrl_file_exists(metrics) && remove(metrics) != 0) {
        return mnrl_fail(err, "%s: cannot remove the previous run's metrics", metrics);
    }
    if (used && mnrl_remove_tree(checkpoints, err) != 0) {
        return mnrl_fail_context(err, "removing the previous run's checkpoints (output.overwrite)");
    }
    return mnrl_mkdir_p(cfg->output.dir, err);
}

static int open_data(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    if (tokenizer_load(cfg->model.path, &tr->tok, err) != 0) return -1;
    DataOptions opt;
    mnrl_cli_data_options(cfg, &opt);
    if (data_cache_open(&opt, cfg->data.cache_dir, tr->tok, cfg->model.max_seq_length,
                        tr->lead ? stderr : NULL, &tr->cache, err) != 0) {
        return -1;
    }
    tr->opened_cache = 1;
    if (tr->cache.skip_summary[0] && tr->lead) fprintf(stderr, "data: %s\n", tr->cache.skip_summary);
    if (sampler_init(&tr->sampler, tr->cache.text_id, tr->cache.n_rows, tr->cache.n_cols,
                     tr->cache.n_texts, (size_t)cfg->train.batch_size, 0,
                     (uint64_t)cfg->train.seed, err) != 0) {
        return mnrl_fail_context(err, "%s", cfg->data.train);
    }
    tr->opened_sampler = 1;
    // An optimizer step takes batches of one epoch only; more per step than an epoch holds
    // would only allocate rows that are never drawn.
    tr->accum = cfg->train.grad_accum_steps;
    uint64_t batches = sampler_expected_batches(&tr->sampler);
    if ((uint64_t)tr->accum > batches) {
        return mnrl_fail(err, "train.grad_accum_steps = %d exceeds the %llu batches of %d rows in an epoch of %s; "
                              "an optimizer step takes batches of one epoch only: set it to at most %llu",
                         tr->accum, (unsigned long long)batches, cfg->train.batch_size, cfg->data.train,
                         (unsigned long long)batches);
    }
    tr->rows = mnrl_malloc((size_t)tr->accum * (size_t)cfg->train.batch_size * sizeof *tr->rows);
    tr->micro = mnrl_calloc((size_t)tr->accum, sizeof *tr->micro);
    return 0;
}

// The step's packing and, with loss.mini_batch_size below the rank's rows, the chunk's
// (gradcache.h): the activations are then sized for a chunk of mini_batch_size rows.
static int open_batches(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    if (batch_init_for_cache(&tr->batch, &tr->cache, tr->per_rank, cfg->model.max_seq_length, err) != 0) return -1;
    tr->opened_batch = 1;
    size_t mini = (size_t)cfg->loss.mini_batch_size;
    if (mini == 0 || mini >= tr->per_rank) return 0;
    if (batch_init_for_cache(&tr->chunk, &tr->cache, mini, cfg->model.max_seq_length, err) != 0) return -1;
    tr->cached = 1;
    return 0;
}

static int open_model(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    size_t rows = tr->per_rank, cols = tr->cache.n_cols;
    if (open_batches(tr, err) != 0) return -1;
    const PackedBatch *forward = tr->cached ? &tr->chunk : &tr->batch;
    // The loss scores this rank's rows against the candidates of the whole global batch.
    int max_candidates = (int)((size_t)cfg->train.batch_size * (cols - 1));
    ModelLimits limits = {.max_tokens = forward->max_tokens, .max_seqs = forward->max_seqs,
                          .max_seqlen = cfg->model.max_seq_length, .max_anchors = (int)rows,
                          .max_candidates = max_candidates, .max_step_seqs = tr->batch.max_seqs};
    if (model_create(&tr->model, cfg->model.path, tr->ops, &limits, err) != 0) return -1;
    tr->opened_model = 1;
    if (cfg->train.dropout != MNRL_DROPOUT_FROM_MODEL &&
        model_set_dropout(&tr->model, (float)cfg->train.dropout, (float)cfg->train.dropout, err) != 0) {
        return -1;
    }
    if (mnrl_loss_init(&tr->loss, tr->ops, (float)cfg->loss.scale, err) != 0) return -1;
    tr->opened_loss = 1;
    if (mnrl_loss_set_dist(&tr->loss, tr->dist, max_candidates, tr->model.C, err) != 0) return -1;
    if (encoder_init(&tr->encoder, &tr->model, tr->tok, cfg->eval.batch_size, err) != 0) {
        return mnrl_fail_context(err, "%s", cfg->model.path);
    }
    tr->opened_encoder = 1;
    tr->adam = (AdamWOptions){.beta1 = (float)cfg->train.adam_beta1, .beta2 = (float)cfg->train.adam_beta2,
                              .eps = (float)cfg->train.adam_eps,
                              .weight_decay = (float)cfg->train.weight_decay,
                              .max_grad_norm = (float)cfg->train.max_grad_norm};
    return 0;
}

static int open_sts(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    tr->have_sts = tr->lead && cfg->eval.sts_file[0] != '\0';
    if (!tr->have_sts) return 0;
    if (sts_load(cfg->eval.sts_file, cfg->eval.dev_split, &tr->sts_dev, err) != 0) return -1;
    if (sts_load(cfg->eval.sts_file, cfg->eval.test_split, &tr->sts_test, err) != 0) {
        sts_free(&tr->sts_dev);
        return -1;
    }
    sts_evaluator_init(&tr->ev_dev, &tr->sts_dev, (size_t)tr->model.C);
    sts_evaluator_init(&tr->ev_test, &tr->sts_test, (size_t)tr->model.C);
    tr->opened_sts = 1;
    return 0;
}

// Steps as sentence-transformers counts them: len(dataloader) per epoch (the sampler's
// __len__) over the batches per optimizer step, warm-up steps rounded up from the ratio.
static void plan_schedule(Trainer *tr) {
    const MnrlTrainConfig *t = &tr->cfg->train;
    tr->steps_per_epoch = train_steps_per_epoch(sampler_expected_batches(&tr->sampler), tr->accum);
    tr->total_steps = t->max_steps > 0 ? t->max_steps : tr->steps_per_epoch * t->epochs;
    tr->warmup_steps = t->warmup_steps >= 0 ? t->warmup_steps
                                            : (int64_t)ceil(t->warmup_ratio * (double)tr->total_steps);
}

// OUT/batch_order.txt records which rows each step trained on (0-based indices into the
// data's row table, one line per step), so a run can be replayed by another trainer:
// tests/reference/train_reference.py --order trains sentence-transformers on the same
// batches for the "same training, same result" comparison.
// A continued run keeps the lines of its first tr->step steps (and the comments among
// them) and appends after a note; the lines of steps it trains again are cut off.
static int reopen_batch_order(Trainer *tr, const char *path, MnrlError *err) {
    char *text;
    size_t len, keep = 0;
    int64_t steps = 0;
    if (mnrl_read_file(path, &text, &len, err) != 0) return -1;
    for (const char *end; (end = memchr(text + keep, '\n', len - keep)) != NULL; keep = (size_t)(end + 1 - text)) {
        if (text[keep] != '#' && steps++ == tr->step) break;
    }
    free(text);
    if (keep < len && truncate(path, (off_t)keep) != 0) return mnrl_fail(err, "%s: cannot cut it", path);
    tr->batch_order = fopen(path, "a");
    if (!tr->batch_order) return mnrl_fail(err, "%s: cannot open for appending", path);
    fprintf(tr->batch_order, "# resumed at step %lld from %s\n", (long long)tr->step, tr->resume_dir);
    return 0;
}

static int open_batch_order(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    char path[4096];
    if (mnrl_path_join(path, sizeof path, cfg->output.dir, "batch_order.txt") != 0) {
        return mnrl_fail(err, "output.dir: path too long: %s", cfg->output.dir);
    }
    if (tr->continuing && mnrl_file_exists(path)) return reopen_batch_order(tr, path, err);
    tr->batch_order = fopen(path, "w");
    if (!tr->batch_order) return mnrl_fail(err, "%s: cannot create", path);
    fprintf(tr->batch_order, "# rows of %s (format %s, recipe %s, split %s), seed %lld, batch %d",
            cfg->data.train, data_format_name(cfg->data.format), data_recipe_name(cfg->data.recipe),
            cfg->data.split, (long long)cfg->train.seed, cfg->train.batch_size);
    if (tr->accum > 1) fprintf(tr->batch_order, ", up to %d batches per step apart by \" | \"", tr->accum);
    fputc('\n', tr->batch_order);
    if (tr->resumed) fprintf(tr->batch_order, "# resumed at step %lld from %s\n", (long long)tr->step, tr->resume_dir);
    return 0;
}

// One line per optimizer step; its micro-batches (gradient accumulation) apart by " | ".
static void record_step(Trainer *tr, int micro_batches) {
    for (int j = 0; j < micro_batches; j++) {
        const MicroBatch *mb = &tr->micro[j];
        if (j > 0) fputs(" |", tr->batch_order);
        for (size_t i = 0; i < mb->n_global; i++) fprintf(tr->batch_order, i || j ? " %u" : "%u", mb->global[i]);
    }
    fputc('\n', tr->batch_order);
}

// ---- ranks ----------------------------------------------------------------------------------

// The per-rank batch, the core share of each rank, and the test-only toggle's warning.
static int open_ranks(Trainer *tr, MnrlError *err) {
    const MnrlDist *d = tr->dist;
    tr->lead = d->rank == 0;
    if (sampler_per_rank_batch((size_t)tr->cfg->train.batch_size, d->world, &tr->per_rank, err) != 0) {
        return mnrl_fail_context(err, "train.batch_size is the global batch: with %d ranks it must be "
                                 "a multiple of %d", d->world, d->world);
    }
    if (tr->lead && getenv("MNRL_TEST_WRONG_GATHER_ORDER")) {
        fprintf(stderr, "warning: MNRL_TEST_WRONG_GATHER_ORDER is set: a test-only switch that makes "
                        "multi-rank training WRONG (loss.h); unset it\n");
    }
    // Ranks of one node share its cores; without this each would start one OpenMP thread per
    // core, and spinning threads of several ranks slow every rank down many times.
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = getenv("MPI_LOCALNRANKS");
    int on_node = local ? atoi(local) : 1;
    if (d->world > 1 && on_node > 1 && !getenv("OMP_NUM_THREADS")) {
        int threads = omp_get_num_procs() / on_node;
        omp_set_num_threads(threads > 0 ? threads : 1);
    }
    if (d->world == 1) return 0;
    return tr->ops->alloc((void **)&tr->step_counts, 2 * sizeof(float), err);
}

// Rank 0 opens (and, when stale, builds) the data cache first; the others wait for it and
// then read it, so that no two ranks write one cache file.
static int open_data_in_turn(Trainer *tr, MnrlError *err) {
    MnrlDist *d = tr->dist;
    if (!tr->lead && d->ops->barrier(d, err) != 0) return -1;
    if (open_data(tr, err) != 0) return -1;
    return tr->lead ? d->ops->barrier(d, err) : 0;
}

// Every rank must train on the same rows for the same number of steps, or one would wait
// forever in a collective the others never reach: rank 0's counts against this rank's.
static int check_same_plan(Trainer *tr, MnrlError *err) {
    MnrlDist *d = tr->dist;
    int64_t mine[3] = {(int64_t)tr->cache.n_rows, (int64_t)tr->cache.n_cols, tr->total_steps};
    int64_t lead[3];
    memcpy(lead, mine, sizeof lead);
    if (broadcast_host(tr, lead, sizeof lead, err) != 0) return -1;
    if (memcmp(lead, mine, sizeof lead) != 0) {
        return mnrl_fail(err, "rank %d: %s gives %lld rows x %lld columns and %lld steps here, but "
                         "%lld x %lld and %lld steps on rank 0; every rank must read the same data "
                         "file and config", d->rank, tr->cfg->data.train, (long long)mine[0],
                         (long long)mine[1], (long long)mine[2], (long long)lead[0], (long long)lead[1],
                         (long long)lead[2]);
    }
    return 0;
}

// The micro-batch of the n rows of global that the ranks train on: a full batch gives
// per_rank rows to each rank; a short one is split evenly (see the top). It has no rows
// (it is skipped on every rank alike) when n is below the number of ranks.
static MicroBatch rank_rows(Trainer *tr, const uint32_t *global, size_t n) {
    size_t world = (size_t)tr->dist->world;
    size_t b = n == (size_t)tr->cfg->train.batch_size ? tr->per_rank : n / world;
    tr->rows_left_over += n - b * world;
    MicroBatch mb = {.global = global, .n_global = b * world};
    mb.n_rows = sampler_rank_slice(global, b * world, b, tr->dist->rank, &mb.rows);
    return mb;
}

// Whether any rank has run out of batches: every rank stops together.
static int ranks_stop(Trainer *tr, size_t n, int *stop, MnrlError *err) {
    return tr->dist->ops->any(tr->dist, n == 0, stop, err);
}

// Sums the parameter gradients over the ranks (the loss was divided by the global batch).
static int sum_gradients(Trainer *tr, MnrlError *err) {
    MnrlDist *d = tr->dist;
    if (d->world == 1) return 0;
    return d->ops->all_reduce(d, tr->model.grads, tr->model.table.n_floats, err);
}

// The step's tokens and texts (this rank's on entry) over all ranks, for tok/s and seq/s.
static int step_totals(Trainer *tr, double *tokens, double *texts, MnrlError *err) {
    MnrlDist *d = tr->dist;
    if (d->world == 1) return 0;
    float counts[2] = {(float)*tokens, (float)*texts};
    tr->ops->upload(tr->step_counts, counts, sizeof counts);
    if (d->ops->all_reduce(d, tr->step_counts, 2, err) != 0) return -1;
    tr->ops->download(counts, tr->step_counts, sizeof counts);
    *tokens = counts[0], *texts = counts[1];
    return 0;
}

// ---- checkpoints ------------------------------------------------------------------------------

// What a checkpoint of the current step records (see CheckpointState).
static CheckpointState trainer_state(const Trainer *tr) {
    const Sampler *s = &tr->sampler;
    CheckpointState st = {.step = tr->step, .total_steps = tr->total_steps, .epoch = s->epoch,
                          .epoch_batches = sampler_stats(s)->batches, .epoch_seed = s->seed + s->epoch,
                          .sampler_rng = s->rng, .adam_step = tr->model.adam_step, .bad_steps = tr->bad_steps,
                          .rows_left_over = tr->rows_left_over, .data_rows = tr->cache.n_rows,
                          .data_crc = tr->cache.header->source_crc,
                          .tokenizer = tr->cache.header->tokenizer_fingerprint,
                          .config_hash = config_resume_hash(tr->cfg),
                          .seed = tr->cfg->train.seed, .world_size = tr->dist->world,
                          .dev_before = tr->scores.dev_before, .test_before = tr->scores.test_before};
    snprintf(st.version, sizeof st.version, "%s", MNRL_VERSION);
    return st;
}

// The all-reduce keeps every rank's weights equal to rank 0's; a checkpoint is written only
// when they are, so that it holds the state of every rank.
static int check_ranks_agree(Trainer *tr, const float *params, MnrlError *err) {
    MnrlDist *d = tr->dist;
    if (d->world == 1) return 0;
    uint64_t mine = mnrl_hash64(params, tr->model.table.n_floats * sizeof *params, 0), lead = mine;
    int differs;
    if (broadcast_host(tr, &lead, sizeof lead, err) != 0 || d->ops->any(d, mine != lead, &differs, err) != 0) {
        return -1;
    }
    if (!differs) return 0;
    char who[32] = "another rank's";
    if (mine != lead) snprintf(who, sizeof who, "rank %d's", d->rank);
    return mnrl_fail(err, "step %lld: %s weights differ from rank 0's, so no checkpoint was written: the ranks "
                          "diverged (a bug or a hardware fault); resume from the last checkpoint",
                     (long long)tr->step, who);
}

// Rank 0: the moments next to the weights in host, the checkpoint written, a line logged.
static int write_checkpoint(Trainer *tr, float *host, MnrlError *err) {
    const Model *m = &tr->model;
    size_t n = m->table.n_floats;
    tr->ops->download(host + n, m->adam_m, n * sizeof *host);
    tr->ops->download(host + 2 * n, m->adam_v, n * sizeof *host);
    CheckpointState st = trainer_state(tr);
    char *config_json = config_to_json(tr->cfg), dir[4096], line[4200];
    CheckpointWrite w = {.out_dir = tr->cfg->output.dir, .state = &st, .table = &m->table, .params = host,
                         .exp_avg = host + n, .exp_avg_sq = host + 2 * n, .config_json = config_json,
                         .keep = tr->cfg->checkpoint.keep};
    int rc = checkpoint_write(&w, dir, sizeof dir, err);
    free(config_json);
    if (rc != 0) return -1;
    snprintf(line, sizeof line, "checkpoint %s", dir);
    steplog_note(&tr->log, tr->step, line);
    return 0;
}

// A checkpoint of the current step, unless one exists already (written or resumed from).
// Between steps, so its buffers may be allocated.
static int save_checkpoint(Trainer *tr, MnrlError *err) {
    if (tr->last_checkpoint == tr->step) return 0;
    size_t n = tr->model.table.n_floats;
    float *host = mnrl_malloc((tr->lead ? 3 : 1) * n * sizeof *host);  // rank 0: and the moments
    model_params_host(&tr->model, host);
    int rc = check_ranks_agree(tr, host, err);
    if (rc == 0 && tr->lead) rc = write_checkpoint(tr, host, err);
    free(host);
    if (rc == 0) tr->last_checkpoint = tr->step;
    return rc;
}

// Rank 0: the notes a user wants when the resumed run is not quite the run that wrote it.
static void note_resume(const Trainer *tr, const CheckpointState *st) {
    const char *dir = tr->resume_dir;
    if (st->total_steps != tr->total_steps) {
        fprintf(stderr, "note: %s was written by a run of %lld steps, this one has %lld (train.epochs / "
                        "max_steps): the learning-rate schedule follows the new length from here\n",
                dir, (long long)st->total_steps, (long long)tr->total_steps);
    }
    if (st->data_crc != tr->cache.header->source_crc) {
        fprintf(stderr, "warning: %s changed since %s was written (as many rows, other bytes): the batches "
                        "go on by row number, so the resumed steps train on the changed rows\n",
                tr->cfg->data.train, dir);
    }
    int64_t latest = checkpoint_latest_step(tr->cfg->output.dir);
    if (tr->continuing && latest > st->step) {
        fprintf(stderr, "note: checkpoints of later steps (up to %lld) belong to the run this one replaces: the "
                        "next checkpoint removes them\n", (long long)latest);
    }
    if (st->step == tr->total_steps) {
        fprintf(stderr, "note: %s is at the run's last step; nothing is left to train\n", dir);
    }
}

// Rank 0: finds and reads the checkpoint and checks that it belongs to this run.
static int read_checkpoint(Trainer *tr, CheckpointState *st, float *host, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    size_t n = tr->model.table.n_floats;
    if (checkpoint_find(cfg->output.dir, tr->inv->resume, tr->resume_dir, sizeof tr->resume_dir, err) != 0 ||
        checkpoint_read(tr->resume_dir, &tr->model.table, st, host, host + n, host + 2 * n, err) != 0 ||
        checkpoint_check_config(tr->resume_dir, st, cfg, tr->dist->world, err) != 0) {
        return -1;
    }
    if (st->data_rows != tr->cache.n_rows) {
        return mnrl_fail(err, "%s: written for %llu training rows, but %s gives %zu now; resume with the data "
                              "it was trained on", tr->resume_dir, (unsigned long long)st->data_rows,
                         cfg->data.train, tr->cache.n_rows);
    }
    if (st->tokenizer != tr->cache.header->tokenizer_fingerprint) {
        return mnrl_fail(err, "%s: trained with another tokenizer (vocabulary or lower-casing) than that of %s; "
                              "resume with the model folder it was trained from", tr->resume_dir, cfg->model.path);
    }
    if (st->step > tr->total_steps) {
        return mnrl_fail(err, "%s: at step %lld, past this run's %lld steps; raise train.max_steps or "
                              "train.epochs, or resume from an earlier checkpoint", tr->resume_dir,
                         (long long)st->step, (long long)tr->total_steps);
    }
    tr->continuing = checkpoint_in_run(tr->resume_dir, cfg->output.dir);
    note_resume(tr, st);
    printf("resuming from %s: step %lld of %lld (epoch %llu, batch %llu of it)\n", tr->resume_dir,
           (long long)st->step, (long long)tr->total_steps, (unsigned long long)st->epoch + 1,
           (unsigned long long)st->epoch_batches);
    return 0;
}

// Every rank: the checkpoint's weights, moments, counters and sampler position.
static int apply_checkpoint(Trainer *tr, const CheckpointState *st, const float *host, MnrlError *err) {
    Model *m = &tr->model;
    size_t n = m->table.n_floats;
    model_set_params(m, host);
    tr->ops->upload(m->adam_m, host + n, n * sizeof *host);
    tr->ops->upload(m->adam_v, host + 2 * n, n * sizeof *host);
    m->adam_step = (long)st->adam_step;
    tr->step = st->step;
    tr->bad_steps = (int)st->bad_steps;
    tr->rows_left_over = st->rows_left_over;
    tr->scores.dev_before = st->dev_before;
    tr->scores.test_before = st->test_before;
    tr->resumed = 1;
    tr->last_checkpoint = tr->continuing ? st->step : -1;  // else the first is this run's own
    if (sampler_seek(&tr->sampler, st->epoch, st->epoch_batches, err) != 0) {
        return mnrl_fail_context(err, "--resume %s", tr->inv->resume);
    }
    if (tr->sampler.rng != st->sampler_rng) {
        return mnrl_fail(err, "--resume %s: the sampler's state after replaying epoch %llu differs from the "
                              "checkpoint's; the data's rows changed since it was written", tr->inv->resume,
                         (unsigned long long)st->epoch + 1);
    }
    tr->positioned = 1;
    return 0;
}

// --resume: rank 0 reads the checkpoint, every rank receives and applies it.
static int open_resume(Trainer *tr, MnrlError *err) {
    MnrlDist *d = tr->dist;
    size_t n = tr->model.table.n_floats;
    float *host = mnrl_malloc(3 * n * sizeof *host);
    CheckpointState st;
    int rc = tr->lead ? read_checkpoint(tr, &st, host, err) : 0;
    if (rc == 0 && d->world > 1) {
        rc = broadcast_host(tr, &st, sizeof st, err);
        if (rc == 0) rc = broadcast_host(tr, &tr->continuing, sizeof tr->continuing, err);
        if (rc == 0) rc = broadcast_host(tr, host, 3 * n * sizeof *host, err);
    }
    if (rc == 0) rc = apply_checkpoint(tr, &st, host, err);
    free(host);
    return rc;
}

// ---- stop signals -----------------------------------------------------------------------------
// SIGINT, SIGTERM and SIGUSR1 (SLURM's --signal=USR1@SECONDS warning before a time limit;
// mpirun forwards USR1 to the ranks, whereas it ends them on INT and TERM) ask for a stop.
// The handler only records the signal; the loop asks every rank at each step boundary
// (stop_requested), so all stop after the same step. A second signal ends the process at
// once, with the signal's default action.

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t stop_note;  // rank 0: say that the stop is coming
static const int stop_signals[] = {SIGINT, SIGTERM, SIGUSR1};
#define N_STOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])

static void on_stop_signal(int sig) {
    if (stop_signal) {
        signal(sig, SIG_DFL);
        raise(sig);  // delivered when this handler returns
        return;
    }
    stop_signal = sig;
    static const char note[] = "\nmnrl_cuda: stopping after this step with a checkpoint (signal again to stop now)\n";
    if (stop_note && write(STDERR_FILENO, note, sizeof note - 1) < 0) stop_note = 0;
}

static void catch_stop_signals(struct sigaction saved[N_STOP_SIGNALS], int lead) {
    stop_signal = 0;
    stop_note = lead;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;  // reads and writes in progress go on
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) sigaction(stop_signals[i], &sa, &saved[i]);
}

static void release_stop_signals(const struct sigaction saved[N_STOP_SIGNALS]) {
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) sigaction(stop_signals[i], &saved[i], NULL);
}

// Whether a stop signal reached any rank; tr->stopped_by names it (-1: another rank's).
static int stop_requested(Trainer *tr, int *stop, MnrlError *err) {
    int sig = stop_signal;
    if (tr->dist->ops->any(tr->dist, sig != 0, stop, err) != 0) return -1;
    if (*stop) tr->stopped_by = sig ? sig : -1;
    return 0;
}

static const char *signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
}

// Rank 0, after the stop's checkpoint: where it is and the exact command that goes on.
static void print_stop(Trainer *tr) {
    size_t cap = 2 * sizeof tr->resume_dir + strlen(tr->inv->resume_command);
    char *text = mnrl_malloc(cap);
    snprintf(text, cap, "stopped by %s after step %lld of %lld; checkpoint %s/checkpoints/step-%07lld\n"
                        "resume with: %s", signal_name(tr->stopped_by), (long long)tr->step,
             (long long)tr->total_steps, tr->cfg->output.dir, (long long)tr->step, tr->inv->resume_command);
    steplog_note(&tr->log, tr->step, text);
    free(text);
}

// ---- opening and closing ----------------------------------------------------------------------

static void trainer_close(Trainer *tr) {
    if (tr->batch_order) fclose(tr->batch_order);
    if (tr->opened_log) {
        MnrlError ignored;
        steplog_close(&tr->log, &ignored);
    }
    if (tr->opened_sts) {
        sts_evaluator_free(&tr->ev_dev);
        sts_evaluator_free(&tr->ev_test);
        sts_free(&tr->sts_dev);
        sts_free(&tr->sts_test);
    }
    if (tr->opened_encoder) encoder_free(&tr->encoder);
    if (tr->opened_loss) mnrl_loss_free(&tr->loss);
    if (tr->opened_model) model_free(&tr->model);
    if (tr->opened_batch) batch_free(&tr->batch);
    if (tr->cached) batch_free(&tr->chunk);
    free(tr->rows);
    free(tr->micro);
    if (tr->opened_sampler) sampler_free(&tr->sampler);
    if (tr->opened_cache) data_cache_close(&tr->cache);
    if (tr->tok) tokenizer_free(tr->tok);
    if (tr->step_counts) tr->ops->release(tr->step_counts);
}

static int trainer_open(Trainer *tr, const MnrlConfig *cfg, MnrlDist *dist, const TrainInvocation *inv,
                        MnrlError *err) {
    memset(tr, 0, sizeof *tr);
    tr->cfg = cfg;
    tr->dist = dist;
    tr->inv = inv;
    tr->last_checkpoint = -1;
    tr->scores = (ExportScores){NAN, NAN, NAN, NAN};
    // The output folder is touched last, so that a run failing on its inputs leaves nothing.
    if (select_backend(cfg, dist->rank == 0, &tr->ops, err) != 0 || check_dist_memory(tr, err) != 0 ||
        open_ranks(tr, err) != 0 ||
        open_data_in_turn(tr, err) != 0 || open_model(tr, err) != 0 || open_sts(tr, err) != 0) {
        return -1;
    }
    plan_schedule(tr);
    if (check_same_plan(tr, err) != 0 || (inv->resume && open_resume(tr, err) != 0) ||
        (tr->lead && prepare_output(tr, err) != 0)) {
        return -1;
    }
    if (!tr->lead) return 0;
    if (steplog_open(&tr->log, stdout, cfg->output.dir, tr->total_steps, tr->step, cfg->train.log_every,
                     err) != 0) {
        return -1;
    }
    tr->opened_log = 1;
    if (open_batch_order(tr, err) != 0) return -1;
    char rows[32];
    mnrl_format_count(tr->cache.n_rows, rows, sizeof rows);
    char cached[96] = "", accum[96] = "";
    if (tr->cached) snprintf(cached, sizeof cached, " (cached in chunks of %d rows)", cfg->loss.mini_batch_size);
    if (tr->accum > 1) snprintf(accum, sizeof accum, " x %d accumulated (train.grad_accum_steps)", tr->accum);
    printf("training %s (%zu parameters) on %s rows of %s, batch %d%s%s, %lld steps (%lld warm-up), "
           "backend %s\n",
           cfg->model.path, model_num_params(&tr->model), rows, cfg->data.train, cfg->train.batch_size, cached,
           accum, (long long)tr->total_steps, (long long)tr->warmup_steps, tr->ops->name);
    if (cfg->loss.mini_batch_size > 0 && !tr->cached) {
        printf("note: loss.mini_batch_size %d is not below the %zu rows per rank: steps are not cached\n",
               cfg->loss.mini_batch_size, tr->per_rank);
    }
    if (dist->world > 1) {
        printf("data-parallel: %d ranks (%s) x %zu rows; every anchor is scored against all %d x %zu "
               "candidates of the global batch\n", dist->world, dist->ops->name, tr->per_rank,
               cfg->train.batch_size, tr->cache.n_cols - 1);
    }
    return 0;
}

// Evaluates one STS split; *spearman receives the score (×100).
static int evaluate(Trainer *tr, StsEvaluator *ev, const char *split, double *spearman, MnrlError *err) {
    StsScores scores;
    if (sts_evaluate(ev, &tr->encoder, &scores, err) != 0) return -1;
    if (spearman) *spearman = scores.spearman;
    return steplog_eval(&tr->log, tr->step, split, scores.spearman, scores.pearson, err);
}

// The forward, loss and backward of the step's micro-batches on this rank's rows, the
// parameter gradients summing to their mean (see the top). *loss: the mean of their global
// losses; *tokens and *texts: this rank's counts. A micro-batch with a non-finite loss
// ends the step there.
static int accumulate_gradients(Trainer *tr, int micro_batches, double *loss, double *tokens, double *texts,
                                MnrlError *err) {
    Model *m = &tr->model;
    mnrl_loss_set_micro_batches(&tr->loss, micro_batches);
    *loss = 0, *tokens = 0, *texts = 0;
    for (int j = 0; j < micro_batches && isfinite(*loss); j++) {
        const MicroBatch *mb = &tr->micro[j];
        if (batch_pack_rows(&tr->batch, &tr->cache, mb->rows, mb->n_rows, err) != 0) return -1;
        StepTexts step = {&tr->batch, (int)mb->n_rows, tr->batch.cols, (uint64_t)tr->cfg->train.seed,
                          gradcache_micro_step((uint64_t)tr->step, tr->accum, j), (uint32_t)tr->dist->rank};
        if (gradcache_step(m, &tr->loss, &step, tr->cached ? &tr->chunk : NULL, err) != 0) return -1;
        // The backward pass is queued before the loss is read: reading waits for the device,
        // which would otherwise idle while the host queues the backward's launches. A
        // non-finite loss then costs a wasted backward pass, and skips the update as before.
        *loss += mnrl_loss_read(&tr->loss);  // already divided by micro_batches
        *tokens += tr->batch.T, *texts += tr->batch.S;
    }
    return mnrl_ops_check(m->ops, err);  // a failed kernel, not a bad batch
}

// One optimizer step on this rank's rows of the step's micro-batches. Returns the global
// loss (the micro-batches' mean); *norm the pre-clip gradient norm; *tokens and *texts this
// rank's counts. A non-finite loss or norm skips the update (the weights stay as they were)
// and counts as a bad step; the loss and the norm are the same on every rank, so every rank
// decides alike.
static int train_step(Trainer *tr, int micro_batches, double *loss_out, double *norm_out, double *tokens,
                      double *texts, MnrlError *err) {
    Model *m = &tr->model;
    *norm_out = NAN;
    if (accumulate_gradients(tr, micro_batches, loss_out, tokens, texts, err) != 0) return -1;
    if (!isfinite(*loss_out)) {
        model_zero_grad(m);  // no optimizer step to clear them for the next step
        return 0;
    }
    if (sum_gradients(tr, err) != 0) return -1;
    float lr = mnrl_lr_warmup_linear((long)tr->step, (long)tr->warmup_steps, (long)tr->total_steps,
                                     (float)tr->cfg->train.lr);
    model_optimizer_step(m, lr, &tr->adam);  // queued; it leaves the gradients zeroed
    *norm_out = model_optimizer_finish(m);
    return mnrl_ops_check(m->ops, err);
}

static int log_step(Trainer *tr, double loss, double norm, double seconds, double tokens, double texts,
                    MnrlError *err) {
    StepStats s = {.step = tr->step, .loss = loss, .grad_norm = norm,
                   .epoch = (double)tr->step / (double)(tr->steps_per_epoch > 0 ? tr->steps_per_epoch : 1),
                   .lr = mnrl_lr_warmup_linear((long)tr->step - 1, (long)tr->warmup_steps,
                                               (long)tr->total_steps, (float)tr->cfg->train.lr),
                   .ms = 1e3 * seconds, .tokens_per_s = tokens / seconds,
                   .seqs_per_s = texts / seconds, .mfu = NAN};
    return steplog_step(&tr->log, &s, err);
}

static int check_bad_step(Trainer *tr, double loss, double norm, MnrlError *err) {
    if (isfinite(loss) && isfinite(norm)) {
        tr->bad_steps = 0;
        return 0;
    }
    tr->bad_steps++;
    if (tr->lead) {
        fprintf(stderr, "warning: step %lld: loss %g, gradient norm %g; the update was skipped\n",
                (long long)tr->step, loss, norm);
    }
    if (tr->bad_steps >= tr->cfg->train.max_bad_steps) {
        return mnrl_fail(err, "%d consecutive steps had a non-finite loss or gradient "
                              "(train.max_bad_steps); lower train.lr or check the data",
                         tr->bad_steps);
    }
    return 0;
}

// Every checkpoint.every_steps steps, but not during a run of skipped (non-finite) steps:
// their checkpoints would rotate the last good one away (keep).
static int checkpoint_due(const Trainer *tr) {
    int64_t every = tr->cfg->checkpoint.every_steps;
    return every > 0 && tr->step % every == 0 && tr->step < tr->total_steps && tr->bad_steps == 0;
}

// Draws the next optimizer step's batches into tr->micro: *micro_batches of them (up to
// accum; those too short to split over the ranks are skipped), fewer when the epoch runs
// out of batches, which *epoch_over then says.
static int draw_step(Trainer *tr, int *micro_batches, int *epoch_over, MnrlError *err) {
    *micro_batches = 0, *epoch_over = 0;
    for (int i = 0; i < tr->accum && !*epoch_over; i++) {
        uint32_t *global = tr->rows + (size_t)i * (size_t)tr->cfg->train.batch_size;
        size_t n = sampler_next_batch(&tr->sampler, global);
        if (ranks_stop(tr, n, epoch_over, err) != 0) return -1;
        MicroBatch mb = *epoch_over ? (MicroBatch){0} : rank_rows(tr, global, n);
        if (mb.n_rows > 0) tr->micro[(*micro_batches)++] = mb;
    }
    return 0;
}

// Trains the sampler's current epoch until it runs out of batches, the run reaches its
// last step, or a stop signal arrives (tr->stopped_by).
static int run_epoch(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    for (int epoch_over = 0; tr->step < tr->total_steps && !epoch_over;) {
        double loss, norm, tokens, texts, t0 = mnrl_now();
        int stop, micro_batches;
        if (stop_requested(tr, &stop, err) != 0) return -1;
        if (stop) return 0;
        if (draw_step(tr, &micro_batches, &epoch_over, err) != 0) return -1;
        if (micro_batches == 0) continue;
        if (tr->lead) record_step(tr, micro_batches);
        if (train_step(tr, micro_batches, &loss, &norm, &tokens, &texts, err) != 0) return -1;
        tr->step++;
        double seconds = mnrl_now() - t0;
        if (step_totals(tr, &tokens, &texts, err) != 0) return -1;
        if (tr->lead && log_step(tr, loss, norm, seconds, tokens, texts, err) != 0) return -1;
        if (check_bad_step(tr, loss, norm, err) != 0) return -1;
        if (tr->have_sts && cfg->eval.every_steps > 0 && tr->step % cfg->eval.every_steps == 0 &&
            tr->step < tr->total_steps &&
            evaluate(tr, &tr->ev_dev, cfg->eval.dev_split, NULL, err) != 0) {
            return -1;
        }
        if (checkpoint_due(tr) && save_checkpoint(tr, err) != 0) return -1;
    }
    return 0;
}

// Epochs from the first (or the checkpoint's, its sampler already positioned) on.
static int run_epochs(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    for (uint64_t epoch = tr->sampler.epoch; tr->step < tr->total_steps && !tr->stopped_by; epoch++) {
        if (!tr->positioned) sampler_begin_epoch(&tr->sampler, epoch);
        tr->positioned = 0;
        if (run_epoch(tr, err) != 0) return -1;
        if (epoch + 1 >= (uint64_t)cfg->train.epochs && cfg->train.max_steps == 0) break;
    }
    if (tr->lead && tr->rows_left_over > 0) {
        fprintf(stderr, "note: %llu rows of short final batches were not trained on: they did not "
                        "split evenly over %d ranks\n", (unsigned long long)tr->rows_left_over,
                tr->dist->world);
    }
    return 0;
}

static int export_final(Trainer *tr, const char *command_line, MnrlError *err) {
    float *params = mnrl_malloc(tr->model.table.n_floats * sizeof *params);
    model_params_host(&tr->model, params);
    ExportInfo info = {.out_dir = tr->cfg->output.dir, .base_model_dir = tr->cfg->model.path,
                       .config = tr->cfg, .train_rows = (int64_t)tr->cache.n_rows, .steps = tr->step,
                       .scores = tr->have_sts ? &tr->scores : NULL, .command_line = command_line};
    int rc = export_model(&info, &tr->model.table, params, err);
    free(params);
    if (rc == 0) printf("saved %s/final (load it with SentenceTransformer(\"%s/final\"))\n",
                        tr->cfg->output.dir, tr->cfg->output.dir);
    return rc;
}

static int train_and_evaluate(Trainer *tr, MnrlError *err) {
    const MnrlConfig *cfg = tr->cfg;
    if (tr->have_sts && cfg->eval.before_training && !tr->resumed) {
        if (evaluate(tr, &tr->ev_dev, cfg->eval.dev_split, &tr->scores.dev_before, err) != 0 ||
            evaluate(tr, &tr->ev_test, cfg->eval.test_split, &tr->scores.test_before, err) != 0) {
            return -1;
        }
    }
    // The last checkpoint comes before the final evaluation, so that a run stopped there
    // resumes with nothing left to train.
    if (run_epochs(tr, err) != 0 || save_checkpoint(tr, err) != 0) return -1;
    if (!tr->lead) return 0;
    if (tr->stopped_by) {
        print_stop(tr);
        return 0;
    }
    if (tr->have_sts) {
        if (evaluate(tr, &tr->ev_dev, cfg->eval.dev_split, &tr->scores.dev_after, err) != 0 ||
            evaluate(tr, &tr->ev_test, cfg->eval.test_split, &tr->scores.test_after, err) != 0) {
            return -1;
        }
    }
    return export_final(tr, tr->inv->command_line, err);
}

int64_t train_steps_per_epoch(uint64_t batches, int accum_steps) {
    return (int64_t)((batches + (uint64_t)accum_steps - 1) / (uint64_t)accum_steps);
}

int train_run(const MnrlConfig *cfg, MnrlDist *dist, const TrainInvocation *inv, MnrlError *err) {
    Trainer tr;
    struct sigaction saved[N_STOP_SIGNALS];
    catch_stop_signals(saved, dist->rank == 0);
    int rc = trainer_open(&tr, cfg, dist, inv, err);
    if (rc == 0) rc = train_and_evaluate(&tr, err);
    trainer_close(&tr);
    release_stop_signals(saved);
    return rc;
}
