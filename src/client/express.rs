//! S3 Express One Zone directory buckets: a flush is one append (`PutObject` with
//! `x-amz-write-offset-bytes`), and every request carries the bucket's session credentials.
//!
//! An append sends exactly the bytes S3 lacks, at the object's size: its offset is a
//! compare-and-swap on that size, so a writer whose offset another one moved is refused
//! (`400 InvalidWriteOffset`) and fenced, as a failed `If-Match` fences it in a general-purpose
//! bucket. The offset-0 append creates the object, with the metadata that only a creation can
//! carry (start, seal size, writer). A refused or lost answer is settled from a HEAD: the
//! object's size and full-object CRC32C say how much of the append landed, whoever continued
//! the object (its writer metadata names only its creator).
//!
//! Sessions: data requests on a directory bucket are signed with credentials from
//! `CreateSession` (`GET /?session`), for the `s3express` service, with the token in
//! `x-amz-s3session-token` instead of `x-amz-security-token`. A session lasts 5 minutes; one is
//! kept per client and renewed before it lapses, below the retry layer, so that every request
//! of the stream (retries included) goes out with a current one.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use s3::Bucket;
use s3::command::Command;
use s3::creds::Credentials;
use s3::error::S3Error;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};
use ureq::http::header::IF_MATCH;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::{Crc, Expect, Meta, OCTETS, S3Client, Transport, xml_text};
use crate::Error;

/// The header that carries a session's token on every data request.
pub(super) const SESSION_HEADER: &str = "x-amz-s3session-token";
/// The header of `CreateSession` that asks for a session that may write.
pub(super) const MODE_HEADER: &str = "x-amz-create-session-mode";
/// The size the object must have for an append to land: the append's offset.
pub(crate) const OFFSET_HEADER: &str = "x-amz-write-offset-bytes";
/// A session's life, as AWS documents it; a session said to last longer is renewed as if it
/// lasted this.
const LIFE: Duration = Duration::from_secs(5 * 60);
/// How long before a session lapses it is replaced: a request started with it (a retry after
/// a backoff, a large append) must end before it does.
const MARGIN: Duration = Duration::from_secs(60);

/// Whether bucket `name` is a directory bucket, as AWS names them: `<base>--<zone-id>--x-s3`.
pub(crate) fn is_directory_bucket(name: &str) -> bool {
    name.strip_suffix("--x-s3")
        .and_then(|rest| rest.rsplit_once("--"))
        .is_some_and(|(base, zone)| !base.is_empty() && !zone.is_empty())
}

/// The session of a client on a directory bucket, created on first use.
#[derive(Default)]
pub(super) struct Sessions {
    current: Mutex<Option<Session>>,
}

/// Session credentials; never logged, never in an error.
pub(super) struct Session {
    access: String,
    secret: String,
    token: HeaderValue,
    /// When it is replaced: [`MARGIN`] (or half its life) before it lapses.
    renew_at: Instant,
}

impl Error {
    /// Whether a directory bucket refused an append because the object has the most parts it
    /// may have (10,000 on AWS): the object is full, whatever its size.
    pub(crate) fn is_too_many_parts(&self) -> bool {
        matches!(self, Error::Status { code, .. } if code == "TooManyParts")
    }
}

impl S3Client {
    /// `bucket` as an attempt on a directory bucket sends it: with the session's credentials
    /// and token, the session created or renewed first if it lapses soon. Other buckets are
    /// returned as they are.
    pub(super) fn session_bucket(&self, bucket: Bucket) -> Result<Bucket, S3Error> {
        let Some(sessions) = &self.sessions else {
            return Ok(bucket);
        };
        let mut current = (sessions.current.lock()).unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some(session) if Instant::now() < session.renew_at => session.sign(&bucket),
            _ => {
                let session = create_session(&*self.wire, &bucket)?;
                log::debug!("{}: new session", self.bucket_name());
                session.sign(&bucket).inspect(|_| *current = Some(session))
            }
        }
    }

    /// Appends `new` to object `seq`, which S3 holds `offset` bytes of, by one `PutObject` at
    /// that offset; returns the object's new ETag. Offset 0 creates the object, recording
    /// `meta` and this handle. `expect` is the version the append builds on (`If-Match`, with
    /// conditional writes).
    ///
    /// A refused offset or condition is settled from a HEAD: the append landed (an earlier
    /// attempt's answer was lost), landed in part (an earlier call's, with fewer bytes: then
    /// the rest follows), or another writer moved the object, which is [`Error::Fenced`].
    pub(super) fn append_at_offset(
        &self,
        seq: u64,
        meta: Meta,
        mut offset: u64,
        mut new: &[u8],
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        let key = self.key(seq);
        let mut etag = match expect {
            Expect::Etag(etag) => Some(etag.to_owned()),
            Expect::Absent => None,
        };
        // The object's CRC before the append, to know it again after.
        let mut before = match &etag {
            Some(etag) => self.known.of(&key, etag, offset),
            None => Some(Crc::of(&[])),
        };
        loop {
            let crc = Crc::of(new);
            let result = self.put_at(&key, meta, offset, new, crc, etag.as_deref());
            let err = match result {
                Ok(etag) => {
                    if let Some(before) = before {
                        self.known.remember(&key, &etag, before.then(crc));
                    }
                    return Ok(etag);
                }
                Err(err) => err,
            };
            let refused = matches!(&err, Error::Status { status: 400 | 404 | 412, code, .. }
                if matches!(code.as_str(), "InvalidWriteOffset" | "PreconditionFailed" | "NoSuchKey" | ""));
            if !refused {
                return Err(err);
            }
            let head = match self.head(&key) {
                Err(Error::Status { status: 404, .. }) => {
                    return Err(Error::Fenced { key, lost: 0 });
                }
                head => head?,
            };
            let landed = (head.size.checked_sub(offset)).and_then(|n| usize::try_from(n).ok());
            let ours = match (landed, head.crc, before) {
                (Some(n), Some(crc), Some(before)) if n <= new.len() => {
                    crc == before.then(Crc::of(&new[..n]))
                }
                // Without both checksums, only the object's creator knows it again, by size.
                (Some(n), _, _) => head.ours && n == new.len(),
                _ => false,
            };
            match landed {
                Some(n) if ours && n == new.len() => return Ok(head.etag),
                Some(n) if ours && n > 0 => {
                    log::debug!("{key}: {n} bytes of an append had landed; sending the rest");
                    (offset, new) = (head.size, &new[n..]);
                    (etag, before) = (Some(head.etag), head.crc);
                }
                _ => return Err(Error::Fenced { key, lost: 0 }),
            }
        }
    }

    /// One `PutObject` of `new` at `offset` of `key`, expecting version `etag`.
    fn put_at(
        &self,
        key: &str,
        meta: Meta,
        offset: u64,
        new: &[u8],
        crc: Crc,
        etag: Option<&str>,
    ) -> Result<String, Error> {
        // Metadata only at creation: a directory bucket refuses it on an append.
        let mut headers = match offset {
            0 => self.identity(meta),
            _ => HeaderMap::new(),
        };
        headers.insert(
            HeaderName::from_static(OFFSET_HEADER),
            HeaderValue::from(offset),
        );
        if let Some(etag) = etag.filter(|_| self.options.conditional_writes) {
            // Not a valid header: no object can have it, so the append must fail.
            let value = HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""));
            headers.insert(IF_MATCH, value);
        }
        crc.add_to(&mut headers);
        let headers = Some(headers);
        let etag = self.request("APPEND", key, new.len() as u64, |bucket| {
            // The body is signed and sent by the transport, not hashed by rust-s3.
            let command = Command::PutObject {
                content: &[],
                content_type: OCTETS,
                custom_headers: headers.clone(),
                multipart: None,
            };
            let answer = self
                .wire
                .send(bucket, key, command, Some(new), &HeaderMap::new())?;
            let etag = answer.header("etag").map(str::to_owned);
            answer.finish();
            Ok(etag)
        })?;
        match etag {
            Some(etag) if !etag.is_empty() => Ok(etag),
            // A server that sends no ETag: ask for it.
            _ => Ok(self.head(key)?.etag),
        }
    }
}

/// `CreateSession` on the bucket, signed with `bucket`'s own credentials, sent by `wire`.
pub(super) fn create_session(wire: &dyn Transport, bucket: &Bucket) -> Result<Session, S3Error> {
    let query = HashMap::from([("session".to_owned(), String::new())]);
    let bucket = bucket.with_extra_query(query)?;
    let mut extra = HeaderMap::new();
    extra.insert(
        HeaderName::from_static(MODE_HEADER),
        HeaderValue::from_static("ReadWrite"),
    );
    let started = Instant::now();
    let text = wire
        .send(&bucket, "", Command::GetObject, None, &extra)?
        .text()?;
    let field = |tag| Some(xml_text(&text, tag)).filter(|value| !value.is_empty());
    let invalid = |what| S3Error::Io(io::Error::new(io::ErrorKind::InvalidData, what));
    let (Some(access), Some(secret), Some(token)) = (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
    ) else {
        return Err(invalid("CreateSession answered without credentials"));
    };
    let mut token = HeaderValue::from_str(&token)
        .map_err(|_| invalid("CreateSession answered a token that is no header value"))?;
    // Kept out of any `Debug` of the headers.
    token.set_sensitive(true);
    let life = (field("Expiration").and_then(|at| remaining(&at))).map_or(LIFE, |l| l.min(LIFE));
    Ok(Session {
        access,
        secret,
        token,
        renew_at: started + life - MARGIN.min(life / 2),
    })
}

impl Session {
    /// `bucket` signing with this session: its credentials, and its token on every request.
    pub(super) fn sign(&self, bucket: &Bucket) -> Result<Bucket, S3Error> {
        let mut headers = bucket.extra_headers.clone();
        headers.insert(HeaderName::from_static(SESSION_HEADER), self.token.clone());
        let mut bucket = bucket.with_extra_headers(headers)?;
        let credentials =
            Credentials::new(Some(&self.access), Some(&self.secret), None, None, None)?;
        bucket.set_credentials(credentials);
        Ok(bucket)
    }
}

/// How long until `at` (`2026-12-06T15:45:00Z`, as S3 writes an expiry), if it is such a
/// date and later than now.
fn remaining(at: &str) -> Option<Duration> {
    let (date, time) = at.trim().split_once('T')?;
    let mut date = date.split('-').map(str::parse::<i32>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let time = time.trim_end_matches('Z');
    let time = time.split_once('.').map_or(time, |(whole, _)| whole);
    let mut time = time.split(':').map(str::parse::<u8>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
    let at = PrimitiveDateTime::new(date, Time::from_hms(hour, minute, second).ok()?).assume_utc();
    Duration::try_from(at - OffsetDateTime::now_utc()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_buckets_are_known_by_their_names() {
        assert!(is_directory_bucket("logs--use1-az4--x-s3"));
        for name in [
            "logs",
            "logs--x-s3",
            "--use1-az4--x-s3",
            "logs--use1-az4--x-s3-not",
        ] {
            assert!(!is_directory_bucket(name), "{name}");
        }
    }

    #[test]
    fn an_expiry_is_read_as_s3_writes_it() {
        let soon = OffsetDateTime::now_utc() + Duration::from_secs(120);
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            soon.year(),
            u8::from(soon.month()),
            soon.day(),
            soon.hour(),
            soon.minute(),
            soon.second()
        );
        let left = remaining(&text).expect("a date ahead");
        assert!(
            left <= Duration::from_secs(120) && left > Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(remaining("2000-01-01T00:00:00Z"), None, "a date passed");
        assert_eq!(remaining("tomorrow"), None);
    }
}
