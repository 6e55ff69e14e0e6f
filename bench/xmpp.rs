//! XMPP benchmark (run by `bench/run.sh xmpp`): HTTP send -> chat message through a local
//! Prosody (Debian's `prosody`, plaintext on loopback) -> received by a user's tokio-xmpp
//! client, on the embedded default (memory bus and store), one channel with a window of 64.
//!
//! `CLIENTS` keep-alive HTTP clients send `TOTAL` messages to `alice@localhost`; reports
//! accepted msg/s, end-to-end msg/s (until alice has every message, or none came for 30 s),
//! accept latency p50/p99, the CPU seconds of hornbill, Prosody and this process, and
//! hornbill's peak RSS; checks that alice got every message exactly once (exit status 1
//! otherwise). Prosody is one Lua process: it is the likely ceiling, and it shares the 2
//! cores with hornbill, the load generator and the receiving client.
//!
//! Environment: BENCH_TOTAL (default 20000), BENCH_CLIENTS (32), BENCH_LOG_PROTOCOL (0; 1
//! turns the channel's `log_protocol` on: every stanza written to the channel log).

use futures::StreamExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event, Stanza};

#[path = "common.rs"]
mod common;
use common::*;

const BOT_PW: &str = "bench-bot-pw";
const ALICE_PW: &str = "bench-alice-pw";

/// A Prosody on a free loopback port, its config and data under `dir`, with the bot's and
/// alice's accounts.
fn prosody(dir: &std::path::Path) -> (Killed, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    let config = format!(
        r#"run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}/certs"
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix"; "offline"; }}
modules_disabled = {{ "s2s" }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
log = {{ warn = "{d}/prosody.log" }}
VirtualHost "localhost"
"#
    );
    let path = dir.join("prosody.cfg.lua");
    std::fs::write(&path, config).unwrap();
    for (user, pw) in [("bot", BOT_PW), ("alice", ALICE_PW)] {
        let ok = Command::new("prosodyctl")
            .arg("--config")
            .arg(&path)
            .args(["register", user, "localhost", pw])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "prosodyctl register {user} (is prosody installed?)");
    }
    let child = Killed(
        Command::new("prosody")
            .arg("--config")
            .arg(&path)
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody"),
    );
    let by = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < by, "prosody did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// Alice's client: counts the chat messages she receives; set `online` once she is.
async fn alice(port: u16, got: Arc<AtomicUsize>, online: Arc<AtomicUsize>) {
    let mut client = Client::new_plaintext(
        Jid::new("alice@localhost/bench").unwrap(),
        ALICE_PW.to_string(),
        DnsConfig::addr(&format!("127.0.0.1:{port}")),
        Timeouts::tight(),
    );
    while let Some(event) = client.next().await {
        match event {
            Event::Online { .. } => {
                let _ = client.send_stanza(Presence::available().into()).await;
                online.store(1, Ordering::Relaxed);
            }
            Event::Stanza(Stanza::Message(m)) if !m.bodies.is_empty() => {
                got.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

fn main() {
    let total = env_usize("BENCH_TOTAL", 20_000);
    let clients = env_usize("BENCH_CLIENTS", 32).max(1);
    let log_protocol = env_usize("BENCH_LOG_PROTOCOL", 0) == 1;

    let hornbill = Hornbill::start(
        "xmpp",
        "[server]\nport = 0\n[public]\nenabled = false\n[log]\nlevel = \"warn\"\n",
    );
    let (server, port) = prosody(&hornbill.dir.join("prosody"));
    let prosody_pid = server.0.id();
    let (pid, base) = (hornbill.pid, hornbill.base.clone());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failed = rt.block_on(async move {
        let got = Arc::new(AtomicUsize::new(0));
        let online = Arc::new(AtomicUsize::new(0));
        tokio::spawn(alice(port, got.clone(), online.clone()));
        let http = reqwest::Client::new();
        let body = serde_json::json!({"type": "xmpp", "window": 64, "log_protocol": log_protocol,
            "mo_url": "http://127.0.0.1:9/mo",
            "config": {"host": "127.0.0.1", "port": port, "username": "bot@localhost",
                       "password": BOT_PW, "insecure_loopback": true}});
        let cid = create_channel(&http, &base, body).await;
        let by = Instant::now() + Duration::from_secs(20);
        loop {
            let ch: serde_json::Value = http
                .get(format!("{base}/channels/{cid}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let up = ch["result"]["status"]["components"]["xmpp"]["type"] == "connected";
            if up && online.load(Ordering::Relaxed) == 1 {
                break;
            }
            assert!(Instant::now() < by, "not connected: {ch}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let path = format!("/channels/{cid}/messages/");
        let body = serde_json::json!({"to": "alice@localhost",
            "content": "bench message, about the size of a chat line"})
        .to_string();
        let host = base.strip_prefix("http://").unwrap_or(&base).to_string();
        let request = Arc::new(post_request(&host, &path, &body));

        let cpu_before = cpu_secs(pid);
        let prosody_cpu_before = cpu_secs(prosody_pid);
        let own_cpu_before = cpu_secs(std::process::id());
        let start = Instant::now();
        let (mut lat, errors) = lean_load(&host, request, clients, total).await;
        let accept_secs = start.elapsed().as_secs_f64();
        let accepted = lat.len();
        wait_count(|| got.load(Ordering::Relaxed), accepted).await;
        let e2e_secs = start.elapsed().as_secs_f64();
        let cpu_used = cpu_secs(pid) - cpu_before;
        let prosody_cpu = cpu_secs(prosody_pid) - prosody_cpu_before;
        let own_cpu = cpu_secs(std::process::id()) - own_cpu_before;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let received = got.load(Ordering::Relaxed);
        lat.sort_unstable();
        println!(
            "hornbill: HTTP -> chat message via Prosody -> a user's client, window 64, {clients} keep-alive lean clients, {total} messages, log_protocol {}",
            if log_protocol { "on" } else { "off" }
        );
        let accept_rate = accepted as f64 / accept_secs;
        println!(
            "  accepted: {accepted} in {accept_secs:.2} s = {accept_rate:.0} msg/s ({errors} errors)"
        );
        let e2e = received.min(accepted) as f64 / e2e_secs;
        println!(
            "  end-to-end: {} messages received in {e2e_secs:.2} s = {e2e:.0} msg/s",
            received.min(accepted)
        );
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        println!(
            "  accept latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
            percentile(&lat, 1.0)
        );
        println!(
            "  CPU: hornbill {cpu_used:.2} s ({:.0} us per message), prosody {prosody_cpu:.2} s, load generator + receiving client {own_cpu:.2} s; all share the 2 cores",
            cpu_used * 1e6 / received.max(1) as f64
        );
        let rss = peak_rss_mb(pid);
        println!("hornbill peak RSS: {rss:.1} MB");
        println!(
            "summary: e2e {e2e:.0} msg/s, accepted {accept_rate:.0} msg/s, p50 {p50:.2} ms, p99 {p99:.2} ms, peak RSS {rss:.0} MB, hornbill CPU {cpu_used:.2} s, prosody CPU {prosody_cpu:.2} s"
        );
        let mut failed = vec![];
        if errors > 0 {
            failed.push(format!("{errors} sends refused"));
        }
        if received < accepted {
            failed.push(format!("{} messages never reached the user", accepted - received));
        }
        if received > accepted {
            failed.push(format!("{} duplicate messages", received - accepted));
        }
        failed
    });
    drop(hornbill);
    drop(server);
    if !failed.is_empty() {
        eprintln!("FAILED: {}", failed.join("; "));
        std::process::exit(1);
    }
}
