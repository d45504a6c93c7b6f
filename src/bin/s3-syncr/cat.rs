//! `cat`: the stream to standard output, from an offset, and with `--follow` on as it grows.

use std::io::{self, BufRead, Seek, SeekFrom, Write};
use std::time::Duration;

use indicatif::ProgressBar;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use s3_syncr::{Error, Storage};

use crate::Failure;

/// Writes the stream from byte `from` (by default its first byte still stored) to standard
/// output; with `follow`, then waits for new bytes until the process is interrupted, looking
/// at most every `follow` interval once the stream is idle and more often while it grows. A follower skips the bytes trimmed before it could read them, with a
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
        true => Some(storage.len()?),
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
        Ok(0) if follow.is_none() && storage.objects()?.is_empty() => Err(Failure(
            "no such stream: the bucket holds none of its objects".into(),
        )),
        Ok(_) => Ok(()),
    }
}

enum Stop {
    Stdout(io::Error),
    Stream(io::Error),
}

/// Copies the stream to standard output, and returns the number of bytes written. A follower
/// waits with [`Storage::wait_for_data`]: polls 50 ms apart while records arrive, backing off
/// to `interval` while the stream is idle.
fn copy(storage: &mut Storage, follow: Option<Duration>, bar: &ProgressBar) -> Result<u64, Stop> {
    let mut out = io::stdout().lock();
    let mut written = 0;
    loop {
        if let Some(interval) = follow {
            match storage.wait_for_data(interval) {
                Ok(true) => {}
                Ok(false) if output_closed() => {
                    return Err(Stop::Stdout(io::ErrorKind::BrokenPipe.into()));
                }
                Ok(false) => continue,
                Err(err) => {
                    skip_trimmed(storage, follow, err)?;
                    continue;
                }
            }
        }
        let chunk = match storage.fill_buf() {
            Ok(chunk) => chunk,
            Err(err) => {
                skip_trimmed(storage, follow, err)?;
                continue;
            }
        };
        if chunk.is_empty() {
            match follow {
                None => return Ok(written),
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

/// Goes on after `err` if it says a follower's position was trimmed: what was deleted before
/// it could be read is skipped, and said so, rather than ending a long-running process.
fn skip_trimmed(
    storage: &mut Storage,
    follow: Option<Duration>,
    err: io::Error,
) -> Result<(), Stop> {
    match (follow, trimmed(&err)) {
        (Some(_), Some((requested, first))) => {
            eprintln!(
                "s3-syncr: offsets {requested} to {first} were trimmed before they \
                 were read: going on at offset {first}"
            );
            storage.seek(SeekFrom::Start(first)).map_err(Stop::Stream)?;
            Ok(())
        }
        _ => Err(Stop::Stream(err)),
    }
}

/// Whether the reader of standard output went away (`cat --follow | head -1` on a stream that
/// no longer grows). A pipe whose reader is gone polls as an error; anything else (a file, a
/// terminal) never does.
fn output_closed() -> bool {
    let stdout = io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(0) | Err(_) => false,
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
    }
}

/// The offset asked for and the first one still stored, if `err` is [`Error::Trimmed`].
fn trimmed(err: &io::Error) -> Option<(u64, u64)> {
    match err.get_ref()?.downcast_ref::<Error>()? {
        Error::Trimmed { requested, first } => Some((*requested, *first)),
        _ => None,
    }
}
