//! Turning an image and a question into model inputs, exactly as transformers' Qwen2-VL processor
//! does: `image` prepares pixel patches, `prompt` renders the chat template and expands image
//! pads. Both work from plain values (a processor config, a template text), so the loader can
//! read those from a checkpoint without this module knowing checkpoints; [`crate::prepare`] puts
//! them together for one checkpoint.

pub mod image;
pub mod prompt;

