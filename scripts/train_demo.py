"""Trains the demo's three tiny Qwen2.5-VL checkpoints on a synthetic counting task.

What `proxythinker demo` runs (assets/demo/{base,rft,small}) comes from this script, seeded, on the
CPU, in minutes:

  task      pictures of 1-6 coloured shapes (84x84) with "How many circles are in the picture?"
            (all shapes of one kind) or "What colour is the square?" (one square among others)
  tokenizer a byte-level BPE trained on the task's own sentences, Qwen's special tokens, and a
            chat template without a default system prompt (shorter prompts to learn)
  base      the largest model, trained on direct answers: "There are 3 circles. \\boxed{3}", on
            descriptions ("Describe the picture." -> "I see 2 shapes: a red circle, ...") and on
            the checking sentences below as plain text, never as an answer
  small     a smaller model, trained on the same
  rft       the small model fine-tuned further on answers with checking habits: "Let me count them
            one by one: red, blue, green. Wait, let me verify: 1, 2, 3. Yes, there are 3 circles.
            \\boxed{3}" (as an RFT reasoner is tuned from its base)

It writes the three checkpoints (Hub layout, bf16 safetensors, the same tokenizer files in each),
the demo picture assets/demo/picture.png, and the held-out set assets/demo/heldout.jsonl (200
pictures never trained on, inline base64 PNGs, in the JSON Lines format `proxythinker eval` reads).

Run from the repository root with torch 2.15.0, transformers 5.24.0 (its `tokenizers`), pillow:
    pip install torch==2.15.0 transformers==5.24.0 pillow safetensors numpy
    python3 scripts/train_demo.py            # 9-17 minutes on 2 shared CPU cores
(DEMO_OUT=DIR writes elsewhere; DEMO_*_STEPS, DEMO_BASE_LR and DEMO_THREADS override the defaults,
which made the committed files.)
Everything is seeded (SEED below) and runs single-process on the CPU in float32; the weights are
rounded to bf16 when written, and the accuracies printed at the end are of the written weights.
"""

import base64
import io
import json
import math
import os
import random
import shutil
import sys
import time

import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

SEED = 20251203
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.environ.get("DEMO_OUT", os.path.join(ROOT, "assets", "demo"))
SIZE = 84  # pixels a side: 6x6 patches of 14, 9 image tokens after the 2x2 merge
GRID = 6  # cells a side, one patch each
TRAIN_PICTURES = int(os.environ.get("DEMO_PICTURES", 6000))
HELDOUT_PICTURES = 200
STEPS = {"base": int(os.environ.get("DEMO_BASE_STEPS", 1500)), "small": int(os.environ.get("DEMO_SMALL_STEPS", 1000)),
         "rft": int(os.environ.get("DEMO_RFT_STEPS", 400))}
BATCH = 32
DESCRIBE = float(os.environ.get("DEMO_DESCRIBE", 0.33))
TEXT_ONLY = int(os.environ.get("DEMO_TEXT_ONLY", 3000))  # pictures whose checking answer base and small read as text
SUFFIX = "\n\nYour final answer MUST BE put in \\boxed{}."  # what `eval` appends by default

KINDS = ["circle", "square", "triangle"]
COLOURS = {"red": (220, 40, 40), "green": (30, 160, 60), "blue": (40, 80, 230), "yellow": (235, 200, 20)}

SPECIALS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# Qwen's turn layout, with no default system turn: a system message is rendered only when given.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

PREPROCESSOR = dict(min_pixels=56 * 56, max_pixels=SIZE * SIZE, patch_size=14, temporal_patch_size=2, merge_size=2,
                    image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
                    image_processor_type="Qwen2VLImageProcessor", processor_class="Qwen2_5_VLProcessor",
                    do_resize=True, do_rescale=True, do_normalize=True, do_convert_rgb=True,
                    rescale_factor=0.00392156862745098, resample=3)

# Sizes: base about 1.3M parameters, small (and so rft) about 0.3M.
SHAPES = {
    "base": dict(text=dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                           num_key_value_heads=2),
                 vision=dict(depth=4, hidden_size=64, intermediate_size=128, num_heads=2, fullatt_block_indexes=[1, 3])),
    "small": dict(text=dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2),
                  vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[1])),
}


# ---------------------------------------------------------------- the task

def plural(kind, n):
    return kind if n == 1 else kind + "s"


def scene(rng, question_kind):
    """Shapes in a 6x6 grid of cells, one patch (14 pixels) each, so that they never overlap and
    every shape lies in one patch of the vision tower; listed in reading order."""
    cells = sorted(rng.sample(range(GRID * GRID), rng.randint(1, 6)))
    if question_kind == "count":
        kind = rng.choice(KINDS)
        kinds = [kind] * len(cells)
    elif question_kind == "describe":
        kind = None
        kinds = [rng.choice(KINDS) for _ in cells]
    else:
        if len(cells) == 1:
            cells = sorted(rng.sample(range(GRID * GRID), 2))
        kind = rng.choice(KINDS)
        others = [k for k in KINDS if k != kind]
        kinds = [rng.choice(others) for _ in cells]
        kinds[rng.randrange(len(cells))] = kind
    shapes = []
    for cell, k in zip(cells, kinds):
        shapes.append(dict(kind=k, colour=rng.choice(list(COLOURS)), cell=cell,
                           dx=rng.randint(-1, 1), dy=rng.randint(-1, 1), size=rng.randint(9, 11)))
    return dict(question_kind=question_kind, kind=kind, shapes=shapes)


def draw(sc):
    img = Image.new("RGB", (SIZE, SIZE), (250, 250, 250))
    d = ImageDraw.Draw(img)
    cell = SIZE // GRID
    for s in sc["shapes"]:
        cx = (s["cell"] % GRID) * cell + cell // 2 + s["dx"]
        cy = (s["cell"] // GRID) * cell + cell // 2 + s["dy"]
        h = s["size"] // 2
        fill = COLOURS[s["colour"]]
        if s["kind"] == "circle":
            d.ellipse([cx - h, cy - h, cx + h, cy + h], fill=fill)
        elif s["kind"] == "square":
            d.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
        else:
            d.polygon([(cx, cy - h), (cx - h, cy + h), (cx + h, cy + h)], fill=fill)
    return img


def question(sc):
    if sc["question_kind"] == "describe":
        return "Describe the picture."
    if sc["question_kind"] == "count":
        return f"How many {sc['kind']}s are in the picture?"
    return f"What colour is the {sc['kind']}?"


def truth(sc):
    if sc["question_kind"] == "count":
        return str(len(sc["shapes"]))
    return next(s["colour"] for s in sc["shapes"] if s["kind"] == sc["kind"])


def description(sc):
    n = len(sc["shapes"])
    things = ", ".join(f"a {s['colour']} {s['kind']}" for s in sc["shapes"])
    return f"I see {n} {plural('shape', n)}: {things}."


def direct_answer(sc):
    if sc["question_kind"] == "describe":
        return description(sc)
    t = truth(sc)
    if sc["question_kind"] == "count":
        n = len(sc["shapes"])
        verb = "is" if n == 1 else "are"
        return f"There {verb} {n} {plural(sc['kind'], n)}. \\boxed{{{t}}}"
    return f"The {sc['kind']} is {t}. \\boxed{{{t}}}"


def checking_answer(sc):
    t = truth(sc)
    if sc["question_kind"] == "count":
        n = len(sc["shapes"])
        colours = ", ".join(s["colour"] for s in sc["shapes"])
        numbers = ", ".join(str(i + 1) for i in range(n))
        verb = "is" if n == 1 else "are"
        return (f"Let me count them one by one: {colours}. Wait, let me verify: {numbers}. "
                f"Yes, there {verb} {n} {plural(sc['kind'], n)}. \\boxed{{{t}}}")
    return (f"Let me find the {sc['kind']}. It is {t}. Wait, let me verify: the {sc['kind']} is {t}. "
            f"Yes. \\boxed{{{t}}}")


def scenes(rng, n, describe=0.0):
    """Questions of each kind: `describe` of them descriptions, then 60% counting, 40% colour."""
    def kind():
        if rng.random() < describe:
            return "describe"
        return "count" if rng.random() < 0.6 else "colour"
    return [scene(rng, kind()) for _ in range(n)]


# ---------------------------------------------------------------- tokenizer and checkpoints

def make_tokenizer(corpus, out_dir):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIALS, model_max_length=32768)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def config_dict(shape, tok, vocab):
    t = shape["text"]
    vision = dict(hidden_act="silu", in_chans=3, out_hidden_size=t["hidden_size"], patch_size=14, spatial_merge_size=2,
                  spatial_patch_size=14, temporal_patch_size=2, window_size=112, tokens_per_second=2, **shape["vision"])
    ids = tok.convert_tokens_to_ids
    return dict(architectures=["Qwen2_5_VLForConditionalGeneration"], model_type="qwen2_5_vl", attention_dropout=0.0,
                hidden_act="silu", initializer_range=0.02, max_window_layers=t["num_hidden_layers"], sliding_window=4096,
                tie_word_embeddings=False, torch_dtype="bfloat16", use_cache=True, use_sliding_window=False,
                vision_config=vision, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]
                                                    if t["hidden_size"] // t["num_attention_heads"] == 16 else [4, 6, 6]},
                vocab_size=vocab, rms_norm_eps=1e-6, max_position_embeddings=4096, rope_theta=1000000.0,
                bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
                image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"), **t)


def write_checkpoint(model, cfg, tok_dir, tok, out):
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    sd = {}
    for k, v in model.state_dict().items():
        # transformers 5's in-memory names -> the Hub's, as real checkpoints have them.
        if k.startswith("model.language_model."):
            k = "model." + k[len("model.language_model."):]
        elif k.startswith("model.visual."):
            k = "visual." + k[len("model.visual."):]
        sd[k] = v.detach().to(torch.bfloat16).contiguous().clone()
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(os.path.join(tok_dir, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    # transformers 5 saves the template in chat_template.jinja; it goes in tokenizer_config.json,
    # where the Hub's Qwen2.5-VL checkpoints keep it.
    tc = json.load(open(os.path.join(tok_dir, "tokenizer_config.json")))
    tc["chat_template"] = CHAT_TEMPLATE
    json.dump(tc, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)
    json.dump(PREPROCESSOR, open(os.path.join(out, "preprocessor_config.json"), "w"), indent=2)
    ids = tok.convert_tokens_to_ids
    gen = dict(bos_token_id=ids("<|endoftext|>"), eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
               pad_token_id=ids("<|endoftext|>"), do_sample=False)
    json.dump(gen, open(os.path.join(out, "generation_config.json"), "w"), indent=2)


# ---------------------------------------------------------------- data to tensors

class Encoder:
    def __init__(self, tok):
        self.tok = tok
        self.improc = Qwen2VLImageProcessorPil(min_pixels=PREPROCESSOR["min_pixels"],
                                               max_pixels=PREPROCESSOR["max_pixels"], patch_size=14,
                                               temporal_patch_size=2, merge_size=2)
        self.pad = tok.convert_tokens_to_ids("<|endoftext|>")
        self.image_pad = tok.convert_tokens_to_ids("<|image_pad|>")

    def prompt_ids(self, text, image):
        out = self.improc(images=[image], return_tensors="pt")
        grid = out["image_grid_thw"]
        rendered = self.tok.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
            add_generation_prompt=True, tokenize=False)
        n = int(grid[0].prod()) // 4
        rendered = rendered.replace("<|image_pad|>", "<|image_pad|>" * n, 1)
        return self.tok(rendered)["input_ids"], out["pixel_values"], grid

    def example(self, sc, answer, with_suffix):
        q = question(sc) + (SUFFIX if with_suffix else "")
        ids, pixels, grid = self.prompt_ids(q, draw(sc))
        target = self.tok(answer + "<|im_end|>")["input_ids"]
        return dict(ids=ids + target, labels=[-100] * len(ids) + target, pixels=pixels, grid=grid)

    def batch(self, examples):
        width = max(len(e["ids"]) for e in examples)
        ids = torch.full((len(examples), width), self.pad)
        labels = torch.full((len(examples), width), -100)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        for i, e in enumerate(examples):
            ids[i, :len(e["ids"])] = torch.tensor(e["ids"])
            labels[i, :len(e["labels"])] = torch.tensor(e["labels"])
            mask[i, :len(e["ids"])] = 1
        return dict(input_ids=ids, labels=labels, attention_mask=mask,
                    mm_token_type_ids=(ids == self.image_pad).int(),
                    **self.pictures(examples))

    @staticmethod
    def pictures(examples):
        shown = [e for e in examples if e["pixels"] is not None]
        if not shown:
            return {}
        return dict(pixel_values=torch.cat([e["pixels"] for e in shown]),
                    image_grid_thw=torch.cat([e["grid"] for e in shown]))

    def plain_text(self, text):
        """A text-only example, every token a label: language modelling, no chat turn."""
        ids = self.tok(text + "<|endoftext|>")["input_ids"]
        return dict(ids=ids, labels=ids, pixels=None, grid=None)


def train(model, examples, steps, lr, seed, label):
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    started, avg = time.time(), None
    for step in range(steps):
        batch = ENCODER.batch(rng.sample(examples, BATCH))
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        avg = loss.item() if avg is None else 0.95 * avg + 0.05 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            print(f"{label} step {step}/{steps} loss {avg:.4f} ({time.time() - started:.0f} s)", flush=True)
    model.eval()
    return time.time() - started


def new_model(name, tok, vocab, seed):
    cfg = config_dict(SHAPES[name], tok, vocab)
    torch.manual_seed(seed)
    # Trained in float32; config.json says bfloat16, as the weights are written.
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**dict(cfg, torch_dtype="float32"))).float()
    return model, cfg


def bf16_rounded(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    return model


@torch.no_grad()
def greedy(model, sc, max_new=60):
    ids, pixels, grid = ENCODER.prompt_ids(question(sc), draw(sc))
    ids = torch.tensor([ids])
    out = model.generate(input_ids=ids, pixel_values=pixels, image_grid_thw=grid,
                         mm_token_type_ids=(ids == ENCODER.image_pad).int(), max_new_tokens=max_new,
                         do_sample=False, eos_token_id=ENCODER.tok.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=ENCODER.pad)
    return ENCODER.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def boxed(text):
    start = text.find("\\boxed{")
    if start < 0:
        return None
    end = text.find("}", start)
    return text[start + 7:end] if end > 0 else None


def accuracy(model, held, n=60):
    return sum(boxed(greedy(model, sc)) == truth(sc) for sc in held[:n]) / min(n, len(held))


def png_base64(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def main():
    global ENCODER
    torch.set_num_threads(int(os.environ.get("DEMO_THREADS", 1)))
    random.seed(SEED)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    # A third of the base and small models' pictures are described shape by shape: the
    # descriptions teach the vision towers what is where far faster than one digit per answer.
    train_scenes = scenes(rng, TRAIN_PICTURES, describe=DESCRIBE)
    held = scenes(random.Random(SEED + 1), HELDOUT_PICTURES)

    corpus = []
    for sc in train_scenes[:2000]:
        corpus += [question(sc), question(sc) + SUFFIX, direct_answer(sc)]
        if sc["question_kind"] != "describe":
            corpus.append(checking_answer(sc))
    tok_dir = os.path.join(OUT, "_tokenizer")
    tok = make_tokenizer(corpus, tok_dir)
    vocab = (len(tok) + 15) // 16 * 16
    ENCODER = Encoder(tok)
    print(f"tokenizer: {len(tok)} tokens, {vocab} rows", flush=True)

    t0 = time.time()
    direct = [ENCODER.example(sc, direct_answer(sc), i % 4 == 0) for i, sc in enumerate(train_scenes)]
    # base and small also read checking sentences as plain text (as a large model has read
    # reasoning in pretraining) without ever being asked to answer that way: where the guided
    # stream has started checking, both then continue it alike, and their difference stays small.
    direct += [ENCODER.plain_text(checking_answer(sc)) for sc in train_scenes[:TEXT_ONLY]
               if sc["question_kind"] != "describe"]
    checking = [ENCODER.example(sc, checking_answer(sc), i % 4 == 0) for i, sc in enumerate(train_scenes)
                if sc["question_kind"] != "describe"]
    print(f"encoded {len(direct)} direct and {len(checking)} checking examples in {time.time() - t0:.0f} s", flush=True)

    timings = {}
    base, base_cfg = new_model("base", tok, vocab, SEED + 10)
    timings["base"] = train(base, direct, STEPS["base"], float(os.environ.get("DEMO_BASE_LR", 1.5e-3)), SEED + 11, "base")
    small, small_cfg = new_model("small", tok, vocab, SEED + 20)
    timings["small"] = train(small, direct, STEPS["small"], 1.5e-3, SEED + 21, "small")
    write_checkpoint(small, small_cfg, tok_dir, tok, os.path.join(OUT, "small"))
    # rft starts from small's weights as written (bf16) and learns the checking answers.
    rft, rft_cfg = new_model("small", tok, vocab, SEED + 30)
    rft.load_state_dict(bf16_rounded(small).state_dict())
    timings["rft"] = train(rft, checking, STEPS["rft"], 1e-3, SEED + 31, "rft")
    write_checkpoint(base, base_cfg, tok_dir, tok, os.path.join(OUT, "base"))
    write_checkpoint(rft, rft_cfg, tok_dir, tok, os.path.join(OUT, "rft"))
    shutil.rmtree(tok_dir)

    # The demo's picture: three circles, and the held-out set for `eval`.
    demo = dict(question_kind="count", kind="circle", shapes=[
        dict(kind="circle", colour="red", cell=2, dx=0, dy=1, size=11),
        dict(kind="circle", colour="blue", cell=16, dx=-1, dy=0, size=11),
        dict(kind="circle", colour="green", cell=25, dx=1, dy=-1, size=11)])
    draw(demo).save(os.path.join(OUT, "picture.png"), optimize=True)
    with open(os.path.join(OUT, "heldout.jsonl"), "w") as f:
        for i, sc in enumerate(held):
            f.write(json.dumps(dict(id=f"heldout-{i:03d}", question=question(sc), answer=truth(sc),
                                    category=sc["question_kind"],
                                    image="data:image/png;base64," + png_base64(draw(sc)))) + "\n")

    for name, model in [("base", base), ("small", small), ("rft", rft)]:
        bf16_rounded(model)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params} parameters, trained {timings[name]:.0f} s, held-out accuracy (first 60, transformers "
              f"greedy) {accuracy(model, held):.2f}; on the demo picture: {greedy(model, demo)!r}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
