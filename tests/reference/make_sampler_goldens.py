#!/usr/bin/env python3
"""Golden batches for tests/test_sampler.c from sentence-transformers' own
NoDuplicatesBatchSampler (the installed version's __iter__, resampling passes included).

For each case: a table of text ids (rows x columns, cell text "t<id>"), the permutations
torch.randperm is made to return inside the sampler (one per pass it draws), and the
batches ST yields for them. The C test feeds the same permutations to
sampler_begin_epoch_with_orders and must produce the same batches.

Output: tests/data/sampler/st_batches.txt, plain text:
    case NAME ROWS COLS TEXTS BATCH DROP_LAST ORDERS_USED
    ROWS lines of COLS ids
    3 lines of ROWS row indices (the permutations offered; the first ORDERS_USED were drawn)
    batches COUNT
    COUNT lines: N then N row indices
    end

Usage: python tests/reference/make_sampler_goldens.py [REPO_ROOT]
"""
import os
import random
import sys

import sentence_transformers
import torch
from sentence_transformers.base import sampler as st_sampler

BATCH_SIZES = [1, 2, 3, 7, 32]
ORDERS_OFFERED = 3  # ST draws at most 1 + _MAX_RESAMPLE_PASSES permutations per epoch


class RowTable:
    """The part of datasets.Dataset the sampler touches (datasets is not installed here)."""

    def __init__(self, rows):
        self.rows = rows
        self.column_names = ["anchor", "positive", "negative_1", "negative_2"][: len(rows[0])]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return {name: "t%d" % tid for name, tid in zip(self.column_names, self.rows[index])}

    def remove_columns(self, names):
        raise AssertionError("no label columns here")


def make_datasets(rng):
    sets = {}
    # Every text distinct: batches are plain slices of the permutation.
    sets["distinct_pairs"] = [[2 * i, 2 * i + 1] for i in range(70)]
    # Texts from a tiny pool: deferrals everywhere, short final batches, resampling.
    sets["pool_pairs"] = [[rng.randrange(12), rng.randrange(12)] for _ in range(60)]
    # Triplets (k = 1), anchors repeated twice as in AllNLI, negatives from a small pool.
    rows = []
    for a in range(40):
        for _ in range(2):
            rows.append([a, 100 + rng.randrange(60), 200 + rng.randrange(25)])
    sets["triplets_k1"] = rows
    # Two negatives (k = 2) from one shared pool, so any column can collide with any other.
    sets["triplets_k2"] = [[rng.randrange(40) for _ in range(4)] for _ in range(75)]
    # A row repeating its own text (anchor == positive) is no conflict with itself.
    rows = []
    for i in range(65):
        a = rng.randrange(30)
        rows.append([a, a] if rng.random() < 0.4 else [a, 30 + rng.randrange(30)])
    sets["self_repeat_pairs"] = rows
    # Few distinct values: the first pass falls short of __len__, ST resamples.
    sets["resample_pairs"] = [[rng.randrange(5), 5 + rng.randrange(3)] for _ in range(40)]
    return sets


def st_batches(rows, batch_size, drop_last, orders):
    sampler = st_sampler.NoDuplicatesBatchSampler(RowTable(rows), batch_size=batch_size,
                                                  drop_last=drop_last)
    drawn = []
    real_randperm = torch.randperm

    def given_randperm(n, generator=None, dtype=torch.int64):
        assert n == len(rows) and len(drawn) < len(orders)
        drawn.append(len(drawn))
        return torch.tensor(orders[len(drawn) - 1], dtype=dtype)

    torch.randperm = given_randperm
    try:
        batches = [list(b) for b in sampler]
    finally:
        torch.randperm = real_randperm
    return batches, len(drawn)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    out_dir = os.path.join(root, "tests", "data", "sampler")
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(20240603)
    lines = ["# sentence-transformers %s NoDuplicatesBatchSampler, by %s"
             % (sentence_transformers.__version__, os.path.basename(__file__))]
    n_cases = 0
    for name, rows in make_datasets(rng).items():
        n_texts = 1 + max(max(r) for r in rows)
        for batch_size in BATCH_SIZES:
            for drop_last in (False, True):
                orders = []
                for _ in range(ORDERS_OFFERED):
                    perm = list(range(len(rows)))
                    rng.shuffle(perm)
                    orders.append(perm)
                batches, used = st_batches(rows, batch_size, drop_last, orders)
                lines.append("case %s_b%d_%s %d %d %d %d %d %d" % (
                    name, batch_size, "drop" if drop_last else "keep", len(rows), len(rows[0]),
                    n_texts, batch_size, int(drop_last), used))
                lines += [" ".join(map(str, r)) for r in rows]
                lines += [" ".join(map(str, p)) for p in orders]
                lines.append("batches %d" % len(batches))
                lines += ["%d %s" % (len(b), " ".join(map(str, b))) for b in batches]
                lines.append("end")
                n_cases += 1
    with open(os.path.join(out_dir, "st_batches.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d cases" % n_cases)


if __name__ == "__main__":
    main()
