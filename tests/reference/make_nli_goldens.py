#!/usr/bin/env python3
"""Goldens for the NLI recipes of src/host/dataset.c (DESIGN §1 rows).

Runs the triplet recipe of sentence-transformers' examples/training/nli/training_nli_v2.py
(2021) verbatim on data/snli_dev_test.tsv.gz, once with split "dev" and once with "test"
standing in for "train", and the article's pairs recipe (entailment rows as-is).

Python draws the partners with random.choice(list(some_set)); set order is hash-randomised
(PYTHONHASHSEED), so the drawn partners cannot be compared with C. What is deterministic and
recorded here: the number of triplets and pairs, the anchors in order (dict insertion order
= first-seen order, which the C recipe follows), and for a sample of anchors their
entailment and contradiction partner sets, so the test can check that every C triplet of
those anchors draws its partners from the right sets.

Also the STS Benchmark as sentence-transformers' examples/training/sts read it
(csv.DictReader, tab, QUOTE_NONE): pairs per split, first and last pair, score sums.

Usage: python3 tests/reference/make_nli_goldens.py   (from the repository root)
Writes tests/data/nli/recipes.json.gz and tests/data/nli/sts.json.
"""
import csv
import gzip
import json
import random

SOURCE = "data/snli_dev_test.tsv.gz"
OUT = "tests/data/nli/recipes.json.gz"
STS_SOURCE = "data/stsbenchmark.tsv.gz"
STS_OUT = "tests/data/nli/sts.json"


def triplet_recipe(path, split):
    # --- begin: training_nli_v2.py (sentence-transformers, 2021), only 'train' -> split ---
    def add_to_samples(sent1, sent2, label):
        if sent1 not in train_data:
            train_data[sent1] = {'contradiction': set(), 'entailment': set(), 'neutral': set()}
        train_data[sent1][label].add(sent2)

    train_data = {}
    with gzip.open(path, 'rt', encoding='utf8') as fIn:
        reader = csv.DictReader(fIn, delimiter='\t', quoting=csv.QUOTE_NONE)
        for row in reader:
            if row['split'] == split:
                sent1 = row['sentence1'].strip()
                sent2 = row['sentence2'].strip()

                add_to_samples(sent1, sent2, row['label'])
                add_to_samples(sent2, sent1, row['label'])  # Also add the opposite

    train_samples = []
    for sent1, others in train_data.items():
        if len(others['entailment']) > 0 and len(others['contradiction']) > 0:
            train_samples.append([sent1, random.choice(list(others['entailment'])),
                                  random.choice(list(others['contradiction']))])
            train_samples.append([random.choice(list(others['entailment'])), sent1,
                                  random.choice(list(others['contradiction']))])
    # --- end ---
    return train_data, train_samples


def pairs_recipe(path, split):
    # The article's recipe: entailment rows as (premise, hypothesis), text as-is.
    pairs = []
    with gzip.open(path, 'rt', encoding='utf8') as fIn:
        reader = csv.DictReader(fIn, delimiter='\t', quoting=csv.QUOTE_NONE)
        for row in reader:
            if row['split'] == split and row['label'] == 'entailment':
                pairs.append([row['sentence1'], row['sentence2']])
    return pairs


def split_golden(split):
    train_data, samples = triplet_recipe(SOURCE, split)
    anchors = [s for s, o in train_data.items() if o['entailment'] and o['contradiction']]
    # Every anchor's triplets sit at rows 2i (anchor first) and 2i+1 (anchor second).
    assert [samples[2 * i][0] for i in range(len(anchors))] == anchors
    assert [samples[2 * i + 1][1] for i in range(len(anchors))] == anchors
    rng = random.Random(1234)
    sample_idx = sorted(set(list(range(20)) + rng.sample(range(len(anchors)), 100)))
    partners = [{"index": i, "anchor": anchors[i],
                 "entailment": sorted(train_data[anchors[i]]['entailment']),
                 "contradiction": sorted(train_data[anchors[i]]['contradiction'])}
                for i in sample_idx]
    pairs = pairs_recipe(SOURCE, split)
    return {"split": split, "sentences": len(train_data), "triplets": len(samples),
            "anchors": anchors, "partners": partners, "pairs": len(pairs),
            "first_pairs": pairs[:5], "last_pair": pairs[-1]}


def sts_golden():
    by_split = {}
    with gzip.open(STS_SOURCE, 'rt', encoding='utf8') as fIn:
        reader = csv.DictReader(fIn, delimiter='\t', quoting=csv.QUOTE_NONE)
        for row in reader:
            by_split.setdefault(row['split'], []).append(
                [row['sentence1'], row['sentence2'], float(row['score'])])
    return {"source": STS_SOURCE, "splits": [
        {"split": name, "pairs": len(rows), "first": rows[0], "last": rows[-1],
         "score_sum": sum(r[2] for r in rows),
         "unique_sentences": len({s for r in rows for s in r[:2]})}
        for name, rows in by_split.items()]}


def main():
    golden = {"source": SOURCE, "splits": [split_golden("dev"), split_golden("test")]}
    # mtime=0: the same inputs give the same bytes.
    with gzip.GzipFile(OUT, "wb", mtime=0) as raw:
        raw.write(json.dumps(golden, ensure_ascii=False, indent=0).encode("utf8"))
    sts = sts_golden()
    with open(STS_OUT, "w", encoding="utf8") as f:
        json.dump(sts, f, ensure_ascii=False, indent=1)
    for s in sts["splits"]:
        print("sts", s["split"], s["pairs"], "pairs")
    for s in golden["splits"]:
        print(s["split"], "sentences", s["sentences"], "triplets", s["triplets"],
              "pairs", s["pairs"])


if __name__ == "__main__":
    main()
