//! The simulator: writers with different [`Options`], readers, trims, expiries in any order
//! (leaving gaps, as lifecycle rules do), aborted uploads and spoiled hints on one stream in the
//! in-memory S3 ([`MemS3`]), with faults on every kind of request (lost answers, then failing
//! settles; 409; resets; stalls; bits flipped where a check tells; uploads that vanish) and, for
//! most seeds, tails
//! that S3 must copy in several parts (its 5 GiB copy limit lowered to kilobytes), all drawn
//! from one seed.
//! After every step that can change what is acknowledged, the stream is read whole by a new
//! handle and checked against a model of what each writer was told: every acknowledged record
//! is there once, in its writer's order, no refused record is, no record is torn or doubled,
//! and no object a later one follows was rewritten. Every request of the stream's own code
//! (retries, settling, the writer's and the reader's state machines) runs as it does against
//! S3; only the network is gone, so a run is fast and its faults come from the seed alone.
//!
//! Each handle runs stepped ([`Bell::stepped`](crate::job::Bell::stepped)): its uploads and
//! read-ahead wait in queues and run on the simulation's thread in an order drawn from the
//! seed, so a seed sends the same requests, in the same order, every time it runs.
//!
//! `S3SYNCR_SIM_REQUESTS` sets how many requests a run sends (200,000 by default; `.ci/run`
//! sends 1,000,000); `S3SYNCR_SIM_SEED` replays one seed exactly. A failing run panics with
//! its seed and the steps that led there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use s3::creds::Credentials;
use s3::{Bucket, Region};

use crate::client::S3Client;
use crate::client::mem::{Call, Fault, MemS3, Object, Quirks};
use crate::draw::{Rng, mix};
use crate::layout::Layout;
use crate::store::MAX_COPY;
use crate::{Error, Options, Storage};

/// The stream's name.
const NAME: &str = "sim/log.bin";

/// Options drawn for one handle: writers of one stream need not share them.
fn draw_options(rng: &mut Rng) -> Options {
    let mut options = Options::builder()
        .with_retry_attempts(rng.pick(&[2, 3, 4]) as u32)
        .with_retry_backoff(Duration::ZERO)
        .with_read_ahead(rng.pick(&[0, 2]) as usize)
        .build()
        .expect("valid options");
    // Below S3's 5 MiB parts (the in-memory S3 is told to allow them), so that seals, parts
    // and appends by copy come thousands of times a run.
    options.seal_size = rng.pick(&[2_000, 8_000, 30_000, 100_000]) as usize;
    options.part_size = rng.pick(&[4_096, 16_384]) as usize;
    options.append_by_copy = rng.pick(&[None, Some(4_096), Some(12_000)]);
    options.write_ahead = rng.pick(&[1, 2]) as usize;
    options.read_chunk = rng.pick(&[1_000, 16_384]) as usize;
    options.verify_reads = rng.chance(50);
    // Its steps come a few microseconds apart, where others' take seconds: every new object
    // is checked for others having gone past it, not only those made a second after the
    // writer learned the end.
    options.fresh_end = Duration::ZERO;
    // Its uploads and read-ahead run on its thread in an order drawn from the seed, so that
    // a seed replays exactly.
    options.stepped = Some(rng.next());
    options
}

/// What a writer was told of each of its records.
#[derive(Default)]
struct Model {
    /// Flushed or closed with `Ok`: must be in the stream, once.
    acked: HashSet<(usize, u64)>,
    /// Handed back as not stored: must not be in the stream.
    refused: HashSet<(usize, u64)>,
    /// In objects the simulation deleted (trims, lifecycle): gone legitimately.
    deleted: HashSet<(usize, u64)>,
}

/// One writer: its handle (if open), and its records not yet acknowledged.
struct Writer {
    id: usize,
    storage: Option<Storage>,
    next: u64,
    pending: Vec<(u64, Vec<u8>)>,
}

/// A record: `<writer:number:padding>` and a newline.
fn record(writer: usize, n: u64, len: usize) -> Vec<u8> {
    let mut record = format!("<{writer}:{n}:").into_bytes();
    record.resize(len.max(record.len() + 2) - 2, b'.');
    record.extend_from_slice(b">\n");
    record
}

/// The records of a stream, in order; `Err` names a line that is no record.
fn records(stream: &[u8]) -> Result<Vec<(usize, u64)>, String> {
    let lines = stream.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    lines
        .map(|line| {
            let text = String::from_utf8_lossy(line);
            let mut fields = text.trim_start_matches('<').split(':');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(w), Some(n), Some(pad)) if line.starts_with(b"<") && pad.ends_with('>') => {
                    match (w.parse(), n.parse()) {
                        (Ok(w), Ok(n)) => Ok((w, n)),
                        _ => Err(format!("torn record {:?}", &text[..text.len().min(40)])),
                    }
                }
                _ => Err(format!("torn record {:?}", &text[..text.len().min(40)])),
            }
        })
        .collect()
}

struct Sim {
    seed: u64,
    rng: Rng,
    mem: Arc<MemS3>,
    /// The most bytes copied into one part, by the store and every client alike.
    max_copy: u64,
    bucket: Bucket,
    writers: Vec<Writer>,
    model: Model,
    /// What happened, for the panic message of a failing run.
    log: Vec<String>,
    /// The ETags of objects that a later object follows: sealed, never to change.
    sealed: BTreeMap<String, String>,
    checks: u64,
    failed_reads: u64,
    follower: Option<Follower>,
}

/// A handle that follows the stream's end.
struct Follower {
    storage: Storage,
    /// The offset it started at.
    start: u64,
    /// What it read since.
    bytes: Vec<u8>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        // Drawn apart from the steps' generator, so that a seed runs the same steps as before
        // copies were split: S3's limit, or tails that pass it many times over.
        let max_copy = Rng::new(seed ^ 0xC09E).pick(&[MAX_COPY, 20_000, 7_000]);
        // A directory bucket (S3 Express One Zone) one seed in three: flushes are appends, and
        // objects take few enough parts that some fill up before their seal size.
        let directory = Rng::new(seed ^ 0xD1E5).chance(33);
        let quirks = Quirks {
            min_part: 1,
            page: 7,
            max_copy,
            max_appends: 12,
            ..Quirks::default()
        };
        let mem = Arc::new(MemS3::new(quirks));
        // The faults' own key, apart from the steps' generator.
        let fault_key = mix(seed ^ 0xFA17);
        let mut seen: HashMap<(&'static str, String), u64> = HashMap::new();
        let rate = Rng::new(seed).pick(&[0u64, 2, 5, 10]);
        // A write whose answer was lost, then fenced by a writer that built on it, hands back
        // bytes that are stored: no writer can tell. Odd seeds lose answers, and check
        // everything but that; even ones do not, and check that too.
        let lose = seed % 2 == 1;
        mem.set_faults(Some(Box::new(move |call: Call<'_>| {
            // Keyed by operation, key and occurrence, not by arrival: uploads run on threads
            // of their own, and their timing must not change which request fails.
            let count = seen.entry((call.op, call.key.to_owned())).or_default();
            *count += 1;
            let mut hash = mix(fault_key ^ mix(*count));
            for b in call.op.bytes().chain(call.key.bytes()) {
                hash = mix(hash ^ u64::from(b));
            }
            match hash % 100 {
                n if n >= rate => Fault::None,
                _ => match (hash >> 8) % 8 {
                    0 => Fault::Refuse(500),
                    1 => Fault::Refuse(503),
                    2 => Fault::Refuse(409),
                    4 | 5 if lose => Fault::LoseAnswer,
                    6 => Fault::Stall(lose && (hash >> 16).is_multiple_of(2)),
                    // Not in answers: a handle that does not verify reads could not tell,
                    // and a follower hands out what it polled before it can check it (the
                    // reader's tests and tests/it/integrity.rs flip answers).
                    7 if matches!(call.op, "PUT" | "UPLOAD-PART" | "COMPLETE-UPLOAD") => {
                        Fault::Flip
                    }
                    _ => Fault::Reset,
                },
            }
        })));
        let region = Region::Custom {
            region: "us-east-1".into(),
            endpoint: "http://in-memory.invalid".into(),
        };
        let credentials = Credentials::new(Some("sim"), Some("sim"), None, None, None)
            .expect("static credentials");
        let name = if directory {
            "sim--use1-az4--x-s3"
        } else {
            "sim"
        };
        let bucket = *Bucket::new(name, region, credentials)
            .expect("bucket")
            .with_path_style();
        Sim {
            seed,
            rng: Rng::new(seed),
            mem,
            max_copy,
            bucket,
            writers: (0..3)
                .map(|id| Writer {
                    id,
                    storage: None,
                    next: 0,
                    pending: Vec::new(),
                })
                .collect(),
            model: Model::default(),
            log: vec![format!(
                "copies of at most {max_copy} bytes a part; bucket {name}"
            )],
            sealed: BTreeMap::new(),
            checks: 0,
            failed_reads: 0,
            follower: None,
        }
    }

    fn handle(&mut self) -> Storage {
        let options = draw_options(&mut self.rng);
        let layout = Layout::new(NAME).expect("layout");
        let mut client = S3Client::with_transport(
            self.bucket.clone(),
            layout,
            options.clone(),
            self.mem.clone(),
        );
        client.max_copy = self.max_copy;
        // As `Storage::new` opens, for what the open finds: a failed one leaves nothing found.
        let _ = client.open();
        self.log.push(format!(
            "  handle: seal {} part {} copy {:?} ahead {}",
            options.seal_size, options.part_size, options.append_by_copy, options.write_ahead
        ));
        Storage::with_client(Arc::new(client), &options)
    }

    fn fail(&self, what: String) -> ! {
        let tail: Vec<&String> = self.log.iter().rev().take(300).collect();
        let steps: Vec<&str> = tail.into_iter().rev().map(String::as_str).collect();
        panic!(
            "simulation seed {} failed: {what}\nreplay: S3SYNCR_SIM_SEED={} cargo test --lib sim\n\
             last steps:\n{}\nlast requests:\n{}",
            self.seed,
            self.seed,
            steps.join("\n"),
            self.mem.trace().join("\n")
        );
    }

    fn step(&mut self) {
        let w = self.rng.below(self.writers.len() as u64) as usize;
        match self.rng.below(100) {
            0..=39 => self.write(w),
            40..=64 => self.flush(w),
            65..=69 => self.close(w),
            70..=72 => self.crash(w),
            73..=77 => self.check(),
            78..=80 => {
                let aborted = self.mem.abort_all();
                self.log.push(format!("lifecycle aborts {aborted} uploads"));
            }
            81..=82 => self.delete(true),
            83 => self.delete(false),
            84..=85 => self.trim(),
            86..=90 => self.follow(),
            91 => self.spoil_hint(),
            _ => self.write(w),
        }
        self.check_sealed();
    }

    fn write(&mut self, w: usize) {
        if self.writers[w].storage.is_none() {
            let storage = self.handle();
            self.writers[w].storage = Some(storage);
        }
        let count = 1 + self.rng.below(4);
        for _ in 0..count {
            let len = 8 + self.rng.below(3_000) as usize;
            let writer = &mut self.writers[w];
            let n = writer.next;
            let bytes = record(writer.id, n, len);
            let storage = writer.storage.as_mut().expect("opened above");
            match storage.write_all(&bytes) {
                Ok(()) => {
                    writer.next += 1;
                    writer.pending.push((n, bytes));
                }
                Err(err) => {
                    // A write of up to a part is taken whole or not at all: this one not.
                    self.log.push(format!("w{w} write {n} failed: {err}"));
                    writer.next += 1;
                    self.model.refused.insert((w, n));
                    self.settle_stopped(w, &err);
                    return;
                }
            }
        }
        self.log.push(format!("w{w} wrote {count}"));
    }

    /// Writer `w`'s flush or close returned `Ok`: every record it held is acknowledged.
    fn acknowledge(&mut self, w: usize, how: &str) {
        let pending = std::mem::take(&mut self.writers[w].pending);
        self.log
            .push(format!("w{w} {how} ({} records)", pending.len()));
        for (n, _) in pending {
            self.model.acked.insert((w, n));
        }
    }

    fn flush(&mut self, w: usize) {
        let Some(storage) = self.writers[w].storage.as_mut() else {
            return;
        };
        match storage.flush() {
            Ok(()) => self.acknowledge(w, "flushed"),
            Err(err) => {
                self.log.push(format!("w{w} flush failed: {err}"));
                self.settle_stopped(w, &err);
            }
        }
    }

    /// A writer that stopped (fenced, or its upload lost) hands back what S3 lacks: those
    /// records are refused, the rest stored, unless it reports parts lost with memory.
    fn settle_stopped(&mut self, w: usize, err: &std::io::Error) {
        let lost = match err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            Some(Error::Fenced { lost, .. } | Error::UploadLost { lost, .. }) => *lost,
            _ => return,
        };
        let Some(storage) = self.writers[w].storage.take() else {
            return;
        };
        let unflushed = storage.unflushed();
        drop(storage);
        self.resolve(w, &unflushed, lost > 0);
    }

    /// Decides each pending record of writer `w` from the bytes it handed back: a record in
    /// them is refused, one before them stored. With `lost` (parts that had left memory went
    /// with their upload), those before may be stored or lost, and one that the handed-back
    /// bytes cut began in a lost part: it is nowhere.
    fn resolve(&mut self, w: usize, unflushed: &[u8], lost: bool) {
        let pending = std::mem::take(&mut self.writers[w].pending);
        let total: usize = pending.iter().map(|(_, b)| b.len()).sum();
        let Some(stored) = total.checked_sub(unflushed.len()) else {
            self.fail(format!(
                "w{w} handed back {} bytes, more than the {total} it held",
                unflushed.len()
            ));
        };
        let mut at = 0;
        for (n, bytes) in pending {
            let end = at + bytes.len();
            if at >= stored || (lost && end > stored) {
                self.model.refused.insert((w, n));
            } else if end > stored {
                self.fail(format!(
                    "w{w} handed back part of record {n} ({at}..{end}, {stored} stored)"
                ));
            } else if !lost {
                self.model.acked.insert((w, n));
            }
            at = end;
        }
    }

    fn close(&mut self, w: usize) {
        let Some(storage) = self.writers[w].storage.take() else {
            return;
        };
        match storage.close() {
            Ok(()) => self.acknowledge(w, "closed"),
            Err(err) => {
                self.log.push(format!("w{w} close failed: {}", err.error()));
                // A writer that stopped says what it lost; after another failure, parts let go
                // of memory are in an upload its drop aborts: neither stored nor handed back.
                let lost = match err.error() {
                    Error::Fenced { lost, .. } | Error::UploadLost { lost, .. } => *lost > 0,
                    _ => true,
                };
                let unflushed = err.into_unflushed();
                self.resolve(w, &unflushed, lost);
            }
        }
    }

    /// A writer that gives up (`discard`, as a process that dies with its uploads left to a
    /// lifecycle rule): what it hands back is refused; what it had sent before may be stored
    /// or not (a part let go of memory is neither stored nor handed back).
    fn crash(&mut self, w: usize) {
        if let Some(storage) = self.writers[w].storage.take() {
            let discarded = storage.discard();
            self.log
                .push(format!("w{w} discarded {} bytes", discarded.len()));
            self.resolve(w, &discarded, true);
        }
    }

    /// The stream's objects, by key: not its hint.
    fn objects(&self) -> BTreeMap<String, Object> {
        self.mem.stream(NAME)
    }

    /// Spoils the stream's hint, as a writer of 0.2, a failed rewrite or another tool leaves
    /// it: gone, naming an object long past or past the end, or not a hint at all. Handles
    /// must read the stream as well without it.
    fn spoil_hint(&mut self) {
        let layout = Layout::new(NAME).expect("layout");
        let key = layout.hint_key();
        let last = self
            .objects()
            .keys()
            .next_back()
            .and_then(|k| layout.seq(k));
        let seq = self.rng.below(last.unwrap_or(0) + 300);
        let spoiled: &[u8] = match self.rng.below(4) {
            0 => {
                self.mem.remove(&key);
                self.log.push("hint deleted".into());
                return;
            }
            1 => b"not a hint",
            2 => b"s3-syncr hint 1\nkey sim/other-s3syncr-hint.bin\nseq 1\nstart 0\n",
            _ => {
                let hint = format!("s3-syncr hint 1\nkey {key}\nseq {seq}\nstart 7\n");
                self.mem.insert(&key, hint.as_bytes());
                self.log.push(format!("hint names object {seq}"));
                return;
            }
        };
        self.mem.insert(&key, spoiled);
        self.log.push("hint spoiled".into());
    }

    /// Deletes an object, whole, never the last one: the oldest, as a trim would, or any
    /// other, as a lifecycle rule's expiry may (in any order, leaving a hole).
    fn delete(&mut self, oldest: bool) {
        let objects = self.objects();
        let keys: Vec<&String> = objects.keys().collect();
        if keys.len() < 2 {
            return;
        }
        let i = match oldest {
            true => 0,
            false => self.rng.below(keys.len() as u64 - 1) as usize,
        };
        let key = keys[i].clone();
        self.mem.remove(&key);
        self.log.push(format!("deleted {key}"));
        self.forget(&objects);
    }

    /// A trim by a handle of its own, to a random offset: it deletes whole objects that end
    /// before it, oldest first, never the last one.
    fn trim(&mut self) {
        let objects = self.objects();
        // Opened and listed before the trim, asked after it: what its open found and what it
        // listed are stale by then.
        let mut watcher = self.handle();
        let _ = watcher.len();
        let mut storage = self.handle();
        let trimmed = storage.len().and_then(|end| {
            let first = storage.first_offset()?;
            let before = first + self.rng.below(end.saturating_sub(first) + 1);
            storage.trim(before)
        });
        drop(storage);
        match trimmed {
            Ok(first) => {
                self.log
                    .push(format!("trimmed: the stream starts at {first}"));
                match watcher.first_offset() {
                    Ok(found) if found != first => {
                        self.fail(format!("a handle opened before finds {found}"))
                    }
                    Ok(_) | Err(Error::Transport { .. } | Error::Status { .. }) => {}
                    Err(err) => self.fail(format!("first offset after a trim: {err}")),
                }
            }
            // A stream with a hole is not trimmed by offset; faults may fail it too.
            Err(Error::MissingSegment { .. } | Error::Transport { .. } | Error::Status { .. }) => {
                self.log.push("trim failed".into())
            }
            Err(err) => self.fail(format!("trim: {err}")),
        }
        self.forget(&objects);
    }

    /// The records of the objects in `before` that are gone now: deleted legitimately.
    fn forget(&mut self, before: &BTreeMap<String, Object>) {
        let now = self.objects();
        for (key, object) in before {
            if now.contains_key(key) {
                continue;
            }
            match records(&object.bytes) {
                Ok(found) => self.model.deleted.extend(found),
                Err(err) => self.fail(format!("{key}: {err}")),
            }
            self.sealed.remove(key);
        }
    }

    /// A follower: a handle that reads what is appended, from the end it found. What it read
    /// must be the stream's bytes at its offsets, which [`Sim::check`] compares.
    fn follow(&mut self) {
        let Some(follower) = self.follower.as_mut() else {
            let mut storage = self.handle();
            match storage.seek(SeekFrom::End(0)) {
                Ok(start) => {
                    self.follower = Some(Follower {
                        storage,
                        start,
                        bytes: Vec::new(),
                    });
                    self.log.push(format!("follower starts at {start}"));
                }
                Err(err) => self.log.push(format!("follower could not start: {err}")),
            }
            return;
        };
        match follower.storage.read_to_end(&mut follower.bytes) {
            Ok(n) => self.log.push(format!("follower read {n}")),
            Err(err) => {
                let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
                match inner {
                    Some(Error::Transport { .. } | Error::Status { .. }) => {}
                    // Bytes it had not read were deleted (a trim, an expiry): it stops here.
                    Some(Error::Trimmed { .. } | Error::MissingSegment { .. }) => {
                        self.log.push(format!("follower stops: {err}"));
                        self.follower = None;
                    }
                    _ => self.fail(format!("follower: {err}")),
                }
            }
        }
    }

    /// No object that a later one follows ever changes.
    fn check_sealed(&mut self) {
        let objects = self.objects();
        for (key, etag) in &self.sealed {
            match objects.get(key) {
                Some(object) if &object.etag != etag => {
                    self.fail(format!("sealed object {key} was rewritten"))
                }
                _ => {}
            }
        }
        let keys: Vec<&String> = objects.keys().collect();
        for pair in keys.windows(2) {
            self.sealed
                .entry(pair[0].clone())
                .or_insert_with(|| objects[pair[0]].etag.clone());
        }
    }

    /// Where the part of the stream after its last hole starts, and the records before it
    /// (still stored, but no longer read through): the stream reads from there to its end.
    fn after_last_hole(&self) -> (Option<u64>, HashSet<(usize, u64)>) {
        let objects = self.objects();
        let seq = |key: &str| -> u64 {
            let digits = key.trim_start_matches("sim/log-").trim_end_matches(".bin");
            digits.parse().unwrap_or(0)
        };
        let keys: Vec<&String> = objects.keys().collect();
        let Some(i) = (keys.windows(2)).rposition(|w| seq(w[1]) != seq(w[0]) + 1) else {
            return (None, HashSet::new());
        };
        let after = &objects[keys[i + 1]];
        let start = (after.meta.iter())
            .find(|(name, _)| name == "x-amz-meta-s3syncr-start")
            .and_then(|(_, value)| value.parse().ok());
        let before = keys[..=i]
            .iter()
            .flat_map(|key| records(&objects[*key].bytes).unwrap_or_default())
            .collect();
        (start, before)
    }

    /// Reads the stream with a new handle, from its first byte (or from after its last hole)
    /// to its end, and checks it against the model and what the follower read.
    fn check(&mut self) {
        self.checks += 1;
        let (from, before_hole) = self.after_last_hole();
        let mut reader = self.handle();
        let mut stream = Vec::new();
        let read = match from {
            Some(from) => reader.seek(SeekFrom::Start(from)).map(drop),
            None => Ok(()),
        };
        let first = reader.stream_position();
        let read = read.and_then(|()| reader.read_to_end(&mut stream));
        drop(reader);
        if let Err(err) = read {
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
            match inner {
                // What the faults may cause: a request that failed through its retries.
                Some(Error::Transport { .. } | Error::Status { .. }) => {
                    self.failed_reads += 1;
                    return;
                }
                _ => self.fail(format!("reading the stream: {err}")),
            }
        }
        if let Ok(first) = first {
            self.check_ends(from.is_none().then_some(first), first + stream.len() as u64);
        }
        let found = match records(&stream) {
            Ok(found) => found,
            Err(err) => self.fail(err),
        };
        let mut last: HashMap<usize, u64> = HashMap::new();
        let mut seen = HashSet::new();
        for &(w, n) in &found {
            if !seen.insert((w, n)) {
                self.fail(format!("record {w}:{n} is in the stream twice"));
            }
            if last.get(&w).is_some_and(|&before| before >= n) {
                self.fail(format!(
                    "record {w}:{n} comes after a later one of its writer"
                ));
            }
            last.insert(w, n);
            if self.seed.is_multiple_of(2) && self.model.refused.contains(&(w, n)) {
                self.fail(format!(
                    "record {w}:{n} was handed back as not stored, yet is"
                ));
            }
        }
        for &(w, n) in &self.model.acked {
            let gone = self.model.deleted.contains(&(w, n)) || before_hole.contains(&(w, n));
            if !seen.contains(&(w, n)) && !gone {
                self.fail(format!("acknowledged record {w}:{n} is missing"));
            }
        }
        // What the follower read is the stream's bytes at its offsets.
        if let (Some(follower), Ok(first)) = (&self.follower, first)
            && follower.start >= first
        {
            let at = (follower.start - first) as usize;
            let end = at + follower.bytes.len();
            if end <= stream.len() && stream[at..end] != follower.bytes[..] {
                self.fail(format!(
                    "the follower read other bytes at {}",
                    follower.start
                ));
            }
        }
        self.log.push(format!("checked {} records", found.len()));
    }

    /// Checks that new handles find, without listing the stream whole, the `end` a read found,
    /// and the `first` offset it started at (if it started there, not after a hole).
    fn check_ends(&mut self, first: Option<u64>, end: u64) {
        let ends = self.handle().ends();
        let offset = first.map(|_| self.handle().first_offset()).transpose();
        let (ends, offset) = match (ends, offset) {
            (Ok(ends), Ok(offset)) => (ends, offset),
            (Err(err), _) | (_, Err(err)) => match err {
                Error::Transport { .. } | Error::Status { .. } => {
                    self.failed_reads += 1;
                    return;
                }
                err => self.fail(format!("the stream's ends: {err}")),
            },
        };
        let found = ends.map_or((0, 0), |e| (e.first, e.end));
        if found.1 != end || first.is_some_and(|f| found.0 != f || offset != Some(f)) {
            self.fail(format!(
                "the stream's ends: {found:?} and first offset {offset:?}, read {first:?} to {end}"
            ));
        }
    }
}

/// Totals of a run.
#[derive(Default)]
struct Totals {
    seeds: u64,
    requests: u64,
    checks: u64,
    failed_reads: u64,
}

/// Runs one seed: 400 steps, then every writer closes and the stream is checked once more.
fn run_seed(seed: u64) -> Totals {
    simulate(seed).0
}

/// [`run_seed`], with the digest of every request sent and its outcome.
fn simulate(seed: u64) -> (Totals, u64) {
    let mut sim = Sim::new(seed);
    for _ in 0..400 {
        sim.step();
    }
    for w in 0..sim.writers.len() {
        sim.close(w);
    }
    sim.check();
    let totals = Totals {
        seeds: 1,
        requests: sim.mem.requests(),
        checks: sim.checks,
        failed_reads: sim.failed_reads,
    };
    (totals, sim.mem.digest())
}

/// Longest a seed may run: far beyond what one takes (well under a second), so that a hang
/// (a writer waiting for a job that never ends) fails the run with its seed instead of
/// holding CI until its limit.
const HANG: Duration = Duration::from_secs(120);

/// Runs seeds from `first` on, on a thread per core (each seed on one thread alone), until
/// `budget` requests were sent.
fn run(first: u64, budget: u64) -> Totals {
    let next = AtomicU64::new(first);
    let sent = AtomicU64::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let totals = Mutex::new(Totals::default());
    let running: Mutex<HashMap<u64, Instant>> = Mutex::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let running = running.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((seed, _)) = running.iter().find(|(_, at)| at.elapsed() > HANG) {
                    // A hung thread cannot be unwound from here: end the run, naming it.
                    eprintln!(
                        "simulation seed {seed} hangs (over {HANG:?}); replay: \
                         S3SYNCR_SIM_SEED={seed} cargo test --lib sim"
                    );
                    std::process::abort();
                }
            }
        });
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    while sent.load(Ordering::Relaxed) < budget {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        lock(&running).insert(seed, Instant::now());
                        let one = run_seed(seed);
                        lock(&running).remove(&seed);
                        sent.fetch_add(one.requests, Ordering::Relaxed);
                        let mut totals = lock(&totals);
                        totals.seeds += 1;
                        totals.requests += one.requests;
                        totals.checks += one.checks;
                        totals.failed_reads += one.failed_reads;
                    }
                })
            })
            .collect();
        let panicked = workers.into_iter().map(|w| w.join()).find_map(Result::err);
        done.store(true, Ordering::Relaxed);
        if let Some(panic) = panicked {
            std::panic::resume_unwind(panic);
        }
    });
    totals.into_inner().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn every_acknowledged_record_stays_once_and_in_order_under_combined_faults() {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let budget = var("S3SYNCR_SIM_REQUESTS").unwrap_or(200_000);
    let started = Instant::now();
    let (first, totals) = match var("S3SYNCR_SIM_SEED") {
        Some(seed) => (seed, run_seed(seed)),
        None => (1, run(1, budget)),
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "simulated {} requests over {} seeds from {first} ({} whole-stream checks, {} reads \
         failed by faults) in {secs:.1} s: {:.0} requests/s",
        totals.requests,
        totals.seeds,
        totals.checks,
        totals.failed_reads,
        totals.requests as f64 / secs
    );
}

#[test]
fn a_seed_replays_exactly() {
    // Odd seeds lose answers; several seeds draw read-ahead, appends by copy and every seal.
    for seed in 1..=6 {
        let (first, digest) = simulate(seed);
        let (again, replayed) = simulate(seed);
        assert_eq!(
            (first.requests, digest),
            (again.requests, replayed),
            "seed {seed} sent other requests when replayed"
        );
    }
}
