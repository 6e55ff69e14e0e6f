//! Cluster benchmark (run by `bench/run.sh cluster`), on the local RabbitMQ and Redis with
//! the SMSC simulator (`SMSC_RECORD=0`):
//!
//! 1. With 1, 2 and 3 nodes: three SMPP channels (one bind each, window 64), `TOTAL`
//!    messages sent by `CLIENTS` lean keep-alive clients spread over every node's API and
//!    the three channels; accepted msg/s, and end-to-end msg/s until every `submitted`
//!    event reached the event_url receiver. All of it (nodes, broker, Redis, simulator,
//!    load generator) shares this machine's cores: on one machine more nodes cannot show
//!    scaling, only what a node costs and that nothing is lost.
//! 2. Failover: two nodes and one SMPP channel; `KILLS` times, kill -9 of the node holding
//!    it, and the time until the SMSC sees the account bound again from the other node (a
//!    fresh node is started after each kill); median and worst. It is about the lease TTL
//!    (`BENCH_CLUSTER_TTL`, default 5 s, hornbill's default) plus a loop period.
//!
//! Environment: BENCH_TOTAL (30000), BENCH_CLIENTS (48), BENCH_KILLS (10),
//! BENCH_CLUSTER_TTL (5), BENCH_NODES (the node counts of part 1, default "1,2,3").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "common.rs"]
mod common;
use common::*;

fn config(prefix: &str, ttl: f64) -> String {
    format!(
        "[server]\nport = 0\n[public]\nenabled = false\n[log]\nlevel = \"warn\"\n\
         [bus]\nkind = \"amqp\"\nurl = \"{}\"\n[store]\nkind = \"redis\"\nurl = \"{}\"\n\
         key_prefix = \"{prefix}\"\n[cluster]\nlease_ttl = {ttl}\n",
        amqp_url(),
        redis_url()
    )
}

async fn get(http: &reqwest::Client, url: &str) -> serde_json::Value {
    match http.get(url).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Waits until `base`'s `GET /cluster` shows `n` live nodes; their (id, channels held).
async fn members(http: &reqwest::Client, base: &str, n: usize) -> Vec<(String, Vec<String>)> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get(http, &format!("{base}/cluster")).await;
        let nodes: Vec<(String, Vec<String>)> = v["result"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let held = n["channels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
                (n["id"].as_str().unwrap_or_default().to_string(), held)
            })
            .collect();
        if nodes.len() == n {
            return nodes;
        }
        assert!(Instant::now() < until, "never {n} nodes: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the simulator has a bound session of `system_id`.
async fn bound(http: &reqwest::Client, smsc: &Smsc, system_id: &str) -> bool {
    get(http, &format!("{}/sessions", smsc.control))
        .await
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| !s["bind"].is_null() && s["system_id"] == system_id)
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    if let Ok(mut r) = client.get_multiplexed_async_connection().await {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut r)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut r).await;
        }
    }
}

/// Part 1 with `n` nodes: (accepted msg/s, end-to-end msg/s, sends refused, events missing).
async fn throughput(n: usize, total: usize, clients: usize, ttl: f64) -> (f64, f64, usize, usize) {
    let prefix = format!("bench{}n{n}", std::process::id());
    let smsc = Smsc::start(0);
    let nodes: Vec<Hornbill> = (0..n)
        .map(|i| Hornbill::start(&format!("cluster{n}-{i}"), &config(&prefix, ttl)))
        .collect();
    let http = reqwest::Client::new();
    members(&http, &nodes[0].base, n).await;
    let counts = Arc::new(Counts::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let events_port = listener.local_addr().unwrap().port();
    tokio::spawn(lean_receiver(listener, counts.clone()));
    let mut channels = vec![];
    for i in 0..3 {
        let body = serde_json::json!({"type": "smpp", "window": 64,
            "mo_url": format!("http://127.0.0.1:{events_port}/mo"),
            "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.port),
                       "system_id": format!("bench{i}")}});
        channels.push(create_channel(&http, &nodes[0].base, body).await);
    }
    for cid in &channels {
        wait_bound(&http, &nodes[0].base, cid).await;
    }
    let body = serde_json::json!({"to": "27820000001", "from": "12345",
        "content": "bench message, about the size of an SMS",
        "event_url": format!("http://127.0.0.1:{events_port}/ev")})
    .to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let base = &nodes[i % n].base;
            let host = base.strip_prefix("http://").unwrap_or(base).to_string();
            let path = format!("/channels/{}/messages/", channels[i % 3]);
            let request = Arc::new(post_request(&host, &path, &body));
            tokio::spawn(lean_client(host, request, next.clone(), total))
        })
        .collect();
    let (mut accepted, mut errors) = (0, 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        accepted += lat.len();
        errors += e;
    }
    let accept_secs = start.elapsed().as_secs_f64();
    let (mut last, mut last_at) = (0, Instant::now());
    while counts.submitted.load(Ordering::Relaxed) < accepted
        && last_at.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = counts.submitted.load(Ordering::Relaxed);
        if now != last {
            (last, last_at) = (now, Instant::now());
        }
    }
    let e2e_secs = start.elapsed().as_secs_f64();
    let got = counts.submitted.load(Ordering::Relaxed).min(accepted);
    for cid in &channels {
        let _ = http
            .delete(format!("{}/channels/{cid}", nodes[0].base))
            .send()
            .await;
    }
    drop(nodes);
    drop(smsc);
    cleanup(&prefix).await;
    (
        accepted as f64 / accept_secs,
        got as f64 / e2e_secs,
        errors,
        accepted - got,
    )
}

/// Part 2: the seconds from each kill -9 of the holder to the account bound again.
async fn failover(kills: usize, ttl: f64) -> Vec<f64> {
    let prefix = format!("bench{}fo", std::process::id());
    let smsc = Smsc::start(0);
    let http = reqwest::Client::new();
    let mut nodes: Vec<Hornbill> = (0..2)
        .map(|i| Hornbill::start(&format!("failover-{i}"), &config(&prefix, ttl)))
        .collect();
    members(&http, &nodes[0].base, 2).await;
    let body = serde_json::json!({"type": "smpp", "mo_url": "http://127.0.0.1:9/",
        "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.port),
                   "system_id": "failover"}});
    let cid = create_channel(&http, &nodes[0].base, body).await;
    wait_bound(&http, &nodes[0].base, &cid).await;
    let mut times = vec![];
    for k in 0..kills {
        // The holder, once the heartbeats say who it is (and the account is bound).
        let found_by = Instant::now() + Duration::from_secs(60);
        let holder = loop {
            let view = members(&http, &nodes[0].base, 2).await;
            let holder = view.into_iter().find(|(_, held)| held.contains(&cid));
            if let Some((id, _)) = holder
                && bound(&http, &smsc, "failover").await
            {
                break id;
            }
            assert!(Instant::now() < found_by, "no node holds the channel");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let port = holder.rsplit(':').next().unwrap_or_default().to_string();
        let victim = nodes
            .iter()
            .position(|n| n.base.ends_with(&format!(":{port}")))
            .expect("the holder's API port in its node id");
        let killed = Instant::now();
        drop(nodes.remove(victim));
        // The simulator sees the dead node's connection close first.
        while bound(&http, &smsc, "failover").await && killed.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        while !bound(&http, &smsc, "failover").await {
            assert!(
                killed.elapsed() < Duration::from_secs(120),
                "never bound again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        times.push(killed.elapsed().as_secs_f64());
        nodes.push(Hornbill::start(
            &format!("failover-r{k}"),
            &config(&prefix, ttl),
        ));
    }
    let _ = http
        .delete(format!("{}/channels/{cid}", nodes[0].base))
        .send()
        .await;
    drop(nodes);
    drop(smsc);
    cleanup(&prefix).await;
    times
}

fn main() {
    let total = env_usize("BENCH_TOTAL", 30_000);
    let clients = env_usize("BENCH_CLIENTS", 48).max(3);
    let kills = env_usize("BENCH_KILLS", 10);
    let ttl = std::env::var("BENCH_CLUSTER_TTL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let counts: Vec<usize> = std::env::var("BENCH_NODES")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut failed = vec![];
    rt.block_on(async {
        println!(
            "cluster on RabbitMQ + Redis, 3 SMPP channels (window 64), {total} messages, {clients} lean clients over every node's API; one 2-core machine"
        );
        for n in counts {
            let (accepted, e2e, refused, missing) = throughput(n, total, clients, ttl).await;
            println!(
                "  {n} node(s): accepted {accepted:.0} msg/s, end-to-end {e2e:.0} msg/s ({refused} refused, {missing} events missing)"
            );
            if refused + missing > 0 {
                failed.push(format!("{n} nodes: {refused} refused, {missing} missing"));
            }
        }
        if kills > 0 {
            let mut times = failover(kills, ttl).await;
            times.sort_by(f64::total_cmp);
            let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
            let worst = times.last().copied().unwrap_or(0.0);
            println!(
                "failover: kill -9 of the holder, {} kills, lease_ttl {ttl} s: bound again after median {median:.2} s, worst {worst:.2} s ({:?})",
                times.len(),
                times.iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>()
            );
        }
    });
    if !failed.is_empty() {
        eprintln!("FAILED: {}", failed.join("; "));
        std::process::exit(1);
    }
}
