#!/usr/bin/env python3
"""Goldens for tests/test_safetensors.c, tests/test_params.c and tests/test_params_demo.c.

Everything here is written by the reference implementations — the Python `safetensors`
library, torch's float conversions and transformers' BertConfig/BertModel — so the C
reader, writer, conversions and parameter table are checked against code that is not ours.

Writes into tests/data/modelfiles/:
  values_{f32,f16,bf16,mixed}.safetensors  tensors of special and random values, written
      by safetensors.torch.save_file (F16/BF16 converted by torch from the F32 values);
      the C writer must reproduce these bytes from the F32 values.
  values_{f16,bf16}_as_f32.safetensors     torch's exact widening of the F16/BF16 values.
  tiny_f32/      BertModel.save_pretrained (seeded; vocab 100, hidden 32, 2 layers, 4 heads,
                 intermediate 64, max_position 40): names without prefix, pooler included.
  tiny_bf16/     the same weights as BertForPreTraining names ("bert." prefix, pooler, cls.*
                 heads, an I64 position_ids buffer) in BF16.
  tiny_f16_gamma/  the same weights in F16 with old LayerNorm gamma/beta names.
  tiny_*.golden.txt  per BertModel parameter (no pooler): name, shape, decay flag (the ST/HF
                 no-decay rule), first and last value (float.hex), float64 sum and abs sum.
  tiny_resaved.txt  length and CRC-32 of the files safetensors.torch.save_file writes for the
                 tiny BertModel parameters (no pooler, metadata format=pt) in F32 and BF16.
  bert_config_defaults.json  HF BertConfig() defaults.
  broken/        corrupt safetensors files (one defect each) and model folders with one
                 error each.
  all-MiniLM-L6-v2.sums.txt  per-tensor golden of models/all-MiniLM-L6-v2/model.safetensors
                 (fetched by scripts/fetch-demo-model.sh), when that file is present.

Run from the repository root: python3 tests/reference/make_model_file_goldens.py
"""
import hashlib
import json
import math
import os
import struct
import zlib

import torch
from safetensors.torch import save, save_file, load_file
from transformers import BertConfig, BertForPreTraining, BertModel

OUT = "tests/data/modelfiles"
NO_DECAY = ["bias", "LayerNorm.weight"]  # sentence-transformers fit() / HF Trainer rule


def special_values():
    f = torch.float32
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.14159265, -2.5e-3,
            65504.0, 65519.99, 65520.0, 65536.0, 1e6, -1e6,      # f16 overflow edge
            2.0 ** -14, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,  # f16 subnormal edges and ties
            2.0 ** -25 * 1.0000001, 5 * 2.0 ** -26, 2.0 ** -26,
            1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,                  # f16 ties to even
            1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1 + 2.0 ** -8 + 2.0 ** -20,  # bf16 ties
            3.4028234e38, -3.4028234e38, 1.1754944e-38, 1e-40, -1e-45,  # f32 max/min/subnormal
            float("inf"), float("-inf")]
    return torch.tensor(vals, dtype=f)


def value_tensors():
    g = torch.Generator().manual_seed(1234)
    return {
        "special": special_values(),
        "nan": torch.tensor([float("nan"), -float("nan")]),
        "random.matrix": torch.randn(3, 5, generator=g) * 10,
        "random.cube": torch.randn(2, 3, 4, generator=g) * 1e-3,
        "scalar": torch.tensor(7.25),
        "empty": torch.zeros(0, 3),
        "tiny.subnormals": (torch.rand(64, generator=g) - 0.5) * 2.0 ** -13,
        "wide": (torch.rand(64, generator=g) - 0.5) * 2.0 ** 17,
    }


def write_value_goldens():
    tensors = value_tensors()
    meta = {"format": "pt"}
    save_file(tensors, f"{OUT}/values_f32.safetensors", metadata=meta)
    for dtype, tag in [(torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        # torch's bf16 NaN bits depend on the code path (0x7fc0 scalar, 0x7fff or 0xffff
        # vectorised), so NaN is compared for F16 only; the C side writes 0x7fc0.
        narrowed = {k: v.to(dtype) for k, v in tensors.items() if not (k == "nan" and tag == "bf16")}
        save_file(narrowed, f"{OUT}/values_{tag}.safetensors", metadata=meta)
        save_file({k: v.float() for k, v in narrowed.items()}, f"{OUT}/values_{tag}_as_f32.safetensors")
    # Mixed dtypes: the writer's order is dtype (widest first), then name. No metadata.
    mixed = {"b.half": tensors["random.matrix"].to(torch.float16),
             "a.bf16": tensors["random.cube"].to(torch.bfloat16),
             "c.float": tensors["special"],
             "a.float": tensors["scalar"],
             "z.half": tensors["empty"].to(torch.float16)}
    save_file(mixed, f"{OUT}/values_mixed.safetensors")


def seeded_bert():
    torch.manual_seed(20240601)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=40)
    model = BertModel(config)
    # HF initialises LayerNorm to 1/0 and biases to 0; perturb every tensor so that each one
    # has distinct values and a wrong offset or transposition cannot go unnoticed.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return config, model


def write_golden_listing(path, params):
    with open(path, "w") as f:
        f.write("# name ndim shape... decay first last sum abs_sum  (made by tests/reference/make_model_file_goldens.py)\n")
        for name, t in params.items():
            flat = t.float().reshape(-1)
            decay = 0 if any(nd in name for nd in NO_DECAY) else 1
            f.write(f"{name} {t.dim()} {' '.join(str(s) for s in t.shape)} {decay} "
                    f"{float(flat[0]).hex()} {float(flat[-1]).hex()} "
                    f"{float(flat.double().sum())!r} {float(flat.double().abs().sum())!r}\n")


def write_tiny_models():
    config, model = seeded_bert()
    # transformers' own writer for the plain folder.
    model.save_pretrained(f"{OUT}/tiny_f32")
    params = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("pooler.")}
    write_golden_listing(f"{OUT}/tiny_f32.golden.txt", params)

    # BertForPreTraining names: bert.* + cls.* heads, plus the position_ids buffer that old
    # checkpoints saved. Same BertModel weights, stored in BF16.
    pre = BertForPreTraining(config)
    pre.bert.load_state_dict(model.state_dict())
    sd = {k: v.detach().clone().contiguous() for k, v in pre.state_dict().items()}
    sd = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in sd.items()}
    sd["bert.embeddings.position_ids"] = torch.arange(config.max_position_embeddings, dtype=torch.int64)[None]
    os.makedirs(f"{OUT}/tiny_bf16", exist_ok=True)
    config.to_json_file(f"{OUT}/tiny_bf16/config.json")
    save_file(sd, f"{OUT}/tiny_bf16/model.safetensors", metadata={"format": "pt"})
    write_golden_listing(f"{OUT}/tiny_bf16.golden.txt",
                         {k: params_v.to(torch.bfloat16) for k, params_v in params.items()})

    # Old TF-converted names: LayerNorm.gamma / LayerNorm.beta, in F16.
    def old_name(k):
        if ".LayerNorm." in k:
            return k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        return k
    os.makedirs(f"{OUT}/tiny_f16_gamma", exist_ok=True)
    config.to_json_file(f"{OUT}/tiny_f16_gamma/config.json")
    save_file({old_name(k): v.to(torch.float16) for k, v in params.items()},
              f"{OUT}/tiny_f16_gamma/model.safetensors")
    write_golden_listing(f"{OUT}/tiny_f16_gamma.golden.txt",
                         {k: v.to(torch.float16) for k, v in params.items()})

    # What the Python library writes for the BertModel parameters (the C writer must
    # produce the same bytes; recorded as length + CRC-32 to keep the data small).
    with open(f"{OUT}/tiny_resaved.txt", "w") as f:
        f.write("# dtype length crc32 of safetensors.torch.save(BertModel params, metadata format=pt)\n")
        f.write(f"n_params {sum(v.numel() for v in params.values())}\n")
        for dtype, tag in [(torch.float32, "F32"), (torch.bfloat16, "BF16")]:
            data = save({k: v.to(dtype) for k, v in params.items()}, metadata={"format": "pt"})
            f.write(f"{tag} {len(data)} {zlib.crc32(data)}\n")


def raw_safetensors(header, data=b"", length=None):
    """A file with exactly this header text (no validation, for broken files)."""
    h = header.encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def write_broken():
    d = f"{OUT}/broken"
    os.makedirs(d, exist_ok=True)
    good = save({"a": torch.arange(16, dtype=torch.float32).reshape(4, 4), "b": torch.ones(3)})
    files = {
        "short.safetensors": b"\x10\x00\x00",
        "truncated.safetensors": good[:-7],
        "header_too_long.safetensors": struct.pack("<Q", 1000000) + good[8:],
        "bad_json.safetensors": raw_safetensors('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]', b"\0" * 8),
        "not_object.safetensors": raw_safetensors("[1, 2, 3]"),
        "unknown_dtype.safetensors": raw_safetensors('{"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
        "wrong_size.safetensors": raw_safetensors('{"x":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,16]}}', b"\0" * 16),
        "overlap.safetensors": raw_safetensors('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
                                               '"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}', b"\0" * 24),
        "past_end.safetensors": raw_safetensors('{"a":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}', b"\0" * 16),
        "negative_shape.safetensors": raw_safetensors('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'),
        "bad_metadata.safetensors": raw_safetensors('{"__metadata__":{"format":1}}'),
    }
    for name, data in files.items():
        with open(f"{d}/{name}", "wb") as f:
            f.write(data)

    # Model folders with one error each, from a very small BERT.
    torch.manual_seed(7)
    config = BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=8)
    params = {k: v.detach().clone() for k, v in BertModel(config, add_pooling_layer=False).state_dict().items()}

    def folder(name, tensors, cfg=config):
        os.makedirs(f"{d}/{name}", exist_ok=True)
        cfg.to_json_file(f"{d}/{name}/config.json")
        if tensors is not None:
            save_file(tensors, f"{d}/{name}/model.safetensors", metadata={"format": "pt"})

    folder("model_ok", params)
    folder("model_missing", {k: v for k, v in params.items() if k != "encoder.layer.0.output.dense.bias"})
    folder("model_unexpected", {**params, "encoder.layer.1.output.dense.bias": torch.zeros(8)})
    folder("model_duplicate", {**params, "bert.embeddings.LayerNorm.weight": torch.ones(8)})
    folder("model_int_weight", {**params, "embeddings.token_type_embeddings.weight": torch.zeros(2, 8, dtype=torch.int32)})
    wider = BertConfig(**{**config.to_dict(), "intermediate_size": 20})
    folder("model_shape", params, wider)
    folder("model_bin_only", None)
    torch.save({"embeddings.LayerNorm.weight": torch.ones(8)}, f"{d}/model_bin_only/pytorch_model.bin")


def write_config_defaults():
    c = BertConfig().to_dict()
    keys = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
            "type_vocab_size", "layer_norm_eps", "position_embedding_type", "pad_token_id"]
    with open(f"{OUT}/bert_config_defaults.json", "w") as f:
        # transformers 5 no longer has position_embedding_type (absolute is all it does):
        # keys the installed version lacks are left out, and the C test checks what is here.
        json.dump({k: c[k] for k in keys if k in c}, f, indent=1)
        f.write("\n")


def write_demo_sums():
    path = "models/all-MiniLM-L6-v2/model.safetensors"
    if not os.path.exists(path):
        print(f"{path} absent (scripts/fetch-demo-model.sh fetches it); demo golden not rewritten")
        return
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    tensors = load_file(path)
    config = BertConfig.from_pretrained("models/all-MiniLM-L6-v2")
    n_params = sum(p.numel() for p in BertModel(config, add_pooling_layer=False).parameters())
    with open(f"{OUT}/all-MiniLM-L6-v2.sums.txt", "w") as f:
        f.write(f"# {path} sha256 {sha}; made by tests/reference/make_model_file_goldens.py\n")
        f.write("# name ndim shape... decay first last sum abs_sum  (BertModel parameters only)\n")
        f.write(f"n_params {n_params}\n")
    params = {k: v for k, v in tensors.items() if not k.startswith("pooler.") and not k.endswith("position_ids")}
    listing = f"{OUT}/all-MiniLM-L6-v2.sums.txt.part"
    write_golden_listing(listing, params)
    with open(listing) as src, open(f"{OUT}/all-MiniLM-L6-v2.sums.txt", "a") as dst:
        dst.writelines(line for line in src if not line.startswith("#"))
    os.remove(listing)


def main():
    os.makedirs(OUT, exist_ok=True)
    write_value_goldens()
    write_tiny_models()
    write_broken()
    write_config_defaults()
    write_demo_sums()


if __name__ == "__main__":
    main()
