//! An S3 server for s3-syncr's tests, doctests, examples and benches.
//!
//! [`Server::start`] serves a directory with `s3s-fs` over real HTTP on loopback, checking SigV4
//! signatures, on a tokio runtime of its own that stops when the `Server` is dropped.
//! [`Server::from_env_or_start`] uses an external server instead when `S3SYNCR_TEST_ENDPOINT` is
//! set (with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally `AWS_REGION`), so that
//! the same tests run against third-party servers in CI.
//!
//! [`Server::start_tls`] serves HTTPS instead, with a certificate for `127.0.0.1` and
//! `localhost` from a CA the server makes ([`TestCa`]); [`Server::ca_pem_path`] names the PEM file
//! a client must be told about (`AWS_CA_BUNDLE`).

#![deny(missing_docs)]

mod checked;
mod checksum;
mod express;
// The embedded server is the one the `s3-syncr` command serves `--local DIR` with, behind
// the check of `s3express` signatures (`resign`) instead of its own loop (`serve`).
#[path = "../../../src/bin/s3-syncr/local.rs"]
#[allow(dead_code)]
mod local;
mod proxy;
mod raw;
mod recorder;
mod resign;
// The library's signing of what rust-s3 signs wrongly, for raw requests with headers of their
// own; they send the bodies rust-s3 makes, so its `set_body` goes unused here.
#[path = "../../../src/client/sign.rs"]
#[allow(dead_code)]
mod sign;
mod tls;

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};
use s3s::validation::AwsNameValidation;

pub use checksum::crc32c;
use express::Express;
pub use proxy::{Fault, Proxy, Wan};
pub use raw::{Answer as RawAnswer, Raw};
pub use recorder::Request;
pub use tls::{ServerCert, TestCa};

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
    /// The in-process server's directory buckets (S3 Express One Zone emulation).
    express: Option<Arc<Express>>,
    /// The CA the server's certificate chains to (PEM) and a file holding it, if known.
    ca: Option<(String, PathBuf)>,
    /// The TLS handshakes the in-process HTTPS server completed.
    handshakes: std::sync::Arc<tls::Handshakes>,
    /// The same server over plain HTTP, for an external HTTPS server that also serves it
    /// (`S3SYNCR_TEST_PLAIN_ENDPOINT`): the fault proxy reads requests, so it cannot sit in
    /// front of TLS.
    plain: Option<String>,
    _dir: Option<tempfile::TempDir>,
    /// Where an in-process HTTPS server keeps its CA's PEM: not in the root, where it would
    /// look like an object.
    _tls_dir: Option<tempfile::TempDir>,
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
        let mut server = Server::serve(dir.path(), opaque_etags, None);
        server._dir = Some(dir);
        server
    }

    /// Starts an in-process server over HTTPS (`https://127.0.0.1:PORT`) on a new temporary
    /// directory. Its certificate, for `127.0.0.1` and `localhost`, comes from a CA made for it
    /// alone: no client trusts it until told about [`Server::ca_pem_path`].
    pub fn start_tls() -> Server {
        tls::install_ring_default();
        let ca = TestCa::new("s3-syncr test CA");
        let cert = ca.server_cert(&["127.0.0.1", "localhost"]);
        let tls_dir = tempfile::tempdir().expect("temporary directory");
        let ca_path = tls_dir.path().join("ca.pem");
        ca.write_pem(&ca_path).expect("write the CA's PEM");
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut server = Server::serve(dir.path(), false, Some(cert.server_config()));
        raw::trust(ca.pem());
        server.ca = Some((ca.pem().to_owned(), ca_path));
        server._dir = Some(dir);
        server._tls_dir = Some(tls_dir);
        server
    }

    /// Starts an in-process server over `root`: each directory in it is a bucket, each file an
    /// object. The data stays there after the server stops.
    pub fn start_in(root: &Path) -> Server {
        Server::serve(root, false, None)
    }

    fn serve(
        root: &Path,
        opaque_etags: bool,
        tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> Server {
        let log = recorder::Log::default();
        let express = Arc::new(Express::new(ACCESS_KEY, SECRET_KEY));
        let recorder = recorder::Recorder::new(root, log.clone(), opaque_etags, express.clone());
        let fs = recorder::Served(Arc::new(recorder));
        let names = AwsNameValidation::new();
        let handshakes = Arc::<tls::Handshakes>::default();
        let (endpoint, runtime) = match tls {
            None => resign::serve(fs, &express, names),
            Some(config) => {
                let counted = handshakes.clone();
                tls::serve(fs, &express, names, config, counted)
            }
        }
        .expect("in-process S3 server");
        Server {
            endpoint,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            region: "us-east-1".into(),
            root: Some(root.to_owned()),
            runtime: Some(runtime),
            log,
            express: Some(express),
            ca: None,
            handshakes,
            plain: None,
            _dir: None,
            _tls_dir: None,
        }
    }

    /// The external server named by `S3SYNCR_TEST_ENDPOINT`, if set. Over HTTPS its CA is the
    /// one `AWS_CA_BUNDLE` names, if that is set.
    pub fn from_env() -> Option<Server> {
        let endpoint = std::env::var("S3SYNCR_TEST_ENDPOINT").ok()?;
        let var = |key: &str| std::env::var(key).unwrap_or_else(|_| panic!("{key} must be set"));
        let ca = match std::env::var_os("AWS_CA_BUNDLE") {
            Some(path) if endpoint.starts_with("https://") => {
                tls::install_ring_default();
                let path = PathBuf::from(path);
                let pem = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("AWS_CA_BUNDLE {}: {e}", path.display()));
                Some((pem, path))
            }
            _ => None,
        };
        Some(Server {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            access_key: var("AWS_ACCESS_KEY_ID"),
            secret_key: var("AWS_SECRET_ACCESS_KEY"),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            root: None,
            runtime: None,
            log: recorder::Log::default(),
            express: None,
            ca,
            handshakes: Default::default(),
            plain: std::env::var("S3SYNCR_TEST_PLAIN_ENDPOINT").ok(),
            _dir: None,
            _tls_dir: None,
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

    /// Flips one bit (the lowest) of the byte at `offset` of object `key` in `bucket`, in the
    /// file the in-process server keeps it in, as a disk that rots would: a GET returns the
    /// changed byte, while the object's size, ETag and modification time, and the checksum a
    /// HEAD or GET reports, stay as they were. For tests that a reader notices corruption at
    /// rest.
    ///
    /// # Panics
    /// For an external server, whose files are out of reach, or when the object is missing or
    /// shorter than `offset + 1` bytes.
    pub fn corrupt(&self, bucket: &str, key: &str, offset: u64) {
        let root = (self.root.as_ref()).expect(
            "Server::corrupt needs the in-process server: an external server's files are out of reach",
        );
        // s3s-fs keeps object `key` of bucket `b` in the file `<root>/<b>/<key>`.
        let path = root.join(bucket).join(key);
        let flip = || -> std::io::Result<()> {
            let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
            let modified = file.metadata()?.modified()?;
            let mut byte = [0];
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(&mut byte)?;
            byte[0] ^= 0x01;
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(&byte)?;
            file.set_modified(modified)
        };
        if let Err(err) = flip() {
            panic!(
                "corrupt {bucket}/{key} at {offset}: {}: {err}",
                path.display()
            );
        }
    }

    /// The base URL a proxy that reads requests (the fault proxy) forwards to: the server's
    /// plain HTTP endpoint when it has one besides HTTPS, else [`Server::endpoint`].
    pub fn plain_endpoint(&self) -> &str {
        self.plain.as_deref().unwrap_or(&self.endpoint)
    }

    /// The server's base URL, e.g. `http://127.0.0.1:41234` (`https://` for
    /// [`Server::start_tls`]).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The PEM file of the CA that issued the server's certificate: the in-process HTTPS
    /// server's own, or `AWS_CA_BUNDLE` for an external HTTPS server. `None` over plain HTTP.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.ca.as_ref().map(|(_, path)| path.as_path())
    }

    /// The TLS handshakes the in-process HTTPS server completed so far: full ones, then
    /// resumed ones (both 0 over plain HTTP or for an external server).
    pub fn tls_handshakes(&self) -> (usize, usize) {
        self.handshakes.get()
    }

    /// The contents of [`Server::ca_pem_path`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_ref().map(|(pem, _)| pem.as_str())
    }

    /// The PEM of a CA that issued nothing this server presents, for a test that a client
    /// told to trust only it refuses the server.
    pub fn unrelated_ca_pem() -> String {
        TestCa::new("s3-syncr unrelated test CA").pem().to_owned()
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
        self.create_bucket("")
    }

    /// Creates a directory bucket (S3 Express One Zone, as the in-process server emulates
    /// it: see [`Server::has_directory_buckets`]) with a name no other test uses, ending in
    /// `--use1-az4--x-s3`, and returns a handle on it.
    ///
    /// # Panics
    /// For an external server, which is not known to have directory buckets.
    pub fn new_directory_bucket(&self) -> Bucket {
        assert!(
            self.has_directory_buckets(),
            "directory buckets need the in-process server"
        );
        self.create_bucket("--use1-az4--x-s3")
    }

    /// Whether the server has directory buckets: the in-process one emulates them
    /// (appends at write offsets, `TooManyParts`, `CreateSession`); an external one is
    /// taken to have none.
    pub fn has_directory_buckets(&self) -> bool {
        self.express.is_some()
    }

    /// From now on an object in a directory bucket takes at most `parts` appends (AWS:
    /// 10,000), so that a test reaches the limit with small objects. No effect on an external
    /// server.
    pub fn set_append_part_limit(&self, parts: u32) {
        if let Some(express) = &self.express {
            express.set_part_limit(parts);
        }
    }

    /// Sessions of directory buckets created from now on last `life` (AWS: 5 minutes), so
    /// that a test sees one renewed. No effect on an external server.
    pub fn set_session_life(&self, life: Duration) {
        if let Some(express) = &self.express {
            express.set_session_life(life);
        }
    }

    fn create_bucket(&self, suffix: &str) -> Bucket {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "s3syncr-{}-{}-{nanos}{suffix}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        match &self.root {
            Some(root) => std::fs::create_dir(root.join(&name)).expect("bucket directory"),
            None => {
                // As rust-s3's `create_with_path_style`, sent through [`Raw`].
                let mut config = BucketConfiguration::default();
                let skip = std::env::var("RUST_S3_SKIP_LOCATION_CONSTRAINT").unwrap_or_default();
                if !matches!(skip.to_lowercase().as_str(), "true" | "1") {
                    config.set_region(Region::Custom {
                        region: self.region.clone(),
                        endpoint: self.endpoint.clone(),
                    });
                }
                let answer = self
                    .bucket(&name)
                    .raw_send("", s3::command::Command::CreateBucket { config })
                    .expect("create bucket");
                assert!(
                    (200..300).contains(&answer.status),
                    "create bucket: HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
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
