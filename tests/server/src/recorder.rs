//! A server-side wrapper around `s3s-fs` that records every request, serializes writes, and
//! makes s3s-fs answer as S3 does where the tests depend on it:
//! - `x-amz-copy-source-if-match` on UploadPartCopy is checked (s3s-fs ignores it);
//! - an upload that does not exist is `404 NoSuchUpload` (s3s-fs says `403 AccessDenied`);
//! - optionally, ETags are opaque, as on SSE-KMS or SSE-C buckets: not the MD5 of the body.

use std::sync::{Arc, Mutex};

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

/// One request the server handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The S3 operation: `PutObject`, `GetObject`, `ListObjectsV2`, ...
    pub op: &'static str,
    /// The request path: `/bucket/key` (path-style).
    pub path: String,
    /// Whether the server applied it (answered with success).
    pub ok: bool,
}

/// The shared request log.
pub(crate) type Log = Arc<Mutex<Vec<Request>>>;

/// The multipart uploads created so far.
pub(crate) type Uploads = Arc<Mutex<Vec<Upload>>>;

/// A multipart upload the server created.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) id: String,
    /// Neither completed nor aborted.
    pub(crate) open: bool,
}

pub(crate) struct Recorder {
    pub(crate) inner: s3s_fs::FileSystem,
    /// The directory s3s-fs serves.
    pub(crate) root: std::path::PathBuf,
    pub(crate) log: Log,
    pub(crate) uploads: Uploads,
    /// s3s-fs checks conditions then writes: one write at a time makes conditional PUTs atomic.
    pub(crate) writes: tokio::sync::Mutex<()>,
    /// Every ETag the server sends is turned into an opaque one, and back where a request
    /// carries one.
    pub(crate) opaque_etags: bool,
}

impl Recorder {
    fn record(&self, op: &'static str, path: String, ok: bool) {
        let request = Request { op, path, ok };
        self.log.lock().expect("request log").push(request);
    }
}

/// An opaque ETag for `etag`, and back: every hex digit `d` becomes `15 - d`. The result is
/// still 32 hex digits (and `-N` for multipart objects), so a client that takes an ETag for
/// the MD5 of the body is wrong about every one of them.
fn flip(etag: &str) -> String {
    etag.chars()
        .map(|c| match c.to_digit(16) {
            Some(d) => char::from_digit(15 - d, 16).unwrap_or(c),
            None => c,
        })
        .collect()
}

fn flip_etag(etag: &mut Option<ETag>) {
    if let Some(ETag::Strong(value) | ETag::Weak(value)) = etag {
        *value = flip(value);
    }
}

fn flip_condition(condition: &mut Option<ETagCondition>) {
    if let Some(ETagCondition::ETag(ETag::Strong(value) | ETag::Weak(value))) = condition {
        *value = flip(value);
    }
}

/// The ETags a request or an answer carries, which [`flip`] makes opaque.
trait Etags {
    fn flip_etags(&mut self) {}
}

macro_rules! no_etags {
    ($($ty:ty),*) => { $(impl Etags for $ty {})* };
}

no_etags!(
    CreateBucketInput,
    CreateBucketOutput,
    DeleteObjectInput,
    DeleteObjectOutput,
    CreateMultipartUploadInput,
    CreateMultipartUploadOutput,
    AbortMultipartUploadInput,
    AbortMultipartUploadOutput,
    UploadPartInput,
    HeadBucketInput,
    HeadBucketOutput,
    ListObjectsInput,
    ListObjectsV2Input,
    ListMultipartUploadsInput,
    ListMultipartUploadsOutput
);

impl Etags for PutObjectInput {
    fn flip_etags(&mut self) {
        flip_condition(&mut self.if_match);
        flip_condition(&mut self.if_none_match);
    }
}

impl Etags for PutObjectOutput {
    fn flip_etags(&mut self) {
        flip_etag(&mut self.e_tag);
    }
}

impl Etags for CompleteMultipartUploadInput {
    fn flip_etags(&mut self) {
        flip_condition(&mut self.if_match);
        let parts = self
            .multipart_upload
            .as_mut()
            .and_then(|u| u.parts.as_mut());
        for part in parts.into_iter().flatten() {
            flip_etag(&mut part.e_tag);
        }
    }
}

impl Etags for CompleteMultipartUploadOutput {
    fn flip_etags(&mut self) {
        flip_etag(&mut self.e_tag);
    }
}

impl Etags for UploadPartOutput {
    fn flip_etags(&mut self) {
        flip_etag(&mut self.e_tag);
    }
}

impl Etags for UploadPartCopyInput {
    fn flip_etags(&mut self) {
        flip_condition(&mut self.copy_source_if_match);
    }
}

impl Etags for UploadPartCopyOutput {
    fn flip_etags(&mut self) {
        if let Some(result) = &mut self.copy_part_result {
            flip_etag(&mut result.e_tag);
        }
    }
}

impl Etags for HeadObjectInput {
    fn flip_etags(&mut self) {
        flip_condition(&mut self.if_match);
        flip_condition(&mut self.if_none_match);
    }
}

impl Etags for HeadObjectOutput {
    fn flip_etags(&mut self) {
        flip_etag(&mut self.e_tag);
    }
}

impl Etags for GetObjectInput {
    fn flip_etags(&mut self) {
        flip_condition(&mut self.if_match);
        flip_condition(&mut self.if_none_match);
    }
}

impl Etags for GetObjectOutput {
    fn flip_etags(&mut self) {
        flip_etag(&mut self.e_tag);
    }
}

impl Etags for ListObjectsOutput {
    fn flip_etags(&mut self) {
        for object in self.contents.iter_mut().flatten() {
            flip_etag(&mut object.e_tag);
        }
    }
}

impl Etags for ListObjectsV2Output {
    fn flip_etags(&mut self) {
        for object in self.contents.iter_mut().flatten() {
            flip_etag(&mut object.e_tag);
        }
    }
}

/// Delegates each listed operation to s3s-fs and records it with its outcome; `write` ones are
/// serialized.
macro_rules! delegate {
    ($($kind:ident $method:ident($input:ty) -> $output:ty as $op:literal;)*) => {
        #[async_trait::async_trait]
        impl S3 for Recorder {
            $(
                async fn $method(&self, mut req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    let path = req.uri.path().to_owned();
                    let _serialized = delegate!(@guard $kind self);
                    if self.opaque_etags {
                        req.input.flip_etags();
                    }
                    let result = delegate!(@call $method self req);
                    let result = result.map(|mut response| {
                        if self.opaque_etags {
                            response.output.flip_etags();
                        }
                        response
                    });
                    let result = delegate!(@after $method self path result);
                    self.record($op, path, result.is_ok());
                    result
                }
            )*
        }
    };
    (@guard write $self:ident) => { Some($self.writes.lock().await) };
    (@guard read $self:ident) => { None::<()> };
    (@call upload_part_copy $self:ident $req:ident) => { $self.copy_part($req).await };
    (@call complete_multipart_upload $self:ident $req:ident) => { $self.complete($req).await };
    (@call abort_multipart_upload $self:ident $req:ident) => { $self.abort($req).await };
    (@call list_multipart_uploads $self:ident $req:ident) => { $self.list_uploads($req) };
    (@call $method:ident $self:ident $req:ident) => { $self.inner.$method($req).await };
    (@after create_multipart_upload $self:ident $path:ident $result:ident) => {{
        if let Ok(response) = &$result
            && let (Some(bucket), Some(key), Some(id)) =
                (&response.output.bucket, &response.output.key, &response.output.upload_id)
        {
            let upload = Upload {
                bucket: bucket.clone(),
                key: key.clone(),
                id: id.clone(),
                open: true,
            };
            $self.uploads.lock().expect("uploads").push(upload);
        }
        $result
    }};
    (@after upload_part $self:ident $path:ident $result:ident) => { no_such_upload($result) };
    (@after upload_part_copy $self:ident $path:ident $result:ident) => { no_such_upload($result) };
    (@after complete_multipart_upload $self:ident $path:ident $result:ident) => { no_such_upload($result) };
    (@after abort_multipart_upload $self:ident $path:ident $result:ident) => { no_such_upload($result) };
    (@after $method:ident $self:ident $path:ident $result:ident) => { $result };
}

/// s3s-fs answers a request on an upload it does not know with `AccessDenied` (the tests sign
/// every request right): S3 says `NoSuchUpload`.
fn no_such_upload<T>(result: S3Result<T>) -> S3Result<T> {
    result.map_err(|err| match err.code() {
        S3ErrorCode::AccessDenied => s3_error!(NoSuchUpload),
        _ => err,
    })
}

impl Recorder {
    /// CompleteMultipartUpload, with the answer s3s-fs defers to a future (to send keep-alive
    /// bytes meanwhile) taken at once, so that its ETag can be made opaque like the others.
    async fn complete(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let mut response = self.inner.complete_multipart_upload(req).await?;
        if let Some(future) = response.output.future.take() {
            response.output = future.await?;
        }
        crate::stale_checksums::forget(&self.root, &bucket, &key)
            .map_err(S3Error::internal_error)?;
        self.close_upload(&id);
        Ok(response)
    }

    async fn abort(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let id = req.input.upload_id.clone();
        let response = self.inner.abort_multipart_upload(req).await?;
        self.close_upload(&id);
        Ok(response)
    }

    fn close_upload(&self, id: &str) {
        let mut uploads = self.uploads.lock().expect("uploads");
        for upload in uploads.iter_mut().filter(|u| u.id == id) {
            upload.open = false;
        }
    }

    /// ListMultipartUploads, which s3s-fs lacks (501): the uploads this server created and
    /// that are still open, in one page.
    fn list_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let uploads = self.uploads.lock().expect("uploads");
        let listed = (uploads.iter())
            .filter(|u| u.open && u.bucket == input.bucket && u.key.starts_with(&prefix))
            .map(|u| MultipartUpload {
                key: Some(u.key.clone()),
                upload_id: Some(u.id.clone()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            is_truncated: Some(false),
            uploads: Some(listed),
            ..Default::default()
        }))
    }

    /// UploadPartCopy with `x-amz-copy-source-if-match` checked against the source's ETag
    /// first (serialized with the writes, so that nothing changes the source in between).
    async fn copy_part(
        &self,
        mut req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        if let Some(ETagCondition::ETag(expected)) = req.input.copy_source_if_match.take() {
            let CopySource::Bucket { bucket, key, .. } = &req.input.copy_source else {
                return Err(s3_error!(NotImplemented));
            };
            let head = HeadObjectInput::builder()
                .bucket(bucket.to_string())
                .key(key.to_string())
                .build()
                .map_err(|_| s3_error!(InvalidRequest))?;
            let head = S3Request {
                input: head,
                method: http::Method::HEAD,
                uri: req.uri.clone(),
                headers: Default::default(),
                extensions: Default::default(),
                credentials: req.credentials.clone(),
                region: req.region.clone(),
                service: req.service.clone(),
                trailing_headers: None,
            };
            let found = self.inner.head_object(head).await?.output.e_tag;
            if !found.is_some_and(|found| expected.strong_cmp(&found)) {
                return Err(S3Error::new(S3ErrorCode::PreconditionFailed));
            }
        }
        self.inner.upload_part_copy(req).await
    }
}

delegate! {
    write create_bucket(CreateBucketInput) -> CreateBucketOutput as "CreateBucket";
    write put_object(PutObjectInput) -> PutObjectOutput as "PutObject";
    write delete_object(DeleteObjectInput) -> DeleteObjectOutput as "DeleteObject";
    // Complete checks its conditions, then writes: serialized with PUT, like PUT. Parts are
    // written to files of their own, which nothing else touches, so they run in parallel.
    write create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput as "CreateMultipartUpload";
    write complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput as "CompleteMultipartUpload";
    write abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput as "AbortMultipartUpload";
    read upload_part(UploadPartInput) -> UploadPartOutput as "UploadPart";
    // Its source condition is checked before the copy: serialized like a write.
    write upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput as "UploadPartCopy";
    read head_bucket(HeadBucketInput) -> HeadBucketOutput as "HeadBucket";
    read head_object(HeadObjectInput) -> HeadObjectOutput as "HeadObject";
    read get_object(GetObjectInput) -> GetObjectOutput as "GetObject";
    read list_objects(ListObjectsInput) -> ListObjectsOutput as "ListObjects";
    read list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output as "ListObjectsV2";
    read list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput as "ListMultipartUploads";
}
