//! The per-token measures the stream panes colour by (the heatmap), and the colour scale.
//!
//! Guided measures come straight from a [`GuidedRecord`]. The base-only and RFT-only streams have
//! no guided distribution, so a guided measure cannot colour them; there each pane is coloured by
//! the stream's own surprisal (−log p of the token it chose), except under "entropy", where every
//! pane shows its own entropy. [`Measure::pane_caption`] says which applies, and the panes print it.
//!
//! Scales are fixed per measure (not stretched to the data), so a colour means the same thing
//! from one token, run and α to the next; values past the top of a scale take its top colour.
//! A NaN measure (a broken distribution) is not on the scale: its level is NaN and it is drawn in
//! [`NAN_COLOUR`], so it cannot pass for an unremarkable token.

use ratatui::style::Color;

use crate::engine::{GuidedRecord, StreamRecord};

/// What the heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    KlGuidedBase,
    JsGuidedBase,
    KlRftSmall,
    Entropy,
    BaseRank,
    Flipped,
}

/// The order `m` cycles through.
pub const ALL: [Measure; 6] = [
    Measure::KlGuidedBase,
    Measure::JsGuidedBase,
    Measure::KlRftSmall,
    Measure::Entropy,
    Measure::BaseRank,
    Measure::Flipped,
];

/// Top of the surprisal scale used on the base and RFT panes (nats).
const SURPRISAL_TOP: f32 = 8.0;

impl Measure {
    pub fn next(self) -> Measure {
        let i = ALL.iter().position(|m| *m == self).unwrap_or(0);
        ALL[(i + 1) % ALL.len()]
    }

    /// The name shown in the UI.
    pub fn name(self) -> &'static str {
        match self {
            Measure::KlGuidedBase => "KL(guided‖base)",
            Measure::JsGuidedBase => "JS(guided,base)",
            Measure::KlRftSmall => "KL(rft‖small)",
            Measure::Entropy => "entropy",
            Measure::BaseRank => "base rank (log)",
            Measure::Flipped => "flipped",
        }
    }

    /// The value at the top of the colour scale, as printed on the legend.
    pub fn scale_top(self) -> f32 {
        match self {
            Measure::KlGuidedBase | Measure::KlRftSmall => 2.0,
            Measure::JsGuidedBase => std::f32::consts::LN_2,
            Measure::Entropy => 6.0,
            Measure::BaseRank => 1000.0,
            Measure::Flipped => 1.0,
        }
    }

    /// The raw value of this measure for a guided token.
    pub fn guided_value(self, r: &GuidedRecord) -> f32 {
        match self {
            Measure::KlGuidedBase => r.kl_guided_base,
            Measure::JsGuidedBase => r.js_guided_base,
            Measure::KlRftSmall => r.kl_rft_small,
            Measure::Entropy => r.guided.entropy,
            Measure::BaseRank => r.base_rank as f32,
            Measure::Flipped => f32::from(u8::from(r.flipped)),
        }
    }

    /// A guided token's position on the colour scale, in [0, 1]; NaN when its value is NaN.
    pub fn guided_level(self, r: &GuidedRecord) -> f32 {
        let v = self.guided_value(r);
        match self {
            // Rank 1 is the base model's own choice: the bottom of the scale. Log scale, because
            // rank 2 and rank 900 are worlds apart while 900 and 1000 are not.
            Measure::BaseRank => (v.max(1.0).log10() / self.scale_top().log10()).clamp(0.0, 1.0),
            _ => unit(v / self.scale_top()),
        }
    }

    /// A base-only or RFT-only token's position on the colour scale, in [0, 1]; NaN when its
    /// value is NaN.
    pub fn stream_level(self, r: &StreamRecord) -> f32 {
        match self {
            Measure::Entropy => unit(r.entropy / Measure::Entropy.scale_top()),
            _ => unit(-r.logprob / SURPRISAL_TOP),
        }
    }

    /// What colours the base and RFT panes under this measure.
    pub fn pane_caption(self) -> &'static str {
        match self {
            Measure::Entropy => "own entropy",
            _ => "own −log p",
        }
    }
}

/// A value on the scale: clamped to [0, 1] (+inf is past the top), NaN kept so the view can tell
/// it apart.
fn unit(x: f32) -> f32 {
    if x.is_nan() {
        f32::NAN
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// The background of a token whose measure is NaN: magenta, a hue the scale never reaches.
pub const NAN_COLOUR: Color = Color::Rgb(255, 0, 255);

/// Stops of the colour scale, from cold (level 0) to hot (level 1). Dark at the bottom so that
/// an unremarkable token looks like plain text on a dark terminal.
const STOPS: [(f32, [u8; 3]); 5] = [
    (0.0, [28, 28, 36]),
    (0.25, [36, 62, 140]),
    (0.5, [120, 50, 150]),
    (0.75, [200, 60, 60]),
    (1.0, [250, 200, 40]),
];

/// The background colour of a level in [0, 1] (clamped), or [`NAN_COLOUR`] for NaN.
pub fn heat(level: f32) -> Color {
    if level.is_nan() {
        return NAN_COLOUR;
    }
    let l = unit(level);
    for pair in STOPS.windows(2) {
        let ((a, ca), (b, cb)) = (pair[0], pair[1]);
        if l <= b {
            let t = if b > a { (l - a) / (b - a) } else { 0.0 };
            let mix = |i: usize| (f32::from(ca[i]) + t * (f32::from(cb[i]) - f32::from(ca[i]))).round() as u8;
            return Color::Rgb(mix(0), mix(1), mix(2));
        }
    }
    let [r, g, b] = STOPS[STOPS.len() - 1].1;
    Color::Rgb(r, g, b)
}

/// A text colour readable on `heat(level)`.
pub fn ink(level: f32) -> Color {
    // Black reads better on magenta, as on the yellow top of the scale.
    if level.is_nan() || unit(level) > 0.85 {
        Color::Black
    } else {
        Color::White
    }
}
