#!/usr/bin/env python3
"""Goldens for tests/test_export.c, and the check that our exported folder loads in
sentence-transformers.

Layout choice. sentence-transformers (ST) 6.x saves a new layout (module types under
sentence_transformers.base.*, `embedding_dimension`/`pooling_mode` pooling keys,
max_seq_length moved into tokenizer_config.json) that ST <= 5 cannot load. The layout ST
2.x-5.x save (modules.json with sentence_transformers.models.*, sentence_bert_config.json
with max_seq_length/do_lower_case, the pooling_mode_* keys) is what most Hub models use
and ST 6.2 still loads unchanged. src/host/export.c writes that layout, so the goldens
come from ST 5.1.2's own save(): its wheel is pure Python and runs on the transformers
installed here. Fetch it once with the ordinary client:
    pip download sentence-transformers==5.1.2 --no-deps -d /tmp/st5

Modes (run from the repository root):
  python3 tests/reference/make_export_goldens.py goldens --st5-wheel /tmp/st5/sentence_transformers-5.1.2-py3-none-any.whl
      Writes tests/data/export/:
        base/      a model folder for the exporter: the tiny BertModel's config.json
                   (tests/data/modelfiles/tiny_f32, weights not copied: the C test loads
                   them from there), a 100-token vocab.txt and what BertTokenizerFast
                   .save_pretrained writes (tokenizer.json, tokenizer_config.json), plus a
                   special_tokens_map.json as older transformers wrote it.
        st_saved/  modules.json, sentence_bert_config.json, 1_Pooling/config.json and
                   config_sentence_transformers.json as ST 5.1.2's save() writes them for
                   Transformer(base + tiny weights, max_seq_length=24) + mean Pooling.
  python3 tests/reference/make_export_goldens.py check DIR [--st5-wheel WHEEL]
      Loads DIR (a folder our exporter wrote; `MNRL_EXPORT_KEEP=/tmp/tiny_export
      build/tests/test_export` leaves one at /tmp/tiny_export/final) with the installed ST
      (and ST 5.1.2 when the wheel is given) and compares it with the same model built by
      ST itself from the base folder: module configuration, max_seq_length, similarity
      function and embeddings of a few sentences.

Recorded result (ST 6.2.0 + transformers 5.24.0 installed; ST 5.1.2 wheel):
  ST 6.2.0: loads, same modules and max_seq_length 24, cosine, max |embedding diff| 0.0
  ST 5.1.2: loads, same modules and max_seq_length 24, cosine, max |embedding diff| 0.0
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

OUT = "tests/data/export"
TINY = "tests/data/modelfiles/tiny_f32"
MAX_SEQ_LENGTH = 24  # the tiny model has 40 positions; not 32 = its hidden size
SENTENCES = ["the cat sat on the mat", "a dog runs", "Was the CAT sitting?", "xyzzy " * 40]
SAVED_FILES = ["modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
               "config_sentence_transformers.json"]


def tiny_vocab():
    """100 tokens (the tiny model's vocab_size): BERT's specials, letters, a few words."""
    vocab = ["[PAD]", "[unused0]", "[unused1]", "[unused2]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["?", "."]
    vocab += "the a cat dog sat on mat is was runs sitting ##s ##ing ##ed".split()
    vocab += [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    vocab += [f"w{i}" for i in range(100 - len(vocab))]
    assert len(vocab) == 100
    return vocab


def write_base():
    from transformers import BertTokenizerFast
    base = f"{OUT}/base"
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    shutil.copy(f"{TINY}/config.json", base)
    with open(f"{base}/vocab.txt", "w") as f:
        f.write("\n".join(tiny_vocab()) + "\n")
    BertTokenizerFast(f"{base}/vocab.txt", do_lower_case=True, model_max_length=512).save_pretrained(base)
    specials = {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]",
                "sep_token": "[SEP]", "unk_token": "[UNK]"}
    with open(f"{base}/special_tokens_map.json", "w") as f:
        json.dump(specials, f, indent=2)
    print("wrote", base, sorted(os.listdir(base)))


def model_folder():
    """The base folder plus the tiny weights: what ST builds its reference model from."""
    d = tempfile.mkdtemp()
    for name in os.listdir(f"{OUT}/base"):
        shutil.copy(f"{OUT}/base/{name}", d)
    shutil.copy(f"{TINY}/model.safetensors", d)
    return d


# Runs in a child process so that the ST 5.1.2 wheel never mixes with the installed ST.
CHILD = r"""
import json, sys, types
wheel, mode, path, max_seq_length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if wheel != "-":
    sys.path.insert(0, wheel)
    # ST 5's CLIPModel imports PIL at import time; the exporter never uses it.
    clip = types.ModuleType("sentence_transformers.models.CLIPModel")
    clip.CLIPModel = type("CLIPModel", (), {})
    sys.modules["sentence_transformers.models.CLIPModel"] = clip
import sentence_transformers
from sentence_transformers import SentenceTransformer, models
if mode == "save":
    t = models.Transformer(path, max_seq_length=max_seq_length)
    m = SentenceTransformer(modules=[t, models.Pooling(t.get_word_embedding_dimension(), "mean")])
    m.save(sys.argv[5])
    m = SentenceTransformer(sys.argv[5])
else:
    m = SentenceTransformer(path)
emb = m.encode(json.loads(sys.argv[6] if mode == "save" else sys.argv[5])).tolist()
print(json.dumps({"version": sentence_transformers.__version__, "modules": repr(m),
                  "max_seq_length": m.max_seq_length,
                  "similarity": m.similarity_fn_name, "embeddings": emb}))
"""


def run_child(wheel, *args):
    run = subprocess.run([sys.executable, "-c", CHILD, wheel or "-", *map(str, args)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(run.stderr)
    return json.loads(run.stdout.strip().splitlines()[-1])


def write_st_saved(wheel):
    src = model_folder()
    saved = tempfile.mkdtemp()
    info = run_child(wheel, "save", src, MAX_SEQ_LENGTH, saved, json.dumps(SENTENCES))
    assert info["version"] == "5.1.2", info["version"]
    dst = f"{OUT}/st_saved"
    shutil.rmtree(dst, ignore_errors=True)
    for name in SAVED_FILES:
        os.makedirs(os.path.dirname(f"{dst}/{name}"), exist_ok=True)
        shutil.copy(f"{saved}/{name}", f"{dst}/{name}")
    print("wrote", dst, "from sentence-transformers", info["version"])


def check(folder, wheel):
    src = model_folder()
    for label, w in [("installed ST", None)] + ([("ST wheel", wheel)] if wheel else []):
        ref = run_child(w, "save", src, MAX_SEQ_LENGTH, tempfile.mkdtemp(), json.dumps(SENTENCES))
        ours = run_child(w, "load", folder, MAX_SEQ_LENGTH, json.dumps(SENTENCES))
        diff = max(abs(a - b) for ra, rb in zip(ref["embeddings"], ours["embeddings"])
                   for a, b in zip(ra, rb))
        same = all(ref[k] == ours[k] for k in ("modules", "max_seq_length", "similarity"))
        print(f"{label} {ours['version']}: loads; modules/max_seq_length/similarity "
              f"{'same' if same else 'DIFFERENT'} (max_seq_length {ours['max_seq_length']}, "
              f"{ours['similarity']}); max |embedding diff| {diff:.3g}")
        if not same or diff > 1e-6:
            print("reference:", {k: ref[k] for k in ("modules", "max_seq_length", "similarity")})
            print("ours:     ", {k: ours[k] for k in ("modules", "max_seq_length", "similarity")})
            sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["goldens", "check"])
    ap.add_argument("folder", nargs="?")
    ap.add_argument("--st5-wheel")
    args = ap.parse_args()
    if args.mode == "goldens":
        if not args.st5_wheel:
            sys.exit("goldens need --st5-wheel (see the docstring)")
        write_base()
        write_st_saved(args.st5_wheel)
    else:
        if not args.folder:
            sys.exit("check needs the exported folder")
        check(args.folder, args.st5_wheel)


if __name__ == "__main__":
    main()
