//! Writers racing on one stream. The promise: among writers that found the same end, the first
//! flush wins and the others are fenced; every record whose flush returned `Ok` is in the stream
//! exactly once, in its writer's order, and no record that was refused is.
//!
//! Three threads loop: write a record, flush; a fenced writer drops its handle and opens a new
//! one, which continues the tail as it finds it. Then the same races, one at a time, with the
//! proxy holding the continuing writer's request while the other flushes.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use s3::Bucket;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::Fault;

/// A record: `<writer:number:padding>` and a newline, `len` bytes in all.
fn record(writer: usize, n: u64, len: usize) -> Vec<u8> {
    let mut record = format!("<{writer}:{n:08}:").into_bytes();
    record.resize(len - 2, b'.');
    record.extend_from_slice(b">\n");
    record
}

/// The records of a stream, as (writer, number), in stream order; a line that is no record
/// fails the test (a torn or interleaved write).
fn records(stream: &[u8]) -> Vec<(usize, u64)> {
    stream
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty() && !line.starts_with(b"<seed"))
        .map(|line| {
            let text = std::str::from_utf8(line).expect("records are text");
            let mut fields = text.trim_start_matches('<').split(':');
            let parsed = (fields.next(), fields.next(), fields.next());
            match parsed {
                (Some(w), Some(n), Some(pad)) if pad.ends_with('>') => (
                    w.parse().unwrap_or_else(|_| panic!("torn record {text:?}")),
                    n.parse().unwrap_or_else(|_| panic!("torn record {text:?}")),
                ),
                _ => panic!("torn record {:?}", &text[..text.len().min(40)]),
            }
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    /// Per writer, the numbers of its records whose flush returned `Ok`, in order.
    acked: BTreeMap<usize, Vec<u64>>,
    /// Records that a fence refused.
    refused: usize,
    fences: usize,
}

/// One writer's loop: write a record, flush; a fenced handle is dropped and a new one opened.
/// `more` says whether to go on; `told` hears each record's number and whether its flush
/// returned `Ok`. Returns how many fences it met.
fn contend(
    w: usize,
    open: impl Fn() -> Storage,
    len: usize,
    more: impl Fn() -> bool,
    mut told: impl FnMut(u64, bool),
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut handle: Option<Storage> = None;
    let mut fences = 0;
    for n in 0u64.. {
        if !more() || Instant::now() > deadline {
            break;
        }
        let storage = handle.get_or_insert_with(&open);
        let data = record(w, n, len);
        match storage.write_all(&data).and_then(|()| storage.flush()) {
            Ok(()) => told(n, true),
            Err(err) if matches!(inner(&err), Error::Fenced { .. }) => {
                // The flush before this one succeeded: only this record is left.
                assert_eq!(storage.unflushed(), data, "writer {w}: what was refused");
                told(n, false);
                fences += 1;
                handle = None;
            }
            Err(err) => panic!("writer {w}, record {n}: {err}"),
        }
    }
    fences
}

/// Runs three writers, on threads, on stream `name` until they acknowledged `flushes` records
/// in all (or a time limit passed), and returns what they were told.
fn race(bucket: &Bucket, name: &str, options: &Options, len: usize, flushes: usize) -> Tally {
    let acked = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let threads: Vec<_> = (0..3)
        .map(|w| {
            let (bucket, name, options) = (bucket.clone(), name.to_owned(), options.clone());
            let (acked, tally) = (acked.clone(), tally.clone());
            std::thread::spawn(move || {
                let open = || Storage::new(bucket.clone(), &name, options.clone()).unwrap();
                let more = || acked.load(Ordering::SeqCst) < flushes;
                let (mut mine, mut refused) = (Vec::new(), 0);
                let fences = contend(w, open, len, more, |n, ok| match ok {
                    true => {
                        mine.push(n);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    false => refused += 1,
                });
                let mut tally = tally.lock().unwrap();
                tally.acked.insert(w, mine);
                tally.refused += refused;
                tally.fences += fences;
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a writer panicked");
    }
    Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap()
}

/// Checks the stream against what the writers were told, and prints the counts.
fn check(bucket: &Bucket, name: &str, tally: &Tally) {
    let mut stored: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for (w, n) in records(&stream_contents(bucket, name)) {
        stored.entry(w).or_default().push(n);
    }
    for (w, acked) in &tally.acked {
        let found = stored.remove(w).unwrap_or_default();
        // Equal lists: every acknowledged record once, in order, and nothing else of its.
        assert!(
            found == *acked,
            "writer {w}: {} records acknowledged, {} stored; first difference at {:?}",
            acked.len(),
            found.len(),
            acked.iter().zip(&found).position(|(a, f)| a != f)
        );
    }
    assert!(stored.is_empty(), "records of no writer: {stored:?}");
    let total: usize = tally.acked.values().map(Vec::len).sum();
    println!(
        "{name}: {total} flushes acknowledged, {} fences, {} records refused, 0 lost or doubled",
        tally.fences, tally.refused
    );
    assert!(tally.fences > 0, "the writers never raced");
}

/// How many acknowledged flushes a race runs to: fewer against an external server, where
/// every request crosses a real server's disk.
fn flushes(in_process: usize, external: usize) -> usize {
    match std::env::var("S3SYNCR_CONTENTION_FLUSHES") {
        Ok(n) => n.parse().expect("S3SYNCR_CONTENTION_FLUSHES is a number"),
        Err(_) if Server::from_env().is_some() => external,
        Err(_) => in_process,
    }
}

#[test]
fn racing_writers_on_a_small_tail_lose_and_double_nothing() {
    let server = Server::from_env_or_start();
    // In a directory bucket too, where each flush is an append, and where objects also fill
    // up by their parts (at most 50 here) before their seal size.
    server.set_append_part_limit(50);
    for bucket in bucket_kinds(&server) {
        // 1 MiB objects of 4 KiB records: each flush PUTs the whole tail, and some seal (one
        // at least with the fewest flushes).
        let options = Options::builder().with_seal_size(1 << 20).build().unwrap();
        let tally = race(&bucket, "small.log", &options, 4096, flushes(1000, 450));
        check(&bucket, "small.log", &tally);
        assert!(
            object_sizes(&bucket, "small.log").len() > 1,
            "no seal raced"
        );
    }
}

#[test]
fn racing_writers_on_a_large_tail_lose_and_double_nothing() {
    if !complete_is_atomic() {
        println!("skipped: this server can complete two appends by copy of one version");
        return;
    }
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    // A tail past the copy threshold: every flush is an append by copy, and a new handle
    // continues the tail from a HEAD.
    let options = Options::builder().with_seal_size(64 << 20).build().unwrap();
    seed(&bucket, "large.log", &options, 5 * MIB + 100);
    let tally = race(&bucket, "large.log", &options, 1024, flushes(150, 90));
    check(&bucket, "large.log", &tally);
}

/// Starts stream `name` with one `len`-byte record that is no writer's.
fn seed(bucket: &Bucket, name: &str, options: &Options, len: usize) {
    let mut seed = b"<seed".to_vec();
    seed.resize(len - 1, b'.');
    seed.push(b'\n');
    let mut storage = Storage::new(bucket.clone(), name, options.clone()).unwrap();
    storage.write_all(&seed).unwrap();
    storage.close().unwrap();
}

/// A writer that continues a tail while another flushes to it: the proxy holds its request of
/// kind `method` after `skip` others (the GET of a small tail after the LIST, the HEAD of a
/// large one) until the other writer's flush returned. It then sees the tail as it is after
/// that flush, size and ETag alike, and appends after it: nothing is lost, and it counts the
/// stream's length right.
fn continue_while_held(method: &str, skip: usize, options: Options, seed_len: usize) {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    seed(&bucket, "held.log", &options, seed_len);
    let mut a = Storage::new(bucket.clone(), "held.log", options.clone()).unwrap();
    a.write_all(&record(0, 0, 100)).unwrap();
    a.flush().unwrap();

    let slow = proxy.bucket(&server, &bucket.name());
    let mut b = Storage::new(slow, "held.log", options).unwrap();
    for _ in 0..skip {
        proxy.inject(Some(method), Fault::Delay(Duration::ZERO));
    }
    proxy.inject(Some(method), Fault::Hold);
    let continuing = std::thread::spawn(move || b.write_all(&record(1, 0, 100)).map(|()| b));
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.injected() <= skip && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        proxy.wait_holding(1),
        "the continuing writer's {method} is held"
    );
    a.write_all(&record(0, 1, 100)).unwrap();
    a.flush().unwrap();
    proxy.release();
    let mut b = continuing.join().unwrap().unwrap();
    b.flush()
        .expect("b continued the tail as a's flush left it");
    let stored = records(&stream_contents(&bucket, "held.log"));
    assert_eq!(stored, [(0, 0), (0, 1), (1, 0)]);
    let end = b.seek(SeekFrom::End(0)).unwrap();
    let sizes: u64 = object_sizes(&bucket, "held.log").iter().sum();
    assert_eq!(end, sizes, "b's length is the stream's");
    // And a, whose tail b moved on, is fenced with its record kept aside (where the server
    // checks If-Match on a Complete: an append by copy is fenced by nothing else).
    if !complete_is_conditional() {
        return;
    }
    a.write_all(&record(0, 2, 100)).unwrap();
    let err = a.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert_eq!(a.unflushed(), record(0, 2, 100));
    assert_eq!(records(&stream_contents(&bucket, "held.log")).len(), 3);
}

#[test]
fn a_small_tail_continued_while_another_flushes_keeps_both() {
    let options = Options::builder().with_seal_size(1 << 20).build().unwrap();
    continue_while_held("GET", 1, options, 1000);
}

#[test]
fn a_large_tail_continued_while_another_flushes_keeps_both() {
    let options = Options::builder().with_seal_size(64 << 20).build().unwrap();
    continue_while_held("HEAD", 0, options, 5 * MIB + 100);
}

/// A writer continues a large tail, then another appends to it before the first's flush
/// copies it: the copy's condition fails and the first is fenced, with what it wrote kept
/// aside; the stream holds the other's append once, and nothing of the fenced writer's.
#[test]
fn an_append_by_copy_of_a_tail_changed_since_is_fenced() {
    if !complete_is_conditional() {
        println!("skipped: this server completes an append by copy whatever its If-Match");
        return;
    }
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let options = Options::builder().with_seal_size(64 << 20).build().unwrap();
    seed(&bucket, "copy.log", &options, 5 * MIB + 100);
    let slow = proxy.bucket(&server, &bucket.name());
    let mut b = Storage::new(slow, "copy.log", options.clone()).unwrap();
    b.write_all(&record(1, 0, 100)).unwrap(); // knows the tail from a HEAD
    let mut a = Storage::new(bucket.clone(), "copy.log", options).unwrap();
    a.write_all(&record(0, 0, 100)).unwrap();
    // b's append starts with CreateMultipartUpload (a POST): hold it while a appends.
    proxy.inject(Some("POST"), Fault::Hold);
    let flushing = std::thread::spawn(move || {
        let result = b.flush();
        (b, result)
    });
    assert!(proxy.wait_holding(1));
    a.flush().unwrap();
    proxy.release();
    let (b, result) = flushing.join().unwrap();
    let err = result.expect_err("b copied a tail that changed");
    assert!(matches!(inner(&err), Error::Fenced { .. }), "{err}");
    assert_eq!(b.unflushed(), record(1, 0, 100));
    assert_eq!(records(&stream_contents(&bucket, "copy.log")), [(0, 0)]);
}

/// Three writer processes on one stream, each until it has `flushes / 3` records acknowledged:
/// fencing holds between processes as between threads.
#[test]
fn racing_writer_processes_lose_and_double_nothing() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let share = flushes(300, 150) / 3;
    let children: Vec<_> = (0..3)
        .map(|w| {
            let location = format!("s3://{}/procs.log", bucket.name());
            reaching(&mut Command::new(std::env::current_exe().unwrap()), &server)
                .args([
                    "--exact",
                    "contention::contend_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env("S3SYNCR_CONTEND", format!("{w} {share} {location}"))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tally = Tally::default();
    for (w, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "writer process {w} failed");
        let mut mine = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            match line.split_once(' ') {
                Some(("acked", n)) => mine.push(n.parse().unwrap()),
                Some(("refused", _)) => {
                    tally.refused += 1;
                    tally.fences += 1;
                }
                _ => {}
            }
        }
        tally.acked.insert(w, mine);
    }
    check(&bucket, "procs.log", &tally);
}

/// A writer process of the test above: `S3SYNCR_CONTEND` is "WRITER SHARE LOCATION".
#[test]
#[ignore = "run by racing_writer_processes_lose_and_double_nothing"]
fn contend_child() {
    let Ok(args) = std::env::var("S3SYNCR_CONTEND") else {
        return;
    };
    let mut args = args.splitn(3, ' ');
    let w: usize = args.next().unwrap().parse().unwrap();
    let share: usize = args.next().unwrap().parse().unwrap();
    let location = args.next().unwrap().to_owned();
    let options = Options::builder().with_seal_size(1 << 20).build().unwrap();
    let open = || Storage::open(&location, options.clone()).unwrap();
    let acked = std::cell::Cell::new(0);
    contend(
        w,
        open,
        2048,
        || acked.get() < share,
        |n, ok| {
            acked.set(acked.get() + usize::from(ok));
            println!("{} {n}", if ok { "acked" } else { "refused" });
        },
    );
}

/// Writers of one stream need not share their `Options`: the seal size the tail records
/// governs every writer that continues it. Writer A (large seal) leaves a tail above writer B's
/// seal size; B must continue that tail, not start the next object after it, or A's next flush
/// (its `If-Match` still holds) grows the tail under the start B's object records, and every
/// reader then meets a discontinuity with both flushes acknowledged. Below and above the size
/// from which flushes append by copy (the tail is then fetched whole, or HEADed).
#[test]
fn writers_with_different_seal_sizes_keep_one_readable_stream() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    for (i, tail_len) in [2 * MIB, 6 * MIB].into_iter().enumerate() {
        let name = format!("seals-{i}/log.bin");
        let options = |seal| Options::builder().with_seal_size(seal).build().unwrap();
        let first = pattern(tail_len, 30 + i as u64);
        let (theirs, late) = (pattern(4096, 40 + i as u64), pattern(MIB, 50 + i as u64));

        let mut a = Storage::new(bucket.clone(), &name, options(16 * MIB)).unwrap();
        a.write_all(&first).unwrap();
        a.flush().unwrap();
        let mut b = Storage::new(bucket.clone(), &name, options(MIB)).unwrap();
        b.write_all(&theirs).unwrap();
        b.flush().unwrap();
        a.write_all(&late).unwrap();
        // B took over the tail A records as open: A is fenced, with its bytes handed back.
        let err = a.flush().unwrap_err();
        assert!(matches!(inner(&err), Error::Fenced { .. }), "{err}");
        assert!(a.unflushed() == late, "A's refused bytes are handed back");
        drop(a);

        let acked = [&first[..], &theirs[..]].concat();
        assert!(
            stream_contents(&bucket, &name) == acked,
            "{name}: A's, then B's"
        );
        assert_eq!(object_sizes(&bucket, &name), [acked.len() as u64], "{name}");
        // B goes on under the seal the tail records: it seals at 16 MiB, not at its own 1 MiB.
        let more = pattern(MIB, 60 + i as u64);
        b.write_all(&more).unwrap();
        b.close().unwrap();
        assert!(stream_contents(&bucket, &name) == [&acked[..], &more[..]].concat());
        assert_eq!(object_sizes(&bucket, &name).len(), 1, "{name}");
    }
}
