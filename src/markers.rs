//! Self-verification markers: the phrases reasoning models use when they check and correct
//! themselves ("wait", "let me verify", "actually"), found in a stream's text as it grows so
//! that the UI can highlight them, count them per stream and jump between them. A phrase may
//! span tokens (" let", " me"); it must start a word (so "wait" is not found in "await").
//! Matching is ASCII case-insensitive, so byte offsets stay those of the text.

/// The phrases looked for unless the config file's `verification_phrases` says otherwise.
pub const DEFAULT_PHRASES: [&str; 8] = ["wait", "verify", "check", "re-examine", "however", "let me", "mistake", "actually"];

/// The phrases as they are matched (lowercase, trimmed, empty ones dropped).
pub fn normalise(phrases: &[String]) -> Vec<String> {
    phrases.iter().map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()).collect()
}

/// In `window` (the last few tokens' text, the newest from byte `new_from` on), the start and end
/// of a phrase that ends inside the newest token and starts a word, the earliest-starting one if
/// several do.
pub fn match_ending_in(window: &str, new_from: usize, phrases: &[String]) -> Option<(usize, usize)> {
    let lower = window.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut best: Option<(usize, usize)> = None;
    for phrase in phrases {
        for (start, _) in lower.match_indices(phrase.as_str()) {
            let end = start + phrase.len();
            let starts_word = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
            if end > new_from && starts_word && best.is_none_or(|(s, _)| start < s) {
                best = Some((start, end));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_PHRASES.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_phrase_is_found_when_its_last_token_arrives_and_only_at_a_word_start() {
        let p = defaults();
        assert_eq!(match_ending_in(" Let me", 4, &p), Some((1, 7)));
        assert_eq!(match_ending_in(" Let", 0, &p), None, "not yet: \"me\" has not arrived");
        assert_eq!(match_ending_in(" await", 3, &p), None);
        assert_eq!(match_ending_in(" Wait,", 0, &p), Some((1, 5)));
        assert_eq!(match_ending_in("so WAIT", 2, &p), Some((3, 7)));
        // Counted once, when it ends: a later token does not find it again.
        assert_eq!(match_ending_in(" wait there", 5, &p), None);
        assert_eq!(normalise(&[" Hmm ".into(), "".into()]), ["hmm"]);
    }
}
