//! Reads part of a stream, saves the position with `stream_position()`, drops the handle, then
//! opens the stream again, seeks to the saved offset and reads on: no record twice, none lost.
//!
//! ```text
//! cargo run --example resume_offset
//! ```
//!
//! This is how a consumer that restarts (a crash, a deploy) picks up where it left off: it
//! keeps its offset somewhere durable (here a local file) after each record it processed.

use std::fs;
use std::io::{self, BufRead, Seek, SeekFrom, Write};

use s3_syncr::{Options, Storage};
use s3_syncr_test_server::Server;

fn main() -> io::Result<()> {
    let server = Server::start();
    let bucket = server.new_bucket();
    let name = "events/orders.log";
    let checkpoint =
        std::env::temp_dir().join(format!("s3-syncr-resume-{}.offset", std::process::id()));

    let mut writer = Storage::new(bucket.clone(), name, Options::default())?;
    for i in 1..=10 {
        writeln!(writer, "order {i}")?;
    }
    writer.close()?;

    // First run: process 4 records, saving the offset after each, then stop.
    let mut processed = Vec::new();
    let mut reader = Storage::new(bucket.clone(), name, Options::default())?;
    let mut line = String::new();
    for _ in 0..4 {
        line.clear();
        reader.read_line(&mut line)?;
        processed.push(line.trim_end().to_owned());
        fs::write(&checkpoint, reader.stream_position()?.to_string())?;
    }
    println!("first run processed {processed:?}");
    drop(reader);

    // Second run: a new handle, positioned at the saved offset.
    let saved: u64 = fs::read_to_string(&checkpoint)?
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut reader = Storage::new(bucket, name, Options::default())?;
    reader.seek(SeekFrom::Start(saved))?;
    println!("second run resumes at byte {saved}");
    let rest = reader
        .by_ref()
        .lines()
        .collect::<io::Result<Vec<String>>>()?;
    println!("second run processed {rest:?}");
    processed.extend(rest);
    reader.close()?;
    fs::remove_file(&checkpoint)?;

    let expected: Vec<String> = (1..=10).map(|i| format!("order {i}")).collect();
    assert_eq!(processed, expected);
    println!("verified: each of the 10 orders processed exactly once");
    Ok(())
}
