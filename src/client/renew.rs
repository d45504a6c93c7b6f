//! Temporary credentials renewed ahead of their expiry. rust-s3 fetches new ones only once they
//! have expired, so a request that starts a moment before is signed with credentials that lapse
//! while it runs (a long upload, a retry after a backoff) and is refused.
//!
//! A renewal asks the credentials' source (IMDS, ECS, STS), which may take up to a minute to
//! answer or give up. Credentials still good for a request are renewed on a thread of their
//! own, so that no request waits for the source meanwhile (read-ahead workers and upload jobs
//! would run past their deadlines); only a request whose credentials lapse before its deadline
//! waits, for the renewal under way or for one of its own.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use s3::Bucket;
use s3::creds::Credentials;
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
    /// Only for credentials that expire: static ones never need a lock of ours. Shared with
    /// the thread of a renewal under way.
    renewal: Option<Arc<Renewal>>,
}

struct Renewal {
    /// The bucket with the newest credentials. A bucket's own credentials can only be replaced
    /// through `&mut`, which the clones requests run with do not share.
    current: RwLock<Bucket>,
    /// Whether a renewal is under way, so that concurrent requests fetch once, and when the
    /// last one started. Never held while fetching.
    fetching: Mutex<Fetching>,
    /// Signalled when a renewal ends, for the requests that cannot go on without it.
    renewed: Condvar,
    /// Asks the credentials' source for new ones: [`Credentials::refresh`], or a test's.
    refresh: Refresh,
}

type Refresh = fn(&mut Credentials) -> Result<(), CredentialsError>;

#[derive(Debug, Default)]
struct Fetching {
    under_way: bool,
    last: Option<Instant>,
}

impl Handle {
    pub(super) fn new(bucket: Bucket) -> Handle {
        let expires = bucket
            .credentials()
            .is_ok_and(|credentials| credentials.expiration.is_some());
        let renewal = expires.then(|| {
            Arc::new(Renewal {
                current: RwLock::new(bucket.clone()),
                fetching: Mutex::default(),
                renewed: Condvar::new(),
                refresh: Credentials::refresh,
            })
        });
        Handle { bucket, renewal }
    }

    pub(super) fn name(&self) -> String {
        self.bucket.name()
    }

    /// The bucket for one attempt of a request with deadline `timeout`. Credentials that
    /// expire within [`MARGIN`] or `timeout` are renewed: in the background while they last
    /// past `timeout`, else before the attempt.
    pub(super) fn for_attempt(&self, timeout: Duration) -> Bucket {
        let mut bucket = match &self.renewal {
            None => self.bucket.clone(),
            Some(renewal) => Renewal::current(renewal, MARGIN.max(timeout), timeout),
        };
        bucket.set_request_timeout(Some(timeout));
        bucket
    }
}

impl Renewal {
    /// The newest bucket for an attempt with deadline `timeout`, once its credentials are
    /// renewed if they expire within `margin`.
    fn current(this: &Arc<Renewal>, margin: Duration, timeout: Duration) -> Bucket {
        let bucket = this.read();
        if !expires_within(&bucket, margin) {
            return bucket;
        }
        let mut fetching = this.lock();
        // A renewal may have ended meanwhile.
        let bucket = this.read();
        if !expires_within(&bucket, margin) {
            return bucket;
        }
        if !expires_within(&bucket, timeout) {
            // Good for this attempt: it goes on with them, whatever the renewal takes.
            if !fetching.under_way && !fetching.asked_lately() {
                fetching.start();
                drop(fetching);
                let renewal = this.clone();
                let spawned = std::thread::Builder::new()
                    .name("s3-syncr-renew".into())
                    .spawn(move || renewal.renew());
                if spawned.is_err() {
                    // Nothing renews them; a request asks again after `REFETCH`.
                    this.done();
                }
            }
            return this.read();
        }
        // They lapse before the attempt's deadline: it waits for new ones.
        while fetching.under_way {
            fetching = (this.renewed)
                .wait(fetching)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let bucket = this.read();
        if !expires_within(&bucket, timeout) || fetching.asked_lately() {
            return bucket;
        }
        fetching.start();
        drop(fetching);
        this.renew();
        this.read()
    }

    fn read(&self) -> Bucket {
        (self.current.read())
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, Fetching> {
        self.fetching.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the credentials' source for new ones, without holding any lock meanwhile, and
    /// keeps them if it gives some. The caller marked the renewal under way.
    fn renew(&self) {
        // Ends the renewal even if the fetch panics: requests wait for its end.
        let _done = Done(self);
        let bucket = self.read();
        let Ok(mut credentials) = bucket.credentials() else {
            return;
        };
        // `refresh` asks the credentials' own source, but only for expired ones.
        credentials.expiration = Some(OffsetDateTime::UNIX_EPOCH.into());
        match (self.refresh)(&mut credentials) {
            Ok(()) => {
                log::debug!(
                    "renewed temporary credentials; the new ones expire at {:?}",
                    credentials.expiration.map(|at| at.0)
                );
                let mut fresh = bucket;
                fresh.set_credentials(credentials);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
            }
            // They still work for now, and rust-s3 tries again once they have expired.
            Err(err) => {
                log::warn!(
                    "cannot renew temporary credentials before they expire ({}); using them \
                     until then",
                    describe(&err)
                );
            }
        }
    }

    /// Marks the renewal under way as ended, and wakes the requests waiting for it.
    fn done(&self) {
        self.lock().under_way = false;
        self.renewed.notify_all();
    }
}

/// Ends a renewal when dropped.
struct Done<'a>(&'a Renewal);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.done();
    }
}

impl Fetching {
    fn start(&mut self) {
        self.under_way = true;
        self.last = Some(Instant::now());
    }

    /// Whether the source was asked less than [`REFETCH`] ago: one that keeps serving the same
    /// credentials (or fails) is not asked before every request.
    fn asked_lately(&self) -> bool {
        self.last.is_some_and(|at| at.elapsed() < REFETCH)
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
        let first = renewal.lock().last.expect("asked once");
        handle.for_attempt(Duration::from_secs(1));
        assert_eq!(renewal.lock().last, Some(first), "asked again at once");
    }

    /// A renewal that takes its time: new credentials after 2 s.
    fn slow_refresh(credentials: &mut Credentials) -> Result<(), CredentialsError> {
        std::thread::sleep(Duration::from_secs(2));
        credentials.secret_key = Some("renewed".to_owned());
        credentials.expiration =
            Some((OffsetDateTime::now_utc() + Duration::from_secs(3600)).into());
        Ok(())
    }

    /// Credentials due for renewal but still good for minutes: a request neither waits for
    /// the renewal nor for one another request started; the renewed ones are used once they
    /// are there.
    #[test]
    fn a_renewal_of_valid_credentials_keeps_no_request_waiting() {
        let soon = OffsetDateTime::now_utc() + Duration::from_secs(120);
        let mut handle = Handle::new(bucket(Some(soon)));
        let renewal = handle.renewal.as_mut().expect("expiring credentials");
        Arc::get_mut(renewal).expect("not shared yet").refresh = slow_refresh;
        let handle = Arc::new(handle);
        let started = Instant::now();
        let first = {
            let handle = handle.clone();
            std::thread::spawn(move || handle.for_attempt(Duration::from_secs(1)))
        };
        std::thread::sleep(Duration::from_millis(100));
        let attempt = handle.for_attempt(Duration::from_secs(1));
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(1),
            "a request waited {waited:?} for a renewal of credentials still valid"
        );
        let credentials = attempt.credentials().unwrap();
        assert_eq!(credentials.secret_key.as_deref(), Some("secret"));
        first.join().unwrap();
        // Once renewed, requests get the new credentials.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let secret = handle
                .for_attempt(Duration::from_secs(1))
                .credentials()
                .unwrap()
                .secret_key;
            if secret.as_deref() == Some("renewed") {
                break;
            }
            assert!(Instant::now() < deadline, "never renewed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Credentials that lapse before a request's deadline: it waits for new ones, and so does
    /// a request that comes while they are fetched.
    #[test]
    fn credentials_that_lapse_within_the_deadline_are_renewed_first() {
        let soon = OffsetDateTime::now_utc() + Duration::from_secs(3);
        let mut handle = Handle::new(bucket(Some(soon)));
        let renewal = handle.renewal.as_mut().expect("expiring credentials");
        Arc::get_mut(renewal).expect("not shared yet").refresh = slow_refresh;
        let handle = Arc::new(handle);
        let secret = |bucket: Bucket| bucket.credentials().unwrap().secret_key;
        let first = {
            let handle = handle.clone();
            std::thread::spawn(move || secret(handle.for_attempt(Duration::from_secs(30))))
        };
        std::thread::sleep(Duration::from_millis(100));
        let second = secret(handle.for_attempt(Duration::from_secs(30)));
        assert_eq!(second.as_deref(), Some("renewed"));
        assert_eq!(first.join().unwrap().as_deref(), Some("renewed"));
    }
}
