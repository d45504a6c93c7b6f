//! Connections counted as they open and close, so that a request that failed on a pooled
//! connection the server had closed (stale) is told apart from one the server failed.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, Transport as Link,
};

/// How soon after a request starts on a pooled connection a close by the server must show for
/// the connection to count as stale. A connection closed while it sat in the pool fails within
/// a round trip of the request's first bytes (at once, if the close had already arrived); one
/// the server closes later, having held the request, failed the request itself.
const STALE_WITHIN: Duration = Duration::from_secs(1);

/// Connections opened by this process, for logs.
static OPENED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set when this thread's last request failed on a connection that had served a request
    /// before, because the server closed it (end of stream or reset) before any byte of the new
    /// answer and within [`STALE_WITHIN`]: it closed it while it sat in the pool.
    static STALE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the request that failed last on this thread failed on a connection from the pool
/// that the server had closed: resending it on a fresh connection is no retry. A timeout, or
/// any failure other than a prompt close, is not this: it counts as an attempt.
pub(crate) fn failed_stale() -> bool {
    STALE.take()
}
/// Starts a request: what the last one met is forgotten.
pub(super) fn forget_stale() {
    STALE.set(false);
}

/// The last link of the connector chain: counts connections, and marks a failure on a reused
/// connection before any byte of its answer (see [`failed_stale`]).
#[derive(Debug)]
pub(super) struct Tracked;

impl<In: Link> Connector<In> for Tracked {
    type Out = Counted;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Counted>, ureq::Error> {
        Ok(chained.map(|inner| {
            let opened = OPENED.fetch_add(1, Ordering::Relaxed) + 1;
            log::debug!(
                "new connection to {} ({opened} opened by this process)",
                details.uri.authority().map_or("?", |a| a.as_str())
            );
            Counted {
                inner: inner.boxed(),
                served: 0,
                answered: false,
                began: Instant::now(),
            }
        }))
    }
}

#[derive(Debug)]
pub(super) struct Counted {
    inner: Box<dyn Link>,
    /// Requests this connection carried before the current one.
    served: u32,
    /// Whether any byte of the current request's answer came.
    answered: bool,
    /// When the current request started on this connection (if it is not the first).
    began: Instant,
}

impl Counted {
    /// Marks the server's close of a connection that sat in the pool: the end of the
    /// connection, or a failure that says the server closed it, before any byte of the answer
    /// of a request that is not the connection's first, and soon after it started. A timeout
    /// is no such close: the request went unanswered, and that is a failed attempt.
    fn track<T>(&mut self, result: Result<T, ureq::Error>, ended: bool) -> Result<T, ureq::Error> {
        let closed = ended || result.as_ref().is_err_and(closed_by_peer);
        if closed && self.served > 0 && !self.answered && self.began.elapsed() < STALE_WITHIN {
            STALE.set(true);
        }
        result
    }
}

/// Whether a failure on a connection is the server's close of it (an end of stream where data
/// was due, a reset, a write to a closed connection), as opposed to a timeout or anything else.
fn closed_by_peer(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::Io(err) => matches!(
            err.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

impl Link for Counted {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // Sending after an answer came starts the next request on this connection.
        if self.answered {
            self.served += 1;
            self.answered = false;
            self.began = Instant::now();
        }
        let result = self.inner.transmit_output(amount, timeout);
        self.track(result, false)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let result = self.inner.await_input(timeout);
        let ended = matches!(result, Ok(false));
        if matches!(result, Ok(true)) {
            self.answered = true;
        }
        self.track(result, ended)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_close_by_the_server_makes_a_pooled_connection_stale() {
        for kind in [
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
        ] {
            assert!(closed_by_peer(&ureq::Error::Io(kind.into())), "{kind:?}");
        }
        for not_closed in [
            ureq::Error::Timeout(ureq::Timeout::Global),
            ureq::Error::Io(io::ErrorKind::TimedOut.into()),
            ureq::Error::Io(io::ErrorKind::WouldBlock.into()),
            ureq::Error::Io(io::ErrorKind::InvalidData.into()),
            ureq::Error::ConnectionFailed,
        ] {
            assert!(!closed_by_peer(&not_closed), "{not_closed}");
        }
    }
}
