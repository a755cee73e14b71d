//! The UI's behaviour without a terminal: `update` on synthetic state, key by key, and the
//! app-level functions behind the effects (image opening, trace export and replay).

use std::path::{Path, PathBuf};

use proxythinker::engine::{Command, Event};
use proxythinker::tui::app::{App, InputPurpose, Mode, Pane, RunState};
use proxythinker::tui::layout;
use proxythinker::tui::measure::{Measure, ALL};
use proxythinker::tui::picture::Thumbnail;
use proxythinker::tui::synthetic;
use proxythinker::tui::trace_io;
use proxythinker::tui::update::{update, Effect, Msg};
use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ch(c: char) -> Msg {
    key(KeyCode::Char(c))
}

fn app(n: usize) -> App {
    synthetic::app(n, (200, 50))
}

fn alpha_sent(effects: &[Effect]) -> Option<f32> {
    match effects {
        [Effect::SendCommand(Command::SetAlpha(a))] => Some(*a),
        _ => None,
    }
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// The engine's answer to a `SetAlpha` that kept every guided token.
fn confirm(a: &mut App, alpha: f32) {
    let kept = a.guided.clone();
    update(a, Msg::Engine(Event::GuidedReset { alpha, changed_from: None, kept }));
}

#[test]
fn bracket_asks_for_alpha_a_tenth_higher_and_shows_it_pending() {
    let mut a = app(5);
    let fx = update(&mut a, ch(']'));
    assert_eq!(alpha_sent(&fx), Some(0.6));
    assert_eq!(a.pending_alpha, Some(0.6));
    assert_eq!(a.alpha, 0.5, "the engine has not confirmed it yet");
    assert_eq!(a.header_alpha_label(), "α=0.60…");
    assert_eq!(a.alpha_label(), "α=0.50");
    confirm(&mut a, 0.6);
    assert_eq!((a.alpha, a.pending_alpha), (0.6, None));
    assert_eq!(a.header_alpha_label(), "α=0.60");
    let fx = update(&mut a, ch('['));
    assert_eq!(alpha_sent(&fx), Some(0.5));
    assert_eq!(a.pending_alpha, Some(0.5));
}

#[test]
fn braces_change_alpha_by_a_hundredth_from_the_pending_value() {
    let mut a = app(5);
    let fx = update(&mut a, ch('{'));
    assert_eq!(alpha_sent(&fx), Some(0.49));
    update(&mut a, ch('}'));
    let fx = update(&mut a, ch('}'));
    assert_eq!(alpha_sent(&fx), Some(0.51), "quick presses accumulate before the engine answers");
    // Ten hundredths land exactly on a tenth: α stays on the grid the header prints.
    for _ in 0..9 {
        update(&mut a, ch('}'));
    }
    assert_eq!(a.pending_alpha, Some(0.6));
    assert_eq!(a.alpha, 0.5);
}

#[test]
fn alpha_goes_below_zero_and_back() {
    let mut a = app(1);
    for _ in 0..6 {
        update(&mut a, ch('['));
    }
    assert_eq!(a.pending_alpha, Some(-0.1));
    confirm(&mut a, -0.1);
    assert_eq!(a.alpha_label(), "α=-0.10");
}

#[test]
fn only_the_confirmation_of_the_last_value_asked_for_ends_the_wait() {
    let mut a = app(5);
    update(&mut a, ch(']'));
    update(&mut a, ch(']'));
    update(&mut a, ch(']'));
    assert_eq!(a.header_alpha_label(), "α=0.80…");
    confirm(&mut a, 0.6);
    assert_eq!(a.alpha, 0.6, "the header's α is the one in force");
    assert_eq!(a.header_alpha_label(), "α=0.80…", "still waiting for 0.80");
    confirm(&mut a, 0.7);
    confirm(&mut a, 0.8);
    assert_eq!((a.alpha, a.pending_alpha), (0.8, None));
}

#[test]
fn the_header_shows_the_alpha_the_engine_reports_not_the_one_asked_for() {
    let mut a = app(5);
    update(&mut a, ch(']'));
    // The engine answers with the α it has in force, whatever was asked.
    confirm(&mut a, 0.55);
    assert_eq!(a.alpha, 0.55);
    assert_eq!(a.header_alpha_label(), "α=0.60…", "0.60 is still unanswered");
    update(&mut a, Msg::Engine(Event::Error("α must be a finite number, got NaN".into())));
    assert_eq!(a.header_alpha_label(), "α=0.55");
}

#[test]
fn a_refused_alpha_drops_the_pending_value_and_keeps_the_engines() {
    let mut a = app(5);
    update(&mut a, ch(']'));
    assert_eq!(a.pending_alpha, Some(0.6));
    update(&mut a, Msg::Engine(Event::Error("α must be a finite number, got NaN".into())));
    assert_eq!(a.pending_alpha, None);
    assert_eq!(a.alpha, 0.5);
    assert_eq!(a.header_alpha_label(), "α=0.50");
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("finite")));
    // The next press starts from the α in force.
    let fx = update(&mut a, ch(']'));
    assert_eq!(alpha_sent(&fx), Some(0.6));
}

#[test]
fn a_stopped_engine_drops_the_pending_alpha() {
    let mut a = app(5);
    update(&mut a, ch(']'));
    update(&mut a, Msg::EngineStopped);
    assert_eq!((a.alpha, a.pending_alpha), (0.5, None));
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("engine has stopped")));
    // The engine's own error, which says more, is kept.
    update(&mut a, Msg::Engine(Event::Error("out of memory".into())));
    update(&mut a, Msg::EngineStopped);
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("out of memory"));
}

#[test]
fn a_restart_starts_at_the_confirmed_alpha() {
    let mut a = app(5);
    update(&mut a, ch(']'));
    let fx = update(&mut a, ch('r'));
    assert!(matches!(fx.as_slice(), [Effect::Restart { .. }]));
    assert_eq!((a.alpha, a.pending_alpha), (0.5, None), "the α asked for went to the old engine");
}

#[test]
fn the_status_line_says_what_the_reset_did() {
    let mut a = app(2493);
    update(&mut a, ch(']'));
    let kept = a.guided[..18].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.6, changed_from: Some(18), kept }));
    assert_eq!(
        a.status.as_ref().map(|s| (s.text.as_str(), s.error)),
        Some(("α=0.60: 18 of 2,493 guided tokens kept, re-decoding from step 18", false))
    );
    let mut a = app(47);
    update(&mut a, ch('['));
    confirm(&mut a, 0.4);
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("α=0.40: all 47 guided tokens kept"));
    let mut a = app(0);
    update(&mut a, ch(']'));
    confirm(&mut a, 0.6);
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("α=0.60 in force (no guided token yet)"));
}

#[test]
fn a_reset_of_a_finished_session_runs_until_the_engine_finishes_again() {
    let mut a = app(10);
    update(&mut a, Msg::Engine(Event::Finished));
    assert_eq!(a.run, RunState::Finished);
    // Every token kept: nothing to decode, still finished.
    update(&mut a, ch(']'));
    confirm(&mut a, 0.6);
    assert_eq!(a.run, RunState::Finished);
    // Tokens changed: running again, until the engine says it has finished.
    update(&mut a, ch(']'));
    let kept = a.guided[..4].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.7, changed_from: Some(4), kept }));
    assert_eq!(a.run, RunState::Running);
    update(&mut a, Msg::Engine(Event::Record(proxythinker::engine::Record::Guided(synthetic::guided_record(4, 9)))));
    assert_eq!(a.run, RunState::Running);
    update(&mut a, Msg::Engine(Event::Finished));
    assert_eq!(a.run, RunState::Finished);
    // A forced token (the engine reports the forced step) does the same; a paused session stays paused.
    let kept = a.guided[..2].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.7, changed_from: Some(2), kept }));
    assert_eq!(a.run, RunState::Running);
    update(&mut a, ch(' '));
    let kept = a.guided[..1].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.7, changed_from: Some(1), kept }));
    assert_eq!(a.run, RunState::Paused);
}

#[test]
fn m_cycles_through_every_measure() {
    let mut a = app(3);
    let mut seen = vec![a.measure];
    for _ in 0..ALL.len() {
        let fx = update(&mut a, ch('m'));
        assert!(fx.is_empty());
        seen.push(a.measure);
    }
    assert_eq!(&seen[..ALL.len()], &ALL[..]);
    assert_eq!(seen[ALL.len()], Measure::KlGuidedBase, "wraps around");
}

#[test]
fn cursor_moves_and_clamps_at_both_ends() {
    let mut a = app(10);
    assert_eq!(a.cursor, 9, "follows the newest token");
    assert!(a.follow);
    update(&mut a, key(KeyCode::Right));
    assert_eq!(a.cursor, 9, "clamped at the end");
    assert!(!a.follow);
    update(&mut a, ch('h'));
    assert_eq!(a.cursor, 8);
    update(&mut a, key(KeyCode::Left));
    assert_eq!(a.cursor, 7);
    update(&mut a, ch('g'));
    assert_eq!(a.cursor, 0);
    update(&mut a, key(KeyCode::Left));
    assert_eq!(a.cursor, 0, "clamped at the start");
    update(&mut a, ch('l'));
    assert_eq!(a.cursor, 1);
    update(&mut a, ch('G'));
    assert_eq!(a.cursor, 9);
    assert!(a.follow);
}

#[test]
fn a_new_token_moves_the_cursor_only_while_following() {
    let mut a = app(4);
    update(&mut a, Msg::Engine(Event::Record(proxythinker::engine::Record::Guided(synthetic::guided_record(4, 3)))));
    assert_eq!(a.cursor, 4);
    update(&mut a, ch('h'));
    update(&mut a, Msg::Engine(Event::Record(proxythinker::engine::Record::Guided(synthetic::guided_record(5, 3)))));
    assert_eq!(a.cursor, 3, "the user's cursor stays");
    assert_eq!(a.guided.len(), 6);
}

#[test]
fn down_and_up_move_by_wrapped_lines() {
    let mut a = app(400);
    update(&mut a, ch('g'));
    let lines = layout::pane_lines(&a, Pane::Guided).expect("layout");
    update(&mut a, ch('j'));
    assert_eq!(layout::line_of(&lines.starts, a.cursor), 1, "one line down");
    update(&mut a, key(KeyCode::Down));
    assert_eq!(layout::line_of(&lines.starts, a.cursor), 2);
    update(&mut a, ch('k'));
    assert_eq!(layout::line_of(&lines.starts, a.cursor), 1);
    update(&mut a, key(KeyCode::Up));
    update(&mut a, key(KeyCode::Up));
    assert_eq!(a.cursor, 0, "clamped on the first line");
}

#[test]
fn moving_the_cursor_scrolls_the_panes_to_show_it() {
    let mut a = app(2000);
    assert_eq!(a.scroll, [None; 3]);
    update(&mut a, ch('g'));
    assert_eq!(a.scroll[Pane::Guided.index()], Some(0));
    let lines = layout::pane_lines(&a, Pane::Guided).expect("layout");
    assert!(lines.top == 0);
}

#[test]
fn enter_forces_the_selected_candidate_at_the_cursor() {
    let mut a = app(10);
    update(&mut a, ch('h'));
    update(&mut a, ch('h'));
    assert_eq!(a.cursor, 7);
    update(&mut a, ch('c'));
    update(&mut a, ch('c'));
    update(&mut a, ch('C'));
    assert_eq!(a.candidate, 1);
    let want = a.guided[7].guided.top[1].token;
    let fx = update(&mut a, key(KeyCode::Enter));
    match fx.as_slice() {
        [Effect::SendCommand(Command::Force { step, token })] => {
            assert_eq!(*step, 7);
            assert_eq!(*token, want);
        }
        other => panic!("expected one Force, got {other:?}"),
    }
}

#[test]
fn candidate_selection_stays_in_the_top_k() {
    let mut a = app(3);
    for _ in 0..30 {
        update(&mut a, ch('c'));
    }
    assert_eq!(a.candidate, a.guided[a.cursor].guided.top.len() - 1);
    for _ in 0..30 {
        update(&mut a, ch('C'));
    }
    assert_eq!(a.candidate, 0);
}

#[test]
fn enter_without_a_guided_token_says_so_and_sends_nothing() {
    let mut a = app(0);
    let fx = update(&mut a, key(KeyCode::Enter));
    assert!(fx.is_empty());
    assert!(a.status.as_ref().is_some_and(|s| s.error));
}

#[test]
fn guided_reset_truncates_the_guided_pane_only() {
    let mut a = app(10);
    let kept = a.guided[..4].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.5, changed_from: Some(4), kept }));
    assert_eq!(a.guided.len(), 4);
    assert_eq!(a.len(Pane::Guided), 4);
    assert_eq!(a.len(Pane::Base), 10);
    assert_eq!(a.len(Pane::Rft), 10);
    assert_eq!(a.cursor, 3, "a following cursor moves to the newest kept token");
}

#[test]
fn guided_reset_clamps_a_cursor_past_the_end() {
    let mut a = app(10);
    a.focus = Pane::Guided;
    update(&mut a, ch('h'));
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.5, changed_from: Some(0), kept: Vec::new() }));
    assert!(a.guided.is_empty());
    assert!(a.cursor < 10);
}

#[test]
fn engine_events_fill_the_panes_and_the_header() {
    let mut a = app(0);
    assert_eq!(a.run, RunState::Loading);
    use proxythinker::engine::Record;
    update(&mut a, Msg::Engine(Event::Record(Record::Base(synthetic::stream_record(0, 1)))));
    update(&mut a, Msg::Engine(Event::Record(Record::Rft(synthetic::stream_record(0, 2)))));
    update(&mut a, Msg::Engine(Event::Record(Record::Guided(synthetic::guided_record(0, 3)))));
    update(&mut a, Msg::Engine(Event::Progress { step: 1, tokens_per_second: 42.0 }));
    assert_eq!((a.len(Pane::Base), a.len(Pane::Rft), a.len(Pane::Guided)), (1, 1, 1));
    assert_eq!(a.step, 1);
    assert_eq!(a.tokens_per_second, 42.0);
    assert_eq!(a.run, RunState::Running);
    update(&mut a, Msg::Engine(Event::Finished));
    assert_eq!(a.run, RunState::Finished);
    update(&mut a, Msg::Engine(Event::Error("the base model's logits hold NaN".into())));
    assert_eq!(a.status.as_ref().map(|s| (s.text.as_str(), s.error)), Some(("the base model's logits hold NaN", true)));
}

#[test]
fn space_pauses_and_resumes() {
    let mut a = app(3);
    let fx = update(&mut a, ch(' '));
    assert!(matches!(fx.as_slice(), [Effect::SendCommand(Command::Pause)]));
    assert_eq!(a.run, RunState::Paused);
    let fx = update(&mut a, ch(' '));
    assert!(matches!(fx.as_slice(), [Effect::SendCommand(Command::Resume)]));
    assert_eq!(a.run, RunState::Running);
}

#[test]
fn r_restarts_with_the_same_inputs_and_clears_the_streams() {
    let mut a = app(5);
    let fx = update(&mut a, ch('r'));
    match fx.as_slice() {
        [Effect::Restart { question, image }] => {
            assert_eq!(question, "How many circles are in the picture?");
            // The thumbnail's decoded picture itself, not a path to decode again.
            let shown = &a.image.as_ref().expect("a thumbnail").source;
            assert!(image.as_ref().is_some_and(|i| std::sync::Arc::ptr_eq(&i.image, &shown.image)), "{image:?}");
        }
        other => panic!("expected a restart, got {other:?}"),
    }
    assert_eq!(a.len(Pane::Guided) + a.len(Pane::Base) + a.len(Pane::Rft), 0);
    assert_eq!(a.run, RunState::Loading);
}

#[test]
fn e_edits_the_question_and_enter_restarts_with_it() {
    let mut a = app(5);
    update(&mut a, ch('e'));
    assert_eq!(a.input.as_ref().map(|i| i.purpose), Some(InputPurpose::Question));
    // Keys go to the input line while it is open: q types a q, it does not quit.
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    for c in "Which circle is biggest?".chars() {
        assert!(update(&mut a, ch(c)).is_empty());
    }
    update(&mut a, key(KeyCode::Backspace));
    update(&mut a, ch('q'));
    let fx = update(&mut a, key(KeyCode::Enter));
    assert!(a.input.is_none());
    assert_eq!(a.info.question, "Which circle is biggestq");
    assert!(matches!(fx.as_slice(), [Effect::Restart { question, .. }] if question == "Which circle is biggestq"));
    assert_eq!(a.len(Pane::Guided), 0);
}

#[test]
fn esc_cancels_the_edit() {
    let mut a = app(5);
    update(&mut a, ch('e'));
    update(&mut a, ch('!'));
    let fx = update(&mut a, key(KeyCode::Esc));
    assert!(fx.is_empty());
    assert!(a.input.is_none());
    assert_eq!(a.info.question, "How many circles are in the picture?");
    assert_eq!(a.len(Pane::Guided), 5, "the session is kept");
}

#[test]
fn an_empty_question_is_refused_on_the_status_line_and_the_session_kept() {
    let mut a = app(5);
    update(&mut a, ch('e'));
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    update(&mut a, ch(' '));
    let fx = update(&mut a, key(KeyCode::Enter));
    assert!(fx.is_empty(), "no restart");
    let status = a.status.clone().expect("a status");
    assert!(status.error);
    assert!(status.text.contains("question is empty"), "{}", status.text);
    assert_eq!(a.info.question, "How many circles are in the picture?");
    assert_eq!(a.len(Pane::Guided), 5);
}

#[test]
fn o_asks_for_an_image_path_and_opens_it() {
    let mut a = app(5);
    update(&mut a, ch('o'));
    assert_eq!(a.input.as_ref().map(|i| i.purpose), Some(InputPurpose::ImagePath));
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    for c in "/tmp/x.png".chars() {
        update(&mut a, ch(c));
    }
    let fx = update(&mut a, key(KeyCode::Enter));
    assert!(matches!(fx.as_slice(), [Effect::OpenImage(p)] if p == Path::new("/tmp/x.png")));
    // Opened: the image is shown and the session restarts with it.
    let thumbnail = synthetic::thumbnail();
    let fx = update(&mut a, Msg::ImageOpened { path: PathBuf::from("/tmp/x.png"), thumbnail: thumbnail.clone() });
    assert!(matches!(fx.as_slice(), [Effect::Restart { image: Some(i), .. }] if *i == thumbnail.source));
    assert_eq!(a.info.image_path.as_deref(), Some(Path::new("/tmp/x.png")));
}

#[test]
fn a_path_that_is_not_an_image_shows_an_error_and_keeps_the_session() {
    let not_image = fixture("tiny/images/not_an_image.png");
    let err = Thumbnail::open(&not_image).expect_err("not an image");
    let text = err.to_string();
    assert!(text.contains("not_an_image.png"), "{text}");
    let missing = Thumbnail::open(Path::new("/nonexistent/picture.png")).expect_err("missing");
    assert!(missing.to_string().contains("not found"), "{missing}");

    let mut a = app(5);
    let before = a.info.image_path.clone();
    let fx = update(&mut a, Msg::Failed(text.clone()));
    assert!(fx.is_empty());
    assert_eq!(a.status.as_ref().map(|s| (s.text.clone(), s.error)), Some((text, true)));
    assert_eq!(a.info.image_path, before);
    assert_eq!(a.len(Pane::Guided), 5);
}

#[test]
fn the_demo_image_opens() {
    let t = Thumbnail::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/sample.png")).expect("sample image");
    assert_eq!((t.width, t.height), (160, 120), "640×480 shrunk to fit 160×160");
}

#[test]
fn q_quits_and_question_mark_toggles_help() {
    let mut a = app(1);
    assert!(matches!(update(&mut a, ch('q')).as_slice(), [Effect::Quit]));
    assert!(matches!(
        update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL))).as_slice(),
        [Effect::Quit]
    ));
    update(&mut a, ch('?'));
    assert!(a.help);
    // Any key closes the help without acting.
    assert!(update(&mut a, ch(']')).is_empty());
    assert!(!a.help);
    assert_eq!((a.alpha, a.pending_alpha), (0.5, None));
    update(&mut a, ch('?'));
    assert!(matches!(update(&mut a, ch('q')).as_slice(), [Effect::Quit]), "q quits from the help too");
}

#[test]
fn key_releases_are_ignored() {
    let mut a = app(1);
    let mut release = KeyEvent::new(KeyCode::Char(']'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert!(update(&mut a, Msg::Key(release)).is_empty());
    assert_eq!((a.alpha, a.pending_alpha), (0.5, None));
}

#[test]
fn tab_moves_the_focus_between_panes() {
    let mut a = app(1);
    assert_eq!(a.focus, Pane::Guided);
    update(&mut a, key(KeyCode::Tab));
    assert_eq!(a.focus, Pane::Base);
    update(&mut a, key(KeyCode::Tab));
    assert_eq!(a.focus, Pane::Rft);
}

#[test]
fn a_click_selects_the_token_under_the_mouse() {
    let mut a = app(50);
    let areas = layout::areas(ratatui::layout::Rect::new(0, 0, 200, 50)).expect("fits");
    let base = layout::inner(areas.panes[Pane::Base.index()]);
    let lines = layout::pane_lines(&a, Pane::Base).expect("layout");
    // Click the third token of the first visible line of the base pane.
    let line = lines.top;
    let i = lines.starts[line] + 2;
    let x = base.x + layout::column_of(&a.cells[0], &lines.starts, i);
    let click = MouseEvent { kind: MouseEventKind::Down(MouseButton::Left), column: x, row: base.y, modifiers: KeyModifiers::NONE };
    update(&mut a, Msg::Mouse(click));
    assert_eq!(a.focus, Pane::Base);
    assert_eq!(a.cursor, i);
    assert!(!a.follow);
}

#[test]
fn the_wheel_scrolls_and_scrolling_to_the_end_follows_again() {
    let mut a = app(3000);
    let areas = layout::areas(ratatui::layout::Rect::new(0, 0, 200, 50)).expect("fits");
    let g = layout::inner(areas.panes[Pane::Guided.index()]);
    let wheel = |kind| Msg::Mouse(MouseEvent { kind, column: g.x + 1, row: g.y + 1, modifiers: KeyModifiers::NONE });
    let bottom = layout::pane_lines(&a, Pane::Guided).expect("layout").top;
    update(&mut a, wheel(MouseEventKind::ScrollUp));
    assert_eq!(a.scroll[Pane::Guided.index()], Some(bottom - 3));
    update(&mut a, wheel(MouseEventKind::ScrollDown));
    assert_eq!(a.scroll[Pane::Guided.index()], None, "back at the bottom: follow");
}

#[test]
fn resize_is_remembered_for_hit_testing() {
    let mut a = app(1);
    update(&mut a, Msg::Resize(90, 30));
    assert_eq!(a.screen, (90, 30));
    assert!(layout::pane_lines(&a, Pane::Guided).is_some());
    update(&mut a, Msg::Resize(60, 20));
    assert!(layout::pane_lines(&a, Pane::Guided).is_none(), "too small for the layout");
}

#[test]
fn x_exports_a_trace_that_reads_back() {
    let mut a = app(12);
    assert!(matches!(update(&mut a, ch('x')).as_slice(), [Effect::ExportTrace]));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = trace_io::export_path(dir.path());
    trace_io::export(&a, &synthetic::trace_header(&a), &path).expect("export");
    let back = proxythinker::trace::read(&path).expect("a trace");
    assert_eq!(back.records.len(), 36);
    assert_eq!(back.header.alpha, 0.5);
    let replay = trace_io::replay_app(&path);
    assert!(replay.is_replay());
    assert_eq!(replay.guided, a.guided);
    assert_eq!(replay.base, a.base);
    assert_eq!(replay.rft, a.rft);
    assert_eq!(replay.info.question, a.info.question);
}

#[test]
fn replaying_a_file_that_is_not_a_trace_shows_why_and_opens_anyway() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("not_a_trace");
    std::fs::write(&path, "hello\n").expect("write");
    let a = trace_io::replay_app(&path);
    assert_eq!(a.info.mode, Mode::Replay(path.clone()));
    let status = a.status.clone().expect("a status");
    assert!(status.error);
    assert!(status.text.contains("not a proxythinker trace"), "{}", status.text);
    let missing = trace_io::replay_app(Path::new("/nonexistent/trace.jsonl"));
    assert!(missing.status.is_some_and(|s| s.error && s.text.contains("/nonexistent/trace.jsonl")));
}

#[test]
fn a_replay_refuses_what_needs_models_but_keeps_going() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("t.jsonl");
    let four = app(4);
    trace_io::export(&four, &synthetic::trace_header(&four), &path).expect("export");
    let mut a = trace_io::replay_app(&path);
    for k in [ch(']'), ch('{'), ch('a'), ch(' '), ch('r'), ch('e'), ch('o'), key(KeyCode::Enter)] {
        assert!(update(&mut a, k).is_empty());
        assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("replayed trace")));
        assert!(a.input.is_none());
    }
    assert_eq!((a.alpha, a.pending_alpha), (0.5, None));
    assert_eq!(a.len(Pane::Guided), 4);
    // Browsing works.
    update(&mut a, ch('l'));
    assert_eq!(a.cursor, 1);
}

/// An app where every action has something to do: a cursor in the middle, a candidate that can
/// move both ways, a status to clear, a session running.
fn busy_app() -> App {
    let mut a = app(100);
    a.follow = false;
    a.cursor = 50;
    a.candidate = 1;
    a.set_status("something to clear");
    a
}

#[test]
fn every_key_of_the_keymap_does_something() {
    use proxythinker::tui::keymap::BINDINGS;
    for binding in BINDINGS {
        for k in binding.keys {
            let mut a = busy_app();
            let before = format!("{a:?}");
            let fx = update(&mut a, Msg::Key(KeyEvent::new(k.code, k.modifiers)));
            assert!(
                !fx.is_empty() || format!("{a:?}") != before,
                "{} ({:?}) is in the keymap but pressing it does nothing",
                k.label(),
                binding.action
            );
        }
    }
}

#[test]
fn keys_outside_the_keymap_do_nothing() {
    use proxythinker::tui::keymap::binding_for;
    let mut keys: Vec<KeyEvent> = (' '..='~').map(|c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)).collect();
    keys.extend(('a'..='z').map(|c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)));
    keys.extend(('a'..='z').map(|c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT)));
    for code in [
        KeyCode::Backspace,
        KeyCode::Delete,
        KeyCode::Insert,
        KeyCode::PageUp,
        KeyCode::PageDown,
        KeyCode::BackTab,
        KeyCode::F(1),
        KeyCode::F(5),
    ] {
        keys.push(KeyEvent::new(code, KeyModifiers::NONE));
    }
    let mut unbound = 0;
    for k in keys.into_iter().filter(|k| binding_for(k).is_none()) {
        unbound += 1;
        let mut a = busy_app();
        let before = format!("{a:?}");
        let fx = update(&mut a, Msg::Key(k));
        assert!(fx.is_empty() && format!("{a:?}") == before, "{k:?} is not in the keymap (so not in the help) but does something");
    }
    assert!(unbound > 100, "most keys are free");
}

#[test]
fn shift_is_ignored_where_the_character_already_holds_it() {
    let mut a = busy_app();
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT)));
    assert!(a.follow);
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::SHIFT)));
    assert!(a.help);
    // Control is not ignored: Ctrl-Q is not q.
    let mut a = busy_app();
    assert!(update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL))).is_empty());
}

#[test]
fn a_paste_lands_whole_in_the_input_line_as_one_line() {
    let mut a = app(3);
    update(&mut a, ch('e'));
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    let pasted = format!("{}\nsecond line\tq", "x".repeat(4096));
    assert!(update(&mut a, Msg::Paste(pasted)).is_empty(), "a pasted q is text, not quit");
    let text = a.input.as_ref().map(|i| i.text().to_string()).unwrap_or_default();
    assert_eq!(text, format!("{} second line q", "x".repeat(4096)));
    assert!(matches!(update(&mut a, key(KeyCode::Enter)).as_slice(), [Effect::Restart { .. }]));
    // Outside the input line a paste does nothing but say so.
    assert!(update(&mut a, Msg::Paste("]]]q".into())).is_empty());
    assert_eq!(a.alpha, 0.5);
}

#[test]
fn ctrl_c_quits_from_the_input_line_and_control_chords_type_nothing() {
    let mut a = app(3);
    update(&mut a, ch('e'));
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)));
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('x'), KeyModifiers::CONTROL)));
    assert_eq!(a.input.as_ref().map(|i| i.text()), Some(""));
    let fx = update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)));
    assert!(matches!(fx.as_slice(), [Effect::Quit]), "{fx:?}");
}

#[test]
fn refreshed_records_replace_the_stale_ones_of_their_step_and_the_pane_says_how_many_are_left() {
    let mut a = app(6);
    update(&mut a, ch(']'));
    let kept: Vec<_> = a.guided.iter().cloned().map(|mut r| {
        r.stale = true;
        r
    }).collect();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.6, changed_from: None, kept }));
    assert_eq!(a.guided.iter().filter(|r| r.stale).count(), 6);
    let backend = ratatui::backend::TestBackend::new(200, 50);
    let mut term = ratatui::Terminal::new(backend).unwrap();
    let screen = |term: &mut ratatui::Terminal<ratatui::backend::TestBackend>, a: &mut App| -> String {
        term.draw(|f| proxythinker::tui::view::draw(f, a)).unwrap();
        term.backend().buffer().content().iter().map(|c| c.symbol()).collect()
    };
    assert!(screen(&mut term, &mut a).contains("· 6 re-measuring"));
    // Two come back re-measured (a new measure); one for a token no longer at its step is ignored.
    let mut fresh: Vec<_> = [1usize, 4].iter().map(|&i| {
        let mut r = a.guided[i].clone();
        r.stale = false;
        r.kl_guided_base = 9.0;
        r
    }).collect();
    let mut wrong = a.guided[2].clone();
    wrong.token += 1;
    wrong.stale = false;
    fresh.push(wrong);
    update(&mut a, Msg::Engine(Event::Refreshed(fresh)));
    let stale: Vec<usize> = a.guided.iter().filter(|r| r.stale).map(|r| r.step).collect();
    assert_eq!(stale, [0, 2, 3, 5]);
    assert_eq!((a.guided[1].kl_guided_base, a.guided[4].kl_guided_base), (9.0, 9.0));
    assert!(screen(&mut term, &mut a).contains("· 4 re-measuring"));
}

/// `a` after an α change that kept every guided record, all of them stale until re-measured.
fn with_stale_records(n: usize) -> App {
    let mut a = app(n);
    update(&mut a, ch(']'));
    let kept: Vec<_> = a.guided.iter().cloned().map(|mut r| {
        r.stale = true;
        r
    }).collect();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.6, changed_from: None, kept }));
    a
}

fn fresh(a: &App, steps: std::ops::Range<usize>) -> Vec<proxythinker::engine::GuidedRecord> {
    steps.map(|i| {
        let mut r = a.guided[i].clone();
        r.stale = false;
        r
    }).collect()
}

#[test]
fn an_export_asked_for_while_records_are_stale_waits_until_the_last_is_re_measured() {
    let mut a = with_stale_records(6);
    let fx = update(&mut a, ch('x'));
    assert!(fx.is_empty(), "no export of records measured at the old α: {fx:?}");
    let status = a.status.as_ref().map(|s| s.text.clone()).unwrap_or_default();
    assert!(status.contains("export waits for 6 guided records"), "{status}");
    let part = fresh(&a, 0..4);
    let fx = update(&mut a, Msg::Engine(Event::Refreshed(part)));
    assert!(fx.is_empty(), "two records are still stale: {fx:?}");
    let rest = fresh(&a, 4..6);
    let fx = update(&mut a, Msg::Engine(Event::Refreshed(rest)));
    assert!(matches!(fx.as_slice(), [Effect::ExportTrace]), "{fx:?}");
    // Once only.
    let more = fresh(&a, 0..1);
    assert!(update(&mut a, Msg::Engine(Event::Refreshed(more))).is_empty());
    // With nothing stale, `x` exports at once.
    assert!(matches!(update(&mut a, ch('x')).as_slice(), [Effect::ExportTrace]));
}

#[test]
fn a_waiting_export_is_written_when_the_engine_stops_and_dropped_by_a_restart() {
    let mut a = with_stale_records(4);
    update(&mut a, ch('x'));
    let fx = update(&mut a, Msg::EngineStopped);
    assert!(matches!(fx.as_slice(), [Effect::ExportTrace]), "nothing will re-measure them now: {fx:?}");

    let mut a = with_stale_records(4);
    update(&mut a, ch('x'));
    let fx = update(&mut a, ch('r'));
    assert!(matches!(fx.as_slice(), [Effect::Restart { .. }]), "{fx:?}");
    assert!(!a.pending_export);
    assert!(update(&mut a, Msg::EngineStopped).is_empty(), "the export waited for records a restart cleared");
}

#[test]
fn moving_the_cursor_while_records_are_stale_tells_the_engine_where_to_re_measure_first() {
    let mut a = app(6);
    let fx = update(&mut a, key(KeyCode::Left));
    assert!(fx.is_empty(), "nothing stale, nothing to tell: {fx:?}");
    let mut a = with_stale_records(6);
    let fx = update(&mut a, key(KeyCode::Left));
    let at = a.cursor;
    assert!(matches!(fx.as_slice(), [Effect::SendCommand(Command::Focus(s))] if *s == at), "{fx:?}");
    assert!(update(&mut a, ch('?')).is_empty(), "the cursor did not move");
    // An α change made away from the newest token re-measures from the cursor, not from the end.
    update(&mut a, ch('?'));
    let fx = update(&mut a, ch(']'));
    assert!(
        matches!(fx.as_slice(), [Effect::SendCommand(Command::SetAlpha(_)), Effect::SendCommand(Command::Focus(s))] if *s == at),
        "{fx:?}"
    );
}

#[test]
fn an_exported_trace_keeps_its_stale_marks_and_the_replay_calls_them_stale() {
    let a = with_stale_records(5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let header = synthetic::trace_header(&a);
    trace_io::export(&a, &header, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("\"stale\":true").count(), 5, "{text}");
    let (replayed, _) = trace_io::replay(&path);
    assert_eq!(replayed.stale_count(), 5);
    let backend = ratatui::backend::TestBackend::new(200, 50);
    let mut term = ratatui::Terminal::new(backend).unwrap();
    term.draw(|f| proxythinker::tui::view::draw(f, &replayed)).unwrap();
    let screen: String = term.backend().buffer().content().iter().map(|c| c.symbol()).collect();
    assert!(screen.contains("· 5 stale"), "a replay re-measures nothing");
    assert!(!screen.contains("re-measuring"));
}

/// Feeds the RFT pane these token texts.
fn rft_tokens(a: &mut App, texts: &[&str]) {
    for t in texts {
        let mut r = synthetic::stream_record(a.rft.len(), 5);
        r.step = a.rft.len();
        r.text = t.to_string();
        update(a, Msg::Engine(Event::Record(proxythinker::engine::Record::Rft(r))));
    }
}

fn think_flags(a: &App, pane: Pane) -> Vec<bool> {
    a.cells[pane.index()].iter().map(|c| c.think).collect()
}

fn screen_of(a: &mut App) -> ratatui::buffer::Buffer {
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(200, 50)).unwrap();
    term.draw(|f| proxythinker::tui::view::draw(f, a)).unwrap();
    term.backend().buffer().clone()
}

#[test]
fn a_stream_whose_prompt_opened_a_think_segment_is_thinking_until_it_closes_and_the_pane_counts_it() {
    let mut a = App::new(synthetic::app(0, (200, 50)).info, 0.5);
    let opens = proxythinker::trio::PerModel::new(false, true, false);
    update(&mut a, Msg::Engine(Event::Prefilled { opens_in_think: opens }));
    rft_tokens(&mut a, &["Let", " me", " check", "</think>", "\n\n", "The", " answer"]);
    assert_eq!(think_flags(&a, Pane::Rft), [true, true, true, true, false, false, false]);
    // The base pane opened no segment: its own tags delimit one.
    for (i, t) in ["<think>", "hm", "</think>", "3"].iter().enumerate() {
        let mut r = synthetic::stream_record(i, 1);
        r.text = t.to_string();
        update(&mut a, Msg::Engine(Event::Record(proxythinker::engine::Record::Base(r))));
    }
    assert_eq!(think_flags(&a, Pane::Base), [true, true, true, false]);
    let buf = screen_of(&mut a);
    let text: String = buf.content().iter().map(|c| c.symbol()).collect();
    assert!(text.contains("· think 4"), "the RFT pane counts its thinking tokens");
    assert!(text.contains("· think 3"));
    // Thinking tokens are set apart; the answer is not.
    let cell_of = |word: &str| {
        let at = text.find(word).unwrap_or_else(|| panic!("{word} on screen"));
        let index = text[..at].chars().count();
        buf.content()[index].modifier
    };
    use ratatui::style::Modifier;
    assert!(cell_of("check").contains(Modifier::DIM | Modifier::ITALIC));
    assert!(!cell_of("answer").contains(Modifier::DIM));
}

#[test]
fn a_close_tag_never_opened_marks_the_stream_before_it_as_thinking() {
    let mut a = App::new(synthetic::app(0, (200, 50)).info, 0.5);
    rft_tokens(&mut a, &["so", " 3", "</think>", "3"]);
    assert_eq!(think_flags(&a, Pane::Rft), [true, true, true, false]);
    // Once a segment has been seen, a stray close tag changes nothing before it.
    rft_tokens(&mut a, &[" ok", "</think>"]);
    assert_eq!(think_flags(&a, Pane::Rft), [true, true, true, false, false, true]);
}

#[test]
fn a_replayed_own_templates_trace_knows_the_rft_stream_started_thinking() {
    let mut a = App::new(synthetic::app(0, (200, 50)).info, 0.5);
    rft_tokens(&mut a, &["Hmm", " two"]);
    let mut header = synthetic::trace_header(&a);
    header.prompt = "<|im_start|>assistant\n".into();
    let own = |text: &str| proxythinker::trace::TracePrompt { text: text.into(), input_ids: vec![1, 2] };
    header.own_prompts = Some(proxythinker::trace::OwnPrompts { rft: own("<|im_start|>assistant\n<think>\n"), small: own("x") });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    trace_io::export(&a, &header, &path).unwrap();
    let (replayed, _) = trace_io::replay(&path);
    assert_eq!(replayed.think_at_start, [false, true, false]);
    assert_eq!(think_flags(&replayed, Pane::Rft), [true, true]);
}

fn type_text(a: &mut App, text: &str) -> Vec<Effect> {
    let mut fx = Vec::new();
    for c in text.chars() {
        fx = update(a, if c == '\n' { key(KeyCode::Enter) } else { ch(c) });
    }
    fx
}

#[test]
fn a_asks_for_an_exact_alpha_typed_on_the_input_line() {
    let mut a = app(5);
    assert!(update(&mut a, ch('a')).is_empty());
    assert_eq!(a.input.as_ref().map(|i| (i.purpose, i.text())), Some((InputPurpose::Alpha, "")));
    // Typed keys go to the input line, not to the keymap (`]` would change α by 0.1).
    let fx = type_text(&mut a, "0.735\n");
    assert_eq!(alpha_sent(&fx), Some(0.735), "exactly what was typed, not rounded");
    assert!(a.input.is_none());
    assert_eq!(a.pending_alpha, Some(0.735));
    assert_eq!(a.header_alpha_label(), "α=0.735…", "every digit typed is shown");
    assert!(a.status.as_ref().is_some_and(|s| !s.error && s.text.contains("α=0.735 asked for")), "{:?}", a.status);
    // Negative values are α too; what is not a finite number is refused and nothing is sent.
    update(&mut a, ch('a'));
    assert_eq!(alpha_sent(&type_text(&mut a, "-1.5\n")), Some(-1.5));
    for bad in ["abc\n", "inf\n", "NaN\n", "\n"] {
        update(&mut a, ch('a'));
        assert!(type_text(&mut a, bad).is_empty(), "{bad:?}");
        let s = a.status.as_ref().unwrap();
        assert!(s.error && s.text.contains("is not a finite number") && s.text.contains("α stays 0.50"), "{bad:?}: {}", s.text);
    }
    assert_eq!(a.pending_alpha, Some(-1.5));
    // Esc cancels.
    update(&mut a, ch('a'));
    type_text(&mut a, "2");
    assert!(update(&mut a, key(KeyCode::Esc)).is_empty());
    assert!(a.input.is_none());
}

#[test]
fn a_forced_token_says_what_it_did_with_its_text_escaped() {
    let mut a = app(10);
    a.follow = false;
    a.cursor = 6;
    a.candidate = 1;
    a.guided[6].guided.top[1].text = "\u{8}".into();
    let id = a.guided[6].guided.top[1].token;
    update(&mut a, key(KeyCode::Enter));
    assert_eq!(a.status.as_ref().map(|s| s.text.clone()), Some(format!("forcing \"·\" (id {id}) at step 6")));
    let kept = a.guided[..6].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.5, changed_from: Some(6), kept }));
    assert_eq!(
        a.status.as_ref().map(|s| s.text.clone()),
        Some(format!("forced \"·\" (id {id}) at step 6: 6 of 10 guided tokens kept, re-decoding from step 6"))
    );
    // A later α change is reported as one, not as the forcing.
    update(&mut a, ch(']'));
    let kept = a.guided[..3].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.6, changed_from: Some(3), kept }));
    assert_eq!(a.status.as_ref().map(|s| s.text.as_str()), Some("α=0.60: 3 of 6 guided tokens kept, re-decoding from step 3"));
}

#[test]
fn the_header_says_re_decoding_until_the_stream_is_back_and_the_spinner_turns_while_busy() {
    use proxythinker::tui::view::{buffer_text, header};
    let shown = |a: &App| {
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 3)).unwrap();
        t.draw(|f| f.render_widget(header::Header(a), f.area())).unwrap();
        buffer_text(t.backend().buffer())
    };
    let mut a = app(10);
    update(&mut a, Msg::Engine(Event::Finished));
    assert!(shown(&a).contains("· finished") && !a.busy(), "{}", shown(&a));
    update(&mut a, ch(']'));
    let kept = a.guided[..4].to_vec();
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.6, changed_from: Some(4), kept }));
    assert!(shown(&a).contains("⠋ re-decoding from step 4"), "{}", shown(&a));
    // The spinner turns on each tick while busy.
    update(&mut a, Msg::Tick);
    assert!(shown(&a).contains("⠙ re-decoding from step 4"), "{}", shown(&a));
    // Back to the old length: plain running until the engine finishes.
    for s in 4..10 {
        update(&mut a, Msg::Engine(Event::Record(proxythinker::engine::Record::Guided(synthetic::guided_record(s, 9)))));
    }
    assert!(shown(&a).contains("running") && !shown(&a).contains("re-decoding"), "{}", shown(&a));
    update(&mut a, Msg::Engine(Event::Finished));
    assert!(shown(&a).contains("· finished"), "{}", shown(&a));
    // Loading spins too; a replay does not.
    let mut a = app(0);
    assert!(a.busy() && shown(&a).contains("⠋ loading"), "{}", shown(&a));
    a.run = RunState::Replay;
    assert!(!a.busy());
}

#[test]
fn arrows_scroll_the_help_within_its_length_and_other_keys_close_it() {
    use proxythinker::tui::view::help;
    let mut a = synthetic::app(5, (80, 24));
    update(&mut a, ch('?'));
    assert!(a.help && a.help_scroll == 0);
    let max = help::max_scroll((80, 24));
    assert!(max > 0, "the help is taller than 80×24");
    for _ in 0..max + 5 {
        assert!(update(&mut a, key(KeyCode::Down)).is_empty());
    }
    assert_eq!(a.help_scroll, max, "no further than the last line");
    update(&mut a, ch('k'));
    assert_eq!(a.help_scroll, max - 1);
    assert!(a.help, "scrolling keeps the help open");
    // Any other key closes it without acting; opening again starts at the top.
    assert!(update(&mut a, ch(']')).is_empty());
    assert!(!a.help && a.pending_alpha.is_none());
    update(&mut a, ch('?'));
    assert_eq!(a.help_scroll, 0);
}

fn verify_flags(a: &App, pane: Pane) -> Vec<bool> {
    a.cells[pane.index()].iter().map(|c| c.verify).collect()
}

#[test]
fn self_verification_phrases_are_marked_across_tokens_counted_and_jumped_to() {
    let mut a = App::new(synthetic::app(0, (200, 50)).info, 0.5);
    rft_tokens(&mut a, &["So", " 3", ".", " Wait", ",", " let", " me", " check", ":", " await", " 3", ". Actually"]);
    assert_eq!(
        verify_flags(&a, Pane::Rft),
        [false, false, false, true, false, true, true, true, false, false, false, true],
        "\"await\" starts no word; \"let me\" spans two tokens"
    );
    assert_eq!(a.verify_count(Pane::Rft), 4, "wait, let me, check, actually");
    assert_eq!(a.verify_starts(Pane::Rft), [3, 5, 7, 11]);
    let text: String = screen_of(&mut a).content().iter().map(|c| c.symbol()).collect();
    assert!(text.contains("· verify 4"), "the RFT pane counts them");
    // v / V walk the focused pane's phrases.
    a.focus = Pane::Rft;
    a.cursor = 0;
    update(&mut a, ch('v'));
    assert_eq!(a.cursor, 3);
    update(&mut a, ch('v'));
    update(&mut a, ch('v'));
    assert_eq!(a.cursor, 7);
    let status = a.status.as_ref().map(|s| s.text.clone()).unwrap_or_default();
    assert!(status.contains("3 of 4"), "{status}");
    update(&mut a, ch('V'));
    assert_eq!(a.cursor, 5);
    update(&mut a, ch('v'));
    update(&mut a, ch('v'));
    update(&mut a, ch('v'));
    assert_eq!(a.cursor, 11, "stays on the last one");
    assert!(a.status.as_ref().is_some_and(|s| s.text.contains("no self-verification phrase after")));
}

#[test]
fn the_phrases_come_from_the_app_and_an_alpha_reset_recounts_the_guided_pane() {
    let mut a = App::new(synthetic::app(0, (200, 50)).info, 0.5);
    a.phrases = vec!["hmm".into()];
    rft_tokens(&mut a, &[" Wait", " hmm"]);
    assert_eq!(verify_flags(&a, Pane::Rft), [false, true]);
    let mut a = app(0);
    let words = [" Wait", " no", " verify"];
    let records: Vec<_> = words.iter().enumerate().map(|(i, w)| {
        let mut r = synthetic::guided_record(i, 1);
        r.text = w.to_string();
        r
    }).collect();
    for r in records.clone() {
        update(&mut a, Msg::Engine(Event::Record(proxythinker::engine::Record::Guided(r))));
    }
    assert_eq!(a.verify_count(Pane::Guided), 2);
    update(&mut a, Msg::Engine(Event::GuidedReset { alpha: 0.6, changed_from: Some(1), kept: records[..1].to_vec() }));
    assert_eq!(a.verify_count(Pane::Guided), 1, "the cut phrase is not counted");
}

#[test]
fn a_failed_step_leaves_the_header_paused_not_running_and_space_resumes() {
    let mut a = app(3);
    a.run = RunState::Running;
    update(&mut a, Msg::Engine(Event::Error("the base model's logits hold NaN".into())));
    update(&mut a, Msg::Engine(Event::Paused));
    assert_eq!(a.run, RunState::Paused);
    assert!(a.status.as_ref().is_some_and(|s| s.error && s.text.contains("NaN")), "the reason stays");
    let fx = update(&mut a, ch(' '));
    assert!(matches!(fx.as_slice(), [Effect::SendCommand(Command::Resume)]), "{fx:?}");
    assert_eq!(a.run, RunState::Running);
}

// ---- #14: search, flips, spikes, lookup, LaTeX, the line editor ----

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn status(a: &App) -> String {
    a.status.as_ref().map(|s| s.text.clone()).unwrap_or_default()
}

/// Where `needle` occurs in the joined texts of `texts` (case-folded when `fold`), as (first
/// token, last token) pairs: an oracle written apart from the search module.
fn occurrences(texts: &[&str], needle: &str, fold: bool) -> Vec<(usize, usize)> {
    let f = |s: &str| if fold { s.to_lowercase() } else { s.to_string() };
    let mut owner = Vec::new();
    let mut joined = String::new();
    for (i, t) in texts.iter().enumerate() {
        let t = f(t);
        owner.extend(std::iter::repeat_n(i, t.len()));
        joined.push_str(&t);
    }
    let needle = f(needle);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = joined[from..].find(&needle) {
        let at = from + at;
        out.push((owner[at], owner[at + needle.len() - 1]));
        from = at + needle.len();
    }
    out
}

/// A synthetic app whose three streams hold these texts.
fn app_with_texts(panes: [&[&str]; 3]) -> App {
    let mut a = app(0);
    for (i, t) in panes[0].iter().enumerate() {
        let mut r = proxythinker::tui::synthetic::stream_record(i, 1);
        r.text = t.to_string();
        a.push_base(r);
    }
    for (i, t) in panes[1].iter().enumerate() {
        let mut r = proxythinker::tui::synthetic::stream_record(i, 2);
        r.text = t.to_string();
        a.push_rft(r);
    }
    for (i, t) in panes[2].iter().enumerate() {
        let mut r = proxythinker::tui::synthetic::guided_record(i, 3);
        r.text = t.to_string();
        a.push_guided(r);
    }
    a
}

#[test]
fn slash_searches_all_three_streams_focused_pane_first_and_n_walks_the_matches() {
    let mut a = app_with_texts([
        &["There", " are", " 3", ".", " Counting", " done"],
        &["Let", " me", " count", ":", " 1", ".", " Wait", ",", " COUNT", "ING", " again"],
        &["Count", "ing", " them", ":", " 1", ",", " 2", ".", " Count", "ing", " twice"],
    ]);
    a.focus = Pane::Rft;
    a.follow = false;
    a.cursor = 0;
    update(&mut a, ch('/'));
    assert_eq!(a.input.as_ref().map(|i| i.purpose), Some(InputPurpose::Search));
    type_text(&mut a, "counting");
    update(&mut a, key(KeyCode::Enter));
    // " Count" + "ing" across two tokens, in any case; the RFT pane's matches first.
    let want: Vec<(Pane, usize, usize)> = [Pane::Rft, Pane::Guided, Pane::Base]
        .into_iter()
        .flat_map(|p| occurrences(&a.raw_texts(p), "counting", true).into_iter().map(move |(f, l)| (p, f, l)))
        .collect();
    assert!(want.len() >= 3 && want.iter().any(|&(_, f, l)| l == f + 1), "the fixture spans tokens: {want:?}");
    let s = a.search.clone().expect("a search in force");
    assert_eq!(s.hits.iter().map(|h| (h.pane, h.first, h.last)).collect::<Vec<_>>(), want);
    // Enter goes to the first match after the cursor in the focused pane.
    assert_eq!((a.focus, a.cursor), (want[0].0, want[0].1));
    assert!(status(&a).starts_with(&format!("match 1/{}", want.len())), "{}", status(&a));
    update(&mut a, ch('n'));
    assert_eq!((a.focus, a.cursor), (want[1].0, want[1].1));
    for _ in 1..want.len() {
        update(&mut a, ch('n'));
    }
    assert_eq!((a.focus, a.cursor), (want[0].0, want[0].1), "n goes round");
    update(&mut a, ch('N'));
    let last = want[want.len() - 1];
    assert_eq!((a.focus, a.cursor), (last.0, last.1), "N goes back round");
    // Esc clears the search; n then says how to start one.
    update(&mut a, key(KeyCode::Esc));
    assert!(a.search.is_none());
    update(&mut a, ch('n'));
    assert!(status(&a).contains("press /"), "{}", status(&a));
}

#[test]
fn search_is_case_sensitive_with_a_capital_and_says_when_nothing_matches() {
    let mut a = app(60);
    let count = |a: &App, q: &str, fold: bool| Pane::ALL.iter().map(|&p| occurrences(&a.raw_texts(p), q, fold).len()).sum::<usize>();
    for (q, fold) in [("The", false), ("the", true)] {
        update(&mut a, ch('/'));
        type_text(&mut a, q);
        update(&mut a, key(KeyCode::Enter));
        assert_eq!(a.search.as_ref().unwrap().hits.len(), count(&a, q, fold), "{q}");
    }
    assert!(count(&a, "the", true) > count(&a, "The", false), "the fixture tells the two apart");
    update(&mut a, ch('/'));
    type_text(&mut a, "zebra");
    update(&mut a, key(KeyCode::Enter));
    assert!(status(&a).contains("no match of \"zebra\""), "{}", status(&a));
}

#[test]
fn f_and_shift_f_jump_between_flips_of_the_guided_stream() {
    let mut a = app(60);
    let flips: Vec<usize> = a.guided.iter().filter(|r| r.flipped).map(|r| r.step).collect();
    assert!(flips.len() >= 3, "{flips:?}");
    a.focus = Pane::Base;
    a.follow = false;
    a.cursor = 0;
    update(&mut a, ch('f'));
    assert_eq!((a.focus, a.cursor), (Pane::Guided, flips[0]), "f takes the guided pane");
    assert!(status(&a).starts_with(&format!("flip 1/{}", flips.len())), "{}", status(&a));
    update(&mut a, ch('f'));
    assert_eq!(a.cursor, flips[1]);
    update(&mut a, ch('F'));
    assert_eq!(a.cursor, flips[0]);
    update(&mut a, ch('F'));
    assert_eq!(a.cursor, flips[0], "nothing before the first");
    assert!(status(&a).contains("no flip before"), "{}", status(&a));
}

#[test]
fn s_and_shift_s_jump_between_spikes_of_the_selected_measure() {
    let mut a = app(80);
    a.follow = false;
    a.cursor = 0;
    a.focus = Pane::Guided;
    // Uniform values have no spike: three tokens stand out.
    for i in [17, 41, 66] {
        a.guided[i].kl_guided_base = 9.0;
    }
    // Mean + 2σ of the values, computed here on their own.
    let v: Vec<f64> = a.guided.iter().map(|r| a.measure.guided_value(r) as f64).collect();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
    let spikes: Vec<usize> = (0..v.len()).filter(|&i| v[i] > mean + 2.0 * sd).collect();
    assert_eq!(spikes, [17, 41, 66], "the fixture's spikes");
    update(&mut a, ch('s'));
    assert_eq!(a.cursor, spikes[0]);
    assert!(status(&a).starts_with(&format!("spike 1/{}", spikes.len())), "{}", status(&a));
    a.cursor = v.len() - 1;
    update(&mut a, ch('S'));
    assert_eq!(a.cursor, *spikes.last().unwrap());
}

#[test]
fn t_asks_the_engine_for_a_lookup_at_the_cursor_and_shows_only_its_own_answer() {
    use proxythinker::engine::{Lookup, LookupRow, Match, Score};
    use proxythinker::tui::app::LookupAnswer;
    let mut a = app(10);
    a.follow = false;
    a.cursor = 4;
    update(&mut a, ch('t'));
    type_text(&mut a, "red");
    let fx = update(&mut a, key(KeyCode::Enter));
    assert!(matches!(&fx[..], [Effect::SendCommand(Command::Lookup { step: 4, text })] if text == "red"), "{fx:?}");
    assert_eq!(a.lookup.as_ref().map(|l| l.answer.clone()), Some(LookupAnswer::Pending));
    let answer = |query: &str, step: usize| Lookup {
        query: query.into(),
        step,
        encoding: vec![7],
        rows: vec![LookupRow {
            token: 7,
            text: " red".into(),
            how: Match::Spaced,
            base: Some(Score { prob: 0.25, rank: Some(2) }),
            rft: None,
            small: None,
            guided: Some(Score { prob: 0.5, rank: Some(1) }),
        }],
        exact: true,
    };
    // An answer to another question (an earlier `t`) is not this one's.
    update(&mut a, Msg::Engine(Event::Lookup(Box::new(answer("blue", 4)))));
    assert_eq!(a.lookup.as_ref().map(|l| l.answer.clone()), Some(LookupAnswer::Pending));
    update(&mut a, Msg::Engine(Event::Lookup(Box::new(answer("red", 4)))));
    assert_eq!(a.lookup.as_ref().map(|l| l.answer.clone()), Some(LookupAnswer::Done(Box::new(answer("red", 4)))));
    update(&mut a, key(KeyCode::Esc));
    assert!(a.lookup.is_none(), "Esc closes it");
}

#[test]
fn a_replay_answers_a_lookup_from_the_record_itself() {
    use proxythinker::tui::app::LookupAnswer;
    let mut a = app(10);
    a.info.mode = Mode::Replay(PathBuf::from("replayed.trace.jsonl"));
    a.follow = false;
    a.cursor = 3;
    let r = a.guided[3].clone();
    let named = r.base.top[0].clone();
    update(&mut a, ch('t'));
    type_text(&mut a, named.text.trim_start());
    let fx = update(&mut a, key(KeyCode::Enter));
    assert!(fx.is_empty(), "no engine to ask: {fx:?}");
    let Some(LookupAnswer::Done(found)) = a.lookup.as_ref().map(|l| l.answer.clone()) else { panic!("{:?}", a.lookup) };
    let row = found.rows.iter().find(|row| row.token == named.token).unwrap_or_else(|| panic!("{found:?}"));
    assert_eq!(row.base.map(|s| (s.prob, s.rank)), Some((named.prob, Some(1))), "the base's top-1 at that step");
    assert!(!found.exact);
}

#[test]
fn backslash_toggles_latex_in_the_panes_and_the_records_stay_raw() {
    let mut a = app(0);
    for (i, t) in ["x", " =", " \\", "frac", "{", "1", "}{", "2", "}", " \\", "times", " 3"].iter().enumerate() {
        let mut r = proxythinker::tui::synthetic::guided_record(i, 3);
        r.text = t.to_string();
        a.push_guided(r);
    }
    let shown = |a: &App| a.shown_cells(Pane::Guided).iter().map(|c| c.text.clone()).collect::<String>();
    assert_eq!(shown(&a), "x = \\frac{1}{2} \\times 3");
    update(&mut a, ch('\\'));
    assert!(a.latex);
    assert_eq!(shown(&a), "x = ½ × 3");
    assert_eq!(a.guided[3].text, "frac", "the records keep the raw tokens");
    // The cursor on a swallowed token highlights the construct's cell.
    assert_eq!(a.shown_owner(Pane::Guided, 5), 2);
    // A token that arrives while it is on is rendered too.
    let mut r = proxythinker::tui::synthetic::guided_record(12, 3);
    r.text = " \\alpha".into();
    a.push_guided(r);
    assert_eq!(shown(&a), "x = ½ × 3 α");
    update(&mut a, ch('\\'));
    assert_eq!(shown(&a), "x = \\frac{1}{2} \\times 3 \\alpha");
}

#[test]
fn the_question_editor_moves_deletes_words_and_remembers() {
    let mut a = app(3);
    update(&mut a, ch('e'));
    let text = |a: &App| a.input.as_ref().map(|i| i.text().to_string()).unwrap_or_default();
    assert_eq!(text(&a), "How many circles are in the picture?");
    // ← keeps the prefilled question and edits it where the cursor is.
    update(&mut a, key(KeyCode::Left));
    type_text(&mut a, " now");
    assert_eq!(text(&a), "How many circles are in the picture now?");
    update(&mut a, key(KeyCode::Home));
    update(&mut a, Msg::Key(KeyEvent::new(KeyCode::Right, KeyModifiers::CONTROL)));
    type_text(&mut a, "exactly ");
    assert_eq!(text(&a), "How exactly many circles are in the picture now?", "Ctrl-→ goes to the next word's start");
    update(&mut a, ctrl('w'));
    assert_eq!(text(&a), "How many circles are in the picture now?");
    update(&mut a, ctrl('e'));
    update(&mut a, ctrl('w'));
    assert_eq!(text(&a), "How many circles are in the picture ");
    let fx = update(&mut a, key(KeyCode::Enter));
    assert!(matches!(&fx[..], [Effect::Restart { question, .. }] if question == "How many circles are in the picture"), "{fx:?}");
    assert_eq!(a.info.question, "How many circles are in the picture");
    // ↑ brings the confirmed question back; typing into a prefill replaces it.
    update(&mut a, ch('e'));
    type_text(&mut a, "x");
    assert_eq!(text(&a), "x");
    update(&mut a, key(KeyCode::Up));
    assert_eq!(text(&a), "How many circles are in the picture");
    update(&mut a, key(KeyCode::Down));
    assert_eq!(text(&a), "x", "↓ past the newest brings back what was typed");
}

#[test]
fn tab_on_the_image_path_asks_for_a_listing_and_completes_the_common_prefix() {
    use proxythinker::tui::line_edit::Completion;
    let mut a = app(3);
    update(&mut a, ch('o'));
    update(&mut a, ctrl('u'));
    type_text(&mut a, "pics/ca");
    let fx = update(&mut a, key(KeyCode::Tab));
    assert!(matches!(&fx[..], [Effect::CompletePath(t)] if t == "pics/ca"), "{fx:?}");
    let answer = |typed: &str, names: &[&str]| Completion { typed: typed.into(), candidates: names.iter().map(|s| s.to_string()).collect(), truncated: false, error: None };
    // An answer for text that changed since is dropped.
    update(&mut a, Msg::Completed(answer("pics/c", &["cat.png"])));
    assert_eq!(a.input.as_ref().unwrap().text(), "pics/ca");
    update(&mut a, Msg::Completed(answer("pics/ca", &["cat.png", "cattle.png"])));
    assert_eq!(a.input.as_ref().unwrap().text(), "pics/cat");
    update(&mut a, key(KeyCode::Tab));
    update(&mut a, Msg::Completed(answer("pics/cat", &["cat.png", "cattle.png"])));
    assert!(status(&a).contains("2 matches") && status(&a).contains("cattle.png"), "{}", status(&a));
}

#[test]
fn listing_a_directory_finds_names_marks_directories_and_hides_dot_files() {
    use proxythinker::tui::line_edit::list_candidates;
    let dir = tempfile::tempdir().unwrap();
    for f in ["cat.png", "cattle.png", "dog.png", ".cache"] {
        std::fs::write(dir.path().join(f), b"").unwrap();
    }
    std::fs::create_dir(dir.path().join("cats")).unwrap();
    let typed = format!("{}/ca", dir.path().display());
    let c = list_candidates(&typed, dir.path());
    assert_eq!(c.candidates, ["cat.png", "cats/", "cattle.png"]);
    let c = list_candidates(&format!("{}/.", dir.path().display()), dir.path());
    assert_eq!(c.candidates, [".cache"]);
    let c = list_candidates("x/y", &dir.path().join("missing"));
    assert!(c.error.as_deref().is_some_and(|e| e.contains("cannot list")), "{c:?}");
}
