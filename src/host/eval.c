// eval.c — STS evaluation metrics (see eval.h).
#include "mnrl/eval.h"

#include <math.h>
#include <stdlib.h>

#include "mnrl/common.h"

static int has_nan(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i])) return 1;
    return 0;
}

static long double mean_of(const double *v, size_t n) {
    long double sum = 0.0L;
    for (size_t i = 0; i < n; i++) sum += v[i];
    return sum / (long double)n;
}

double mnrl_pearson(const double *x, const double *y, size_t n) {
    if (n < 2 || has_nan(x, n) || has_nan(y, n)) return NAN;
    // Centring first (two passes) keeps large common offsets from cancelling in the sums.
    long double mx = mean_of(x, n), my = mean_of(y, n);
    long double sxy = 0.0L, sxx = 0.0L, syy = 0.0L;
    for (size_t i = 0; i < n; i++) {
        long double dx = (long double)x[i] - mx, dy = (long double)y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (sxx == 0.0L || syy == 0.0L) return NAN;
    double r = (double)(sxy / sqrtl(sxx * syy));
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

typedef struct {
    double value;
    size_t index;
} Ranked;

static int by_value(const void *a, const void *b) {
    double va = ((const Ranked *)a)->value, vb = ((const Ranked *)b)->value;
    return (va > vb) - (va < vb);
}

// 1-based ranks; a run of equal values gets the average of the ranks it spans.
static void average_ranks(const double *v, size_t n, Ranked *scratch, double *ranks) {
    for (size_t i = 0; i < n; i++) scratch[i] = (Ranked){v[i], i};
    qsort(scratch, n, sizeof *scratch, by_value);
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && scratch[end].value == scratch[start].value) end++;
        double rank = 0.5 * (double)(start + 1 + end);  // mean of start+1 .. end
        for (size_t i = start; i < end; i++) ranks[scratch[i].index] = rank;
        start = end;
    }
}

double mnrl_spearman(const double *x, const double *y, size_t n) {
    if (n < 2 || has_nan(x, n) || has_nan(y, n)) return NAN;
    Ranked *scratch = mnrl_malloc(n * sizeof *scratch);
    double *rx = mnrl_malloc(n * sizeof *rx), *ry = mnrl_malloc(n * sizeof *ry);
    average_ranks(x, n, scratch, rx);
    average_ranks(y, n, scratch, ry);
    double rho = mnrl_pearson(rx, ry, n);
    free(scratch);
    free(rx);
    free(ry);
    return rho;
}

void sts_evaluator_init(StsEvaluator *ev, const StsSet *set, size_t hidden) {
    ev->set = set;
    ev->H = hidden;
    size_t n_texts = set->texts.n;
    ev->texts = mnrl_calloc(n_texts, sizeof *ev->texts);
    ev->lens = mnrl_calloc(n_texts, sizeof *ev->lens);
    for (uint32_t id = 0; id < n_texts; id++) ev->texts[id] = text_table_get(&set->texts, id, &ev->lens[id]);
    ev->embeddings = mnrl_calloc(n_texts * hidden, sizeof *ev->embeddings);
    ev->cosine = mnrl_calloc(set->n, sizeof *ev->cosine);
    ev->gold = mnrl_calloc(set->n, sizeof *ev->gold);
    for (size_t i = 0; i < set->n; i++) ev->gold[i] = set->score[i];
}

void sts_evaluator_free(StsEvaluator *ev) {
    free(ev->texts);
    free(ev->lens);
    free(ev->embeddings);
    free(ev->cosine);
    free(ev->gold);
}

double mnrl_cosine(const float *a, const float *b, size_t n) {
    double dot = 0.0, na = 0.0, nb = 0.0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return (na > 0.0 && nb > 0.0) ? dot / (sqrt(na) * sqrt(nb)) : 0.0;
}

int sts_evaluate(StsEvaluator *ev, Encoder *enc, StsScores *out, MnrlError *err) {
    const StsSet *set = ev->set;
    if (encoder_run(enc, ev->texts, ev->lens, set->texts.n, ev->embeddings, err) != 0) return -1;
    for (size_t i = 0; i < set->n; i++) {
        const float *e1 = ev->embeddings + (size_t)set->text_id[2 * i] * ev->H;
        const float *e2 = ev->embeddings + (size_t)set->text_id[2 * i + 1] * ev->H;
        ev->cosine[i] = mnrl_cosine(e1, e2, ev->H);
    }
    out->spearman = 100.0 * mnrl_spearman(ev->cosine, ev->gold, set->n);
    out->pearson = 100.0 * mnrl_pearson(ev->cosine, ev->gold, set->n);
    out->pairs = set->n;
    return 0;
}
