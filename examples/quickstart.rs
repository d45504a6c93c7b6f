//! Writes a few MiB through `BufWriter<Storage>` into an S3 server running in this process,
//! reads them back with `io::copy`, checks every byte and prints the objects it made.
//!
//! ```text
//! cargo run --example quickstart [DIR]
//! ```
//!
//! The server (s3s-fs) keeps its bucket as a directory in DIR (default: a new temporary one).

use std::io::{self, BufWriter, Seek, Write};
use std::time::Instant;

use s3_syncr::{Options, Storage};
use s3_syncr_test_server::Server;

fn main() -> io::Result<()> {
    let root = match std::env::args_os().nth(1) {
        Some(dir) => dir.into(),
        None => std::env::temp_dir().join(format!("s3-syncr-quickstart-{}", std::process::id())),
    };
    std::fs::create_dir_all(&root)?;
    let server = Server::start_in(&root);
    let bucket = server.new_bucket();
    println!(
        "S3 server at {}, data in {}",
        server.endpoint(),
        root.display()
    );

    // 1 MiB objects, so a few MiB make several; each flush makes everything so far durable.
    let options = Options::builder().with_seal_size(1 << 20).build()?;
    let mut writer = BufWriter::new(Storage::new(bucket, "quickstart/records.log", options)?);
    let started = Instant::now();
    let mut written = Vec::new();
    for i in 0..40_000 {
        let record = format!("record {i:05} {}\n", "payload ".repeat(i % 20));
        writer.write_all(record.as_bytes())?;
        written.extend_from_slice(record.as_bytes());
        if i % 10_000 == 9_999 {
            writer.flush()?;
        }
    }
    let mut storage = writer.into_inner().map_err(|e| e.into_error())?;
    storage.flush()?;
    println!("wrote {} bytes in {:.2?}", written.len(), started.elapsed());

    storage.rewind()?;
    let mut read_back = Vec::new();
    let started = Instant::now();
    let copied = io::copy(&mut storage, &mut read_back)?;
    println!("read {copied} bytes back in {:.2?}", started.elapsed());
    assert!(
        read_back == written,
        "the stream differs from what was written"
    );
    println!("verified: every byte is there, in order");

    println!("objects:");
    for object in storage.objects().map_err(io::Error::from)? {
        println!("  {:>8} bytes  {}", object.size, object.key);
    }
    Ok(storage.close()?)
}
