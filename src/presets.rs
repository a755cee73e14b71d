//! Named trios: the paper's and smaller ones for smaller machines (`--preset NAME`,
//! `proxythinker presets`), and the paper's prompt suffixes (`--suffix`).
//!
//! Each preset names its three models by Hub repo id, with α and the prompt suffix the paper used
//! for that kind of trio. As in the paper's code, one processor (the base model's) prepares the
//! image and prompt for all three models.
//!
//! **Where the parameter counts come from**: [`param_count`] counts every tensor that a
//! checkpoint of a given `config.json` holds (text decoder, output head unless tied, vision
//! tower and merger), following the shapes the model code loads. `tests/presets_config.rs`
//! checks it against the safetensors headers of the tiny fixture checkpoints (exact), and checks
//! the counts stated below against [`param_count`] of the real Hub `config.json` texts committed
//! in `tests/fixtures/configs/`. They agree with the totals the Hub shows for those repositories
//! (8.29 B for Qwen2.5-VL-7B, 3.75 B for the 3B, 73.4 B for the 72B, 8.77 B for Qwen3-VL-8B,
//! ...); for Qwen3-VL, `tests/config.rs` also checks [`param_count`] against the count of the
//! model transformers builds from the same config. The RFT models are fine-tunes that keep their
//! base's architecture, so they have its count; so are the Qwen3-VL Thinking models, which share
//! the architecture of the Instruct model of their size.
//!
//! **Quantized sizes**: [`ModelSpec::weight_bytes`] counts the text decoder's seven linear layers
//! per decoder layer from the widths stated here, at the bytes per block of a `--quant` format
//! and its fallback where a width does not fit the block (the rule is
//! [`QuantFormat::for_width`]'s, as loading applies it); the table shows each preset's device
//! total (weights + KV caches) unquantized, in q8_0 and in q4_k. Live α is kept in host RAM and
//! shown apart.

use candle_core::DType;
use serde_json::json;

use crate::error::{Error, Result};
use crate::models::{Family, ModelConfig, QuantFormat};

/// The context (prompt + new tokens) the presets table sizes the KV cache and live α for.
pub const CONTEXT_TOKENS: u64 = 4096;

/// What the memory estimate needs to know about one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The Hub repo id.
    pub repo: &'static str,
    /// Every parameter of the checkpoint (see the module documentation).
    pub params: u64,
    /// Text decoder layers, key/value heads and head dimension (KV cache size).
    pub layers: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    /// Rows of the output head.
    pub vocab: u64,
    /// Text decoder widths (the shapes of the linear layers that `--quant` quantizes).
    pub hidden: u64,
    pub intermediate: u64,
    pub heads: u64,
}

const fn spec(repo: &'static str, arch: ModelSpec) -> ModelSpec {
    ModelSpec { repo, ..arch }
}

// Architectures, from the real config.json texts (tests/fixtures/configs/).
const QWEN2_5_VL_72B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen2.5-VL-72B-Instruct",
    params: 73_410_777_344,
    layers: 80,
    kv_heads: 8,
    head_dim: 128,
    vocab: 152_064,
    hidden: 8192,
    intermediate: 29_568,
    heads: 64,
};
const QWEN2_5_VL_32B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen2.5-VL-32B-Instruct",
    params: 33_452_718_336,
    layers: 64,
    kv_heads: 8,
    head_dim: 128,
    vocab: 152_064,
    hidden: 5120,
    intermediate: 27_648,
    heads: 40,
};
const QWEN2_5_VL_7B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen2.5-VL-7B-Instruct",
    params: 8_292_166_656,
    layers: 28,
    kv_heads: 4,
    head_dim: 128,
    vocab: 152_064,
    hidden: 3584,
    intermediate: 18_944,
    heads: 28,
};
const QWEN2_5_VL_3B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen2.5-VL-3B-Instruct",
    params: 3_754_622_976,
    layers: 36,
    kv_heads: 2,
    head_dim: 128,
    vocab: 151_936,
    hidden: 2048,
    intermediate: 11_008,
    heads: 16,
};
const QWEN2_VL_7B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen2-VL-7B-Instruct",
    params: 8_291_375_616,
    layers: 28,
    kv_heads: 4,
    head_dim: 128,
    vocab: 152_064,
    hidden: 3584,
    intermediate: 18_944,
    heads: 28,
};
const QWEN2_VL_2B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen2-VL-2B-Instruct",
    params: 2_208_985_600,
    layers: 28,
    kv_heads: 2,
    head_dim: 128,
    vocab: 151_936,
    hidden: 1536,
    intermediate: 8960,
    heads: 12,
};

const QWEN3_VL_32B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen3-VL-32B-Instruct",
    params: 33_357_390_064,
    layers: 64,
    kv_heads: 8,
    head_dim: 128,
    vocab: 151_936,
    hidden: 5120,
    intermediate: 25_600,
    heads: 64,
};
const QWEN3_VL_8B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen3-VL-8B-Instruct",
    params: 8_767_123_696,
    layers: 36,
    kv_heads: 8,
    head_dim: 128,
    vocab: 151_936,
    hidden: 4096,
    intermediate: 12_288,
    heads: 32,
};
const QWEN3_VL_4B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen3-VL-4B-Instruct",
    params: 4_437_815_808,
    layers: 36,
    kv_heads: 8,
    head_dim: 128,
    vocab: 151_936,
    hidden: 2560,
    intermediate: 9728,
    heads: 32,
};
const QWEN3_VL_2B: ModelSpec = ModelSpec {
    repo: "Qwen/Qwen3-VL-2B-Instruct",
    params: 2_127_532_032,
    layers: 28,
    kv_heads: 8,
    head_dim: 128,
    vocab: 151_936,
    hidden: 2048,
    intermediate: 6144,
    heads: 16,
};

impl ModelSpec {
    /// (out, in) of the seven linear layers of one decoder layer: q, k, v, o, gate, up, down.
    pub fn linear_shapes(&self) -> [(u64, u64); 7] {
        let (h, i, q, kv) = (self.hidden, self.intermediate, self.heads * self.head_dim, self.kv_heads * self.head_dim);
        [(q, h), (kv, h), (kv, h), (h, q), (i, h), (i, h), (h, i)]
    }

    /// Bytes of the weights in `dtype` with the decoder's linear layers in `quant` (each at the
    /// format its input width allows, as loading does).
    pub fn weight_bytes(&self, dtype: DType, quant: QuantFormat) -> u64 {
        let shapes = self.linear_shapes();
        let linear_params: u64 = self.layers * shapes.iter().map(|(o, i)| o * i).sum::<u64>();
        let linear_bytes: u64 =
            self.layers * shapes.iter().map(|&(o, i)| quant.for_width(i as usize).weight_bytes(o, i, dtype)).sum::<u64>();
        (self.params - linear_params) * dtype.size_in_bytes() as u64 + linear_bytes
    }
}

/// The Qwen models whose architecture the presets use, for checks against their config.json.
pub const BASE_ARCHITECTURES: [ModelSpec; 10] = [
    QWEN2_5_VL_72B,
    QWEN2_5_VL_32B,
    QWEN2_5_VL_7B,
    QWEN2_5_VL_3B,
    QWEN2_VL_7B,
    QWEN2_VL_2B,
    QWEN3_VL_32B,
    QWEN3_VL_8B,
    QWEN3_VL_4B,
    QWEN3_VL_2B,
];

/// The prompt suffix appended to the question before the chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Suffix {
    None,
    /// "\n\nYour final answer MUST BE put in \boxed{}." (the paper's default).
    Boxed,
    /// "\n\nPlease reason step by step, and put your final answer within \boxed{}." (its VL-Rethinker runs).
    Rethink,
    /// The paper's `vlrethinker72b` prompt: step by step, with self-questioning, -verification and
    /// -correction asked for by name.
    Rethink72b,
    /// "\n\nYour final answer MUST BE put between <answer> </answer>." (its `answer` prompt).
    Answer,
    /// Think in <think> </think>, answer in <answer> </answer> (its `r1onevision` prompt).
    R1Onevision,
    /// Its `thinklite` prompt (a raw string there, so its "\n" are backslash-n as written).
    Thinklite,
    Custom(String),
}

impl Suffix {
    pub const BOXED: &'static str = "\n\nYour final answer MUST BE put in \\boxed{}.";
    pub const RETHINK: &'static str = "\n\nPlease reason step by step, and put your final answer within \\boxed{}.";
    pub const RETHINK72B: &'static str = "\n\nGuidelines: \nPlease think step by step, and **regularly perform self-questioning, self-verification, self-correction to check your ongoing reasoning**, using connectives such as \"Wait a moment\", \"Wait, does it seem right?\", etc. Remember to put your final answer within \\boxed{}.\n";
    pub const ANSWER: &'static str = "\n\nYour final answer MUST BE put between <answer> </answer>.";
    pub const R1ONEVISION: &'static str =
        "\n\nFirst output the thinking process in <think> </think> tags and then output the final answer in <answer> </answer> tags.";
    pub const THINKLITE: &'static str = r"\n\nYou FIRST think about the reasoning process as an internal monologue and then provide the final answer. The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in \boxed{}.";

    /// `boxed`, `rethink`, `none`, or any other text (appended as given).
    pub fn parse(s: &str) -> Suffix {
        match s {
            "boxed" => Suffix::Boxed,
            "rethink" => Suffix::Rethink,
            "rethink72b" => Suffix::Rethink72b,
            "answer" => Suffix::Answer,
            "r1onevision" => Suffix::R1Onevision,
            "thinklite" => Suffix::Thinklite,
            "none" | "" => Suffix::None,
            other => Suffix::Custom(other.to_string()),
        }
    }

    /// The text appended to the question.
    pub fn text(&self) -> &str {
        match self {
            Suffix::None => "",
            Suffix::Boxed => Self::BOXED,
            Suffix::Rethink => Self::RETHINK,
            Suffix::Rethink72b => Self::RETHINK72B,
            Suffix::Answer => Self::ANSWER,
            Suffix::R1Onevision => Self::R1ONEVISION,
            Suffix::Thinklite => Self::THINKLITE,
            Suffix::Custom(s) => s,
        }
    }

    /// The name as `--suffix` takes it (a custom suffix is its text).
    pub fn name(&self) -> &str {
        match self {
            Suffix::None => "none",
            Suffix::Boxed => "boxed",
            Suffix::Rethink => "rethink",
            Suffix::Rethink72b => "rethink72b",
            Suffix::Answer => "answer",
            Suffix::R1Onevision => "r1onevision",
            Suffix::Thinklite => "thinklite",
            Suffix::Custom(s) => s,
        }
    }

    /// The question with the suffix appended.
    pub fn apply(&self, question: &str) -> String {
        format!("{question}{}", self.text())
    }
}

/// A named trio with its α and prompt suffix.
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: &'static str,
    pub about: &'static str,
    pub base: ModelSpec,
    pub rft: ModelSpec,
    pub small: ModelSpec,
    pub alpha: f32,
    pub suffix: Suffix,
}

/// The presets, largest first.
pub fn all() -> Vec<Preset> {
    let rethinker = spec("TIGER-Lab/VL-Rethinker-7B", QWEN2_5_VL_7B);
    vec![
        Preset {
            name: "paper-72b",
            about: "the paper's main setting: Qwen2.5-VL-72B guided by VL-Rethinker-7B",
            base: QWEN2_5_VL_72B,
            rft: rethinker,
            small: QWEN2_5_VL_7B,
            alpha: 0.5,
            suffix: Suffix::Rethink,
        },
        Preset {
            name: "paper-32b",
            about: "Qwen2.5-VL-32B guided by VL-Rethinker-7B",
            base: QWEN2_5_VL_32B,
            rft: rethinker,
            small: QWEN2_5_VL_7B,
            alpha: 0.5,
            suffix: Suffix::Rethink,
        },
        Preset {
            name: "thinklite-32b",
            about: "Qwen2.5-VL-32B guided by ThinkLite-VL-7B",
            base: QWEN2_5_VL_32B,
            rft: spec("russwang/ThinkLite-VL-7B", QWEN2_5_VL_7B),
            small: QWEN2_5_VL_7B,
            alpha: 0.5,
            suffix: Suffix::Boxed,
        },
        Preset {
            name: "workstation-7b",
            about: "one 48 GB GPU: Qwen2.5-VL-7B guided by VLAA-Thinker-Qwen2.5VL-3B",
            base: QWEN2_5_VL_7B,
            rft: spec("UCSC-VLAA/VLAA-Thinker-Qwen2.5VL-3B", QWEN2_5_VL_3B),
            small: QWEN2_5_VL_3B,
            alpha: 0.5,
            suffix: Suffix::Boxed,
        },
        Preset {
            name: "qwen2vl-7b",
            about: "the Qwen2-VL family: Qwen2-VL-7B guided by VLAA-Thinker-Qwen2VL-2B",
            base: QWEN2_VL_7B,
            rft: spec("UCSC-VLAA/VLAA-Thinker-Qwen2VL-2B", QWEN2_VL_2B),
            small: QWEN2_VL_2B,
            alpha: 0.5,
            suffix: Suffix::Boxed,
        },
        Preset {
            name: "qwen3vl-32b",
            about: "the Qwen3-VL family: Qwen3-VL-32B-Instruct guided by Qwen3-VL-8B-Thinking",
            base: QWEN3_VL_32B,
            rft: spec("Qwen/Qwen3-VL-8B-Thinking", QWEN3_VL_8B),
            small: QWEN3_VL_8B,
            alpha: 0.5,
            suffix: Suffix::Boxed,
        },
        Preset {
            name: "qwen3vl-8b",
            about: "a workstation Qwen3-VL trio: Qwen3-VL-8B-Instruct guided by Qwen3-VL-2B-Thinking",
            base: QWEN3_VL_8B,
            rft: spec("Qwen/Qwen3-VL-2B-Thinking", QWEN3_VL_2B),
            small: QWEN3_VL_2B,
            alpha: 0.5,
            suffix: Suffix::Boxed,
        },
    ]
}

/// The preset called `name`, or an error listing the names.
pub fn find(name: &str) -> Result<Preset> {
    all().into_iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = all().iter().map(|p| p.name).collect();
        Error::invalid(format!("unknown preset \"{name}\": use one of {} (`proxythinker presets` lists them)", names.join(", ")))
    })
}

/// KV cache bytes per token of one row: layers × 2 (K and V) × kv_heads × head_dim × dtype size.
pub fn kv_bytes_per_token(layers: u64, kv_heads: u64, head_dim: u64, dtype: DType) -> u64 {
    layers * 2 * kv_heads * head_dim * dtype.size_in_bytes() as u64
}

/// Live-α bytes per guided token: base[..V] and rft[..V] − small[..V] in f32.
pub fn live_alpha_bytes_per_token(shared_vocab: u64) -> u64 {
    8 * shared_vocab
}

/// A memory estimate, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub weights: u64,
    pub kv_cache: u64,
    /// Kept in host memory by the session.
    pub live_alpha: u64,
}

impl Memory {
    /// Everything: the models' devices and host memory.
    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.live_alpha
    }

    /// What the models' devices hold (the GPU, for a GPU run): weights and KV caches.
    pub fn device_total(&self) -> u64 {
        self.weights + self.kv_cache
    }
}

/// The quantizations `proxythinker presets` shows each preset's memory for.
pub const TABLE_QUANTS: [QuantFormat; 3] = [QuantFormat::None, QuantFormat::Q8_0, QuantFormat::Q4K];

impl Preset {
    pub fn models(&self) -> [&ModelSpec; 3] {
        [&self.base, &self.rft, &self.small]
    }

    /// Memory of the whole trio in `dtype` for a `tokens`-token context: weights, the KV caches
    /// of the five rows, and the live-α vectors (counted for `tokens` guided tokens: an upper bound).
    pub fn memory(&self, dtype: DType, tokens: u64) -> Memory {
        self.memory_quantized(dtype, QuantFormat::None, tokens)
    }

    /// [`memory`](Self::memory) with the decoders' linear layers in `quant`.
    pub fn memory_quantized(&self, dtype: DType, quant: QuantFormat, tokens: u64) -> Memory {
        let models = self.models();
        let weights = models.iter().map(|m| m.weight_bytes(dtype, quant)).sum();
        let kv_cache = models
            .iter()
            .zip(crate::trio::ROW_PLAN.into_array())
            .map(|(m, rows)| rows.len() as u64 * tokens * kv_bytes_per_token(m.layers, m.kv_heads, m.head_dim, dtype))
            .sum();
        let shared = models.iter().map(|m| m.vocab).min().unwrap_or(0);
        Memory { weights, kv_cache, live_alpha: tokens * live_alpha_bytes_per_token(shared) }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let m = self.memory(DType::BF16, CONTEXT_TOKENS);
        let model = |s: &ModelSpec| json!({"repo": s.repo, "params": s.params});
        let mut by_quant = serde_json::Map::new();
        for q in TABLE_QUANTS {
            let m = self.memory_quantized(DType::BF16, q, CONTEXT_TOKENS);
            by_quant.insert(
                q.name().to_string(),
                json!({
                    "weights_bytes": m.weights,
                    "kv_cache_bytes": m.kv_cache,
                    "live_alpha_host_bytes": m.live_alpha,
                    "device_total_bytes": m.device_total(),
                }),
            );
        }
        json!({
            "name": self.name,
            "about": self.about,
            "base": model(&self.base),
            "rft": model(&self.rft),
            "small": model(&self.small),
            "alpha": self.alpha,
            "suffix": self.suffix.name(),
            "suffix_text": self.suffix.text(),
            "memory_bf16": {
                "context_tokens": CONTEXT_TOKENS,
                "weights_bytes": m.weights,
                "kv_cache_bytes": m.kv_cache,
                "live_alpha_bytes": m.live_alpha,
                "total_bytes": m.total(),
                "device_total_bytes": m.device_total(),
            },
            "memory_bf16_by_quant": by_quant,
        })
    }
}

/// Every parameter a checkpoint with this config holds: the text decoder (embeddings, layers,
/// final norm, and the output head unless tied), the vision tower and its merger.
pub fn param_count(cfg: &ModelConfig) -> u64 {
    let t = &cfg.text;
    let (v, h, i, l) = (t.vocab_size as u64, t.hidden_size as u64, t.intermediate_size as u64, t.num_hidden_layers as u64);
    let (q, kv) = ((t.num_attention_heads * t.head_dim) as u64, (t.num_key_value_heads * t.head_dim) as u64);
    // q/k/v with biases, o without; gate, up and down without; two RMSNorms.
    let layer = (h * q + q) + 2 * (h * kv + kv) + q * h + 3 * h * i + 2 * h;
    let text = v * h + l * layer + h + if t.tie_word_embeddings { 0 } else { v * h };
    let vc = &cfg.vision;
    let (d, vi) = (vc.hidden_size as u64, vc.intermediate_size as u64);
    let attn = (d * 3 * d + 3 * d) + (d * d + d);
    let (block, ln_q) = match cfg.family {
        // RMSNorms (weight only) and a gated MLP with biases.
        Family::Qwen2_5Vl => (2 * d + attn + 2 * (d * vi + vi) + (vi * d + d), d),
        // LayerNorms (weight and bias) and fc1/fc2 with biases.
        Family::Qwen2Vl => (4 * d + attn + (d * vi + vi) + (vi * d + d), 2 * d),
        Family::Qwen3Vl => return crate::models::qwen3_vl::param_count(cfg),
    };
    let merge = (vc.spatial_merge_size * vc.spatial_merge_size) as u64;
    let g = d * merge;
    let out = vc.out_hidden_size as u64;
    let patch = d * (vc.in_channels * vc.temporal_patch_size * vc.patch_size * vc.patch_size) as u64;
    let vision = patch + vc.depth as u64 * block + ln_q + (g * g + g) + (g * out + out);
    text + vision
}

/// Bytes in binary units: "15.2 GiB", "812.0 MiB", "3.4 KiB", "17 B".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut x = b as f64 / 1024.0;
    let mut unit = 0;
    while x >= 1024.0 && unit < UNITS.len() - 1 {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", UNITS[unit])
}

/// `proxythinker presets [--json]`
#[derive(Debug, clap::Args)]
pub struct PresetsArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The presets as a readable table.
pub fn table() -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let presets = all();
    let gb = |b: u64| format!("{:.1} GB", b as f64 / 1e9);
    let _ = writeln!(
        s,
        "{:<15} {:>5}  {:<8} {:>9} {:>8} {:>9} {:>9} {:>9}  models (base + α·(rft − small))",
        "preset", "α", "suffix", "weights", "KV", "GPU none", "q8_0", "q4_k"
    );
    for p in &presets {
        let m = p.memory(DType::BF16, CONTEXT_TOKENS);
        let gpu: Vec<String> = TABLE_QUANTS.iter().map(|&q| gb(p.memory_quantized(DType::BF16, q, CONTEXT_TOKENS).device_total())).collect();
        let _ = writeln!(
            s,
            "{:<15} {:>5.2}  {:<8} {:>9} {:>8} {:>9} {:>9} {:>9}  {} + α·({} − {})",
            p.name,
            p.alpha,
            p.suffix.name(),
            gb(m.weights),
            gb(m.kv_cache),
            gpu[0],
            gpu[1],
            gpu[2],
            p.base.repo,
            p.rft.repo,
            p.small.repo
        );
    }
    let live = all().first().map_or(0, |p| p.memory(DType::BF16, CONTEXT_TOKENS).live_alpha);
    let _ = writeln!(
        s,
        "\nMemory in bf16 (1 GB = 10^9 bytes) for a {CONTEXT_TOKENS}-token context: weights from the models' parameter \
         counts; KV = the caches of the five rows (base 2, rft 2, small 1); GPU = weights + KV with the text decoders' \
         linear layers unquantized, in q8_0 or in q4_k (--quant; a layer whose width does not fit the format's block \
         falls back to q8_0). Live α (8·V bytes per guided token, about {} for {CONTEXT_TOKENS} tokens) is kept in host \
         RAM. `run`, `bench` and the UI check the real figures against free memory before loading.",
        gb(live)
    );
    let _ = writeln!(s, "Suffixes: boxed = {:?}, rethink = {:?}.", Suffix::BOXED, Suffix::RETHINK);
    let _ = write!(s, "Use one with --preset NAME; --base/--rft/--small, --alpha and --suffix override its values.");
    s
}

pub fn run_presets(args: &PresetsArgs) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let io = |source| Error::Io { path: "<stdout>".into(), source };
    if args.json {
        let v = json!({
            "context_tokens": CONTEXT_TOKENS,
            "dtype": "bf16",
            "presets": all().iter().map(Preset::to_json).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}").map_err(io)
    } else {
        writeln!(out, "{}", table()).map_err(io)
    }
}
