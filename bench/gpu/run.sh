#!/usr/bin/env bash
# Every GPU check in one call, on the GPU machine, from the repository root:
#
#   bash bench/gpu/run.sh target/cuda/proxythinker [STEPS]
#
# 1. parity of the CUDA build (f32, bf16) against its CPU f32 results and transformers' fixtures;
# 2. real-size random models made with transformers (7B-shaped base, 3B-shaped RFT and small, bf16)
#    and the reference ProxyThinker loop in transformers, with the copy rate for the bandwidth limit;
# 3. `proxythinker bench` on the same models, image and question, with peak GPU memory;
# 4. the out-of-memory error: loading with the GPU nearly full must fail with a clear line.
# Results go to $OUT (or /tmp/gpu-out): parity.json, reference.json, bench.json, summary.json.
set -uo pipefail
BIN=$(readlink -f "${1:-target/cuda/proxythinker}")
STEPS=${2:-128}
OUT=${OUT:-/tmp/gpu-out}
M=${MODELS_DIR:-/tmp/pt-models}
mkdir -p "$OUT" "$M"
export PYTHONUNBUFFERED=1
PARTS=${PARTS:-parity reference bench oom}   # a subset reruns only those parts
has() { [[ " $PARTS " == *" $1 "* ]]; }
QUESTION="Look at the picture carefully. How many circles are there, and what colour is the largest one?"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# cuBLAS, cuRAND, NVRTC and the CUDA runtime from the machine's PyTorch wheels; the driver is the machine's.
libdirs=$(python3 - <<'PY'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
seen = []
for r in roots:
    for lib in ["libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13", "libcudart.so.13"]:
        for f in glob.glob(os.path.join(r, "nvidia", "**", lib), recursive=True):
            d = os.path.dirname(f)
            if d not in seen:
                seen.append(d)
print(":".join(seen))
PY
)
export LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
"$BIN" --version || { ldd "$BIN"; exit 1; }
ldd "$BIN" | grep "not found" && exit 1

has parity && echo "== 1. parity" && timeout 150 python3 bench/gpu/parity.py "$BIN" "$OUT/parity.json" 2>&1 | tail -30

has reference && echo "== 2. transformers reference" && timeout 330 python3 bench/gpu/reference.py "$M" assets/sample.png "$STEPS" "$OUT/reference.json" 2>&1 \
  | grep -v "Writing model shards\|deprecated\|output = func" | tail -12

if has bench; then
echo "== 3. proxythinker bench"
(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/mem.log" 2>/dev/null) &
poll=$!
timeout 240 "$BIN" bench --base "$M/base" --rft "$M/rft" --small "$M/small" --image assets/sample.png \
  --question "$QUESTION" --steps "$STEPS" --device cuda:0 --dtype bf16 > "$OUT/bench.json" 2> "$OUT/bench.err"
echo "bench exit $?"; cat "$OUT/bench.json"; tail -5 "$OUT/bench.err"
kill $poll 2>/dev/null
fi

has oom && echo "== 4. out of memory" && python3 - "$BIN" "$M/base" > "$OUT/oom.txt" 2>&1 <<'PY'
import subprocess, sys, torch
free, total = torch.cuda.mem_get_info()
hold = torch.empty(max(free - (8 << 30), 0), dtype=torch.uint8, device="cuda")  # leave 8 GiB
p = subprocess.run([sys.argv[1], "logits", "--model", sys.argv[2], "--prompt", "hi", "--device", "cuda:0", "--dtype", "f32"],
                   capture_output=True, text=True)
print("exit", p.returncode)
print(p.stderr.strip()[-600:])
PY
has oom && cat "$OUT/oom.txt"

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(f):
    try:
        return json.load(open(os.path.join(out, f)))
    except (OSError, ValueError):
        return {}
ref, ours, par = load("reference.json"), load("bench.json"), load("parity.json")
mem = [int(l) for l in open(os.path.join(out, "mem.log")) if l.strip().isdigit()] if os.path.exists(os.path.join(out, "mem.log")) else []
s = dict(parity_ok=par.get("ok"), device=ref.get("device"),
         limit_tps=ref.get("bandwidth_limit_tokens_per_second"), copy_TBps=(ref.get("copy_bytes_per_second") or 0) / 1e12,
         weight_GB_ours=(ours.get("weight_bytes_per_step") or 0) / 1e9, weight_GB_ref=(ref.get("weight_bytes_per_step") or 0) / 1e9,
         ref_prefill_s=ref.get("prefill_seconds"), ref_guided_tps=ref.get("guided_tokens_per_second"),
         ref_peak_GiB=(ref.get("peak_memory_bytes") or 0) / 2**30,
         ours_prefill_s=ours.get("prefill_seconds"), ours_guided_tps=ours.get("guided_only_tokens_per_second"),
         ours_session_sps=ours.get("session_steps_per_second"), ours_peak_GiB_nvsmi=max(mem) / 1024 if mem else None)
if s["limit_tps"] and s["ours_guided_tps"]:
    s["ours_vs_limit"] = s["ours_guided_tps"] / s["limit_tps"]
if s["ref_guided_tps"] and s["ours_guided_tps"]:
    s["ours_vs_transformers"] = s["ours_guided_tps"] / s["ref_guided_tps"]
if s["ours_session_sps"] and s["ours_guided_tps"]:
    s["session_cost_vs_guided"] = s["ours_guided_tps"] / s["ours_session_sps"]
json.dump(s, open(os.path.join(out, "summary.json"), "w"), indent=1)
for k, v in s.items():
    print(f"{k:24s} {v}")
PY
