//! Multipart uploads that vanish under a writer: aborted from outside (as an
//! `AbortIncompleteMultipartUpload` lifecycle rule or another process does) between parts,
//! before Complete, and after parts left memory.

use std::io::{ErrorKind, Write};

use crate::common::*;
use s3::Bucket;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy};

/// Objects of 64 MiB streamed out in 5 MiB parts, `ahead` at once.
fn streaming(ahead: usize) -> Options {
    Options::builder()
        .with_seal_size(64 << 20)
        .with_part_size(5 * MIB)
        .with_write_ahead(ahead)
        .build()
        .unwrap()
}

/// Writes `data` as an application would, in pieces: parts go out as they fill.
fn write(writer: &mut Storage, data: &[u8]) {
    for piece in data.chunks(64 * 1024) {
        writer.write_all(piece).unwrap();
    }
}

const KEY: &str = "v-00000000000000000000.log";

#[test]
fn an_upload_aborted_between_parts_is_started_again() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut writer = Storage::new(bucket.clone(), "v.log", streaming(2)).unwrap();
    let data = pattern(12 * MIB, 1);
    write(&mut writer, &data[..6 * MIB]); // part 1 goes out
    abort_from_outside(&bucket, KEY);
    write(&mut writer, &data[6 * MIB..]); // part 2 meets the vanished upload
    writer
        .flush()
        .expect("started again from the parts in memory");
    assert!(stream_contents(&bucket, "v.log") == data, "stream differs");
    if !server.is_external() {
        let creates = ops(&server)
            .iter()
            .filter(|op| **op == "CreateMultipartUpload")
            .count();
        assert_eq!(creates, 2, "one upload, then its replacement");
    }
}

#[test]
fn an_upload_aborted_just_before_complete_is_started_again() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let slow = proxy.bucket(&server, &bucket.name());
    let mut writer = Storage::new(slow, "v.log", streaming(2)).unwrap();
    let data = pattern(8 * MIB, 2);
    write(&mut writer, &data); // part 1 goes out
    abort_until_complete_is_held(&proxy, &bucket, writer, &data);
}

/// Holds the writer's Complete (a POST), aborts its upload meanwhile, and checks that the
/// flush starts it again and stores `data`.
fn abort_until_complete_is_held(proxy: &Proxy, bucket: &Bucket, mut writer: Storage, data: &[u8]) {
    // Wait for the upload to exist, so that the POST held is its Complete, not its creation.
    wait_for_upload(bucket, KEY);
    proxy.inject(Some("POST"), Fault::Hold);
    let flushing = std::thread::spawn(move || writer.flush().map(|()| writer));
    assert!(proxy.wait_holding(1), "Complete is held");
    abort_from_outside(bucket, KEY);
    proxy.release();
    let writer = flushing.join().unwrap().expect("started again");
    writer.close().unwrap();
    assert!(stream_contents(bucket, "v.log") == data, "stream differs");
}

#[test]
fn an_upload_aborted_after_parts_left_memory_reports_the_bytes_lost() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    // One part at a time: the budget is 10 MiB, so parts of a 16 MiB tail leave memory.
    let mut writer = Storage::new(bucket.clone(), "v.log", streaming(1)).unwrap();
    let data = pattern(16 * MIB, 3);
    write(&mut writer, &data);
    abort_from_outside(&bucket, KEY);
    let err = writer.flush().expect_err("parts were let go");
    assert_eq!(err.kind(), ErrorKind::Other, "{err}");
    let Error::UploadLost { key, lost } = inner(&err) else {
        panic!("not UploadLost: {err}");
    };
    assert_eq!(key, KEY);
    assert!(*lost >= 5 * MIB as u64, "at least a part: {lost}");
    // What is still in memory is handed back; the rest is what was lost.
    let unflushed = writer.unflushed();
    assert_eq!(unflushed.len() as u64 + lost, data.len() as u64);
    assert!(
        data.ends_with(&unflushed),
        "the bytes kept are the last ones"
    );
    // The handle writes no more, and says why each time.
    let again = writer.write(b"x").unwrap_err();
    assert!(matches!(inner(&again), Error::UploadLost { .. }), "{again}");
    assert!(
        stream_contents(&bucket, "v.log").is_empty(),
        "nothing half-made"
    );
}
