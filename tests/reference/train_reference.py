#!/usr/bin/env python3
"""Same training, same result (issue 4 item 6): trains a model with sentence-transformers'
MultipleNegativesRankingLoss on the rows and in the batch order that a file gives, with the
hyper-parameters of one of our config files, and reports STSb Spearman before and after.
Not part of ctest: run by hand, numbers recorded in docs/parity.md.

    python3 tests/reference/train_reference.py configs/demo.json --make-order order.txt
    python3 tests/reference/train_reference.py configs/demo.json --order OUT/batch_order.txt

Rows are read from the config's data section as mnrl_cuda reads them: AllNLI with the
"pairs" recipe (entailment rows of data.split as (sentence1, sentence2), file order), or a
TSV/JSONL file with anchor/positive/negative columns, or CSV; data.max_rows keeps the first rows.
The "triplets" recipe draws partners at random (Python from hash-ordered sets, mnrl_cuda
from its seeded generator), so its rows cannot be rebuilt here: give such rows as a TSV.

Batch-order file: lines starting with '#' are comments (the writer names the data there);
every other line is one optimizer step, the 0-based indices of that step's rows in the row
table, separated by spaces. `--make-order FILE` writes one (a permutation of all rows drawn
with train.seed, cut into train.batch_size batches, last partial batch kept) and uses it.

Training follows SentenceTransformer.fit / SentenceTransformerTrainer step for step: model in
train mode (dropout from train.dropout, or the model's config.json when null), AdamW with
weight decay except biases and LayerNorm weights, warmup-linear schedule (warmup =
train.warmup_steps, or ceil(train.warmup_ratio * steps) as the HF Trainer rounds it),
gradient-norm clipping, one optimizer step per line of the order file.
"""
import argparse
import csv
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch

DEFAULTS = {  # docs/config.md, the keys this script uses
    "model": {"max_seq_length": 75},
    "data": {"format": "auto", "recipe": "triplets", "split": "train", "anchor_column": "anchor",
             "positive_column": "positive", "negative_columns": [], "max_rows": 0},
    "train": {"batch_size": 128, "epochs": 1, "max_steps": 0, "lr": 2e-5, "warmup_ratio": 0.1, "warmup_steps": -1,
              "weight_decay": 0.01, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8,
              "max_grad_norm": 1.0, "grad_accum_steps": 1, "seed": 42, "dropout": None, "log_every": 1},
    "loss": {"scale": 20.0, "symmetric": False, "mini_batch_size": 0},
    "eval": {"sts_file": "data/stsbenchmark.tsv.gz", "dev_split": "dev", "test_split": "test", "batch_size": 256},
}
NO_DECAY = ["bias", "LayerNorm.weight"]


def load_config(path, sets):
    with open(path) as f:
        cfg = json.load(f)
    for item in sets:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        cfg.setdefault(section, {})[name] = value
    for section, values in DEFAULTS.items():
        for k, v in values.items():
            cfg.setdefault(section, {}).setdefault(k, v)
    return cfg


def open_text(path):
    return gzip.open(path, "rt", encoding="utf-8", newline="\n") if path.endswith(".gz") else \
        open(path, encoding="utf-8", newline="\n")


def read_rows(data):
    """The row table as mnrl_cuda's dataset module builds it (see the module docstring)."""
    path = data["train"]
    base = path[:-3] if path.endswith(".gz") else path
    rows = []
    if base.endswith(".jsonl"):
        with open_text(path) as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    neg = obj.get("negative", [])
                    rows.append([obj["anchor"], obj["positive"]] + (neg if isinstance(neg, list) else [neg]))
    else:
        with open_text(path) as f:
            if base.endswith(".csv") or data["format"] == "csv":
                header, *table = list(csv.reader(f))
            else:
                header = f.readline().rstrip("\n").split("\t")
                table = [line.rstrip("\n").split("\t") for line in f]
        if data["format"] in ("auto", "allnli") and {"split", "sentence1", "sentence2", "label"} <= set(header):
            if data["recipe"] != "pairs":
                sys.exit("train_reference.py: the triplet recipe draws partners at random and cannot be "
                         "rebuilt here; give the rows as a TSV with anchor/positive/negative columns")
            col = {name: i for i, name in enumerate(header)}
            rows = [[r[col["sentence1"]], r[col["sentence2"]]] for r in table
                    if r[col["split"]] == data["split"] and r[col["label"]] == "entailment"]
        else:
            col = {name: i for i, name in enumerate(header)}
            negs = data["negative_columns"] or [h for h in header if h == "negative" or h.startswith("negative_")]
            names = [data["anchor_column"], data["positive_column"]] + negs
            rows = [[r[col[n]] for n in names] for r in table]
    if data["max_rows"]:
        rows = rows[:data["max_rows"]]
    return rows


def read_order(path, n_rows):
    steps = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if line.startswith("#") or not line.strip():
                continue
            idx = [int(x) for x in line.split()]
            bad = [i for i in idx if not 0 <= i < n_rows]
            if bad:
                sys.exit(f"{path}:{line_no}: row index {bad[0]} out of range (the data has {n_rows} rows)")
            steps.append(idx)
    return steps


def make_order(path, cfg, n_rows, data_desc):
    """A permutation of the rows drawn with train.seed, cut into batches, epochs after each other."""
    batch, steps = cfg["train"]["batch_size"], []
    for epoch in range(cfg["train"]["epochs"]):
        perm = np.random.default_rng(cfg["train"]["seed"] + epoch).permutation(n_rows)
        steps += [perm[i:i + batch].tolist() for i in range(0, n_rows, batch)]
    with open(path, "w") as f:
        f.write(f"# {data_desc}\n# permutation of the rows per epoch, numpy default_rng(seed + epoch), "
                f"batch {batch}\n")
        for s in steps:
            f.write(" ".join(map(str, s)) + "\n")
    return steps


def sts_scores(model, cfg, split):
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator, SimilarityFunction
    with open_text(cfg["eval"]["sts_file"]) as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        rows = [r for r in (line.rstrip("\n").split("\t") for line in f)
                if "split" not in col or r[col["split"]] == split]
    ev = EmbeddingSimilarityEvaluator([r[col["sentence1"]] for r in rows], [r[col["sentence2"]] for r in rows],
                                      [float(r[col["score"]]) / 5.0 for r in rows], batch_size=cfg["eval"]["batch_size"],
                                      main_similarity=SimilarityFunction.COSINE, name=f"sts-{split}")
    res = ev(model)
    pick = lambda m: 100 * next(v for k, v in res.items() if k.endswith(f"{m}_cosine"))
    return {"spearman": pick("spearman"), "pearson": pick("pearson")}


def evaluate(model, cfg, splits):
    t0 = time.time()
    out = {s: sts_scores(model, cfg, cfg["eval"][f"{s}_split"]) for s in splits}
    print("  " + "  ".join(f"STSb {s}: Spearman {v['spearman']:.2f} Pearson {v['pearson']:.2f}"
                           for s, v in out.items()) + f"  ({time.time() - t0:.1f} s)", flush=True)
    return out


def make_loss(model, cfg):
    from sentence_transformers import losses
    scale = cfg["loss"]["scale"]
    if cfg["loss"]["mini_batch_size"]:
        cls = losses.CachedMultipleNegativesSymmetricRankingLoss if cfg["loss"]["symmetric"] else \
            losses.CachedMultipleNegativesRankingLoss
        return cls(model, scale=scale, mini_batch_size=cfg["loss"]["mini_batch_size"])
    cls = losses.MultipleNegativesSymmetricRankingLoss if cfg["loss"]["symmetric"] else \
        losses.MultipleNegativesRankingLoss
    return cls(model, scale=scale)


def make_optimizer(model, cfg, total_steps):
    from transformers import get_linear_schedule_with_warmup
    t = cfg["train"]
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not any(nd in n for nd in NO_DECAY)],
               "weight_decay": t["weight_decay"]},
              {"params": [p for n, p in named if any(nd in n for nd in NO_DECAY)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=t["lr"], betas=(t["adam_beta1"], t["adam_beta2"]), eps=t["adam_eps"])
    warmup = t["warmup_steps"] if t["warmup_steps"] >= 0 else math.ceil(t["warmup_ratio"] * total_steps)
    return opt, get_linear_schedule_with_warmup(opt, warmup, total_steps), warmup


def set_dropout(model, p):
    if p is None:
        return
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p


def train(model, cfg, rows, steps, metrics, bf16=False):
    """One optimizer step per entry of steps. On a GPU the features go to the device as the
    Trainer's collator output does, bf16=True runs the forward under torch.autocast (the
    Trainer's bf16=True), and each step's time ends after a device synchronisation."""
    on_gpu = model.device.type == "cuda"
    loss_fn = make_loss(model, cfg)
    opt, sched, warmup = make_optimizer(model, cfg, len(steps))
    print(f"training: {len(steps)} steps, warmup {warmup}, lr {cfg['train']['lr']}", flush=True)
    set_dropout(model, cfg["train"]["dropout"])
    model.train()
    log_every, clip = cfg["train"]["log_every"], cfg["train"]["max_grad_norm"]
    times, tokens, texts = [], 0, 0
    for s, idx in enumerate(steps):
        t0 = time.perf_counter()
        batch = [rows[i] for i in idx]
        features = [model.preprocess([r[c] for r in batch]) for c in range(len(batch[0]))]
        tokenized = time.perf_counter()
        if on_gpu:
            features = [{k: v.to(model.device, non_blocking=True) if torch.is_tensor(v) else v
                         for k, v in f.items()} for f in features]
        lr = sched.get_last_lr()[0]
        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(features, None)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else float("inf"))
        opt.step()
        sched.step()
        opt.zero_grad()
        if on_gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        tokens += sum(int(f["attention_mask"].sum()) for f in features)
        texts += sum(len(f["attention_mask"]) for f in features)
        rec = {"step": s + 1, "loss": float(loss.detach()), "grad_norm": float(norm), "lr": lr,
               "ms": 1000 * times[-1], "tokenize_ms": 1000 * (tokenized - t0)}
        metrics.append(rec)
        if (s + 1) % log_every == 0 or s + 1 == len(steps):
            print(f"step {s + 1}/{len(steps)} | loss {rec['loss']:.4f} | norm {rec['grad_norm']:.3f} | "
                  f"lr {lr:.2e} | {rec['ms']:.0f} ms", flush=True)
    steady = times[3:] if len(times) > 6 else times
    return {"steps": len(steps), "warmup_steps": warmup, "train_s": sum(times),
            "ms_per_step_mean": 1000 * sum(times) / len(times),
            "ms_per_step_after_3": 1000 * sum(steady) / len(steady),
            "texts_per_s": texts / sum(times), "real_tokens_per_s": tokens / sum(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    order = ap.add_mutually_exclusive_group(required=True)
    order.add_argument("--order", help="batch-order file to follow")
    order.add_argument("--make-order", help="write a seeded batch order to this file and follow it")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads (default: all cores)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps (timing runs)")
    ap.add_argument("--no-eval", action="store_true", help="skip the STSb evaluations (timing runs)")
    ap.add_argument("--json", help="write the results (scores, timings, every step) to this file")
    ap.add_argument("--save", help="save the trained model here (sentence-transformers folder)")
    args = ap.parse_args()

    cfg = load_config(args.config, args.set)
    if cfg["train"]["grad_accum_steps"] != 1:
        sys.exit("train_reference.py: grad_accum_steps > 1 is not reproduced")
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg["train"]["seed"])
    from sentence_transformers import SentenceTransformer
    import sentence_transformers
    import transformers

    rows = read_rows(cfg["data"])
    desc = (f"data {cfg['data']['train']} recipe {cfg['data']['recipe']} split {cfg['data']['split']} "
            f"max_rows {cfg['data']['max_rows']}: {len(rows)} rows")
    steps = read_order(args.order, len(rows)) if args.order else make_order(args.make_order, cfg, len(rows), desc)
    limit = args.max_steps or cfg["train"]["max_steps"]
    if limit:
        steps = steps[:limit]
    print(f"{desc}; {len(steps)} steps; torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)

    model = SentenceTransformer(cfg["model"]["path"], device="cpu", model_kwargs={"dtype": torch.float32})
    model.max_seq_length = cfg["model"]["max_seq_length"]
    result = {"config": args.config, "sets": args.set, "rows": len(rows), "threads": torch.get_num_threads(),
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "sentence-transformers": sentence_transformers.__version__}}
    if not args.no_eval:
        print("before training:", flush=True)
        result["before"] = evaluate(model, cfg, ["dev", "test"])
    metrics = []
    result["timing"] = train(model, cfg, rows, steps, metrics)
    print(f"trained in {result['timing']['train_s']:.1f} s, {result['timing']['ms_per_step_after_3']:.0f} ms/step "
          f"after the first 3, {result['timing']['texts_per_s']:.1f} texts/s", flush=True)
    if not args.no_eval:
        print("after training:", flush=True)
        result["after"] = evaluate(model, cfg, ["dev", "test"])
    result["step_metrics"] = metrics
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.save:
        model.save(args.save)


if __name__ == "__main__":
    main()
