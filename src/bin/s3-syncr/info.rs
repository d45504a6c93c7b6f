//! `ls` and `stat`: what the stream's objects say about it.

use std::io::{self, Write};

use indicatif::HumanBytes;
use s3_syncr::{Ends, Error, Gap, Listing, Object, PendingUpload};
use unicode_width::UnicodeWidthStr;

const MIB: u64 = 1024 * 1024;

/// One line per object: key, sequence number, start offset, size in bytes, last modified, with a
/// line for each gap where it is; then the total.
pub fn ls(out: &mut impl Write, listing: &Listing) -> io::Result<()> {
    let objects = &listing.objects;
    let width = |header: &str, cell: fn(&Object) -> usize| {
        objects
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
    let mut gaps = listing.gaps.iter().peekable();
    for s in objects {
        if let Some(gap) = gaps.next_if(|gap| gap.last_seq < s.seq) {
            writeln!(out, "-- gap: {}", describe(gap))?;
        }
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
    let (first, end) = offsets(objects);
    writeln!(
        out,
        "total {} bytes in {} object{}, offsets {first} to {end}",
        objects.iter().map(|s| s.size).sum::<u64>(),
        objects.len(),
        plural(objects.len())
    )?;
    if let (Some(oldest), Some(last)) = (listing.gaps.first(), listing.gaps.last()) {
        writeln!(
            out,
            "{} gap{}: reads stop at offset {}; {}",
            listing.gaps.len(),
            plural(listing.gaps.len()),
            oldest.stop,
            repair(listing, last)
        )?;
    }
    Ok(())
}

/// What is missing, and what reading meets there.
fn describe(gap: &Gap) -> String {
    let missing = match gap.first_seq == gap.last_seq {
        true => format!("{} missing (sequence {})", gap.first_key, gap.first_seq),
        false => format!(
            "{} to {} missing (sequences {} to {})",
            gap.first_key, gap.last_key, gap.first_seq, gap.last_seq
        ),
    };
    let after = match gap.resume {
        Some(resume) => format!("the next object records offset {resume}"),
        None => "the next object records no start offset".to_owned(),
    };
    format!(
        "{missing}: reads stop at offset {} with invalid data; {after}",
        gap.stop
    )
}

/// What `trim --before-gap` would do about the `last` gap of `listing`.
fn repair(listing: &Listing, last: &Gap) -> String {
    let doomed = (listing.objects.iter())
        .take_while(|s| s.seq < last.first_seq)
        .count();
    match last.resume {
        Some(resume) => format!(
            "trim --before-gap deletes the {doomed} object{} before the last gap, so that the \
             stream starts at offset {resume}",
            plural(doomed)
        ),
        None => format!(
            "trim --before-gap refuses: the object after the last gap records no start offset, \
             so delete the {doomed} object{} before it by hand to read on from there",
            plural(doomed)
        ),
    }
}

/// The stream's first offset and its end (its length).
fn offsets(objects: &[Object]) -> (u64, u64) {
    let first = objects.first().map_or(0, |s| s.start);
    (first, objects.last().map_or(first, |s| s.start + s.size))
}

/// `stat --full`: the stream's length and objects, and whether its tail object is still open
/// for appending.
pub fn stat(
    out: &mut impl Write,
    location: &str,
    listing: &Listing,
    seal_size: u32,
) -> io::Result<()> {
    let objects = &listing.objects;
    let (first, end) = offsets(objects);
    stat_offsets(out, location, first, end)?;
    match (objects.first(), objects.last()) {
        (Some(first), Some(last)) => {
            writeln!(
                out,
                "objects:  {} (sequence {} to {})",
                objects.len(),
                first.seq,
                last.seq
            )?;
            for gap in &listing.gaps {
                writeln!(out, "gap:      {}", describe(gap))?;
            }
            if let Some(last) = listing.gaps.last() {
                writeln!(out, "repair:   {}", repair(listing, last))?;
            }
            stat_tail(out, &last.key, last.seq, last.size, seal_size)
        }
        _ => stat_empty(out),
    }
}

/// `stat`: what the stream's two ends tell, `None` for a stream with no object.
pub fn stat_ends(
    out: &mut impl Write,
    location: &str,
    ends: Option<&Ends>,
    seal_size: u32,
) -> io::Result<()> {
    let Some(ends) = ends else {
        stat_offsets(out, location, 0, 0)?;
        return stat_empty(out);
    };
    stat_offsets(out, location, ends.first, ends.end)?;
    writeln!(
        out,
        "objects:  sequence {} to {} (stat --full counts them, and shows gaps and pending uploads)",
        ends.first_seq, ends.last_seq
    )?;
    stat_tail(
        out,
        &ends.last_key,
        ends.last_seq,
        ends.last_size,
        seal_size,
    )
}

/// `stat`'s first lines: the location, the length and the first offset.
fn stat_offsets(out: &mut impl Write, location: &str, first: u64, end: u64) -> io::Result<()> {
    writeln!(out, "stream:   {location}")?;
    writeln!(out, "length:   {end} bytes ({})", HumanBytes(end))?;
    let trimmed = match first {
        0 => String::new(),
        _ => format!(" (the {first} bytes before it were trimmed)"),
    };
    writeln!(out, "first:    offset {first}{trimmed}")
}

/// `stat`'s line on the tail object, `key`, and whether the next append continues it.
fn stat_tail(
    out: &mut impl Write,
    key: &str,
    seq: u64,
    size: u64,
    seal_size: u32,
) -> io::Result<()> {
    let seal_bytes = u64::from(seal_size) * MIB;
    let state = if size < seal_bytes {
        format!("open (below --seal-size {seal_size} MiB: the next append continues it)")
    } else {
        format!(
            "sealed (at least --seal-size {seal_size} MiB: the next append starts sequence {})",
            seq + 1
        )
    };
    writeln!(out, "tail:     {key}, {size} bytes: {state}")
}

fn stat_empty(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "objects:  0")?;
    writeln!(out, "tail:     none (the stream is empty)")
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

    fn object(seq: u64, size: u64) -> Object {
        Object {
            key: format!("log-{seq:020}.txt"),
            seq,
            start: seq * MIB,
            size,
            last_modified: "2025-01-01T00:00:00Z".into(),
        }
    }

    fn listed(objects: &[Object]) -> Listing {
        Listing {
            objects: objects.to_vec(),
            gaps: Vec::new(),
        }
    }

    #[test]
    fn gaps_are_shown_where_they_are_with_what_trim_would_do() {
        let gap = |first_seq: u64, last_seq: u64, resume: Option<u64>| Gap {
            first_seq,
            last_seq,
            first_key: object(first_seq, 0).key,
            last_key: object(last_seq, 0).key,
            stop: first_seq * MIB,
            resume,
        };
        let listing = Listing {
            objects: vec![object(0, MIB), object(2, MIB), object(5, 3)],
            gaps: vec![gap(1, 1, Some(2 * MIB)), gap(3, 4, Some(5 * MIB))],
        };
        let mut out = Vec::new();
        ls(&mut out, &listing).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 8, "{text}");
        assert_eq!(
            lines[2],
            "-- gap: log-00000000000000000001.txt missing (sequence 1): reads stop at offset \
             1048576 with invalid data; the next object records offset 2097152"
        );
        assert!(
            lines[4].starts_with("-- gap: log-00000000000000000003.txt to "),
            "{text}"
        );
        assert!(lines[4].contains("(sequences 3 to 4)"), "{text}");
        assert!(
            lines[5].starts_with("log-00000000000000000005.txt"),
            "{text}"
        );
        assert_eq!(
            lines[7],
            "2 gaps: reads stop at offset 1048576; trim --before-gap deletes the 2 objects \
             before the last gap, so that the stream starts at offset 5242880"
        );

        let mut out = Vec::new();
        let listing = Listing {
            objects: vec![object(0, MIB), object(2, MIB)],
            gaps: vec![gap(1, 1, None)],
        };
        stat(&mut out, "b/log.txt", &listing, 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("\ngap:      log-00000000000000000001.txt missing"),
            "{text}"
        );
        assert!(text.contains("records no start offset\n"), "{text}");
        assert!(
            text.contains("\nrepair:   trim --before-gap refuses"),
            "{text}"
        );
    }

    #[test]
    fn ls_aligns_and_totals() {
        let mut out = Vec::new();
        ls(&mut out, &listed(&[object(0, MIB), object(1, 12)])).unwrap();
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
        let mut wide = object(0, 1);
        wide.key = "日志-00000000000000000000".into();
        let mut out = Vec::new();
        ls(&mut out, &listed(&[wide, object(1, 2)])).unwrap();
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
        stat(
            &mut out,
            "b/log.txt",
            &listed(&[object(0, MIB), object(1, 12)]),
            1,
        )
        .unwrap();
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
        stat(&mut out, "b/log.txt", &listed(&[object(1, MIB)]), 1).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("length:   2097152 bytes"), "{text}");
        assert!(
            text.contains("first:    offset 1048576 (the 1048576 bytes"),
            "{text}"
        );
        assert!(text.contains("sealed"), "{text}");
        assert!(text.contains("starts sequence 2"), "{text}");

        let mut out = Vec::new();
        stat(&mut out, "b/log.txt", &listed(&[]), 8).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("objects:  0"));
    }

    #[test]
    fn stat_without_full_tells_the_ends_and_where_the_rest_is() {
        let text = |ends: Option<&Ends>| {
            let mut out = Vec::new();
            stat_ends(&mut out, "b/log.txt", ends, 1).unwrap();
            String::from_utf8(out).unwrap()
        };
        let ends = Ends {
            first: MIB,
            end: 3 * MIB + 12,
            first_seq: 1,
            last_seq: 3,
            last_key: object(3, 12).key,
            last_size: 12,
        };
        assert_eq!(
            text(Some(&ends)),
            "stream:   b/log.txt\n\
             length:   3145740 bytes (3.00 MiB)\n\
             first:    offset 1048576 (the 1048576 bytes before it were trimmed)\n\
             objects:  sequence 1 to 3 (stat --full counts them, and shows gaps and pending \
             uploads)\n\
             tail:     log-00000000000000000003.txt, 12 bytes: open (below --seal-size 1 MiB: \
             the next append continues it)\n"
        );
        let empty = text(None);
        assert!(empty.contains("length:   0 bytes"), "{empty}");
        assert!(empty.ends_with("objects:  0\ntail:     none (the stream is empty)\n"));
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
