//! Case 7: how soon a follower reads what a writer flushed, and what following costs while
//! nothing arrives.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::thread;
use std::time::{Duration, Instant};

use s3::Bucket;
use s3_syncr::Storage;

use crate::Bench;
use crate::cases::{delete_prefix, open, open_read};
use crate::report::{Metric, median, percentile, show};

/// The pause after each flushed record: records that flow, not one burst that a single poll
/// would bring.
const PACE: Duration = Duration::from_millis(20);
/// The follower's longest wait between polls: `cat --follow`'s default `--interval`.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long the follower idles before its requests are counted: its polls back off from
/// 50 ms to [`INTERVAL`] in about 2.5 s, and what is counted should be the steady pace.
const SETTLE: Duration = Duration::from_secs(3);
/// How long an idle follower's requests are counted.
const IDLE: Duration = Duration::from_secs(5);
/// A record: its number and a newline, of a fixed length so that the follower counts records
/// by bytes.
const RECORD: usize = 16;
/// How long the follower waits for the next record before the case fails rather than hangs.
const GIVE_UP: Duration = Duration::from_secs(30);

impl Bench<'_> {
    /// Case 7: a writer flushes `follow_records` records, [`PACE`] apart, while a second handle
    /// follows with `wait_for_data`; each record's latency runs from the writer's flush
    /// returning to the follower reading it. Then, on the in-process server, the requests of
    /// the follower alone while idle.
    pub fn follow(&mut self, bucket: &Bucket) {
        let records = self.follow_records;
        let (mut p50, mut p99) = (Vec::new(), Vec::new());
        let mut idle = "not counted (external server)".to_owned();
        for run in 0..self.runs {
            let name = format!("follow-{run}.log");
            let follower = open_read(bucket, &name);
            let mut writer = open(bucket, &name, 8);
            let reader = thread::spawn(move || receive(follower, records));
            let mut written = Vec::with_capacity(records * RECORD);
            let mut flushed = Vec::with_capacity(records);
            for i in 0..records {
                let record = format!("{i:0width$}\n", width = RECORD - 1);
                writer.write_all(record.as_bytes()).expect("write");
                writer.flush().expect("flush");
                flushed.push(Instant::now());
                written.extend_from_slice(record.as_bytes());
                thread::sleep(PACE);
            }
            writer.close().expect("close");
            let (mut follower, read, seen) = reader.join().expect("follower");
            assert!(
                read == written,
                "the follower read other bytes than were written"
            );
            // A poll may get the bytes before the writer hears back from its upload: such a
            // record was visible at once.
            let latencies: Vec<f64> = (seen.iter().zip(&flushed))
                .map(|(seen, flushed)| seen.saturating_duration_since(*flushed).as_secs_f64())
                .collect();
            p50.push(median(&latencies));
            p99.push(percentile(&latencies, 0.99));
            eprintln!(
                "7. follow [run {}/{}]: p50 {}, p99 {}",
                run + 1,
                self.runs,
                show(Metric::Latency, p50[run]),
                show(Metric::Latency, p99[run])
            );
            // Once is enough: the idle pace does not depend on the run.
            if run == 0 && !self.server.is_external() {
                idle = self.idle_requests(&mut follower);
            }
            follower.close().expect("close");
            assert_eq!(delete_prefix(bucket, &format!("follow-{run}-")), 1);
        }
        let _ = writeln!(
            self.section.details,
            "- Case 7 ({records} records of {RECORD} B, each flushed, {} ms apart; the follower \
             waits with `wait_for_data({} s)`): from the writer's flush returning to the \
             follower reading the record, p50 {}, p99 {} (median over runs). An idle follower \
             (counted for {} s after {} s idle): {idle}.",
            PACE.as_millis(),
            INTERVAL.as_secs(),
            show(Metric::Latency, median(&p50)),
            show(Metric::Latency, median(&p99)),
            IDLE.as_secs(),
            SETTLE.as_secs(),
        );
    }

    /// The requests `follower` makes while nothing arrives, per minute and by kind.
    fn idle_requests(&self, follower: &mut Storage) -> String {
        let wait = |follower: &mut Storage, time: Duration| {
            let until = Instant::now() + time;
            while Instant::now() < until {
                let found = follower.wait_for_data(INTERVAL).expect("wait for data");
                assert!(!found, "bytes arrived with no writer");
            }
        };
        wait(follower, SETTLE);
        self.server.take_requests();
        let started = Instant::now();
        wait(follower, IDLE);
        let requests = self.server.take_requests();
        let secs = started.elapsed().as_secs_f64();
        let gets = requests.iter().filter(|r| r.op == "GetObject").count();
        let lists = (requests.iter())
            .filter(|r| r.op.starts_with("ListObjects"))
            .count();
        format!(
            "{:.0} requests per minute ({} in {secs:.1} s: {gets} GETs, {lists} LISTs, {} \
             others; a follower lists once a minute at most, which so short a count may miss)",
            requests.len() as f64 * 60.0 / secs,
            requests.len(),
            requests.len() - gets - lists,
        )
    }
}

/// Follows until `records` records have come, and returns the follower, the bytes it read and
/// when it read each record.
fn receive(mut follower: Storage, records: usize) -> (Storage, Vec<u8>, Vec<Instant>) {
    let mut read = Vec::with_capacity(records * RECORD);
    let mut seen = Vec::with_capacity(records);
    let mut waiting = Instant::now();
    while seen.len() < records {
        if !follower.wait_for_data(INTERVAL).expect("wait for data") {
            assert!(
                waiting.elapsed() < GIVE_UP,
                "the follower saw {} of {records} records",
                seen.len()
            );
            continue;
        }
        let now = Instant::now();
        let bytes = follower.fill_buf().expect("read");
        let n = bytes.len();
        read.extend_from_slice(bytes);
        follower.consume(n);
        seen.resize(read.len() / RECORD, now);
        waiting = now;
    }
    (follower, read, seen)
}
