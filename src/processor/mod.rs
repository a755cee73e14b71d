//! Turning an image and a question into model inputs, exactly as transformers' Qwen2-VL processor
//! does: `source` decodes the picture (upright, once, shared with the UI), `image` prepares pixel
//! patches, `prompt` renders the chat template and expands image pads. They work from plain
//! values (a decoded picture, a processor config, a template text), so the loader can read those
//! from a checkpoint without this module knowing checkpoints; [`crate::prepare`] puts them
//! together for one checkpoint.

pub mod image;
pub mod prompt;
pub mod source;

pub use source::SourceImage;
