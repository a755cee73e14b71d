//! Think segments: Thinking models (Qwen3-VL-*-Thinking and other reasoners) write their
//! reasoning between `<think>` and `</think>` before the answer, and a Thinking model's own chat
//! template opens the segment at the end of the prompt, so its stream may start inside one. The
//! UI shows the tokens of a segment apart (dimmed, counted in the pane title); this module holds
//! the rules on token texts, with no model or terminal in it.

/// The tag that opens a think segment.
pub const OPEN: &str = "<think>";
/// The tag that closes it.
pub const CLOSE: &str = "</think>";

/// Whether text (a prompt's end) leaves a think segment open: its last tag is `<think>`.
pub fn ends_open(text: &str) -> bool {
    match (text.rfind(OPEN), text.rfind(CLOSE)) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Where a token leaves the segment state: `(inside, open_after)`, where `inside` says whether
/// the token belongs to a segment (the tags included) and `open_after` whether one is open after it.
pub fn step(open_before: bool, token: &str) -> (bool, bool) {
    let opens = token.contains(OPEN);
    let closes = token.contains(CLOSE);
    let open_after = match (opens, closes) {
        (false, false) => open_before,
        // Both in one token: whichever comes last decides.
        (true, true) => ends_open(token),
        (true, false) => true,
        (false, true) => false,
    };
    (open_before || opens || closes, open_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_ending_in_an_open_tag_starts_inside() {
        assert!(ends_open("<|im_start|>assistant\n<think>\n"));
        assert!(!ends_open("<|im_start|>assistant\n"));
        assert!(!ends_open("<think>\n\n</think>\n\n"));
        assert!(ends_open("</think> then <think>"));
    }

    #[test]
    fn tags_belong_to_their_segment_and_move_the_state() {
        assert_eq!(step(false, "Hello"), (false, false));
        assert_eq!(step(false, "<think>"), (true, true));
        assert_eq!(step(true, " wait"), (true, true));
        assert_eq!(step(true, "</think>"), (true, false));
        assert_eq!(step(false, "</think><think>"), (true, true));
    }
}
