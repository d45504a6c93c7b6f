//! `cat --follow`: what other processes append, beside a trim loop, and past an object deleted out of order.

use super::*;

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
        ok(command(), &["append", location, "--seal-size", "1"], &big);
        follower.wait_for(&[&b"one\ntwo\n"[..], &big].concat());
        let status = follower.interrupt();
        assert!(!status.success(), "{status}");
    }
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

#[test]
fn follow_goes_on_after_an_older_object_is_deleted_out_of_order() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let location = format!("s3://{}/sweep/follow.log", bucket.name());
    let key = |seq: u64| format!("sweep/follow-{seq:020}.log");
    let data = pattern(5 * MIB, 22);
    ok(
        against(&server),
        &["append", &location, "--seal-size", "1"],
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
            &["append", &location, "--seal-size", "1"],
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
