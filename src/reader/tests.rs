//! The reader over the in-memory S3: growing objects, stale and flipped checksums, GETs
//! that panic.

use std::time::Duration;

use super::*;
use crate::Options;
use crate::client::S3Client;
use crate::client::mem::{self, Call, Fault, MemS3, Quirks};
use crate::store::{Expect, Meta};

/// What the one object of these tests records: it starts the stream and is never sealed.
const FIRST: Meta = Meta {
    start: 0,
    seal: u64::MAX,
};

/// An empty bucket that takes parts of any size.
fn store() -> Arc<MemS3> {
    Arc::new(MemS3::new(Quirks {
        min_part: 1,
        ..Quirks::default()
    }))
}

/// A new handle on the stream in `mem`.
fn handle(mem: &Arc<MemS3>) -> S3Client {
    let options = Options::builder()
        .with_retry_attempts(3)
        .with_retry_backoff(Duration::ZERO)
        .build()
        .expect("valid options");
    mem::client(mem, "r/log.bin", options)
}

/// An object that grows while it is read through: the GET that ends its old version
/// learns that version's checksum, which checks the bytes read up to there, and the bytes
/// appended then read on, with nothing called damaged.
#[test]
fn an_object_that_grows_while_read_through_reads_on_without_a_false_mismatch() {
    let mem = store();
    let writer = handle(&mem);
    let data: Vec<u8> = (0..80 * 1024).map(|i| (i * 7 + i / 251) as u8).collect();
    let first = 64 * 1024;
    let etag = (writer.overwrite(0, FIRST, 0, &data[..first], 0, Expect::Absent)).unwrap();
    let client: Arc<Client> = Arc::new(handle(&mem));
    let mut index = Index::default();
    index.refresh(&*client).unwrap();
    // Chunks smaller than the object and few of them: it is checked at its end.
    let mut reader = Reader::new(8 * 1024, 2, true, 3, None);
    let mut read = Vec::new();
    let mut grown = false;
    while read.len() < data.len() {
        let last = reader.ahead.iter().count().checked_sub(1);
        if !grown && reader.ahead.end() == Some(first as u64) {
            // The GET that ends the old version, and its HEAD, are done; then it grows.
            assert!(reader.ahead.wait_for(last.unwrap()));
            let tail = &data[first..];
            (writer.overwrite(0, FIRST, first, tail, 0, Expect::Etag(&etag))).unwrap();
            index.refresh(&*client).unwrap();
            grown = true;
        }
        let bytes = reader.fill_buf(&client, &index, 0).unwrap();
        assert!(!bytes.is_empty(), "ended at {}", read.len());
        let n = bytes.len();
        read.extend_from_slice(bytes);
        reader.pos += n as u64;
    }
    assert!(grown, "the object grew while it was read");
    assert!(read == data, "every byte once, in order");
    assert!(reader.corrupt.is_none());
}

/// A stale checksum (metadata lagging data) is asked again before the object is called
/// damaged, once a second GET brought the same bytes; a mismatch that every answer
/// repeats is damage. (The GET of a whole object carries the stored checksum, as S3's
/// does: it is the first to be stale.)
#[test]
fn a_mismatch_is_confirmed_by_a_second_head_before_it_is_damage() {
    let data: Vec<u8> = (0..16 * 1024).map(|i| (i * 13 + i / 97) as u8).collect();
    for persists in [false, true] {
        let mem = store();
        (handle(&mem).overwrite(0, FIRST, 0, &data, 0, Expect::Absent)).unwrap();
        // The HEAD that anchors the stream answers as it should; the first answer with
        // the checksum after it is stale, or every one.
        let mut answers = 0;
        mem.set_faults(Some(Box::new(move |call: Call<'_>| {
            answers += u32::from(matches!(call.op, "HEAD" | "GET"));
            match answers {
                2 => Fault::StaleChecksum,
                3.. if persists => Fault::StaleChecksum,
                _ => Fault::None,
            }
        })));
        let client: Arc<Client> = Arc::new(handle(&mem));
        let mut index = Index::default();
        index.refresh(&*client).unwrap();
        let mut reader = Reader::new(64 * 1024, 0, true, 3, None);
        let read = reader.fill_buf(&client, &index, 0).map(|b| b.to_vec());
        let trace = mem.trace();
        match (persists, read) {
            (false, Ok(bytes)) => assert!(bytes == data, "the whole object, checked"),
            (true, Err(Error::Corrupt { .. })) => {}
            (_, other) => panic!(
                "persists {persists}: {:?}\n{trace:#?}",
                other.map(|b| b.len())
            ),
        }
        assert!(
            trace.len() > 4,
            "the stale checksum was asked again: {trace:#?}"
        );
    }
}

/// A bit flipped on the wire in an answer that carries the object's checksum is fetched
/// again, and the read goes on with the right bytes; without verifying, nothing could tell.
#[test]
fn a_flipped_answer_is_fetched_again_when_reads_are_verified() {
    let data: Vec<u8> = (0..16 * 1024).map(|i| (i * 7 + i / 31) as u8).collect();
    for verify in [true, false] {
        let mem = store();
        (handle(&mem).overwrite(0, FIRST, 0, &data, 0, Expect::Absent)).unwrap();
        let mut gets = 0;
        mem.set_faults(Some(Box::new(move |call: Call<'_>| {
            gets += u32::from(call.op == "GET");
            match gets {
                1 => Fault::Flip,
                _ => Fault::None,
            }
        })));
        let client: Arc<Client> = Arc::new(handle(&mem));
        let mut index = Index::default();
        index.refresh(&*client).unwrap();
        let mut reader = Reader::new(64 * 1024, 0, verify, 3, None);
        let read = reader.fill_buf(&client, &index, 0).unwrap().to_vec();
        assert_eq!(read == data, verify, "verify {verify}");
    }
}

/// A GET ahead whose thread panics still reports back: the read that needs its bytes fails
/// with `Internal`, instead of waiting forever, and the next read starts again there.
#[test]
fn a_panicking_read_worker_is_an_error_at_the_read_that_needs_it() {
    let mem = store();
    let data: Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
    (handle(&mem).overwrite(0, FIRST, 0, &data, 0, Expect::Absent)).unwrap();
    // The first GET on a read-ahead thread panics, in the transport.
    let mut panicked = false;
    mem.set_faults(Some(Box::new(move |call: Call<'_>| {
        let name = std::thread::current().name().map(str::to_owned);
        let worker = name.is_some_and(|name| name == "s3-syncr-read");
        if call.op == "GET" && worker && !panicked {
            panicked = true;
            // Unwinds as a panic does, without the hook's message in the output.
            std::panic::resume_unwind(Box::new("the transport panicked (a test)"));
        }
        Fault::None
    })));
    let client: Arc<Client> = Arc::new(handle(&mem));
    let mut index = Index::default();
    index.refresh(&*client).unwrap();
    let mut reader = Reader::new(8 * 1024, 2, true, 3, None);
    let mut read = Vec::new();
    let mut failures = 0;
    while read.len() < data.len() && failures < 3 {
        match reader.fill_buf(&client, &index, 0) {
            Ok(bytes) => {
                let n = bytes.len();
                read.extend_from_slice(bytes);
                reader.pos += n as u64;
            }
            Err(Error::Internal { .. }) => failures += 1,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(failures, 1, "the panic surfaced once");
    assert!(read == data, "every byte once, in order");
}
