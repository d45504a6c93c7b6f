//! Offsets that survive retention: every object records its start, positions are absolute, and
//! deleting the oldest objects (by `trim`, by hand or by a lifecycle rule) moves no byte.

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::common::*;
use attohttpc::header::{HeaderMap, HeaderName, HeaderValue};
use s3::Bucket;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy};

const M: u64 = MIB as u64;
const START: &str = "x-amz-meta-s3syncr-start";

/// Appends `data` to the stream, in objects of 1 MiB (the last one shorter).
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
        let head = bucket.raw_head(&key);
        assert_eq!(
            head.header(START),
            Some(start.to_string().as_str()),
            "HEAD {key}"
        );
        let get = bucket.raw_get(&key);
        assert_eq!(
            get.header(START),
            Some(start.to_string().as_str()),
            "GET {key}"
        );
    }
    let starts: Vec<u64> = open(&bucket, "meta/a.log", 1)
        .objects()
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
        bucket.raw_delete(&key(name, deleted - 1));
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
    let objects = reader.objects().unwrap();
    let last = objects.last().unwrap();
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
    assert_eq!(object_sizes(&bucket, name), [77]);
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
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "faults/log.bin";
    let data = pattern(5 * MIB + 9, 4);
    write_stream(&bucket, name, &data);

    let proxy = Proxy::start(&server);
    let options = Options::builder()
        .with_seal_size(1 << 20)
        .with_retry_attempts(2)
        .with_retry_backoff(Duration::from_millis(1))
        .build()
        .unwrap();
    let faulty = proxy.bucket(&server, &bucket.name());
    let mut storage = Storage::new(faulty, name, options).unwrap();
    // A server with DeleteObjects (a POST) gets the four keys in one request; the in-process
    // one answers it 501, and gets a DELETE a key.
    let deletes = if server.is_external() {
        "POST"
    } else {
        "DELETE"
    };
    // The first delete is applied but its answer lost, and its retry fails: the trim stops
    // there, with what that request deleted gone.
    proxy.inject(Some(deletes), Fault::DropResponse);
    proxy.inject(Some(deletes), Fault::Status(500));
    let err = storage.trim(4 * M).unwrap_err();
    assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
    assert_eq!(proxy.injected(), 2);

    let objects = open(&bucket, name, 1).objects().unwrap();
    let seqs: Vec<u64> = objects.iter().map(|s| s.seq).collect();
    let first = seqs[0];
    assert!(matches!(first, 1 | 4), "{seqs:?}");
    assert_eq!(seqs, (first..=5).collect::<Vec<_>>(), "no gap");
    assert_eq!(objects[0].start, first * M);
    let from = first as usize * MIB;
    assert!(stream_contents(&bucket, name) == data[from..], "readable");

    // Retried (past one more fault, if a delete is left to send): it completes.
    if first < 4 {
        proxy.inject(Some(deletes), Fault::ResetBeforeBody);
    }
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
    let start = bucket
        .raw_head(&key(name, 3))
        .header(START)
        .map(str::to_owned);
    assert_eq!(start, Some((3 * M).to_string()));

    // Trimming up to an object that records nothing would move every offset: refused.
    let mut storage = open(&bucket, name, 1);
    let predicted = storage.trim_dry_run(M).unwrap_err();
    let err = storage.trim(M).unwrap_err();
    assert!(
        matches!(&err, Error::NoRecordedStart { key: k } if *k == key(name, 1)),
        "{err}"
    );
    assert_eq!(
        predicted.to_string(),
        err.to_string(),
        "the dry run refuses alike"
    );
    assert_eq!(std::io::Error::from(err).kind(), ErrorKind::Unsupported);
    assert_eq!(object_sizes(&bucket, name).len(), 4, "nothing deleted");
    // Up to an object of this version: the offsets stay.
    assert_eq!(storage.trim_dry_run(2 * M).unwrap(), 2 * M);
    assert_eq!(
        object_sizes(&bucket, name).len(),
        4,
        "a dry run deletes nothing"
    );
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
    bucket.raw_delete(&key(mixed, 0));
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
    bucket.raw_put_with(&key(name, 1), &data[MIB..2 * MIB], headers);

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
    bucket.raw_put_with(&key(name, 2), b"0123456789", headers);
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
    // Checked reads add a HEAD per object read through, for its checksum where a ranged GET's
    // answer lacks it: not what this test counts.
    let open_unchecked = || {
        let options = (Options::builder().with_seal_size(MIB))
            .with_verify_reads(false)
            .build()
            .unwrap();
        Storage::new(bucket.clone(), name, options).unwrap()
    };

    // A new stream: the first PUT needs nothing more. Each handle's open asks for the
    // stream's hint (GetObject, none here: a stream of fewer than 100 objects has none).
    let ops = counted("new stream", &mut || {
        let mut writer = open(&bucket, name, 1);
        writer.write_all(&data[..MIB]).unwrap();
        writer.write_all(&data[MIB..MIB + 5]).unwrap();
        writer.close().unwrap();
    });
    assert_eq!(
        after_open(&ops),
        ["ListObjectsV2", "PutObject", "PutObject"]
    );

    // Continuing a tail: its GET tells its start.
    let ops = counted("continued tail", &mut || {
        let mut writer = open(&bucket, name, 1);
        writer.write_all(&data[MIB + 5..2 * MIB]).unwrap();
        writer.close().unwrap();
    });
    assert_eq!(
        after_open(&ops),
        ["ListObjectsV2", "GetObject", "PutObject"]
    );

    // After a sealed last object: one HEAD (of the last object, for the seal size it
    // records, which also tells the start).
    let ops = counted("after a sealed object", &mut || {
        let mut writer = open(&bucket, name, 1);
        writer.write_all(&data[2 * MIB..]).unwrap();
        writer.close().unwrap();
    });
    assert_eq!(
        after_open(&ops),
        ["ListObjectsV2", "HeadObject", "PutObject"]
    );

    bucket.raw_delete(&key(name, 0));

    // A reader: one HEAD, however it moves.
    let ops = counted("reader", &mut || {
        let mut reader = open_unchecked();
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

    // A handle that reads, then writes: one to anchor, one for the seal size the last
    // object records.
    let ops = counted("reader then writer", &mut || {
        let mut handle = open_unchecked();
        let mut buf = [0; 10];
        handle.read_exact(&mut buf).unwrap();
        handle.write_all(b"more").unwrap();
        handle.close().unwrap();
    });
    assert_eq!(heads(&ops), 2, "{ops:?}");

    // A writer that found the end over a second before its new object's first upload looks
    // past it once (one LIST): others may have gone past it, and a trim emptied its key.
    let ops = counted("a new object after a pause", &mut || {
        let mut writer = open(&bucket, "count/paused.bin", 1);
        writer.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        writer.close().unwrap();
    });
    let lists_after_put = ops
        .iter()
        .skip_while(|op| **op != "PutObject")
        .filter(|op| **op == "ListObjectsV2")
        .count();
    assert_eq!(lists_after_put, 1, "{ops:?}");
}

#[test]
fn a_reader_whose_known_objects_were_all_trimmed_re_anchors_and_goes_on() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "outlive/log.bin";
    let data = pattern(8 * MIB + 77, 11);
    write_stream(&bucket, name, &data[..3 * MIB]);
    let mut reader = open(&bucket, name, 1);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(got == data[..3 * MIB], "objects 0 to 2, the last one known");

    // Another process appends, and a retention job deletes every object the reader knew.
    write_stream(&bucket, name, &data[3 * MIB..6 * MIB]);
    assert_eq!(open(&bucket, name, 1).trim(4 * M).unwrap(), 4 * M);
    // Following on from where the reader was: that offset is gone.
    let err = reader.read(&mut [0; 10]).unwrap_err();
    assert_eq!(trimmed(&err), (3 * M, 4 * M));
    // A position still stored works, seek and read (the false "gap").
    assert_eq!(
        read_at(&mut reader, 5 * M + 3, 100),
        data[5 * MIB + 3..][..100]
    );
    let err = reader.seek(SeekFrom::Start(M)).unwrap_err();
    assert_eq!(trimmed(&err), (M, 4 * M));

    // Exactly at the end of the last object it knew: the next one starts there.
    let mut follower = open(&bucket, name, 1);
    assert_eq!(follower.seek(SeekFrom::End(0)).unwrap(), 6 * M);
    write_stream(&bucket, name, &data[6 * MIB..]);
    assert_eq!(open(&bucket, name, 1).trim(6 * M).unwrap(), 6 * M);
    let mut rest = Vec::new();
    follower.read_to_end(&mut rest).unwrap();
    assert!(rest == data[6 * MIB..], "follows on");
    assert_eq!(follower.first_offset().unwrap(), 6 * M);
}

#[test]
fn a_get_of_an_object_trimmed_under_the_reader_is_trimmed_not_a_404() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "under/log.bin";
    let data = pattern(4 * MIB + 5, 12);
    write_stream(&bucket, name, &data);
    // Small GETs ahead, so that most of object 0 is still to fetch when it is deleted.
    let options = Options::builder()
        .with_read_chunk(64 * 1024)
        .with_read_ahead(2)
        .build()
        .unwrap();
    let mut reader = Storage::new(bucket.clone(), name, options).unwrap();
    let mut stale = open(&bucket, name, 1);
    for handle in [&mut reader, &mut stale] {
        assert_eq!(handle.seek(SeekFrom::End(0)).unwrap(), 4 * M + 5);
        handle.seek(SeekFrom::Start(0)).unwrap();
    }
    // Sequential reads start GETs ahead of the reader, on threads.
    let mut head = vec![0; 3 * 4096];
    reader.read_exact(&mut head).unwrap();
    reader.read_exact(&mut head).unwrap();
    assert!(head == data[3 * 4096..6 * 4096]);

    assert_eq!(open(&bucket, name, 1).trim(2 * M).unwrap(), 2 * M);
    // The bytes fetched before the trim are the stream's; then the GETs find nothing.
    let pos = reader.stream_position().unwrap();
    let mut got = Vec::new();
    let err = reader.read_to_end(&mut got).unwrap_err();
    assert!(got == data[pos as usize..][..got.len()], "bytes read ahead");
    assert_eq!(trimmed(&err), (pos + got.len() as u64, 2 * M));
    assert_eq!(read_at(&mut reader, 2 * M, 10), data[2 * MIB..][..10]);
    // A handle that still lists the deleted objects: its seek succeeds, the GET does not.
    assert_eq!(stale.seek(SeekFrom::Start(M + 10)).unwrap(), M + 10);
    let err = stale.read(&mut [0; 10]).unwrap_err();
    assert_eq!(trimmed(&err), (M + 10, 2 * M));
    assert_eq!(read_at(&mut stale, 4 * M, 5), data[4 * MIB..]);
}

#[test]
fn a_missing_object_between_two_present_ones_stays_a_gap() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "gap/log.bin";
    let data = pattern(5 * MIB + 5, 13);
    write_stream(&bucket, name, &data[..3 * MIB]);
    let mut reader = open(&bucket, name, 1);
    assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), 3 * M);
    write_stream(&bucket, name, &data[3 * MIB..]);
    // The reader's last known object goes, an older one stays.
    bucket.raw_delete(&key(name, 2));
    // What lies past the gap stays in reach, the gap itself does not.
    assert_eq!(reader.seek(SeekFrom::End(0)).unwrap(), data.len() as u64);
    assert!(read_at(&mut reader, 3 * M, 10) == data[3 * MIB..][..10]);
    reader.seek(SeekFrom::Start(2 * M + 1)).unwrap();
    let err = reader.read(&mut [0; 10]).unwrap_err();
    assert_eq!(missing(&err), key(name, 2));
    let mut other = open(&bucket, name, 1);
    assert_eq!(other.first_offset().unwrap(), 0, "object 0 is still there");
    let (got, err) = read_until_error(&mut other);
    assert!(got == data[..2 * MIB], "{} bytes", got.len());
    assert_eq!(missing(&err), key(name, 2));
}

/// A new handle's `stream_position()`, with its first HEAD held until `seqs` are deleted: as if
/// a trim ran between its listing and that HEAD. The handle goes through the proxy returned.
fn position_while_deleting(
    server: &Server,
    bucket: &Bucket,
    name: &'static str,
    seqs: &[u64],
) -> (Storage, u64, Proxy) {
    let proxy = Proxy::start(server);
    let slow = proxy.bucket(server, &bucket.name());
    proxy.inject(Some("HEAD"), Fault::Delay(Duration::from_secs(2)));
    let anchoring = std::thread::spawn(move || {
        let mut reader = Storage::new(slow, name, Options::default()).unwrap();
        let pos = reader.stream_position();
        (reader, pos)
    });
    while proxy.injected() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    for &seq in seqs {
        bucket.raw_delete(&key(name, seq));
    }
    let (reader, pos) = anchoring.join().unwrap();
    (reader, pos.unwrap(), proxy)
}

#[test]
fn a_first_object_trimmed_between_listing_and_head_is_skipped() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "race/log.bin";
    let data = pattern(3 * MIB + 5, 14);
    write_stream(&bucket, name, &data);
    let (mut reader, pos, _proxy) = position_while_deleting(&server, &bucket, name, &[0]);
    assert_eq!(pos, M, "starts at the first object left");
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(got == data[MIB..]);
}

#[test]
fn missing_numbers_whose_older_side_was_trimmed_meanwhile_are_no_gap() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "gap/log.bin";
    let data = pattern(4 * MIB + 5, 15);
    write_stream(&bucket, name, &data);
    // Listed with a gap at 2 (deleted by hand); objects 0 and 1 go before the HEAD that
    // checks whether object 1, before the gap, is still there: the stream starts at 3 now.
    bucket.raw_delete(&key(name, 2));
    let (mut reader, pos, _proxy) = position_while_deleting(&server, &bucket, name, &[0, 1]);
    assert_eq!(pos, 3 * M);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(got == data[3 * MIB..]);
}

#[test]
fn a_gap_is_listed_not_refused_and_trim_before_gap_reads_on_after_the_last_one() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "gaps/log.bin";
    let data = pattern(5 * MIB + 5, 16);
    write_stream(&bucket, name, &data);
    bucket.raw_delete(&key(name, 1));
    bucket.raw_delete(&key(name, 3));

    let mut storage = open(&bucket, name, 1);
    let listing = storage.listing().unwrap();
    let seqs: Vec<(u64, u64)> = listing.objects.iter().map(|s| (s.seq, s.start)).collect();
    assert_eq!(seqs, [(0, 0), (2, 2 * M), (4, 4 * M), (5, 5 * M)]);
    let gaps: Vec<_> = (listing.gaps.iter())
        .map(|g| {
            (
                g.first_seq,
                g.last_seq,
                g.first_key.clone(),
                g.stop,
                g.resume,
            )
        })
        .collect();
    assert_eq!(
        gaps,
        [
            (1, 1, key(name, 1), M, Some(2 * M)),
            (3, 3, key(name, 3), 3 * M, Some(4 * M))
        ]
    );
    // Reads into a gap, and the calls that need the whole stream, still refuse it; the
    // objects on either side of a gap read.
    assert!(read_at(&mut storage, 0, 16) == data[..16]);
    for (pos, seq) in [(M, 1), (3 * M + 5, 3)] {
        storage.seek(SeekFrom::Start(pos)).unwrap();
        let err = storage.read(&mut [0; 16]).unwrap_err();
        assert_eq!(missing(&err), key(name, seq), "at {pos}");
    }
    assert!(read_at(&mut storage, 2 * M, 16) == data[2 * MIB..][..16]);
    assert!(matches!(
        storage.objects(),
        Err(Error::MissingObject { .. })
    ));
    assert!(matches!(storage.trim(M), Err(Error::MissingObject { .. })));

    assert_eq!(storage.trim_before_gap_dry_run().unwrap(), 4 * M);
    assert_eq!(
        storage.listing().unwrap(),
        listing,
        "a dry run deletes nothing"
    );
    assert_eq!(storage.trim_before_gap().unwrap(), 4 * M);
    let left: Vec<u64> = (storage.listing().unwrap().objects.iter())
        .map(|s| s.seq)
        .collect();
    assert_eq!(left, [4, 5], "every object before the last gap");
    // The handle that trimmed reads on, as a new one does.
    assert_eq!(storage.first_offset().unwrap(), 4 * M);
    let (requested, first) = trimmed(&storage.seek(SeekFrom::Start(0)).unwrap_err());
    assert_eq!((requested, first), (0, 4 * M));
    assert!(read_at(&mut storage, 4 * M, MIB + 5) == data[4 * MIB..]);
    assert!(stream_contents(&bucket, name) == data[4 * MIB..]);
    assert_eq!(
        storage.trim_before_gap().unwrap(),
        4 * M,
        "no gap: nothing to do"
    );
}

#[test]
fn trim_before_gap_refuses_an_object_after_it_that_records_no_start() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "oldgap/log.bin";
    // As s3-syncr 0.1.0 wrote them: no recorded start, so nothing can tell where 2 starts.
    for seq in [0, 2] {
        raw_put(&bucket, &key(name, seq), b"0123456789");
    }
    let mut storage = open(&bucket, name, 1);
    let listing = storage.listing().unwrap();
    assert_eq!(listing.gaps[0].resume, None);
    assert_eq!(listing.objects[1].start, 10, "counted on from the stop");
    for result in [storage.trim_before_gap_dry_run(), storage.trim_before_gap()] {
        let err = result.unwrap_err();
        assert!(matches!(&err, Error::NoRecordedStart { key: k } if *k == key(name, 2)));
        assert_eq!(std::io::Error::from(err).kind(), ErrorKind::Unsupported);
    }
    assert_eq!(storage.listing().unwrap(), listing, "nothing deleted");
}

#[test]
fn a_writer_trims_before_a_gap_made_under_it_and_appends_on() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "wgap/log.bin";
    let data = pattern(4 * MIB + 7, 17);
    let mut writer = open(&bucket, name, 1);
    for chunk in data[..3 * MIB + 3].chunks(MIB) {
        writer.write_all(chunk).unwrap();
    }
    writer.flush().unwrap();
    bucket.raw_delete(&key(name, 1));
    assert_eq!(writer.trim_before_gap().unwrap(), 2 * M);
    assert_eq!(writer.first_offset().unwrap(), 2 * M);
    writer.write_all(&data[3 * MIB + 3..]).unwrap();
    writer.close().unwrap();
    assert!(stream_contents(&bucket, name) == data[2 * MIB..]);
}

/// The `MissingObject` key inside `err`, an I/O error of kind `InvalidData`.
fn missing(err: &std::io::Error) -> String {
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    match inner(err) {
        Error::MissingObject { key } => key.clone(),
        other => panic!("not MissingObject: {other}"),
    }
}

/// What `storage` reads from its position until the first error, and that error.
fn read_until_error(storage: &mut Storage) -> (Vec<u8>, std::io::Error) {
    let mut got = Vec::new();
    let mut buf = [0; 1000];
    loop {
        match storage.read(&mut buf) {
            Ok(0) => panic!("reached the end after {} bytes, no error", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => return (got, err),
        }
    }
}

/// A handle on `name` with objects sealed at 4 KiB.
fn open_small(bucket: &Bucket, name: &str) -> Storage {
    let options = Options::builder().with_seal_size(SMALL).build().unwrap();
    Storage::new(bucket.clone(), name, options).unwrap()
}

const SMALL: usize = 4096;

#[test]
fn a_gap_left_by_a_lifecycle_sweep_stops_neither_a_new_writer_nor_reads_past_it() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "sweep/log.bin";
    let data = pattern(10 * SMALL + 5_000, 18);
    let mut writer = open_small(&bucket, name);
    for chunk in data[..10 * SMALL].chunks(SMALL) {
        writer.write_all(chunk).unwrap();
    }
    writer.close().unwrap();
    // Expiry deletes in any order: object 3 goes while 0 to 2 are still there.
    bucket.raw_delete(&key(name, 3));

    // A new writer continues the stream at its absolute end.
    let mut writer = open_small(&bucket, name);
    writer.write_all(&data[10 * SMALL..]).unwrap();
    writer.flush().unwrap();
    writer.close().unwrap();
    let len = data.len() as u64;

    // A new reader reads the end, and everything after the gap, exactly.
    let mut reader = open_small(&bucket, name);
    assert_eq!(reader.seek(SeekFrom::End(-1000)).unwrap(), len - 1000);
    let mut last = Vec::new();
    reader.read_to_end(&mut last).unwrap();
    assert!(last == data[data.len() - 1000..], "the last 1,000 bytes");
    let after = 4 * SMALL as u64;
    reader.seek(SeekFrom::Start(after)).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(
        rest == data[4 * SMALL..],
        "from the object after the gap on"
    );
    let ends: Vec<u64> = (reader.listing().unwrap().objects.iter())
        .map(|s| s.start + s.size)
        .collect();
    assert_eq!(ends.last(), Some(&len));

    // From the first byte: the objects before the gap, then the gap is a typed error.
    let mut reader = open_small(&bucket, name);
    assert_eq!(reader.stream_position().unwrap(), 0);
    let (got, err) = read_until_error(&mut reader);
    assert!(
        got == data[..3 * SMALL],
        "{} bytes before the gap",
        got.len()
    );
    assert_eq!(missing(&err), key(name, 3));
    let err = reader.read(&mut [0; 10]).unwrap_err();
    assert_eq!(missing(&err), key(name, 3), "again");
    reader.seek(SeekFrom::Start(3 * SMALL as u64 + 10)).unwrap();
    let err = reader.read(&mut [0; 10]).unwrap_err();
    assert_eq!(missing(&err), key(name, 3), "inside the gap");
    assert_eq!(read_at(&mut reader, after, 10), data[4 * SMALL..][..10]);

    // The gap is still shown, and calls that need the whole stream still refuse it.
    let listing = reader.listing().unwrap();
    assert_eq!(listing.gaps.len(), 1);
    assert_eq!(listing.gaps[0].first_key, key(name, 3));
    assert!(matches!(reader.objects(), Err(Error::MissingObject { key: k }) if k == key(name, 3)));
    assert!(matches!(
        reader.trim(after),
        Err(Error::MissingObject { .. })
    ));
}

#[test]
fn a_follower_after_a_gap_reads_on_what_new_writers_append() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "sweep/follow.bin";
    let data = pattern(10 * SMALL + 3 * SMALL + 17, 19);
    let mut writer = open_small(&bucket, name);
    for chunk in data[..10 * SMALL].chunks(SMALL) {
        writer.write_all(chunk).unwrap();
    }
    writer.close().unwrap();
    let end = 10 * SMALL as u64;

    let mut follower = open_small(&bucket, name);
    assert_eq!(follower.seek(SeekFrom::End(-100)).unwrap(), end - 100);
    let mut got = vec![0; 100];
    follower.read_exact(&mut got).unwrap();
    // A reader behind the gap-to-be, which knows the object that goes (reading no further
    // ahead than asked, so that it holds none of its bytes).
    let options = Options::builder()
        .with_seal_size(SMALL)
        .with_read_ahead(0)
        .build()
        .unwrap();
    let mut lagging = Storage::new(bucket.clone(), name, options).unwrap();
    assert_eq!(read_at(&mut lagging, 0, SMALL), data[..SMALL]);

    bucket.raw_delete(&key(name, 3));
    let mut writer = open_small(&bucket, name);
    for piece in data[10 * SMALL..].chunks(1000) {
        writer.write_all(piece).unwrap();
        writer.flush().unwrap();
    }
    writer.close().unwrap();

    let mut appended = Vec::new();
    while appended.len() < data.len() - 10 * SMALL
        && follower.wait_for_data(Duration::from_secs(5)).unwrap()
    {
        let mut buf = [0; 1000];
        let n = follower.read(&mut buf).unwrap();
        appended.extend_from_slice(&buf[..n]);
    }
    assert!(appended == data[10 * SMALL..], "{} bytes", appended.len());
    // A full listing does not stop it either.
    assert_eq!(follower.first_offset().unwrap(), 0);
    let mut writer = open_small(&bucket, name);
    writer.write_all(b"later").unwrap();
    writer.close().unwrap();
    assert!(follower.wait_for_data(Duration::from_secs(5)).unwrap());
    let mut later = Vec::new();
    follower.read_to_end(&mut later).unwrap();
    assert_eq!(later, b"later");

    // The reader behind it reads up to the gap, then is told what is missing.
    let (got, err) = read_until_error(&mut lagging);
    assert!(got == data[SMALL..3 * SMALL], "{} bytes", got.len());
    assert_eq!(missing(&err), key(name, 3));
}
