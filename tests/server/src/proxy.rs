//! A proxy on loopback between the client and a real server, in one of two modes.
//!
//! - [`Proxy::start`] injects faults, one request per connection: it reads a request whole, and
//!   either forwards it with `Connection: close` (the server's answer then ends the connection,
//!   so a client that keeps connections alive connects again for its next request) or breaks it
//!   as the next queued [`Fault`] says.
//! - [`Proxy::start_wan`] emulates a wide-area link ([`Wan`]): a byte relay, so keep-alive clients
//!   (aws CLI, rclone) and HTTPS work through it too, that delays, paces and streams each
//!   direction, with TCP's slow start.
//!
//! Both count the connections they accept ([`Proxy::connections`]): what a client that keeps
//! connections open saves shows there as a count, not only as a time.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use s3::Bucket;

use crate::Server;

/// One way to break a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and an S3 error body; the server never sees the request.
    Status(u16),
    /// Close the connection once the request head is read, before its body.
    ResetBeforeBody,
    /// Let the server apply the request, then close without answering.
    DropResponse,
    /// Let the server apply the request, answer with only this many bytes, then close.
    CutResponse(usize),
    /// Hold the request without answering for this long, then close; the server never sees it.
    Stall(Duration),
    /// Hold the request for this long, then pass it on as usual: a slow answer, not a failure.
    Delay(Duration),
    /// Hold the request until [`Proxy::release`] (at most 30 s), then pass it on as usual: a
    /// test orders what happens meanwhile without sleeping.
    Hold,
    /// Pass the request on with one bit of its body flipped (the lowest of its middle byte), as
    /// a link that corrupts what TCP's checksum misses would; a request without a body passes
    /// unchanged (the proxy reads a body by its `Content-Length`, never chunked). The server answers as it will: the in-process one (and S3) refuses a body
    /// that does not match its signed SHA-256 (`x-amz-content-sha256`) with
    /// `400 XAmzContentSHA256Mismatch`, or, when its payload is `UNSIGNED-PAYLOAD`, one that
    /// does not match its `Content-MD5` or `x-amz-checksum-*` with `400 BadDigest`; a server
    /// that checks none stores it corrupted.
    ///
    /// Not in [`Fault::ALL`]: the others each lose a request or its answer, which a client
    /// gets past by trying again; this one makes the server refuse the request with a client
    /// error, which only a client that knows the body may have been damaged on the way tries
    /// again.
    CorruptBody,
    /// Answer a ranged GET with the range one byte further on, as a proxy or cache that
    /// mixes up ranges would: its `Content-Range` says so truthfully, its body lacks the
    /// first byte asked for. Any other answer passes unchanged. Not in [`Fault::ALL`]: it
    /// fails a read (the bytes are not the ones asked for), which no retry is owed to mend.
    ShiftRange,
    /// Pass the request on, and the server's answer back with one bit of its body flipped
    /// (the lowest of its middle byte), as a link that corrupts what TCP's checksum misses
    /// would: the client gets a well-formed answer holding one wrong byte. An answer without a
    /// body passes unchanged. Only the server's answer is touched, so the bytes it stores are
    /// sound, and a client that fetches them again gets them right.
    ///
    /// Not in [`Fault::ALL`]: nothing but a checksum of the bytes tells this answer from a
    /// good one, so only a client that checks what it reads gets past it.
    CorruptAnswer,
}

impl Fault {
    /// Every kind of fault, with small parameters, but [`Fault::CorruptBody`],
    /// [`Fault::CorruptAnswer`] and [`Fault::ShiftRange`].
    pub const ALL: [Fault; 8] = [
        Fault::Status(409),
        Fault::Status(500),
        Fault::Status(503),
        Fault::Status(429),
        Fault::ResetBeforeBody,
        Fault::DropResponse,
        Fault::CutResponse(300),
        Fault::Stall(Duration::from_millis(1500)),
    ];
}

/// A wide-area link between client and server, as [`Proxy::start_wan`] emulates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wan {
    /// Round-trip time: each direction delays bytes by half of it.
    pub rtt: Duration,
    /// Most bytes per second one connection carries in each direction: one TCP stream's share
    /// of a real path, which is what a client that opens one connection per request gets.
    pub rate_bytes_per_sec: u64,
    /// Round trips a new connection costs before its first byte goes through: 1 for TCP's
    /// handshake, 1 more for TLS 1.3's.
    pub handshake_rtts: u32,
    /// Whether each direction starts slow, as TCP does ([`SLOW_START_WINDOW`] bytes in the first
    /// round trip, twice as many in each next one, until the window carries the rate), and
    /// starts slow again after it sent nothing for longer than max(`rtt`, 200 ms), as Linux
    /// does by default (`tcp_slow_start_after_idle`). Without it a connection carries the full
    /// rate from its first byte, which flatters clients that open many connections.
    pub slow_start: bool,
}

/// The bytes a new connection sends in its first round trip: 10 segments of 1460 bytes, the
/// initial window of RFC 6928 that Linux uses.
pub const SLOW_START_WINDOW: u64 = 10 * 1460;
/// The shortest idle time after which a direction starts slow again (Linux's minimum RTO).
const SLOW_START_IDLE: Duration = Duration::from_millis(200);

impl Default for Wan {
    /// 20 ms, 50 MB/s, 2 handshake round trips, slow start: an S3 region a few hundred km
    /// away, over TLS.
    fn default() -> Self {
        Wan {
            rtt: Duration::from_millis(20),
            rate_bytes_per_sec: 50_000_000,
            handshake_rtts: 2,
            slow_start: true,
        }
    }
}

struct State {
    upstream: SocketAddr,
    /// `Some` for a WAN relay, `None` for a fault proxy.
    wan: Option<Wan>,
    /// Faults still to inject, each on the next request whose method matches (any if `None`).
    faults: Mutex<VecDeque<(Option<String>, Fault)>>,
    injected: AtomicUsize,
    /// Connections accepted since the last [`Proxy::take_connections`].
    connections: AtomicUsize,
    /// Connections accepted in all, each numbered by this count when accepted.
    accepted: AtomicUsize,
    /// The relay's connections numbered below this are closed at their next request, without
    /// an answer: [`Proxy::close_idle_upstream`].
    closed_below: AtomicUsize,
    /// Connections being handled.
    active: AtomicUsize,
    /// Requests being held by [`Fault::Delay`], and the most held at once since the last
    /// [`Proxy::take_peak`]. A held request has not been answered, so requests that a client
    /// sends one after the other are never held at once, while parallel ones are.
    held: AtomicUsize,
    peak: AtomicUsize,
    /// Releases given by [`Proxy::release`] that no held request took yet.
    releases: Mutex<usize>,
    released: Condvar,
    /// Set by [`Proxy::sever`]: nothing more reaches the server.
    severed: AtomicBool,
    /// Set by [`Proxy::go_silent`]: the relay drops what clients send and answers nothing.
    silent: AtomicBool,
    /// The relay's connections that sent bytes while it was silent.
    silenced: AtomicUsize,
    stop: AtomicBool,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    endpoint: String,
    addr: SocketAddr,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a fault-injecting proxy in front of `server`.
    pub fn start(server: &Server) -> Proxy {
        Proxy::spawn(server.plain_endpoint(), None)
    }

    /// Starts a relay in front of `upstream` (`http://ip:port` or `https://ip:port`, e.g. a
    /// [`Server`]'s endpoint or SeaweedFS's) that makes it look as far away as `wan` says. Its
    /// [`Proxy::endpoint`] has the upstream's scheme: TLS passes through it unchanged.
    ///
    /// Bytes are relayed as they come, on any number of requests per connection, never
    /// buffered whole. Each direction is a delay line: a byte read from one side reaches the
    /// other `rtt / 2` later, and as many bytes are in flight as the rate allows. A new
    /// connection's first byte waits `handshake_rtts` round trips more. Each direction of each
    /// connection is paced to `rate_bytes_per_sec`, with a few milliseconds of credit so that a
    /// late wake-up does not cost throughput, and with [`Wan::slow_start`] its window limits
    /// it below that rate at first (and again after an idle time).
    /// Faults cannot be injected into it, but it can go silent ([`Proxy::go_silent`]).
    pub fn start_wan(upstream: &str, wan: Wan) -> Proxy {
        assert!(wan.rate_bytes_per_sec > 0, "a WAN link needs a rate");
        Proxy::spawn(upstream, Some(wan))
    }

    fn spawn(upstream: &str, wan: Option<Wan>) -> Proxy {
        let upstream = upstream.trim_end_matches('/');
        // The relay passes TLS through untouched: its endpoint has the upstream's scheme, and
        // a certificate for 127.0.0.1 still matches, the proxy being on loopback too.
        let (scheme, address) = match upstream.strip_prefix("https://") {
            Some(address) if wan.is_some() => ("https", address),
            Some(_) => panic!("the fault proxy reads requests: it needs a plain http:// upstream"),
            None => ("http", upstream.trim_start_matches("http://")),
        };
        let upstream = address
            .parse()
            .expect("the proxy needs an http://ip:port or (WAN relay) https://ip:port endpoint");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(State {
            upstream,
            wan,
            faults: Mutex::default(),
            injected: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            closed_below: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            releases: Mutex::new(0),
            released: Condvar::new(),
            severed: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            silenced: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let number = shared.accepted.fetch_add(1, Ordering::SeqCst);
                let state = shared.clone();
                state.active.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = match state.wan {
                        Some(wan) => relay(&state, wan, conn, number),
                        None => handle(&state, conn),
                    };
                    state.active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Proxy {
            endpoint: format!("{scheme}://{addr}"),
            addr,
            state,
            thread: Some(thread),
        }
    }

    /// The proxy's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Breaks the next request with this method (`"PUT"`, `"GET"`, ...; any if `None`).
    pub fn inject(&self, method: Option<&str>, fault: Fault) {
        assert!(
            self.state.wan.is_none(),
            "faults go through a proxy from Proxy::start, not a WAN relay"
        );
        let mut faults = self.state.faults.lock().expect("faults");
        faults.push_back((method.map(str::to_owned), fault));
    }

    /// How many requests are held by [`Fault::Delay`] or [`Fault::Hold`] right now.
    pub fn holding(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Waits (at most 30 s) until `n` requests are held, and says whether they are.
    pub fn wait_holding(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.holding() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.holding() >= n
    }

    /// Lets one request held by [`Fault::Hold`] go on (the next one to be held, if none is).
    pub fn release(&self) {
        *self.state.releases.lock().expect("releases") += 1;
        self.state.released.notify_all();
    }

    /// How many connections the proxy accepted so far: one per request for a client that
    /// opens a connection per request, far fewer for one that keeps them open.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// [`Proxy::connections`], counting from zero again afterwards: for the connections a
    /// test's one phase opened.
    pub fn take_connections(&self) -> usize {
        self.state.connections.swap(0, Ordering::SeqCst)
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// The most requests held by [`Fault::Delay`] at once since the last call: how many
    /// requests a client keeps under way in parallel.
    pub fn take_peak(&self) -> usize {
        self.state.peak.swap(0, Ordering::SeqCst)
    }

    /// Drops the faults not injected yet, and returns how many there were.
    pub fn clear(&self) -> usize {
        let mut faults = self.state.faults.lock().expect("faults");
        std::mem::take(&mut *faults).len()
    }

    /// Cuts the client off, as if its process died: requests already passed on may still land,
    /// but once this returns, none is under way and no later one reaches the server.
    pub fn sever(&self) {
        self.state.severed.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.state.active.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Makes every connection the relay holds now act as one the server closed while the client
    /// kept it for later, before the client noticed: the next bytes the client sends on it are
    /// dropped, and the connection is closed without an answer. Connections accepted later
    /// are not touched.
    pub fn close_idle_upstream(&self) {
        let accepted = self.state.accepted.load(Ordering::SeqCst);
        self.state.closed_below.store(accepted, Ordering::SeqCst);
    }

    /// Makes the relay a path that went silent: from now on what the client sends on any
    /// connection, kept open or new, is dropped, and nothing is answered or closed, so only the
    /// client's deadlines end its requests. [`Proxy::silenced`] counts them.
    pub fn go_silent(&self) {
        assert!(self.state.wan.is_some(), "only a relay goes silent");
        self.state.silent.store(true, Ordering::SeqCst);
    }

    /// The relay's connections that sent bytes since it went silent: each carried one request
    /// that went unanswered, as an HTTP/1.1 client sends the next request on a connection
    /// only after the answer to the last.
    pub fn silenced(&self) -> usize {
        self.state.silenced.load(Ordering::SeqCst)
    }

    /// A handle on `server`'s bucket `name` whose requests go through the proxy.
    pub fn bucket(&self, server: &Server, name: &str) -> Bucket {
        server.bucket_at(&self.endpoint, name)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(state: &State, mut client: TcpStream) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, mut body) = read_head(&mut client)?;
    let method = head.split(' ').next().unwrap_or_default().to_owned();
    let fault = {
        let mut faults = state.faults.lock().expect("faults");
        let index = faults
            .iter()
            .position(|(m, _)| m.as_deref().is_none_or(|m| m == method));
        index.and_then(|i| faults.remove(i)).map(|(_, fault)| fault)
    };
    if fault.is_some() {
        state.injected.fetch_add(1, Ordering::SeqCst);
    }
    if fault == Some(Fault::ResetBeforeBody) || state.severed.load(Ordering::SeqCst) {
        return client.shutdown(Shutdown::Both);
    }
    let length = content_length(&head);
    while body.len() < length {
        let mut buf = vec![0; (length - body.len()).min(64 * 1024)];
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&buf[..n]);
    }
    if fault == Some(Fault::CorruptBody) && !body.is_empty() {
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
    }
    match fault {
        Some(Fault::Status(status)) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code>\
                 <Message>injected by the test proxy</Message></Error>",
                match status {
                    503 => "SlowDown",
                    // S3's answer to a conditional write that met another one under way on the
                    // key: nothing was written, and the API reference says to send it again.
                    409 => "ConditionalRequestConflict",
                    412 => "PreconditionFailed",
                    _ => "InternalError",
                }
            );
            let response = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(response.as_bytes())
        }
        Some(Fault::Stall(duration)) => {
            std::thread::sleep(duration);
            client.shutdown(Shutdown::Both)
        }
        _ => {
            if let Some(Fault::Delay(_) | Fault::Hold) = fault {
                let held = state.held.fetch_add(1, Ordering::SeqCst) + 1;
                state.peak.fetch_max(held, Ordering::SeqCst);
                match fault {
                    Some(Fault::Delay(duration)) => std::thread::sleep(duration),
                    _ => {
                        let releases = state.releases.lock().expect("releases");
                        let timeout = Duration::from_secs(30);
                        let (mut releases, _) = (state.released)
                            .wait_timeout_while(releases, timeout, |n| *n == 0)
                            .expect("releases");
                        *releases = releases.saturating_sub(1);
                    }
                }
                state.held.fetch_sub(1, Ordering::SeqCst);
            }
            let mut server = TcpStream::connect(state.upstream)?;
            server.set_nodelay(true)?;
            // A server may answer before it has read the body (a failed condition: 412) and
            // close: what it answered still goes back to the client.
            let sent = server
                .write_all(with_connection_close(&head).as_bytes())
                .and_then(|()| server.write_all(&body));
            let mut response = Vec::new();
            let received = server.read_to_end(&mut response);
            if response.is_empty() {
                sent?;
                received?;
            }
            match fault {
                Some(Fault::DropResponse) => client.shutdown(Shutdown::Both),
                Some(Fault::ShiftRange) => client.write_all(&shift_range(response)),
                Some(Fault::CutResponse(n)) => {
                    client.write_all(&response[..n.min(response.len())])?;
                    client.shutdown(Shutdown::Both)
                }
                Some(Fault::CorruptAnswer) => {
                    flip_body(&mut response);
                    client.write_all(&response)
                }
                _ => client.write_all(&response),
            }
        }
    }
}

/// `response`, a 206 of bytes `a-b/total`, as the answer for bytes `a+1-b/total`; any other
/// answer unchanged.
fn shift_range(response: Vec<u8>) -> Vec<u8> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return response;
    };
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let body = &response[end + 4..];
    let mut shifted = false;
    let lines: Vec<String> = (head.lines())
        .map(|line| match line.split_once(':') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("content-range") => {
                let parsed = (value.trim().strip_prefix("bytes "))
                    .and_then(|range| range.split_once('-'))
                    .and_then(|(a, rest)| Some((a.parse::<u64>().ok()?, rest)));
                match parsed {
                    Some((a, rest)) if !body.is_empty() => {
                        shifted = true;
                        format!("{name}: bytes {}-{rest}", a + 1)
                    }
                    _ => line.to_owned(),
                }
            }
            Some((name, _)) if name.trim().eq_ignore_ascii_case("content-length") => {
                format!("{name}: {}", body.len().saturating_sub(1))
            }
            _ => line.to_owned(),
        })
        .collect();
    if !shifted {
        return response;
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&body[1..]);
    out
}

/// Flips the lowest bit of the middle byte of an HTTP answer's body, if it has one. The
/// server's answers to the requests this is for carry a `Content-Length`, so the middle byte
/// is one of the body's, never of a chunk's framing.
fn flip_body(response: &mut [u8]) {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let body = &mut response[end + 4..];
    if !body.is_empty() {
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
    }
}

/// Reads up to the end of the request head; returns the head and the body bytes read past it.
fn read_head(client: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0; 8192];
    loop {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), body));
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// The head with `Connection: close`, so that the server ends the connection after answering.
fn with_connection_close(head: &str) -> String {
    let mut out: String = head
        .trim_end()
        .lines()
        .filter(|line| {
            !line
                .split_once(':')
                .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("connection"))
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    out
}

/// Most bytes a relay reads in one go: at 50 MB/s, 1.3 ms of link time.
const RELAY_CHUNK: usize = 64 * 1024;
/// Link time a late relay thread may make up for (see `Direction::run`).
const RELAY_SLACK: Duration = Duration::from_millis(4);
/// How often a blocked relay thread looks at the stop flag.
const RELAY_POLL: Duration = Duration::from_millis(100);

/// Relays one WAN connection until both sides have closed it or the proxy stops.
fn relay(state: &Arc<State>, wan: Wan, client: TcpStream, number: usize) -> io::Result<()> {
    let accepted = Instant::now();
    let server = TcpStream::connect(state.upstream)?;
    for socket in [&client, &server] {
        socket.set_nodelay(true)?;
        // Blocked reads and writes wake up to see the stop flag.
        socket.set_read_timeout(Some(RELAY_POLL))?;
        socket.set_write_timeout(Some(RELAY_POLL))?;
    }
    let handshake = wan.rtt * wan.handshake_rtts;
    let up = Direction {
        from: client.try_clone()?,
        to: server.try_clone()?,
        link_free: accepted + handshake,
        window: wan.slow_start.then(|| SlowStart::new(wan)),
        number: Some(number),
    };
    let down = Direction {
        from: server,
        to: client,
        link_free: accepted,
        window: wan.slow_start.then(|| SlowStart::new(wan)),
        number: None,
    };
    let shared = state.clone();
    let up = std::thread::spawn(move || up.run(&shared, wan));
    down.run(state, wan);
    let _ = up.join();
    Ok(())
}

/// One direction of a WAN connection.
struct Direction {
    from: TcpStream,
    to: TcpStream,
    /// When the emulated link can start sending the next byte.
    link_free: Instant,
    /// The congestion window, with [`Wan::slow_start`].
    window: Option<SlowStart>,
    /// The connection's number, in the client-to-server direction only: the one that drops a
    /// request on a connection closed by [`Proxy::close_idle_upstream`].
    number: Option<usize>,
}

impl Direction {
    /// Reads `from` at the link's rate into a delay line that a second thread empties into `to`.
    fn run(mut self, state: &Arc<State>, wan: Wan) {
        let half = wan.rtt / 2;
        // The bytes a paced link holds in flight over rtt / 2 (and its credit), and room for
        // the chunks being read and written: less would cap the rate below the link's.
        let in_flight = wan.rate_bytes_per_sec as f64 * (half + RELAY_SLACK).as_secs_f64();
        let line = Arc::new(DelayLine::new(in_flight as usize + 2 * RELAY_CHUNK));
        let writer = {
            let (line, state) = (line.clone(), state.clone());
            let (from, to) = (self.from.try_clone(), self.to.try_clone());
            std::thread::spawn(move || {
                if let (Ok(from), Ok(to)) = (from, to) {
                    deliver(&line, &state, &from, to);
                }
                line.writer_gone();
            })
        };
        let mut buf = vec![0; RELAY_CHUNK];
        let mut silenced = false;
        let clean = loop {
            if state.stop.load(Ordering::SeqCst) {
                break false;
            }
            let n = match self.from.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => n,
                Err(e) if is_transient(&e) => continue,
                Err(_) => break false,
            };
            if self
                .number
                .is_some_and(|n| n < state.closed_below.load(Ordering::SeqCst))
            {
                let _ = self.from.shutdown(Shutdown::Both);
                let _ = self.to.shutdown(Shutdown::Both);
                break false;
            }
            // A silent path: the request reaches no server, and no answer or close comes back.
            if self.number.is_some() && state.silent.load(Ordering::SeqCst) {
                if !silenced {
                    silenced = true;
                    state.silenced.fetch_add(1, Ordering::SeqCst);
                }
                continue;
            }
            // A chunk larger than what the window still allows this round goes in pieces, the
            // rest a round trip later.
            let mut chunk = &buf[..n];
            let mut pushed = true;
            while pushed && !chunk.is_empty() {
                // A token bucket as deep as RELAY_SLACK: a reader that wakes up late may catch
                // up on the link time it missed, so scheduling jitter does not lower the rate.
                let now = Instant::now();
                let mut sent_from = self
                    .link_free
                    .max(now.checked_sub(RELAY_SLACK).unwrap_or(now));
                let mut len = chunk.len();
                if let Some(window) = &mut self.window {
                    (sent_from, len) = window.admit(sent_from, len);
                }
                self.link_free = sent_from + link_time(len, wan);
                // Never earlier than rtt / 2 after it was read, whatever the credit.
                let arrival = self.link_free.max(now) + half;
                pushed = line.push(arrival, chunk[..len].to_vec(), &state.stop);
                chunk = &chunk[len..];
                // Pacing the reads, not only the deliveries, holds the sender back as a full
                // link would: its writes block instead of landing in a queue here.
                sleep_until(self.link_free);
            }
            if !pushed {
                break false;
            }
        };
        line.close(self.link_free.max(Instant::now()) + half, clean);
        let _ = writer.join();
    }
}

/// How long the link takes to send `len` bytes at its rate.
fn link_time(len: usize, wan: Wan) -> Duration {
    Duration::from_secs_f64(len as f64 / wan.rate_bytes_per_sec as f64)
}

/// One direction's congestion window in slow start, by round trips: a round may send as many
/// bytes as the window holds, the next round begins a round trip after the one before it began
/// (when the acknowledgements of its first bytes are back), and the window grows by what the
/// last round sent (so doubles when it was full; an application that sends less grows it less,
/// as acknowledgements do). Once the window carries the rate over a round trip it no longer
/// limits; after an idle time it starts over.
#[derive(Debug, Clone)]
struct SlowStart {
    wan: Wan,
    window: u64,
    /// When the current round began, if one did since the last (re)start.
    round: Option<Instant>,
    /// Bytes sent in the current round.
    in_round: u64,
    /// When the link finished sending the last bytes admitted.
    last_end: Option<Instant>,
}

impl SlowStart {
    fn new(wan: Wan) -> SlowStart {
        SlowStart {
            wan,
            window: SLOW_START_WINDOW,
            round: None,
            in_round: 0,
            last_end: None,
        }
    }

    /// The window at which slow start ends: the bytes the rate carries in a round trip.
    fn full(&self) -> u64 {
        (self.wan.rate_bytes_per_sec as f64 * self.wan.rtt.as_secs_f64()) as u64
    }

    /// For `len` bytes the link could start sending at `at`: when it may start, and how many
    /// of them (at least 1) go in that round.
    fn admit(&mut self, at: Instant, len: usize) -> (Instant, usize) {
        let idle = self.wan.rtt.max(SLOW_START_IDLE);
        if self
            .last_end
            .is_some_and(|end| at.saturating_duration_since(end) > idle)
        {
            *self = SlowStart::new(self.wan);
        }
        let (start, len) = if self.window >= self.full() {
            (at, len)
        } else {
            let start = match self.round {
                Some(round) if self.in_round < self.window && at < round + self.wan.rtt => at,
                Some(round) => {
                    self.window += self.in_round;
                    self.in_round = 0;
                    let start = at.max(round + self.wan.rtt);
                    self.round = Some(start);
                    start
                }
                None => {
                    self.round = Some(at);
                    at
                }
            };
            let room = self.window.saturating_sub(self.in_round).max(1);
            let len = if self.window >= self.full() {
                len
            } else {
                len.min(usize::try_from(room).unwrap_or(usize::MAX))
            };
            self.in_round += len as u64;
            (start, len)
        };
        self.last_end = Some(start + link_time(len, self.wan));
        (start, len)
    }
}

/// Writes what comes out of `line` to `to`, each chunk at its time; returns when the line is
/// closed and drained, or either side fails, or the proxy stops.
fn deliver(line: &DelayLine, state: &State, from: &TcpStream, mut to: TcpStream) {
    let reset = |to: &TcpStream| {
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    };
    loop {
        match line.pop(&state.stop) {
            Some(Item::Data(at, chunk)) => {
                sleep_until(at);
                if write_all_or_stop(&mut to, &chunk, &state.stop).is_err() {
                    return reset(&to);
                }
            }
            // A clean end is passed on as a half-close: the other direction may still carry
            // an answer (a client that shuts down writing after its request).
            Some(Item::End(at, true)) => {
                sleep_until(at);
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Some(Item::End(at, false)) => {
                sleep_until(at);
                return reset(&to);
            }
            None => return reset(&to),
        }
    }
}

fn write_all_or_stop(to: &mut TcpStream, mut buf: &[u8], stop: &AtomicBool) -> io::Result<()> {
    while !buf.is_empty() {
        if stop.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        match to.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if is_transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A read or write timeout (the poll of the stop flag) or an interrupted call.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}

/// What comes out of a delay line.
enum Item {
    /// Bytes, to deliver at this time.
    Data(Instant, Vec<u8>),
    /// The end of the direction at this time: clean (EOF) if `true`, else an abort.
    End(Instant, bool),
}

/// A bounded queue of timed chunks: the reader blocks when it holds `capacity` bytes, so that
/// a receiver that stops reading stops the sender too.
struct DelayLine {
    inner: Mutex<LineState>,
    changed: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct LineState {
    queue: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
    end: Option<(Instant, bool)>,
    writer_gone: bool,
}

impl DelayLine {
    fn new(capacity: usize) -> DelayLine {
        DelayLine {
            inner: Mutex::default(),
            changed: Condvar::new(),
            capacity,
        }
    }

    /// Queues `chunk` for delivery at `at`; `false` if it will never be delivered.
    fn push(&self, at: Instant, chunk: Vec<u8>, stop: &AtomicBool) -> bool {
        let mut line = self.inner.lock().expect("delay line");
        while line.bytes >= self.capacity && !line.writer_gone && !stop.load(Ordering::SeqCst) {
            line = self.wait(line);
        }
        if line.writer_gone || stop.load(Ordering::SeqCst) {
            return false;
        }
        line.bytes += chunk.len();
        line.queue.push_back((at, chunk));
        self.changed.notify_all();
        true
    }

    /// The next item, or `None` once the proxy stops.
    fn pop(&self, stop: &AtomicBool) -> Option<Item> {
        let mut line = self.inner.lock().expect("delay line");
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some((at, chunk)) = line.queue.pop_front() {
                line.bytes -= chunk.len();
                self.changed.notify_all();
                return Some(Item::Data(at, chunk));
            }
            if let Some((at, clean)) = line.end {
                return Some(Item::End(at, clean));
            }
            line = self.wait(line);
        }
    }

    fn close(&self, at: Instant, clean: bool) {
        let mut line = self.inner.lock().expect("delay line");
        line.end = Some((at, clean));
        self.changed.notify_all();
    }

    fn writer_gone(&self) {
        let mut line = self.inner.lock().expect("delay line");
        line.writer_gone = true;
        self.changed.notify_all();
    }

    fn wait<'a>(&self, line: MutexGuard<'a, LineState>) -> MutexGuard<'a, LineState> {
        self.changed
            .wait_timeout(line, RELAY_POLL)
            .expect("delay line")
            .0
    }
}

#[cfg(test)]
mod tests {
    //! Timing bounds here are lower bounds only: a loaded machine can only make things slower.

    use super::*;

    /// A writer that notes when the first byte came.
    struct FirstByte {
        at: Option<Instant>,
        bytes: Vec<u8>,
    }

    impl Write for FirstByte {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.at.get_or_insert_with(Instant::now);
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn wan_delays_the_first_byte_and_caps_the_rate() {
        let server = Server::start();
        let bucket = server.new_bucket();
        let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
        bucket.put_object("big", &data).expect("put");
        bucket.put_object("small", b"x").expect("put");
        let wan = Wan {
            rtt: Duration::from_millis(50),
            rate_bytes_per_sec: 20_000_000,
            ..Wan::default()
        };
        let proxy = Proxy::start_wan(server.endpoint(), wan);
        let far = proxy.bucket(&server, bucket.name().as_str());

        let mut small = FirstByte {
            at: None,
            bytes: Vec::new(),
        };
        let started = Instant::now();
        far.get_object_to_writer("small", &mut small).expect("get");
        let first_byte = small.at.expect("a body") - started;
        assert_eq!(small.bytes, b"x");
        // The handshakes, then the request's way there and the answer's way back.
        assert!(
            first_byte >= wan.rtt * (wan.handshake_rtts + 1),
            "first byte after {first_byte:?}"
        );

        let mut big = Vec::new();
        let started = Instant::now();
        far.get_object_to_writer("big", &mut big).expect("get");
        let elapsed = started.elapsed();
        assert!(big == data, "the body came through changed");
        let at_rate = Duration::from_secs_f64(data.len() as f64 / 20e6);
        assert!(elapsed >= at_rate, "4 MiB at 20 MB/s in {elapsed:?}");
    }

    /// The relay carries any bytes, many exchanges per connection, and passes a half-close on.
    #[test]
    fn wan_relays_a_kept_alive_connection_and_stops_when_dropped() {
        let echo = TcpListener::bind("127.0.0.1:0").expect("bind");
        let upstream = echo.local_addr().expect("address");
        std::thread::spawn(move || {
            let (mut socket, _) = echo.accept().expect("accept");
            let mut reader = socket.try_clone().expect("clone");
            let _ = io::copy(&mut reader, &mut socket);
            let _ = socket.shutdown(Shutdown::Write);
        });
        let wan = Wan {
            rtt: Duration::from_millis(40),
            rate_bytes_per_sec: 10_000_000,
            ..Wan::default()
        };
        let proxy = Proxy::start_wan(&format!("http://{upstream}"), wan);
        let mut conn = TcpStream::connect(proxy.addr).expect("connect");
        for (round, at_least) in [(1, wan.rtt * 3), (2, wan.rtt)] {
            let started = Instant::now();
            conn.write_all(b"ping").expect("write");
            let mut answer = [0; 4];
            conn.read_exact(&mut answer).expect("read");
            let elapsed = started.elapsed();
            assert_eq!(&answer, b"ping");
            assert!(elapsed >= at_least, "round {round} took {elapsed:?}");
        }
        conn.shutdown(Shutdown::Write).expect("half-close");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).expect("the end comes through");
        assert!(rest.is_empty());

        let addr = proxy.addr;
        drop(proxy);
        assert!(TcpStream::connect(addr).is_err(), "the proxy still listens");
    }

    /// Both kinds of proxy count the connections they accept.
    #[test]
    fn proxies_count_connections() {
        let server = Server::start();
        let bucket = server.new_bucket();
        let proxy = Proxy::start(&server);
        let near = proxy.bucket(&server, bucket.name().as_str());
        // rust-s3's blocking client opens a connection per request.
        near.put_object("k", b"v").expect("put");
        near.get_object("k").expect("get");
        near.head_object("k").expect("head");
        assert_eq!(proxy.take_connections(), 3);
        assert_eq!(proxy.connections(), 0);
        near.get_object("k").expect("get");
        assert_eq!(proxy.connections(), 1);

        let wan = Wan {
            rtt: Duration::from_millis(2),
            ..Wan::default()
        };
        let relay = Proxy::start_wan(server.endpoint(), wan);
        let far = relay.bucket(&server, bucket.name().as_str());
        far.get_object("k").expect("get");
        far.get_object("k").expect("get");
        assert_eq!(relay.connections(), 2);
    }

    /// The start times `SlowStart` gives a sender that always has `total` bytes ready, in
    /// `chunk`-byte reads, from `t0` on: (start of each piece, its length).
    fn send(
        window: &mut SlowStart,
        t0: Instant,
        total: usize,
        chunk: usize,
    ) -> Vec<(Instant, usize)> {
        let mut pieces = Vec::new();
        let mut link_free = t0;
        let mut left = total;
        while left > 0 {
            let mut want = chunk.min(left);
            while want > 0 {
                let (start, len) = window.admit(link_free, want);
                assert!(start >= link_free && len >= 1 && len <= want);
                link_free = start + link_time(len, window.wan);
                pieces.push((start, len));
                want -= len;
                left -= len;
            }
        }
        pieces
    }

    /// The round each piece started in, counted in round trips from `t0`.
    fn rounds(pieces: &[(Instant, usize)], t0: Instant, rtt: Duration) -> Vec<(u32, usize)> {
        let mut out: Vec<(u32, usize)> = Vec::new();
        for &(start, len) in pieces {
            let round = ((start - t0).as_nanos() / rtt.as_nanos()) as u32;
            match out.last_mut() {
                Some((r, bytes)) if *r == round => *bytes += len,
                _ => out.push((round, len)),
            }
        }
        out
    }

    #[test]
    fn slow_start_doubles_the_window_each_round_trip_up_to_the_rate() {
        let wan = Wan::default(); // 20 ms, 50 MB/s: slow start ends at a 1 MB window
        let t0 = Instant::now();
        let mut window = SlowStart::new(wan);
        let pieces = send(&mut window, t0, 4 << 20, RELAY_CHUNK);
        let by_round = rounds(&pieces, t0, wan.rtt);
        let w = SLOW_START_WINDOW as usize;
        assert_eq!(
            &by_round[..6],
            &[
                (0, w),
                (1, 2 * w),
                (2, 4 * w),
                (3, 8 * w),
                (4, 16 * w),
                (5, 32 * w)
            ]
        );
        // The seventh window (934,400 bytes) is below the 1 MB a round trip carries; the
        // eighth is not, and from then on the rate alone paces the link.
        assert_eq!(by_round[6], (6, 64 * w));
        assert!(window.window >= window.full());
        let last = pieces.last().expect("pieces");
        let end = last.0 + link_time(last.1, wan) - t0;
        let sent_in_rounds = 127 * w;
        let at_rate = link_time((4 << 20) - sent_in_rounds, wan);
        assert!(
            end >= wan.rtt * 7 + at_rate - Duration::from_millis(1),
            "{end:?}"
        );
        assert!(
            end <= wan.rtt * 7 + at_rate + Duration::from_millis(1),
            "{end:?}"
        );
    }

    #[test]
    fn slow_start_starts_over_after_an_idle_time_only() {
        let wan = Wan::default();
        let w = SLOW_START_WINDOW as usize;
        let t0 = Instant::now();
        let mut window = SlowStart::new(wan);
        let pieces = send(&mut window, t0, 4 << 20, RELAY_CHUNK);
        let last = pieces.last().expect("pieces");
        let end = last.0 + link_time(last.1, wan);

        // 150 ms of silence is less than max(20 ms, 200 ms): the window stays open.
        let t1 = end + Duration::from_millis(150);
        let again = send(&mut window.clone(), t1, 1 << 20, RELAY_CHUNK);
        let last = again.last().expect("pieces");
        let took = last.0 + link_time(last.1, wan) - t1;
        assert!(
            took <= link_time(1 << 20, wan) + Duration::from_millis(1),
            "{took:?}"
        );

        // 250 ms is more: one window in the first round trip again.
        let t2 = end + Duration::from_millis(250);
        let restarted = send(&mut window, t2, 1 << 20, RELAY_CHUNK);
        assert_eq!(rounds(&restarted, t2, wan.rtt)[..2], [(0, w), (1, 2 * w)]);
    }

    /// An application that sends less than the window grows it by what it sent, not twofold.
    #[test]
    fn slow_start_grows_by_what_was_sent() {
        let wan = Wan::default();
        let t0 = Instant::now();
        let mut window = SlowStart::new(wan);
        assert_eq!(window.admit(t0, 1000), (t0, 1000));
        let t1 = t0 + wan.rtt + Duration::from_millis(5);
        assert_eq!(
            window.admit(t1, 100_000),
            (t1, SLOW_START_WINDOW as usize + 1000)
        );
    }
}
