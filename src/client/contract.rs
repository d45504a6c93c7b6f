//! The contract suite: what the stream counts on S3 to do, request by request, asserted
//! alike against the in-memory S3 ([`MemS3`]) and a real server (the in-process one, or the
//! one `S3SYNCR_TEST_ENDPOINT` names: `.ci/run` runs this against SeaweedFS and moto), so that
//! the in-memory S3 the simulator runs on cannot drift from the servers. Where a real server
//! deviates from AWS in a way the client copes with, the case says so and accepts both.

use s3::command::Command;
use ureq::http::HeaderMap;

use super::checksum::{self, CRC_HEADER, Crc, MODE_HEADER};
use super::mem::Quirks;

mod express;
mod target;

use target::{Got, Target, each, gone, pair};

#[test]
fn conditional_puts_hold_or_fail_with_412() {
    each(|t| {
        let n = t.name;
        let first = t.put("c/k", b"one", &[("if-none-match", "*")]);
        assert_eq!(first.status, 200, "{n}: {first:?}");
        let again = t.put("c/k", b"two", &[("if-none-match", "*")]);
        assert_eq!(
            (again.status, again.code.as_str()),
            (412, "PreconditionFailed"),
            "{n}"
        );
        let wrong = t.put("c/k", b"two", &[("if-match", "\"0123\"")]);
        assert_eq!(wrong.status, 412, "{n}: {wrong:?}");
        let right = t.put("c/k", b"two", &[("if-match", &first.etag())]);
        assert_eq!(right.status, 200, "{n}: {right:?}");
        assert_ne!(right.etag(), first.etag(), "{n}");
        // AWS answers If-Match on a missing key with 404; the client takes 404 and 412 alike.
        let missing = t.put("c/none", b"x", &[("if-match", &first.etag())]);
        assert!(matches!(missing.status, 404 | 412), "{n}: {missing:?}");
        assert_eq!(t.get("c/k", None).body, b"two", "{n}");
    });
}

#[test]
fn metadata_and_checksums_come_back_with_heads_and_whole_gets() {
    each(|t| {
        let n = t.name;
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let put = t.put("m/k", &body, &[("x-amz-meta-s3syncr-start", "4096")]);
        assert_eq!(put.status, 200, "{n}");
        let head = t.send(
            "m/k",
            Command::HeadObject,
            None,
            &[(MODE_HEADER, "ENABLED")],
        );
        assert_eq!(head.header("x-amz-meta-s3syncr-start"), Some("4096"), "{n}");
        assert_eq!(head.header("content-length"), Some("10000"), "{n}");
        let crc = Some(Crc::of(&body));
        assert_eq!(
            checksum::stored(head.header(CRC_HEADER), None, 10_000),
            crc,
            "{n}"
        );
        let whole = t.get("m/k", None);
        assert_eq!((whole.status, &whole.body), (200, &body), "{n}");
        assert_eq!(
            whole.header("x-amz-meta-s3syncr-start"),
            Some("4096"),
            "{n}"
        );
        // A body whose checksum does not match is refused, and nothing is written.
        let mut custom = HeaderMap::new();
        Crc::of(b"other").add_to(&mut custom);
        let command = Command::PutObject {
            content: &[],
            content_type: "application/octet-stream",
            custom_headers: Some(custom),
            multipart: None,
        };
        let bad = t.send("m/k", command, Some(b"damaged"), &[]);
        if !t.quirks.unchecked_checksums {
            assert_eq!(bad.status, 400, "{n}: {bad:?}");
            assert_eq!(t.get("m/k", None).body, body, "{n}");
        }
    });
}

#[test]
fn ranges_answer_206_with_their_start_and_416_past_the_end() {
    each(|t| {
        let n = t.name;
        let body: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        t.put("r/k", &body, &[]);
        let inside = t.get("r/k", Some((100, 199)));
        assert_eq!(inside.status, 206, "{n}");
        assert_eq!(inside.body, body[100..200], "{n}");
        assert_eq!(
            inside.header("content-range"),
            Some("bytes 100-199/1000"),
            "{n}"
        );
        // A range past the end is cut at it.
        let cut = t.get("r/k", Some((900, 1999)));
        assert_eq!((cut.status, cut.body.len()), (206, 100), "{n}");
        let past = t.get("r/k", Some((1000, 1999)));
        assert_eq!(past.status, 416, "{n}: {past:?}");
        let missing = t.get("r/none", Some((0, 9)));
        assert_eq!(
            (missing.status, missing.code.as_str()),
            (404, "NoSuchKey"),
            "{n}"
        );
    });
}

#[test]
fn listings_page_in_key_order_from_start_after() {
    each(|t| {
        let n = t.name;
        for i in [3, 0, 4, 1, 2] {
            t.put(&format!("l/k-{i}"), b"x", &[]);
        }
        t.put("other/k", b"x", &[]);
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = t.list("l/", token.clone(), Some("l/k-0".into()), 2);
            assert_eq!(page.status, 200, "{n}");
            let text = String::from_utf8_lossy(&page.body).into_owned();
            keys.extend(
                text.split("<Key>")
                    .skip(1)
                    .map(|k| k.split('<').next().unwrap_or("").to_owned()),
            );
            match page.text("IsTruncated").as_str() {
                "true" => token = Some(page.text("NextContinuationToken")),
                _ => break,
            }
        }
        assert_eq!(keys, ["l/k-1", "l/k-2", "l/k-3", "l/k-4"], "{n}");
    });
}

#[test]
fn multi_object_deletes_delete_missing_keys_too_and_answer_quietly() {
    use s3::serde_types::{DeleteObjectsRequest, ObjectIdentifier};
    each(|t| {
        let n = t.name;
        for key in ["d/a", "d/b", "d/kept"] {
            t.put(key, b"x", &[]);
        }
        let objects = (["d/a", "d/b", "d/missing"].iter())
            .map(|key| ObjectIdentifier {
                key: (*key).to_owned(),
                version_id: None,
            })
            .collect();
        let data = DeleteObjectsRequest {
            objects,
            quiet: true,
        };
        let got = t.send("/", Command::DeleteObjects { data }, None, &[]);
        if t.quirks.no_delete_objects {
            assert_eq!(
                (got.status, got.code.as_str()),
                (501, "NotImplemented"),
                "{n}"
            );
            return;
        }
        assert_eq!(got.status, 200, "{n}: {got:?}");
        let text = String::from_utf8_lossy(&got.body).into_owned();
        // Quiet mode leaves the deleted keys out (moto 5.2.1 lists them anyway): the client
        // reads only the errors.
        assert!(!text.contains("<Error>"), "{n}: {text}");
        let listed = t.list("d/", None, None, 10);
        let text = String::from_utf8_lossy(&listed.body).into_owned();
        assert_eq!(text.matches("<Key>").count(), 1, "{n}: {text}");
        assert_eq!(listed.text("Key"), "d/kept", "{n}");
    });
}

#[test]
fn multipart_uploads_copy_ranges_under_conditions_and_check_parts() {
    each(|t| {
        let n = t.name;
        let base: Vec<u8> = (0..(5 << 20) + 100).map(|i: u32| (i % 253) as u8).collect();
        let put = t.put("u/k", &base, &[]);
        let id = t.create("u/k");
        // The copy's condition names the source's version.
        if !t.quirks.unconditional_multipart {
            let stale = t.copy("u/k", &id, "u/k", "bytes=0-99", "\"0123\"");
            assert_eq!(stale.status, 412, "{n}: {stale:?}");
        }
        let len = base.len() as u64;
        let copied = t.copy(
            "u/k",
            &id,
            "u/k",
            &format!("bytes=0-{}", len - 1),
            &put.etag(),
        );
        assert_eq!(copied.status, 200, "{n}: {copied:?}");
        let added = t.part("u/k", &id, 2, b"tail");
        assert_eq!(added.status, 200, "{n}");
        let parts = [(1, copied.etag()), (2, added.etag())];
        if !t.quirks.unconditional_multipart {
            let wrong = t.complete("u/k", &id, &parts, &[("if-match", "\"0123\"")]);
            assert_eq!(wrong.status, 412, "{n}: {wrong:?}");
        }
        let done = t.complete("u/k", &id, &parts, &[("if-match", &put.etag())]);
        assert_eq!(done.status, 200, "{n}: {done:?}");
        let whole = t.get("u/k", None);
        assert!(
            whole.body.len() == base.len() + 4 && whole.body.ends_with(b"tail"),
            "{n}"
        );
        // The upload is gone once completed.
        let late = t.part("u/k", &id, 3, b"late");
        assert_eq!((late.status, late.code.as_str()), gone(t), "{n}");
    });
}

#[test]
fn small_parts_are_refused_at_complete_and_aborted_uploads_are_gone() {
    each(|t| {
        let n = t.name;
        let id = t.create("s/k");
        let one = t.part("s/k", &id, 1, b"small");
        let two = t.part("s/k", &id, 2, b"last");
        let parts = [(1, one.etag()), (2, two.etag())];
        let small = t.complete("s/k", &id, &parts, &[]);
        assert_eq!(
            (small.status, small.code.as_str()),
            (400, "EntityTooSmall"),
            "{n}"
        );
        // AWS keeps an upload whose Complete was refused; s3s-fs drops it. Either way an
        // abort leaves it gone, which is all the client counts on.
        let abort = t.abort("s/k", &id);
        assert!(matches!(abort.status, 204 | 404), "{n}: {abort:?}");
        let after = t.part("s/k", &id, 3, b"x");
        assert_eq!((after.status, after.code.as_str()), gone(t), "{n}");
        let missing = t.get("s/k", None);
        assert_eq!(missing.status, 404, "{n}");
        // Deleting a missing key succeeds.
        let delete = t.send("s/none", Command::DeleteObject, None, &[]);
        assert!(matches!(delete.status, 204 | 200), "{n}: {delete:?}");
    });
}
