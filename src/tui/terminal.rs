//! Taking over the terminal and giving it back: raw mode, the alternate screen, mouse capture and
//! bracketed paste on entry; the reverse on quit, on error (a guard's `Drop`) and on panic (a hook that restores
//! the terminal before the previous hook prints the panic) and on SIGTERM, SIGHUP and SIGINT
//! ([`crate::interrupt`]). Logs go to a file, never the screen.

use std::io::{stdout, Stdout};
use std::sync::Once;
use std::thread::ThreadId;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::Terminal;

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Gives the terminal back. Safe to call more than once and when it was never taken.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(stdout(), DisableBracketedPaste, DisableMouseCapture, LeaveAlternateScreen, ratatui::crossterm::cursor::Show);
}

/// Owns the terminal while the UI runs; gives it back when dropped (on every way out).
pub struct TerminalGuard {
    pub terminal: Term,
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
        crate::interrupt::set_ui_active(None);
    }
}

/// Installs the panic hook (once), then enters raw mode, the alternate screen and mouse capture.
pub fn enter() -> std::io::Result<TerminalGuard> {
    // Escape codes written into a file or pipe are no UI and garble what is there.
    if !std::io::IsTerminal::is_terminal(&stdout()) {
        return Err(std::io::Error::other(
            "stdout is not a terminal (redirected to a file or pipe); run the UI in a terminal, or use `proxythinker run` for plain output",
        ));
    }
    install_panic_hook(std::thread::current().id());
    // A kill or a closed terminal window must give the terminal back too (see `interrupt`).
    crate::interrupt::install();
    crate::interrupt::set_ui_active(Some(restore));
    enable_raw_mode()?;
    // Bracketed paste: a paste arrives as one event, read whole (typed as keys, more than 1 KiB
    // stalls in crossterm's reader until the next key).
    let entered = execute!(stdout(), EnterAlternateScreen, EnableMouseCapture, EnableBracketedPaste)
        .and_then(|_| Terminal::new(CrosstermBackend::new(stdout())));
    match entered {
        Ok(terminal) => Ok(TerminalGuard { terminal }),
        Err(e) => {
            restore();
            crate::interrupt::set_ui_active(None);
            Err(e)
        }
    }
}

static HOOK: Once = Once::new();

fn install_panic_hook(ui_thread: ThreadId) {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().id() == ui_thread {
                // The UI is going down: give the terminal back first, so the message is readable
                // and the shell is usable.
                restore();
                previous(info);
            } else {
                // Another thread (the engine): printing would scribble over the UI, which keeps
                // running and reports the stopped engine on its status line.
                tracing::error!("panic: {info}");
            }
        }));
    });
}
