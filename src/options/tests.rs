//! The builder's checks: every value out of S3's range refused, every default kept.

use super::builder::{MAX_OBJECT, MAX_PARTS};
use super::*;
use crate::Error;

fn refused(builder: OptionsBuilder) -> &'static str {
    match builder.build() {
        Err(Error::InvalidOption { option, .. }) => option,
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

#[test]
fn rejects_out_of_range_values() {
    let b = Options::builder;
    assert_eq!(refused(b().with_seal_size(0)), "seal_size");
    assert_eq!(refused(b().with_seal_size(usize::MAX)), "seal_size");
    let copy = b().with_append_by_copy(Some(MIN_PART - 1));
    assert_eq!(refused(copy), "append_by_copy");
    assert_eq!(refused(b().with_part_size(MIN_PART - 1)), "part_size");
    assert_eq!(refused(b().with_read_chunk(0)), "read_chunk");
    assert_eq!(refused(b().with_read_ahead(65)), "read_ahead");
    assert_eq!(refused(b().with_write_ahead(65)), "write_ahead");
    assert_eq!(refused(b().with_retry_attempts(0)), "retry_attempts");
    assert_eq!(refused(b().with_min_throughput(0)), "min_throughput");
    let instant = b().with_request_timeout(Duration::ZERO);
    assert_eq!(refused(instant), "request_timeout");
}

#[test]
fn default_is_valid_and_unchanged_by_the_builder() {
    assert_eq!(Options::builder().build().unwrap(), Options::default());
    assert_eq!(Options::default().seal_size, 8 * MIB);
}

fn b_parts(seal_size: usize, part_size: usize) -> Result<Options, Error> {
    (Options::builder().with_part_size(part_size))
        .with_seal_size(seal_size)
        .build()
}

#[test]
fn an_upload_of_the_largest_object_fits_in_10_000_parts() {
    // 9,999 parts of an object of seal_size + part_size - 1 bytes, and one for the short
    // end of the copied bytes.
    let largest = (MAX_PARTS as usize - 2) * MIN_PART + 1;
    let most = b_parts(largest, MIN_PART);
    assert!(most.is_ok(), "{most:?}");
    let more = b_parts(largest + 1, MIN_PART);
    assert!(matches!(
        more,
        Err(Error::InvalidOption {
            option: "seal_size",
            ..
        })
    ));
}

#[cfg(target_pointer_width = "64")]
#[test]
fn no_object_exceeds_5_tib() {
    // Parts of 1 GiB: 5 TiB takes 5,120 of them, so only the size limits.
    let part = 1 << 30;
    let largest = (MAX_OBJECT as usize) - part + 1;
    let most = b_parts(largest, part);
    assert!(most.is_ok(), "{most:?}");
    for seal in [largest + 1, MAX_OBJECT as usize, MAX_OBJECT as usize + 1] {
        let err = b_parts(seal, part).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidOption {
                option: "seal_size",
                ..
            }
        ));
    }
}
