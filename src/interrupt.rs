//! SIGTERM, SIGHUP and SIGINT: leaving cleanly instead of dying where the signal lands.
//!
//! The default action of these signals kills the process at once, which leaves a terminal that the
//! UI had taken in raw mode, on the alternate screen, with mouse capture on (until `reset`), and
//! leaves a half-written trace's temporary file behind. [`install`] replaces that action (with
//! signal-hook) by a watcher thread. While the UI holds the terminal ([`set_ui_active`]), the
//! watcher only raises a flag that the UI loop reads every frame ([`received`]): the loop returns,
//! its guard gives the terminal back, and the process exits with status 128 + the signal, as a
//! shell reports a killed command. A UI thread that does not get there within a grace period (stuck
//! in a system call) does not keep the terminal hostage: the watcher restores it itself. Without
//! the UI the watcher exits at once. Either way the temporary files registered with
//! [`remove_on_exit`] are removed first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// How long the UI loop has to notice a signal before the watcher restores the terminal itself.
const GRACE: Duration = Duration::from_millis(500);

static INSTALL: Once = Once::new();
static RECEIVED: AtomicI32 = AtomicI32::new(0);
static UI_ACTIVE: AtomicBool = AtomicBool::new(false);
/// How the UI gives the terminal back (registered by the UI: this module sits below it).
static RESTORE: Mutex<Option<fn()>> = Mutex::new(None);
/// Set by whoever exits for the signal first, so the process exits once.
static EXITING: AtomicBool = AtomicBool::new(false);
static TEMP_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Replaces the default action of SIGTERM, SIGHUP and SIGINT (once per process).
pub fn install() {
    INSTALL.call_once(|| {
        let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGHUP, SIGINT]) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot watch for signals ({e}); a kill leaves the terminal as it is");
                return;
            }
        };
        let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
            let Some(sig) = signals.forever().next() else { return };
            RECEIVED.store(sig, Ordering::SeqCst);
            tracing::info!("signal {sig} received: leaving");
            if UI_ACTIVE.load(Ordering::SeqCst) {
                std::thread::sleep(GRACE);
            }
            if EXITING.swap(true, Ordering::SeqCst) {
                return; // the UI is exiting already
            }
            if UI_ACTIVE.load(Ordering::SeqCst) {
                if let Some(restore) = RESTORE.lock().ok().and_then(|r| *r) {
                    restore();
                }
            }
            remove_temp_files();
            std::process::exit(128 + sig);
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the signal watcher ({e})");
        }
    });
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The UI holds the terminal (`Some`: with the function that gives it back) and will leave by
/// itself when [`received`] says so; `None`: it gave the terminal back.
pub fn set_ui_active(restore: Option<fn()>) {
    if let Ok(mut r) = RESTORE.lock() {
        if restore.is_some() {
            *r = restore;
        }
    }
    UI_ACTIVE.store(restore.is_some(), Ordering::SeqCst);
}

/// Exits with 128 + the signal if one was received (called by the UI once the terminal is back).
pub fn exit_if_received() {
    if let Some(sig) = received() {
        if !EXITING.swap(true, Ordering::SeqCst) {
            remove_temp_files();
            std::process::exit(128 + sig);
        }
        // The watcher is exiting: wait for it rather than return into a half-torn-down program.
        loop {
            std::thread::park();
        }
    }
}

/// Removes `path` if the process leaves for a signal (a temporary file not yet renamed).
pub fn remove_on_exit(path: &Path) {
    if let Ok(mut files) = TEMP_FILES.lock() {
        files.push(path.to_path_buf());
    }
}

/// `path` no longer needs removing (it was renamed into place or removed).
pub fn forget(path: &Path) {
    if let Ok(mut files) = TEMP_FILES.lock() {
        files.retain(|p| p != path);
    }
}

fn remove_temp_files() {
    if let Ok(files) = TEMP_FILES.lock() {
        for f in files.iter() {
            let _ = std::fs::remove_file(f);
        }
    }
}
