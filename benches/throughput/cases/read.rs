//! Cases 3, 4 and 5: sequential reads, random reads after a seek, and the memory of reading
//! one large object.

use std::fmt::Write as _;
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Instant;

use s3::Bucket;
use s3_syncr::Options;

use crate::cases::{fixture_name, open_read};
use crate::report::{Metric, median, percentile, show};
use crate::system::measure;
use crate::{Bench, MIB, SEED, XorShift};

const RANDOM_READ_LEN: usize = 4096;

impl Bench<'_> {
    /// Cases 3 and 5: the whole stream into `io::sink()`, against whole-object GETs and against
    /// ranged GETs of `read_chunk` bytes, one after another.
    pub fn read(&mut self, bucket: &Bucket, seal_mib: usize, case: &str) {
        let name = fixture_name(seal_mib);
        let objects = open_read(bucket, &name).objects().expect("objects");
        let len = self.data.len() as u64;
        let chunk = Options::default().read_chunk() as u64;
        let mut whole = |_: usize| {
            measure(|| {
                for object in &objects {
                    let status = bucket
                        .get_object_to_writer(&object.key, &mut io::sink())
                        .expect("raw get");
                    assert_eq!(status, 200);
                }
            })
        };
        let mut ranged = |_: usize| {
            measure(|| {
                for object in &objects {
                    for start in (0..object.size).step_by(chunk as usize) {
                        let end = (start + chunk).min(object.size) - 1;
                        let status = bucket
                            .get_object_range_to_writer(
                                &object.key,
                                start,
                                Some(end),
                                &mut io::sink(),
                            )
                            .expect("raw ranged get");
                        assert_eq!(status, 206);
                    }
                }
            })
        };
        let mut storage = |_: usize| {
            measure(|| {
                let mut storage = open_read(bucket, &name);
                let copied = io::copy(&mut storage, &mut io::sink()).expect("copy");
                assert_eq!(copied, len);
                storage.close().expect("close");
            })
        };
        self.compare(
            Metric::Throughput(len),
            &mut [
                (format!("{case}, vs whole-object GETs"), &mut whole),
                (
                    format!("{case}, vs {} MiB ranged GETs", chunk / MIB as u64),
                    &mut ranged,
                ),
            ],
            &mut storage,
        );
    }

    /// Case 4: `seek` + 4 KiB `read` at random offsets, against one ranged GET each.
    pub fn random_reads(&mut self, bucket: &Bucket, seal_mib: usize) {
        let (server, data) = (self.server, self.data);
        let name = fixture_name(seal_mib);
        let objects = open_read(bucket, &name).objects().expect("objects");
        let mut rng = XorShift(SEED);
        let span = (data.len() - RANDOM_READ_LEN + 1) as u64;
        let offsets: Vec<u64> = (0..self.random_reads).map(|_| rng.next() % span).collect();
        let mut p90 = (Vec::new(), Vec::new());
        let mut gets = (0, 0);
        let count_gets = || {
            server
                .take_requests()
                .iter()
                .filter(|r| r.op == "GetObject")
                .count()
        };
        self.case(
            &format!(
                "4. {} KiB read after a seek, {seal_mib} MiB objects (median latency)",
                RANDOM_READ_LEN / 1024
            ),
            Metric::Latency,
            |_| {
                let mut latencies = Vec::with_capacity(offsets.len());
                count_gets();
                let mut sample = measure(|| {
                    for &offset in &offsets {
                        let started = Instant::now();
                        let bytes = raw_range(bucket, &objects, offset, RANDOM_READ_LEN, true);
                        latencies.push(started.elapsed().as_secs_f64());
                        let offset = offset as usize;
                        assert_eq!(bytes[..], data[offset..offset + RANDOM_READ_LEN]);
                    }
                });
                gets.0 = count_gets();
                sample.secs = median(&latencies);
                p90.0.push(percentile(&latencies, 0.9));
                sample
            },
            |_| {
                let mut storage = open_read(bucket, &name);
                let mut latencies = Vec::with_capacity(offsets.len());
                let mut out = [0; RANDOM_READ_LEN];
                count_gets();
                let mut sample = measure(|| {
                    for &offset in &offsets {
                        let started = Instant::now();
                        storage.seek(SeekFrom::Start(offset)).expect("seek");
                        storage.read_exact(&mut out).expect("read");
                        latencies.push(started.elapsed().as_secs_f64());
                        let offset = offset as usize;
                        assert_eq!(out[..], data[offset..offset + RANDOM_READ_LEN]);
                    }
                });
                gets.1 = count_gets();
                storage.close().expect("close");
                sample.secs = median(&latencies);
                p90.1.push(percentile(&latencies, 0.9));
                sample
            },
        );
        // What `Storage` fetches after a seek: its first read window, up to the object's end.
        let window = 4 * 1024;
        let wide: Vec<f64> = offsets
            .iter()
            .map(|&offset| {
                let started = Instant::now();
                raw_range(bucket, &objects, offset, window, false);
                started.elapsed().as_secs_f64()
            })
            .collect();
        let per_read = |n: usize| {
            if server.is_external() {
                "not counted".to_owned()
            } else {
                format!("{:.2}", n as f64 / offsets.len() as f64)
            }
        };
        let _ = writeln!(
            self.section.details,
            "- Case 4 ({} reads per run): 90th percentile latency (median over runs) raw {}, storage {}; GET \
             requests per read (last run) raw {}, storage {}. A `Storage` read after a seek \
             fetches its first read window, {} KiB (less at an object's end; more for a larger read); a raw ranged GET \
             of those same {} KiB takes {} (median, one run).",
            offsets.len(),
            show(Metric::Latency, median(&p90.0)),
            show(Metric::Latency, median(&p90.1)),
            per_read(gets.0),
            per_read(gets.1),
            window / 1024,
            window / 1024,
            show(Metric::Latency, median(&wide)),
        );
    }
}

/// The `len` bytes at stream offset `offset` (fewer at the stream's end), with one ranged GET
/// per object they fall in, or only from the first object unless `cross`.
fn raw_range(
    bucket: &Bucket,
    objects: &[s3_syncr::Object],
    offset: u64,
    len: usize,
    cross: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let (mut pos, end) = (offset, offset + len as u64);
    let mut start = 0;
    for object in objects {
        let stop = start + object.size;
        if pos < stop && pos < end {
            let last = end.min(stop) - 1;
            let response = bucket
                .get_object_range(&object.key, pos - start, Some(last - start))
                .expect("raw ranged get");
            out.extend_from_slice(response.as_slice());
            pos = last + 1;
            if !cross {
                break;
            }
        }
        start = stop;
    }
    out
}
