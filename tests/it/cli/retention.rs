//! `trim` and the offsets it keeps: the dry run, `stat`, `ls` and `cat` after trims, and gaps.

use super::*;

#[test]
fn trim_dry_run_refuses_where_the_real_run_would() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/old/data.bin", bucket.name());
    // Objects as s3-syncr 0.1.0 wrote them, recording no start: trimming up to one is refused.
    for seq in 0..3 {
        raw_put(&bucket, &format!("old/data-{seq:020}.bin"), b"0123456789");
    }
    let args = ["trim", &location, "--before", "10"];
    let dry = run(against(&server), &[&args[..], &["--dry-run"]].concat(), b"");
    let line = one_line_failure(&dry);
    assert!(line.contains("does not record its start offset"), "{line}");
    let real = run(against(&server), &args, b"");
    assert_eq!(line, one_line_failure(&real));
    let objects = open(&bucket, "old/data.bin", 1).objects().unwrap();
    assert_eq!(objects.len(), 3, "nothing deleted");
}

#[test]
fn trim_then_stat_ls_and_cat_keep_every_offset() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/trim/data.bin", bucket.name());
    let data = pattern(3 * MIB + 12_345, 9);
    let len = data.len();
    let args = ["append", &location, "--seal-size", "1"];
    ok(against(&server), &args, &data);
    let keys = || -> Vec<String> {
        let objects = open(&bucket, "trim/data.bin", 1).objects().unwrap();
        objects.into_iter().map(|s| s.key).collect()
    };
    let key = |seq: u64| format!("trim/data-{seq:020}.bin");
    let trim = |args: &[&str]| {
        let mut all = vec!["trim", &location];
        all.extend(args);
        text(&ok(against(&server), &all, b""))
    };

    let out = trim(&["--before", "1MiB", "--dry-run"]);
    assert_eq!(
        out,
        format!(
            "would delete {} (offset 0, 1048576 bytes)\n\
             would delete 1 object (1048576 bytes): the stream would start at offset 1048576\n",
            key(0)
        )
    );
    assert_eq!(keys().len(), 4, "a dry run deletes nothing");
    let out = trim(&["--older-than", "1h"]);
    assert_eq!(
        out,
        "deleted 0 objects (0 bytes): the stream starts at offset 0\n"
    );
    let out = trim(&["--before", "1MiB"]);
    assert!(
        out.starts_with(&format!("deleted {} (offset 0", key(0))),
        "{out}"
    );
    let out = trim(&["--keep", "1000"]);
    assert!(
        out.ends_with("deleted 2 objects (2097152 bytes): the stream starts at offset 3145728\n"),
        "{out}"
    );
    assert_eq!(keys(), [key(3)]);
    let out = trim(&["--older-than", "1ms"]);
    assert!(
        out.starts_with("deleted 0 objects"),
        "the last object stays: {out}"
    );

    let stat = text(&ok(against(&server), &["stat", &location], b""));
    assert!(stat.contains(&format!("length:   {len} bytes")), "{stat}");
    assert!(
        stat.contains("first:    offset 3145728 (the 3145728 bytes before it were trimmed)"),
        "{stat}"
    );
    let ls = text(&ok(against(&server), &["ls", &location], b""));
    let fields: Vec<&str> = ls.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        fields[..4],
        [key(3).as_str(), "3", "3145728", "12345"],
        "{ls}"
    );
    assert!(
        ls.ends_with(&format!(
            "total 12345 bytes in 1 object, offsets 3145728 to {len}\n"
        )),
        "{ls}"
    );

    assert!(ok(against(&server), &["cat", &location], b"") == data[3 * MIB..]);
    let from = (3 * MIB + 5).to_string();
    let tail = ok(against(&server), &["cat", &location, "--from", &from], b"");
    assert!(tail == data[3 * MIB + 5..]);
    let output = run(against(&server), &["cat", &location, "--from", "10"], b"");
    let line = one_line_failure(&output);
    assert!(
        line.contains("offset 10 was trimmed: the stream now starts at offset 3145728"),
        "{line}"
    );
    // Appending goes on at the same offsets.
    ok(against(&server), &["append", &location], b"more");
    let end = len.to_string();
    assert_eq!(
        ok(against(&server), &["cat", &location, "--from", &end], b""),
        b"more"
    );

    for args in [
        &["trim", &location][..],
        &["trim", &location, "--before", "1", "--keep", "1"],
        &["trim", &location, "--older-than", "10"],
    ] {
        let output = run(against(&server), args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_gap_is_shown_by_ls_and_stat_and_trim_before_gap_reads_on_after_it() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/gap/data.bin", bucket.name());
    let data = pattern(3 * MIB + 100, 21);
    ok(
        against(&server),
        &["append", &location, "--seal-size", "1"],
        &data,
    );
    let key = |seq: u64| format!("gap/data-{seq:020}.bin");
    bucket.raw_delete(&key(1));
    let command = |args: &[&str]| {
        let mut all = vec![args[0], &location];
        all.extend(&args[1..]);
        run(against(&server), &all, b"")
    };

    let ls = text(&ok(against(&server), &["ls", &location], b""));
    let missing = format!(
        "-- gap: {} missing (sequence 1): reads stop at offset 1048576 with invalid data",
        key(1)
    );
    assert!(ls.contains(&missing), "{ls}");
    assert!(
        ls.contains("trim --before-gap deletes the 1 object"),
        "{ls}"
    );
    let stat = text(&ok(against(&server), &["stat", &location, "--full"], b""));
    assert!(
        stat.contains(&format!("gap:      {} missing", key(1))),
        "{stat}"
    );
    assert!(
        stat.contains(&format!("length:   {} bytes", data.len())),
        "{stat}"
    );
    // Without --full, stat looks at the ends only: no gap, the same length.
    let stat = text(&ok(against(&server), &["stat", &location], b""));
    assert!(!stat.contains("gap:"), "{stat}");
    assert!(
        stat.contains(&format!("length:   {} bytes", data.len())),
        "{stat}"
    );

    // Reads stop at the gap, naming it, after the bytes before it; past it they go on.
    let cat = command(&["cat"]);
    let stderr = text(&cat.stderr);
    assert_eq!(cat.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains(&format!("object {:?} is missing", key(1))),
        "{stderr}"
    );
    assert!(cat.stdout == data[..MIB], "{} bytes", cat.stdout.len());
    let from = (2 * MIB).to_string();
    let rest = ok(against(&server), &["cat", &location, "--from", &from], b"");
    assert!(rest == data[2 * MIB..], "{} bytes", rest.len());
    // Offset cuts still refuse it.
    let line = one_line_failure(&command(&["trim", "--before", "1MiB"]));
    assert!(line.contains("--before-gap"), "{line}");

    let dry = text(&command(&["trim", "--before-gap", "--dry-run"]).stdout);
    assert_eq!(
        dry,
        format!(
            "would delete {} (offset 0, 1048576 bytes)\n\
             would delete 1 object (1048576 bytes): the stream would start at offset 2097152\n",
            key(0)
        )
    );
    let out = text(&ok(
        against(&server),
        &["trim", &location, "--before-gap"],
        b"",
    ));
    assert!(
        out.ends_with("the stream starts at offset 2097152\n"),
        "{out}"
    );
    let cat = ok(against(&server), &["cat", &location], b"");
    assert!(cat == data[2 * MIB..], "{} bytes", cat.len());
    let ls = text(&ok(against(&server), &["ls", &location], b""));
    assert!(!ls.contains("-- gap") && !ls.contains("before-gap"), "{ls}");
    assert!(ls.contains(&key(2)) && !ls.contains(&key(0)), "{ls}");
    let again = text(&ok(
        against(&server),
        &["trim", &location, "--before-gap"],
        b"",
    ));
    assert_eq!(
        again,
        "deleted 0 objects (0 bytes): the stream starts at offset 2097152\n"
    );
}
