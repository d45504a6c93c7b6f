//! The TLS link of the connector chain: rustls with one client configuration per agent.
//!
//! ureq's own rustls connector caches its configuration only when an agent-level request
//! builds it; a request with a configuration of its own (ours all have one: each sets its own
//! `timeout_global`) gets a new one for every connection, with all the roots parsed again and
//! an empty session cache, so no session would ever resume. This connector wraps a connection
//! in TLS as ureq's does, but with the configuration it was made with.

use std::fmt;
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use ureq::tls::Certificate;
use ureq::unversioned::transport::time::{Duration, Instant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// Wraps an `https` connection in TLS with an agent's configuration, made at the first one.
#[derive(Debug)]
pub(super) struct Tls {
    /// The CA bundle trusted instead of the built-in and platform roots, if one was named.
    bundle: Option<Vec<Certificate<'static>>>,
    config: OnceLock<Arc<ClientConfig>>,
}

impl Tls {
    /// Will trust `bundle` alone, or without one the built-in and platform roots (see
    /// [`super::roots`]).
    pub(super) fn new(bundle: Option<Vec<Certificate<'static>>>) -> Tls {
        Tls {
            bundle,
            config: OnceLock::new(),
        }
    }

    fn config(&self) -> Arc<ClientConfig> {
        let config = self
            .config
            .get_or_init(|| Arc::new(configure(self.root_store())));
        config.clone()
    }

    /// The store every certificate is checked against.
    fn root_store(&self) -> RootCertStore {
        let roots = super::roots(self.bundle.clone());
        let mut store = RootCertStore::empty();
        let (added, ignored) =
            store.add_parsable_certificates(roots.iter().map(|c| CertificateDer::from(c.der())));
        log::debug!("TLS: {added} root certificates trusted, {ignored} unparsable ignored");
        store
    }
}

/// Trusts `store`, with every TLS version, SNI on and rustls's in-memory session cache, as
/// ureq configures rustls by default. The provider is ring, named rather than taken from a
/// process default, as the rest of the tree uses (no aws-lc-rs to build).
fn configure(store: RootCertStore) -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("ring supports every TLS version")
        .with_root_certificates(store)
        .with_no_client_auth()
}

impl<In: Transport> Connector<In> for Tls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        // As ureq's connector: plain http passes, and so does a transport that is TLS already.
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.authority().map_or("", |a| a.host());
        // An IPv6 address comes bracketed, as in the URL.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("not a valid TLS server name"))?
            .to_owned();
        let mut conn = ClientConnection::new(self.config(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(left_of(details));
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

/// What is left of the connection's timeout, which runs from `details.now` (before the TCP
/// connection), not from the handshake's start: ureq's own connector measures it so with a
/// method it keeps to itself.
fn left_of(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    if let (Duration::Exact(after), Instant::Exact(start), Instant::Exact(now)) =
        (timeout.after, details.now, (details.current_time)())
    {
        timeout.after = Duration::Exact(after.saturating_sub(now.saturating_duration_since(start)));
    }
    timeout
}

/// A connection in TLS, as ureq's `RustlsTransport`.
pub(super) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport")
            .field("chained", &self.stream.sock.inner())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchors(certs: &[Certificate<'_>]) -> Vec<rustls::pki_types::TrustAnchor<'static>> {
        let mut store = RootCertStore::empty();
        for cert in certs {
            store.add(CertificateDer::from(cert.der())).unwrap();
        }
        store.roots
    }

    /// A bundle is trusted instead of the default roots, not beside them: even two of
    /// Mozilla's own roots named as the bundle leave the other Mozilla roots untrusted.
    #[test]
    fn a_bundle_replaces_the_default_roots() {
        let mozilla: Vec<Certificate<'static>> = (webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter())
            .map(|der| Certificate::from_der(der.as_ref()))
            .collect();
        let bundle = mozilla[..2].to_vec();
        let store = Tls::new(Some(bundle.clone())).root_store();
        assert_eq!(store.roots, anchors(&bundle));

        let defaults = Tls::new(None).root_store();
        let all = anchors(&mozilla);
        assert!(all.len() > 100, "{} built-in roots", all.len());
        assert!(
            all.iter().all(|root| defaults.roots.contains(root)),
            "a built-in root is missing from the default store"
        );
    }
}
