//! Random sequences of writes, flushes, reopenings, crashes, seeks, reads, trims and deletions of
//! the oldest objects by hand, each with a random fault injected by a proxy between the client
//! and the server, checked step by step against a `Vec<u8>` model of the stream that keeps every
//! byte at its absolute offset.
//!
//! Invariants checked: no byte is ever read from a wrong offset, whatever was trimmed or deleted;
//! reads at or after the first byte still in S3 return exactly the model's bytes; reads before
//! it return the model's bytes (from what the handle still holds) or fail with `NotFound`; seeks
//! land where `std::io::Cursor` would (or fail with `InvalidInput`, or `NotFound` before the
//! first byte, position unchanged); a new handle starts at the first byte; `trim` returns the
//! first offset S3 then holds, never deletes the last object and leaves no gap; after a crash
//! (the handle vanishes without flushing) the stream holds every flushed byte and is a prefix of
//! what was written, so no acknowledged byte is lost, duplicated or reordered; a flush that runs
//! out of attempts fails, keeps its bytes, and the next one succeeds; an object that reached
//! its seal size is never written again.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::common::*;
use proptest::prelude::*;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Fault, Proxy};

#[derive(Debug, Clone)]
enum Op {
    /// `len` bytes derived from `seed`.
    Write {
        len: usize,
        seed: u64,
    },
    Flush,
    /// A flush whose every attempt fails.
    FailedFlush,
    /// Close, then open a new handle.
    Reopen,
    /// The handle vanishes without flushing (as in a killed process), then a new one opens.
    Crash,
    Seek(SeekFrom),
    Read(usize),
    /// `Storage::trim` before this fraction (in thousandths) of the length.
    Trim(u64),
    /// Flush, then delete this many of the oldest objects directly (never the last one), as a
    /// lifecycle rule would.
    DeleteOldest(usize),
    /// A second handle, that only reads, reads this many bytes.
    ReaderRead(usize),
    /// The reading handle seeks.
    ReaderSeek(SeekFrom),
    /// The reading handle is replaced by a new one.
    ReaderReopen,
    /// A third handle trims, as a retention job running beside the reader would.
    OtherTrim(Cut),
}

/// Where the third handle trims.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Before this fraction (in thousandths) of the length.
    Fraction(u64),
    /// This many bytes past the reader's position: into what it reads ahead, or beyond.
    PastReader(u64),
    /// Everything but the last object: past every object the reader knew, once more were
    /// written.
    All,
}

/// Operations on a stream whose objects are `scale` MiB: large writes and seeks in proportion.
fn op(scale: usize) -> impl Strategy<Value = Op> {
    let (big, far) = (scale * 100_000..scale * 700_000, 4 * (scale * MIB) as u64);
    let back = scale as i64 * 2_000_000;
    prop_oneof![
        4 => (1usize..200, any::<u64>()).prop_map(|(len, seed)| Op::Write { len, seed }),
        3 => (big, any::<u64>()).prop_map(|(len, seed)| Op::Write { len, seed }),
        2 => Just(Op::Flush),
        1 => Just(Op::FailedFlush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => any::<u64>().prop_map(move |n| Op::Seek(SeekFrom::Start(n % far))),
        1 => (-300_000i64..300_000).prop_map(|n| Op::Seek(SeekFrom::Current(n))),
        1 => (-back..10).prop_map(|n| Op::Seek(SeekFrom::End(n))),
        3 => (1usize..400_000).prop_map(Op::Read),
        1 => (0u64..1100).prop_map(Op::Trim),
        1 => (1usize..3).prop_map(Op::DeleteOldest),
    ]
}

/// Operations of a writer (1 MiB objects), a second handle reading and seeking, and trims by a
/// third one.
fn reader_op() -> impl Strategy<Value = Op> {
    let far = 4 * MIB as u64;
    let cut = prop_oneof![
        (0u64..1100).prop_map(Cut::Fraction),
        (0..6 * far / 4).prop_map(Cut::PastReader),
        Just(Cut::All),
    ];
    prop_oneof![
        3 => (1usize..200, any::<u64>()).prop_map(|(len, seed)| Op::Write { len, seed }),
        3 => (100_000usize..700_000, any::<u64>()).prop_map(|(len, seed)| Op::Write { len, seed }),
        2 => Just(Op::Flush),
        4 => (1usize..400_000).prop_map(Op::ReaderRead),
        1 => any::<u64>().prop_map(move |n| Op::ReaderSeek(SeekFrom::Start(n % far))),
        1 => (-300_000i64..300_000).prop_map(|n| Op::ReaderSeek(SeekFrom::Current(n))),
        1 => (-2_000_000i64..10).prop_map(|n| Op::ReaderSeek(SeekFrom::End(n))),
        1 => Just(Op::ReaderReopen),
        3 => cut.prop_map(Op::OtherTrim),
        1 => (1usize..400_000).prop_map(Op::Read),
        1 => any::<u64>().prop_map(move |n| Op::Seek(SeekFrom::Start(n % far))),
        1 => (1usize..3).prop_map(Op::DeleteOldest),
    ]
}

/// A fault for the next request of one method, or none.
fn fault() -> impl Strategy<Value = Option<(&'static str, Fault)>> {
    // POST: CreateMultipartUpload and CompleteMultipartUpload.
    let method = prop_oneof![
        Just("PUT"),
        Just("POST"),
        Just("GET"),
        Just("HEAD"),
        Just("DELETE")
    ];
    let fault = prop_oneof![
        Just(Fault::Status(500)),
        Just(Fault::Status(503)),
        Just(Fault::ResetBeforeBody),
        Just(Fault::DropResponse),
        Just(Fault::CutResponse(300)),
        Just(Fault::CutResponse(5_000)),
    ];
    prop::option::weighted(0.5, (method, fault))
}

const NAME: &str = "model/stream.bin";
const ATTEMPTS: u32 = 4;

/// How the stream under test cuts its objects.
#[derive(Clone, Copy)]
struct Profile {
    seal_mib: usize,
    /// Large tails: appended to by copy, and streamed out as parts of S3's smallest size.
    large: bool,
}

/// 1 MiB objects, each sent whole.
const SMALL: Profile = Profile {
    seal_mib: 1,
    large: false,
};

/// 12 MiB objects: tails past the copy threshold, streamed out as 5 MiB parts, two at once.
const LARGE: Profile = Profile {
    seal_mib: 12,
    large: true,
};

struct Harness {
    profile: Profile,
    server: Server,
    proxy: Proxy,
    /// Faults injected by the proxies of earlier, crashed handles.
    injected: usize,
    /// The bucket, reached directly.
    bucket: s3::Bucket,
    /// The bucket, reached through the proxy: what the stream under test uses.
    faulty: s3::Bucket,
    storage: Storage,
    /// Every byte accepted by `write`, at its absolute offset (trimmed ones too).
    model: Vec<u8>,
    /// How many of them a successful flush or close made durable.
    durable: usize,
    /// The offset of the first byte still in S3.
    first: u64,
    /// The read position; `None` for a new handle until it is asked for.
    pos: Option<u64>,
    /// Sizes of the objects as last listed, to spot a write to a sealed one.
    sizes: HashMap<String, u64>,
    /// A second handle that only reads, reaching the bucket directly; opened on first use.
    reader: Option<Storage>,
    /// Its read position; `None` for a new handle until it is asked for.
    reader_pos: Option<u64>,
    /// A third handle that only trims; opened on first use.
    trimmer: Option<Storage>,
}

impl Harness {
    fn new(profile: Profile) -> Harness {
        let server = Server::from_env_or_start();
        let proxy = Proxy::start(&server);
        let bucket = server.new_bucket();
        let faulty = proxy.bucket(&server, &bucket.name());
        let storage = Harness::open(profile, &faulty);
        Harness {
            profile,
            server,
            proxy,
            injected: 0,
            bucket,
            faulty,
            storage,
            model: Vec::new(),
            durable: 0,
            first: 0,
            pos: None,
            sizes: HashMap::new(),
            reader: None,
            reader_pos: None,
            trimmer: None,
        }
    }

    fn open(profile: Profile, bucket: &s3::Bucket) -> Storage {
        let mut options = Options::builder()
            .with_seal_size(profile.seal_mib * MIB)
            .with_retry_attempts(ATTEMPTS)
            .with_retry_backoff(Duration::from_millis(1));
        if profile.large {
            options = options.with_part_size(5 * MIB).with_write_ahead(2);
        }
        let options = options.build().unwrap();
        Storage::new(bucket.clone(), NAME, options).unwrap()
    }

    /// The handle's read position. A new handle's is the first offset it learned: never past
    /// the first byte still in S3.
    fn pos(&mut self) -> Result<u64, TestCaseError> {
        if let Some(pos) = self.pos {
            return Ok(pos);
        }
        let pos = self.storage.stream_position().unwrap();
        prop_assert!(
            pos <= self.first,
            "a new handle starts at {pos}, after {}",
            self.first
        );
        self.pos = Some(pos);
        Ok(pos)
    }

    /// The reading handle and its read position, which a new handle takes from the first
    /// offset it learns: never past the first byte still in S3.
    fn reader(&mut self) -> Result<(&mut Storage, u64), TestCaseError> {
        let (profile, bucket) = (self.profile, &self.bucket);
        let reader = (self.reader).get_or_insert_with(|| Harness::open(profile, bucket));
        let pos = match self.reader_pos {
            Some(pos) => pos,
            None => {
                let pos = reader.stream_position().unwrap();
                prop_assert!(pos <= self.first, "a new reader starts at {pos}");
                pos
            }
        };
        self.reader_pos = Some(pos);
        Ok((reader, pos))
    }

    /// Trims with `storage` before offset `before`, and checks what it did.
    fn trim_with(
        &mut self,
        storage: impl FnOnce(&mut Harness) -> &mut Storage,
        before: u64,
    ) -> Result<(), TestCaseError> {
        let listed = self.listed();
        let first = storage(self).trim(before).unwrap();
        let left = self.listed();
        self.forget_deleted(&listed, &left);
        prop_assert_eq!(first, self.first, "trim returns S3's first offset");
        if let Some(&(last, _)) = listed.last() {
            prop_assert!(left.last().is_some_and(|l| l.0 >= last), "last object kept");
        }
        let seqs: Vec<u64> = left.iter().map(|&(seq, _)| seq).collect();
        prop_assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap");
        Ok(())
    }

    /// The stream's objects as S3 lists them: sequence numbers and sizes.
    fn listed(&self) -> Vec<(u64, u64)> {
        let segments = open(&self.bucket, NAME, 1).segments().unwrap();
        segments.into_iter().map(|s| (s.seq, s.size)).collect()
    }

    /// Moves the model's first offset past the objects of `before` that `after` lacks.
    fn forget_deleted(&mut self, before: &[(u64, u64)], after: &[(u64, u64)]) {
        let first_left = after.first().map_or(u64::MAX, |&(seq, _)| seq);
        let gone: u64 = before
            .iter()
            .filter(|&&(seq, _)| seq < first_left)
            .map(|&(_, size)| size)
            .sum();
        self.first += gone;
    }

    fn apply(&mut self, op: &Op, fault: Option<(&str, Fault)>) -> Result<(), TestCaseError> {
        if let Some((method, fault)) = fault {
            self.proxy.inject(Some(method), fault);
        }
        match op {
            Op::Write { len, seed } => {
                let data = pattern(*len, *seed);
                prop_assert_eq!(self.storage.write(&data).unwrap(), *len);
                self.model.extend_from_slice(&data);
            }
            Op::Flush => {
                self.storage.flush().unwrap();
                self.durable = self.model.len();
            }
            Op::FailedFlush => {
                self.proxy.clear();
                // Enough for every attempt of every request, parts in parallel included.
                for _ in 0..4 * ATTEMPTS {
                    self.proxy.inject(Some("PUT"), Fault::Status(503));
                    self.proxy.inject(Some("POST"), Fault::Status(503));
                }
                let pending = self.storage.unflushed().to_vec();
                let injected = self.proxy.injected();
                match self.storage.flush() {
                    // Only if the requests already under way carried every byte: any request
                    // sent now meets the faults.
                    Ok(()) => {
                        let untouched = self.proxy.injected() == injected;
                        prop_assert!(pending.is_empty() || untouched, "a flush sent nothing");
                        prop_assert!(self.storage.unflushed().is_empty());
                        self.durable = self.model.len();
                    }
                    Err(err) => {
                        // A sealed object uploading in the background may have made it.
                        let kept = self.storage.unflushed();
                        prop_assert!(!kept.is_empty(), "{}", err);
                        prop_assert!(pending.ends_with(&kept), "bytes kept");
                    }
                }
            }
            Op::Reopen => {
                let fresh = Harness::open(self.profile, &self.faulty);
                std::mem::replace(&mut self.storage, fresh).close().unwrap();
                self.durable = self.model.len();
                self.pos = None;
            }
            Op::Crash => {
                // The old handle is forgotten, never flushed; its proxy is severed so that its
                // background uploads die with it, as they would with its process.
                self.proxy.sever();
                self.injected += self.proxy.injected();
                self.proxy = Proxy::start(&self.server);
                self.faulty = self.proxy.bucket(&self.server, &self.bucket.name());
                let new = Harness::open(self.profile, &self.faulty);
                let old = std::mem::replace(&mut self.storage, new);
                std::mem::forget(old);
                // Objects sealed by writes are durable too, so more than the flushed bytes may
                // have survived, but only ever a prefix of what was written.
                let stored = stream_contents(&self.bucket, NAME);
                let first = self.first as usize;
                prop_assert!(
                    first + stored.len() >= self.durable,
                    "acknowledged bytes lost"
                );
                prop_assert!(
                    self.model[first..].starts_with(&stored),
                    "stored bytes differ"
                );
                self.model.truncate(first + stored.len());
                self.durable = self.model.len();
                self.pos = None;
            }
            Op::Seek(to) => {
                let pos = self.pos()?;
                let len = self.model.len() as i128;
                let target = match *to {
                    SeekFrom::Start(n) => n as i128,
                    SeekFrom::Current(d) => pos as i128 + d as i128,
                    SeekFrom::End(d) => len + d as i128,
                };
                let available = self.first as i128..=len;
                match self.storage.seek(*to) {
                    Ok(got) => {
                        // Before the first byte only if this handle has not seen it go yet.
                        prop_assert!((0..=len).contains(&target));
                        prop_assert_eq!(got as i128, target);
                        self.pos = Some(got);
                    }
                    Err(err) => {
                        prop_assert!(!available.contains(&target), "{err}");
                        let kind = match (0..self.first as i128).contains(&target) {
                            true => ErrorKind::NotFound,
                            false => ErrorKind::InvalidInput,
                        };
                        prop_assert_eq!(err.kind(), kind, "{}", err);
                        prop_assert_eq!(self.storage.stream_position().unwrap(), pos);
                    }
                }
            }
            Op::Read(n) => {
                let start = self.pos()?;
                let mut got = Vec::new();
                let result = (&mut self.storage).take(*n as u64).read_to_end(&mut got);
                let end = (start as usize + n).min(self.model.len());
                prop_assert!(
                    got[..] == self.model[start as usize..][..got.len()],
                    "read {} at {}",
                    n,
                    start
                );
                match result {
                    Ok(_) => prop_assert!(got.len() == end - start as usize, "short read"),
                    // Bytes deleted under the handle: told, never replaced by others.
                    Err(err) => {
                        prop_assert!(start + (got.len() as u64) < self.first, "{err}");
                        prop_assert!(trimmed(&err).is_some(), "{:?}", err);
                    }
                }
                self.pos = Some(start + got.len() as u64);
                prop_assert_eq!(
                    self.storage.stream_position().unwrap(),
                    start + got.len() as u64
                );
            }
            Op::Trim(thousandths) => {
                let before = self.model.len() as u64 * thousandths / 1000;
                self.trim_with(|h| &mut h.storage, before)?;
                prop_assert_eq!(self.storage.first_offset().unwrap(), self.first);
            }
            Op::OtherTrim(cut) => {
                let before = match *cut {
                    Cut::Fraction(thousandths) => self.model.len() as u64 * thousandths / 1000,
                    Cut::PastReader(ahead) => self.reader()?.1 + ahead,
                    Cut::All => u64::MAX,
                };
                let (profile, bucket) = (self.profile, self.bucket.clone());
                self.trim_with(
                    |h| (h.trimmer).get_or_insert_with(|| Harness::open(profile, &bucket)),
                    before,
                )?;
            }
            Op::ReaderRead(n) => self.reader_read(*n)?,
            Op::ReaderSeek(to) => self.reader_seek(*to)?,
            Op::ReaderReopen => {
                self.reader = None;
                self.reader_pos = None;
            }
            Op::DeleteOldest(count) => {
                self.storage.flush().unwrap();
                self.durable = self.model.len();
                let listed = self.listed();
                let doomed = (*count).min(listed.len().saturating_sub(1));
                for &(seq, _) in &listed[..doomed] {
                    let key = format!("model/stream-{seq:020}.bin");
                    self.bucket.raw_delete(&key);
                }
                self.forget_deleted(&listed, &listed[doomed..]);
            }
        }
        // Faults not met by this step would land on the next one's requests.
        self.proxy.clear();
        self.check_sealed_objects_untouched()
    }

    /// The reading handle reads `n` bytes: the model's, as many as S3 surely holds (the
    /// flushed ones), or fewer only if the rest was trimmed, which must be [`Error::Trimmed`]:
    /// never a gap, whatever the trims did to the objects it knew.
    fn reader_read(&mut self, n: usize) -> Result<(), TestCaseError> {
        let (reader, start) = self.reader()?;
        let mut got = Vec::new();
        let result = reader.take(n as u64).read_to_end(&mut got);
        let read_to = reader.stream_position().unwrap();
        let expected = self.model.get(start as usize..start as usize + got.len());
        prop_assert!(expected == Some(&got[..]), "reader read {} at {}", n, start);
        match result {
            Ok(_) => {
                let stored = (self.durable as u64).saturating_sub(start).min(n as u64);
                prop_assert!(got.len() as u64 >= stored, "short read at {}", start);
            }
            Err(err) => {
                prop_assert!(
                    trimmed(&err).is_some(),
                    "reader read at {}: {:?}",
                    start,
                    err
                );
                prop_assert!(start + (got.len() as u64) < self.first, "{}", err);
            }
        }
        prop_assert_eq!(read_to, start + got.len() as u64);
        self.reader_pos = Some(read_to);
        Ok(())
    }

    /// The reading handle seeks: where `Cursor` would, or [`Error::Trimmed`] before the first
    /// byte, or `InvalidInput` out of the stream; never a gap.
    fn reader_seek(&mut self, to: SeekFrom) -> Result<(), TestCaseError> {
        let (len, durable, first) = (self.model.len() as i128, self.durable as i128, self.first);
        let (reader, pos) = self.reader()?;
        // From the end, the target depends on what S3 holds: at least the flushed bytes.
        let target = match to {
            SeekFrom::Start(n) => Some(n as i128),
            SeekFrom::Current(d) => Some(pos as i128 + d as i128),
            SeekFrom::End(_) => None,
        };
        match reader.seek(to) {
            Ok(got) => {
                prop_assert!(target.is_none_or(|t| t == got as i128), "seek to {:?}", to);
                prop_assert!(got as i128 <= len);
                if let SeekFrom::End(d) = to {
                    prop_assert!(got as i128 - d as i128 >= durable, "length seen");
                }
                self.reader_pos = Some(got);
            }
            Err(err) => {
                match (err.kind(), trimmed(&err)) {
                    (ErrorKind::NotFound, Some(requested)) => {
                        prop_assert!(target.is_none_or(|t| t == requested as i128));
                        prop_assert!(requested < first, "{}", err);
                    }
                    (ErrorKind::InvalidInput, _) => {
                        let target = target.unwrap_or(match to {
                            SeekFrom::End(d) if d > 0 => len + 1,
                            _ => -1,
                        });
                        prop_assert!(target < 0 || target > durable, "{}", err);
                    }
                    _ => prop_assert!(false, "reader seek {:?}: {:?}", to, err),
                }
                prop_assert_eq!(reader.stream_position().unwrap(), pos, "unchanged");
            }
        }
        Ok(())
    }

    /// No PUT or Complete may be applied to an object that was already as long as its seal size
    /// (in-process server only: it records requests).
    fn check_sealed_objects_untouched(&mut self) -> Result<(), TestCaseError> {
        if self.server.is_external() {
            return Ok(());
        }
        let prefix = format!("/{}/", self.bucket.name());
        let mut wrote = false;
        for request in self.server.take_requests() {
            // An attempt the server refused (a retry meeting its own earlier success, say)
            // rewrites nothing.
            let rewrites = ["PutObject", "CompleteMultipartUpload"].contains(&request.op);
            if rewrites && request.ok {
                let key = request.path.trim_start_matches(&prefix);
                let key = key.split('?').next().unwrap_or(key);
                let size = self.sizes.get(key).copied().unwrap_or(0);
                let sealed = (self.profile.seal_mib * MIB) as u64;
                prop_assert!(size < sealed, "sealed {} rewritten", key);
                wrote = true;
            }
        }
        if wrote {
            let listed = open(&self.bucket, NAME, 1).segments().unwrap();
            self.sizes = listed.into_iter().map(|s| (s.key, s.size)).collect();
            self.server.take_requests();
        }
        Ok(())
    }

    fn finish(self) -> Result<(), TestCaseError> {
        self.storage.close().unwrap();
        let stored = stream_contents(&self.bucket, NAME);
        let mut reader = Harness::open(self.profile, &self.bucket);
        prop_assert_eq!(reader.first_offset().unwrap(), self.first);
        prop_assert!(
            stored == self.model[self.first as usize..],
            "final stream differs from the model"
        );
        Ok(())
    }
}

/// The offset asked for, if `err` is [`Error::Trimmed`] (kind `NotFound`).
fn trimmed(err: &std::io::Error) -> Option<u64> {
    match err.get_ref()?.downcast_ref::<Error>()? {
        Error::Trimmed { requested, .. } if err.kind() == ErrorKind::NotFound => Some(*requested),
        _ => None,
    }
}

fn run(
    profile: Profile,
    steps: &[(Op, Option<(&'static str, Fault)>)],
) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(profile);
    for (op, fault) in steps {
        harness.apply(op, *fault)?;
    }
    println!(
        "faults injected: {}",
        harness.injected + harness.proxy.injected()
    );
    harness.finish()
}

proptest! {
    // Fewer on a server several times slower (moto, which `.ci/run` marks with
    // S3SYNCR_TEST_SLOW), to keep CI's time.
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("S3SYNCR_TEST_SLOW").is_some() { 64 } else { 200 },
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn stream_matches_the_model(steps in prop::collection::vec((op(1), fault()), 1..30)) {
        run(SMALL, &steps)?;
    }
}

proptest! {
    // 200 in-process and on SeaweedFS; fewer on a server several times slower (moto, which
    // `.ci/run` marks with S3SYNCR_TEST_SLOW), to keep CI's time.
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("S3SYNCR_TEST_SLOW").is_some() { 48 } else { 200 },
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    /// A reader that outlives retention: a second handle reads and seeks while a third trims
    /// at random points, past the reader's position, its read-ahead and every object it knew.
    #[test]
    fn readers_outlive_trims_by_another_handle(
        steps in prop::collection::vec((reader_op(), fault()), 1..40),
    ) {
        run(SMALL, &steps)?;
    }
}

proptest! {
    // Fewer against the external servers of `.ci/run`, each several times slower than the
    // in-process one on these sizes.
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("S3SYNCR_TEST_ENDPOINT").is_some() { 24 } else { 64 },
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    })]

    /// Tails that cross the copy threshold and stream out as parts, with faults on every
    /// multipart request (create, part, copy, complete, abort).
    #[test]
    fn large_tails_match_the_model(steps in prop::collection::vec((op(12), fault()), 1..24)) {
        run(LARGE, &steps)?;
    }
}
