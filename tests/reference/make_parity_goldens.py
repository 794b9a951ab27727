#!/usr/bin/env python3
"""Goldens for the trainer's parity with sentence-transformers (issue 4 item 4) and for
tests/test_npy.c. Everything is computed by sentence-transformers / transformers / torch /
numpy themselves, on one CPU thread, deterministically. docs/parity.md describes every file,
the exact commands, the library versions and the tolerances the C tests must meet.

    python3 tests/reference/make_parity_goldens.py [npy|tiny|real|all]   # default: all

Run from the repository root. `real` needs models/all-MiniLM-L6-v2
(scripts/fetch-demo-model.sh). Writes tests/data/parity/:

  npy/                 .npy files written by numpy (reader goldens, writer byte goldens)
  tiny/                a seeded random BERT (hidden 32, 2 layers) with a trimmed copy of the
                       bert-base-uncased vocabulary, as a sentence-transformers folder
  tiny_sentences.txt   200 STSb sentences, one a line; tiny_embeddings.npy their ST encode
  tiny_batch_k0.tsv, tiny_batch_k2.tsv   fixed MNRL batches (8 rows; 0 and 2 negatives)
  tiny_grads_k0.safetensors.gz, tiny_grads_k2.safetensors.gz   every parameter gradient
  tiny_train.tsv + tiny_train_order.txt  20 AdamW steps of 8 rows
  tiny.json            losses, grad norms, learning rates, final parameter sums
  real_sentences.tsv.gz  which 1,000 STSb dev sentences; real_embeddings_f16.npy.gz their
                       ST encode by all-MiniLM-L6-v2
  real_batch.tsv       16 (anchor, positive) rows; real_grads.safetensors.gz part of the
                       gradients; real.json loss, per-tensor gradient statistics, STSb scores
"""
import gzip
import io
import json
import math
import os
import sys

import numpy as np
import torch
from safetensors.torch import save as st_save
from transformers import BertConfig, BertModel, BertTokenizerFast

OUT = "tests/data/parity"
STSB = "data/stsbenchmark.tsv.gz"
SNLI = "data/snli_dev_test.tsv.gz"
BERT_VOCAB = "models/bert-base-uncased/vocab.txt"
REAL_MODEL = "models/all-MiniLM-L6-v2"
MAX_SEQ_LENGTH = 64
SCALE = 20.0
NO_DECAY = ["bias", "LayerNorm.weight"]  # the ST fit() / HF Trainer rule (LayerNorm.bias is a bias)


def deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def read_tsv(path):
    """Rows of a tab-separated file as the C readers split them (no quoting), header first."""
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") if path.endswith(".gz") else \
            open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def sts_split(split):
    """(pair index within the split, sentence1, sentence2, score) of STSb in file order."""
    rows = [r for r in read_tsv(STSB)[1:] if r[0] == split]
    return [(i, r[6], r[7], float(r[5])) for i, r in enumerate(rows)]


def first_unique_sts_sentences(split, n):
    """The first n distinct sentences of an STSb split: per pair in file order, sentence1
    then sentence2, each kept at its first occurrence. (pair index, column 1/2, text)."""
    seen, out = set(), []
    for i, s1, s2, _ in sts_split(split):
        for col, s in ((1, s1), (2, s2)):
            if s not in seen and len(out) < n:
                seen.add(s)
                out.append((i, col, s))
    return out


def snli_rows(split):
    """(premise, hypothesis, label) of the committed SNLI sample, in file order."""
    return [(r[3], r[4], r[5]) for r in read_tsv(SNLI)[1:] if r[0] == split]


def snli_pairs(split):
    """The "pairs" recipe: entailment rows as (premise, hypothesis), in file order."""
    return [(p, h) for p, h, label in snli_rows(split) if label == "entailment"]


def snli_quads(split):
    """(premise, entailment, contradiction, neutral) for premises that have one of each
    (the first of each label), in first-seen premise order: MNRL rows with k = 2."""
    by_premise = {}
    for p, h, label in snli_rows(split):
        by_premise.setdefault(p, {}).setdefault(label, h)
    return [(p, d["entailment"], d["contradiction"], d["neutral"]) for p, d in by_premise.items()
            if {"entailment", "contradiction", "neutral"} <= d.keys()]


def write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            assert all("\t" not in c and "\n" not in c for c in r)
            f.write("\t".join(r) + "\n")


def write_order(path, data_line, steps):
    """The batch-order format of train_reference.py: '#' lines, then one line per step with
    the 0-based row indices of that step's batch, space-separated."""
    with open(path, "w") as f:
        f.write(f"# {data_line}\n")
        for rows in steps:
            f.write(" ".join(str(r) for r in rows) + "\n")


def gzip_bytes(path, data):
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as g:
        g.write(data)


def save_tensors_gz(path, tensors):
    gzip_bytes(path, st_save({k: v.detach().contiguous().float() for k, v in tensors.items()},
                             metadata={"format": "pt"}))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def mnrl_loss(model):
    try:  # sentence-transformers >= 6 moved the losses; older releases have the short path
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss
    return MultipleNegativesRankingLoss(model, scale=SCALE)


def batch_loss(model, loss_fn, rows):
    """ST's MNRL on one batch: one feature dict per column (anchor, positive, negatives)."""
    columns = [list(c) for c in zip(*rows)]
    features = [model.preprocess(c) for c in columns]
    return loss_fn(features, None)


def named_grads(model):
    """HF names (BertModel, no prefix) -> gradient; the pooler gets none and is left out."""
    return {n: p.grad.detach().clone() for n, p in model[0].auto_model.named_parameters() if p.grad is not None}


def tensor_stats(t):
    d = t.detach().double().reshape(-1)
    return {"norm": float(d.norm()), "sum": float(d.sum()), "max_abs": float(d.abs().max())}


def write_npy_goldens():
    """tests/data/parity/npy/: files written by numpy itself for tests/test_npy.c."""
    out = os.path.join(OUT, "npy")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    special = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 3.14159265, -2.5e-3, 65504.0, 65519.99, 65520.0, 1e6,
                        2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,
                        3.4028234e38, 1.1754944e-38, 1e-40, np.inf, -np.inf, np.nan, 7.0], dtype=np.float32)
    arrays = {
        "special_2d": special.reshape(4, 6),
        "random_2d": (rng.standard_normal((17, 33)) * 3).astype(np.float32),
        "random_1d": rng.standard_normal(5).astype(np.float32),
        "wide_1d": rng.standard_normal(1000).astype(np.float32),  # 4-digit first axis
        "empty_2d": np.zeros((0, 384), dtype=np.float32),
    }
    for name, a in arrays.items():
        with np.errstate(over="ignore"):  # 1e6 and 3.4e38 become inf in float16, as intended
            a16 = a.astype(np.float16)
        np.save(f"{out}/{name}_f32.npy", a)
        np.save(f"{out}/{name}_f16.npy", a16)  # numpy's round-to-nearest-even
        # The exact float32 widening of the float16 values, for the reader's F16 path.
        np.save(f"{out}/{name}_f16_as_f32.npy", a16.astype(np.float32))
    # Version 2.0 header (u32 length) and a gzip copy: the reader accepts both.
    with open(f"{out}/random_2d_v2.npy", "wb") as f:
        np.lib.format.write_array(f, arrays["random_2d"], version=(2, 0))
    with open(f"{out}/random_2d_f32.npy", "rb") as f:
        gzip_bytes(f"{out}/random_2d_f32.npy.gz", f.read())
    # One defect each; the C reader must refuse them with a message naming the problem.
    bad = os.path.join(out, "bad")
    os.makedirs(bad, exist_ok=True)
    a = arrays["random_1d"]
    np.save(f"{bad}/float64.npy", a.astype(np.float64))
    np.save(f"{bad}/big_endian.npy", a.astype(">f4"))
    np.save(f"{bad}/int32.npy", np.arange(5, dtype=np.int32))
    np.save(f"{bad}/fortran.npy", np.asfortranarray(arrays["random_2d"]))
    np.save(f"{bad}/three_d.npy", np.zeros((2, 3, 4), dtype=np.float32))
    np.save(f"{bad}/scalar.npy", np.float32(1.5))
    good = open(f"{out}/random_2d_f32.npy", "rb").read()
    open(f"{bad}/truncated_data.npy", "wb").write(good[:-3])
    open(f"{bad}/overlong_data.npy", "wb").write(good + b"\0\0\0\0")
    open(f"{bad}/truncated_header.npy", "wb").write(good[:40])
    open(f"{bad}/not_npy.npy", "wb").write(b"PK\x03\x04 this is a zip (np.savez), not a .npy file\n")
    open(f"{bad}/bad_header.npy", "wb").write(good.replace(b"'shape': (17, 33)", b"'shape': [17, 33]"))
    open(f"{bad}/version_9.npy", "wb").write(good[:6] + b"\x09\x00" + good[8:])


# ---- (a) the tiny random BERT with a trimmed real vocabulary ------------------------------
TINY = os.path.join(OUT, "tiny")
TINY_STEPS, TINY_BATCH, TINY_LR, TINY_WARMUP = 20, 8, 1e-3, 2


def tiny_texts():
    """Every text the tiny goldens use; the trimmed vocabulary covers exactly these."""
    sentences = [s for _, _, s in first_unique_sts_sentences("dev", 190)]
    # The 10 longest STSb sentences (by characters; the longest is 70 tokens, so one is
    # truncated at max_seq_length 64), not already taken.
    everything = {s for split in ("train", "dev", "test") for _, s1, s2, _ in sts_split(split) for s in (s1, s2)}
    longest = sorted(everything - set(sentences), key=lambda s: (-len(s), s))[:10]
    sentences += longest
    pairs = snli_pairs("dev")
    batch_k0 = pairs[:TINY_BATCH]
    train = pairs[TINY_BATCH:TINY_BATCH + TINY_STEPS * TINY_BATCH]
    batch_k2 = snli_quads("test")[:TINY_BATCH]
    return sentences, batch_k0, batch_k2, train


def trimmed_vocab(texts):
    """bert-base-uncased tokens that the full-vocabulary tokenizer produces for texts, plus
    the specials, in the original file order. Greedy longest-match WordPiece gives the same
    pieces with any sub-vocabulary that contains the pieces it chose (a longer match in the
    subset would have been a longer match in the full vocabulary), so only the ids change."""
    full = BertTokenizerFast(BERT_VOCAB, do_lower_case=True)
    used = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    for t in texts:
        used.update(full.tokenize(t))
    vocab = [w for w in open(BERT_VOCAB, encoding="utf-8").read().split("\n") if w in used]
    return full, vocab


def write_tiny_folder(vocab):
    os.makedirs(os.path.join(TINY, "1_Pooling"), exist_ok=True)
    with open(os.path.join(TINY, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    write_json(os.path.join(TINY, "tokenizer_config.json"), {
        "do_lower_case": True, "tokenize_chinese_chars": True, "strip_accents": None,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "mask_token": "[MASK]", "tokenizer_class": "BertTokenizer", "model_max_length": 128})
    write_json(os.path.join(TINY, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    write_json(os.path.join(TINY, "sentence_bert_config.json"), {"max_seq_length": MAX_SEQ_LENGTH,
                                                                 "do_lower_case": False})
    write_json(os.path.join(TINY, "1_Pooling", "config.json"), {
        "word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})

    torch.manual_seed(20240612)
    # Dropout stays at BERT's 0.1 in config.json: the goldens are computed in eval mode
    # (dropout off), so the C side must switch dropout off itself (train.dropout = 0).
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, architectures=["BertModel"])
    model = BertModel(config)
    with torch.no_grad():
        # HF initialises LayerNorm to 1/0 and biases to 0: perturb everything so that every
        # tensor has distinct values, then round to BF16, the stored dtype (exact in F32).
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
            p.copy_(p.to(torch.bfloat16).float())
    config.to_json_file(os.path.join(TINY, "config.json"))
    from safetensors.torch import save_file
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()},
              os.path.join(TINY, "model.safetensors"), metadata={"format": "pt"})


def load_st(path):
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(path, device="cpu", model_kwargs={"dtype": torch.float32})
    assert all(p.dtype == torch.float32 for p in model.parameters())
    return model


def tiny_optimizer(model):
    """As ST's fit() / the HF Trainer set it up: AdamW with decay 0.01 except biases and
    LayerNorm weights, torch defaults otherwise (betas 0.9/0.999, eps 1e-8), warmup-linear."""
    from transformers import get_linear_schedule_with_warmup
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not any(nd in n for nd in NO_DECAY)], "weight_decay": 0.01},
              {"params": [p for n, p in named if any(nd in n for nd in NO_DECAY)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=TINY_LR, betas=(0.9, 0.999), eps=1e-8)
    return opt, get_linear_schedule_with_warmup(opt, TINY_WARMUP, TINY_STEPS)


def tiny_training(train):
    """20 AdamW steps, batch s = rows [8s, 8s+8) of tiny_train.tsv, dropout off (eval mode)."""
    deterministic()
    model = load_st(TINY)
    model.eval()
    loss_fn = mnrl_loss(model)
    opt, sched = tiny_optimizer(model)
    steps = []
    for s in range(TINY_STEPS):
        opt.zero_grad()
        lr = sched.get_last_lr()[0]
        loss = batch_loss(model, loss_fn, train[s * TINY_BATCH:(s + 1) * TINY_BATCH])
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        steps.append({"step": s + 1, "lr": lr, "loss": float(loss.detach()), "grad_norm": float(norm)})
    final = {n: tensor_stats(p) for n, p in model[0].auto_model.named_parameters() if not n.startswith("pooler.")}
    return steps, final


def make_tiny():
    sentences, batch_k0, batch_k2, train = tiny_texts()
    all_texts = sentences + [t for rows in (batch_k0, batch_k2, train) for r in rows for t in r]
    full, vocab = trimmed_vocab(all_texts)
    write_tiny_folder(vocab)
    with open(os.path.join(OUT, "tiny_sentences.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(sentences) + "\n")
    write_tsv(os.path.join(OUT, "tiny_batch_k0.tsv"), ["anchor", "positive"], batch_k0)
    write_tsv(os.path.join(OUT, "tiny_batch_k2.tsv"), ["anchor", "positive", "negative_1", "negative_2"], batch_k2)
    write_tsv(os.path.join(OUT, "tiny_train.tsv"), ["anchor", "positive"], train)
    write_order(os.path.join(OUT, "tiny_train_order.txt"), "data tests/data/parity/tiny_train.tsv",
                [range(s * TINY_BATCH, (s + 1) * TINY_BATCH) for s in range(TINY_STEPS)])

    deterministic()
    model = load_st(TINY)
    trimmed = model.tokenizer
    for t in all_texts:  # same pieces as the full vocabulary (see trimmed_vocab)
        assert trimmed.tokenize(t) == full.tokenize(t), t
    emb = model.encode(sentences, batch_size=32, normalize_embeddings=False, convert_to_numpy=True)
    assert emb.dtype == np.float32 and emb.shape == (len(sentences), 32)
    np.save(os.path.join(OUT, "tiny_embeddings.npy"), emb)
    truncated = sum(len(trimmed(s)["input_ids"]) > MAX_SEQ_LENGTH for s in sentences)

    model.eval()  # dropout off
    loss_fn = mnrl_loss(model)
    result = {"vocab_size": len(vocab), "sentences_truncated": truncated}
    for tag, rows in (("k0", batch_k0), ("k2", batch_k2)):
        model.zero_grad(set_to_none=True)
        loss = batch_loss(model, loss_fn, rows)
        loss.backward()
        grads = named_grads(model)
        save_tensors_gz(os.path.join(OUT, f"tiny_grads_{tag}.safetensors.gz"), grads)
        result[f"loss_{tag}"] = float(loss.detach())
        result[f"grad_norm_{tag}"] = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())))
    steps, final = tiny_training(train)
    result["train_steps"] = steps
    result["train_final_params"] = final
    write_json(os.path.join(OUT, "tiny.json"), result)
    print(f"tiny: vocab {len(vocab)}, loss k0 {result['loss_k0']:.6f}, k2 {result['loss_k2']:.6f}, "
          f"step losses {steps[0]['loss']:.4f} .. {steps[-1]['loss']:.4f}")


# ---- (b) the real pre-trained model all-MiniLM-L6-v2 --------------------------------------
REAL_SENTENCES, REAL_BATCH = 1000, 16
SAMPLE_STRIDE = 997  # 2-D gradients: every 997th element (flat C order) is stored
WORD_ROWS = 8        # word-embedding gradient rows stored in full: the batch's most frequent ids


def sts_scores(model, split):
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator, SimilarityFunction
    rows = sts_split(split)
    ev = EmbeddingSimilarityEvaluator([r[1] for r in rows], [r[2] for r in rows], [r[3] / 5.0 for r in rows],
                                      main_similarity=SimilarityFunction.COSINE, name=f"sts-{split}")
    res = ev(model)
    key = lambda m: next(v for k, v in res.items() if k.endswith(f"{m}_cosine"))
    # ST 3+ reports correlations in [-1, 1]; the project and the 2021 scripts use x100.
    return {"spearman_x100": 100 * key("spearman"), "pearson_x100": 100 * key("pearson"), "pairs": len(rows)}


def make_real():
    if not os.path.exists(os.path.join(REAL_MODEL, "model.safetensors")):
        sys.exit(f"{REAL_MODEL} is missing: run scripts/fetch-demo-model.sh first")
    deterministic()
    model = load_st(REAL_MODEL)
    model.max_seq_length = MAX_SEQ_LENGTH  # configs/demo.json (the folder says 256)
    picked = first_unique_sts_sentences("dev", REAL_SENTENCES)
    text = "pair\tcolumn\tsentence\n" + "".join(f"{i}\t{c}\t{s}\n" for i, c, s in picked)
    gzip_bytes(os.path.join(OUT, "real_sentences.tsv.gz"), text.encode("utf-8"))
    emb = model.encode([s for _, _, s in picked], batch_size=32, normalize_embeddings=False,
                       convert_to_numpy=True)
    buf = io.BytesIO()
    np.save(buf, emb.astype(np.float16))
    gzip_bytes(os.path.join(OUT, "real_embeddings_f16.npy.gz"), buf.getvalue())
    truncated = sum(len(model.tokenizer(s)["input_ids"]) > MAX_SEQ_LENGTH for _, _, s in picked)

    result = {"model": REAL_MODEL, "max_seq_length": MAX_SEQ_LENGTH, "sentences": REAL_SENTENCES,
              "sentences_truncated": truncated,
              "embedding_norms_min_max": [float(np.linalg.norm(emb, axis=1).min()),
                                          float(np.linalg.norm(emb, axis=1).max())],
              "sts_dev": sts_scores(model, "dev"), "sts_test": sts_scores(model, "test")}

    rows = snli_pairs("test")[:REAL_BATCH]
    write_tsv(os.path.join(OUT, "real_batch.tsv"), ["anchor", "positive"], rows)
    model.eval()  # dropout off
    loss = batch_loss(model, mnrl_loss(model), rows)
    loss.backward()
    grads = named_grads(model)
    ids = torch.cat([model.preprocess([r[c] for r in rows])["input_ids"].reshape(-1) for c in range(2)])
    counts = torch.bincount(ids[ids != 0], minlength=1)
    word_ids = sorted(torch.argsort(counts, descending=True, stable=True)[:WORD_ROWS].tolist())
    stored = {}
    for name, g in grads.items():
        if g.dim() == 1:
            stored[name] = g
        else:
            stored[name + ".sample"] = g.reshape(-1)[::SAMPLE_STRIDE]
    stored["embeddings.word_embeddings.weight.rows"] = grads["embeddings.word_embeddings.weight"][word_ids]
    save_tensors_gz(os.path.join(OUT, "real_grads.safetensors.gz"), stored)
    result.update({"batch_rows": REAL_BATCH, "loss": float(loss.detach()), "sample_stride": SAMPLE_STRIDE,
                   "word_embedding_rows": word_ids,
                   "grad_stats": {n: tensor_stats(g) for n, g in grads.items()}})
    write_json(os.path.join(OUT, "real.json"), result)
    print(f"real: loss {result['loss']:.6f}, STSb dev {result['sts_dev']['spearman_x100']:.4f}, "
          f"test {result['sts_test']['spearman_x100']:.4f}")


def versions():
    import platform
    import safetensors
    import scipy
    import sentence_transformers
    import tokenizers
    import transformers
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__, "tokenizers": tokenizers.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "safetensors": safetensors.__version__}


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what not in ("npy", "tiny", "real", "all"):
        sys.exit("usage: make_parity_goldens.py [npy|tiny|real|all]")
    os.makedirs(OUT, exist_ok=True)
    if what in ("npy", "all"):
        write_npy_goldens()
    if what in ("tiny", "all"):
        make_tiny()
    if what in ("real", "all"):
        make_real()
    write_json(os.path.join(OUT, "versions.json"), versions())


if __name__ == "__main__":
    main()
