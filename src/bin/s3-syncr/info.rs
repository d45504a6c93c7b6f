//! `ls` and `stat`: what the stream's objects say about it.

use std::io::{self, Write};

use indicatif::HumanBytes;
use s3_syncr::{Error, PendingUpload, Segment};
use unicode_width::UnicodeWidthStr;

const MIB: u64 = 1024 * 1024;

/// One line per object: key, sequence number, start offset, size in bytes, last modified; then
/// the total.
pub fn ls(out: &mut impl Write, segments: &[Segment]) -> io::Result<()> {
    let width = |header: &str, cell: fn(&Segment) -> usize| {
        segments
            .iter()
            .map(cell)
            .chain([header.len()])
            .max()
            .unwrap_or(0)
    };
    // Keys may hold any character: aligned by the columns they take on screen.
    let key_w = width("KEY", |s| s.key.width());
    let seq_w = width("SEQ", |s| s.seq.to_string().len());
    let start_w = width("START", |s| s.start.to_string().len());
    let size_w = width("SIZE", |s| s.size.to_string().len());
    let pad = |key: &str| " ".repeat(key_w - key.width());
    writeln!(
        out,
        "KEY{}  {:>seq_w$}  {:>start_w$}  {:>size_w$}  LAST-MODIFIED",
        pad("KEY"),
        "SEQ",
        "START",
        "SIZE"
    )?;
    for s in segments {
        writeln!(
            out,
            "{}{}  {:>seq_w$}  {:>start_w$}  {:>size_w$}  {}",
            s.key,
            pad(&s.key),
            s.seq,
            s.start,
            s.size,
            s.last_modified
        )?;
    }
    let (first, end) = offsets(segments);
    writeln!(
        out,
        "total {} bytes in {} object{}, offsets {first} to {end}",
        end - first,
        segments.len(),
        plural(segments.len())
    )
}

/// The stream's first offset and its end (its length).
fn offsets(segments: &[Segment]) -> (u64, u64) {
    let first = segments.first().map_or(0, |s| s.start);
    (first, segments.last().map_or(first, |s| s.start + s.size))
}

/// The stream's length and objects, and whether its tail object is still open for appending.
pub fn stat(
    out: &mut impl Write,
    location: &str,
    segments: &[Segment],
    min_size: u32,
) -> io::Result<()> {
    let (first, end) = offsets(segments);
    writeln!(out, "stream:   {location}")?;
    writeln!(out, "length:   {end} bytes ({})", HumanBytes(end))?;
    let trimmed = match first {
        0 => String::new(),
        _ => format!(" (the {first} bytes before it were trimmed)"),
    };
    writeln!(out, "first:    offset {first}{trimmed}")?;
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

/// `stat`'s last line: the multipart uploads to the stream's objects that were neither completed
/// nor aborted, as far as the server can list them.
pub fn uploads(out: &mut impl Write, listed: &Result<Vec<PendingUpload>, Error>) -> io::Result<()> {
    match listed {
        Ok(uploads) if uploads.is_empty() => writeln!(out, "uploads:  none pending"),
        Ok(uploads) => {
            let oldest = uploads.iter().map(|u| u.initiated.as_str()).min();
            writeln!(
                out,
                "uploads:  {} pending from {} on, the oldest started {}: a writer at work, or \
                 left by a crash (an AbortIncompleteMultipartUpload lifecycle rule removes those)",
                uploads.len(),
                uploads[0].key,
                oldest.unwrap_or_default(),
            )
        }
        Err(err) if err.kind() == io::ErrorKind::Unsupported => writeln!(
            out,
            "uploads:  not listed (the server cannot list multipart uploads)"
        ),
        Err(err) => writeln!(out, "uploads:  not listed ({err})"),
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
            start: seq * MIB,
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
            "KEY                           SEQ    START     SIZE  LAST-MODIFIED\n\
             log-00000000000000000000.txt    0        0  1048576  2025-01-01T00:00:00Z\n\
             log-00000000000000000001.txt    1  1048576       12  2025-01-01T00:00:00Z\n\
             total 1048588 bytes in 2 objects, offsets 0 to 1048588\n"
        );
    }

    #[test]
    fn ls_aligns_wide_keys_by_their_width() {
        let mut wide = segment(0, 1);
        wide.key = "日志-00000000000000000000".into();
        let mut out = Vec::new();
        ls(&mut out, &[wide, segment(1, 2)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        // The screen column where the last field starts, on the header and each object's line.
        let columns: Vec<usize> = text
            .lines()
            .take(3)
            .map(|line| line[..line.rfind("  ").unwrap()].width())
            .collect();
        assert_eq!(columns, [columns[0]; 3], "{text}");
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

        assert!(text.contains("first:    offset 0\n"), "{text}");

        let mut out = Vec::new();
        stat(&mut out, "b/log.txt", &[segment(1, MIB)], 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("length:   2097152 bytes"), "{text}");
        assert!(
            text.contains("first:    offset 1048576 (the 1048576 bytes"),
            "{text}"
        );
        assert!(text.contains("sealed"), "{text}");
        assert!(text.contains("starts sequence 2"), "{text}");

        let mut out = Vec::new();
        stat(&mut out, "b/log.txt", &[], 8).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("objects:  0"));
    }

    #[test]
    fn uploads_are_counted_or_said_unlisted() {
        let upload = |seq: u64, initiated: &str| PendingUpload {
            key: format!("log-{seq:020}.txt"),
            seq,
            initiated: initiated.into(),
        };
        let text = |listed| {
            let mut out = Vec::new();
            uploads(&mut out, &listed).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(Ok(vec![])), "uploads:  none pending\n");
        let two = text(Ok(vec![
            upload(3, "2026-01-02T00:00:00Z"),
            upload(4, "2026-01-01T00:00:00Z"),
        ]));
        assert!(
            two.starts_with(
                "uploads:  2 pending from log-00000000000000000003.txt on, the oldest started \
                 2026-01-01T00:00:00Z"
            ),
            "{two}"
        );
        let unsupported = Error::Status {
            op: "LIST-UPLOADS",
            key: "log-".into(),
            status: 501,
            code: "NotImplemented".into(),
            message: String::new(),
        };
        assert!(text(Err(unsupported)).contains("the server cannot list multipart uploads"));
    }
}
