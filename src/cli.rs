//! The command line: argument definitions and the subcommands that do not need a terminal UI.
//!
//! `logits` and `generate` have a stable contract that outside checks rely on: each prints
//! exactly one JSON object on stdout (with `--json` for `generate`), and every error is one line
//! on stderr with exit status 2.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::error::{Error, Result};
use crate::generate::{greedy, StopReason};
use crate::loader::Checkpoint;
use crate::processor::{prepare_prompt, prompt};

#[derive(Debug, Parser)]
#[command(name = "proxythinker", version, about = "ProxyThinker test-time guidance of Qwen vision-language models")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the vocabulary logits at the last prompt position as one JSON object.
    Logits(LogitsArgs),
    /// Greedy decoding with the KV cache.
    Generate(GenerateArgs),
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl DeviceSpec {
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if s == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        let ordinal = if s == "cuda" {
            Some(0)
        } else {
            s.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok())
        };
        match ordinal {
            Some(n) => Ok(DeviceSpec::Cuda(n)),
            None => Err(format!("unknown device \"{s}\": use cpu, cuda or cuda:N")),
        }
    }

    /// Opens the device; CUDA needs a build with the `cuda` feature.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::invalid(format!(
                        "--device cuda:{n}: this build has no CUDA support; rebuild with `cargo build --release --features cuda` or use --device cpu"
                    )));
                }
                Device::new_cuda(n).map_err(|e| {
                    Error::invalid(format!("--device cuda:{n}: cannot open the GPU: {}", crate::loader::first_line(&e)))
                })
            }
        }
    }
}

/// Parses a dtype name as transformers and candle spell them.
pub fn parse_dtype(s: &str) -> std::result::Result<DType, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" => Ok(DType::F32),
        "f16" | "float16" | "fp16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(format!("unknown dtype \"{other}\": use f32, f16 or bf16")),
    }
}

#[derive(Debug, Args)]
pub struct PromptArgs {
    /// Checkpoint directory in the Hugging Face Hub layout.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Image to ask about (PNG, JPEG, WebP, GIF, BMP, TIFF).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// The question (one user turn), or the whole prompt with --raw.
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    /// Tokenize the prompt as given, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// cpu, or cuda:N in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu", value_parser = DeviceSpec::parse)]
    pub device: DeviceSpec,
}

#[derive(Debug, Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub prompt: PromptArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// The most new tokens to generate.
    #[arg(long, value_name = "N")]
    pub max_new_tokens: usize,
    /// Keep going past the end-of-sequence tokens of generation_config.json.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print one JSON object instead of the text.
    #[arg(long)]
    pub json: bool,
}

/// A checkpoint, its tokenizer and loaded model, with the user's prompt prepared for it.
struct Loaded {
    checkpoint: Checkpoint,
    tokenizer: tokenizers::Tokenizer,
    model: crate::models::VlModel,
    prepared: crate::processor::PreparedPrompt,
}

fn load(args: &PromptArgs) -> Result<Loaded> {
    // Cheap checks first, so that bad input fails before any weights are read.
    let device = args.device.open()?;
    let checkpoint = Checkpoint::open(&args.model)?;
    let tokenizer = prompt::load_tokenizer(&checkpoint.tokenizer_file)?;
    let prepared = prepare_prompt(&checkpoint, &tokenizer, &args.prompt, args.image.as_deref(), args.raw, &device)?;
    let model = checkpoint.load_model(args.dtype, &device)?;
    Ok(Loaded { checkpoint, tokenizer, model, prepared })
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(|e| Error::invalid(format!("cannot write to stdout: {e}")))?;
    writeln!(out).map_err(|source| Error::Io { path: Path::new("<stdout>").to_path_buf(), source })
}

pub fn run_logits(args: &LogitsArgs) -> Result<()> {
    let l = load(&args.prompt)?;
    let mut cache = l.model.new_cache();
    let logits = l.model.prefill(std::slice::from_ref(&l.prepared.input), &mut cache)?;
    let logits: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
    let grids: Vec<[usize; 3]> = l.prepared.input.images.iter().map(|i| i.grid_thw).collect();
    print_json(&json!({
        "model": l.checkpoint.dir,
        "model_type": l.checkpoint.config.family.model_type(),
        "prompt": l.prepared.text,
        "input_ids": l.prepared.input.input_ids,
        "image_grid_thw": grids,
        "vocab_size": logits.len(),
        "logits": logits,
    }))
}

pub fn run_generate(args: &GenerateArgs) -> Result<()> {
    let l = load(&args.prompt)?;
    let eos: &[u32] = if args.ignore_eos { &[] } else { &l.checkpoint.eos_token_ids };
    let g = greedy(&l.model, &l.prepared.input, args.max_new_tokens, eos)?;
    let text = prompt::decode(&l.tokenizer, &g.token_ids)?;
    if args.json {
        let decode_tps = if g.decode_secs > 0.0 { (g.token_ids.len().saturating_sub(1)) as f64 / g.decode_secs } else { 0.0 };
        print_json(&json!({
            "model": l.checkpoint.dir,
            "prompt_tokens": g.prompt_tokens,
            "token_ids": g.token_ids,
            "text": text,
            "stop": match g.stop { StopReason::Eos => "eos", StopReason::MaxNewTokens => "max_new_tokens" },
            "prefill_seconds": g.prefill_secs,
            "decode_tokens_per_second": decode_tps,
        }))
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}").map_err(|source| Error::Io { path: Path::new("<stdout>").to_path_buf(), source })
    }
}
