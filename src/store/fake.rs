//! An in-memory store whose requests a test breaks one at a time: each request takes the next
//! [`Step`] of a script. It keeps the contracts of [`S3Client`](crate::client::S3Client) that
//! the writer counts on: conditions, settling a write whose answer was lost by the writing
//! handle, `NoSuchUpload` for an upload that is gone. It also checks the stream's invariants
//! as it goes: a write that rewrites a sealed object, or builds on bytes that are not a prefix
//! of what the handle wrote, panics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Error;
use crate::client::{Crc, Expect, Head, Meta, Part, Recorded, Running, Whole, is_no_such_upload};
use crate::layout::{PendingUpload, Segment};
use crate::store::Store;

/// What another writer appends in a [`Step::Other`].
pub(crate) const OTHER: &[u8] = b"<OTHER>";

/// What one request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// It goes through.
    Pass,
    /// It fails before the store sees it, after its retries.
    Fail,
    /// The store applies it, and the answer is lost (after its retries).
    Lost,
    /// Another writer appends to the object first.
    Other,
    /// Every upload vanishes first, as a lifecycle rule or another process aborts them.
    Vanish,
    /// The request panics (only on requests that run on a job's thread).
    Panic,
    /// A HEAD answers with the checksum of the object without its last byte, as a server
    /// whose metadata lags its data might.
    Stale,
}

struct Object {
    bytes: Vec<u8>,
    etag: String,
    meta: Meta,
    writer: u32,
}

struct Upload {
    seq: u64,
    meta: Meta,
    writer: u32,
    parts: BTreeMap<u32, Vec<u8>>,
}

#[derive(Default)]
struct Shared {
    objects: BTreeMap<u64, Object>,
    uploads: HashMap<String, Upload>,
    versions: u64,
    /// The requests seen, in order.
    requests: Vec<&'static str>,
    script: VecDeque<Step>,
}

/// One handle's view of the shared store: it writes as writer `me`.
pub(crate) struct Fake {
    shared: Arc<Mutex<Shared>>,
    me: u32,
}

impl Fake {
    /// An empty store whose requests meet `script`, one step each, then pass.
    pub(crate) fn new(script: impl IntoIterator<Item = Step>) -> Fake {
        let shared = Shared {
            script: script.into_iter().collect(),
            ..Shared::default()
        };
        Fake {
            shared: Arc::new(Mutex::new(shared)),
            me: 1,
        }
    }

    /// The steps the next requests meet, one each, then they pass.
    pub(crate) fn script(&self, script: impl IntoIterator<Item = Step>) {
        self.lock().script = script.into_iter().collect();
    }

    /// Another handle on the same store.
    pub(crate) fn handle(&self) -> Fake {
        let me = self
            .lock()
            .objects
            .values()
            .map(|o| o.writer)
            .max()
            .unwrap_or(1);
        Fake {
            shared: self.shared.clone(),
            me: me.max(self.me) + 1,
        }
    }

    /// The stream as the store holds it: every object's bytes, in order.
    pub(crate) fn stream(&self) -> Vec<u8> {
        let shared = self.lock();
        shared
            .objects
            .values()
            .flat_map(|o| o.bytes.clone())
            .collect()
    }

    /// The size of every object, in order.
    pub(crate) fn sizes(&self) -> Vec<usize> {
        self.lock()
            .objects
            .values()
            .map(|o| o.bytes.len())
            .collect()
    }

    /// How many requests were made.
    pub(crate) fn log(&self) -> Vec<&'static str> {
        self.lock().requests.clone()
    }

    pub(crate) fn requests(&self) -> usize {
        self.lock().requests.len()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next step of the script for request `op` on object `seq`, and does what
    /// happens before the store sees the request.
    fn step(&self, op: &'static str, seq: Option<u64>, on_job: bool) -> Result<Step, Error> {
        let mut shared = self.lock();
        shared.requests.push(op);
        let step = shared.script.pop_front().unwrap_or(Step::Pass);
        match step {
            Step::Fail => return Err(transient(op)),
            Step::Other => {
                shared.versions += 1;
                let etag = format!("\"v{}\"", shared.versions);
                let seq = seq.or_else(|| shared.objects.keys().last().copied());
                if let Some(object) = seq.and_then(|seq| shared.objects.get_mut(&seq)) {
                    object.bytes.extend_from_slice(OTHER);
                    object.writer = 0;
                    object.etag = etag;
                }
            }
            Step::Vanish => shared.uploads.clear(),
            Step::Panic if on_job => {
                drop(shared);
                // Unwinds as a panic does, without the hook's message in the test output.
                std::panic::resume_unwind(Box::new("a request panicked (scripted)"));
            }
            _ => {}
        }
        Ok(step)
    }

    /// Writes `bytes` to object `seq` as writer `writer`, if `expect` holds or the object is
    /// this handle's and a prefix of `bytes` (a write of its whose answer was lost).
    fn write(
        &self,
        seq: u64,
        meta: Meta,
        bytes: Vec<u8>,
        expect: Expect<'_>,
        writer: u32,
    ) -> Result<String, Error> {
        let mut shared = self.lock();
        assert!(
            shared.objects.range(seq + 1..).next().is_none(),
            "object {seq} written after the next one exists: a sealed object was rewritten"
        );
        let holds = match (expect, shared.objects.get(&seq)) {
            (Expect::Absent, None) => true,
            (Expect::Etag(etag), Some(object)) => object.etag == etag,
            _ => false,
        };
        if let Some(object) = shared.objects.get(&seq)
            && !holds
        {
            let ours = object.writer == writer && bytes.starts_with(&object.bytes);
            if !ours {
                return Err(Error::Fenced {
                    key: key(seq),
                    lost: 0,
                });
            }
        } else if !holds {
            return Err(Error::Fenced {
                key: key(seq),
                lost: 0,
            });
        }
        if let Some(object) = shared.objects.get(&seq)
            && object.writer == writer
        {
            assert!(
                bytes.starts_with(&object.bytes),
                "object {seq}: a write of this handle's does not extend its last one"
            );
        }
        shared.versions += 1;
        let etag = format!("\"v{}\"", shared.versions);
        let object = Object {
            bytes,
            etag: etag.clone(),
            meta,
            writer,
        };
        shared.objects.insert(seq, object);
        Ok(etag)
    }

    /// Ends a request that the store applied (`result`) as `step` says.
    fn answer<T>(op: &'static str, step: Step, result: Result<T, Error>) -> Result<T, Error> {
        match (step, result) {
            (Step::Lost, Ok(_)) => Err(transient(op)),
            (_, result) => result,
        }
    }
}

fn key(seq: u64) -> String {
    format!("k-{seq:020}")
}

fn transient(op: &'static str) -> Error {
    Error::Transport {
        op,
        key: String::new(),
        source: std::io::ErrorKind::ConnectionReset.into(),
    }
}

fn no_such_upload(op: &'static str, key: &str) -> Error {
    Error::Status {
        op,
        key: key.into(),
        status: 404,
        code: "NoSuchUpload".into(),
        message: String::new(),
    }
}

fn seq_of(key: &str) -> u64 {
    key.trim_start_matches("k-").parse().expect("a fake key")
}

impl Store for Fake {
    fn bucket_name(&self) -> String {
        "fake".into()
    }

    fn key(&self, seq: u64) -> String {
        key(seq)
    }

    fn list(&self, after: Option<u64>) -> Result<Vec<Segment>, Error> {
        self.step("LIST", None, false)?;
        let shared = self.lock();
        let from = after.map_or(0, |seq| seq + 1);
        Ok((shared.objects.range(from..))
            .map(|(&seq, object)| Segment {
                key: key(seq),
                seq,
                start: 0,
                size: object.bytes.len() as u64,
                last_modified: String::new(),
            })
            .collect())
    }

    fn list_uploads(&self) -> Result<Vec<PendingUpload>, Error> {
        Ok(Vec::new())
    }

    fn next_after(&self, seq: u64) -> Result<Option<(u64, Option<u64>)>, Error> {
        let shared = self.lock();
        let next = shared.objects.range(seq + 1..).next();
        Ok(next.map(|(&seq, object)| (seq, Some(object.meta.start))))
    }

    fn stat(&self, seq: u64) -> Result<Head, Error> {
        let step = self.step("HEAD", Some(seq), false)?;
        let shared = self.lock();
        let object = shared.objects.get(&seq).ok_or_else(|| Error::Status {
            op: "HEAD",
            key: key(seq),
            status: 404,
            code: String::new(),
            message: String::new(),
        })?;
        Ok(Head {
            size: object.bytes.len() as u64,
            etag: object.etag.clone(),
            start: Some(object.meta.start),
            ours: object.writer == self.me,
            seal: Some(object.meta.seal),
            // As SeaweedFS does: a HEAD tells the checksum, a ranged GET does not.
            crc: Some(match step {
                Step::Stale => Crc {
                    len: object.bytes.len() as u64,
                    ..Crc::of(&object.bytes[..object.bytes.len().saturating_sub(1)])
                },
                _ => Crc::of(&object.bytes),
            }),
        })
    }

    fn get_whole(&self, seq: u64) -> Result<Whole, Error> {
        let head = self.stat(seq)?;
        let shared = self.lock();
        let object = &shared.objects[&seq];
        Ok(Whole {
            buf: object.bytes.clone(),
            etag: head.etag,
            start: head.start,
            seal: head.seal,
        })
    }

    fn get_range(
        &self,
        seq: u64,
        start: u64,
        out: &mut [u8],
        _cancel: Option<&AtomicBool>,
        crc: Option<&mut Running>,
    ) -> Result<Recorded, Error> {
        self.step("GET", Some(seq), true)?;
        let shared = self.lock();
        let object = &shared.objects[&seq];
        let from = start as usize;
        out.copy_from_slice(&object.bytes[from..from + out.len()]);
        if let Some(crc) = crc {
            crc.update(out);
        }
        Ok(Recorded {
            start: Some(object.meta.start),
            seal: Some(object.meta.seal),
            crc: None,
        })
    }

    fn delete(&self, seq: u64) -> Result<(), Error> {
        self.step("DELETE", Some(seq), false)?;
        self.lock().objects.remove(&seq);
        Ok(())
    }

    fn overwrite(
        &self,
        seq: u64,
        meta: Meta,
        only_in_s3: usize,
        body: &[u8],
        _in_s3: usize,
        expect: Expect<'_>,
    ) -> Result<String, Error> {
        let step = self.step("PUT", Some(seq), true)?;
        let mut bytes = match only_in_s3 {
            0 => Vec::new(),
            n => {
                let shared = self.lock();
                let object = shared.objects.get(&seq);
                match object.filter(|o| o.bytes.len() >= n) {
                    Some(object) => object.bytes[..n].to_vec(),
                    None => {
                        return Err(Error::Fenced {
                            key: key(seq),
                            lost: 0,
                        });
                    }
                }
            }
        };
        bytes.extend_from_slice(body);
        Fake::answer("PUT", step, self.write(seq, meta, bytes, expect, self.me))
    }

    fn create_upload(&self, key: &str, meta: Meta) -> Result<String, Error> {
        let step = self.step("CREATE", Some(seq_of(key)), true)?;
        let mut shared = self.lock();
        shared.versions += 1;
        let id = format!("u{}", shared.versions);
        let upload = Upload {
            seq: seq_of(key),
            meta,
            writer: self.me,
            parts: BTreeMap::new(),
        };
        shared.uploads.insert(id.clone(), upload);
        drop(shared);
        Fake::answer("CREATE", step, Ok(id))
    }

    /// One part, whatever the size: the fake's objects are small.
    fn copy_parts(&self, _size: u64) -> u32 {
        1
    }

    fn copy(&self, key: &str, id: &str, size: u64, etag: &str) -> Result<Vec<Part>, Error> {
        let step = self.step("COPY", Some(seq_of(key)), true)?;
        let mut shared = self.lock();
        if !shared.uploads.contains_key(id) {
            return Err(no_such_upload("COPY", key));
        }
        // As S3Client does: a version of this handle's that grew past `size` holds the same
        // first bytes.
        let (bytes, source) = match shared.objects.get(&seq_of(key)) {
            Some(o) if o.bytes.len() as u64 >= size && (o.etag == etag || o.writer == self.me) => {
                (o.bytes[..size as usize].to_vec(), o.etag.clone())
            }
            _ => {
                return Err(Error::Fenced {
                    key: key.into(),
                    lost: 0,
                });
            }
        };
        if let Some(upload) = shared.uploads.get_mut(id) {
            upload.parts.insert(1, bytes);
        }
        drop(shared);
        let part = Part {
            number: 1,
            etag: format!("\"{id}-1\""),
            source: Some(source),
            crc: None,
        };
        Fake::answer("COPY", step, Ok(vec![part]))
    }

    fn upload_part(&self, key: &str, id: &str, number: u32, bytes: &[u8]) -> Result<Part, Error> {
        let step = self.step("PART", Some(seq_of(key)), true)?;
        let mut shared = self.lock();
        let Some(upload) = shared.uploads.get_mut(id) else {
            return Err(no_such_upload("PART", key));
        };
        upload.parts.insert(number, bytes.to_vec());
        drop(shared);
        let part = Part {
            number,
            etag: format!("\"{id}-{number}\""),
            source: None,
            crc: None,
        };
        Fake::answer("PART", step, Ok(part))
    }

    fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[Part],
        expect: Expect<'_>,
        size: u64,
    ) -> Result<String, Error> {
        let step = self.step("COMPLETE", Some(seq_of(key)), true)?;
        let upload = self.lock().uploads.remove(id);
        let result = match upload {
            Some(upload) => {
                let mut bytes = Vec::new();
                for part in parts {
                    bytes.extend_from_slice(&upload.parts[&part.number]);
                }
                assert_eq!(bytes.len() as u64, size, "{key}: Complete's size");
                self.write(upload.seq, upload.meta, bytes, expect, upload.writer)
            }
            None => Err(no_such_upload("COMPLETE", key)),
        };
        // A Complete whose upload is gone is settled by the object, as S3Client does.
        let result = match result {
            Err(err) if is_no_such_upload(&err) => match self.lock().objects.get(&seq_of(key)) {
                Some(o) if o.writer == self.me && o.bytes.len() as u64 == size => {
                    Ok(o.etag.clone())
                }
                _ => Err(err),
            },
            result => result,
        };
        Fake::answer("COMPLETE", step, result)
    }

    fn abort(&self, _key: &str, id: &str) {
        if self.step("ABORT", None, false).is_ok() {
            self.lock().uploads.remove(id);
        }
    }
}
