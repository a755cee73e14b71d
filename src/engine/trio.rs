//! Loading the three checkpoints of a session and checking that they can guide each other.
//!
//! ProxyThinker mixes logits index by index, so the three models must agree on what every id of
//! the shared vocabulary means: same tokens, same special tokens, same image token. Vocabulary
//! sizes may differ (padding rows); the shared part is the smallest.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::loader::Checkpoint;
use crate::processor::prompt::load_tokenizer;

use super::session::Trio;

/// The three checkpoints with their tokenizers, checked for compatibility, weights not loaded.
pub struct TrioFiles {
    pub base: (Checkpoint, Tokenizer),
    pub rft: (Checkpoint, Tokenizer),
    pub small: (Checkpoint, Tokenizer),
}

impl TrioFiles {
    /// Opens and checks the three checkpoint directories.
    pub fn open(base: &Path, rft: &Path, small: &Path) -> Result<Self> {
        let open = |dir: &Path| -> Result<(Checkpoint, Tokenizer)> {
            let c = Checkpoint::open(dir)?;
            let t = load_tokenizer(&c.tokenizer_file)?;
            Ok((c, t))
        };
        let files = TrioFiles { base: open(base)?, rft: open(rft)?, small: open(small)? };
        check_compatible(&files.base, &files.rft, "--rft")?;
        check_compatible(&files.base, &files.small, "--small")?;
        Ok(files)
    }

    /// Loads the three models' weights, all with one dtype on one device.
    pub fn load(&self, dtype: DType, device: &Device) -> Result<Trio> {
        self.load_placed(&Placement::uniform(dtype, device))
    }

    /// Loads each model with its own dtype on its own device.
    pub fn load_placed(&self, placement: &Placement) -> Result<Trio> {
        let load = |c: &Checkpoint, (dtype, device): &(DType, Device)| c.load_model(*dtype, device).map(Arc::new);
        Ok(Trio {
            base: load(&self.base.0, &placement.base)?,
            rft: load(&self.rft.0, &placement.rft)?,
            small: load(&self.small.0, &placement.small)?,
        })
    }
}

/// Where each model of a trio lives and in which dtype. The paper places its models on
/// different GPUs; the streams only meet as logits, which the session brings together.
#[derive(Debug, Clone)]
pub struct Placement {
    pub base: (DType, Device),
    pub rft: (DType, Device),
    pub small: (DType, Device),
}

impl Placement {
    pub fn uniform(dtype: DType, device: &Device) -> Placement {
        Placement { base: (dtype, device.clone()), rft: (dtype, device.clone()), small: (dtype, device.clone()) }
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
