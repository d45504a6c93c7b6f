//! Reads part of a stream, saves the position with `stream_position()`, drops the handle, then
//! opens the stream again, seeks to the saved offset and reads on: no record twice, none lost.
//!
//! ```text
//! cargo run --example resume_offset
//! ```
//!
//! This is how a consumer that restarts (a crash, a deploy) picks up where it left off: it
//! keeps its offset somewhere durable (here a local file) after each record it processed.
//! Offsets are absolute: while it was away, the records it had processed were trimmed (as a
//! retention job or a lifecycle rule does), and the saved offset still finds the same record.

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

    // Small objects, so that the oldest ones can be trimmed: one per 1 MiB of orders.
    let options = Options::builder().with_seal_size(1 << 20).build()?;
    let padding = "x".repeat(300 * 1024);
    let mut writer = Storage::new(bucket.clone(), name, options)?;
    for i in 1..=10 {
        writeln!(writer, "order {i} {padding}")?;
    }
    writer.close()?;

    // First run: process 4 records, saving the offset after each, then stop.
    let mut processed = Vec::new();
    let mut reader = Storage::new(bucket.clone(), name, Options::default())?;
    let mut line = String::new();
    for _ in 0..4 {
        line.clear();
        reader.read_line(&mut line)?;
        processed.push(order(&line));
        fs::write(&checkpoint, reader.stream_position()?.to_string())?;
    }
    println!("first run processed {processed:?}");
    drop(reader);

    // Meanwhile the orders before the checkpoint are trimmed away.
    let saved: u64 = fs::read_to_string(&checkpoint)?
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut trimmer = Storage::new(bucket.clone(), name, Options::default())?;
    let first = trimmer.trim(saved)?;
    println!("trimmed: the stream now starts at byte {first}");
    assert!(first > 0, "orders were trimmed");

    // Second run: a new handle, positioned at the saved offset.
    let mut reader = Storage::new(bucket, name, Options::default())?;
    reader.seek(SeekFrom::Start(saved))?;
    println!("second run resumes at byte {saved}");
    let rest = reader
        .by_ref()
        .lines()
        .map(|line| line.map(|line| order(&line)))
        .collect::<io::Result<Vec<String>>>()?;
    println!("second run processed {rest:?}");
    processed.extend(rest);
    // Reading from the start is no longer possible, and says why.
    let err = reader.rewind().unwrap_err();
    println!("rewinding now: {err}");
    reader.close()?;
    fs::remove_file(&checkpoint)?;

    let expected: Vec<String> = (1..=10).map(|i| format!("order {i}")).collect();
    assert_eq!(processed, expected);
    println!("verified: each of the 10 orders processed exactly once");
    Ok(())
}

/// The order's name: the first two words of its line.
fn order(line: &str) -> String {
    line.split(' ').take(2).collect::<Vec<_>>().join(" ")
}
