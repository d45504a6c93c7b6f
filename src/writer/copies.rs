//! Appends by copy to a tail larger than S3 copies into one part (5 GiB), against the in-memory
//! S3 with that limit lowered to a few kilobytes on both sides: the object must come out
//! byte for byte, with the CRC32C of its bytes, whichever path a flush takes (the short
//! append, or parts streamed out after the copy).

use std::io::{Read, Write};
use std::sync::Arc;

use s3::creds::Credentials;
use s3::{Bucket, Region};

use crate::client::mem::{MemS3, Quirks};
use crate::client::{Crc, S3Client};
use crate::layout::Layout;
use crate::{Options, Storage};

/// The most bytes copied into one part, here.
const LIMIT: u64 = 10_000;
const NAME: &str = "copies/log.bin";

fn bucket() -> Bucket {
    let region = Region::Custom {
        region: "us-east-1".into(),
        endpoint: "http://in-memory.invalid".into(),
    };
    let credentials =
        Credentials::new(Some("test"), Some("test"), None, None, None).expect("credentials");
    *Bucket::new("copies", region, credentials)
        .expect("bucket")
        .with_path_style()
}

/// A handle whose client copies at most `limit` bytes into one part. Parts of 4 KiB, appends
/// by copy from 4 KiB, and a seal far past what the test writes, as the simulator sets them
/// below S3's minimums: one object takes every flush.
fn handle(mem: &Arc<MemS3>, limit: u64) -> Storage {
    let mut options = Options::builder()
        .with_retry_attempts(2)
        .with_retry_backoff(std::time::Duration::ZERO)
        .build()
        .expect("valid options");
    options.seal_size = 1 << 20;
    options.part_size = 4_096;
    options.append_by_copy = Some(4_096);
    options.write_ahead = 2;
    let layout = Layout::new(NAME).expect("layout");
    let mut client = S3Client::with_transport(bucket(), layout, options.clone(), mem.clone());
    client.max_copy = limit;
    Storage::with_client(Arc::new(client), &options)
}

/// Bytes that tell their position in the stream.
fn bytes(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i * 31 % 251) as u8).collect()
}

fn copies_sent(mem: &MemS3) -> Vec<String> {
    (mem.trace().into_iter())
        .filter(|line| line.starts_with("COPY-PART"))
        .collect()
}

#[test]
fn a_tail_past_the_copy_limit_is_copied_in_ranges_and_keeps_its_checksum() {
    let mem = Arc::new(MemS3::new(Quirks {
        min_part: 1,
        max_copy: LIMIT,
        ..Quirks::default()
    }));
    let mut storage = handle(&mem, LIMIT);
    let mut written = Vec::new();
    // A flush of up to a part's bytes appends by the copy and one part; more stream out as
    // parts after the copy, which the upload numbers first. The tail passes the limit before
    // the fourth flush, and three times it before the last.
    let flushes: &[&[usize]] = &[
        &[6_000],
        &[1_000],
        &[5_000],
        &[100],
        &[9_000],
        &[50],
        &[3_000, 40],
        &[20_000],
        &[7],
    ];
    for (i, writes) in flushes.iter().enumerate() {
        let before = written.len() as u64;
        let copied = copies_sent(&mem).len();
        for &len in *writes {
            let data = bytes(written.len(), len);
            storage.write_all(&data).expect("write");
            written.extend_from_slice(&data);
        }
        if let Err(err) = storage.flush() {
            panic!(
                "flush {i} of a tail of {before} bytes: {err}\nlast requests:\n{}",
                mem.trace().join("\n")
            );
        }
        let objects = mem.objects();
        let object = &objects[&Layout::new(NAME).expect("layout").key(0)];
        assert_eq!(object.bytes.len(), written.len(), "flush {i}: size");
        assert!(object.bytes == written, "flush {i}: the object's bytes");
        assert_eq!(
            object.crc,
            Some(Crc::of(&written)),
            "flush {i}: stored CRC32C"
        );
        // The first flush creates the object; each later one copies what S3 held, in ranges
        // of at most the limit, every one of them answered.
        let copies = &copies_sent(&mem)[copied..];
        let ranges = if i == 0 { 0 } else { before.div_ceil(LIMIT) };
        assert_eq!(copies.len() as u64, ranges, "flush {i}: copies {copies:?}");
        assert!(copies.iter().all(|c| c.contains("-> 200")), "{copies:?}");
    }
    assert!(written.len() as u64 > 3 * LIMIT);
    storage.close().expect("close");
    // A new handle reads it back whole, its checksum verified.
    let mut read = Vec::new();
    (handle(&mem, LIMIT).read_to_end(&mut read)).expect("read back");
    assert!(read == written, "read back");
}
