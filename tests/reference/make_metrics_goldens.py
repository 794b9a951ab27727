#!/usr/bin/env python3
"""Golden Spearman / Pearson values from scipy for tests/test_metrics.c.

Inputs are stored with the results (as %.17g, so the C test reads the exact doubles):
STSb-sized cases built from the real STSb dev (1,500) and test (1,379) gold scores against
deterministic pseudo-random predictions, rounded so that both vectors have many ties, plus
edge cases (n = 2, n = 3 with ties, a constant vector -> NaN as scipy gives, large offsets,
perfect and reversed order).

Output: tests/data/metrics/scipy_correlations.txt.gz
    case NAME N SPEARMAN PEARSON     ("nan" where scipy gives NaN)
    x: N numbers on one line
    y: N numbers on one line

Usage: python tests/reference/make_metrics_goldens.py [REPO_ROOT]
"""
import csv
import gzip
import io
import math
import os
import sys
import warnings

import numpy as np
import scipy
from scipy import stats


def stsb_scores(root, split):
    with gzip.open(os.path.join(root, "data", "stsbenchmark.tsv.gz"), "rt", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return np.array([float(r["score"]) for r in reader if r["split"] == split])


def prediction_like(gold, seed, decimals):
    # A model-like prediction: cosine-ish values correlated with the gold score, rounded
    # so that many predictions tie.
    rng = np.random.default_rng(seed)
    pred = 0.15 * gold + rng.normal(0.0, 0.35, size=gold.shape)
    return np.round(pred, decimals)


def cases(root):
    out = []
    for split, seed in (("dev", 1), ("test", 2)):
        gold = stsb_scores(root, split)
        out.append(("stsb_%s_round2" % split, gold, prediction_like(gold, seed, 2)))
        out.append(("stsb_%s_round1" % split, gold, prediction_like(gold, seed + 10, 1)))
        # Coarse predictions (steps of 0.5): ties dominate both vectors.
        out.append(("stsb_%s_halfsteps" % split, gold,
                    np.round(2 * prediction_like(gold, seed + 20, 3)) / 2))
        # Unrounded, with a large offset: two-pass means matter here.
        out.append(("stsb_%s_offset" % split, gold + 1e6,
                    1e8 + prediction_like(gold, seed + 30, 12)))
    rng = np.random.default_rng(3)
    out.append(("n2", np.array([0.5, 2.0]), np.array([3.0, -1.0])))
    out.append(("n3_ties", np.array([1.0, 1.0, 2.0]), np.array([0.2, 0.1, 0.9])))
    out.append(("reversed", np.arange(50.0), -np.arange(50.0) ** 3))
    out.append(("monotone_nonlinear", np.arange(40.0), np.exp(np.arange(40.0) / 4)))
    out.append(("small_ties", np.round(rng.normal(size=25)), np.round(rng.normal(size=25) * 2) / 2))
    out.append(("constant_x", np.full(10, 3.0), rng.normal(size=10)))
    out.append(("constant_both", np.full(7, 1.0), np.full(7, -2.0)))
    return out


def fmt(v):
    return "nan" if math.isnan(v) else "%.17g" % v


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    lines = ["# scipy %s spearmanr / pearsonr, by %s" % (scipy.__version__, os.path.basename(__file__))]
    for name, x, y in cases(root):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN
            rho = float(stats.spearmanr(x, y).statistic)
            r = float(stats.pearsonr(x, y).statistic)
        lines.append("case %s %d %s %s" % (name, len(x), fmt(rho), fmt(r)))
        lines.append(" ".join(fmt(v) for v in x))
        lines.append(" ".join(fmt(v) for v in y))
        print("%-24s n=%5d spearman %s pearson %s" % (name, len(x), fmt(rho), fmt(r)))
    out_dir = os.path.join(root, "tests", "data", "metrics")
    os.makedirs(out_dir, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    with open(os.path.join(out_dir, "scipy_correlations.txt.gz"), "wb") as f:
        f.write(gzip.compress(data, mtime=0))


if __name__ == "__main__":
    main()
