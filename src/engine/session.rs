//! A guided session: three models decoding three streams in lockstep.
//!
//! Streams: the base model alone, the RFT model alone, and the guided stream whose every token is
//! chosen from `base[..V] + α · (rft[..V] − small[..V])` and then fed to all three models. Each
//! model is prefilled once; the rows that share a model's weights decode as one batched forward,
//! as [`crate::trio::ROW_PLAN`] lays them out (base [base-only, guided], RFT [rft-only, guided],
//! small [guided]). The models are reached only through [`crate::models::Decoder`], so a new
//! family plugs in without touching the session.
//!
//! For live α the session keeps, per guided step, `base[..V]` and `rft[..V] − small[..V]` (f32, in
//! host memory, so that a long session does not take GPU memory from the models): 8·V bytes per
//! token. Setting α replays those vectors, keeps every guided
//! token whose choice would not change, truncates the caches at the first that would, and decodes
//! on from there. Only the choice is replayed at once (one pass over V per kept token, stopping
//! at the first change); the kept records' measures at the new α are recomputed afterwards,
//! a batch at a time, nearest where the user looks first ([`Session::refresh_stale`]). The base-only and RFT-only streams do not depend on α: while the guided stream
//! re-decodes, their rows are fed their own recorded tokens again, so they are kept as they were.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::guidance::{self, Sampling};
use crate::models::{KvCache, PromptInput};
use crate::trio::{guided_row, PerModel, Row, Trio, ROW_PLAN};

use super::why::{ModelView, Why, WHY_EACH};

/// How many candidates a record keeps.
pub const TOP_K: usize = 10;

/// The three streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    Base,
    Rft,
    Guided,
}

/// Why a stream ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Stop {
    Eos,
    StopString(String),
    MaxNewTokens,
    /// The logits held a NaN: the stream stopped with this message, keeping what came before.
    Error(String),
}

/// Settings of a session.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub alpha: f32,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    pub stop_strings: Vec<String>,
    /// Stop at the base model's eos ids.
    pub stop_at_eos: bool,
}

/// A candidate token with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub token: u32,
    pub text: String,
    pub prob: f32,
}

/// One model's distribution at a step: its top candidates, entropy (nats) and the chosen token's
/// log-probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub top: Vec<Candidate>,
    pub entropy: f32,
    pub chosen_logprob: f32,
}

/// What the guided stream records per token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuidedRecord {
    pub step: usize,
    pub token: u32,
    pub text: String,
    pub forced: bool,
    pub base: Distribution,
    pub rft: Distribution,
    pub small: Distribution,
    pub guided: Distribution,
    pub kl_guided_base: f32,
    pub kl_rft_small: f32,
    pub js_guided_base: f32,
    /// 1-based rank of the chosen token under the base model.
    pub base_rank: usize,
    /// Whether guidance changed the argmax away from the base model's.
    pub flipped: bool,
    /// The α-dependent measures (`guided`, `kl_guided_base`, `js_guided_base`, `flipped`) are
    /// from an earlier α: after a change of α the kept records are re-measured in the background
    /// while decoding resumes (see [`Session::set_alpha_lazy`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Why this token: the tokens that mattered at this step under each model, with the shift
    /// guidance gave them (see [`Why`]). Absent in traces written before format version 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Box<Why>>,
    /// Set on the token that ended the stream: why it ended there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// What the base-only and RFT-only streams record per token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub step: usize,
    pub token: u32,
    pub text: String,
    pub logprob: f32,
    pub entropy: f32,
    pub top: Vec<Candidate>,
    /// Set on the token that ended the stream: why it ended there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// A record of either kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stream", rename_all = "snake_case")]
pub enum Record {
    Base(StreamRecord),
    Rft(StreamRecord),
    Guided(GuidedRecord),
}

/// One stream's tokens, records and stop (shared with [`super::sweep`]).
#[derive(Debug, Clone)]
pub(super) struct Stream<R> {
    pub(super) tokens: Vec<u32>,
    pub(super) records: Vec<R>,
    pub(super) stop: Option<Stop>,
}

impl<R> Default for Stream<R> {
    fn default() -> Self {
        Stream { tokens: Vec::new(), records: Vec::new(), stop: None }
    }
}

/// A session of three streams; see the module docs.
pub struct Session {
    trio: Trio,
    tokenizer: Tokenizer,
    /// Each model's prompt: the same one for all three (the paper's way), or each rendered with
    /// its model's own chat template, of its own length.
    prompts: PerModel<PromptInput>,
    settings: Settings,
    eos: Vec<u32>,
    vocab: usize,
    /// Token fed to a row whose stream has ended, to keep the rows in lockstep.
    filler: u32,
    caches: PerModel<KvCache>,
    /// Logits of the next step, one row per entry of the model's row plan, f32 on its device.
    pending: PerModel<Tensor>,
    /// The prefill logits, for re-decoding from step 0.
    prefill_logits: PerModel<Tensor>,
    base: Stream<StreamRecord>,
    rft: Stream<StreamRecord>,
    guided: Stream<GuidedRecord>,
    /// Per guided step: base[..V] and rft[..V] − small[..V], in host memory.
    replay: Vec<(Vec<f32>, Vec<f32>)>,
    forced: BTreeMap<usize, u32>,
    /// Number of lockstep steps taken (the length of the longest stream).
    steps: usize,
}

/// Measures records from logits on the host; borrows only the tokenizer (for token texts), so
/// it can run on other threads while the session launches the next forwards. The α sweep
/// ([`super::sweep`]) measures its records with it too, so both give the same records.
#[derive(Clone, Copy)]
pub(super) struct Measure<'a>(pub(super) &'a Tokenizer);

impl Measure<'_> {
    fn token_text(&self, t: u32) -> String {
        self.0.decode(&[t], false).unwrap_or_default()
    }

    fn candidates(&self, logp: &[f64]) -> Vec<Candidate> {
        guidance::top_k(logp, TOP_K)
            .into_iter()
            .map(|(token, p)| Candidate { token, text: self.token_text(token), prob: p as f32 })
            .collect()
    }

    fn distribution(&self, logits: &[f32], chosen: u32) -> (Distribution, Vec<f64>) {
        let logp = guidance::log_softmax(logits);
        let d = Distribution {
            top: self.candidates(&logp),
            entropy: guidance::entropy(&logp) as f32,
            chosen_logprob: logp[chosen as usize] as f32,
        };
        (d, logp)
    }

    pub(super) fn stream_record(&self, step: usize, logits: &[f32], token: u32) -> StreamRecord {
        let (d, _) = self.distribution(logits, token);
        StreamRecord { step, token, text: self.token_text(token), logprob: d.chosen_logprob, entropy: d.entropy, top: d.top, stop: None }
    }

    /// The α-dependent measures of a step whose mix of `base[..V]`, `b`, is `mixed`: the guided
    /// distribution, KL and JS against the base, the flip marker, and the mix's log-normaliser
    /// (log Σ exp mixed), one fused pass: a fresh step and a re-measured kept one get the very
    /// same values.
    fn guided_measures(&self, b: &[f32], mixed: &[f32], chosen: u32) -> (Distribution, f32, f32, bool, f64) {
        let m = guidance::guided_measures(b, mixed, chosen, TOP_K);
        let top = m.top.into_iter().map(|(token, p)| Candidate { token, text: self.token_text(token), prob: p as f32 }).collect();
        let guided = Distribution { top, entropy: m.entropy as f32, chosen_logprob: m.chosen_logprob as f32 };
        (guided, m.kl_guided_base as f32, m.js_guided_base as f32, m.flipped, m.log_normaliser)
    }

    /// Brings a kept record's α-dependent measures to a new α and its mix `mixed` of the step's `b`.
    fn refresh(&self, rec: &mut GuidedRecord, b: &[f32], alpha: f32, mixed: &[f32]) {
        let lse;
        (rec.guided, rec.kl_guided_base, rec.js_guided_base, rec.flipped, lse) = self.guided_measures(b, mixed, rec.token);
        if let Some(why) = rec.why.as_mut() {
            why.refresh(alpha, mixed, |t| mixed[t as usize] as f64 - lse);
        }
        rec.stale = false;
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn guided_record(&self, step: usize, t: u32, forced: bool, alpha: f32, b: &[f32], r: &[f32], s: &[f32], mixed: &[f32]) -> GuidedRecord {
        let (base, (rft, small, kl_rft_small), (guided, kl_guided_base, js_guided_base, flipped, lse)) = std::thread::scope(|scope| {
            let base = scope.spawn(|| self.distribution(b, t));
            let rft = scope.spawn(|| self.distribution(r, t));
            let small = scope.spawn(|| self.distribution(s, t));
            let guided = self.guided_measures(b, mixed, t);
            let (rft, small) = (join(rft), join(small));
            let kl_rft_small = guidance::kl(&rft.1, &small.1);
            (join(base), (rft, small, kl_rft_small), guided)
        });
        let favourites = [&base.0, &rft.0, &small.0].into_iter().flat_map(|d| d.top.iter().take(WHY_EACH).map(|c| c.token));
        let models = PerModel::new(
            ModelView { logits: b, logp: &base.1 },
            ModelView { logits: r, logp: &rft.1 },
            ModelView { logits: s, logp: &small.1 },
        );
        let why = Why::new(t, favourites, models, alpha, mixed, |t| mixed[t as usize] as f64 - lse, |t| self.token_text(t));
        GuidedRecord {
            step,
            token: t,
            text: self.token_text(t),
            forced,
            kl_guided_base,
            kl_rft_small: kl_rft_small as f32,
            js_guided_base,
            base_rank: guidance::rank(b, t),
            flipped,
            base: base.0,
            rft: rft.0,
            small: small.0,
            guided,
            stale: false,
            why: Some(Box::new(why)),
            stop: None,
        }
    }
}

/// One decoding step of the three models, each fed the rows of its [`ROW_PLAN`]: `own` is the
/// token of the base-only (base model) or RFT-only (RFT model) stream, `guided` the guided one.
fn forward_trio(trio: &Trio, own: PerModel<u32>, guided: u32, caches: &mut PerModel<KvCache>) -> Result<PerModel<Tensor>> {
    // One thread launches all three, base then rft then small: launching the models' forwards
    // from three threads onto one CUDA device hung in candle 0.11 (seen on an H200).
    trio.as_ref().zip(caches.as_mut()).zip(own.zip(ROW_PLAN)).try_map(|_, ((model, cache), (own, rows))| {
        let tokens: Vec<u32> = rows.iter().map(|r| if *r == Row::Own { own } else { guided }).collect();
        model.step(&tokens, cache)
    })
}

/// The index of a model's own-stream row.
fn own_row(rows: &[Row]) -> usize {
    rows.iter().position(|r| *r == Row::Own).expect("base and RFT models decode their own stream")
}

/// The result of a scoped thread; a panic there is a bug, so it goes on unwinding here.
pub(super) fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Why a stream with these tokens ends after its latest one under `settings`, if it does.
pub(super) fn stop_after(tokenizer: &Tokenizer, settings: &Settings, eos: &[u32], tokens: &[u32]) -> Option<Stop> {
    let last = *tokens.last()?;
    if settings.stop_at_eos && eos.contains(&last) {
        return Some(Stop::Eos);
    }
    if !settings.stop_strings.is_empty() {
        // Only the tail can complete a stop string; decode enough of it to cover the longest.
        let longest = settings.stop_strings.iter().map(|s| s.len()).max().unwrap_or(0);
        let tail = &tokens[tokens.len().saturating_sub(longest + 2)..];
        let text = tokenizer.decode(tail, false).unwrap_or_default();
        if let Some(s) = settings.stop_strings.iter().find(|s| text.contains(s.as_str())) {
            return Some(Stop::StopString(s.clone()));
        }
    }
    if tokens.len() >= settings.max_new_tokens {
        return Some(Stop::MaxNewTokens);
    }
    None
}

/// The stop of the base-only (`name` "base") or RFT-only stream whose logits at `step` hold a NaN.
pub(super) fn own_nan_stop(name: &str, step: usize, logits: &[f32]) -> Option<Stop> {
    guidance::has_nan(logits).then(|| Stop::Error(format!("the {name} model's logits hold NaN at step {step}")))
}

/// The stop of the guided stream when one of the three models' logits at `step` holds a NaN.
pub(super) fn guided_nan_stop(step: usize, b: &[f32], r: &[f32], s: &[f32]) -> Option<Stop> {
    let which = [("base", b), ("RFT", r), ("small", s)].into_iter().find(|(_, l)| guidance::has_nan(l))?.0;
    Some(Stop::Error(format!("the {which} model's logits hold NaN at guided step {step}")))
}

/// Every row of a logits tensor, on the host, in one copy.
pub(super) fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2()?)
}

impl Session {
    /// Prefills the three models with `prompt` (prepared by the base model's processor).
    pub fn new(trio: Trio, tokenizer: Tokenizer, prompt: PromptInput, settings: Settings, eos: Vec<u32>) -> Result<Self> {
        let prompts = PerModel::new(prompt.clone(), prompt.clone(), prompt);
        Self::with_prompts(trio, tokenizer, prompts, settings, eos)
    }

    /// Prefills each model with its own prompt (`--own-templates`: each rendered with its
    /// model's chat template). The prompts may differ in length: every cache keeps its own
    /// positions, and the streams still advance one token per step, in lockstep.
    pub fn with_prompts(trio: Trio, tokenizer: Tokenizer, prompts: PerModel<PromptInput>, settings: Settings, eos: Vec<u32>) -> Result<Self> {
        if !settings.alpha.is_finite() {
            return Err(Error::invalid(format!("--alpha must be a finite number, got {}", settings.alpha)));
        }
        settings.sampling.validate().map_err(Error::invalid)?;
        let vocab = trio.base.vocab_size().min(trio.rft.vocab_size()).min(trio.small.vocab_size());
        let filler = eos.first().copied().unwrap_or(0).min(vocab as u32 - 1);
        // Each model is prefilled once; its cache and logits are copied to every row it decodes.
        let prefilled = trio.as_ref().zip(ROW_PLAN).zip(prompts.as_ref()).try_map(|_, ((model, rows), prompt)| -> Result<(KvCache, Tensor)> {
            let mut cache = model.new_cache();
            let l = model.prefill(std::slice::from_ref(prompt), &mut cache)?;
            let ids = Tensor::new(&vec![0u32; rows.len()][..], l.device())?;
            Ok((cache.select_rows(&vec![0; rows.len()])?, l.index_select(&ids, 0)?))
        })?;
        let PerModel { base: (base_cache, base_logits), rft: (rft_cache, rft_logits), small: (small_cache, small_logits) } = prefilled;
        let caches = PerModel::new(base_cache, rft_cache, small_cache);
        let pending = PerModel::new(base_logits, rft_logits, small_logits);
        Ok(Session {
            trio,
            tokenizer,
            prompts,
            settings,
            eos,
            vocab,
            filler,
            caches,
            prefill_logits: pending.clone(),
            pending,
            base: Stream::default(),
            rft: Stream::default(),
            guided: Stream::default(),
            replay: Vec::new(),
            forced: BTreeMap::new(),
            steps: 0,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The shared vocabulary size V.
    pub fn shared_vocab(&self) -> usize {
        self.vocab
    }

    /// The base model's prompt.
    pub fn prompt(&self) -> &PromptInput {
        &self.prompts.base
    }

    /// Whether each model's stream starts inside a `<think>` segment (its prompt ends by opening one).
    pub fn opens_in_think(&self) -> PerModel<bool> {
        self.prompts.as_ref().map(|p| {
            // A Thinking model's own template ends the prompt with `<think>\n`: its stream starts
            // inside the reasoning. The tag is one added token in the Qwen tokenizers; a tail of
            // 32 covers tokenizers that spell it in pieces.
            let tail = &p.input_ids[p.input_ids.len().saturating_sub(32)..];
            crate::think::ends_open(&self.tokenizer.decode(tail, false).unwrap_or_default())
        })
    }

    /// Each model's prompt.
    pub fn prompts(&self) -> PerModel<&PromptInput> {
        self.prompts.as_ref()
    }

    pub fn tokens(&self, kind: StreamKind) -> &[u32] {
        match kind {
            StreamKind::Base => &self.base.tokens,
            StreamKind::Rft => &self.rft.tokens,
            StreamKind::Guided => &self.guided.tokens,
        }
    }

    pub fn stop(&self, kind: StreamKind) -> Option<&Stop> {
        match kind {
            StreamKind::Base => self.base.stop.as_ref(),
            StreamKind::Rft => self.rft.stop.as_ref(),
            StreamKind::Guided => self.guided.stop.as_ref(),
        }
    }

    pub fn guided_records(&self) -> &[GuidedRecord] {
        &self.guided.records
    }

    /// Looks `query` up at guided step `step` (see [`super::lookup`]): its encoding, the single
    /// tokens that spell it (with or without a leading space), and their figures there.
    pub fn lookup(&self, step: usize, query: &str) -> Result<super::lookup::Lookup> {
        use super::lookup::{Lookup, Match};
        let (Some(record), Some((base, delta))) = (self.guided.records.get(step), self.replay.get(step)) else {
            return Err(Error::invalid(format!("no guided token at step {step} to look {query:?} up at (the guided stream has {}): move the cursor onto it", self.guided.records.len())));
        };
        let encode = |s: &str| self.tokenizer.encode(s, false).map(|e| e.get_ids().to_vec()).unwrap_or_default();
        let encoding = encode(query);
        let mut exact = Vec::new();
        for (text, how) in [(query.to_string(), Match::Exact), (format!(" {query}"), Match::Spaced)] {
            if let [t] = encode(&text)[..] {
                if (t as usize) < delta.len() && !exact.iter().any(|(e, _)| *e == t) {
                    exact.push((t, how));
                }
            }
        }
        let encoding: Vec<u32> = encoding.into_iter().filter(|&t| (t as usize) < delta.len()).collect();
        let text = |t: u32| self.tokenizer.decode(&[t], false).unwrap_or_default();
        Ok(Lookup::with_vectors(query, record, encoding, exact, text, base, delta, self.settings.alpha))
    }

    pub fn stream_records(&self, kind: StreamKind) -> &[StreamRecord] {
        match kind {
            StreamKind::Base => &self.base.records,
            _ => &self.rft.records,
        }
    }

    /// Decoded text of a stream (special tokens kept).
    pub fn text(&self, kind: StreamKind) -> Result<String> {
        crate::processor::prompt::decode(&self.tokenizer, self.tokens(kind))
    }

    /// Whether every stream has ended.
    pub fn is_done(&self) -> bool {
        self.base.stop.is_some() && self.rft.stop.is_some() && self.guided.stop.is_some()
    }

    /// Why a stream with these tokens ends after its latest one, if it does.
    fn check_stop(&self, tokens: &[u32]) -> Option<Stop> {
        stop_after(&self.tokenizer, &self.settings, &self.eos, tokens)
    }

    /// Advances every stream that has not ended by one token and returns the new records.
    ///
    /// The tokens are chosen first; then the records are measured on other threads while this
    /// one launches the next forwards (on a GPU, launching is host work too, and the forwards
    /// run while the host measures).
    pub fn step(&mut self) -> Result<Vec<Record>> {
        if self.is_done() {
            return Ok(Vec::new());
        }
        let step = self.steps;
        let v = self.vocab;
        let host = self.pending.as_ref().try_map(|_, t| rows(t))?;
        // Where each stream's row sits in each model's logits.
        let own = PerModel::new(own_row(ROW_PLAN.base), own_row(ROW_PLAN.rft), 0);
        let g = ROW_PLAN.map(guided_row);
        let (base_own, rft_own) = (&host.base[own.base], &host.rft[own.rft]);
        let (base_g, rft_g, small_g) = (&host.base[g.base][..v], &host.rft[g.rft][..v], &host.small[g.small][..v]);

        // Base alone and RFT alone: re-fed their recorded token while the guided stream catches
        // up after a change of α; otherwise chosen from their own full vocabularies.
        let base_new = self.own_choice(StreamKind::Base, step, base_own);
        let rft_new = self.own_choice(StreamKind::Rft, step, rft_own);
        let feed_own = PerModel::new(
            self.base.tokens.get(step).copied().unwrap_or(self.filler),
            self.rft.tokens.get(step).copied().unwrap_or(self.filler),
            self.filler,
        );

        let mut guided_new = None;
        if self.guided.stop.is_none() {
            debug_assert_eq!(self.guided.tokens.len(), step);
            let (b, r, s) = (base_g, rft_g, small_g);
            if let Some(stop) = guided_nan_stop(step, b, r, s) {
                self.guided.stop = Some(stop);
            } else {
                let delta = guidance::delta(r, s, v);
                let mixed = guidance::combine(b, &delta, self.settings.alpha);
                let forced = self.forced.get(&step).copied();
                let t = forced.unwrap_or_else(|| guidance::choose(&mixed, &self.settings.sampling, step));
                // What live α replays: the very vectors this step mixed, so that a replay
                // reproduces the step bit for bit.
                self.replay.push((b.to_vec(), delta));
                self.guided.tokens.push(t);
                self.guided.stop = self.check_stop(&self.guided.tokens);
                guided_new = Some((t, forced.is_some(), mixed));
            }
        }
        let feed_guided = guided_new.as_ref().map(|g| g.0).unwrap_or(self.filler);
        self.steps += 1;
        let launch = !self.is_done();

        // The records (six distributions over ~V entries each) are measured on threads of their
        // own while this thread launches the next forwards: on a GPU, launching is host work too.
        let (measure, alpha) = (Measure(&self.tokenizer), self.settings.alpha);
        let (trio, caches) = (&self.trio, &mut self.caches);
        let (own, guided, next) = std::thread::scope(|scope| {
            let base = scope.spawn(|| base_new.map(|t| measure.stream_record(step, base_own, t)));
            let rft = scope.spawn(|| rft_new.map(|t| measure.stream_record(step, rft_own, t)));
            let guided = scope.spawn(|| {
                guided_new.map(|(t, forced, mixed)| measure.guided_record(step, t, forced, alpha, base_g, rft_g, small_g, &mixed))
            });
            let next = if launch { Some(forward_trio(trio, feed_own, feed_guided, caches)) } else { None };
            ((join(base), join(rft)), join(guided), next)
        });
        if let Some(next) = next {
            self.pending = next?;
        }
        // Each new record carries its stream's stop when it ended the stream.
        let (mut own, mut guided) = (own, guided);
        if let Some(r) = own.0.as_mut() {
            r.stop = self.base.stop.clone();
        }
        if let Some(r) = own.1.as_mut() {
            r.stop = self.rft.stop.clone();
        }
        if let Some(r) = guided.as_mut() {
            r.stop = self.guided.stop.clone();
        }
        let mut records = Vec::new();
        if let Some(r) = own.0 {
            self.base.records.push(r.clone());
            records.push(Record::Base(r));
        }
        if let Some(r) = own.1 {
            self.rft.records.push(r.clone());
            records.push(Record::Rft(r));
        }
        if let Some(rec) = guided {
            self.guided.records.push(rec.clone());
            records.push(Record::Guided(rec));
        }
        Ok(records)
    }

    /// Chooses the next token of the base-only or RFT-only stream, when it is due one: pushes it
    /// and updates the stream's stop. A NaN in its logits stops the stream with an error.
    fn own_choice(&mut self, kind: StreamKind, step: usize, logits: &[f32]) -> Option<u32> {
        let name = if kind == StreamKind::Base { "base" } else { "RFT" };
        let stream = self.own_stream(kind);
        if step < stream.tokens.len() || stream.stop.is_some() {
            return None;
        }
        if let Some(stop) = own_nan_stop(name, step, logits) {
            self.own_stream(kind).stop = Some(stop);
            return None;
        }
        let t = guidance::choose(logits, &self.settings.sampling, step);
        self.own_stream(kind).tokens.push(t);
        let stop = self.check_stop(self.tokens(kind));
        self.own_stream(kind).stop = stop;
        Some(t)
    }

    fn own_stream(&mut self, kind: StreamKind) -> &mut Stream<StreamRecord> {
        if kind == StreamKind::Base {
            &mut self.base
        } else {
            &mut self.rft
        }
    }

    /// Runs until every stream has ended, returning all records in order.
    pub fn run_to_end(&mut self) -> Result<Vec<Record>> {
        let mut all = Vec::new();
        while !self.is_done() {
            all.extend(self.step()?);
        }
        Ok(all)
    }

    /// Sets α and brings every kept record up to date before returning: [`set_alpha_lazy`]
    /// followed by [`refresh_stale`] of all of them. Returns the guided step from which the
    /// stream changes (and was truncated), or `None` when every guided token so far is kept.
    ///
    /// [`set_alpha_lazy`]: Self::set_alpha_lazy
    /// [`refresh_stale`]: Self::refresh_stale
    pub fn set_alpha(&mut self, alpha: f32) -> Result<Option<usize>> {
        let changed = self.set_alpha_lazy(alpha)?;
        self.refresh_stale(0, usize::MAX);
        Ok(changed)
    }

    /// Sets α, deciding only which guided tokens survive: the first kept step whose choice
    /// changes at the new α truncates the stream (and every cache) there, so decoding can resume
    /// at once. The kept records' α-dependent measures are left [`stale`](GuidedRecord::stale)
    /// for [`refresh_stale`](Self::refresh_stale). Returns the step from which the stream
    /// changes, or `None` when every guided token so far is kept.
    ///
    /// Deciding needs one pass over each kept step's `base[..V]` and `rft[..V] − small[..V]`
    /// (greedy: the argmax of the mix, with no softmax and no copy), spread over every core with
    /// the lowest changed step shared, so the work stops at the first change.
    pub fn set_alpha_lazy(&mut self, alpha: f32) -> Result<Option<usize>> {
        if !alpha.is_finite() {
            return Err(Error::invalid(format!("α must be a finite number, got {alpha}")));
        }
        let old = self.settings.alpha;
        let diverge = self.first_change(alpha);
        self.settings.alpha = alpha;
        if let Some(j) = diverge {
            self.rewind_guided(j)?;
        }
        if alpha.to_bits() != old.to_bits() {
            for rec in &mut self.guided.records {
                rec.stale = true;
            }
        }
        Ok(diverge)
    }

    /// The first kept guided step whose token changes at `alpha` (forced tokens stay).
    fn first_change(&self, alpha: f32) -> Option<usize> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let n = self.replay.len().min(self.guided.records.len());
        if n == 0 {
            return None;
        }
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n);
        let first = AtomicUsize::new(n);
        let (sampling, forced, replay, tokens) = (self.settings.sampling, &self.forced, &self.replay, &self.guided.tokens);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let first = &first;
                scope.spawn(move || {
                    // Each thread takes every `threads`-th step in increasing order, so every
                    // step below the lowest change found is checked by someone.
                    let mut j = t;
                    while j < n && j < first.load(Ordering::Relaxed) {
                        let (b, d) = &replay[j];
                        let token = forced.get(&j).copied().unwrap_or_else(|| guidance::choose_mixed(b, d, alpha, &sampling, j));
                        if token != tokens[j] {
                            first.fetch_min(j, Ordering::Relaxed);
                            break;
                        }
                        j += threads;
                    }
                });
            }
        });
        let first = first.into_inner();
        (first < n).then_some(first)
    }

    /// How many guided records hold measures of an earlier α.
    pub fn stale_count(&self) -> usize {
        self.guided.records.iter().filter(|r| r.stale).count()
    }

    /// Re-measures up to `max` stale guided records at the α in force, those nearest step `near`
    /// first, on every core, and returns them (fresh) in step order.
    pub fn refresh_stale(&mut self, near: usize, max: usize) -> Vec<GuidedRecord> {
        let mut todo: Vec<usize> = (0..self.guided.records.len().min(self.replay.len()))
            .filter(|&i| self.guided.records[i].stale)
            .collect();
        if todo.is_empty() || max == 0 {
            return Vec::new();
        }
        todo.sort_by_key(|&i| (i.abs_diff(near), i));
        todo.truncate(max);
        todo.sort_unstable();
        let (measure, alpha) = (Measure(&self.tokenizer), self.settings.alpha);
        let mut work: Vec<GuidedRecord> = todo.iter().map(|&i| self.guided.records[i].clone()).collect();
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let chunk = work.len().div_ceil(threads).max(1);
        let replay = &self.replay;
        std::thread::scope(|scope| {
            for (recs, steps) in work.chunks_mut(chunk).zip(todo.chunks(chunk)) {
                scope.spawn(move || {
                    // One mix buffer per thread: a fresh 4·V-byte allocation per token costs
                    // page faults every time.
                    let mut mixed = Vec::new();
                    for (rec, &j) in recs.iter_mut().zip(steps) {
                        let (b, d) = &replay[j];
                        guidance::combine_into(&mut mixed, b, d, alpha);
                        measure.refresh(rec, b, alpha, &mixed);
                    }
                });
            }
        });
        for (rec, &j) in work.iter().zip(&todo) {
            self.guided.records[j] = rec.clone();
        }
        work
    }

    /// Forces `token` at guided step `step` (at most the next step): the stream is truncated
    /// there and continues from the forced token.
    pub fn force(&mut self, step: usize, token: u32) -> Result<()> {
        if step > self.guided.tokens.len() {
            return Err(Error::invalid(format!(
                "cannot force step {step}: the guided stream has {} tokens",
                self.guided.tokens.len()
            )));
        }
        if token as usize >= self.vocab {
            return Err(Error::invalid(format!("token {token} is outside the shared vocabulary of {}", self.vocab)));
        }
        self.forced.retain(|&s, _| s < step);
        self.forced.insert(step, token);
        if step < self.guided.tokens.len() {
            self.rewind_guided(step)?;
        } else if self.guided.stop.is_some() {
            // Forcing the next token of an ended stream reopens it.
            self.rewind_guided(step)?;
        }
        Ok(())
    }

    /// Truncates the guided stream (and every cache) to `j` tokens, so the next step decodes
    /// guided step `j` again.
    fn rewind_guided(&mut self, j: usize) -> Result<()> {
        self.guided.tokens.truncate(j);
        self.guided.records.truncate(j);
        self.guided.stop = None;
        // The stream goes on from here: the last kept token no longer ends it.
        if let Some(last) = self.guided.records.last_mut() {
            last.stop = None;
        }
        self.replay.truncate(j);
        self.steps = j;
        // Each cache holds its own model's prompt (their lengths may differ).
        let prompt_lens = self.prompts.as_ref().map(|p| p.input_ids.len());
        if j == 0 {
            self.caches.as_mut().zip(prompt_lens).try_map(|_, (c, len)| c.truncate(len))?;
            self.pending = self.prefill_logits.clone();
            return Ok(());
        }
        // Caches hold the prompt and tokens 0..j-1 of each row after step j-1 was fed; cut back
        // one token and feed token j-1 again to get the logits of step j.
        self.caches.as_mut().zip(prompt_lens).try_map(|_, (c, len)| c.truncate(len + j - 1))?;
        let fed = |s: &[u32]| s.get(j - 1).copied().unwrap_or(self.filler);
        let own = PerModel::new(fed(&self.base.tokens), fed(&self.rft.tokens), self.filler);
        self.pending = forward_trio(&self.trio, own, self.guided_fed(j - 1), &mut self.caches)?;
        Ok(())
    }

    fn guided_fed(&self, j: usize) -> u32 {
        self.guided.tokens.get(j).copied().unwrap_or(self.filler)
    }
}
