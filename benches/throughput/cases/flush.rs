//! Cases 2 and 8: small records through `BufWriter<Storage>`, flushed at a fixed pace, and
//! the latency of one flush of a small tail.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::time::Instant;

use s3::Bucket;

use crate::cases::{delete_prefix, open, write_flushed};
use crate::report::{FlushRow, Metric, Uploads, median, percentile, show};
use crate::system::measure;
use crate::{Bench, MIB};

/// Size of a record.
const RECORD: usize = 100;

impl Bench<'_> {
    /// Case 2: 100-byte records, flushed every `flush_every` bytes, in `seal_mib` MiB objects.
    pub fn flushed_records(&mut self, bucket: &Bucket, seal_mib: usize, flush_every: usize) {
        let server = self.server;
        let records = &self.data[..self.data.len().min(self.flush_mib * MIB) / RECORD * RECORD];
        let written = records.len() as u64;
        let seal = seal_mib * MIB;
        let mut raw_counts = (0, 0);
        let mut storage_uploads = Vec::new();
        self.case(
            &format!(
                "2. BufWriter, {RECORD} B records, flush every {} MiB, seal {seal_mib} MiB",
                flush_every / MIB
            ),
            Metric::Throughput(written),
            |run| {
                let prefix = format!("rawrec{flush_every}-{run}/");
                let mut counts = (0, 0);
                let sample = measure(|| {
                    counts = hand_rolled_records(bucket, &prefix, records, seal, flush_every);
                });
                raw_counts = counts;
                delete_prefix(bucket, &prefix);
                sample
            },
            |run| {
                let prefix = format!("strec{flush_every}-{run}/");
                server.take_requests();
                let sample = measure(|| {
                    let storage = open(bucket, &format!("{prefix}rec.log"), seal_mib);
                    let mut log = BufWriter::new(storage);
                    write_flushed(&mut log, records, RECORD, flush_every);
                    let storage = log.into_inner().map_err(|e| e.into_error()).unwrap();
                    storage.close().expect("close");
                });
                let requests = server.take_requests();
                let count = |op: &str| requests.iter().filter(|r| r.op == op).count();
                storage_uploads.push((!server.is_external()).then(|| Uploads {
                    puts: count("PutObject"),
                    parts: count("UploadPart"),
                    copies: count("UploadPartCopy"),
                }));
                delete_prefix(bucket, &prefix);
                sample
            },
        );
        self.section.flush_rows.push(FlushRow {
            flush_every,
            seal,
            written,
            raw_puts: raw_counts.0,
            raw_uploaded: raw_counts.1,
            storage_uploads,
        });
    }
}
/// Case 2 by hand: records appended to a `Vec`, the whole `Vec` uploaded at each flush, a new
/// key once it holds `seal` bytes. Returns the PUTs sent and the bytes uploaded.
fn hand_rolled_records(
    bucket: &Bucket,
    prefix: &str,
    records: &[u8],
    seal: usize,
    flush_every: usize,
) -> (usize, u64) {
    let mut object = Vec::with_capacity(seal + RECORD);
    let (mut seq, mut dirty) = (0u64, false);
    let (mut puts, mut uploaded) = (0, 0u64);
    let mut put = |seq: u64, body: &[u8]| {
        bucket
            .put_object(format!("{prefix}rec-{seq:020}.log"), body)
            .expect("raw put");
        puts += 1;
        uploaded += body.len() as u64;
    };
    let mut next_flush = flush_every;
    for (i, record) in records.chunks_exact(RECORD).enumerate() {
        if object.len() >= seal {
            if dirty {
                put(seq, &object);
            }
            seq += 1;
            object.clear();
        }
        object.extend_from_slice(record);
        dirty = true;
        if (i + 1) * RECORD >= next_flush {
            put(seq, &object);
            dirty = false;
            next_flush += flush_every;
        }
    }
    if dirty {
        put(seq, &object);
    }
    (puts, uploaded)
}

impl Bench<'_> {
    /// Case 8: [`RECORD`] bytes written then flushed, `small_flushes` times, into a tail that
    /// stays small (one conditional PUT of the whole tail per flush), against a raw
    /// `put_object` of the same tail each time (a new connection per request).
    pub fn small_flushes(&mut self, bucket: &Bucket) {
        let server = self.server;
        let flushes = self.small_flushes;
        // One record more: the first flush creates the object, on both sides, untimed.
        let records = &self.data[..RECORD * (flushes + 1)];
        let (first, timed) = records.split_at(RECORD);
        let mut p90 = (Vec::new(), Vec::new());
        let mut requests = ((0, 0), (0, 0));
        // Requests the in-process server saw since the last call, and the PUTs among them.
        let count = || {
            let seen = server.take_requests();
            let puts = seen.iter().filter(|r| r.op == "PutObject").count();
            (seen.len(), puts)
        };
        self.case(
            &format!("8. flush of a small tail, {RECORD} B written before each (median latency)"),
            Metric::Latency,
            |run| {
                let key = format!("rawtail-{run}.log");
                let mut tail = Vec::with_capacity(records.len());
                tail.extend_from_slice(first);
                bucket.put_object(&key, &tail).expect("raw put");
                let mut latencies = Vec::with_capacity(flushes);
                count();
                let mut sample = measure(|| {
                    for record in timed.chunks_exact(RECORD) {
                        tail.extend_from_slice(record);
                        let started = Instant::now();
                        bucket.put_object(&key, &tail).expect("raw put");
                        latencies.push(started.elapsed().as_secs_f64());
                    }
                });
                requests.0 = count();
                bucket.delete_object(&key).expect("delete");
                sample.secs = median(&latencies);
                p90.0.push(percentile(&latencies, 0.9));
                sample
            },
            |run| {
                let name = format!("sttail-{run}.log");
                let mut storage = open(bucket, &name, 8);
                storage.write_all(first).expect("write");
                storage.flush().expect("flush");
                let mut latencies = Vec::with_capacity(flushes);
                count();
                let mut sample = measure(|| {
                    for record in timed.chunks_exact(RECORD) {
                        storage.write_all(record).expect("write");
                        let started = Instant::now();
                        storage.flush().expect("flush");
                        latencies.push(started.elapsed().as_secs_f64());
                    }
                });
                requests.1 = count();
                storage.close().expect("close");
                assert_eq!(delete_prefix(bucket, &format!("sttail-{run}-")), 1);
                sample.secs = median(&latencies);
                p90.1.push(percentile(&latencies, 0.9));
                sample
            },
        );
        let per_flush = |(all, puts): (usize, usize)| {
            if server.is_external() {
                "not counted".to_owned()
            } else {
                format!(
                    "{:.2} ({:.2} PUTs)",
                    all as f64 / flushes as f64,
                    puts as f64 / flushes as f64
                )
            }
        };
        let _ = writeln!(
            self.section.details,
            "- Case 8 ({flushes} flushes per run, the tail growing from {RECORD} B to {} KiB): \
             90th percentile latency (median over runs) raw {}, storage {}; requests per flush \
             (last run) raw {}, storage {}. `Storage` sends one conditional PUT of the whole tail \
             on a kept-alive connection; raw rust-s3 opens a connection for each PUT.",
            records.len().div_ceil(1024),
            show(Metric::Latency, median(&p90.0)),
            show(Metric::Latency, median(&p90.1)),
            per_flush(requests.0),
            per_flush(requests.1),
        );
    }
}
