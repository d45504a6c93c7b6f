//! Request bodies whose digests are checked as they stream into s3s-fs. s3s-fs stores a body as
//! it reads it, and drops it when the body ends in an error instead: so a body whose digests
//! differ from what its request says never replaces an object or a part. s3s-fs alone checks a
//! PUT's digests only once it has stored the body (it answers `BadDigest` with the object
//! replaced), and a part's not at all.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_core::Stream;
use s3s::StdError;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{Checksum, StreamingBlob};
use s3s::stream::{ByteStream, RemainingLength};

/// The digests a request gives of its body, as their headers carry them (base64).
#[derive(Debug, Default)]
pub(crate) struct Digests {
    pub(crate) content_md5: Option<String>,
    pub(crate) checksums: Checksum,
}

/// A body's digest that differs from what its request says: the header that says it.
#[derive(Debug)]
pub(crate) struct Mismatch(&'static str);

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "The body does not match its {}.", self.0)
    }
}

impl std::error::Error for Mismatch {}

/// Makes `body` one that checks `expected` as it streams, and computes its CRC32C too if
/// `crc32c`. Returns where its checksums will be once it has been read whole and matched.
pub(crate) fn check(
    body: &mut Option<StreamingBlob>,
    expected: Digests,
    crc32c: bool,
) -> Arc<OnceLock<Checksum>> {
    let computed = Arc::new(OnceLock::new());
    if let Some(inner) = body.take() {
        let given = &expected.checksums;
        let hasher = ChecksumHasher {
            crc32: given.checksum_crc32.is_some().then(Default::default),
            crc32c: (crc32c || given.checksum_crc32c.is_some()).then(Default::default),
            sha1: given.checksum_sha1.is_some().then(Default::default),
            sha256: given.checksum_sha256.is_some().then(Default::default),
            crc64nvme: given.checksum_crc64nvme.is_some().then(Default::default),
        };
        let md5 = expected.content_md5.is_some().then(Md5::new);
        *body = Some(StreamingBlob::new(Checked {
            inner,
            hashers: Some((hasher, md5)),
            expected,
            computed: computed.clone(),
        }));
    }
    computed
}

struct Checked {
    inner: StreamingBlob,
    /// `None` once the body has ended.
    hashers: Option<(ChecksumHasher, Option<Md5>)>,
    expected: Digests,
    computed: Arc<OnceLock<Checksum>>,
}

impl Checked {
    /// Compares the whole body's digests with those expected.
    fn finish(&mut self) -> Result<(), Mismatch> {
        let Some((hasher, md5)) = self.hashers.take() else {
            return Ok(());
        };
        let got = hasher.finalize();
        let expected = &self.expected;
        if let (Some(expected), Some(md5)) = (&expected.content_md5, md5)
            && STANDARD.decode(expected).ok().as_deref() != Some(&md5.finalize()[..])
        {
            return Err(Mismatch("Content-MD5"));
        }
        let given = &expected.checksums;
        let pairs = [
            (
                "x-amz-checksum-crc32",
                &given.checksum_crc32,
                &got.checksum_crc32,
            ),
            (
                "x-amz-checksum-crc32c",
                &given.checksum_crc32c,
                &got.checksum_crc32c,
            ),
            (
                "x-amz-checksum-sha1",
                &given.checksum_sha1,
                &got.checksum_sha1,
            ),
            (
                "x-amz-checksum-sha256",
                &given.checksum_sha256,
                &got.checksum_sha256,
            ),
            (
                "x-amz-checksum-crc64nvme",
                &given.checksum_crc64nvme,
                &got.checksum_crc64nvme,
            ),
        ];
        if let Some((header, ..)) = pairs
            .iter()
            .find(|(_, given, got)| given.is_some() && given != got)
        {
            return Err(Mismatch(header));
        }
        let _ = self.computed.set(got);
        Ok(())
    }
}

impl Stream for Checked {
    type Item = Result<Bytes, StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some((hasher, md5)) = &mut this.hashers {
                    hasher.update(&bytes);
                    if let Some(md5) = md5 {
                        md5.update(&bytes);
                    }
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(None) => match this.finish() {
                Ok(()) => Poll::Ready(None),
                Err(mismatch) => Poll::Ready(Some(Err(Box::new(mismatch)))),
            },
            other => other,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ByteStream for Checked {
    fn remaining_length(&self) -> RemainingLength {
        self.inner.remaining_length()
    }
}
