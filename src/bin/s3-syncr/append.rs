//! `append`: standard input to the stream, flushed by size or age, and closed at the end or on
//! a signal.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::connect::Session;
use crate::signals::{self, Progress};
use crate::units::FlushEvery;
use crate::{Exit, Failure};

/// Bytes read from standard input at a time. Small enough that the chunks in circulation
/// stay in the CPU's cache between the kernel's copy into one and the writer's copy out of it:
/// with 256 KiB, reading a file cost four times the CPU of `dd` (by `perf`), and the whole
/// command 12% more. A pipe hands out 64 KiB at most anyway.
const CHUNK: usize = 64 * 1024;
/// Chunks read ahead while the stream uploads.
const READ_AHEAD: usize = 4;

/// What the reading thread and the signal handler tell the copying loop.
enum Input {
    Chunk(Vec<u8>),
    End,
    Failed(io::Error),
    /// Wakes the loop up to look at [`Progress::signalled`].
    Signal,
}

/// Copies standard input to the stream, then closes it.
///
/// On a failure it still closes the stream (a last flush of everything accepted so far) and
/// reports the first error with the number of bytes that did and did not reach S3. On SIGINT,
/// SIGTERM or SIGHUP it stops reading, stores what it has read, says how much, and exits with
/// the signal's status; `prefix` starts the line printed if it has to exit before that.
pub fn run(
    mut session: Session,
    flush_every: Option<FlushEvery>,
    bar: &ProgressBar,
    prefix: String,
) -> Result<(), Exit> {
    let progress = Arc::new(Progress::default());
    let (sender, inputs) = mpsc::sync_channel(READ_AHEAD);
    let waker = sender.clone();
    signals::handle(prefix, progress.clone(), move |_| {
        // A full channel needs no wake-up: the loop looks at the signal before its next input.
        let _ = waker.try_send(Input::Signal);
    })
    .map_err(|err| Failure(format!("cannot handle signals: {err}")))?;
    // Chunks go back to the reading thread once written: fresh ones would cost the kernel a
    // page fault and zeroing per page, about a tenth of the command's CPU.
    let (spent, reuse) = mpsc::channel();
    let holding = read_stdin(sender, reuse, progress.clone());

    let mut copying = Copying {
        inputs,
        spent,
        progress: &progress,
        holding: &holding,
        accepted: 0,
        bar,
    };
    let copied = copying.copy(&mut session.storage, flush_every);
    bar.set_message("closing");
    let closed = session.storage.close();
    let read = progress.read.load(Ordering::SeqCst);
    // The bytes S3 lacks: those still in memory, and those of parts let go of memory whose
    // upload vanished, which only `UploadLost` counts.
    let lost = closed.as_ref().err().map_or(0, |err| {
        let released = match err.error() {
            s3_syncr::Error::UploadLost { lost, .. } | s3_syncr::Error::Fenced { lost, .. } => {
                *lost
            }
            _ => 0,
        };
        err.unflushed().len() as u64 + released
    });
    // What was read and never accepted (the write that failed) is lost too.
    let stored = copying.accepted.saturating_sub(lost);
    let counts = format!(
        "{stored} bytes stored, {} bytes read from standard input were not stored",
        read - stored
    );
    let close_error = closed.as_ref().err().map(|err| err.error());
    let (message, status) = match (copied, close_error) {
        (Ok(()), None) => return Ok(()),
        (Err(Stop::Signal(signal)), None) => (
            format!("stopped by {} ({counts})", signals::name(signal)),
            signals::status(signal),
        ),
        (Err(Stop::Signal(signal)), Some(err)) => (
            format!("stopped by {}: {err} ({counts})", signals::name(signal)),
            signals::status(signal),
        ),
        // A failed read of stdin: what came before it is stored.
        (Err(Stop::Stdin(err)), None) => (
            format!("reading standard input: {err} (the {stored} bytes read before were stored)"),
            1,
        ),
        (Err(Stop::Stdin(err)), Some(_)) => {
            (format!("reading standard input: {err} ({counts})"), 1)
        }
        (Err(Stop::Stream(err)), _) => (format!("{err} ({counts})"), 1),
        (Ok(()), Some(err)) => (format!("{err} ({counts})"), 1),
    };
    if let Err(err) = closed {
        // Its drop would try the flush that just failed once more, retries and all: abort
        // the uploads instead.
        err.into_unflushed();
    }
    Err(Exit { message, status })
}

/// Why copying stopped early.
enum Stop {
    Stdin(io::Error),
    Stream(io::Error),
    Signal(i32),
}

/// The copying loop's state.
struct Copying<'a> {
    inputs: Receiver<Input>,
    /// Written chunks, back to the reading thread.
    spent: Sender<Vec<u8>>,
    progress: &'a Progress,
    /// Whether the reading thread holds bytes it read and has not handed over yet.
    holding: &'a AtomicBool,
    /// Bytes the stream accepted.
    accepted: u64,
    bar: &'a ProgressBar,
}

impl Copying<'_> {
    fn copy(
        &mut self,
        storage: &mut impl Write,
        flush_every: Option<FlushEvery>,
    ) -> Result<(), Stop> {
        // Bytes since the last flush, and when the oldest of them arrived.
        let mut unflushed = 0u64;
        let mut oldest: Option<Instant> = None;
        loop {
            if let Some(signal) = self.progress.signalled() {
                self.drain(storage)?;
                return Err(Stop::Signal(signal));
            }
            let input = match (flush_every, oldest) {
                (Some(FlushEvery::Interval(age)), Some(since)) => {
                    let left = (since + age).saturating_duration_since(Instant::now());
                    match self.inputs.recv_timeout(left) {
                        Ok(input) => input,
                        Err(RecvTimeoutError::Timeout) => {
                            self.flush(storage)?;
                            (unflushed, oldest) = (0, None);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => Input::End,
                    }
                }
                _ => self.inputs.recv().unwrap_or(Input::End),
            };
            let chunk = match input {
                Input::Chunk(chunk) => chunk,
                Input::End => return Ok(()),
                Input::Failed(err) => return Err(Stop::Stdin(err)),
                Input::Signal => continue,
            };
            self.write(storage, &chunk)?;
            unflushed += chunk.len() as u64;
            // The reading thread may have ended: then the chunk is just dropped.
            let _ = self.spent.send(chunk);
            let now = Instant::now();
            let since = *oldest.get_or_insert(now);
            let due = match flush_every {
                Some(FlushEvery::Bytes(bytes)) => unflushed >= bytes,
                // Checked here too, so that a steady flow of input cannot put it off.
                Some(FlushEvery::Interval(age)) => now.duration_since(since) >= age,
                None => false,
            };
            if due {
                self.flush(storage)?;
                (unflushed, oldest) = (0, None);
            }
        }
    }

    /// After a signal: writes the chunks already read, those waiting in the channel and the one
    /// the reading thread may be handing over (it reads no more after a signal). A read still
    /// waiting for input is left to wait: what it returns came after the signal.
    fn drain(&mut self, storage: &mut impl Write) -> Result<(), Stop> {
        loop {
            let input = match self.inputs.try_recv() {
                Ok(input) => input,
                Err(TryRecvError::Empty) if self.holding.load(Ordering::SeqCst) => {
                    match self.inputs.recv_timeout(Duration::from_millis(10)) {
                        Ok(input) => input,
                        Err(_) => continue,
                    }
                }
                Err(_) => return Ok(()),
            };
            if let Input::Chunk(chunk) = input {
                self.write(storage, &chunk)?;
            }
        }
    }

    fn write(&mut self, storage: &mut impl Write, chunk: &[u8]) -> Result<(), Stop> {
        self.progress
            .read
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
        storage.write_all(chunk).map_err(Stop::Stream)?;
        self.accepted += chunk.len() as u64;
        self.bar.inc(chunk.len() as u64);
        Ok(())
    }

    fn flush(&mut self, storage: &mut impl Write) -> Result<(), Stop> {
        self.bar.set_message("flushing");
        storage.flush().map_err(Stop::Stream)?;
        self.progress.stored.store(self.accepted, Ordering::SeqCst);
        self.bar.set_message("");
        Ok(())
    }
}

/// Reads standard input on a thread of its own, so that an interval flush happens while the
/// input is idle, and a signal stops the command while a read waits. Returns whether the thread
/// holds bytes it read and has not handed over yet.
fn read_stdin(
    sender: SyncSender<Input>,
    reuse: Receiver<Vec<u8>>,
    progress: Arc<Progress>,
) -> Arc<AtomicBool> {
    let holding = Arc::new(AtomicBool::new(false));
    let held = holding.clone();
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        // After a signal, what is left in the pipe stays there, not read and lost.
        while progress.signalled().is_none() {
            let mut chunk = reuse.try_recv().unwrap_or_default();
            chunk.resize(CHUNK, 0);
            let read = stdin.read(&mut chunk);
            held.store(true, Ordering::SeqCst);
            let input = match read {
                Ok(0) => Input::End,
                Ok(n) => {
                    chunk.truncate(n);
                    Input::Chunk(chunk)
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => Input::Signal,
                Err(err) => Input::Failed(err),
            };
            let last = matches!(input, Input::End | Input::Failed(_));
            let sent = sender.send(input).is_ok();
            held.store(false, Ordering::SeqCst);
            if !sent || last {
                return;
            }
        }
    });
    holding
}
