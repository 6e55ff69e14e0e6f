//! IRC benchmark (run by `bench/run.sh irc`): HTTP send -> PRIVMSG received by a person on
//! the server, on the embedded default (memory bus and store), one `irc` channel (no rate
//! limit, window 64) on a local ngircd (Debian package `ngircd`) with its flood penalties
//! off (`MaxPenaltyTime = 0`: by default ngircd holds a client to about one line a second
//! after a short burst, which would measure ngircd, not hornbill).
//!
//! `CLIENTS` keep-alive clients send `TOTAL` messages to the nick `sink`, a plain line
//! client on the same server; reports accepted msg/s (the API's answers) and end-to-end msg/s
//! (until `sink` has received every message), accept latency p50/p99, the CPU seconds of
//! hornbill, ngircd and this process, and hornbill's peak RSS; exit status 1 when a message
//! is missing or arrives twice.
//!
//! Environment: BENCH_TOTAL (default 20000), BENCH_CLIENTS (32), BENCH_LOG_PROTOCOL (0; 1
//! writes every line to the channel log).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

#[path = "common.rs"]
mod common;
use common::*;

/// ngircd on a free loopback port, in the foreground, with a config file of its own.
fn ngircd(dir: &std::path::Path) -> (Killed, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\nName = irc.bench.test\nInfo = hornbill bench\nAdminInfo1 = a\nAdminInfo2 = b\n\
             AdminEMail = nobody@example.com\nListen = 127.0.0.1\nPorts = {port}\nMotdPhrase = bench\n\
             [Limits]\nMaxConnectionsIP = 0\nMaxPenaltyTime = 0\n\
             [Options]\nPAM = no\nDNS = no\nIdent = no\n"
        ),
    )
    .unwrap();
    let child = Killed(
        Command::new("ngircd")
            .args(["-n", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ngircd (apt-get install ngircd)"),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "ngircd did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// The person messages go to: signs on as `sink`, answers PINGs, counts PRIVMSGs from the
/// bot. Returns once signed on.
async fn sink(port: u16, received: Arc<AtomicUsize>) {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (reader, mut writer) = stream.into_split();
    writer
        .write_all(b"NICK sink\r\nUSER sink 0 * :bench sink\r\n")
        .await
        .unwrap();
    let (welcomed_tx, welcomed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut welcomed_tx = Some(welcomed_tx);
        let mut lines = tokio::io::BufReader::with_capacity(1 << 16, reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with(":benchbot!") && line.contains(" PRIVMSG sink :") {
                received.fetch_add(1, Ordering::Relaxed);
            } else if let Some(arg) = line.strip_prefix("PING ") {
                let _ = writer.write_all(format!("PONG {arg}\r\n").as_bytes()).await;
            } else if line.contains(" 001 sink ")
                && let Some(tx) = welcomed_tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    welcomed.await.expect("sink signed on");
}

/// Waits (up to 20 s) until the channel's `irc` component is connected.
async fn wait_connected(http: &reqwest::Client, base: &str, cid: &str) {
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
        if ch["result"]["status"]["components"]["irc"]["type"] == "connected" {
            return;
        }
        assert!(Instant::now() < by, "the channel never connected: {ch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let total = env_usize("BENCH_TOTAL", 20_000);
    let clients = env_usize("BENCH_CLIENTS", 32).max(1);
    let log_protocol = env_usize("BENCH_LOG_PROTOCOL", 0) == 1;

    let hornbill = Hornbill::start(
        "irc",
        "[server]\nport = 0\n[public]\nenabled = false\n[log]\nlevel = \"warn\"\n",
    );
    let (irc, irc_port) = ngircd(&hornbill.dir);
    let (pid, base) = (hornbill.pid, hornbill.base.clone());
    let ngircd_pid = irc.0.id();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failed = rt.block_on(async move {
        let received = Arc::new(AtomicUsize::new(0));
        sink(irc_port, received.clone()).await;
        let http = reqwest::Client::new();
        let body = serde_json::json!({"type": "irc", "window": 64, "log_protocol": log_protocol,
            "mo_url": "http://127.0.0.1:9/mo",
            "config": {"network": "127.0.0.1", "port": irc_port, "nickname": "benchbot"}});
        let cid = create_channel(&http, &base, body).await;
        wait_connected(&http, &base, &cid).await;
        let path = format!("/channels/{cid}/messages/");
        let body = serde_json::json!({"to": "sink",
            "content": "bench message, about the size of a chat line"})
        .to_string();
        let host = base.strip_prefix("http://").unwrap_or(&base).to_string();
        let request = Arc::new(post_request(&host, &path, &body));

        let cpu_before = cpu_secs(pid);
        let irc_cpu_before = cpu_secs(ngircd_pid);
        let own_cpu_before = cpu_secs(std::process::id());
        let start = Instant::now();
        let (mut lat, errors) = lean_load(&host, request, clients, total).await;
        let accept_secs = start.elapsed().as_secs_f64();
        let accepted = lat.len();
        // Until every line is in, or none has come for 30 s.
        wait_count(|| received.load(Ordering::Relaxed), accepted).await;
        let e2e_secs = start.elapsed().as_secs_f64();
        let cpu_used = cpu_secs(pid) - cpu_before;
        let irc_cpu = cpu_secs(ngircd_pid) - irc_cpu_before;
        let own_cpu = cpu_secs(std::process::id()) - own_cpu_before;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = received.load(Ordering::Relaxed);
        lat.sort_unstable();
        let accept_rate = accepted as f64 / accept_secs;
        let e2e = got.min(accepted) as f64 / e2e_secs;
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        let rss = peak_rss_mb(pid);
        println!(
            "hornbill: HTTP -> PRIVMSG to a person on a local ngircd, no rate limit, window 64, {clients} keep-alive lean clients, {total} messages, log_protocol {}",
            if log_protocol { "on" } else { "off" }
        );
        println!("  accepted: {accepted} in {accept_secs:.2} s = {accept_rate:.0} msg/s ({errors} errors)");
        println!("  end-to-end: {got} PRIVMSGs received in {e2e_secs:.2} s = {e2e:.0} msg/s");
        println!(
            "  accept latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
            percentile(&lat, 1.0)
        );
        println!(
            "  CPU: hornbill {cpu_used:.2} s ({:.0} us per message), ngircd {irc_cpu:.2} s, load generator + sink {own_cpu:.2} s; all share the cores",
            cpu_used * 1e6 / got.max(1) as f64
        );
        println!("hornbill peak RSS: {rss:.1} MB");
        println!(
            "summary: e2e {e2e:.0} msg/s, accepted {accept_rate:.0} msg/s, p50 {p50:.2} ms, p99 {p99:.2} ms, peak RSS {rss:.0} MB, hornbill CPU {cpu_used:.2} s"
        );
        let mut failed = vec![];
        if errors > 0 {
            failed.push(format!("{errors} sends refused"));
        }
        if got < accepted {
            failed.push(format!("{} PRIVMSGs missing", accepted - got));
        }
        if got > accepted {
            failed.push(format!("{} PRIVMSGs twice", got - accepted));
        }
        failed
    });
    drop(irc);
    drop(hornbill);
    if !failed.is_empty() {
        eprintln!("FAILED: {}", failed.join("; "));
        std::process::exit(1);
    }
}
