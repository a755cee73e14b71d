//! The limits that keep hostile or careless input from eating the machine, in one place, each
//! with the environment variable that raises (or lowers) it. Every refusal names the variable.
//!
//! | limit | default | variable |
//! | --- | --- | --- |
//! | image file size | 256 MiB | `PROXYTHINKER_MAX_IMAGE_FILE_BYTES` |
//! | decoded image pixels (width × height) | 89,478,485 (Pillow's) | `PROXYTHINKER_MAX_IMAGE_PIXELS` |
//! | pixels after the processor's resize, and its `min_pixels` | 16,777,216 | `PROXYTHINKER_MAX_RESIZED_PIXELS` |
//! | chat template fuel (minijinja instructions) | 10,000,000 | `PROXYTHINKER_TEMPLATE_FUEL` |
//! | the prompt's text: the question, and what the chat template renders | 4 MiB | `PROXYTHINKER_MAX_PROMPT_BYTES` |
//! | one line of a trace file | 64 MiB | `PROXYTHINKER_MAX_TRACE_LINE_BYTES` |
//! | the records a replay keeps (their lines' bytes) | 512 MiB | `PROXYTHINKER_MAX_REPLAY_BYTES` |
//!
//! The context length is the model's own `max_position_embeddings` and Hub request deadlines
//! follow `HF_HUB_DOWNLOAD_TIMEOUT` (see [`crate::hub`]).

/// A limit: its value from the environment if set to a positive integer, else the default.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub var: &'static str,
    pub default: u64,
}

impl Limit {
    pub fn get(self) -> u64 {
        std::env::var(self.var)
            .ok()
            .and_then(|v| v.trim().replace('_', "").parse::<u64>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(self.default)
    }
}

pub const IMAGE_FILE_BYTES: Limit = Limit { var: "PROXYTHINKER_MAX_IMAGE_FILE_BYTES", default: 256 << 20 };
pub const IMAGE_PIXELS: Limit = Limit { var: "PROXYTHINKER_MAX_IMAGE_PIXELS", default: 89_478_485 };
pub const RESIZED_PIXELS: Limit = Limit { var: "PROXYTHINKER_MAX_RESIZED_PIXELS", default: 1 << 24 };
pub const PROMPT_BYTES: Limit = Limit { var: "PROXYTHINKER_MAX_PROMPT_BYTES", default: 4 << 20 };
pub const TEMPLATE_FUEL: Limit = Limit { var: "PROXYTHINKER_TEMPLATE_FUEL", default: 10_000_000 };
pub const TRACE_LINE_BYTES: Limit = Limit { var: "PROXYTHINKER_MAX_TRACE_LINE_BYTES", default: 64 << 20 };
pub const REPLAY_BYTES: Limit = Limit { var: "PROXYTHINKER_MAX_REPLAY_BYTES", default: 512 << 20 };
