//! What every object records in its user metadata, and how it is read back: the layout that
//! lets offsets survive trims, lost answers be settled by identity, and followers tell a
//! sealed object from one that may grow.

use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::S3Client;
use super::wire::Answer;
use crate::store::Meta;

/// The user metadata in which every object records the stream offset of its first byte, as a
/// decimal: offsets then survive the deletion of older objects.
pub(crate) const START_HEADER: &str = "x-amz-meta-s3syncr-start";

/// The user metadata in which every object names the handle that wrote it last: a random
/// identifier per [`S3Client`]. A write whose answer was lost is settled by it (a HEAD), not by
/// comparing ETags with an MD5, which SSE-KMS and SSE-C objects do not have.
pub(crate) const WRITER_HEADER: &str = "x-amz-meta-s3syncr-writer";

/// The user metadata in which every object records the size at which its writer seals it (the
/// writer's [`Options::seal_size`](crate::Options::seal_size)): a follower knows from an object's size whether
/// it can still grow, whatever its own seal size.
pub(crate) const SEAL_HEADER: &str = "x-amz-meta-s3syncr-seal";

impl S3Client {
    /// The metadata every object a writer creates carries: `meta` and this handle.
    pub(crate) fn identity(&self, meta: Meta) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(START_HEADER),
            HeaderValue::from(meta.start),
        );
        headers.insert(
            HeaderName::from_static(SEAL_HEADER),
            HeaderValue::from(meta.seal),
        );
        // A random hex identifier is always a valid header value.
        if let Ok(writer) = HeaderValue::from_str(&self.writer) {
            headers.insert(HeaderName::from_static(WRITER_HEADER), writer);
        }
        headers
    }
}

/// The offset or size an object records in metadata `header`, as `answer` carries it. A value
/// that is no decimal number was not written by s3-syncr: it counts as none (a start is then
/// where the predecessor ends), with a warning.
pub(super) fn recorded_number(key: &str, answer: &Answer, header: &str) -> Option<u64> {
    let value = answer.header(header)?;
    let parsed = value.trim().parse().ok();
    if parsed.is_none() {
        log::warn!("{key}: ignoring {header} {value:?}: not a decimal number");
    }
    parsed
}
