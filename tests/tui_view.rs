//! Snapshots of every widget and of whole frames, drawn with ratatui's TestBackend from
//! synthetic state (tests/snapshots/tui_view__*.snap hold the expected screens), and checks of
//! the colours the snapshots cannot show.

use std::path::PathBuf;

use proxythinker::tui::app::{App, Input, InputPurpose, Mode, Pane};
use proxythinker::tui::measure::{heat, Measure};
use proxythinker::tui::synthetic;
use proxythinker::tui::update::{update, Msg};
use proxythinker::tui::view::{self, buffer_text, footer, header, help, inspector, media, plot, streams};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use ratatui::widgets::Widget;
use ratatui::Terminal;

fn draw_widget<W: Widget>(w: W, width: u16, height: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    t.draw(|f| f.render_widget(w, f.area())).expect("draw");
    t.backend().buffer().clone()
}

fn draw_app(app: &App) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(app.screen.0, app.screen.1)).expect("test terminal");
    t.draw(|f| view::draw(f, app)).expect("draw");
    t.backend().buffer().clone()
}

fn text<W: Widget>(w: W, width: u16, height: u16) -> String {
    buffer_text(&draw_widget(w, width, height))
}

fn key(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

#[test]
fn whole_frame_200x50() {
    let app = synthetic::app(300, (200, 50));
    insta::assert_snapshot!(buffer_text(&draw_app(&app)));
}

#[test]
fn whole_frame_80x24_the_smallest() {
    let app = synthetic::app(40, (80, 24));
    insta::assert_snapshot!(buffer_text(&draw_app(&app)));
}

#[test]
fn whole_frame_while_loading() {
    let app = synthetic::app(0, (120, 36));
    insta::assert_snapshot!(buffer_text(&draw_app(&app)));
}

#[test]
fn too_small_says_so() {
    let app = synthetic::app(10, (60, 20));
    let out = buffer_text(&draw_app(&app));
    assert!(out.contains("too small"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn header_live() {
    let app = synthetic::app(7, (120, 40));
    insta::assert_snapshot!(text(header::Header(&app), 120, 2));
}

#[test]
fn header_demo_says_what_the_models_are() {
    let mut app = synthetic::app(7, (120, 40));
    app.info.mode = Mode::Demo;
    update(&mut app, key(']'));
    let out = text(header::Header(&app), 140, 2);
    assert!(out.contains("DEMO — tiny models trained on a synthetic counting task"));
    assert!(out.contains("α=0.60…"), "pending until the engine confirms it: {out}");
    insta::assert_snapshot!(out);
}

#[test]
fn header_shows_the_alpha_the_engine_confirmed() {
    use proxythinker::engine::Event;
    let mut app = synthetic::app(7, (120, 40));
    update(&mut app, key(']'));
    let kept = app.guided.clone();
    update(&mut app, Msg::Engine(Event::GuidedReset { alpha: 0.6, changed_from: None, kept }));
    let out = text(header::Header(&app), 120, 2);
    assert!(out.contains("α=0.60 ·") && !out.contains('…'), "{out}");
}

#[test]
fn header_replay() {
    let mut app = synthetic::app(7, (120, 40));
    app.info.mode = Mode::Replay(PathBuf::from("run.jsonl"));
    app.run = proxythinker::tui::app::RunState::Replay;
    insta::assert_snapshot!(text(header::Header(&app), 120, 2));
}

#[test]
fn image_and_question() {
    let app = synthetic::app(1, (120, 40));
    let out = text(media::Media(&app, false), 90, 8);
    assert!(out.contains('▀'));
    insta::assert_snapshot!(out);
}

#[test]
fn half_block_image_uses_both_colours() {
    let thumb = synthetic::thumbnail();
    let buf = draw_widget(media::HalfBlockImage(&thumb), 16, 6);
    let cell = &buf[(8, 3)];
    assert_eq!(cell.symbol(), "▀");
    assert!(matches!(cell.fg, Color::Rgb(..)) && matches!(cell.bg, Color::Rgb(..)));
    // The red disc is in the middle of the synthetic picture.
    assert_eq!(cell.fg, Color::Rgb(220, 40, 40));
}

#[test]
fn guided_pane_with_cursor() {
    let mut app = synthetic::app(60, (120, 40));
    update(&mut app, key('h'));
    insta::assert_snapshot!(text(streams::StreamPane { app: &app, pane: Pane::Guided }, 40, 10));
}

#[test]
fn base_pane_names_its_own_measure() {
    let app = synthetic::app(20, (120, 40));
    let out = text(streams::StreamPane { app: &app, pane: Pane::Base }, 40, 8);
    assert!(out.contains("own −log p"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn empty_pane_waits_for_tokens() {
    let app = synthetic::app(0, (120, 40));
    insta::assert_snapshot!(text(streams::StreamPane { app: &app, pane: Pane::Rft }, 40, 5));
}

#[test]
fn heatmap_colours_follow_the_measure() {
    // The scale, worked out on paper from its definition: stops at levels 0, ¼, ½, ¾, 1 of
    // (28,28,36), (36,62,140), (120,50,150), (200,60,60), (250,200,40), linear between, rounded.
    // E.g. ⅛ is halfway from the first stop to the second: ((28+36)/2, (28+62)/2, (36+140)/2);
    // 0.1 is 0.4 of the way: (28+0.4·8, 28+0.4·34, 36+0.4·104) = (31.2, 41.6, 77.6).
    let top = Color::Rgb(250, 200, 40);
    for (level, want) in [
        (0.0, Color::Rgb(28, 28, 36)),
        (0.1, Color::Rgb(31, 42, 78)),
        (0.125, Color::Rgb(32, 45, 88)),
        (0.25, Color::Rgb(36, 62, 140)),
        (0.5, Color::Rgb(120, 50, 150)),
        (0.625, Color::Rgb(160, 55, 105)),
        (0.75, Color::Rgb(200, 60, 60)),
        (0.875, Color::Rgb(225, 130, 50)),
        (1.0, top),
        // Past the top: the top colour; below the bottom: the bottom one.
        (3.0, top),
        (f32::INFINITY, top),
        (-1.0, Color::Rgb(28, 28, 36)),
    ] {
        assert_eq!(heat(level), want, "level {level}");
    }
    // A NaN is not on the scale at all.
    assert_eq!(heat(f32::NAN), Color::Rgb(255, 0, 255));

    // Drawn: the first guided token starts at the pane's inner corner. Its measures are set to
    // known points of each scale: KL 0.5 of a top of 2 is level ¼; JS ln 2 / 2 of a top of ln 2
    // is ½; KL(rft‖small) 1.75 of 2 is ⅞.
    let mut app = synthetic::app(5, (120, 40));
    app.follow = false;
    app.cursor = 4;
    app.guided[0].kl_guided_base = 0.5;
    app.guided[0].js_guided_base = std::f32::consts::LN_2 / 2.0;
    app.guided[0].kl_rft_small = 1.75;
    let first = |app: &App, pane| draw_widget(streams::StreamPane { app, pane }, 60, 5)[(1, 1)].clone();
    assert_eq!(app.measure, Measure::KlGuidedBase);
    assert_eq!(first(&app, Pane::Guided).bg, Color::Rgb(36, 62, 140));
    update(&mut app, key('m'));
    assert_eq!(app.measure, Measure::JsGuidedBase);
    assert_eq!(first(&app, Pane::Guided).bg, Color::Rgb(120, 50, 150));
    update(&mut app, key('m'));
    assert_eq!(app.measure, Measure::KlRftSmall);
    let cell = first(&app, Pane::Guided);
    assert_eq!((cell.bg, cell.fg), (Color::Rgb(225, 130, 50), Color::Black), "dark ink on the hot end");
    // The base pane shows its own surprisal on a scale topped at 8 nats: −log p = 1 is level ⅛.
    app.base[0].logprob = -1.0;
    let cell = first(&app, Pane::Base);
    assert_eq!((cell.bg, cell.fg), (Color::Rgb(32, 45, 88), Color::White));
    // The cursor's token is drawn inverted whatever the measure.
    app.cursor = 0;
    assert_eq!(first(&app, Pane::Guided).bg, Color::White);
}

#[test]
fn a_nan_measure_is_magenta_not_cold_and_the_inspector_prints_nan() {
    let magenta = Color::Rgb(255, 0, 255);
    let mut app = synthetic::app(5, (120, 40));
    app.follow = false;
    app.cursor = 4;
    app.guided[0].kl_guided_base = f32::NAN;
    app.base[0].logprob = f32::NAN;
    for pane in [Pane::Guided, Pane::Base] {
        let buf = draw_widget(streams::StreamPane { app: &app, pane }, 60, 5);
        assert_eq!((buf[(1, 1)].bg, buf[(1, 1)].fg), (magenta, Color::Black), "{pane:?}");
        // Only that token: the others are on the scale.
        let magentas = buf.content().iter().filter(|c| c.bg == magenta).count();
        assert_eq!(magentas, app.cells[pane.index()][0].text.chars().count(), "{pane:?}");
    }
    // The plot's bar of the NaN token is magenta too, however few tokens share its column: its
    // first column is the first token's.
    app.focus = Pane::Guided;
    let buf = draw_widget(plot::Plot(&app), 50, 8);
    let column: Vec<Color> = (1..7).map(|y| buf[(1, y)].fg).collect();
    assert!(column.contains(&magenta), "{column:?}");
    let buf = draw_widget(plot::Plot(&app), 4, 8);
    assert!((1..7).any(|y| buf[(1, y)].fg == magenta), "two columns for five tokens: the first holds the NaN");
    // The inspector prints the value as NaN, not as a number.
    app.cursor = 0;
    let out = text(inspector::Inspector(&app), 110, 16);
    assert!(out.contains("KL(g‖b) NaN "), "{out}");
}

#[test]
fn inspector_of_a_flipped_token() {
    let mut app = synthetic::app(30, (120, 40));
    let flipped = app.guided.iter().position(|r| r.flipped).expect("a flipped token");
    app.follow = false;
    app.cursor = flipped;
    app.candidate = 2;
    let out = text(inspector::Inspector(&app), 110, 16);
    assert!(out.contains("FLIP"), "{out}");
    insta::assert_snapshot!(out);
}

/// An app with the cursor on step `step` of `pane`, at `screen`.
fn inspecting(n: usize, screen: (u16, u16), pane: Pane, step: usize) -> App {
    let mut app = synthetic::app(n, screen);
    app.follow = false;
    app.focus = pane;
    app.cursor = step;
    app
}

#[test]
fn whole_frame_200x55_inspecting_the_guided_why() {
    let app = inspecting(120, (200, 55), Pane::Guided, 37);
    let out = buffer_text(&draw_app(&app));
    let r = &app.guided[37];
    let why = r.why.as_ref().unwrap();
    // The why table: the chosen token (marked) with its id, the logits and probabilities of each
    // model, the shift and the guided probability; the verdict; promoted and suppressed tokens.
    let chosen = &why.rows[0];
    let row = format!("{:.2} {}", chosen.logits.rft, format!("{:.3}", chosen.probs.rft).trim_start_matches('0'));
    assert!(out.lines().any(|l| l.contains('▶') && l.contains(&format!(" {} ", chosen.token)) && l.contains(&row)), "{out}");
    assert!(out.contains("base ℓ p") && out.contains("α·(r−s)") && out.contains("guided"), "{out}");
    assert!(out.contains(&why.verdict(r.base_rank, r.forced)), "{out}");
    assert!(out.contains("▲ promoted") && out.contains("▼ suppressed"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn whole_frame_80x24_inspecting_the_guided_why() {
    let app = inspecting(40, (80, 24), Pane::Guided, 12);
    let out = buffer_text(&draw_app(&app));
    // The narrow table keeps every probability whole and drops the logits.
    assert!(out.contains("base  rft small α·(r−s) guided"), "{out}");
    assert!(!out.contains("base ℓ p"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn the_inspector_shows_the_base_token_under_the_cursor_past_the_guided_end() {
    let mut app = inspecting(30, (200, 55), Pane::Base, 29);
    // The guided stream is shorter (an α change cut it): the base token is still inspected.
    app.reset_guided(app.guided[..10].to_vec());
    app.focus = Pane::Base;
    app.cursor = 29;
    let r = app.base[29].clone();
    let out = text(inspector::Inspector(&app), 128, 16);
    assert!(out.contains(&format!("base {:?} id {}", r.text, r.token)), "{out}");
    assert!(out.contains("inspector · base · step 29"), "{out}");
    assert!(!out.contains("no guided token"), "{out}");
    // Each candidate with its id, so tokens that look alike are told apart.
    let c = &r.top[1];
    assert!(out.lines().any(|l| l.contains(c.text.trim()) && l.contains(&format!(" {} ", c.token))), "{out}");
    insta::assert_snapshot!(out);
    // The RFT pane's token at a step, at 80 columns.
    let app = inspecting(30, (80, 24), Pane::Rft, 3);
    let out = text(inspector::Inspector(&app), 51, 10);
    assert!(out.contains(&format!("rft {:?} id {}", app.rft[3].text, app.rft[3].token)), "{out}");
    insta::assert_snapshot!("inspector_rft_at_80_columns", out);
}

#[test]
fn a_guided_record_without_why_data_says_so() {
    let mut app = inspecting(5, (120, 40), Pane::Guided, 2);
    app.guided[2].why = None;
    let out = text(inspector::Inspector(&app), 110, 12);
    assert!(out.contains("no why table: the trace was written before format version 3"), "{out}");
    assert!(out.contains("KL(g‖b)"), "{out}");
}

/// An app whose three streams have ended: base and guided answer `\boxed{3}`, RFT `4` on its
/// last line; the truth is 3.
fn ended(screen: (u16, u16)) -> App {
    use proxythinker::engine::Stop;
    let mut app = synthetic::app(20, screen);
    let n = app.base.len();
    app.base[n - 2].text = " so \\boxed{3".into();
    app.base[n - 1].text = "}".into();
    app.base[n - 1].stop = Some(Stop::Eos);
    let n = app.rft.len();
    app.rft[n - 1].text = "\nThe answer: 4".into();
    app.rft[n - 1].stop = Some(Stop::MaxNewTokens);
    let n = app.guided.len();
    app.guided[n - 1].text = " \\boxed{3}".into();
    app.guided[n - 1].stop = Some(Stop::StopString("</answer>".into()));
    app.truth = Some("3".into());
    app.run = proxythinker::tui::app::RunState::Finished;
    app
}

#[test]
fn the_end_of_a_run_shows_stop_reasons_answers_and_agreement() {
    let app = ended((200, 55));
    let out = buffer_text(&draw_app(&app));
    assert!(out.contains(" base · eos · 3 ✓ · own −log p "), "{out}");
    assert!(out.contains(" RFT-small · max tokens · The answer: 4 ✗ "), "{out}");
    assert!(out.contains(" guided · stop \"</answer>\" · 3 ✓ "), "{out}");
    assert!(out.contains(" answers  base 3 ✓ · rft The answer: 4 ✗ · guided 3 ✓ — base = guided"), "{out}");
    insta::assert_snapshot!(out);
    // Without --answer: no marks; while streams decode the header says answers are to come.
    let mut app = ended((80, 24));
    app.truth = None;
    let out = buffer_text(&draw_app(&app));
    assert!(!out.contains('✓') && !out.contains('✗'), "{out}");
    insta::assert_snapshot!("the_end_of_a_run_at_80x24", out);
    let app = synthetic::app(5, (200, 55));
    assert!(buffer_text(&draw_app(&app)).contains("answers appear as the streams end"));
}

#[test]
fn inspector_before_any_token() {
    let app = synthetic::app(0, (120, 40));
    insta::assert_snapshot!(text(inspector::Inspector(&app), 60, 6));
}

#[test]
fn inspector_bars() {
    assert_eq!(inspector::bar(1.0, 4), "████");
    assert_eq!(inspector::bar(0.0, 4), "    ");
    assert_eq!(inspector::bar(0.5, 4), "██  ");
    assert_eq!(inspector::bar(0.5625, 2), "█▏");
}

#[test]
fn plot_of_the_measure() {
    let mut app = synthetic::app(120, (120, 40));
    app.follow = false;
    app.cursor = 30;
    insta::assert_snapshot!(text(plot::Plot(&app), 50, 8));
}

#[test]
fn status_line_error_and_input() {
    let mut app = synthetic::app(3, (120, 40));
    app.set_error("image /tmp/x.txt: not a readable image");
    let error = text(footer::StatusLine(&app), 100, 1);
    app.input = Some(Input::new(InputPurpose::Question, proxythinker::tui::line_edit::Editor::with_text("How many?".into())));
    let input = text(footer::StatusLine(&app), 100, 1);
    insta::assert_snapshot!(format!("{error}{input}"));
}

#[test]
fn key_hints() {
    let app = synthetic::app(3, (200, 50));
    insta::assert_snapshot!(text(footer::KeyHints(&app), 200, 1));
}

#[test]
fn narrow_key_hints_keep_help_and_quit() {
    let app = synthetic::app(3, (80, 24));
    let wide = text(footer::KeyHints(&app), 200, 1);
    for width in [80, 60, 40, 20] {
        let out = text(footer::KeyHints(&app), width, 1);
        assert!(out.contains("? help") && out.contains("q quit"), "{width} columns: {out}");
        assert!(!out.trim_end().ends_with('…') && out.trim_end().ends_with("quit"), "no hint cut in half: {out}");
        assert!(out.len() < wide.len() || width == 200);
    }
    // The least important go first: α stays at 80 columns, the export hint does not.
    let out = text(footer::KeyHints(&app), 80, 1);
    assert!(out.contains("[ ] α ±0.1") && !out.contains("export"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn the_help_lists_every_binding_of_the_keymap() {
    use proxythinker::tui::keymap::{BINDINGS, MOUSE};
    for (width, height) in [(140, 72), (120, 40), (80, 24)] {
        // Everything the overlay shows as it is scrolled from top to bottom.
        let max = help::max_scroll((width, height));
        assert_eq!(max == 0, width >= 140, "{width}×{height}: scrolls only when it does not fit");
        let out: String = (0..=max).map(|scroll| text(help::Help { scroll }, width, height)).collect();
        // Nothing cut: each help text's words are all there, in order, wrapped or not.
        let words: String = out.split_whitespace().collect::<Vec<_>>().join(" ");
        for b in BINDINGS {
            let start: String = b.help.chars().take(12).collect();
            let row = format!("{}  {}", b.keys_label(), start.trim_end());
            assert!(out.contains(&row), "{width}×{height}: no row {row:?} for {:?}:\n{out}", b.action);
            let last_word = b.help.split_whitespace().last().unwrap();
            assert!(words.contains(last_word), "{width}×{height}: {:?} cut:\n{out}", b.help);
        }
        for (glyph, what) in help::GLYPHS {
            assert!(out.contains(&format!("{glyph}  {}", what.split(' ').next().unwrap())), "{width}×{height}: glyph {glyph}");
        }
        for (what, _) in MOUSE {
            assert!(out.contains(what), "{width}×{height}: {what}");
        }
    }
}

#[test]
fn help_overlay() {
    let mut app = synthetic::app(100, (120, 40));
    update(&mut app, key('?'));
    let out = buffer_text(&draw_app(&app));
    assert!(out.contains("force the selected candidate"));
    insta::assert_snapshot!(out);
    insta::assert_snapshot!("help_alone", text(help::Help { scroll: 0 }, 100, 30));
    // The smallest terminal: the overlay scrolls; its bottom border says where it is.
    insta::assert_snapshot!("help_smallest", text(help::Help { scroll: 0 }, 80, 24));
    let end = help::max_scroll((80, 24));
    let out = text(help::Help { scroll: end }, 80, 24);
    assert!(out.contains(&format!(" lines {}–", end + 1)) && out.contains("Measures"), "{out}");
    insta::assert_snapshot!("help_smallest_scrolled_to_the_end", out);
}

#[test]
fn terminal_graphics_draw_the_picture_where_half_blocks_would_go() {
    use proxythinker::tui::graphics::Graphics;
    use ratatui_image::picker::{Picker, ProtocolType};
    let mut app = synthetic::app(1, (120, 40));
    app.info.image_path = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/sample.png"));
    let media_area = proxythinker::tui::layout::areas(ratatui::layout::Rect::new(0, 0, 120, 40)).expect("room").media;
    let picture = media::split(&app, media_area).0.expect("a picture area");
    let cells = |buf: &Buffer| -> String {
        let mut s = String::new();
        for y in picture.top()..picture.bottom() {
            for x in picture.left()..picture.right() {
                s.push_str(buf[(x, y)].symbol());
            }
        }
        s
    };

    let mut picker = Picker::halfblocks();
    picker.set_protocol_type(ProtocolType::Kitty);
    let mut graphics = Graphics::with_picker(picker).expect("kitty is a graphics protocol");
    let mut t = Terminal::new(TestBackend::new(120, 40)).expect("test terminal");
    t.draw(|f| view::draw_with_graphics(f, &app, Some(&mut graphics))).expect("draw");
    let drawn = cells(t.backend().buffer());
    assert!(drawn.contains("_G"), "no kitty graphics sequence in the picture's cells");
    assert!(!drawn.contains('▀'), "half-blocks drawn under the graphics");

    // Without graphics the same place holds the half-block picture.
    assert!(cells(&draw_app(&app)).contains('▀'));
    // Half-blocks only: no graphics protocol to use.
    let mut halfblocks = Picker::halfblocks();
    halfblocks.set_protocol_type(ProtocolType::Halfblocks);
    assert!(Graphics::with_picker(halfblocks).is_none());
}

#[test]
fn download_screen_shows_a_gauge_per_file() {
    use proxythinker::tui::download::{DownloadView, Downloads, FileTransfer};
    let file = |repo: &str, file: &str, total: u64, done: u64, finished: Option<bool>| FileTransfer {
        repo: repo.into(),
        file: file.into(),
        total,
        done,
        finished,
    };
    let d = Downloads {
        cache: "/home/me/.cache/huggingface/hub".into(),
        files: vec![
            file("Qwen/Qwen2.5-VL-7B-Instruct", "config.json", 1_400, 1_400, Some(true)),
            file("Qwen/Qwen2.5-VL-7B-Instruct", "model-00001-of-00005.safetensors", 3_900_000_000, 1_300_000_000, None),
        ],
    };
    let out = text(DownloadView(&d), 100, 8);
    assert!(out.contains("1.30 GB / 3.90 GB"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn the_alpha_input_line() {
    let mut app = synthetic::app(5, (80, 24));
    update(&mut app, key('a'));
    for c in "0.735".chars() {
        update(&mut app, key(c));
    }
    let out = text(footer::StatusLine(&app), 80, 1);
    assert!(out.starts_with("α> 0.735"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn the_header_drops_whole_parts_before_cutting_a_number_at_80_columns() {
    let mut app = synthetic::app(2493, (80, 24));
    app.redecoding = Some((18, 2493));
    app.guided[3].stale = true;
    let out = text(header::Header(&app), 80, 3);
    let second = out.lines().nth(1).unwrap();
    assert!(second.contains("step 2493/2493") && second.contains("re-decoding from step 18 · re-measuring 1"), "{out}");
    assert!(second.contains("α=0.50"), "{out}");
    assert!(!second.contains("bf16"), "the dtype goes first: {out}");
    insta::assert_snapshot!(out);
}

/// An app with a search for `query` in force, opened from the guided pane.
fn searching(n: usize, screen: (u16, u16), query: &str) -> App {
    let mut app = inspecting(n, screen, Pane::Guided, 0);
    update(&mut app, key('/'));
    for c in query.chars() {
        update(&mut app, key(c));
    }
    update(&mut app, Msg::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
    app
}

#[test]
fn search_matches_are_highlighted_in_every_pane_the_selected_one_brighter() {
    for (screen, name) in [((200, 55), "search_200x55"), ((80, 24), "search_80x24")] {
        let app = searching(60, screen, "circles");
        let s = app.search.as_ref().expect("a search");
        assert!(s.hits.len() > 3, "{:?}", s.hits);
        let buf = draw_app(&app);
        // Every cell of the screen with a search colour belongs to a " circles" token, and the
        // selected match is the lighter one.
        let mut lit = 0;
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                let c = &buf[(x, y)];
                if c.bg == Color::Cyan || c.bg == Color::LightCyan {
                    lit += 1;
                }
            }
        }
        assert!(lit >= " circles".len(), "no highlighted cells");
        let out = buffer_text(&buf);
        assert!(out.contains(&format!("match 1/{}", s.hits.len())), "{out}");
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn the_inspector_shows_a_lookups_answer() {
    use proxythinker::engine::Lookup;
    use proxythinker::tui::app::{LookupAnswer, LookupState};
    for (screen, name) in [((200, 55), "lookup_200x55"), ((80, 24), "lookup_80x24")] {
        let mut app = inspecting(40, screen, Pane::Guided, 12);
        let r = app.guided[12].clone();
        let word = r.guided.top[0].text.trim_start().to_string();
        let found = Lookup::from_record(&word, &r);
        assert!(!found.rows.is_empty(), "{word:?} is named by the record");
        app.lookup = Some(LookupState { query: word.clone(), step: 12, answer: LookupAnswer::Done(Box::new(found.clone())) });
        let out = buffer_text(&draw_app(&app));
        assert!(out.contains(&format!("look up {word:?} at guided step 12")), "{out}");
        let row = &found.rows[0];
        let guided = row.guided.expect("the guided top-1 is recorded");
        let cell = format!("{} #1", format!("{:.3}", guided.prob).trim_start_matches('0'));
        assert!(out.lines().any(|l| l.contains(&format!(" {} ", row.token)) && l.contains(&cell)), "{cell}\n{out}");
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn a_pending_lookup_says_the_engine_is_asked() {
    use proxythinker::tui::app::{LookupAnswer, LookupState};
    let mut app = inspecting(20, (200, 55), Pane::Guided, 3);
    app.lookup = Some(LookupState { query: "red".into(), step: 3, answer: LookupAnswer::Pending });
    assert!(buffer_text(&draw_app(&app)).contains("asking the engine…"));
    app.lookup = Some(LookupState { query: "red".into(), step: 3, answer: LookupAnswer::Failed("no guided token at step 3".into()) });
    assert!(buffer_text(&draw_app(&app)).contains("no guided token at step 3"));
}

#[test]
fn latex_shown_readably_marks_the_pane_titles() {
    for (screen, name) in [((200, 55), "latex_200x55"), ((80, 24), "latex_80x24")] {
        let mut app = synthetic::app(0, screen);
        let texts = ["So", " \\", "frac", "{", "1", "}{", "2", "}", " \\", "times", " 4", " =", " 2", "^", "{", "2", "}", " \\", "alpha"];
        for (i, t) in texts.iter().enumerate() {
            let mut r = synthetic::guided_record(i, 3);
            r.text = t.to_string();
            app.push_guided(r);
        }
        app.focus = Pane::Guided;
        update(&mut app, key('\\'));
        let out = buffer_text(&draw_app(&app));
        assert!(out.contains("So ½ × 4 = 2² α"), "{out}");
        assert!(out.contains("TeX"), "the titles say the panes are rendered: {out}");
        insta::assert_snapshot!(name, out);
    }
}
