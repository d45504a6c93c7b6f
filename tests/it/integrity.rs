//! Checksums end to end: every object carries a CRC32C of its whole bytes, the server refuses
//! a body damaged on the way (and the writer sends it again), and a reader that reads an object
//! through checks it, handing out no byte of an object damaged at rest.

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use crate::common::*;
use s3::command::Command;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy, crc32c};

/// A stream of four objects of about 1 MiB, written in 64 KiB pieces, and its bytes.
fn four_objects(bucket: &s3::Bucket, name: &str) -> Vec<u8> {
    let data = pattern(3 * MIB + MIB / 2, 41);
    let mut writer = open(bucket, name, 1);
    for piece in data.chunks(64 * 1024) {
        writer.write_all(piece).unwrap();
    }
    writer.close().unwrap();
    assert_eq!(object_sizes(bucket, name).len(), 4);
    data
}

/// A reader with these chunk and read-ahead sizes.
fn reader(bucket: &s3::Bucket, name: &str, chunk: usize, ahead: usize, verify: bool) -> Storage {
    let options = Options::builder()
        .with_read_chunk(chunk)
        .with_read_ahead(ahead)
        .with_verify_reads(verify)
        .build()
        .unwrap();
    Storage::new(bucket.clone(), name, options).unwrap()
}

/// Reads from the start in 8 KiB reads until the end or an error; returns what was handed out
/// and the error.
fn read_until_error(storage: &mut Storage) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0; 8192];
    loop {
        match storage.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) => return (out, Some(err)),
        }
    }
}

/// A byte flipped in an object at rest: a reader reading the stream from its start fails with
/// `InvalidData` naming that object, hands out only the bytes before it, and fails again if
/// it reads on. One GET per object, several GETs held until the object is whole, and an
/// object larger than the read-ahead (checked before its last chunk is handed out).
#[test]
fn a_byte_flipped_at_rest_is_never_handed_out() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let data = four_objects(&bucket, "rest.log");
    let objects = open(&bucket, "rest.log", 1).objects().unwrap();
    let victim = &objects[1];
    let (start, size) = (victim.start as usize, victim.size as usize);
    // (chunk, read-ahead, offsets in the object that may be flipped)
    let setups: [(usize, usize, &[usize]); 3] = [
        (8 * MIB, 4, &[0, size / 2, size - 1]),
        (256 * 1024, 4, &[0, 300 * 1024, size - 1]),
        // 3 chunks of 64 KiB hold less than the object: its last chunk is held.
        (64 * 1024, 2, &[size - 1, size - 1000]),
    ];
    let mut flipped: Option<usize> = None;
    for (chunk, ahead, offsets) in setups {
        for &offset in offsets {
            // One byte flipped at a time: the previous one is flipped back.
            if let Some(previous) = flipped.take() {
                server.corrupt(&bucket.name(), &victim.key, previous as u64);
            }
            server.corrupt(&bucket.name(), &victim.key, offset as u64);
            flipped = Some(offset);
            let mut storage = reader(&bucket, "rest.log", chunk, ahead, true);
            let (read, err) = read_until_error(&mut storage);
            let context = format!("chunk {chunk}, ahead {ahead}, byte {offset} flipped");
            let err = err.unwrap_or_else(|| panic!("{context}: no error"));
            assert_eq!(err.kind(), ErrorKind::InvalidData, "{context}");
            assert!(
                matches!(inner(&err), Error::Corrupt { key, .. } if *key == victim.key),
                "{context}: {err}"
            );
            assert!(
                read.len() <= start + offset,
                "{context}: the flipped byte was read"
            );
            assert!(
                read == data[..read.len()],
                "{context}: a wrong byte was read"
            );
            let again = storage.read(&mut [0; 100]).unwrap_err();
            assert!(matches!(inner(&again), Error::Corrupt { .. }), "{context}");
        }
    }
    // Unchecked, the same reader hands the damaged byte out: the flip is real.
    let mut unchecked = reader(&bucket, "rest.log", 256 * 1024, 4, false);
    let mut all = Vec::new();
    unchecked.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), data.len());
    assert!(all != data);
}

/// Objects that match their checksums read as before, whatever the chunk and read-ahead sizes,
/// and a read that starts inside an object is not checked (the checksum covers the whole
/// object): it gets the object's bytes as stored.
#[test]
fn whole_objects_pass_their_check_and_reads_inside_an_object_are_unchecked() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let data = four_objects(&bucket, "ok.log");
    for (chunk, ahead) in [(8 * MIB, 4), (256 * 1024, 4), (64 * 1024, 2), (4096, 0)] {
        let mut storage = reader(&bucket, "ok.log", chunk, ahead, true);
        let (read, err) = read_until_error(&mut storage);
        assert!(err.is_none(), "chunk {chunk}, ahead {ahead}: {err:?}");
        assert!(read == data, "chunk {chunk}, ahead {ahead}");
    }
    if server.is_external() {
        return;
    }
    let objects = open(&bucket, "ok.log", 1).objects().unwrap();
    let victim = &objects[2];
    let inside = victim.start + 1000;
    server.corrupt(&bucket.name(), &victim.key, 1000);
    let mut storage = reader(&bucket, "ok.log", 8 * MIB, 4, true);
    storage.seek(SeekFrom::Start(inside)).unwrap();
    let mut byte = [0];
    storage.read_exact(&mut byte).unwrap();
    assert_eq!(
        byte[0],
        data[inside as usize] ^ 1,
        "read as stored, unchecked"
    );
}

/// Every object, whether PUT whole, uploaded in parts or appended by copy, carries a
/// full-object CRC32C that matches its bytes, on servers that keep one.
#[test]
fn every_object_carries_a_checksum_of_its_whole_bytes() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let options = Options::builder()
        .with_seal_size(12 * MIB)
        .with_part_size(5 * MIB)
        .with_append_by_copy(Some(5 * MIB))
        .build()
        .unwrap();
    let data = pattern(19 * MIB, 42);
    let mut writer = Storage::new(bucket.clone(), "sums.log", options).unwrap();
    // A small PUT, then a tail past 5 MiB flushed in pieces: appends by copy; then a write of
    // more than a part: a multipart upload of its own object.
    let cuts = [100_000, 6 * MIB, 7 * MIB, 12 * MIB, 19 * MIB];
    let mut done = 0;
    for cut in cuts {
        writer.write_all(&data[done..cut]).unwrap();
        writer.flush().unwrap();
        done = cut;
    }
    writer.close().unwrap();
    if !server.is_external() {
        assert!(
            ops(&server).contains(&"UploadPartCopy"),
            "an append by copy"
        );
    }
    let objects = open(&bucket, "sums.log", 1).objects().unwrap();
    assert_eq!(objects.len(), 2);
    let mut mode = HeaderMap::new();
    mode.insert(
        HeaderName::from_static("x-amz-checksum-mode"),
        HeaderValue::from_static("ENABLED"),
    );

    for object in objects {
        let head = (bucket.raw_send_with(&object.key, Command::HeadObject, &mode)).unwrap();
        let Some(stored) = head.header("x-amz-checksum-crc32c") else {
            assert!(server.is_external(), "{}: no checksum stored", object.key);
            eprintln!("{}: the server keeps no checksum", object.key);
            continue;
        };
        let (from, to) = (object.start as usize, (object.start + object.size) as usize);
        assert_eq!(stored, crc32c(&data[from..to]), "{}", object.key);
    }
}

/// A byte flipped on the way to the server, in a PUT and in a part: the server refuses the
/// body (its checksum does not match), the writer sends it again, and the stream holds every
/// byte once.
#[test]
fn a_body_damaged_on_the_way_is_refused_and_sent_again() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let options = Options::builder()
        .with_seal_size(12 * MIB)
        .with_part_size(5 * MIB)
        .build()
        .unwrap();
    let via_proxy = proxy.bucket(&server, &bucket.name());
    let mut writer = Storage::new(via_proxy, "damaged.log", options).unwrap();
    let data = pattern(7 * MIB, 43);
    // A small tail: one PUT, damaged once.
    proxy.inject(Some("PUT"), Fault::CorruptBody);
    writer.write_all(&data[..100_000]).unwrap();
    writer.flush().unwrap();
    assert_eq!(proxy.injected(), 1);
    // More than a part: its first part, damaged once.
    proxy.inject(Some("PUT"), Fault::CorruptBody);
    writer.write_all(&data[100_000..]).unwrap();
    writer.close().unwrap();
    assert_eq!(proxy.injected(), 2);
    assert!(stream_contents(&bucket, "damaged.log") == data);
}

/// A reader of `name` through `proxy` that has listed the stream already: the faults queued
/// next meet the GETs of its bytes, not the listing.
fn listed_reader(proxy: &Proxy, server: &Server, bucket: &s3::Bucket, name: &str) -> Storage {
    let via_proxy = proxy.bucket(server, &bucket.name());
    let mut storage = reader(&via_proxy, name, 8 * MIB, 4, true);
    storage.len().unwrap();
    storage
}

/// One bit flipped in an answer on its way back (a link that corrupts what TCP's checksum
/// misses): the object fails its check, is fetched again, and the reader hands out exactly
/// the stream's bytes, the damaged ones never. Whichever GET of a read is damaged (the first
/// small one, one of the GETs ahead, the one GET of an object), and with one GET per object
/// or several held until the object is whole.
#[test]
fn an_answer_damaged_on_the_way_is_fetched_again() {
    let Rig {
        server,
        proxy,
        bucket,
    } = Rig::new();
    let data = four_objects(&bucket, "wire.log");
    // (chunk, read-ahead): objects that fit what is held before any of them is handed out.
    for (chunk, ahead) in [(8 * MIB, 4), (256 * 1024, 4), (8 * MIB, 0)] {
        for damaged in [1, 3] {
            let via_proxy = proxy.bucket(&server, &bucket.name());
            let mut storage = reader(&via_proxy, "wire.log", chunk, ahead, true);
            storage.len().unwrap();
            proxy.clear();
            let before = proxy.injected();
            // The GETs before the damaged one pass (a delay of nothing).
            for _ in 1..damaged {
                proxy.inject(Some("GET"), Fault::Delay(std::time::Duration::ZERO));
            }
            proxy.inject(Some("GET"), Fault::CorruptAnswer);
            let (read, err) = read_until_error(&mut storage);
            let context = format!("chunk {chunk}, ahead {ahead}, GET {damaged} damaged");
            assert!(err.is_none(), "{context}: {err:?}");
            assert_eq!(proxy.injected() - before, damaged, "{context}");
            assert!(read == data, "{context}: not the stream's bytes");
        }
    }
    if server.is_external() {
        return;
    }
    // A byte damaged at rest stays damage, whatever the wire does meanwhile: every fetch
    // brings it again.
    let objects = open(&bucket, "wire.log", 1).objects().unwrap();
    let victim = &objects[1];
    let offset = victim.size / 2;
    server.corrupt(&bucket.name(), &victim.key, offset);
    let mut storage = listed_reader(&proxy, &server, &bucket, "wire.log");
    proxy.inject(Some("GET"), Fault::CorruptAnswer);
    let (read, err) = read_until_error(&mut storage);
    let err = err.expect("a byte damaged at rest is an error");
    assert!(
        matches!(inner(&err), Error::Corrupt { key, .. } if *key == victim.key),
        "{err}"
    );
    assert!(read.len() as u64 <= victim.start + offset);
    assert!(read == data[..read.len()]);
}

/// A follower that reads an object from its first byte to its last through polls of its end
/// (no GET of it is ever a read from its first byte) checks it once the object is sealed: a
/// bit flipped in the answer that completes it is fetched again, and the follower reads the
/// stream's bytes; one flipped in an answer handed out before is `Corrupt` there, since the
/// bytes handed out do not match what the server stores.
#[test]
fn a_followed_object_is_checked_once_sealed() {
    let server = Server::start();
    let proxy = Proxy::start(&server);
    let bucket = server.new_bucket();
    // Object 1 (1 MiB) reaches the follower in three polls: 200 KiB, 600 KiB, the rest.
    let data = pattern(2 * MIB + 50_000, 45);
    let cuts = [MIB, MIB + 200 * 1024, MIB + 800 * 1024, data.len()];
    for damaged_poll in [2, 3] {
        let name = format!("followed-{damaged_poll}.log");
        let injected = proxy.injected();
        let mut writer = open(&bucket, &name, 1);
        writer.write_all(&data[..cuts[0]]).unwrap();
        writer.flush().unwrap();
        let via_proxy = proxy.bucket(&server, &bucket.name());
        let mut follower = Storage::new(via_proxy, &name, Options::default()).unwrap();
        let (mut read, err) = read_until_error(&mut follower);
        assert!(err.is_none() && read == data[..cuts[0]], "{err:?}");
        let mut failed = None;
        for (poll, range) in cuts.windows(2).enumerate() {
            writer.write_all(&data[range[0]..range[1]]).unwrap();
            writer.flush().unwrap();
            proxy.clear();
            if poll + 1 == damaged_poll {
                proxy.inject(Some("GET"), Fault::CorruptAnswer);
            }
            let (more, err) = read_until_error(&mut follower);
            read.extend_from_slice(&more);
            if let Some(err) = err {
                failed = Some(err);
                break;
            }
        }
        writer.close().unwrap();
        assert_eq!(proxy.injected() - injected, 1, "the poll was damaged");
        let object = &open(&bucket, &name, 1).objects().unwrap()[1];
        match (damaged_poll, failed) {
            // The answer that completes the object: fetched again, never handed out.
            (3, None) => assert!(read == data, "not the stream's bytes"),
            // One handed out before: the object's check fails when it is sealed, at the
            // latest as its last bytes would be handed out.
            (2, Some(err)) => {
                assert!(
                    matches!(inner(&err), Error::Corrupt { key, .. } if *key == object.key),
                    "{err}"
                );
                assert!(read.len() as u64 <= object.start + object.size);
                assert!(
                    read != data[..read.len()],
                    "the damaged poll was handed out"
                );
            }
            (poll, failed) => panic!("poll {poll} damaged: {failed:?}"),
        }
    }
}
