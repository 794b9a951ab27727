#!/usr/bin/env bash
# One command from a fresh Debian machine to a working mnrl_cuda: installs the Debian
# dependencies, builds (with CUDA kernels when nvcc is present), fetches the demo model
# and runs the default demo (configs/demo.json): all-MiniLM-L6-v2 fine-tuned with MNRL on
# the committed SNLI sample, STSb before and after, exported to output/demo/final.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
scripts/fetch-demo-model.sh
./mnrl_cuda --version
./mnrl_cuda prepare configs/demo.json
./mnrl_cuda configs/demo.json
