// eval.h — evaluation (DESIGN §1 "Evaluation"): the STS evaluator (cosine similarity of
// the two sentences' embeddings against the gold scores, Spearman and Pearson ×100, as
// sentence-transformers' EmbeddingSimilarityEvaluator reports them) and its metrics.
#ifndef MNRL_EVAL_H
#define MNRL_EVAL_H

#include <stddef.h>

#include "mnrl/common.h"
#include "mnrl/dataset.h"
#include "mnrl/encode.h"

// Pearson's r as scipy.stats.pearsonr(x, y).statistic: centred with two-pass means,
// sums in long double, the result clipped to [-1, 1]. NaN (where scipy warns) when either
// vector is constant; NaN (where scipy raises) when n < 2 or an input is NaN.
double mnrl_pearson(const double *x, const double *y, size_t n);

// Spearman's rho as scipy.stats.spearmanr(x, y).statistic: Pearson's r of the ranks, tied
// values sharing the average of their ranks (scipy.stats.rankdata "average"). NaN in the
// same cases as mnrl_pearson (a constant vector has constant ranks).
double mnrl_spearman(const double *x, const double *y, size_t n);

// One STS split, encoded and scored as often as training asks. Every distinct sentence is
// embedded once per evaluation; all buffers are allocated by sts_evaluator_init.
typedef struct {
    const StsSet *set;     // borrowed
    const char **texts;    // set->texts.n distinct sentences
    size_t *lens;
    float *embeddings;     // [set->texts.n, H]
    double *cosine, *gold; // [set->n]
    size_t H;
} StsEvaluator;

typedef struct {
    double spearman, pearson;  // ×100
    size_t pairs;
} StsScores;

void sts_evaluator_init(StsEvaluator *ev, const StsSet *set, size_t hidden);
void sts_evaluator_free(StsEvaluator *ev);
int sts_evaluate(StsEvaluator *ev, Encoder *enc, StsScores *out, MnrlError *err);

// Cosine similarity in double precision; 0 when either vector is zero (as
// sklearn's paired_cosine_distances, which ST's evaluator uses, normalises safely).
double mnrl_cosine(const float *a, const float *b, size_t n);

#endif
