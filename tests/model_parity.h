// model_parity.h — helpers of the sentence-transformers parity tests (test_model_parity*.c):
// reading the goldens of tests/reference/make_parity_goldens.py (docs/parity.md) and
// running the model on text lists and MNRL batches. Static functions for test files only.
#ifndef MNRL_MODEL_PARITY_H
#define MNRL_MODEL_PARITY_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/batch.h"
#include "mnrl/loss.h"
#include "mnrl/npy.h"
#include "mnrl/model.h"
#include "mnrl/safetensors.h"
#include "mnrl/tokenizer.h"
#include "test.h"

#define PARITY_DIR MNRL_TEST_DATA_DIR "/parity"

// A text file (plain or gzip) split in place into lines, each line into tab-separated
// fields: field(f, line, col).
typedef struct {
    char *buf;
    size_t n_lines, n_cols;  // n_cols: fields of the first line
    char **fields;           // n_lines * n_cols (missing fields "")
    size_t *lens;
} TextTableFile;

static void table_file_read(const char *path, TextTableFile *f) {
    MnrlError err = {{0}};
    size_t len = 0;
    memset(f, 0, sizeof *f);
    if (mnrl_read_file(path, &f->buf, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    size_t cap = 0;
    for (size_t i = 0; i < len; i++) cap += f->buf[i] == '\n';
    f->n_cols = 1;
    for (const char *p = f->buf; *p && *p != '\n'; p++) f->n_cols += *p == '\t';
    f->fields = mnrl_calloc((cap + 1) * f->n_cols, sizeof *f->fields);
    f->lens = mnrl_calloc((cap + 1) * f->n_cols, sizeof *f->lens);
    char *p = f->buf, *end = f->buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        *nl = '\0';
        for (size_t c = 0; c < f->n_cols; c++) {
            char *tab = c + 1 < f->n_cols ? strchr(p, '\t') : NULL;
            if (tab) *tab = '\0';
            f->fields[f->n_lines * f->n_cols + c] = p;
            f->lens[f->n_lines * f->n_cols + c] = strlen(p);
            p = tab ? tab + 1 : p + strlen(p);
        }
        f->n_lines++;
        p = nl + 1;
    }
    for (size_t i = 0; i < f->n_lines * f->n_cols; i++)
        if (!f->fields[i]) f->fields[i] = "";
}

static void table_file_free(TextTableFile *f) {
    free(f->buf);
    free(f->fields);
    free(f->lens);
    memset(f, 0, sizeof *f);
}

// Rows [first, first + n) of a table (line 0 is the header) as a column-major text list
// (anchors, positives, negatives...: batch.c's and sentence-transformers' order).
static void rows_column_major(const TextTableFile *f, size_t first, size_t n, const char **texts, size_t *lens) {
    for (size_t c = 0; c < f->n_cols; c++)
        for (size_t r = 0; r < n; r++) {
            size_t at = (1 + first + r) * f->n_cols + c;
            texts[c * n + r] = f->fields[at];
            lens[c * n + r] = f->lens[at];
        }
}

// Embeds texts in eval mode, chunked by the batch's limits; out host [n, C].
static void encode_texts(Model *m, const Tokenizer *tok, PackedBatch *pb, const char *const *texts,
                         const size_t *lens, size_t n, float *out) {
    MnrlError err = {{0}};
    for (size_t done = 0; done < n;) {
        size_t k = batch_pack_texts(pb, tok, texts + done, lens + done, n - done);
        if (model_forward(m, pb, 0, 0, 0, 0, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        m->ops->download(out + done * (size_t)m->C, m->pooled, k * (size_t)m->C * sizeof(float));
        done += k;
    }
}

// One MNRL step in eval mode (dropout off, as the goldens) on b rows of cols texts given
// column-major: zeroes the gradients, runs forward, loss and backward; returns the loss.
static double mnrl_rows_step(Model *m, MnrlLoss *loss, const Tokenizer *tok, PackedBatch *pb,
                             const char *const *texts, const size_t *lens, int b, int cols) {
    MnrlError err = {{0}};
    size_t n = (size_t)b * (size_t)cols;
    size_t packed = batch_pack_texts(pb, tok, texts, lens, n);
    CHECK_EQ_INT(packed, n);
    model_zero_grad(m);
    if (model_forward(m, pb, 0, 0, 0, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    double l = mnrl_loss_step(loss, m->pooled, m->dpooled, b, cols, m->C, m->workspace);
    model_backward(m, m->dpooled);
    return l;
}

// Worst cosine between our rows and the reference rows (both [n, C]).
static double worst_cosine(const float *a, const float *ref, size_t n, int C, size_t *worst_row) {
    double worst = 1.0;
    for (size_t i = 0; i < n; i++) {
        double dot = 0, na = 0, nr = 0;
        for (int c = 0; c < C; c++) {
            double x = a[i * (size_t)C + (size_t)c], y = ref[i * (size_t)C + (size_t)c];
            dot += x * y, na += x * x, nr += y * y;
        }
        double cos = dot / (sqrt(na) * sqrt(nr));
        if (cos < worst) worst = cos, *worst_row = i;
    }
    return worst;
}

// ||a - ref|| / ||ref|| and max |a - ref| over n values (strided: a[i * stride]).
typedef struct {
    double rel, max_abs, ref_norm;
} GradError;

static GradError grad_error(const float *a, size_t stride, const float *ref, size_t n) {
    double diff = 0, norm = 0, max_abs = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i * stride] - ref[i];
        diff += d * d, norm += (double)ref[i] * ref[i];
        if (fabs(d) > max_abs) max_abs = fabs(d);
    }
    GradError e = {norm > 0 ? sqrt(diff) / sqrt(norm) : sqrt(diff), max_abs, sqrt(norm)};
    return e;
}

// A gzip-compressed safetensors golden, unpacked next to the test (safetensors_open maps
// plain files).
static SafetensorsFile *open_gz_safetensors(const char *gz_path, const char *plain_name) {
    MnrlError err = {{0}};
    char *data = NULL;
    size_t len = 0;
    SafetensorsFile *f = NULL;
    if (mnrl_read_file(gz_path, &data, &len, &err) || mnrl_write_file_atomic(plain_name, data, len, &err) ||
        safetensors_open(plain_name, &f, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    free(data);
    return f;
}

// A golden tensor as fp32 (malloc'd), or NULL when the file lacks it.
static float *golden_tensor(const SafetensorsFile *f, const char *name, size_t *numel) {
    MnrlError err = {{0}};
    const SafetensorsTensor *t = safetensors_find(f, name);
    if (!t) return NULL;
    *numel = t->numel;
    float *out = mnrl_malloc(*numel * sizeof(float));
    if (safetensors_read_f32(f, t, out, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return out;
}

static json_t *load_json(const char *path) {
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) {
        fprintf(stderr, "%s:%d: %s\n", path, jerr.line, jerr.text);
        exit(1);
    }
    return j;
}

#endif
