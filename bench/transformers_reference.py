"""The CPU benchmark's reference: the same model, image and question in transformers.

    python3 bench/transformers_reference.py target/bench-model [NEW_TOKENS] [REPEATS]

Prefill = a forward over the whole prompt (vision tower included); decode = greedy generate of
NEW_TOKENS more tokens with the KV cache, eager attention, float32, torch using every core.
Prints one JSON object like examples/bench_cpu.rs does.
"""

import json
import os
import statistics
import sys
import time

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoTokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

HERE = os.path.dirname(os.path.abspath(__file__))


def main(model_dir, new_tokens=64, repeats=3):
    torch.set_grad_enabled(False)
    tok = AutoTokenizer.from_pretrained(model_dir)
    pre = json.load(open(os.path.join(model_dir, "preprocessor_config.json")))
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    if model.config.model_type == "qwen3_vl":
        # Qwen3-VL: 16-pixel patches, mean and std 0.5, bounds in size.shortest_edge / longest_edge.
        improc = Qwen2VLImageProcessorPil(size=pre["size"], patch_size=pre["patch_size"], merge_size=pre["merge_size"],
                                          image_mean=pre["image_mean"], image_std=pre["image_std"])
    else:
        improc = Qwen2VLImageProcessorPil(min_pixels=pre["min_pixels"], max_pixels=pre["max_pixels"])
    # BENCH_IMAGE (relative to the repository) as examples/bench_cpu.rs reads it.
    image_path = os.environ.get("BENCH_IMAGE", "tests/fixtures/tiny/images/224x224.png")
    image = Image.open(os.path.join(HERE, "..", image_path)).convert("RGB")
    question = "Describe the picture in detail, then count the circles."
    text = tok.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
                                   add_generation_prompt=True, tokenize=False)
    px = improc(images=[image], return_tensors="pt")
    n = int(px["image_grid_thw"][0].prod()) // 4
    text = text.replace("<|image_pad|>", "<|image_pad|>" * n)
    ids = tok(text, return_tensors="pt")["input_ids"]
    mm = (ids == tok.convert_tokens_to_ids("<|image_pad|>")).int()
    kw = dict(input_ids=ids, pixel_values=px["pixel_values"], image_grid_thw=px["image_grid_thw"], mm_token_type_ids=mm)
    gen = dict(do_sample=False, eos_token_id=None, pad_token_id=0, temperature=None, top_k=None, top_p=None,
               repetition_penalty=1.0)
    prefill, decode = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        model.generate(**kw, max_new_tokens=1, min_new_tokens=1, **gen)
        tp = time.perf_counter() - t
        t = time.perf_counter()
        model.generate(**kw, max_new_tokens=new_tokens + 1, min_new_tokens=new_tokens + 1, **gen)
        total = time.perf_counter() - t
        prefill.append(ids.shape[1] / tp)
        decode.append(new_tokens / max(total - tp, 1e-9))
    print(json.dumps(dict(family=model.config.model_type, engine=f"transformers {__import__('transformers').__version__} (torch {torch.__version__}, eager, f32, cpu)",
                          threads=torch.get_num_threads(), image=image_path, prompt_tokens=ids.shape[1], new_tokens=new_tokens,
                          prefill_tokens_per_second=statistics.median(prefill),
                          decode_tokens_per_second=statistics.median(decode))))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0] if a else "target/bench-model", int(a[1]) if len(a) > 1 else 64, int(a[2]) if len(a) > 2 else 3)
