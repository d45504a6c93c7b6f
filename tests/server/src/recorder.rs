//! A server-side wrapper around `s3s-fs` that records every request and serializes writes.

use std::sync::{Arc, Mutex};

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

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

pub(crate) struct Recorder {
    pub(crate) inner: s3s_fs::FileSystem,
    pub(crate) log: Log,
    /// s3s-fs checks conditions then writes: one write at a time makes conditional PUTs atomic.
    pub(crate) writes: tokio::sync::Mutex<()>,
}

impl Recorder {
    fn record(&self, op: &'static str, path: String, ok: bool) {
        let request = Request { op, path, ok };
        self.log.lock().expect("request log").push(request);
    }
}

/// Delegates each listed operation to s3s-fs and records it with its outcome; `write` ones are
/// serialized.
macro_rules! delegate {
    ($($kind:ident $method:ident($input:ty) -> $output:ty as $op:literal;)*) => {
        #[async_trait::async_trait]
        impl S3 for Recorder {
            $(
                async fn $method(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    let path = req.uri.path().to_owned();
                    let _serialized = delegate!(@guard $kind self);
                    let result = self.inner.$method(req).await;
                    self.record($op, path, result.is_ok());
                    result
                }
            )*
        }
    };
    (@guard write $self:ident) => { Some($self.writes.lock().await) };
    (@guard read $self:ident) => { None::<()> };
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
    read upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput as "UploadPartCopy";
    read head_bucket(HeadBucketInput) -> HeadBucketOutput as "HeadBucket";
    read head_object(HeadObjectInput) -> HeadObjectOutput as "HeadObject";
    read get_object(GetObjectInput) -> GetObjectOutput as "GetObject";
    read list_objects(ListObjectsInput) -> ListObjectsOutput as "ListObjects";
    read list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output as "ListObjectsV2";
}
