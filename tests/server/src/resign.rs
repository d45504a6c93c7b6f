//! Requests to directory buckets are signed for the `s3express` service, which s3s 0.14
//! refuses (it knows `s3` and `sts`). In front of s3s, such a request's signature is checked
//! here, with the secret of the key that signed it, then the request is signed again for `s3`
//! with the same key, for s3s to check as any other, and marked ([`SIGNED_FOR`]) for the
//! directory buckets' emulation to see which service it was signed for. A signature that does
//! not match is replaced by one that cannot, so that s3s refuses the request as S3 does
//! (`403 SignatureDoesNotMatch`).

use std::io;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use http::HeaderMap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use s3s::S3;
use s3s::service::S3Service;
use s3s::validation::NameValidation;
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;

use crate::express::{Express, Keys};
use crate::local::{accept, listen};

/// The header this layer sets on a request whose `s3express` signature it checked: the
/// service's name. Removed from every request first: no client sets it.
pub(crate) const SIGNED_FOR: &str = "x-s3syncr-test-signed-for";

/// `S3Service`, behind the check of `s3express` signatures.
#[derive(Clone)]
pub(crate) struct Resigning {
    inner: S3Service,
    express: Arc<Express>,
}

impl Resigning {
    /// Listens on a free loopback port with `scheme`, serving `s3` to the keys `express`
    /// knows; see `local::listen`.
    pub(crate) fn listen(
        s3: impl S3,
        express: &Arc<Express>,
        names: impl NameValidation,
        scheme: &str,
    ) -> io::Result<(Resigning, crate::local::Listening)> {
        let listening = listen(s3, Keys(express.clone()), names, scheme)?;
        let service = Resigning {
            inner: listening.service.clone(),
            express: express.clone(),
        };
        Ok((service, listening))
    }

    /// Checks and signs again the headers of a request signed for `s3express`.
    fn resign(&self, method: &str, uri: &http::Uri, headers: &mut HeaderMap) {
        headers.remove(SIGNED_FOR);
        let Some(auth) = (headers.get("authorization")).and_then(|v| v.to_str().ok()) else {
            return;
        };
        let Some(parsed) = Authorization::parse(auth) else {
            return;
        };
        if parsed.service != "s3express" {
            return;
        }
        let Some(secret) = self.express.secret_of(&parsed.access_key) else {
            return;
        };
        let canonical = canonical_request(method, uri, headers, &parsed.signed);
        let date = (headers.get("x-amz-date").and_then(|v| v.to_str().ok())).unwrap_or_default();
        let sign = |service: &str| {
            let scope = format!("{}/{}/{service}/aws4_request", parsed.date, parsed.region);
            let digest = hex(&Sha256::digest(canonical.as_bytes()));
            let to_sign = format!("AWS4-HMAC-SHA256\n{date}\n{scope}\n{digest}");
            let mut key = format!("AWS4{secret}").into_bytes();
            for part in [
                parsed.date.as_str(),
                parsed.region.as_str(),
                service,
                "aws4_request",
            ] {
                key = hmac(&key, part.as_bytes());
            }
            (scope, hex(&hmac(&key, to_sign.as_bytes())))
        };
        let matches = sign("s3express").1 == parsed.signature;
        let (scope, signature) = match matches {
            true => sign("s3"),
            false => (
                format!("{}/{}/s3/aws4_request", parsed.date, parsed.region),
                "0".repeat(64),
            ),
        };
        let value = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope},SignedHeaders={},Signature={signature}",
            parsed.access_key,
            parsed.signed.join(";")
        );
        if let Ok(value) = value.parse() {
            headers.insert("authorization", value);
        }
        if matches {
            headers.insert(SIGNED_FOR, http::HeaderValue::from_static("s3express"));
        }
    }
}

impl hyper::service::Service<http::Request<Incoming>> for Resigning {
    type Response = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Response;
    type Error = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Error;
    type Future = <S3Service as hyper::service::Service<http::Request<Incoming>>>::Future;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        let (method, uri) = (req.method().to_string(), req.uri().clone());
        self.resign(&method, &uri, req.headers_mut());
        hyper::service::Service::call(&self.inner, req)
    }
}

/// As `local::serve`, with `s3express` signatures checked: returns `http://127.0.0.1:<port>`
/// and the runtime that serves it.
pub(crate) fn serve(
    s3: impl S3,
    express: &Arc<Express>,
    names: impl NameValidation,
) -> io::Result<(String, Runtime)> {
    let (service, listening) = Resigning::listen(s3, express, names, "http")?;
    let listener = listening.listener;
    listening.runtime.spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let socket = accept(&listener).await;
            let conn = http.serve_connection(TokioIo::new(socket), service.clone());
            let conn = conn.into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok((listening.endpoint, listening.runtime))
}

/// The parts of a SigV4 `Authorization` header.
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed: Vec<String>,
    signature: String,
}

impl Authorization {
    /// `AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
    /// SignedHeaders=<a;b>,Signature=<hex>`.
    fn parse(value: &str) -> Option<Authorization> {
        let rest = value.strip_prefix("AWS4-HMAC-SHA256")?;
        let field = |name: &str| {
            (rest.split(',').map(str::trim)).find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        let mut credential = field("Credential")?.split('/');
        Some(Authorization {
            access_key: credential.next()?.to_owned(),
            date: credential.next()?.to_owned(),
            region: credential.next()?.to_owned(),
            service: credential.next()?.to_owned(),
            signed: field("SignedHeaders")?
                .split(';')
                .map(str::to_owned)
                .collect(),
            signature: field("Signature")?.to_owned(),
        })
    }
}

/// The canonical request of SigV4, written here from AWS's description, not with the client's
/// code: the path as sent, the query's pairs decoded, encoded again and sorted, the signed
/// headers' trimmed values, the payload's hash as its header gives it.
fn canonical_request(
    method: &str,
    uri: &http::Uri,
    headers: &HeaderMap,
    signed: &[String],
) -> String {
    let mut query: Vec<(String, String)> = (uri.query().unwrap_or_default().split('&'))
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name)), encode(&decode(value)))
        })
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let value = |name: &str| {
        let values: Vec<&str> = (headers.get_all(name).iter())
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        values.join(",")
    };
    let canonical_headers: String = signed
        .iter()
        .map(|n| format!("{n}:{}\n", value(n)))
        .collect();
    format!(
        "{method}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        uri.path(),
        query.join("&"),
        signed.join(";"),
        value("x-amz-content-sha256"),
    )
}

/// `%XX` escapes decoded.
fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// SigV4's encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn encode(text: &str) -> String {
    const KEPT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(text, KEPT).to_string()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: no error can come.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
