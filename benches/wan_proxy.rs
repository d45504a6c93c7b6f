//! The test proxy's WAN relay as a command, for scripts such as `benches/tools.sh` that put
//! other programs (aws CLI, rclone, the `s3-syncr` command) behind it.
//!
//! ```sh
//! cargo bench --bench wan_proxy -- --upstream http://127.0.0.1:8333 [--rtt-ms 20] [--mbps 50] \
//!     [--handshake-rtts 2] [--no-slow-start]
//! ```
//!
//! The upstream may be `https://`: the relay passes TLS through, and its endpoint is then
//! `https://` too. Slow start is on unless `--no-slow-start` is given (see `Wan::slow_start`).
//!
//! It prints the relay's endpoint (`http://127.0.0.1:PORT`, a free port) on a line of its own,
//! then relays until it is killed. It is a `[[bench]]` so that it may use the test server crate
//! without the library depending on it; without `--upstream` (as when `cargo bench` runs every
//! bench) it only says what it is and exits.

use std::io::Write;
use std::time::Duration;

use s3_syncr_test_server::{Proxy, Wan};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter().position(|a| a == flag).map(|i| {
            args.get(i + 1)
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        })
    };
    let number = |flag: &str, default: u64| {
        value(flag).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
        })
    };
    let Some(upstream) = value("--upstream") else {
        eprintln!(
            "wan_proxy: a WAN relay for scripts; not a benchmark (give --upstream URL to run it)"
        );
        return;
    };
    let wan = Wan {
        rtt: Duration::from_millis(number("--rtt-ms", 20)),
        rate_bytes_per_sec: number("--mbps", 50) * 1_000_000,
        handshake_rtts: number("--handshake-rtts", 2) as u32,
        slow_start: !args.iter().any(|a| a == "--no-slow-start"),
    };
    let proxy = Proxy::start_wan(upstream, wan);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", proxy.endpoint()).expect("stdout");
    stdout.flush().expect("stdout");
    eprintln!("wan_proxy: {} -> {upstream}, {wan:?}", proxy.endpoint());
    loop {
        std::thread::park();
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "wan_proxy: {problem}\nusage: wan_proxy --upstream http(s)://IP:PORT [--rtt-ms 20] \
         [--mbps 50] [--handshake-rtts 2] [--no-slow-start]"
    );
    std::process::exit(2);
}
