//! An in-memory S3 below the [`Transport`] seam: each request a stream makes (rust-s3's
//! command, as the HTTP request it would send) is answered as AWS documents S3 answers it,
//! not as the client expects. Everything above the seam (retries, settling of lost answers,
//! checksums, the writer's and the reader's state machines) runs unchanged on it, without a
//! network, a signature check or a thread of its own, so the simulator (`sim`) can send a
//! million requests in a minute. The contract suite (`contract`) runs the same cases against
//! it and against the real servers, so that it cannot drift from them.
//!
//! What it implements, from `s3-semantics.md`: conditional PUT and Complete (`If-Match`,
//! `If-None-Match: *`; 412, and 404 for `If-Match` on a missing key), UploadPartCopy with a
//! source range and `x-amz-copy-source-if-match`, `NoSuchUpload`, the smallest part
//! ([`Quirks::min_part`], 5 MiB as S3), the 5 GiB copy ([`Quirks::max_copy`]) and the 10,000
//! parts, full-object
//! CRC32C (checked at PUT, part and Complete, returned by HEAD and by a GET of the whole
//! object), paginated listings in key order, 416 for a range past the end, and deletions in
//! any order, and directory buckets (S3 Express One Zone: appends, sessions; see `express`).
//! Faults are injected per request by a [`Faults`] function: refused before it is applied, or
//! applied with its answer lost.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use s3::command::Command;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::request::Request;
use s3::request::blocking::AttoRequest;
use s3::{Bucket, Region};
use ureq::http::HeaderMap;

use super::S3Client;
use super::checksum::{CRC_HEADER, Crc};
use super::wire::{Answer, Transport};
use crate::Options;
use crate::layout::Layout;
use http::{Parsed, Reply, etag_of, flip, parse, refusal, xml_escape};
use verbs::append_as_another;

mod express;
mod http;
mod verbs;

/// S3's most parts in one upload.
const MAX_PARTS: u32 = 10_000;

/// Where the in-memory S3 differs from AWS on purpose, as some servers do, or to let a test
/// reach a limit with small objects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quirks {
    /// The smallest part but the last (S3: 5 MiB).
    pub(crate) min_part: usize,
    /// The largest part one UploadPartCopy copies (S3: 5 GiB); a larger range is refused
    /// with 400 `InvalidRequest`.
    pub(crate) max_copy: u64,
    /// Keys per listing page (S3: 1,000).
    pub(crate) page: usize,
    /// Ignore `If-Match` on Complete and `x-amz-copy-source-if-match` on UploadPartCopy
    /// (moto 5.2.1): appends by copy are not fenced.
    pub(crate) unconditional_multipart: bool,
    /// Store a body whose `x-amz-checksum-crc32c` does not match it (moto 5.2.1).
    pub(crate) unchecked_checksums: bool,
    /// Answer a part sent to an upload that is gone with a bare 500, not 404 `NoSuchUpload`
    /// (moto 5.2.1): only a listing of the uploads tells.
    pub(crate) gone_upload_500: bool,
    /// Most parts (appends) of an object in a directory bucket (S3: 10,000).
    pub(crate) max_appends: u32,
    /// Answer DeleteObjects with 501 `NotImplemented` (s3s-fs, the in-process server): the
    /// client deletes one key a request instead.
    pub(crate) no_delete_objects: bool,
}

impl Default for Quirks {
    fn default() -> Quirks {
        Quirks {
            min_part: 5 << 20,
            max_copy: crate::store::MAX_COPY,
            page: 1000,
            unconditional_multipart: false,
            unchecked_checksums: false,
            gone_upload_500: false,
            max_appends: MAX_PARTS,
            no_delete_objects: false,
        }
    }
}

impl Quirks {
    /// AWS's behaviour, less the deviations the environment names for the server under test
    /// (`.ci/servers.sh` sets them for moto), so that the contract suite expects of the
    /// in-memory S3 what it expects of that server.
    pub(crate) fn of_server_under_test() -> Quirks {
        let set = |name: &str| std::env::var_os(name).is_some();
        Quirks {
            unconditional_multipart: set("S3SYNCR_TEST_COMPLETE_UNCONDITIONAL"),
            unchecked_checksums: set("S3SYNCR_TEST_UNCHECKED_CHECKSUMS"),
            gone_upload_500: set("S3SYNCR_TEST_GONE_UPLOAD_500"),
            // The in-process server stands in when no endpoint is named.
            no_delete_objects: !set("S3SYNCR_TEST_ENDPOINT"),
            ..Quirks::default()
        }
    }
}

/// One request, as a fault function sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// The S3 operation: `PUT`, `GET`, `HEAD`, `DELETE`, `LIST`, `LIST-UPLOADS`,
    /// `CREATE-UPLOAD`, `UPLOAD-PART`, `COPY-PART`, `COMPLETE-UPLOAD`, `ABORT-UPLOAD`.
    pub(crate) op: &'static str,
    pub(crate) key: &'a str,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answered as S3 answers it.
    None,
    /// Refused with this status before it is applied (500 `InternalError`, 503 `SlowDown`,
    /// 409 `ConditionalRequestConflict`).
    Refuse(u16),
    /// Never reaches the server: the connection is reset (or times out) first.
    Reset,
    /// Applied, and its answer lost: the client sees the connection reset.
    LoseAnswer,
    /// Another writer appends these bytes to the object the request names (for a request
    /// that names none, a listing, to the last object) just before the request arrives; then
    /// the request is answered as S3 answers it.
    AppendFirst(&'static [u8]),
    /// The object the request names is deleted just before the request arrives, as a
    /// lifecycle rule may at any moment; then the request is answered as S3 answers it.
    DeleteFirst,
    /// Every open upload is aborted just before the request arrives, as a lifecycle rule or
    /// another process may; then the request is answered as S3 answers it.
    AbortAllFirst,
    /// Answered, with a full-object checksum of the object less its last byte, as a server
    /// whose metadata lags its data might.
    StaleChecksum,
    /// The connection goes silent until the client's timeout: before the request is applied
    /// (`false`) or after (`true`).
    Stall(bool),
    /// One bit flips on the wire where a check covers it: in a request's body (the server
    /// refuses it, `BadDigest`), or in an answer that carries the object's checksum. Elsewhere
    /// nothing flips: no check could tell, as on a path TLS guards.
    Flip,
}

/// Decides each request's fault. Called with the store's lock held: it must not call back. It
/// may panic, as a transport might: nothing of the store has changed by then.
pub(crate) type Faults = Box<dyn FnMut(Call<'_>) -> Fault + Send>;

/// An object as S3 stores it.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) bytes: Vec<u8>,
    pub(crate) etag: String,
    /// User metadata, `x-amz-meta-` included, lowercase.
    pub(crate) meta: Vec<(String, String)>,
    /// Its full-object CRC32C, if it has one.
    pub(crate) crc: Option<Crc>,
    /// A logical clock: the order objects were last written in.
    pub(crate) modified: u64,
}

#[derive(Debug)]
struct Upload {
    key: String,
    meta: Vec<(String, String)>,
    full_object: bool,
    initiated: u64,
    parts: BTreeMap<u32, StoredPart>,
}

#[derive(Debug)]
struct StoredPart {
    bytes: Vec<u8>,
    etag: String,
    crc: Crc,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Object>,
    uploads: BTreeMap<String, Upload>,
    clock: u64,
    requests: u64,
    faults: Option<Faults>,
    /// The last requests and what became of them, for a failing test's message.
    trace: std::collections::VecDeque<String>,
    /// Directory buckets: the parts of each object appended to, and the sessions' tokens.
    appends: BTreeMap<String, u32>,
    sessions: Vec<String>,
    /// Every traced line, hashed in order: two runs that sent the same requests, with the same
    /// outcomes, have the same digest.
    digest: u64,
}

/// How many requests the trace keeps.
const TRACED: usize = 2000;

/// A client of stream `name` in `mem`, with `options`: each one is a handle of its own (its
/// own writer identity), as a process's is.
pub(crate) fn client(mem: &Arc<MemS3>, name: &str, options: Options) -> S3Client {
    client_in(mem, "mem", name, options)
}

/// [`client`] on bucket `bucket` (a directory bucket if its name says so).
pub(crate) fn client_in(mem: &Arc<MemS3>, bucket: &str, name: &str, options: Options) -> S3Client {
    let region = Region::Custom {
        region: "us-east-1".into(),
        endpoint: "http://in-memory.invalid".into(),
    };
    let credentials =
        Credentials::new(Some("mem"), Some("mem"), None, None, None).expect("static credentials");
    let bucket = *Bucket::new(bucket, region, credentials)
        .expect("bucket")
        .with_path_style();
    let layout = Layout::new(name).expect("a valid stream name");
    S3Client::with_transport(bucket, layout, options, mem.clone())
}

/// A handle on stream `name` in `mem`, with `options`, through a [`client`] of its own.
pub(crate) fn storage(mem: &Arc<MemS3>, name: &str, options: Options) -> crate::Storage {
    crate::Storage::with_client(Arc::new(client(mem, name, options.clone())), &options)
}

/// An empty in-memory S3 that takes parts of any size: for streams of small objects.
pub(crate) fn small_parts() -> Arc<MemS3> {
    Arc::new(MemS3::new(Quirks {
        min_part: 1,
        ..Quirks::default()
    }))
}

/// The in-memory S3: one bucket's objects and uploads.
#[derive(Default)]
pub(crate) struct MemS3 {
    state: Mutex<State>,
    quirks: Quirks,
}

/// A failure S3 answers with: status, code, message.
type Refusal = (u16, &'static str, String);

impl MemS3 {
    pub(crate) fn new(quirks: Quirks) -> MemS3 {
        MemS3 {
            state: Mutex::default(),
            quirks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, `faults` decides what happens to each request.
    pub(crate) fn set_faults(&self, faults: Option<Faults>) {
        self.lock().faults = faults;
    }

    /// The objects, by key.
    pub(crate) fn objects(&self) -> BTreeMap<String, Object> {
        self.lock().objects.clone()
    }

    /// The objects of stream `name`, by key: not its hint, nor any other key.
    pub(crate) fn stream(&self, name: &str) -> BTreeMap<String, Object> {
        let layout = Layout::new(name).expect("a valid stream name");
        let mut objects = self.objects();
        objects.retain(|key, _| layout.seq(key).is_some());
        objects
    }

    /// Deletes `key` as a lifecycle rule or another process would.
    pub(crate) fn remove(&self, key: &str) {
        self.lock().objects.remove(key);
    }

    /// Writes `bytes` to `key`, with no metadata, as another tool or process would.
    pub(crate) fn insert(&self, key: &str, bytes: &[u8]) {
        let mut state = self.lock();
        state.clock += 1;
        let object = Object {
            bytes: bytes.to_vec(),
            etag: etag_of(bytes),
            meta: Vec::new(),
            crc: Some(Crc::of(bytes)),
            modified: state.clock,
        };
        state.objects.insert(key.to_owned(), object);
    }

    /// Aborts every open upload, as an `AbortIncompleteMultipartUpload` rule would.
    pub(crate) fn abort_all(&self) -> usize {
        std::mem::take(&mut self.lock().uploads).len()
    }

    /// Requests answered so far, faults included.
    pub(crate) fn requests(&self) -> u64 {
        self.lock().requests
    }

    fn handle(&self, request: &Parsed, body: &[u8]) -> Result<Reply, Refusal> {
        let mut state = self.lock();
        state.requests += 1;
        let call = Call {
            op: request.op,
            key: &request.key,
        };
        let fault = state.faults.as_mut().map_or(Fault::None, |f| f(call));
        match fault {
            Fault::None | Fault::LoseAnswer | Fault::StaleChecksum | Fault::Stall(true) => {}
            Fault::Refuse(status) => return Err(refusal(status)),
            Fault::Reset => return Ok(Reply::cut(io::ErrorKind::ConnectionReset)),
            Fault::Stall(false) => return Ok(Reply::cut(io::ErrorKind::TimedOut)),
            // Its checksum, or the payload hash it is signed with, tells the server.
            Fault::Flip if !body.is_empty() => {
                return Err((400, "BadDigest", "the body arrived damaged".into()));
            }
            Fault::Flip => {}
            Fault::AppendFirst(bytes) => {
                let key = match request.key.as_str() {
                    "" => state.objects.keys().next_back().cloned(),
                    key => Some(key.to_owned()),
                };
                if let Some(key) = key {
                    state.clock += 1;
                    append_as_another(&mut state, &key, bytes);
                }
            }
            Fault::DeleteFirst => drop(state.objects.remove(&request.key)),
            Fault::AbortAllFirst => state.uploads.clear(),
        }
        state.clock += 1;
        let reply = self.apply(&mut state, request, body);
        let outcome = match &reply {
            Ok(reply) => format!("{}", reply.status),
            Err((status, code, _)) => format!("{status} {code}"),
        };
        let by = request
            .header("x-amz-meta-s3syncr-writer")
            .map_or("", |w| &w[w.len().saturating_sub(4)..]);
        let cond = request
            .header("if-match")
            .or(request.header("if-none-match"))
            .unwrap_or("");
        let line = format!(
            "{} {} [{by} {cond}] -> {outcome} ({fault:?})",
            request.op, request.key
        );
        state.digest = (line.bytes()).fold(crate::draw::mix(state.digest), |h, b| {
            crate::draw::mix(h ^ u64::from(b))
        });
        if state.trace.len() == TRACED {
            state.trace.pop_front();
        }
        state.trace.push_back(line);
        let reply = reply?;
        Ok(match fault {
            Fault::LoseAnswer => Reply::cut(io::ErrorKind::ConnectionReset),
            Fault::Stall(true) => Reply::cut(io::ErrorKind::TimedOut),
            Fault::Flip if reply.headers.contains_key(CRC_HEADER) => Reply {
                body: flip(&reply.body),
                ..reply
            },
            Fault::StaleChecksum => match state.objects.get(&request.key) {
                Some(object) if reply.headers.contains_key(CRC_HEADER) => {
                    let less = &object.bytes[..object.bytes.len().saturating_sub(1)];
                    let stale = Crc {
                        len: object.bytes.len() as u64,
                        ..Crc::of(less)
                    };
                    reply.with(CRC_HEADER, &stale.encoded())
                }
                _ => reply,
            },
            _ => reply,
        })
    }

    /// See `State::digest`.
    pub(crate) fn digest(&self) -> u64 {
        self.lock().digest
    }

    /// The last requests applied and their outcomes, oldest first.
    pub(crate) fn trace(&self) -> Vec<String> {
        self.lock().trace.iter().cloned().collect()
    }
}

impl Transport for MemS3 {
    fn send(
        &self,
        bucket: &Bucket,
        key: &str,
        command: Command<'_>,
        body: Option<&[u8]>,
        extra: &HeaderMap,
    ) -> Result<Answer, S3Error> {
        let request = AttoRequest::new(bucket, key, command)?;
        let mut headers = request.headers()?;
        headers.extend(extra.clone());
        let body = super::wire::body_of(&request, body)?;
        let verb = request.command().http_verb().to_string();
        let parsed = parse(&verb, request.url()?.as_str(), bucket, headers);
        let reply = match self.handle(&parsed, &body) {
            Ok(reply) => reply,
            Err((status, code, message)) => {
                let xml = match code {
                    "" => String::new(),
                    code => format!(
                        "<Error><Code>{code}</Code><Message>{}</Message></Error>",
                        xml_escape(&message)
                    ),
                };
                Reply::bytes(status, xml.into_bytes())
            }
        };
        if let Some(kind) = reply.cut {
            return Err(S3Error::Io(io::Error::new(
                kind,
                "the in-memory S3 lost the answer",
            )));
        }
        Answer::new(
            reply.status,
            reply.headers,
            Box::new(Cursor::new(reply.body)),
        )
    }
}
