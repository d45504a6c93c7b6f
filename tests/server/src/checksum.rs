//! CRC32C checksums as S3's headers carry them (`x-amz-checksum-crc32c`): the base64 of the
//! CRC's 4 bytes, big-endian. Computed with crc-fast, as s3s computes its own, not with the
//! library's crate: the two check each other.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;

/// The value of `x-amz-checksum-crc32c` for `bytes`: the base64 of their CRC32C, 4 bytes
/// big-endian.
pub fn crc32c(bytes: &[u8]) -> String {
    encode(of(bytes))
}

/// The CRC32C of `bytes`.
pub(crate) fn of(bytes: &[u8]) -> u32 {
    // crc-fast gives every CRC as a `u64`; a CRC32C is its low 4 bytes.
    crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// The header value of a CRC32C.
pub(crate) fn encode(crc: u32) -> String {
    STANDARD.encode(crc.to_be_bytes())
}

/// The CRC32C a header value carries, if it is one.
pub(crate) fn decode(value: &str) -> Option<u32> {
    let bytes = STANDARD.decode(value).ok()?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// A CRC32C computed piece by piece.
pub(crate) fn digest() -> crc_fast::Digest {
    crc_fast::Digest::new(CrcAlgorithm::Crc32Iscsi)
}

/// The CRC32C of the bytes `digest` took in.
pub(crate) fn finish(digest: &crc_fast::Digest) -> u32 {
    digest.finalize() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_value_encodes_big_endian() {
        // CRC32C's check value, of "123456789".
        let check = 0xe306_9283;
        assert_eq!(of(b"123456789"), check);
        assert_eq!(crc32c(b"123456789"), encode(check));
        assert_eq!(STANDARD.decode(encode(check)).unwrap(), check.to_be_bytes());
        assert_eq!(decode(&encode(check)), Some(check));
        assert_eq!(decode("not base64"), None);
        assert_eq!(decode(&STANDARD.encode([1, 2, 3, 4, 5, 6, 7, 8])), None);
    }
}
