//! How long the UI takes to draw one frame with 4,000 tokens in each of the three panes, on a
//! 200×60 test terminal. Prints one JSON object: the median and worst milliseconds per frame.
//!
//!     cargo run --release --example bench_tui [-- FRAMES]

use proxythinker::tui::synthetic;
use proxythinker::tui::update::{update, Msg};
use proxythinker::tui::view;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200);
    let tokens = 4000;
    let (w, h) = (200u16, 60u16);
    let mut app = synthetic::app(tokens, (w, h));
    let mut terminal = match Terminal::new(TestBackend::new(w, h)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot make a test terminal: {e}");
            std::process::exit(2);
        }
    };
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        // Change the state a little each frame, as decoding and keys do, so nothing is reused
        // by accident: move the cursor, and every tenth frame switch the measure.
        let code = if i % 10 == 9 { KeyCode::Char('m') } else { KeyCode::Left };
        update(&mut app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
        let started = std::time::Instant::now();
        if let Err(e) = terminal.draw(|f| view::draw(f, &app)) {
            eprintln!("error: draw failed: {e}");
            std::process::exit(2);
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "{}",
        serde_json::json!({
            "tokens_per_pane": tokens,
            "terminal": format!("{w}x{h}"),
            "frames": frames,
            "median_ms_per_frame": median,
            "max_ms_per_frame": worst,
        })
    );
}
