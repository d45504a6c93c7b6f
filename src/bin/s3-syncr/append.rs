//! `append`: standard input to the stream, flushed by size or age, and closed at the end.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Instant;

use indicatif::ProgressBar;

use crate::Failure;
use crate::connect::Session;
use crate::units::FlushEvery;

/// Bytes read from standard input at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks read ahead while the stream uploads.
const READ_AHEAD: usize = 4;

/// Copies standard input to the stream, then closes it.
///
/// On a failure it still closes the stream (a last flush of everything accepted so far) and
/// reports the first error with the number of bytes that did not reach S3.
pub fn run(
    mut session: Session,
    flush_every: Option<FlushEvery>,
    bar: &ProgressBar,
) -> Result<(), Failure> {
    let storage = &mut session.storage;
    let copied = copy(storage, read_stdin(), flush_every, bar);
    bar.set_message("closing");
    let closed = storage.close();
    let result = match (copied, closed) {
        (Ok(()), Ok(())) => return Ok(()),
        // A failed read of stdin: what came before it is stored.
        (Err(Stop::Stdin(err)), Ok(())) => {
            return Err(Failure(format!(
                "reading standard input: {err} (the bytes read before were stored)"
            )));
        }
        (Err(Stop::Stdin(err)), Err(_)) => format!("reading standard input: {err}"),
        (Err(Stop::Stream(err)), _) | (Ok(()), Err(err)) => err.to_string(),
    };
    let lost = storage.unflushed().len();
    // Its drop would try the flush that just failed once more, retries and all.
    std::mem::forget(session);
    Err(Failure(format!(
        "{result} ({lost} bytes accepted from standard input were not stored)"
    )))
}

/// Why copying stopped early.
enum Stop {
    Stdin(io::Error),
    Stream(io::Error),
}

fn copy(
    storage: &mut impl Write,
    chunks: Receiver<io::Result<Vec<u8>>>,
    flush_every: Option<FlushEvery>,
    bar: &ProgressBar,
) -> Result<(), Stop> {
    // Bytes since the last flush, and when the oldest of them arrived.
    let mut unflushed = 0u64;
    let mut oldest: Option<Instant> = None;
    loop {
        let received = match (flush_every, oldest) {
            (Some(FlushEvery::Interval(age)), Some(since)) => {
                let left = (since + age).saturating_duration_since(Instant::now());
                match chunks.recv_timeout(left) {
                    Ok(chunk) => Some(chunk),
                    Err(RecvTimeoutError::Timeout) => {
                        flush(storage, bar)?;
                        (unflushed, oldest) = (0, None);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => None,
                }
            }
            _ => chunks.recv().ok(),
        };
        let Some(chunk) = received else {
            return Ok(()); // end of input
        };
        let chunk = chunk.map_err(Stop::Stdin)?;
        storage.write_all(&chunk).map_err(Stop::Stream)?;
        bar.inc(chunk.len() as u64);
        unflushed += chunk.len() as u64;
        let now = Instant::now();
        let since = *oldest.get_or_insert(now);
        let due = match flush_every {
            Some(FlushEvery::Bytes(bytes)) => unflushed >= bytes,
            // Checked here too, so that a steady flow of input cannot put it off.
            Some(FlushEvery::Interval(age)) => now.duration_since(since) >= age,
            None => false,
        };
        if due {
            flush(storage, bar)?;
            (unflushed, oldest) = (0, None);
        }
    }
}

fn flush(storage: &mut impl Write, bar: &ProgressBar) -> Result<(), Stop> {
    bar.set_message("flushing");
    storage.flush().map_err(Stop::Stream)?;
    bar.set_message("");
    Ok(())
}

/// Reads standard input on a thread of its own, so that an interval flush happens while the
/// input is idle.
fn read_stdin() -> Receiver<io::Result<Vec<u8>>> {
    let (sender, receiver) = mpsc::sync_channel(READ_AHEAD);
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut chunk = vec![0; CHUNK];
            let message = match stdin.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(chunk)
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => Err(err),
            };
            let failed = message.is_err();
            if sender.send(message).is_err() || failed {
                return;
            }
        }
    });
    receiver
}
