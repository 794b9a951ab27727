#!/usr/bin/env python3
"""Ours' attention against cuDNN's and FlashAttention's, on the same packed NLI sentences:

    python3 bench/attention.py BENCH_GPU_ATTENTION [--batches 128 512] [--repeats 20] [--json FILE]

Issue 7 asks to try cuDNN's fused attention for packed sequences and keep whichever is
faster. Building it into the trainer means a cuDNN graph for the forward and one for the
backward through cuDNN's backend API, none of which can run without a GPU; this measures
first what it would gain. torch calls cuDNN's variable-length (ragged) SDPA graphs through
aten._cudnn_attention_forward and its backward, and FlashAttention-2's varlen kernels
through aten._flash_attention_forward: both on exactly the sentence lengths ours times
(bench_gpu_attention, built by scripts/gpu-pack.sh), bf16, 12 heads of 64 (bert-base),
attention dropout 0.1, scale 1/8, the q/k/v layout of the trainer (rows of [q | k | v]).

The rows are bench/gpu.sh's (gpu_setup.py: the SNLI sample's anchor, positive and hard
negative triplets), the first B of them packed column by column as the trainer packs a
batch (all anchors, then the positives, then the negatives), tokenized by transformers'
BertTokenizerFast with max_seq_length 75. Each side: one untimed call, then REPEATS
forward calls between two CUDA events, then REPEATS backward calls of one forward's graph.
Before timing, cuDNN's and Flash's outputs without dropout are compared (a wrong layout or
offsets would show there). Prints a table per batch: ms per forward and backward call and
each total as a multiple of ours (above 1: ours is faster). A backend that refuses
dropout is timed without it (NAME_nodrop, a lower bound of its time); one this torch or
GPU lacks is reported unavailable, with why.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_setup import nli_triplets  # noqa: E402

HEADS, HEAD_SIZE, MAX_SEQLEN, DROPOUT = 12, 64, 75, 0.1


def batch_lengths(rows, batch, tokenizer):
    picked = rows[:batch]
    if len(picked) < batch:
        sys.exit(f"attention.py: the SNLI sample has {len(rows)} triplets, fewer than batch {batch}")
    texts = [row[col] for col in range(3) for row in picked]
    ids = tokenizer(texts, truncation=True, max_length=MAX_SEQLEN)["input_ids"]
    return [len(x) for x in ids]


def ours(binary, lengths, repeats):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(map(str, lengths)) + "\n")
    try:
        run = subprocess.run([binary, f.name, str(MAX_SEQLEN), str(HEADS), str(HEAD_SIZE), str(repeats),
                              str(1.0 - DROPOUT)], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if run.returncode != 0:
        raise RuntimeError(f"{binary} exited {run.returncode}: {run.stderr.strip()}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return result["forward_ms"], result["backward_ms"]


class Packed:
    """The torch side's inputs: q, k, v each a contiguous [T, heads, head size] (the layout of
    torch's nested-tensor attention), the offsets, dO."""

    def __init__(self, torch, lengths):
        self.torch = torch
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        self.cu = torch.tensor(offsets, dtype=torch.int32, device="cuda")
        self.longest = max(lengths)
        gen = torch.Generator(device="cuda").manual_seed(7)
        qkv = torch.rand(offsets[-1], 3, HEADS, HEAD_SIZE, device="cuda", generator=gen) * 2 - 1
        self.qkv = qkv.to(torch.bfloat16)
        self.dout = (torch.rand(offsets[-1], HEADS, HEAD_SIZE, device="cuda", generator=gen) * 2 - 1).to(
            torch.bfloat16)

    def leaves(self):
        return [t.contiguous().requires_grad_() for t in self.qkv.unbind(1)]


def cudnn_forward(torch, p, q, k, v, dropout):
    return torch.ops.aten._cudnn_attention_forward(q, k, v, None, p.cu, p.cu, p.longest, p.longest, True, dropout,
                                                   False, False, scale=HEAD_SIZE ** -0.5)[0]


def flash_forward(torch, p, q, k, v, dropout):
    return torch.ops.aten._flash_attention_forward(q, k, v, p.cu, p.cu, p.longest, p.longest, dropout, False,
                                                   False, scale=HEAD_SIZE ** -0.5)[0]


def timed(torch, calls, repeats):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls()
    start.record()
    for _ in range(repeats):
        calls()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / repeats


def time_backend(torch, forward, p, repeats, dropout):
    """(forward ms, backward ms) per call; backward through torch's autograd formula of the op
    (its backward kernels), repeated on one forward's graph."""
    q, k, v = p.leaves()
    forward_ms = timed(torch, lambda: forward(torch, p, q, k, v, dropout), repeats)
    out = forward(torch, p, q, k, v, dropout)
    backward_ms = timed(torch, lambda: torch.autograd.grad(out, (q, k, v), p.dout, retain_graph=True), repeats)
    return forward_ms, backward_ms


def agreement(torch, p):
    """Largest |cuDNN - Flash| of the outputs without dropout, or why it could not be taken."""
    try:
        with torch.no_grad():
            q, k, v = p.leaves()
            a = cudnn_forward(torch, p, q, k, v, 0.0).float()
            b = flash_forward(torch, p, q, k, v, 0.0).float()
        return f"{(a - b).abs().max().item():.3g}"
    except Exception as e:  # noqa: BLE001 - reported, the timings go on
        return f"not taken ({type(e).__name__}: {str(e).splitlines()[0][:120]})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", help="bench_gpu_attention (ours)")
    ap.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    import torch
    from transformers import BertTokenizerFast
    if not torch.cuda.is_available():
        sys.exit("attention.py: torch sees no CUDA device")
    tokenizer = BertTokenizerFast(vocab_file=os.path.join(ROOT, "models", "bert-base-uncased", "vocab.txt"),
                                  do_lower_case=True)
    rows = nli_triplets(os.path.join(ROOT, "data", "snli_dev_test.tsv.gz"))
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}; "
          f"bf16, {HEADS} heads of {HEAD_SIZE}, dropout {DROPOUT}, {args.repeats} timed calls each")
    report = []
    for batch in args.batches:
        lengths = batch_lengths(rows, batch, tokenizer)
        p = Packed(torch, lengths)
        print(f"\nbatch {batch}: {len(lengths)} sentences, {sum(lengths)} tokens, longest {max(lengths)}; "
              f"|cuDNN - Flash| without dropout: {agreement(torch, p)}")
        results = {}
        try:
            results["ours"] = ours(args.binary, lengths, args.repeats)
        except Exception as e:  # noqa: BLE001
            print(f"  ours: failed ({e})")
        for name, forward in (("cudnn", cudnn_forward), ("flash", flash_forward)):
            # Without dropout when the backend refuses it: a lower bound of its time.
            for dropout, label in ((DROPOUT, name), (0.0, f"{name}_nodrop")):
                try:
                    results[label] = time_backend(torch, forward, p, args.repeats, dropout)
                    break
                except Exception as e:  # noqa: BLE001 - a backend this torch or GPU lacks
                    print(f"  {label}: unavailable ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
        print(f"  {'':14} {'forward ms':>11} {'backward ms':>12} {'total ms':>9} {'x ours time':>12}")
        for name, (fwd, bwd) in results.items():
            vs = f"{(fwd + bwd) / sum(results['ours']):.2f}x" if "ours" in results and name != "ours" else ""
            print(f"  {name:14} {fwd:11.3f} {bwd:12.3f} {fwd + bwd:9.3f} {vs:>12}")
        report.append({"batch": batch, "sentences": len(lengths), "tokens": sum(lengths),
                       **{f"{k}_{pass_}_ms": v[i] for k, v in results.items()
                          for i, pass_ in enumerate(("forward", "backward"))}})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "batches": report}, f,
                      indent=1)


if __name__ == "__main__":
    main()
