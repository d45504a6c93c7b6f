//! What `append` says it lost: fenced by another writer, or its upload aborted from outside.

use super::*;

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
            "--seal-size",
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
