//! An emulation of S3 Express One Zone directory buckets, on s3s-fs, as AWS documents them
//! (User Guide: "Appending data to objects in directory buckets"; API reference: PutObject,
//! CreateSession). A bucket whose name ends in `--<zone-id>--x-s3` is a directory bucket:
//! - `PutObject` with `x-amz-write-offset-bytes` appends: the offset must be the object's size
//!   (0 creates it), else `400 InvalidWriteOffset`; an empty body is refused, and so is user
//!   metadata on an append (only a creation records it); `If-Match` is checked too;
//! - each append is a part: past the limit (10,000, lowered by [`Express::set_part_limit`])
//!   an append is `400 TooManyParts`; a PUT without an offset starts the count again;
//! - the object keeps a full-object CRC32C of all its bytes, and an append's
//!   `x-amz-checksum-crc32c` is checked against its own bytes (`400 BadDigest`);
//! - `CreateSession` (`GET /bucket?session`), signed with the server's keys, hands out
//!   session credentials for the bucket, valid 5 minutes ([`Express::set_session_life`]);
//!   every other request to the bucket must be signed with them, for the `s3express` service,
//!   and carry their token in `x-amz-s3session-token` (`403 AccessDenied`, or
//!   `400 ExpiredToken` once the session has lapsed).
//!
//! - a listing refuses `start-after`, which AWS does not support for directory buckets.
//!
//! Unlike AWS it is served path-style on one endpoint (AWS: virtual-hosted, on the zone's
//! endpoint), lists in key order (AWS: in no promised order), and an append rewrites the
//! object's file whole (AWS appends in place).

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures_core::Stream;
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::checksum;

/// AWS's most parts (appends) in one object.
const PART_LIMIT: u32 = 10_000;
/// AWS's session life.
const SESSION_LIFE: Duration = Duration::from_secs(5 * 60);
/// The header that carries a session's token.
const TOKEN_HEADER: &str = "x-amz-s3session-token";

/// Whether bucket `name` is a directory bucket.
pub(crate) fn is_directory(name: &str) -> bool {
    name.strip_suffix("--x-s3")
        .and_then(|rest| rest.rsplit_once("--"))
        .is_some_and(|(base, zone)| !base.is_empty() && !zone.is_empty())
}

/// The directory buckets' state: part counts, sessions, and the switches tests turn.
pub(crate) struct Express {
    /// The keys `CreateSession` must be signed with.
    access_key: String,
    secret_key: String,
    /// By bucket and key: how many parts the object has.
    parts: Mutex<HashMap<(String, String), u32>>,
    /// By access key.
    sessions: Mutex<HashMap<String, Session>>,
    part_limit: AtomicU32,
    session_life_ms: AtomicU64,
    issued: AtomicU64,
}

#[derive(Clone)]
struct Session {
    secret: String,
    token: String,
    bucket: String,
    expires: SystemTime,
}

impl Express {
    pub(crate) fn new(access_key: &str, secret_key: &str) -> Express {
        Express {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            parts: Mutex::default(),
            sessions: Mutex::default(),
            part_limit: AtomicU32::new(PART_LIMIT),
            session_life_ms: AtomicU64::new(SESSION_LIFE.as_millis() as u64),
            issued: AtomicU64::new(0),
        }
    }

    /// From now on an object takes at most `parts` appends (AWS: 10,000).
    pub(crate) fn set_part_limit(&self, parts: u32) {
        self.part_limit.store(parts, Ordering::Relaxed);
    }

    /// Sessions created from now on last `life` (AWS: 5 minutes).
    pub(crate) fn set_session_life(&self, life: Duration) {
        self.session_life_ms
            .store(life.as_millis() as u64, Ordering::Relaxed);
    }

    /// `CreateSession`: new credentials for the bucket, if the request was signed with the
    /// server's own keys for a directory bucket.
    pub(crate) fn create_session(
        &self,
        req: &S3Request<CreateSessionInput>,
    ) -> S3Result<S3Response<CreateSessionOutput>> {
        let bucket = &req.input.bucket;
        if !is_directory(bucket) {
            return Err(s3_error!(InvalidRequest, "Not a directory bucket."));
        }
        let signer = req.credentials.as_ref().map(|c| c.access_key.as_str());
        if signer != Some(self.access_key.as_str()) || !signed_for_express(req) {
            return Err(s3_error!(
                AccessDenied,
                "CreateSession takes the account's keys, signed for s3express."
            ));
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let nanos =
            (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)).map_or(0, |d| d.as_nanos());
        let life = Duration::from_millis(self.session_life_ms.load(Ordering::Relaxed));
        let session = Session {
            secret: format!("session-secret-{n}-{nanos:x}"),
            token: format!("session-token-{n}-{nanos:x}"),
            bucket: bucket.clone(),
            expires: SystemTime::now() + life,
        };
        let access = format!("S3SESSION{n}X{nanos:x}");
        let credentials = SessionCredentials {
            access_key_id: access.clone(),
            expiration: Timestamp::from(session.expires),
            secret_access_key: session.secret.clone(),
            session_token: session.token.clone(),
        };
        self.lock_sessions().insert(access, session);
        Ok(S3Response::new(CreateSessionOutput {
            credentials,
            ..Default::default()
        }))
    }

    /// The secret of `access_key`: the server's own, or a session's.
    pub(crate) fn secret_of(&self, access_key: &str) -> Option<String> {
        if access_key == self.access_key {
            return Some(self.secret_key.clone());
        }
        self.lock_sessions()
            .get(access_key)
            .map(|s| s.secret.clone())
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses a request to a directory bucket (`path` is `/bucket/...`) that is not signed
    /// with a current session of that bucket, for `s3express`, with its token.
    pub(crate) fn authorize<T>(&self, op: &str, req: &S3Request<T>) -> S3Result<()> {
        let path = req.uri.path().trim_start_matches('/');
        let bucket = path.split_once('/').map_or(path, |(bucket, _)| bucket);
        if !is_directory(bucket) || op == "CreateSession" {
            return Ok(());
        }
        let denied = |why: &str| {
            Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                why.to_owned(),
            ))
        };
        let Some(signer) = req.credentials.as_ref().map(|c| c.access_key.clone()) else {
            return denied("A directory bucket takes signed requests.");
        };
        let Some(session) = self.lock_sessions().get(&signer).cloned() else {
            return denied("Not signed with session credentials (CreateSession).");
        };
        let token = req.headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok());
        if session.bucket != bucket || token != Some(session.token.as_str()) {
            return denied("The session token does not match.");
        }
        if !signed_for_express(req) {
            return denied("Not signed for s3express.");
        }
        if SystemTime::now() >= session.expires {
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("ExpiredToken".into()),
                "The provided token has expired.",
            );
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            return Err(err);
        }
        Ok(())
    }

    /// A PUT to a directory bucket created or replaced the object: it has one part.
    pub(crate) fn created(&self, bucket: &str, key: &str) {
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        parts.insert((bucket.to_owned(), key.to_owned()), 1);
    }

    /// Checks an append of `req` to an object now `size` bytes large (`None`: no object)
    /// with ETag `e_tag`, and takes its body.
    pub(crate) async fn check_append(
        &self,
        req: &mut S3Request<PutObjectInput>,
        size: Option<u64>,
        e_tag: Option<&ETag>,
    ) -> S3Result<Vec<u8>> {
        let input = &mut req.input;
        let offset = input.write_offset_bytes.unwrap_or_default();
        if u64::try_from(offset).ok() != Some(size.unwrap_or(0)) {
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("InvalidWriteOffset".into()),
                "The write offset value that you provided does not match the current object size.",
            );
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            return Err(err);
        }
        if let Some(ETagCondition::ETag(expected)) = &input.if_match {
            match e_tag {
                None => return Err(s3_error!(NoSuchKey)),
                Some(found) if !expected.strong_cmp(found) => {
                    return Err(S3Error::new(S3ErrorCode::PreconditionFailed));
                }
                Some(_) => {}
            }
        }
        let appending = size.is_some();
        if appending && input.metadata.as_ref().is_some_and(|m| !m.is_empty()) {
            return Err(s3_error!(
                InvalidRequest,
                "User metadata cannot be given on an append."
            ));
        }
        let key = (input.bucket.clone(), input.key.clone());
        let parts = self
            .parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied();
        if appending && parts.unwrap_or(1) >= self.part_limit.load(Ordering::Relaxed) {
            let mut err = S3Error::with_message(
                S3ErrorCode::Custom("TooManyParts".into()),
                "The object has the most parts it may have.",
            );
            err.set_status_code(http::StatusCode::BAD_REQUEST);
            return Err(err);
        }
        let body = collect(input.body.take()).await?;
        if body.is_empty() {
            return Err(s3_error!(InvalidRequest, "An append must have a body."));
        }
        if let Some(given) = input.checksum_crc32c.as_deref()
            && checksum::decode(given) != Some(checksum::of(&body))
        {
            return Err(s3_error!(
                BadDigest,
                "The CRC32C you specified did not match the calculated checksum."
            ));
        }
        Ok(body)
    }

    /// An append to `bucket`/`key` landed: one part more.
    pub(crate) fn appended(&self, bucket: &str, key: &str) {
        let mut parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        *parts
            .entry((bucket.to_owned(), key.to_owned()))
            .or_insert(0) += 1;
    }
}

/// The error a directory bucket answers a listing with `start-after` with, which AWS does not
/// support there.
pub(crate) fn refuses_listing(input: &ListObjectsV2Input) -> Option<S3Error> {
    (is_directory(&input.bucket) && input.start_after.is_some()).then(|| {
        s3_error!(
            InvalidArgument,
            "start-after is not supported for directory buckets."
        )
    })
}

/// Whether `req` was signed for the `s3express` service (checked by `crate::resign`).
fn signed_for_express<T>(req: &S3Request<T>) -> bool {
    req.headers
        .get(crate::resign::SIGNED_FOR)
        .is_some_and(|v| v == "s3express")
}

/// A request body, read whole.
async fn collect(body: Option<StreamingBlob>) -> S3Result<Vec<u8>> {
    let Some(mut body) = body else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
        let chunk = chunk
            .map_err(|err| S3Error::with_message(S3ErrorCode::IncompleteBody, err.to_string()))?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The keys the server accepts: its own, and those of the sessions it handed out.
pub(crate) struct Keys(pub(crate) std::sync::Arc<Express>);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret_of(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}
