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
//! 1. **Write**: `io::copy` of the whole data set into `Storage` (`min_size` 8 and 256) then
//!    `close`, against `put_object` of the same segments one after another (single PUTs, as
//!    0.1.0 sent them). The source is a reader that is not `BufRead` (like a file or a pipe), so
//!    `io::copy` writes 8 KiB at a time. `Storage` streams 8 MiB parts, 4 at once. Also one
//!    `write_all` of the whole data set (`min_size` 8), which must stream the same way.
//! 2. **Flushed small records**: 100-byte records (`S3SYNCR_BENCH_FLUSH_MIB` of them) through
//!    `BufWriter<Storage>` (`min_size` 8), flushed every 1 MiB and every 8 MiB, against the same
//!    scheme by hand (a `Vec` re-uploaded whole with `put_object` at each flush, a new key every
//!    8 MiB). Also reports the PUT requests sent (counted by the in-process server) and the
//!    overwrite amplification, bytes uploaded / bytes written, next to the README's estimate
//!    `S / 2K`.
//! 3. **Sequential read**: `io::copy` of the whole stream (8 MiB and 64 MiB objects) into
//!    `io::sink()`, against two raw readers one object after another: (a) `get_object_to_writer`
//!    of each whole object, (b) ranged GETs of `read_chunk` bytes (`get_object_range_to_writer`).
//! 4. **Random reads**: `seek` + 4 KiB `read` at offsets from a fixed-seed xorshift PRNG, against
//!    one ranged GET (`get_object_range`) of the same 4 KiB: median latency per read.
//! 5. **Memory**: reading a stream made of one object as large as the data set, and writing with
//!    `min_size` 256 (the runs of case 1).
//! 6. **Flushes of a large tail**: `S3SYNCR_BENCH_FLUSH_MIB` written 512 KiB at a time into one
//!    object (`min_size` 64), each write flushed, against the same by hand (a `Vec` re-uploaded
//!    whole with `put_object` at each flush, which is also what `Storage` does with
//!    `append_by_copy: false`). Also reports bytes uploaded per byte written and the last
//!    flush's latency on each side.
//!
//! Reads use `Options::default()`; writes change only `min_size`. The report prints the options.
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
//! | `S3SYNCR_BENCH_CASES` | `write,flush,read,random,memory,append` | cases to run (1 to 6 above) |
//! | `S3SYNCR_BENCH_MIB` | 256 | size of the data set in MiB on loopback |
//! | `S3SYNCR_BENCH_WAN_MIB` | 64 | size of the data set in MiB through the WAN relay |
//! | `S3SYNCR_BENCH_FLUSH_MIB` | 32 | cases 2 and 6 write at most this many MiB: flushing every 1 MiB uploads about 5 times that in case 2, re-uploading the tail at each of case 6's flushes about `MIB / 2` times |
//! | `S3SYNCR_BENCH_RANDOM_READS` | 1000 | reads of case 4 on loopback |
//! | `S3SYNCR_BENCH_WAN_RANDOM_READS` | 50 | reads of case 4 through the WAN relay (each costs 3 RTT) |
//! | `S3SYNCR_BENCH_WAN_RTT_MS` | 20 | the relay's round-trip time |
//! | `S3SYNCR_BENCH_WAN_MBPS` | 50 | the relay's rate per connection and direction, in MB/s |
//! | `S3SYNCR_BENCH_WAN_SLOW_START` | 1 | 0: the relay gives each connection its full rate from the first byte |
//! | `S3SYNCR_BENCH_RUNS` | 3 | runs of each case; medians are over runs |
//! | `S3SYNCR_TEST_ENDPOINT` | unset | the external S3 server (with `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally `AWS_REGION`) |
//! | `S3SYNCR_BENCH_SERVER_NAME` | `external server` | what the report calls it |
//!
//! The report (markdown, on stdout) has a section per setup and ends with the ratios of all
//! setups side by side; progress goes to stderr. Nothing here asserts timings.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use s3::Bucket;
use s3_syncr::{Options, Storage};
use s3_syncr_test_server::{Proxy, Server, Wan};

const MIB: usize = 1024 * 1024;
/// Size of a record in case 2.
const RECORD: usize = 100;
/// `BufWriter`'s default capacity, for the model of case 2.
const BUFWRITER_CAPACITY: usize = 8 * 1024;
const RANDOM_READ_LEN: usize = 4096;
const SEED: u64 = 0x5EED_CAFE_F00D_D00D;

/// glibc's variable that fixes the mmap threshold (and so turns off its dynamic adjustment).
const MALLOC_ENV: &str = "MALLOC_MMAP_THRESHOLD_";

const SETUPS: [&str; 3] = ["inproc", "seaweedfs", "wan"];
const CASES: [&str; 6] = ["write", "flush", "read", "random", "memory", "append"];
/// Case 6's flushes: every 512 KiB into one object.
const APPEND_STEP: usize = 512 * 1024;

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
                        "on (10 segments in the first round trip, doubling each round trip)"
                    } else {
                        "off"
                    },
                    (wan.rtt * (wan.handshake_rtts + 1)).as_millis(),
                );
                bench.random_reads = env_usize("S3SYNCR_BENCH_WAN_RANDOM_READS", 50);
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

/// A case's results against one raw baseline: one value per run on each side.
struct Row {
    case: String,
    metric: Metric,
    raw: Vec<Sample>,
    storage: Vec<Sample>,
}

#[derive(Clone, Copy)]
enum Metric {
    /// `secs` is the time to move this many bytes.
    Throughput(u64),
    /// `secs` is the median latency of one operation.
    Latency,
}

#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    /// Growth of the peak RSS, in bytes, if it could be measured.
    rss: Option<u64>,
}

/// Case 2's request and upload counts.
struct FlushRow {
    flush_every: usize,
    seal: usize,
    written: u64,
    raw_puts: usize,
    raw_uploaded: u64,
    /// PUTs the in-process server saw, per run.
    storage_puts: Vec<Option<usize>>,
    model_puts: usize,
    model_uploaded: u64,
}

/// One setup's results.
struct Section {
    title: String,
    /// The server and the path to it, or why the setup was skipped.
    about: String,
    mib: usize,
    wall: Duration,
    rows: Vec<Row>,
    details: String,
    flush_rows: Vec<FlushRow>,
    /// Whether the server's buffers count in the RSS figures.
    in_process: bool,
}

impl Section {
    fn skipped(title: &str, why: &str) -> Section {
        Section {
            title: title.to_owned(),
            about: why.to_owned(),
            mib: 0,
            wall: Duration::ZERO,
            rows: Vec::new(),
            details: String::new(),
            flush_rows: Vec::new(),
            in_process: false,
        }
    }
}

struct Bench<'a> {
    server: &'a Server,
    /// Where requests go when not straight to the server: the WAN relay.
    via: Option<&'a str>,
    data: &'a [u8],
    runs: usize,
    random_reads: usize,
    /// Size of case 2's data set in MiB, at most the whole data set.
    flush_mib: usize,
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
            flush_mib: env_usize("S3SYNCR_BENCH_FLUSH_MIB", 32),
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
                for (min_size, one_write) in [(8, false), (8, true), (256, false)] {
                    self.write(&writes, min_size, one_write);
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
        if has("read") || has("random") || has("memory") {
            let reads = self.new_bucket();
            let whole = self.data.len() / MIB;
            let mut fixtures = Vec::new();
            let wanted = [
                (has("read") || has("random")).then_some(8),
                has("read").then_some(64),
                has("memory").then_some(whole),
            ];
            for min_size in wanted.into_iter().flatten() {
                if !fixtures.contains(&min_size) {
                    write_fixture(&reads, self.data, min_size);
                    fixtures.push(min_size);
                }
            }
            if has("read") {
                for min_size in [8, 64] {
                    self.read(
                        &reads,
                        min_size,
                        &format!("3. read, {min_size} MiB objects"),
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
            for min_size in fixtures {
                delete_prefix(&reads, &format!("r{min_size}-"));
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
    /// Case 1: `io::copy` into `Storage` (or one `write_all` of the whole data set) then
    /// `close`, against `put_object` of each segment.
    fn write(&mut self, bucket: &Bucket, min_size: usize, one_write: bool) {
        let data = self.data;
        let segment = min_size * MIB;
        let objects = data.len().div_ceil(segment);
        let how = if one_write {
            "one write_all"
        } else {
            "io::copy"
        };
        let case = if min_size == 256 {
            format!("1/5. write, {how}, min_size 256")
        } else {
            format!("1. write, {how}, min_size {min_size}")
        };
        self.case(
            &case,
            Metric::Throughput(data.len() as u64),
            |run| {
                let prefix = format!("raw{min_size}-{run}/");
                let sample = measure(|| {
                    for (seq, part) in data.chunks(segment).enumerate() {
                        bucket
                            .put_object(format!("{prefix}seg-{seq:020}.bin"), part)
                            .expect("raw put");
                    }
                });
                assert_eq!(delete_prefix(bucket, &prefix), objects);
                sample
            },
            |run| {
                let prefix = format!("st{min_size}-{one_write}-{run}/");
                let sample = measure(|| {
                    let mut storage = open(bucket, &format!("{prefix}seg.bin"), min_size);
                    if one_write {
                        storage.write_all(data).expect("write");
                    } else {
                        let copied = io::copy(&mut Source(data), &mut storage).expect("copy");
                        assert_eq!(copied, data.len() as u64);
                    }
                    storage.close().expect("close");
                });
                assert_eq!(delete_prefix(bucket, &prefix), objects);
                sample
            },
        );
    }

    /// Case 2: 100-byte records, flushed every `flush_every` bytes, in `seal_mib` MiB objects.
    fn flushed_records(&mut self, bucket: &Bucket, seal_mib: usize, flush_every: usize) {
        let server = self.server;
        let records = &self.data[..self.data.len().min(self.flush_mib * MIB) / RECORD * RECORD];
        let written = records.len() as u64;
        let seal = seal_mib * MIB;
        let mut raw_counts = (0, 0);
        let mut storage_puts = Vec::new();
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
                let puts = server
                    .take_requests()
                    .iter()
                    .filter(|r| r.op == "PutObject")
                    .count();
                storage_puts.push((!server.is_external()).then_some(puts));
                delete_prefix(bucket, &prefix);
                sample
            },
        );
        let (model_puts, model_uploaded) = model_records(records.len(), seal, flush_every);
        self.section.flush_rows.push(FlushRow {
            flush_every,
            seal,
            written,
            raw_puts: raw_counts.0,
            raw_uploaded: raw_counts.1,
            storage_puts,
            model_puts,
            model_uploaded,
        });
    }

    /// Cases 3 and 5: the whole stream into `io::sink()`, against whole-object GETs and against
    /// ranged GETs of `read_chunk` bytes, one after another.
    fn read(&mut self, bucket: &Bucket, min_size: usize, case: &str) {
        let name = fixture_name(min_size);
        let segments = open_read(bucket, &name).segments().expect("segments");
        let len = self.data.len() as u64;
        let chunk = Options::default().read_chunk() as u64;
        let mut whole = |_: usize| {
            measure(|| {
                for segment in &segments {
                    let status = bucket
                        .get_object_to_writer(&segment.key, &mut io::sink())
                        .expect("raw get");
                    assert_eq!(status, 200);
                }
            })
        };
        let mut ranged = |_: usize| {
            measure(|| {
                for segment in &segments {
                    for start in (0..segment.size).step_by(chunk as usize) {
                        let end = (start + chunk).min(segment.size) - 1;
                        let status = bucket
                            .get_object_range_to_writer(
                                &segment.key,
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
    fn random_reads(&mut self, bucket: &Bucket, min_size: usize) {
        let (server, data) = (self.server, self.data);
        let name = fixture_name(min_size);
        let segments = open_read(bucket, &name).segments().expect("segments");
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
                "4. {} KiB read after a seek, {min_size} MiB objects (median latency)",
                RANDOM_READ_LEN / 1024
            ),
            Metric::Latency,
            |_| {
                let mut latencies = Vec::with_capacity(offsets.len());
                count_gets();
                let mut sample = measure(|| {
                    for &offset in &offsets {
                        let started = Instant::now();
                        let bytes = raw_range(bucket, &segments, offset, RANDOM_READ_LEN, true);
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
                raw_range(bucket, &segments, offset, window, false);
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

impl Bench<'_> {
    /// Case 6: each write of [`APPEND_STEP`] bytes flushed, into one object, against a `Vec`
    /// re-uploaded whole at each flush.
    fn appends(&mut self, bucket: &Bucket) {
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
        // `Storage` does until S3 holds the append-by-copy threshold, then the new bytes alone.
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

/// The whole report: what ran where, a section per setup, then every ratio side by side.
fn report(sections: &[Section], runs: usize, wall: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# s3-syncr benchmarks\n");
    let _ = writeln!(out, "- Date: {}", utc_now());
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(
        out,
        "- Runs: {runs} per case (`S3SYNCR_BENCH_RUNS`), medians over runs; wall time {:.0} s",
        wall.as_secs_f64()
    );
    // Other work on the machine slows every figure, raw and `Storage` alike.
    let _ = writeln!(
        out,
        "- Load average (1, 5, 15 min) at the end: {}",
        std::fs::read_to_string("/proc/loadavg").map_or_else(
            |_| "unknown".to_owned(),
            |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", ")
        )
    );
    if let Some(commit) = command_output("git", &["rev-parse", "--short", "HEAD"]) {
        let dirty =
            command_output("git", &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
        let _ = writeln!(
            out,
            "- Commit: {commit}{}",
            if dirty { " (with local changes)" } else { "" }
        );
    }
    if let Some(threshold) = std::env::var_os(MALLOC_ENV) {
        let _ = writeln!(
            out,
            "- Allocator: {MALLOC_ENV}={} (set by the benchmark unless given), so that freed \
             large buffers go back to the system and each section's peak RSS shows its own",
            threshold.to_string_lossy()
        );
    }
    if let Some(rustc) = command_output("rustc", &["--version"]) {
        let _ = writeln!(out, "- {rustc}, release profile");
    }
    let _ = writeln!(
        out,
        "- Storage options: reads use `Options::default()` = `{:?}`; writes the same but \
         `min_size` as named in each case",
        Options::default()
    );
    let _ = writeln!(
        out,
        "- ratio: `Storage`'s throughput over raw rust-s3's (for latencies, raw latency over \
         `Storage` latency): below 1 means `Storage` is slower.\n\
         - raw: rust-s3 `put_object` per segment (1), a hand-rolled `Vec` re-uploaded at each \
         flush (2), `get_object_to_writer` per object or `get_object_range_to_writer` per \
         `read_chunk` (3, 5), `get_object_range` of 4 KiB (4); always one request at a time.\n\
         - RSS: growth of the process's peak resident set during the measured section (`VmHWM` \
         after minus `VmRSS` before, the peak reset through `/proc/self/clear_refs`), the highest \
         over runs. The in-process server and the WAN relay run in the benchmark's process, so \
         their buffers count too (SeaweedFS's do not); the source buffer was allocated before \
         and does not. rust-s3 copies a PUT's body before sending it, on both sides."
    );

    let measured: Vec<&Section> = sections.iter().filter(|s| !s.rows.is_empty()).collect();
    if measured.len() > 1 {
        let _ = writeln!(out, "\n## Ratios, all setups\n");
        let _ = write!(out, "| case |");
        for section in &measured {
            let _ = write!(out, " {} ({} MiB) |", section.title, section.mib);
        }
        let _ = write!(out, "\n|---|");
        for _ in &measured {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        let mut cases: Vec<&str> = Vec::new();
        for row in measured.iter().flat_map(|s| &s.rows) {
            if !cases.contains(&row.case.as_str()) {
                cases.push(&row.case);
            }
        }
        for case in cases {
            let _ = write!(out, "| {case} |");
            for section in &measured {
                match section.rows.iter().find(|r| r.case == case) {
                    Some(row) => {
                        let (raw, storage) = medians(row);
                        let _ = write!(out, " {:.2}× |", raw / storage);
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
    }
    for section in sections {
        section_report(&mut out, section);
    }
    out
}

fn medians(row: &Row) -> (f64, f64) {
    let secs = |samples: &[Sample]| median(&samples.iter().map(|s| s.secs).collect::<Vec<_>>());
    (secs(&row.raw), secs(&row.storage))
}

fn section_report(out: &mut String, section: &Section) {
    let _ = writeln!(out, "\n## {}\n", section.title);
    let _ = writeln!(out, "- Server: {}", section.about);
    if section.rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "- Scale: {} MiB of random bytes; wall time {:.0} s",
        section.mib,
        section.wall.as_secs_f64()
    );
    if !section.in_process {
        let _ = writeln!(out, "- RSS does not include the server's, which runs apart");
    }
    let _ = writeln!(
        out,
        "\n| case | raw | storage | ratio | RSS raw | RSS storage |\n|---|---:|---:|---:|---:|---:|"
    );
    for row in &section.rows {
        let (raw, storage) = medians(row);
        let peak = |samples: &[Sample]| show_rss(samples.iter().filter_map(|s| s.rss).max());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2}× | {} | {} |",
            row.case,
            show(row.metric, raw),
            show(row.metric, storage),
            raw / storage,
            peak(&row.raw),
            peak(&row.storage)
        );
    }

    let _ = writeln!(out, "\n### Per run\n");
    for row in &section.rows {
        let list = |samples: &[Sample]| {
            samples
                .iter()
                .map(|s| format!("{} ({})", show(row.metric, s.secs), show_rss(s.rss)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "- {}: raw {}; storage {}",
            row.case,
            list(&row.raw),
            list(&row.storage)
        );
    }
    out.push_str(&section.details);

    if section.flush_rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Flush cost (case 2)\n");
    let _ = writeln!(
        out,
        "| flush every K | object size S | PUTs raw | PUTs storage | uploaded / written, raw \
         | uploaded / written, storage | S/2K | S/2K + 1 |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for f in &section.flush_rows {
        let counted: Vec<usize> = f.storage_puts.iter().flatten().copied().collect();
        let storage_puts = if counted.is_empty() {
            format!("{} (model; not counted)", f.model_puts)
        } else if counted.iter().all(|&n| n == f.model_puts) {
            f.model_puts.to_string()
        } else {
            format!("{counted:?} counted, {} in the model", f.model_puts)
        };
        let estimate = f.seal as f64 / (2.0 * f.flush_every as f64);
        let _ = writeln!(
            out,
            "| {} MiB | {} MiB | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            f.flush_every / MIB,
            f.seal / MIB,
            f.raw_puts,
            storage_puts,
            f.raw_uploaded as f64 / f.written as f64,
            f.model_uploaded as f64 / f.written as f64,
            estimate,
            estimate + 1.0
        );
    }
    let _ = writeln!(
        out,
        "\n`Storage`'s uploaded bytes follow from its flush and sealing rules applied to what \
         `BufWriter` passes it ({} KiB writes); its PUT count is the in-process server's \
         count, checked against that model. The raw side re-uploads a `Vec` by hand on the \
         same schedule and rules. Flushes that do not line up with object boundaries leave \
         unflushed bytes in the tail when it fills, so the write that seals it uploads the \
         whole object once more: about `S/2K + 1` on average, the README's estimate.",
        BUFWRITER_CAPACITY / 1024
    );
}

/// Opens stream `name` with `min_size` MiB objects and the default read chunk.
fn open(bucket: &Bucket, name: &str, min_size: usize) -> Storage {
    let options = (Options::builder().with_seal_size(min_size * MIB))
        .build()
        .expect("options");
    Storage::new(bucket.clone(), name, options).expect("open stream")
}

/// Opens stream `name` to read it, with the default options.
fn open_read(bucket: &Bucket, name: &str) -> Storage {
    Storage::new(bucket.clone(), name, Options::default()).expect("open stream")
}

fn fixture_name(min_size: usize) -> String {
    format!("r{min_size}-stream.bin")
}

/// Writes the read fixture: the whole data set in `min_size` MiB objects.
fn write_fixture(bucket: &Bucket, data: &[u8], min_size: usize) {
    let mut storage = open(bucket, &fixture_name(min_size), min_size);
    io::copy(&mut Source(data), &mut storage).expect("write fixture");
    storage.close().expect("close fixture");
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

/// The PUTs and bytes that case 2's `BufWriter<Storage>` uploads: `BufWriter`'s buffering, then
/// `Storage`'s rules (a flush uploads the tail if it changed; a write that finds the tail at
/// `seal` bytes or more uploads it if it changed, then starts a new one).
fn model_records(len: usize, seal: usize, flush_every: usize) -> (usize, u64) {
    struct Model {
        buffered: usize,
        tail: usize,
        dirty: bool,
        seal: usize,
        puts: usize,
        uploaded: u64,
    }
    impl Model {
        fn upload(&mut self) {
            if self.dirty {
                self.puts += 1;
                self.uploaded += self.tail as u64;
                self.dirty = false;
            }
        }
        fn storage_write(&mut self, n: usize) {
            if n == 0 {
                return;
            }
            if self.tail >= self.seal {
                self.upload();
                self.tail = 0;
            }
            self.tail += n;
            self.dirty = true;
        }
        fn flush_buf(&mut self) {
            let n = std::mem::take(&mut self.buffered);
            self.storage_write(n);
        }
        /// `BufWriter::write_all` of `n` bytes.
        fn write_all(&mut self, n: usize) {
            let spare = BUFWRITER_CAPACITY - self.buffered;
            if n < spare {
                self.buffered += n;
                return;
            }
            if n > spare {
                self.flush_buf();
            }
            if n >= BUFWRITER_CAPACITY {
                self.storage_write(n);
            } else {
                self.buffered += n;
            }
        }
    }
    let mut model = Model {
        buffered: 0,
        tail: 0,
        dirty: false,
        seal,
        puts: 0,
        uploaded: 0,
    };
    let mut next_flush = flush_every;
    for i in 0..len / RECORD {
        model.write_all(RECORD);
        if (i + 1) * RECORD >= next_flush {
            model.flush_buf();
            model.upload();
            next_flush += flush_every;
        }
    }
    model.flush_buf();
    model.upload();
    (model.puts, model.uploaded)
}

/// The `len` bytes at stream offset `offset` (fewer at the stream's end), with one ranged GET
/// per object they fall in, or only from the first object unless `cross`.
fn raw_range(
    bucket: &Bucket,
    segments: &[s3_syncr::Segment],
    offset: u64,
    len: usize,
    cross: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let (mut pos, end) = (offset, offset + len as u64);
    let mut start = 0;
    for segment in segments {
        let stop = start + segment.size;
        if pos < stop && pos < end {
            let last = end.min(stop) - 1;
            let response = bucket
                .get_object_range(&segment.key, pos - start, Some(last - start))
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

/// Deletes every object under `prefix`; returns how many there were.
fn delete_prefix(bucket: &Bucket, prefix: &str) -> usize {
    let pages = bucket.list(prefix.to_owned(), None).expect("list");
    let mut deleted = 0;
    for object in pages.into_iter().flat_map(|page| page.contents) {
        bucket.delete_object(&object.key).expect("delete");
        deleted += 1;
    }
    deleted
}

/// A reader over memory that is not `BufRead`, like a file or a pipe: `io::copy` moves it
/// through its 8 KiB stack buffer, instead of one `write_all` of the whole slice.
struct Source<'a>(&'a [u8]);

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

/// Times `work`, and measures how much it raised the peak RSS.
fn measure(work: impl FnOnce()) -> Sample {
    let before = reset_peak_rss();
    let started = Instant::now();
    work();
    let secs = started.elapsed().as_secs_f64();
    let peak = proc_status_bytes("VmHWM:");
    Sample {
        secs,
        rss: before
            .zip(peak)
            .map(|(before, peak)| peak.saturating_sub(before)),
    }
}

/// Resets the peak RSS to the current RSS, and returns it.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    proc_status_bytes("VmRSS:")
}

fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The `p` quantile (nearest rank; the mean of the two middle values for the median of an even
/// count).
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if p == 0.5 && n % 2 == 0 => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        n => sorted[((n as f64 * p).ceil() as usize).clamp(1, n) - 1],
    }
}

fn show(metric: Metric, secs: f64) -> String {
    match metric {
        Metric::Throughput(bytes) => format!("{:.0} MiB/s", bytes as f64 / MIB as f64 / secs),
        Metric::Latency if secs < 1e-3 => format!("{:.0} µs", secs * 1e6),
        Metric::Latency => format!("{:.2} ms", secs * 1e3),
    }
}

fn show_rss(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.1} MiB", b as f64 / MIB as f64),
        None => "n/a".to_owned(),
    }
}

/// Core count, CPU model, memory and kernel, from `/proc`.
fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let memory = proc_meminfo_kib("MemTotal:").map_or_else(
        || "unknown memory".to_owned(),
        |kib| format!("{:.0} GiB RAM", kib as f64 / (1024.0 * 1024.0)),
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{nproc} CPUs (nproc), {model}, {memory}, Linux {}",
        kernel.trim()
    )
}

fn proc_meminfo_kib(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The current UTC date and time, `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
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
