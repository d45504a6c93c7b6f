//! Case 6: a large tail flushed often, into `Storage` or re-uploaded whole by hand.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Instant;

use s3::Bucket;
use s3_syncr::Options;

use crate::cases::{delete_prefix, open};
use crate::report::{Metric, median, show};
use crate::system::measure;
use crate::{Bench, MIB};

/// The size of each flushed write: every 512 KiB into one object.
const APPEND_STEP: usize = 512 * 1024;

impl Bench<'_> {
    /// Case 6: each write of [`APPEND_STEP`] bytes flushed, into one object, against a `Vec`
    /// re-uploaded whole at each flush.
    pub fn appends(&mut self, bucket: &Bucket) {
        let data: &[u8] = self.data;
        let data = &data[..data.len().min(self.flush_mib * MIB)];
        let (mut raw_last, mut storage_last) = (Vec::new(), Vec::new());
        self.case(
            &format!(
                "6. {} KiB written and flushed at a time, one {} MiB object",
                APPEND_STEP / 1024,
                data.len() / MIB
            ),
            Metric::Throughput(data.len() as u64),
            |run| {
                let key = format!("rawappend-{run}.bin");
                let mut tail = Vec::with_capacity(data.len());
                let mut last = 0.0;
                let sample = measure(|| {
                    for step in data.chunks(APPEND_STEP) {
                        tail.extend_from_slice(step);
                        let started = Instant::now();
                        bucket.put_object(&key, &tail).expect("raw put");
                        last = started.elapsed().as_secs_f64();
                    }
                });
                raw_last.push(last);
                bucket.delete_object(&key).expect("delete");
                sample
            },
            |run| {
                let name = format!("stappend-{run}.bin");
                let mut last = 0.0;
                let sample = measure(|| {
                    let mut storage = open(bucket, &name, 64);
                    for step in data.chunks(APPEND_STEP) {
                        storage.write_all(step).expect("write");
                        let started = Instant::now();
                        storage.flush().expect("flush");
                        last = started.elapsed().as_secs_f64();
                    }
                    storage.close().expect("close");
                });
                storage_last.push(last);
                assert_eq!(delete_prefix(bucket, &format!("stappend-{run}-")), 1);
                sample
            },
        );
        // Bytes each side uploads, from its rules: the raw side re-sends the tail every time;
        // `Storage` does until S3 holds the append-by-copy threshold, then sends the new bytes alone.
        let threshold = Options::default().append_by_copy().expect("on by default");
        let (mut raw, mut storage, mut stored) = (0u64, 0u64, 0usize);
        for step in data.chunks(APPEND_STEP) {
            let tail = stored + step.len();
            raw += tail as u64;
            storage += if stored >= threshold {
                step.len()
            } else {
                tail
            } as u64;
            stored = tail;
        }
        let written = data.len() as f64;
        let _ = writeln!(
            self.section.details,
            "- Case 6: bytes uploaded per byte written, raw {:.2}, storage {:.2} (appends by copy \
             from {} MiB on); latency of the last flush (median over runs) raw {}, storage {}.",
            raw as f64 / written,
            storage as f64 / written,
            threshold / MIB,
            show(Metric::Latency, median(&raw_last)),
            show(Metric::Latency, median(&storage_last)),
        );
    }
}
