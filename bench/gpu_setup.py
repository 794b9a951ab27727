#!/usr/bin/env python3
"""The inputs of bench/gpu.sh, made on the machine that runs it (it has no network):

    python3 bench/gpu_setup.py WORK_DIR [--layers N] [--min-rows N] [--distinct]

WORK_DIR/bert: a randomly initialised model of bert-base-uncased's shape (transformers'
BertConfig() defaults, torch seed 0), saved as safetensors with the uncased tokenizer
files of models/bert-base-uncased/vocab.txt. Random weights train at the same speed as
the real ones, and both trainers load this one folder.

WORK_DIR/triplets.tsv: anchor, positive, negative rows from the SNLI sample
data/snli_dev_test.tsv.gz (dev and test): every premise with an entailment and a
contradiction hypothesis, the first of each in file order (training_nli_v2's rows without
its random draws, so that both trainers read the same rows from one file). The rows are
repeated when there are fewer than --min-rows. The sample has 5,860 rows and a batch holds
no text twice (NoDuplicates), so for larger batches --distinct ends every text of the k-th
repeat (k >= 1) with " k" (one more token), which makes the repeats new texts.
"""
import argparse
import csv
import gzip
import os
import shutil
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def write_model(path, layers):
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast
    torch.manual_seed(0)
    config = BertConfig()
    if layers:
        config.num_hidden_layers = layers
    BertModel(config, add_pooling_layer=False).save_pretrained(path, safe_serialization=True)
    vocab = os.path.join(ROOT, "models", "bert-base-uncased", "vocab.txt")
    BertTokenizerFast(vocab_file=vocab, do_lower_case=True, model_max_length=512).save_pretrained(path)
    shutil.copy(vocab, os.path.join(path, "vocab.txt"))  # transformers 5 saves tokenizer.json alone


def nli_triplets(path):
    hypotheses = {}  # premise -> {label: first hypothesis}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            by_label = hypotheses.setdefault(row["sentence1"].strip(), {})
            by_label.setdefault(row["label"], row["sentence2"].strip())
    return [(p, h["entailment"], h["contradiction"]) for p, h in hypotheses.items()
            if "entailment" in h and "contradiction" in h]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work_dir")
    ap.add_argument("--layers", type=int, default=0, help="encoder layers (default: BertConfig's 12)")
    ap.add_argument("--min-rows", type=int, default=0, help="repeat the rows up to at least this many")
    ap.add_argument("--distinct", action="store_true", help="make the repeated rows' texts distinct")
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    write_model(os.path.join(args.work_dir, "bert"), args.layers)
    rows = nli_triplets(os.path.join(ROOT, "data", "snli_dev_test.tsv.gz"))
    if not rows:
        sys.exit("gpu_setup.py: no triplets in data/snli_dev_test.tsv.gz")
    repeats = max(1, -(-args.min_rows // len(rows)))
    with open(os.path.join(args.work_dir, "triplets.tsv"), "w", encoding="utf-8") as f:
        f.write("anchor\tpositive\tnegative\n")
        for k in range(repeats):
            suffix = f" {k}" if args.distinct and k > 0 else ""
            for row in rows:
                f.write("\t".join(text + suffix for text in row) + "\n")
    print(f"gpu_setup.py: {args.work_dir}/bert ({args.layers or 12} layers), "
          f"{len(rows)} triplets x {repeats} in {args.work_dir}/triplets.tsv")


if __name__ == "__main__":
    main()
