//! The α sweep: one prompt decoded at several α values at once, as `eval` runs a question.
//!
//! A [`Session`](super::Session) decodes three streams at one α. The base-alone and RFT-alone
//! streams do not depend on α, so k values of α need them once and k guided streams. A
//! [`Sweep`] prefills each model once, on one row, and copies its KV cache to every row it
//! decodes: the base model carries [base-alone, guided α1 … αk], the RFT model [rft-alone,
//! guided α1 … αk], the small model [guided α1 … αk]; every row of a model decodes in one
//! batched forward, so its weights are read once per step for all of them (the prompt is
//! shared, so no row needs padding).
//!
//! Each stream ends on its own (eos, a stop string, the token budget, or a NaN in its logits,
//! as a session's do), and its rows leave the batch at once: the cache keeps only the rows of
//! streams still decoding (a copy of those rows, once per ended stream), so an ended stream costs
//! no more compute. A model with no row left is not run at all.
//!
//! Every choice and every record is made by the session's own code ([`Measure`], the stop and
//! NaN rules), and a guided stream at α draws with the seeded per-step draw a session at α
//! draws with, so each stream is what a session at that α gives: token for token, and its
//! records' measures up to the last bits of f32 (a forward over more rows may round its logits
//! differently, about 1e-6 on the test models; a session's own batch of two already differs
//! from a lone decode that much). A sweep keeps no live-α store: its α values are fixed.

use candle_core::Tensor;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::guidance;
use crate::models::{KvCache, PromptInput};
use crate::trio::{PerModel, Role, Trio};

use super::session::{guided_nan_stop, join, own_nan_stop, rows, stop_after, Measure, Stream};
use super::{GuidedRecord, Settings, Stop, StreamRecord};

/// One stream of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepStream {
    Base,
    Rft,
    /// The guided stream at the i-th α of the sweep.
    Guided(usize),
}

/// One prompt decoded at several α values at once; see the module docs.
pub struct Sweep {
    trio: Trio,
    tokenizer: Tokenizer,
    /// Sampling, budget and stop rules of every stream (its `alpha` is not used).
    settings: Settings,
    alphas: Vec<f32>,
    eos: Vec<u32>,
    vocab: usize,
    /// One row per entry of `lanes`, in that order.
    caches: PerModel<KvCache>,
    /// The stream each cache row decodes: only streams that have not ended.
    lanes: PerModel<Vec<SweepStream>>,
    /// Logits of the next step, one row per lane; `None` once a model has no lane left.
    pending: PerModel<Option<Tensor>>,
    base: Stream<StreamRecord>,
    rft: Stream<StreamRecord>,
    guided: Vec<Stream<GuidedRecord>>,
    /// Steps taken (the length of the longest stream).
    steps: usize,
}

impl Sweep {
    /// Prefills each model once with its prompt (the same for all three unless each was rendered
    /// with its own chat template) and readies a guided stream for every α of `alphas`.
    pub fn new(trio: Trio, tokenizer: Tokenizer, prompts: PerModel<PromptInput>, settings: Settings, alphas: &[f32], eos: Vec<u32>) -> Result<Self> {
        if alphas.is_empty() {
            return Err(Error::invalid("an α sweep needs at least one α, e.g. --alphas 0.5"));
        }
        if let Some(bad) = alphas.iter().find(|a| !a.is_finite()) {
            return Err(Error::invalid(format!("α must be a finite number, got {bad}")));
        }
        settings.sampling.validate().map_err(Error::invalid)?;
        let vocab = trio.base.vocab_size().min(trio.rft.vocab_size()).min(trio.small.vocab_size());
        let guided: Vec<SweepStream> = (0..alphas.len()).map(SweepStream::Guided).collect();
        let lanes = PerModel::new(
            [&[SweepStream::Base][..], &guided].concat(),
            [&[SweepStream::Rft][..], &guided].concat(),
            guided.clone(),
        );
        // One prefill per model, on one row; its cache and logits are copied to every lane.
        let prefilled = trio.as_ref().zip(lanes.as_ref()).zip(prompts.as_ref()).try_map(|_, ((model, lanes), prompt)| -> Result<(KvCache, Tensor)> {
            let mut cache = model.new_cache();
            let l = model.prefill(std::slice::from_ref(prompt), &mut cache)?;
            let ids = Tensor::new(&vec![0u32; lanes.len()][..], l.device())?;
            Ok((cache.select_rows(&vec![0; lanes.len()])?, l.index_select(&ids, 0)?))
        })?;
        let PerModel { base: (base_cache, base_logits), rft: (rft_cache, rft_logits), small: (small_cache, small_logits) } = prefilled;
        Ok(Sweep {
            trio,
            tokenizer,
            settings,
            alphas: alphas.to_vec(),
            eos,
            vocab,
            caches: PerModel::new(base_cache, rft_cache, small_cache),
            lanes,
            pending: PerModel::new(Some(base_logits), Some(rft_logits), Some(small_logits)),
            base: Stream::default(),
            rft: Stream::default(),
            guided: alphas.iter().map(|_| Stream::default()).collect(),
            steps: 0,
        })
    }

    pub fn alphas(&self) -> &[f32] {
        &self.alphas
    }

    /// The shared vocabulary size V.
    pub fn shared_vocab(&self) -> usize {
        self.vocab
    }

    fn stream(&self, s: SweepStream) -> &Stream<StreamRecord> {
        match s {
            SweepStream::Base => &self.base,
            _ => &self.rft,
        }
    }

    pub fn tokens(&self, s: SweepStream) -> &[u32] {
        match s {
            SweepStream::Guided(i) => &self.guided[i].tokens,
            own => &self.stream(own).tokens,
        }
    }

    pub fn stop(&self, s: SweepStream) -> Option<&Stop> {
        match s {
            SweepStream::Guided(i) => self.guided[i].stop.as_ref(),
            own => self.stream(own).stop.as_ref(),
        }
    }

    /// The records of the base-alone (`Base`) or RFT-alone (anything else) stream.
    pub fn stream_records(&self, s: SweepStream) -> &[StreamRecord] {
        &self.stream(s).records
    }

    /// The records of the guided stream at the i-th α.
    pub fn guided_records(&self, i: usize) -> &[GuidedRecord] {
        &self.guided[i].records
    }

    /// Decoded text of a stream (special tokens kept).
    pub fn text(&self, s: SweepStream) -> Result<String> {
        crate::processor::prompt::decode(&self.tokenizer, self.tokens(s))
    }

    /// How many rows each model decodes per step now (the streams that have not ended).
    pub fn rows(&self) -> PerModel<usize> {
        self.lanes.as_ref().map(Vec::len)
    }

    /// Whether every stream has ended.
    pub fn is_done(&self) -> bool {
        self.base.stop.is_some() && self.rft.stop.is_some() && self.guided.iter().all(|g| g.stop.is_some())
    }

    fn ended(&self, s: SweepStream) -> bool {
        self.stop(s).is_some()
    }

    /// Runs until every stream has ended.
    pub fn run_to_end(&mut self) -> Result<()> {
        while !self.is_done() {
            self.step()?;
        }
        Ok(())
    }

    /// Advances every stream that has not ended by one token.
    ///
    /// As in a session, the tokens are chosen first; the records are then measured on other
    /// threads while this one launches the next forwards, after the rows of the streams that
    /// just ended have left each model's cache.
    pub fn step(&mut self) -> Result<()> {
        if self.is_done() {
            return Ok(());
        }
        let step = self.steps;
        let v = self.vocab;
        let host = self.pending.as_ref().try_map(|_, t| t.as_ref().map(rows).transpose())?;
        let lanes = self.lanes.clone();
        // The logits row of stream `s` in `role`'s forward, if that model decodes it.
        let logits = |role: Role, s: SweepStream| -> Option<&[f32]> {
            let at = lanes.get(role).iter().position(|l| *l == s)?;
            host.get(role).as_ref().map(|rows| &rows[at][..])
        };
        let (tokenizer, settings, eos) = (&self.tokenizer, &self.settings, &self.eos);
        let stop = |tokens: &[u32]| stop_after(tokenizer, settings, eos, tokens);

        // Base alone and RFT alone, each from its own full vocabulary.
        let base_own = logits(Role::Base, SweepStream::Base);
        let rft_own = logits(Role::Rft, SweepStream::Rft);
        let base_new = base_own.and_then(|l| choose_own(&mut self.base, "base", step, l, settings, &stop));
        let rft_new = rft_own.and_then(|l| choose_own(&mut self.rft, "RFT", step, l, settings, &stop));

        // Each guided stream from its own rows of the three models, at its own α.
        let mut guided_new = Vec::new();
        for (i, stream) in self.guided.iter_mut().enumerate() {
            let s = SweepStream::Guided(i);
            let (Some(b), Some(r), Some(sm)) = (logits(Role::Base, s), logits(Role::Rft, s), logits(Role::Small, s)) else { continue };
            let (b, r, sm) = (&b[..v], &r[..v], &sm[..v]);
            if let Some(nan) = guided_nan_stop(step, b, r, sm) {
                stream.stop = Some(nan);
                continue;
            }
            let delta = guidance::delta(r, sm, v);
            let mixed = guidance::combine(b, &delta, self.alphas[i]);
            let t = guidance::choose(&mixed, &settings.sampling, step);
            stream.tokens.push(t);
            stream.stop = stop(&stream.tokens);
            guided_new.push((i, t, mixed, [b, r, sm]));
        }
        self.steps += 1;

        // The rows of the streams that ended leave their caches; the rest are fed their token.
        let kept: PerModel<Vec<usize>> = self.lanes.as_ref().map(|l| (0..l.len()).filter(|&j| !self.ended(l[j])).collect());
        let feeds: PerModel<Vec<u32>> =
            kept.as_ref().zip(self.lanes.as_ref()).map(|(kept, l)| kept.iter().map(|&j| *self.tokens(l[j]).last().expect("a kept stream has a token")).collect());
        let trio = &self.trio;
        self.caches.as_mut().zip(self.lanes.as_mut()).zip(kept).try_map(|role, ((cache, lanes), kept)| -> Result<()> {
            if kept.len() == lanes.len() {
                return Ok(());
            }
            *cache = if kept.is_empty() { trio.get(role).new_cache() } else { cache.select_rows(&kept)? };
            *lanes = kept.iter().map(|&j| lanes[j]).collect();
            Ok(())
        })?;

        // The records (2 + 2k + 2·(their guided) distributions over ~V entries) are measured on
        // threads of their own while this thread launches the next forwards.
        let (measure, alphas, caches) = (Measure(&self.tokenizer), &self.alphas, &mut self.caches);
        let (own, guided, next) = std::thread::scope(|scope| {
            let base = scope.spawn(|| base_new.zip(base_own).map(|(t, l)| measure.stream_record(step, l, t)));
            let rft = scope.spawn(|| rft_new.zip(rft_own).map(|(t, l)| measure.stream_record(step, l, t)));
            let guided: Vec<_> = guided_new
                .iter()
                .map(|(i, t, mixed, [b, r, s])| scope.spawn(move || (*i, measure.guided_record(step, *t, false, alphas[*i], b, r, s, mixed))))
                .collect();
            let next = forward(trio, &feeds, caches);
            ((join(base), join(rft)), guided.into_iter().map(join).collect::<Vec<_>>(), next)
        });
        self.pending = next?;
        // Each new record carries its stream's stop when it ended the stream.
        if let Some(mut r) = own.0 {
            r.stop = self.base.stop.clone();
            self.base.records.push(r);
        }
        if let Some(mut r) = own.1 {
            r.stop = self.rft.stop.clone();
            self.rft.records.push(r);
        }
        for (i, mut rec) in guided {
            rec.stop = self.guided[i].stop.clone();
            self.guided[i].records.push(rec);
        }
        Ok(())
    }
}

/// Chooses the next token of the base-only or RFT-only stream, when it has not ended: pushes it
/// and updates the stream's stop. A NaN in its logits stops the stream with an error.
fn choose_own(stream: &mut Stream<StreamRecord>, name: &str, step: usize, logits: &[f32], settings: &Settings, stop: &dyn Fn(&[u32]) -> Option<Stop>) -> Option<u32> {
    if stream.stop.is_some() {
        return None;
    }
    if let Some(nan) = own_nan_stop(name, step, logits) {
        stream.stop = Some(nan);
        return None;
    }
    let t = guidance::choose(logits, &settings.sampling, step);
    stream.tokens.push(t);
    stream.stop = stop(&stream.tokens);
    Some(t)
}

/// One decoding step of every model that still has rows, each fed one token per row; a model
/// without rows gives no logits.
fn forward(trio: &Trio, feeds: &PerModel<Vec<u32>>, caches: &mut PerModel<KvCache>) -> Result<PerModel<Option<Tensor>>> {
    // One thread launches them all, base then rft then small (as a session does: launching from
    // three threads onto one CUDA device hung in candle 0.11).
    trio.as_ref().zip(caches.as_mut()).zip(feeds.as_ref()).try_map(|_, ((model, cache), tokens)| {
        if tokens.is_empty() {
            return Ok(None);
        }
        model.step(tokens, cache).map(Some)
    })
}
