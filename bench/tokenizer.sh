#!/usr/bin/env bash
# Builds (Release, CPU only) and runs the tokenizer benchmark: sentences/s of
# tokenizer_encode against HF tokenizers (BertTokenizerFast's backend, one thread: one
# text per call, and encode_batch), on every STSb and SNLI dev/test sentence, max_length
# 512 with truncation, several passes. Usage: bench/tokenizer.sh [BUILD_DIR] [PASSES]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-bench}"
passes="${2:-5}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMNRL_CUDA=OFF -DMNRL_LINK_BINARY=OFF >/dev/null
cmake --build "$build" --target bench_tokenizer -j2 >/dev/null
texts="$(mktemp)"
trap 'rm -f "$texts"' EXIT
# sentence1 and sentence2 of every row: columns 7-8 of STSb, 4-5 of SNLI.
zcat "$root/data/stsbenchmark.tsv.gz" | tail -n +2 | cut -f 7,8 | tr '\t' '\n' >"$texts"
zcat "$root/data/snli_dev_test.tsv.gz" | tail -n +2 | cut -f 4,5 | tr '\t' '\n' >>"$texts"
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "commit: $(git -C "$root" rev-parse --short HEAD); texts: $(wc -l <"$texts") sentences x $passes passes"
model="$root/models/bert-base-uncased"
ours=$("$build/bench/bench_tokenizer" "$model" "$texts" "$passes")
echo "$ours"
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false python3 - "$model/vocab.txt" "$texts" "$passes" "$ours" <<'PY'
import sys, time
import tokenizers
from transformers import BertTokenizerFast
vocab_path, texts_path, passes, ours = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
vocab = {line.rstrip("\n"): i for i, line in enumerate(open(vocab_path, encoding="utf-8"))}
tok = BertTokenizerFast(vocab=vocab, do_lower_case=True).backend_tokenizer
tok.enable_truncation(max_length=512)
texts = open(texts_path, "rb").read().decode("utf-8", errors="replace").split("\n")[:-1]
n = len(texts) * passes
t0 = time.perf_counter()
for _ in range(passes):
    for t in texts:
        tok.encode(t)
one = n / (time.perf_counter() - t0)
t0 = time.perf_counter()
for _ in range(passes):
    tok.encode_batch(texts)
batch = n / (time.perf_counter() - t0)
ours_rate = float(ours.split(" = ")[1].split()[0])
print(f"HF tokenizers {tokenizers.__version__} encode (one text per call): {one:.0f} sentences/s; ours is {ours_rate / one:.1f}x")
print(f"HF tokenizers {tokenizers.__version__} encode_batch (1 thread): {batch:.0f} sentences/s; ours is {ours_rate / batch:.1f}x")
PY
