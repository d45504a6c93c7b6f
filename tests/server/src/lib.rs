//! An S3 server for s3-syncr's tests, doctests, examples and benches.
//!
//! [`Server::start`] serves a directory with `s3s-fs` over real HTTP on loopback, checking SigV4
//! signatures, on a tokio runtime of its own that stops when the `Server` is dropped.
//! [`Server::from_env_or_start`] uses an external server instead when `S3SYNCR_TEST_ENDPOINT` is
//! set (with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally `AWS_REGION`), so that
//! the same tests run against third-party servers in CI.

// The embedded server is the one the `s3-syncr` command serves `--local DIR` with.
#[path = "../../../src/bin/s3-syncr/local.rs"]
mod local;
mod proxy;
mod recorder;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};
use s3s::validation::AwsNameValidation;

pub use proxy::{Fault, Proxy, Wan};
pub use recorder::Request;

const ACCESS_KEY: &str = "s3syncr-test-access";
const SECRET_KEY: &str = "s3syncr-test-secret-do-not-log";

/// A running S3 server and how to reach it.
pub struct Server {
    endpoint: String,
    access_key: String,
    secret_key: String,
    region: String,
    /// The in-process server's root, `None` for an external server.
    root: Option<PathBuf>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Requests the in-process server handled.
    log: recorder::Log,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts an in-process server on a new temporary directory. With
    /// `S3SYNCR_TEST_OPAQUE_ETAGS` set, its ETags are opaque ([`Server::start_opaque`]).
    pub fn start() -> Server {
        Server::start_with(std::env::var_os("S3SYNCR_TEST_OPAQUE_ETAGS").is_some())
    }

    /// Starts an in-process server whose ETags are opaque, as on SSE-KMS and SSE-C buckets: 32
    /// hex digits (and `-N` after a multipart upload) that are not the MD5 of the body.
    pub fn start_opaque() -> Server {
        Server::start_with(true)
    }

    fn start_with(opaque_etags: bool) -> Server {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = Server::serve(dir.path(), opaque_etags);
        server._dir = Some(dir);
        server
    }

    /// Starts an in-process server over `root`: each directory in it is a bucket, each file an
    /// object. The data stays there after the server stops.
    pub fn start_in(root: &Path) -> Server {
        Server::serve(root, false)
    }

    fn serve(root: &Path, opaque_etags: bool) -> Server {
        let log = recorder::Log::default();
        let fs = recorder::Recorder {
            inner: s3s_fs::FileSystem::new(root).expect("s3s-fs root"),
            log: log.clone(),
            uploads: recorder::Uploads::default(),
            writes: tokio::sync::Mutex::new(()),
            opaque_etags,
        };
        let (endpoint, runtime) =
            local::serve(fs, ACCESS_KEY, SECRET_KEY, AwsNameValidation::new())
                .expect("in-process S3 server");
        Server {
            endpoint,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            region: "us-east-1".into(),
            root: Some(root.to_owned()),
            runtime: Some(runtime),
            log,
            _dir: None,
        }
    }

    /// The external server named by `S3SYNCR_TEST_ENDPOINT`, if set.
    pub fn from_env() -> Option<Server> {
        let endpoint = std::env::var("S3SYNCR_TEST_ENDPOINT").ok()?;
        let var = |key: &str| std::env::var(key).unwrap_or_else(|_| panic!("{key} must be set"));
        Some(Server {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            access_key: var("AWS_ACCESS_KEY_ID"),
            secret_key: var("AWS_SECRET_ACCESS_KEY"),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            root: None,
            runtime: None,
            log: recorder::Log::default(),
            _dir: None,
        })
    }

    /// The external server if one is configured, else a new in-process one.
    pub fn from_env_or_start() -> Server {
        Server::from_env().unwrap_or_else(Server::start)
    }

    /// Whether the server rejects a request signed with the wrong secret: all but moto do
    /// (`S3SYNCR_TEST_UNSIGNED` names a server that does not).
    pub fn checks_signatures(&self) -> bool {
        !self.is_external() || std::env::var_os("S3SYNCR_TEST_UNSIGNED").is_none()
    }

    /// Whether this is an external server.
    pub fn is_external(&self) -> bool {
        self.runtime.is_none()
    }

    /// Takes the requests the in-process server handled since the last call (none for an
    /// external server).
    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut *self.log.lock().expect("request log"))
    }

    /// The server's base URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The access key and secret key the server accepts.
    pub fn keys(&self) -> (&str, &str) {
        (&self.access_key, &self.secret_key)
    }

    /// The region name requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// A handle on bucket `name` (which need not exist), path-style.
    pub fn bucket(&self, name: &str) -> Bucket {
        self.bucket_at(&self.endpoint, name)
    }

    /// A handle on bucket `name` that signs with other keys.
    pub fn bucket_with_keys(&self, name: &str, access_key: &str, secret_key: &str) -> Bucket {
        handle(&self.region, &self.endpoint, name, access_key, secret_key)
    }

    /// A handle on bucket `name` that sends its requests to `endpoint` (a proxy).
    pub fn bucket_at(&self, endpoint: &str, name: &str) -> Bucket {
        handle(
            &self.region,
            endpoint,
            name,
            &self.access_key,
            &self.secret_key,
        )
    }

    /// Creates a bucket with a name no other test uses, and returns a handle on it.
    pub fn new_bucket(&self) -> Bucket {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "s3syncr-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        match &self.root {
            Some(root) => std::fs::create_dir(root.join(&name)).expect("bucket directory"),
            None => {
                Bucket::create_with_path_style(
                    &name,
                    Region::Custom {
                        region: self.region.clone(),
                        endpoint: self.endpoint.clone(),
                    },
                    credentials(&self.access_key, &self.secret_key),
                    BucketConfiguration::default(),
                )
                .expect("create bucket");
            }
        }
        self.bucket(&name)
    }
}

fn credentials(access_key: &str, secret_key: &str) -> Credentials {
    Credentials::new(Some(access_key), Some(secret_key), None, None, None).expect("credentials")
}

fn handle(region: &str, endpoint: &str, name: &str, access_key: &str, secret_key: &str) -> Bucket {
    let region = Region::Custom {
        region: region.to_owned(),
        endpoint: endpoint.to_owned(),
    };
    *Bucket::new(name, region, credentials(access_key, secret_key))
        .expect("bucket handle")
        .with_path_style()
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
