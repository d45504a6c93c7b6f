//! The markdown report: what ran where, a section per setup, and every ratio side by side.

use std::fmt::Write as _;
use std::time::Duration;

use s3_syncr::Options;

use crate::system::{command_output, machine, utc_now};
use crate::{MALLOC_ENV, MIB};

/// A case's results against one raw baseline: one value per run on each side.
pub struct Row {
    pub case: String,
    pub metric: Metric,
    pub raw: Vec<Sample>,
    pub storage: Vec<Sample>,
}

#[derive(Clone, Copy)]
pub enum Metric {
    /// `secs` is the time to move this many bytes.
    Throughput(u64),
    /// `secs` is the median latency of one operation.
    Latency,
}

#[derive(Clone, Copy)]
pub struct Sample {
    pub secs: f64,
    /// Growth of the peak RSS, in bytes, if it could be measured.
    pub rss: Option<u64>,
}

/// Case 2's request and upload counts.
pub struct FlushRow {
    pub flush_every: usize,
    pub seal: usize,
    pub written: u64,
    pub raw_puts: usize,
    pub raw_uploaded: u64,
    /// The uploads the in-process server saw, per run (`None` on an external server).
    pub storage_uploads: Vec<Option<Uploads>>,
}

/// The requests that carry a stream's bytes, by kind, as a server counted them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Uploads {
    pub puts: usize,
    pub parts: usize,
    pub copies: usize,
}

/// One setup's results.
pub struct Section {
    pub title: String,
    /// The server and the path to it, or why the setup was skipped.
    pub about: String,
    pub mib: usize,
    pub wall: Duration,
    pub rows: Vec<Row>,
    pub details: String,
    pub flush_rows: Vec<FlushRow>,
    /// Whether the server's buffers count in the RSS figures.
    pub in_process: bool,
}

impl Section {
    pub fn skipped(title: &str, why: &str) -> Section {
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

/// The whole report: what ran where, a section per setup, then every ratio side by side.
pub fn report(sections: &[Section], runs: usize, wall: Duration) -> String {
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
         `seal_size` as named in each case",
        Options::default()
    );
    let _ = writeln!(
        out,
        "- ratio: `Storage`'s throughput over raw rust-s3's (for latencies, raw latency over \
         `Storage` latency): below 1 means `Storage` is slower.\n\
         - raw: rust-s3 `put_object` per object (1), a hand-rolled `Vec` re-uploaded at each \
         flush (2), `get_object_to_writer` per object or `get_object_range_to_writer` per \
         `read_chunk` (3, 5), `get_object_range` of 4 KiB (4), `put_object` of the whole \
         small tail (8); always one request at a time.\n\
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
        "| flush every K | object size S | PUTs raw | uploaded / written, raw | S/2K | S/2K + 1 \
         | PUT / UploadPart / UploadPartCopy, storage |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for f in &section.flush_rows {
        let show_uploads = |u: &Uploads| format!("{} / {} / {}", u.puts, u.parts, u.copies);
        let counted: Vec<Uploads> = f.storage_uploads.iter().flatten().copied().collect();
        let storage = match counted.first() {
            None => "not counted".to_owned(),
            Some(first) if counted.iter().all(|u| u == first) => show_uploads(first),
            Some(_) => (counted.iter().map(show_uploads))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let estimate = f.seal as f64 / (2.0 * f.flush_every as f64);
        let _ = writeln!(
            out,
            "| {} MiB | {} MiB | {} | {:.2} | {:.2} | {:.2} | {} |",
            f.flush_every / MIB,
            f.seal / MIB,
            f.raw_puts,
            f.raw_uploaded as f64 / f.written as f64,
            estimate,
            estimate + 1.0,
            storage,
        );
    }
    let _ = writeln!(
        out,
        "\nThe raw side re-uploads a `Vec` whole at each flush, a new key every S bytes. \
         Flushes that do not line up with object boundaries leave unflushed bytes in the tail \
         when it fills, so the write that seals it uploads the whole object once more: about \
         `S/2K + 1` times the bytes written, the README's estimate for that scheme. `Storage`'s \
         side is the requests that carried its bytes as the in-process server counted them \
         (the same for every run unless several are listed; not counted on an external \
         server): a PUT of the whole tail while it is small, then an UploadPartCopy of what S3 \
         holds plus an UploadPart of the new bytes at each flush, so its bytes uploaded per \
         byte written are not the raw side's."
    );
}

pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

/// The `p` quantile (nearest rank; the mean of the two middle values for the median of an even
/// count).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if p == 0.5 && n % 2 == 0 => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        n => sorted[((n as f64 * p).ceil() as usize).clamp(1, n) - 1],
    }
}

pub fn show(metric: Metric, secs: f64) -> String {
    match metric {
        Metric::Throughput(bytes) => format!("{:.0} MiB/s", bytes as f64 / MIB as f64 / secs),
        Metric::Latency if secs < 1e-3 => format!("{:.0} µs", secs * 1e6),
        Metric::Latency => format!("{:.2} ms", secs * 1e3),
    }
}

pub fn show_rss(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.1} MiB", b as f64 / MIB as f64),
        None => "n/a".to_owned(),
    }
}
