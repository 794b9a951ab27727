#!/usr/bin/env bash
# Installs the Debian packages mnrl_cuda builds against (DESIGN §4). The CUDA toolkit
# (nvcc, cuBLASLt, NCCL, cuDNN) is optional: without nvcc the CPU-only build is made.
set -euo pipefail
packages=(build-essential cmake pkg-config git ca-certificates curl unzip
          libjansson-dev zlib1g-dev libutf8proc-dev libopenblas-openmp-dev
          libopenmpi-dev openmpi-bin
          clang libclang-rt-14-dev)  # libFuzzer for scripts/fuzz.sh
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
