//! A fault-injecting HTTP proxy on loopback, between the client and a real server.
//!
//! rust-s3's blocking client opens one connection per request, so the proxy handles each
//! connection as one request: it reads it whole, and either forwards it (with `Connection:
//! close`, so the server's answer ends with the connection) or breaks it as the next queued
//! [`Fault`] says.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
}

impl Fault {
    /// Every kind of fault, with small parameters.
    pub const ALL: [Fault; 7] = [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Status(429),
        Fault::ResetBeforeBody,
        Fault::DropResponse,
        Fault::CutResponse(300),
        Fault::Stall(Duration::from_millis(1500)),
    ];
}

struct State {
    upstream: SocketAddr,
    /// Faults still to inject, each on the next request whose method matches (any if `None`).
    faults: Mutex<VecDeque<(Option<String>, Fault)>>,
    injected: AtomicUsize,
    /// Connections being handled.
    active: AtomicUsize,
    /// Requests being held by [`Fault::Delay`], and the most held at once since the last
    /// [`Proxy::take_peak`]. A held request has not been answered, so requests that a client
    /// sends one after the other are never held at once, while parallel ones are.
    held: AtomicUsize,
    peak: AtomicUsize,
    /// Set by [`Proxy::sever`]: nothing more reaches the server.
    severed: AtomicBool,
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
    /// Starts a proxy in front of `server`.
    pub fn start(server: &Server) -> Proxy {
        let upstream = server
            .endpoint()
            .trim_start_matches("http://")
            .parse()
            .expect("the proxy needs a plain http://ip:port endpoint");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(State {
            upstream,
            faults: Mutex::default(),
            injected: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            severed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = shared.clone();
                state.active.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = handle(&state, conn);
                    state.active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Proxy {
            endpoint: format!("http://{addr}"),
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
        let mut faults = self.state.faults.lock().expect("faults");
        faults.push_back((method.map(str::to_owned), fault));
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
    match fault {
        Some(Fault::Status(status)) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code>\
                 <Message>injected by the test proxy</Message></Error>",
                if status == 503 {
                    "SlowDown"
                } else {
                    "InternalError"
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
            if let Some(Fault::Delay(duration)) = fault {
                let held = state.held.fetch_add(1, Ordering::SeqCst) + 1;
                state.peak.fetch_max(held, Ordering::SeqCst);
                std::thread::sleep(duration);
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
                Some(Fault::CutResponse(n)) => {
                    client.write_all(&response[..n.min(response.len())])?;
                    client.shutdown(Shutdown::Both)
                }
                _ => client.write_all(&response),
            }
        }
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
