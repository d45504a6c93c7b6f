//! Long streams (issue 28): a new handle finds the end through the stream's hint, with a few
//! requests at any object count, and a stream without a usable hint is listed whole as before.
//! Requests are counted on the in-process server.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::common::{OPEN, Proxy, Raw, Server, assert_rounds, inner, ops};
use attohttpc::header::{HeaderMap, HeaderName, HeaderValue};
use s3::Bucket;
use s3_syncr::{Ends, Error, Options, Storage};
use s3_syncr_test_server::Fault;

/// Objects in the streams here: more than one listing page (1,000 keys).
const OBJECTS: u64 = 2_100;
/// Bytes per object.
const SIZE: u64 = 10;

fn key(seq: u64) -> String {
    format!("long/log-{seq:020}.bin")
}

const HINT: &str = "long/log-s3syncr-hint.bin";

/// The bytes of object `seq`.
fn body(seq: u64) -> Vec<u8> {
    format!("{:>9}\n", seq % 1_000_000_000).into_bytes()
}

/// Puts objects `0..OBJECTS` as a writer would (each records its start and a seal of
/// `SIZE`, so it is full), with raw PUTs on a few threads: a long stream, quickly.
fn populate(bucket: &Bucket) {
    std::thread::scope(|scope| {
        for lane in 0..8 {
            scope.spawn(move || {
                for seq in (lane..OBJECTS).step_by(8) {
                    let mut headers = HeaderMap::new();
                    let meta = |name: &'static str| HeaderName::from_static(name);
                    headers.insert(
                        meta("x-amz-meta-s3syncr-start"),
                        HeaderValue::from(seq * SIZE),
                    );
                    headers.insert(meta("x-amz-meta-s3syncr-seal"), HeaderValue::from(SIZE));
                    bucket.raw_put_with(&key(seq), &body(seq), headers);
                }
            });
        }
    });
}

fn handle(bucket: &Bucket) -> Storage {
    Storage::new(bucket.clone(), "long/log.bin", Options::default()).unwrap()
}

/// Appends one object with a new handle: the stream's last is full, so it creates the next
/// one, and names it in the hint.
fn append(bucket: &Bucket) {
    let mut writer = handle(bucket);
    writer.write_all(&body(OBJECTS)).unwrap();
    writer.close().unwrap();
}

const END: u64 = (OBJECTS + 1) * SIZE;

/// After the first test's writer continued the last object.
const MORE: u64 = 4;

/// A new bucket on `server` holding the long stream, its last object (and the hint) written
/// by a writer.
fn long_stream(server: &Server) -> Bucket {
    let bucket = server.new_bucket();
    populate(&bucket);
    append(&bucket);
    ops(server);
    bucket
}

/// The end: a LIST page from 100 objects before the one the hint names, and the HEAD of that
/// one for where it starts.
const END_FOUND: &[&str] = &["ListObjectsV2", "HeadObject"];

#[test]
fn a_new_handle_finds_the_end_of_a_long_stream_in_two_round_trips() {
    let server = Server::start();
    let bucket = long_stream(&server);

    let mut reader = handle(&bucket);
    assert_rounds(&ops(&server), &[OPEN]);
    assert_eq!(reader.len().unwrap(), END);
    assert_rounds(&ops(&server), &[END_FOUND]);

    let mut reader = handle(&bucket);
    assert_eq!(reader.seek(SeekFrom::End(-10)).unwrap(), END - 10);
    let mut last = [0; 10];
    reader.read_exact(&mut last).unwrap();
    assert_eq!(last[..], body(OBJECTS));
    assert_rounds(&ops(&server), &[OPEN, END_FOUND, &["GetObject"]]);

    // Then the middle, long before what the hint listed: one page there, and its first
    // object's HEAD for where it starts.
    let middle = OBJECTS / 2 * SIZE + 3;
    assert_eq!(reader.seek(SeekFrom::Start(middle)).unwrap(), middle);
    let mut some = [0; 7];
    reader.read_exact(&mut some).unwrap();
    assert_eq!(some[..], body(OBJECTS / 2)[3..]);
    assert_eq!(ops(&server), ["ListObjectsV2", "HeadObject", "GetObject"]);

    // A new handle reading from the front: the end, then the first page (the last HEAD is
    // for the checksum of object 0, read through).
    let mut reader = handle(&bucket);
    let mut first = [0; 10];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(first[..], body(0));
    let front: &[&[&str]] = &[
        OPEN,
        END_FOUND,
        &["ListObjectsV2"],
        &["HeadObject"],
        &["GetObject"],
        &["HeadObject"],
    ];
    assert_rounds(&ops(&server), front);

    // A writer finds its tail the same way, then continues it.
    let mut writer = handle(&bucket);
    writer.write_all(b"more").unwrap();
    writer.close().unwrap();
    let tail: &[&[&str]] = &[OPEN, END_FOUND, &["GetObject"], &["PutObject"]];
    assert_rounds(&ops(&server), tail);
    assert_eq!(handle(&bucket).len().unwrap(), END + MORE);
    assert!(
        handle(&bucket)
            .objects()
            .unwrap()
            .iter()
            .all(|s| s.key != HINT)
    );
}

#[test]
fn the_ends_and_the_first_offset_take_five_requests() {
    let server = Server::start();
    let bucket = long_stream(&server);
    // Trimmed by hand: the stream starts at object 5.
    for seq in 0..5 {
        bucket.raw_delete(&key(seq));
    }
    ops(&server);

    // What `s3-syncr stat` shows: the end found as `len()` finds it, then the first object's
    // HEAD (the open's LIST named it).
    let ends = handle(&bucket).ends().unwrap().unwrap();
    let expected = Ends {
        first: 5 * SIZE,
        end: END,
        first_seq: 5,
        last_seq: OBJECTS,
        last_key: key(OBJECTS),
        last_size: SIZE,
    };
    assert_eq!(ends, expected);
    assert_rounds(&ops(&server), &[OPEN, END_FOUND, &["HeadObject"]]);

    // No read-ahead: its requests would go on beside those counted.
    let options = Options::builder().with_read_ahead(0).build().unwrap();
    let mut reader = Storage::new(bucket.clone(), "long/log.bin", options).unwrap();
    assert_eq!(reader.first_offset().unwrap(), 5 * SIZE);
    assert_rounds(&ops(&server), &[OPEN, END_FOUND, &["HeadObject"]]);
    // Once more: the first key listed again, the object known.
    assert_eq!(reader.first_offset().unwrap(), 5 * SIZE);
    assert_eq!(ops(&server), ["ListObjectsV2"]);
    // It reads from there, the next objects listed a page after the first.
    let mut some = vec![0; 2 * SIZE as usize];
    reader.read_exact(&mut some).unwrap();
    assert_eq!(some, [body(5), body(6)].concat());

    // A trim since: the new first object is asked where it starts.
    bucket.raw_delete(&key(5));
    ops(&server);
    assert_eq!(reader.first_offset().unwrap(), 6 * SIZE);
    assert_eq!(ops(&server), ["ListObjectsV2"], "object 6 was listed");
    // Opened before another trim, asked after it: the object its open listed first is gone
    // (one HEAD), the first key is listed again, and the new first object asked.
    let mut early = handle(&bucket);
    assert_eq!(early.len().unwrap(), END);
    bucket.raw_delete(&key(6));
    bucket.raw_delete(&key(7));
    ops(&server);
    assert_eq!(early.first_offset().unwrap(), 8 * SIZE);
    assert_eq!(ops(&server), ["HeadObject", "ListObjectsV2", "HeadObject"]);
    assert_eq!(handle(&bucket).ends().unwrap().unwrap().first, 8 * SIZE);
}

#[test]
fn requests_that_need_nothing_of_each_other_go_at_once() {
    let server = Server::start();
    let bucket = long_stream(&server);
    let proxy = Proxy::start(&server);
    let relayed = proxy.bucket(&server, &bucket.name());
    // Each pair is held until both arrived: sent one after the other, they never would.
    for _ in 0..4 {
        proxy.inject(None, Fault::Hold);
    }
    let reader = std::thread::spawn(move || {
        let mut reader = handle(&relayed);
        reader.len().unwrap()
    });
    for pair in [OPEN, END_FOUND] {
        assert!(proxy.wait_holding(2), "{pair:?} at once");
        proxy.release();
        proxy.release();
        while proxy.holding() > 0 {
            std::thread::yield_now();
        }
    }
    assert_eq!(reader.join().unwrap(), END);
}

/// Reads the whole stream with a new handle, and its length with another: both right.
fn read_whole(bucket: &Bucket) -> Vec<u8> {
    assert_eq!(handle(bucket).len().unwrap(), END);
    let mut all = Vec::new();
    handle(bucket).read_to_end(&mut all).unwrap();
    all
}

#[test]
fn a_stream_without_a_usable_hint_is_listed_whole_and_the_next_writer_upgrades_it() {
    let server = Server::start();
    let bucket = server.new_bucket();
    populate(&bucket);
    let expected: Vec<u8> = (0..=OBJECTS).flat_map(body).collect();
    let lists = |server: &Server| {
        let sent = ops(server);
        sent.iter().filter(|op| **op == "ListObjectsV2").count()
    };

    // As 0.2 left it: no hint. The listing takes three pages.
    ops(&server);
    assert_eq!(handle(&bucket).len().unwrap(), OBJECTS * SIZE);
    assert_eq!(lists(&server), 1 + 3);
    append(&bucket);
    let upgraded = bucket.raw_get(HINT);
    assert!(String::from_utf8_lossy(&upgraded.body).contains(&format!("seq {OBJECTS}")));
    assert_eq!(read_whole(&bucket), expected);
    ops(&server);
    assert_eq!(handle(&bucket).len().unwrap(), END);
    assert_eq!(lists(&server), 1 + 1);

    let hint = |seq: u64, key: &str| format!("s3-syncr hint 1\nkey {key}\nseq {seq}\nstart 0\n");
    for (spoiled, pages) in [
        (b"not a hint".to_vec(), 3),
        (hint(5, "long/other-s3syncr-hint.bin").into_bytes(), 3),
        // Past the end: its listing is empty (one request), then the whole one.
        (hint(OBJECTS + 500, HINT).into_bytes(), 1 + 3),
        // Stale: named long ago, listed from there (two pages).
        (hint(1_000, HINT).into_bytes(), 2),
    ] {
        bucket.raw_put(HINT, &spoiled);
        ops(&server);
        assert_eq!(handle(&bucket).len().unwrap(), END);
        assert_eq!(
            lists(&server),
            1 + pages,
            "{}",
            String::from_utf8_lossy(&spoiled)
        );
        assert_eq!(read_whole(&bucket), expected);
    }

    // A hint naming an object deleted since: the listing starts at the next one.
    bucket.raw_put(HINT, hint(2_000, HINT).as_bytes());
    for seq in 1_990..2_010 {
        bucket.raw_delete(&key(seq));
    }
    let mut reader = handle(&bucket);
    assert_eq!(reader.len().unwrap(), END);
    reader.seek(SeekFrom::Start(2_010 * SIZE)).unwrap();
    let mut object = vec![0; SIZE as usize];
    reader.read_exact(&mut object).unwrap();
    assert_eq!(object, body(2_010));
    // Those deleted objects, never listed by this handle, are a gap, not the end.
    reader.seek(SeekFrom::Start(1_995 * SIZE)).unwrap();
    let err = reader.read(&mut object).unwrap_err();
    assert!(
        matches!(inner(&err), Error::MissingObject { key: k } if *k == key(1_990)),
        "{err}"
    );

    // Trimmed from the front: a position before it is, however far the hint is.
    for seq in 0..300 {
        bucket.raw_delete(&key(seq));
    }
    bucket.raw_put(HINT, hint(2_050, HINT).as_bytes());
    let mut reader = handle(&bucket);
    let err = reader.seek(SeekFrom::Start(5)).unwrap_err();
    assert!(
        matches!(inner(&err), Error::Trimmed { requested: 5, first } if *first == 300 * SIZE),
        "{err}"
    );
    assert_eq!(reader.stream_position().unwrap(), 300 * SIZE);
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap_err();
    assert_eq!(all, expected[300 * SIZE as usize..1_990 * SIZE as usize]);
}

#[test]
fn a_trim_lists_only_the_objects_it_deletes_and_deletes_them_in_batches() {
    let server = Server::start();
    let bucket = long_stream(&server);
    let mut trimmer = handle(&bucket);
    ops(&server);
    assert_eq!(trimmer.trim(1_500 * SIZE).unwrap(), 1_500 * SIZE);
    let sent = ops(&server);
    let count = |op: &str| sent.iter().filter(|o| **o == op).count();
    // The end by the hint (one page), then two pages from the front: not the third.
    assert_eq!(count("ListObjectsV2"), 1 + 2, "{sent:?}");
    // The hint's object, the first one (to stop, then to anchor), the new first one.
    assert_eq!(count("HeadObject"), 4, "{sent:?}");
    // The in-process server has no DeleteObjects (501, not logged): a DELETE a key.
    assert_eq!(count("DeleteObject"), 1_500);
    assert_eq!(handle(&bucket).first_offset().unwrap(), 1_500 * SIZE);
    let mut rest = Vec::new();
    handle(&bucket).read_to_end(&mut rest).unwrap();
    assert_eq!(rest, (1_500..=OBJECTS).flat_map(body).collect::<Vec<u8>>());
}
