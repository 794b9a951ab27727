#!/usr/bin/env python3
"""Scaling on paper: step time of data-parallel MNRL training vs world size (issue 6).

Weak scaling: every GPU keeps its per-GPU batch b, the global batch is B = W*b (set
train.batch_size to it). One step of the trainer (src/host/train.c, loss.c) on W ranks:

  t(W) = t_compute                        encoder forward + backward of this rank's texts
       + t_loss(W)                        b anchors x B(1+k) candidates, fp32, fwd + bwd
       + t_gather(W) + t_scatter(W)       candidates all-gathered / their gradients
                                          reduce-scattered: 1+k blocks of b*H fp32 each
       + t_allreduce(W)                   parameter gradients, fp32, summed
       + t_small(W)                       loss scalar, token counts, stop flag

Collectives are modelled as NCCL rings: moving n bytes per rank in an all-gather or
reduce-scatter costs (W-1)/W * n_total / bw + (W-1) * alpha per call, an all-reduce
2 (W-1)/W * n / bw + 2 log2(W) * alpha (trees for latency, rings for bandwidth); bw is
NVLink within a node and the per-GPU InfiniBand bandwidth as soon as W spans nodes.
As implemented, the gradient all-reduce runs after backward (no overlap); --overlap shows
the DDP-style alternative where it hides behind backward (2/3 of t_compute).

Per-GPU compute comes from a stated throughput: 6 * (non-embedding parameters) FLOPs per
token (plus attention) at --mfu of the GPU's dense bf16 peak, or --tokens-per-s when
measured. All numbers are parameters; the defaults are bert-base-uncased (configs/
nli.json: triplets, k = 1, 128 rows per GPU, ~16 tokens per text) on H100 SXM nodes of
8 GPUs (NVLink 4: 450 GB/s per direction per GPU, 8 x 400 Gb/s NDR: 50 GB/s per GPU).

Usage: python3 bench/scaling.py [--per-gpu-batch 128] [--negatives 1] [--overlap] ...
Only the Python standard library.
"""
import argparse
import math


def bert_params(vocab, hidden, layers, intermediate, positions, types=2):
    """Parameters of HF BertModel without the pooler (mean pooling does not use it)."""
    embeddings = (vocab + positions + types) * hidden + 2 * hidden
    layer = (4 * (hidden * hidden + hidden) + 2 * hidden
             + hidden * intermediate + intermediate + intermediate * hidden + hidden + 2 * hidden)
    return embeddings + layers * layer, layers * layer


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--positions", type=int, default=512)
    p.add_argument("--per-gpu-batch", type=int, default=128, help="rows per GPU (b)")
    p.add_argument("--negatives", type=int, default=1, help="hard negatives per row (k)")
    p.add_argument("--tokens-per-text", type=float, default=16.0,
                   help="average tokens per text, [CLS] and [SEP] included (packed, no padding)")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM)")
    p.add_argument("--mfu", type=float, default=0.35, help="fraction of the peak the encoder reaches")
    p.add_argument("--tokens-per-s", type=float, default=0.0,
                   help="measured per-GPU training tokens/s (replaces --peak-tflops x --mfu)")
    p.add_argument("--loss-tflops", type=float, default=30.0,
                   help="fp32 rate of the fused score/CE kernel (H100 fp32 peak 67)")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--nvlink-gbs", type=float, default=450.0, help="GB/s per GPU within a node")
    p.add_argument("--ib-gbs", type=float, default=50.0, help="GB/s per GPU across nodes")
    p.add_argument("--nvlink-latency-us", type=float, default=3.0)
    p.add_argument("--ib-latency-us", type=float, default=8.0)
    p.add_argument("--overlap", action="store_true",
                   help="gradient all-reduce overlapped with backward (not implemented)")
    p.add_argument("--worlds", default="1,2,4,8,16,32,64,128,256,512,1024")
    return p.parse_args()


class Model:
    def __init__(self, a):
        self.a = a
        self.params, self.nonembed = bert_params(a.vocab, a.hidden, a.layers, a.intermediate, a.positions)
        self.texts = a.per_gpu_batch * (2 + a.negatives)
        self.tokens = self.texts * a.tokens_per_text
        # 6 N per token (fwd + bwd) + attention scores and context: 12 L T H per token.
        flops_per_token = 6 * self.nonembed + 12 * a.layers * a.tokens_per_text * a.hidden
        rate = a.tokens_per_s if a.tokens_per_s > 0 else a.mfu * a.peak_tflops * 1e12 / flops_per_token
        self.tokens_per_s = rate
        self.t_compute = self.tokens / rate

    def link(self, world):
        a = self.a
        if world <= a.gpus_per_node:
            return a.nvlink_gbs * 1e9, a.nvlink_latency_us * 1e-6
        return a.ib_gbs * 1e9, a.ib_latency_us * 1e-6

    def step(self, world):
        """Seconds of each part of one step on `world` ranks."""
        a = self.a
        b, k, H = a.per_gpu_batch, a.negatives, a.hidden
        B = world * b
        cand_bytes = B * (1 + k) * H * 4  # the gathered candidates every rank holds, fp32
        # Scores A C^T forward, recomputed in backward (tiled), dA = dS C, dC = dS^T A.
        loss_flops = 4 * 2 * b * B * (1 + k) * H
        parts = {"compute": self.t_compute, "loss": loss_flops / (a.loss_tflops * 1e12),
                 "gather": 0.0, "scatter": 0.0, "allreduce": 0.0, "small": 0.0}
        if world > 1:
            bw, alpha = self.link(world)
            blocks = 1 + k
            ring = (world - 1) / world
            parts["gather"] = ring * cand_bytes / bw + blocks * (world - 1) * alpha
            parts["scatter"] = parts["gather"]
            allreduce = 2 * ring * self.params * 4 / bw + 2 * math.log2(world) * alpha
            hidden_by_backward = (2 / 3) * self.t_compute if a.overlap else 0.0
            parts["allreduce"] = max(0.0, allreduce - hidden_by_backward)
            parts["small"] = 3 * 2 * math.log2(world) * alpha
        return parts, cand_bytes


def main():
    a = parse_args()
    m = Model(a)
    worlds = [int(w) for w in a.worlds.split(",")]
    print(f"model: BERT {a.layers} layers, hidden {a.hidden}: {m.params / 1e6:.1f}M parameters "
          f"({m.nonembed / 1e6:.1f}M outside the embeddings); gradient all-reduce "
          f"{m.params * 4 / 1e6:.0f} MB fp32 per step")
    print(f"per GPU: {a.per_gpu_batch} rows x {2 + a.negatives} texts x {a.tokens_per_text:g} tokens = "
          f"{m.tokens:,.0f} tokens at {m.tokens_per_s:,.0f} tokens/s -> compute {m.t_compute * 1e3:.2f} ms/step")
    print(f"links: NVLink {a.nvlink_gbs:g} GB/s up to {a.gpus_per_node} GPUs, InfiniBand {a.ib_gbs:g} GB/s "
          f"per GPU beyond; gradient all-reduce {'overlapped with backward' if a.overlap else 'after backward (as implemented)'}")
    print()
    print(f"{'GPUs':>5} {'global B':>8} {'cand. MB':>9} {'compute':>8} {'loss':>6} {'gather':>7} "
          f"{'scatter':>7} {'allred':>7} {'step ms':>8} {'rows/s':>10} {'eff.':>5}")
    t1 = sum(m.step(1)[0].values())
    rows = []
    for w in worlds:
        parts, cand_bytes = m.step(w)
        t = sum(parts.values())
        eff = t1 / t
        rows.append((w, parts, t, eff, cand_bytes))
        print(f"{w:>5} {w * a.per_gpu_batch:>8,} {cand_bytes / 1e6:>9.2f} {parts['compute'] * 1e3:>8.2f} "
              f"{parts['loss'] * 1e3:>6.2f} {parts['gather'] * 1e3:>7.2f} {parts['scatter'] * 1e3:>7.2f} "
              f"{parts['allreduce'] * 1e3:>7.2f} {t * 1e3:>8.2f} {w * a.per_gpu_batch / t:>10,.0f} {eff:>5.0%}")
    print()
    print("cand. MB: the all-gathered candidate embeddings B(1+k) x H fp32 that every rank holds; it")
    print("sends its own (1/W of them) and receives the rest, and the same again for their gradients.")
    for w, parts, t, eff, _ in rows:
        if w in (8, 64):
            comm = parts["gather"] + parts["scatter"] + parts["allreduce"] + parts["small"]
            print(f"weak-scaling efficiency at {w} GPUs: {eff:.0%} (communication {comm * 1e3:.2f} ms of "
                  f"{t * 1e3:.2f} ms)")
    # Where it stops scaling: the embedding traffic and the loss grow with W (every rank
    # scores against all B(1+k) candidates), the gradient all-reduce does not.
    grow = None
    for w in range(2, 1 << 16):
        parts, _ = m.step(w)
        if parts["gather"] + parts["scatter"] + parts["loss"] > parts["compute"]:
            grow = w
            break
    half = next((w for w, _, _, eff, _ in rows if eff < 0.5), None)
    if half:
        print(f"efficiency first below 50% in the table at {half} GPUs")
    if grow:
        print(f"the W-proportional part (candidate gather/scatter + loss) exceeds the encoder's compute "
              f"at {grow} GPUs: beyond that, adding GPUs adds little throughput")


if __name__ == "__main__":
    main()
