//! Whole-object CRC32C checksums: sent with every body so that the server refuses bytes
//! damaged on the way, declared for every multipart upload as one checksum of the whole object
//! (`FULL_OBJECT`), and compared with what the server stores when an object is read whole.
//!
//! CRC32C rather than CRC64/NVME: the CPU computes it with an instruction of its own (SSE 4.2
//! on x86-64, the CRC extension on ARMv8), twice as fast here as CRC64/NVME's carry-less
//! multiply, which goes faster only with AVX-512. A checked read costs a CRC of every byte,
//! so that is the difference between 1.08-1.11x and 1.09-1.19x the CPU of an unchecked one
//! (`benches/cpu.sh`; the runs are in `docs/performance.md`). S3 keeps a CRC32C of the whole
//! object for a multipart upload declared `FULL_OBJECT`, as this one always is. What CRC64/NVME
//! would have bought: S3 keeps it only as a full-object checksum, so no server could hand out a
//! composite one under its name (here a value marked composite, by its type or the `-N` part
//! count, is never compared), and 64 bits instead of 32, far below a stream's other risks. A
//! CRC of a concatenation is computed from the CRCs of its pieces ([`Crc::then`]), so an append
//! by copy never rereads what S3 holds.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

pub(crate) use crate::store::{Crc, Running};

/// The header that carries an object's or a part's CRC32C, base64 of its 4 bytes, big endian.
pub(crate) const CRC_HEADER: &str = "x-amz-checksum-crc32c";
/// The algorithm's name in S3's requests.
const ALGORITHM: &str = "CRC32C";
/// The element that carries a part's CRC32C in the XML of S3's requests and answers.
pub(crate) const CRC_ELEMENT: &str = "ChecksumCRC32C";
/// Whether a stored checksum covers the whole object (`FULL_OBJECT`) or is made of its parts'
/// (`COMPOSITE`): only the first can be checked against the bytes of the object.
pub(crate) const TYPE_HEADER: &str = "x-amz-checksum-type";
/// Asks a GET or HEAD for the stored checksum.
pub(crate) const MODE_HEADER: &str = "x-amz-checksum-mode";

/// How many objects' checksums a handle remembers: the tail it writes, and the one before
/// while its upload completes.
const REMEMBERED: usize = 4;

/// How S3's requests and answers carry a CRC.
impl Crc {
    /// Base64 of the big-endian bytes, as S3's headers carry it.
    pub(crate) fn encoded(self) -> String {
        STANDARD.encode(self.value.to_be_bytes())
    }

    /// Adds the checksum header of a body (a PUT's or a part's) to `headers`, with the
    /// algorithm's name as the AWS SDKs send it (moto stores the value only then).
    pub(crate) fn add_to(self, headers: &mut HeaderMap) {
        self.add_value(headers);
        headers.insert(
            HeaderName::from_static("x-amz-sdk-checksum-algorithm"),
            HeaderValue::from_static(ALGORITHM),
        );
    }

    fn add_value(self, headers: &mut HeaderMap) {
        // Base64 is always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&self.encoded()) {
            headers.insert(HeaderName::from_static(CRC_HEADER), value);
        }
    }
}

/// The full-object CRC32C of an object of `len` bytes, from an answer's checksum and checksum
/// type headers: `None` when the server stores none, or a composite one (`COMPOSITE`, or the
/// `-N` suffix that counts its parts), or a value of another length: unknown, not a mismatch.
pub(crate) fn stored(crc: Option<&str>, kind: Option<&str>, len: u64) -> Option<Crc> {
    if kind.is_some_and(|kind| !kind.eq_ignore_ascii_case("FULL_OBJECT")) {
        return None;
    }
    let bytes = STANDARD.decode(crc?.trim()).ok()?;
    let value = u32::from_be_bytes(bytes.try_into().ok()?);
    Some(Crc { value, len })
}

/// The headers that create a multipart upload whose object gets one CRC32C of its whole bytes,
/// which the server checks at Complete.
pub(crate) fn declare_full_object(headers: &mut HeaderMap) {
    headers.insert(
        HeaderName::from_static("x-amz-checksum-algorithm"),
        HeaderValue::from_static(ALGORITHM),
    );
    headers.insert(
        HeaderName::from_static(TYPE_HEADER),
        HeaderValue::from_static("FULL_OBJECT"),
    );
}

/// The checksum of the whole object, for Complete: with the type, as S3 wants it.
pub(crate) fn add_full_object(crc: Crc, headers: &mut HeaderMap) {
    crc.add_value(headers);
    headers.insert(
        HeaderName::from_static(TYPE_HEADER),
        HeaderValue::from_static("FULL_OBJECT"),
    );
}

/// The checksums of the last few object versions a handle wrote or saw, by key and ETag: an
/// append by copy takes the copied bytes' CRC from here instead of reading them back.
#[derive(Debug, Default)]
pub(crate) struct Known {
    versions: Mutex<VecDeque<(String, String, Crc)>>,
}

impl Known {
    pub(crate) fn remember(&self, key: &str, etag: &str, crc: Crc) {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions.retain(|(k, _, _)| k != key);
        if versions.len() == REMEMBERED {
            versions.pop_front();
        }
        versions.push_back((key.to_owned(), etag.to_owned(), crc));
    }

    /// The CRC of version `etag` of `key`, if it is known and `len` bytes long.
    pub(crate) fn of(&self, key: &str, etag: &str, len: u64) -> Option<Crc> {
        let versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        (versions.iter())
            .find(|(k, e, crc)| k == key && e == etag && crc.len == len)
            .map(|&(_, _, crc)| crc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crc_is_encoded_as_s3_headers_carry_it() {
        assert_eq!(Crc::of(b"123456789").encoded(), "4waSgw==");
    }

    #[test]
    fn a_stored_checksum_is_read_only_when_it_covers_the_whole_object() {
        let crc = Crc::of(b"123456789");
        let sent = crc.encoded();
        assert_eq!(stored(Some(&sent), None, 9), Some(crc));
        assert_eq!(stored(Some(&sent), Some("FULL_OBJECT"), 9), Some(crc));
        assert_eq!(stored(Some(&sent), Some("COMPOSITE"), 9), None);
        // A CRC64/NVME, 8 bytes.
        assert_eq!(stored(Some("rosUhgp5mIg="), None, 9), None);
        assert_eq!(stored(Some("not base64!"), None, 9), None);
        assert_eq!(stored(None, None, 9), None);
    }

    #[test]
    fn known_versions_are_found_by_key_etag_and_length_and_few_are_kept() {
        let known = Known::default();
        let crc = Crc::of(b"abc");
        known.remember("k", "\"e1\"", crc);
        assert_eq!(known.of("k", "\"e1\"", 3), Some(crc));
        assert_eq!(known.of("k", "\"e1\"", 2), None);
        assert_eq!(known.of("k", "\"e2\"", 3), None);
        known.remember("k", "\"e2\"", crc);
        assert_eq!(known.of("k", "\"e1\"", 3), None, "one version per key");
        for i in 0..REMEMBERED {
            known.remember(&format!("other{i}"), "\"e\"", crc);
        }
        assert_eq!(known.of("k", "\"e2\"", 3), None, "the oldest is forgotten");
    }
}
