//! End-to-end tests of the `s3-syncr` command: the built binary driven as a user would, through
//! pipes and exit codes, against the test server (or the external one `S3SYNCR_TEST_ENDPOINT`
//! names) and against `--local DIR`.
//!
//! Run with `cargo test --features cli`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{MIB, Server, open, pattern, raw_put, stream_contents};
use s3_syncr::{Options, Storage};
use s3_syncr_test_server::{Fault, Proxy, Raw};

const BIN: &str = env!("CARGO_BIN_EXE_s3-syncr");

/// The command with a clean environment: nothing of the caller's AWS set-up leaks in.
fn bare() -> Command {
    let mut command = Command::new(BIN);
    command.env_clear();
    command
}

/// The command against `server`, with its keys in the environment and its endpoint as a flag.
fn against(server: &Server) -> Command {
    through(server, server.endpoint())
}

/// The command against `server` through `endpoint`: a proxy in front of it.
fn through(server: &Server, endpoint: &str) -> Command {
    let (access_key, secret_key) = server.keys();
    let mut command = bare();
    command
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .args(["--endpoint", endpoint, "--region", server.region()]);
    trust(&mut command, server);
    command
}

/// Over HTTPS, the server's private CA (as CI runs SeaweedFS), as `AWS_CA_BUNDLE`.
fn trust(command: &mut Command, server: &Server) {
    if let Some(ca) = server.ca_pem_path() {
        command.env("AWS_CA_BUNDLE", ca);
    }
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
    one_line_exit(output, 1)
}

/// A run that ended with `status`, nothing on stdout and one line on stderr, which it returns.
fn one_line_exit(output: &Output, status: i32) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(status), "{stderr}");
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

/// A `cat --follow` process, the bytes it wrote so far and the lines it writes to stderr.
struct Follower {
    child: Child,
    received: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
    notes: mpsc::Receiver<String>,
}

impl Follower {
    fn start(command: Command, location: &str, interval: &str) -> Follower {
        Follower::start_with(
            command,
            &["cat", location, "--follow", "--interval", interval],
        )
    }

    /// A follower started with these arguments (`cat ... --follow` and more).
    fn start_with(mut command: Command, args: &[&str]) -> Follower {
        let mut child = command
            .args(args)
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
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (sender, notes) = mpsc::channel();
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            received,
            seen: Vec::new(),
            notes,
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

    /// Waits for at least one more chunk of output, for up to 20 s.
    fn wait_for_more(&mut self) {
        if let Ok(bytes) = self.received.recv_timeout(Duration::from_secs(20)) {
            self.seen.extend(bytes);
        }
    }

    /// Ctrl-C: SIGINT, as a terminal sends it. A follower still running 20 s later fails the
    /// test rather than hang it: `cat` keeps SIGINT's default action, and a process started
    /// with SIGINT ignored (a background job of a shell without job control, and all it runs)
    /// hands that on to its children.
    fn interrupt(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status();
        if !sent.is_ok_and(|status| status.success()) {
            self.child.kill().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let ignored = sigint_ignored(&pid);
                self.child.kill().unwrap();
                panic!(
                    "the follower did not end on SIGINT{}",
                    if ignored {
                        ": it was started with SIGINT ignored, as this test was (run the tests in \
                         the foreground, or from a shell with job control: `set -m`)"
                    } else {
                        ""
                    }
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        assert!(self.received.try_iter().all(|bytes| bytes.is_empty()));
        status
    }
}

/// Whether process `pid` ignores SIGINT (Linux: the `SigIgn` mask of `/proc/<pid>/status`).
fn sigint_ignored(pid: &str) -> bool {
    ignores(pid, 2)
}

/// Whether process `pid` ignores signal `number` (Linux: the `SigIgn` mask of
/// `/proc/<pid>/status`; false elsewhere).
fn ignores(pid: &str, number: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status.lines())
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (number - 1)) != 0)
}

/// Fails at once, saying why, if this test runs with `signal` ignored: `append` inherits that
/// and rightly goes on through it, so a test that stops it so would wait for ever.
fn assert_not_ignoring(number: i32, name: &str) {
    assert!(
        !ignores(&std::process::id().to_string(), number),
        "the tests were started with {name} ignored (under nohup, or as a background job of a \
         shell without job control), which `append` keeps: run them in the foreground, or from \
         a shell with job control (`set -m`)"
    );
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
        let mut follower = Follower::start(command(), location, "100ms");
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
    let segments = open(&bucket, "old/data.bin", 1).segments().unwrap();
    assert_eq!(segments.len(), 3, "nothing deleted");
}

#[test]
fn follow_outlives_a_trim_loop_beside_it() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let name = "outlive/follow.log";
    let location = format!("s3://{}/{name}", bucket.name());
    let data = pattern(12 * MIB, 21);
    let chunk = 256 * 1024;
    let options = Options::builder().with_seal_size(1 << 20).build().unwrap();
    let mut writer = Storage::new(bucket.clone(), name, options).unwrap();
    writer.write_all(&data[..chunk]).unwrap();
    writer.flush().unwrap();
    // It sleeps between looks, while objects are written and trimmed beside it: the objects
    // it knew, and bytes it has not read yet, go.
    let mut follower = Follower::start(against(&server), &location, "150ms");
    let trim = ["trim", &location, "--keep", "1"];
    for (round, bytes) in data[chunk..].chunks(6 * chunk).enumerate() {
        for piece in bytes.chunks(chunk) {
            writer.write_all(piece).unwrap();
            writer.flush().unwrap();
        }
        if round % 2 == 0 {
            follower.wait_for_more();
        }
        ok(against(&server), &trim, b"");
    }
    writer.close().unwrap();

    // Its output is the stream less what it said it skipped, and it skips only what was
    // trimmed: whole 1 MiB objects, up to the first one left.
    let mut skips = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected = loop {
        skips.extend(follower.notes.try_iter().map(|line| skipped(&line)));
        let mut expected = Vec::new();
        let mut pos = 0;
        for &(requested, first) in &skips {
            assert!(pos <= requested && requested < first, "{skips:?}");
            assert_eq!(first % MIB, 0, "{skips:?}");
            expected.extend_from_slice(&data[pos..requested]);
            pos = first;
        }
        expected.extend_from_slice(&data[pos..]);
        if follower.seen.len() >= expected.len() || Instant::now() > deadline {
            break expected;
        }
        if let Ok(bytes) = follower.received.recv_timeout(Duration::from_millis(100)) {
            follower.seen.extend(bytes);
        }
    };
    println!("skipped {skips:?}");
    assert!(
        follower.seen == expected,
        "follower wrote {} bytes, {} expected after skips {skips:?}",
        follower.seen.len(),
        expected.len()
    );
    assert!(
        follower.child.try_wait().unwrap().is_none(),
        "still running"
    );
    let status = follower.interrupt();
    assert!(!status.success(), "{status}");
}

/// The offsets a follower's note says it skipped: from the one it asked for to the first one.
fn skipped(line: &str) -> (usize, usize) {
    let numbers: Vec<usize> = (line.split(' '))
        .filter_map(|word| word.trim_end_matches(':').parse().ok())
        .collect();
    assert!(
        line.contains("were trimmed before they were read") && numbers.len() == 3,
        "{line}"
    );
    (numbers[0], numbers[1])
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

/// Lines that name their writer and trial, so that any mix of two inputs shows.
fn tagged_input(writer: &str, trial: usize, lines: usize) -> Vec<u8> {
    (0..lines)
        .flat_map(|n| format!("{writer} trial {trial:02} line {n:07}\n").into_bytes())
        .collect()
}

/// An `append` that finished: how many of its bytes it says are stored.
fn stored_count(output: &Output, input_len: usize) -> usize {
    let stderr = text(&output.stderr);
    match output.status.code() {
        Some(0) => {
            assert!(stderr.is_empty(), "{stderr}");
            input_len
        }
        Some(1) => {
            let line = one_line_failure(output);
            let count = line
                .rsplit_once(" bytes stored, ")
                .and_then(|(head, _)| head.rsplit_once('(').map(|(_, n)| n.to_owned()))
                .unwrap_or_default();
            let stored: usize = count.parse().unwrap_or_else(|_| panic!("no count: {line}"));
            assert!(line.contains("were not stored"), "{line}");
            stored
        }
        status => panic!("append ended with {status:?}: {stderr}"),
    }
}

/// Starts `command` as `append` with `args`, its standard input, output and error piped; returns
/// it and its input.
fn start_append(mut command: Command, args: &[&str]) -> (Child, ChildStdin) {
    let mut child = command
        .arg("append")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Starts `append` to each location at once, each with its own input, and returns their outputs.
fn appends_at_once(dir: &Path, jobs: &[(&str, &[u8])]) -> Vec<Output> {
    let children: Vec<(Child, thread::JoinHandle<()>)> = jobs
        .iter()
        .map(|(location, input)| {
            let args = [location, "--min-size", "1", "--flush-every", "64k"];
            let (child, mut stdin) = start_append(local(dir), &args);
            let input = input.to_vec();
            // A fenced writer stops reading: its end of the pipe may close first.
            let feeder = thread::spawn(move || drop(stdin.write_all(&input)));
            (child, feeder)
        })
        .collect();
    children
        .into_iter()
        .map(|(child, feeder)| {
            let output = child.wait_with_output().unwrap();
            feeder.join().unwrap();
            output
        })
        .collect()
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

#[test]
fn a_signal_stores_every_byte_read_before_it() {
    let dir = tempfile::tempdir().unwrap();
    for (signal, status, name) in [
        ("INT", 130, "SIGINT"),
        ("TERM", 143, "SIGTERM"),
        ("HUP", 129, "SIGHUP"),
    ] {
        assert_not_ignoring(status - 128, name);
        let location = format!("sig/{name}.log");
        let (child, mut stdin) = start_append(local(dir.path()), &[&location]);
        let data = pattern(3 * MIB, 5);
        // Returns once the pipe holds the rest: all but a pipe's capacity (64 KiB, 1 MiB at
        // most) was read by then. The input stays open, as a live producer's does.
        stdin.write_all(&data).unwrap();
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.unwrap().success());
        let output = child.wait_with_output().unwrap();
        drop(stdin);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let stored: usize = stderr
            .split_once(&format!("stopped by {name} ("))
            .and_then(|(_, rest)| rest.split_once(" bytes stored, 0 bytes read"))
            .and_then(|(count, _)| count.parse().ok())
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(
            stored >= data.len() - MIB,
            "{stored} bytes stored: {stderr}"
        );
        let stream = ok(local(dir.path()), &["cat", &location], b"");
        assert!(
            stream == data[..stored],
            "{name}: stored {} bytes",
            stream.len()
        );
    }
}

/// A signal `append` was started with ignored stays ignored, as `nohup` and a shell starting
/// a background job without job control (SIGINT) mean it: sent mid-input, it changes nothing,
/// and every byte is stored.
#[test]
#[cfg(target_os = "linux")]
fn a_signal_ignored_at_start_stays_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let nohup = || Command::new("nohup");
    let trapped = || {
        let mut command = Command::new("sh");
        command.args(["-c", "trap '' INT; exec \"$0\" \"$@\""]);
        command
    };
    for (launcher, signal, name) in [
        (&nohup as &dyn Fn() -> Command, "HUP", "SIGHUP"),
        (&trapped, "INT", "SIGINT"),
    ] {
        let mut command = launcher();
        command.env_clear().arg(BIN).arg("--local").arg(dir.path());
        let location = format!("ignored/{name}.log");
        let (child, mut stdin) = start_append(command, &[&location]);
        let data = pattern(6 * MIB, 7);
        let (before, after) = data.split_at(3 * MIB);
        // Returns once `append` has read most of it: its handlers, if any, are in place.
        stdin.write_all(before).unwrap();
        // Both launchers exec `append` in their own process.
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.unwrap().success());
        // Fails if `append` stopped on the signal and closed its end of the pipe.
        let fed = stdin.write_all(after);
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert!(
            output.status.success(),
            "{name}: {}: {stderr}",
            output.status
        );
        assert!(stderr.is_empty(), "{name}: {stderr}");
        fed.unwrap();
        let stream = ok(local(dir.path()), &["cat", &location], b"");
        assert!(stream == data, "{name}: {} bytes stored", stream.len());
    }
}

#[test]
fn malformed_locations_and_units_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    for (args, says) in [
        (&["append", "b/dir//x.log"][..], "empty segment"),
        (&["append", "b/./x.log"], "'.' or '..'"),
        (&["append", "b/../x.log"], "'.' or '..'"),
        (&["append", "b/dir/"], "ends with '/'"),
        (&["append", "s3://My_Bucket/x.log"], "bucket name"),
        (&["cat", "b/dir//x.log", "--follow"], "empty segment"),
        (&["append", "b/x.log", "--flush-every", "1m"], "min"),
        (
            &["append", "b/x.log", "--write-ahead", "0"],
            "--write-ahead",
        ),
        (&["append", "b/x.log", "--min-size", "5MB"], "--min-size"),
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
            "--min-size",
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
        &["stat", "b/x.log", "--min-size", "1GiB"],
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
    let output = run(logged, &["stat", "b/here.log"], b"");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        text(&output.stderr)
    );
    assert!(text(&output.stdout).contains("uploads:  not listed"));

    // trim goes on when nobody reads what it prints.
    ok(
        local(&store),
        &["append", "b/big.log", "--min-size", "1"],
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
    let stat = text(&ok(local(&store), &["stat", "b/big.log"], b""));
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

/// A container credentials endpoint on loopback: the `n`th fetch (from 0) gets `reply(n)`, if
/// it carries the authorization token `container-token`. Returns its URI and, per fetch, whether
/// it was authorized.
fn credentials_endpoint(
    reply: impl Fn(usize) -> String + Send + 'static,
) -> (String, mpsc::Receiver<bool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/credentials", listener.local_addr().unwrap());
    let (served, fetches) = mpsc::channel();
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut byte = [0; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                request.push(byte[0]);
            }
            let authorized = text(&request).contains("\r\nauthorization: container-token\r\n")
                || text(&request).contains("\r\nAuthorization: container-token\r\n");
            let (status, body) = match authorized {
                true => ("200 OK", reply(n)),
                false => ("401 Unauthorized", String::new()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            if served.send(authorized).is_err() {
                return;
            }
        }
    });
    (uri, fetches)
}

/// The command against `server` with credentials from the container endpoint `uri` only.
fn from_container(server: &Server, home: &Path, uri: &str) -> Command {
    let mut command = bare();
    command
        .env("HOME", home)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token")
        .args(["--endpoint", server.endpoint(), "--region", server.region()]);
    trust(&mut command, server);
    command
}

/// The body a container endpoint answers with.
fn container_credentials(access_key: &str, secret_key: &str, expiration: &str) -> String {
    format!(
        r#"{{"AccessKeyId":"{access_key}","SecretAccessKey":"{secret_key}","Token":"t","Expiration":"{expiration}"}}"#
    )
}

#[test]
fn container_credentials_from_a_local_endpoint_are_refreshed() {
    // The in-process server: it takes any session token the signature covers.
    let server = Server::start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/container.log", bucket.name());
    let (access_key, secret_key) = server.keys();
    // Already expired: every request fetches them anew, as it would an hour later.
    let body = container_credentials(access_key, secret_key, "2000-01-01T00:00:00Z");
    let (uri, fetches) = credentials_endpoint(move |_| body.clone());
    let home = tempfile::tempdir().unwrap();
    let container = || from_container(&server, home.path(), &uri);
    ok(container(), &["append", &location], b"from a container\n");
    assert_eq!(
        ok(container(), &["cat", &location], b""),
        b"from a container\n"
    );
    let fetched: Vec<bool> = fetches.try_iter().collect();
    assert!(fetched.iter().all(|&authorized| authorized), "{fetched:?}");
    // Two commands, each fetching at start and again before its requests.
    assert!(fetched.len() > 2, "fetched {} times", fetched.len());
}

#[test]
fn credentials_about_to_expire_are_renewed_before_a_request() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/renewed.log", bucket.name());
    let (access_key, secret_key) = (server.keys().0.to_owned(), server.keys().1.to_owned());
    // Each command's first fetch expires in 15 s, before a request's deadline (30 s), and its
    // secret is wrong: a request signed with it fails, so only a renewal before the first
    // request lets the command succeed. The renewal gets working keys good for years.
    // (Credentials good past the deadline are renewed in the background instead, which the
    // unit tests of `renew.rs` time.)
    let soon = (time::OffsetDateTime::now_utc() + Duration::from_secs(15))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (uri, fetches) = credentials_endpoint(move |n| match n % 2 {
        0 => container_credentials(&access_key, "not-the-secret", &soon),
        _ => container_credentials(&access_key, &secret_key, "2099-01-01T00:00:00Z"),
    });
    let home = tempfile::tempdir().unwrap();
    let container = || from_container(&server, home.path(), &uri);
    ok(container(), &["append", &location], b"renewed\n");
    let fetched: Vec<bool> = fetches.try_iter().collect();
    assert_eq!(fetched, [true, true], "the start's fetch, then the renewal");
    assert_eq!(ok(container(), &["cat", &location], b""), b"renewed\n");
    assert_eq!(fetches.try_iter().count(), 2);
}

#[test]
fn a_second_sigint_while_closing_exits_at_once() {
    let server = Server::start();
    let proxy = Proxy::start(&server);
    let bucket = server.new_bucket();
    let location = format!("s3://{}/twice.log", bucket.name());
    let command = through(&server, proxy.endpoint());
    // Below --min-size and with no --flush-every, the close sends the only PUT: held for 30 s.
    proxy.inject(Some("PUT"), Fault::Hold);
    assert_not_ignoring(2, "SIGINT");
    let (child, mut stdin) = start_append(command, &[&location]);
    let data = pattern(3 * MIB, 9);
    // Returns once most of it was read: the signal handlers are in place by then.
    stdin.write_all(&data).unwrap();
    let pid = child.id().to_string();
    let interrupt = || {
        let sent = Command::new("kill").args(["-INT", &pid]).status();
        assert!(sent.unwrap().success());
    };
    interrupt();
    assert!(proxy.wait_holding(1), "the close never sent its PUT");
    let second = Instant::now();
    interrupt();
    let output = child.wait_with_output().unwrap();
    let waited = second.elapsed();
    drop(stdin);
    proxy.release();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(waited < Duration::from_secs(20), "exited after {waited:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("stopped by SIGINT, then SIGINT again: exiting without storing the rest"),
        "{stderr}"
    );
    assert!(stderr.contains("at least 0 bytes stored"), "{stderr}");
}

#[test]
fn a_gap_is_shown_by_ls_and_stat_and_trim_before_gap_reads_on_after_it() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/gap/data.bin", bucket.name());
    let data = pattern(3 * MIB + 100, 21);
    ok(
        against(&server),
        &["append", &location, "--min-size", "1"],
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
    let stat = text(&ok(against(&server), &["stat", &location], b""));
    assert!(
        stat.contains(&format!("gap:      {} missing", key(1))),
        "{stat}"
    );
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

#[test]
fn follow_goes_on_after_an_older_object_is_deleted_out_of_order() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/sweep/follow.log", bucket.name());
    let key = |seq: u64| format!("sweep/follow-{seq:020}.log");
    let data = pattern(5 * MIB, 22);
    ok(
        against(&server),
        &["append", &location, "--min-size", "1"],
        &data,
    );
    let mut early = Follower::start(against(&server), &location, "100ms");
    early.wait_for(&data);

    // A lifecycle sweep deletes object 1 while object 0 is still there.
    bucket.raw_delete(&key(1));
    let from = (3 * MIB).to_string();
    let late = [
        "cat",
        &location,
        "--follow",
        "--interval",
        "100ms",
        "--from",
        &from,
    ];
    let mut late = Follower::start_with(against(&server), &late);
    late.wait_for(&data[3 * MIB..]);
    let more = pattern(300_000, 23);
    for piece in more.chunks(100_000) {
        ok(
            against(&server),
            &["append", &location, "--min-size", "1"],
            piece,
        );
    }
    early.wait_for(&[&data[..], &more].concat());
    late.wait_for(&[&data[3 * MIB..], &more].concat());
    for follower in [early, late] {
        let status = follower.interrupt();
        assert!(!status.success(), "{status}");
    }
}

/// An upload aborted from outside (a lifecycle rule) after parts of it left memory: `append`
/// says those bytes were not stored. It counted every byte that memory no longer held as
/// stored, those of the lost parts included.
#[test]
fn an_append_whose_upload_vanished_counts_the_lost_bytes_as_not_stored() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/lost/data.bin", bucket.name());
    let mut child = against(&server)
        .args([
            "append",
            &location,
            "--min-size",
            "64MiB",
            "--write-ahead",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn s3-syncr");
    // 32 MiB of 8 MiB parts, one at a time: memory holds two, the others are let go.
    let data = pattern(32 * MIB, 40);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&data).expect("append reads its input");
    crate::common::abort_from_outside(&bucket, "lost/data-00000000000000000000.bin");
    drop(stdin);
    let output = child.wait_with_output().expect("wait for s3-syncr");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("vanished"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "(0 bytes stored, {} bytes read from standard input were not stored)",
            data.len()
        )),
        "{stderr}"
    );
    assert!(stream_contents(&bucket, "lost/data.bin").is_empty());
}
