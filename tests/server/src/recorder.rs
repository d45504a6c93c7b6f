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
    fn record<T>(&self, op: &'static str, req: &S3Request<T>) {
        let path = req.uri.path().to_owned();
        self.log
            .lock()
            .expect("request log")
            .push(Request { op, path });
    }
}

/// Delegates each listed operation to s3s-fs, recording it first; `write` ones are serialized.
macro_rules! delegate {
    ($($kind:ident $method:ident($input:ty) -> $output:ty as $op:literal;)*) => {
        #[async_trait::async_trait]
        impl S3 for Recorder {
            $(
                async fn $method(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.record($op, &req);
                    let _serialized = delegate!(@guard $kind self);
                    self.inner.$method(req).await
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
    read head_bucket(HeadBucketInput) -> HeadBucketOutput as "HeadBucket";
    read head_object(HeadObjectInput) -> HeadObjectOutput as "HeadObject";
    read get_object(GetObjectInput) -> GetObjectOutput as "GetObject";
    read list_objects(ListObjectsInput) -> ListObjectsOutput as "ListObjects";
    read list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output as "ListObjectsV2";
}
