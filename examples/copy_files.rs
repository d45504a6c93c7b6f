//! Copies a local file into a stream with `io::copy`, then the stream back out into another file,
//! and checks that the two files are identical.
//!
//! ```text
//! cargo run --example copy_files
//! ```
//!
//! Runs against an S3 server started in this process; with a real bucket, replace
//! `Storage::new(bucket, ..)` by `Storage::open("s3://bucket/backups/data.bin", ..)`.

use std::fs::{self, File};
use std::io::{self, Seek, Write};

use s3_syncr::{Options, Storage};
use s3_syncr_test_server::Server;

fn main() -> io::Result<()> {
    let server = Server::start();
    let dir = std::env::temp_dir().join(format!("s3-syncr-copy-files-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let (source, copy) = (dir.join("source.bin"), dir.join("copy.bin"));

    // A 3 MiB local file of varied bytes.
    let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    fs::write(&source, &data)?;

    // Local file -> stream, in 1 MiB objects. `close` flushes and reports any error.
    let options = Options::builder().with_seal_size(1 << 20).build()?;
    let mut stream = Storage::new(server.new_bucket(), "backups/data.bin", options)?;
    let uploaded = io::copy(&mut File::open(&source)?, &mut stream)?;
    stream.flush()?;
    println!(
        "copied {} into the stream: {uploaded} bytes",
        source.display()
    );

    // Stream -> another local file.
    stream.rewind()?;
    let downloaded = io::copy(&mut stream, &mut File::create(&copy)?)?;
    println!(
        "copied the stream into {}: {downloaded} bytes",
        copy.display()
    );
    for object in stream.objects().map_err(io::Error::from)? {
        println!("  object {} ({} bytes)", object.key, object.size);
    }
    stream.close()?;

    assert!(fs::read(&copy)? == data, "the copy differs from the source");
    println!(
        "verified: {} is identical to {}",
        copy.display(),
        source.display()
    );
    fs::remove_dir_all(&dir)
}
