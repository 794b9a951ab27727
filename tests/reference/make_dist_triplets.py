#!/usr/bin/env python3
"""Writes tests/data/dist/triplets_k2.tsv: 160 rows (anchor, positive, negative_1,
negative_2) for the data-parallel equivalence tests (tests/mpi/test_mpi_*.c), k = 2 hard
negatives. From the SNLI dev split of data/snli_dev_test.tsv.gz (CC BY-SA 4.0, see
/work/shared/data/SOURCES.md): premise, its entailment hypothesis, its contradiction
hypothesis and its neutral hypothesis, the first 160 premises (file order) that have all
three and no text repeated from an earlier row.

Usage: python3 tests/reference/make_dist_triplets.py [REPO_ROOT]
"""
import csv
import gzip
import os
import sys

ROWS = 160


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    by_premise = {}
    order = []
    with gzip.open(os.path.join(root, "data", "snli_dev_test.tsv.gz"), "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["split"] != "dev":
                continue
            premise = row["sentence1"].strip()
            if premise not in by_premise:
                by_premise[premise] = {}
                order.append(premise)
            by_premise[premise].setdefault(row["label"], row["sentence2"].strip())
    seen, rows = set(), []
    for premise in order:
        labels = by_premise[premise]
        texts = [premise] + [labels.get(k) for k in ("entailment", "contradiction", "neutral")]
        if None in texts or len(set(texts)) < 4 or seen.intersection(texts):
            continue
        seen.update(texts)
        rows.append(texts)
        if len(rows) == ROWS:
            break
    out = os.path.join(root, "tests", "data", "dist", "triplets_k2.tsv")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("anchor\tpositive\tnegative_1\tnegative_2\n")
        for texts in rows:
            f.write("\t".join(texts) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
