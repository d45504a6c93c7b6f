//! The S3s the contract cases run against, and the requests the cases send them, built as
//! the client builds its own.

use std::sync::Arc;

use s3::Bucket;
use s3::command::{Command, Multipart};
use s3::error::S3Error;
use s3::serde_types::CompleteMultipartUploadData;
use s3_syncr_test_server::Server;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::super::checksum::{self, CRC_HEADER, Crc, MODE_HEADER, TYPE_HEADER};
use super::super::mem::{MemS3, Quirks};
use super::super::wire::Wire;
use super::super::{Transport, xml_text, xml_unescape};

/// One S3 the cases run against.
pub(super) struct Target {
    pub(super) name: &'static str,
    pub(super) wire: Arc<dyn Transport>,
    pub(super) bucket: Bucket,
    /// Where the server deviates from AWS (none for the in-memory S3 by default, the same as
    /// the real server's in the contract suite).
    pub(super) quirks: Quirks,
    pub(super) _server: Option<Server>,
}

/// What a request got: its status, error code, some headers, and the body.
#[derive(Debug)]
pub(super) struct Got {
    pub(super) status: u16,
    pub(super) code: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Got {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn etag(&self) -> String {
        let etag = self.header("etag").map(str::to_owned);
        etag.unwrap_or_else(|| xml_unescape(&self.text("ETag")))
    }

    pub(super) fn text(&self, tag: &str) -> String {
        xml_text(&String::from_utf8_lossy(&self.body), tag)
    }
}

/// Headers read back from answers.
const KEPT: [&str; 6] = [
    "etag",
    "content-range",
    "x-amz-meta-s3syncr-start",
    CRC_HEADER,
    TYPE_HEADER,
    "content-length",
];

fn targets() -> Vec<Target> {
    let server = Server::from_env_or_start();
    let bucket = server.new_bucket();
    pair(server, bucket, Quirks::of_server_under_test())
}

/// The in-memory S3 with `quirks`, and `server` (whose `bucket` both name).
pub(super) fn pair(server: Server, bucket: Bucket, quirks: Quirks) -> Vec<Target> {
    let wire = Wire::shared(server.ca_pem_path()).expect("transport");
    let mem = Target {
        name: "in-memory S3",
        wire: Arc::new(MemS3::new(quirks)),
        bucket: bucket.clone(),
        quirks,
        _server: None,
    };
    let real = Target {
        name: "real server",
        wire: Arc::new(wire),
        bucket,
        quirks,
        _server: Some(server),
    };
    vec![mem, real]
}

impl Target {
    pub(super) fn send(
        &self,
        key: &str,
        command: Command<'_>,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Got {
        self.send_as(&self.bucket, key, command, body, extra)
    }

    pub(super) fn send_as(
        &self,
        bucket: &Bucket,
        key: &str,
        command: Command<'_>,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Got {
        match self.wire.send(bucket, key, command, body, &headers(extra)) {
            Ok(mut answer) => Got {
                status: answer.status,
                code: String::new(),
                headers: (KEPT.iter())
                    .filter_map(|&n| Some((n.to_owned(), answer.header(n)?.to_owned())))
                    .collect(),
                body: answer.bytes().expect("body"),
            },
            Err(S3Error::HttpFailWithBody(status, body)) => Got {
                status,
                code: xml_text(&body, "Code"),
                headers: Vec::new(),
                body: body.into_bytes(),
            },
            Err(err) => panic!("{}: {err}", self.name),
        }
    }

    pub(super) fn put(&self, key: &str, body: &[u8], extra: &[(&str, &str)]) -> Got {
        self.put_as(&self.bucket, key, body, extra)
    }

    /// [`put`](Target::put) as `bucket` signs it.
    pub(super) fn put_as(
        &self,
        bucket: &Bucket,
        key: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Got {
        let mut custom = headers(extra);
        Crc::of(body).add_to(&mut custom);
        let command = Command::PutObject {
            content: &[],
            content_type: "application/octet-stream",
            custom_headers: Some(custom),
            multipart: None,
        };
        self.send_as(bucket, key, command, Some(body), &[])
    }

    pub(super) fn get(&self, key: &str, range: Option<(u64, u64)>) -> Got {
        let command = match range {
            Some((start, end)) => Command::GetObjectRange {
                start,
                end: Some(end),
            },
            None => Command::GetObject,
        };
        self.send(key, command, None, &[(MODE_HEADER, "ENABLED")])
    }

    pub(super) fn create(&self, key: &str) -> String {
        let mut meta = HeaderMap::new();
        checksum::declare_full_object(&mut meta);
        let bucket = self.bucket.with_extra_headers(meta).expect("headers");
        let command = Command::InitiateMultipartUpload {
            content_type: "application/octet-stream",
        };
        let got = self.send_as(&bucket, key, command, None, &[]);
        assert_eq!(got.status, 200, "{}: create {got:?}", self.name);
        got.text("UploadId")
    }

    pub(super) fn part(&self, key: &str, id: &str, number: u32, body: &[u8]) -> Got {
        let mut custom = HeaderMap::new();
        Crc::of(body).add_to(&mut custom);
        let command = Command::PutObject {
            content: &[],
            content_type: "application/octet-stream",
            custom_headers: Some(custom),
            multipart: Some(Multipart::new(number, id)),
        };
        self.send(key, command, Some(body), &[])
    }

    pub(super) fn copy(&self, key: &str, id: &str, from: &str, range: &str, if_match: &str) -> Got {
        let source = format!("/{}/{from}", self.bucket.name());
        let command = Command::PutObject {
            content: &[],
            content_type: "application/octet-stream",
            custom_headers: Some(headers(&[("x-amz-copy-source", &source)])),
            multipart: Some(Multipart::new(1, id)),
        };
        let extra = [
            ("x-amz-copy-source-range", range),
            ("x-amz-copy-source-if-match", if_match),
        ];
        self.send(key, command, Some(&[]), &extra)
    }

    pub(super) fn complete(
        &self,
        key: &str,
        id: &str,
        parts: &[(u32, String)],
        extra: &[(&str, &str)],
    ) -> Got {
        let bucket = self
            .bucket
            .with_extra_headers(headers(extra))
            .expect("headers");
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let command = Command::CompleteMultipartUpload {
            upload_id: id,
            data: CompleteMultipartUploadData { parts: Vec::new() },
        };
        self.send_as(&bucket, key, command, Some(xml.as_bytes()), &[])
    }

    pub(super) fn abort(&self, key: &str, id: &str) -> Got {
        self.send(
            key,
            Command::AbortMultipartUpload { upload_id: id },
            None,
            &[],
        )
    }

    pub(super) fn list(
        &self,
        prefix: &str,
        token: Option<String>,
        after: Option<String>,
        max: usize,
    ) -> Got {
        let command = Command::ListObjectsV2 {
            prefix: prefix.to_owned(),
            delimiter: None,
            continuation_token: token,
            start_after: after,
            max_keys: Some(max),
        };
        self.send("/", command, None, &[])
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    headers
}

/// What a part request to an upload that is gone gets on `t`.
pub(super) fn gone(t: &Target) -> (u16, &'static str) {
    match t.quirks.gone_upload_500 {
        true => (500, ""),
        false => (404, "NoSuchUpload"),
    }
}

/// Runs `case` against every target, naming the target in any failure.
pub(super) fn each(case: impl Fn(&Target)) {
    for target in targets() {
        case(&target);
    }
}
