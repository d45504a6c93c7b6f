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
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::checksum::{self, CRC_ELEMENT, CRC_HEADER, Crc, TYPE_HEADER};
use super::express::OFFSET_HEADER;
use super::is_directory_bucket;
use super::wire::{Answer, Transport};
use super::{S3Client, WRITER_HEADER, xml_text, xml_unescape};
use crate::Options;
use crate::layout::Layout;

mod express;

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

    fn apply(&self, state: &mut State, r: &Parsed, body: &[u8]) -> Result<Reply, Refusal> {
        express::authorize(state, r)?;
        match r.op {
            "PUT" if r.directory && r.header(OFFSET_HEADER).is_some() => {
                express::append(state, r, body, &self.quirks)
            }
            "PUT" => {
                // A new object of one part.
                state.appends.remove(&r.key);
                put(state, r, body, &self.quirks)
            }
            "CREATE-SESSION" => express::create_session(state, r),
            "GET" => get(state, r),
            "HEAD" => head(state, r),
            "DELETE" => {
                state.objects.remove(&r.key);
                state.appends.remove(&r.key);
                Ok(Reply::empty(204))
            }
            "LIST" if r.directory && r.has("start-after") => Err((
                400,
                "InvalidArgument",
                "start-after is not supported for directory buckets".into(),
            )),
            "DELETE-OBJECTS" if self.quirks.no_delete_objects => Err((
                501,
                "NotImplemented",
                "DeleteObjects is not implemented".to_owned(),
            )),
            "DELETE-OBJECTS" => delete_objects(state, r, body),
            "LIST" => Ok(self.list(state, r)),
            "LIST-UPLOADS" => Ok(list_uploads(state, r)),
            "CREATE-UPLOAD" => Ok(create_upload(state, r)),
            "UPLOAD-PART" => upload_part(state, r, body, &self.quirks),
            "COPY-PART" => copy_part(state, r, &self.quirks),
            "COMPLETE-UPLOAD" => self.complete(state, r, body),
            "ABORT-UPLOAD" => match state.uploads.remove(r.query("uploadId")) {
                Some(_) => Ok(Reply::empty(204)),
                None => Err(no_such_upload()),
            },
            _ => Err((
                501,
                "NotImplemented",
                format!("{} is not implemented", r.op),
            )),
        }
    }

    fn list(&self, state: &State, r: &Parsed) -> Reply {
        let prefix = r.query("prefix");
        let max = (r.query("max-keys").parse().ok())
            .unwrap_or(self.quirks.page)
            .min(self.quirks.page);
        // The continuation token is the last key of the page before (opaque to the client).
        let after = match r.query("continuation-token") {
            "" => r.query("start-after"),
            token => token,
        };
        let mut keys = (state.objects.iter())
            .filter(|(key, _)| key.starts_with(prefix) && key.as_str() > after)
            .take(max + 1);
        let mut xml = String::from("<ListBucketResult><Name>mem</Name>");
        let mut last = None;
        for (key, object) in keys.by_ref().take(max) {
            xml.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>2026-01-01T00:00:{:02}.000Z\
                 </LastModified><ETag>{}</ETag><Size>{}</Size></Contents>",
                xml_escape(key),
                object.modified % 60,
                xml_escape(&object.etag),
                object.bytes.len()
            ));
            last = Some(key.clone());
        }
        let truncated = keys.next().is_some();
        xml.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
        if let (true, Some(last)) = (truncated, last) {
            xml.push_str(&format!(
                "<NextContinuationToken>{}</NextContinuationToken>",
                xml_escape(&last)
            ));
        }
        xml.push_str("</ListBucketResult>");
        Reply::xml(xml)
    }

    fn complete(&self, state: &mut State, r: &Parsed, body: &[u8]) -> Result<Reply, Refusal> {
        let id = r.query("uploadId");
        let Some(upload) = state.uploads.get(id) else {
            return Err(no_such_upload());
        };
        if !self.quirks.unconditional_multipart {
            check_condition(state.objects.get(&r.key), r)?;
        }
        let body = String::from_utf8_lossy(body);
        let listed: Vec<(u32, String)> = (body.split("<Part>").skip(1))
            .map(|part| {
                let number = xml_text(part, "PartNumber").parse().unwrap_or(0);
                (number, xml_unescape(&xml_text(part, "ETag")))
            })
            .collect();
        if listed.is_empty() || listed.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err((400, "InvalidPartOrder", "parts must ascend".into()));
        }
        let mut bytes = Vec::new();
        let mut crc: Option<Crc> = None;
        for (i, (number, etag)) in listed.iter().enumerate() {
            let part = upload.parts.get(number).filter(|p| &p.etag == etag);
            let Some(part) = part else {
                return Err((
                    400,
                    "InvalidPart",
                    format!("part {number} is not as listed"),
                ));
            };
            if i + 1 < listed.len() && part.bytes.len() < self.quirks.min_part {
                return Err((400, "EntityTooSmall", format!("part {number} is too small")));
            }
            bytes.extend_from_slice(&part.bytes);
            crc = Some(crc.map_or(part.crc, |sum| sum.then(part.crc)));
        }
        let crc = crc.filter(|_| upload.full_object);
        if let (Some(sent), Some(crc)) = (r.crc(bytes.len() as u64), crc)
            && sent != crc
        {
            return Err((
                400,
                "BadDigest",
                "the object's checksum does not match".into(),
            ));
        }
        let upload = state.uploads.remove(id).expect("checked above");
        let etag = format!("\"{}-{}\"", etag_of(&bytes).trim_matches('"'), listed.len());
        let object = Object {
            bytes,
            etag: etag.clone(),
            meta: upload.meta,
            crc,
            modified: state.clock,
        };
        state.objects.insert(r.key.clone(), object);
        Ok(Reply::xml(format!(
            "<CompleteMultipartUploadResult><Key>{}</Key><ETag>{}</ETag>\
             </CompleteMultipartUploadResult>",
            xml_escape(&r.key),
            xml_escape(&etag)
        )))
    }
}

/// Appends `bytes` to `key`, if there is such an object, as a writer other than every
/// client's would: its writer metadata names none of them.
fn append_as_another(state: &mut State, key: &str, bytes: &[u8]) {
    let clock = state.clock;
    let Some(object) = state.objects.get_mut(key) else {
        return;
    };
    object.bytes.extend_from_slice(bytes);
    object.etag = etag_of(&object.bytes);
    object.crc = object.crc.map(|_| Crc::of(&object.bytes));
    object.modified = clock;
    object.meta.retain(|(name, _)| name != WRITER_HEADER);
    object.meta.push((WRITER_HEADER.into(), "another".into()));
    object.meta.sort();
}

fn put(state: &mut State, r: &Parsed, body: &[u8], quirks: &Quirks) -> Result<Reply, Refusal> {
    check_condition(state.objects.get(&r.key), r)?;
    let crc = checked_crc(r, body, quirks)?;
    let etag = etag_of(body);
    let object = Object {
        bytes: body.to_vec(),
        etag: etag.clone(),
        meta: r.meta(),
        crc: Some(crc),
        modified: state.clock,
    };
    state.objects.insert(r.key.clone(), object);
    Ok(Reply::empty(200).with("etag", &etag))
}

/// The CRC32C of a PUT's or a part's `body`; `BadDigest` if the request carries another
/// (unless the server stores it anyway, as moto does).
fn checked_crc(r: &Parsed, body: &[u8], quirks: &Quirks) -> Result<Crc, Refusal> {
    let crc = Crc::of(body);
    match r.crc(body.len() as u64) {
        Some(sent) if sent != crc && !quirks.unchecked_checksums => Err((
            400,
            "BadDigest",
            "the body's checksum does not match".into(),
        )),
        _ => Ok(crc),
    }
}

/// `If-None-Match: *` holds if there is no object, `If-Match` if its ETag matches; `If-Match`
/// on a missing key is 404, as AWS answers it.
fn check_condition(object: Option<&Object>, r: &Parsed) -> Result<(), Refusal> {
    let failed = || (412, "PreconditionFailed", "a condition failed".to_owned());
    if r.header("if-none-match") == Some("*") && object.is_some() {
        return Err(failed());
    }
    match (r.header("if-match"), object) {
        (Some(_), None) => Err(no_such_key()),
        (Some(etag), Some(object)) if etag != object.etag => Err(failed()),
        _ => Ok(()),
    }
}

fn get(state: &State, r: &Parsed) -> Result<Reply, Refusal> {
    let object = state.objects.get(&r.key).ok_or_else(no_such_key)?;
    let size = object.bytes.len() as u64;
    let reply = match r.header("range").and_then(parse_range) {
        None => Reply::bytes(200, object.bytes.clone()).with_crc(object),
        Some((start, _)) if start >= size => {
            return Err((416, "InvalidRange", "the range is not satisfiable".into()));
        }
        Some((start, end)) => {
            let end = end.unwrap_or(u64::MAX).min(size - 1);
            let bytes = object.bytes[start as usize..=end as usize].to_vec();
            let range = format!("bytes {start}-{end}/{size}");
            let reply = Reply::bytes(206, bytes).with("content-range", &range);
            // S3 sends the stored checksum only with an answer that holds the whole object.
            match start == 0 && end + 1 == size {
                true => reply.with_crc(object),
                false => reply,
            }
        }
    };
    Ok(reply.with_object(object))
}

fn head(state: &State, r: &Parsed) -> Result<Reply, Refusal> {
    match state.objects.get(&r.key) {
        Some(object) => {
            let length = object.bytes.len().to_string();
            let reply = Reply::empty(200).with("content-length", &length);
            Ok(reply.with_object(object).with_crc(object))
        }
        // A HEAD's answer has no body.
        None => Err((404, "", String::new())),
    }
}

/// DeleteObjects: up to 1,000 keys, a missing one deleted as well; S3 wants the body's
/// Content-MD5. Quiet: the answer lists failures only, and none fail here.
fn delete_objects(state: &mut State, r: &Parsed, body: &[u8]) -> Result<Reply, Refusal> {
    if r.header("content-md5").is_none() {
        let message = "Content-MD5 is required for DeleteObjects".to_owned();
        return Err((400, "InvalidRequest", message));
    }
    let text = String::from_utf8_lossy(body);
    let keys: Vec<String> = (text.split("<Key>").skip(1))
        .filter_map(|k| k.split_once("</Key>").map(|(key, _)| xml_unescape(key)))
        .collect();
    if keys.len() > 1000 {
        return Err((400, "MalformedXML", "more than 1,000 keys".to_owned()));
    }
    for key in keys {
        state.objects.remove(&key);
        state.appends.remove(&key);
    }
    let xml = "<DeleteResult></DeleteResult>".as_bytes().to_vec();
    Ok(Reply::bytes(200, xml))
}

fn list_uploads(state: &State, r: &Parsed) -> Reply {
    let prefix = r.query("prefix");
    let mut xml = String::from("<ListMultipartUploadsResult>");
    for (id, upload) in &state.uploads {
        if upload.key.starts_with(prefix) {
            xml.push_str(&format!(
                "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiated>{:020}</Initiated>\
                 </Upload>",
                xml_escape(&upload.key),
                xml_escape(id),
                upload.initiated
            ));
        }
    }
    xml.push_str("<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>");
    Reply::xml(xml)
}

fn create_upload(state: &mut State, r: &Parsed) -> Reply {
    let id = format!("upload-{}", state.clock);
    let upload = Upload {
        key: r.key.clone(),
        meta: r.meta(),
        full_object: r.header(TYPE_HEADER) == Some("FULL_OBJECT"),
        initiated: state.clock,
        parts: BTreeMap::new(),
    };
    state.uploads.insert(id.clone(), upload);
    Reply::xml(format!(
        "<InitiateMultipartUploadResult><Key>{}</Key><UploadId>{id}</UploadId>\
         </InitiateMultipartUploadResult>",
        xml_escape(&r.key)
    ))
}

/// The part number of a part request, if within S3's limits.
fn part_number(r: &Parsed) -> Result<u32, Refusal> {
    match r.query("partNumber").parse() {
        Ok(n @ 1..=MAX_PARTS) => Ok(n),
        _ => Err((
            400,
            "InvalidArgument",
            "part numbers go from 1 to 10,000".into(),
        )),
    }
}

fn upload_part(
    state: &mut State,
    r: &Parsed,
    body: &[u8],
    quirks: &Quirks,
) -> Result<Reply, Refusal> {
    let number = part_number(r)?;
    let upload = (state.uploads.get_mut(r.query("uploadId"))).ok_or_else(|| gone(quirks))?;
    let crc = checked_crc(r, body, quirks)?;
    let etag = etag_of(body);
    let part = StoredPart {
        bytes: body.to_vec(),
        etag: etag.clone(),
        crc,
    };
    upload.parts.insert(number, part);
    Ok(Reply::empty(200).with("etag", &etag))
}

fn copy_part(state: &mut State, r: &Parsed, quirks: &Quirks) -> Result<Reply, Refusal> {
    let number = part_number(r)?;
    if !state.uploads.contains_key(r.query("uploadId")) {
        return Err(gone(quirks));
    }
    let source = r.header("x-amz-copy-source").unwrap_or_default();
    let source = percent_decode(source.trim_start_matches('/'));
    // `bucket/key`: this store is one bucket.
    let source_key = source.split_once('/').map_or("", |(_, key)| key);
    let object = state.objects.get(source_key).ok_or_else(no_such_key)?;
    let condition = r.header("x-amz-copy-source-if-match");
    if !quirks.unconditional_multipart && condition.is_some_and(|etag| etag != object.etag) {
        return Err((412, "PreconditionFailed", "the source changed".into()));
    }
    let size = object.bytes.len() as u64;
    let (start, end) = match r.header("x-amz-copy-source-range").and_then(parse_range) {
        Some((start, Some(end))) if start <= end && end < size => (start, end),
        Some(_) => {
            return Err((
                400,
                "InvalidRange",
                "the copy range is not satisfiable".into(),
            ));
        }
        None => (0, size.saturating_sub(1)),
    };
    if end - start + 1 > quirks.max_copy {
        return Err((
            400,
            "InvalidRequest",
            format!(
                "The specified copy source is larger than the maximum allowable size for a \
                 copy source: {}",
                quirks.max_copy
            ),
        ));
    }
    let bytes = object.bytes[start as usize..=end as usize].to_vec();
    let crc = Crc::of(&bytes);
    let etag = etag_of(&bytes);
    let xml = format!(
        "<CopyPartResult><ETag>{}</ETag><{CRC_ELEMENT}>{}</{CRC_ELEMENT}></CopyPartResult>",
        xml_escape(&etag),
        crc.encoded()
    );
    let upload = state.uploads.get_mut(r.query("uploadId")).expect("checked");
    upload.parts.insert(number, StoredPart { bytes, etag, crc });
    Ok(Reply::xml(xml))
}

/// A request as the server would see it: its operation, key, query and headers.
struct Parsed {
    op: &'static str,
    /// To a directory bucket (S3 Express One Zone).
    directory: bool,
    key: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
}

impl Parsed {
    fn query(&self, name: &str) -> &str {
        (self.query.iter())
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn meta(&self) -> Vec<(String, String)> {
        let mut meta: Vec<(String, String)> = (self.headers.iter())
            .filter(|(name, _)| name.as_str().starts_with("x-amz-meta-"))
            .filter_map(|(name, v)| Some((name.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        meta.sort();
        meta
    }

    /// The CRC32C the request carries for a body of `len` bytes.
    fn crc(&self, len: u64) -> Option<Crc> {
        checksum::stored(self.header(CRC_HEADER), None, len)
    }
}

/// What the store answers: status, headers, body; or a connection that closed instead.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
    cut: Option<io::ErrorKind>,
}

impl Reply {
    fn empty(status: u16) -> Reply {
        Reply::bytes(status, Vec::new())
    }

    fn bytes(status: u16, body: Vec<u8>) -> Reply {
        let length = body.len().to_string();
        Reply {
            status,
            headers: HeaderMap::new(),
            body,
            cut: None,
        }
        .with("content-length", &length)
    }

    fn xml(xml: String) -> Reply {
        Reply::bytes(200, xml.into_bytes())
    }

    /// No answer: the connection fails with `kind` instead.
    fn cut(kind: io::ErrorKind) -> Reply {
        Reply {
            cut: Some(kind),
            ..Reply::empty(0)
        }
    }

    fn with(mut self, name: &str, value: &str) -> Reply {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.insert(name, value);
        }
        self
    }

    /// With the object's ETag and user metadata.
    fn with_object(self, object: &Object) -> Reply {
        let reply = self.with("etag", &object.etag);
        (object.meta.iter()).fold(reply, |reply, (name, value)| reply.with(name, value))
    }

    /// With the object's full-object checksum, if it has one.
    fn with_crc(self, object: &Object) -> Reply {
        match object.crc {
            Some(crc) => (self.with(CRC_HEADER, &crc.encoded())).with(TYPE_HEADER, "FULL_OBJECT"),
            None => self,
        }
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

/// The operation, key, query and headers of a request to `url`.
fn parse(verb: &str, url: &str, bucket: &Bucket, headers: HeaderMap) -> Parsed {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let target = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path);
    // Path style (`/bucket/key`) or virtual-hosted (`/key`).
    let key = match path.strip_prefix(&format!("/{}", bucket.name())) {
        Some(rest) if bucket.is_path_style() => rest.trim_start_matches('/').to_owned(),
        _ => path.trim_start_matches('/').to_owned(),
    };
    let query = (query.split('&').filter(|pair| !pair.is_empty()))
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect();
    let mut parsed = Parsed {
        op: "",
        directory: is_directory_bucket(&bucket.name()),
        key,
        query,
        headers,
    };
    parsed.op = match verb {
        "GET" if parsed.has("uploads") => "LIST-UPLOADS",
        "GET" if parsed.has("session") => "CREATE-SESSION",
        "GET" if parsed.key.is_empty() => "LIST",
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" if parsed.has("partNumber") && parsed.header("x-amz-copy-source").is_some() => {
            "COPY-PART"
        }
        "PUT" if parsed.has("partNumber") => "UPLOAD-PART",
        "PUT" => "PUT",
        "POST" if parsed.has("uploads") => "CREATE-UPLOAD",
        "POST" if parsed.has("delete") => "DELETE-OBJECTS",
        "POST" => "COMPLETE-UPLOAD",
        "DELETE" if parsed.has("uploadId") => "ABORT-UPLOAD",
        "DELETE" => "DELETE",
        _ => "UNKNOWN",
    };
    parsed
}

/// `bytes=<first>-[<last>]`.
fn parse_range(range: &str) -> Option<(u64, Option<u64>)> {
    let (first, last) = range.trim().strip_prefix("bytes=")?.split_once('-')?;
    let last = match last.trim() {
        "" => None,
        last => Some(last.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, last))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An ETag that, as S3's MD5, is the same for the same bytes (and `-N` after N parts):
/// CRC32C and length, many times cheaper to compute than an MD5, which the client never
/// relies on (SSE-KMS objects have none).
fn etag_of(bytes: &[u8]) -> String {
    format!("\"{:08x}{:016x}\"", crc32c::crc32c(bytes), bytes.len())
}

fn refusal(status: u16) -> Refusal {
    let code = match status {
        503 => "SlowDown",
        409 => "ConditionalRequestConflict",
        _ => "InternalError",
    };
    (status, code, "injected".into())
}

/// `bytes` with a bit flipped, in the middle (nothing flips in an empty body).
fn flip(bytes: &[u8]) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    if let Some(byte) = flipped.get_mut(bytes.len() / 2) {
        *byte ^= 0x10;
    }
    flipped
}

fn no_such_key() -> Refusal {
    (404, "NoSuchKey", "the key does not exist".into())
}

/// What a part request to an upload that is gone gets.
fn gone(quirks: &Quirks) -> Refusal {
    match quirks.gone_upload_500 {
        true => (500, "", String::new()),
        false => no_such_upload(),
    }
}

fn no_such_upload() -> Refusal {
    (404, "NoSuchUpload", "the upload does not exist".into())
}
