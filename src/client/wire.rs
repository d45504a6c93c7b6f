//! The transport: requests signed by rust-s3 and sent over kept-alive HTTP/1.1 connections.
//!
//! rust-s3 0.38's own blocking transport (attohttpc) opens a TCP connection, and builds a TLS
//! configuration, for every request: each one pays the handshakes and TCP slow start again, and
//! trusts Mozilla's roots alone. Here rust-s3 only signs (and its types read the answers), and
//! `ureq` sends, from one pool of connections per process and CA set, with one TLS
//! configuration (whose session cache lets new connections resume). That configuration lives
//! in a TLS link of ours (`tls`): ureq's own rustls link builds one per connection for a
//! request that sets its own timeout, as every request here does. With the `native-tls`
//! feature ureq's native-tls link stays, and no session resumes.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
#[cfg(feature = "native-tls")]
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use s3::Bucket;
use s3::command::Command;
use s3::error::S3Error;
use s3::request::Request;
use s3::request::blocking::AttoRequest;
use ureq::http::{self, HeaderMap};
use ureq::tls::Certificate;
#[cfg(feature = "native-tls")]
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::DefaultResolver;
#[cfg(feature = "native-tls")]
use ureq::unversioned::transport::NativeTlsConnector;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};
use ureq::{Agent, RequestExt};

use super::sign;
use crate::Error;

#[cfg(not(feature = "native-tls"))]
mod tls;
mod tracked;

use tracked::Tracked;
pub(crate) use tracked::failed_stale;

/// Idle connections kept per host, for all the handles of a process: enough for the default
/// `read_ahead` and `write_ahead` of several handles at once.
const IDLE_PER_HOST: usize = 32;
/// Idle connections are closed after this: before the idle timeouts of common servers (S3
/// closes after about 20 s), so that a request rarely meets a connection closed under it.
const IDLE_AGE: Duration = Duration::from_secs(10);
/// Most bytes of an XML answer or error body read into memory.
const TEXT_LIMIT: u64 = 16 * 1024 * 1024;

/// Most bytes read past what a caller wanted to keep a connection: more is cheaper to drop.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// One agent (pool and TLS configuration) per CA file asked for, shared by every handle.
static AGENTS: Mutex<Vec<(Option<PathBuf>, Agent)>> = Mutex::new(Vec::new());

/// Where a [`S3Client`](super::S3Client) sends its requests: the narrow seam below which S3
/// itself sits. Every request a stream makes passes here as rust-s3's command with the
/// headers of ours, and comes back as an [`Answer`] or a failure; retries, settling and
/// checksums above it run unchanged on [`Wire`] (HTTP to a real server) and on the tests'
/// in-memory S3 (`mem::MemS3`), which the contract suite holds to the real servers.
pub(crate) trait Transport: Send + Sync {
    /// Sends `command` on `key` as `bucket` (its credentials, and the extra headers it
    /// carries), with `extra` headers and `body` (see [`Wire::send`]). A status other than
    /// 2xx is [`S3Error::HttpFailWithBody`].
    fn send(
        &self,
        bucket: &Bucket,
        key: &str,
        command: Command<'_>,
        body: Option<&[u8]>,
        extra: &HeaderMap,
    ) -> Result<Answer, S3Error>;
}

/// The transport a [`S3Client`](super::S3Client) sends with.
#[derive(Clone)]
pub(super) struct Wire {
    agent: Agent,
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Wire")
    }
}

impl Wire {
    /// The process's transport trusting the certificates in PEM file `ca_file`, else those of
    /// the file `AWS_CA_BUNDLE` names, else the built-in and platform roots (see [`bundle`]).
    pub(super) fn shared(ca_file: Option<&Path>) -> Result<Wire, Error> {
        let mut agents = AGENTS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, agent)) = agents.iter().find(|(file, _)| file.as_deref() == ca_file) {
            return Ok(Wire {
                agent: agent.clone(),
            });
        }
        let agent = new_agent(bundle(ca_file)?);
        agents.push((ca_file.map(Path::to_owned), agent.clone()));
        Ok(Wire { agent })
    }
}

impl Transport for Wire {
    /// Signs `command` on `key` with `bucket`'s credentials (adding `extra` headers to the
    /// signature) and sends it within the bucket's request timeout. `body` is the upload's
    /// body, for a PUT whose command carries none (see [`sign`]); `None` sends
    /// the body rust-s3 makes for the command. A status other than 2xx is
    /// [`S3Error::HttpFailWithBody`].
    fn send(
        &self,
        bucket: &Bucket,
        key: &str,
        command: Command<'_>,
        body: Option<&[u8]>,
        extra: &HeaderMap,
    ) -> Result<Answer, S3Error> {
        let request = AttoRequest::new(bucket, key, command)?;
        let mut headers = request.headers()?;
        if let Some(body) = body {
            sign::set_body(&request, &mut headers, body)?;
        }
        if body.is_some() || !extra.is_empty() || sign::is_express(&headers) {
            sign::resign(&request, &mut headers, extra)?;
        }
        let body = body_of(&request, body)?;
        let mut builder = http::Request::builder()
            .method(request.command().http_verb().to_string().as_str())
            .uri(request.url()?.as_str());
        for (name, value) in &headers {
            // ureq writes these from the URL and the body, as signed.
            if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
                builder = builder.header(name, value);
            }
        }
        let request = builder
            .body(&*body)
            .map_err(|err| io_error(ureq::Error::Http(err)))?;
        tracked::forget_stale();
        let response = request
            .with_agent(&self.agent)
            .configure()
            .timeout_global(bucket.request_timeout)
            .build()
            .run()
            .map_err(io_error)?;
        let (parts, body) = response.into_parts();
        Answer::new(
            parts.status.as_u16(),
            parts.headers,
            Box::new(body.into_reader()),
        )
    }
}

/// The body a request sends: `body`, the upload's, or else the one rust-s3 makes for its
/// command (an XML document, or nothing).
pub(super) fn body_of<'a>(
    request: &AttoRequest<'_>,
    body: Option<&'a [u8]>,
) -> Result<Cow<'a, [u8]>, S3Error> {
    Ok(match body {
        Some(body) => Cow::Borrowed(body),
        None => Cow::Owned(request.request_body()?),
    })
}

/// A response whose status was 2xx.
pub(crate) struct Answer {
    pub(super) status: u16,
    headers: HeaderMap,
    body: Box<dyn Read + Send>,
}

impl Answer {
    /// The answer with `status`, `headers` and `body`; a status other than 2xx is
    /// [`S3Error::HttpFailWithBody`] with the body's text.
    pub(crate) fn new(
        status: u16,
        headers: HeaderMap,
        body: Box<dyn Read + Send>,
    ) -> Result<Answer, S3Error> {
        let mut answer = Answer {
            status,
            headers,
            body,
        };
        if !(200..300).contains(&status) {
            return Err(S3Error::HttpFailWithBody(status, answer.text()?));
        }
        Ok(answer)
    }

    /// Header `name`, if it is present and text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (an XML answer).
    pub(super) fn text(&mut self) -> Result<String, S3Error> {
        let mut text = String::new();
        ((&mut self.body).take(TEXT_LIMIT))
            .read_to_string(&mut text)
            .map_err(S3Error::Io)?;
        Ok(text)
    }

    /// The whole body.
    pub(super) fn bytes(&mut self) -> Result<Vec<u8>, S3Error> {
        let mut bytes = Vec::new();
        (self.body.read_to_end(&mut bytes)).map_err(S3Error::Io)?;
        Ok(bytes)
    }

    /// The body, to be read as it arrives.
    pub(super) fn reader(&mut self) -> impl Read + '_ {
        &mut self.body
    }

    /// Reads what is left of the body (nothing, or a few bytes): only a body read to its end
    /// gives its connection back to the pool. A longer rest closes it instead.
    pub(super) fn finish(mut self) {
        let _ = io::copy(&mut (&mut self.body).take(DRAIN_LIMIT), &mut io::sink());
    }
}

/// An agent trusting `bundle`, or without one the built-in and platform roots.
fn new_agent(bundle: Option<Vec<Certificate<'static>>>) -> Agent {
    let config = Agent::config_builder()
        .http_status_as_error(false)
        // A signed request must not be sent again elsewhere; S3 redirects only to say that the
        // bucket is in another region, which is an error to report.
        .max_redirects(0)
        .max_idle_connections(4 * IDLE_PER_HOST)
        .max_idle_connections_per_host(IDLE_PER_HOST)
        .max_idle_age(IDLE_AGE)
        .user_agent(concat!("s3-syncr/", env!("CARGO_PKG_VERSION")));
    // ureq's default chain, less its link that only warns about a SOCKS proxy from the
    // environment (private to ureq, which is built without SOCKS here: the proxy is ignored).
    let connector = ().chain(ConnectProxyConnector::default()).chain(TcpConnector::default());
    #[cfg(not(feature = "native-tls"))]
    let connector = connector.chain(tls::Tls::new(bundle));
    // ureq's native-tls connector has the flaw `tls` works around (a new `TlsConnector`, roots
    // and all, per connection of a request with a configuration of its own). It stays: with
    // native-tls no session resumes anyway (rust-native-tls issue 308).
    #[cfg(feature = "native-tls")]
    let (config, connector) = (
        config.tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::NativeTls)
                // ureq's native-tls link then trusts these alone, not the system's store too.
                .root_certs(RootCerts::Specific(Arc::new(roots(bundle))))
                .build(),
        ),
        connector.chain(NativeTlsConnector::default()),
    );
    Agent::with_parts(
        config.build(),
        connector.chain(Tracked),
        DefaultResolver::default(),
    )
}

/// The CA bundle to trust instead of the built-in and platform roots, if one is named:
/// `ca_file`'s, else `AWS_CA_BUNDLE`'s (a PEM file). As with the AWS CLI, whose `--ca-bundle`
/// overrides `AWS_CA_BUNDLE` in turn, the bundle replaces the default roots rather than adding
/// to them: that is how an endpoint is pinned to its private CA, so that no public CA (nor one
/// a platform store adds) can vouch for another server in its name. Read when the transport is
/// made: a bundle that cannot be read is an error then, not a silent fallback to other roots.
fn bundle(ca_file: Option<&Path>) -> Result<Option<Vec<Certificate<'static>>>, Error> {
    let from_env = std::env::var_os("AWS_CA_BUNDLE").filter(|b| !b.is_empty());
    let (what, file) = match (ca_file, &from_env) {
        (Some(file), _) => ("the CA file", file),
        (None, Some(file)) => ("AWS_CA_BUNDLE", Path::new(file)),
        (None, None) => return Ok(None),
    };
    let certs =
        read_pem(file).map_err(|why| Error::config(format!("{what} {}: {why}", file.display())))?;
    Ok(Some(certs))
}

/// The roots trusted: `bundle` alone if there is one, else Mozilla's (built in) and the
/// platform's. Loading the platform's reads each file of its certificate directory (about 300
/// here): 5 ms of CPU, as much as the rest of a short command over plain HTTP, which needs
/// none of it. So the rustls link loads them at its first TLS connection, not when the
/// transport is made.
fn roots(bundle: Option<Vec<Certificate<'static>>>) -> Vec<Certificate<'static>> {
    if let Some(bundle) = bundle {
        return bundle;
    }
    let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()))
        .collect();
    let platform = rustls_native_certs::load_native_certs();
    for err in &platform.errors {
        log::debug!("platform root certificates: {err}");
    }
    roots.extend((platform.certs.iter()).map(|der| Certificate::from_der(der.as_ref()).to_owned()));
    roots
}

/// The certificates in PEM file `file`; one that holds none is an error.
fn read_pem(file: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(file).map_err(|err| err.to_string())?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|err| err.to_string())? {
            ureq::tls::PemItem::Certificate(cert) => certs.push(cert),
            _ => continue,
        }
    }
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(certs)
}

/// A failure of ureq as an I/O error of a fitting kind, with a message that holds no header,
/// signature or URL query.
fn io_error(err: ureq::Error) -> S3Error {
    let (kind, message) = match err {
        // rustls reports a certificate it refuses as invalid data on the stream.
        ureq::Error::Io(err)
            if err.kind() == io::ErrorKind::InvalidData
                && err.to_string().contains("certificate") =>
        {
            (io::ErrorKind::InvalidData, untrusted(&err))
        }
        ureq::Error::Io(err) => return S3Error::Io(err),
        ureq::Error::Timeout(what) => (io::ErrorKind::TimedOut, format!("timed out ({what})")),
        ureq::Error::HostNotFound => (io::ErrorKind::NotFound, "host not found".into()),
        ureq::Error::ConnectionFailed => {
            (io::ErrorKind::ConnectionRefused, "could not connect".into())
        }
        err @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_)) => {
            (io::ErrorKind::InvalidData, untrusted(&err))
        }
        err => (io::ErrorKind::InvalidData, err.to_string()),
    };
    S3Error::Io(io::Error::new(kind, message))
}

/// A TLS failure, with what to do about the likeliest cause.
fn untrusted(err: &dyn fmt::Display) -> String {
    format!(
        "TLS: {err} (a server whose certificate comes from a private CA is trusted with \
         AWS_CA_BUNDLE or Options::ca_file)"
    )
}
