//! A request as the in-memory S3 parses it, and the answer it builds: the HTTP side.

use std::io;

use s3::Bucket;
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

use super::super::checksum::{self, CRC_HEADER, Crc, TYPE_HEADER};
use super::super::is_directory_bucket;
use super::{Object, Quirks, Refusal};

/// A request as the server would see it: its operation, key, query and headers.
pub(super) struct Parsed {
    pub(super) op: &'static str,
    /// To a directory bucket (S3 Express One Zone).
    pub(super) directory: bool,
    pub(super) key: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: HeaderMap,
}

impl Parsed {
    pub(super) fn query(&self, name: &str) -> &str {
        (self.query.iter())
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn meta(&self) -> Vec<(String, String)> {
        let mut meta: Vec<(String, String)> = (self.headers.iter())
            .filter(|(name, _)| name.as_str().starts_with("x-amz-meta-"))
            .filter_map(|(name, v)| Some((name.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        meta.sort();
        meta
    }

    /// The CRC32C the request carries for a body of `len` bytes.
    pub(super) fn crc(&self, len: u64) -> Option<Crc> {
        checksum::stored(self.header(CRC_HEADER), None, len)
    }
}

/// What the store answers: status, headers, body; or a connection that closed instead.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    pub(super) cut: Option<io::ErrorKind>,
}

impl Reply {
    pub(super) fn empty(status: u16) -> Reply {
        Reply::bytes(status, Vec::new())
    }

    pub(super) fn bytes(status: u16, body: Vec<u8>) -> Reply {
        let length = body.len().to_string();
        Reply {
            status,
            headers: HeaderMap::new(),
            body,
            cut: None,
        }
        .with("content-length", &length)
    }

    pub(super) fn xml(xml: String) -> Reply {
        Reply::bytes(200, xml.into_bytes())
    }

    /// No answer: the connection fails with `kind` instead.
    pub(super) fn cut(kind: io::ErrorKind) -> Reply {
        Reply {
            cut: Some(kind),
            ..Reply::empty(0)
        }
    }

    pub(super) fn with(mut self, name: &str, value: &str) -> Reply {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.insert(name, value);
        }
        self
    }

    /// With the object's ETag and user metadata.
    pub(super) fn with_object(self, object: &Object) -> Reply {
        let reply = self.with("etag", &object.etag);
        (object.meta.iter()).fold(reply, |reply, (name, value)| reply.with(name, value))
    }

    /// With the object's full-object checksum, if it has one.
    pub(super) fn with_crc(self, object: &Object) -> Reply {
        match object.crc {
            Some(crc) => (self.with(CRC_HEADER, &crc.encoded())).with(TYPE_HEADER, "FULL_OBJECT"),
            None => self,
        }
    }
}

/// The operation, key, query and headers of a request to `url`.
pub(super) fn parse(verb: &str, url: &str, bucket: &Bucket, headers: HeaderMap) -> Parsed {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let target = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path);
    // Path style (`/bucket/key`) or virtual-hosted (`/key`).
    let key = match path.strip_prefix(&format!("/{}", bucket.name())) {
        Some(rest) if bucket.is_path_style() => rest.trim_start_matches('/').to_owned(),
        _ => path.trim_start_matches('/').to_owned(),
    };
    let query = (query.split('&').filter(|pair| !pair.is_empty()))
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect();
    let mut parsed = Parsed {
        op: "",
        directory: is_directory_bucket(&bucket.name()),
        key,
        query,
        headers,
    };
    parsed.op = match verb {
        "GET" if parsed.has("uploads") => "LIST-UPLOADS",
        "GET" if parsed.has("session") => "CREATE-SESSION",
        "GET" if parsed.key.is_empty() => "LIST",
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" if parsed.has("partNumber") && parsed.header("x-amz-copy-source").is_some() => {
            "COPY-PART"
        }
        "PUT" if parsed.has("partNumber") => "UPLOAD-PART",
        "PUT" => "PUT",
        "POST" if parsed.has("uploads") => "CREATE-UPLOAD",
        "POST" if parsed.has("delete") => "DELETE-OBJECTS",
        "POST" => "COMPLETE-UPLOAD",
        "DELETE" if parsed.has("uploadId") => "ABORT-UPLOAD",
        "DELETE" => "DELETE",
        _ => "UNKNOWN",
    };
    parsed
}

/// `bytes=<first>-[<last>]`.
pub(super) fn parse_range(range: &str) -> Option<(u64, Option<u64>)> {
    let (first, last) = range.trim().strip_prefix("bytes=")?.split_once('-')?;
    let last = match last.trim() {
        "" => None,
        last => Some(last.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, last))
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An ETag that, as S3's MD5, is the same for the same bytes (and `-N` after N parts):
/// CRC32C and length, many times cheaper to compute than an MD5, which the client never
/// relies on (SSE-KMS objects have none).
pub(super) fn etag_of(bytes: &[u8]) -> String {
    format!("\"{:08x}{:016x}\"", crc32c::crc32c(bytes), bytes.len())
}

pub(super) fn refusal(status: u16) -> Refusal {
    let code = match status {
        503 => "SlowDown",
        409 => "ConditionalRequestConflict",
        _ => "InternalError",
    };
    (status, code, "injected".into())
}

/// `bytes` with a bit flipped, in the middle (nothing flips in an empty body).
pub(super) fn flip(bytes: &[u8]) -> Vec<u8> {
    let mut flipped = bytes.to_vec();
    if let Some(byte) = flipped.get_mut(bytes.len() / 2) {
        *byte ^= 0x10;
    }
    flipped
}

pub(super) fn no_such_key() -> Refusal {
    (404, "NoSuchKey", "the key does not exist".into())
}

/// What a part request to an upload that is gone gets.
pub(super) fn gone(quirks: &Quirks) -> Refusal {
    match quirks.gone_upload_500 {
        true => (500, "", String::new()),
        false => no_such_upload(),
    }
}

pub(super) fn no_such_upload() -> Refusal {
    (404, "NoSuchUpload", "the upload does not exist".into())
}
