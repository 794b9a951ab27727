// dataset.h — training rows and STS pairs read from user files (DESIGN §1 rows, issue 3
// item 5): AllNLI TSV with the "pairs" and "triplets" recipes, generic TSV/CSV/JSONL with
// anchor/positive/negative columns, and STS files of (sentence1, sentence2, score).
//
// A Dataset is a table of n_rows x n_cols interned text ids (anchor, positive,
// negative_1..k; k the same for every row). Equal texts (exact bytes) share one id, so the
// NoDuplicates sampler compares ids and the cache tokenizes each unique text once.
//
// Errors name FILE:LINE. With on_error "skip" a malformed row is skipped and counted per
// reason; the counts and the first message are in Dataset.skip_summary. Malformed: a wrong
// field count, bytes that are not UTF-8, an empty field (for the triplet recipe, a sentence
// that is empty after stripping, which Python would keep as ""), an AllNLI label other
// than entailment/neutral/contradiction (a KeyError in Python), bad CSV quoting, a JSONL
// line that is not a JSON object, a missing key or a non-string value. JSONL rows whose
// number of negatives differs from the first row's are an error even under "skip".
//
// The triplet recipe follows sentence-transformers' training_nli_v2.py (2021): sentences
// stripped as str.strip(), pairs recorded both ways, and for each sentence (first-seen
// order) with an entailment and a contradiction partner the rows (s, e, c), (e', s, c').
// Partners are drawn with mnrl_rand_below(seed) from the de-duplicated partner lists in
// first-seen order; Python draws from sets, whose order is hash-randomised, so only the
// count, the anchor order and the relation can be compared with Python (the test does).
#ifndef MNRL_DATASET_H
#define MNRL_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"
#include "mnrl/text_table.h"

typedef enum { DATA_FORMAT_AUTO, DATA_FORMAT_ALLNLI, DATA_FORMAT_TSV, DATA_FORMAT_CSV,
               DATA_FORMAT_JSONL } DataFormat;
typedef enum { DATA_RECIPE_TRIPLETS, DATA_RECIPE_PAIRS } DataRecipe;
typedef enum { DATA_ON_ERROR_FAIL, DATA_ON_ERROR_SKIP } DataOnError;

// Mirrors the config's data section (docs/config.md); strings are borrowed.
typedef struct {
    const char *path;
    DataFormat format;       // AUTO: by extension after an optional .gz (see dataset_detect_format)
    DataRecipe recipe;       // AllNLI only
    const char *split;       // AllNLI rows whose split column equals this ("train")
    const char *anchor_column;    // "anchor"
    const char *positive_column;  // "positive"
    const char *const *negative_columns;  // n_negative_columns names; none = every column
    size_t n_negative_columns;            // named "negative" or "negative_*", in file order
    uint64_t max_rows;       // 0 = all
    DataOnError on_error;
    uint64_t seed;           // the triplet recipe's partner draws
} DataOptions;

// The defaults of the config schema, with path set.
DataOptions data_options_default(const char *path);

// Why rows were skipped under on_error "skip".
typedef enum { SKIP_FIELD_COUNT, SKIP_NOT_UTF8, SKIP_EMPTY_FIELD, SKIP_UNKNOWN_LABEL,
               SKIP_BAD_QUOTING, SKIP_BAD_JSON, SKIP_MISSING_KEY, SKIP_NOT_A_STRING,
               SKIP_N_REASONS } SkipReason;

typedef struct {
    size_t n_rows, n_cols;   // n_cols = 2 + negatives per row
    uint32_t *text_id;       // n_rows * n_cols, row-major
    TextTable texts;         // the unique texts, id = index
    char **column_names;     // n_cols names as in the file ("anchor", "positive", ...)
    DataFormat format;       // the format actually read (never AUTO)
    uint64_t lines_read;     // data lines (or JSONL objects, CSV records) seen
    uint64_t skipped[SKIP_N_REASONS];
    uint64_t skipped_total;
    char skip_summary[MNRL_ERROR_MAX];  // "" when nothing was skipped
} Dataset;

// Reads opt->path into ds. On failure ds is left empty (dataset_free is still safe).
int dataset_load(const DataOptions *opt, Dataset *ds, MnrlError *err);
void dataset_free(Dataset *ds);

// The bytes of text id (not NUL-terminated in general; exactly as in the file, or
// stripped for the triplet recipe).
static inline const char *dataset_text(const Dataset *ds, uint32_t id, size_t *len) {
    return text_table_get(&ds->texts, id, len);
}

// Resolves DATA_FORMAT_AUTO for path: .jsonl -> jsonl, .csv -> csv, .tsv -> allnli when
// the header has split, sentence1, sentence2 and label, else tsv (an optional .gz after
// each). Other formats are returned unchanged.
int dataset_detect_format(const char *path, DataFormat format, DataFormat *out, MnrlError *err);

const char *data_format_name(DataFormat format);
const char *data_recipe_name(DataRecipe recipe);

// An STS file: pairs with gold scores, kept raw (STSb: 0..5); the evaluator normalises
// if it needs to (Spearman and Pearson do not). Either the STSb layout
// (split genre dataset year sid score sentence1 sentence2) or any TSV whose header names
// sentence1, sentence2 and score; a split column, when present, filters rows by split
// (split NULL or "" keeps all). Malformed rows are always errors.
typedef struct {
    size_t n;
    uint32_t *text_id;  // 2n: sentence1 and sentence2 of pair i at 2i and 2i+1
    TextTable texts;
    float *score;       // n raw scores
} StsSet;

int sts_load(const char *path, const char *split, StsSet *out, MnrlError *err);
void sts_free(StsSet *sts);

#endif
