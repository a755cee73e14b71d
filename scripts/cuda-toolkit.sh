#!/usr/bin/env bash
# Installs the CUDA 13.0 toolkit that a `--features cuda` build needs, from PyPI wheels, into
# target/cuda-toolkit (no GPU, no root, no system CUDA needed), and a link-only stub libcuda.
#
#   bash scripts/cuda-toolkit.sh            # once; then scripts/build-cuda.sh
#
# The versions are pinned to CUDA 13.0 to match the GPU machines' driver (580.x). The stub libcuda.so
# (soname libcuda.so.1) only satisfies the linker: at run time the binary loads the real driver.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tk=${CUDA_TOOLKIT_DIR:-$top/target/cuda-toolkit}
mkdir -p "$tk"
if [ ! -x "$tk/nvidia/cu13/bin/nvcc" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$tk" \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85 \
    nvidia-cuda-runtime==13.0.96 nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
fi
cu=$tk/nvidia/cu13
[ -x "$cu/bin/nvcc" ] || { echo "error: nvcc not found under $cu/bin after the install; look at the wheels in $tk/nvidia" >&2; exit 2; }

# Unversioned names for the linker (the wheels ship only the sonames).
for lib in cudart cublas cublasLt curand nvrtc; do
  so=$(ls "$cu"/lib/lib$lib.so.* 2>/dev/null | sort | head -1)
  [ -n "$so" ] || { echo "error: lib$lib.so.* missing from $cu/lib" >&2; exit 2; }
  ln -sf "$(basename "$so")" "$cu/lib/lib$lib.so"
done

# The stub driver: one empty function per driver symbol that cudarc's bindings declare.
stub=$tk/stub
mkdir -p "$stub"
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | sort | tail -1)
[ -n "$cudarc" ] || (cd "$top" && cargo fetch --locked >/dev/null)
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | sort | tail -1)
grep -hoE '\bfn cu[A-Za-z0-9_]+\(' "$cudarc/src/driver/sys/mod.rs" | sed -E 's/^fn (.*)\(/\1/' | sort -u \
  | awk '{print "void " $1 "(void) {}"}' > "$stub/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/libcuda_stub.c"
echo "toolkit ready: $cu ($(wc -l < "$stub/libcuda_stub.c") driver symbols stubbed)"
