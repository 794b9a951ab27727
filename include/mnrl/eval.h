// eval.h — evaluation. For now the correlation metrics of the STS evaluator (DESIGN §1
// evaluation: Spearman of cosine similarity against gold scores); the evaluator that
// embeds the sentences joins this module later.
#ifndef MNRL_EVAL_H
#define MNRL_EVAL_H

#include <stddef.h>

// Pearson's r as scipy.stats.pearsonr(x, y).statistic: centred with two-pass means,
// sums in long double, the result clipped to [-1, 1]. NaN (where scipy warns) when either
// vector is constant; NaN (where scipy raises) when n < 2 or an input is NaN.
double mnrl_pearson(const double *x, const double *y, size_t n);

// Spearman's rho as scipy.stats.spearmanr(x, y).statistic: Pearson's r of the ranks, tied
// values sharing the average of their ranks (scipy.stats.rankdata "average"). NaN in the
// same cases as mnrl_pearson (a constant vector has constant ranks).
double mnrl_spearman(const double *x, const double *y, size_t n);

#endif
