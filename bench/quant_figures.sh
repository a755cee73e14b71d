#!/usr/bin/env bash
# The README's "Quantized weights" figures in one run on one machine: speed and accuracy.
#
# Speed: the bench model (examples/make_random_model: text shaped like Qwen2.5-0.5B, 543 M) stored
# in f32 and, with the same values rounded, in bf16 as the Hub's checkpoints are; each at f32,
# q8_0, q8_0 with the head, q4_k; transformers f32 (if torch and transformers are installed) and
# llama.cpp on the model's text part (bench/llama_cpp_reference.sh: F32, F16, Q8_0, Q4_K_M; if
# SKIP_LLAMA_CPP is unset), back to back; then a larger picture (500×380: 243 image tokens) for
# proxythinker f32 and q8_0 and transformers; and a model with Qwen2.5-1.5B's text widths (bf16)
# at f32, q8_0 and q4_k with llama.cpp beside it. Accuracy: examples/quant_accuracy on the f32 bench
# model with two `small` models as RFT and small.
#
#   bash bench/quant_figures.sh [NEW_TOKENS] [REPEATS] [ACCURACY_STEPS]
#
# SKIP_LLAMA_CPP=1 and SKIP_ACCURACY=1 leave those parts out (llama.cpp's first build takes about
# 12 minutes on 2 cores; the accuracy part about 15).
# One JSON object per measurement in target/figures/quant-*.json, printed with the load average
# before it, so a busy machine shows in the record.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-32}"; r="${2:-3}"; steps="${3:-64}"
out=target/figures; mkdir -p "$out"
cargo build --release --locked --example bench_cpu --example make_random_model --example quant_accuracy
make() { # DIR SIZE SEED DTYPE
  [ -f "$1/model.safetensors" ] || ./target/release/examples/make_random_model "$1" "$2" "$3" "$4" >&2
}
measure() { # NAME COMMAND...
  local name="$1"; shift
  echo "== $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$@" 2>"$out/quant-$name.err" | grep '^{' | tee "$out/quant-$name.json"
}
have_torch() { python3 -c "import torch, transformers" 2>/dev/null; }
make target/bench-model-f32 base 0 f32
make target/bench-model-bf16 base 0 bf16
for dtype in f32 bf16; do
  m="target/bench-model-$dtype"
  for q in none q8_0 q8_0+head q4_k; do
    measure "$dtype-$q" ./target/release/examples/bench_cpu "$m" "$n" "$r" "$q"
  done
  if have_torch; then measure "$dtype-transformers" python3 bench/transformers_reference.py "$m" "$n" "$r"; fi
done
if [ -z "${SKIP_LLAMA_CPP:-}" ]; then
  measure llama.cpp bash bench/llama_cpp_reference.sh target/bench-model-f32 "$n" 148 "$r"
fi
# Real widths (Qwen2.5-1.5B's text shape, stored in bf16): q4_k applies to every linear layer.
make target/bench-1.5b-bf16 1.5b 0 bf16
for q in none q8_0 q4_k; do
  measure "1.5b-bf16-$q" ./target/release/examples/bench_cpu target/bench-1.5b-bf16 "$((n / 2))" 2 "$q"
done
if [ -z "${SKIP_LLAMA_CPP:-}" ]; then
  measure llama.cpp-1.5b bash bench/llama_cpp_reference.sh target/bench-1.5b-bf16 "$((n / 2))" 148 2
fi
export BENCH_IMAGE=tests/fixtures/tiny/images/500x380.png
for q in none q8_0; do
  measure "large-image-bf16-$q" ./target/release/examples/bench_cpu target/bench-model-bf16 "$n" "$r" "$q"
done
if have_torch; then measure large-image-transformers python3 bench/transformers_reference.py target/bench-model-bf16 "$n" "$r"; fi
unset BENCH_IMAGE
[ -z "${SKIP_ACCURACY:-}" ] || exit 0
make target/bench-rft-f32 small 1 f32
make target/bench-small-f32 small 2 f32
echo "== accuracy (load average $(cut -d' ' -f1-3 /proc/loadavg))"
./target/release/examples/quant_accuracy target/bench-model-f32 target/bench-rft-f32 target/bench-small-f32 "$steps" 2>"$out/quant-accuracy.err" \
  | tee "$out/quant-accuracy.txt"
