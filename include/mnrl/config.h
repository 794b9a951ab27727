// config.h — the run configuration: a JSON file (jansson) with the sections model, data,
// train, loss, eval, checkpoint, output and dist, every key typed, range-checked and
// defaulted from one schema table in config.c. docs/config.md documents every key.
//
// Loading: defaults, then the file, then the `--set section.key=value` overrides in order;
// then required keys and cross-field checks. Any error names its source (the file, or
// `--set`) and the key path: `configs/x.json: train.batch_size: expected a positive
// integer, got "64"`. Unknown keys are errors with a "did you mean" when one is close.
// Relative paths in a config are taken relative to the working directory (run from the
// repository root), not to the config file's folder.
#ifndef MNRL_CONFIG_H
#define MNRL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "mnrl/common.h"
#include "mnrl/dataset.h"

// Enumerated keys: the C constants are in the order of the JSON strings in docs/config.md.
typedef enum { MNRL_POOLING_MEAN } MnrlPooling;
typedef enum { MNRL_PRECISION_BF16, MNRL_PRECISION_FP32 } MnrlPrecision;
typedef enum { MNRL_BACKEND_AUTO, MNRL_BACKEND_CUDA, MNRL_BACKEND_CPU } MnrlBackend;
// data.format, data.recipe and data.on_error use the data module's enums (dataset.h).
typedef enum {
    MNRL_DIST_AUTO,
    MNRL_DIST_MPI,
    MNRL_DIST_ENV,
    MNRL_DIST_SINGLE
} MnrlDistBackend;

// train.dropout = null: take the dropout probabilities from the model's config.json.
#define MNRL_DROPOUT_FROM_MODEL (-1.0)

typedef struct {
    char *path;               // Hugging Face model folder (required)
    int max_seq_length;       // tokens per text incl. [CLS]/[SEP], 1..8192
    MnrlPooling pooling;
    MnrlPrecision precision;  // of the GPU compute; the CPU backend is always fp32
    MnrlBackend backend;
} MnrlModelConfig;

typedef struct {
    char *train;              // training file (required)
    DataFormat format;
    DataRecipe recipe;        // AllNLI only
    char *split;              // AllNLI rows whose split column equals this
    char *anchor_column;      // TSV/CSV/JSONL column names
    char *positive_column;
    char **negative_columns;  // empty: every column "negative" or "negative_*", file order
    int n_negative_columns;
    int64_t max_rows;         // 0: all rows
    DataOnError on_error;
    char *cache_dir;
} MnrlDataConfig;

typedef struct {
    int batch_size;           // global batch (all ranks together), >= 2
    int epochs;
    int64_t max_steps;        // 0: epochs decide
    double lr;
    double warmup_ratio;      // 0 when warmup_steps >= 0 decides
    int64_t warmup_steps;     // -1: warmup_ratio decides
    double weight_decay;
    double adam_beta1, adam_beta2, adam_eps;
    double max_grad_norm;     // 0: no clipping
    int grad_accum_steps;
    int64_t seed;
    double dropout;           // MNRL_DROPOUT_FROM_MODEL or a probability in [0, 1)
    int log_every;
    int max_bad_steps;        // consecutive non-finite steps before giving up
} MnrlTrainConfig;

typedef struct {
    double scale;
    bool symmetric;
    int mini_batch_size;      // 0: no embedding cache
} MnrlLossConfig;

typedef struct {
    char *sts_file;           // "": no evaluation
    char *dev_split, *test_split;
    int64_t every_steps;      // 0: only before and after training
    int batch_size;
    bool before_training;
} MnrlEvalConfig;

typedef struct {
    int64_t every_steps;      // 0: only at the end
    int keep;
} MnrlCheckpointConfig;

typedef struct {
    char *dir;
    bool overwrite;
} MnrlOutputConfig;

typedef struct {
    MnrlDistBackend backend;
    char *init_dir;           // shared folder for the file rendezvous; "" = output.dir
    int init_timeout_s;
} MnrlDistConfig;

typedef struct {
    MnrlModelConfig model;
    MnrlDataConfig data;
    MnrlTrainConfig train;
    MnrlLossConfig loss;
    MnrlEvalConfig eval;
    MnrlCheckpointConfig checkpoint;
    MnrlOutputConfig output;
    MnrlDistConfig dist;
    // Not configuration: advice found while loading (one per line, no trailing newline),
    // NULL when there is none. The caller prints it; it is not part of config_to_json.
    char *warnings;
} MnrlConfig;

// Loads path (plain or .gz JSON) and applies sets[0..n_sets) ("section.key=value"; the value
// is read as JSON when it parses, else as a string). On failure cfg is left empty (safe
// to config_free) and err says what and where.
int config_load(const char *path, const char *const *sets, int n_sets, MnrlConfig *cfg,
                MnrlError *err);

// The same from JSON text; source names it in messages (e.g. "(embedded demo config)").
int config_from_string(const char *source, const char *json_text, const char *const *sets,
                       int n_sets, MnrlConfig *cfg, MnrlError *err);

// The fully resolved configuration as pretty JSON (every key, schema order), itself a
// valid config that loads back to an equal MnrlConfig. Caller frees.
char *config_to_json(const MnrlConfig *cfg);

// A stable 64-bit hash of the keys that change what training computes (hyper-parameters,
// data selection, model numerics); paths, logging, evaluation, checkpointing, output and
// distribution settings are left out, so a run can be resumed from a moved folder.
uint64_t config_hash(const MnrlConfig *cfg);

// config_hash without the keys a resumed run may change: train.epochs and train.max_steps
// (training on for longer, or stopping sooner, from a checkpoint). --resume requires the
// checkpoint's to equal this run's.
uint64_t config_resume_hash(const MnrlConfig *cfg);

// The keys of config_resume_hash whose values differ: how many, and the first of them
// ("section.key") with both values as JSON.
typedef struct {
    int count;
    char key[64];
    char a[256], b[256];
} ConfigDifference;

// 1 when the values the two configs' resume hashes cover differ (the first differing key
// in schema order, docs/config.md's, in *diff), else 0: what names the culprit when a
// checkpoint is refused for its config.
int config_resume_difference(const MnrlConfig *a, const MnrlConfig *b, ConfigDifference *diff);

void config_free(MnrlConfig *cfg);

// The embedded default (configs/demo.json, compiled in by CMake).
extern const char mnrl_demo_config_json[];

#endif
