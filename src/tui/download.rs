//! Downloading the session's models with a gauge in the terminal, before the UI proper starts.
//!
//! References that are local directories resolve at once; Hub repo ids are resolved on a thread
//! (a warm cache answers within one small request per repo, and draws nothing). Otherwise the terminal shows one gauge per file while
//! a thread downloads (the hub module resumes interrupted files, so `q` can stop at any point
//! and a later run goes on from there). The terminal is given back before returning, so a
//! failure is still one line on stderr.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Gauge, Paragraph, Widget};

use crate::error::{Error, Result};
use crate::hub::{self, HubConfig, NoProgress, Progress};
use crate::trio::PerModel;


/// One file's transfer as the gauge shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileTransfer {
    pub repo: String,
    pub file: String,
    pub total: u64,
    pub done: u64,
    /// `Some(true)` once whole, `Some(false)` if it failed.
    pub finished: Option<bool>,
}

/// What the download screen draws.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Downloads {
    pub cache: String,
    pub files: Vec<FileTransfer>,
}

impl Downloads {
    fn apply(&mut self, msg: ProgressMsg) {
        match msg {
            ProgressMsg::Start { repo, file, total, done } => {
                self.files.push(FileTransfer { repo, file, total, done, finished: None });
            }
            ProgressMsg::Advance { file, done } => {
                if let Some(f) = self.files.iter_mut().rev().find(|f| f.file == file) {
                    f.done = done;
                }
            }
            ProgressMsg::Finish { file, ok } => {
                if let Some(f) = self.files.iter_mut().rev().find(|f| f.file == file) {
                    f.finished = Some(ok);
                    if ok {
                        f.done = f.total;
                    }
                }
            }
        }
    }
}

fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// The download screen: a gauge per file, newest at the bottom, and the totals.
pub struct DownloadView<'a>(pub &'a Downloads);

impl Widget for DownloadView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let d = self.0;
        let (done, total): (u64, u64) = d.files.iter().fold((0, 0), |(a, b), f| (a + f.done, b + f.total));
        let block = Block::bordered()
            .title(" proxythinker · downloading the models ")
            .title_bottom(Line::from(format!(" {} of {} · into {} · q stops (a later run resumes) ", size(done), size(total), d.cache)));
        let inner = block.inner(area);
        block.render(area, buf);
        let rows = (inner.height / 2) as usize;
        let shown = &d.files[d.files.len().saturating_sub(rows)..];
        let areas = Layout::vertical(vec![Constraint::Length(2); shown.len()]).split(inner);
        for (f, a) in shown.iter().zip(areas.iter()) {
            let [label, bar] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(*a);
            let state = match f.finished {
                Some(true) => "done".green(),
                Some(false) => "failed".red(),
                None => "".into(),
            };
            Paragraph::new(Line::from(vec![format!("{}: {}  ", f.repo, f.file).into(), state])).render(label, buf);
            let ratio = if f.total == 0 { 1.0 } else { (f.done as f64 / f.total as f64).clamp(0.0, 1.0) };
            Gauge::default()
                .gauge_style(Style::default().fg(Color::Cyan))
                .ratio(ratio)
                .label(format!("{} / {}", size(f.done), size(f.total)))
                .render(bar, buf);
        }
    }
}

enum ProgressMsg {
    Start { repo: String, file: String, total: u64, done: u64 },
    Advance { file: String, done: u64 },
    Finish { file: String, ok: bool },
}

struct ChannelProgress(Sender<ProgressMsg>);

impl Progress for ChannelProgress {
    fn start(&mut self, repo: &str, file: &str, total: u64, done: u64) {
        let _ = self.0.send(ProgressMsg::Start { repo: repo.into(), file: file.into(), total, done });
    }
    fn advance(&mut self, file: &str, done: u64) {
        let _ = self.0.send(ProgressMsg::Advance { file: file.into(), done });
    }
    fn finish(&mut self, file: &str, ok: bool) {
        let _ = self.0.send(ProgressMsg::Finish { file: file.into(), ok });
    }
}

/// Resolves the three (reference, flag) pairs to local directories, drawing the download screen
/// while anything has to be fetched.
pub fn resolve_all(refs: PerModel<(String, String)>) -> Result<PerModel<PathBuf>> {
    let config = HubConfig::from_env();
    let local = |r: &str| std::path::Path::new(r).exists() || hub::looks_like_a_path(r);
    if config.offline || refs.iter().all(|(_, (r, _))| local(r)) {
        // Nothing to download (offline, a cold cache is the hub module's one-line error).
        let mut quiet = NoProgress;
        return refs.try_map(|_, (r, flag)| hub::resolve_with(&r, &flag, &config, &mut quiet));
    }
    let refs = refs.into_array();
    let (tx, rx) = channel();
    let (done_tx, done_rx) = channel();
    let worker_config = config.clone();
    std::thread::spawn(move || {
        let mut progress = ChannelProgress(tx);
        let result = refs
            .iter()
            .map(|(r, f)| hub::resolve_with(r, f, &worker_config, &mut progress))
            .collect::<Result<Vec<PathBuf>>>();
        let _ = done_tx.send(result);
    });
    // A warm cache costs one small request per repo: no screen unless that takes a while.
    let paths = match done_rx.recv_timeout(Duration::from_millis(400)) {
        Ok(result) => result?,
        Err(_) => {
            let mut downloads = Downloads { cache: config.cache_dir.display().to_string(), files: Vec::new() };
            let guard = super::terminal::enter().map_err(|e| Error::invalid(format!("cannot use this terminal: {e}")))?;
            show(guard, &mut downloads, &rx, &done_rx)?
        }
    };
    let [base, rft, small] =
        <[PathBuf; 3]>::try_from(paths).map_err(|_| Error::invalid("the download ended without three models"))?;
    Ok(PerModel::new(base, rft, small))
}

/// Draws until the worker reports or the user stops it; the guard gives the terminal back.
fn show(
    mut guard: super::terminal::TerminalGuard,
    downloads: &mut Downloads,
    rx: &Receiver<ProgressMsg>,
    done_rx: &Receiver<Result<Vec<PathBuf>>>,
) -> Result<Vec<PathBuf>> {
    let io = |e: std::io::Error| Error::invalid(format!("terminal: {e}"));
    loop {
        if crate::interrupt::received().is_some() {
            drop(guard);
            crate::interrupt::exit_if_received();
            return Err(Error::invalid("interrupted"));
        }
        while let Ok(m) = rx.try_recv() {
            downloads.apply(m);
        }
        guard.terminal.draw(|f| f.render_widget(DownloadView(downloads), f.area())).map_err(io)?;
        if let Ok(result) = done_rx.try_recv() {
            return result;
        }
        if event::poll(Duration::from_millis(50)).map_err(io)? {
            if let TermEvent::Key(k) = event::read().map_err(io)? {
                let stop = k.kind == KeyEventKind::Press
                    && (k.code == KeyCode::Char('q') || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)));
                if stop {
                    return Err(Error::invalid(
                        "download stopped: run the same command again to resume where it stopped",
                    ));
                }
            }
        }
    }
}
