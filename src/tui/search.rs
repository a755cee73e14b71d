//! Finding things in the streams: text search (`/`, then `n` / `N`), guided flips (`f` / `F`)
//! and spikes of the selected measure (`s` / `S`). Pure functions of the records.
//!
//! Search matches the streams' raw text (the tokens joined), so a match may span tokens; it is
//! case-insensitive unless the query holds a capital letter ("smart case"). Matches are listed
//! the focused pane first (in stream order), then the panes after it, and `n` / `N` walk that
//! list round and round.
//!
//! A **spike** is a token whose value of the measure is above the stream's mean + 2σ (over the
//! stream's finite values, computed when the key is pressed, so it follows the stream as it
//! grows and as α changes): a fixed rule that needs no tuning, that finds few tokens in a calm
//! stream and none in a flat one, and that under "flipped" (values 0 or 1) picks the flips of a
//! stream that rarely flips. On the base and RFT panes the measure is their own −log p (or
//! entropy), as the heatmap shows them.

use super::app::{App, Pane};
use super::measure::Measure;

/// One match: the pane and its first and last token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub pane: Pane,
    pub first: usize,
    pub last: usize,
}

/// A search in force: the query, its matches in walking order and the one selected.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub query: String,
    /// The pane the search started in: its matches come first.
    pub from: Pane,
    pub hits: Vec<Hit>,
    /// Index into `hits` of the selected match.
    pub current: Option<usize>,
}

/// The raw texts of a pane's tokens.
fn texts(app: &App, pane: Pane) -> Vec<&str> {
    match pane {
        Pane::Base => app.base.iter().map(|r| r.text.as_str()).collect(),
        Pane::Rft => app.rft.iter().map(|r| r.text.as_str()).collect(),
        Pane::Guided => app.guided.iter().map(|r| r.text.as_str()).collect(),
    }
}

/// The panes in walking order: `from` first.
pub fn pane_order(from: Pane) -> [Pane; 3] {
    [from, from.next(), from.next().next()]
}

/// Every match of `query` in pane `pane`, in stream order (matches do not overlap).
pub fn find_in(app: &App, pane: Pane, query: &str) -> Vec<Hit> {
    if query.is_empty() {
        return Vec::new();
    }
    let smart_case = query.chars().any(char::is_uppercase);
    let fold = |s: &str| if smart_case { s.to_string() } else { s.to_lowercase() };
    let needle = fold(query);
    let pieces = texts(app, pane);
    // Where each token starts in the joined (case-folded) text; folding a token on its own keeps
    // the offsets of one token from spilling into the next.
    let mut joined = String::new();
    let mut starts = Vec::with_capacity(pieces.len());
    for p in &pieces {
        starts.push(joined.len());
        joined.push_str(&fold(p));
    }
    let token_at = |byte: usize| starts.partition_point(|&s| s <= byte).saturating_sub(1);
    joined
        .match_indices(needle.as_str())
        .map(|(at, m)| Hit { pane, first: token_at(at), last: token_at(at + m.len().max(1) - 1) })
        .collect()
}

/// Every match of `query`, pane `from` first.
pub fn find(app: &App, from: Pane, query: &str) -> Vec<Hit> {
    pane_order(from).into_iter().flat_map(|p| find_in(app, p, query)).collect()
}

/// Whether token `i` of `pane` is in a match of the search (binary search: hits of a pane are
/// in stream order).
pub fn is_hit(search: &Search, pane: Pane, i: usize) -> bool {
    // Hits are in walking order: by pane (`from` first), then by stream position.
    let rank = |p: Pane| pane_order(search.from).iter().position(|&q| q == p).unwrap_or(0);
    let (lo, hi) = (search.hits.partition_point(|h| rank(h.pane) < rank(pane)), search.hits.partition_point(|h| rank(h.pane) <= rank(pane)));
    let hits = &search.hits[lo..hi];
    let k = hits.partition_point(|h| h.last < i);
    hits.get(k).is_some_and(|h| h.first <= i)
}

/// The match to go to from the cursor: the next (or previous) one in walking order after the
/// one at (pane, cursor), round and round.
pub fn step(hits: &[Hit], current: Option<usize>, pane: Pane, cursor: usize, forward: bool) -> Option<usize> {
    if hits.is_empty() {
        return None;
    }
    let n = hits.len();
    // From the selected match when the cursor is still on it; else from where the cursor is.
    if let Some(c) = current.filter(|&c| c < n && hits[c].pane == pane && (hits[c].first..=hits[c].last).contains(&cursor)) {
        return Some(if forward { (c + 1) % n } else { (c + n - 1) % n });
    }
    let in_pane: Vec<usize> = (0..n).filter(|&k| hits[k].pane == pane).collect();
    if forward {
        in_pane.iter().copied().find(|&k| hits[k].first > cursor).or_else(|| in_pane.last().map(|&k| (k + 1) % n)).or(Some(0))
    } else {
        in_pane
            .iter()
            .rev()
            .copied()
            .find(|&k| hits[k].first < cursor)
            .or_else(|| in_pane.first().map(|&k| (k + n - 1) % n))
            .or(Some(n - 1))
    }
}

/// The guided steps guidance flipped (its choice is not the base model's), in order.
pub fn flips(app: &App) -> Vec<usize> {
    app.guided.iter().enumerate().filter(|(_, r)| r.flipped).map(|(i, _)| i).collect()
}

/// The values of the measure along pane `pane`, as its heatmap colours them.
pub fn values(app: &App, pane: Pane, measure: Measure) -> Vec<f32> {
    let own = |logprob: f32, entropy: f32| if measure == Measure::Entropy { entropy } else { -logprob };
    match pane {
        Pane::Base => app.base.iter().map(|r| own(r.logprob, r.entropy)).collect(),
        Pane::Rft => app.rft.iter().map(|r| own(r.logprob, r.entropy)).collect(),
        Pane::Guided => app.guided.iter().map(|r| measure.guided_value(r)).collect(),
    }
}

/// The threshold of a spike (mean + 2σ of the finite values), and the tokens above it.
pub fn spikes(app: &App, pane: Pane, measure: Measure) -> (f32, Vec<usize>) {
    let v = values(app, pane, measure);
    let finite: Vec<f64> = v.iter().filter(|x| x.is_finite()).map(|&x| x as f64).collect();
    if finite.is_empty() {
        return (f32::NAN, Vec::new());
    }
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let var = finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let threshold = (mean + 2.0 * var.sqrt()) as f32;
    let above = v.iter().enumerate().filter(|(_, &x)| x.is_finite() && x > threshold).map(|(i, _)| i).collect();
    (threshold, above)
}

/// The next (or previous) of `steps` after (before) `at`.
pub fn next_of(steps: &[usize], at: usize, forward: bool) -> Option<usize> {
    if forward {
        steps.iter().copied().find(|&i| i > at)
    } else {
        steps.iter().rev().copied().find(|&i| i < at)
    }
}
