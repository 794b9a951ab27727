#!/usr/bin/env python3
"""The sentence-transformers side of bench/cpu.sh and bench/gpu.sh: trains the config's
model with MultipleNegativesRankingLoss on torch CPU or one GPU, on the rows and in the
batch order that our trainer recorded (OUT/batch_order.txt), and reports the step times
after a warm-up.

    python3 bench/st_reference.py CONFIG --order OUT/batch_order.txt --steps 23 --warmup 3 \
        --threads 2 --json st.json
    python3 bench/st_reference.py CONFIG --order OUT/batch_order.txt --steps 13 --warmup 3 \
        --device cuda --bf16 --json st.json

On a GPU the forward runs under bf16 autocast with --bf16 (SentenceTransformerTrainer's
bf16=True), each step ends with a device synchronisation, and the result also holds
torch's peak allocated and reserved GPU memory.

The training step is tests/reference/train_reference.py's (SentenceTransformerTrainer's
step: tokenize the batch, MNRL forward, backward, clip, AdamW, schedule), imported, not
copied. Per step it reports the texts, the real tokens (attention-mask ones) and the
padded tokens it ran on: sentence-transformers pads each column of a batch to its longest
text.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import train_reference as ref  # noqa: E402

# torch's matrix-multiply ops on the CPU (their self time is the oneDNN/MKL GEMM call).
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation"}


def step_sizes(model, rows, idx):
    """Texts, real tokens and padded tokens of one step, tokenized as the step does it."""
    batch = [rows[i] for i in idx]
    features = [model.preprocess([r[c] for r in batch]) for c in range(len(batch[0]))]
    texts = sum(len(f["attention_mask"]) for f in features)
    real = sum(int(f["attention_mask"].sum()) for f in features)
    padded = sum(int(f["attention_mask"].numel()) for f in features)
    return texts, real, padded


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    ap.add_argument("--order", required=True, help="batch-order file (our trainer's OUT/batch_order.txt)")
    ap.add_argument("--steps", type=int, required=True, help="steps to run, warm-up included")
    ap.add_argument("--warmup", type=int, default=3, help="first steps left out of the timing")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model trains")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward (GPU)")
    ap.add_argument("--json", required=True, help="write the results here")
    ap.add_argument("--profile-gemm", action="store_true",
                    help="also report the time in matrix-multiply ops (torch profiler; slows the steps)")
    args = ap.parse_args()

    cfg = ref.load_config(args.config, args.set)
    cfg["train"]["log_every"] = 10 ** 9  # no step lines
    torch.set_num_threads(args.threads)
    torch.manual_seed(cfg["train"]["seed"])
    from sentence_transformers import SentenceTransformer
    import sentence_transformers
    import transformers

    rows = ref.read_rows(cfg["data"])
    steps = ref.read_order(args.order, len(rows))[:args.steps]
    if len(steps) <= args.warmup:
        sys.exit(f"st_reference.py: {args.order} has {len(steps)} steps, need more than --warmup {args.warmup}")
    model = SentenceTransformer(cfg["model"]["path"], device=args.device, model_kwargs={"dtype": torch.float32})
    model.max_seq_length = cfg["model"]["max_seq_length"]
    metrics = []
    if args.profile_gemm:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            ref.train(model, cfg, rows, steps, metrics, bf16=args.bf16)
    else:
        ref.train(model, cfg, rows, steps, metrics, bf16=args.bf16)
    timed = range(args.warmup, len(steps))
    sizes = [step_sizes(model, rows, steps[s]) for s in timed]
    seconds = sum(metrics[s]["ms"] for s in timed) / 1000.0
    result = {
        "system": "sentence-transformers",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "sentence-transformers": sentence_transformers.__version__},
        "threads": torch.get_num_threads(), "timed_steps": len(timed), "seconds": seconds,
        "texts": sum(s[0] for s in sizes), "real_tokens": sum(s[1] for s in sizes),
        "padded_tokens": sum(s[2] for s in sizes),
        "ms_per_step": [metrics[s]["ms"] for s in timed],
        "tokenize_ms_per_step": [metrics[s]["tokenize_ms"] for s in timed],
        "loss": [metrics[s]["loss"] for s in range(len(steps))],
        "device": args.device, "bf16": args.bf16,
    }
    if args.profile_gemm:  # all steps, warm-up included: the GEMMs' time does not warm up
        gemm_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in GEMM_OPS)
        result["gemm_ms_per_step"] = gemm_us / 1000.0 / len(steps)
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
        result["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
