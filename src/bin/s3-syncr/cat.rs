//! `cat`: the stream to standard output, from an offset, and with `--follow` on as it grows.

use std::io::{self, BufRead, IsTerminal, Seek, SeekFrom, Write};
use std::thread;
use std::time::Duration;

use indicatif::ProgressBar;
use s3_syncr::Storage;

use crate::Failure;

/// Writes the stream from byte `from` (by default its first byte still stored) to standard
/// output; with `follow`, then waits for new bytes, looking every `follow` interval, until the
/// process is interrupted.
///
/// Standard output is flushed after every chunk, so that an interrupt (Ctrl-C ends the process)
/// loses nothing that was read. A closed standard output ends the command quietly.
pub fn run(
    storage: &mut Storage,
    from: Option<u64>,
    follow: Option<Duration>,
    progress_bar: fn(Option<u64>, &str) -> ProgressBar,
) -> Result<(), Failure> {
    // The length only checks --from and sizes a progress bar: without either, the LIST that
    // finds it is one round trip saved before the first byte.
    let bar_len = follow.is_none() && io::stderr().is_terminal();
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
    let bar = progress_bar(len.filter(|_| bar_len).map(|len| len - from), "written");
    let result = copy(storage, follow, &bar);
    bar.finish_and_clear();
    match result {
        Err(Stop::Stdout(err)) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(Stop::Stdout(err)) => Err(Failure(format!("writing standard output: {err}"))),
        Err(Stop::Stream(err)) => Err(err.into()),
        Ok(()) => Ok(()),
    }
}

enum Stop {
    Stdout(io::Error),
    Stream(io::Error),
}

fn copy(storage: &mut Storage, follow: Option<Duration>, bar: &ProgressBar) -> Result<(), Stop> {
    let mut out = io::stdout().lock();
    loop {
        let chunk = storage.fill_buf().map_err(Stop::Stream)?;
        if chunk.is_empty() {
            match follow {
                None => return Ok(()),
                Some(interval) => {
                    thread::sleep(interval);
                    continue;
                }
            }
        }
        out.write_all(chunk).map_err(Stop::Stdout)?;
        out.flush().map_err(Stop::Stdout)?;
        let n = chunk.len();
        storage.consume(n);
        bar.inc(n as u64);
    }
}
