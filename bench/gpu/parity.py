"""GPU parity: the CUDA build against its own CPU f32 results and against transformers' fixtures.

    python3 bench/gpu/parity.py BIN OUT.json

For a set of the fixture cases (text only, images that need a resize, images spanning several
attention windows, Qwen2-VL, the transformers-5 layout) it runs `BIN logits` on cpu/f32, cuda/f32
and cuda/bf16 and `BIN generate` on cuda/f32, then compares: max |Δlogit| and ‖Δ‖/‖ref‖ against the
CPU f32 logits and against transformers' expected logits (bounds: f32 1e-4 absolute; bf16 0.08 of
the largest |logit|, the bound the CPU tests use); greedy tokens against transformers'.
Needs only the Python standard library (runs where nothing can be installed).
"""

import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures", "tiny")
LOGITS = ["00", "03", "05", "07", "08", "13", "17", "24"]
GENERATE = ["10", "11", "22"]


def run(binary, args):
    p = subprocess.run([binary] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(" ".join(args[:3]) + ": " + p.stderr.strip())
    return json.loads(p.stdout)


def case_args(c):
    a = ["--model", os.path.join(FIX, c["model"]), "--prompt", c["prompt"]]
    if c["image"]:
        a += ["--image", os.path.join(FIX, c["image"])]
    if c["raw"]:
        a += ["--raw"]
    return a


def diff(a, b):
    d = [x - y for x, y in zip(a, b)]
    return max(abs(x) for x in d), math.sqrt(sum(x * x for x in d)) / max(math.sqrt(sum(y * y for y in b)), 1e-30)


def main(binary, out):
    manifest = json.load(open(os.path.join(FIX, "expected", "manifest.json")))
    cases = {c["file"][:2]: c for c in manifest["cases"]}
    rows, ok = [], True
    for k in LOGITS:
        c = cases[k]
        exp = json.load(open(os.path.join(FIX, "expected", c["file"])))
        cpu = run(binary, ["logits"] + case_args(c) + ["--device", "cpu", "--dtype", "f32"])
        for dtype, tol_abs in [("f32", 1e-4), ("bf16", None)]:
            gpu = run(binary, ["logits"] + case_args(c) + ["--device", "cuda:0", "--dtype", dtype])
            same_ids = gpu["input_ids"] == exp["input_ids"]
            m_cpu, r_cpu = diff(gpu["logits"], cpu["logits"])
            m_tf, r_tf = diff(gpu["logits"], exp["logits"])
            top_same = max(range(len(gpu["logits"])), key=gpu["logits"].__getitem__) == \
                max(range(len(exp["logits"])), key=exp["logits"].__getitem__)
            # bf16: the bound the CPU tests use, max |Δ| over the largest |logit|.
            scale = max(abs(x) for x in exp["logits"])
            good = same_ids and (m_tf <= tol_abs if tol_abs else m_tf / scale <= 0.08)
            ok &= good
            rows.append(dict(case=c["file"], dtype=dtype, ids_equal=same_ids, max_abs_vs_cpu=m_cpu, rel_vs_cpu=r_cpu,
                             max_abs_vs_transformers=m_tf, rel_vs_transformers=r_tf,
                             max_abs_over_largest=m_tf / scale, argmax_equal=top_same, ok=good))
    for k in GENERATE:
        c = cases[k]
        exp = json.load(open(os.path.join(FIX, "expected", c["file"])))
        n = len(exp["token_ids"])
        g = run(binary, ["generate"] + case_args(c) + ["--max-new-tokens", str(n), "--json", "--device", "cuda:0"])
        good = g["token_ids"] == exp["token_ids"]
        ok &= good
        rows.append(dict(case=c["file"], dtype="f32", greedy_equal=good, tokens=n, ok=good))
    json.dump(dict(ok=ok, rows=rows), open(out, "w"), indent=1)
    for r in rows:
        print(r["case"], r["dtype"], "ok" if r["ok"] else "FAIL",
              " ".join(f"{k}={v:.2e}" for k, v in r.items() if isinstance(v, float)))
    print("parity:", "ok" if ok else "FAILED")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
