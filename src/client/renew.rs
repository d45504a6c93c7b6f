//! Temporary credentials renewed ahead of their expiry. rust-s3 fetches new ones only once they
//! have expired, so a request that starts a moment before is signed with credentials that lapse
//! while it runs (a long upload, a retry after a backoff) and is refused.

use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use s3::Bucket;
use s3::creds::error::CredentialsError;
use time::OffsetDateTime;

/// No request starts with credentials that expire sooner than this, or than its deadline: the
/// AWS SDKs' window. Sources hand out new credentials well before (IMDS and ECS at least 5 to 15
/// minutes ahead), so that a renewal inside it gets later ones.
pub(super) const MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long after an early fetch that brought nothing later the source is asked again: a source
/// that keeps serving the same credentials is not asked before every request.
const REFETCH: Duration = Duration::from_secs(10);

/// The bucket a request is sent with.
pub(super) struct Handle {
    bucket: Bucket,
    /// Only for credentials that expire: static ones never need a lock of ours.
    renewal: Option<Renewal>,
}

struct Renewal {
    /// The bucket with the newest credentials. A bucket's own credentials can only be replaced
    /// through `&mut`, which the clones requests run with do not share.
    current: RwLock<Bucket>,
    /// Held while fetching, so that concurrent requests fetch once; when the last fetch was.
    fetching: Mutex<Option<Instant>>,
}

impl Handle {
    pub(super) fn new(bucket: Bucket) -> Handle {
        let expires = bucket
            .credentials()
            .is_ok_and(|credentials| credentials.expiration.is_some());
        let renewal = expires.then(|| Renewal {
            current: RwLock::new(bucket.clone()),
            fetching: Mutex::new(None),
        });
        Handle { bucket, renewal }
    }

    pub(super) fn name(&self) -> String {
        self.bucket.name()
    }

    /// The bucket for one attempt of a request with deadline `timeout`, its credentials renewed
    /// first if they expire within [`MARGIN`] or `timeout`.
    pub(super) fn for_attempt(&self, timeout: Duration) -> Bucket {
        let mut bucket = match &self.renewal {
            None => self.bucket.clone(),
            Some(renewal) => renewal.current(MARGIN.max(timeout)),
        };
        bucket.set_request_timeout(Some(timeout));
        bucket
    }
}

impl Renewal {
    fn current(&self, margin: Duration) -> Bucket {
        let read = || {
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        };
        let bucket = read();
        if !expires_within(&bucket, margin) {
            return bucket;
        }
        let mut fetched = self.fetching.lock().unwrap_or_else(PoisonError::into_inner);
        // Another request may have renewed them meanwhile.
        let bucket = read();
        if !expires_within(&bucket, margin) || fetched.is_some_and(|at| at.elapsed() < REFETCH) {
            return bucket;
        }
        *fetched = Some(Instant::now());
        let Ok(mut credentials) = bucket.credentials() else {
            return bucket;
        };
        // `refresh` asks the credentials' own source, but only for expired ones.
        credentials.expiration = Some(OffsetDateTime::UNIX_EPOCH.into());
        match credentials.refresh() {
            Ok(()) => {
                log::debug!(
                    "renewed temporary credentials; the new ones expire at {:?}",
                    credentials.expiration.map(|at| at.0)
                );
                let mut fresh = bucket;
                fresh.set_credentials(credentials);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
                fresh
            }
            // They still work for now, and rust-s3 tries again once they have expired.
            Err(err) => {
                log::warn!(
                    "cannot renew temporary credentials before they expire ({}); using them \
                     until then",
                    describe(&err)
                );
                bucket
            }
        }
    }
}

fn expires_within(bucket: &Bucket, margin: Duration) -> bool {
    bucket
        .credentials()
        .ok()
        .and_then(|credentials| credentials.expiration)
        .is_some_and(|at| at.0 <= OffsetDateTime::now_utc() + margin)
}

/// What went wrong, without anything a failure may carry of a request or an answer: a web
/// identity token travels in the STS request's URL, and a parse error may quote a body.
fn describe(err: &CredentialsError) -> String {
    match err {
        CredentialsError::UnexpectedStatusCode(status) => format!("HTTP {status}"),
        CredentialsError::Io(err) => err.kind().to_string(),
        CredentialsError::Atto(err) => match err.kind() {
            attohttpc::ErrorKind::Io(err) => err.kind().to_string(),
            _ => "the request failed".to_owned(),
        },
        CredentialsError::NoRefreshSource => "they name no source".to_owned(),
        _ => "no usable answer".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3::Region;
    use s3::creds::Credentials;

    fn bucket(expiration: Option<OffsetDateTime>) -> Bucket {
        let mut credentials = Credentials::new(Some("AKID"), Some("secret"), None, None, None)
            .expect("static credentials");
        credentials.expiration = expiration.map(Into::into);
        *Bucket::new("b", Region::UsEast1, credentials).expect("bucket")
    }

    #[test]
    fn static_credentials_take_no_lock_and_keep_the_deadline() {
        let handle = Handle::new(bucket(None));
        assert!(handle.renewal.is_none());
        let attempt = handle.for_attempt(Duration::from_secs(7));
        assert_eq!(attempt.request_timeout, Some(Duration::from_secs(7)));
    }

    #[test]
    fn expiry_within_the_margin_or_the_deadline_is_due() {
        let soon = bucket(Some(OffsetDateTime::now_utc() + Duration::from_secs(120)));
        assert!(expires_within(&soon, MARGIN));
        assert!(!expires_within(&soon, Duration::from_secs(60)));
        let later = bucket(Some(OffsetDateTime::now_utc() + Duration::from_secs(3600)));
        assert!(!expires_within(&later, MARGIN));
        assert!(expires_within(&later, Duration::from_secs(7200)));
        assert!(!expires_within(&bucket(None), MARGIN));
    }

    #[test]
    fn a_failed_renewal_keeps_the_credentials_and_waits_before_asking_again() {
        // Static credentials given an expiry have no source to renew them from.
        let soon = OffsetDateTime::now_utc() + Duration::from_secs(120);
        let handle = Handle::new(bucket(Some(soon)));
        let renewal = handle.renewal.as_ref().expect("expiring credentials");
        let attempt = handle.for_attempt(Duration::from_secs(1));
        let credentials = attempt.credentials().unwrap();
        assert_eq!(credentials.secret_key.as_deref(), Some("secret"));
        assert_eq!(credentials.expiration.map(|at| at.0), Some(soon));
        let first = renewal.fetching.lock().unwrap().expect("asked once");
        handle.for_attempt(Duration::from_secs(1));
        assert_eq!(
            *renewal.fetching.lock().unwrap(),
            Some(first),
            "asked again at once"
        );
    }
}
