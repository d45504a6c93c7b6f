//! Memory stays bounded whatever the object size. A binary of its own, one test, so that the
//! process's peak resident set size (`VmHWM`, reset through `/proc/self/clear_refs`) measures
//! this stream alone.

mod common;

use std::io::{self, Write};

use common::*;
use s3_syncr::{Options, Storage};

fn peak_rss_after(work: impl FnOnce()) -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (Linux only)");
    let before = rss("VmRSS:");
    work();
    rss("VmHWM:").saturating_sub(before)
}

fn rss(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Both measurements in one test: tests of one binary run in parallel and share the peak.
#[test]
fn memory_is_bounded() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();

    let grown = peak_rss_after(|| {
        let mut writer = open(&bucket, "segments.bin", 4);
        for i in 0..64 {
            writer.write_all(&pattern(MIB, i)).unwrap();
        }
        writer.close().unwrap();
    });
    // The 4 MiB tail, the sealed object uploading in the background, rust-s3's copy of that
    // body, and (in process) the server's buffers: a bound that does not grow with the stream.
    assert!(
        grown < 32 * MIB as u64,
        "writing 64 MiB in 4 MiB objects raised the peak RSS by {} MiB",
        grown / MIB as u64
    );

    let object = 64 * MIB;
    let mut storage = open(&bucket, "big.bin", 64);
    for i in 0..(object / MIB) as u64 {
        storage.write_all(&pattern(MIB, i)).unwrap();
    }
    storage.close().unwrap();
    drop(storage);
    assert_eq!(open(&bucket, "big.bin", 64).segments().unwrap().len(), 1);

    let chunk = 2 * MIB;
    let options = Options {
        read_chunk: chunk,
        ..Options::default()
    };
    let grown = peak_rss_after(|| {
        let mut reader = Storage::new(bucket.clone(), "big.bin", options).unwrap();
        let copied = io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(copied, object as u64);
    });
    // One chunk, plus the in-process server's own buffers; far below the object's 64 MiB.
    assert!(
        grown < 16 * MIB as u64,
        "reading a 64 MiB object raised the peak RSS by {} MiB",
        grown / MIB as u64
    );
}
