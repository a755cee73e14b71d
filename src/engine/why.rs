//! Why the guided stream chose its token: per guided step, a small pool of the tokens that
//! matter, each with its logit and probability under base, RFT and small, the guidance shift
//! `α · (rft − small)` and its guided probability, so that the inspector can put them side by
//! side, say in one line what guidance did, and list the tokens it promoted and suppressed most.
//!
//! The pool does not depend on α, so that a record kept across a change of α stays exact: the
//! chosen token, the [`WHY_EACH`] most probable tokens of each model, and among the plausible
//! tokens (probability at least [`PLAUSIBLE`] under base, RFT or small) the [`WHY_EXTREMES`] with
//! the largest and the smallest `rft − small` (the most promoted and suppressed at any α > 0,
//! the other way round below 0). Only the α-dependent fields (`shift`, `guided_prob`,
//! `guided_rank`) are recomputed by [`Why::refresh`] when α changes. A pool holds at most
//! 1 + 3·5 + 2·3 = 22 rows, usually about ten: a few hundred bytes per record, never V-sized.

use serde::{Deserialize, Serialize};

use crate::guidance;
use crate::trio::PerModel;

/// How many of each model's most probable tokens the pool holds.
pub const WHY_EACH: usize = 5;
/// How many of the most promoted and of the most suppressed plausible tokens the pool holds.
pub const WHY_EXTREMES: usize = 3;
/// A token is plausible when one of the three models gives it at least this probability.
pub const PLAUSIBLE: f32 = 1e-3;

/// One token of the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyRow {
    pub token: u32,
    pub text: String,
    /// Raw logits of base, RFT and small.
    pub logits: PerModel<f32>,
    /// Probabilities under base, RFT and small.
    pub probs: PerModel<f32>,
    /// The guidance shift `α · (rft − small)` at the record's α.
    pub shift: f32,
    /// The probability under the guided mix at the record's α.
    pub guided_prob: f32,
}

impl WhyRow {
    /// `rft − small`, computed as the guidance computes it (f32), so `α ·` it is the shift.
    pub fn delta(&self) -> f32 {
        self.logits.rft - self.logits.small
    }

    /// Whether one of the three models finds the token plausible.
    pub fn plausible(&self) -> bool {
        self.probs.base.max(self.probs.rft).max(self.probs.small) >= PLAUSIBLE
    }
}

/// The "why" of one guided step; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Why {
    /// 1-based rank of the chosen token under the guided mix.
    pub guided_rank: usize,
    /// The chosen token first, then the rest of the pool in an order that does not depend on α.
    pub rows: Vec<WhyRow>,
}

/// A model's logits and log-probabilities at one step, over the shared vocabulary.
pub struct ModelView<'a> {
    pub logits: &'a [f32],
    pub logp: &'a [f64],
}

impl Why {
    /// Builds the pool of a step from the three models' logits and log-probabilities, the guided
    /// mix `mixed` and its log-probabilities `guided_logp` at `alpha`; `text` names a token.
    /// `favourites` are the models' most probable tokens (each model's top [`WHY_EACH`], as
    /// [`guidance::top_k`] orders them).
    pub fn new(
        chosen: u32,
        favourites: impl IntoIterator<Item = u32>,
        models: PerModel<ModelView<'_>>,
        alpha: f32,
        mixed: &[f32],
        guided_logp: impl Fn(u32) -> f64,
        text: impl Fn(u32) -> String,
    ) -> Why {
        let mut pool = vec![chosen];
        let add = |t: u32, pool: &mut Vec<u32>| {
            if !pool.contains(&t) {
                pool.push(t);
            }
        };
        for t in favourites {
            add(t, &mut pool);
        }
        let (promoted, suppressed) = extremes(&models);
        for t in promoted.into_iter().chain(suppressed) {
            add(t, &mut pool);
        }
        let rows = pool
            .into_iter()
            .map(|t| {
                let i = t as usize;
                let mut row = WhyRow {
                    token: t,
                    text: text(t),
                    logits: models.as_ref().map(|m| m.logits[i]),
                    probs: models.as_ref().map(|m| m.logp[i].exp() as f32),
                    shift: 0.0,
                    guided_prob: 0.0,
                };
                row.shift = alpha * row.delta();
                row.guided_prob = guided_logp(t).exp() as f32;
                row
            })
            .collect();
        Why { guided_rank: guidance::rank(mixed, chosen), rows }
    }

    /// Brings the α-dependent fields to a new α, its mix `mixed` and the mix's log-probabilities.
    pub fn refresh(&mut self, alpha: f32, mixed: &[f32], guided_logp: impl Fn(u32) -> f64) {
        for row in &mut self.rows {
            row.shift = alpha * row.delta();
            row.guided_prob = guided_logp(row.token).exp() as f32;
        }
        if let Some(chosen) = self.rows.first().map(|r| r.token) {
            self.guided_rank = guidance::rank(mixed, chosen);
        }
    }

    /// The chosen token's row.
    pub fn chosen(&self) -> Option<&WhyRow> {
        self.rows.first()
    }

    /// Up to `n` other tokens of the pool, the most probable under the guided mix first.
    pub fn alternatives(&self, n: usize) -> Vec<&WhyRow> {
        let mut rest: Vec<&WhyRow> = self.rows.iter().skip(1).collect();
        rest.sort_by(|a, b| b.guided_prob.total_cmp(&a.guided_prob).then(a.token.cmp(&b.token)));
        rest.truncate(n);
        rest
    }

    /// Up to `n` plausible tokens guidance raised most (shift > 0), the largest shift first.
    pub fn promoted(&self, n: usize) -> Vec<&WhyRow> {
        self.by_shift(n, |a, b| b.total_cmp(&a), |s| s > 0.0)
    }

    /// Up to `n` plausible tokens guidance lowered most (shift < 0), the smallest shift first.
    pub fn suppressed(&self, n: usize) -> Vec<&WhyRow> {
        self.by_shift(n, |a, b| a.total_cmp(&b), |s| s < 0.0)
    }

    fn by_shift(&self, n: usize, order: impl Fn(f32, f32) -> std::cmp::Ordering, keep: impl Fn(f32) -> bool) -> Vec<&WhyRow> {
        let mut rows: Vec<&WhyRow> = self.rows.iter().filter(|r| r.plausible() && keep(r.shift)).collect();
        rows.sort_by(|a, b| order(a.shift, b.shift).then(a.token.cmp(&b.token)));
        rows.truncate(n);
        rows
    }

    /// One line on what guidance did: "guidance moved `Wait` from base rank 14 to 1: +3.10 from
    /// the reasoner", "`So` is the base's own choice; guidance kept it (shift −0.20)".
    pub fn verdict(&self, base_rank: usize, forced: bool) -> String {
        self.verdict_in(base_rank, forced, usize::MAX)
    }

    /// [`verdict`](Self::verdict) in at most `width` characters where it can be: the short form
    /// (`` `Wait` base #14 → guided #1, +3.10 ``) when the sentence is longer.
    pub fn verdict_in(&self, base_rank: usize, forced: bool, width: usize) -> String {
        let long = self.sentence(base_rank, forced);
        if long.chars().count() <= width {
            return long;
        }
        let Some(c) = self.chosen() else { return String::new() };
        let token = format!("`{}`", crate::printable::terminal_text(&c.text).replace('\n', "↵"));
        let how = if forced { " forced" } else { "" };
        format!("{token}{how} base #{base_rank} → guided #{}, {}", self.guided_rank, signed(c.shift))
    }

    fn sentence(&self, base_rank: usize, forced: bool) -> String {
        let Some(c) = self.chosen() else { return String::new() };
        let token = format!("`{}`", crate::printable::terminal_text(&c.text).replace('\n', "↵"));
        let shift = signed(c.shift);
        if forced {
            return format!("{token} was forced: base rank {base_rank}, guided rank {} (shift {shift})", self.guided_rank);
        }
        if base_rank == self.guided_rank {
            if base_rank == 1 {
                return format!("{token} is the base's own choice; guidance kept it (shift {shift})");
            }
            return format!("{token} has rank {base_rank} under base and guided alike (shift {shift}); it was sampled");
        }
        format!("guidance moved {token} from base rank {base_rank} to {}: {shift} from the reasoner", self.guided_rank)
    }
}

/// A number with its sign (`+3.10`, `−0.42`), as the why table prints shifts.
pub fn signed(x: f32) -> String {
    if x < 0.0 {
        format!("−{:.2}", -x)
    } else {
        format!("+{x:.2}")
    }
}

/// Among the plausible tokens, those with the largest and the smallest `rft − small`, most
/// extreme first: one pass over the shared vocabulary, keeping [`WHY_EXTREMES`] of each.
fn extremes(models: &PerModel<ModelView<'_>>) -> (Vec<u32>, Vec<u32>) {
    let floor = (PLAUSIBLE as f64).ln();
    let mut high: Vec<(f32, u32)> = Vec::new();
    let mut low: Vec<(f32, u32)> = Vec::new();
    let v = models.base.logp.len().min(models.rft.logp.len()).min(models.small.logp.len());
    for i in 0..v {
        if models.base.logp[i].max(models.rft.logp[i]).max(models.small.logp[i]) < floor {
            continue;
        }
        let d = models.rft.logits[i] - models.small.logits[i];
        if d.is_nan() {
            continue;
        }
        keep_best(&mut high, (d, i as u32), |a, b| a > b);
        keep_best(&mut low, (d, i as u32), |a, b| a < b);
    }
    (high.into_iter().map(|e| e.1).collect(), low.into_iter().map(|e| e.1).collect())
}

/// Inserts `e` into `best` (at most [`WHY_EXTREMES`] entries, best first by `better`; ties keep
/// the lower token, which came first).
fn keep_best(best: &mut Vec<(f32, u32)>, e: (f32, u32), better: impl Fn(f32, f32) -> bool) {
    let at = best.iter().position(|b| better(e.0, b.0)).unwrap_or(best.len());
    if at < WHY_EXTREMES {
        best.insert(at, e);
        best.truncate(WHY_EXTREMES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(logits: &'a [f32], logp: &'a [f64]) -> ModelView<'a> {
        ModelView { logits, logp }
    }

    #[test]
    fn the_pool_holds_the_chosen_token_each_models_favourites_and_the_extremes_and_refreshes_with_alpha() {
        // Six tokens; token 5 is implausible everywhere although its rft − small is the largest.
        let b = [2.0f32, 1.0, 0.5, 0.0, -1.0, -30.0];
        let r = [1.0f32, 2.5, 0.5, 0.0, -1.0, -20.0];
        let s = [1.0f32, 0.5, 1.5, 0.0, -1.0, -40.0];
        let (lb, lr, ls) = (guidance::log_softmax(&b), guidance::log_softmax(&r), guidance::log_softmax(&s));
        let d = guidance::delta(&r, &s, 6);
        let why_at = |alpha: f32| {
            let mixed = guidance::combine(&b, &d, alpha);
            let lg = guidance::log_softmax(&mixed);
            let models = PerModel::new(view(&b, &lb), view(&r, &lr), view(&s, &ls));
            let favourites: Vec<u32> = [&lb, &lr, &ls].iter().flat_map(|l| guidance::top_k(l, WHY_EACH)).map(|c| c.0).collect();
            (Why::new(1, favourites, models, alpha, &mixed, |t| lg[t as usize], |t| format!("t{t}")), mixed, lg)
        };
        let (why, _, lg) = why_at(1.0);
        assert_eq!(why.rows[0].token, 1, "the chosen token comes first");
        assert_eq!(why.guided_rank, 1);
        assert!((why.rows[0].shift - 2.0).abs() < 1e-6 && (why.rows[0].guided_prob as f64 - lg[1].exp()).abs() < 1e-6);
        assert_eq!(why.rows[0].logits, PerModel::new(1.0, 2.5, 0.5));
        assert_eq!(why.promoted(3).iter().map(|r| r.token).collect::<Vec<_>>(), [1], "token 5 is not plausible");
        assert_eq!(why.suppressed(3).iter().map(|r| r.token).collect::<Vec<_>>(), [2]);
        assert_eq!(why.verdict(2, false), "guidance moved `t1` from base rank 2 to 1: +2.00 from the reasoner");
        // At a negative α the roles swap; refreshing equals building at that α.
        let (fresh, mixed, lg) = why_at(-1.0);
        let mut kept = why.clone();
        kept.refresh(-1.0, &mixed, |t| lg[t as usize]);
        assert_eq!(kept, fresh);
        assert_eq!(kept.promoted(3).iter().map(|r| r.token).collect::<Vec<_>>(), [2]);
        assert_eq!(kept.suppressed(3).iter().map(|r| r.token).collect::<Vec<_>>(), [1]);
        assert!(kept.guided_rank > 1);
        assert_eq!(kept.alternatives(2).len(), 2);
        assert!(kept.alternatives(9).windows(2).all(|w| w[0].guided_prob >= w[1].guided_prob));
    }
}
