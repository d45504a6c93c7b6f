//! Long streams (issue 28): what a new handle pays for the end, the last bytes and the middle
//! of a stream of many objects, and `s3-syncr stat` for its ends (`Storage::ends`, and with
//! `--full` the whole listing and the uploads), through the WAN relay (20 ms round trip) in
//! front of the external server (SeaweedFS), with the stream's hint and without it: a stream of
//! 0.2, listed whole, which is what every handle did before the hint.
//!
//! ```sh
//! source .ci/servers.sh && ci_servers_init && ci_server_start seaweedfs
//! S3SYNCR_BENCH_LONG_OBJECTS=20000,200000 ci_with_server_env cargo bench --profile dev --bench long
//! ```
//!
//! Objects are 1 KiB, put by raw PUTs on 32 threads straight to the server (not through the
//! relay), each recording its start and a seal of its size, so a writer's next object is a new
//! one, which writes the hint. 200,000 take about 5 minutes to put: with
//! `S3SYNCR_BENCH_LONG_REUSE=FILE`, the streams written are noted in FILE and measured again by
//! the next run on the same server. Requests are counted from the `debug!` line the crate logs
//! per request (attempts included); `S3SYNCR_BENCH_TRACE=1` prints those lines on stderr, timed
//! from the start, to see where a cell's time goes. Medians of `S3SYNCR_BENCH_RUNS` (3) runs,
//! each on new handles. Without `S3SYNCR_TEST_ENDPOINT` the relay fronts the in-process server.
//! Nothing here asserts timings; `tests/it/long.rs` asserts the request counts.
//!
//! Measured (SeaweedFS 4.48, debug build, 2 busy cores, a request about 23 ms; "none" is what
//! every handle paid before the hint, "before" the hint as it was, opening in 4 round trips):
//!
//! | objects | hint | open + `len()` | `seek(End(-100))` + read | then the middle + read | `stat` | `stat --full` |
//! |---:|---|---:|---:|---:|---:|---:|
//! | 20,000 | none | 912 ms, 24 req | 903 ms, 25 req | 22 ms, 1 req | 832 ms, 25 req | 931 ms, 25 req |
//! | 20,000 | before | 98 ms, 4 req | 128 ms, 5 req | 83 ms, 3 req | 1,266 ms, 24 req | (was `stat`) |
//! | 20,000 | yes | 48 ms, 4 req | 69 ms, 5 req | 69 ms, 3 req | 67 ms, 5 req | 864 ms, 25 req |
//! | 200,000 | none | 8,064 ms, 204 req | 8,091 ms, 205 req | 22 ms, 1 req | 7,764 ms, 205 req | 7,883 ms, 205 req |
//! | 200,000 | before | 98 ms, 4 req | 127 ms, 5 req | 80 ms, 3 req | 12,734 ms, 204 req | (was `stat`) |
//! | 200,000 | yes | 46 ms, 4 req | 68 ms, 5 req | 70 ms, 3 req | 67 ms, 5 req | 8,303 ms, 205 req |
//!
//! With the hint, opening is 2 requests at once (the bucket's check, a LIST of the first key,
//! and the hint's GET), `len()` 2 more at once (a LIST page from 100 objects before the hinted
//! one, and that one's HEAD), a read of the end one GET; `stat` adds the first object's HEAD.
//! The middle is a LIST page where the offset should be, its first object's HEAD and the GET.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use s3::Bucket;
use s3_syncr::{Options, Storage};
use s3_syncr_test_server::{Proxy, Raw, Server, Wan};
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

/// Bytes per object.
const SIZE: u64 = 1024;
const NAME: &str = "long/log.bin";

/// Counts the crate's requests: one `debug!` line per attempt. With `S3SYNCR_BENCH_TRACE`
/// set, also prints each line on stderr, with the time since the start: where a cell's time
/// goes.
struct Requests(AtomicU64, OnceLock<Option<Instant>>);

impl log::Log for Requests {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Debug && metadata.target().starts_with("s3_syncr")
    }

    fn log(&self, record: &log::Record) {
        let line = record.args().to_string();
        if self.enabled(record.metadata())
            && (line.contains(" bytes in ") || line.contains(" bytes failed in "))
        {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(start) = self.1.get_or_init(|| None)
            && self.enabled(record.metadata())
        {
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            eprintln!("{ms:>10.1} ms {line}");
        }
    }

    fn flush(&self) {}
}

static REQUESTS: Requests = Requests(AtomicU64::new(0), OnceLock::new());

fn key(seq: u64) -> String {
    format!("long/log-{seq:020}.bin")
}

/// Puts objects `0..n` straight to the server.
fn populate(bucket: &Bucket, n: u64) {
    let lanes = 32;
    std::thread::scope(|scope| {
        for lane in 0..lanes {
            scope.spawn(move || {
                let body = vec![b'x'; SIZE as usize];
                for seq in (lane..n).step_by(lanes as usize) {
                    let mut headers = HeaderMap::new();
                    let start = HeaderValue::from(seq * SIZE);
                    headers.insert(HeaderName::from_static("x-amz-meta-s3syncr-start"), start);
                    let seal = HeaderValue::from(SIZE);
                    headers.insert(HeaderName::from_static("x-amz-meta-s3syncr-seal"), seal);
                    bucket.raw_put_with(&key(seq), &body, headers);
                }
            });
        }
    });
}

/// Time and requests of `run`, a median over `runs`.
fn measure(runs: usize, mut run: impl FnMut()) -> (Duration, u64) {
    let mut samples: Vec<(Duration, u64)> = (0..runs)
        .map(|_| {
            let before = REQUESTS.0.load(Ordering::Relaxed);
            let started = Instant::now();
            run();
            let took = started.elapsed();
            (took, REQUESTS.0.load(Ordering::Relaxed) - before)
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn handle(bucket: &Bucket) -> Storage {
    Storage::new(bucket.clone(), NAME, Options::default()).expect("open")
}

/// The figures of a stream of `n` objects (and one more, written by a writer).
fn figures(bucket: &Bucket, n: u64, runs: usize) -> [(Duration, u64); 5] {
    let end = (n + 1) * SIZE;
    let open_len = measure(runs, || {
        assert_eq!(handle(bucket).len().expect("len"), end);
    });
    // Each run a new handle: the tail, then the middle (another place each run).
    let mut readers = Vec::new();
    let tail = measure(runs, || {
        let mut reader = handle(bucket);
        reader.seek(SeekFrom::End(-100)).expect("seek");
        reader.read_exact(&mut [0; 100]).expect("read");
        readers.push(reader);
    });
    let mut readers = readers.into_iter();
    let mut at = n / 2 * SIZE;
    let middle = measure(runs, || {
        let mut reader = readers.next().expect("one a run");
        at += 7 * SIZE + 3;
        reader.seek(SeekFrom::Start(at)).expect("seek");
        reader.read_exact(&mut [0; 100]).expect("read");
    });
    // `s3-syncr stat`, then `stat --full`.
    let stat = measure(runs, || {
        let ends = handle(bucket).ends().expect("ends").expect("objects");
        assert_eq!((ends.first, ends.end, ends.last_seq), (0, end, n));
    });
    let full = measure(runs, || {
        let handle = handle(bucket);
        let listing = handle.listing().expect("listing");
        assert_eq!(listing.objects.len() as u64, n + 1);
        drop(handle.pending_uploads());
    });
    [open_len, tail, middle, stat, full]
}

fn main() {
    let trace = std::env::var_os("S3SYNCR_BENCH_TRACE").is_some();
    REQUESTS.1.get_or_init(|| trace.then(Instant::now));
    log::set_logger(&REQUESTS).expect("the only logger");
    log::set_max_level(log::LevelFilter::Debug);
    let sizes: Vec<u64> = std::env::var("S3SYNCR_BENCH_LONG_OBJECTS")
        .unwrap_or_else(|_| "20000,200000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("object counts"))
        .collect();
    let runs = (std::env::var("S3SYNCR_BENCH_RUNS").ok())
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let rtt = (std::env::var("S3SYNCR_BENCH_WAN_RTT_MS").ok())
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let server = Server::from_env_or_start();
    let wan = Wan {
        rtt: Duration::from_millis(rtt),
        ..Wan::default()
    };
    let proxy = Proxy::start_wan(server.endpoint(), wan);
    println!(
        "| objects | hint | open + `len()` | `seek(End(-100))` + read 100 | then `seek` to the middle + read 100 | `stat` (`ends()`) | `stat --full` (listing + uploads) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for n in sizes {
        let (bucket, kept) = stream(&server, n);
        let relayed = proxy.bucket(&server, &bucket.name());
        bucket.raw_delete(HINT);
        for (with, label) in [(false, "none (0.2: listed whole)"), (true, "yes")] {
            if with {
                bucket.raw_put(HINT, &kept);
            }
            let cells: Vec<String> = figures(&relayed, n, runs)
                .iter()
                .map(|(took, requests)| format!("{} ms, {requests} req", took.as_millis()))
                .collect();
            println!("| {n} | {label} | {} |", cells.join(" | "));
        }
    }
}

const HINT: &str = "long/log-s3syncr-hint.bin";

/// A bucket holding a stream of `n` objects and one more a writer appended, and the hint that
/// writer left. With `S3SYNCR_BENCH_LONG_REUSE` naming a file, a stream an earlier run wrote
/// on the same server is measured again (the file holds one `objects bucket` line for each):
/// 200,000 objects take minutes to put.
fn stream(server: &Server, n: u64) -> (Bucket, Vec<u8>) {
    let reuse = std::env::var_os("S3SYNCR_BENCH_LONG_REUSE");
    let written = (reuse.as_ref())
        .and_then(|file| std::fs::read_to_string(file).ok())
        .unwrap_or_default();
    let earlier = written.lines().find_map(|line| {
        let (objects, name) = line.split_once(' ')?;
        (objects.parse() == Ok(n)).then(|| server.bucket(name))
    });
    if let Some(bucket) = earlier
        && let Ok(answer) = bucket.raw_send(HINT, s3::command::Command::GetObject)
        && answer.status == 200
    {
        eprintln!("{n} objects: measured again in {}", bucket.name());
        return (bucket, answer.body);
    }
    let bucket = server.new_bucket();
    let started = Instant::now();
    populate(&bucket, n);
    eprintln!(
        "{n} objects put in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // As 0.2 left it: no hint. A writer's new object writes one.
    let mut writer = handle(&bucket);
    writer.write_all(&[b'y'; SIZE as usize]).expect("write");
    writer.close().expect("close");
    let kept = bucket.raw_get(HINT).body;
    if let Some(file) = reuse {
        let line = format!("{written}{n} {}\n", bucket.name());
        std::fs::write(file, line).expect("the reuse file");
    }
    (bucket, kept)
}
