//! Soak benchmark (run by `bench/run.sh soak`): a steady, paced `BENCH_SOAK_RATE` msg/s
//! (default 1,000; not as fast as answered) for `BENCH_SOAK_SECS` s (default 3600) through
//! the SMPP path with delivery receipts (HTTP -> submit_sm -> `submitted` event, then the
//! receipt -> `delivery_succeeded` event, both to the message's event_url), against the
//! repository's SMSC simulator (`tests/peers/smsc`, receipts 50 ms after each submit_sm), on
//! the embedded default with a small store budget (`[store] max_records` =
//! `BENCH_SOAK_RECORDS`, default 20,000, so the cap is reached within the first minute).
//!
//! Samples hornbill's resident memory (VmRSS) every 10 s and prints the series (with what
//! was sent, the events received and `hornbill_store_evictions_total`); then a summary: the
//! RSS when the cap was reached (the first eviction, watched every second), at the end and
//! at most, and whether it stayed flat after the cap: no sample after it more than 10 %
//! above the RSS at the cap. Also checks that every send was accepted and got its two
//! events, and that hornbill kept up with the rate (exit status 1 otherwise).
//!
//! Messages are sent on `CONNS` (32) lean keep-alive connections, message `i` at
//! `start + i / RATE`: a connection that falls behind sends at once, so a slow hornbill
//! shows as lag behind the schedule rather than as a lower rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;
use common::*;

const CONNS: usize = 32;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// "Flat": no sample after the cap more than this much above the RSS at the cap.
const FLAT: f64 = 0.10;

/// `hornbill_store_evictions_total` from `GET /metrics`.
async fn evictions(http: &reqwest::Client, base: &str) -> f64 {
    let Ok(r) = http.get(format!("{base}/metrics")).send().await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("hornbill_store_evictions_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One sample of the series.
struct Sample {
    at: f64,
    sent: usize,
    submitted: usize,
    delivered: usize,
    evicted: f64,
    rss: f64,
}

fn main() {
    // `cargo bench` passes --bench; nothing else is taken from the command line.
    let secs = env_usize("BENCH_SOAK_SECS", 3600).max(1);
    let rate = env_usize("BENCH_SOAK_RATE", 1000).max(1);
    let max_records = env_usize("BENCH_SOAK_RECORDS", 20_000).max(1);
    let total = secs * rate;

    let smsc = Smsc::start(50);
    let hornbill = Hornbill::start(
        "soak",
        &format!(
            "[server]\nport = 0\n[public]\nenabled = false\n[store]\nmax_records = {max_records}\n\
             [log]\nlevel = \"warn\"\nlogging_path = \"{{dir}}/logs\"\n"
        ),
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let events_port = listener.local_addr().unwrap().port();
        tokio::spawn(lean_receiver(listener, counts.clone()));
        let http = reqwest::Client::new();
        let body = serde_json::json!({"type": "smpp", "window": 64,
            "mo_url": format!("http://127.0.0.1:{events_port}/mo"),
            "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", sim.port),
                       "system_id": "soak", "registered_delivery": true}});
        let cid = create_channel(&http, &base, body).await;
        wait_bound(&http, &base, &cid).await;
        let before = sim.stats(&http).await["accepted"].as_u64().unwrap_or(0);

        let host = base.strip_prefix("http://").unwrap_or(&base).to_string();
        let body = serde_json::json!({"to": "27820000001", "from": "12345",
            "content": "soak message, about the size of an SMS",
            "event_url": format!("http://127.0.0.1:{events_port}/ev")})
        .to_string();
        let request = Arc::new(post_request(&host, &format!("/channels/{cid}/messages/"), &body));
        println!(
            "soak: {rate} msg/s paced on {CONNS} keep-alive connections for {secs} s ({total} messages), SMPP with receipts, [store] max_records = {max_records}"
        );
        let rss_start = rss_mb(pid);
        println!("  RSS at the start: {rss_start:.1} MB");
        println!(
            "  {:>6} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "t (s)", "sent", "submitted", "receipts", "evicted", "RSS (MB)"
        );

        let start = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let max_lag_us = Arc::new(AtomicU64::new(0));
        let mut senders = Vec::new();
        for _ in 0..CONNS {
            let (next, sent, errors, max_lag_us, request, host) = (
                next.clone(),
                sent.clone(),
                errors.clone(),
                max_lag_us.clone(),
                request.clone(),
                host.clone(),
            );
            senders.push(tokio::spawn(async move {
                let mut conn = LeanConn::new(&host);
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return lat;
                    }
                    let due = start + Duration::from_micros((i as u64) * 1_000_000 / rate as u64);
                    tokio::time::sleep_until(due.into()).await;
                    let t = Instant::now();
                    max_lag_us.fetch_max((t - due).as_micros() as u64, Ordering::Relaxed);
                    match conn.send(&request).await {
                        Ok(201) => {
                            sent.fetch_add(1, Ordering::Relaxed);
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                        other => {
                            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first refused send: {other:?}");
                            }
                        }
                    }
                }
            }));
        }

        // The cap: the first eviction, watched every second.
        let cap = {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if evictions(&http, &base).await > 0.0 {
                        return (start.elapsed().as_secs_f64(), rss_mb(pid));
                    }
                }
            })
        };

        let mut series = Vec::new();
        let sample = |at: f64, evicted: f64| Sample {
            at,
            sent: sent.load(Ordering::Relaxed),
            submitted: counts.submitted.load(Ordering::Relaxed),
            delivered: counts.delivery.load(Ordering::Relaxed),
            evicted,
            rss: rss_mb(pid),
        };
        let print = |s: &Sample| {
            println!(
                "  {:>6.0} {:>9} {:>9} {:>9} {:>9.0} {:>8.1}",
                s.at, s.sent, s.submitted, s.delivered, s.evicted, s.rss
            )
        };
        let mut tick = tokio::time::interval_at(
            (start + SAMPLE_EVERY).into(),
            SAMPLE_EVERY,
        );
        while start.elapsed() < Duration::from_secs(secs as u64) {
            tick.tick().await;
            let s = sample(start.elapsed().as_secs_f64(), evictions(&http, &base).await);
            print(&s);
            series.push(s);
        }
        let mut lat = Vec::new();
        for s in senders {
            lat.extend(s.await.unwrap());
        }
        let sent_secs = start.elapsed().as_secs_f64();
        // The last events: until all are in, or none has come for 30 s.
        let accepted = sent.load(Ordering::Relaxed);
        let seen = |c: &Counts| c.submitted.load(Ordering::Relaxed) + c.delivery.load(Ordering::Relaxed);
        let (mut last, mut last_at) = (seen(&counts), Instant::now());
        while seen(&counts) < 2 * accepted && last_at.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if seen(&counts) != last {
                (last, last_at) = (seen(&counts), Instant::now());
            }
        }
        let end = sample(start.elapsed().as_secs_f64(), evictions(&http, &base).await);
        print(&end);
        series.push(end);
        let at_smsc = sim.stats(&http).await["accepted"].as_u64().unwrap_or(0) - before;

        lat.sort_unstable();
        let errors = errors.load(Ordering::Relaxed);
        let lag = max_lag_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let end = series.last().unwrap();
        println!(
            "  sent: {accepted} in {sent_secs:.1} s = {:.0} msg/s ({errors} errors), accept latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; most behind the schedule: {lag:.1} ms",
            accepted as f64 / sent_secs,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
        println!(
            "  events: {} submitted, {} delivery reports, {} other; the simulator accepted {at_smsc} submit_sm",
            end.submitted,
            end.delivered,
            counts.other.load(Ordering::Relaxed)
        );
        let max = series.iter().map(|s| s.rss).fold(rss_start, f64::max);
        let mut failed = vec![];
        let cap = if cap.is_finished() {
            Some(cap.await.unwrap())
        } else {
            cap.abort();
            None
        };
        match cap {
            Some((cap_at, cap_rss)) => {
                let after: Vec<f64> =
                    series.iter().filter(|s| s.at >= cap_at).map(|s| s.rss).collect();
                let after_max = after.iter().copied().fold(cap_rss, f64::max);
                let after_min = after.iter().copied().fold(cap_rss, f64::min);
                let flat = after_max <= cap_rss * (1.0 + FLAT);
                println!(
                    "summary: RSS {rss_start:.1} MB at the start, {cap_rss:.1} MB when the cap was reached ({cap_at:.0} s), {:.1} MB at the end, {max:.1} MB at most; after the cap {after_min:.1} to {after_max:.1} MB ({:+.1} % at most over the cap): {}",
                    end.rss,
                    100.0 * (after_max / cap_rss - 1.0),
                    if flat { "flat (within 10 %)" } else { "NOT flat (more than 10 % over)" }
                );
                if !flat {
                    failed.push("RSS grew more than 10 % after the cap".to_string());
                }
            }
            None => {
                println!(
                    "summary: RSS {rss_start:.1} MB at the start, {:.1} MB at the end, {max:.1} MB at most; the cap ({max_records} records) was never reached",
                    end.rss
                );
                failed.push("the cap was never reached".to_string());
            }
        }
        if errors > 0 {
            failed.push(format!("{errors} sends refused"));
        }
        if end.submitted < accepted || end.delivered < accepted {
            failed.push(format!(
                "{} submitted and {} delivery events for {accepted} messages",
                end.submitted, end.delivered
            ));
        }
        if at_smsc != accepted as u64 {
            failed.push(format!(
                "the simulator accepted {at_smsc} submit_sm for {accepted} messages"
            ));
        }
        if (accepted as f64 / sent_secs) < 0.95 * rate as f64 {
            failed.push(format!("hornbill did not keep up with {rate} msg/s"));
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
