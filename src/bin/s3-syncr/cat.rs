//! `cat`: the stream to standard output, from an offset, and with `--follow` on as it grows.

use std::io::{self, BufRead, Seek, SeekFrom, Write};
use std::thread;
use std::time::Duration;

use indicatif::ProgressBar;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use s3_syncr::{Error, Storage};

use crate::Failure;

/// Writes the stream from byte `from` (by default its first byte still stored) to standard
/// output; with `follow`, then waits for new bytes, looking every `follow` interval, until the
/// process is interrupted. A follower skips the bytes trimmed before it could read them, with a
/// line on standard error naming their offsets.
///
/// Standard output is flushed after every chunk, so that an interrupt (Ctrl-C ends the process)
/// loses nothing that was read. A closed standard output ends the command quietly, also while
/// `follow` waits. Without `follow`, a stream that has no object is an error, as `cat` of a
/// missing file is.
pub fn run(
    storage: &mut Storage,
    from: Option<u64>,
    follow: Option<Duration>,
) -> Result<(), Failure> {
    // The length only checks --from and sizes a progress bar: without either, the LIST that
    // finds it is one round trip saved before the first byte.
    let bar_len = follow.is_none() && crate::progress_wanted(true);
    let check_from = from.is_some();
    // A new handle starts at the first byte still stored.
    let from = match from {
        Some(from) => from,
        None => storage.stream_position()?,
    };
    let len = match check_from || bar_len {
        true => Some(storage.seek(SeekFrom::End(0))?),
        false => None,
    };
    if let Some(len) = len.filter(|&len| from > len) {
        return Err(Failure(format!(
            "--from {from} is past the end of the stream ({len} bytes)"
        )));
    }
    storage.seek(SeekFrom::Start(from))?;
    let bar = crate::progress_bar(
        len.filter(|_| bar_len).map(|len| len - from),
        "written",
        true,
    );
    let result = copy(storage, follow, &bar);
    bar.finish_and_clear();
    match result {
        Err(Stop::Stdout(err)) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(Stop::Stdout(err)) => Err(Failure(format!("writing standard output: {err}"))),
        Err(Stop::Stream(err)) => Err(err.into()),
        // Nothing written, not even from an empty stream: checked only then, costing no request
        // before the first byte.
        Ok(0) if follow.is_none() && storage.segments()?.is_empty() => Err(Failure(
            "no such stream: the bucket holds none of its objects".into(),
        )),
        Ok(_) => Ok(()),
    }
}

enum Stop {
    Stdout(io::Error),
    Stream(io::Error),
}

/// Copies the stream to standard output, and returns the number of bytes written.
fn copy(storage: &mut Storage, follow: Option<Duration>, bar: &ProgressBar) -> Result<u64, Stop> {
    let mut out = io::stdout().lock();
    let mut written = 0;
    loop {
        let chunk = match storage.fill_buf() {
            Ok(chunk) => chunk,
            Err(err) => match (follow, trimmed(&err)) {
                // A follower outlives retention: what was deleted before it could be read is
                // skipped, and said so, rather than ending a long-running process.
                (Some(_), Some((requested, first))) => {
                    eprintln!(
                        "s3-syncr: offsets {requested} to {first} were trimmed before they \
                         were read: going on at offset {first}"
                    );
                    storage.seek(SeekFrom::Start(first)).map_err(Stop::Stream)?;
                    continue;
                }
                _ => return Err(Stop::Stream(err)),
            },
        };
        if chunk.is_empty() {
            match follow {
                None => return Ok(written),
                Some(interval) if output_closed(interval) => {
                    return Err(Stop::Stdout(io::ErrorKind::BrokenPipe.into()));
                }
                Some(_) => continue,
            }
        }
        out.write_all(chunk).map_err(Stop::Stdout)?;
        out.flush().map_err(Stop::Stdout)?;
        let n = chunk.len();
        storage.consume(n);
        bar.inc(n as u64);
        written += n as u64;
    }
}

/// Waits `interval`, or less if the reader of standard output goes away (`cat --follow | head -1`
/// on a stream that no longer grows), and says whether it went. A pipe whose reader is gone
/// polls as an error; anything else (a file, a terminal) never does, and is waited for in full.
fn output_closed(interval: Duration) -> bool {
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let timeout = Timespec::try_from(interval).ok();
    match poll(&mut fds, timeout.as_ref()) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => {
            thread::sleep(interval);
            false
        }
    }
}

/// The offset asked for and the first one still stored, if `err` is [`Error::Trimmed`].
fn trimmed(err: &io::Error) -> Option<(u64, u64)> {
    match err.get_ref()?.downcast_ref::<Error>()? {
        Error::Trimmed { requested, first } => Some((*requested, *first)),
        _ => None,
    }
}
