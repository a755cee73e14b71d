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
use crate::processor::{prepare_prompt, prompt, SourceImage};

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
    /// Guided decoding without a UI: base alone, RFT alone and guided, in lockstep.
    Run(RunArgs),
    /// Decoding speed of a trio on this machine (prefill, guided alone, the full session).
    Bench(BenchArgs),
    /// The terminal UI (the default when the first argument is a flag): three streams, live α.
    Tui(crate::tui::TuiArgs),
    /// The terminal UI on built-in tiny checkpoints with synthetic random weights.
    Demo(crate::tui::DemoArgs),
    /// Read a trace back in the terminal UI, without any model.
    Replay(crate::tui::ReplayArgs),
    /// List the presets (named trios) with their models, α, suffix and memory.
    Presets(crate::presets::PresetsArgs),
    /// Print the effective settings and where each came from (config file, command line, preset).
    Config(crate::config::ConfigArgs),
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        self.open_for("--device")
    }

    /// Opens the device named by the command-line flag `flag` (used in error messages).
    pub fn open_for(self, flag: &str) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::invalid(format!(
                        "{flag} cuda:{n}: this build has no CUDA support; rebuild with `cargo build --release --features cuda` (see the README's GPU section) or use {flag} cpu"
                    )));
                }
                Device::new_cuda(n).map_err(|e| {
                    Error::invalid(format!("{flag} cuda:{n}: cannot open the GPU: {}", crate::loader::first_line(&e)))
                })
            }
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The name of a dtype as the command line spells it.
pub fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        _ => "other",
    }
}

/// Where the three models of a trio run: one device and dtype for all, or one per model. Flags
/// not given fall back to the config file, then to f32 on the cpu (see [`crate::config`]).
#[derive(Debug, Clone, Default, Args)]
pub struct PlacementArgs {
    /// f32, f16 or bf16, for every model without its own --*-dtype [default: f32].
    #[arg(long, value_parser = parse_dtype)]
    pub dtype: Option<DType>,
    /// cpu, or cuda:N in a build with the `cuda` feature, for every model without its own --*-device [default: cpu].
    #[arg(long, value_parser = DeviceSpec::parse)]
    pub device: Option<DeviceSpec>,
    /// The base model's device (e.g. cuda:0), overriding --device.
    #[arg(long, value_name = "DEVICE", value_parser = DeviceSpec::parse)]
    pub base_device: Option<DeviceSpec>,
    /// The RFT model's device, overriding --device.
    #[arg(long, value_name = "DEVICE", value_parser = DeviceSpec::parse)]
    pub rft_device: Option<DeviceSpec>,
    /// The small base model's device, overriding --device.
    #[arg(long, value_name = "DEVICE", value_parser = DeviceSpec::parse)]
    pub small_device: Option<DeviceSpec>,
    /// The base model's dtype, overriding --dtype.
    #[arg(long, value_name = "DTYPE", value_parser = parse_dtype)]
    pub base_dtype: Option<DType>,
    /// The RFT model's dtype, overriding --dtype.
    #[arg(long, value_name = "DTYPE", value_parser = parse_dtype)]
    pub rft_dtype: Option<DType>,
    /// The small base model's dtype, overriding --dtype.
    #[arg(long, value_name = "DTYPE", value_parser = parse_dtype)]
    pub small_dtype: Option<DType>,
}

/// One model's resolved dtype and device, with where each came from.
#[derive(Debug, Clone)]
pub struct ModelPlacement {
    pub dtype: crate::config::Setting<DType>,
    pub device: crate::config::Setting<DeviceSpec>,
    /// What named the device, for error messages ("--small-device", "device in /path/config.toml").
    pub device_flag: String,
}

/// The resolved placement of base, rft and small.
#[derive(Debug, Clone)]
pub struct TrioPlacement {
    pub models: [ModelPlacement; 3],
}

impl TrioPlacement {
    /// f32 on the cpu for all three (the defaults).
    pub fn cpu() -> TrioPlacement {
        crate::config::resolve_with(
            crate::config::Overrides {
                trio: None,
                alpha: None,
                suffix: None,
                sampling: None,
                max_new_tokens: None,
                placement: &PlacementArgs::default(),
            },
            crate::config::Loaded::default(),
        )
        .map(|s| s.placement)
        .expect("the defaults resolve")
    }

    /// (dtype, device) of base, rft and small.
    pub fn specs(&self) -> [(DType, DeviceSpec); 3] {
        self.models.clone().map(|m| (m.dtype.value, m.device.value))
    }

    /// Opens the devices, each one once, so that models on the same GPU share it.
    pub fn open(&self) -> Result<crate::engine::trio::Placement> {
        let mut opened: Vec<(DeviceSpec, Device)> = Vec::new();
        let mut place = |m: &ModelPlacement| -> Result<(DType, Device)> {
            let spec = m.device.value;
            if let Some((_, d)) = opened.iter().find(|(s, _)| *s == spec) {
                return Ok((m.dtype.value, d.clone()));
            }
            let d = spec.open_for(&m.device_flag)?;
            opened.push((spec, d.clone()));
            Ok((m.dtype.value, d))
        };
        let [b, r, s] = &self.models;
        Ok(crate::engine::trio::Placement { base: place(b)?, rft: place(r)?, small: place(s)? })
    }

    /// The devices for a header: "cuda:0", or "base cuda:0, rft cuda:1, small cuda:1".
    pub fn device_summary(&self) -> String {
        let [b, r, s] = self.specs().map(|(_, spec)| spec.to_string());
        if b == r && r == s {
            b
        } else {
            format!("base {b}, rft {r}, small {s}")
        }
    }

    /// The dtypes for a header: "bf16", or each model's when they differ.
    pub fn dtype_summary(&self) -> String {
        let [b, r, s] = self.specs().map(|(d, _)| dtype_name(d));
        if b == r && r == s {
            b.to_string()
        } else {
            format!("base {b}, rft {r}, small {s}")
        }
    }

    /// A short description for headers and reports: "cpu f32", or each model's when they differ.
    pub fn describe(&self) -> String {
        let [b, r, s] = self.specs();
        let one = |(d, spec): (DType, DeviceSpec)| format!("{spec} {}", dtype_name(d));
        if b == r && r == s {
            one(b)
        } else {
            format!("base {}, rft {}, small {}", one(b), one(r), one(s))
        }
    }

    /// The placement as JSON: {"base": {"device", "dtype"}, "rft": ..., "small": ...}.
    pub fn to_json(&self) -> serde_json::Value {
        let [b, r, s] = self.specs();
        let one = |(d, spec): (DType, DeviceSpec)| json!({"device": spec.to_string(), "dtype": dtype_name(d)});
        json!({"base": one(b), "rft": one(r), "small": one(s)})
    }
}

/// The three models of a session, each a checkpoint directory or a Hugging Face repo id, or a
/// preset naming all three.
#[derive(Debug, Clone, Default, Args)]
pub struct TrioArgs {
    /// A named trio with its α and prompt suffix (`proxythinker presets` lists them); --base,
    /// --rft, --small, --alpha and --suffix override its values.
    #[arg(long, value_name = "NAME", value_parser = parse_preset)]
    pub preset: Option<String>,
    /// The large base model: a checkpoint directory or a Hub repo id (owner/name[@revision]).
    #[arg(long, value_name = "DIR|REPO")]
    pub base: Option<String>,
    /// The small reinforcement-fine-tuned reasoner (directory or repo id).
    #[arg(long, value_name = "DIR|REPO")]
    pub rft: Option<String>,
    /// The RFT model's own untuned base (directory or repo id).
    #[arg(long, value_name = "DIR|REPO")]
    pub small: Option<String>,
}

fn parse_preset(s: &str) -> std::result::Result<String, String> {
    crate::presets::find(s).map(|p| p.name.to_string()).map_err(|e| e.to_string())
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
    /// Checkpoint directory in the Hugging Face Hub layout, or a Hub repo id (owner/name[@revision]).
    #[arg(long, value_name = "DIR|REPO")]
    pub model: String,
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
    let checkpoint = Checkpoint::open(&crate::hub::resolve(&args.model, "--model")?)?;
    let tokenizer = prompt::load_tokenizer(&checkpoint.tokenizer_file)?;
    let image = args.image.as_deref().map(SourceImage::open).transpose()?;
    let prepared = prepare_prompt(&checkpoint, &tokenizer, &args.prompt, image.as_ref(), args.raw, &device)?;
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

#[derive(Debug, Args)]
pub struct RunArgs {
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    #[arg(long, value_name = "TEXT")]
    pub question: String,
    #[arg(long)]
    pub json: bool,
    /// Write every record as JSON Lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    #[command(flatten)]
    pub guided: GuidedArgs,
}

/// The flags the settings of a guided session are resolved from, together with the config
/// file and presets (shared by `run` and `config`, so `config` shows what `run` would use).
#[derive(Debug, Clone, Args)]
pub struct GuidedArgs {
    #[command(flatten)]
    pub models: TrioArgs,
    /// Guidance strength α [default: the preset's, the config file's, or 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Appended to the question before the chat template: boxed, rethink, none, or any text
    /// [default: the preset's, the config file's, or none].
    #[arg(long, value_name = "boxed|rethink|none|TEXT")]
    pub suffix: Option<String>,
    /// The most new tokens per stream [default: the config file's, or 512].
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    #[command(flatten)]
    pub decoding: SamplingArgs,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

impl GuidedArgs {
    pub fn overrides(&self) -> crate::config::Overrides<'_> {
        crate::config::Overrides {
            trio: Some(&self.models),
            alpha: self.alpha,
            suffix: self.suffix.as_deref(),
            sampling: Some(&self.decoding),
            max_new_tokens: self.max_new_tokens,
            placement: &self.placement,
        }
    }
}

/// How the streams are decoded and when they stop (shared by `run` and the UI).
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Greedy decoding (the default, as in the paper).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p", "seed"])]
    pub greedy: bool,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep only the K most probable tokens when sampling (0 = all) [default: 0].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches P when sampling [default: 1].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Seed of the sampler (the same seed gives the same streams) [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop a stream when its text contains this string (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Keep decoding past the end-of-sequence tokens.
    #[arg(long)]
    pub ignore_eos: bool,
}

pub fn run_guided(args: &RunArgs) -> Result<()> {
    use crate::engine::{trio::TrioFiles, Session, Settings, StreamKind};
    let resolved = crate::config::resolve(args.guided.overrides())?;
    let sampling = resolved.sampling();
    sampling.validate().map_err(Error::invalid)?;
    if args.question.trim().is_empty() {
        return Err(Error::invalid("the question is empty: pass one with --question"));
    }
    let max_new_tokens = resolved.max_new_tokens.value;
    if max_new_tokens == 0 {
        return Err(Error::invalid("--max-new-tokens must be at least 1"));
    }
    let placement = resolved.placement.open()?;
    let trace = args.trace.as_deref().map(crate::trace::TraceWriter::create).transpose()?;
    let [base, rft, small] = resolved.resolve_models()?;
    let files = TrioFiles::open(&base, &rft, &small)?;
    // One processor, the base model's, prepares the inputs of all three models (as in the paper).
    let (base_ckpt, tokenizer) = &files.base;
    let question = resolved.question(&args.question);
    let image = args.image.as_deref().map(SourceImage::open).transpose()?;
    let prepared = prepare_prompt(base_ckpt, tokenizer, &question, image.as_ref(), false, &placement.base.1)?;
    let prompt_tokens = prepared.input.input_ids.len() as u64;
    let notes = crate::preflight::check(
        &files,
        &resolved.placement,
        &placement,
        prompt_tokens + max_new_tokens as u64,
        max_new_tokens as u64,
    )?;
    // Every check has passed: notes now, so that an error stays one line.
    for note in notes.iter().chain(crate::preflight::vocab_note(&files).as_ref()) {
        eprintln!("{note}");
    }
    let trio = files.load_placed(&placement)?;
    let settings = Settings {
        alpha: resolved.alpha.value,
        sampling,
        max_new_tokens,
        stop_strings: args.guided.decoding.stop.clone(),
        stop_at_eos: !args.guided.decoding.ignore_eos,
    };
    let started = std::time::Instant::now();
    let mut session =
        Session::new(trio, tokenizer.clone(), prepared.input.clone(), settings.clone(), base_ckpt.eos_token_ids.clone())?;
    let records = session.run_to_end()?;
    let secs = started.elapsed().as_secs_f64();
    if let Some(trace) = trace {
        let header = json!({
            "models": {"base": base, "rft": rft, "small": small},
            "preset": resolved.preset.as_ref().map(|p| p.value),
            "placement": resolved.placement.to_json(),
            "alpha": settings.alpha,
            "sampling": settings.sampling,
            "max_new_tokens": settings.max_new_tokens,
            "stop_strings": settings.stop_strings,
            "stop_at_eos": settings.stop_at_eos,
            "question": args.question,
            "suffix": resolved.suffix.value.text(),
            "image": args.image,
            "prompt": prepared.text,
            "input_ids": prepared.input.input_ids,
            "shared_vocab": session.shared_vocab(),
        });
        trace.finish(&header, &records)?;
    }
    let stream = |kind: StreamKind| -> Result<serde_json::Value> {
        Ok(json!({
            "token_ids": session.tokens(kind),
            "text": session.text(kind)?,
            "stop": session.stop(kind),
        }))
    };
    if args.json {
        print_json(&json!({
            "alpha": settings.alpha,
            "preset": resolved.preset.as_ref().map(|p| p.value),
            "placement": resolved.placement.to_json(),
            "shared_vocab": session.shared_vocab(),
            "prompt": prepared.text,
            "prompt_tokens": prepared.input.input_ids.len(),
            "seconds": secs,
            "base": stream(StreamKind::Base)?,
            "rft": stream(StreamKind::Rft)?,
            "guided": stream(StreamKind::Guided)?,
        }))
    } else {
        let mut out = std::io::stdout().lock();
        let io = |source| Error::Io { path: Path::new("<stdout>").to_path_buf(), source };
        for (title, kind) in [("base", StreamKind::Base), ("rft", StreamKind::Rft), ("guided", StreamKind::Guided)] {
            let label = if kind == StreamKind::Guided { format!("{title} (alpha = {:.2})", settings.alpha) } else { title.to_string() };
            writeln!(out, "=== {label} ===").map_err(io)?;
            writeln!(out, "{}", session.text(kind)?).map_err(io)?;
            if let Some(crate::engine::Stop::Error(e)) = session.stop(kind) {
                writeln!(out, "[stopped: {e}]").map_err(io)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub models: TrioArgs,
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    #[arg(long, value_name = "TEXT", default_value = "Describe the picture, then count the circles in it.")]
    pub question: String,
    /// Guidance strength α [default: the preset's, the config file's, or 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Decoding steps per timed run.
    #[arg(long, default_value_t = 64)]
    pub steps: usize,
    /// Also time the session's five rows as five separate forwards per step.
    #[arg(long)]
    pub unbatched: bool,
    #[command(flatten)]
    pub placement: PlacementArgs,
}

pub fn run_bench(args: &BenchArgs) -> Result<()> {
    use crate::engine::trio::TrioFiles;
    if args.steps == 0 {
        return Err(Error::invalid("--steps must be at least 1"));
    }
    let resolved = crate::config::resolve(crate::config::Overrides {
        trio: Some(&args.models),
        alpha: args.alpha,
        suffix: None,
        sampling: None,
        max_new_tokens: None,
        placement: &args.placement,
    })?;
    let placement = resolved.placement.open()?;
    let [base, rft, small] = resolved.resolve_models()?;
    let files = TrioFiles::open(&base, &rft, &small)?;
    let image = args.image.as_deref().map(SourceImage::open).transpose()?;
    let prepared = prepare_prompt(&files.base.0, &files.base.1, &args.question, image.as_ref(), false, &placement.base.1)?;
    let steps = args.steps as u64;
    let notes = crate::preflight::check(&files, &resolved.placement, &placement, prepared.input.input_ids.len() as u64 + steps, steps)?;
    for note in notes {
        eprintln!("{note}");
    }
    let alpha = resolved.alpha.value;
    let mut report = crate::bench::run(&files, &prepared.input, &placement, alpha, args.steps, args.unbatched)?;
    report.placement = resolved.placement.describe();
    print_json(&serde_json::to_value(&report).map_err(|e| Error::invalid(format!("cannot encode the report: {e}")))?)
}
