//! Offsets that survive retention: every object records its start, positions are absolute, and
//! deleting the oldest objects (by `trim`, by hand or by a lifecycle rule) moves no byte.

mod common;

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use attohttpc::header::{HeaderMap, HeaderName, HeaderValue};
use common::*;
use s3::Bucket;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy};

const M: u64 = MIB as u64;
const START: &str = "x-amz-meta-s3syncr-start";

/// Writes `data` as objects of 1 MiB (the last one shorter) and returns it.
fn write_stream(bucket: &Bucket, name: &str, data: &[u8]) {
    let mut storage = open(bucket, name, 1);
    for chunk in data.chunks(MIB) {
        storage.write_all(chunk).unwrap();
    }
    storage.close().unwrap();
}

fn key(name: &str, seq: u64) -> String {
    let (stem, ext) = name.rsplit_once('.').unwrap();
    format!("{stem}-{seq:020}.{ext}")
}

/// `len` bytes at absolute offset `pos`, read by `storage`.
fn read_at(storage: &mut Storage, pos: u64, len: usize) -> Vec<u8> {
    assert_eq!(storage.seek(SeekFrom::Start(pos)).unwrap(), pos);
    let mut got = Vec::new();
    storage.take(len as u64).read_to_end(&mut got).unwrap();
    got
}

fn trimmed(err: &std::io::Error) -> (u64, u64) {
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    match inner(err) {
        Error::Trimmed { requested, first } => (*requested, *first),
        other => panic!("not Trimmed: {other}"),
    }
}

#[test]
fn every_object_records_its_start_on_head_and_get() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let data = pattern(2 * MIB + 100, 1);
    write_stream(&bucket, "meta/a.log", &data);
    for (seq, start) in [(0, 0), (1, M), (2, 2 * M)] {
        let key = key("meta/a.log", seq);
        let (head, _) = bucket.head_object(&key).unwrap();
        let recorded = head.metadata.unwrap_or_default();
        assert_eq!(
            recorded.get("s3syncr-start").map(String::as_str),
            Some(start.to_string().as_str()),
            "HEAD {key}"
        );
        let get = bucket.get_object(&key).unwrap();
        let header = get.headers().get(START).cloned();
        assert_eq!(header, Some(start.to_string()), "GET {key}");
    }
    let starts: Vec<u64> = open(&bucket, "meta/a.log", 1)
        .segments()
        .unwrap()
        .iter()
        .map(|s| s.start)
        .collect();
    assert_eq!(starts, [0, M, 2 * M]);
}

#[test]
fn deleting_the_oldest_objects_by_hand_moves_no_offset() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "hand/log.bin";
    let data = pattern(3 * MIB + 5_000, 2);
    write_stream(&bucket, name, &data);
    let len = data.len() as u64;
    let saved = [M + 12_345, 2 * M - 1, 2 * M, len - 10];

    for deleted in 1..=2u64 {
        bucket.delete_object(key(name, deleted - 1)).unwrap();
        let first = deleted * M;
        let mut reader = open(&bucket, name, 1);
        assert_eq!(reader.stream_position().unwrap(), first, "a new handle");
        assert_eq!(reader.first_offset().unwrap(), first);
        let mut from_first = Vec::new();
        reader.read_to_end(&mut from_first).unwrap();
        assert!(
            from_first == data[first as usize..],
            "reads from the first byte"
        );
        for pos in saved.into_iter().filter(|&p| p >= first) {
            let got = read_at(&mut reader, pos, 100);
            let end = (pos as usize + 100).min(data.len());
            assert!(got == data[pos as usize..end], "saved position {pos}");
        }
        assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), len, "length");

        let before = reader.seek(SeekFrom::Start(first + 7)).unwrap();
        for to in [
            SeekFrom::Start(first - 1),
            SeekFrom::Start(0),
            SeekFrom::Current(-8),
            SeekFrom::End(-(len as i64)),
        ] {
            let err = reader.seek(to).unwrap_err();
            let requested = match to {
                SeekFrom::Start(n) => n,
                SeekFrom::Current(d) => before.checked_add_signed(d).unwrap(),
                SeekFrom::End(d) => len.checked_add_signed(d).unwrap(),
            };
            assert_eq!(trimmed(&err), (requested, first), "{to:?}");
            assert_eq!(reader.stream_position().unwrap(), before, "unchanged");
        }
    }

    // Appending continues at the same absolute offsets.
    let mut writer = open(&bucket, name, 1);
    writer.write_all(b"appended").unwrap();
    writer.close().unwrap();
    let mut reader = open(&bucket, name, 1);
    assert_eq!(read_at(&mut reader, len, 100), b"appended");
    assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), len + 8);
    let segments = reader.segments().unwrap();
    let last = segments.last().unwrap();
    assert_eq!((last.start, last.size), (3 * M, 5_008));
}

#[test]
fn trim_deletes_whole_older_objects_never_the_last_and_moves_no_offset() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "trim/log.bin";
    let data = pattern(4 * MIB + 77, 3);
    write_stream(&bucket, name, &data);
    let len = data.len() as u64;

    let mut storage = open(&bucket, name, 1);
    assert_eq!(storage.trim(M - 1).unwrap(), 0, "no object ends before");
    assert_eq!(storage.trim(M).unwrap(), M, "the first ends there");
    assert_eq!(storage.trim(M + M / 2).unwrap(), M, "only whole objects");
    assert_eq!(storage.trim(u64::MAX).unwrap(), 4 * M, "all but the last");
    assert_eq!(segment_sizes(&bucket, name), [77]);
    assert_eq!(storage.seek(SeekFrom::End(0)).unwrap(), len);
    assert_eq!(read_at(&mut storage, 4 * M + 7, 70), data[4 * MIB + 7..]);
    let mut reader = open(&bucket, name, 1);
    assert_eq!(reader.stream_position().unwrap(), 4 * M);

    // A reader positioned before a trim by another handle is told, not given other bytes.
    write_stream(&bucket, "trim/two.bin", &data[..3 * MIB]);
    let mut reader = open(&bucket, "trim/two.bin", 1);
    reader.seek(SeekFrom::Start(10)).unwrap();
    let mut trimmer = open(&bucket, "trim/two.bin", 1);
    assert_eq!(trimmer.trim(2 * M).unwrap(), 2 * M);
    assert_eq!(trimmer.trim(2 * M).unwrap(), 2 * M, "again: nothing to do");
    let mut buf = [0; 10];
    let err = reader.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(reader.stream_position().unwrap(), 10);

    // The same handle trimming past its own read position.
    let mut handle = open(&bucket, "trim/two.bin", 1);
    assert_eq!(handle.stream_position().unwrap(), 2 * M);
    let mut three = open(&bucket, "trim/three.bin", 1);
    three.write_all(&data[..MIB]).unwrap();
    three.write_all(&data[MIB..MIB + 10]).unwrap();
    three.flush().unwrap();
    assert_eq!(three.stream_position().unwrap(), 0);
    assert_eq!(three.trim(M).unwrap(), M);
    let err = three.read(&mut buf).unwrap_err();
    assert_eq!(trimmed(&err), (0, M));
    assert_eq!(read_at(&mut three, M, 10), data[MIB..MIB + 10]);
    // Its writer goes on at the same offsets.
    three.write_all(b"more").unwrap();
    three.close().unwrap();
    let mut reader = open(&bucket, "trim/three.bin", 1);
    assert_eq!(read_at(&mut reader, M + 10, 10), b"more");
}

#[test]
fn a_trim_interrupted_by_failed_deletes_leaves_no_gap_and_completes_when_retried() {
    s3::set_retries(0);
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "faults/log.bin";
    let data = pattern(5 * MIB + 9, 4);
    write_stream(&bucket, name, &data);

    let proxy = Proxy::start(&server);
    let options = Options {
        min_size: 1,
        retry_attempts: 2,
        retry_backoff: Duration::from_millis(1),
        ..Options::default()
    };
    let faulty = proxy.bucket(&server, &bucket.name());
    let mut storage = Storage::new(faulty, name, options).unwrap();
    // The first DELETE is applied but its answer lost, and its retry fails: the trim stops
    // there, with object 0 gone.
    proxy.inject(Some("DELETE"), Fault::DropResponse);
    proxy.inject(Some("DELETE"), Fault::Status(500));
    let err = storage.trim(4 * M).unwrap_err();
    assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
    assert_eq!(proxy.injected(), 2);

    let segments = open(&bucket, name, 1).segments().unwrap();
    let seqs: Vec<u64> = segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "oldest first: no gap");
    assert_eq!(segments[0].start, M);
    assert!(stream_contents(&bucket, name) == data[MIB..], "readable");

    // Retried (past one more fault): deleting object 0 again succeeds.
    proxy.inject(Some("DELETE"), Fault::ResetBeforeBody);
    assert_eq!(storage.trim(4 * M).unwrap(), 4 * M);
    assert_eq!(proxy.clear(), 0, "every fault met");
    let mut reader = open(&bucket, name, 1);
    assert_eq!(reader.first_offset().unwrap(), 4 * M);
    assert_eq!(read_at(&mut reader, 5 * M, 9), data[5 * MIB..]);
}

#[test]
fn streams_of_objects_without_metadata_read_as_before_and_mixed_streams_work() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "old/log.bin";
    let data = pattern(3 * MIB + 50, 5);
    // Two objects as s3-syncr 0.1.0 wrote them: no metadata.
    raw_put(&bucket, &key(name, 0), &data[..MIB]);
    raw_put(&bucket, &key(name, 1), &data[MIB..2 * MIB]);
    let mut reader = open(&bucket, name, 1);
    assert_eq!(reader.first_offset().unwrap(), 0);
    assert_eq!(read_at(&mut reader, M - 5, 10), data[MIB - 5..MIB + 5]);

    // This version appends after them, recording starts from where they end.
    let mut writer = open(&bucket, name, 1);
    writer.write_all(&data[2 * MIB..3 * MIB]).unwrap();
    writer.write_all(&data[3 * MIB..]).unwrap();
    writer.close().unwrap();
    assert!(stream_contents(&bucket, name) == data);
    let (head, _) = bucket.head_object(key(name, 3)).unwrap();
    let start = head.metadata.unwrap_or_default().remove("s3syncr-start");
    assert_eq!(start, Some((3 * M).to_string()));

    // Trimming up to an object that records nothing would move every offset: refused.
    let mut storage = open(&bucket, name, 1);
    let err = storage.trim(M).unwrap_err();
    assert!(
        matches!(&err, Error::NoRecordedStart { key: k } if *k == key(name, 1)),
        "{err}"
    );
    assert_eq!(std::io::Error::from(err).kind(), ErrorKind::Unsupported);
    assert_eq!(segment_sizes(&bucket, name).len(), 4, "nothing deleted");
    // Up to an object of this version: the offsets stay.
    assert_eq!(storage.trim(2 * M).unwrap(), 2 * M);
    let mut reader = open(&bucket, name, 1);
    assert_eq!(reader.stream_position().unwrap(), 2 * M);
    assert_eq!(read_at(&mut reader, 3 * M, 50), data[3 * MIB..]);

    // A lifecycle rule deleting an object that records nothing leaves the next one, which
    // records nothing either, first: counted from 0. The first object that does record its
    // start then disagrees, loudly.
    let mixed = "old/mixed.bin";
    raw_put(&bucket, &key(mixed, 0), &data[..MIB]);
    raw_put(&bucket, &key(mixed, 1), &data[MIB..2 * MIB]);
    let mut writer = open(&bucket, mixed, 1);
    writer.write_all(&data[2 * MIB..]).unwrap();
    writer.close().unwrap();
    bucket.delete_object(key(mixed, 0)).unwrap();
    let mut reader = open(&bucket, mixed, 1);
    assert_eq!(reader.first_offset().unwrap(), 0, "cannot know better");
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(
        matches!(inner(&err), Error::Discontinuity { key: k, expected, found }
            if *k == key(mixed, 2) && *expected == M && *found == 2 * M),
        "{err}"
    );
}

#[test]
fn an_object_recording_a_wrong_start_is_invalid_data_naming_it() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "foreign/log.bin";
    let data = pattern(2 * MIB + 10, 6);
    write_stream(&bucket, name, &data);
    // Another tool rewrites object 1 with a start of its own.
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static(START), HeaderValue::from(5u64));
    bucket
        .put_object_with_headers(key(name, 1), &data[MIB..2 * MIB], Some(headers))
        .unwrap();

    let mut reader = open(&bucket, name, 1);
    let mut first = vec![0; 1000];
    reader.read_exact(&mut first).unwrap();
    let err = reader
        .seek(SeekFrom::Start(M + 1))
        .and_then(|_| reader.read(&mut first));
    let err = err.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(
        matches!(inner(&err), Error::Discontinuity { key: k, expected, found: 5 }
            if *k == key(name, 1) && *expected == M),
        "{err}"
    );
    // A writer continuing a tail that records a start the stream contradicts stops too.
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static(START), HeaderValue::from(1u64));
    bucket
        .put_object_with_headers(key(name, 2), b"0123456789", Some(headers))
        .unwrap();
    let mut writer = open(&bucket, name, 1);
    let err = writer.write(b"x").unwrap_err();
    assert!(
        matches!(inner(&err), Error::Discontinuity { key: k, found: 1, .. } if *k == key(name, 2)),
        "{err}"
    );
}

/// Request counts as the in-process server saw them, for each kind of handle.
#[test]
fn a_handle_learns_the_first_offset_with_at_most_one_request() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let name = "count/log.bin";
    let data = pattern(3 * MIB + 10, 7);
    let counted = |what: &str, run: &mut dyn FnMut()| {
        server.take_requests();
        run();
        let ops = ops(&server);
        println!("{what}: {ops:?}");
        ops
    };
    let heads = |ops: &[&str]| ops.iter().filter(|op| **op == "HeadObject").count();

    // A new stream: the first PUT needs nothing more.
    let ops = counted("new stream", &mut || {
        let mut writer = open(&bucket, name, 1);
        writer.write_all(&data[..MIB]).unwrap();
        writer.write_all(&data[MIB..MIB + 5]).unwrap();
        writer.close().unwrap();
    });
    assert_eq!(
        ops,
        ["ListObjectsV2", "ListObjectsV2", "PutObject", "PutObject"]
    );

    // Continuing a tail: its GET tells its start.
    let ops = counted("continued tail", &mut || {
        let mut writer = open(&bucket, name, 1);
        writer.write_all(&data[MIB + 5..2 * MIB]).unwrap();
        writer.close().unwrap();
    });
    assert_eq!(
        ops,
        ["ListObjectsV2", "ListObjectsV2", "GetObject", "PutObject"]
    );

    // After a sealed last object: one HEAD.
    let ops = counted("after a sealed object", &mut || {
        let mut writer = open(&bucket, name, 1);
        writer.write_all(&data[2 * MIB..]).unwrap();
        writer.close().unwrap();
    });
    assert_eq!(
        ops,
        ["ListObjectsV2", "ListObjectsV2", "HeadObject", "PutObject"]
    );
    bucket.delete_object(key(name, 0)).unwrap();

    // A reader: one HEAD, however it moves.
    let ops = counted("reader", &mut || {
        let mut reader = open(&bucket, name, 1);
        assert_eq!(reader.stream_position().unwrap(), M);
        assert!(read_at(&mut reader, 2 * M + 3, 10) == data[2 * MIB + 3..2 * MIB + 13]);
        assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), data.len() as u64);
        reader.seek(SeekFrom::Start(M)).unwrap();
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert!(all == data[MIB..]);
        assert_eq!(reader.first_offset().unwrap(), M);
    });
    assert_eq!(heads(&ops), 1, "{ops:?}");

    // A handle that reads, then writes: still one.
    let ops = counted("reader then writer", &mut || {
        let mut handle = open(&bucket, name, 1);
        let mut buf = [0; 10];
        handle.read_exact(&mut buf).unwrap();
        handle.write_all(b"more").unwrap();
        handle.close().unwrap();
    });
    assert_eq!(heads(&ops), 1, "{ops:?}");
}
