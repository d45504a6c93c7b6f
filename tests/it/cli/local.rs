//! The local store: no account needed, the default one, and processes sharing it at once.

use super::*;

#[test]
fn local_store_needs_no_account() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // The README's first example, on a fresh directory.
    ok(local(&data_dir), &["append", "x/log.txt"], b"hi\n");
    assert_eq!(ok(local(&data_dir), &["cat", "x/log.txt"], b""), b"hi\n");
    assert!(data_dir.join("x/log-00000000000000000000.txt").is_file());

    let data = pattern(2 * MIB + 5, 3);
    let location = "s3://my-logs/app/data.bin";
    ok(
        local(&data_dir),
        // `--min-size`, the original's name for `--seal-size`, still works.
        &["append", location, "--min-size", "1"],
        &data,
    );
    assert!(ok(local(&data_dir), &["cat", location], b"") == data);
    let ls = text(&ok(local(&data_dir), &["ls", location], b""));
    assert!(
        ls.ends_with(&format!(
            "total {0} bytes in 3 objects, offsets 0 to {0}\n",
            data.len()
        )),
        "{ls}"
    );
    assert!(
        data_dir
            .join("my-logs/app/data-00000000000000000002.bin")
            .is_file()
    );

    // Readers do not create buckets.
    let output = run(local(&data_dir), &["cat", "nothing/log.txt"], b"");
    assert!(one_line_failure(&output).contains("does not exist"));
    assert!(!data_dir.join("nothing").exists());
    let output = run(local(&data_dir), &["append", "../escape/log.txt"], b"x");
    assert!(one_line_exit(&output, 2).contains("invalid location"));
}

#[test]
fn nothing_configured_means_a_local_store_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let unconfigured = || {
        let mut command = bare();
        command.current_dir(dir.path()).env("HOME", dir.path());
        command
    };
    let output = run(unconfigured(), &["append", "x/log.txt"], b"hello\n");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let notice = text(&output.stderr);
    assert!(
        notice.contains("no S3 endpoint or AWS credentials configured"),
        "{notice}"
    );
    assert!(notice.contains("./s3-syncr-data"), "{notice}");
    assert_eq!(ok(unconfigured(), &["cat", "x/log.txt"], b""), b"hello\n");
    assert!(dir.path().join("s3-syncr-data/x").is_dir());

    // Anything configured means S3, with the library's checks.
    let mut endpoint_only = unconfigured();
    endpoint_only.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9000");
    let output = run(endpoint_only, &["ls", "abc/log.txt"], b"");
    assert!(one_line_failure(&output).contains("no AWS credentials"));
    let mut keys_only = unconfigured();
    keys_only
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_ENDPOINT_URL", "127.0.0.1:9000");
    let output = run(keys_only, &["ls", "abc/log.txt"], b"");
    assert!(one_line_failure(&output).contains("must start with http://"));
}

#[test]
fn concurrent_appends_to_one_stream_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    for trial in 0..10 {
        let location = format!("race/one-{trial}.log");
        let a = tagged_input("A", trial, 20_000);
        let b = tagged_input("B", trial, 20_000);
        let outputs = appends_at_once(dir.path(), &[(&location, &a), (&location, &b)]);
        let (stored_a, stored_b) = (
            stored_count(&outputs[0], a.len()),
            stored_count(&outputs[1], b.len()),
        );
        assert!(
            outputs.iter().any(|o| o.status.success()),
            "trial {trial}: no writer succeeded"
        );
        let stream = ok(local(dir.path()), &["cat", &location], b"");
        // One writer's stored bytes, then perhaps the other's, each from its first byte.
        let a_then_b = [&a[..stored_a], &b[..stored_b]].concat();
        let b_then_a = [&b[..stored_b], &a[..stored_a]].concat();
        assert!(
            stream == a_then_b || stream == b_then_a,
            "trial {trial}: the stream ({} bytes) is not what the writers say they stored \
             (A {stored_a} of {}, B {stored_b} of {})",
            stream.len(),
            a.len(),
            b.len()
        );
    }
}

#[test]
fn concurrent_appends_to_two_streams_and_two_buckets_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    for trial in 0..10 {
        for (first, second) in [
            (format!("race/a-{trial}.log"), format!("race/b-{trial}.log")),
            (format!("left/{trial}.log"), format!("right/{trial}.log")),
        ] {
            let a = tagged_input("A", trial, 20_000);
            let b = tagged_input("B", trial, 20_000);
            let outputs = appends_at_once(dir.path(), &[(&first, &a), (&second, &b)]);
            for (output, (location, input)) in outputs.iter().zip([(&first, &a), (&second, &b)]) {
                assert_eq!(stored_count(output, input.len()), input.len(), "{location}");
                let stream = ok(local(dir.path()), &["cat", location], b"");
                assert!(
                    stream == *input,
                    "trial {trial}: {location} holds {} bytes, not its own {}",
                    stream.len(),
                    input.len()
                );
            }
        }
    }
}

#[test]
fn readers_never_disturb_a_flushing_append() {
    let dir = tempfile::tempdir().unwrap();
    ok(local(dir.path()), &["append", "other/x.log"], b"other\n");
    // Retries are logged: a reader that disturbs the writer shows, even when a retry hides it.
    let mut logged = local(dir.path());
    logged.env("RUST_LOG", "warn");
    let (child, mut stdin) = start_append(logged, &["busy/log.txt", "--flush-every", "64k"]);
    let data = pattern(8 * MIB, 11);
    let chunks: Vec<Vec<u8>> = data.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let feeder = thread::spawn(move || {
        for chunk in chunks {
            // A writer that failed stops reading: its outcome tells why.
            if stdin.write_all(&chunk).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    });
    let mut looks = 0;
    while !feeder.is_finished() || looks < 20 {
        for args in [
            &["ls", "busy/log.txt"][..],
            &["ls", "other/x.log"],
            &["stat", "busy/log.txt"],
        ] {
            // The stream may not exist yet: only the writer's outcome counts.
            let _ = run(local(dir.path()), args, b"");
        }
        looks += 1;
    }
    feeder.join().unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    assert!(ok(local(dir.path()), &["cat", "busy/log.txt"], b"") == data);
}
