"""Makes the small random Qwen2.5-VL checkpoint the CPU benchmark runs (not committed: ~1.2 GB).

    python3 bench/make_bench_model.py target/bench-model

Text decoder shaped like Qwen2.5-0.5B (hidden 896, 24 layers, 14 query / 2 key-value heads,
intermediate 4864, vocabulary 151936, tied embeddings); a vision tower of 8 blocks, hidden 640.
Random weights (seeded); the tokenizer, chat template and processor settings are the tiny test
checkpoint's. Saved in the Hub's layout.
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "tests", "fixtures", "tiny", "qwen2_5_vl")


def main(out):
    tiny = json.load(open(os.path.join(TINY, "config.json")))
    cfg = dict(tiny)
    cfg.update(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
               num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
               rope_scaling={"type": "mrope", "mrope_section": [8, 12, 12]}, max_window_layers=24)
    cfg["vision_config"] = dict(depth=8, hidden_size=640, hidden_act="silu", intermediate_size=1710, num_heads=10,
                                in_chans=3, out_hidden_size=896, patch_size=14, spatial_merge_size=2,
                                spatial_patch_size=14, temporal_patch_size=2, window_size=112,
                                fullatt_block_indexes=[3, 7], tokens_per_second=2)
    torch.manual_seed(0)
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
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench-model")
