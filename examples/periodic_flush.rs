//! Writes records through `BufWriter<Storage>`, flushing every 500 records or every 200 ms,
//! whichever comes first, and shows `unflushed()` going back to empty at each flush.
//!
//! ```text
//! cargo run --example periodic_flush
//! ```
//!
//! A flush makes every record written so far durable, at the cost of re-uploading the tail
//! object: flush as rarely as the data you can afford to lose allows (see the README's "Cost of
//! flushing").

use std::io::{self, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use s3_syncr::{Options, Storage};
use s3_syncr_test_server::Server;

const EVERY_RECORDS: usize = 500;
const EVERY: Duration = Duration::from_millis(200);

fn main() -> io::Result<()> {
    let server = Server::start();
    let bucket = server.new_bucket();
    let stream = Storage::new(bucket.clone(), "metrics/records.log", Options::default())?;
    let mut writer = BufWriter::new(stream);

    let (mut pending, mut last_flush, mut flushes) = (0, Instant::now(), 0);
    let mut expected = String::new();
    for i in 0..2_000 {
        let record = format!("{i:05} temperature={:.1}\n", 20.0 + (i % 50) as f64 / 10.0);
        writer.write_all(record.as_bytes())?;
        expected.push_str(&record);
        pending += 1;
        if i % 300 == 0 {
            std::thread::sleep(Duration::from_millis(120)); // a slow producer, now and then
        }
        if pending == EVERY_RECORDS || last_flush.elapsed() >= EVERY {
            // Not yet in S3: what BufWriter holds, plus what Storage holds (`unflushed()`).
            let buffered = writer.buffer().len();
            let unflushed = writer.get_ref().unflushed().len();
            writer.flush()?;
            flushes += 1;
            println!(
                "flush {flushes} after record {i} ({pending} records, {:>3} ms): \
                 BufWriter {buffered} + unflushed() {unflushed} bytes -> {} + {}",
                last_flush.elapsed().as_millis(),
                writer.buffer().len(),
                writer.get_ref().unflushed().len(),
            );
            assert!(writer.buffer().is_empty() && writer.get_ref().unflushed().is_empty());
            (pending, last_flush) = (0, Instant::now());
        }
    }
    let stream = writer.into_inner().map_err(|e| e.into_error())?;
    println!("{} bytes unflushed before close", stream.unflushed().len());
    stream.close()?; // flushes the last records and reports any error

    // A new handle sees every record.
    let mut reader = Storage::new(bucket, "metrics/records.log", Options::default())?;
    let mut stored = String::new();
    reader.read_to_string(&mut stored)?;
    assert!(
        stored == expected,
        "the stream differs from the records written"
    );
    println!(
        "verified: {} records ({} bytes) in S3 after {flushes} flushes and close",
        stored.lines().count(),
        stored.len()
    );
    Ok(())
}
