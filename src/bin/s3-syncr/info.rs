//! `ls` and `stat`: what the stream's objects say about it.

use std::io::{self, Write};

use indicatif::HumanBytes;
use s3_syncr::Segment;

const MIB: u64 = 1024 * 1024;

/// One line per object: key, sequence number, size in bytes, last modified; then the total.
pub fn ls(out: &mut impl Write, segments: &[Segment]) -> io::Result<()> {
    let width = |header: &str, cell: fn(&Segment) -> usize| {
        segments
            .iter()
            .map(cell)
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    let key_w = width("KEY", |s| s.key.len());
    let seq_w = width("SEQ", |s| s.seq.to_string().len());
    let size_w = width("SIZE", |s| s.size.to_string().len());
    writeln!(
        out,
        "{:key_w$}  {:>seq_w$}  {:>size_w$}  LAST-MODIFIED",
        "KEY", "SEQ", "SIZE"
    )?;
    for s in segments {
        writeln!(
            out,
            "{:key_w$}  {:>seq_w$}  {:>size_w$}  {}",
            s.key, s.seq, s.size, s.last_modified
        )?;
    }
    let total: u64 = segments.iter().map(|s| s.size).sum();
    writeln!(
        out,
        "total {total} bytes in {} object{}",
        segments.len(),
        plural(segments.len())
    )
}

/// The stream's length and objects, and whether its tail object is still open for appending.
pub fn stat(
    out: &mut impl Write,
    location: &str,
    segments: &[Segment],
    min_size: u32,
) -> io::Result<()> {
    let total: u64 = segments.iter().map(|s| s.size).sum();
    writeln!(out, "stream:   {location}")?;
    writeln!(out, "length:   {total} bytes ({})", HumanBytes(total))?;
    match (segments.first(), segments.last()) {
        (Some(first), Some(last)) => {
            writeln!(
                out,
                "objects:  {} (sequence {} to {})",
                segments.len(),
                first.seq,
                last.seq
            )?;
            let min_bytes = u64::from(min_size) * MIB;
            let state = if last.size < min_bytes {
                format!("open (below --min-size {min_size} MiB: the next append continues it)")
            } else {
                format!(
                    "sealed (at least --min-size {min_size} MiB: the next append starts sequence {})",
                    last.seq + 1
                )
            };
            writeln!(out, "tail:     {}, {} bytes: {state}", last.key, last.size)
        }
        _ => {
            writeln!(out, "objects:  0")?;
            writeln!(out, "tail:     none (the stream is empty)")
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(seq: u64, size: u64) -> Segment {
        Segment {
            key: format!("log-{seq:020}.txt"),
            seq,
            size,
            last_modified: "2025-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn ls_aligns_and_totals() {
        let mut out = Vec::new();
        ls(&mut out, &[segment(0, MIB), segment(1, 12)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "KEY                           SEQ     SIZE  LAST-MODIFIED\n\
             log-00000000000000000000.txt    0  1048576  2025-01-01T00:00:00Z\n\
             log-00000000000000000001.txt    1       12  2025-01-01T00:00:00Z\n\
             total 1048588 bytes in 2 objects\n"
        );
    }

    #[test]
    fn stat_tells_open_from_sealed() {
        let mut out = Vec::new();
        stat(&mut out, "b/log.txt", &[segment(0, MIB), segment(1, 12)], 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("length:   1048588 bytes (1.00 MiB)"),
            "{text}"
        );
        assert!(text.contains("objects:  2 (sequence 0 to 1)"), "{text}");
        assert!(
            text.contains("log-00000000000000000001.txt, 12 bytes: open"),
            "{text}"
        );

        let mut out = Vec::new();
        stat(&mut out, "b/log.txt", &[segment(0, MIB)], 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("sealed"), "{text}");
        assert!(text.contains("starts sequence 1"), "{text}");

        let mut out = Vec::new();
        stat(&mut out, "b/log.txt", &[], 8).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("objects:  0"));
    }
}
