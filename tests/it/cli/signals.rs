//! Signals: every byte read before one is stored, a signal ignored at start stays ignored, a second SIGINT exits at once.

use super::*;

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
fn a_second_sigint_while_closing_exits_at_once() {
    let server = Server::start();
    let proxy = Proxy::start(&server);
    let bucket = server.new_bucket();
    let location = format!("s3://{}/twice.log", bucket.name());
    let command = through(&server, proxy.endpoint());
    // Below --seal-size and with no --flush-every, the close sends the only PUT: held for 30 s.
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
