//! The command-line arguments of the UI subcommands: `tui` (the default when the first argument
//! is a flag), `demo` and `replay`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use crate::cli::{PlacementArgs, SamplingArgs, TrioArgs};
use crate::config::Overrides;

/// How the streams are decoded (the sampling flags of `run`).
#[derive(Debug, Clone, Args)]
pub struct DecodingArgs {
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// The most new tokens per stream [default: the config file's, or 512].
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
    /// Where the models run: --device/--dtype for all, or --base-device, --rft-dtype, ...
    #[command(flatten)]
    pub placement: PlacementArgs,
}

impl DecodingArgs {
    /// The command line's part of the settings (see [`crate::config::resolve`]).
    pub fn overrides<'a>(&'a self, trio: Option<&'a TrioArgs>, alpha: Option<f32>, suffix: Option<&'a str>) -> Overrides<'a> {
        Overrides {
            trio,
            alpha,
            suffix,
            sampling: Some(&self.sampling),
            max_new_tokens: self.max_new_tokens,
            placement: &self.placement,
        }
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
    /// Guidance strength α (`[` `]` `{` `}` change it live) [default: the preset's, the config
    /// file's, or 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Appended to the question before the chat template: boxed, rethink, none, or any text
    /// [default: the preset's, the config file's, or none].
    #[arg(long, value_name = "boxed|rethink|none|TEXT")]
    pub suffix: Option<String>,
    #[command(flatten)]
    pub decoding: DecodingArgs,
}

/// `proxythinker demo`: the UI on built-in synthetic checkpoints.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The question (default: the demo's sample question).
    #[arg(long, value_name = "TEXT")]
    pub question: Option<String>,
    /// Guidance strength α [default: the config file's, or 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
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
