//! HTTPS for the in-process server, with certificates from a CA the test makes.
//!
//! Real endpoints are HTTPS, and on-premises S3 (MinIO, Ceph, SeaweedFS) usually runs with a
//! private CA that clients learn about through `AWS_CA_BUNDLE`. Everything here uses rustls's
//! *ring* provider, named explicitly: while another crate in the tree also enables aws-lc-rs,
//! rustls cannot pick a process default by itself.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use s3s::S3;
use s3s::validation::NameValidation;
use tokio::runtime::Runtime;

use crate::express::Express;
use crate::local::accept;
use crate::resign::Resigning;

/// A certificate authority made on the spot, trusted by nothing until a client is told about
/// its PEM.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

/// A server certificate issued by a [`TestCa`], with its private key.
pub struct ServerCert {
    /// The certificate (PEM), as `-s3.cert.file` and similar options take it.
    pub cert_pem: String,
    /// The private key (PKCS #8 PEM), as `-s3.key.file` and similar options take it.
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestCa {
    /// A new CA (ECDSA P-256) whose subject is `common_name`. Two CAs made with the same name
    /// are still unrelated: each has a key of its own.
    pub fn new(common_name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            der: cert.der().clone(),
        }
    }

    /// The CA's certificate (PEM): what a client is given to trust the servers it issued for.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA's certificate (DER), for a client's root store built in code.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Writes [`TestCa::pem`] to `path`.
    pub fn write_pem(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, &self.pem)
    }

    /// A server certificate for `names`: each an IP address (`127.0.0.1`, `::1`) or a DNS name
    /// (`localhost`).
    pub fn server_cert(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server names");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().map_or("s3-syncr test", |n| n),
        );
        params.is_ca = IsCa::NoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

impl ServerCert {
    /// A rustls server configuration (ring provider, HTTP/1.1) that presents this certificate.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)
            .expect("server certificate and key");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// The TLS handshakes a server completed, by kind: a client that keeps one TLS configuration
/// (and so its session cache) resumes after its first.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    full: AtomicUsize,
    resumed: AtomicUsize,
}

impl Handshakes {
    fn count(&self, kind: Option<rustls::HandshakeKind>) {
        let counter = match kind {
            Some(rustls::HandshakeKind::Resumed) => &self.resumed,
            _ => &self.full,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Full handshakes, then resumed ones.
    pub(crate) fn get(&self) -> (usize, usize) {
        (
            self.full.load(Ordering::Relaxed),
            self.resumed.load(Ordering::Relaxed),
        )
    }
}

/// As `local::serve`, over TLS with `config`, counting completed handshakes in `handshakes`:
/// returns `https://127.0.0.1:<port>` and the runtime that serves it.
pub(crate) fn serve(
    s3: impl S3,
    express: &Arc<Express>,
    bucket_names: impl NameValidation,
    config: Arc<rustls::ServerConfig>,
    handshakes: Arc<Handshakes>,
) -> io::Result<(String, Runtime)> {
    let (service, server) = Resigning::listen(s3, express, bucket_names, "https")?;
    let listener = server.listener;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    server.runtime.spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let socket = accept(&listener).await;
            let (acceptor, http, service) = (acceptor.clone(), http.clone(), service.clone());
            let handshakes = handshakes.clone();
            // The handshake runs in the connection's task: a client that stalls in it (or a
            // test that expects it to fail) must not hold up the next accept.
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                handshakes.count(tls.get_ref().1.handshake_kind());
                let _ = http
                    .serve_connection(TokioIo::new(tls), service)
                    .into_owned()
                    .await;
            });
        }
    });
    Ok((server.endpoint, server.runtime))
}

/// Makes rustls's *ring* provider the process default if none is set yet. rust-s3's own
/// transport (attohttpc) builds its TLS configuration with the default provider, and with both
/// ring and aws-lc-rs enabled in the tree rustls has none: an HTTPS request through a raw
/// `s3::Bucket` would panic instead of failing with an error.
pub fn install_ring_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;

    use super::*;
    use crate::{Proxy, Server, Wan};

    /// A GET of `/` over TLS to `endpoint` by a client that trusts `ca` only; the answer's
    /// status line, or the handshake's error.
    fn get_root(endpoint: &str, ca: &TestCa) -> Result<String, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.der().to_vec()))
            .expect("CA certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let address = endpoint
            .strip_prefix("https://")
            .expect("an https endpoint");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let socket = TcpStream::connect(address).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut tls = rustls::StreamOwned::new(conn, socket);
        let request = format!("GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        let mut answer = Vec::new();
        let result = tls
            .write_all(request.as_bytes())
            .and_then(|()| tls.read_to_end(&mut answer));
        if let Err(e) = result {
            let inner = e.into_inner().expect("a TLS error");
            return Err(*inner.downcast::<rustls::Error>().expect("a TLS error"));
        }
        let answer = String::from_utf8_lossy(&answer);
        Ok(answer.lines().next().unwrap_or_default().to_owned())
    }

    /// The in-process server speaks HTTPS with its CA's certificate, directly and through the
    /// WAN relay, and a client that trusts another CA refuses it.
    #[test]
    fn https_with_the_servers_ca_only() {
        let server = Server::start_tls();
        assert!(server.endpoint().starts_with("https://127.0.0.1:"));
        let path = server.ca_pem_path().expect("a CA file");
        assert_eq!(
            std::fs::read_to_string(path).expect("CA file"),
            server.ca_pem().expect("a CA")
        );
        assert!(
            server
                .ca_pem()
                .expect("a CA")
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_ne!(Server::unrelated_ca_pem(), server.ca_pem().expect("a CA"));
        // A test cannot get at the server's CA key, only at its PEM: rebuild the trust from
        // that, as a client given AWS_CA_BUNDLE does.
        let ca = TestCa {
            issuer: Issuer::new(
                CertificateParams::default(),
                KeyPair::generate().expect("key"),
            ),
            pem: server.ca_pem().expect("a CA").to_owned(),
            der: CertificateDer::from_pem_slice(server.ca_pem().expect("a CA").as_bytes())
                .expect("CA PEM"),
        };
        // Unsigned: S3 refuses it, but over HTTP inside TLS.
        let status = get_root(server.endpoint(), &ca).expect("TLS to the server");
        assert!(status.starts_with("HTTP/1.1 403"), "{status}");

        let relay = Proxy::start_wan(
            server.endpoint(),
            Wan {
                rtt: Duration::from_millis(4),
                ..Wan::default()
            },
        );
        assert!(relay.endpoint().starts_with("https://127.0.0.1:"));
        let status = get_root(relay.endpoint(), &ca).expect("TLS through the relay");
        assert!(status.starts_with("HTTP/1.1 403"), "{status}");
        assert_eq!(relay.connections(), 1);

        let other = TestCa::new("some other CA");
        let refused = get_root(server.endpoint(), &other).expect_err("another CA");
        assert!(
            matches!(
                refused,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            ),
            "{refused:?}"
        );
    }
}
