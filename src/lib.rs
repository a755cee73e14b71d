//! proxythinker: ProxyThinker test-time guidance of Qwen vision-language models.
//!
//! The crate is organised as the design describes: `loader` turns a checkpoint directory into
//! checked files, `models` holds the Qwen VL families (weights only; caches are owned by callers),
//! `processor` prepares images and prompts exactly as transformers does, `generate` is the greedy
//! reference loop, and `cli` is the command-line front end.

pub mod bench;
mod checkpoint_json;
pub mod cli;
pub mod config;
pub mod cpu_threads;
pub mod dirs;
pub mod error;
pub mod engine;
pub mod eval;
pub mod generate;
pub mod guidance;
pub mod hub;
pub mod interrupt;
pub mod limits;
pub mod logging;
pub mod loader;
pub mod models;
pub mod markers;
pub mod per_model;
pub mod think;
pub mod placement;
pub mod plan;
pub mod preflight;
pub mod prepare;
pub mod presets;
pub mod printable;
pub mod processor;
pub mod trace;
pub mod trio;
pub mod tui;
pub mod weights;

pub use error::{Error, Result};
