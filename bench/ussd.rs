//! Provider callback benchmark (run by `bench/run.sh ussd`), on the embedded default, with an
//! `africastalking` channel and an application in this process that answers over the API:
//!
//! 1. USSD: `BENCH_USERS` users each walk sessions of three requests (new -> menu, "1" ->
//!    question, "1*Ann" -> END) until `BENCH_SESSIONS` sessions are done. Each request goes
//!    to the public listener and is held until the application, which got the inbound at
//!    `mo_url`, has answered with `POST /channels/{id}/messages/` (`reply_to`). Reports
//!    requests/s and the round trip's p50/p99 as the user sees it (hornbill -> mo_url ->
//!    application -> API -> the held request), and checks every answer's text.
//! 2. SMS: `BENCH_CLIENTS` keep-alive clients POST `BENCH_SMS` inbound SMS callbacks; reports
//!    callbacks accepted/s and end-to-end/s (until the application counted every `mo_url`
//!    POST).
//!
//! Both report hornbill's CPU seconds and peak RSS, and this process's CPU (the users, the
//! application and its API calls share the 2 cores with hornbill).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;
use common::*;

/// The application: answers each USSD inbound by its step, counts SMS inbound.
struct App {
    /// The API's base URL.
    api: String,
    http: reqwest::Client,
    sms: AtomicUsize,
}

async fn app_handler(
    app: actix_web::web::Data<Arc<App>>,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    let msg: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let event = msg["channel_data"]["session_event"].as_str().unwrap_or("");
    if event.is_empty() {
        app.sms.fetch_add(1, Ordering::Relaxed);
        return actix_web::HttpResponse::Ok().finish();
    }
    let (text, more) = match (event, msg["content"].as_str()) {
        ("new", _) => ("Menu\n1. Register", true),
        ("resume", Some("1")) => ("Your name?", true),
        ("resume", Some(name)) if !name.is_empty() => ("Thank you", false),
        // `close` (a timeout) and anything else: nothing to answer.
        _ => return actix_web::HttpResponse::Ok().finish(),
    };
    let reply = serde_json::json!({"reply_to": msg["message_id"], "content": text,
                                   "channel_data": {"continue_session": more}});
    let url = format!(
        "{}/channels/{}/messages/",
        app.api,
        msg["channel_id"].as_str().unwrap_or_default()
    );
    let http = app.http.clone();
    actix_web::rt::spawn(async move {
        let _ = http.post(url).body(reply.to_string()).send().await;
    });
    actix_web::HttpResponse::Ok().finish()
}

fn main() {
    let users = env_usize("BENCH_USERS", 200);
    let sessions = env_usize("BENCH_SESSIONS", 5_000);
    let clients = env_usize("BENCH_CLIENTS", 64);
    let sms_total = env_usize("BENCH_SMS", 50_000);

    let dir = std::env::temp_dir().join(format!("hornbill-bench-ussd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "[server]\nport = 0\n[public]\nport = 0\n[log]\nlevel = \"warn\"\n",
    )
    .unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_hornbill"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hornbill"),
    );
    let pid = child.0.id();
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut read = |prefix: &str| {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
            .to_string()
    };
    let base = read("hornbill listening on ");
    let public = read("hornbill public listener on ");
    // Keep reading hornbill's stdout so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));

    let me = std::process::id();
    let sys = actix_web::rt::System::new();
    let failed = sys.block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(users.max(clients) * 2)
            .build()
            .unwrap();
        let app = Arc::new(App {
            api: base.clone(),
            http: http.clone(),
            sms: AtomicUsize::new(0),
        });
        let data = actix_web::web::Data::new(app.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .default_service(actix_web::web::to(app_handler))
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let app_port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        let created: serde_json::Value = http
            .post(format!("{base}/channels/"))
            .body(
                serde_json::json!({"type": "africastalking",
                    "mo_url": format!("http://127.0.0.1:{app_port}/mo"),
                    "config": {"username": "bench", "api_key": "k", "base_url": "http://127.0.0.1:9"}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cid = created["result"]["id"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(500)).await;

        // 1. USSD sessions
        let url = format!("{public}/channels/{cid}/ussd");
        let next = Arc::new(AtomicUsize::new(0));
        let wrong = Arc::new(AtomicUsize::new(0));
        let (cpu0, me0) = (cpu_secs(pid), cpu_secs(me));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for u in 0..users {
            let (http, url, next, wrong) = (http.clone(), url.clone(), next.clone(), wrong.clone());
            tasks.push(actix_web::rt::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let s = next.fetch_add(1, Ordering::Relaxed);
                    if s >= sessions {
                        break;
                    }
                    let sid = format!("ATUid_{u}_{s}");
                    let phone = format!("+2547{:08}", u);
                    for (text, want) in [
                        ("", "CON Menu\n1. Register"),
                        ("1", "CON Your name?"),
                        ("1*Ann", "END Thank you"),
                    ] {
                        let body = url::form_urlencoded::Serializer::new(String::new())
                            .extend_pairs([
                                ("sessionId", sid.as_str()),
                                ("serviceCode", "*384*1#"),
                                ("phoneNumber", phone.as_str()),
                                ("text", text),
                            ])
                            .finish();
                        let t = Instant::now();
                        let answer = http
                            .post(&url)
                            .header("Content-Type", "application/x-www-form-urlencoded")
                            .body(body)
                            .send()
                            .await;
                        let text = match answer {
                            Ok(r) => r.text().await.unwrap_or_default(),
                            Err(_) => String::new(),
                        };
                        if text != want {
                            wrong.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let secs = start.elapsed().as_secs_f64();
        let (cpu, mine) = (cpu_secs(pid) - cpu0, cpu_secs(me) - me0);
        lat.sort_unstable();
        let wrong = wrong.load(Ordering::Relaxed);
        println!("USSD: {users} users, {sessions} sessions of 3 requests (new, resume, END)");
        println!(
            "  {} requests in {secs:.2} s: {:.0} requests/s ({:.0} sessions/s); wrong or failed answers: {wrong}",
            lat.len(),
            lat.len() as f64 / secs,
            sessions as f64 / secs
        );
        println!(
            "  round trip p50 {:.2} ms, p99 {:.2} ms (hornbill -> mo_url -> app -> API reply -> answer)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
        println!(
            "  hornbill CPU {cpu:.2} s ({:.0} µs/request); this process (users + app) {mine:.2} s",
            cpu * 1e6 / lat.len().max(1) as f64
        );

        // 2. inbound SMS callbacks
        let url = format!("{public}/channels/{cid}/inbound");
        let next = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (cpu0, me0) = (cpu_secs(pid), cpu_secs(me));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (http, url, next, refused) =
                (http.clone(), url.clone(), next.clone(), refused.clone());
            tasks.push(actix_web::rt::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= sms_total {
                        break;
                    }
                    let body = format!(
                        "from=%2B2547{c:08}&to=21512&text=bench+message+{n}&id=at-{n}&date=2026-12-01+18%3A00%3A00"
                    );
                    let ok = http
                        .post(&url)
                        .header("Content-Type", "application/x-www-form-urlencoded")
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16() == 200)
                        .unwrap_or(false);
                    if !ok {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let accept_secs = start.elapsed().as_secs_f64();
        let refused = refused.load(Ordering::Relaxed);
        let want = sms_total - refused;
        let deadline = Instant::now() + Duration::from_secs(120);
        while app.sms.load(Ordering::Relaxed) < want && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let e2e_secs = start.elapsed().as_secs_f64();
        let got = app.sms.load(Ordering::Relaxed);
        let (cpu, mine) = (cpu_secs(pid) - cpu0, cpu_secs(me) - me0);
        println!("SMS: {clients} keep-alive clients, {sms_total} inbound callbacks");
        println!(
            "  accepted {:.0}/s, end to end (mo_url) {:.0}/s; refused {refused}, delivered {got}",
            want as f64 / accept_secs,
            got as f64 / e2e_secs
        );
        println!(
            "  hornbill CPU {cpu:.2} s ({:.0} µs/message); this process {mine:.2} s",
            cpu * 1e6 / want.max(1) as f64
        );
        println!("hornbill peak RSS {:.0} MB", peak_rss_mb(pid));
        wrong > 0 || refused > 0 || got < want
    });
    drop(child);
    std::process::exit(if failed { 1 } else { 0 });
}
