//! `PutObject` with a write offset on a directory bucket: an append (see `crate::express`).

use s3s::dto::*;
use s3s::{S3, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{Checksums, Recorder, derived};
use crate::checksum;

impl Recorder {
    /// Checks the append against the object as it is (serialized with every write, so that
    /// nothing changes it in between), then writes the object anew with its bytes and the
    /// appended ones, its metadata (that of its creation) and a full-object CRC32C of the
    /// whole. Offset 0 on a missing key creates the object as a PUT does.
    pub(super) async fn append(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let head = HeadObjectInput {
            bucket: bucket.clone(),
            key: key.clone(),
            ..Default::default()
        };
        let found = match self
            .inner
            .head_object(derived(&req, head, http::Method::HEAD))
            .await
        {
            Ok(found) => Some(found.output),
            Err(err) if matches!(err.code(), S3ErrorCode::NoSuchKey) => None,
            Err(err) => return Err(err),
        };
        let size = (found.as_ref())
            .and_then(|f| f.content_length)
            .and_then(|n| u64::try_from(n).ok());
        let e_tag = found.as_ref().and_then(|f| f.e_tag.as_ref());
        let body = self.express.check_append(&mut req, size, e_tag).await?;
        let mut bytes = match found {
            None => Vec::new(),
            // s3s-fs keeps object `key` of bucket `b` in the file `<root>/<b>/<key>`.
            Some(_) => tokio::fs::read(self.root.join(&bucket).join(&key))
                .await
                .map_err(s3s::S3Error::internal_error)?,
        };
        bytes.extend_from_slice(&body);
        let mut input = PutObjectInput {
            bucket: bucket.clone(),
            key: key.clone(),
            content_length: Some(bytes.len() as i64),
            checksum_crc32c: Some(checksum::encode(checksum::of(&bytes))),
            body: Some(StreamingBlob::from(s3s::Body::from(bytes))),
            ..Default::default()
        };
        input.metadata = match found {
            Some(found) => found.metadata,
            None => req.input.metadata.take(),
        };
        let mut response = (self.inner)
            .put_object(derived(&req, input, http::Method::PUT))
            .await?;
        let output = &mut response.output;
        let checksums = output.take_checksums();
        output.set_checksums(checksums);
        match size {
            None => self.express.created(&bucket, &key),
            Some(_) => self.express.appended(&bucket, &key),
        }
        Ok(response)
    }
}
