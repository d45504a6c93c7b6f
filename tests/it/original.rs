//! The original Go package's test, ported: one stream of 10,000 1,000-byte records in 1 MiB
//! objects, read back whole through several buffer sizes, then the seek cases and close.

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

use crate::common::*;
use s3_syncr::Error;

#[test]
fn original_package_test() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let mut storage = open(&bucket, "syncr/test.log", 1);

    let mut buf = [0u8; 16];
    assert_eq!(
        storage.read(&mut buf).unwrap(),
        0,
        "an empty stream reads EOF"
    );

    let mut expected = Vec::with_capacity(10_000 * 1_000);
    for i in 0..10_000u64 {
        let record = pattern(1_000, i);
        assert_eq!(storage.write(&record).unwrap(), 1_000);
        expected.extend_from_slice(&record);
    }
    storage.flush().unwrap();
    assert_eq!(
        storage.objects().unwrap().len(),
        10,
        "10 MB in 1 MiB objects"
    );

    for size in [12, 128, 1024, 4 * MIB] {
        assert_eq!(storage.seek(SeekFrom::Start(0)).unwrap(), 0);
        let got = read_all_with(&mut storage, size).unwrap();
        assert!(
            got == expected,
            "read back with {size}-byte buffers differs"
        );
    }

    let len = expected.len() as u64;
    assert_eq!(storage.seek(SeekFrom::Start(0)).unwrap(), 0);
    assert_eq!(storage.seek(SeekFrom::End(0)).unwrap(), len);
    assert_eq!(storage.stream_position().unwrap(), len);
    assert_eq!(storage.seek(SeekFrom::Current(-10)).unwrap(), len - 10);
    for bad in [
        SeekFrom::Start(len + 1),
        SeekFrom::End(1),
        SeekFrom::Current(11),
        SeekFrom::End(-(len as i64) - 1),
    ] {
        let err = storage.seek(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(matches!(inner(&err), Error::SeekPositionNotSupported));
        assert_eq!(storage.stream_position().unwrap(), len - 10, "unchanged");
    }

    // The Go package's Close may be called twice; `close` takes the handle, so once it is.
    storage.close().unwrap();
    assert_eq!(stream_contents(&bucket, "syncr/test.log"), expected);
}
