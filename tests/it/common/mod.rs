//! Helpers shared by the integration tests.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use s3::Bucket;
use s3::command::Command;
use s3_syncr::{Options, Storage};
pub use s3_syncr_test_server::{Proxy, Raw, Server};

pub const MIB: usize = 1024 * 1024;

/// A handle on stream `name` with objects sealed at `seal_mib` MiB.
pub fn open(bucket: &Bucket, name: &str, seal_mib: usize) -> Storage {
    let options = Options::builder()
        .with_seal_size(seal_mib * MIB)
        .build()
        .unwrap();
    Storage::new(bucket.clone(), name, options).expect("open stream")
}

/// Deterministic, position-dependent bytes: a reordering or duplication shows as a mismatch.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Everything from the read position to the end, read through `buf_size`-byte reads.
pub fn read_all_with(storage: &mut Storage, buf_size: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; buf_size];
    loop {
        match storage.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The whole stream as a fresh handle reads it.
pub fn stream_contents(bucket: &Bucket, name: &str) -> Vec<u8> {
    let mut reader = open(bucket, name, 1);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read stream");
    reader.close().expect("close reader");
    out
}

/// The sizes of the stream's objects, in order.
pub fn object_sizes(bucket: &Bucket, name: &str) -> Vec<u64> {
    let objects = open(bucket, name, 1).objects().expect("list objects");
    objects.iter().map(|s| s.size).collect()
}

/// Puts an object directly, bypassing `Storage`.
pub fn raw_put(bucket: &Bucket, key: &str, body: &[u8]) {
    bucket.raw_put(key, body);
}

/// The inner `s3_syncr::Error` of an I/O error.
pub fn inner(err: &io::Error) -> &s3_syncr::Error {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<s3_syncr::Error>())
        .unwrap_or_else(|| panic!("no s3_syncr::Error inside {err:?}"))
}

/// Operation names of the requests the in-process server saw since the last call.
pub fn ops(server: &Server) -> Vec<&'static str> {
    server.take_requests().into_iter().map(|r| r.op).collect()
}

/// Asserts that `sent` is these `rounds` of requests, in order, each round's in any order:
/// they go at once (`long::requests_that_need_nothing_of_each_other_go_at_once` shows it).
pub fn assert_rounds(sent: &[&str], rounds: &[&[&str]]) {
    let mut at = 0;
    for round in rounds {
        let mut got = sent.get(at..at + round.len()).unwrap_or_default().to_vec();
        let mut expected = round.to_vec();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected, "{sent:?}");
        at += round.len();
    }
    assert_eq!(at, sent.len(), "{sent:?}");
}

/// A handle's open: the bucket's check (a LIST of the stream's first key) and the GET of the
/// stream's hint, at once.
pub const OPEN: &[&str] = &["ListObjectsV2", "GetObject"];

/// `sent` after the requests of a handle's open ([`OPEN`], in either order), which it checks.
pub fn after_open<'a>(sent: &'a [&'static str]) -> &'a [&'static str] {
    assert_rounds(sent.get(..OPEN.len()).unwrap_or_default(), &[OPEN]);
    &sent[OPEN.len()..]
}

/// [`ops`], without the requests for streams' hints (an object each writer rewrites as it
/// creates objects, which each new handle reads).
pub fn object_ops(server: &Server) -> Vec<&'static str> {
    (server.take_requests().into_iter())
        .filter(|r| !is_hint(&r.path))
        .map(|r| r.op)
        .collect()
}

/// Whether `path` is a stream's hint (`dir/name-s3syncr-hint.ext`).
pub fn is_hint(path: &str) -> bool {
    path.contains("-s3syncr-hint")
}

/// Whether the server honours `If-Match` on CompleteMultipartUpload (moto ignores it, so no
/// append by copy can be fenced there).
pub fn complete_is_conditional() -> bool {
    std::env::var_os("S3SYNCR_TEST_COMPLETE_UNCONDITIONAL").is_none()
}

/// Whether two CompleteMultipartUploads racing with one `If-Match` cannot both pass: not on a
/// server that ignores the condition, nor on one that checks it, then writes (SeaweedFS 4.48).
pub fn complete_is_atomic() -> bool {
    complete_is_conditional() && std::env::var_os("S3SYNCR_TEST_COMPLETE_RACY").is_none()
}

/// `command` set up to reach `server` as the `s3://` locations of [`Storage::open`] do: its
/// endpoint, region and keys in the environment.
pub fn reaching<'a>(
    command: &'a mut std::process::Command,
    server: &Server,
) -> &'a mut std::process::Command {
    let (access_key, secret_key) = server.keys();
    command
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_REGION", server.region())
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env_remove("AWS_ENDPOINT_URL_S3")
}

/// The IDs of the uploads open on `key`, from a ListMultipartUploads.
pub fn uploads(bucket: &Bucket, key: &str) -> Vec<String> {
    let command = Command::ListMultipartUploads {
        prefix: Some(key),
        delimiter: None,
        key_marker: None,
        upload_id_marker: None,
        max_uploads: None,
    };
    let answer = bucket.raw_send("/", command).unwrap();
    let body = String::from_utf8(answer.body).unwrap();
    let between = |text: &str, open: &str, close: &str| {
        let (_, rest) = text.split_once(open)?;
        Some(rest.split_once(close)?.0.to_owned())
    };
    (body.split("<Upload>").skip(1))
        .filter(|u| between(u, "<Key>", "</Key>").as_deref() == Some(key))
        .filter_map(|u| between(u, "<UploadId>", "</UploadId>"))
        .collect()
}

/// Waits until `key` has an upload open, and returns the IDs of those open.
pub fn wait_for_upload(bucket: &Bucket, key: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ids = uploads(bucket, key);
    while ids.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        ids = uploads(bucket, key);
    }
    assert!(!ids.is_empty(), "the writer started an upload to {key}");
    ids
}

/// Waits until `key` has an upload, then aborts every upload of it with raw requests, until
/// none of them is listed.
///
/// An abort can fail and leave its upload open: moto answers 500 to one that meets a part
/// being stored. Like a lifecycle rule, the outside actor tries again until it holds.
pub fn abort_from_outside(bucket: &Bucket, key: &str) {
    let ids = wait_for_upload(bucket, key);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // One already completed or aborted is gone: only the open ones matter.
        let open: Vec<String> = (uploads(bucket, key).into_iter())
            .filter(|id| ids.contains(id))
            .collect();
        if open.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "could not abort the uploads of {key}"
        );
        for id in &open {
            bucket.raw_abort(key, id);
        }
    }
}

/// A new general-purpose bucket, and a new directory bucket (S3 Express One Zone) where the
/// server has them (the in-process one emulates them): for the tests whose rules hold in both.
pub fn bucket_kinds(server: &Server) -> Vec<Bucket> {
    let directory = (server.has_directory_buckets()).then(|| server.new_directory_bucket());
    [server.new_bucket()].into_iter().chain(directory).collect()
}

/// A server, a fault-injecting proxy in front of it, and a fresh bucket.
pub struct Rig {
    pub server: Server,
    pub proxy: Proxy,
    pub bucket: Bucket,
}

impl Rig {
    pub fn new() -> Rig {
        let server = Server::from_env_or_start();
        let proxy = Proxy::start(&server);
        let bucket = server.new_bucket();
        Rig {
            server,
            proxy,
            bucket,
        }
    }

    /// Stream `name`, reached through the proxy.
    pub fn storage(&self, name: &str, options: Options) -> Storage {
        let bucket = self.proxy.bucket(&self.server, &self.bucket.name());
        Storage::new(bucket, name, options).unwrap()
    }
}
