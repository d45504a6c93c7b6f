//! The in-process server keeps CRC32C checksums as S3 does: checked on PUT, on each part and
//! on Complete (full-object), returned by HEAD and GET when asked; and what the fault proxy and
//! `Server::corrupt` do to bodies.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crc_fast::CrcAlgorithm;
use http::{HeaderMap, HeaderName, HeaderValue};
use s3::Bucket;
use s3::command::{Command, Multipart};
use s3::serde_types::{CompleteMultipartUploadData, Part};
use s3_syncr_test_server::{Fault, Proxy, Raw, RawAnswer, Server, crc32c};

const MIB: usize = 1 << 20;
const CHECKSUM: &str = "x-amz-checksum-crc32c";
const ASK: (&str, &str) = ("x-amz-checksum-mode", "ENABLED");
const UNSIGNED: (&str, &str) = ("x-amz-content-sha256", "UNSIGNED-PAYLOAD");

fn crc(bytes: &[u8]) -> u32 {
    // crc-fast gives every CRC as a `u64`; a CRC32C is its low 4 bytes.
    crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// What a client that knows two pieces' CRCs sends for the two together.
fn combine(first: u32, second: u32, second_len: usize) -> u32 {
    let (first, second) = (u64::from(first), u64::from(second));
    crc_fast::checksum_combine(CrcAlgorithm::Crc32Iscsi, first, second, second_len as u64) as u32
}

fn encode(crc: u32) -> String {
    STANDARD.encode(crc.to_be_bytes())
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    (pairs.iter())
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            (name, HeaderValue::from_str(value).expect("header value"))
        })
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

fn send(bucket: &Bucket, key: &str, command: Command<'_>, pairs: &[(&str, &str)]) -> RawAnswer {
    let answer = bucket.raw_send_with(key, command, &headers(pairs));
    answer.unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn put(bucket: &Bucket, key: &str, body: &[u8], pairs: &[(&str, &str)]) -> RawAnswer {
    let command = Command::PutObject {
        content: body,
        content_type: "application/octet-stream",
        custom_headers: None,
        multipart: None,
    };
    send(bucket, key, command, pairs)
}

/// A HEAD that asks for checksums.
fn head(bucket: &Bucket, key: &str) -> RawAnswer {
    send(bucket, key, Command::HeadObject, &[ASK])
}

/// A GET that asks for checksums, of the whole object or from `start` to `end`.
fn get(bucket: &Bucket, key: &str, range: Option<(u64, Option<u64>)>) -> RawAnswer {
    let command = match range {
        None => Command::GetObject,
        Some((start, end)) => Command::GetObjectRange { start, end },
    };
    send(bucket, key, command, &[ASK])
}

/// The error code of a failed answer.
fn code(answer: &RawAnswer) -> String {
    let body = String::from_utf8_lossy(&answer.body);
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"));
    code.map_or_else(|| body.to_string(), |(code, _)| code.to_owned())
}

fn assert_refused(answer: &RawAnswer, expected: &str) {
    assert_eq!(
        (answer.status, code(answer).as_str()),
        (400, expected),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}

fn assert_ok(answer: &RawAnswer) {
    assert!(
        (200..300).contains(&answer.status),
        "HTTP {}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
}

/// The CRC32C an answer reports, and its type.
fn reported(answer: &RawAnswer) -> (Option<&str>, Option<&str>) {
    (
        answer.header(CHECKSUM),
        answer.header("x-amz-checksum-type"),
    )
}

fn full_object(crc: &str) -> (Option<&str>, Option<&str>) {
    (Some(crc), Some("FULL_OBJECT"))
}

fn missing(bucket: &Bucket, key: &str) -> bool {
    send(bucket, key, Command::HeadObject, &[]).status == 404
}

/// A multipart upload made of raw requests.
struct Upload<'a> {
    bucket: &'a Bucket,
    key: &'a str,
    id: String,
    etags: Vec<String>,
}

impl<'a> Upload<'a> {
    /// Creates one, with full-object CRC32C checksums if `crc32c`.
    fn create(bucket: &'a Bucket, key: &'a str, crc32c: bool) -> Upload<'a> {
        let command = Command::InitiateMultipartUpload {
            content_type: "application/octet-stream",
        };
        let declared: &[_] = match crc32c {
            true => &[
                ("x-amz-checksum-algorithm", "CRC32C"),
                ("x-amz-checksum-type", "FULL_OBJECT"),
            ],
            false => &[],
        };
        let answer = send(bucket, key, command, declared);
        assert_ok(&answer);
        if crc32c {
            let declared = (
                answer.header("x-amz-checksum-algorithm"),
                answer.header("x-amz-checksum-type"),
            );
            assert_eq!(declared, (Some("CRC32C"), Some("FULL_OBJECT")));
        }
        let body = String::from_utf8_lossy(&answer.body);
        let id = (body.split_once("<UploadId>"))
            .and_then(|(_, rest)| rest.split_once("</UploadId>"))
            .expect("an upload id")
            .0
            .to_owned();
        Upload {
            bucket,
            key,
            id,
            etags: Vec::new(),
        }
    }

    /// Sends part `number` with `pairs`; keeps its ETag if the server took it.
    fn part(&mut self, number: u32, body: &[u8], pairs: &[(&str, &str)]) -> RawAnswer {
        self.part_at(self.bucket, number, body, pairs)
    }

    /// [`Upload::part`], through `bucket` (a proxy's handle on the same bucket).
    fn part_at(
        &mut self,
        bucket: &Bucket,
        number: u32,
        body: &[u8],
        pairs: &[(&str, &str)],
    ) -> RawAnswer {
        let command = Command::PutObject {
            content: body,
            content_type: "application/octet-stream",
            custom_headers: None,
            multipart: Some(Multipart::new(number, &self.id)),
        };
        let answer = send(bucket, self.key, command, pairs);
        if answer.status == 200 {
            let etag = answer.header("etag").expect("an ETag").to_owned();
            let index = number as usize - 1;
            self.etags
                .resize(self.etags.len().max(index + 1), String::new());
            self.etags[index] = etag;
        }
        answer
    }

    /// Sends the part with its CRC32C, and checks that the server took it and returned it.
    fn checked_part(&mut self, number: u32, body: &[u8]) {
        let crc = crc32c(body);
        let answer = self.part(number, body, &[(CHECKSUM, &crc)]);
        assert_ok(&answer);
        assert_eq!(answer.header(CHECKSUM), Some(crc.as_str()));
    }

    /// Completes it with the parts sent, and `pairs`.
    fn complete(&self, pairs: &[(&str, &str)]) -> RawAnswer {
        let parts = (self.etags.iter().zip(1..))
            .map(|(etag, part_number)| Part {
                part_number,
                etag: etag.clone(),
            })
            .collect();
        let command = Command::CompleteMultipartUpload {
            upload_id: &self.id,
            data: CompleteMultipartUploadData { parts },
        };
        send(self.bucket, self.key, command, pairs)
    }

    /// Completes it with the whole object's CRC32C `crc`.
    fn complete_with(&self, crc: &str) -> RawAnswer {
        self.complete(&[(CHECKSUM, crc), ("x-amz-checksum-type", "FULL_OBJECT")])
    }
}

#[test]
fn the_checksum_is_crc32c_big_endian_in_base64() {
    assert_eq!(crc(b"123456789"), 0xe306_9283);
    assert_eq!(
        crc32c(b"123456789"),
        STANDARD.encode([0xe3, 0x06, 0x92, 0x83])
    );
    assert_eq!(combine(crc(b"1234"), crc(b"56789"), 5), crc(b"123456789"));
}

#[test]
fn a_put_is_checked_against_its_crc32c_which_head_and_get_return_when_asked() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let body = pattern(100_000, 1);

    let wrong = crc32c(b"something else");
    assert_refused(
        &put(&bucket, "k", &body, &[(CHECKSUM, &wrong)]),
        "BadDigest",
    );
    assert!(missing(&bucket, "k"), "a refused PUT wrote the object");

    let right = crc32c(&body);
    let answer = put(&bucket, "k", &body, &[(CHECKSUM, &right)]);
    assert_ok(&answer);
    assert_eq!(reported(&answer), full_object(&right));
    assert_eq!(reported(&head(&bucket, "k")), full_object(&right));
    assert_eq!(reported(&get(&bucket, "k", None)), full_object(&right));
    let from_start = get(&bucket, "k", Some((0, None)));
    assert_eq!(
        reported(&from_start),
        full_object(&right),
        "a range of it all"
    );
    assert_eq!(reported(&get(&bucket, "k", Some((1, None)))), (None, None));
    // S3 gives checksums only to a request that asks for them.
    assert_eq!(reported(&bucket.raw_head("k")), (None, None));
    assert_eq!(reported(&bucket.raw_get("k")), (None, None));
}

#[test]
fn a_full_object_multipart_upload_is_checked_and_keeps_the_objects_crc32c() {
    for server in [Server::start(), Server::start_opaque()] {
        let bucket = server.new_bucket();
        let (first, second) = (pattern(5 * MIB, 2), pattern(1000, 3));
        let whole = [first.as_slice(), &second].concat();
        let mut upload = Upload::create(&bucket, "m", true);
        upload.checked_part(1, &first);
        upload.checked_part(2, &second);
        let right = encode(combine(crc(&first), crc(&second), second.len()));
        assert_eq!(right, crc32c(&whole));

        let answer = upload.complete_with(&right);
        assert_ok(&answer);
        let text = String::from_utf8_lossy(&answer.body);
        assert!(text.contains(&right), "the Complete's answer: {text}");

        assert_eq!(reported(&head(&bucket, "m")), full_object(&right));
        let got = get(&bucket, "m", None);
        assert!(got.body == whole, "the object differs");
        assert_eq!(reported(&got), full_object(&right));
        let from_start = get(&bucket, "m", Some((0, None)));
        assert_eq!(
            reported(&from_start),
            full_object(&right),
            "a range of it all"
        );
        assert_eq!(
            reported(&get(&bucket, "m", Some((0, Some(99))))),
            (None, None)
        );
        assert_eq!(reported(&bucket.raw_head("m")), (None, None));
    }
}

#[test]
fn a_part_whose_crc32c_differs_is_refused_and_not_stored() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let (first, other, last) = (pattern(5 * MIB, 4), pattern(5 * MIB, 5), pattern(10, 6));
    let mut upload = Upload::create(&bucket, "p", true);
    upload.checked_part(1, &first);
    let answer = upload.part(1, &other, &[(CHECKSUM, &crc32c(&first))]);
    assert_refused(&answer, "BadDigest");
    upload.checked_part(2, &last);
    let whole = [first.as_slice(), &last].concat();
    assert_ok(&upload.complete_with(&crc32c(&whole)));
    assert!(
        bucket.raw_get("p").body == whole,
        "the refused part was stored"
    );
}

#[test]
fn a_complete_whose_crc32c_differs_is_refused_before_the_object_changes() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let old = pattern(1000, 7);
    let old_crc = crc32c(&old);
    assert_ok(&put(&bucket, "c", &old, &[(CHECKSUM, &old_crc)]));

    let (first, last) = (pattern(5 * MIB, 8), pattern(10, 9));
    let mut upload = Upload::create(&bucket, "c", true);
    upload.checked_part(1, &first);
    upload.checked_part(2, &last);
    let answer = upload.complete_with(&crc32c(&first));
    assert_refused(&answer, "BadDigest");
    assert!(
        bucket.raw_get("c").body == old,
        "a refused Complete changed the object"
    );
    assert_eq!(reported(&head(&bucket, "c")), full_object(&old_crc));

    // The upload is still there to complete right.
    let whole = [first.as_slice(), &last].concat();
    let right = crc32c(&whole);
    assert_ok(&upload.complete_with(&right));
    assert!(bucket.raw_get("c").body == whole);
    assert_eq!(reported(&head(&bucket, "c")), full_object(&right));
}

#[test]
fn an_object_a_multipart_upload_made_without_a_checksum_reports_none() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let put_body = pattern(1000, 10);
    let put_crc = crc32c(&put_body);
    let (first, last) = (pattern(5 * MIB, 11), pattern(10, 12));
    let whole = [first.as_slice(), &last].concat();
    for declared in [false, true] {
        assert_ok(&put(&bucket, "n", &put_body, &[(CHECKSUM, &put_crc)]));
        // Created without checksums, or completed without the object's.
        let mut upload = Upload::create(&bucket, "n", declared);
        upload.part(1, &first, &[]);
        upload.part(2, &last, &[]);
        assert_ok(&upload.complete(&[]));
        assert!(bucket.raw_get("n").body == whole);
        let answer = head(&bucket, "n");
        assert_eq!(
            reported(&answer),
            (None, None),
            "created with one: {declared}"
        );
    }
    // A checksummed object, then a PUT over it.
    let mut upload = Upload::create(&bucket, "n", true);
    upload.checked_part(1, &first);
    upload.checked_part(2, &last);
    assert_ok(&upload.complete_with(&crc32c(&whole)));
    assert_ok(&put(&bucket, "n", &put_body, &[(CHECKSUM, &put_crc)]));
    assert_eq!(reported(&head(&bucket, "n")), full_object(&put_crc));
    assert_ok(&put(&bucket, "n", &put_body, &[]));
    assert_eq!(reported(&head(&bucket, "n")), (None, None));
}

#[test]
fn a_body_corrupted_on_the_way_is_refused_and_not_stored() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let proxy = Proxy::start(&server);
    let far = proxy.bucket(&server, &bucket.name());
    let body = pattern(10_000, 13);
    let right = crc32c(&body);

    // The SHA-256 it was signed with catches it first.
    proxy.inject(Some("PUT"), Fault::CorruptBody);
    let answer = put(&far, "b", &body, &[(CHECKSUM, &right)]);
    assert_refused(&answer, "XAmzContentSHA256Mismatch");
    assert!(missing(&bucket, "b"), "a corrupted PUT wrote the object");

    // Unsigned, its checksums do.
    proxy.inject(Some("PUT"), Fault::CorruptBody);
    let answer = put(&far, "b", &body, &[(CHECKSUM, &right), UNSIGNED]);
    assert_refused(&answer, "BadDigest");
    assert!(missing(&bucket, "b"), "a corrupted PUT wrote the object");

    let mut upload = Upload::create(&bucket, "b", true);
    proxy.inject(Some("PUT"), Fault::CorruptBody);
    let answer = upload.part_at(&far, 1, &body, &[(CHECKSUM, &right), UNSIGNED]);
    assert_refused(&answer, "BadDigest");
    proxy.inject(Some("PUT"), Fault::CorruptBody);
    let answer = upload.part_at(&far, 1, &body, &[(CHECKSUM, &right)]);
    assert_refused(&answer, "XAmzContentSHA256Mismatch");
    upload.checked_part(1, &body);
    assert_ok(&upload.complete_with(&right));

    // A request without a body goes through unchanged.
    proxy.inject(None, Fault::CorruptBody);
    let got = get(&far, "b", None);
    assert!(got.body == body);
    assert_eq!(reported(&got), full_object(&right));
    assert_eq!(proxy.injected(), 5);
}

#[test]
fn corrupt_changes_what_get_returns_but_not_the_checksum() {
    let server = Server::start();
    let bucket = server.new_bucket();
    let body = pattern(5 * MIB + 10, 14);
    let right = crc32c(&body);
    assert_ok(&put(&bucket, "r", &body, &[(CHECKSUM, &right)]));
    let mut upload = Upload::create(&bucket, "rm", true);
    upload.checked_part(1, &body[..5 * MIB]);
    upload.checked_part(2, &body[5 * MIB..]);
    assert_ok(&upload.complete_with(&right));

    for key in ["r", "rm"] {
        let before = head(&bucket, key);
        server.corrupt(&bucket.name(), key, 3);
        let got = get(&bucket, key, None);
        let mut expected = body.clone();
        expected[3] ^= 0x01;
        assert!(got.body == expected, "{key}: not the one byte flipped");
        assert_eq!(reported(&got), full_object(&right), "{key}");
        let after = head(&bucket, key);
        assert_eq!(reported(&after), full_object(&right), "{key}");
        for name in ["etag", "content-length", "last-modified"] {
            assert_eq!(after.header(name), before.header(name), "{key}: {name}");
        }
    }
}

#[test]
fn a_signed_request_may_leave_its_payload_unsigned() {
    for server in [Server::start(), Server::start_tls()] {
        let bucket = server.new_bucket();
        let body = pattern(100_000, 15);
        assert_ok(&put(&bucket, "u", &body, &[UNSIGNED]));
        assert!(bucket.raw_get("u").body == body);

        // A small body: the server refuses before reading it, and may close before a large one
        // is sent.
        let (access_key, _) = server.keys();
        let stranger = server.bucket_with_keys(&bucket.name(), access_key, "not the secret");
        let answer = put(&stranger, "u", b"small", &[UNSIGNED]);
        assert_eq!(answer.status, 403, "{}", code(&answer));
    }
}
