#!/usr/bin/env python3
"""Goldens for tests/test_ops_cpu.c: every op of include/mnrl/ops.h, forward and backward,
computed by torch's own functions in float64 and stored as float32.

    python3 tests/reference/make_ops_goldens.py   # writes tests/data/ops/goldens.bin.gz

File format (little-endian, gzip): b"MNRLGLD1", then records of
    u32 name length, name bytes, u32 ndim, u32 dims[ndim], f32 data[prod(dims)].
Integer tensors (token ids, cu_seqlens) are stored as exact float32 values.

Shapes are small and awkward on purpose: sentences of 1, 2, 5 and 33 tokens packed together,
hidden 64 with 4 heads, column counts that are not multiples of the CPU's 32-column chunks,
batch 1 and odd batches, k = 0, 1 and 2 hard negatives. Dropout masks come from an
independent Python Philox4x32-10 (checked here against Random123's known answers) with the
(seed, stream, element) mapping documented in include/mnrl/rng.h.
"""
import gzip
import math
import os
import struct

import torch
import torch.nn.functional as F
from sentence_transformers import util
try:
    from sentence_transformers.sentence_transformer.modules import Pooling
except ImportError:  # sentence-transformers before the modules move
    from sentence_transformers.models import Pooling
from transformers import get_linear_schedule_with_warmup

torch.manual_seed(20240611)
D = torch.float64
OUT = os.path.join(os.path.dirname(__file__), "..", "data", "ops", "goldens.bin.gz")
records = []


def save(name, tensor):
    records.append((name, torch.as_tensor(tensor).detach().to(torch.float32).contiguous()))


# ---- Philox4x32-10 (Salmon et al. 2011) and the rng.h mapping -----------------------------
M32 = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c, k0, k1 = list(ctr), key[0], key[1]
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c[3] ^ k1) & M32, p0 & M32]
    return c


KAT = [  # Random123 kat_vectors: counter, key -> output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((M32,) * 4, (M32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
for ctr, key, want in KAT:
    assert tuple(philox4x32_10(ctr, key)) == want


def rng_stream(step, rank, tensor_id):
    return (step << 32) | ((rank & 0xFFF) << 20) | (tensor_id & 0xFFFFF)


def keep_multipliers(n, keep, seed, stream, index=None):
    """Dropout multipliers (0 or 1/keep) of elements index (default 0..n-1)."""
    index = range(n) if index is None else index
    cache, out = {}, []
    for e in index:
        q = e >> 2
        if q not in cache:
            ctr = (q & M32, q >> 32, stream & M32, stream >> 32)
            cache[q] = philox4x32_10(ctr, (seed & M32, seed >> 32))
        u = (cache[q][e & 3] >> 8) * (1.0 / 16777216.0)
        out.append(1.0 / keep if u < keep else 0.0)
    return torch.tensor(out, dtype=D)


def leaf(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, dtype=D) * scale + shift).requires_grad_(True)


# ---- packed sentences -----------------------------------------------------------------------
LENS = [1, 2, 5, 33]
CU = [0]
for n in LENS:
    CU.append(CU[-1] + n)
T, S, MAXLEN = CU[-1], len(LENS), max(LENS)
save("cu_seqlens", torch.tensor(CU))
POS = torch.tensor([t - CU[s] for s in range(S) for t in range(CU[s], CU[s + 1])])

# ---- embeddings (C = 40: a partial 32-column chunk) ------------------------------------------
C, V, P = 40, 50, 40
ids = torch.randint(0, V, (T,))
ids[5:9] = 7  # repeated ids: the scatter must accumulate
wte, wpe, wtt = leaf(V, C), leaf(P, C), leaf(2, C)
emb = F.embedding(ids, wte) + F.embedding(POS, wpe) + F.embedding(torch.zeros_like(ids), wtt)
dout = torch.randn(T, C, dtype=D)
emb.backward(dout)
for k, v in dict(ids=ids, wte=wte, wpe=wpe, wtt=wtt, dout=dout, out=emb, dwte=wte.grad,
                 dwpe=wpe.grad, dwtt=wtt.grad).items():
    save("emb." + k, v)

# ---- LayerNorm and residual LayerNorm (C = 40) -----------------------------------------------
C, EPS = 40, 1e-12
x, w, b = leaf(T, C, scale=3.0, shift=0.7), leaf(C), leaf(C)
out, mean, rstd = torch.native_layer_norm(x, [C], w, b, EPS)
assert torch.allclose(out, F.layer_norm(x, [C], w, b, EPS))
dout = torch.randn(T, C, dtype=D)
out.backward(dout)
for k, v in dict(x=x, w=w, b=b, dout=dout, out=out, mean=mean.view(T), rstd=rstd.view(T),
                 dx=x.grad, dw=w.grad, db=b.grad).items():
    save("ln." + k, v)

ra, rb, w2, b2 = leaf(T, C), leaf(T, C), leaf(C), leaf(C)
res = ra + rb
out = F.layer_norm(res, [C], w2, b2, EPS)
out.backward(dout)
assert torch.equal(ra.grad, rb.grad)
for k, v in dict(a=ra, b=rb, w=w2, bias=b2, out=out, da=ra.grad, dw=w2.grad,
                 dbias=b2.grad).items():  # dout: ln.dout; db = da
    save("resln." + k, v)

# ---- linear layers, plain and with fused GELU (C = 64 -> OC = 40), same inputs -----------------
C, OC = 64, 40
x, w, b = leaf(T, C), leaf(OC, C, scale=0.2), leaf(OC)
dout = torch.randn(T, OC, dtype=D)
for k, v in dict(x=x, w=w, b=b, dout=dout).items():
    save("mm." + k, v)
for tag, act in (("mm", lambda y: y), ("mmg", F.gelu)):
    x.grad = w.grad = b.grad = None
    pre = F.linear(x, w, b)
    out = act(pre)
    out.backward(dout)
    for k, v in dict(out=out, dx=x.grad, dw=w.grad, db=b.grad).items():
        save(f"{tag}.{k}", v)
save("mmg.pre", pre)

# ---- GELU over its whole range ----------------------------------------------------------------
x = torch.cat([torch.linspace(-9, 9, 301, dtype=D), torch.randn(100, dtype=D)]).requires_grad_(True)
out = F.gelu(x)
dout = torch.randn_like(x)
out.backward(dout)
for k, v in dict(x=x, dout=dout, out=out, dx=x.grad).items():
    save("gelu." + k, v)

# ---- dropout -----------------------------------------------------------------------------------
N, KEEP, SEED, STREAM = 1001, 0.9, 0x0123456789ABCDEF, rng_stream(7, 3, 5)
x = torch.randn(N, dtype=D)
save("drop.x", x)
save("drop.out", x * keep_multipliers(N, KEEP, SEED, STREAM))
# The seed goes in 16-bit pieces, which float32 holds exactly.
save("drop.params", torch.tensor([KEEP, 7, 3, 5] + [(SEED >> (16 * i)) & 0xFFFF for i in range(4)],
                                 dtype=D))
# Far elements: block indices above 2^32 exercise the high counter word.
far = [(1 << 34) + 1, (1 << 35) + 6, 123456789012]
save("drop.far_index_lo", torch.tensor([e & 0xFFFF for e in far]))  # exact in f32
save("drop.far_index_hi", torch.tensor([e >> 16 for e in far]))
save("drop.far_mult", keep_multipliers(0, 0.5, SEED, STREAM, far))

# ---- attention (C = 64, 4 heads of 16) ---------------------------------------------------------
C, NH = 64, 4
HS = C // NH
ATT_KEEP, ATT_SEED, ATT_STREAM = 0.8, 99, rng_stream(12, 0, 3)


def attention(qkv, keep, seed, stream):
    outs = []
    for s in range(S):
        rows = qkv[CU[s]:CU[s + 1]]
        n = rows.shape[0]
        q, k, v = (rows[:, i * C:(i + 1) * C].view(n, NH, HS).transpose(0, 1) for i in range(3))
        p = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(HS), dim=-1)  # [NH, n, n]
        if keep < 1.0:
            idx = [((CU[s] + i) * NH + h) * MAXLEN + j
                   for h in range(NH) for i in range(n) for j in range(n)]
            p = p * keep_multipliers(0, keep, seed, stream, idx).view(NH, n, n)
        else:
            sdpa = F.scaled_dot_product_attention(q, k, v)
            assert torch.allclose(sdpa, p @ v)
        outs.append((p @ v).transpose(0, 1).reshape(n, C))
    return torch.cat(outs)


qkv, dout = leaf(T, 3 * C), torch.randn(T, C, dtype=D)
save("att.qkv", qkv)
save("att.dout", dout)
for tag, keep in (("att", 1.0), ("attd", ATT_KEEP)):
    qkv.grad = None
    out = attention(qkv, keep, ATT_SEED, ATT_STREAM)
    out.backward(dout)
    save(f"{tag}.out", out)
    save(f"{tag}.dqkv", qkv.grad)
save("attd.params", torch.tensor([ATT_KEEP, ATT_SEED, 12, 0, 3], dtype=D))

# ---- mean pooling, through sentence-transformers' Pooling on the padded batch ------------------
C = 64
x = leaf(T, C)
padded = torch.zeros(S, MAXLEN, C, dtype=D)
mask = torch.zeros(S, MAXLEN, dtype=torch.long)
for s in range(S):
    padded[s, :LENS[s]] = x[CU[s]:CU[s + 1]]
    mask[s, :LENS[s]] = 1
pool = Pooling(C, pooling_mode="mean")
out = pool({"token_embeddings": padded, "attention_mask": mask})["sentence_embedding"]
dout = torch.randn(S, C, dtype=D)
out.backward(dout)
for k, v in dict(x=x, dout=dout, out=out, dx=x.grad).items():
    save("pool." + k, v)

# ---- MNRL loss as sentence-transformers computes it --------------------------------------------
def mnrl(anchors, candidates, scale, rows=None, global_batch=None):
    """MultipleNegativesRankingLoss: cos_sim · scale, CE with labels arange(B). rows
    selects this rank's anchors of a distributed batch (loss summed over them / global B)."""
    scores = util.cos_sim(anchors, candidates) * scale
    labels = torch.arange(scores.size(0))
    if rows is None:
        return torch.nn.CrossEntropyLoss()(scores, labels)
    return F.cross_entropy(scores[rows], labels[rows], reduction="sum") / global_batch


H = 64
for tag, B, k, scale in (("loss1", 1, 0, 20.0), ("loss5", 5, 2, 20.0), ("loss7", 7, 1, 13.5)):
    A, Cd = leaf(B, H), leaf(B * (1 + k), H)
    loss = mnrl(A, Cd, scale)
    loss.backward()
    for key, v in dict(A=A, Cd=Cd, loss=loss.view(1), dA=A.grad, dCd=Cd.grad,
                       params=torch.tensor([B, k, scale])).items():
        save(f"{tag}.{key}", v)

# Rank 1 of 2 in a data-parallel step: global B = 6, b = 3, k = 1; candidate 8 (a negative) is
# the zero vector, which exercises the 1e-12 clamp of F.normalize. The two ranks' parts must
# add up to the single-process loss and gradients.
A, Cd = leaf(6, H), torch.randn(12, H, dtype=D)
Cd[8] = 0.0
Cd.requires_grad_(True)
full = mnrl(A, Cd, 20.0)
dA_full, dCd_full = torch.autograd.grad(full, (A, Cd))
parts = [mnrl(A, Cd, 20.0, slice(r * 3, r * 3 + 3), 6) for r in range(2)]
assert torch.allclose(parts[0] + parts[1], full)
dA1, dCd1 = torch.autograd.grad(parts[1], (A, Cd))
dA0, dCd0 = torch.autograd.grad(parts[0], (A, Cd))
assert torch.allclose(dCd0 + dCd1, dCd_full) and torch.allclose(dA0 + dA1, dA_full)
for key, v in dict(A=A[3:6], Cd=Cd, loss=parts[1].view(1), dA=dA1[3:6], dCd=dCd1).items():
    save("lossr1." + key, v)

# ---- AdamW: 3 steps, a decayed and an undecayed group, changing lr -----------------------------
n_decay, n_plain = 20, 17
p0 = torch.randn(n_decay + n_plain, dtype=D)
pd_, pp_ = p0[:n_decay].clone().requires_grad_(True), p0[n_decay:].clone().requires_grad_(True)
opt = torch.optim.AdamW([{"params": [pd_], "weight_decay": 0.01},
                         {"params": [pp_], "weight_decay": 0.0}],
                        lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
save("adamw.p0", p0)
save("adamw.hp", torch.tensor([0.9, 0.999, 1e-8, 0.01, n_decay], dtype=D))
for step, lr in enumerate((1e-3, 5e-4, 2e-3), start=1):
    g = torch.randn(n_decay + n_plain, dtype=D) * (0.1 if step == 2 else 1.0)
    pd_.grad, pp_.grad = g[:n_decay].clone(), g[n_decay:].clone()
    for group in opt.param_groups:
        group["lr"] = lr
    opt.step()
    save(f"adamw.g{step}", g)
    save(f"adamw.lr{step}", torch.tensor([lr], dtype=D))
    save(f"adamw.p{step}", torch.cat([pd_.detach(), pp_.detach()]))
save("adamw.m", torch.cat([opt.state[pd_]["exp_avg"], opt.state[pp_]["exp_avg"]]))
save("adamw.v", torch.cat([opt.state[pd_]["exp_avg_sq"], opt.state[pp_]["exp_avg_sq"]]))

# ---- global-norm clipping over several tensors -------------------------------------------------
grads = [torch.randn(n, dtype=D) for n in (400, 350, 251)]
params = [torch.zeros_like(g, requires_grad=True) for g in grads]
for p, g in zip(params, grads):
    p.grad = g.clone()
save("clip.g", torch.cat(grads))
norm = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
save("clip.norm", norm.view(1))
save("clip.out", torch.cat([p.grad for p in params]))

# ---- warmup-linear schedule (transformers, as sentence-transformers' WarmupLinear) --------------
for warmup, total in ((10, 100), (0, 37), (7, 7)):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2e-5)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    lrs = []
    for _ in range(total + 2):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    save(f"sched.{warmup}_{total}", torch.tensor(lrs, dtype=D))

blob = bytearray(b"MNRLGLD1")
for name, t in records:
    raw = name.encode()
    blob += struct.pack("<I", len(raw)) + raw + struct.pack("<I", t.dim())
    blob += struct.pack(f"<{t.dim()}I", *t.shape) + t.numpy().astype("<f4").tobytes()
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with gzip.GzipFile(OUT, "wb", mtime=0) as f:
    f.write(bytes(blob))
print(f"wrote {len(records)} tensors, {os.path.getsize(OUT)} bytes to {os.path.normpath(OUT)}")
