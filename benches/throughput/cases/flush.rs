//! Case 2: small records through `BufWriter<Storage>`, flushed at a fixed pace.

use std::io::{BufWriter, Write};

use s3::Bucket;

use crate::cases::{delete_prefix, open};
use crate::report::{FlushRow, Metric, Uploads};
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
                "2. BufWriter, {RECORD} B records, flush every {} MiB, min_size {seal_mib}",
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
                    let mut next_flush = flush_every;
                    for (i, record) in records.chunks_exact(RECORD).enumerate() {
                        log.write_all(record).expect("write");
                        if (i + 1) * RECORD >= next_flush {
                            log.flush().expect("flush");
                            next_flush += flush_every;
                        }
                    }
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
