#!/usr/bin/env python3
"""Extract the text decoder of a Qwen2.5-VL-shaped checkpoint as a plain Qwen2 checkpoint.

    python3 bench/qwen_vl_text_to_qwen2.py MODEL_DIR OUT_DIR

MODEL_DIR holds a Qwen2.5-VL checkpoint (config.json with model_type qwen2_5_vl, and
model.safetensors or a sharded model.safetensors.index.json). OUT_DIR receives a
`Qwen2ForCausalLM` checkpoint that llama.cpp's convert_hf_to_gguf.py (or transformers)
reads as a text-only model:

- config.json: the text sizes, rope_theta, norm epsilon, token ids and tie_word_embeddings of
  the source (top level, or `text_config` where the source nests them), without the vision
  settings and without Qwen2.5-VL's mrope `rope_scaling` (for text alone the three mrope
  sections see the same positions, so it is plain 1-D RoPE);
- model.safetensors: the language model's tensors renamed to Qwen2ForCausalLM's names
  (`model.embed_tokens.weight`, `model.layers.N.*`, `model.norm.weight`, and `lm_head.weight`
  unless the embeddings are tied); the vision tower (`visual.*` or `model.visual.*`) is dropped.
  Both layouts of the source are read: the original one (`model.layers.*`, `visual.*`) and
  transformers' newer one (`model.language_model.layers.*`, `model.visual.*`);
- the tokenizer files and generation_config.json, copied as they are.

Tensors are copied byte for byte (any dtype: f32, bf16, f16, ...), straight from the
safetensors files without decoding them, so the script needs only the Python standard
library and peak memory stays small whatever the model's size.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

COPIED_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "generation_config.json",
)

# Settings of the text decoder carried into the Qwen2 config when the source has them.
TEXT_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "rms_norm_eps",
    "max_position_embeddings",
    "rope_theta",
    "attention_dropout",
    "initializer_range",
    "sliding_window",
    "max_window_layers",
    "use_sliding_window",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
    "torch_dtype",
)


def read_header(path: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the offset where its data begins."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header, 8 + n


def text_name(name: str) -> str | None:
    """Qwen2ForCausalLM's name for a source tensor, or None for tensors to drop."""
    if name.startswith(("visual.", "model.visual.")):
        return None
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    if name.startswith("language_model.model."):
        return "model." + name[len("language_model.model."):]
    if name.startswith("language_model.lm_head."):
        return name[len("language_model."):]
    if name.startswith(("model.", "lm_head.")):
        return name
    raise SystemExit(f"unexpected tensor name {name!r}: neither the text decoder nor the vision tower")


def text_config(src: dict) -> dict:
    """A Qwen2ForCausalLM config.json from a Qwen2.5-VL one."""
    merged = dict(src)
    merged.update(src.get("text_config") or {})  # transformers' newer layout nests the text sizes
    if "rope_theta" not in merged:
        for key in ("rope_parameters", "rope_scaling"):
            theta = (merged.get(key) or {}).get("rope_theta")
            if theta is not None:
                merged["rope_theta"] = theta
                break
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}
    cfg.update({k: merged[k] for k in TEXT_KEYS if k in merged})
    cfg.setdefault("tie_word_embeddings", False)
    cfg.setdefault("use_sliding_window", False)
    if "dtype" in merged and "torch_dtype" not in cfg:
        cfg["torch_dtype"] = merged["dtype"]
    return cfg


def source_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / s for s in shards]
    single = model_dir / "model.safetensors"
    if not single.exists():
        raise SystemExit(f"{model_dir}: no model.safetensors nor model.safetensors.index.json")
    return [single]


def convert(model_dir: Path, out_dir: Path) -> None:
    src_cfg = json.loads((model_dir / "config.json").read_text())
    if src_cfg.get("model_type") not in ("qwen2_5_vl", "qwen2_vl"):
        print(f"warning: model_type is {src_cfg.get('model_type')!r}, not qwen2_5_vl", file=sys.stderr)
    cfg = text_config(src_cfg)
    tied = bool(cfg["tie_word_embeddings"])

    # Plan: (source file, data offset, source entry, new name) for each kept tensor.
    plan = []
    dropped = 0
    for path in source_files(model_dir):
        header, data_start = read_header(path)
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            new = text_name(name)
            if new is None or (tied and new == "lm_head.weight"):
                dropped += 1
                continue
            plan.append((path, data_start, entry, new))
    names = {p[3] for p in plan}
    if len(names) != len(plan):
        raise SystemExit("two source tensors map to the same Qwen2 name")
    for required in ("model.embed_tokens.weight", "model.norm.weight"):
        if required not in names:
            raise SystemExit(f"the checkpoint has no {required} (after renaming)")
    if not tied and "lm_head.weight" not in names:
        raise SystemExit("tie_word_embeddings is false but the checkpoint has no lm_head.weight")
    layers = {int(n.split(".")[2]) for n in names if n.startswith("model.layers.")}
    if layers != set(range(cfg["num_hidden_layers"])):
        raise SystemExit(f"layers found {sorted(layers)} but num_hidden_layers is {cfg['num_hidden_layers']}")

    # Natural order (layer by layer), offsets packed from 0 as safetensors wants.
    def order(item):
        parts = item[3].split(".")
        return (0 if parts[1] == "embed_tokens" else 1 if parts[1] == "layers" else 2,
                int(parts[2]) if parts[1] == "layers" else 0, item[3])
    plan.sort(key=order)
    header_out: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for _, _, entry, new in plan:
        begin, end = entry["data_offsets"]
        header_out[new] = {"dtype": entry["dtype"], "shape": entry["shape"], "data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    blob = json.dumps(header_out, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # keep the data 8-byte aligned

    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "model.safetensors.partial"
    with open(tmp, "wb") as out:
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        handles: dict[Path, object] = {}
        try:
            for path, data_start, entry, _ in plan:
                f = handles.get(path) or handles.setdefault(path, open(path, "rb"))
                begin, end = entry["data_offsets"]
                f.seek(data_start + begin)
                left = end - begin
                while left:
                    chunk = f.read(min(left, 64 << 20))
                    if not chunk:
                        raise SystemExit(f"{path}: file ends inside a tensor")
                    out.write(chunk)
                    left -= len(chunk)
        finally:
            for f in handles.values():
                f.close()
    tmp.replace(out_dir / "model.safetensors")
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    for name in COPIED_FILES:
        if (model_dir / name).exists():
            shutil.copyfile(model_dir / name, out_dir / name)

    params = 0
    for _, _, entry, _ in plan:
        n = 1
        for d in entry["shape"]:
            n *= d
        params += n
    print(f"wrote {out_dir}: {len(plan)} text tensors ({params / 1e6:.1f} M parameters, "
          f"{'tied' if tied else 'untied'} head), {dropped} dropped", file=sys.stderr)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1] if __doc__ else "usage: qwen_vl_text_to_qwen2.py MODEL_DIR OUT_DIR")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
