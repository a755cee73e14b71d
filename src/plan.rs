//! The session plan: the one place that turns resolved settings and a question into a ready
//! guided session. `run`, `bench` and the terminal UI all start their sessions here, so every
//! front end validates the same way, in the same order, with the same one-line errors.
//!
//! It happens in two stages, because the models may have to be downloaded in between and each
//! front end shows downloads its own way (progress bars on stderr, or the UI's gauges):
//! 1. [`SessionRequest::new`]: what needs no files: sampling, the question, the token budget;
//!    the devices are opened (a missing GPU fails before a long download).
//! 2. [`SessionRequest::prepare`]: the checkpoints are opened and cross-checked, the first
//!    prompt prepared by the base model's processor (with `--own-templates`, each model's by its
//!    own chat template), the memory preflight run; notes are collected, not printed. The
//!    weights are not read yet.
//!
//! The [`SessionPlan`] then loads the weights once ([`SessionPlan::trio`]) and starts as many
//! sessions over them as the front end asks for (the UI restarts with new questions), and
//! describes a session for its trace ([`SessionPlan::trace_header`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::{self, TrioPlacement};
use crate::engine::{Session, Settings, Sweep};
use crate::error::{Error, Result};
use crate::placement::{dtype_name, Devices};
use crate::prepare::{prepare_prompt, PreparedPrompt};
use crate::processor::SourceImage;
use crate::trace::{ModelPlace, OwnPrompts, TraceHeader, TracePrompt};
use crate::trio::{PerModel, Trio, TrioFiles};

/// A question about an image (or about nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// The question as typed; the plan appends the suffix.
    pub question: String,
    /// The picture, decoded once (the UI draws the same decoded picture).
    pub image: Option<SourceImage>,
}

/// Stage one of a plan: settings checked, devices open, models not yet found.
pub struct SessionRequest {
    settings: config::Settings,
    devices: Devices,
    decoding: Settings,
    /// What the memory preflight counts: a session's rows unless [`sweeping`](Self::sweeping).
    memory: crate::preflight::Decoding,
}

impl SessionRequest {
    /// Checks what needs no files and opens the devices; `question` is the first question.
    pub fn new(settings: config::Settings, question: &str) -> Result<SessionRequest> {
        let sampling = settings.sampling();
        sampling.validate().map_err(|msg| {
            // Name where a bad value came from: the flag, or the config file's key.
            let from_file = |flag: &str, key: &str, from: &config::Source| match from {
                config::Source::File(p) if msg.starts_with(flag) => Some(msg.replacen(flag, &format!("{key} in {}", p.display()), 1)),
                _ => None,
            };
            Error::invalid(
                from_file("--temperature", "temperature", &settings.temperature.from)
                    .or_else(|| from_file("--top-p", "top_p", &settings.top_p.from))
                    .unwrap_or(msg.clone()),
            )
        })?;
        if question.trim().is_empty() {
            return Err(Error::invalid("the question is empty: pass one with --question"));
        }
        let max_new_tokens = settings.max_new_tokens.value;
        if max_new_tokens == 0 {
            return Err(Error::invalid("--max-new-tokens must be at least 1"));
        }
        let devices = settings.placement.open()?;
        let decoding = Settings {
            alpha: settings.alpha.value,
            sampling,
            max_new_tokens,
            stop_strings: settings.stop.value.clone(),
            stop_at_eos: !settings.ignore_eos.value,
        };
        Ok(SessionRequest { settings, devices, decoding, memory: crate::preflight::Decoding::session() })
    }

    /// The plan will run α sweeps of `alphas` values ([`SessionPlan::sweep`], as `eval` does):
    /// the memory preflight counts their KV cache rows (one more per α in every model) instead
    /// of a session's.
    pub fn sweeping(self, alphas: usize) -> SessionRequest {
        SessionRequest { memory: crate::preflight::Decoding::sweep(alphas), ..self }
    }

    pub fn settings(&self) -> &config::Settings {
        &self.settings
    }

    /// Each model as the user named it and the flag that named it (for messages), with
    /// `hub_cache` applied: what the front end resolves to directories (downloading what is
    /// missing) before [`prepare`](Self::prepare).
    pub fn references(&self) -> Result<PerModel<(String, String)>> {
        self.settings.model_references()
    }

    /// Stage two: opens and checks the checkpoints in `dirs` (what [`references`](Self::references)
    /// resolved to), prepares the first prompt and runs the memory preflight.
    pub fn prepare(self, dirs: PerModel<PathBuf>, first: Inputs) -> Result<SessionPlan> {
        let references = self.settings.references()?.map(|s| s.value);
        self.prepare_named(references, dirs, first)
    }

    /// [`prepare`](Self::prepare) for models that the settings do not name (the demo's built-in
    /// checkpoints): `references` are what traces and headers call them.
    pub fn prepare_named(self, references: PerModel<String>, dirs: PerModel<PathBuf>, first: Inputs) -> Result<SessionPlan> {
        let files = TrioFiles::open(dirs.as_ref().map(PathBuf::as_path))?;
        let plan = SessionPlan {
            settings: self.settings,
            references,
            dirs,
            files,
            devices: self.devices,
            decoding: self.decoding,
            notes: Vec::new(),
            first: None,
            trio: Mutex::new(None),
        };
        let prepared = plan.prompt(&first)?;
        let longest = prompt_lengths(&prepared).into_array().into_iter().max().unwrap_or(0);
        let context = (longest as u64).saturating_add(plan.decoding.max_new_tokens as u64);
        let guided = plan.decoding.max_new_tokens as u64;
        let mut notes = crate::preflight::check_for(&plan.files, &plan.settings.placement, &plan.devices, context, guided, &self.memory)?;
        notes.extend(plan.files.vocab_note());
        notes.extend(plan.files.quant_notes(plan.settings.placement.quants())?);
        Ok(SessionPlan { notes, first: Some((first, prepared)), ..plan })
    }
}

/// How many tokens each model's prompt holds (the same for all three unless `--own-templates`).
pub fn prompt_lengths(prompt: &PreparedPrompt) -> PerModel<usize> {
    match &prompt.per_model {
        Some(p) => p.as_ref().map(|p| p.input_ids.len()),
        None => PerModel::from_fn(|_| prompt.input.input_ids.len()),
    }
}

/// A checked trio with its settings, ready to start sessions; see the module docs.
pub struct SessionPlan {
    pub settings: config::Settings,
    /// The models as the user named them (directories or Hub repo ids).
    pub references: PerModel<String>,
    /// Their checkpoint directories.
    pub dirs: PerModel<PathBuf>,
    pub files: TrioFiles,
    pub devices: Devices,
    /// α, sampling, budget and stop rules of every session started here.
    pub decoding: Settings,
    /// What the checks could not check, or found worth saying (vocabularies that differ, ...):
    /// for the front end to show once it is ready to (stderr, the UI's status line).
    pub notes: Vec<String>,
    /// The first inputs and their prompt, prepared during the checks and reused by the first session.
    first: Option<(Inputs, PreparedPrompt)>,
    /// The weights, loaded by the first session that needs them and shared by every later one.
    trio: Mutex<Option<Trio>>,
}

impl SessionPlan {
    pub fn placement(&self) -> &TrioPlacement {
        &self.settings.placement
    }

    /// The question with the suffix appended (what goes into the chat template).
    pub fn question(&self, question: &str) -> String {
        self.settings.question(question)
    }

    /// The prompt for `inputs`: one processor, the base model's, prepares the inputs of all three
    /// models (as in the paper), on the base model's device. With `own_templates`, the RFT and
    /// small models' prompts are prepared too, each with its own checkpoint's chat template and
    /// processor, on its own device ([`PreparedPrompt::per_model`]).
    pub fn prompt(&self, inputs: &Inputs) -> Result<PreparedPrompt> {
        if let Some((first, prepared)) = &self.first {
            if first == inputs {
                return Ok(prepared.clone());
            }
        }
        if inputs.question.trim().is_empty() {
            return Err(Error::invalid("the question is empty: pass one with --question"));
        }
        let (checkpoint, tokenizer) = self.files.base();
        let question = self.question(&inputs.question);
        let mut prepared = prepare_prompt(checkpoint, tokenizer, &question, inputs.image.as_ref(), false, &self.devices.base.1)?;
        if self.settings.own_templates.value {
            let own = self.files.0.as_ref().zip(self.devices.as_ref()).try_map(|role, ((c, t), (_, device))| {
                if role == crate::trio::Role::Base {
                    return Ok((prepared.text.clone(), prepared.input.clone()));
                }
                prepare_prompt(c, t, &question, inputs.image.as_ref(), false, device).map(|p| (p.text, p.input))
            })?;
            prepared.per_model_text = Some(own.as_ref().map(|(text, _)| text.clone()));
            prepared.per_model = Some(own.map(|(_, input)| input));
        }
        // Every model reads the whole context (the prompt and every new token).
        let budget_flag = match &self.settings.max_new_tokens.from {
            config::Source::File(p) => format!("max_new_tokens in {}", p.display()),
            _ => "--max-new-tokens".to_string(),
        };
        self.files.checkpoints().zip(prompt_lengths(&prepared)).try_map(|role, (c, len)| {
            crate::prepare::check_context(c, role.name(), len, self.decoding.max_new_tokens, &budget_flag)
        })?;
        Ok(prepared)
    }

    /// The loaded weights (read on the first call; later calls share them).
    pub fn trio(&self) -> Result<Trio> {
        // Held while loading: a session started meanwhile waits here for the same weights.
        let mut slot = self.trio.lock().map_err(|_| Error::invalid("loading the models failed earlier (see the log)"))?;
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let started = std::time::Instant::now();
        let trio = self.files.load_quantized(&self.devices, self.placement().quantizations())?;
        tracing::info!("models loaded in {:.2}s", started.elapsed().as_secs_f64());
        *slot = Some(trio.clone());
        Ok(trio)
    }

    /// A session over the loaded weights, prefilled with `prompt`, decoding at `alpha`.
    pub fn session(&self, prompt: &PreparedPrompt, alpha: f32) -> Result<Session> {
        let trio = self.trio()?;
        let settings = Settings { alpha, ..self.decoding.clone() };
        let (checkpoint, tokenizer) = self.files.base();
        let lengths = prompt_lengths(prompt);
        tracing::info!("session: {} prompt tokens (rft {}, small {}), α={alpha}", lengths.base, lengths.rft, lengths.small);
        match &prompt.per_model {
            Some(prompts) => Session::with_prompts(trio, tokenizer.clone(), prompts.clone(), settings, checkpoint.eos_token_ids.clone()),
            None => Session::new(trio, tokenizer.clone(), prompt.input.clone(), settings, checkpoint.eos_token_ids.clone()),
        }
    }

    /// An α sweep over the loaded weights, prefilled with `prompt`, decoding a guided stream at
    /// each of `alphas` (what `eval` runs per question).
    pub fn sweep(&self, prompt: &PreparedPrompt, alphas: &[f32]) -> Result<Sweep> {
        let trio = self.trio()?;
        let (checkpoint, tokenizer) = self.files.base();
        let lengths = prompt_lengths(prompt);
        tracing::info!("sweep: {} prompt tokens (rft {}, small {}), α {alphas:?}", lengths.base, lengths.rft, lengths.small);
        let prompts = prompt.per_model.clone().unwrap_or_else(|| PerModel::from_fn(|_| prompt.input.clone()));
        Sweep::new(trio, tokenizer.clone(), prompts, self.decoding.clone(), alphas, checkpoint.eos_token_ids.clone())
    }

    /// Prepares `inputs` and starts a session on them at `alpha`.
    pub fn start(&self, inputs: &Inputs, alpha: f32) -> Result<Session> {
        let prompt = self.prompt(inputs)?;
        self.session(&prompt, alpha)
    }

    /// The trace header of a session on `inputs` (prepared as `prompt`) whose guided records were
    /// decoded at `alpha`.
    pub fn trace_header(&self, written_by: &str, inputs: &Inputs, prompt: &PreparedPrompt, alpha: f32) -> TraceHeader {
        TraceHeader {
            written_by: written_by.to_string(),
            models: self.references.clone(),
            preset: self.settings.preset.as_ref().map(|p| p.value.to_string()),
            placement: self
                .placement()
                .specs()
                .map(|(dtype, device)| ModelPlace { device: device.to_string(), dtype: dtype_name(dtype).to_string() }),
            alpha,
            sampling: self.decoding.sampling,
            max_new_tokens: self.decoding.max_new_tokens,
            stop_strings: self.decoding.stop_strings.clone(),
            stop_at_eos: self.decoding.stop_at_eos,
            question: inputs.question.clone(),
            suffix: self.settings.suffix.value.text().to_string(),
            image: inputs.image.as_ref().map(|s| s.path.clone()),
            prompt: prompt.text.clone(),
            input_ids: prompt.input.input_ids.clone(),
            shared_vocab: self.files.shared_vocab(),
            own_prompts: prompt.per_model.as_ref().zip(prompt.per_model_text.as_ref()).map(|(inputs, texts)| {
                let of = |role: crate::trio::Role| TracePrompt { text: texts.get(role).clone(), input_ids: inputs.get(role).input_ids.clone() };
                OwnPrompts { rft: of(crate::trio::Role::Rft), small: of(crate::trio::Role::Small) }
            }),
        }
    }

    /// The last component of each model's name ("Qwen2.5-VL-7B-Instruct" for a repo id or a
    /// directory of that name), as the UI's header shows a model.
    pub fn short_names(&self) -> PerModel<String> {
        self.references.as_ref().map(|r| {
            let path = Path::new(r.as_str());
            path.file_name().map_or_else(|| r.clone(), |n| n.to_string_lossy().into_owned())
        })
    }
}
