//! End-to-end tests of the `s3-syncr` command: the built binary driven as a user would, through
//! pipes and exit codes, against the test server (or the external one `S3SYNCR_TEST_ENDPOINT`
//! names) and against `--local DIR`.
//!
//! Run with `cargo test --features cli`.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{MIB, Server, open, pattern, stream_contents};

const BIN: &str = env!("CARGO_BIN_EXE_s3-syncr");

/// The command with a clean environment: nothing of the caller's AWS set-up leaks in.
fn bare() -> Command {
    let mut command = Command::new(BIN);
    command.env_clear();
    command
}

/// The command against `server`, with its keys in the environment and its endpoint as a flag.
fn against(server: &Server) -> Command {
    let (access_key, secret_key) = server.keys();
    let mut command = bare();
    command
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .args(["--endpoint", server.endpoint(), "--region", server.region()]);
    command
}

/// The command on a local store in `dir`.
fn local(dir: &Path) -> Command {
    let mut command = bare();
    command.arg("--local").arg(dir);
    command
}

/// Runs `command` with `args`, `input` on its standard input, to the end.
fn run(mut command: Command, args: &[&str], input: &[u8]) -> Output {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn s3-syncr");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // A command that fails early closes its end: the write may then fail, as for any pipe.
    let writer = thread::spawn(move || drop(stdin.write_all(&input)));
    let output = child.wait_with_output().expect("wait for s3-syncr");
    writer.join().expect("stdin writer");
    output
}

/// Runs a command that must succeed, and returns its standard output.
fn ok(command: Command, args: &[&str], input: &[u8]) -> Vec<u8> {
    let output = run(command, args, input);
    assert!(
        output.status.success(),
        "s3-syncr {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A failed run: status 1, nothing on stdout, exactly one line on stderr, which it returns.
fn one_line_failure(output: &Output) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("s3-syncr: "), "{stderr:?}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
    assert!(output.stdout.is_empty());
    stderr
}

/// Polls `condition` every 50 ms for up to 20 s.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

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
            "--min-size",
            "1",
            "--flush-every",
            "256k",
        ],
        &data,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
    let segments = open(&bucket, "dir/data.bin", 1).segments().unwrap();
    let sizes: Vec<u64> = segments.iter().map(|s| s.size).collect();
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
    for (line, segment) in lines[1..5].iter().zip(&segments) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let expected = [
            segment.key.as_str(),
            &segment.seq.to_string(),
            &segment.start.to_string(),
            &segment.size.to_string(),
            &segment.last_modified,
        ];
        assert_eq!(fields, expected, "{ls}");
    }
    assert_eq!(
        lines[5],
        format!("total {0} bytes in 4 objects, offsets 0 to {0}", data.len())
    );

    let stat = text(&ok(
        against(&server),
        &["stat", &location, "--min-size", "1"],
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
        &["append", &location, "--min-size", "1"],
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
        command
    };
    ok(env(), &["append", &location], b"line 1\n");
    ok(env(), &["append", &location], b"line 2\n");
    assert_eq!(ok(env(), &["cat", &location], b""), b"line 1\nline 2\n");
    assert_eq!(stream_contents(&bucket, "app.log"), b"line 1\nline 2\n");
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

    let output = run(against(&server), &["ls", "s3://Not_A_Bucket/log.txt"], b"");
    assert!(one_line_failure(&output).contains("invalid location"));

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
        &["append", &location, "--min-size", "0"],
        &["cat", &location, "--interval", "1s"],
        &["frobnicate"],
    ] {
        let output = run(against(&server), args, b"");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn a_fenced_append_stores_what_it_can_and_says_what_it_lost() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/fenced.log", bucket.name());
    let mut child = against(&server)
        .args(["append", &location, "--flush-every", "10"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first line\n").unwrap();
    eventually("the first flush", || {
        stream_contents(&bucket, "fenced.log") == b"first line\n"
    });

    // Another writer takes over the tail object.
    let mut other = open(&bucket, "fenced.log", 8);
    other.write_all(b"other writer\n").unwrap();
    other.close().unwrap();

    stdin.write_all(b"second line\n").unwrap();
    // The command stops writing; its standard input may be closed by then.
    let _ = stdin.write_all(b"third line\n");
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let line = one_line_failure(&output);
    assert!(line.contains("another writer changed"), "{line}");
    assert!(line.contains("were not stored"), "{line}");
    assert_eq!(
        stream_contents(&bucket, "fenced.log"),
        b"first line\nother writer\n"
    );
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

/// A `cat --follow` process and the bytes it wrote so far.
struct Follower {
    child: Child,
    received: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Follower {
    fn start(mut command: Command, location: &str) -> Follower {
        let mut child = command
            .args(["cat", location, "--follow", "--interval", "100ms"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let (sender, received) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if sender.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            received,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, expected: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.seen.len() < expected.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.received.recv_timeout(left) {
                Ok(bytes) => self.seen.extend(bytes),
                Err(_) => panic!("follower wrote {} bytes only", self.seen.len()),
            }
        }
        assert!(self.seen == expected, "follower wrote other bytes");
    }

    /// Ctrl-C: SIGINT, as a terminal sends it.
    fn interrupt(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status();
        if !sent.is_ok_and(|status| status.success()) {
            self.child.kill().unwrap();
        }
        let status = self.child.wait().unwrap();
        assert!(self.received.try_iter().all(|bytes| bytes.is_empty()));
        status
    }
}

#[test]
fn follow_writes_what_other_processes_append() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let dir = tempfile::tempdir().unwrap();
    let remote = format!("s3://{}/follow.log", bucket.name());
    for (command, location) in [
        (
            &(|| against(&server)) as &dyn Fn() -> Command,
            remote.as_str(),
        ),
        (&|| local(dir.path()), "logs/follow.log"),
    ] {
        ok(command(), &["append", location], b"one\n");
        let mut follower = Follower::start(command(), location);
        follower.wait_for(b"one\n");
        ok(command(), &["append", location], b"two\n");
        follower.wait_for(b"one\ntwo\n");
        let big = pattern(300_000, 7);
        ok(command(), &["append", location, "--min-size", "1"], &big);
        follower.wait_for(&[&b"one\ntwo\n"[..], &big].concat());
        let status = follower.interrupt();
        assert!(!status.success(), "{status}");
    }
}

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
    assert!(one_line_failure(&output).contains("invalid location"));
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
    let help = text(&ok(bare(), &["append", "--help"], b""));
    assert!(
        help.contains("--flush-every")
            && help.contains("--min-size")
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
fn trim_then_stat_ls_and_cat_keep_every_offset() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/trim/data.bin", bucket.name());
    let data = pattern(3 * MIB + 12_345, 9);
    let len = data.len();
    let args = ["append", &location, "--min-size", "1"];
    ok(against(&server), &args, &data);
    let keys = || -> Vec<String> {
        let segments = open(&bucket, "trim/data.bin", 1).segments().unwrap();
        segments.into_iter().map(|s| s.key).collect()
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
