//! What following the end of a stream costs, counted in requests: a poll is one GET, new bytes
//! come in the answer of that GET, a sealed object leads to GETs of the next one, and objects
//! are listed only at start-up. Counts, not times: the in-process server records every request.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common::{MIB, Server, bucket_kinds, open, pattern};
use s3_syncr::{Options, Storage};
use s3_syncr_test_server::Request;

/// The requests of each kind among `requests`, as `(GETs, LISTs, others)`.
fn kinds(requests: &[Request]) -> (usize, usize, Vec<&'static str>) {
    let gets = requests.iter().filter(|r| r.op == "GetObject").count();
    let lists = (requests.iter())
        .filter(|r| r.op.starts_with("ListObjects"))
        .count();
    let others = (requests.iter())
        .filter(|r| r.op != "GetObject" && !r.op.starts_with("ListObjects"))
        .map(|r| r.op)
        .collect();
    (gets, lists, others)
}

/// Reads what the follower can read now, and returns it.
fn read_now(follower: &mut Storage) -> Vec<u8> {
    let mut got = Vec::new();
    follower.read_to_end(&mut got).unwrap();
    got
}

#[test]
fn an_idle_follower_polls_with_one_get_and_never_lists() {
    let server = Server::start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let mut writer = open(&bucket, "idle.log", 1);
        writer.write_all(b"first\n").unwrap();
        writer.flush().unwrap();
        // The follower's own seal size (8 MiB) is not the writer's: the objects tell it.
        let mut follower = Storage::new(bucket, "idle.log", Options::default()).unwrap();
        assert_eq!(read_now(&mut follower), b"first\n");
        server.take_requests();

        let polls = 30;
        for _ in 0..polls {
            assert!(read_now(&mut follower).is_empty());
        }
        let requests = server.take_requests();
        let (gets, lists, others) = kinds(&requests);
        assert!(requests.len() <= polls + 1, "{requests:?}");
        assert_eq!(lists, 0, "{requests:?}");
        // One HEAD learns the seal size of an object no poll brought bytes of.
        assert!(others.iter().all(|&op| op == "HeadObject") && others.len() <= 1);
        assert!(gets >= polls);

        // Each record the writer flushes comes with the one GET that finds it.
        for i in 0..5 {
            let record = format!("record {i}\n");
            writer.write_all(record.as_bytes()).unwrap();
            writer.flush().unwrap();
            server.take_requests();
            let mut got = vec![0; 64];
            let n = follower.read(&mut got).unwrap();
            assert_eq!(&got[..n], record.as_bytes());
            let requests = server.take_requests();
            assert_eq!(kinds(&requests), (1, 0, vec![]), "{requests:?}");
        }
        writer.close().unwrap();
    }
}

#[test]
fn a_sealed_object_leads_to_gets_of_the_next_one() {
    let server = Server::start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let mut writer = open(&bucket, "sealed.log", 1);
        let big = pattern(MIB + 100, 1);
        writer.write_all(&big).unwrap();
        writer.flush().unwrap();
        let mut follower = Storage::new(bucket, "sealed.log", Options::default()).unwrap();
        assert!(read_now(&mut follower) == big);
        // The first poll finds the object full by its writer's seal size: one HEAD says so.
        assert!(read_now(&mut follower).is_empty());
        server.take_requests();

        // Sealed: each poll asks for the next object, which is not there yet (404), and for the
        // end of the sealed one, which is still there (416): not trimmed past the follower.
        let polls = 10;
        for _ in 0..polls {
            assert!(read_now(&mut follower).is_empty());
        }
        let requests = server.take_requests();
        assert_eq!(kinds(&requests), (2 * polls, 0, vec![]), "{requests:?}");

        // The writer moves to the next object: the GET that finds it brings its bytes.
        writer.write_all(b"next object\n").unwrap();
        writer.flush().unwrap();
        server.take_requests();
        assert_eq!(read_now(&mut follower), b"next object\n");
        let requests = server.take_requests();
        let (gets, lists, others) = kinds(&requests);
        // The GET of the new object, then the poll of its end that ends the read.
        assert_eq!((gets, lists), (2, 0), "{requests:?}");
        assert!(others.is_empty(), "{requests:?}");
        writer.close().unwrap();
    }
}

#[test]
fn waiting_for_data_polls_no_faster_than_its_first_gap() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let mut writer = open(&bucket, "wait.log", 1);
    writer.write_all(b"x").unwrap();
    writer.flush().unwrap();
    let mut follower = Storage::new(bucket, "wait.log", Options::default()).unwrap();
    assert_eq!(read_now(&mut follower), b"x");
    server.take_requests();

    let started = Instant::now();
    for _ in 0..4 {
        assert!(!follower.wait_for_data(Duration::from_millis(150)).unwrap());
    }
    let elapsed = started.elapsed();
    let requests = server.take_requests();
    let (_, lists, _) = kinds(&requests);
    assert_eq!(lists, 0, "{requests:?}");
    // At most one poll per 50 ms, and the HEAD that learns the seal size.
    let most = (elapsed.as_millis() / 50) as usize + 2;
    assert!(
        requests.len() <= most,
        "{} requests in {elapsed:?}",
        requests.len()
    );

    writer.write_all(b"y").unwrap();
    writer.flush().unwrap();
    assert!(follower.wait_for_data(Duration::from_secs(5)).unwrap());
    assert_eq!(read_now(&mut follower), b"y");
    writer.close().unwrap();
}
