//! The contract of directory buckets (S3 Express One Zone), against the in-memory S3 and the
//! in-process server's emulation of them: appends at the object's size, the part limit
//! (lowered to [`LIMIT`] on both), metadata only at creation, and session credentials. An
//! external server is skipped: none of those the CI runs has directory buckets.

use s3::Bucket;
use s3::command::Command;
use s3_syncr_test_server::Server;

use super::super::express::{OFFSET_HEADER, create_session};
use super::{CRC_HEADER, Crc, Got, Quirks, Target, pair};

/// The most parts of an object, on both targets.
const LIMIT: u32 = 3;

/// The in-memory S3 and the in-process server, each with a directory bucket; `None` for an
/// external server.
fn targets() -> Option<Vec<Target>> {
    let server = Server::from_env_or_start();
    if !server.has_directory_buckets() {
        eprintln!("skipped: the server under test has no directory buckets");
        return None;
    }
    server.set_append_part_limit(LIMIT);
    let quirks = Quirks {
        max_appends: LIMIT,
        ..Quirks::of_server_under_test()
    };
    let bucket = server.new_directory_bucket();
    Some(pair(server, bucket, quirks))
}

/// A `PutObject` of `body` at `offset` of `key`, with `extra` headers, as `bucket` (a
/// session's) signs it.
fn append(
    t: &Target,
    bucket: &Bucket,
    key: &str,
    offset: u64,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Got {
    let offset = offset.to_string();
    let mut headers = extra.to_vec();
    headers.push((OFFSET_HEADER, &offset));
    t.put_as(bucket, key, body, &headers)
}

#[test]
fn directory_buckets_append_at_the_size_and_refuse_the_rest() {
    for t in targets().into_iter().flatten() {
        let n = t.name;
        let unsigned = t.put("x/k", b"one", &[]);
        assert_eq!(
            unsigned.status, 403,
            "{n}: no session, no request: {unsigned:?}"
        );
        let session = create_session(&*t.wire, &t.bucket).expect("CreateSession");
        let b = &session.sign(&t.bucket).expect("session bucket");
        let meta = [("x-amz-meta-s3syncr-start", "7")];
        let created = append(&t, b, "x/k", 0, b"one", &meta);
        assert_eq!(created.status, 200, "{n}: offset 0 creates: {created:?}");
        let code = |got: Got| (got.status, got.code);
        let stale = append(&t, b, "x/k", 0, b"two", &[]);
        assert_eq!(code(stale), (400, "InvalidWriteOffset".into()), "{n}");
        let meta = append(&t, b, "x/k", 3, b"two", &meta);
        assert_eq!(meta.status, 400, "{n}: metadata only at creation: {meta:?}");
        let empty = append(&t, b, "x/k", 3, b"", &[]);
        assert_eq!(empty.status, 400, "{n}: an empty append: {empty:?}");
        let fenced = append(&t, b, "x/k", 3, b"two", &[("if-match", "\"0123\"")]);
        assert_eq!(fenced.status, 412, "{n}: {fenced:?}");
        let etag = created.etag();
        let two = append(&t, b, "x/k", 3, b"two", &[("if-match", &etag)]);
        assert_eq!(two.status, 200, "{n}: {two:?}");
        assert_ne!(two.etag(), etag, "{n}: a new version");
        let get = |key| {
            t.send_as(
                b,
                key,
                Command::GetObject,
                None,
                &[("x-amz-checksum-mode", "ENABLED")],
            )
        };
        let whole = get("x/k");
        assert_eq!(whole.body, b"onetwo", "{n}");
        assert_eq!(
            whole.header("x-amz-meta-s3syncr-start"),
            Some("7"),
            "{n}: kept from creation"
        );
        assert_eq!(
            whole.header(CRC_HEADER),
            Some(Crc::of(b"onetwo").encoded().as_str()),
            "{n}"
        );
        assert_eq!(
            append(&t, b, "x/k", 6, b"3", &[]).status,
            200,
            "{n}: part {LIMIT}"
        );
        let full = append(&t, b, "x/k", 7, b"4", &[]);
        assert_eq!(code(full), (400, "TooManyParts".into()), "{n}");
        assert_eq!(
            get("x/k").body,
            b"onetwo3",
            "{n}: nothing of a refused append"
        );
    }
}
