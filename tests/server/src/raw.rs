//! Plain S3 requests for the tests to set up and inspect what a stream left, over HTTP or
//! HTTPS: signed by rust-s3, sent by ureq trusting Mozilla's roots, `AWS_CA_BUNDLE` and the CAs
//! of the in-process HTTPS servers. rust-s3's own transport trusts Mozilla's roots only, so it
//! cannot reach a server with a private CA.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderMap;
use s3::Bucket;
use s3::command::Command;
use s3::request::Request;
use s3::request::blocking::AttoRequest;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// The CAs of the in-process HTTPS servers started so far (PEM).
static CAS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes [`Raw`] requests trust `pem`.
pub(crate) fn trust(pem: &str) {
    CAS.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(pem.to_owned());
}

/// An answer: status, headers and body.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, whole.
    pub body: Vec<u8>,
}

impl Answer {
    /// Header `name` as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Requests on a bucket outside any stream. Each panics on a failure, but
/// [`Raw::raw_send`] and [`Raw::raw_send_with`], which return any answer.
pub trait Raw {
    /// Sends `command` on `key`, with `body` if it has one, and returns the answer, whatever
    /// its status; `Err` for a transport failure.
    fn raw_send(&self, key: &str, command: Command<'_>) -> Result<Answer, String> {
        self.raw_send_with(key, command, &HeaderMap::new())
    }

    /// [`Raw::raw_send`] with `headers` besides (or instead of) those rust-s3 sends, all
    /// signed: e.g. `x-amz-checksum-mode: ENABLED` on a HEAD, checksums on a part or a
    /// Complete. The payload signed is the one `x-amz-content-sha256` names, so that
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD` among `headers` signs the request without its
    /// body.
    fn raw_send_with(
        &self,
        key: &str,
        command: Command<'_>,
        headers: &HeaderMap,
    ) -> Result<Answer, String>;

    /// PUT `body` at `key` with extra `headers` (user metadata).
    fn raw_put_with(&self, key: &str, body: &[u8], headers: HeaderMap) {
        let command = Command::PutObject {
            content: body,
            content_type: "application/octet-stream",
            custom_headers: Some(headers),
            multipart: None,
        };
        expect_ok("PUT", key, self.raw_send(key, command));
    }

    /// PUT `body` at `key`.
    fn raw_put(&self, key: &str, body: &[u8]) {
        self.raw_put_with(key, body, HeaderMap::new());
    }

    /// The object at `key`, whole, with its headers.
    fn raw_get(&self, key: &str) -> Answer {
        expect_ok("GET", key, self.raw_send(key, Command::GetObject))
    }

    /// The headers of the object at `key`.
    fn raw_head(&self, key: &str) -> Answer {
        expect_ok("HEAD", key, self.raw_send(key, Command::HeadObject))
    }

    /// Deletes the object at `key`.
    fn raw_delete(&self, key: &str) {
        expect_ok("DELETE", key, self.raw_send(key, Command::DeleteObject));
    }

    /// Aborts upload `id` to `key`, whatever the answer.
    fn raw_abort(&self, key: &str, id: &str) {
        let _ = self.raw_send(key, Command::AbortMultipartUpload { upload_id: id });
    }
}

impl Raw for Bucket {
    fn raw_send_with(
        &self,
        key: &str,
        command: Command<'_>,
        extra: &HeaderMap,
    ) -> Result<Answer, String> {
        let request = AttoRequest::new(self, key, command).map_err(|e| e.to_string())?;
        let mut headers = request.headers().map_err(|e| e.to_string())?;
        if !extra.is_empty() {
            crate::sign::resign(&request, &mut headers, extra).map_err(|e| e.to_string())?;
        }
        let body = request.request_body().map_err(|e| e.to_string())?;
        let mut builder = http::Request::builder()
            .method(request.command().http_verb().to_string().as_str())
            .uri(request.url().map_err(|e| e.to_string())?.as_str());
        for (name, value) in &headers {
            if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
                builder = builder.header(name, value);
            }
        }
        let response = ureq::RequestExt::with_agent(builder.body(body).expect("request"), agent())
            .run()
            .map_err(|e| e.to_string())?;
        let (parts, mut body) = response.into_parts();
        let mut bytes = Vec::new();
        (body.as_reader().read_to_end(&mut bytes)).map_err(|e| e.to_string())?;
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: bytes,
        })
    }
}

fn expect_ok(op: &str, key: &str, answer: Result<Answer, String>) -> Answer {
    match answer {
        Ok(answer) if (200..300).contains(&answer.status) => answer,
        Ok(answer) => panic!(
            "raw {op} {key}: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ),
        Err(err) => panic!("raw {op} {key}: {err}"),
    }
}

/// An agent that trusts Mozilla's roots, `AWS_CA_BUNDLE`'s and the test servers' CAs. One per
/// request: the tests' raw requests are few, and the CAs can change between them.
fn agent() -> ureq::Agent {
    let mut pems: Vec<Vec<u8>> = (CAS.lock().unwrap_or_else(PoisonError::into_inner))
        .iter()
        .map(|pem| pem.as_bytes().to_vec())
        .collect();
    if let Some(bundle) = std::env::var_os("AWS_CA_BUNDLE") {
        pems.push(std::fs::read(bundle).expect("AWS_CA_BUNDLE"));
    }
    let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()))
        .collect();
    for pem in &pems {
        for item in ureq::tls::parse_pem(pem) {
            if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
                roots.push(cert);
            }
        }
    }
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .tls_config(tls)
        .build()
        .new_agent()
}
