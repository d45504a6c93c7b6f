//! The command's everyday use: a round trip, its environment, HTTPS, one-line failures, help, usage errors, small cases, and flushes while input is open.

use super::*;

#[test]
fn append_then_cat_ls_and_stat() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/dir/data.bin", bucket.name());
    let data = pattern(3 * MIB + 12_345, 1);

    let output = run(
        against(&server),
        &[
            "append",
            &location,
            "--seal-size",
            "1",
            "--flush-every",
            "256k",
        ],
        &data,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let objects = open(&bucket, "dir/data.bin", 1).objects().unwrap();
    let sizes: Vec<u64> = objects.iter().map(|s| s.size).collect();
    assert_eq!(sizes, [MIB as u64, MIB as u64, MIB as u64, 12_345]);

    let cat = ok(against(&server), &["cat", &location], b"");
    assert!(
        cat == data,
        "cat returned {} bytes, not the input",
        cat.len()
    );
    for (from, skip) in [("1048583", MIB + 7), ("64k", 64 * 1024), ("0", 0)] {
        let tail = ok(against(&server), &["cat", &location, "--from", from], b"");
        assert!(tail == data[skip..], "--from {from}");
    }
    let end = data.len().to_string();
    assert!(ok(against(&server), &["cat", &location, "--from", &end], b"").is_empty());

    let ls = text(&ok(against(&server), &["ls", &location], b""));
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 6, "{ls}");
    assert!(lines[0].starts_with("KEY"), "{ls}");
    for (line, object) in lines[1..5].iter().zip(&objects) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let expected = [
            object.key.as_str(),
            &object.seq.to_string(),
            &object.start.to_string(),
            &object.size.to_string(),
            &object.last_modified,
        ];
        assert_eq!(fields, expected, "{ls}");
    }
    assert_eq!(
        lines[5],
        format!("total {0} bytes in 4 objects, offsets 0 to {0}", data.len())
    );

    // By default stat tells the ends, and where the rest is.
    let stat = text(&ok(
        against(&server),
        &["stat", &location, "--seal-size", "1"],
        b"",
    ));
    let lines: Vec<&str> = stat.lines().collect();
    assert_eq!(lines.len(), 5, "{stat}");
    assert_eq!(lines[0], format!("stream:   {location}"));
    assert!(
        lines[1].starts_with(&format!("length:   {} bytes", data.len())),
        "{stat}"
    );
    assert_eq!(lines[2], "first:    offset 0");
    assert_eq!(
        lines[3],
        "objects:  sequence 0 to 3 (stat --full counts them, and shows gaps and pending uploads)"
    );
    assert_eq!(
        lines[4],
        "tail:     dir/data-00000000000000000003.bin, 12345 bytes: open (below --seal-size 1 \
         MiB: the next append continues it)"
    );
    let stat = text(&ok(
        against(&server),
        &["stat", &location, "--seal-size", "1", "--full"],
        b"",
    ));
    assert!(
        stat.contains(&format!("length:   {} bytes", data.len())),
        "{stat}"
    );
    assert!(stat.contains("objects:  4 (sequence 0 to 3)"), "{stat}");
    assert!(
        stat.contains("dir/data-00000000000000000003.bin, 12345 bytes: open"),
        "{stat}"
    );
    // Every upload was completed; s3s-fs cannot list them, which stat says instead.
    let listed = stat.contains("uploads:  none pending\n");
    let unlisted = stat.contains("uploads:  not listed (the server cannot list multipart uploads)");
    assert!(listed || (unlisted && !server.is_external()), "{stat}");

    // Appending again continues the stream.
    ok(
        against(&server),
        &["append", &location, "--seal-size", "1"],
        b"more",
    );
    let cat = ok(against(&server), &["cat", &location, "--from", &end], b"");
    assert_eq!(cat, b"more");

    // A reader that stops reading (`| head`) ends the command quietly.
    let mut child = against(&server)
        .args(["cat", &location])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(first, data[..10]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

#[test]
fn endpoint_and_region_from_the_environment() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("{}/app.log", bucket.name());
    let (access_key, secret_key) = server.keys();
    let env = || {
        let mut command = bare();
        command
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret_key)
            .env("AWS_ENDPOINT_URL", server.endpoint())
            .env("AWS_REGION", server.region());
        trust(&mut command, &server);
        command
    };
    ok(env(), &["append", &location], b"line 1\n");
    ok(env(), &["append", &location], b"line 2\n");
    assert_eq!(ok(env(), &["cat", &location], b""), b"line 1\nline 2\n");
    assert_eq!(stream_contents(&bucket, "app.log"), b"line 1\nline 2\n");
}

/// Over HTTPS with a private CA, the command trusts `AWS_CA_BUNDLE`; without it, it refuses
/// the certificate in one line and stores nothing.
#[test]
fn aws_ca_bundle_makes_a_private_ca_trusted() {
    let server = Server::start_tls();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/tls.log", bucket.name());
    let mut untrusted = against(&server);
    untrusted.env_remove("AWS_CA_BUNDLE");
    let output = run(untrusted, &["append", &location], b"refused\n");
    let line = one_line_exit(&output, 1);
    assert!(line.contains("certificate"), "{line}");
    assert!(line.contains("AWS_CA_BUNDLE"), "{line}");

    ok(against(&server), &["append", &location], b"trusted\n");
    let out = ok(against(&server), &["cat", &location], b"");
    assert_eq!(text(&out), "trusted\n");
}

#[test]
fn failures_exit_with_status_1_and_one_line() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let missing = format!("s3://{}-missing/log.txt", bucket.name());

    let output = run(against(&server), &["append", &missing], b"lost\n");
    let line = one_line_failure(&output);
    assert!(line.contains("does not exist"), "{line}");
    assert!(
        line.starts_with(&format!("s3-syncr: append {missing}: ")),
        "{line}"
    );

    let output = run(against(&server), &["cat", &missing], b"");
    assert!(one_line_failure(&output).contains("does not exist"));

    let location = format!("s3://{}/log.txt", bucket.name());
    ok(against(&server), &["append", &location], b"0123456789");
    let output = run(against(&server), &["cat", &location, "--from", "11"], b"");
    assert!(one_line_failure(&output).contains("past the end of the stream (10 bytes)"));

    // A malformed location is a usage error.
    let output = run(against(&server), &["ls", "s3://Not_A_Bucket/log.txt"], b"");
    assert!(one_line_exit(&output, 2).contains("invalid location"));

    if server.checks_signatures() {
        let mut wrong_keys = against(&server);
        wrong_keys.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
        let output = run(wrong_keys, &["stat", &location], b"");
        let line = one_line_failure(&output);
        assert!(!line.contains("not-the-secret"), "{line}");
    }

    // Usage errors are clap's: status 2.
    for args in [
        &["append", &location, "--flush-every", "1.5MiB"][..],
        &["append", &location, "--seal-size", "0"],
        &["cat", &location, "--interval", "1s"],
        &["frobnicate"],
    ] {
        let output = run(against(&server), args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn flush_every_stores_while_input_is_still_open() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    for (name, flush_every, first) in [
        ("by-time.log", "200ms", b"early\n".to_vec()),
        ("by-size.log", "4k", vec![b'x'; 5000]),
    ] {
        let location = format!("s3://{}/{name}", bucket.name());
        let mut child = against(&server)
            .args(["append", &location, "--flush-every", flush_every])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&first).unwrap();
        eventually(flush_every, || stream_contents(&bucket, name) == first);
        assert!(child.try_wait().unwrap().is_none(), "still reading");
        stdin.write_all(b"late\n").unwrap();
        drop(stdin);
        assert!(child.wait().unwrap().success());
        assert_eq!(
            stream_contents(&bucket, name),
            [&first[..], b"late\n"].concat()
        );
    }
}

#[test]
fn help_is_generated() {
    let help = text(&ok(bare(), &["--help"], b""));
    for word in [
        "append",
        "cat",
        "ls",
        "stat",
        "trim",
        "--endpoint",
        "--region",
        "--local",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
    assert!(help.contains("Global options:"), "{help}");
    let help = text(&ok(bare(), &["append", "--help"], b""));
    assert!(
        help.contains("--flush-every")
            && help.contains("--seal-size")
            && help.contains("--write-ahead"),
        "{help}"
    );
    let help = text(&ok(bare(), &["trim", "--help"], b""));
    for word in ["--before", "--keep", "--older-than", "--dry-run"] {
        assert!(help.contains(word), "{word}: {help}");
    }
    let help = text(&ok(bare(), &["cat", "--help"], b""));
    assert!(
        help.contains("--follow") && help.contains("--from"),
        "{help}"
    );
}

#[test]
fn malformed_locations_and_units_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for (args, says) in [
        (&["append", "b/dir//x.log"][..], "empty component"),
        (&["append", "b/./x.log"], "'.' or '..'"),
        (&["append", "b/../x.log"], "'.' or '..'"),
        (&["append", "b/dir/"], "ends with '/'"),
        (&["append", "s3://My_Bucket/x.log"], "bucket name"),
        (&["cat", "b/dir//x.log", "--follow"], "empty component"),
        (&["append", "b/x.log", "--flush-every", "1m"], "min"),
        (
            &["append", "b/x.log", "--write-ahead", "0"],
            "--write-ahead",
        ),
        (&["append", "b/x.log", "--seal-size", "5MB"], "--seal-size"),
        (&["cat", "b/x.log", "--read-ahead", "65"], "--read-ahead"),
        (&["cat", "b/x.log", "--from", "10s"], "--from"),
        (&["trim", "b/x.log", "--older-than", "7m"], "min"),
    ] {
        let output = run(local(&store), args, b"data\n");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        // clap adds a usage line and a hint; ours is one line.
        if !stderr.starts_with("error:") {
            one_line_exit(&output, 2);
        }
        assert!(!store.exists(), "{args:?} created {}", store.display());
    }
    let output = run(local(&store), &["cat", "b/x.log", "--from", "10s"], b"");
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("min") && stderr.contains("MiB"),
        "{stderr}"
    );
    // What they may take instead.
    ok(
        local(&store),
        &[
            "append",
            "b/x.log",
            "--seal-size",
            "64MiB",
            "--flush-every",
            "1min",
        ],
        b"data\n",
    );
    ok(
        local(&store),
        &["trim", "b/x.log", "--older-than", "7d"],
        b"",
    );
    ok(
        local(&store),
        &["stat", "b/x.log", "--seal-size", "1GiB"],
        b"",
    );
}

#[test]
fn small_ones_missing_streams_closed_outputs_and_explicit_s3() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    ok(local(&store), &["append", "b/here.log"], b"here\n");
    let output = run(local(&store), &["cat", "b/missing.log"], b"");
    assert!(one_line_failure(&output).contains("no such stream"));
    // The local server cannot list multipart uploads (501): said at once, never retried.
    let mut logged = local(&store);
    logged.env("RUST_LOG", "warn");
    let output = run(logged, &["stat", "b/here.log", "--full"], b"");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        text(&output.stderr)
    );
    assert!(text(&output.stdout).contains("uploads:  not listed"));

    // trim goes on when nobody reads what it prints.
    ok(
        local(&store),
        &["append", "b/big.log", "--seal-size", "1"],
        &pattern(2 * MIB + 1, 2),
    );
    let mut trim = local(&store)
        .args(["trim", "b/big.log", "--before", "2MiB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(trim.stdout.take());
    let output = trim.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stat = text(&ok(local(&store), &["stat", "b/big.log", "--full"], b""));
    assert!(stat.contains("objects:  1 "), "{stat}");

    // cat --follow stops once its reader has gone, though the stream stays idle.
    let mut follower = local(&store)
        .args(["cat", "b/here.log", "--follow", "--interval", "100ms"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = follower.stdout.take().unwrap();
    let mut first = [0; 5];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"here\n");
    drop(stdout);
    eventually("cat --follow to notice its reader left", || {
        follower.try_wait().unwrap().is_some()
    });
    assert!(follower.wait().unwrap().success());

    // An explicit s3:// location never lands on the local disk.
    let output = run(
        {
            let mut command = bare();
            command.current_dir(dir.path()).env("HOME", dir.path());
            command
        },
        &["append", "s3://my-bucket/x.log"],
        b"hi\n",
    );
    let line = one_line_failure(&output);
    assert!(
        line.contains("no AWS credentials") && line.contains("AWS_ACCESS_KEY_ID"),
        "{line}"
    );
    assert!(!dir.path().join("s3-syncr-data").exists());
}
