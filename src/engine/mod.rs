//! The guided decoding engine: a [`Session`] of three streams advancing in lockstep, and
//! [`Engine`], which runs a session on its own thread, sends records, progress and errors over a
//! channel and takes commands (pause, resume, set α, force, restart, stop). No terminal code here.

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
    /// The guided stream was rewritten (new α or a forced token): these records are kept (their
    /// α-dependent measures refreshed), everything after them is gone and will be decoded again.
    GuidedReset { kept: Vec<GuidedRecord> },
    /// After each step: the step count and the decoding rate over the last second.
    Progress { step: usize, tokens_per_second: f64 },
    /// Every stream has ended (the engine waits for commands).
    Finished,
    /// A command or a step failed; the session keeps what it has.
    Error(String),
}

/// What the engine can be told.
#[derive(Debug, Clone)]
pub enum Command {
    Pause,
    Resume,
    SetAlpha(f32),
    /// Force a token at a guided step.
    Force { step: usize, token: u32 },
    /// Start the session over (a fresh prefill with the current settings).
    Restart,
    Stop,
}

/// A running engine: send commands, receive events.
pub struct Engine {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts a thread that builds a session with `make` (given the current α) and decodes it.
    pub fn spawn<F>(mut make: F) -> Engine
    where
        F: FnMut(Option<f32>) -> crate::Result<Session> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = channel::<Command>();
        let (ev_tx, ev_rx) = channel::<Event>();
        let thread = std::thread::spawn(move || {
            let mut session = match make(None) {
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
                        Command::SetAlpha(a) => session
                            .set_alpha(a)
                            .map(|_| {
                                let _ = ev_tx.send(Event::GuidedReset { kept: session.guided_records().to_vec() });
                            }),
                        Command::Force { step, token } => session
                            .force(step, token)
                            .map(|_| {
                                let _ = ev_tx.send(Event::GuidedReset { kept: session.guided_records().to_vec() });
                            }),
                        Command::Restart => make(Some(session.settings().alpha)).map(|s| {
                            session = s;
                            let _ = ev_tx.send(Event::GuidedReset { kept: Vec::new() });
                        }),
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
