//! Throughput, latency and memory of [`Storage`] next to the plain rust-s3 calls it makes, on
//! up to three setups in one run.
//!
//! | setup | server | data set |
//! |---|---|---|
//! | `inproc` | the in-process s3s-fs server (real HTTP on loopback, in this process) | `S3SYNCR_BENCH_MIB` |
//! | `seaweedfs` | the external server of `S3SYNCR_TEST_ENDPOINT` (SeaweedFS in `benches/run.sh`), on loopback | `S3SYNCR_BENCH_MIB` |
//! | `wan` | the external server (else the in-process one) behind the test proxy's WAN relay: 20 ms RTT, 50 MB/s per connection and direction, 2 handshake round trips per connection, TCP slow start | `S3SYNCR_BENCH_WAN_MIB` |
//!
//! s3s-fs serves GETs at about 90 MB/s, so a slow reader hides behind it; SeaweedFS serves them
//! at about 1 GiB/s; loopback has no latency at all, the WAN relay adds S3's.
//!
//! Every case runs raw rust-s3 equivalents and `Storage` on the same server, in the same process,
//! interleaved over several runs (raw first on even runs, `Storage` first on odd ones), and
//! reports medians:
//!
//! 1. **Write**: `io::copy` of the whole data set into `Storage` (`seal_size` 8 and 256 MiB) then
//!    `close`, against `put_object` of the same objects one after another (single PUTs, as
//!    0.1.0 sent them). The source is a reader that is not `BufRead` (like a file or a pipe), so
//!    `io::copy` writes 8 KiB at a time. `Storage` streams 8 MiB parts, 4 at once. Also one
//!    `write_all` of the whole data set (`seal_size` 8 MiB), which must stream the same way.
//! 2. **Flushed small records**: 100-byte records (`S3SYNCR_BENCH_FLUSH_MIB` of them) through
//!    `BufWriter<Storage>` (`seal_size` 8 MiB), flushed every 1 MiB and every 8 MiB, against the same
//!    scheme by hand (a `Vec` re-uploaded whole with `put_object` at each flush, a new key every
//!    8 MiB). Also reports the raw side's PUTs and overwrite amplification (bytes uploaded /
//!    bytes written) next to the README's estimate for that scheme, `S / 2K + 1`, and the
//!    requests that carried `Storage`'s bytes (PutObject, UploadPart, UploadPartCopy), counted
//!    by the in-process server.
//! 3. **Sequential read**: `io::copy` of the whole stream (8 MiB and 64 MiB objects) into
//!    `io::sink()`, against two raw readers one object after another: (a) `get_object_to_writer`
//!    of each whole object, (b) ranged GETs of `read_chunk` bytes (`get_object_range_to_writer`).
//! 4. **Random reads**: `seek` + 4 KiB `read` at offsets from a fixed-seed xorshift PRNG, against
//!    one ranged GET (`get_object_range`) of the same 4 KiB: median latency per read.
//! 5. **Memory**: reading a stream made of one object as large as the data set, and writing with
//!    `seal_size` 256 MiB (the runs of case 1).
//! 6. **Flushes of a large tail**: `S3SYNCR_BENCH_FLUSH_MIB` written 512 KiB at a time into one
//!    object (`seal_size` 64 MiB), each write flushed, against the same by hand (a `Vec` re-uploaded
//!    whole with `put_object` at each flush, which is also what `Storage` does with
//!    `append_by_copy: false`). Also reports bytes uploaded per byte written and the last
//!    flush's latency on each side.
//! 7. **Follow**: a writer appends `S3SYNCR_BENCH_FOLLOW_RECORDS` 16-byte records, each
//!    flushed, 20 ms apart, while a second handle follows with `wait_for_data(1 s)`: the time
//!    from the writer's flush returning to the follower reading the record, p50 and p99 (no
//!    raw baseline). Then, on the in-process server, the requests the follower alone makes
//!    while idle, per minute. Through the WAN relay, both handles pay its round trips.
//! 8. **Flushing a small tail**: 100 bytes written then flushed, one flush timed at a time, on
//!    a stream whose tail stays a few KiB (each flush is one conditional PUT of the whole
//!    tail), against `put_object` of the same tail: median and 90th percentile latency per
//!    request. rust-s3 opens a new connection for each request; `Storage` keeps its own open.
//! 9. **Directory bucket**: `Storage` on a directory bucket (S3 Express One Zone, as the
//!    in-process server emulates it: each flush one append) against `Storage` on a
//!    general-purpose bucket as the baseline: 100-byte records flushed one at a time
//!    (`S3SYNCR_BENCH_SMALL_FLUSHES` of them) and flushed every 1 MiB
//!    (`S3SYNCR_BENCH_FLUSH_MIB`), `min_size` 8: flushes per second and bytes uploaded per byte
//!    written, counted by the server. In-process setup only.
//!
//! Reads use `Options::default()`; writes change only `seal_size`. The report prints the options.
//!
//! Memory is the growth of the process's peak resident set size during the measured section:
//! the peak is reset with `/proc/self/clear_refs`, then `VmHWM` after minus `VmRSS` before (Linux
//! only). The in-process server and the WAN relay run in the same process, so their buffers count
//! too. The benchmark runs itself again with `MALLOC_MMAP_THRESHOLD_=131072` (unless that
//! variable is set): glibc then gives every freed buffer of 128 KiB or more back to the system,
//! instead of keeping it on its heap for the next case to reuse unseen.
//!
//! ```sh
//! cargo bench --bench throughput                  # in-process only unless an endpoint is set
//! S3SYNCR_BENCH_SETUPS=inproc S3SYNCR_BENCH_MIB=32 S3SYNCR_BENCH_CASES=read,random \
//!     cargo bench --bench throughput              # quick check
//! benches/run.sh                                  # SeaweedFS too, and the tools: benches/results.md
//! ```
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `S3SYNCR_BENCH_SETUPS` | `inproc,seaweedfs,wan` | setups to run, in this order; `seaweedfs` is skipped (and said so) without `S3SYNCR_TEST_ENDPOINT` |
//! | `S3SYNCR_BENCH_CASES` | `write,flush,read,random,memory,append,follow,tailflush,express` | cases to run (1 to 9 above) |
//! | `S3SYNCR_BENCH_MIB` | 256 | size of the data set in MiB on loopback |
//! | `S3SYNCR_BENCH_WAN_MIB` | 64 | size of the data set in MiB through the WAN relay |
//! | `S3SYNCR_BENCH_FLUSH_MIB` | 32 | cases 2 and 6 write at most this many MiB: flushing every 1 MiB uploads about 5 times that in case 2, re-uploading the tail at each of case 6's flushes about `MIB / 2` times |
//! | `S3SYNCR_BENCH_FOLLOW_RECORDS` | 50 | records case 7 writes per run (about 20 ms each, plus the flush) |
//! | `S3SYNCR_BENCH_RANDOM_READS` | 1000 | reads of case 4 on loopback |
//! | `S3SYNCR_BENCH_WAN_RANDOM_READS` | 50 | reads of case 4 through the WAN relay (each costs 3 RTT) |
//! | `S3SYNCR_BENCH_SMALL_FLUSHES` | 200 | flushes of case 8 on loopback |
//! | `S3SYNCR_BENCH_WAN_SMALL_FLUSHES` | 50 | flushes of case 8 through the WAN relay |
//! | `S3SYNCR_BENCH_WAN_RTT_MS` | 20 | the relay's round-trip time |
//! | `S3SYNCR_BENCH_WAN_MBPS` | 50 | the relay's rate per connection and direction, in MB/s |
//! | `S3SYNCR_BENCH_WAN_SLOW_START` | 1 | 0: the relay gives each connection its full rate from the first byte |
//! | `S3SYNCR_BENCH_RUNS` | 3 | runs of each case; medians are over runs |
//! | `S3SYNCR_TEST_ENDPOINT` | unset | the external S3 server (with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally `AWS_REGION`) |
//! | `S3SYNCR_BENCH_SERVER_NAME` | `external server` | what the report calls it |
//!
//! The report (markdown, on stdout) has a section per setup and ends with the ratios of all
//! setups side by side; progress goes to stderr. Nothing here asserts timings.

mod cases;
mod report;
mod system;

use std::time::{Duration, Instant};

use s3::Bucket;
use s3_syncr_test_server::{Proxy, Server, Wan};

use cases::{delete_prefix, write_fixture};
use report::{Metric, Row, Sample, Section, report, show};

const MIB: usize = 1024 * 1024;
const SEED: u64 = 0x5EED_CAFE_F00D_D00D;

/// glibc's variable that fixes the mmap threshold (and so turns off its dynamic adjustment).
const MALLOC_ENV: &str = "MALLOC_MMAP_THRESHOLD_";

const SETUPS: [&str; 3] = ["inproc", "seaweedfs", "wan"];
const CASES: [&str; 9] = [
    "write",
    "flush",
    "read",
    "random",
    "memory",
    "append",
    "follow",
    "tailflush",
    "express",
];

fn main() {
    if std::env::var_os(MALLOC_ENV).is_none() {
        // Without it, glibc raises the threshold after the first large buffers are freed and
        // keeps later ones on its heap: a case would then reuse memory an earlier case left
        // resident, and its peak RSS would not show its own buffers.
        let status = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(std::env::args_os().skip(1))
            .env(MALLOC_ENV, "131072")
            .status()
            .expect("run again with a fixed mmap threshold");
        std::process::exit(status.code().unwrap_or(1));
    }
    let started = Instant::now();
    let setups = env_list("S3SYNCR_BENCH_SETUPS", &SETUPS);
    let cases = env_list("S3SYNCR_BENCH_CASES", &CASES);
    let mib = env_usize("S3SYNCR_BENCH_MIB", 256);
    let wan_mib = env_usize("S3SYNCR_BENCH_WAN_MIB", 64);
    let runs = env_usize("S3SYNCR_BENCH_RUNS", 3);
    let wan = Wan {
        rtt: Duration::from_millis(env_usize("S3SYNCR_BENCH_WAN_RTT_MS", 20) as u64),
        rate_bytes_per_sec: env_usize("S3SYNCR_BENCH_WAN_MBPS", 50) as u64 * 1_000_000,
        slow_start: env_usize("S3SYNCR_BENCH_WAN_SLOW_START", 1) != 0,
        ..Wan::default()
    };
    let external = Server::from_env();
    let external_name =
        std::env::var("S3SYNCR_BENCH_SERVER_NAME").unwrap_or_else(|_| "external server".to_owned());
    // Started only if a setup needs it: the WAN relay fronts it when there is no external one.
    let inproc = (setups.iter().any(|s| s == "inproc") || external.is_none()).then(Server::start);
    let largest = setups
        .iter()
        .map(|s| if s == "wan" { wan_mib } else { mib })
        .max()
        .unwrap_or(0);
    let data = random_bytes(largest * MIB);
    eprintln!(
        "s3-syncr benchmarks: setups {setups:?}, cases {cases:?}, {mib} MiB ({wan_mib} MiB \
         through the WAN relay), {runs} runs"
    );

    let mut sections = Vec::new();
    for setup in &setups {
        let setup_started = Instant::now();
        let bench = match setup.as_str() {
            "inproc" => {
                let server = inproc.as_ref().expect("started above");
                let mut bench = Bench::new(
                    "A. in-process s3s-fs",
                    server,
                    None,
                    &data[..mib * MIB],
                    runs,
                );
                bench.about = "in-process s3s-fs (real HTTP on loopback, SigV4, files in a \
                               temporary directory), in the benchmark's own process"
                    .to_owned();
                bench.random_reads = env_usize("S3SYNCR_BENCH_RANDOM_READS", 1000);
                bench.small_flushes = env_usize("S3SYNCR_BENCH_SMALL_FLUSHES", 200);
                Some(bench.run(&cases))
            }
            "seaweedfs" => external.as_ref().map(|server| {
                let mut bench = Bench::new(
                    &format!("B. {external_name} on loopback"),
                    server,
                    None,
                    &data[..mib * MIB],
                    runs,
                );
                bench.about = format!(
                    "{external_name} at {}, a separate process",
                    server.endpoint()
                );
                bench.random_reads = env_usize("S3SYNCR_BENCH_RANDOM_READS", 1000);
                bench.small_flushes = env_usize("S3SYNCR_BENCH_SMALL_FLUSHES", 200);
                bench.run(&cases)
            }),
            "wan" => {
                let (server, name) = match &external {
                    Some(server) => (server, external_name.as_str()),
                    None => (inproc.as_ref().expect("started above"), "in-process s3s-fs"),
                };
                let proxy = Proxy::start_wan(server.endpoint(), wan);
                let mut bench = Bench::new(
                    &format!("C. {name} behind a WAN relay"),
                    server,
                    Some(proxy.endpoint()),
                    &data[..wan_mib * MIB],
                    runs,
                );
                bench.about = format!(
                    "{name} at {}, through the test proxy's WAN relay at {}: {} ms RTT (each \
                     direction delayed by half), {} MB/s per connection and direction, {} \
                     round trips of handshake (TCP + TLS 1.3) before a new connection's first \
                     byte, slow start {}. rust-s3 opens a connection per request, so each request pays \
                     {} ms before its first byte comes back",
                    server.endpoint(),
                    proxy.endpoint(),
                    wan.rtt.as_millis(),
                    wan.rate_bytes_per_sec / 1_000_000,
                    wan.handshake_rtts,
                    if wan.slow_start {
                        "on (10 objects in the first round trip, doubling each round trip)"
                    } else {
                        "off"
                    },
                    (wan.rtt * (wan.handshake_rtts + 1)).as_millis(),
                );
                bench.random_reads = env_usize("S3SYNCR_BENCH_WAN_RANDOM_READS", 50);
                bench.small_flushes = env_usize("S3SYNCR_BENCH_WAN_SMALL_FLUSHES", 50);
                Some(bench.run(&cases))
            }
            other => panic!("unknown setup {other:?} in S3SYNCR_BENCH_SETUPS (known: {SETUPS:?})"),
        };
        match bench {
            Some(mut section) => {
                section.wall = setup_started.elapsed();
                sections.push(section);
            }
            None => {
                eprintln!("setup {setup}: skipped, S3SYNCR_TEST_ENDPOINT is not set");
                sections.push(Section::skipped(
                    "B. external server on loopback",
                    "skipped: no external server (`S3SYNCR_TEST_ENDPOINT` is not set; \
                     `benches/run.sh` starts SeaweedFS and sets it)",
                ));
            }
        }
    }
    print!("{}", report(&sections, runs, started.elapsed()));
}

struct Bench<'a> {
    server: &'a Server,
    /// Where requests go when not straight to the server: the WAN relay.
    via: Option<&'a str>,
    data: &'a [u8],
    runs: usize,
    random_reads: usize,
    /// Flushes of case 8 per run.
    small_flushes: usize,
    /// Size of case 2's data set in MiB, at most the whole data set.
    flush_mib: usize,
    /// Records case 7 writes per run.
    follow_records: usize,
    about: String,
    section: Section,
}

impl<'a> Bench<'a> {
    fn new(
        title: &str,
        server: &'a Server,
        via: Option<&'a str>,
        data: &'a [u8],
        runs: usize,
    ) -> Bench<'a> {
        let mut section = Section::skipped(title, "");
        section.mib = data.len() / MIB;
        section.in_process = !server.is_external();
        Bench {
            server,
            via,
            data,
            runs,
            random_reads: 1000,
            small_flushes: 200,
            flush_mib: env_usize("S3SYNCR_BENCH_FLUSH_MIB", 32),
            follow_records: env_usize("S3SYNCR_BENCH_FOLLOW_RECORDS", 50),
            about: String::new(),
            section,
        }
    }

    /// Runs the `cases` (names from [`CASES`]) and returns the results.
    fn run(mut self, cases: &[String]) -> Section {
        let has = |case: &str| cases.iter().any(|c| c == case);
        eprintln!("== {} ({} MiB)", self.section.title, self.section.mib);
        if has("write") || has("flush") {
            let writes = self.new_bucket();
            if has("write") {
                for (seal_mib, one_write) in [(8, false), (8, true), (256, false)] {
                    self.write(&writes, seal_mib, one_write);
                }
            }
            if has("flush") {
                for flush_every in [MIB, 8 * MIB] {
                    self.flushed_records(&writes, 8, flush_every);
                }
            }
        }
        if has("append") {
            let appends = self.new_bucket();
            self.appends(&appends);
        }
        if has("tailflush") {
            let tails = self.new_bucket();
            self.small_flushes(&tails);
        }
        if has("follow") {
            let follows = self.new_bucket();
            self.follow(&follows);
        }
        if has("express") {
            self.express();
        }
        if has("read") || has("random") || has("memory") {
            let reads = self.new_bucket();
            let whole = self.data.len() / MIB;
            let mut fixtures = Vec::new();
            let wanted = [
                (has("read") || has("random")).then_some(8),
                has("read").then_some(64),
                has("memory").then_some(whole),
            ];
            for seal_mib in wanted.into_iter().flatten() {
                if !fixtures.contains(&seal_mib) {
                    write_fixture(&reads, self.data, seal_mib);
                    fixtures.push(seal_mib);
                }
            }
            if has("read") {
                for seal_mib in [8, 64] {
                    self.read(
                        &reads,
                        seal_mib,
                        &format!("3. read, {seal_mib} MiB objects"),
                    );
                }
            }
            if has("random") {
                self.random_reads(&reads, 8);
            }
            if has("memory") {
                self.read(
                    &reads,
                    whole,
                    "5. memory: read one object of the whole data set",
                );
            }
            for seal_mib in fixtures {
                delete_prefix(&reads, &format!("r{seal_mib}-"));
            }
        }
        self.section.about = self.about;
        self.section
    }

    /// A new bucket, reached through the relay if there is one.
    fn new_bucket(&self) -> Bucket {
        let bucket = self.server.new_bucket();
        match self.via {
            Some(endpoint) => self.server.bucket_at(endpoint, &bucket.name()),
            None => bucket,
        }
    }

    /// Runs each of `raws` and `storage` once per run (the raw ones first on even runs, `storage`
    /// first on odd ones), and records one row per raw baseline, each with the same `storage`
    /// samples: `raws` pairs a row's name with its baseline.
    fn compare(
        &mut self,
        metric: Metric,
        raws: &mut [(String, &mut dyn FnMut(usize) -> Sample)],
        storage: &mut dyn FnMut(usize) -> Sample,
    ) {
        let mut raw_samples = vec![Vec::new(); raws.len()];
        let mut storage_samples = Vec::new();
        for run in 0..self.runs {
            let storage_first = run % 2 == 1;
            if storage_first {
                storage_samples.push(storage(run));
            }
            for (i, (_, raw)) in raws.iter_mut().enumerate() {
                raw_samples[i].push(raw(run));
            }
            if !storage_first {
                storage_samples.push(storage(run));
            }
            for (i, (case, _)) in raws.iter().enumerate() {
                eprintln!(
                    "{case} [run {}/{}]: raw {}, storage {}",
                    run + 1,
                    self.runs,
                    show(metric, raw_samples[i][run].secs),
                    show(metric, storage_samples[run].secs)
                );
            }
        }
        for ((case, _), raw) in raws.iter().zip(raw_samples) {
            self.section.rows.push(Row {
                case: case.clone(),
                metric,
                raw,
                storage: storage_samples.clone(),
            });
        }
    }

    /// [`compare`](Self::compare) with one raw baseline.
    fn case(
        &mut self,
        case: &str,
        metric: Metric,
        mut raw: impl FnMut(usize) -> Sample,
        mut storage: impl FnMut(usize) -> Sample,
    ) {
        self.compare(metric, &mut [(case.to_owned(), &mut raw)], &mut storage);
    }
}

/// xorshift64: a fixed-seed PRNG for data and offsets.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = XorShift(SEED);
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    data.truncate(len);
    data
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => match value.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name} must be a positive integer, got {value:?}"),
        },
        Err(_) => default,
    }
}

/// A comma-separated list of names out of `known`, or all of them if `name` is unset.
fn env_list(name: &str, known: &[&str]) -> Vec<String> {
    let Ok(value) = std::env::var(name) else {
        return known.iter().map(|&s| s.to_owned()).collect();
    };
    let list: Vec<String> = value
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for item in &list {
        assert!(
            known.contains(&item.as_str()),
            "{name}: unknown {item:?} (known: {known:?})"
        );
    }
    list
}
