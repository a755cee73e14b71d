//! The guided decoding engine: a [`Session`] of three streams advancing in lockstep, and
//! [`Engine`], which runs a session on its own thread, sends records, progress and errors over a
//! channel and takes commands (pause, resume, set α, force, stop). The engine owns α: a change
//! is in force once its `GuidedReset` says so. No terminal code here.

pub mod session;

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::trio::Trio;
pub use session::{
    Candidate, Distribution, GuidedRecord, Record, Session, Settings, Stop, StreamKind, StreamRecord, TOP_K,
};

/// What the engine reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new token of one stream.
    Record(Record),
    /// The answer to a `SetAlpha` or a `Force` the session took: `alpha` is the α now in force,
    /// `changed_from` the guided step from which tokens changed (`None`: every guided token so far
    /// is kept). The `kept` records stay (their α-dependent measures refreshed); everything from
    /// `changed_from` on is gone and will be decoded again. A refused command answers `Error`.
    GuidedReset { alpha: f32, changed_from: Option<usize>, kept: Vec<GuidedRecord> },
    /// After each step: the step count and the decoding rate over the last second.
    Progress { step: usize, tokens_per_second: f64 },
    /// Every stream has ended (the engine waits for commands). Sent again whenever a command
    /// leaves the session ended, and after re-decoding that a command started has ended.
    Finished,
    /// A command was refused or a step failed; the session keeps what it has (and its α).
    Error(String),
}

/// What the engine can be told. Starting over is spawning another engine.
#[derive(Debug, Clone)]
pub enum Command {
    Pause,
    Resume,
    SetAlpha(f32),
    /// Force a token at a guided step.
    Force { step: usize, token: u32 },
    Stop,
}

/// A running engine: send commands, receive events.
pub struct Engine {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

/// The reset that answers a command the session took, then `Finished` if nothing is left to decode.
fn report_reset(session: &Session, changed_from: Option<usize>, events: &Sender<Event>) {
    let _ = events.send(Event::GuidedReset {
        alpha: session.settings().alpha,
        changed_from,
        kept: session.guided_records().to_vec(),
    });
    if session.is_done() {
        let _ = events.send(Event::Finished);
    }
}

impl Engine {
    /// Starts a thread that builds a session with `make` and decodes it.
    pub fn spawn<F>(make: F) -> Engine
    where
        F: FnOnce() -> crate::Result<Session> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = channel::<Command>();
        let (ev_tx, ev_rx) = channel::<Event>();
        let thread = std::thread::spawn(move || {
            let mut session = match make() {
                Ok(s) => s,
                Err(e) => {
                    let _ = ev_tx.send(Event::Error(e.to_string()));
                    return;
                }
            };
            let mut paused = false;
            let mut window = (Instant::now(), 0usize);
            loop {
                // Commands first; block for one only when there is nothing to decode.
                let idle = paused || session.is_done();
                let cmd = if idle {
                    match cmd_rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    cmd_rx.try_recv().ok()
                };
                if let Some(cmd) = cmd {
                    let outcome = match cmd {
                        Command::Stop => return,
                        Command::Pause => {
                            paused = true;
                            Ok(())
                        }
                        Command::Resume => {
                            paused = false;
                            Ok(())
                        }
                        Command::SetAlpha(a) => session.set_alpha(a).map(|changed_from| report_reset(&session, changed_from, &ev_tx)),
                        Command::Force { step, token } => {
                            session.force(step, token).map(|()| report_reset(&session, Some(step), &ev_tx))
                        }
                    };
                    if let Err(e) = outcome {
                        let _ = ev_tx.send(Event::Error(e.to_string()));
                    }
                    continue;
                }
                match session.step() {
                    Ok(records) => {
                        window.1 += records.len();
                        for r in records {
                            if ev_tx.send(Event::Record(r)).is_err() {
                                return;
                            }
                        }
                        let secs = window.0.elapsed().as_secs_f64();
                        let _ = ev_tx.send(Event::Progress {
                            step: session.tokens(StreamKind::Guided).len(),
                            tokens_per_second: window.1 as f64 / secs.max(1e-9),
                        });
                        if secs > 1.0 {
                            window = (Instant::now(), 0);
                        }
                        if session.is_done() {
                            let _ = ev_tx.send(Event::Finished);
                        }
                    }
                    Err(e) => {
                        let _ = ev_tx.send(Event::Error(e.to_string()));
                        paused = true;
                    }
                }
            }
        });
        Engine { commands: cmd_tx, events: ev_rx, thread: Some(thread) }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
