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
    /// The roots trusted beyond the built-in and platform ones.
    extra: Vec<Certificate<'static>>,
    config: OnceLock<Arc<ClientConfig>>,
}

impl Tls {
    /// Will trust the built-in and platform roots and `extra` (see [`super::all_roots`]).
    pub(super) fn new(extra: Vec<Certificate<'static>>) -> Tls {
        Tls {
            extra,
            config: OnceLock::new(),
        }
    }

    fn config(&self) -> Arc<ClientConfig> {
        let config = self.config.get_or_init(|| {
            let roots = super::all_roots(self.extra.clone());
            Arc::new(configure(&roots))
        });
        config.clone()
    }
}

/// Trusts `roots`, with every TLS version, SNI on and rustls's in-memory session cache, as
/// ureq configures rustls by default. The provider is ring, named rather than taken from a
/// process default, as the rest of the tree uses (no aws-lc-rs to build).
fn configure(roots: &[Certificate<'_>]) -> ClientConfig {
    let mut store = RootCertStore::empty();
    let (added, ignored) =
        store.add_parsable_certificates(roots.iter().map(|c| CertificateDer::from(c.der())));
    log::debug!("TLS: {added} root certificates trusted, {ignored} unparsable ignored");
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
