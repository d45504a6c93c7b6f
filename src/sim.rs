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
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use s3::creds::Credentials;
use s3::{Bucket, Region};

use crate::client::S3Client;
use crate::client::mem::{Call, Fault, MemS3, Quirks};
use crate::draw::{Rng, mix};
use crate::layout::Layout;
use crate::store::MAX_COPY;
use crate::{Error, Options, Storage};

mod check;
mod run;
mod world;

use check::record;

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
                    self.take_back(w, &err);
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
                self.take_back(w, &err);
            }
        }
    }

    /// A writer that stopped (fenced, or its upload lost) hands back what S3 lacks: those
    /// records are refused, the rest stored, unless it reports parts lost with memory.
    fn take_back(&mut self, w: usize, err: &std::io::Error) {
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
}
