//! Starting decoding for the UI: the checkpoints are opened and checked up front (so bad paths
//! fail on the command line, before the terminal is taken over), the weights are loaded once, on
//! the first engine's thread, and shared by every engine after it: a restart with a new question
//! or image spawns a fresh engine over the same models.

use std::sync::{Arc, Mutex};

use crate::engine::trio::{Placement, TrioFiles};
use crate::engine::{Engine, Session, Settings, Trio};
use crate::error::{Error, Result};
use crate::guidance::Sampling;
use crate::processor::{prepare_prompt, SourceImage};

/// Everything a session needs besides its question, image and α.
#[derive(Clone)]
pub struct Launcher {
    files: Arc<TrioFiles>,
    /// The loaded weights, filled by the first engine that needs them.
    trio: Arc<Mutex<Option<Trio>>>,
    pub placement: Placement,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    pub stop_strings: Vec<String>,
    pub stop_at_eos: bool,
}

impl Launcher {
    pub fn new(files: TrioFiles, placement: Placement, sampling: Sampling, max_new_tokens: usize) -> Launcher {
        Launcher {
            files: Arc::new(files),
            trio: Arc::new(Mutex::new(None)),
            placement,
            sampling,
            max_new_tokens,
            stop_strings: Vec::new(),
            stop_at_eos: true,
        }
    }

    /// The opened (and checked) checkpoints.
    pub fn files(&self) -> &TrioFiles {
        &self.files
    }

    /// Starts an engine decoding `question` about `image` (already decoded, and shared with the
    /// UI's thumbnail) at `alpha`. Errors (weights that do not load, an image the processor
    /// refuses) arrive as `Event::Error`.
    pub fn spawn(&self, question: String, image: Option<SourceImage>, alpha: f32) -> Engine {
        let me = self.clone();
        Engine::spawn(move |current: Option<f32>| me.session(&question, image.as_ref(), current.unwrap_or(alpha)))
    }

    fn loaded(&self) -> Result<Trio> {
        // Held while loading: an engine started meanwhile waits here for the same weights.
        let mut slot = self.trio.lock().map_err(|_| Error::invalid("loading the models failed earlier (see the log)"))?;
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        tracing::info!("loading the models ({:?})", self.placement);
        let started = std::time::Instant::now();
        let trio = self.files.load_placed(&self.placement)?;
        tracing::info!("models loaded in {:.2}s", started.elapsed().as_secs_f64());
        *slot = Some(trio.clone());
        Ok(trio)
    }

    fn session(&self, question: &str, image: Option<&SourceImage>, alpha: f32) -> Result<Session> {
        let trio = self.loaded()?;
        let (base, tokenizer) = &self.files.base;
        // One processor, the base model's, prepares the inputs of all three models.
        let prepared = prepare_prompt(base, tokenizer, question, image, false, &self.placement.base.1)?;
        let settings = Settings {
            alpha,
            sampling: self.sampling,
            max_new_tokens: self.max_new_tokens,
            stop_strings: self.stop_strings.clone(),
            stop_at_eos: self.stop_at_eos,
        };
        tracing::info!("session: {} prompt tokens, α={alpha}", prepared.input.input_ids.len());
        Session::new(trio, tokenizer.clone(), prepared.input, settings, base.eos_token_ids.clone())
    }
}
