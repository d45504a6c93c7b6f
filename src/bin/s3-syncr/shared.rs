//! A local store that any number of processes can serve at once: s3s-fs behind one lock per
//! store directory, taken by every request that writes, and failures that keep their cause.
//!
//! Each command runs its own s3s-fs over the same files, and three things in s3s-fs assume it is
//! alone: it names its temporary files `.tmp.<n>.internal.part` in the store's root with a
//! per-process counter (two processes write the same file, and each renames the other's bytes
//! into its own object, even across buckets); it deletes every such file when it starts (a
//! reader starting beside a writer deletes the writer's upload under way); and a conditional
//! write checks `If-None-Match`/`If-Match` and then writes (two writers both pass the check).
//! With the lock, the writes of all processes take turns: no two temporary files of one name
//! exist at once, the start-up clean-up never meets a live one, and a check and its write are
//! one step, so the library's fencing holds between processes as it does on S3. Reads take no
//! lock (s3s-fs renames finished files into place, so a reader sees a whole object or none).
//!
//! A lock around each request, rather than one server per directory (a daemon, its lifetime,
//! its crashes) or a lock held by each `append` for its whole run (a second `append` would wait
//! for a `journalctl -f` that never ends). The cost: writes to one store take turns, even
//! within one process.
//!
//! Reads report no checksums: s3s-fs writes an object's bytes and its checksums in two steps
//! (and keeps a PUT's checksums after a multipart upload replaced the object), so a reader
//! could meet the bytes of one version with the checksum of another and take them for
//! damaged. The store's objects are then read unchecked, as those of a server that keeps none.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use s3s_fs::FileSystem;

/// The lock file, in the store's root; a dot name is never a bucket.
const LOCK_FILE: &str = ".s3-syncr.lock";

/// The store-wide writers' lock: an advisory lock (`flock`) on a file in the store's root.
///
/// Every holder opens the file anew, so two requests of one process exclude each other too:
/// s3s-fs's counter would keep their temporary files apart, but a check and its write would not
/// be one step.
#[derive(Debug, Clone)]
pub struct StoreLock {
    path: PathBuf,
}

impl StoreLock {
    pub fn new(root: &Path) -> StoreLock {
        StoreLock {
            path: root.join(LOCK_FILE),
        }
    }

    /// Waits for the lock; it is held until the returned file is dropped.
    // The package's rust-version is the library's; the `cli` feature needs 1.92 (s3s).
    #[clippy::msrv = "1.92"]
    pub fn acquire(&self) -> io::Result<File> {
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            // A store the user may only read still has the lock file its writers made, and
            // `flock` needs no write access.
            .or_else(|err| File::open(&self.path).map_err(|_| err));
        let file = opened
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", self.path.display())))?;
        file.lock()?;
        Ok(file)
    }
}

/// s3s-fs with the writers' lock around each request that writes.
pub struct Shared {
    fs: Arc<FileSystem>,
    lock: StoreLock,
}

impl Shared {
    /// Serves the store in `root`. s3s-fs deletes leftover temporary files as it starts: under
    /// the lock, only those of processes that died writing.
    pub fn new(root: &Path) -> io::Result<Shared> {
        let lock = StoreLock::new(root);
        let held = lock.acquire()?;
        let fs = FileSystem::new(root).map_err(|err| io::Error::other(format!("{err:?}")))?;
        drop(held);
        Ok(Shared {
            fs: Arc::new(fs),
            lock,
        })
    }

    /// Runs `write` holding the lock, on a task of its own: a client that hangs up cancels the
    /// request's future, and the lock must outlive the temporary file that s3s-fs then removes.
    async fn locked<T: Send + 'static>(
        &self,
        write: impl Future<Output = S3Result<T>> + Send + 'static,
    ) -> S3Result<T> {
        let lock = self.lock.clone();
        let task = tokio::spawn(async move {
            let held = tokio::task::spawn_blocking(move || lock.acquire())
                .await
                .map_err(S3Error::internal_error)?
                .map_err(|err| with_cause(S3Error::internal_error(err)))?;
            let result = write.await;
            drop(held);
            result
        });
        task.await
            .map_err(S3Error::internal_error)?
            .map_err(with_cause)
    }
}

/// s3s-fs answers every failure of the file system with a bare `InternalError`, the cause only
/// in the error's source: the message carries it to the client (`Permission denied (os error
/// 13)`, `No space left on device (os error 28)`), and a denied permission is a 403, which no
/// retry can change.
fn with_cause(mut err: S3Error) -> S3Error {
    let cause = match (err.message(), err.source()) {
        (None, Some(source)) => Some((
            source.to_string(),
            source
                .downcast_ref::<io::Error>()
                .is_some_and(|io_err| io_err.kind() == io::ErrorKind::PermissionDenied),
        )),
        _ => None,
    };
    if let Some((message, denied)) = cause {
        err.set_message(message);
        if denied {
            err.set_code(S3ErrorCode::AccessDenied);
        }
    }
    err
}

/// Clears the checksums of a GET's or HEAD's answer (see the module's documentation).
macro_rules! forget_checksums {
    ($output:expr) => {{
        let o = &mut $output;
        (o.checksum_crc32, o.checksum_crc32c, o.checksum_crc64nvme) = (None, None, None);
        (o.checksum_sha1, o.checksum_sha256, o.checksum_type) = (None, None, None);
    }};
}

/// Implements [`S3`] for [`Shared`] by handing each operation to s3s-fs: reads as they are,
/// writes under the lock.
macro_rules! delegate {
    (reads { $($read:ident($read_in:ident) -> $read_out:ident;)* }
     writes { $($write:ident($write_in:ident) -> $write_out:ident;)* }) => {
        #[async_trait::async_trait]
        impl S3 for Shared {
            async fn get_object(
                &self,
                req: S3Request<GetObjectInput>,
            ) -> S3Result<S3Response<GetObjectOutput>> {
                let mut answer = self.fs.get_object(req).await.map_err(with_cause)?;
                forget_checksums!(answer.output);
                Ok(answer)
            }

            async fn head_object(
                &self,
                req: S3Request<HeadObjectInput>,
            ) -> S3Result<S3Response<HeadObjectOutput>> {
                let mut answer = self.fs.head_object(req).await.map_err(with_cause)?;
                forget_checksums!(answer.output);
                Ok(answer)
            }
            $(
                async fn $read(
                    &self,
                    req: S3Request<$read_in>,
                ) -> S3Result<S3Response<$read_out>> {
                    self.fs.$read(req).await.map_err(with_cause)
                }
            )*
            $(
                async fn $write(
                    &self,
                    req: S3Request<$write_in>,
                ) -> S3Result<S3Response<$write_out>> {
                    let fs = self.fs.clone();
                    self.locked(async move { fs.$write(req).await }).await
                }
            )*
        }
    };
}

delegate! {
    reads {
        get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
        head_bucket(HeadBucketInput) -> HeadBucketOutput;
        list_buckets(ListBucketsInput) -> ListBucketsOutput;
        list_objects(ListObjectsInput) -> ListObjectsOutput;
        list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
        list_parts(ListPartsInput) -> ListPartsOutput;
    }
    writes {
        create_bucket(CreateBucketInput) -> CreateBucketOutput;
        delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
        copy_object(CopyObjectInput) -> CopyObjectOutput;
        put_object(PutObjectInput) -> PutObjectOutput;
        delete_object(DeleteObjectInput) -> DeleteObjectOutput;
        delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
        create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
        upload_part(UploadPartInput) -> UploadPartOutput;
        upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
        complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
        abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
    }
}

#[cfg(test)]
#[clippy::msrv = "1.92"]
mod tests {
    use super::*;

    #[test]
    fn failures_name_their_cause() {
        let denied = with_cause(S3Error::internal_error(io::Error::from(
            io::ErrorKind::PermissionDenied,
        )));
        assert_eq!(*denied.code(), S3ErrorCode::AccessDenied);
        assert_eq!(denied.status_code().map(|s| s.as_u16()), Some(403));
        assert!(denied.message().is_some_and(|m| m.contains("denied")));

        let full = with_cause(S3Error::internal_error(io::Error::other(
            "No space left on device",
        )));
        assert_eq!(*full.code(), S3ErrorCode::InternalError);
        assert_eq!(full.message(), Some("No space left on device"));

        let said = S3Error::with_message(S3ErrorCode::NoSuchKey, "gone");
        assert_eq!(with_cause(said).message(), Some("gone"));
    }

    #[test]
    fn the_lock_excludes_other_holders() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StoreLock::new(dir.path());
        let held = lock.acquire().unwrap();
        let other = File::open(dir.path().join(LOCK_FILE)).unwrap();
        assert!(other.try_lock().is_err(), "a second holder got the lock");
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
