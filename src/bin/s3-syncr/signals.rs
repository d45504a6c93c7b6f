//! SIGINT, SIGTERM and SIGHUP during `append`: the first one asks it to stop reading and store
//! what it has read; a second one, or a stop that outlasts [`STOP_GRACE`], ends the process at
//! once. A signal the process was started with ignored stays ignored: whoever started it so
//! (`nohup`, a shell starting a background job without job control) asked for just that.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The signals `append` stops on.
const HANDLED: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// How long storing what was read may take after a signal. The library bounds each request and
/// its retries; this bounds them all, below systemd's default 90 s before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(60);

/// What `append` has done so far, for the line a forced exit prints.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from standard input.
    pub read: AtomicU64,
    /// Bytes known to be stored: those read before the last successful flush.
    pub stored: AtomicU64,
    /// The first signal received, 0 until then.
    signal: AtomicI32,
}

impl Progress {
    /// The first signal received, if any.
    pub fn signalled(&self) -> Option<i32> {
        Some(self.signal.load(Ordering::SeqCst)).filter(|&signal| signal != 0)
    }
}

/// The signal's name, for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The shell's status for a process ended by `signal`: 128 + its number (130 for SIGINT).
pub fn status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// From now on, the first SIGINT, SIGTERM or SIGHUP is recorded in `progress` and calls `stop`
/// with its number, and the process keeps running; a second one, or [`STOP_GRACE`] after the
/// first, ends it with the first one's status and one line on stderr that starts with `prefix`
/// and tells what `progress` knows. Those of them the process inherited as ignored are left so.
pub fn handle(
    prefix: String,
    progress: Arc<Progress>,
    stop: impl FnOnce(i32) + Send + 'static,
) -> io::Result<()> {
    // Read before any handler is installed: afterwards the mask would no longer say what the
    // process was started with.
    let ignored = ignored_at_start();
    let wanted: Vec<i32> = (HANDLED.into_iter())
        .filter(|&signal| !ignored(signal))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut signals = Signals::new(wanted)?;
    thread::spawn(move || {
        let mut received = signals.forever();
        let Some(first) = received.next() else {
            return;
        };
        progress.signal.store(first, Ordering::SeqCst);
        stop(first);
        let (late_prefix, late_progress) = (prefix.clone(), progress.clone());
        thread::spawn(move || {
            thread::sleep(STOP_GRACE);
            let why = format!("still storing after {} s", STOP_GRACE.as_secs());
            give_up(&late_prefix, first, &why, &late_progress);
        });
        if let Some(second) = received.next() {
            give_up(
                &prefix,
                first,
                &format!("{} again", name(second)),
                &progress,
            );
        }
    });
    Ok(())
}

/// Whether a signal was ignored when the process started, as far as it can tell without
/// unsafe code: signal-hook and rustix offer no safe way to ask for a disposition, so it is
/// Linux's `SigIgn` mask in `/proc/self/status`. Where there is none (other systems, no
/// `/proc`), every signal counts as not ignored: `append` stops on it, as it always did.
fn ignored_at_start() -> impl Fn(i32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = sig_ign(&status).unwrap_or(0);
    move |signal| (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0
}

/// The `SigIgn` mask of a `/proc/<pid>/status` text: bit `n - 1` is signal `n`.
fn sig_ign(status: &str) -> Option<u64> {
    (status.lines())
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
}

fn give_up(prefix: &str, first: i32, why: &str, progress: &Progress) -> ! {
    let read = progress.read.load(Ordering::SeqCst);
    let stored = progress.stored.load(Ordering::SeqCst).min(read);
    eprintln!(
        "{prefix}: stopped by {}, then {why}: exiting without storing the rest (at least {stored} \
         bytes stored, at most {} bytes read from standard input not stored)",
        name(first),
        read - stored
    );
    std::process::exit(status(first).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_shells() {
        assert_eq!((status(SIGINT), name(SIGINT)), (130, "SIGINT"));
        assert_eq!((status(SIGTERM), name(SIGTERM)), (143, "SIGTERM"));
        assert_eq!((status(SIGHUP), name(SIGHUP)), (129, "SIGHUP"));
    }

    #[test]
    fn the_ignored_mask_is_read_as_linux_writes_it() {
        let status = "Name:\ts3-syncr\nSigBlk:\t0000000000000000\n\
                      SigIgn:\t0000000000001001\nSigCgt:\t0000000000000000\n";
        // SIGHUP (1) and SIGPIPE (13), as `nohup` leaves a Rust program.
        assert_eq!(sig_ign(status), Some(1 << (SIGHUP - 1) | 1 << (13 - 1)));
        assert_eq!(sig_ign("Name:\tx\n"), None);
    }
}
