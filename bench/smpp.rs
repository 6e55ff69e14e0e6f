//! SMPP benchmark (run by `bench/run.sh smpp`): HTTP -> submit_sm -> submit_sm_resp ->
//! `submitted` event at event_url, on the embedded default, one transceiver bind with a
//! window of 64, against the SMSC simulator (`../shared/peers/smsc`, `SMSC_RECORD=0`).
//!
//! 1. the simulator's own ceiling: its `load.js` (one bind, window 64), after a warm-up;
//! 2. hornbill: `CLIENTS` keep-alive clients send `TOTAL` messages; reports accepted msg/s,
//!    end-to-end msg/s (until every `submitted` event reached the event_url receiver),
//!    accept latency p50/p99, the server's CPU seconds and peak RSS, and checks that the
//!    simulator accepted every message exactly once (the bench fails otherwise).
//!
//! Environment: BENCH_TOTAL (default 100000), BENCH_CLIENTS (64), BENCH_RECEIPTS (0; 1 asks
//! for delivery receipts too, and waits for their events as well).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn smsc_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/smsc")
}

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

/// Counts the events POSTed to it: `submitted`, and `delivery_*`.
fn event_receiver(submitted: Arc<AtomicUsize>, delivered: Arc<AtomicUsize>) -> u16 {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                let (s, d) = (submitted.clone(), delivered.clone());
                App::new().default_service(web::to(move |body: web::Bytes| {
                    let (s, d) = (s.clone(), d.clone());
                    async move {
                        let has = |w: &[u8]| body.windows(w.len()).any(|x| x == w);
                        if has(b"\"event_type\":\"submitted\"") {
                            s.fetch_add(1, Ordering::Relaxed);
                        } else if has(b"\"event_type\":\"delivery_") {
                            d.fetch_add(1, Ordering::Relaxed);
                        }
                        HttpResponse::Ok().finish()
                    }
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
    port
}

fn main() {
    let total = env_usize("BENCH_TOTAL", 100_000);
    let clients = env_usize("BENCH_CLIENTS", 64);
    let receipts = env_usize("BENCH_RECEIPTS", 0) == 1;

    let ok = Command::new(smsc_dir().join("setup"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the SMSC simulator's setup failed (node and npm are needed)"
    );
    let mut smsc = Command::new("node")
        .arg(smsc_dir().join("smsc.js"))
        .args(["--port", "0", "--control-port", "0", "--dlr-delay-ms", "0"])
        .env("SMSC_RECORD", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node smsc.js");
    let smsc_pid = smsc.id();
    let mut line = String::new();
    BufReader::new(smsc.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .to_string()
    };
    let smpp_port: u16 = field("smpp=").rsplit(':').next().unwrap().parse().unwrap();
    let control = format!("http://{}", field("control="));

    // 1. The simulator's own ceiling, warmed up first.
    load_js(smpp_port, 5_000);
    let ceiling = load_js(smpp_port, total);
    println!(
        "simulator ceiling (load.js, one bind, window 64, {total} submit_sm): {ceiling:.0} msg/s"
    );

    // 2. hornbill.
    let dir = std::env::temp_dir().join(format!("hornbill-bench-smpp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "[server]\nport = 0\n[log]\nlevel = \"warn\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hornbill"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start hornbill");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("hornbill listening on ")
        .expect("listening line")
        .to_string();
    let submitted = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let events_port = event_receiver(submitted.clone(), delivered.clone());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failed = rt.block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients * 2)
            .build()
            .unwrap();
        let created: serde_json::Value = http
            .post(format!("{base}/channels/"))
            .body(
                serde_json::json!({"type": "smpp", "window": 64,
                    "mo_url": format!("http://127.0.0.1:{events_port}/mo"),
                    "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{smpp_port}"),
                               "system_id": "bench", "registered_delivery": receipts}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cid = created["result"]["id"].as_str().unwrap().to_string();
        let bound_by = Instant::now() + Duration::from_secs(20);
        loop {
            let ch: serde_json::Value = http
                .get(format!("{base}/channels/{cid}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if ch["result"]["status"]["components"]["smpp"]["type"] == "bound" {
                break;
            }
            assert!(Instant::now() < bound_by, "the channel never bound: {ch}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let stats = |http: reqwest::Client, control: String| async move {
            http.get(format!("{control}/stats"))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        };
        let before = stats(http.clone(), control.clone()).await["accepted"]
            .as_u64()
            .unwrap_or(0);
        let url = format!("{base}/channels/{cid}/messages/");
        let body = serde_json::json!({"to": "27820000001", "from": "12345",
            "content": "bench message, about the size of an SMS",
            "event_url": format!("http://127.0.0.1:{events_port}/ev")})
        .to_string();
        let next = Arc::new(AtomicUsize::new(0));
        let cpu_before = cpu_secs(pid);
        let smsc_cpu_before = cpu_secs(smsc_pid);
        let own_cpu_before = cpu_secs(std::process::id());
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (http, url, body, next) = (http.clone(), url.clone(), body.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
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
            }));
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
        let deadline = Instant::now() + Duration::from_secs(600);
        let done = |s: &AtomicUsize, d: &AtomicUsize| {
            s.load(Ordering::Relaxed) >= accepted
                && (!receipts || d.load(Ordering::Relaxed) >= accepted)
        };
        while !done(&submitted, &delivered) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let e2e_secs = start.elapsed().as_secs_f64();
        let cpu_used = cpu_secs(pid) - cpu_before;
        let smsc_cpu = cpu_secs(smsc_pid) - smsc_cpu_before;
        let own_cpu = cpu_secs(std::process::id()) - own_cpu_before;
        let got = submitted.load(Ordering::Relaxed).min(accepted);
        // Late duplicates: events or submit_sm beyond one per message.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let extra_events = submitted.load(Ordering::Relaxed).saturating_sub(accepted);
        let after = stats(http.clone(), control.clone()).await;
        let at_smsc = after["accepted"].as_u64().unwrap_or(0) - before;
        lat.sort_unstable();
        println!(
            "hornbill: HTTP -> submit_sm -> submitted event, one bind, window 64, {clients} keep-alive clients, {total} messages, receipts {}",
            if receipts { "on" } else { "off" }
        );
        println!(
            "  accepted: {accepted} in {accept_secs:.2} s = {:.0} msg/s ({errors} errors)",
            accepted as f64 / accept_secs
        );
        let e2e = got as f64 / e2e_secs;
        println!(
            "  end-to-end: {got} submitted events in {e2e_secs:.2} s = {e2e:.0} msg/s ({:.0} % of the simulator's ceiling)",
            100.0 * e2e / ceiling
        );
        if receipts {
            println!(
                "  delivery reports: {}",
                delivered.load(Ordering::Relaxed)
            );
        }
        println!(
            "  accept latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
        println!(
            "  CPU: hornbill {cpu_used:.2} s ({:.0} us per message), simulator {smsc_cpu:.2} s, load generator + event receiver {own_cpu:.2} s; all share the 2 cores",
            cpu_used * 1e6 / got.max(1) as f64
        );
        println!(
            "  the simulator accepted {at_smsc} submit_sm for {accepted} messages ({} duplicates); {extra_events} duplicate submitted events",
            at_smsc.saturating_sub(accepted as u64)
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
    println!("hornbill peak RSS: {:.1} MB", peak_rss_mb(pid));
    let _ = child.kill();
    let _ = child.wait();
    let _ = smsc.kill();
    let _ = smsc.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if !failed.is_empty() {
        eprintln!("FAILED: {}", failed.join("; "));
        std::process::exit(1);
    }
}
