// cmd_prepare.c — `mnrl_cuda prepare CONFIG.json`: a dry run of everything before the
// first training step. Loads the tokenizer and the training data, builds (or reuses) the
// pre-tokenized cache, runs one epoch of the NoDuplicates sampler and reports what a user
// wants to know before spending GPU hours: rows, unique texts, token lengths, texts cut at
// max_seq_length, batches and deferred rows, the step/warm-up schedule, how much work
// packing saves over padding each batch column to its longest text (what
// sentence-transformers does), and the evaluation pairs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/config.h"
#include "mnrl/data_cache.h"
#include "mnrl/dataset.h"
#include "mnrl/log.h"
#include "mnrl/sampler.h"
#include "mnrl/tokenizer.h"
#include "mnrl/train.h"

static void print_prepare_help(void) {
    printf("usage: mnrl_cuda prepare CONFIG.json [--set section.key=value]... [--print-config]\n"
           "\n"
           "Checks a run before training: loads the model's tokenizer and the training data,\n"
           "builds or reuses the pre-tokenized cache (data.cache_dir), runs one epoch of the\n"
           "NoDuplicates sampler, and reports rows, token lengths, batches, the schedule,\n"
           "the padding that packing avoids, and the STS evaluation pairs.\n"
           "\n"
           "options:\n"
           "%s"
           "  -h, --help              this text\n",
           mnrl_cli_config_options_help);
}

// Token counts of one epoch's batches: packed (what we compute) and padded the way
// sentence-transformers pads (each column of a batch to its longest text).
typedef struct {
    uint64_t packed, padded;
} PackingStats;

static void count_batch_tokens(const DataCache *cache, const uint32_t *rows, size_t n,
                               PackingStats *stats) {
    for (size_t col = 0; col < cache->n_cols; col++) {
        uint32_t longest = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t len = data_cache_length(cache, cache->text_id[rows[i] * cache->n_cols + col]);
            stats->packed += len;
            if (len > longest) longest = len;
        }
        stats->padded += (uint64_t)longest * n;
    }
}

static void report_lengths(const DataCache *cache, int max_seq_length) {
    uint64_t tokens = 0, longest = 0, at_limit = 0, cells = (uint64_t)cache->n_rows * cache->n_cols;
    for (uint64_t cell = 0; cell < cells; cell++) {
        uint32_t len = data_cache_length(cache, cache->text_id[cell]);
        tokens += len;
        if (len > longest) longest = len;
        if (len >= (uint32_t)max_seq_length) at_limit++;
    }
    char n_at_limit[32];
    mnrl_format_count(at_limit, n_at_limit, sizeof n_at_limit);
    printf("tokens    %.1f per text on average ([CLS] and [SEP] included), longest %llu; "
           "%s texts (%.2f%%) reach max_seq_length %d and are cut there\n",
           cells ? (double)tokens / (double)cells : 0.0, (unsigned long long)longest,
           n_at_limit, cells ? 100.0 * (double)at_limit / (double)cells : 0.0, max_seq_length);
}

static int report_epoch(const MnrlConfig *cfg, const DataCache *cache, MnrlError *err) {
    Sampler sampler;
    if (sampler_init(&sampler, cache->text_id, cache->n_rows, cache->n_cols, cache->n_texts,
                     (size_t)cfg->train.batch_size, 0, (uint64_t)cfg->train.seed, err) != 0) {
        return mnrl_fail_context(err, "%s", cfg->data.train);
    }
    uint32_t *rows = mnrl_malloc((size_t)cfg->train.batch_size * sizeof *rows);
    PackingStats packing = {0, 0};
    double t0 = mnrl_now();
    sampler_begin_epoch(&sampler, 0);
    size_t n;
    while ((n = sampler_next_batch(&sampler, rows)) > 0) count_batch_tokens(cache, rows, n, &packing);
    double seconds = mnrl_now() - t0;
    const SamplerStats *st = sampler_stats(&sampler);
    char batches[32], deferred[32], packed[32], padded[32];
    mnrl_format_count(st->batches, batches, sizeof batches);
    mnrl_format_count(st->rows_deferred, deferred, sizeof deferred);
    mnrl_format_count(packing.packed, packed, sizeof packed);
    mnrl_format_count(packing.padded, padded, sizeof padded);
    printf("sampler   epoch 0: %s batches of up to %d rows in %.3f s; %s rows deferred "
           "(a text already in the batch), %llu dropped\n",
           batches, cfg->train.batch_size, seconds, deferred,
           (unsigned long long)st->rows_dropped);
    printf("packing   %s tokens per epoch packed; padding each batch column to its longest "
           "text would compute %s (%.2fx)\n",
           packed, padded, packing.packed ? (double)packing.padded / (double)packing.packed : 0.0);

    int accum = cfg->train.grad_accum_steps;
    uint64_t steps = cfg->train.max_steps > 0
                         ? (uint64_t)cfg->train.max_steps
                         : (uint64_t)train_steps_per_epoch(st->batches, accum) * (uint64_t)cfg->train.epochs;
    uint64_t warmup = cfg->train.warmup_steps >= 0
                          ? (uint64_t)cfg->train.warmup_steps
                          : (uint64_t)ceil(cfg->train.warmup_ratio * (double)steps);
    char per_step[64] = "";
    if (accum > 1) snprintf(per_step, sizeof per_step, ", %d batches per step (accumulated)", accum);
    printf("schedule  %llu steps (%d epoch%s%s), %llu warm-up steps, peak lr %g\n",
           (unsigned long long)steps, cfg->train.epochs, cfg->train.epochs == 1 ? "" : "s", per_step,
           (unsigned long long)warmup, cfg->train.lr);
    free(rows);
    sampler_free(&sampler);
    return 0;
}

static int report_sts(const MnrlConfig *cfg, MnrlError *err) {
    if (cfg->eval.sts_file[0] == '\0') {
        printf("eval      none (eval.sts_file is empty)\n");
        return 0;
    }
    StsSet dev, test;
    if (sts_load(cfg->eval.sts_file, cfg->eval.dev_split, &dev, err) != 0) return -1;
    if (sts_load(cfg->eval.sts_file, cfg->eval.test_split, &test, err) != 0) {
        sts_free(&dev);
        return -1;
    }
    char n_dev[32], n_test[32];
    mnrl_format_count(dev.n, n_dev, sizeof n_dev);
    mnrl_format_count(test.n, n_test, sizeof n_test);
    printf("eval      %s: %s %s pairs, %s %s pairs\n", cfg->eval.sts_file, n_dev,
           cfg->eval.dev_split, n_test, cfg->eval.test_split);
    sts_free(&dev);
    sts_free(&test);
    return 0;
}

static int prepare(const MnrlConfig *cfg, MnrlError *err) {
    Tokenizer *tok;
    if (tokenizer_load(cfg->model.path, &tok, err) != 0) return -1;
    printf("model     %s (vocabulary of %d tokens)\n", cfg->model.path, tokenizer_vocab_size(tok));
    if (cfg->model.max_seq_length > tokenizer_model_max_length(tok)) {
        fprintf(stderr, "warning: model.max_seq_length %d exceeds the model's limit of %d "
                        "tokens; training will fail on longer texts' positions\n",
                cfg->model.max_seq_length, tokenizer_model_max_length(tok));
    }
    DataOptions opt;
    mnrl_cli_data_options(cfg, &opt);
    DataCache cache;
    int rc = data_cache_open(&opt, cfg->data.cache_dir, tok, cfg->model.max_seq_length, stderr,
                             &cache, err);
    tokenizer_free(tok);
    if (rc != 0) return -1;
    char rows[32], texts[32];
    mnrl_format_count(cache.n_rows, rows, sizeof rows);
    mnrl_format_count(cache.n_texts, texts, sizeof texts);
    printf("data      %s: %s rows of %zu texts (anchor, positive%s), %s unique texts\n",
           cfg->data.train, rows, cache.n_cols, cache.n_cols > 2 ? ", negatives" : "", texts);
    if (cache.skip_summary[0]) printf("data      %s\n", cache.skip_summary);
    printf("cache     %s (%s)\n", cache.path, cache.built ? cache.rebuild_reason : "reused");
    report_lengths(&cache, cfg->model.max_seq_length);
    rc = report_epoch(cfg, &cache, err);
    data_cache_close(&cache);
    if (rc == 0) rc = report_sts(cfg, err);
    return rc;
}

int mnrl_cmd_prepare(int argc, char **argv) {
    MnrlConfig cfg;
    int exit_code = mnrl_cli_config_command(argc, argv, "prepare", print_prepare_help, &cfg);
    if (exit_code != MNRL_CLI_CONTINUE) return exit_code;
    MnrlError err;
    if (prepare(&cfg, &err) != 0) {
        fprintf(stderr, "mnrl_cuda prepare: %s\n", err.msg);
        config_free(&cfg);
        return 1;
    }
    printf("ready     the data is prepared; training itself arrives with the CPU trainer\n");
    config_free(&cfg);
    return 0;
}
