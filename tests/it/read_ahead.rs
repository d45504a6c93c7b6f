//! The parallel reader: GETs in flight ahead of a sequential reader, across objects, bounded by
//! `Options::read_ahead`; dropped on a seek; errors surfacing at the read that needs the bytes.
//! A proxy between the client and the real server slows GETs down, so that the GETs a reader
//! keeps in flight overlap whatever the machine's speed, and counts how many were under way at
//! once.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::common::*;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy};

const KIB: usize = 1024;

/// A stream of `objects` objects of `object_kib` KiB each, written directly (a 1 MiB `min_size`
/// cannot make smaller objects), and its bytes.
fn stream_of(bucket: &s3::Bucket, name: &str, objects: u64, object_kib: usize) -> Vec<u8> {
    let mut data = Vec::new();
    for seq in 0..objects {
        let body = pattern(object_kib * KIB, seq);
        raw_put(bucket, &format!("{name}-{seq:020}.bin"), &body);
        data.extend_from_slice(&body);
    }
    data
}

fn reader_options(read_chunk: usize, read_ahead: usize) -> Options {
    Options::builder()
        .with_read_chunk(read_chunk)
        .with_read_ahead(read_ahead)
        .with_retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap()
}

/// A [`Rig`] with a stream of `objects` objects of `object_kib` KiB, and its bytes.
fn rig_with_stream(name: &str, objects: u64, object_kib: usize) -> (Rig, Vec<u8>) {
    let rig = Rig::new();
    let data = stream_of(&rig.bucket, name, objects, object_kib);
    (rig, data)
}

/// Slows each of the next `count` GETs down by `delay`.
fn slow_gets(proxy: &Proxy, count: usize, delay: Duration) {
    for _ in 0..count {
        proxy.inject(Some("GET"), Fault::Delay(delay));
    }
}

#[test]
fn sequential_reads_keep_read_ahead_gets_in_flight_across_objects() {
    // Objects smaller than a chunk: every GET ahead is a different object.
    let (rig, data) = rig_with_stream("many", 24, 64);
    let proxy = &rig.proxy;
    for read_ahead in [3, 0] {
        let mut reader = rig.storage("many.bin", reader_options(256 * KIB, read_ahead));
        proxy.clear();
        slow_gets(proxy, 100, Duration::from_millis(150));
        proxy.take_peak();
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        assert!(got == *data, "read back differs (read_ahead {read_ahead})");
        // The GETs ahead, and nothing else: the caller fetches itself only when not sequential.
        assert_eq!(
            proxy.take_peak(),
            read_ahead.max(1),
            "requests under way at once with read_ahead {read_ahead}"
        );
    }
}

/// A checked reader holds an object until all of it has arrived, so a cold start at its
/// first byte fetches the rest of it over every read-ahead slot at once, not in one GET.
#[test]
fn a_checked_read_from_an_object_start_fetches_the_object_in_parallel() {
    let (rig, data) = rig_with_stream("cold", 1, 1024);
    let proxy = &rig.proxy;
    let mut reader = rig.storage("cold.bin", reader_options(1024 * KIB, 4));
    proxy.clear();
    slow_gets(proxy, 100, Duration::from_millis(150));
    proxy.take_peak();
    let mut first = [0; 10];
    reader.read_exact(&mut first).unwrap();
    assert!(first == data[..10]);
    assert_eq!(
        proxy.take_peak(),
        4,
        "GETs under way at once for the object's rest"
    );
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest == data[10..], "read back differs");
}

#[test]
fn a_seek_drops_the_gets_ahead_and_reads_the_right_bytes() {
    let (rig, data) = rig_with_stream("seek", 8, 512);
    let proxy = &rig.proxy;
    let mut reader = rig.storage("seek.bin", reader_options(128 * KIB, 4));
    let mut head = vec![0; 200 * KIB];
    reader.read_exact(&mut head).unwrap();
    assert!(head == data[..200 * KIB]);
    // GETs ahead are under way (and slow) when the reader jumps elsewhere, several times.
    slow_gets(proxy, 100, Duration::from_millis(300));
    for target in [3_000_000u64, 17, 4 * 512 * 1024 - 3, 1_500_000] {
        reader.seek(SeekFrom::Start(target)).unwrap();
        let mut got = vec![0; 4 * KIB];
        reader.read_exact(&mut got).unwrap();
        let at = target as usize;
        assert!(got == data[at..at + 4 * KIB], "bytes at {target}");
    }
    // Sequential again after the last seek: continues from there, to the end.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest == data[1_500_000 + 4 * KIB..], "rest after the seeks");
    proxy.clear();
}

#[test]
fn a_failed_get_ahead_surfaces_at_the_read_that_needs_it_and_reading_goes_on() {
    let (rig, data) = rig_with_stream("fail", 6, 256);
    let proxy = &rig.proxy;
    let options = reader_options(64 * KIB, 4)
        .to_builder()
        .with_retry_attempts(1)
        .build()
        .unwrap();
    let mut reader = rig.storage("fail.bin", options);
    let mut got = Vec::new();
    let mut buf = vec![0; 8 * KIB];
    reader.read_exact(&mut buf).unwrap();
    got.extend_from_slice(&buf);
    // The third GET from here fails, whichever part of the stream it was fetching ahead.
    proxy.inject(Some("GET"), Fault::Delay(Duration::ZERO));
    proxy.inject(Some("GET"), Fault::Delay(Duration::ZERO));
    proxy.inject(Some("GET"), Fault::Status(500));
    let mut errors = Vec::new();
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => {
                assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
                assert!(
                    matches!(inner(&err), Error::Status { status: 500, .. }),
                    "{err}"
                );
                errors.push(reader.stream_position().unwrap());
            }
        }
    }
    assert_eq!(
        errors.len(),
        1,
        "one error, at the read that needed the bytes"
    );
    assert!(got == *data, "every byte once, in order, around the error");
}

#[test]
fn following_after_the_end_finds_appended_objects() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut writer = open(&bucket, "follow.log", 1);
    let mut reader =
        Storage::new(bucket.clone(), "follow.log", reader_options(64 * KIB, 4)).unwrap();
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for round in 0..4u64 {
        // Each round seals an object and leaves a tail: the reader sees both.
        let body = pattern(MIB + 5000, round);
        writer.write_all(&body).unwrap();
        writer.flush().unwrap();
        expected.extend_from_slice(&body);
        reader.read_to_end(&mut got).unwrap();
        assert!(got == expected, "after round {round}");
    }
    writer.close().unwrap();
}
