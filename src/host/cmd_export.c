// cmd_export.c — `mnrl_cuda export CHECKPOINT --output DIR`: a checkpoint's weights as a
// sentence-transformers folder (export.h's layout, the one a finished run writes to
// OUT/final), with config.json and the tokenizer files of the base model its run started
// from (model.path of the checkpoint's train_config.json, or --base-model).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/bert_config.h"
#include "mnrl/checkpoint.h"
#include "mnrl/cli.h"
#include "mnrl/export.h"
#include "mnrl/params.h"

static const char export_usage[] =
    "usage: mnrl_cuda export CHECKPOINT_DIR --output DIR [--base-model MODEL_DIR]\n"
    "\n"
    "Writes DIR as a sentence-transformers model folder (SentenceTransformer(DIR) loads it)\n"
    "from a training checkpoint, OUT/checkpoints/step-NNNNNNN: its fp32 weights, and\n"
    "config.json and the tokenizer files of the model the run started from.\n"
    "\n"
    "  --output DIR             the model folder to write (replaced atomically if present)\n"
    "  --base-model MODEL_DIR   the base model folder (default: model.path of the\n"
    "                           checkpoint's train_config.json)\n";

typedef struct {
    const char *checkpoint, *output, *base_model;
} ExportArgs;

// The checkpoint's tensors (table of the base model's config.json) and state into *params.
static int read_weights(const ExportArgs *a, ParamTable *table, CheckpointState *state, float **params,
                        MnrlError *err) {
    char path[4096];
    BertConfig config;
    if (mnrl_path_join(path, sizeof path, a->base_model, "config.json") != 0) {
        return mnrl_fail(err, "%s: path too long", a->base_model);
    }
    if (bert_config_load(path, &config, err) != 0) {
        return mnrl_fail_context(err, "the base model (model.path of the checkpoint's train_config.json; "
                                      "--base-model gives another)");
    }
    params_table_build(table, &config);
    size_t n = table->n_floats;
    float *buffer = mnrl_malloc(3 * n * sizeof *buffer);  // the weights, then the moments read alongside
    if (checkpoint_read(a->checkpoint, table, state, buffer, buffer + n, buffer + 2 * n, err) != 0) {
        free(buffer);
        params_table_free(table);
        return -1;
    }
    *params = buffer;
    return 0;
}

static int export_checkpoint(ExportArgs *a, MnrlError *err) {
    char config_path[4096];
    MnrlConfig cfg;
    if (checkpoint_check_complete(a->checkpoint, "give export a complete folder OUT/checkpoints/step-NNNNNNN", err) != 0)
        return -1;
    if (mnrl_path_join(config_path, sizeof config_path, a->checkpoint, "train_config.json") != 0) {
        return mnrl_fail(err, "%s: path too long", a->checkpoint);
    }
    if (config_load(config_path, NULL, 0, &cfg, err) != 0) return -1;
    if (!a->base_model) a->base_model = cfg.model.path;
    ParamTable table;
    CheckpointState state;
    float *params = NULL;
    int rc = read_weights(a, &table, &state, &params, err);
    if (rc == 0) {
        ExportScores scores = {state.dev_before, NAN, state.test_before, NAN};
        ExportInfo info = {.folder = a->output, .base_model_dir = a->base_model, .config = &cfg,
                           .train_rows = (int64_t)state.data_rows, .steps = state.step,
                           .scores = isnan(scores.dev_before) ? NULL : &scores, .command_line = NULL};
        rc = export_model(&info, &table, params, err);
        if (rc == 0) {
            printf("exported %s (step %lld) to %s (load it with SentenceTransformer(\"%s\"))\n", a->checkpoint,
                   (long long)state.step, a->output, a->output);
        }
        free(params);
        params_table_free(&table);
    }
    config_free(&cfg);
    return rc;
}

int mnrl_cmd_export(int argc, char **argv) {
    ExportArgs args = {0};
    MnrlError err;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(export_usage, stdout);
            return 0;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--output", &missing))) {
            args.output = v;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--base-model", &missing))) {
            args.base_model = v;
        } else if (missing) {
            mnrl_fail(&err, "a value is missing after %s", argv[i]);
            return mnrl_cli_usage_error("export", err.msg);
        } else if (argv[i][0] == '-' || args.checkpoint) {
            mnrl_fail(&err, "unexpected argument '%s'", argv[i]);
            return mnrl_cli_usage_error("export", err.msg);
        } else {
            args.checkpoint = argv[i];
        }
    }
    if (!args.checkpoint) return mnrl_cli_usage_error("export", "missing CHECKPOINT_DIR");
    if (!args.output) return mnrl_cli_usage_error("export", "missing --output DIR");
    if (export_checkpoint(&args, &err) != 0) {
        fprintf(stderr, "mnrl_cuda export: %s\n", err.msg);
        return 1;
    }
    return 0;
}
