//! End-to-end tests of the `s3-syncr` command: the built binary driven as a user would, through
//! pipes and exit codes, against the test server (or the external one `S3SYNCR_TEST_ENDPOINT`
//! names) and against `--local DIR`.
//!
//! Run with `cargo test --features cli`.

mod basics;
mod credentials;
mod follow;
mod local;
mod lost;
mod retention;
mod signals;

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
            let args = [location, "--seal-size", "1", "--flush-every", "64k"];
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
