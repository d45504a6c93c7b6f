//! Memory stays bounded whatever the object size. The measuring runs in a child process of its
//! own, so that its peak resident set size (`VmHWM`, reset through `/proc/self/clear_refs`)
//! measures this stream alone, with `MALLOC_MMAP_THRESHOLD_` set so that glibc returns every
//! freed buffer to the system instead of keeping it resident for later reuse.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use s3_syncr::{Options, Storage};

fn peak_rss_after(work: impl FnOnce()) -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS (Linux only)");
    let before = rss("VmRSS:");
    work();
    rss("VmHWM:").saturating_sub(before)
}

/// Prints the growth of the peak RSS, and fails unless it stays below `bound_mib`.
fn check_growth(what: &str, grown: u64, bound_mib: u64) {
    let mib = grown / MIB as u64;
    println!("{what}: peak RSS +{mib} MiB");
    assert!(
        grown < bound_mib * MIB as u64,
        "{what} raised the peak RSS by {mib} MiB"
    );
}

fn rss(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn memory_is_bounded() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory::measure_memory",
            "--ignored",
            "--nocapture",
        ])
        .env("S3SYNCR_MEASURE_MEMORY", "1")
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed"), "the measurement ran: {stdout}");
}

#[test]
#[ignore = "run by memory_is_bounded in a child process"]
fn measure_memory() {
    if std::env::var("S3SYNCR_MEASURE_MEMORY").is_err() {
        return;
    }
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();

    let grown = peak_rss_after(|| {
        let mut writer = open(&bucket, "objects.bin", 4);
        for i in 0..64 {
            writer.write_all(&pattern(MIB, i)).unwrap();
        }
        writer.close().unwrap();
    });
    // The 4 MiB tail, the sealed object uploading in the background, rust-s3's copy of that
    // body, and (in process) the server's buffers: a bound that does not grow with the stream.
    check_growth("writing 64 MiB in 4 MiB objects", grown, 28);

    // `io::copy` of 512 MiB into 256 MiB objects: streamed out as 8 MiB parts, four at once.
    // Held: those parts, the one filling, `io::copy`'s buffer and (in process) the server's;
    // not the objects. Against an external server, a smaller copy shows the same bound.
    let total = if server.is_external() { 96 } else { 512 } * MIB as u64;
    let options = Options::builder()
        .with_seal_size(256 << 20)
        .build()
        .unwrap();
    let grown = peak_rss_after(|| {
        let mut writer = Storage::new(bucket.clone(), "large.bin", options).unwrap();
        let copied = io::copy(&mut io::repeat(7).take(total), &mut writer).unwrap();
        assert_eq!(copied, total);
        writer.close().unwrap();
    });
    check_growth(
        &format!(
            "io::copy of {} MiB into 256 MiB objects",
            total / MIB as u64
        ),
        grown,
        64,
    );
    let sizes = object_sizes(&bucket, "large.bin");
    assert_eq!(sizes.iter().sum::<u64>(), total, "{sizes:?}");

    // One write of a whole buffer into 64 MiB objects: cut into parts at once, held as
    // `io::copy`'s are. The buffer itself is the caller's, resident before the measure.
    let data = pattern(total as usize / 2, 3);
    let options = Options::builder().with_seal_size(64 * MIB).build().unwrap();
    let grown = peak_rss_after(|| {
        let mut writer = Storage::new(bucket.clone(), "one-write.bin", options).unwrap();
        assert_eq!(writer.write(&data).unwrap(), data.len());
        writer.close().unwrap();
    });
    check_growth(
        &format!("one write of {} MiB into 64 MiB objects", data.len() / MIB),
        grown,
        64,
    );
    let sizes = object_sizes(&bucket, "one-write.bin");
    assert_eq!(sizes.iter().sum::<u64>(), data.len() as u64, "{sizes:?}");
    assert!(
        sizes.iter().all(|&size| size <= 64 * MIB as u64),
        "{sizes:?}"
    );
    drop(data);

    let object = 64 * MIB;
    let mut storage = open(&bucket, "big.bin", 64);
    for i in 0..(object / MIB) as u64 {
        storage.write_all(&pattern(MIB, i)).unwrap();
    }
    storage.close().unwrap();
    assert_eq!(open(&bucket, "big.bin", 64).objects().unwrap().len(), 1);

    // The chunk being consumed and `read_ahead` GETs ahead, each at most `read_chunk`, plus the
    // in-process server's small read buffers: far below the object's 64 MiB either way.
    for (read_chunk, read_ahead, slack_mib) in [(2 * MIB, 4, 4), (8 * MIB, 4, 8), (2 * MIB, 0, 4)] {
        let options = Options::builder()
            .with_read_chunk(read_chunk)
            .with_read_ahead(read_ahead)
            .build()
            .unwrap();
        let bound = ((read_ahead + 1) * read_chunk / MIB) as u64 + slack_mib;
        let grown = peak_rss_after(|| {
            let mut reader = Storage::new(bucket.clone(), "big.bin", options).unwrap();
            let copied = io::copy(&mut reader, &mut io::sink()).unwrap();
            assert_eq!(copied, object as u64);
            // Seeks drop the GETs ahead: their buffers come back, none is added.
            for at in [5 * MIB, 40 * MIB, 7, 63 * MIB] {
                reader.seek(SeekFrom::Start(at as u64)).unwrap();
                let mut buf = vec![0; 3 * MIB];
                reader.read_exact(&mut buf[..MIB]).unwrap();
            }
        });
        let what = format!(
            "reading a 64 MiB object in {} MiB chunks, {read_ahead} ahead",
            read_chunk / MIB
        );
        check_growth(&what, grown, bound);
    }
    // The read-ahead threads end once their reader is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        read_threads(),
        0,
        "read-ahead threads outlived their reader"
    );
}

/// Threads of this process that fetch ahead for a reader.
fn read_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "s3-syncr-read")
        .count()
}
