#!/usr/bin/env bash
# Every CPU figure the README reports, in one run on one machine: proxythinker against
# transformers on the same checkpoints, inputs and settings, each pair back to back.
# Needs torch + transformers (see tests/fixtures/reference.py for the versions) and about 20 GB
# of free memory (the Qwen3-VL-2B-shaped model is 8.5 GB in f32, loaded by one engine at a time).
# Writes one JSON object per measurement into target/figures/ and prints them with the load
# average before each, so a busy machine shows in the record.
#
#   bash bench/cpu_figures.sh [NEW_TOKENS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-32}"; r="${2:-3}"
out=target/figures; mkdir -p "$out"
cargo build --release --locked --bin proxythinker --example bench_cpu --example bench_measures --example make_random_model
[ -f target/bench-model/model.safetensors ] || python3 bench/make_bench_model.py target/bench-model
[ -f target/bench-qwen3/model.safetensors ] || python3 bench/make_bench_model.py target/bench-qwen3 qwen3-2b
[ -f target/bench-tiny-a/model.safetensors ] || ./target/release/examples/make_random_model target/bench-tiny-a tiny 1
[ -f target/bench-tiny-b/model.safetensors ] || ./target/release/examples/make_random_model target/bench-tiny-b tiny 2
measure() { # NAME COMMAND...
  local name="$1"; shift
  echo "== $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$@" 2>"$out/$name.err" | tail -1 | tee "$out/$name.json"
}
measure qwen25-proxythinker-f32 ./target/release/examples/bench_cpu target/bench-model "$n" "$r"
measure qwen25-transformers-f32 python3 bench/transformers_reference.py target/bench-model "$n" "$r"
measure qwen25-proxythinker-q8_0 ./target/release/examples/bench_cpu target/bench-model "$n" "$r" q8_0
measure qwen25-proxythinker-q4_k ./target/release/examples/bench_cpu target/bench-model "$n" "$r" q4_k
measure qwen3-proxythinker-f32 ./target/release/examples/bench_cpu target/bench-qwen3 "$((n / 2))" "$r"
measure qwen3-transformers-f32 python3 bench/transformers_reference.py target/bench-qwen3 "$((n / 2))" "$r"
measure measures ./target/release/examples/bench_measures 151936 200
# Live α over 4,000 kept tokens with the real vocabulary (rft = small: every token is kept).
measure live-alpha ./target/release/proxythinker bench --base target/bench-tiny-a --rft target/bench-tiny-b \
  --small target/bench-tiny-b --steps 4000 --question "Describe the picture." \
  --image tests/fixtures/tiny/images/56x56.png --dtype f32
# `eval` on the committed 4-question set with the tiny test trio: one α against three (the base
# and RFT streams are decoded once either way), 64 new tokens per stream.
timed() { # NAME COMMAND...
  local name="$1"; shift
  echo "== $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  local t0 t1; t0=$(date +%s.%N); "$@" >"$out/$name.out" 2>"$out/$name.err"; t1=$(date +%s.%N)
  echo "{\"name\": \"$name\", \"seconds\": $(echo "$t1 - $t0" | bc)}" | tee "$out/$name.json"
}
tiny=tests/fixtures/tiny
for alphas in 0.5 0.25,0.5,1; do
  rm -rf "$out/eval-$alphas"
  timed "eval-alphas-$alphas" ./target/release/proxythinker eval --data tests/fixtures/eval/tiny.jsonl \
    --out "$out/eval-$alphas" --base $tiny/qwen2_5_vl --rft $tiny/trio_rft --small $tiny/trio_small \
    --alphas "$alphas" --max-new-tokens 64 --ignore-eos
done
