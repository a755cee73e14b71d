"""GPU benchmark, the transformers side (runs on the GPU machine; bench/gpu/run.sh calls it).

    python3 bench/gpu/reference.py MODELS_DIR IMAGE STEPS OUT.json [--scale tiny]

1. Makes three checkpoints with random weights in bf16, shaped like the paper's workstation trio:
   base = Qwen2.5-VL-7B-Instruct's config, RFT and small = Qwen2.5-VL-3B-Instruct's config (two
   seeds), from the real config.json texts in tests/fixtures/configs. They carry the fixture
   tokenizer, so the special-token ids of the configs are moved to that tokenizer's ids.
   Qwen's own preprocessor limits (min_pixels 3136, max_pixels 12845056).
2. Times a reference ProxyThinker loop in transformers, as the paper's native implementation runs
   it: eager attention, KV caches, greedy, guided = base[..V] + α·(rft[..V] − small[..V]).
3. Measures a device-to-device copy rate and the weight bytes one guided step reads, for the
   memory-bandwidth limit.
`--scale tiny` shrinks every model (for trying the script on a CPU).
"""

import json
import os
import shutil
import sys
import time

import torch
from PIL import Image
from transformers import AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
TINY = os.path.join(FIX, "tiny", "qwen2_5_vl")
QUESTION = "Look at the picture carefully. How many circles are there, and what colour is the largest one?"
ALPHA = 0.5


def config(name, scale):
    cfg = json.load(open(os.path.join(FIX, "configs", f"{name}.config.json")))
    tiny = json.load(open(os.path.join(TINY, "config.json")))
    for k in ["bos_token_id", "eos_token_id", "image_token_id", "video_token_id", "vision_start_token_id",
              "vision_end_token_id"]:
        cfg[k] = tiny[k]
    cfg.pop("torch_dtype", None)
    cfg.pop("dtype", None)
    if scale == "tiny":
        cfg.update(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_window_layers=2)
        cfg["rope_scaling"] = dict(cfg["rope_scaling"], mrope_section=[4, 6, 6])
        cfg["vision_config"] = dict(cfg["vision_config"], depth=2, hidden_size=64, intermediate_size=128, num_heads=2,
                                    out_hidden_size=128, fullatt_block_indexes=[1])
    return cfg


def make(name, out, seed, device, scale):
    torch.manual_seed(seed)
    cfg = Qwen2_5_VLConfig(**config(name, scale))
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, torch_dtype=torch.bfloat16,
                                                                attn_implementation="eager").eval()
    if os.path.exists(out):
        shutil.rmtree(out)
    t = time.perf_counter()
    model.save_pretrained(out, max_shard_size="4GB")
    for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]:
        shutil.copy(os.path.join(TINY, f), os.path.join(out, f))
    pre = json.load(open(os.path.join(TINY, "preprocessor_config.json")))
    pre.update(min_pixels=3136, max_pixels=12845056)
    json.dump(pre, open(os.path.join(out, "preprocessor_config.json"), "w"), indent=2)
    print(f"made {name} (seed {seed}) in {out}: saved in {time.perf_counter() - t:.1f} s", flush=True)
    return model


def decode_weight_bytes(model):
    # named_parameters lists a tied head once, as embed_tokens, which the head then reads whole.
    names = dict(model.named_parameters())
    tied = getattr(model.config, "tie_word_embeddings", False)
    total = 0
    for n, p in names.items():
        if "visual" in n or (not tied and "embed_tokens" in n):
            continue
        total += p.numel() * p.element_size()
    return total


def inputs(model_dir, image, device):
    tok = AutoTokenizer.from_pretrained(model_dir)
    try:
        from transformers import Qwen2VLImageProcessor as P
    except ImportError:  # pragma: no cover
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor as P
    improc = P(min_pixels=3136, max_pixels=12845056)
    text = tok.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}],
                                   add_generation_prompt=True, tokenize=False)
    px = improc(images=[Image.open(image).convert("RGB")], return_tensors="pt")
    n = int(px["image_grid_thw"][0].prod()) // 4
    text = text.replace("<|image_pad|>", "<|image_pad|>" * n)
    ids = tok(text, return_tensors="pt")["input_ids"].to(device)
    mm = (ids == tok.convert_tokens_to_ids("<|image_pad|>")).int()
    return dict(input_ids=ids, pixel_values=px["pixel_values"].to(device, torch.bfloat16),
                image_grid_thw=px["image_grid_thw"].to(device), mm_token_type_ids=mm), n


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def proxythinker_loop(models, kw, steps, device):
    """The paper's loop: prefill each model, then per step mix the last logits and feed the
    guided token to all three."""
    base, rft, small = models
    v = min(m.config.get_text_config().vocab_size for m in models)
    sync(device)
    t0 = time.perf_counter()
    outs = [m(**kw, use_cache=True, logits_to_keep=1) for m in models]
    sync(device)
    prefill = time.perf_counter() - t0
    caches = [o.past_key_values for o in outs]
    logits = [o.logits[:, -1] for o in outs]
    pos = kw["input_ids"].shape[1]
    tokens = []
    t1 = time.perf_counter()
    for _ in range(steps):
        mixed = logits[0][:, :v] + ALPHA * (logits[1][:, :v] - logits[2][:, :v])
        tok = mixed.argmax(-1, keepdim=True)
        tokens.append(int(tok))  # one host round-trip per step, as the paper's loop has
        cp = torch.tensor([pos], device=tok.device)
        outs = [m(input_ids=tok, past_key_values=c, use_cache=True, cache_position=cp) for m, c in zip(models, caches)]
        caches = [o.past_key_values for o in outs]
        logits = [o.logits[:, -1] for o in outs]
        pos += 1
    sync(device)
    return prefill, steps / (time.perf_counter() - t1), tokens


def copy_rate(device):
    if device != "cuda":
        return None
    x = torch.empty(1 << 31, dtype=torch.uint8, device="cuda")  # 2 GiB
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        s.record()
        y.copy_(x)
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    del x, y
    torch.cuda.empty_cache()
    return 2 * (1 << 31) / times[len(times) // 2]  # bytes read + written per second


def main(models_dir, image, steps, out, scale="real"):
    torch.set_grad_enabled(False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rate = copy_rate(device)
    names = [("Qwen2.5-VL-7B-Instruct", "base", 0), ("Qwen2.5-VL-3B-Instruct", "rft", 1),
             ("Qwen2.5-VL-3B-Instruct", "small", 2)]
    models = [make(n, os.path.join(models_dir, d), seed, device, scale) for n, d, seed in names]
    kw, image_tokens = inputs(os.path.join(models_dir, "base"), image, device)
    weight_bytes = sum(decode_weight_bytes(m) for m in models)
    prefill = tps = peak = None
    tokens, error = [], None
    try:  # the models are saved whatever happens here, so the Rust side can still run
        proxythinker_loop(models, kw, 2, device)  # warm-up
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        prefill, tps, tokens = proxythinker_loop(models, kw, steps, device)
        peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    except Exception as e:  # noqa: BLE001 - reported in the JSON
        error = f"{type(e).__name__}: {e}"
    report = dict(engine=f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, eager, bf16",
                  device=torch.cuda.get_device_name() if device == "cuda" else "cpu",
                  prompt_tokens=int(kw["input_ids"].shape[1]), image_tokens=image_tokens, steps=steps,
                  prefill_seconds=prefill, guided_tokens_per_second=tps, peak_memory_bytes=peak,
                  weight_bytes_per_step=weight_bytes, copy_bytes_per_second=rate,
                  bandwidth_limit_tokens_per_second=(rate / weight_bytes) if rate else None, tokens=tokens[:16],
                  error=error)
    json.dump(report, open(out, "w"), indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "tokens"}), flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    scale = "tiny" if "--scale" in a and a[a.index("--scale") + 1] == "tiny" else "real"
    main(a[0], a[1], int(a[2]), a[3], scale)
