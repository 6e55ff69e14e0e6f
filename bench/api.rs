//! Load generator for the HTTP API on the embedded default (run by `bench/run.sh`).
//!
//! Starts the release `hornbill` binary on a free port with a telnet channel whose one user
//! is the sink, then:
//! 1. saturation: `CLIENTS` keep-alive clients send `TOTAL` messages as fast as they are
//!    answered; reports accepted msg/s, end-to-end msg/s (API -> telnet sink, all lines
//!    received) and accept latency percentiles;
//! 2. paced: 1,000 msg/s for `PACED_SECS` s; reports p50/p99 accept latency;
//! 3. the server's peak RSS (VmHWM).
//!
//! Environment: BENCH_TOTAL (default 100000), BENCH_CLIENTS (64), BENCH_PACED_SECS (10),
//! BENCH_MODE (`memory`, the default, or `amqp`: RabbitMQ bus and Redis store, and first
//! the raw ceiling of the same broker: persistent publishes with confirms and a manual-ack
//! consumer of same-size messages, with lapin).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;
use common::*;
use tokio::io::AsyncBufReadExt;

fn main() {
    // `cargo bench` passes --bench; nothing else is taken from the command line.
    let total = env_usize("BENCH_TOTAL", 100_000);
    let clients = env_usize("BENCH_CLIENTS", 64);
    let paced_secs = env_usize("BENCH_PACED_SECS", 10);

    let dir = std::env::temp_dir().join(format!("hornbill-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    let mode = std::env::var("BENCH_MODE").unwrap_or_else(|_| "memory".into());
    let backends = if mode == "amqp" {
        let prefix = format!("bench{}", std::process::id());
        format!(
            "[bus]\nkind = \"amqp\"\nurl = \"{}\"\n[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
            amqp_url(),
            redis_url()
        )
    } else {
        String::new()
    };
    let ceiling = if mode == "amqp" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Some(rt.block_on(broker_ceiling(total.min(50_000), clients)))
    } else {
        None
    };
    std::fs::write(
        &config,
        format!(
            "[server]\nport = 0\n[public]\nenabled = false\n[log]\nlevel = \"warn\"\n{backends}"
        ),
    )
    .unwrap();
    println!("mode: {mode}");
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

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sink = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&sink)
            .await;
        let http = reqwest::Client::builder().pool_max_idle_per_host(clients * 2).build().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let created: serde_json::Value = http
            .post(format!("{base}/channels/"))
            .body(
                serde_json::json!({"type": "telnet", "mo_url": sink.uri(),
                    "config": {"twisted_endpoint": format!("tcp:{port}")}})
                .to_string(),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cid = created["result"]["id"].as_str().unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let user = stream.local_addr().unwrap().to_string();
        let received = Arc::new(AtomicUsize::new(0));
        let r2 = received.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stream).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                r2.fetch_add(1, Ordering::Relaxed);
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let url = format!("{base}/channels/{cid}/messages/");
        let body = serde_json::json!({"to": user, "content": "bench message, about the size of an SMS"}).to_string();

        // 1. saturation
        let next = Arc::new(AtomicUsize::new(0));
        let cpu_before = cpu_secs(pid);
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
        let deadline = Instant::now() + Duration::from_secs(300);
        while received.load(Ordering::Relaxed) < accepted && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let e2e_secs = start.elapsed().as_secs_f64();
        let delivered = received.load(Ordering::Relaxed);
        let cpu_used = cpu_secs(pid) - cpu_before;
        lat.sort_unstable();
        println!("saturation: {clients} keep-alive clients, {total} messages");
        println!("  accepted: {accepted} in {accept_secs:.2} s = {:.0} msg/s ({errors} errors)", accepted as f64 / accept_secs);
        let e2e_rate = delivered as f64 / e2e_secs;
        println!("  end-to-end (API -> telnet sink): {delivered} in {e2e_secs:.2} s = {e2e_rate:.0} msg/s");
        if let Some(c) = ceiling {
            println!("  broker ceiling (same run): {c:.0} msg/s; hornbill end-to-end = {:.0} % of it", 100.0 * e2e_rate / c);
        }
        println!(
            "  accept latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
        println!(
            "  server CPU: {cpu_used:.2} s over {e2e_secs:.2} s ({:.0} us per message; the load generator shares the 2 cores)",
            cpu_used * 1e6 / delivered.max(1) as f64
        );

        // 2. paced at 1,000 msg/s
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut handles = Vec::with_capacity(paced_secs * 1000);
        let before = received.load(Ordering::Relaxed);
        for _ in 0..paced_secs * 1000 {
            tick.tick().await;
            let (http, url, body) = (http.clone(), url.clone(), body.clone());
            handles.push(tokio::spawn(async move {
                let t = Instant::now();
                let ok = matches!(http.post(&url).body(body).send().await, Ok(r) if r.status().as_u16() == 201);
                (ok, t.elapsed().as_micros() as u64)
            }));
        }
        let mut paced = Vec::new();
        let mut failed = 0;
        for h in handles {
            let (ok, l) = h.await.unwrap();
            if ok { paced.push(l) } else { failed += 1 }
        }
        paced.sort_unstable();
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.load(Ordering::Relaxed) < before + paced.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("paced: 1000 msg/s for {paced_secs} s");
        println!(
            "  accept latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({failed} failed)",
            percentile(&paced, 0.5),
            percentile(&paced, 0.99),
            percentile(&paced, 1.0)
        );
        println!("  delivered to the sink: {}", received.load(Ordering::Relaxed) - before);
    });
    println!("server peak RSS: {:.1} MB", peak_rss_mb(pid));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The broker's own ceiling: `n` persistent messages of a Vumi message's size published
/// with confirms by `clients` concurrent publishers, consumed with manual acks (prefetch 64);
/// msg/s until the last is acked.
async fn broker_ceiling(n: usize, clients: usize) -> f64 {
    use futures::StreamExt;
    use lapin::options::*;
    use lapin::types::FieldTable;
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ");
    let queue = format!("bench-ceiling-{}", std::process::id());
    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    publisher
        .exchange_declare(
            "vumi".into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    publisher
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    publisher
        .queue_bind(
            queue.as_str().into(),
            "vumi".into(),
            queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let consumer_ch = conn.create_channel().await.unwrap();
    consumer_ch
        .basic_qos(64, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consumer_ch
        .basic_consume(
            queue.as_str().into(),
            "ceiling".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut msg = hornbill::message::Message::new(
        Some("127.0.0.1:40000".into()),
        None,
        Some("bench message, about the size of an SMS".into()),
    );
    msg.transport_name = Some("0f6a2b8d-1c01-4c1e-9a53-5d2f6a0e3b7c".into());
    msg.transport_type = Some("telnet".into());
    let body = msg.to_bytes();
    let start = std::time::Instant::now();
    let consumed = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let d = consumer.next().await.unwrap().unwrap();
            d.ack(BasicAckOptions::default()).await.unwrap();
            got += 1;
        }
    });
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..clients {
        let (publisher, queue, body, next) =
            (publisher.clone(), queue.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let confirm = publisher
                    .basic_publish(
                        "vumi".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                assert!(confirm.is_ack());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let published = start.elapsed().as_secs_f64();
    consumed.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    let _ = publisher
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    println!(
        "broker ceiling: {n} persistent {}-byte messages, {clients} confirmed publishers + 1 manual-ack consumer",
        body.len()
    );
    println!(
        "  published in {published:.2} s, all consumed in {secs:.2} s = {:.0} msg/s",
        n as f64 / secs
    );
    n as f64 / secs
}
