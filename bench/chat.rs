//! Chat channels over HTTP (run by `bench/run.sh chat`): HTTP send -> the provider's send
//! request -> `submitted` event at event_url, on the embedded default, for each HTTP chat
//! type this build has (`whatsapp`, `twitter`, `telegram`), each against a lean local stub
//! that answers every request with the provider's documented success body.
//!
//! For each type: `CLIENTS` keep-alive clients send `TOTAL` messages to one channel (window
//! 64, no rate limit); reports accepted msg/s, end-to-end msg/s (until every `submitted`
//! event reached the receiver), the requests the stub got, and the CPU seconds of hornbill.
//! Exit status 1 when a type loses or duplicates a message.
//!
//! What it measures is hornbill's own cost per chat send (request building, OAuth signing
//! for `twitter`, the answer's parsing, events), not a provider's: the real APIs' limits
//! (WhatsApp's 80 msg/s per number by default, X's per-user DM limits, Telegram's 30 msg/s
//! per bot) are far below these figures, and hornbill holds a channel to its own
//! `rate_limit_count`/`rate_limit_window`.
//!
//! Environment: BENCH_TOTAL (default 20000), BENCH_CLIENTS (32), BENCH_TYPES (a comma list,
//! default all three).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common.rs"]
mod common;
use common::*;

/// Answers every request on `listener` with 200 and `body` (JSON), counting them.
async fn stub(listener: tokio::net::TcpListener, body: &'static str, hits: Arc<AtomicUsize>) {
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    let answer = Arc::new(answer);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (hits, answer) = (hits.clone(), answer.clone());
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            let mut chunk = vec![0u8; 16384];
            loop {
                let mut answers = 0;
                while let Some(end) = head_end(&buf) {
                    let length = content_length(&buf[..end]);
                    if buf.len() < end + length {
                        break;
                    }
                    buf.drain(..end + length);
                    answers += 1;
                }
                if answers > 0 {
                    hits.fetch_add(answers, Ordering::Relaxed);
                    if stream.write_all(&answer.repeat(answers)).await.is_err() {
                        return;
                    }
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
}

/// A type's channel config against the stub at `base`, its success body and a recipient.
fn setup(kind: &str, base: &str) -> (serde_json::Value, &'static str, &'static str) {
    use serde_json::json;
    match kind {
        "whatsapp" => (
            json!({"phone_number_id": "1234567890", "access_token": "bench-token",
                   "app_secret": "bench-secret", "verify_token": "bench-verify",
                   "base_url": base}),
            r#"{"messaging_product":"whatsapp","contacts":[{"input":"250788123456","wa_id":"250788123456"}],"messages":[{"id":"wamid.HBgMMjUwNzg4MTIzNDU2FQIAERgSQkVOQ0gA"}]}"#,
            "250788123456",
        ),
        "twitter" => (
            json!({"user_id": "3805104374", "api_key": "bench-key",
                   "api_key_secret": "bench-key-secret", "access_token": "3805104374-bench",
                   "access_token_secret": "bench-token-secret", "base_url": base}),
            r#"{"data":{"dm_conversation_id":"1582838223467-3805104374","dm_event_id":"1582838223467"}}"#,
            "1582838223467",
        ),
        "telegram" => (
            json!({"bot_token": "123456:bench-token", "api_url": base}),
            r#"{"ok":true,"result":{"message_id":42,"date":1765000000,"chat":{"id":123456789,"type":"private"}}}"#,
            "123456789",
        ),
        other => panic!("unknown type {other}"),
    }
}

fn main() {
    let total = env_usize("BENCH_TOTAL", 20_000);
    let clients = env_usize("BENCH_CLIENTS", 32).max(1);
    let types = std::env::var("BENCH_TYPES").unwrap_or("whatsapp,twitter,telegram".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut failed = false;
    for kind in types.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let hornbill = Hornbill::start(
            "chat",
            "[server]\nport = 0\n[public]\nport = 0\n[log]\nlevel = \"warn\"\n",
        );
        let (pid, base) = (hornbill.pid, hornbill.base.clone());
        failed |= rt.block_on(run(kind, pid, &base, total, clients));
    }
    if failed {
        std::process::exit(1);
    }
}

/// One type's run; true when a message was lost or duplicated.
async fn run(kind: &str, pid: u32, base: &str, total: usize, clients: usize) -> bool {
    let counts = Arc::new(Counts::default());
    let events = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let events_port = events.local_addr().unwrap().port();
    tokio::spawn(lean_receiver(events, counts.clone()));
    let provider = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stub_base = format!("http://{}", provider.local_addr().unwrap());
    let (config, answer, to) = setup(kind, &stub_base);
    let hits = Arc::new(AtomicUsize::new(0));
    tokio::spawn(stub(provider, answer, hits.clone()));
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/channels/"))
        .json(
            &serde_json::json!({"type": kind, "window": 64, "config": config,
            "mo_url": format!("http://127.0.0.1:{events_port}/mo")}),
        )
        .send()
        .await
        .unwrap();
    if created.status().as_u16() != 201 {
        println!(
            "{kind}: not in this build ({})",
            created.text().await.unwrap_or_default()
        );
        return false;
    }
    let channel: serde_json::Value = created.json().await.unwrap();
    let cid = channel["result"]["id"].as_str().unwrap().to_string();
    // Set-up requests (telegram's setWebhook) are the stub's first hits: wait for them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let setup_hits = hits.load(Ordering::Relaxed);
    let path = format!("/channels/{cid}/messages/");
    let body =
        serde_json::json!({"to": to, "content": "bench message, about the size of a chat line",
        "event_url": format!("http://127.0.0.1:{events_port}/ev")})
        .to_string();
    let host = base.strip_prefix("http://").unwrap_or(base).to_string();
    let request = Arc::new(post_request(&host, &path, &body));
    let cpu_before = cpu_secs(pid);
    let start = Instant::now();
    let (lat, errors) = lean_load(&host, request, clients, total).await;
    let accepted = lat.len();
    let accept_secs = start.elapsed().as_secs_f64();
    wait_count(|| counts.submitted.load(Ordering::Relaxed), accepted).await;
    let e2e_secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu_before;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let submitted = counts.submitted.load(Ordering::Relaxed);
    let sent = hits.load(Ordering::Relaxed) - setup_hits;
    let rss = peak_rss_mb(pid);
    println!(
        "{kind}: HTTP -> provider request -> submitted event, window 64, {clients} keep-alive clients, {total} messages"
    );
    println!(
        "  accepted: {accepted} in {accept_secs:.2} s = {:.0} msg/s ({errors} errors)",
        accepted as f64 / accept_secs
    );
    println!(
        "  end-to-end: {} submitted events in {e2e_secs:.2} s = {:.0} msg/s; the stub got {sent} send requests; hornbill CPU {cpu:.1} s ({:.0} us/msg), peak RSS {rss:.0} MB",
        submitted.min(accepted),
        submitted.min(accepted) as f64 / e2e_secs,
        1e6 * cpu / accepted.max(1) as f64
    );
    let ok = submitted == accepted && sent == accepted && counts.other.load(Ordering::Relaxed) == 0;
    if !ok {
        println!(
            "  MISMATCH: accepted {accepted}, submitted events {submitted}, other events {}, send requests {sent}",
            counts.other.load(Ordering::Relaxed)
        );
    }
    !ok
}
