//! Every rule of the stream, one test each, against a real S3 server.

use std::io::{self, BufRead, BufWriter, ErrorKind, Read, Seek, SeekFrom, Write};
use std::process::Command;

use crate::common::*;
use s3_syncr::{Error, Options, Storage};

#[test]
fn objects_follow_the_layout_and_foreign_keys_are_ignored() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let foreign = [
        "dir/name.ext",
        "dir/name-backup.ext",
        "dir/name-12.ext",
        "dir/name-x-00000000000000000000.ext",
        "dir/name-00000000000000000000.ext.bak",
        "dir/name-00000000000000000005",
        "dir/name2-00000000000000000000.ext",
    ];
    for key in foreign {
        raw_put(&bucket, key, key.as_bytes());
    }
    let data = pattern(MIB + MIB / 2, 1);
    let mut storage = open(&bucket, "dir/name.ext", 1);
    storage.write_all(&data[..MIB]).unwrap();
    storage.write_all(&data[MIB..]).unwrap();
    storage.close().unwrap();

    let keys: Vec<String> = open(&bucket, "dir/name.ext", 1)
        .objects()
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(
        keys,
        [
            "dir/name-00000000000000000000.ext",
            "dir/name-00000000000000000001.ext"
        ]
    );
    assert_eq!(stream_contents(&bucket, "dir/name.ext"), data);
    for key in foreign {
        let object = bucket.raw_get(key);
        assert_eq!(object.body, key.as_bytes(), "{key} untouched");
    }
}

#[test]
fn a_stream_at_the_bucket_root_and_without_extension() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    for name in ["root.log", "plain"] {
        let mut storage = open(&bucket, name, 1);
        storage.write_all(name.as_bytes()).unwrap();
        storage.close().unwrap();
        let objects = open(&bucket, name, 1).objects().unwrap();
        let expected = match name {
            "root.log" => "root-00000000000000000000.log",
            _ => "plain-00000000000000000000",
        };
        assert_eq!(objects[0].key, expected);
        assert_eq!(stream_contents(&bucket, name), name.as_bytes());
    }
}

#[test]
fn more_than_a_thousand_objects_are_listed_and_read() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let count = 1_100u64;
    let body = |seq: u64| format!("<{seq}>");
    std::thread::scope(|scope| {
        for part in 0..4 {
            let bucket = &bucket;
            scope.spawn(move || {
                for seq in (part..count).step_by(4) {
                    raw_put(
                        bucket,
                        &format!("many/log-{seq:020}.txt"),
                        body(seq).as_bytes(),
                    );
                }
            });
        }
    });
    let expected: String = (0..count).map(body).collect();

    let mut storage = open(&bucket, "many/log.txt", 1);
    assert_eq!(storage.objects().unwrap().len(), count as usize);
    let mut text = String::new();
    storage.read_to_string(&mut text).unwrap();
    assert_eq!(text, expected);

    // The last object is below seal_size, so appending continues it.
    storage.write_all(b"+").unwrap();
    storage.close().unwrap();
    let objects = open(&bucket, "many/log.txt", 1).objects().unwrap();
    assert_eq!(objects.len(), count as usize);
    assert_eq!(
        String::from_utf8(stream_contents(&bucket, "many/log.txt")).unwrap(),
        expected + "+"
    );
}

#[test]
fn resuming_continues_a_small_tail_and_never_rewrites_sealed_objects() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let data = pattern(3 * MIB, 2);
    let mut first = open(&bucket, "resume.log", 1);
    first.write_all(&data[..MIB]).unwrap();
    first.write_all(&data[MIB..MIB + 100]).unwrap();
    first.close().unwrap();

    server.take_requests();
    let reader = open(&bucket, "resume.log", 1);
    if !server.is_external() {
        // The bucket's check and the hint: nothing else until it is needed.
        assert_rounds(&ops(&server), &[OPEN]);
    }
    drop(reader);

    let mut second = open(&bucket, "resume.log", 1);
    second.write_all(&data[MIB + 100..2 * MIB]).unwrap();
    second.write_all(&data[2 * MIB..]).unwrap();
    second.close().unwrap();
    if !server.is_external() {
        let puts: Vec<String> = server
            .take_requests()
            .into_iter()
            .filter(|r| r.op == "PutObject")
            .map(|r| r.path)
            .collect();
        let key = |seq: u64| format!("/{}/resume-{seq:020}.log", bucket.name());
        assert_eq!(
            puts,
            [key(1), key(2)],
            "object 0 was sealed: never written again"
        );
    }
    let sizes = object_sizes(&bucket, "resume.log");
    assert_eq!(sizes, [MIB as u64, MIB as u64, MIB as u64]);
    assert_eq!(stream_contents(&bucket, "resume.log"), data);
}

#[test]
fn a_write_is_never_split_across_objects() {
    let server = Server::from_env_or_start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let mut storage = open(&bucket, "whole.log", 1);
        storage.write_all(&pattern(MIB - 10, 3)).unwrap();
        assert_eq!(storage.write(&pattern(100, 4)).unwrap(), 100);
        assert_eq!(storage.write(b"next").unwrap(), 4);
        storage.close().unwrap();
        let sizes = object_sizes(&bucket, "whole.log");
        assert_eq!(sizes, [MIB as u64 + 90, 4]);
    }
}

#[test]
fn close_without_flush_keeps_the_data() {
    let server = Server::from_env_or_start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let mut storage = open(&bucket, "close.log", 1);
        storage.write_all(b"unflushed").unwrap();
        storage.close().unwrap();
        assert_eq!(stream_contents(&bucket, "close.log"), b"unflushed");
    }
}

/// An empty read asks nothing, even of a new handle that has not listed the stream yet.
#[test]
fn an_empty_read_sends_no_request() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let mut writer = open(&bucket, "empty-read.log", 1);
    writer.write_all(b"some bytes").unwrap();
    writer.flush().unwrap();
    let mut reader = open(&bucket, "empty-read.log", 1);
    server.take_requests();
    assert_eq!(reader.read(&mut []).unwrap(), 0);
    assert_eq!(writer.read(&mut []).unwrap(), 0);
    assert_eq!(ops(&server), Vec::<&str>::new());
    let mut all = Vec::new();
    reader.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"some bytes");
}

/// `len` counts a writer's unflushed bytes without a request; a handle that has not written
/// lists the stream each time, and sees what others appended; the read position stays.
#[test]
fn len_is_the_end_offset_unflushed_bytes_included() {
    let server = Server::start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let mut writer = open(&bucket, "len.log", 1);
        let mut reader = open(&bucket, "len.log", 1);
        assert_eq!(reader.len().unwrap(), 0);
        writer.write_all(b"0123456789").unwrap();
        writer.flush().unwrap();
        writer.write_all(b"abc").unwrap();
        server.take_requests();
        assert_eq!(writer.len().unwrap(), 13);
        assert_eq!(ops(&server), Vec::<&str>::new(), "a writer knows its end");
        let mut first = [0; 4];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(reader.len().unwrap(), 10, "only what is in S3");
        assert_eq!(reader.stream_position().unwrap(), 4);
        writer.flush().unwrap();
        assert_eq!(reader.len().unwrap(), 13);
    }
}

#[test]
fn drop_flushes() {
    let server = Server::from_env_or_start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        {
            let mut storage = open(&bucket, "drop.log", 1);
            storage.write_all(b"flushed by drop").unwrap();
        }
        assert_eq!(stream_contents(&bucket, "drop.log"), b"flushed by drop");
    }
}

#[test]
fn a_clean_flush_sends_no_request() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let mut storage = open(&bucket, "clean.log", 1);
    storage.flush().unwrap();
    storage.write_all(b"data").unwrap();
    storage.flush().unwrap();
    server.take_requests();
    storage.flush().unwrap();
    storage.flush().unwrap();
    storage.close().unwrap();
    assert_eq!(ops(&server), Vec::<&str>::new());
}

#[test]
fn one_handle_reads_its_own_unflushed_writes() {
    let server = Server::from_env_or_start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let mut storage = open(&bucket, "raw.log", 1);
        let data = pattern(MIB + 500, 5);
        storage.write_all(&data[..1000]).unwrap();
        storage.flush().unwrap();
        storage.write_all(&data[1000..]).unwrap();
        let mut got = Vec::new();
        storage.read_to_end(&mut got).unwrap();
        assert_eq!(got, data, "flushed, sealed and unflushed bytes, in order");
        storage.write_all(b"more").unwrap();
        let mut more = Vec::new();
        storage.read_to_end(&mut more).unwrap();
        assert_eq!(more, b"more", "a read after EOF continues where it was");
        assert_eq!(
            storage.seek(SeekFrom::End(0)).unwrap(),
            data.len() as u64 + 4
        );
    }
}

#[test]
fn a_reader_sees_what_another_handle_appends_after_eof() {
    let server = Server::from_env_or_start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let mut writer = open(&bucket, "follow.log", 1);
        let mut reader = open(&bucket, "follow.log", 1);
        let mut buf = vec![0; 4096];
        assert_eq!(reader.read(&mut buf).unwrap(), 0);

        let data = pattern(2 * MIB + 300, 6);
        let mut seen = Vec::new();
        for piece in [&data[..200], &data[200..MIB], &data[MIB..2 * MIB + 300]] {
            writer.write_all(piece).unwrap();
            writer.flush().unwrap();
            seen.extend(read_all_with(&mut reader, 4096).unwrap());
            assert_eq!(seen.len(), seen.len().min(data.len()));
        }
        assert_eq!(seen, data, "no byte missed, none repeated");
    }
}

#[test]
fn seeks_land_anywhere_across_object_boundaries() {
    let server = Server::from_env_or_start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let data = pattern(3 * MIB / 2 * 2 + 77, 7);
        let mut storage = open(&bucket, "seek.log", 1);
        storage.write_all(&data).unwrap();
        storage.close().unwrap();

        let mut storage = open(&bucket, "seek.log", 1);
        let len = data.len() as u64;
        assert_eq!(storage.seek(SeekFrom::End(0)).unwrap(), len);
        for target in [
            0,
            1,
            MIB as u64 - 1,
            MIB as u64,
            MIB as u64 + 1,
            2 * MIB as u64,
            len - 5,
        ] {
            assert_eq!(storage.seek(SeekFrom::Start(target)).unwrap(), target);
            let mut got = vec![0; 100];
            let n = read_fully(&mut storage, &mut got);
            let end = (target as usize + 100).min(data.len());
            assert_eq!(&got[..n], &data[target as usize..end], "at {target}");
            assert_eq!(storage.stream_position().unwrap(), end as u64);
        }
        storage.seek(SeekFrom::End(-(MIB as i64))).unwrap();
        assert_eq!(
            storage.seek(SeekFrom::Current(-10)).unwrap(),
            len - MIB as u64 - 10
        );
        let mut got = vec![0; 20];
        storage.read_exact(&mut got).unwrap();
        assert_eq!(got, &data[data.len() - MIB - 10..][..20]);
        assert_eq!(
            storage.seek(SeekFrom::Current(10)).unwrap(),
            len - MIB as u64 + 20
        );
    }
}

fn read_fully(storage: &mut Storage, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match storage.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

#[test]
fn a_seek_inside_the_fetched_chunk_sends_no_request() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let mut storage = open(&bucket, "chunk.log", 1);
    storage.write_all(&pattern(200_000, 8)).unwrap();
    storage.close().unwrap();
    let mut storage = open(&bucket, "chunk.log", 1);
    let mut buf = [0; 10];
    storage.read_exact(&mut buf).unwrap();
    server.take_requests();
    storage.seek(SeekFrom::Start(1000)).unwrap();
    storage.read_exact(&mut buf).unwrap();
    storage.seek(SeekFrom::Current(-500)).unwrap();
    storage.read_exact(&mut buf).unwrap();
    storage.seek(SeekFrom::Start(0)).unwrap();
    storage.read_exact(&mut buf).unwrap();
    assert_eq!(ops(&server), Vec::<&str>::new());
}

#[test]
fn a_gap_is_invalid_data_naming_the_missing_key_and_the_stream_starts_at_the_lowest() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    for seq in [5, 6] {
        raw_put(
            &bucket,
            &format!("gap/a-{seq:020}.log"),
            &[b'0' + seq as u8; 3],
        );
    }
    assert_eq!(stream_contents(&bucket, "gap/a.log"), b"555666");

    raw_put(&bucket, "gap/a-00000000000000000008.log", b"888");
    let mut storage = open(&bucket, "gap/a.log", 1);
    let err = storage.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert!(
        matches!(inner(&err), Error::MissingObject { key } if key == "gap/a-00000000000000000007.log"),
        "{err}"
    );
    assert!(matches!(
        storage.objects(),
        Err(Error::MissingObject { .. })
    ));
    let err = storage.write(b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "no write past a gap");
}

#[test]
fn an_object_that_shrinks_under_a_reader_is_invalid_data() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let key = "shrink/a-00000000000000000000.log";
    raw_put(&bucket, key, &pattern(300_000, 1));
    // Unchecked: a checking reader fetches the whole object at its first read, to check it.
    let options = Options::builder().with_verify_reads(false).build().unwrap();
    let mut reader = Storage::new(bucket.clone(), "shrink/a.log", options).unwrap();
    let mut first = vec![0; 1000];
    reader.read_exact(&mut first).unwrap();
    raw_put(&bucket, key, &pattern(500, 1));
    let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(matches!(inner(&err), Error::ObjectChanged { .. }), "{err}");
}

#[test]
fn bufread_lines_and_io_copy_through_bufwriter() {
    let server = Server::from_env_or_start();
    // As in a general-purpose bucket, so in a directory bucket.
    for bucket in bucket_kinds(&server) {
        let lines: Vec<String> = (0..5_000)
            .map(|i| format!("line {i} {}", "x".repeat(i % 300)))
            .collect();
        let text = lines.join("\n") + "\n";
        let mut writer = BufWriter::new(open(&bucket, "lines.txt", 1));
        io::copy(&mut text.as_bytes(), &mut writer).unwrap();
        let storage = writer.into_inner().map_err(|e| e.into_error()).unwrap();
        storage.close().unwrap();

        let reader = open(&bucket, "lines.txt", 1);
        let got: Vec<String> = reader.lines().map(Result::unwrap).collect();
        assert_eq!(got, lines);
    }
}

#[test]
fn storage_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Storage>();
}

#[test]
fn invalid_input_is_rejected_before_any_request() {
    let server = Server::start();
    let bucket = server.new_bucket();
    server.take_requests();
    let attempts = [
        Storage::new(bucket.clone(), "", Options::default()),
        Storage::new(bucket.clone(), "dir/", Options::default()),
        Storage::new(bucket.clone(), "/abs", Options::default()),
        Storage::open("s3://bucket", Options::default()),
        Storage::open("ftp://bucket/x", Options::default()),
        Storage::open("s3://UPPER/x", Options::default()),
    ];
    for result in attempts {
        let err = result.unwrap_err();
        assert_eq!(io::Error::from(err).kind(), ErrorKind::InvalidInput);
    }
    let zero = Options::builder().with_seal_size(0).build().unwrap_err();
    assert!(matches!(
        zero,
        Error::InvalidOption {
            option: "seal_size",
            ..
        }
    ));
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);
    assert_eq!(ops(&server), Vec::<&str>::new());
}

#[test]
fn a_missing_bucket_is_not_found_on_open() {
    let server = Server::from_env_or_start();
    let bucket = server.bucket("s3syncr-no-such-bucket");
    let err = Storage::new(bucket, "x.log", Options::default()).unwrap_err();
    assert!(matches!(&err, Error::BucketNotFound { bucket } if bucket == "s3syncr-no-such-bucket"));
    assert_eq!(io::Error::from(err).kind(), ErrorKind::NotFound);
}

#[test]
fn wrong_credentials_are_permission_denied_and_never_leak() {
    let server = Server::from_env_or_start();
    let name = server.new_bucket().name();
    let secret = "wrong-secret-must-not-appear-anywhere";
    let (access_key, real_secret) = server.keys();
    if server.checks_signatures() {
        let bucket = server.bucket_with_keys(&name, access_key, secret);
        let err = Storage::new(bucket, "x.log", Options::default()).unwrap_err();
        let shown = format!("{err} {err:?}");
        let io_err = io::Error::from(err);
        assert_eq!(io_err.kind(), ErrorKind::PermissionDenied, "{shown}");
        assert!(!shown.contains(secret), "{shown}");
    } else {
        println!("skipped the wrong-secret half: this server does not check signatures");
    }

    let storage = open(&server.bucket(&name), "x.log", 1);
    let debug = format!("{storage:?}");
    assert!(
        !debug.contains(real_secret) && !debug.contains(access_key),
        "{debug}"
    );
}

#[test]
fn an_unreachable_endpoint_is_a_transport_error_within_the_retry_budget() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let region = s3::Region::Custom {
        region: "us-east-1".into(),
        endpoint: format!("http://{closed_port}"),
    };
    let credentials = s3::creds::Credentials::new(Some("a"), Some("b"), None, None, None).unwrap();
    let bucket = s3::Bucket::new("some-bucket", region, credentials)
        .unwrap()
        .with_path_style();
    let options = Options::builder()
        .with_retry_attempts(3)
        .with_retry_backoff(std::time::Duration::from_millis(50))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = Storage::new(*bucket, "x.log", options).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(&err, Error::Transport { op: "LIST", .. }), "{err}");
    assert_eq!(io::Error::from(err).kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn a_server_that_never_answers_times_out_within_the_configured_deadline() {
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let region = s3::Region::Custom {
        region: "us-east-1".into(),
        endpoint: format!("http://{}", blackhole.local_addr().unwrap()),
    };
    let credentials = s3::creds::Credentials::new(Some("a"), Some("b"), None, None, None).unwrap();
    let bucket = s3::Bucket::new("some-bucket", region, credentials)
        .unwrap()
        .with_path_style();
    let options = Options::builder()
        .with_retry_attempts(2)
        .with_retry_backoff(std::time::Duration::from_millis(10))
        .with_request_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = Storage::new(*bucket, "x.log", options).unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(io::Error::from(err).kind(), ErrorKind::TimedOut);
    drop(blackhole);
}

#[test]
fn without_conditional_writes_nothing_fences_a_second_writer() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let unfenced = || {
        let options = Options::builder()
            .with_conditional_writes(false)
            .build()
            .unwrap();
        Storage::new(bucket.clone(), "unsafe.log", options).unwrap()
    };
    let (mut first, mut second) = (unfenced(), unfenced());
    first.write_all(b"a1 ").unwrap();
    first.flush().unwrap();
    second.write_all(b"b1 ").unwrap();
    second.flush().unwrap();
    first.write_all(b"a2").unwrap();
    first.flush().unwrap();
    // The documented hazard: the second writer's bytes are silently gone.
    assert_eq!(stream_contents(&bucket, "unsafe.log"), b"a1 a2");
}

/// `open` reads the process environment, which a test may not change under other threads: run
/// it in a child process of this same test binary.
#[test]
fn open_reads_the_aws_environment() {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    let (access_key, secret_key) = server.keys();
    let run_child = |location: String| {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "stream::open_child", "--ignored", "--nocapture"])
            .env("S3SYNCR_CHILD_LOCATION", location)
            .env("AWS_ENDPOINT_URL", server.endpoint())
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", secret_key)
            .env("AWS_REGION", server.region())
            .env_remove("AWS_ENDPOINT_URL_S3")
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let out = run_child(format!("s3://{}/env/child.log", bucket.name()));
    assert!(out.contains("child wrote"), "{out}");
    let out = run_child(format!("{}/env/child.log", bucket.name()));
    assert!(out.contains("child wrote"), "{out}");
    assert_eq!(
        stream_contents(&bucket, "env/child.log"),
        b"from the childfrom the child"
    );

    let out = run_child("s3://s3syncr-missing-bucket/env/child.log".into());
    assert!(out.contains("child failed: NotFound"), "{out}");
}

#[test]
#[ignore = "run by open_reads_the_aws_environment in a child process"]
fn open_child() {
    let Ok(location) = std::env::var("S3SYNCR_CHILD_LOCATION") else {
        return;
    };
    match Storage::open(&location, Options::default()) {
        Ok(mut storage) => {
            storage.write_all(b"from the child").unwrap();
            storage.close().unwrap();
            println!("child wrote");
        }
        Err(err) => println!("child failed: {:?}", io::Error::from(err).kind()),
    }
}
