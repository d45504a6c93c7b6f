//! Case 9: a directory bucket (S3 Express One Zone, as the in-process server emulates it) next
//! to a general-purpose bucket, both through `Storage`: 100-byte records flushed one at a time,
//! and flushed every 1 MiB. The general-purpose bucket is the row's baseline (its "raw"
//! column), so the ratio is the directory bucket's flushes per second over the general-purpose
//! bucket's; bytes uploaded per byte written are counted by the server.

use std::fmt::Write as _;

use s3::Bucket;
use s3_syncr_test_server::Server;

use crate::cases::{open, write_flushed};
use crate::report::{Metric, Sample, median};
use crate::system::measure;
use crate::{Bench, MIB};

/// Size of a record.
const RECORD: usize = 100;

impl Bench<'_> {
    /// Case 9, on the in-process server only (the others have no directory buckets), without
    /// the WAN relay.
    pub fn express(&mut self) {
        if !self.server.has_directory_buckets() || self.via.is_some() {
            let _ = writeln!(
                self.section.details,
                "- Case 9 skipped: directory buckets are the in-process server's emulation, \
                 reached straight."
            );
            return;
        }
        let general = self.server.new_bucket();
        let directory = self.server.new_directory_bucket();
        let one_at_a_time = self.small_flushes * RECORD;
        let every_mib = self.data.len().min(self.flush_mib * MIB) / RECORD * RECORD;
        for (pace, len, every) in [
            ("one at a time", one_at_a_time, RECORD),
            ("every 1 MiB", every_mib, MIB),
        ] {
            let records = &self.data[..len];
            let flushes = len.div_ceil(every);
            let server = self.server;
            let mut uploaded = (Vec::new(), Vec::new());
            let mut secs = (Vec::new(), Vec::new());
            self.case(
                &format!(
                    "9. directory bucket / general-purpose bucket, {RECORD} B records flushed \
                     {pace}"
                ),
                Metric::Throughput(len as u64),
                |run| {
                    let (sample, bytes) = flushed(server, &general, run, records, every);
                    uploaded.0.push(bytes);
                    secs.0.push(sample.secs);
                    sample
                },
                |run| {
                    let (sample, bytes) = flushed(server, &directory, run, records, every);
                    uploaded.1.push(bytes);
                    secs.1.push(sample.secs);
                    sample
                },
            );
            let per_byte = |bytes: &[u64]| {
                median(&bytes.iter().map(|&b| b as f64).collect::<Vec<_>>()) / len as f64
            };
            let rate = |secs: &[f64]| flushes as f64 / median(secs);
            let _ = writeln!(
                self.section.details,
                "- Case 9, flushed {pace} ({flushes} flushes, {:.2} MiB in all): flushes per \
                 second general-purpose {:.0}, directory {:.0} (ratio {:.2}); bytes uploaded per \
                 byte written general-purpose {:.2}, directory {:.2}.",
                len as f64 / MIB as f64,
                rate(&secs.0),
                rate(&secs.1),
                rate(&secs.1) / rate(&secs.0),
                per_byte(&uploaded.0),
                per_byte(&uploaded.1),
            );
        }
    }
}

/// Writes `records` into a new stream of `bucket`, flushed every `every` bytes, and closes it:
/// the time it took, and the bytes its PUTs and parts uploaded.
fn flushed(
    server: &Server,
    bucket: &Bucket,
    run: usize,
    records: &[u8],
    every: usize,
) -> (Sample, u64) {
    let prefix = format!("express{every}-{run}/");
    server.take_requests();
    let sample = measure(|| {
        let mut log = open(bucket, &format!("{prefix}rec.log"), 8);
        write_flushed(&mut log, records, RECORD, every);
        log.close().expect("close");
    });
    // Left in place: rust-s3's own requests, which list and delete, carry no session, and the
    // server's directory goes when it stops.
    let uploaded = server.take_requests().iter().map(|r| r.bytes).sum();
    (sample, uploaded)
}
