//! Breaking things on purpose: faults injected by a proxy between the client and a real server,
//! two writers on one stream, and a writer process killed mid-flight.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use s3_syncr::{CloseError, Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy, Wan};

/// Quick retries, and deadlines short enough for `Fault::Stall` to hit them.
fn fault_options() -> Options {
    Options::builder()
        .with_seal_size(1 << 20)
        .with_retry_backoff(Duration::from_millis(5))
        .with_request_timeout(Duration::from_millis(700))
        .with_min_throughput(1 << 30)
        .build()
        .unwrap()
}

/// [`fault_options`] with this many attempts per request.
fn attempts(retry_attempts: u32) -> Options {
    fault_options()
        .to_builder()
        .with_retry_attempts(retry_attempts)
        .build()
        .unwrap()
}

#[test]
fn every_fault_on_every_request_loses_nothing() {
    let rig = Rig::new();
    let faults = Fault::ALL.into_iter().chain([Fault::CutResponse(5_000)]);
    for (i, fault) in faults.enumerate() {
        let name = format!("f{i}.log");
        let mut writer = rig.storage(&name, fault_options());
        let mut acked = Vec::new();
        for round in 0..3u64 {
            // Round 0 creates the object, round 1 overwrites it, round 2 seals it and starts
            // the next: each PUT kind meets the fault.
            let data = pattern(if round == 1 { 400 * 1024 } else { 700 * 1024 }, round);
            writer.write_all(&data).unwrap();
            rig.proxy.inject(Some("PUT"), fault);
            writer
                .flush()
                .unwrap_or_else(|e| panic!("{fault:?}: flush {round}: {e}"));
            acked.extend_from_slice(&data);
            assert_eq!(
                stream_contents(&rig.bucket, &name),
                acked,
                "{fault:?} round {round}"
            );
        }
        writer.close().unwrap();

        // Listing, then reads of both objects, each behind a fault.
        let mut reader = rig.storage(&name, fault_options());
        for _ in 0..3 {
            rig.proxy.inject(Some("GET"), fault);
        }
        let mut got = Vec::new();
        reader
            .read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("{fault:?}: read: {e}"));
        assert!(got == acked, "{fault:?}: read back differs");
        assert_eq!(rig.proxy.clear(), 0, "{fault:?}: every fault was met");
    }
    println!("faults injected: {}", rig.proxy.injected());
}

#[test]
fn a_flush_that_runs_out_of_attempts_fails_keeps_everything_and_succeeds_later() {
    let rig = Rig::new();
    let mut writer = rig.storage("g.log", attempts(3));
    writer.write_all(b"first ").unwrap();
    writer.flush().unwrap();
    writer.write_all(b"second").unwrap();
    for _ in 0..3 {
        rig.proxy.inject(Some("PUT"), Fault::Status(503));
    }
    let err = writer.flush().unwrap_err();
    assert!(
        matches!(inner(&err), Error::Status { status: 503, .. }),
        "{err}"
    );
    assert_eq!(writer.unflushed(), b"second");
    assert_eq!(stream_contents(&rig.bucket, "g.log"), b"first ");

    writer.close().unwrap();
    assert_eq!(stream_contents(&rig.bucket, "g.log"), b"first second");
}

#[test]
fn a_failed_background_seal_is_reported_retried_and_loses_nothing() {
    let rig = Rig::new();
    let mut writer = rig.storage("s.log", attempts(2));
    let data = pattern(2 * MIB + 10, 3);
    writer.write_all(&data[..MIB]).unwrap();
    for _ in 0..2 {
        rig.proxy.inject(Some("PUT"), Fault::Status(500));
    }
    // This write seals the first object: its upload fails twice in the background.
    writer.write_all(&data[MIB..MIB + 10]).unwrap();
    let mut seen = Vec::new();
    writer.read_to_end(&mut seen).unwrap();
    assert!(
        seen == data[..MIB + 10],
        "the sealed object reads from memory meanwhile"
    );
    let err = writer.flush().unwrap_err();
    assert!(
        matches!(inner(&err), Error::Status { status: 500, .. }),
        "{err}"
    );
    assert_eq!(writer.unflushed(), &data[..MIB + 10], "nothing dropped");
    assert_eq!(
        stream_contents(&rig.bucket, "s.log"),
        b"",
        "nothing in S3 yet"
    );

    writer.write_all(&data[MIB + 10..]).unwrap();
    writer.close().unwrap();
    assert!(
        stream_contents(&rig.bucket, "s.log") == data,
        "everything, once, in order"
    );
    assert_eq!(rig.proxy.injected(), 2);
}

#[test]
fn a_read_cut_mid_object_resumes_without_repeating_a_byte() {
    let rig = Rig::new();
    let data = pattern(900 * 1024, 9);
    let mut writer = open(&rig.bucket, "cut.log", 1);
    writer.write_all(&data).unwrap();
    writer.close().unwrap();

    let options = fault_options()
        .to_builder()
        .with_read_chunk(512 * 1024)
        .build()
        .unwrap();
    let mut reader = rig.storage("cut.log", options);
    let mut got = vec![0; 1000];
    rig.server.take_requests();
    // The GETs are cut several times, each time further along: the first read's, and those
    // that fetch the rest of the object before it is checked and handed out.
    for cut in [2_000, 40_000, 90_000] {
        rig.proxy.inject(Some("GET"), Fault::CutResponse(cut));
    }
    reader.read_exact(&mut got).unwrap();
    reader.read_to_end(&mut got).unwrap();
    assert!(got == data, "read back differs");
    assert_eq!(rig.proxy.injected(), 3);
    if !rig.server.is_external() {
        let gets = ops(&rig.server)
            .iter()
            .filter(|op| **op == "GetObject")
            .count();
        assert!(gets >= 4, "resumed with new ranged GETs ({gets})");
    }
}

/// [`fault_options`] shaped as the defaults are: a deadline (1 s) as long as the retry budget
/// (`retry_max_elapsed`), with 3 attempts per request and no read ahead, so that each request
/// of a reader goes alone and its attempts can be counted.
fn deadline_as_long_as_budget() -> Options {
    fault_options()
        .to_builder()
        .with_request_timeout(Duration::from_secs(1))
        .with_retry_max_elapsed(Duration::from_secs(1))
        .with_retry_attempts(3)
        .with_read_ahead(0)
        .build()
        .unwrap()
}

/// Issue 27, item 3: the defaults give a request a deadline (30 s) as long as the retry budget
/// (30 s), and a budget that counted the attempts themselves left no time to retry one that
/// timed out. Every attempt that times out is retried while attempts remain.
#[test]
fn attempts_that_time_out_are_retried_when_the_deadline_is_as_long_as_the_budget() {
    let rig = Rig::new();
    let data = pattern(300 * 1024, 27);
    let mut writer = open(&rig.bucket, "slow.log", 1);
    writer.write_all(&data).unwrap();
    writer.close().unwrap();

    let options = deadline_as_long_as_budget();
    let attempts = options.retry_attempts() as usize;
    // Two requests in a row go unanswered past their deadline (the listing or the object's
    // GET, whichever comes): the third attempt passes.
    let mut reader = rig.storage("slow.log", options.clone());
    for _ in 0..attempts - 1 {
        rig.proxy
            .inject(Some("GET"), Fault::Stall(Duration::from_secs(3)));
    }
    let mut got = Vec::new();
    reader
        .read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("a timed-out attempt was not retried: {e}"));
    assert!(got == data, "read back differs");
    assert_eq!(rig.proxy.injected(), attempts - 1);

    // Every attempt times out: the read fails after all of them, and no more.
    let mut reader = rig.storage("slow.log", options);
    for _ in 0..10 {
        rig.proxy
            .inject(Some("GET"), Fault::Stall(Duration::from_secs(3)));
    }
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert_eq!(rig.proxy.injected() - (attempts - 1), attempts);
    rig.proxy.clear();
}

/// Issue 27, item 4: a request that times out on a kept-alive connection is a failed attempt,
/// not a request on a connection the server had closed (which is sent again at once and counts
/// as no attempt): the pool's connections do not stretch a failure past its attempts.
#[test]
fn a_silent_path_fails_a_request_within_its_attempts_whatever_the_pool_holds() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    // A relay that keeps connections open (the fault proxy closes each one after its answer),
    // with a round trip long enough that the GETs ahead overlap, each on its own connection.
    let relay = Proxy::start_wan(
        server.endpoint(),
        Wan {
            rtt: Duration::from_millis(10),
            rate_bytes_per_sec: 10_000_000_000,
            handshake_rtts: 0,
            slow_start: false,
        },
    );
    let far = relay.bucket(&server, &bucket.name());
    let mut data = Vec::new();
    for seq in 0..24 {
        let body = pattern(64 * 1024, seq);
        raw_put(&bucket, &format!("pool-{seq:020}.bin"), &body);
        data.extend_from_slice(&body);
    }

    // A reader with 8 GETs ahead leaves the process's pool holding that many connections.
    let wide = fault_options()
        .to_builder()
        .with_read_chunk(64 * 1024)
        .with_read_ahead(8)
        .build()
        .unwrap();
    let mut reader = Storage::new(far.clone(), "pool.bin", wide).unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(got == data, "read back differs");
    drop(reader);
    let pooled = relay.connections();
    assert!(pooled >= 4, "{pooled} connections: the pool is not filled");

    // The path goes silent; one request at a time, each through the pool first.
    let options = deadline_as_long_as_budget();
    let mut reader = Storage::new(far, "pool.bin", options.clone()).unwrap();
    relay.go_silent();
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let requests = relay.silenced();
    eprintln!("{requests} requests for a read, {pooled} connections opened before");
    assert!(
        requests <= options.retry_attempts() as usize,
        "{requests} requests for a read with {} attempts",
        options.retry_attempts()
    );
}

/// Each record is 1,000 bytes: who wrote it, its number, then filler, so order, duplicates and
/// gaps show.
fn record(writer: char, n: u64) -> Vec<u8> {
    let mut rec = format!("{writer}{n:010}:").into_bytes();
    rec.extend(pattern(1000 - rec.len(), n * 31 + writer as u64));
    rec
}

/// Splits a stream into `(writer, number)` records, checking each one's filler.
fn parse_records(stream: &[u8]) -> Vec<(char, u64)> {
    assert_eq!(stream.len() % 1000, 0, "whole records only");
    stream
        .chunks(1000)
        .map(|rec| {
            let writer = rec[0] as char;
            let n: u64 = std::str::from_utf8(&rec[1..11]).unwrap().parse().unwrap();
            assert_eq!(rec, record(writer, n), "record {writer}{n} intact");
            (writer, n)
        })
        .collect()
}

#[test]
fn two_concurrent_writers_one_is_fenced_and_nothing_interleaves() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    // Both find the end of the (empty) stream before either flushes: a real race for the tail.
    let ready = std::sync::Arc::new(std::sync::Barrier::new(2));
    let run = |id: char| {
        let bucket = bucket.clone();
        let ready = ready.clone();
        std::thread::spawn(move || {
            let mut storage = Storage::new(bucket, "two.log", fault_options()).unwrap();
            let mut acked = 0;
            for n in 0..300 {
                storage.write_all(&record(id, n)).unwrap();
                if n == 0 {
                    ready.wait();
                }
                if n % 5 == 4 {
                    match storage.flush() {
                        Ok(()) => acked = n + 1,
                        Err(err) => {
                            assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
                            assert!(matches!(inner(&err), Error::Fenced { .. }));
                            let again = storage.write(b"x").unwrap_err();
                            assert_eq!(again.kind(), ErrorKind::AlreadyExists, "poisoned");
                            assert!(!storage.unflushed().is_empty(), "unflushed bytes kept");
                            return (id, acked, true);
                        }
                    }
                }
            }
            storage.close().unwrap();
            (id, acked, false)
        })
    };
    let (a, b) = (run('a'), run('b'));
    let results = [a.join().unwrap(), b.join().unwrap()];
    let fenced: Vec<_> = results.iter().filter(|r| r.2).collect();
    let survivor: Vec<_> = results.iter().filter(|r| !r.2).collect();
    assert_eq!((fenced.len(), survivor.len()), (1, 1), "{results:?}");
    let (survivor, loser) = (survivor[0], fenced[0]);

    // The loser's records (possibly none) come first, then the survivor's, each in order.
    let records = parse_records(&stream_contents(&bucket, "two.log"));
    let split = records.iter().take_while(|(w, _)| *w == loser.0).count();
    let expect = |id: char, count: u64| (0..count).map(|n| (id, n)).collect::<Vec<_>>();
    assert_eq!(records[..split], expect(loser.0, split as u64)[..]);
    assert!(
        split as u64 >= loser.1,
        "the loser's acknowledged records stay"
    );
    assert_eq!(records[split..], expect(survivor.0, 300)[..]);
}

#[test]
fn a_writer_that_lost_the_tail_to_another_is_fenced() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut first = open(&bucket, "fence.log", 1);
    first.write_all(b"a1 ").unwrap();
    first.flush().unwrap();
    let mut second = open(&bucket, "fence.log", 1);
    second.write_all(b"b1 ").unwrap();
    second.flush().unwrap();

    first.write_all(b"a2 ").unwrap();
    let err = first.flush().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        matches!(inner(&err), Error::Fenced { key, .. } if key == "fence-00000000000000000000.log")
    );
    assert_eq!(first.unflushed(), b"a2 ");
    assert_eq!(
        first.write(b"more").unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let mut seen = String::new();
    first.read_to_string(&mut seen).unwrap();
    assert_eq!(
        seen, "a1 b1 ",
        "a fenced handle still reads, and sees what S3 holds"
    );

    second.write_all(b"b2").unwrap();
    second.close().unwrap();
    assert_eq!(stream_contents(&bucket, "fence.log"), b"a1 b1 b2");
    let err = first.close().unwrap_err();
    assert!(
        matches!(err.error(), Error::Fenced { .. }),
        "close reports the fence"
    );
    assert_eq!(err.unflushed(), b"a2 ", "and hands back what S3 lacks");
    // The handle comes back: closing it again reports the fence again.
    let err = err.into_storage().close().unwrap_err();
    assert_eq!(io::Error::from(err).kind(), ErrorKind::AlreadyExists);
    let err = second_close_of(&bucket);
    assert_eq!(err.into_unflushed(), b"c1");
}

/// A writer whose close is fenced by another writer's: its `c1` is never stored.
fn second_close_of(bucket: &s3::Bucket) -> CloseError {
    let mut late = Storage::new(bucket.clone(), "fence.log", Options::default()).unwrap();
    late.write_all(b"c").unwrap(); // finds the tail
    let mut other = Storage::new(bucket.clone(), "fence.log", Options::default()).unwrap();
    other.write_all(b"d").unwrap();
    other.close().unwrap();
    late.write_all(b"1").unwrap();
    late.close().unwrap_err()
}

#[test]
fn a_writer_killed_at_random_moments_loses_no_acknowledged_byte() {
    kill_writers(false);
}

/// As above, with tails past the copy threshold flushed by multipart uploads (appends by copy,
/// parts streamed out between flushes), so that most kills land in one.
#[test]
fn a_writer_killed_during_multipart_flushes_loses_no_acknowledged_byte() {
    kill_writers(true);
}

/// [`fault_options`] for 16 MiB objects streamed out as 5 MiB parts, two at once: tails cross
/// the copy threshold, so flushes append by copy and parts go out between them.
fn large_fault_options() -> Options {
    fault_options()
        .to_builder()
        .with_seal_size(16 << 20)
        .with_part_size(5 * MIB)
        .with_write_ahead(2)
        .with_request_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn kill_writers(large: bool) {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let kills = 6;
    let mut seed = 0x5eed_u64;
    for kill in 0..kills {
        let mut child = reaching(&mut Command::new(std::env::current_exe().unwrap()), &server)
            .args(["--exact", "faults::crash_child", "--ignored", "--nocapture"])
            .env(
                "S3SYNCR_CRASH_LOCATION",
                format!("s3://{}/crash.log", bucket.name()),
            )
            .env("S3SYNCR_CRASH_LARGE", if large { "1" } else { "" })
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let reader = std::thread::spawn(move || {
            let mut acked = 0u64;
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("acked ") {
                    acked = n.parse().unwrap();
                }
            }
            acked
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 600));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();

        let records = parse_records(&stream_contents(&bucket, "crash.log"));
        let expected: Vec<_> = (0..records.len() as u64).map(|n| ('c', n)).collect();
        assert_eq!(records, expected, "kill {kill}: in order, no duplicate");
        assert!(
            records.len() as u64 >= acked,
            "kill {kill}: {acked} acknowledged, {} kept",
            records.len()
        );
        println!(
            "kill {kill}: {acked} records acknowledged, {} in the stream",
            records.len()
        );
    }
    // And the stream still takes appends after the last kill.
    let mut storage = open(&bucket, "crash.log", 1);
    let before = records_stored(&mut storage);
    storage.write_all(&record('c', before)).unwrap();
    storage.close().unwrap();
    assert_eq!(
        parse_records(&stream_contents(&bucket, "crash.log")).len() as u64,
        before + 1
    );
    println!("kills survived: {kills}");
}

/// How many 1,000-byte records the stream holds in S3.
fn records_stored(storage: &mut Storage) -> u64 {
    let objects = storage.objects().unwrap();
    objects.iter().map(|s| s.size).sum::<u64>() / 1000
}

/// The writer process of the crash test: appends records after whatever the stream holds,
/// flushing every few, and prints how many are acknowledged after each successful flush.
#[test]
#[ignore = "run by a_writer_killed_at_random_moments_loses_no_acknowledged_byte"]
fn crash_child() {
    let Ok(location) = std::env::var("S3SYNCR_CRASH_LOCATION") else {
        return;
    };
    let large = std::env::var("S3SYNCR_CRASH_LARGE").is_ok_and(|v| !v.is_empty());
    let (options, flush_every) = match large {
        // 16 MiB objects, flushed every 6 MB: appends by copy, and 5 MiB parts in between.
        true => (large_fault_options(), 6000),
        false => (fault_options(), 7),
    };
    let mut storage = Storage::open(&location, options).unwrap();
    let start = records_stored(&mut storage);
    let mut stdout = std::io::stdout();
    for n in start.. {
        storage.write_all(&record('c', n)).unwrap();
        if n % flush_every == flush_every - 1 {
            storage.flush().unwrap();
            writeln!(stdout, "acked {}", n + 1).unwrap();
            stdout.flush().unwrap();
        }
    }
}

/// Lost, cut and failed answers on every kind of request, on a server whose ETags are not the
/// MD5 of the body (as on SSE-KMS and SSE-C buckets): a write whose answer was lost is settled
/// by which handle wrote the object, so none is taken for another writer's (no false fence)
/// and none is stored twice. Each stream meets every kind of write: a new object, a whole-tail
/// PUT, an append by copy, and parts streamed out and completed.
#[test]
fn lost_answers_on_every_request_kind_with_opaque_etags_fence_nothing() {
    let server = Server::start_opaque();
    let proxy = Proxy::start(&server);
    let bucket = server.new_bucket();
    let options = large_fault_options();
    let faults = [
        Fault::DropResponse,
        Fault::CutResponse(300),
        Fault::Status(500),
    ];
    let mut met = 0;
    for (i, fault) in faults.into_iter().enumerate() {
        for method in ["PUT", "POST", "HEAD", "GET", "DELETE"] {
            let name = format!("o{i}-{method}.log");
            let slow = proxy.bucket(&server, &bucket.name());
            let mut writer = Storage::new(slow, &name, options.clone()).unwrap();
            let mut acked = Vec::new();
            let sizes = [300 * 1024, 5 * MIB + 300 * 1024, 200 * 1024, 7 * MIB];
            for (round, size) in sizes.into_iter().enumerate() {
                let data = pattern(size, (10 * i + round) as u64);
                writer.write_all(&data).unwrap();
                for _ in 0..2 {
                    proxy.inject(Some(method), fault);
                }
                writer
                    .flush()
                    .unwrap_or_else(|e| panic!("{fault:?} on {method}, round {round}: {e}"));
                acked.extend_from_slice(&data);
                let stored = stream_contents(&bucket, &name);
                assert!(stored == acked, "{fault:?} on {method}, round {round}");
            }
            writer.close().unwrap();
            met += 2 * sizes.len() - proxy.clear();
        }
    }
    println!("faults met: {met}");
    assert!(met > 40, "most faults were met: {met}");
}

/// A proxy or cache that answers a ranged GET with another range than the one asked for: the
/// reader never hands those bytes out as the asked-for ones (a read inside an object is not
/// checksummed, so only the answer's `Content-Range` tells).
#[test]
fn an_answer_for_another_range_is_never_handed_out() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let data = pattern(3 * MIB, 70);
    let mut writer = open(&bucket, "ranges/log.bin", 16);
    writer.write_all(&data).unwrap();
    writer.close().unwrap();

    let options = (Options::builder().with_read_ahead(0))
        .with_read_chunk(64 * 1024)
        .build()
        .unwrap();
    let through_proxy = proxy.bucket(&server, &bucket.name());
    let mut reader = Storage::new(through_proxy, "ranges/log.bin", options).unwrap();
    // The listing and a first chunk, so that the next GET is the read's own.
    let mut got = [0; 100];
    reader.read_exact(&mut got).unwrap();
    let at = MIB + 1000;
    reader.seek(SeekFrom::Start(at as u64)).unwrap();
    proxy.inject(Some("GET"), Fault::ShiftRange);
    let read = reader.read_exact(&mut got);
    assert_eq!(proxy.injected(), 1);
    match read {
        Ok(()) => assert!(got[..] == data[at..at + 100], "bytes of another range"),
        Err(err) => assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}"),
    }
}
