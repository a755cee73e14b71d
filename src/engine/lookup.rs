//! Token lookup: for a string the user types, which token ids it is (the tokenizer's encoding of
//! the string, and the tokens that are exactly the string, with or without a leading space) and
//! how probable each is, and at what rank, under base, RFT, small and the guided mix at one
//! guided step.
//!
//! The session keeps, per guided step, `base[..V]` and `rft[..V] − small[..V]` (for live α), so
//! the base and guided figures are exact over the whole vocabulary. RFT and small are not kept
//! one by one: their figures come from what the step's record holds (its top-10 lists and its
//! why pool), and are absent (shown `—`) for a token outside those. A replayed trace has no
//! vectors and no tokenizer: [`Lookup::from_record`] matches the string against the token
//! texts the record holds and reads every figure from it.

use serde::{Deserialize, Serialize};

use crate::guidance;

use super::session::{Distribution, GuidedRecord};

/// A token's probability and rank under one model; `rank` is `None` when only the probability
/// is known (the token is in the why pool but not in the record's top list).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub prob: f32,
    pub rank: Option<usize>,
}

/// How a looked-up token relates to the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Match {
    /// The token's text is the string.
    Exact,
    /// The token's text is the string after one space (how words mid-sentence are spelled).
    Spaced,
    /// One piece of the string's encoding (the string is more than one token).
    Piece,
}

/// One token of a lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupRow {
    pub token: u32,
    pub text: String,
    pub how: Match,
    pub base: Option<Score>,
    pub rft: Option<Score>,
    pub small: Option<Score>,
    pub guided: Option<Score>,
}

/// The answer to a lookup at one guided step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    pub query: String,
    pub step: usize,
    /// The tokenizer's encoding of the string (empty in a replay: no tokenizer).
    pub encoding: Vec<u32>,
    /// The distinct tokens looked up: exact matches first, then the encoding's pieces.
    pub rows: Vec<LookupRow>,
    /// Base and guided figures are exact over the vocabulary (false in a replay).
    pub exact: bool,
}

/// A token's score from a record's top list and why pool, when it is in one.
fn recorded(d: &Distribution, pool_prob: Option<f32>, token: u32) -> Option<Score> {
    if let Some(k) = d.top.iter().position(|c| c.token == token) {
        return Some(Score { prob: d.top[k].prob, rank: Some(k + 1) });
    }
    pool_prob.map(|prob| Score { prob, rank: None })
}

/// The probability and rank of `token` under `logits` (softmax over all of them).
fn scored(logits: &[f32], token: u32) -> Option<Score> {
    let v = *logits.get(token as usize)?;
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    Some(Score { prob: ((v as f64 - max).exp() / sum) as f32, rank: Some(guidance::rank(logits, token)) })
}

impl LookupRow {
    /// The row of `token` with every figure the record holds.
    fn from_record(record: &GuidedRecord, token: u32, text: String, how: Match) -> LookupRow {
        let pool = record.why.as_ref().and_then(|w| w.rows.iter().find(|r| r.token == token));
        LookupRow {
            token,
            text,
            how,
            base: recorded(&record.base, pool.map(|r| r.probs.base), token),
            rft: recorded(&record.rft, pool.map(|r| r.probs.rft), token),
            small: recorded(&record.small, pool.map(|r| r.probs.small), token),
            guided: recorded(&record.guided, pool.map(|r| r.guided_prob), token),
        }
    }
}

impl Lookup {
    /// A lookup from the record alone (a replay): the tokens the record names whose text is the
    /// string, or the string after a space.
    pub fn from_record(query: &str, record: &GuidedRecord) -> Lookup {
        let mut named: Vec<(u32, String)> = Vec::new();
        let texts = [&record.base, &record.rft, &record.small, &record.guided]
            .into_iter()
            .flat_map(|d| d.top.iter().map(|c| (c.token, c.text.clone())))
            .chain(record.why.iter().flat_map(|w| w.rows.iter().map(|r| (r.token, r.text.clone()))))
            .chain(std::iter::once((record.token, record.text.clone())));
        for (token, text) in texts {
            if !named.iter().any(|(t, _)| *t == token) {
                named.push((token, text));
            }
        }
        let spaced = format!(" {query}");
        let mut rows: Vec<LookupRow> = Vec::new();
        for how in [Match::Exact, Match::Spaced] {
            for (token, text) in &named {
                let hit = match how {
                    Match::Exact => text == query,
                    _ => *text == spaced,
                };
                if hit {
                    rows.push(LookupRow::from_record(record, *token, text.clone(), how));
                }
            }
        }
        Lookup { query: query.to_string(), step: record.step, encoding: Vec::new(), rows, exact: false }
    }

    /// A lookup with the tokenizer's ids and the step's kept vectors: `encoding` is the string's
    /// encoding, `exact` the single tokens that spell the string (`Match::Exact` or
    /// `Match::Spaced`), `base` the step's base logits and `delta` its `rft − small` at `alpha`.
    #[allow(clippy::too_many_arguments)]
    pub fn with_vectors(
        query: &str,
        record: &GuidedRecord,
        encoding: Vec<u32>,
        exact: Vec<(u32, Match)>,
        text: impl Fn(u32) -> String,
        base: &[f32],
        delta: &[f32],
        alpha: f32,
    ) -> Lookup {
        let mixed = guidance::combine(base, delta, alpha);
        let mut wanted: Vec<(u32, Match)> = exact;
        for &t in &encoding {
            if !wanted.iter().any(|(w, _)| *w == t) {
                wanted.push((t, Match::Piece));
            }
        }
        let rows = wanted
            .into_iter()
            .map(|(token, how)| {
                let mut row = LookupRow::from_record(record, token, text(token), how);
                row.base = scored(base, token).or(row.base);
                row.guided = scored(&mixed, token).or(row.guided);
                row
            })
            .collect();
        Lookup { query: query.to_string(), step: record.step, encoding, rows, exact: true }
    }
}
