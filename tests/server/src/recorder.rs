//! A server-side wrapper around `s3s-fs` that records every request, serializes writes, and
//! makes s3s-fs answer as S3 does where the tests depend on it:
//! - `x-amz-copy-source-if-match` on UploadPartCopy is checked (s3s-fs ignores it);
//! - an upload that does not exist is `404 NoSuchUpload` (s3s-fs says `403 AccessDenied`);
//! - optionally, ETags are opaque, as on SSE-KMS or SSE-C buckets: not the MD5 of the body;
//! - a multipart upload created with full-object CRC32C checksums (`x-amz-checksum-type:
//!   FULL_OBJECT`) has them checked (each part's, and the whole object's at Complete) and kept,
//!   as a PUT's are (s3s-fs ignores checksums on multipart uploads);
//! - HEAD and GET return checksums only when asked (`x-amz-checksum-mode: ENABLED`), with
//!   their type (`FULL_OBJECT`);
//! - a PUT's or a part's body that does not match its `Content-MD5` or `x-amz-checksum-*` is
//!   `400 BadDigest` and not stored (s3s-fs stores a PUT's before it checks, and checks no
//!   part's); one that does not match its signed SHA-256 is `400 XAmzContentSHA256Mismatch`
//!   (s3s-fs says `500 InternalError`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

mod append;

use crate::express::{self, Express};
use crate::{checked, checksum};

/// One request the server handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The S3 operation: `PutObject`, `GetObject`, `ListObjectsV2`, ...
    pub op: &'static str,
    /// The request path: `/bucket/key` (path-style).
    pub path: String,
    /// Whether the server applied it (answered with success).
    pub ok: bool,
    /// The bytes of its body, for a `PutObject` or `UploadPart`: what a client uploaded.
    pub bytes: u64,
}

/// The shared request log.
pub(crate) type Log = Arc<Mutex<Vec<Request>>>;

/// The multipart uploads created so far.
type Uploads = Mutex<Vec<Upload>>;

/// A multipart upload the server created.
#[derive(Debug, Clone)]
struct Upload {
    bucket: String,
    key: String,
    id: String,
    /// Neither completed nor aborted.
    open: bool,
    /// Created with full-object CRC32C checksums (a composite checksum is not kept).
    crc32c: bool,
}

/// The full-object CRC32C of an object a multipart upload made, and what the object was
/// then: s3s-fs keeps no checksum for such an object, so the server keeps it, for as long as
/// the object is still that one.
#[derive(Debug, Clone)]
struct Kept {
    crc32c: u32,
    size: u64,
    /// As s3s-fs has it, never opaque.
    e_tag: String,
}

pub(crate) struct Recorder {
    inner: s3s_fs::FileSystem,
    /// s3s-fs's root, where it keeps the parts of uploads.
    root: PathBuf,
    log: Log,
    uploads: Uploads,
    /// By bucket and key.
    kept: Mutex<HashMap<(String, String), Kept>>,
    /// s3s-fs checks conditions then writes: one write at a time makes conditional PUTs atomic.
    /// It also writes an object's bytes and its metadata (ETag, checksums) in two steps: reads
    /// share the lock, so that none sees the bytes of one version with the checksum of another,
    /// which S3 never shows.
    writes: tokio::sync::RwLock<()>,
    /// Every ETag the server sends is turned into an opaque one, and back where a request
    /// carries one.
    opaque_etags: bool,
    /// Directory buckets: appends and sessions.
    pub(crate) express: Arc<Express>,
}

impl Recorder {
    /// Serves `root` (see [`crate::Server::start_in`]), recording into `log`.
    pub(crate) fn new(
        root: &Path,
        log: Log,
        opaque_etags: bool,
        express: Arc<Express>,
    ) -> Recorder {
        Recorder {
            inner: s3s_fs::FileSystem::new(root).expect("s3s-fs root"),
            // As s3s-fs resolves it.
            root: root.canonicalize().expect("s3s-fs root"),
            log,
            uploads: Uploads::default(),
            kept: Mutex::default(),
            writes: tokio::sync::RwLock::new(()),
            opaque_etags,
            express,
        }
    }

    fn record(&self, op: &'static str, path: String, ok: bool, bytes: u64) {
        let bytes = match op {
            "PutObject" | "UploadPart" => bytes,
            _ => 0,
        };
        let request = Request {
            op,
            path,
            ok,
            bytes,
        };
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
    ListMultipartUploadsOutput,
    CreateSessionInput,
    CreateSessionOutput
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

/// What the server serves: a [`Recorder`] whose every request runs to its end on a task of its
/// own, as S3 finishes a request it has received whatever the client does next. hyper drops a
/// request's future when its client hangs up, and s3s-fs writes an object's bytes, then its
/// metadata (ETag, checksums): cancelled in between, the object would keep the bytes of one
/// version with the checksum of another (a writer killed at the wrong moment did this).
pub(crate) struct Served(pub(crate) Arc<Recorder>);

/// Delegates each listed operation to s3s-fs and records it with its outcome; `write` ones are
/// serialized.
macro_rules! delegate {
    ($($kind:ident $method:ident($input:ty) -> $output:ty as $op:literal;)*) => {
        #[async_trait::async_trait]
        impl S3 for Served {
            $(
                async fn $method(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    let recorder = self.0.clone();
                    tokio::spawn(async move { recorder.$method(req).await })
                        .await
                        .map_err(S3Error::internal_error)?
                }
            )*
        }

        impl Recorder {
            $(
                async fn $method(&self, mut req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    let path = req.uri.path().to_owned();
                    let bytes = (req.headers.get("content-length"))
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(0);
                    let _serialized = delegate!(@guard $kind self);
                    if self.opaque_etags {
                        req.input.flip_etags();
                    }
                    let result = match self.express.authorize($op, &req) {
                        Ok(()) => delegate!(@call $method self req).map_err(refused_body),
                        Err(err) => Err(err),
                    };
                    let result = result.map(|mut response| {
                        if self.opaque_etags {
                            response.output.flip_etags();
                        }
                        response
                    });
                    let result = delegate!(@after $method result);
                    self.record($op, path, result.is_ok(), bytes);
                    result
                }
            )*
        }
    };
    (@guard write $self:ident) => { Some($self.writes.write().await) };
    (@guard read $self:ident) => { Some($self.writes.read().await) };
    (@guard part $self:ident) => { None::<()> };
    (@call put_object $self:ident $req:ident) => { $self.put($req).await };
    (@call create_multipart_upload $self:ident $req:ident) => { $self.create($req).await };
    (@call upload_part $self:ident $req:ident) => { $self.part($req).await };
    (@call upload_part_copy $self:ident $req:ident) => { $self.copy_part($req).await };
    (@call complete_multipart_upload $self:ident $req:ident) => { $self.complete($req).await };
    (@call abort_multipart_upload $self:ident $req:ident) => { $self.abort($req).await };
    (@call list_multipart_uploads $self:ident $req:ident) => { $self.list_uploads($req) };
    (@call head_object $self:ident $req:ident) => { $self.head($req).await };
    (@call get_object $self:ident $req:ident) => { $self.get($req).await };
    (@call create_session $self:ident $req:ident) => { $self.express.create_session(&$req) };
    (@call list_objects_v2 $self:ident $req:ident) => {
        match express::refuses_listing(&$req.input) {
            Some(err) => Err(err),
            None => $self.inner.list_objects_v2($req).await,
        }
    };
    (@call $method:ident $self:ident $req:ident) => { $self.inner.$method($req).await };
    (@after upload_part $result:ident) => { no_such_upload($result) };
    (@after upload_part_copy $result:ident) => { no_such_upload($result) };
    (@after complete_multipart_upload $result:ident) => { no_such_upload($result) };
    (@after abort_multipart_upload $result:ident) => { no_such_upload($result) };
    (@after $method:ident $result:ident) => { $result };
}

/// s3s-fs answers a request on an upload it does not know with `AccessDenied` (the tests sign
/// every request right): S3 says `NoSuchUpload`.
fn no_such_upload<T>(result: S3Result<T>) -> S3Result<T> {
    result.map_err(|err| match err.code() {
        S3ErrorCode::AccessDenied => s3_error!(NoSuchUpload),
        _ => err,
    })
}

/// s3s-fs answers a body it could not read whole with `500 InternalError`. S3 answers one that
/// does not match the SHA-256 its request signed (`x-amz-content-sha256`) with
/// `400 XAmzContentSHA256Mismatch` (only the text of s3s's error tells that one), and one that
/// does not match its digests ([`checked::Mismatch`]) with `400 BadDigest`.
fn refused_body(err: S3Error) -> S3Error {
    let source = match err.source() {
        Some(source) if matches!(err.code(), S3ErrorCode::InternalError) => source,
        _ => return err,
    };
    if let Some(mismatch) = source.downcast_ref::<checked::Mismatch>() {
        return S3Error::with_message(S3ErrorCode::BadDigest, mismatch.to_string());
    }
    if !source.to_string().contains("Sha256Mismatch") {
        return err;
    }
    let code = S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into());
    let mut err = S3Error::with_message(
        code,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
    err.set_status_code(http::StatusCode::BAD_REQUEST);
    err
}

/// The digests a PutObject or UploadPart gives of its body.
macro_rules! digests {
    ($input:expr) => {
        checked::Digests {
            content_md5: $input.content_md5.clone(),
            checksums: Checksum {
                checksum_crc32: $input.checksum_crc32.clone(),
                checksum_crc32c: $input.checksum_crc32c.clone(),
                checksum_crc64nvme: $input.checksum_crc64nvme.clone(),
                checksum_sha1: $input.checksum_sha1.clone(),
                checksum_sha256: $input.checksum_sha256.clone(),
                checksum_type: None,
            },
        }
    };
}

/// The CRC32C a request's `x-amz-checksum-crc32c` carries, if it carries one.
fn expected_crc32c(value: Option<&str>) -> S3Result<Option<u32>> {
    let invalid = || {
        s3_error!(
            InvalidRequest,
            "Value for x-amz-checksum-crc32c header is invalid."
        )
    };
    value
        .map(|value| checksum::decode(value).ok_or_else(invalid))
        .transpose()
}

/// The checksum type of an answer with these checksums: those of a PUT, and those kept for a
/// multipart upload, are all of the whole object.
fn full_object(checksums: &Checksum) -> Option<ChecksumType> {
    let Checksum {
        checksum_crc32,
        checksum_crc32c,
        checksum_crc64nvme,
        checksum_sha1,
        checksum_sha256,
        checksum_type: _,
    } = checksums;
    let any = [
        checksum_crc32,
        checksum_crc32c,
        checksum_crc64nvme,
        checksum_sha1,
        checksum_sha256,
    ]
    .iter()
    .any(|checksum| checksum.is_some());
    any.then(|| ChecksumType::from_static(ChecksumType::FULL_OBJECT))
}

/// The ETag and checksums of an answer about an object.
trait Checksums {
    fn e_tag(&self) -> Option<&ETag>;
    fn take_checksums(&mut self) -> Checksum;
    /// Sets the checksums, of the whole object whatever `checksums` says.
    fn set_checksums(&mut self, checksums: Checksum);
}

macro_rules! checksums {
    ($($ty:ty),*) => { $(
        impl Checksums for $ty {
            fn e_tag(&self) -> Option<&ETag> {
                self.e_tag.as_ref()
            }

            fn take_checksums(&mut self) -> Checksum {
                Checksum {
                    checksum_crc32: self.checksum_crc32.take(),
                    checksum_crc32c: self.checksum_crc32c.take(),
                    checksum_crc64nvme: self.checksum_crc64nvme.take(),
                    checksum_sha1: self.checksum_sha1.take(),
                    checksum_sha256: self.checksum_sha256.take(),
                    checksum_type: self.checksum_type.take(),
                }
            }

            fn set_checksums(&mut self, checksums: Checksum) {
                self.checksum_type = full_object(&checksums);
                self.checksum_crc32 = checksums.checksum_crc32;
                self.checksum_crc32c = checksums.checksum_crc32c;
                self.checksum_crc64nvme = checksums.checksum_crc64nvme;
                self.checksum_sha1 = checksums.checksum_sha1;
                self.checksum_sha256 = checksums.checksum_sha256;
            }
        }
    )* };
}

checksums!(HeadObjectOutput, GetObjectOutput, PutObjectOutput);

/// Whether a HEAD or GET asks for the object's checksums, without which S3 gives none.
fn asks_checksums(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|mode| mode.as_str() == ChecksumMode::ENABLED)
}

/// A bucket and a key.
type Object = (String, String);

impl Recorder {
    /// PutObject, with its body's digests checked before s3s-fs stores it (see [`checked`]), and
    /// the type of its checksums in the answer.
    async fn put(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let directory = express::is_directory(&req.input.bucket);
        if directory && req.input.write_offset_bytes.is_some() {
            return self.append(req).await;
        }
        if directory {
            self.express.created(&req.input.bucket, &req.input.key);
        }
        let input = &mut req.input;
        checked::check(&mut input.body, digests!(input), false);
        let mut response = self.inner.put_object(req).await?;
        let output = &mut response.output;
        let checksums = output.take_checksums();
        output.set_checksums(checksums);
        Ok(response)
    }

    /// CreateMultipartUpload, noting whether the upload is to have full-object CRC32C
    /// checksums.
    async fn create(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = &req.input;
        let crc32c = (input.checksum_algorithm.as_ref())
            .is_some_and(|algorithm| algorithm.as_str() == ChecksumAlgorithm::CRC32C)
            && (input.checksum_type.as_ref())
                .is_some_and(|kind| kind.as_str() == ChecksumType::FULL_OBJECT);
        let mut response = self.inner.create_multipart_upload(req).await?;
        let output = &mut response.output;
        if let (Some(bucket), Some(key), Some(id)) =
            (&output.bucket, &output.key, &output.upload_id)
        {
            let upload = Upload {
                bucket: bucket.clone(),
                key: key.clone(),
                id: id.clone(),
                open: true,
                crc32c,
            };
            self.uploads.lock().expect("uploads").push(upload);
        }
        if crc32c {
            output.checksum_algorithm =
                Some(ChecksumAlgorithm::from_static(ChecksumAlgorithm::CRC32C));
            output.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        }
        Ok(response)
    }

    /// Whether upload `id` is open and to have full-object CRC32C checksums.
    fn has_crc32c(&self, id: &str) -> bool {
        let uploads = self.uploads.lock().expect("uploads");
        uploads.iter().any(|u| u.id == id && u.open && u.crc32c)
    }

    /// UploadPart, with its body's digests checked before s3s-fs stores it (see [`checked`]),
    /// and its CRC32C in the answer when the upload is to have them.
    async fn part(
        &self,
        mut req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = &mut req.input;
        let crc32c = self.has_crc32c(&input.upload_id);
        let computed = checked::check(&mut input.body, digests!(input), crc32c);
        let mut response = self.inner.upload_part(req).await?;
        let computed = computed.get().and_then(|c| c.checksum_crc32c.clone());
        response.output.checksum_crc32c = computed;
        Ok(response)
    }

    /// CompleteMultipartUpload, with the answer s3s-fs defers to a future (to send keep-alive
    /// bytes meanwhile) taken at once, so that its ETag can be made opaque like the others.
    /// For an upload that is to have full-object CRC32C checksums, the whole object's that the request
    /// carries is checked against the parts it names before they are joined, and kept.
    async fn complete(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = &req.input;
        let id = input.upload_id.clone();
        let object = (input.bucket.clone(), input.key.clone());
        let expected = match self.has_crc32c(&id) {
            true => expected_crc32c(input.checksum_crc32c.as_deref())?,
            false => None,
        };
        let joined = match expected {
            Some(_) => self.parts_crc(input).await,
            None => None,
        };
        if let (Some(expected), Some((crc, _))) = (expected, joined)
            && crc != expected
        {
            return Err(s3_error!(
                BadDigest,
                "The CRC32C you specified did not match the calculated checksum."
            ));
        }
        let mut response = self.inner.complete_multipart_upload(req).await?;
        if let Some(future) = response.output.future.take() {
            response.output = future.await?;
        }
        self.close_upload(&id);
        let output = &mut response.output;
        let mut kept = self.kept.lock().expect("kept checksums");
        match (joined, &output.e_tag) {
            (Some((crc32c, size)), Some(e_tag)) => {
                let e_tag = e_tag.value().to_owned();
                kept.insert(
                    object,
                    Kept {
                        crc32c,
                        size,
                        e_tag,
                    },
                );
                output.checksum_crc32c = Some(checksum::encode(crc32c));
                output.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
            }
            _ => {
                kept.remove(&object);
            }
        }
        Ok(response)
    }

    /// The CRC32C and size of the parts a Complete names, joined, read from the files
    /// s3s-fs keeps them in (`FileSystem::resolve_upload_part_path`). `None` if a part is
    /// unnumbered or cannot be read: s3s-fs then refuses the Complete.
    async fn parts_crc(&self, input: &CompleteMultipartUploadInput) -> Option<(u32, u64)> {
        let parts = (input.multipart_upload.as_ref()).and_then(|upload| upload.parts.as_ref());
        let id = &input.upload_id;
        let paths: Option<Vec<PathBuf>> = (parts.into_iter().flatten())
            .map(|part| {
                let number = part.part_number?;
                Some(self.root.join(format!(".upload_id-{id}.part-{number}")))
            })
            .collect();
        let paths = paths?;
        let joined = tokio::task::spawn_blocking(move || {
            let mut digest = checksum::digest();
            let mut size = 0;
            for path in paths {
                size += std::io::copy(&mut std::fs::File::open(path)?, &mut digest)?;
            }
            std::io::Result::Ok((checksum::finish(&digest), size))
        });
        joined.await.ok()?.ok()
    }

    /// The CRC32C kept for `object`, if it still is the object of `size` bytes with ETag
    /// `e_tag` that it was kept for.
    fn kept_crc(&self, object: &Object, e_tag: &str, size: u64) -> Option<u32> {
        let kept = self.kept.lock().expect("kept checksums");
        (kept.get(object))
            .filter(|kept| kept.e_tag == e_tag && kept.size == size)
            .map(|kept| kept.crc32c)
    }

    /// Sets the checksums of `output`, about `object`, to those S3 gives: none unless `asked`;
    /// for an object a multipart upload made, the CRC32C kept for it, if the answer is
    /// about all of it (`whole` bytes).
    fn answer_checksums(
        &self,
        output: &mut impl Checksums,
        object: &Object,
        asked: bool,
        whole: Option<u64>,
    ) {
        let e_tag = output.e_tag().map(|e_tag| e_tag.value().to_owned());
        let found = output.take_checksums();
        let checksums = match e_tag {
            _ if !asked => Checksum::default(),
            // s3s-fs keeps no checksum for an object a multipart upload made ("-N" ends its
            // ETag), but leaves those of the object it replaced.
            Some(e_tag) if e_tag.contains('-') => Checksum {
                checksum_crc32c: whole
                    .and_then(|size| self.kept_crc(object, &e_tag, size))
                    .map(checksum::encode),
                ..Checksum::default()
            },
            _ => found,
        };
        output.set_checksums(checksums);
    }

    async fn head(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let asked = asks_checksums(req.input.checksum_mode.as_ref());
        let object = (req.input.bucket.clone(), req.input.key.clone());
        let mut response = self.inner.head_object(req).await?;
        let output = &mut response.output;
        let size = output.content_length.and_then(|n| u64::try_from(n).ok());
        self.answer_checksums(output, &object, asked, size);
        Ok(response)
    }

    async fn get(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let asked = asks_checksums(req.input.checksum_mode.as_ref());
        let object = (req.input.bucket.clone(), req.input.key.clone());
        let mut response = self.inner.get_object(req).await?;
        let output = &mut response.output;
        let length = output.content_length.and_then(|n| u64::try_from(n).ok());
        // A range that covers the whole object counts as the whole object, as in s3s-fs.
        let whole = match &output.content_range {
            None => length,
            Some(range) => (range.rsplit_once('/'))
                .and_then(|(_, size)| size.parse().ok())
                .filter(|&size| Some(size) == length),
        };
        self.answer_checksums(output, &object, asked, whole);
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
            let head = derived(&req, head, http::Method::HEAD);
            let found = self.inner.head_object(head).await?.output.e_tag;
            if !found.is_some_and(|found| expected.strong_cmp(&found)) {
                return Err(S3Error::new(S3ErrorCode::PreconditionFailed));
            }
        }
        self.inner.upload_part_copy(req).await
    }
}

/// A request of the server's own, with `input`, made on behalf of `req`.
pub(crate) fn derived<T, U>(req: &S3Request<T>, input: U, method: http::Method) -> S3Request<U> {
    S3Request {
        input,
        method,
        uri: req.uri.clone(),
        headers: Default::default(),
        extensions: Default::default(),
        credentials: req.credentials.clone(),
        region: req.region.clone(),
        service: req.service.clone(),
        trailing_headers: None,
    }
}

delegate! {
    write create_bucket(CreateBucketInput) -> CreateBucketOutput as "CreateBucket";
    write put_object(PutObjectInput) -> PutObjectOutput as "PutObject";
    write delete_object(DeleteObjectInput) -> DeleteObjectOutput as "DeleteObject";
    // Complete checks its conditions, then writes: serialized with PUT, like PUT. Parts are
    // written to files of their own, which nothing else reads, so they run beside everything.
    write create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput as "CreateMultipartUpload";
    write complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput as "CompleteMultipartUpload";
    write abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput as "AbortMultipartUpload";
    part upload_part(UploadPartInput) -> UploadPartOutput as "UploadPart";
    // Its source condition is checked before the copy: serialized like a write.
    write upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput as "UploadPartCopy";
    read head_bucket(HeadBucketInput) -> HeadBucketOutput as "HeadBucket";
    read head_object(HeadObjectInput) -> HeadObjectOutput as "HeadObject";
    read get_object(GetObjectInput) -> GetObjectOutput as "GetObject";
    read list_objects(ListObjectsInput) -> ListObjectsOutput as "ListObjects";
    read list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output as "ListObjectsV2";
    read list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput as "ListMultipartUploads";
    read create_session(CreateSessionInput) -> CreateSessionOutput as "CreateSession";
}
