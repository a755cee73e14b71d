//! The command line: argument definitions and the subcommands that do not need a terminal UI.
//!
//! The flags of a guided session are declared once, in groups that every subcommand flattens:
//! [`TrioArgs`] (the models), [`DecodingArgs`] (α, budget, sampling, stops, placement),
//! [`GuidedArgs`] (both, with the suffix) and [`InputArgs`] (question and image).
//! [`DecodingArgs::overrides`] turns them into the command line's part of the settings, the one
//! place that does; the rest (config file, preset, defaults) is [`crate::config::resolve`]'s,
//! and the session itself is set up by [`crate::plan`].
//!
//! `logits` and `generate` have a stable contract that outside checks rely on: each prints
//! exactly one JSON object on stdout (with `--json` for `generate`), and every error is one line
//! on stderr with exit status 2.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::DType;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::{Overrides, PlacementOverrides, Setting};
use crate::engine::StreamKind;
use crate::error::{Error, Result};
use crate::generate::{greedy, StopReason};
use crate::loader::Checkpoint;
use crate::models::{QuantFormat, Quantization};
use crate::placement::{parse_dtype, DeviceSpec};
use crate::plan::{Inputs, SessionRequest};
use crate::prepare::prepare_prompt;
use crate::processor::{prompt, SourceImage};
use crate::trio::PerModel;

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
    Tui(TuiArgs),
    /// The terminal UI on built-in tiny models trained on a synthetic counting task.
    Demo(DemoArgs),
    /// Read a trace back in the terminal UI, without any model.
    Replay(ReplayArgs),
    /// List the presets (named trios) with their models, α, suffix and memory.
    Presets(crate::presets::PresetsArgs),
    /// Print the effective settings and where each came from (config file, command line, preset).
    Config(ConfigArgs),
    /// Grade one response against the truth as the paper's evaluation does (one JSON object).
    Grade(GradeArgs),
    /// Run a dataset: base, RFT and guided (at each α) per question, graded; resumable.
    Eval(EvalArgs),
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
    /// Quantize the text decoders' linear layers while loading: none, q8_0, q6_k or q4_k, for
    /// every model without its own --*-quant [default: none].
    #[arg(long, value_name = "FORMAT", value_parser = QuantFormat::parse)]
    pub quant: Option<QuantFormat>,
    /// The base model's quantization, overriding --quant.
    #[arg(long, value_name = "FORMAT", value_parser = QuantFormat::parse)]
    pub base_quant: Option<QuantFormat>,
    /// The RFT model's quantization, overriding --quant.
    #[arg(long, value_name = "FORMAT", value_parser = QuantFormat::parse)]
    pub rft_quant: Option<QuantFormat>,
    /// The small base model's quantization, overriding --quant.
    #[arg(long, value_name = "FORMAT", value_parser = QuantFormat::parse)]
    pub small_quant: Option<QuantFormat>,
    /// Quantize every model's output head too (none, q8_0, q6_k, q4_k) [default: none]. Faster
    /// decoding on the CPU, where the head is up to half of what a token reads, at some cost in
    /// accuracy: guidance subtracts logits, so the head's error lands in the mix (README).
    #[arg(long, value_name = "FORMAT", value_parser = QuantFormat::parse)]
    pub quant_head: Option<QuantFormat>,
}

impl PlacementArgs {
    pub fn overrides(&self) -> PlacementOverrides {
        PlacementOverrides {
            dtype: self.dtype,
            device: self.device,
            quant: self.quant,
            dtypes: PerModel::new(self.base_dtype, self.rft_dtype, self.small_dtype),
            devices: PerModel::new(self.base_device, self.rft_device, self.small_device),
            quants: PerModel::new(self.base_quant, self.rft_quant, self.small_quant),
            quant_head: self.quant_head,
        }
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

impl TrioArgs {
    pub fn models(&self) -> PerModel<Option<String>> {
        PerModel::new(self.base.clone(), self.rft.clone(), self.small.clone())
    }
}

fn parse_preset(s: &str) -> std::result::Result<String, String> {
    crate::presets::find(s).map(|p| p.name.to_string()).map_err(|e| e.to_string())
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
    /// Quantize the text decoder's linear layers while loading: none, q8_0, q6_k or q4_k.
    #[arg(long, default_value = "none", value_name = "FORMAT", value_parser = QuantFormat::parse)]
    pub quant: QuantFormat,
    /// Quantize the output head too: none, q8_0, q6_k or q4_k.
    #[arg(long, default_value = "none", value_name = "FORMAT", value_parser = QuantFormat::parse)]
    pub quant_head: QuantFormat,
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
    model: std::sync::Arc<dyn crate::models::Decoder>,
    prepared: crate::prepare::PreparedPrompt,
}

fn load(args: &PromptArgs, new_tokens: usize) -> Result<Loaded> {
    // Cheap checks first, so that bad input fails before any weights are read.
    let device = args.device.open()?;
    for (flag, format) in [("--quant", args.quant), ("--quant-head", args.quant_head)] {
        crate::models::linear::probe(format, args.dtype, &device).map_err(|e| {
            Error::invalid(format!(
                "{flag} {format}: {} cannot run these quantized weights with {} activations ({}); try {flag} q8_0, {flag} none, or another --device",
                args.device,
                crate::placement::dtype_name(args.dtype),
                crate::error::first_line(&e)
            ))
        })?;
    }
    let quant = Quantization { format: args.quant, head: args.quant_head, vocab_dtype: None };
    let checkpoint = Checkpoint::open(&crate::hub::resolve(&args.model, "--model")?)?;
    let tokenizer = prompt::load_tokenizer(&checkpoint.tokenizer_file)?;
    let image = args.image.as_deref().map(SourceImage::open).transpose()?;
    let prepared = prepare_prompt(&checkpoint, &tokenizer, &args.prompt, image.as_ref(), args.raw, &device)?;
    let prompt_tokens = prepared.input.input_ids.len();
    crate::prepare::check_context(&checkpoint, "the model", prompt_tokens, new_tokens, "--max-new-tokens")?;
    for note in crate::preflight::check_one(&checkpoint, args.device, &device, args.dtype, quant, prompt_tokens as u64, new_tokens as u64)? {
        eprintln!("{note}");
    }
    for note in checkpoint.quant_notes("--model", args.quant)? {
        eprintln!("{note}");
    }
    let model = checkpoint.load_decoder_quantized(args.dtype, &device, quant)?;
    Ok(Loaded { checkpoint, tokenizer, model, prepared })
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let stdout = || Path::new("<stdout>").to_path_buf();
    serde_json::to_writer(&mut out, value).map_err(|e| Error::Write { path: stdout(), source: e.into() })?;
    writeln!(out).and_then(|_| out.flush()).map_err(|source| Error::Write { path: stdout(), source })
}

pub fn run_logits(args: &LogitsArgs) -> Result<()> {
    let l = load(&args.prompt, 0)?;
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
    let l = load(&args.prompt, args.max_new_tokens)?;
    let eos: &[u32] = if args.ignore_eos { &[] } else { &l.checkpoint.eos_token_ids };
    let g = greedy(&*l.model, &l.prepared.input, args.max_new_tokens, eos)?;
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
        writeln!(out, "{text}").and_then(|_| out.flush()).map_err(|source| Error::Write { path: Path::new("<stdout>").to_path_buf(), source })
    }
}

/// The question and the picture of a session.
#[derive(Debug, Clone, Default, Args)]
pub struct InputArgs {
    /// Image to ask about (PNG, JPEG, WebP, GIF, BMP, TIFF).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// The question, one user turn (required by `run`; `bench` and the UI have a default, and
    /// `e` edits it in the UI).
    #[arg(long, value_name = "TEXT")]
    pub question: Option<String>,
}

impl InputArgs {
    /// The inputs, with `default` for a question not given; the image is decoded here, once.
    pub fn inputs_or(&self, default: &str) -> Result<Inputs> {
        let image = self.image.as_deref().map(SourceImage::open).transpose()?;
        Ok(Inputs { question: self.question.clone().unwrap_or_else(|| default.to_string()), image })
    }
}

/// How the streams are decoded and where the models run (shared by `run`, `bench`, `config`,
/// the UI and `demo`).
#[derive(Debug, Clone, Default, Args)]
pub struct DecodingArgs {
    /// Guidance strength α (`[` `]` `{` `}` change it live in the UI) [default: the preset's, the
    /// config file's, or 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// The most new tokens per stream [default: the config file's, or 512].
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Where the models run: --device/--dtype for all, or --base-device, --rft-dtype, ...
    #[command(flatten)]
    pub placement: PlacementArgs,
}

impl DecodingArgs {
    /// The command line's part of the settings of a subcommand without models (`demo`); see
    /// [`GuidedArgs::overrides`] for the others.
    pub fn overrides(&self) -> Overrides {
        let s = &self.sampling;
        Overrides {
            with_models: false,
            alpha: self.alpha,
            greedy: s.greedy,
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            seed: s.seed,
            stop: (!s.stop.is_empty()).then(|| s.stop.clone()),
            ignore_eos: s.ignore_eos.then_some(true),
            max_new_tokens: self.max_new_tokens,
            placement: self.placement.overrides(),
            ..Overrides::default()
        }
    }
}

/// The flags the settings of a guided session are resolved from, together with the config
/// file and presets (shared by `run`, `bench`, `config` and the UI, so `config` shows what they
/// would use).
#[derive(Debug, Clone, Default, Args)]
pub struct GuidedArgs {
    #[command(flatten)]
    pub models: TrioArgs,
    /// Appended to the question before the chat template: boxed, rethink, none, or any text
    /// [default: the preset's, the config file's, or none].
    #[arg(long, value_name = "boxed|rethink|rethink72b|answer|r1onevision|thinklite|none|TEXT")]
    pub suffix: Option<String>,
    /// Each model renders the question with its own chat template (a Thinking model's opens
    /// its reasoning), so the three prompts may differ in length [default: the config file's
    /// `own_templates`, or false: the base model's template for all three, as in the paper].
    #[arg(long)]
    pub own_templates: bool,
    #[command(flatten)]
    pub decoding: DecodingArgs,
}

impl GuidedArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            with_models: true,
            preset: self.models.preset.clone(),
            models: self.models.models(),
            suffix: self.suffix.clone(),
            own_templates: self.own_templates.then_some(true),
            ..self.decoding.overrides()
        }
    }
}

/// How the streams are decoded and when they stop.
#[derive(Debug, Clone, Default, Args)]
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
    /// Stop a stream when its text contains this string (repeatable) [default: the config
    /// file's `stop`, or none].
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Keep decoding past the end-of-sequence tokens [default: the config file's `ignore_eos`,
    /// or false].
    #[arg(long)]
    pub ignore_eos: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[arg(long)]
    pub json: bool,
    /// Write every record as JSON Lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    #[command(flatten)]
    pub guided: GuidedArgs,
}

/// Opens `path` for a trace now, so that an unwritable place fails before any decoding.
fn open_trace(path: Option<&Path>) -> Result<Option<crate::trace::TraceWriter>> {
    path.map(crate::trace::TraceWriter::create).transpose()
}

pub fn run_guided(args: &RunArgs) -> Result<()> {
    let settings = crate::config::resolve(&args.guided.overrides())?;
    let inputs = args.input.inputs_or("")?;
    let request = SessionRequest::new(settings, &inputs.question)?;
    let trace = open_trace(args.trace.as_deref())?;
    let dirs = request.settings().resolve_models()?;
    let plan = request.prepare(dirs, inputs.clone())?;
    // Every check has passed: notes now, so that an error stays one line.
    for note in &plan.notes {
        eprintln!("{note}");
    }
    let prompt = plan.prompt(&inputs)?;
    let alpha = plan.decoding.alpha;
    let started = std::time::Instant::now();
    let mut session = plan.session(&prompt, alpha)?;
    let records = session.run_to_end()?;
    let secs = started.elapsed().as_secs_f64();
    // The streams first: a trace that cannot be written must not throw the decoded text away.
    let printed = print_streams(args, &plan, &session, &prompt, alpha, secs);
    let written = match trace {
        Some(trace) => trace.finish(&plan.trace_header("proxythinker run", &inputs, &prompt, alpha), &records),
        None => Ok(()),
    };
    printed.and(written)
}

fn print_streams(
    args: &RunArgs,
    plan: &crate::plan::SessionPlan,
    session: &crate::engine::Session,
    prompt: &crate::prepare::PreparedPrompt,
    alpha: f32,
    secs: f64,
) -> Result<()> {
    let stream = |kind: StreamKind| -> Result<serde_json::Value> {
        Ok(json!({
            "token_ids": session.tokens(kind),
            "text": session.text(kind)?,
            "stop": session.stop(kind),
        }))
    };
    if args.json {
        print_json(&json!({
            "alpha": alpha,
            "preset": plan.settings.preset.as_ref().map(|p| p.value),
            "placement": plan.placement().to_json(),
            "shared_vocab": session.shared_vocab(),
            "prompt": prompt.text,
            "prompt_tokens": prompt.input.input_ids.len(),
            "own_templates": plan.settings.own_templates.value,
            "prompt_tokens_by_model": crate::plan::prompt_lengths(prompt),
            "seconds": secs,
            "base": stream(StreamKind::Base)?,
            "rft": stream(StreamKind::Rft)?,
            "guided": stream(StreamKind::Guided)?,
        }))
    } else {
        let mut out = std::io::stdout().lock();
        let io = |source| Error::Write { path: Path::new("<stdout>").to_path_buf(), source };
        for (title, kind) in [("base", StreamKind::Base), ("rft", StreamKind::Rft), ("guided", StreamKind::Guided)] {
            let label = if kind == StreamKind::Guided { format!("{title} (alpha = {alpha:.2})") } else { title.to_string() };
            writeln!(out, "=== {label} ===").map_err(io)?;
            // Model text may hold escape sequences: printed as the UI shows them, never raw.
            writeln!(out, "{}", crate::printable::terminal_text(&session.text(kind)?)).map_err(io)?;
            if let Some(crate::engine::Stop::Error(e)) = session.stop(kind) {
                writeln!(out, "[stopped: {e}]").map_err(io)?;
            }
        }
        out.flush().map_err(io)
    }
}

/// The question `bench` asks when none is given.
pub const BENCH_QUESTION: &str = "Describe the picture, then count the circles in it.";

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Decoding steps per timed run (every run ignores eos and stop strings, so it takes exactly
    /// this many; --max-new-tokens does not apply).
    #[arg(long, default_value_t = 64)]
    pub steps: usize,
    /// Also time the session's five rows as five separate forwards per step.
    #[arg(long)]
    pub unbatched: bool,
    #[command(flatten)]
    pub guided: GuidedArgs,
}

pub fn run_bench(args: &BenchArgs) -> Result<()> {
    if args.steps == 0 {
        return Err(Error::invalid("--steps must be at least 1"));
    }
    if args.guided.decoding.max_new_tokens.is_some() {
        return Err(Error::invalid("bench decodes exactly --steps tokens: give --steps N instead of --max-new-tokens"));
    }
    if args.guided.own_templates {
        return Err(Error::invalid("bench times the paper's setting, one prompt for all three models: drop --own-templates"));
    }
    let mut settings = crate::config::resolve(&args.guided.overrides())?;
    // The same for a config file's `own_templates`: bench prepares one prompt.
    settings.own_templates = Setting { value: false, from: crate::config::Source::CommandLine };
    // Every timed run takes exactly --steps steps (checked like every setting above, then replaced).
    let from = crate::config::Source::CommandLine;
    settings.max_new_tokens = Setting { value: args.steps, from: from.clone() };
    settings.stop = Setting { value: Vec::new(), from: from.clone() };
    settings.ignore_eos = Setting { value: true, from };
    let inputs = args.input.inputs_or(BENCH_QUESTION)?;
    let request = SessionRequest::new(settings, &inputs.question)?;
    let dirs = request.settings().resolve_models()?;
    let plan = request.prepare(dirs, inputs.clone())?;
    for note in &plan.notes {
        eprintln!("{note}");
    }
    let prompt = plan.prompt(&inputs)?;
    let report = crate::bench::run(&plan, &prompt.input, args.unbatched)?;
    print_json(&serde_json::to_value(&report).map_err(|e| Error::invalid(format!("cannot encode the report: {e}")))?)
}

/// `proxythinker config`: the effective settings and where each came from.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub guided: GuidedArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run_config(args: &ConfigArgs) -> Result<()> {
    let settings = crate::config::resolve(&args.guided.overrides())?;
    let mut out = std::io::stdout().lock();
    let io = |source| Error::Io { path: "<stdout>".into(), source };
    if args.json {
        writeln!(out, "{}", settings.to_json()).map_err(io)
    } else {
        writeln!(out, "{}", settings.table()).map_err(io)
    }
}

/// `proxythinker [tui] --base DIR --rft DIR --small DIR ...`
#[derive(Debug, Clone, Args)]
pub struct TuiArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The correct answer: each stream's final answer is marked ✓ or ✗ against it (graded as
    /// `eval` grades).
    #[arg(long, value_name = "TEXT")]
    pub answer: Option<String>,
    #[command(flatten)]
    pub guided: GuidedArgs,
}

/// `proxythinker demo`: the UI on the built-in tiny trained checkpoints (`--image` replaces the
/// built-in picture; the default question is the demo's sample question).
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The correct answer: each stream's final answer is marked ✓ or ✗ against it (graded as
    /// `eval` grades).
    #[arg(long, value_name = "TEXT")]
    pub answer: Option<String>,
    #[command(flatten)]
    pub decoding: DecodingArgs,
}

/// `proxythinker replay FILE`: a trace read back, no models loaded.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A trace written by `run --trace` or by `x` in the UI.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The correct answer: each stream's final answer is marked ✓ or ✗ against it (graded as
    /// `eval` grades).
    #[arg(long, value_name = "TEXT")]
    pub answer: Option<String>,
}

/// Puts `tui` in front of the arguments when the first one is a flag other than help or version,
/// so that `proxythinker --base .. --rft .. --small ..` starts the UI.
pub fn with_default_subcommand(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let first = args.get(1).and_then(|a| a.to_str()).map(str::to_owned);
    if let Some(first) = first {
        let asks_about_the_program = matches!(first.as_str(), "-h" | "--help" | "-V" | "--version");
        if first.starts_with('-') && !asks_about_the_program {
            args.insert(1, OsString::from("tui"));
        }
    }
    args
}

/// `proxythinker grade --answer TRUTH [--choice TEXT]... --response TEXT`
#[derive(Debug, Args)]
pub struct GradeArgs {
    /// The correct answer (an option's text or its letter for multiple choice).
    #[arg(long, value_name = "TRUTH")]
    pub answer: String,
    /// The options of a multiple-choice question, in order (A, B, C, ...).
    #[arg(long = "choice", value_name = "TEXT")]
    pub choices: Vec<String>,
    /// The model's whole response.
    #[arg(long, value_name = "TEXT")]
    pub response: String,
}

/// Prints `{"extracted": ..., "correct": ...}`; a wrong answer is no error (exit status 0).
pub fn run_grade(args: &GradeArgs) -> Result<()> {
    let g = crate::eval::grade::grade(&args.answer, &args.choices, &args.response);
    print_json(&json!({"extracted": g.extracted, "correct": g.correct}))
}

/// `proxythinker eval (--preset P | --base .. --rft .. --small ..) --data FILE --out DIR`
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The dataset: a JSON Lines file, one question per line (`id`, `question`, `answer`,
    /// optional `image` and `choices`; other fields are kept and reported), a parquet file or
    /// directory, or a Hugging Face dataset repo (`AI4Math/MathVista`, `owner/name@revision`).
    #[arg(long, value_name = "FILE|DIR|REPO")]
    pub data: String,
    /// The split of a Hub dataset or parquet directory (`testmini`, `test`); needed when it has several.
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,
    /// The subset (configuration) of a Hub dataset whose split is in several.
    #[arg(long, value_name = "NAME")]
    pub subset: Option<String>,
    /// Where results.jsonl, summary.json and run.json go; the same command resumes there.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The α values of the sweep, comma separated [default: the preset's, the config file's, or 0.5].
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', allow_negative_numbers = true)]
    pub alphas: Vec<f32>,
    /// Only the first N questions (of the shard).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Only every N-th question from the I-th (0-based), to split a run over machines.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Record questions that cannot be run (a broken image, a line without an answer) as skipped.
    #[arg(long)]
    pub skip_bad: bool,
    /// Keep each question's trace (one per α) under DIR/traces for `replay`.
    #[arg(long)]
    pub traces: bool,
    #[command(flatten)]
    pub guided: GuidedArgs,
}

fn parse_shard(s: &str) -> std::result::Result<(usize, usize), String> {
    let bad = || format!("--shard {s}: use I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n) = (i.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The question eval checks the settings with (each dataset question is checked in turn).
const EVAL_PROBE_QUESTION: &str = "eval";

pub fn run_eval(args: &EvalArgs) -> Result<()> {
    use crate::eval::{dataset, run};
    let mut settings = crate::config::resolve(&args.guided.overrides())?;
    // The paper decodes up to 4,096 new tokens: reasoning cut at 512 loses its \boxed{}.
    if settings.max_new_tokens.from == crate::config::Source::Default {
        settings.max_new_tokens.value = EVAL_MAX_NEW_TOKENS;
    }
    // The paper's prompt asks for the answer in \boxed{}, which grading reads.
    if settings.suffix.from == crate::config::Source::Default {
        settings.suffix = Setting { value: crate::presets::Suffix::parse("boxed"), from: crate::config::Source::Default };
    }
    let alphas = if args.alphas.is_empty() { vec![settings.alpha.value] } else { args.alphas.clone() };
    if let Some(bad) = alphas.iter().find(|a| !a.is_finite()) {
        return Err(Error::invalid(format!("--alphas: {bad} is not a finite number")));
    }
    // The checks that need no files come before a dataset download.
    // The preflight counts every α's rows: they decode together.
    let session = SessionRequest::new(settings, EVAL_PROBE_QUESTION)?.sweeping(alphas.len());
    let wanted = crate::eval::source::DataRequest {
        data: args.data.clone(),
        split: args.split.clone(),
        subset: args.subset.clone(),
        skip_bad: args.skip_bad,
    };
    let data = crate::eval::source::open(&wanted, &crate::hub::HubConfig::from_env(), &mut crate::hub::TerminalProgress::new())?;
    let questions = dataset::select(data.questions.clone(), args.shard, args.limit);
    let dirs = session.settings().resolve_models()?;
    // The preflight sizes the first question's context.
    let first = questions.first().map_or_else(
        || Ok(Inputs { question: EVAL_PROBE_QUESTION.into(), image: None }),
        |q| -> Result<Inputs> {
            Ok(Inputs { question: dataset::prompt_text(q), image: q.image.as_ref().map(|i| i.open()).transpose()? })
        },
    )?;
    let plan = session.prepare(dirs, first)?;
    let opts = run::EvalOptions { alphas, out: args.out.clone(), traces: args.traces, skip_bad: args.skip_bad };
    run::claim_out(&plan, &data, &opts)?;
    // Per-question timings and warnings go to the log file; stderr has the progress bar.
    if crate::logging::init_logging(&crate::dirs::log_file()).is_some() {
        tracing::info!("eval: {} questions of {} into {}, α {:?}", questions.len(), data.path.display(), opts.out.display(), opts.alphas);
    }
    for note in &plan.notes {
        eprintln!("{note}");
    }
    let summary = run::run(&plan, &data, &questions, &opts)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", summary.table()).map_err(|source| Error::Io { path: Path::new("<stdout>").to_path_buf(), source })
}

/// `eval`'s default budget, the paper's.
pub const EVAL_MAX_NEW_TOKENS: usize = 4096;
