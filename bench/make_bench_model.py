"""Makes the small random Qwen2.5-VL checkpoint the CPU benchmark runs (not committed: ~1.2 GB).

    python3 bench/make_bench_model.py target/bench-model                 # base-sized (543 M)
    python3 bench/make_bench_model.py target/bench-rft small 1           # small pair for bench_guided
    python3 bench/make_bench_model.py target/bench-small small 2
    python3 bench/make_bench_model.py target/bench-qwen3 qwen3-2b      # Qwen3-VL-2B's shape (2.1 B)

Text decoder shaped like Qwen2.5-0.5B (hidden 896, 24 layers, 14 query / 2 key-value heads,
intermediate 4864, vocabulary 151936, tied embeddings); a vision tower of 8 blocks, hidden 640.
Random weights (seeded); the tokenizer, chat template and processor settings are the tiny test
checkpoint's. Saved in the Hub's layout.

`qwen3-2b` is a Qwen3-VL checkpoint with the real Qwen3-VL-2B-Instruct config (committed as
tests/fixtures/configs/Qwen3-VL-2B-Instruct.config.json: hidden 2048, 28 layers, 16 query / 8
key-value heads of 128, intermediate 6144, vocabulary 151936, tied; a 24-block vision tower with
DeepStack), random weights, and the tiny Qwen3-VL test checkpoint's tokenizer, template and
processor (its special-token ids replace the real ones). Saved as the Hub has Qwen3-VL weights.
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen3VLConfig, Qwen3VLForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "tests", "fixtures", "tiny", "qwen2_5_vl")
TINY_QWEN3 = os.path.join(HERE, "..", "tests", "fixtures", "tiny", "qwen3_vl")
QWEN3_2B = os.path.join(HERE, "..", "tests", "fixtures", "configs", "Qwen3-VL-2B-Instruct.config.json")


def qwen3(out, seed):
    cfg = json.load(open(QWEN3_2B))
    tiny = json.load(open(os.path.join(TINY_QWEN3, "config.json")))
    for k in ["image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"]:
        cfg[k] = tiny[k]
    for k in ["bos_token_id", "eos_token_id"]:
        cfg["text_config"][k] = tiny["text_config"][k]
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(Qwen3VLConfig(**cfg)).eval()
    os.makedirs(out, exist_ok=True)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    for f in os.listdir(TINY_QWEN3):
        if f not in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(TINY_QWEN3, f), os.path.join(out, f))
    print("wrote", out, sum(v.numel() for v in sd.values()) / 1e6, "M parameters")


SIZES = {
    # Text decoder shaped like Qwen2.5-0.5B.
    "base": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14),
    # A smaller one for the RFT/small pair of the guided benchmark.
    "small": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
}


def main(out, size="base", seed=0):
    if size == "qwen3-2b":
        return qwen3(out, seed)
    tiny = json.load(open(os.path.join(TINY, "config.json")))
    cfg = dict(tiny)
    cfg.update(vocab_size=151936, num_key_value_heads=2, tie_word_embeddings=True,
               rope_scaling={"type": "mrope", "mrope_section": [8, 12, 12]}, max_window_layers=24, **SIZES[size])
    cfg["vision_config"] = dict(depth=8, hidden_size=640, hidden_act="silu", intermediate_size=1710, num_heads=10,
                                in_chans=3, out_hidden_size=cfg["hidden_size"], patch_size=14, spatial_merge_size=2,
                                spatial_patch_size=14, temporal_patch_size=2, window_size=112,
                                fullatt_block_indexes=[3, 7], tokens_per_second=2)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**cfg)).eval()
    os.makedirs(out, exist_ok=True)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight":
            continue  # tied
        k = k.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
        sd[k] = v.contiguous()
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    for f in ["tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json"]:
        shutil.copy(os.path.join(TINY, f), os.path.join(out, f))
    print("wrote", out, sum(v.numel() for v in sd.values()) / 1e6, "M parameters")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0] if a else "target/bench-model", a[1] if len(a) > 1 else "base", int(a[2]) if len(a) > 2 else 0)
