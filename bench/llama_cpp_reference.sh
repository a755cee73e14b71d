#!/usr/bin/env bash
# llama.cpp's CPU speed on the text part of a benchmark checkpoint, the reference the README's
# CPU decode figures are compared with (measured on the same machine, in the same run).
#
#   bash bench/llama_cpp_reference.sh MODEL_DIR [NEW_TOKENS=32] [PROMPT_TOKENS=148] [REPEATS=3]
#   bash bench/llama_cpp_reference.sh target/bench-model-f32 | grep '^{'
#
# What it does, every step cached under target/llama.cpp/ so a second run only measures:
# 1. builds llama.cpp once (CPU only, -march=native) from the llama-cpp-python source package on
#    PyPI, pinned below: it vendors llama.cpp at vendor/llama.cpp with convert_hf_to_gguf.py and
#    gguf-py. Only llama-bench and llama-quantize are built (about 12 minutes on 2 busy cores).
# 2. extracts the text decoder of MODEL_DIR (a Qwen2.5-VL checkpoint: config.json with
#    model_type qwen2_5_vl, model.safetensors) as a plain Qwen2ForCausalLM checkpoint with
#    bench/qwen_vl_text_to_qwen2.py, converts it with llama.cpp's converter to F32 and F16 GGUF
#    and quantizes the F32 one to Q8_0 and Q4_K_M with llama-quantize. The GGUF files are kept
#    in target/llama.cpp/models/<name>-<key>/, the key hashing the model dir's path and its
#    files' sizes and times (a rewritten checkpoint is converted again).
# 3. runs `llama-bench -p PROMPT_TOKENS -n NEW_TOKENS -t 2 -r REPEATS` on each of F32, F16,
#    Q8_0 and Q4_K_M and prints one JSON object per format on stdout, one line each:
#      {"engine": "llama.cpp <commit> (llama-cpp-python <version>)", "format": "Q8_0",
#       "threads": 2, "prompt_tokens": 148, "new_tokens": 32, "prefill_tokens_per_second": X,
#       "decode_tokens_per_second": Y, "prefill_tokens_per_second_stddev": ...,
#       "decode_tokens_per_second_stddev": ..., "model_bytes": N, "model_params": M}
#    (the avg_ts and stddev_ts of llama-bench's pp and tg tests over the REPEATS runs, after
#    its warm-up run; model_bytes is the GGUF file's size, model_params the text decoder's).
#    Everything else, the load average before each measurement included, goes to stderr.
#    llama-bench runs with its defaults otherwise (weights mmap-ed, flash attention auto);
#    LLAMA_BENCH_ARGS adds flags to it, e.g. LLAMA_BENCH_ARGS="-lm none -fa off".
#
# Needs: python3 with pip, a C++ compiler (g++), and cmake >= 3.14 (installed from PyPI with
# pip when missing). The converter needs torch, transformers, numpy, pyyaml, tqdm and requests;
# those missing are installed with pip. About 6 GB of free disk for the base model (the sdist,
# the build, a temporary 2 GB Qwen2 checkpoint and 4 GB of GGUF files).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
# The llama.cpp commit that release vendors (its CHANGELOG: "update llama.cpp to
# ggml-org/llama.cpp@0c1e57098"); the sdist has no git metadata, so it is given to cmake.
LLAMA_CPP_COMMIT=0c1e57098

usage="usage: bash bench/llama_cpp_reference.sh MODEL_DIR [NEW_TOKENS=32] [PROMPT_TOKENS=148] [REPEATS=3]"
model_dir="${1:?$usage}"
new_tokens="${2:-32}"
prompt_tokens="${3:-148}"
repeats="${4:-3}"
threads=2
[ -f "$model_dir/config.json" ] || { echo "$model_dir: no config.json" >&2; echo "$usage" >&2; exit 2; }
abs_model="$(cd "$model_dir" && pwd -P)"  # before the cd: MODEL_DIR may be relative to the caller
cd "$(dirname "$0")/.."

log() { echo "[llama.cpp reference] $*" >&2; }

root="$PWD/target/llama.cpp"
pkg="llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
src="$root/$pkg/vendor/llama.cpp"
build="$root/build-$LLAMA_CPP_PYTHON_VERSION"
bench_bin="$build/bin/llama-bench"
quantize_bin="$build/bin/llama-quantize"
mkdir -p "$root"

# ---------------------------------------------------------------- 1. llama.cpp, built once
if [ ! -f "$src/convert_hf_to_gguf.py" ]; then
  if [ ! -f "$root/$pkg.tar.gz" ]; then
    log "downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION source package"
    # --no-binary names the package alone: `:all:` would also build pip's build dependencies
    # (cmake among them) from source to prepare the metadata.
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$root" >&2
  fi
  log "unpacking $pkg.tar.gz"
  tar -xzf "$root/$pkg.tar.gz" -C "$root"
fi

if [ ! -x "$bench_bin" ] || [ ! -x "$quantize_bin" ]; then
  cmake_bin="$(command -v cmake || true)"
  if [ -z "$cmake_bin" ]; then
    log "cmake not found: installing it from PyPI"
    python3 -m pip install --quiet cmake >&2
    cmake_bin="$(python3 -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, "cmake"))')"
  fi
  # -march=native turns on AMX wherever the CPU advertises it, but some virtual machines (this
  # project's Firecracker guests among them) advertise AMX without letting it run: the first
  # tile instruction of ggml's Q8_0/Q4_0 kernels dies with SIGILL. Probe it, and build without
  # AMX where a tile instruction does not run.
  cxx="${CXX:-c++}"
  no_amx=""
  if echo | "$cxx" -march=native -dM -E -x c++ - | grep -q __AMX_TILE__; then
    probe="$(mktemp -d)"
    cat >"$probe/amx.cpp" <<'CPP'
#include <immintrin.h>
#include <cstdint>
#include <cstring>
#include <sys/syscall.h>
#include <unistd.h>
int main() {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) return 1;
    struct { uint8_t palette, start; uint8_t reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } cfg;
    std::memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1; cfg.colsb[0] = 64; cfg.rows[0] = 16;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_release();
    return 0;
}
CPP
    if ! { "$cxx" -O2 -march=native "$probe/amx.cpp" -o "$probe/amx" && (ulimit -c 0; "$probe/amx"); } >/dev/null 2>&1; then
      no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
      log "the CPU advertises AMX but a tile instruction does not run here: building with $no_amx"
    fi
    rm -rf "$probe"
  fi
  log "building llama-bench and llama-quantize with $("$cmake_bin" --version | head -1) (CPU only, native)"
  t0=$(date +%s)
  nice -n 19 "$cmake_bin" -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" \
    -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DGGML_CCACHE=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_COMMIT="$LLAMA_CPP_COMMIT" >&2
  nice -n 19 "$cmake_bin" --build "$build" --config Release -j 2 --target llama-bench llama-quantize >&2
  log "built in $(( $(date +%s) - t0 )) s"
fi

# ---------------------------------------------------------------- 2. GGUF files, made once per model
key="$( { echo "$abs_model"; cd "$abs_model" && stat -c '%n %s %Y' config.json model.safetensors* 2>/dev/null; } \
        | sha256sum | cut -c1-12 )"
gguf_dir="$root/models/$(basename "$abs_model")-$key"
mkdir -p "$gguf_dir"
f32="$gguf_dir/text-F32.gguf"

python_deps() { # the converter's imports that are missing, as pip package names
  python3 - <<'PY'
import importlib.util
wanted = {"torch": "torch", "transformers": "transformers", "numpy": "numpy",
          "yaml": "pyyaml", "tqdm": "tqdm", "requests": "requests"}
print(" ".join(pkg for mod, pkg in wanted.items() if importlib.util.find_spec(mod) is None))
PY
}

convert() { # HF_DIR OUTTYPE OUT_FILE: llama.cpp's converter, the tokenizer taken as Qwen2's
  # The tiny test tokenizer's pre-tokenizer hash is not in the converter's table, so
  # get_vocab_base_pre() is replaced by one that answers "qwen2" (the Qwen2.5 models' own
  # pre-tokenizer); Qwen2Model.set_vocab() first tries SentencePiece (which needs the
  # sentencepiece package even without a tokenizer.model), so it goes straight to the BPE path.
  nice -n 19 python3 - "$src" "$1" --outtype "$2" --outfile "$3.partial" >&2 <<'PY'
import sys
sys.path.insert(0, sys.argv.pop(1))
import convert_hf_to_gguf
import conversion.base
import conversion.qwen
conversion.base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
conversion.qwen.Qwen2Model.set_vocab = lambda self: self._set_vocab_gpt2()
convert_hf_to_gguf.main()
PY
  mv "$3.partial" "$3"
}

if [ ! -f "$f32" ] || [ ! -f "$gguf_dir/text-F16.gguf" ]; then
  missing="$(python_deps)"
  if [ -n "$missing" ]; then
    log "installing the converter's Python packages: $missing"
    # shellcheck disable=SC2086
    python3 -m pip install --quiet $missing >&2
  fi
  hf="$gguf_dir/qwen2-hf"
  log "extracting the text decoder of $abs_model into $hf"
  nice -n 19 python3 bench/qwen_vl_text_to_qwen2.py "$abs_model" "$hf"
  [ -f "$f32" ] || { log "converting to F32 GGUF"; convert "$hf" f32 "$f32"; }
  [ -f "$gguf_dir/text-F16.gguf" ] || { log "converting to F16 GGUF"; convert "$hf" f16 "$gguf_dir/text-F16.gguf"; }
  rm -rf "$hf"
fi
for q in Q8_0 Q4_K_M; do
  out="$gguf_dir/text-$q.gguf"
  if [ ! -f "$out" ]; then
    log "quantizing to $q"
    nice -n 19 "$quantize_bin" "$f32" "$out.partial" "$q" "$threads" >&2
    mv "$out.partial" "$out"
  fi
done

# ---------------------------------------------------------------- 3. measurements
log "llama-bench $("$bench_bin" --version 2>&1 | head -1)"
for fmt in F32 F16 Q8_0 Q4_K_M; do
  gguf="$gguf_dir/text-$fmt.gguf"
  log "== $fmt: $gguf (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086
  result="$("$bench_bin" -m "$gguf" -p "$prompt_tokens" -n "$new_tokens" -t "$threads" -r "$repeats" \
    ${LLAMA_BENCH_ARGS:-} -o json)"
  LLAMA_BENCH_JSON="$result" python3 - "$fmt" "$threads" "$prompt_tokens" "$new_tokens" \
    "$(stat -c %s "$gguf")" "$LLAMA_CPP_PYTHON_VERSION" <<'PY' || { echo "$result" >&2; exit 1; }
import json, os, sys
fmt, threads, p, n, size, version = sys.argv[1:]
tests = json.loads(os.environ["LLAMA_BENCH_JSON"])
pp = [t for t in tests if t["n_prompt"] > 0 and t["n_gen"] == 0]
tg = [t for t in tests if t["n_gen"] > 0 and t["n_prompt"] == 0]
assert len(pp) == 1 and len(tg) == 1, tests
print(json.dumps({
    "engine": f"llama.cpp {tg[0]['build_commit']} (llama-cpp-python {version})",
    "format": fmt,
    "threads": int(threads),
    "prompt_tokens": int(p),
    "new_tokens": int(n),
    "prefill_tokens_per_second": round(pp[0]["avg_ts"], 2),
    "decode_tokens_per_second": round(tg[0]["avg_ts"], 2),
    "prefill_tokens_per_second_stddev": round(pp[0]["stddev_ts"], 2),
    "decode_tokens_per_second_stddev": round(tg[0]["stddev_ts"], 2),
    "model_bytes": int(size),
    "model_params": tg[0]["model_n_params"],
}))
PY
done
