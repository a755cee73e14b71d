//! Writes a random Qwen2.5-VL checkpoint without Python: the shape `bench/make_bench_model.py`
//! makes (text decoder like Qwen2.5-0.5B: hidden 896, 24 layers, 14 query / 2 key-value heads,
//! intermediate 4864, vocabulary 151936, tied embeddings; vision tower 8 blocks × 640), or the
//! smaller pair (`small`: hidden 512, 12 layers, 8 heads, intermediate 2048), for machines where
//! torch cannot be installed; `tiny` (hidden 128, 2 layers, 4 heads, intermediate 256) keeps the
//! real vocabulary for live α's figures; `1.5b` has Qwen2.5-1.5B's text widths (hidden 1536, 28
//! layers, 12 heads, intermediate 8960; 1.6 B parameters), where q6_k and q4_k apply to every
//! linear layer.
//!
//! ```sh
//! cargo run --release --example make_random_model -- target/bench-model-rs [base|small|tiny|1.5b] [SEED] [f32|bf16]
//! cargo run --release --example bench_cpu -- target/bench-model-rs 32 3 q8_0
//! ```
//!
//! The tokenizer, chat template and processor settings are the tiny test checkpoint's (its 336
//! tokens; the head's other rows are padding, as in the Python script). Weights are drawn as
//! tests/fixtures/reference.py draws the fixtures' (normal, std 1.5/√fan_in; biases 0.1·N(0, 1);
//! norms 1 + 0.1·N(0, 1)) from a seeded generator. The numbers are not torch's, so the model
//! is the Python script's in shape and speed, not in its values.

// The tests' generator: the wide test checkpoints and these are drawn the same way.
#[allow(dead_code)]
#[path = "../tests/common/quant_measures.rs"]
mod quant_measures;

use std::path::PathBuf;

use candle_core::{DType, Device};
use proxythinker::models::{ModelConfig, VlModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(args.get(1).ok_or("usage: make_random_model OUT_DIR [base|small|tiny|1.5b] [SEED] [f32|bf16]")?);
    let size = args.get(2).map_or("base", String::as_str);
    let seed: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let (hidden, intermediate, layers, heads) = match size {
        "base" => (896, 4864, 24, 14),
        "small" => (512, 2048, 12, 8),
        // Qwen2.5-1.5B's text widths (1536, 8960: multiples of 256, so q6_k and q4_k apply to
        // every linear layer, as on the 3B and 7B), for the k-quants' speed at real widths.
        "1.5b" => (1536, 8960, 28, 12),
        // The real vocabulary on a model that decodes in milliseconds: what live α's figures
        // need (thousands of kept tokens, each record over V = 151,936).
        "tiny" => (128, 256, 2, 4),
        other => return Err(format!("unknown size {other:?}: use base, small, tiny or 1.5b").into()),
    };
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny/qwen2_5_vl");
    std::fs::create_dir_all(&out)?;
    for f in ["tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json"] {
        std::fs::copy(tiny.join(f), out.join(f))?;
    }
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tiny.join("config.json"))?)?;
    for (k, v) in [
        ("vocab_size", 151_936.into()),
        ("hidden_size", hidden.into()),
        ("intermediate_size", intermediate.into()),
        ("num_hidden_layers", layers.into()),
        ("num_attention_heads", heads.into()),
        ("num_key_value_heads", 2.into()),
        ("max_window_layers", layers.into()),
        ("tie_word_embeddings", true.into()),
    ] {
        cfg[k] = v;
    }
    // Sections of half the head dimension (t, h, w), in Qwen2.5-VL's proportions.
    let half = hidden / heads / 2;
    cfg["rope_scaling"]["mrope_section"] = serde_json::json!([half / 4, half * 3 / 8, half * 3 / 8]);
    cfg["vision_config"] = serde_json::json!({
        "depth": 8, "hidden_size": 640, "hidden_act": "silu", "intermediate_size": 1710, "num_heads": 10,
        "in_chans": 3, "out_hidden_size": hidden, "patch_size": 14, "spatial_merge_size": 2,
        "spatial_patch_size": 14, "temporal_patch_size": 2, "window_size": 112,
        "fullatt_block_indexes": [3, 7], "tokens_per_second": 2
    });
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;

    let config = ModelConfig::from_file(&out.join("config.json"))?;
    let varmap = candle_nn::VarMap::new();
    // Every tensor the model reads is created (as zeros) by building the model once.
    VlModel::new(&config, candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    quant_measures::randomize(&varmap, seed);
    let count: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    // `bf16` stores the weights as the Hub's Qwen checkpoints do (their values rounded once).
    match args.get(4).map_or("f32", String::as_str) {
        "f32" => varmap.save(out.join("model.safetensors"))?,
        "bf16" => {
            let data = varmap.data().lock().map_err(|_| "poisoned")?;
            let tensors = data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(DType::BF16)?))).collect::<candle_core::Result<std::collections::HashMap<_, _>>>()?;
            candle_core::safetensors::save(&tensors, out.join("model.safetensors"))?;
        }
        other => return Err(format!("unknown dtype {other}: use f32 or bf16").into()),
    }
    println!("wrote {} ({:.1} M parameters)", out.display(), count as f64 / 1e6);
    Ok(())
}
