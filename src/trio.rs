//! The three models of a session, and the checks that let them guide each other.
//!
//! [`PerModel`] (re-exported from [`crate::per_model`]) is how the crate spells "three models".
//! The rows each model decodes per step are defined once here, in [`ROW_PLAN`].
//!
//! ProxyThinker mixes logits index by index, so the three models must agree on what every id of
//! the shared vocabulary means: same tokens, same special tokens, same image token. Vocabulary
//! sizes may differ (padding rows); the shared part is the smallest.

use std::path::Path;
use std::sync::Arc;

use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::loader::Checkpoint;
use crate::models::{Decoder, QuantFormat, Quantization};
use crate::placement::Devices;
use crate::processor::prompt::load_tokenizer;

pub use crate::per_model::{PerModel, Role};

/// What one row of a model's batched decoding forward carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// The model's own stream (base alone, or RFT alone).
    Own,
    /// The guided stream, whose tokens all three models are fed.
    Guided,
}

/// The rows of every model's decoding forward, in row order: the base model carries
/// [base-only, guided], the RFT model [rft-only, guided], the small model [guided]. Rows that
/// share a model's weights decode as one batched forward, so each model's weights are read once
/// per step.
pub const ROW_PLAN: PerModel<&[Row]> = PerModel { base: &[Row::Own, Row::Guided], rft: &[Row::Own, Row::Guided], small: &[Row::Guided] };

/// The index of the guided row in `rows`.
pub fn guided_row(rows: &[Row]) -> usize {
    rows.iter().position(|r| *r == Row::Guided).expect("every model decodes the guided row")
}

/// The three loaded models of a session (weights only; caches belong to the session).
pub type Trio = PerModel<Arc<dyn Decoder>>;

/// The three checkpoints with their tokenizers, checked for compatibility, weights not loaded.
pub struct TrioFiles(pub PerModel<(Checkpoint, Tokenizer)>);

impl TrioFiles {
    /// Opens and checks the three checkpoint directories.
    pub fn open(dirs: PerModel<&Path>) -> Result<Self> {
        let files = dirs.try_map(|_, dir| -> Result<(Checkpoint, Tokenizer)> {
            let c = Checkpoint::open(dir)?;
            let t = load_tokenizer(&c.tokenizer_file)?;
            Ok((c, t))
        })?;
        check_compatible(&files.base, &files.rft, Role::Rft.flag())?;
        check_compatible(&files.base, &files.small, Role::Small.flag())?;
        Ok(TrioFiles(files))
    }

    /// Loads each model's weights with its own dtype on its own device, unquantized.
    pub fn load(&self, devices: &Devices) -> Result<Trio> {
        self.load_quantized(devices, PerModel::default())
    }

    /// Loads each model's weights with its own dtype on its own device, its text decoder's linear
    /// layers (and output head, if asked) quantized as its own [`Quantization`] says.
    pub fn load_quantized(&self, devices: &Devices, quants: PerModel<Quantization>) -> Result<Trio> {
        self.0.as_ref().zip(devices.as_ref()).zip(quants).try_map(|_, (((c, _), (dtype, device)), quant)| c.load_decoder_quantized(*dtype, device, quant))
    }

    /// The load notes of the quantized layers that fall back to another format (once per kind of
    /// layer and model).
    pub fn quant_notes(&self, quants: PerModel<QuantFormat>) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for ((role, c), quant) in self.checkpoints().iter().zip(quants.into_array()) {
            notes.extend(c.quant_notes(role.flag(), quant)?);
        }
        Ok(notes)
    }

    /// The checkpoints.
    pub fn checkpoints(&self) -> PerModel<&Checkpoint> {
        self.0.as_ref().map(|(c, _)| c)
    }

    /// The base model's checkpoint and tokenizer: its processor prepares every model's inputs.
    pub fn base(&self) -> &(Checkpoint, Tokenizer) {
        &self.0.base
    }

    /// The shared vocabulary V (the smallest output head).
    pub fn shared_vocab(&self) -> usize {
        self.checkpoints().into_array().iter().map(|c| c.config.text.vocab_size).min().unwrap_or(0)
    }

    /// "note: vocabularies differ (base 152064, rft 151936, small 151936); mixing over the shared
    /// 151936", or None when the three output heads have one size.
    pub fn vocab_note(&self) -> Option<String> {
        let sizes = self.checkpoints().map(|c| c.config.text.vocab_size);
        if sizes.all_equal() {
            return None;
        }
        Some(format!(
            "note: vocabularies differ (base {}, rft {}, small {}); mixing over the shared {}",
            sizes.base,
            sizes.rft,
            sizes.small,
            self.shared_vocab()
        ))
    }
}

/// Refuses a pair whose tokenizers or multimodal token ids disagree on the shared vocabulary.
pub fn check_compatible(base: &(Checkpoint, Tokenizer), other: &(Checkpoint, Tokenizer), flag: &str) -> Result<()> {
    let (bc, bt) = base;
    let (oc, ot) = other;
    let refuse = |what: String| {
        Error::invalid(format!(
            "{flag} {} cannot guide the base {}: {what}; ProxyThinker needs models that share a tokenizer",
            oc.dir.display(),
            bc.dir.display()
        ))
    };
    if bc.config.family != oc.config.family {
        let (a, b) = (bc.config.family.model_type(), oc.config.family.model_type());
        return Err(refuse(format!("it is a {b} model and the base is {a}; all three must be one family")));
    }
    for (name, a, b) in [
        ("image_token_id", bc.config.image_token_id, oc.config.image_token_id),
        ("vision_start_token_id", bc.config.vision_start_token_id, oc.config.vision_start_token_id),
        ("vision_end_token_id", bc.config.vision_end_token_id, oc.config.vision_end_token_id),
    ] {
        if a != b {
            return Err(refuse(format!("{name} is {b}, the base's is {a}")));
        }
    }
    let shared = bc.config.text.vocab_size.min(oc.config.text.vocab_size) as u32;
    let (bsize, osize) = (bt.get_vocab_size(true) as u32, ot.get_vocab_size(true) as u32);
    for id in 0..shared.min(bsize.max(osize)) {
        let (a, b) = (bt.id_to_token(id), ot.id_to_token(id));
        if a != b {
            return Err(refuse(format!(
                "token id {id} is {} in its tokenizer and {} in the base's",
                b.as_deref().map_or("undefined".into(), |s| format!("{s:?}")),
                a.as_deref().map_or("undefined".into(), |s| format!("{s:?}")),
            )));
        }
    }
    let specials = |t: &Tokenizer| -> Vec<(u32, String, bool)> {
        let mut v: Vec<(u32, String, bool)> =
            t.get_added_tokens_decoder().into_iter().map(|(id, tok)| (id, tok.content, tok.special)).collect();
        v.sort();
        v
    };
    let (sa, sb) = (specials(bt), specials(ot));
    if sa != sb {
        let diff = sb.iter().find(|x| !sa.contains(x)).or_else(|| sa.iter().find(|x| !sb.contains(x)));
        return Err(refuse(match diff {
            Some((id, tok, _)) => format!("the special token {tok:?} (id {id}) is not the same in both tokenizers"),
            None => "their special tokens differ".into(),
        }));
    }
    Ok(())
}
