//! The command-line arguments of the UI subcommands: `tui` (the default when the first argument
//! is a flag), `demo` and `replay`.

use std::ffi::OsString;
use std::path::PathBuf;

use candle_core::DType;
use clap::Args;

use crate::cli::{parse_dtype, DeviceSpec};
use crate::guidance::Sampling;

/// How the streams are decoded (the sampling flags of `run`).
#[derive(Debug, Clone, Args)]
pub struct DecodingArgs {
    /// Greedy decoding (the default, as in the paper).
    #[arg(long, conflicts_with_all = ["temperature", "top_k", "top_p", "seed"])]
    pub greedy: bool,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep only the K most probable tokens when sampling (0 = all).
    #[arg(long, requires = "temperature", default_value_t = 0)]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P when sampling.
    #[arg(long, requires = "temperature", default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler (the same seed gives the same streams).
    #[arg(long, requires = "temperature", default_value_t = 0)]
    pub seed: u64,
    /// The most new tokens per stream.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Stop a stream when its text contains this string (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Keep decoding past the end-of-sequence tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    /// f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// cpu, or cuda:N in a build with the `cuda` feature.
    #[arg(long, default_value = "cpu", value_parser = DeviceSpec::parse)]
    pub device: DeviceSpec,
}

impl DecodingArgs {
    pub fn sampling(&self) -> Sampling {
        match self.temperature {
            None => Sampling::Greedy,
            Some(temperature) => Sampling::Sample { temperature, top_k: self.top_k, top_p: self.top_p, seed: self.seed },
        }
    }
}

/// `proxythinker [tui] --base DIR --rft DIR --small DIR ...`
#[derive(Debug, Clone, Args)]
pub struct TuiArgs {
    /// The large base model's checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub base: PathBuf,
    /// The small reinforcement-fine-tuned reasoner's checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub rft: PathBuf,
    /// The RFT model's own untuned base.
    #[arg(long, value_name = "DIR")]
    pub small: PathBuf,
    /// Image to ask about (PNG, JPEG, WebP, GIF, BMP, TIFF).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// The question (`e` edits it in the UI).
    #[arg(long, value_name = "TEXT", default_value = "Describe the picture.")]
    pub question: String,
    /// Guidance strength α (the paper uses 0.5; `[` `]` `{` `}` change it live).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub alpha: f32,
    #[command(flatten)]
    pub decoding: DecodingArgs,
}

/// `proxythinker demo`: the UI on built-in synthetic checkpoints.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The question (default: the demo's sample question).
    #[arg(long, value_name = "TEXT")]
    pub question: Option<String>,
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub alpha: f32,
    #[command(flatten)]
    pub decoding: DecodingArgs,
}

/// `proxythinker replay FILE`: a trace read back, no models loaded.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A trace written by `run --trace` or by `x` in the UI.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
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
