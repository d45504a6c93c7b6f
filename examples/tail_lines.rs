//! Reads a log stream line by line with `BufRead::lines()`, like `tail -f`: after the end of the
//! stream, lines appended by another handle (here a second writer) are read too.
//!
//! ```text
//! cargo run --example tail_lines
//! ```
//!
//! `Storage` implements `BufRead` itself, so `lines()` needs no `BufReader`. At the end of the
//! stream `lines()` stops; calling it again later lists the objects again and continues with
//! whatever was appended since. A writer that flushes mid-line can leave a partial last line:
//! a real tailer reads with `read_line` and keeps a line without its `\n` until the rest comes.

use std::io::{self, BufRead, Write};
use std::thread;
use std::time::Duration;

use s3_syncr::{Options, Storage};
use s3_syncr_test_server::Server;

fn main() -> io::Result<()> {
    let server = Server::start();
    let bucket = server.new_bucket();
    let name = "logs/app.log";

    let mut writer = Storage::new(bucket.clone(), name, Options::default())?;
    writer.write_all(b"boot\nlistening on :8080\n")?;
    writer.flush()?;

    // A separate handle, as another process would open it.
    let mut reader = Storage::new(bucket, name, Options::default())?;
    let mut seen = Vec::new();
    for line in reader.by_ref().lines() {
        let line = line?;
        println!("read: {line}");
        seen.push(line);
    }
    println!(
        "-- end of stream after {} lines; the writer appends --",
        seen.len()
    );

    // The writer goes on, from another thread; the reader polls for new lines.
    let appender = thread::spawn(move || -> io::Result<()> {
        for i in 1..=3 {
            thread::sleep(Duration::from_millis(100));
            writeln!(writer, "request {i} served")?;
            writer.flush()?; // visible to readers from now on
        }
        Ok(writer.close()?)
    });
    while seen.len() < 5 {
        thread::sleep(Duration::from_millis(50));
        for line in reader.by_ref().lines() {
            let line = line?;
            println!("read: {line}");
            seen.push(line);
        }
    }
    appender.join().expect("writer thread")?;

    let expected = [
        "boot",
        "listening on :8080",
        "request 1 served",
        "request 2 served",
        "request 3 served",
    ];
    assert_eq!(seen, expected);
    println!("verified: all {} lines read, in order", seen.len());
    Ok(reader.close()?)
}
