//! The guided decoding engine: a [`Session`] of three streams advancing in lockstep, and
//! [`Engine`], which runs a session on its own thread, sends records, progress and errors over a
//! channel and takes commands (pause, resume, set α, force, stop). The engine owns α: a change
//! is in force once its `GuidedReset` says so. [`Sweep`] decodes one prompt at several α values
//! at once (what `eval` runs per question). No terminal code here.

pub mod lookup;
pub mod session;
pub mod sweep;
pub mod why;

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::trio::Trio;
use crate::trio::PerModel;
pub use session::{
    Candidate, Distribution, GuidedRecord, Record, Session, Settings, Stop, StreamKind, StreamRecord, TOP_K,
};
pub use lookup::{Lookup, LookupRow, Match, Score};
pub use sweep::{Sweep, SweepStream};
pub use why::{Why, WhyRow};

/// What the engine reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The session is prefilled and decoding starts: whether each model's stream opens inside a
    /// think segment (its own prompt ended with `<think>`; the guided stream follows the base
    /// model's prompt).
    Prefilled { opens_in_think: PerModel<bool> },
    /// A new token of one stream.
    Record(Record),
    /// The answer to a `SetAlpha` or a `Force` the session took: `alpha` is the α now in force,
    /// `changed_from` the guided step from which tokens changed (`None`: every guided token so far
    /// is kept). The `kept` records stay (their α-dependent measures refreshed); everything from
    /// `changed_from` on is gone and will be decoded again. A refused command answers `Error`.
    GuidedReset { alpha: f32, changed_from: Option<usize>, kept: Vec<GuidedRecord> },
    /// Kept guided records re-measured at the α in force after a change of α (they arrived
    /// [`stale`](GuidedRecord::stale) in the `GuidedReset`), in step order; each replaces the
    /// record of its step.
    Refreshed(Vec<GuidedRecord>),
    /// After each step: the step count and the decoding rate over the last second.
    Progress { step: usize, tokens_per_second: f64 },
    /// Every stream has ended (the engine waits for commands). Sent again whenever a command
    /// leaves the session ended, and after re-decoding that a command started has ended.
    Finished,
    /// A command was refused or a step failed; the session keeps what it has (and its α).
    Error(String),
    /// A step failed (after its `Error`): the engine has paused itself; `Resume` tries again.
    Paused,
    /// The answer to a `Lookup`: the string's tokens and their figures at the step.
    Lookup(Box<Lookup>),
    /// A `Lookup` could not be answered (no guided token at that step).
    LookupFailed(String),
}

/// What the engine can be told. Starting over is spawning another engine.
#[derive(Debug, Clone)]
pub enum Command {
    Pause,
    Resume,
    SetAlpha(f32),
    /// Force a token at a guided step.
    Force { step: usize, token: u32 },
    /// The guided step the user is looking at: stale records nearest it are re-measured first.
    Focus(usize),
    /// Look a string up at a guided step (see [`lookup`]); answered by `Lookup` or `LookupFailed`.
    Lookup { step: usize, text: String },
    Stop,
}

/// A running engine: send commands, receive events.
pub struct Engine {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

/// Stale records re-measured between two decoding steps: enough to finish thousands within
/// seconds, few enough that a step is not held up long (a record costs about a millisecond at
/// V = 151,936 per core).
const REFRESH_BATCH: usize = 32;

/// A `SetAlpha` followed, in the queue, by more of them becomes the last one: each would replay
/// the kept stream only for the next to replay it again. Any other command read on the way is
/// kept, in order, in `backlog`, and ends the coalescing (an α after a `Force` is a new request).
fn coalesce_alpha(cmd: Command, commands: &Receiver<Command>, backlog: &mut std::collections::VecDeque<Command>) -> Command {
    let Command::SetAlpha(mut alpha) = cmd else { return cmd };
    while let Ok(next) = commands.try_recv() {
        match next {
            Command::SetAlpha(a) if backlog.is_empty() => alpha = a,
            other => backlog.push_back(other),
        }
    }
    Command::SetAlpha(alpha)
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
            if ev_tx.send(Event::Prefilled { opens_in_think: session.opens_in_think() }).is_err() {
                return;
            }
            let mut paused = false;
            let mut window = (Instant::now(), 0usize);
            let mut focus = 0usize;
            // Commands read ahead while coalescing α presses, in the order they came.
            let mut backlog: std::collections::VecDeque<Command> = std::collections::VecDeque::new();
            loop {
                // Commands first; block for one only when there is nothing to decode or re-measure.
                let idle = (paused || session.is_done()) && session.stale_count() == 0;
                let cmd = if let Some(c) = backlog.pop_front() {
                    Some(c)
                } else if idle {
                    match cmd_rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    cmd_rx.try_recv().ok()
                };
                // Rapid α presses: only the last α asked for is replayed.
                let cmd = cmd.map(|c| coalesce_alpha(c, &cmd_rx, &mut backlog));
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
                        Command::Focus(step) => {
                            focus = step;
                            Ok(())
                        }
                        Command::Lookup { step, text } => {
                            // A few passes over V: answered between two steps, never blocking the UI.
                            let answer = match session.lookup(step, &text) {
                                Ok(l) => Event::Lookup(Box::new(l)),
                                Err(e) => Event::LookupFailed(e.to_string()),
                            };
                            let _ = ev_tx.send(answer);
                            Ok(())
                        }
                        Command::SetAlpha(a) => session.set_alpha_lazy(a).map(|changed_from| {
                            // Re-measuring starts where the stream changed (or its end), where the
                            // user is looking unless the UI says otherwise.
                            focus = changed_from.unwrap_or(session.tokens(StreamKind::Guided).len());
                            report_reset(&session, changed_from, &ev_tx)
                        }),
                        Command::Force { step, token } => {
                            session.force(step, token).map(|()| report_reset(&session, Some(step), &ev_tx))
                        }
                    };
                    if let Err(e) = outcome {
                        let _ = ev_tx.send(Event::Error(e.to_string()));
                    }
                    continue;
                }
                // Stale records are re-measured a batch at a time between decoding steps, so that
                // decoding resumes at once and the records follow within seconds.
                if session.stale_count() > 0 {
                    let fresh = session.refresh_stale(focus, REFRESH_BATCH);
                    if !fresh.is_empty() && ev_tx.send(Event::Refreshed(fresh)).is_err() {
                        return;
                    }
                    if paused || session.is_done() {
                        continue;
                    }
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
                        let _ = ev_tx.send(Event::Paused);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_alpha_presses_coalesce_to_the_last_and_other_commands_keep_their_order() {
        let (tx, rx) = channel();
        for c in [Command::SetAlpha(0.6), Command::SetAlpha(0.7), Command::Pause, Command::SetAlpha(0.9), Command::Resume] {
            tx.send(c).unwrap();
        }
        let mut backlog = std::collections::VecDeque::new();
        let first = coalesce_alpha(Command::SetAlpha(0.5), &rx, &mut backlog);
        assert!(matches!(first, Command::SetAlpha(a) if a == 0.7), "{first:?}");
        let rest: Vec<String> = backlog.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(rest, ["Pause", "SetAlpha(0.9)", "Resume"]);
        // Anything else passes through untouched and reads nothing.
        tx.send(Command::SetAlpha(1.0)).unwrap();
        assert!(matches!(coalesce_alpha(Command::Stop, &rx, &mut backlog), Command::Stop));
        assert!(matches!(rx.try_recv(), Ok(Command::SetAlpha(a)) if a == 1.0));
    }
}
