// dataset.c — DataOptions, the row table and its error accounting, the AllNLI recipes,
// generic TSV/CSV/JSONL rows, and STS files.
#include "mnrl/dataset.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/table_reader.h"
#include "mnrl/textio.h"

DataOptions data_options_default(const char *path) {
    DataOptions opt = {0};
    opt.path = path;
    opt.format = DATA_FORMAT_AUTO;
    opt.recipe = DATA_RECIPE_TRIPLETS;
    opt.split = "train";
    opt.anchor_column = "anchor";
    opt.positive_column = "positive";
    opt.on_error = DATA_ON_ERROR_FAIL;
    opt.seed = 42;
    return opt;
}

const char *data_format_name(DataFormat format) {
    static const char *const names[] = {"auto", "allnli", "tsv", "csv", "jsonl"};
    return names[format];
}

const char *data_recipe_name(DataRecipe recipe) {
    return recipe == DATA_RECIPE_PAIRS ? "pairs" : "triplets";
}

// ---------------------------------------------------------------------------------------
// Row table and error accounting

static const char *const skip_reason_name[SKIP_N_REASONS] = {
    "wrong field count", "not UTF-8", "empty field", "unknown label",
    "bad quoting", "bad JSON", "missing column", "not a string"};

// Fixes the number of columns once the format knows it (after a header or a first row).
static void set_columns(Dataset *ds, size_t n_cols) {
    ds->n_cols = n_cols;
    ds->column_names = mnrl_calloc(n_cols, sizeof *ds->column_names);
}

void dataset_free(Dataset *ds) {
    if (ds->column_names) {
        for (size_t c = 0; c < ds->n_cols; c++) free(ds->column_names[c]);
    }
    free(ds->column_names);
    free(ds->text_id);
    if (ds->texts.offset) text_table_free(&ds->texts);
    memset(ds, 0, sizeof *ds);
}

static void name_column(Dataset *ds, size_t col, const char *name) {
    free(ds->column_names[col]);
    ds->column_names[col] = mnrl_strdup(name);
}

// Loader state shared by the formats: the options, the table being filled, its capacity.
typedef struct {
    const DataOptions *opt;
    Dataset *ds;
    size_t rows_cap;
    char first_skip[MNRL_ERROR_MAX];
} Loader;

// A malformed row whose message is already in err: fatal under on_error "fail" (returns
// -1 with err kept), otherwise counted and forgotten (returns 0: go on with the next row).
static int row_problem(Loader *ld, SkipReason reason, MnrlError *err) {
    if (ld->opt->on_error == DATA_ON_ERROR_FAIL) {
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof err->msg - used,
                 "; fix the row, or set data.on_error to \"skip\" to skip malformed rows");
        return -1;
    }
    if (ld->ds->skipped_total == 0) snprintf(ld->first_skip, sizeof ld->first_skip, "%s", err->msg);
    ld->ds->skipped[reason]++;
    ld->ds->skipped_total++;
    return 0;
}

// Formats the message of a malformed row into err, then row_problem.
static int row_error(Loader *ld, SkipReason reason, MnrlError *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int row_error(Loader *ld, SkipReason reason, MnrlError *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return row_problem(ld, reason, err);
}

static void write_skip_summary(Loader *ld) {
    Dataset *ds = ld->ds;
    if (ds->skipped_total == 0) return;
    char reasons[512] = "";
    size_t used = 0;
    for (int r = 0; r < SKIP_N_REASONS; r++) {
        if (!ds->skipped[r] || used >= sizeof reasons) continue;
        int w = snprintf(reasons + used, sizeof reasons - used, "%s%llu %s", used ? ", " : "",
                         (unsigned long long)ds->skipped[r], skip_reason_name[r]);
        if (w > 0) used += (size_t)w;
    }
    snprintf(ds->skip_summary, sizeof ds->skip_summary,
             "skipped %llu malformed row%s (%s); first: %.1400s",
             (unsigned long long)ds->skipped_total, ds->skipped_total == 1 ? "" : "s", reasons,
             ld->first_skip);
}

static int loader_full(const Loader *ld) {
    return ld->opt->max_rows && ld->ds->n_rows >= ld->opt->max_rows;
}

// Appends one row of n_cols texts. Ids and rows stay below UINT32_MAX, as the sampler needs.
static int add_row(Loader *ld, const char *const *text, const size_t *len, MnrlError *err) {
    Dataset *ds = ld->ds;
    if (ds->n_rows >= UINT32_MAX - 1 || ds->texts.n >= UINT32_MAX - 1 - ds->n_cols) {
        return mnrl_fail(err, "%s: more than %u rows or texts; set data.max_rows",
                         ld->opt->path, UINT32_MAX - 2);
    }
    if (ds->n_rows == ld->rows_cap) {
        ld->rows_cap = ld->rows_cap ? 2 * ld->rows_cap : 1024;
        ds->text_id = mnrl_realloc(ds->text_id, ld->rows_cap * ds->n_cols * sizeof *ds->text_id);
    }
    uint32_t *row = ds->text_id + ds->n_rows * ds->n_cols;
    for (size_t c = 0; c < ds->n_cols; c++) row[c] = text_table_intern(&ds->texts, text[c], len[c]);
    ds->n_rows++;
    return 0;
}

// ---------------------------------------------------------------------------------------
// Header and format detection

// Reads the header record and keeps a copy of its names (CSV fields live in a buffer
// that the next record overwrites).
static int read_header(TableReader *t, char ***names, size_t *n, MnrlError *err) {
    int got = table_reader_next(t, err);
    if (got < 0) return -1;
    if (got == TABLE_EOF) {
        return mnrl_fail(err, "%s: empty file (no header line); check data.train, or give a file "
                              "whose first line names its columns", t->lines.path);
    }
    if (got == TABLE_MALFORMED) return mnrl_fail_context(err, "in the header");
    *n = t->n_fields;
    *names = mnrl_malloc(*n * sizeof **names);
    for (size_t i = 0; i < *n; i++) (*names)[i] = mnrl_strdup(t->field[i]);
    return 0;
}

static void free_names(char **names, size_t n) {
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int header_is_allnli(char *const *names, size_t n) {
    static const char *const need[] = {"split", "sentence1", "sentence2", "label"};
    for (size_t i = 0; i < 4; i++) {
        if (table_find_column(names, n, need[i]) < 0) return 0;
    }
    return 1;
}

static int detect_tsv_kind(const char *path, DataFormat *out, MnrlError *err) {
    TableReader t;
    if (table_reader_open(&t, path, TABLE_TSV, err) < 0) return -1;
    char **names = NULL;
    size_t n = 0;
    int rc = read_header(&t, &names, &n, err);
    table_reader_close(&t);
    if (rc < 0) return -1;
    *out = header_is_allnli(names, n) ? DATA_FORMAT_ALLNLI : DATA_FORMAT_TSV;
    free_names(names, n);
    return 0;
}

int dataset_detect_format(const char *path, DataFormat format, DataFormat *out, MnrlError *err) {
    if (format != DATA_FORMAT_AUTO) {
        *out = format;
        return 0;
    }
    char base[1024];
    snprintf(base, sizeof base, "%s", path);
    if (ends_with(base, ".gz")) base[strlen(base) - 3] = '\0';
    if (ends_with(base, ".jsonl")) *out = DATA_FORMAT_JSONL;
    else if (ends_with(base, ".csv")) *out = DATA_FORMAT_CSV;
    else if (ends_with(base, ".tsv")) return detect_tsv_kind(path, out, err);
    else {
        return mnrl_fail(err, "%s: cannot tell the format from the file name (expected .tsv, "
                         ".csv or .jsonl, optionally .gz); set data.format", path);
    }
    return 0;
}

// The column index of name, or an error naming the columns present and the config key.
static int require_column(const char *path, char *const *names, size_t n, const char *name,
                          const char *key, int *index, MnrlError *err) {
    *index = table_find_column(names, n, name);
    if (*index >= 0) return 0;
    char present[1024];
    table_list_columns(names, n, present, sizeof present);
    return mnrl_fail(err, "%s:1: the header has no column \"%s\" (columns present: %s)%s%s",
                     path, name, present, key ? "; set " : "", key ? key : "");
}

// A malformed record from the table reader: bad UTF-8 or bad quoting.
static int table_problem(Loader *ld, const TableReader *t, MnrlError *err) {
    return row_problem(ld, t->problem == TABLE_BAD_UTF8 ? SKIP_NOT_UTF8 : SKIP_BAD_QUOTING, err);
}

static int check_field_count(Loader *ld, const TableReader *t, size_t expected, MnrlError *err) {
    if (t->n_fields == expected) return 1;
    const char *sep = t->dialect == TABLE_CSV ? "comma" : "tab";
    if (row_error(ld, SKIP_FIELD_COUNT, err, "%s:%zu: expected %zu %s-separated fields (as in "
                  "the header), got %zu", t->lines.path, t->line_no, expected, sep,
                  t->n_fields) < 0) {
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------
// AllNLI

typedef enum { LABEL_ENTAILMENT, LABEL_NEUTRAL, LABEL_CONTRADICTION } NliLabel;

// Python's str.isspace() for one code point, which str.strip() removes at both ends.
static int python_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Decodes the (valid) UTF-8 sequence at s; returns its length.
static size_t utf8_decode(const unsigned char *s, uint32_t *cp) {
    if (s[0] < 0x80) { *cp = s[0]; return 1; }
    if (s[0] < 0xE0) { *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
    if (s[0] < 0xF0) {
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

// str.strip() on valid UTF-8: narrows [*text, *text + *len) in place.
static void python_strip(const char **text, size_t *len) {
    const unsigned char *s = (const unsigned char *)*text, *end = s + *len;
    uint32_t cp;
    while (s < end) {
        size_t n = utf8_decode(s, &cp);
        if (!python_space(cp)) break;
        s += n;
    }
    while (end > s) {
        const unsigned char *last = end - 1;
        while ((*last & 0xC0) == 0x80) last--;
        utf8_decode(last, &cp);
        if (!python_space(cp)) break;
        end = last;
    }
    *text = (const char *)s;
    *len = (size_t)(end - s);
}

static int parse_label(const char *s, NliLabel *out) {
    if (strcmp(s, "entailment") == 0) *out = LABEL_ENTAILMENT;
    else if (strcmp(s, "neutral") == 0) *out = LABEL_NEUTRAL;
    else if (strcmp(s, "contradiction") == 0) *out = LABEL_CONTRADICTION;
    else return -1;
    return 0;
}

// The distinct split values of a file, for "no rows with split X (splits present: ...)".
typedef struct {
    char *name[8];
    size_t n;
    int more;  // more than fit in name
} SplitsSeen;

static void note_split(SplitsSeen *seen, const char *split) {
    for (size_t i = 0; i < seen->n; i++) {
        if (strcmp(seen->name[i], split) == 0) return;
    }
    if (seen->n < sizeof seen->name / sizeof seen->name[0]) {
        seen->name[seen->n++] = mnrl_strdup(split);
    } else {
        seen->more = 1;
    }
}

static void free_splits(SplitsSeen *seen) {
    for (size_t i = 0; i < seen->n; i++) free(seen->name[i]);
}

// One AllNLI row of the wanted split, handed to a recipe: returns -1 on error, 0 to go
// on, 1 when the recipe has all the rows it wants.
typedef int (*NliRowFn)(Loader *ld, void *recipe, const char *s1, size_t n1, const char *s2,
                        size_t n2, NliLabel label, MnrlError *err);

typedef struct {
    int split, s1, s2, label;
    size_t n_fields;
} NliColumns;

static int nli_columns(const char *path, char **names, size_t n, NliColumns *c, MnrlError *err) {
    c->n_fields = n;
    if (require_column(path, names, n, "split", NULL, &c->split, err) < 0 ||
        require_column(path, names, n, "sentence1", NULL, &c->s1, err) < 0 ||
        require_column(path, names, n, "sentence2", NULL, &c->s2, err) < 0 ||
        require_column(path, names, n, "label", NULL, &c->label, err) < 0) {
        return mnrl_fail_context(err, "AllNLI format (split dataset filename sentence1 "
                                 "sentence2 label)");
    }
    return 0;
}

// Checks one record of the wanted split and passes its sentences on (stripped as
// Python's str.strip() when strip is set, as the triplet recipe does).
static int nli_record(Loader *ld, TableReader *t, const NliColumns *c, int strip, NliRowFn fn,
                      void *recipe, MnrlError *err) {
    const char *text[2] = {t->field[c->s1], t->field[c->s2]};
    size_t len[2] = {strlen(text[0]), strlen(text[1])};
    for (int i = 0; i < 2; i++) {
        if (strip) python_strip(&text[i], &len[i]);
        if (len[i] == 0) {
            return row_error(ld, SKIP_EMPTY_FIELD, err, "%s:%zu: empty sentence%d%s",
                             t->lines.path, t->line_no, i + 1, strip ? " (after stripping)" : "");
        }
    }
    NliLabel label;
    if (parse_label(t->field[c->label], &label) < 0) {
        return row_error(ld, SKIP_UNKNOWN_LABEL, err, "%s:%zu: unknown label \"%s\" (expected "
                         "entailment, neutral or contradiction)", t->lines.path, t->line_no,
                         t->field[c->label]);
    }
    return fn(ld, recipe, text[0], len[0], text[1], len[1], label, err);
}

// Reads the AllNLI TSV, passing every well-formed row of opt->split to fn. Rows of other
// splits are only checked for their field count (the split column must be found).
static int read_allnli(Loader *ld, int strip, NliRowFn fn, void *recipe, MnrlError *err) {
    const char *path = ld->opt->path;
    TableReader t;
    if (table_reader_open(&t, path, TABLE_TSV, err) < 0) return -1;
    char **names = NULL;
    size_t n_names = 0;
    NliColumns c = {0};
    SplitsSeen seen = {0};
    uint64_t in_split = 0;
    int rc = read_header(&t, &names, &n_names, err);
    if (rc == 0) rc = nli_columns(path, names, n_names, &c, err);
    while (rc == 0) {
        int got = table_reader_next(&t, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        ld->ds->lines_read++;
        if (got == TABLE_MALFORMED) rc = table_problem(ld, &t, err);
        else if ((rc = check_field_count(ld, &t, c.n_fields, err)) == 1) {
            const char *split = t.field[c.split];
            note_split(&seen, split);
            rc = 0;
            if (strcmp(split, ld->opt->split) == 0) {
                in_split++;
                rc = nli_record(ld, &t, &c, strip, fn, recipe, err);
            }
        }
    }
    if (rc == 1) rc = 0;  // the recipe had enough rows
    if (rc == 0 && in_split == 0 && ld->ds->skipped_total == 0) {
        char present[512] = "";
        table_list_columns(seen.name, seen.n, present, sizeof present);
        rc = mnrl_fail(err, "%s: no rows with split \"%s\" (splits present: %s%s); set "
                       "data.split", path, ld->opt->split, seen.n ? present : "none",
                       seen.more ? ", ..." : "");
    }
    free_splits(&seen);
    free_names(names, n_names);
    table_reader_close(&t);
    return rc;
}

static int pairs_row(Loader *ld, void *recipe, const char *s1, size_t n1, const char *s2,
                     size_t n2, NliLabel label, MnrlError *err) {
    (void)recipe;
    if (label != LABEL_ENTAILMENT) return 0;
    const char *text[2] = {s1, s2};
    size_t len[2] = {n1, n2};
    if (add_row(ld, text, len, err) < 0) return -1;
    return loader_full(ld) ? 1 : 0;
}

// The pairs recipe (the article's): entailment rows as (premise, hypothesis), text as-is.
static int load_nli_pairs(Loader *ld, MnrlError *err) {
    set_columns(ld->ds, 2);
    name_column(ld->ds, 0, "anchor");
    name_column(ld->ds, 1, "positive");
    if (read_allnli(ld, 0, pairs_row, NULL, err) < 0) return -1;
    if (ld->ds->n_rows == 0 && ld->ds->skipped_total == 0) {
        return mnrl_fail(err, "%s: split \"%s\" has no entailment rows, so the pairs recipe "
                         "makes no rows; check data.split", ld->opt->path, ld->opt->split);
    }
    return 0;
}

// The triplet recipe's sentence graph: sentences interned in first-seen order, and the
// entailment / contradiction relations recorded in both directions as edge lists.
typedef struct {
    TextTable sentences;
    uint32_t *src, *dst;
    uint8_t *label;
    size_t n_edges, cap;
} NliGraph;

static void add_edge(NliGraph *g, uint32_t src, uint32_t dst, NliLabel label) {
    if (g->n_edges == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 4096;
        g->src = mnrl_realloc(g->src, g->cap * sizeof *g->src);
        g->dst = mnrl_realloc(g->dst, g->cap * sizeof *g->dst);
        g->label = mnrl_realloc(g->label, g->cap);
    }
    g->src[g->n_edges] = src;
    g->dst[g->n_edges] = dst;
    g->label[g->n_edges] = (uint8_t)label;
    g->n_edges++;
}

// training_nli_v2's add_to_samples(s1, s2, label) and add_to_samples(s2, s1, label): every
// sentence is registered on first sight (neutral rows too, which fixes the order).
static int graph_row(Loader *ld, void *recipe, const char *s1, size_t n1, const char *s2,
                     size_t n2, NliLabel label, MnrlError *err) {
    (void)ld;
    (void)err;
    NliGraph *g = recipe;
    uint32_t a = text_table_intern(&g->sentences, s1, n1);
    uint32_t b = text_table_intern(&g->sentences, s2, n2);
    if (label == LABEL_NEUTRAL) return 0;
    add_edge(g, a, b, label);
    add_edge(g, b, a, label);
    return 0;
}

// Partner lists of one label as CSR over sentence ids: partners of s are
// list[start[s] .. start[s+1]), de-duplicated, in first-seen order (Python keeps sets).
typedef struct {
    uint32_t *start;
    uint32_t *list;
} PartnerLists;

static void build_partners(const NliGraph *g, NliLabel label, PartnerLists *p) {
    uint32_t n = g->sentences.n;
    p->start = mnrl_calloc((size_t)n + 1, sizeof *p->start);
    size_t n_label = 0;
    for (size_t e = 0; e < g->n_edges; e++) {
        if (g->label[e] == label) {
            p->start[g->src[e] + 1]++;
            n_label++;
        }
    }
    for (uint32_t s = 0; s < n; s++) p->start[s + 1] += p->start[s];
    p->list = mnrl_malloc((n_label ? n_label : 1) * sizeof *p->list);
    uint32_t *fill = mnrl_malloc(((size_t)n + 1) * sizeof *fill);
    memcpy(fill, p->start, ((size_t)n + 1) * sizeof *fill);
    for (size_t e = 0; e < g->n_edges; e++) {  // stable: file order within each sentence
        if (g->label[e] == label) p->list[fill[g->src[e]]++] = g->dst[e];
    }
    // De-duplicate each list in place, keeping first occurrences; seen[x] = s + 1 marks x
    // as already a partner of s.
    uint32_t *seen = fill;
    memset(seen, 0, ((size_t)n + 1) * sizeof *seen);
    uint32_t out = 0;
    for (uint32_t s = 0; s < n; s++) {
        uint32_t begin = p->start[s], end = p->start[s + 1];
        p->start[s] = out;
        for (uint32_t i = begin; i < end; i++) {
            uint32_t x = p->list[i];
            if (seen[x] == s + 1) continue;
            seen[x] = s + 1;
            p->list[out++] = x;
        }
    }
    p->start[n] = out;
    free(fill);
}

static void free_partners(PartnerLists *p) {
    free(p->start);
    free(p->list);
}

static uint32_t draw(const PartnerLists *p, uint32_t s, uint64_t *rng) {
    uint32_t n = p->start[s + 1] - p->start[s];
    return p->list[p->start[s] + (uint32_t)mnrl_rand_below(rng, n)];
}

static int add_sentence_row(Loader *ld, const NliGraph *g, const uint32_t *ids, MnrlError *err) {
    const char *text[3];
    size_t len[3];
    for (int c = 0; c < 3; c++) text[c] = text_table_get(&g->sentences, ids[c], &len[c]);
    return add_row(ld, text, len, err);
}

// For each sentence s (first-seen order) with an entailment and a contradiction partner:
// (s, e, c) and (e', s, c'), drawn in that order with one generator seeded by opt->seed.
// Python draws from sets, whose order is hash-randomised: the rows compare with Python's
// in count, anchor order and relation, not in the partners drawn.
static int make_triplets(Loader *ld, const NliGraph *g, MnrlError *err) {
    PartnerLists ent, con;
    build_partners(g, LABEL_ENTAILMENT, &ent);
    build_partners(g, LABEL_CONTRADICTION, &con);
    uint64_t rng = ld->opt->seed;
    int rc = 0;
    for (uint32_t s = 0; s < g->sentences.n && rc == 0 && !loader_full(ld); s++) {
        if (ent.start[s] == ent.start[s + 1] || con.start[s] == con.start[s + 1]) continue;
        uint32_t first[3] = {s, draw(&ent, s, &rng), draw(&con, s, &rng)};
        uint32_t second[3] = {draw(&ent, s, &rng), s, draw(&con, s, &rng)};
        rc = add_sentence_row(ld, g, first, err);
        if (rc == 0 && !loader_full(ld)) rc = add_sentence_row(ld, g, second, err);
    }
    free_partners(&ent);
    free_partners(&con);
    return rc;
}

static int load_nli_triplets(Loader *ld, MnrlError *err) {
    set_columns(ld->ds, 3);
    name_column(ld->ds, 0, "anchor");
    name_column(ld->ds, 1, "positive");
    name_column(ld->ds, 2, "negative");
    NliGraph g = {0};
    text_table_init(&g.sentences);
    int rc = read_allnli(ld, 1, graph_row, &g, err);
    if (rc == 0) rc = make_triplets(ld, &g, err);
    if (rc == 0 && ld->ds->n_rows == 0 && ld->ds->skipped_total == 0) {
        rc = mnrl_fail(err, "%s: no sentence of split \"%s\" has both an entailment and a "
                       "contradiction partner, so the triplet recipe makes no rows; try "
                       "data.recipe \"pairs\"", ld->opt->path, ld->opt->split);
    }
    text_table_free(&g.sentences);
    free(g.src);
    free(g.dst);
    free(g.label);
    return rc;
}

// ---------------------------------------------------------------------------------------
// Generic TSV / CSV with a header

static int is_negative_name(const char *name) {
    return strcmp(name, "negative") == 0 || strncmp(name, "negative_", 9) == 0;
}

// The file columns of the row's columns: anchor, positive, then the negatives (named in
// opt->negative_columns, or every "negative" / "negative_*" column in file order).
static int table_columns(Loader *ld, char **names, size_t n, int **cols, MnrlError *err) {
    const DataOptions *opt = ld->opt;
    size_t k = opt->n_negative_columns;
    if (k == 0) {
        for (size_t i = 0; i < n; i++) k += is_negative_name(names[i]);
    }
    *cols = mnrl_malloc((2 + k) * sizeof **cols);
    if (require_column(opt->path, names, n, opt->anchor_column, "data.anchor_column",
                       &(*cols)[0], err) < 0 ||
        require_column(opt->path, names, n, opt->positive_column, "data.positive_column",
                       &(*cols)[1], err) < 0) {
        return -1;
    }
    size_t c = 2;
    for (size_t i = 0; i < opt->n_negative_columns; i++) {
        if (require_column(opt->path, names, n, opt->negative_columns[i],
                           "data.negative_columns", &(*cols)[c++], err) < 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < n && opt->n_negative_columns == 0; i++) {
        if (is_negative_name(names[i])) (*cols)[c++] = (int)i;
    }
    set_columns(ld->ds, 2 + k);
    for (size_t j = 0; j < 2 + k; j++) name_column(ld->ds, j, names[(*cols)[j]]);
    return 0;
}

static int table_record(Loader *ld, const TableReader *t, const int *cols, MnrlError *err) {
    const Dataset *ds = ld->ds;
    const char *text[ds->n_cols];
    size_t len[ds->n_cols];
    for (size_t c = 0; c < ds->n_cols; c++) {
        text[c] = t->field[cols[c]];
        len[c] = strlen(text[c]);
        if (len[c] == 0) {
            return row_error(ld, SKIP_EMPTY_FIELD, err, "%s:%zu: empty field \"%s\"",
                             t->lines.path, t->line_no, ds->column_names[c]);
        }
    }
    return add_row(ld, text, len, err);
}

static int load_table(Loader *ld, TableDialect dialect, MnrlError *err) {
    TableReader t;
    if (table_reader_open(&t, ld->opt->path, dialect, err) < 0) return -1;
    char **names = NULL;
    size_t n_names = 0;
    int *cols = NULL;
    int rc = read_header(&t, &names, &n_names, err);
    if (rc == 0) rc = table_columns(ld, names, n_names, &cols, err);
    while (rc == 0 && !loader_full(ld)) {
        int got = table_reader_next(&t, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        ld->ds->lines_read++;
        if (got == TABLE_MALFORMED) rc = table_problem(ld, &t, err);
        else if ((rc = check_field_count(ld, &t, n_names, err)) == 1) {
            rc = table_record(ld, &t, cols, err);
        }
    }
    free(cols);
    free_names(names, n_names);
    table_reader_close(&t);
    return rc;
}

// ---------------------------------------------------------------------------------------
// JSONL

// Texts of one JSON object's row, gathered before they are interned.
typedef struct {
    const char **text;
    size_t *len;
    size_t n, cap;
} JsonRow;

static void json_row_push(JsonRow *row, const char *s, size_t len) {
    if (row->n == row->cap) {
        row->cap = row->cap ? 2 * row->cap : 8;
        row->text = mnrl_realloc(row->text, row->cap * sizeof *row->text);
        row->len = mnrl_realloc(row->len, row->cap * sizeof *row->len);
    }
    row->text[row->n] = s;
    row->len[row->n++] = len;
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

// Adds the value of key: a non-empty string, or (list_ok) an array of them.
static int json_texts(Loader *ld, size_t line, const char *key, const json_t *v, int list_ok,
                      JsonRow *row, MnrlError *err) {
    const char *path = ld->opt->path;
    if (json_is_array(v) && list_ok) {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) {
            if (!json_is_string(item)) {
                return row_error(ld, SKIP_NOT_A_STRING, err, "%s:%zu: \"%s\"[%zu] must be a "
                                 "string, got %s", path, line, key, i, json_type_name(item));
            }
            if (json_texts(ld, line, key, item, 0, row, err) <= 0) return -1;
        }
        if (json_array_size(v) == 0) {
            return row_error(ld, SKIP_EMPTY_FIELD, err, "%s:%zu: \"%s\" is an empty list",
                             path, line, key);
        }
        return 1;
    }
    if (!json_is_string(v)) {
        return row_error(ld, SKIP_NOT_A_STRING, err, "%s:%zu: \"%s\" must be a string%s, got %s",
                         path, line, key, list_ok ? " or a list of strings" : "",
                         json_type_name(v));
    }
    if (json_string_length(v) == 0) {
        return row_error(ld, SKIP_EMPTY_FIELD, err, "%s:%zu: empty field \"%s\"", path, line, key);
    }
    json_row_push(row, json_string_value(v), json_string_length(v));
    return 1;
}

static int json_required(Loader *ld, size_t line, const json_t *obj, const char *key, int list_ok,
                         JsonRow *row, MnrlError *err) {
    const json_t *v = json_object_get(obj, key);
    if (v) return json_texts(ld, line, key, v, list_ok, row, err);
    char keys[512] = "";
    size_t used = 0;
    const char *k;
    const json_t *unused;
    json_object_foreach((json_t *)obj, k, unused) {
        int w = used < sizeof keys ? snprintf(keys + used, sizeof keys - used, "%s%s",
                                              used ? ", " : "", k) : 0;
        if (w > 0) used += (size_t)w;
    }
    return row_error(ld, SKIP_MISSING_KEY, err, "%s:%zu: no key \"%s\" (keys present: %s)",
                     ld->opt->path, line, key, keys);
}

// Gathers the row of one object: anchor, positive, negatives. Returns 1 with the row
// filled, 0 when the row was skipped, -1 on error.
static int json_object_row(Loader *ld, size_t line, const json_t *obj, JsonRow *row,
                           MnrlError *err) {
    const DataOptions *opt = ld->opt;
    int rc = json_required(ld, line, obj, opt->anchor_column, 0, row, err);
    if (rc > 0) rc = json_required(ld, line, obj, opt->positive_column, 0, row, err);
    for (size_t i = 0; rc > 0 && i < opt->n_negative_columns; i++) {
        rc = json_required(ld, line, obj, opt->negative_columns[i], 1, row, err);
    }
    if (rc > 0 && opt->n_negative_columns == 0) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)obj, key, v) {
            if (!is_negative_name(key)) continue;
            rc = json_texts(ld, line, key, v, 1, row, err);
            if (rc <= 0) break;
        }
    }
    return rc;
}

static int parse_json_line(Loader *ld, size_t line, const char *text, size_t len, json_t **obj,
                           MnrlError *err) {
    json_error_t jerr;
    *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!*obj) {
        return row_error(ld, SKIP_BAD_JSON, err, "%s:%zu: invalid JSON at column %d: %s",
                         ld->opt->path, line, jerr.column, jerr.text);
    }
    if (!json_is_object(*obj)) {
        const char *type = json_type_name(*obj);
        json_decref(*obj);
        *obj = NULL;
        return row_error(ld, SKIP_BAD_JSON, err, "%s:%zu: expected a JSON object per line, got %s",
                         ld->opt->path, line, type);
    }
    return 1;
}

// The first row fixes the number of negatives; a later row with another count is an
// error even under on_error "skip", since it means the file mixes two layouts.
static int json_add_row(Loader *ld, size_t line, const JsonRow *row, size_t *first_line,
                        MnrlError *err) {
    Dataset *ds = ld->ds;
    if (ds->n_cols == 0) {
        set_columns(ds, row->n);
        name_column(ds, 0, ld->opt->anchor_column);
        name_column(ds, 1, ld->opt->positive_column);
        for (size_t c = 2; c < row->n; c++) {
            char name[32];
            snprintf(name, sizeof name, "negative_%zu", c - 1);
            name_column(ds, c, name);
        }
        *first_line = line;
    } else if (row->n != ds->n_cols) {
        return mnrl_fail(err, "%s:%zu: this row has %zu negatives but the first row (line %zu) "
                         "has %zu; every row needs the same number of negatives",
                         ld->opt->path, line, row->n - 2, *first_line, ds->n_cols - 2);
    }
    return add_row(ld, row->text, row->len, err);
}

static int json_line(Loader *ld, size_t line, char *text, size_t len, JsonRow *row,
                     size_t *first_line, MnrlError *err) {
    size_t bad;
    if (!mnrl_utf8_valid(text, len, &bad)) {
        return row_error(ld, SKIP_NOT_UTF8, err, "%s:%zu: not valid UTF-8 at byte offset %zu "
                         "of the line; the file must be UTF-8 text", ld->opt->path, line, bad);
    }
    json_t *obj;
    int rc = parse_json_line(ld, line, text, len, &obj, err);
    if (rc <= 0) return rc;
    row->n = 0;
    rc = json_object_row(ld, line, obj, row, err);
    if (rc > 0) rc = json_add_row(ld, line, row, first_line, err);
    json_decref(obj);
    return rc;
}

static int blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t') return 0;
    }
    return 1;
}

static int load_jsonl(Loader *ld, MnrlError *err) {
    LineReader r;
    if (line_reader_open(&r, ld->opt->path, err) < 0) return -1;
    JsonRow row = {0};
    size_t first_line = 0;
    int rc = 0;
    while (rc == 0 && !loader_full(ld)) {
        char *text;
        size_t len;
        int got = line_reader_next(&r, &text, &len, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (blank(text, len)) continue;
        ld->ds->lines_read++;
        rc = json_line(ld, r.line_no, text, len, &row, &first_line, err);
    }
    free(row.text);
    free(row.len);
    line_reader_close(&r);
    return rc;
}

// ---------------------------------------------------------------------------------------
// dataset_load

static int load_format(Loader *ld, DataFormat format, MnrlError *err) {
    switch (format) {
    case DATA_FORMAT_ALLNLI:
        return ld->opt->recipe == DATA_RECIPE_PAIRS ? load_nli_pairs(ld, err)
                                                    : load_nli_triplets(ld, err);
    case DATA_FORMAT_TSV: return load_table(ld, TABLE_TSV, err);
    case DATA_FORMAT_CSV: return load_table(ld, TABLE_CSV, err);
    case DATA_FORMAT_JSONL: return load_jsonl(ld, err);
    default: return mnrl_fail(err, "%s: unresolved data format", ld->opt->path);
    }
}

int dataset_load(const DataOptions *opt, Dataset *ds, MnrlError *err) {
    MnrlError ignored;  // skipped rows' messages pass through err, so it must exist
    if (!err) err = &ignored;
    memset(ds, 0, sizeof *ds);
    if (!opt->path || !opt->split || !opt->anchor_column || !opt->positive_column) {
        return mnrl_fail(err, "dataset_load: path, split and column names must be set "
                         "(start from data_options_default)");
    }
    text_table_init(&ds->texts);
    Loader ld = {.opt = opt, .ds = ds};
    int rc = dataset_detect_format(opt->path, opt->format, &ds->format, err);
    if (rc == 0) rc = load_format(&ld, ds->format, err);
    write_skip_summary(&ld);
    if (rc == 0 && ds->n_rows == 0) {
        rc = ds->skipped_total
                 ? mnrl_fail(err, "%s: no rows left: %s", opt->path, ds->skip_summary)
                 : mnrl_fail(err, "%s: no rows (the file has no data lines); add rows below the "
                                  "header line", opt->path);
    }
    if (rc < 0) dataset_free(ds);
    return rc;
}

// ---------------------------------------------------------------------------------------
// STS

typedef struct {
    int split, s1, s2, score;
    size_t n_fields;
} StsColumns;

static int sts_columns(const char *path, char **names, size_t n, StsColumns *c, MnrlError *err) {
    c->n_fields = n;
    c->split = table_find_column(names, n, "split");
    if (require_column(path, names, n, "sentence1", NULL, &c->s1, err) < 0 ||
        require_column(path, names, n, "sentence2", NULL, &c->s2, err) < 0 ||
        require_column(path, names, n, "score", NULL, &c->score, err) < 0) {
        return mnrl_fail_context(err, "STS file (a header naming sentence1, sentence2, score)");
    }
    return 0;
}

// A score must be a whole finite number ("3.800", "5"): strtod accepting all of the field.
static int parse_score(const char *s, float *out) {
    char *end;
    if (*s == '\0' || *s == ' ' || *s == '\t') return -1;
    double v = strtod(s, &end);
    // Scores are kept as float: a finite double beyond FLT_MAX would become infinity.
    if (*end != '\0' || !isfinite(v) || fabs(v) > FLT_MAX) return -1;
    *out = (float)v;
    return 0;
}

static void sts_push(StsSet *sts, size_t *cap, const char *s1, const char *s2, float score) {
    if (sts->n == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        sts->text_id = mnrl_realloc(sts->text_id, 2 * *cap * sizeof *sts->text_id);
        sts->score = mnrl_realloc(sts->score, *cap * sizeof *sts->score);
    }
    sts->text_id[2 * sts->n] = text_table_intern(&sts->texts, s1, strlen(s1));
    sts->text_id[2 * sts->n + 1] = text_table_intern(&sts->texts, s2, strlen(s2));
    sts->score[sts->n++] = score;
}

static int sts_record(const TableReader *t, const StsColumns *c, StsSet *sts, size_t *cap,
                      MnrlError *err) {
    const char *path = t->lines.path;
    if (t->n_fields != c->n_fields) {
        return mnrl_fail(err, "%s:%zu: expected %zu tab-separated fields (as in the header), "
                         "got %zu", path, t->line_no, c->n_fields, t->n_fields);
    }
    float score;
    if (parse_score(t->field[c->score], &score) < 0) {
        return mnrl_fail(err, "%s:%zu: score \"%s\" is not a number", path, t->line_no,
                         t->field[c->score]);
    }
    if (!*t->field[c->s1] || !*t->field[c->s2]) {
        return mnrl_fail(err, "%s:%zu: empty sentence%d", path, t->line_no,
                         *t->field[c->s1] ? 2 : 1);
    }
    sts_push(sts, cap, t->field[c->s1], t->field[c->s2], score);
    return 0;
}

int sts_load(const char *path, const char *split, StsSet *sts, MnrlError *err) {
    memset(sts, 0, sizeof *sts);
    text_table_init(&sts->texts);
    TableReader t;
    if (table_reader_open(&t, path, TABLE_TSV, err) < 0) {
        sts_free(sts);
        return -1;
    }
    char **names = NULL;
    size_t n_names = 0, cap = 0;
    StsColumns c = {0};
    int filter = split && *split;
    int rc = read_header(&t, &names, &n_names, err);
    if (rc == 0) rc = sts_columns(path, names, n_names, &c, err);
    while (rc == 0) {
        int got = table_reader_next(&t, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (got == TABLE_MALFORMED) rc = -1;
        else if (!filter || c.split < 0 || t.n_fields != c.n_fields ||
                 strcmp(t.field[c.split], split) == 0) {
            rc = sts_record(&t, &c, sts, &cap, err);
        }
    }
    if (rc == 0 && sts->n == 0) {
        rc = mnrl_fail(err, "%s: no sentence pairs%s%s%s", path, filter ? " with split \"" : "",
                       filter ? split : "", filter ? "\"; check the split name" : "");
    }
    free_names(names, n_names);
    table_reader_close(&t);
    if (rc < 0) sts_free(sts);
    return rc;
}

void sts_free(StsSet *sts) {
    free(sts->text_id);
    free(sts->score);
    if (sts->texts.offset) text_table_free(&sts->texts);
    memset(sts, 0, sizeof *sts);
}
