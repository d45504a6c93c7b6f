//! CRC-64/NVME checksums as S3's headers carry them (`x-amz-checksum-crc64nvme`): the base64 of
//! the CRC's 8 bytes, big-endian.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;

/// The value of `x-amz-checksum-crc64nvme` for `bytes`: the base64 of their CRC-64/NVME, 8
/// bytes big-endian.
pub fn crc64nvme(bytes: &[u8]) -> String {
    encode(of(bytes))
}

/// The CRC-64/NVME of `bytes`.
pub(crate) fn of(bytes: &[u8]) -> u64 {
    crc_fast::checksum(CrcAlgorithm::Crc64Nvme, bytes)
}

/// The header value of a CRC-64/NVME.
pub(crate) fn encode(crc: u64) -> String {
    STANDARD.encode(crc.to_be_bytes())
}

/// The CRC-64/NVME a header value carries, if it is one.
pub(crate) fn decode(value: &str) -> Option<u64> {
    let bytes = STANDARD.decode(value).ok()?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// A CRC-64/NVME computed piece by piece.
pub(crate) fn digest() -> crc_fast::Digest {
    crc_fast::Digest::new(CrcAlgorithm::Crc64Nvme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_value_encodes_big_endian() {
        // CRC-64/NVME's check value, of "123456789".
        let check = 0xae8b_1486_0a79_9888;
        assert_eq!(crc64nvme(b"123456789"), encode(check));
        assert_eq!(STANDARD.decode(encode(check)).unwrap(), check.to_be_bytes());
        assert_eq!(decode(&encode(check)), Some(check));
        assert_eq!(decode("not base64"), None);
        assert_eq!(decode(&STANDARD.encode([1, 2, 3, 4])), None);
    }
}
