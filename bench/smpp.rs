//! SMPP benchmark (run by `bench/run.sh smpp`): HTTP -> submit_sm -> submit_sm_resp ->
//! `submitted` event at event_url, on the embedded default (memory bus and store), one
//! transceiver bind with a window of 64, against the repository's SMSC simulator
//! (`tests/peers/smsc`, on the npm `smpp` package; `SMSC_RECORD=0`, receipts without delay).
//!
//! 1. the simulator's own ceiling: its `load.js` (one bind, window 64, `TOTAL` submit_sm),
//!    after a 5,000-message warm-up;
//! 2. hornbill: `CLIENTS` keep-alive clients send `TOTAL` messages; reports accepted msg/s,
//!    end-to-end msg/s (until every `submitted` event reached the event_url receiver),
//!    accept latency p50/p99, the CPU seconds of hornbill, the simulator and this process,
//!    and hornbill's peak RSS; checks that the simulator accepted every message exactly once
//!    and that each message got exactly one `submitted` event (exit status 1 otherwise).
//!
//! The load generator and the event receiver share the 2 cores with hornbill and the
//! simulator, so by default they are lean: each client writes a prepared HTTP/1.1 request on
//! its own keep-alive connection and reads the response (status line, Content-Length); the
//! receiver reads each POST (Content-Length) and answers 200. `BENCH_HTTP=reqwest` uses
//! reqwest clients and an actix-web receiver instead (as bench/api.rs does), which cost this
//! process about twice the CPU per message.
//!
//! Environment: BENCH_TOTAL (default 100000), BENCH_CLIENTS (64), BENCH_RECEIPTS (0; 1 asks
//! for delivery receipts too, and waits for their events as well), BENCH_HTTP (`lean` or
//! `reqwest`), BENCH_LOG_PROTOCOL (0; 1 turns the channel's `log_protocol` on: every PDU
//! written to the channel log).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;
use common::*;

/// `node load.js PORT N 64`: its JSON line's rate.
fn load_js(port: u16, n: usize) -> f64 {
    let out = Command::new("node")
        .arg(smsc_dir().join("load.js"))
        .args([port.to_string(), n.to_string(), "64".to_string()])
        .output()
        .expect("node load.js");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "load.js said: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["failed"], 0, "load.js: {v}");
    v["rate"].as_f64().unwrap_or(0.0)
}

/// The actix-web event_url receiver (`BENCH_HTTP=reqwest`), on its own thread.
fn actix_receiver(listener: std::net::TcpListener, counts: Arc<Counts>) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let counts = counts.clone();
                App::new().default_service(web::to(move |body: web::Bytes| {
                    counts.count(&body);
                    async { HttpResponse::Ok().finish() }
                }))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
}

/// One reqwest client (`BENCH_HTTP=reqwest`), as in bench/api.rs.
async fn reqwest_client(
    http: reqwest::Client,
    url: String,
    body: String,
    next: Arc<AtomicUsize>,
    total: usize,
) -> (Vec<u64>, usize) {
    let mut lat = Vec::new();
    let mut errors = 0usize;
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let t = Instant::now();
        match http.post(&url).body(body.clone()).send().await {
            Ok(r) if r.status().as_u16() == 201 => {
                let _ = r.bytes().await;
                lat.push(t.elapsed().as_micros() as u64);
            }
            _ => errors += 1,
        }
    }
    (lat, errors)
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken from the command line.
    let total = env_usize("BENCH_TOTAL", 100_000);
    let clients = env_usize("BENCH_CLIENTS", 64).max(1);
    let receipts = env_usize("BENCH_RECEIPTS", 0) == 1;
    let log_protocol = env_usize("BENCH_LOG_PROTOCOL", 0) == 1;
    let lean = std::env::var("BENCH_HTTP").map_or(true, |v| v != "reqwest");

    let smsc = Smsc::start(0);
    let (smsc_pid, smpp_port) = (smsc.pid, smsc.port);

    // 1. The simulator's own ceiling, warmed up first.
    load_js(smpp_port, 5_000);
    let ceiling = load_js(smpp_port, total);
    println!(
        "simulator ceiling (load.js, one bind, window 64, {total} submit_sm): {ceiling:.0} msg/s"
    );

    // 2. hornbill on the embedded default.
    let hornbill = Hornbill::start(
        "smpp",
        "[server]\nport = 0\n[public]\nenabled = false\n[log]\nlevel = \"warn\"\n",
    );
    let (pid, base) = (hornbill.pid, hornbill.base.clone());
    let counts = Arc::new(Counts::default());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = &smsc;
    let failed = rt.block_on(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let events_port = listener.local_addr().unwrap().port();
        if lean {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tokio::spawn(lean_receiver(listener, counts.clone()));
        } else {
            actix_receiver(listener, counts.clone());
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients * 2)
            .build()
            .unwrap();
        let body = serde_json::json!({"type": "smpp", "window": 64, "log_protocol": log_protocol,
            "mo_url": format!("http://127.0.0.1:{events_port}/mo"),
            "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{smpp_port}"),
                       "system_id": "bench", "registered_delivery": receipts}});
        let cid = create_channel(&http, &base, body).await;
        wait_bound(&http, &base, &cid).await;
        let before = sim.stats(&http).await["accepted"]
            .as_u64()
            .unwrap_or(0);
        let path = format!("/channels/{cid}/messages/");
        let body = serde_json::json!({"to": "27820000001", "from": "12345",
            "content": "bench message, about the size of an SMS",
            "event_url": format!("http://127.0.0.1:{events_port}/ev")})
        .to_string();
        let host = base.strip_prefix("http://").unwrap_or(&base).to_string();
        let request = Arc::new(post_request(&host, &path, &body));

        let next = Arc::new(AtomicUsize::new(0));
        let cpu_before = cpu_secs(pid);
        let smsc_cpu_before = cpu_secs(smsc_pid);
        let own_cpu_before = cpu_secs(std::process::id());
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let next = next.clone();
            tasks.push(if lean {
                tokio::spawn(lean_client(host.clone(), request.clone(), next, total))
            } else {
                let url = format!("{base}{path}");
                tokio::spawn(reqwest_client(http.clone(), url, body.clone(), next, total))
            });
        }
        let mut lat = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            lat.extend(l);
            errors += e;
        }
        let accept_secs = start.elapsed().as_secs_f64();
        let accepted = lat.len();
        // Until every event is in, or none has come for 30 s.
        let seen = |c: &Counts| {
            c.submitted.load(Ordering::Relaxed) + c.delivery.load(Ordering::Relaxed)
        };
        let done = |c: &Counts| {
            c.submitted.load(Ordering::Relaxed) >= accepted
                && (!receipts || c.delivery.load(Ordering::Relaxed) >= accepted)
        };
        let (mut last, mut last_at) = (seen(&counts), Instant::now());
        while !done(&counts) && last_at.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if seen(&counts) != last {
                (last, last_at) = (seen(&counts), Instant::now());
            }
        }
        let e2e_secs = start.elapsed().as_secs_f64();
        let cpu_used = cpu_secs(pid) - cpu_before;
        let smsc_cpu = cpu_secs(smsc_pid) - smsc_cpu_before;
        let own_cpu = cpu_secs(std::process::id()) - own_cpu_before;
        let got = counts.submitted.load(Ordering::Relaxed).min(accepted);
        // Late duplicates: events or submit_sm beyond one per message.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let extra_events = counts
            .submitted
            .load(Ordering::Relaxed)
            .saturating_sub(accepted);
        let after = sim.stats(&http).await;
        let at_smsc = after["accepted"].as_u64().unwrap_or(0).saturating_sub(before);
        lat.sort_unstable();
        println!(
            "hornbill: HTTP -> submit_sm -> submitted event, one bind, window 64, {clients} keep-alive {} clients, {total} messages, receipts {}",
            if lean { "lean" } else { "reqwest" },
            if receipts { "on" } else { "off" }
        );
        let accept_rate = accepted as f64 / accept_secs;
        println!(
            "  accepted: {accepted} in {accept_secs:.2} s = {accept_rate:.0} msg/s ({errors} errors)"
        );
        let e2e = got as f64 / e2e_secs;
        println!(
            "  end-to-end: {got} submitted events{} in {e2e_secs:.2} s = {e2e:.0} msg/s ({:.0} % of the simulator's ceiling)",
            if receipts { " and their delivery reports" } else { "" },
            100.0 * e2e / ceiling
        );
        if receipts {
            println!(
                "  delivery reports: {}",
                counts.delivery.load(Ordering::Relaxed)
            );
        }
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        println!(
            "  accept latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
            percentile(&lat, 1.0)
        );
        println!(
            "  CPU: hornbill {cpu_used:.2} s ({:.0} us per message), simulator {smsc_cpu:.2} s, load generator + event receiver {own_cpu:.2} s; all share the 2 cores",
            cpu_used * 1e6 / got.max(1) as f64
        );
        println!(
            "  the simulator accepted {at_smsc} submit_sm for {accepted} messages ({} duplicates); {extra_events} duplicate submitted events; {} other events",
            at_smsc.saturating_sub(accepted as u64),
            counts.other.load(Ordering::Relaxed)
        );
        let rss = peak_rss_mb(pid);
        println!("hornbill peak RSS: {rss:.1} MB");
        println!(
            "summary: e2e {e2e:.0} msg/s, accepted {accept_rate:.0} msg/s, p50 {p50:.2} ms, p99 {p99:.2} ms, peak RSS {rss:.0} MB, hornbill CPU {cpu_used:.2} s, load.js ceiling {ceiling:.0} msg/s"
        );
        let mut failed = vec![];
        if errors > 0 {
            failed.push(format!("{errors} sends refused"));
        }
        if got < accepted {
            failed.push(format!("{} submitted events missing", accepted - got));
        }
        if extra_events > 0 {
            failed.push(format!("{extra_events} duplicate submitted events"));
        }
        if at_smsc != accepted as u64 {
            failed.push(format!(
                "the simulator accepted {at_smsc} submit_sm for {accepted} messages"
            ));
        }
        failed
    });
    drop(hornbill);
    drop(smsc);
    if !failed.is_empty() {
        eprintln!("FAILED: {}", failed.join("; "));
        std::process::exit(1);
    }
}
