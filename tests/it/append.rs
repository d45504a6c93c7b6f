//! Appending by copy: once the tail object in S3 is large, a flush sends only the new bytes, as
//! a multipart upload whose first part the server copies from the object itself. Faults are
//! injected by a proxy between the client and the real server, on each of its requests.

use std::io::{Read, Seek, Write};
use std::time::Duration;

use crate::common::*;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy};

/// Past the 5 MiB threshold from the first flush on.
const BASE: usize = 6 * MIB;
const STEP: usize = 512 * 1024;

fn large_tail_options() -> Options {
    Options::builder()
        .with_seal_size(64 << 20)
        .with_retry_backoff(Duration::from_millis(5))
        .with_request_timeout(Duration::from_millis(700))
        .with_min_throughput(1 << 30)
        .build()
        .unwrap()
}

#[test]
fn flushes_of_a_large_tail_send_only_the_new_bytes() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    // No fault here: a deadline short enough for the fault tests could expire under load
    // and add a retry to the requests counted.
    let options = (large_tail_options().to_builder())
        .with_request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut writer = Storage::new(bucket.clone(), "big.log", options).unwrap();
    let mut expected = pattern(BASE, 1);
    writer.write_all(&expected).unwrap();
    writer.flush().unwrap();
    for i in 0..6 {
        server.take_requests();
        let more = pattern(STEP, 10 + i);
        writer.write_all(&more).unwrap();
        writer.flush().unwrap();
        expected.extend_from_slice(&more);
        if !server.is_external() {
            assert_eq!(
                ops(&server),
                [
                    "CreateMultipartUpload",
                    "UploadPartCopy",
                    "UploadPart",
                    "CompleteMultipartUpload"
                ],
                "flush {i}: the tail is copied by the server, not sent again"
            );
        }
        assert!(
            stream_contents(&bucket, "big.log") == expected,
            "after flush {i}"
        );
    }
    assert_eq!(object_sizes(&bucket, "big.log"), [expected.len() as u64]);
    // A new handle continues the tail that appends by copy made.
    writer.close().unwrap();
    let mut next = Storage::new(bucket.clone(), "big.log", large_tail_options()).unwrap();
    next.write_all(b"and on").unwrap();
    next.close().unwrap();
    expected.extend_from_slice(b"and on");
    assert!(stream_contents(&bucket, "big.log") == expected);
}

#[test]
fn appending_by_copy_can_be_turned_off() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let options = large_tail_options()
        .to_builder()
        .with_append_by_copy(None)
        .build()
        .unwrap();
    let mut writer = Storage::new(bucket.clone(), "put.log", options).unwrap();
    writer.write_all(&pattern(BASE, 2)).unwrap();
    writer.flush().unwrap();
    server.take_requests();
    writer.write_all(b"more").unwrap();
    writer.flush().unwrap();
    if !server.is_external() {
        assert_eq!(ops(&server), ["PutObject"]);
    }
    let mut expected = pattern(BASE, 2);
    expected.extend_from_slice(b"more");
    assert!(stream_contents(&bucket, "put.log") == expected);
}

#[test]
fn every_fault_on_every_request_of_an_append_loses_and_repeats_nothing() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let through_proxy = proxy.bucket(&server, &bucket.name());
    let mut writer = Storage::new(through_proxy, "faults.log", large_tail_options()).unwrap();
    let mut expected = pattern(BASE, 3);
    writer.write_all(&expected).unwrap();
    writer.flush().unwrap();
    // The requests of one append, as the proxy tells them apart: by method, in order.
    let requests = [
        ("POST", 0, "create"),
        ("PUT", 0, "copy part"),
        ("PUT", 1, "upload part"),
        ("POST", 1, "complete"),
    ];
    let mut n = 0;
    for (method, earlier, what) in requests {
        for fault in Fault::ALL {
            for _ in 0..earlier {
                proxy.inject(Some(method), Fault::Delay(Duration::ZERO));
            }
            proxy.inject(Some(method), fault);
            let more = pattern(1000 + n, n as u64);
            n += 1;
            writer.write_all(&more).unwrap();
            writer
                .flush()
                .unwrap_or_else(|e| panic!("{fault:?} on {what}: {e}"));
            expected.extend_from_slice(&more);
            assert_eq!(proxy.clear(), 0, "{fault:?} on {what} was injected");
            assert!(
                stream_contents(&bucket, "faults.log") == expected,
                "{fault:?} on {what}: the stream differs"
            );
        }
    }
}

#[test]
fn two_writers_on_a_large_tail_one_is_fenced_and_nothing_interleaves() {
    if !complete_is_conditional() {
        return;
    }
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut first = Storage::new(bucket.clone(), "two.log", large_tail_options()).unwrap();
    let mut expected = pattern(BASE, 4);
    first.write_all(&expected).unwrap();
    first.flush().unwrap();
    // The second writer continues the same tail and appends by copy.
    let mut second = Storage::new(bucket.clone(), "two.log", large_tail_options()).unwrap();
    second.write_all(b"second").unwrap();
    second.flush().unwrap();
    expected.extend_from_slice(b"second");
    // The first one's append would build on an object that changed: fenced.
    first.write_all(b"first").unwrap();
    let err = first.flush().unwrap_err();
    assert!(matches!(inner(&err), Error::Fenced { .. }), "{err}");
    assert_eq!(first.unflushed(), b"first");
    assert!(stream_contents(&bucket, "two.log") == expected);
    second.close().unwrap();
}

#[test]
fn flushed_bytes_of_a_large_tail_leave_memory_and_reads_fetch_them() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut writer = Storage::new(bucket.clone(), "held.log", large_tail_options()).unwrap();
    let mut expected = pattern(BASE, 5);
    writer.write_all(&expected).unwrap();
    writer.flush().unwrap();
    let more = pattern(STEP, 6);
    writer.write_all(&more).unwrap();
    expected.extend_from_slice(&more);
    // The flushed 6 MiB are read back from S3, the rest from memory.
    server.take_requests();
    writer.rewind().unwrap();
    let mut got = Vec::new();
    writer.read_to_end(&mut got).unwrap();
    assert!(got == expected, "read back through the writing handle");
    if !server.is_external() {
        assert!(
            ops(&server).contains(&"GetObject"),
            "the flushed bytes came from S3"
        );
    }
    assert_eq!(writer.unflushed(), more);
    // Trimming never takes the object this writer is still writing.
    assert_eq!(writer.trim(u64::MAX).unwrap(), 0);
    writer.close().unwrap();
    assert!(stream_contents(&bucket, "held.log") == expected);
}

#[test]
fn a_large_tail_is_continued_from_a_head_not_its_bytes() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut expected = pattern(BASE, 7);
    let mut first = Storage::new(bucket.clone(), "resume.log", large_tail_options()).unwrap();
    first.write_all(&expected).unwrap();
    first.close().unwrap();
    server.take_requests();
    let mut next = Storage::new(bucket.clone(), "resume.log", large_tail_options()).unwrap();
    next.write_all(b"continued").unwrap();
    next.close().unwrap();
    expected.extend_from_slice(b"continued");
    if !server.is_external() {
        let ops = object_ops(&server);
        assert!(ops.contains(&"HeadObject"), "{ops:?}");
        assert!(
            !ops.contains(&"GetObject"),
            "the tail was not downloaded: {ops:?}"
        );
        assert!(ops.contains(&"UploadPartCopy"), "{ops:?}");
    }
    assert!(stream_contents(&bucket, "resume.log") == expected);
}

fn streaming_options(ahead: usize) -> Options {
    large_tail_options()
        .to_builder()
        .with_part_size(PART)
        .with_write_ahead(ahead)
        .with_request_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// S3's smallest part: the least that large writes stream out as.
const PART: usize = 5 * MIB;

#[test]
fn large_writes_stream_out_as_parts_and_the_object_appears_only_when_complete() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut writer = Storage::new(bucket.clone(), "parts.log", streaming_options(2)).unwrap();
    let data = pattern(2 * PART + PART / 2 + 1000, 8);
    server.take_requests();
    for chunk in data.chunks(64 * 1024) {
        writer.write_all(chunk).unwrap();
    }
    // Two parts were handed over by the writes alone; the object does not exist yet, so a
    // crash now leaves the stream as it was.
    assert!(object_sizes(&bucket, "parts.log").is_empty());
    assert!(
        writer.unflushed() == data,
        "every byte is held until complete"
    );
    // The upload may still be being created: requests are counted once they are answered.
    let before = object_ops(&server);
    assert!(!before.contains(&"PutObject"), "{before:?}");
    writer.close().unwrap();
    if !server.is_external() {
        let ops = [before, object_ops(&server)].concat();
        let count = |wanted| ops.iter().filter(|&&op| op == wanted).count();
        assert_eq!(count("CreateMultipartUpload"), 1, "{ops:?}");
        assert_eq!(count("UploadPart"), 3, "{ops:?}");
        assert_eq!(count("CompleteMultipartUpload"), 1, "{ops:?}");
        assert_eq!(count("PutObject"), 0, "{ops:?}");
    }
    assert_eq!(object_sizes(&bucket, "parts.log"), [data.len() as u64]);
    assert!(stream_contents(&bucket, "parts.log") == data);
}

#[test]
fn a_flush_of_more_than_a_part_streams_it_and_sends_nothing_else() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut writer = Storage::new(bucket.clone(), "one.log", streaming_options(2)).unwrap();
    let data = pattern(PART + PART / 4, 11);
    server.take_requests();
    // The write hands its first part over at once: its requests are the flush's too.
    writer.write_all(&data).unwrap();
    writer.flush().unwrap();
    if !server.is_external() {
        // The first write lists the stream to find its tail.
        let mut ops: Vec<_> = (object_ops(&server).into_iter())
            .filter(|&op| op != "ListObjectsV2")
            .collect();
        ops.sort();
        // A whole-object PUT racing the parts once slipped in here (found by the model test).
        let expected = [
            "CompleteMultipartUpload",
            "CreateMultipartUpload",
            "UploadPart",
            "UploadPart",
        ];
        assert_eq!(ops, expected);
    }
    writer.close().unwrap();
    assert!(stream_contents(&bucket, "one.log") == data);
}

#[test]
fn writes_after_a_flush_failed_mid_upload_stream_out_once_it_completes() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let through_proxy = proxy.bucket(&server, &bucket.name());
    let options = streaming_options(2)
        .to_builder()
        .with_retry_attempts(2)
        .build()
        .unwrap();
    let mut writer = Storage::new(through_proxy, "failed.log", options).unwrap();
    let mut expected = pattern(PART, 12);
    writer.write_all(&expected).unwrap();
    // The part goes out, its upload fails: the flush fails and keeps every byte.
    for _ in 0..2 {
        proxy.inject(Some("PUT"), Fault::Status(503));
    }
    assert!(writer.flush().is_err());
    assert!(writer.unflushed() == expected);
    // Found by the model test: completing that upload while cutting the next part once read
    // a stale length, and panicked.
    let more = pattern(PART + PART / 2, 13);
    writer.write_all(&more).unwrap();
    expected.extend_from_slice(&more);
    writer.close().unwrap();
    assert!(stream_contents(&bucket, "failed.log") == expected);
}

#[test]
fn a_tail_larger_than_the_write_budget_lets_go_of_parts_s3_has() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut writer = Storage::new(bucket.clone(), "budget.log", streaming_options(1)).unwrap();
    let data = pattern(6 * PART + 1000, 9);
    for chunk in data.chunks(64 * 1024) {
        writer.write_all(chunk).unwrap();
        // One part uploading, one filling, and the write that crosses it.
        assert!(writer.unflushed().len() <= 3 * PART + 64 * 1024);
    }
    assert!(
        writer.unflushed().len() < data.len(),
        "parts S3 has left memory"
    );
    // They still count in the length (found by the model test).
    let end = writer.seek(std::io::SeekFrom::End(0)).unwrap();
    assert_eq!(end, data.len() as u64);
    // Reading them back through the writer completes the object first.
    writer.rewind().unwrap();
    let mut back = Vec::new();
    writer.read_to_end(&mut back).unwrap();
    assert!(back == data);
    assert!(writer.unflushed().is_empty());
    writer.close().unwrap();
    assert_eq!(object_sizes(&bucket, "budget.log"), [data.len() as u64]);
    assert!(stream_contents(&bucket, "budget.log") == data);
}

#[test]
fn objects_upload_in_parallel_and_are_completed_in_stream_order() {
    let server = Server::from_env_or_start();
    let proxy = Proxy::start(&server);
    let bucket = proxy.bucket(&server, &server.new_bucket().name());
    let options = streaming_options(3)
        .to_builder()
        .with_seal_size(PART)
        .build()
        .unwrap();
    let mut writer = Storage::new(bucket.clone(), "objects.log", options).unwrap();
    let data = pattern(8 * PART + 1000, 10);
    // Long enough for the writer to hand over the next parts, on any server, while one is held.
    for _ in 0..8 {
        proxy.inject(Some("PUT"), Fault::Delay(Duration::from_millis(1000)));
    }
    server.take_requests();
    proxy.take_peak();
    for chunk in data.chunks(PART) {
        writer.write_all(chunk).unwrap();
        // Whatever is complete is a prefix of the stream: no gap, ever.
        let sizes = object_sizes(&bucket, "objects.log");
        assert!(sizes.iter().all(|&size| size == PART as u64), "{sizes:?}");
    }
    writer.close().unwrap();
    assert_eq!(
        proxy.take_peak(),
        3,
        "parts of three objects uploading at once"
    );
    assert!(stream_contents(&bucket, "objects.log") == data);
    if !server.is_external() {
        let completed: Vec<String> = (server.take_requests().into_iter())
            .filter(|r| r.op == "CompleteMultipartUpload" || r.op == "PutObject")
            .filter(|r| !is_hint(&r.path))
            .map(|r| r.path)
            .collect();
        let mut sorted = completed.clone();
        sorted.sort();
        assert_eq!(completed, sorted, "completed in stream order");
        assert_eq!(completed.len(), 9);
    }
}

/// One write of several parts and objects: it is cut at once, its parts upload `write_ahead`
/// at a time while the write goes on (no flush needed), and its objects are sealed where small
/// writes seal them.
#[test]
fn one_large_write_uploads_parts_in_parallel_and_seals_as_small_writes_do() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let through_proxy = proxy.bucket(&server, &bucket.name());
    let options = (streaming_options(3).to_builder())
        .with_seal_size(2 * PART)
        .build()
        .unwrap();
    let data = pattern(5 * PART + PART / 2, 15);
    // Six parts, each held until released: the write goes on only while fewer than three are
    // uploading.
    for _ in 0..6 {
        proxy.inject(Some("PUT"), Fault::Hold);
    }
    proxy.take_peak();
    let write = std::thread::spawn({
        let (data, options) = (data.clone(), options.clone());
        move || {
            let mut writer = Storage::new(through_proxy, "one.log", options).unwrap();
            assert_eq!(writer.write(&data).unwrap(), data.len(), "took whole");
            writer
        }
    });
    assert!(proxy.wait_holding(3), "three parts uploading at once");
    assert!(
        !write.is_finished(),
        "the write waits for room for its fourth part"
    );
    for _ in 0..6 {
        proxy.release();
    }
    let writer = write.join().unwrap();
    writer.close().unwrap();
    assert_eq!(
        proxy.take_peak(),
        3,
        "never more than write_ahead parts at once"
    );
    assert!(stream_contents(&bucket, "one.log") == data);

    let mut small = Storage::new(bucket.clone(), "small.log", options).unwrap();
    for chunk in data.chunks(64 * 1024) {
        small.write_all(chunk).unwrap();
    }
    small.close().unwrap();
    let sealed = (2 * PART) as u64;
    let expected = [sealed, sealed, (data.len() - 4 * PART) as u64];
    assert_eq!(object_sizes(&bucket, "small.log"), expected);
    assert_eq!(object_sizes(&bucket, "one.log"), expected);
}

#[test]
fn uploads_left_by_a_crash_are_listed_where_the_server_can() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut writer = Storage::new(bucket.clone(), "left.log", streaming_options(2)).unwrap();
    writer.write_all(&pattern(PART, 14)).unwrap();
    // Hands the part over: its upload is created on a thread of its own.
    writer.write_all(b"more").unwrap();
    let started = std::time::Instant::now();
    loop {
        match writer.pending_uploads() {
            Ok(uploads) if !uploads.is_empty() => break,
            Ok(_) => {
                assert!(started.elapsed() < Duration::from_secs(10), "never listed");
                std::thread::sleep(Duration::from_millis(20));
            }
            // A server without ListMultipartUploads answers 501.
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{err}");
                assert!(!server.is_external(), "{err}");
                return;
            }
        }
    }
    // The process dies: nothing completes or aborts the upload.
    std::mem::forget(writer);
    let mut next = Storage::new(bucket.clone(), "left.log", streaming_options(2)).unwrap();
    let uploads = next.pending_uploads().unwrap();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    assert_eq!(
        (uploads[0].seq, uploads[0].key.as_str()),
        (0, "left-00000000000000000000.log")
    );
    // The stream itself is as before the crash: empty, then what the next writer adds.
    next.write_all(b"after").unwrap();
    next.close().unwrap();
    assert_eq!(stream_contents(&bucket, "left.log"), b"after");
}

/// Two faults in a row: a Complete lands but its answer is lost, its resend is refused (412:
/// the object moved on, by that very Complete), and every HEAD that would settle it fails too.
/// Whether the bytes are stored is then unknown: the flush reports the HEAD's failure, never a
/// fence for bytes that may be stored, and the next flush settles it, with nothing lost or
/// doubled. For an append by copy, and for an object whose parts streamed out.
#[test]
fn a_lost_complete_whose_settling_fails_is_no_fence() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let through_proxy = proxy.bucket(&server, &bucket.name());
    for (name, first, more) in [
        ("by-copy.log", BASE, 1000),
        ("streamed.log", 0, 3 * (8 * MIB) + 1000),
    ] {
        let mut writer = Storage::new(through_proxy.clone(), name, large_tail_options()).unwrap();
        let mut expected = pattern(first, 5);
        writer.write_all(&expected).unwrap();
        writer.flush().unwrap();

        proxy.inject(Some("POST"), Fault::Delay(Duration::ZERO)); // CreateMultipartUpload
        proxy.inject(Some("POST"), Fault::DropResponse); // Complete: lands, answer lost
        proxy.inject(Some("POST"), Fault::Status(412)); // its resend
        for _ in 0..20 {
            proxy.inject(Some("HEAD"), Fault::Status(500));
        }
        let more = pattern(more, 6);
        writer.write_all(&more).unwrap();
        let err = writer.flush().unwrap_err();
        assert!(
            !matches!(inner(&err), Error::Fenced { .. }),
            "{name}: {err}"
        );
        proxy.clear();
        writer.flush().unwrap();
        expected.extend_from_slice(&more);
        assert!(stream_contents(&bucket, name) == expected, "{name}");
    }
}
