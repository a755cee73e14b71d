//! The command-line arguments of the UI subcommands: `tui` (the default when the first argument
//! is a flag), `demo` and `replay`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::{PlacementArgs, SamplingArgs, TrioArgs};
use crate::guidance::Sampling;

/// How the streams are decoded (the sampling flags of `run`).
#[derive(Debug, Clone, Args)]
pub struct DecodingArgs {
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// The most new tokens per stream.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_new_tokens: usize,
    /// Where the models run: --device/--dtype for all, or --base-device, --rft-dtype, ...
    #[command(flatten)]
    pub placement: PlacementArgs,
}

impl DecodingArgs {
    pub fn sampling(&self) -> Sampling {
        self.sampling.sampling()
    }
}

/// `proxythinker [tui] --base DIR --rft DIR --small DIR ...`
#[derive(Debug, Clone, Args)]
pub struct TuiArgs {
    #[command(flatten)]
    pub models: TrioArgs,
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
