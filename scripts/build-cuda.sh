#!/usr/bin/env bash
# Builds the CUDA binary on a machine without a GPU, for Hopper GPUs (compute capability 9.0).
#
#   bash scripts/cuda-toolkit.sh    # once: CUDA 13.0 from PyPI wheels into target/cuda-toolkit
#   bash scripts/build-cuda.sh      # -> target/cuda/proxythinker (stripped)
#
# Running it on a GPU machine: the driver (libcuda.so.1) comes from the machine; cuBLAS, cuRAND,
# NVRTC and the CUDA runtime 13 must be on LD_LIBRARY_PATH (a PyTorch install's nvidia/*/lib
# folders are enough: see bench/gpu/run.sh). Set CUDA_COMPUTE_CAP for another GPU generation.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tk=${CUDA_TOOLKIT_DIR:-$top/target/cuda-toolkit}
cu=$tk/nvidia/cu13
[ -x "$cu/bin/nvcc" ] || { echo "error: no CUDA toolkit at $cu; run scripts/cuda-toolkit.sh first" >&2; exit 2; }
export PATH=$cu/bin:$PATH
export CUDA_ROOT=$cu CUDA_PATH=$cu CUDA_TOOLKIT_ROOT_DIR=$cu
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH=$cu/lib:$tk/stub${LIBRARY_PATH:+:$LIBRARY_PATH}
export RUSTFLAGS="-L native=$cu/lib -L native=$tk/stub ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/target/cuda}
cd "$top"
cargo build --release --locked --features cuda --bin proxythinker "$@"
strip -o "$CARGO_TARGET_DIR/proxythinker" "$CARGO_TARGET_DIR/release/proxythinker"
ls -l "$CARGO_TARGET_DIR/proxythinker"
