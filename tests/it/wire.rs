//! The transport: connections kept open and counted at a relay, a connection the server closed
//! meanwhile, HTTPS with a private CA (refused until trusted, by `Options::ca_file` or
//! `AWS_CA_BUNDLE`, which replace the default roots), and TLS sessions resumed.

use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use s3_syncr::{Error, Options, Storage};
use s3_syncr_test_server::{Proxy, Wan};

/// A relay that only counts: no delay to speak of, no rate cap, no slow start.
fn counting_relay(server: &Server) -> Proxy {
    let wan = Wan {
        rtt: Duration::from_micros(100),
        rate_bytes_per_sec: 10_000_000_000,
        handshake_rtts: 0,
        slow_start: false,
    };
    Proxy::start_wan(server.endpoint(), wan)
}

/// The mix: 40 small flushes, then 200 reads of 4 KiB after seeks. Every request of
/// the handle goes through the relay; one connection per request would make 240 or more.
#[test]
fn connections_are_kept_open_across_requests() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let relay = counting_relay(&server);
    let far = relay.bucket(&server, bucket.name().as_str());
    let mut storage = Storage::new(far.clone(), "kept/open.log", Options::default()).unwrap();
    let data = pattern(40 * 1000, 1);
    for record in data.chunks(1000) {
        storage.write_all(record).unwrap();
        storage.flush().unwrap();
    }
    storage.close().unwrap();
    // Another handle: the writer would serve reads of its own bytes from memory.
    let mut storage = Storage::new(far, "kept/open.log", Options::default()).unwrap();
    let mut offsets = pattern(200 * 8, 2).into_iter();
    let mut buf = vec![0; 4096];
    for _ in 0..200 {
        let at = u16::from_le_bytes([offsets.next().unwrap(), offsets.next().unwrap()]) as usize
            % (data.len() - buf.len());
        storage.seek(SeekFrom::Start(at as u64)).unwrap();
        storage.read_exact(&mut buf).unwrap();
        assert!(buf == data[at..at + buf.len()], "bytes at {at}");
    }
    storage.close().unwrap();
    let requests = server.take_requests().len();
    let connections = relay.connections();
    eprintln!("{connections} connections for {requests} requests");
    assert!(requests >= 240, "{requests} requests");
    assert!(
        connections * 10 <= requests,
        "{connections} connections for {requests} requests"
    );
}

/// A server may close a kept-alive connection while the client holds it for later; the client
/// learns it only when it sends the next request. That request goes again on a fresh
/// connection at once, and it is no retry: it passes with a single attempt allowed.
#[test]
fn a_request_on_a_connection_the_server_closed_goes_again_at_no_cost() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let relay = counting_relay(&server);
    let far = relay.bucket(&server, bucket.name().as_str());
    let options = Options::builder().with_retry_attempts(1).build().unwrap();
    let mut storage = Storage::new(far, "closed/idle.log", options).unwrap();
    storage.write_all(b"first ").unwrap();
    storage.flush().unwrap();
    let before = relay.connections();
    relay.close_idle_upstream();
    storage.write_all(b"second").unwrap();
    storage.flush().unwrap();
    storage.close().unwrap();
    assert!(relay.connections() > before, "no new connection was opened");
    assert_eq!(stream_contents(&bucket, "closed/idle.log"), b"first second");
}

/// A handle over HTTPS with `options`, on a new bucket of `server`.
fn open_tls(server: &Server, options: Options) -> Result<Storage, io::Error> {
    let bucket = server.new_bucket();
    Storage::new(bucket, "tls/a.log", options).map_err(io::Error::from)
}

fn write_and_read_back(mut storage: Storage) {
    storage.write_all(b"over https").unwrap();
    storage.flush().unwrap();
    storage.seek(SeekFrom::Start(0)).unwrap();
    let mut back = Vec::new();
    storage.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"over https");
    storage.close().unwrap();
}

/// A certificate from a CA nobody was told about is refused at once, in one line that says
/// what to do; the same server works once its CA file is given.
#[test]
fn a_private_ca_is_refused_until_its_file_is_given() {
    let server = Server::start_tls();
    let quick = Options::builder()
        .with_retry_backoff(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = open_tls(&server, quick).expect_err("an untrusted certificate");
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    let message = err.to_string();
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains("AWS_CA_BUNDLE"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");
    // Not retried: a backoff of up to 5 s would show.
    assert!(started.elapsed() < Duration::from_secs(5), "retried");

    let trusted = Options::builder()
        .with_ca_file(server.ca_pem_path().map(Into::into))
        .build()
        .unwrap();
    write_and_read_back(open_tls(&server, trusted).unwrap());
}

/// A CA file that does not vouch for the server does not help; one that cannot be read, or
/// holds no certificate, fails the handle with an error naming it.
#[test]
fn a_wrong_or_unreadable_ca_file_is_refused() {
    let server = Server::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, Server::unrelated_ca_pem()).unwrap();
    let err = open_tls(
        &server,
        Options::builder()
            .with_ca_file(Some(other))
            .build()
            .unwrap(),
    )
    .expect_err("a CA that did not sign the certificate");
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");

    for (file, why) in [
        (dir.path().join("missing.pem"), "No such file"),
        (dir.path().join("empty.pem"), "no PEM certificate"),
    ] {
        std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
        let options = Options::builder()
            .with_ca_file(Some(file.clone()))
            .build()
            .unwrap();
        let err = open_tls(&server, options).expect_err("an unusable CA file");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let message = err.to_string();
        assert!(message.contains(&*file.to_string_lossy()), "{message}");
        assert!(message.contains(why), "{message}");
        assert!(matches!(inner(&err), Error::InvalidConfig { .. }), "{err}");
    }
}

/// A new connection resumes the TLS session of an earlier one instead of a full handshake (no
/// certificate chain sent and checked again): the TLS configuration, and so its session cache,
/// is the pool's, not one per connection. Each round closes the connections the relay holds,
/// so that the next request opens a new one.
#[test]
fn new_connections_resume_the_tls_session() {
    let server = Server::start_tls();
    let bucket = server.new_bucket();
    let relay = counting_relay(&server);
    let far = relay.bucket(&server, bucket.name().as_str());
    let options = Options::builder()
        .with_ca_file(server.ca_pem_path().map(Into::into))
        .build()
        .unwrap();
    let mut storage = Storage::new(far, "tls/resumed.log", options).unwrap();
    for _ in 0..6 {
        storage.write_all(b"record ").unwrap();
        storage.flush().unwrap();
        relay.close_idle_upstream();
    }
    storage.close().unwrap();
    let connections = relay.connections();
    let (full, resumed) = server.tls_handshakes();
    eprintln!("{connections} connections: {full} full handshakes, {resumed} resumed");
    assert!(connections >= 6, "{connections} connections");
    assert_eq!(full + resumed, connections, "a handshake per connection");
    // The open's two requests go at once, on two connections that may both start before
    // either has a session to resume.
    assert!(full <= 2, "{resumed} of {connections} handshakes resumed");
}

/// `AWS_CA_BUNDLE`, as the AWS CLI reads it, is trusted; it is read once per process, so the
/// handles run in children of this test binary.
#[test]
fn aws_ca_bundle_is_trusted() {
    let server = Server::start_tls();
    let bucket = server.new_bucket();
    let run_child = |bundle: Option<&Path>| bundle_child_says(&server, &bucket, bundle, None, None);
    let out = run_child(None);
    assert!(out.contains("child failed: InvalidData"), "{out}");
    let out = run_child(server.ca_pem_path());
    assert!(out.contains("child wrote"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let out = run_child(Some(&dir.path().join("missing.pem")));
    assert!(out.contains("child failed: InvalidInput"), "{out}");
    assert!(out.contains("AWS_CA_BUNDLE"), "{out}");
    assert_eq!(stream_contents_tls(&server, &bucket), b"from the child");
}

/// A CA bundle is trusted instead of the built-in and platform roots, not beside them, as the
/// AWS CLI's: that is what pins an endpoint to its private CA. The server's CA stands in for a
/// public or platform root by being the platform's store (`SSL_CERT_FILE`): with no bundle
/// the server is trusted; with a bundle of another CA alone, by `AWS_CA_BUNDLE` or
/// `Options::ca_file`, it is refused. `ca_file`, named in code, wins over `AWS_CA_BUNDLE`, as
/// the CLI's `--ca-bundle` does.
#[test]
fn a_ca_bundle_replaces_the_default_roots() {
    let server = Server::start_tls();
    let bucket = server.new_bucket();
    let ca = server.ca_pem_path().expect("the in-process server's CA");
    let dir = tempfile::tempdir().unwrap();
    let unrelated = dir.path().join("unrelated.pem");
    std::fs::write(&unrelated, Server::unrelated_ca_pem()).unwrap();
    let unrelated = unrelated.as_path();
    for (bundle, ca_file, says) in [
        (None, None, "child wrote"),
        (Some(unrelated), None, "child failed: InvalidData"),
        (None, Some(unrelated), "child failed: InvalidData"),
        (Some(ca), Some(unrelated), "child failed: InvalidData"),
        (Some(unrelated), Some(ca), "child wrote"),
    ] {
        let out = bundle_child_says(&server, &bucket, bundle, ca_file, Some(ca));
        assert!(
            out.contains(says),
            "AWS_CA_BUNDLE {bundle:?}, ca_file {ca_file:?}: {out}"
        );
    }
    assert_eq!(
        stream_contents_tls(&server, &bucket),
        b"from the childfrom the child"
    );
}

/// What `bundle_child` prints when it writes to `bucket` with `AWS_CA_BUNDLE` set to `bundle`,
/// `Options::ca_file` to `ca_file` and the platform's roots (`SSL_CERT_FILE`) to `platform`
/// (the system's if `None`). Each runs in a process of its own: `AWS_CA_BUNDLE` is read once
/// per process.
fn bundle_child_says(
    server: &Server,
    bucket: &s3::Bucket,
    bundle: Option<&Path>,
    ca_file: Option<&Path>,
    platform: Option<&Path>,
) -> String {
    let (access_key, secret_key) = server.keys();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "wire::bundle_child", "--ignored", "--nocapture"])
        .env(
            "S3SYNCR_CHILD_LOCATION",
            format!("s3://{}/bundle.log", bucket.name()),
        )
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", access_key)
        .env("AWS_SECRET_ACCESS_KEY", secret_key)
        .env("AWS_REGION", server.region())
        .env_remove("AWS_ENDPOINT_URL_S3");
    for (name, file) in [
        ("AWS_CA_BUNDLE", bundle),
        ("S3SYNCR_CHILD_CA_FILE", ca_file),
        ("SSL_CERT_FILE", platform),
    ] {
        match file {
            Some(file) => command.env(name, file),
            None => command.env_remove(name),
        };
    }
    if platform.is_some() {
        // Else the platform's store would be this directory's as well.
        command.env_remove("SSL_CERT_DIR");
    }
    let output = command.output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stream_contents_tls(server: &Server, bucket: &s3::Bucket) -> Vec<u8> {
    let options = Options::builder()
        .with_ca_file(server.ca_pem_path().map(Into::into))
        .build()
        .unwrap();
    let mut reader = Storage::new(bucket.clone(), "bundle.log", options).unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    out
}

#[test]
#[ignore = "run by aws_ca_bundle_is_trusted in a child process"]
fn bundle_child() {
    let Ok(location) = std::env::var("S3SYNCR_CHILD_LOCATION") else {
        return;
    };
    let options = Options::builder()
        .with_retry_attempts(1)
        .with_ca_file(std::env::var_os("S3SYNCR_CHILD_CA_FILE").map(Into::into))
        .build()
        .unwrap();
    match Storage::open(&location, options) {
        Ok(mut storage) => {
            storage.write_all(b"from the child").unwrap();
            storage.close().unwrap();
            println!("child wrote");
        }
        Err(err) => {
            let err = io::Error::from(err);
            println!("child failed: {:?} {err}", err.kind());
        }
    }
}
