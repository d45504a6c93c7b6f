//! What the machine is and what a measured section cost it, from `/proc` (Linux only; the
//! figures are left out elsewhere).

use std::time::Instant;

use crate::report::Sample;

/// Times `work`, and measures how much it raised the peak RSS.
pub fn measure(work: impl FnOnce()) -> Sample {
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

/// Core count, CPU model, memory and kernel, from `/proc`.
pub fn machine() -> String {
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

pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
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
pub fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    )
}
