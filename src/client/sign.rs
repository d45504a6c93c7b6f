//! Signing what rust-s3 0.38 signs wrongly or wastefully (SigV4, with `s3::signing`'s pieces).
//!
//! - Bodies: rust-s3 hashes an upload's body twice with SHA-256 (for the header and again for
//!   the signature) and once with MD5, about 2.8 s of CPU per GiB. Here it is given an empty
//!   body to sign, and the request is signed again over its real one: over HTTPS with
//!   `UNSIGNED-PAYLOAD` (TLS protects the bytes in transit, and the CRC32C checksum header
//!   has the server check them before it stores them), over plain HTTP with one SHA-256, since
//!   nothing else would tie the bytes to the signature there. No `Content-MD5`: the checksum
//!   does its work.
//! - Headers: see [`resign`].
//!
//! The tests' raw requests (`tests/server`) sign with this file too.

use hmac::Mac;
use s3::error::S3Error;
use s3::request::Request;
use s3::request::blocking::AttoRequest;
use s3::signing;
use sha2::{Digest, Sha256};
use ureq::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use ureq::http::{HeaderMap, HeaderName, HeaderValue};

const PAYLOAD_HASH: &str = "x-amz-content-sha256";

/// The headers of a request to a directory bucket (S3 Express One Zone): a data request's
/// session token, and `CreateSession`'s mode. Such a request is signed for the `s3express`
/// service, as AWS wants it; rust-s3 0.38 names `s3` in every scope it signs.
const EXPRESS_HEADERS: [&str; 2] = ["x-amz-s3session-token", "x-amz-create-session-mode"];

/// Whether `headers` are a request to a directory bucket's zonal endpoint: see
/// [`EXPRESS_HEADERS`].
pub(super) fn is_express(headers: &HeaderMap) -> bool {
    EXPRESS_HEADERS
        .iter()
        .any(|name| headers.contains_key(*name))
}

/// Makes `headers` (as rust-s3 signed them for an empty body) describe `body` instead; the
/// caller then signs them again with [`resign`].
pub(super) fn set_body(
    request: &AttoRequest,
    headers: &mut HeaderMap,
    body: &[u8],
) -> Result<(), S3Error> {
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.remove(HeaderName::from_static("content-md5"));
    let hash = match request.url()?.scheme() {
        "https" => "UNSIGNED-PAYLOAD".to_owned(),
        _ => (Sha256::digest(body).iter())
            .map(|b| format!("{b:02x}"))
            .collect(),
    };
    headers.insert(HeaderName::from_static(PAYLOAD_HASH), hash.parse()?);
    Ok(())
}

/// Adds `extra` to `headers` and signs them again (SigV4), for the payload their
/// `x-amz-content-sha256` names; a request rust-s3 did not sign (no credentials: a public
/// bucket) stays unsigned. rust-s3 0.38 sorts its canonical headers as `name:value` strings
/// but lists the signed ones by name, so a header whose name extends another's
/// (`x-amz-copy-source-range` beside `x-amz-copy-source`) breaks its signature: here both are
/// sorted by name. A request to a directory bucket ([`is_express`]) is signed for the
/// `s3express` service.
pub(super) fn resign(
    request: &AttoRequest,
    headers: &mut HeaderMap,
    extra: &HeaderMap,
) -> Result<(), S3Error> {
    for (name, value) in extra {
        headers.insert(name.clone(), value.clone());
    }
    if headers.remove(AUTHORIZATION).is_none() {
        return Ok(());
    }
    let payload_hash = (headers.get(PAYLOAD_HASH).map(HeaderValue::to_str))
        .transpose()?
        .unwrap_or_default()
        .to_owned();
    let mut signed = Vec::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        // rust-s3 adds `Date` after signing: it is not signed.
        if name != "date" {
            signed.push((
                name.as_str().to_lowercase(),
                value.to_str()?.trim().to_owned(),
            ));
        }
    }
    signed.sort();
    let canonical_headers: Vec<String> = signed.iter().map(|(n, v)| format!("{n}:{v}")).collect();
    let names: Vec<&str> = signed.iter().map(|(n, _)| n.as_str()).collect();
    let names = names.join(";");
    let url = request.url()?;
    let canonical = format!(
        "{}\n{}\n{}\n{}\n\n{names}\n{}",
        request.command().http_verb(),
        signing::canonical_uri_string(&url),
        signing::canonical_query_string(&url),
        canonical_headers.join("\n"),
        payload_hash,
    );
    let bucket = request.bucket();
    // rust-s3's scope, with the service's name changed where it must be: the rest of the
    // signature is the same.
    let express = is_express(headers);
    let service = if express { "s3express" } else { "s3" };
    let scope = |text: String| match express {
        true => text.replace("/s3/aws4_request", "/s3express/aws4_request"),
        false => text,
    };
    let secret_key = bucket.secret_key()?.unwrap_or_default();
    let key = signing::signing_key(&request.datetime(), &secret_key, &bucket.region(), service)?;
    let mut hmac = signing::HmacSha256::new_from_slice(&key)?;
    hmac.update(scope(request.string_to_sign(&canonical)?).as_bytes());
    let signature: String = (hmac.finalize().into_bytes().iter())
        .map(|b| format!("{b:02x}"))
        .collect();
    let access_key = bucket.access_key()?.unwrap_or_default();
    let authorization = scope(signing::authorization_header(
        &access_key,
        &request.datetime(),
        &bucket.region(),
        &names,
        &signature,
    )?);
    headers.insert(AUTHORIZATION, authorization.parse()?);
    Ok(())
}
