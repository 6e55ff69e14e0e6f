//! Several hornbill processes on one RabbitMQ + Redis (issue 15): each channel's transport
//! runs on exactly one node, channels spread evenly, changes made through any node reach the
//! holder within a second, and a node that dies or stops hands its channels on.

mod common;
use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn prefix() -> String {
    format!("t{}", hornbill::message::new_id())
}

/// A node's config: RabbitMQ + Redis under `prefix`, leases of `ttl` seconds.
fn node(prefix: &str, ttl: f64) -> String {
    format!(
        "[bus]\nkind = \"amqp\"\nurl = \"{}\"\n[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n[cluster]\nlease_ttl = {ttl}\n{FAST_WEBHOOKS}",
        amqp_url(),
        redis_url()
    )
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut r)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut r)
            .await
            .unwrap();
    }
}

/// `GET /cluster` of one node: node id -> the channels it holds.
async fn holdings(api: &Api) -> BTreeMap<String, BTreeSet<String>> {
    let body = api.get("/cluster").await.ok(200, "cluster");
    body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let channels = n["channels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            (n["id"].as_str().unwrap().to_string(), channels)
        })
        .collect()
}

/// Waits until `api`'s view shows `nodes` live nodes holding exactly `channels`, each once.
async fn settled(
    api: &Api,
    nodes: usize,
    channels: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    eventually("every channel held by one live node", || async {
        let h = holdings(api).await;
        let mut seen = BTreeSet::new();
        let once = h.values().flatten().all(|c| seen.insert(c.clone()));
        (h.len() == nodes && once && &seen == channels).then_some(h)
    })
    .await
}

/// Whether something listens on `port` (a telnet channel's transport).
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(300),
    )
    .is_ok()
}

async fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn channels_are_held_once_spread_evenly_and_follow_changes_from_any_node() {
    let prefix = prefix();
    let nodes: Vec<Server> = (0..3).map(|_| Server::start(&node(&prefix, 3.0))).collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    let mo = receiver().await;
    eventually("three live nodes", || async {
        (holdings(&apis[0]).await.len() == 3).then_some(())
    })
    .await;

    // Nine telnet channels, created through the three APIs in turn.
    let mut ports = BTreeMap::new();
    for i in 0..9 {
        let (body, port) = telnet_body(&mo.uri());
        let cid = apis[i % 3].create(body).await;
        ports.insert(cid, port);
    }
    let all: BTreeSet<String> = ports.keys().cloned().collect();
    let held = settled(&apis[1], 3, &all).await;
    for (node, channels) in &held {
        assert!(
            (2..=4).contains(&channels.len()),
            "{node} holds {} of 9: {held:?}",
            channels.len()
        );
    }
    // Every node tells the same story, and every port is listened on (by its one holder:
    // a second bind of the port would have failed and shown in the channel's status).
    for api in &apis {
        assert_eq!(settled(api, 3, &all).await, held);
    }
    for port in ports.values() {
        until("telnet port open", Duration::from_secs(5), || {
            listening(*port)
        })
        .await;
    }
    let (cid, port) = ports.iter().next().map(|(c, p)| (c.clone(), *p)).unwrap();
    let views: Vec<Value> = futures::future::join_all(apis.iter().map(|a| a.channel(&cid))).await;
    for v in &views {
        assert_eq!(v["id"], json!(cid));
        assert_eq!(v["config"], views[0]["config"]);
    }

    // Created on A, modified on B (a new port), deleted on C: the holder follows each time.
    let (body, first) = telnet_body(&mo.uri());
    let cid = apis[0].create(body).await;
    let took = until("a new channel's port open", Duration::from_secs(3), || {
        listening(first)
    })
    .await;
    assert!(took < Duration::from_secs(2), "created: {took:?}");
    let second = free_port();
    let r = apis[1]
        .post(
            &format!("/channels/{cid}"),
            json!({"config": {"twisted_endpoint": format!("tcp:{second}")}}),
        )
        .await;
    r.ok(200, "channel updated");
    let took = until("the modified port open", Duration::from_secs(3), || {
        listening(second) && !listening(first)
    })
    .await;
    assert!(took < Duration::from_secs(2), "modified: {took:?}");
    apis[2]
        .delete(&format!("/channels/{cid}"))
        .await
        .ok(200, "channel deleted");
    let took = until(
        "the deleted channel's port closed",
        Duration::from_secs(3),
        || !listening(second),
    )
    .await;
    assert!(took < Duration::from_secs(2), "deleted: {took:?}");
    for api in &apis {
        let h = holdings(api).await;
        assert!(
            h.values().flatten().all(|c| *c != cid),
            "a deleted channel is still held: {h:?}"
        );
    }
    // The first channel still works end to end through its holder.
    let mut user = User::connect_seen(port, &mo).await;
    user.say("hello cluster").await;
    wait_hit(&mo, "the inbound message", |_, body| {
        body["content"] == json!("hello cluster")
    })
    .await;
    drop(nodes);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_killed_node_loses_its_channels_to_the_others_within_the_ttl() {
    let prefix = prefix();
    let mut nodes: Vec<Server> = (0..3).map(|_| Server::start(&node(&prefix, 3.0))).collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    let mo = receiver().await;
    eventually("three live nodes", || async {
        (holdings(&apis[0]).await.len() == 3).then_some(())
    })
    .await;
    let mut ports = BTreeMap::new();
    for _ in 0..6 {
        let (body, port) = telnet_body(&mo.uri());
        ports.insert(apis[0].create(body).await, port);
    }
    let all: BTreeSet<String> = ports.keys().cloned().collect();
    let held = settled(&apis[0], 3, &all).await;
    // The node with the most channels dies without a word.
    let (victim_id, victim_channels) = held
        .iter()
        .max_by_key(|(_, c)| c.len())
        .map(|(n, c)| (n.clone(), c.clone()))
        .unwrap();
    let victim = nodes
        .iter()
        .position(|n| n.url.ends_with(victim_id.rsplit(':').next().unwrap()))
        .expect("the victim's API port in its node id");
    let survivor = apis[(victim + 1) % 3].clone();
    let killed = Instant::now();
    nodes[victim].kill();
    let after = settled(&survivor, 2, &all).await;
    let moved_in = killed.elapsed();
    assert!(!after.contains_key(&victim_id));
    assert!(
        moved_in < Duration::from_secs(10),
        "failover took {moved_in:?}"
    );
    for cid in &victim_channels {
        until(
            "a moved channel's port open",
            Duration::from_secs(5),
            || listening(ports[cid]),
        )
        .await;
    }
    drop(nodes);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_node_stopped_with_sigterm_hands_its_channels_over_at_once() {
    let prefix = prefix();
    // A long TTL: a handover that waited for the lease to expire would take 30 s.
    let mut nodes: Vec<Server> = (0..2)
        .map(|_| Server::start(&node(&prefix, 30.0)))
        .collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    let mo = receiver().await;
    eventually("two live nodes", || async {
        (holdings(&apis[0]).await.len() == 2).then_some(())
    })
    .await;
    let mut ports = BTreeMap::new();
    for _ in 0..6 {
        let (body, port) = telnet_body(&mo.uri());
        ports.insert(apis[0].create(body).await, port);
    }
    let all: BTreeSet<String> = ports.keys().cloned().collect();
    settled(&apis[0], 2, &all).await;
    let stopped = Instant::now();
    nodes[1].terminate();
    let after = settled(&apis[0], 1, &all).await;
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(8), "handover took {took:?}");
    assert_eq!(after.values().next().unwrap(), &all);
    for port in ports.values() {
        until(
            "every port open on the node left",
            Duration::from_secs(5),
            || listening(*port),
        )
        .await;
    }
    drop(nodes);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn one_node_on_the_embedded_default_is_a_cluster_of_one() {
    let server = Server::start("");
    let api = server.api();
    let (body, _port) = telnet_body("http://127.0.0.1:9/");
    let cid = api.create(body).await;
    let body = eventually("the channel held", || async {
        let b = api.get("/cluster").await.ok(200, "cluster");
        (b["nodes"][0]["channels"] == json!([cid])).then_some(b)
    })
    .await;
    assert_eq!(body["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(body["backend"], json!("local"));
    assert_eq!(body["node_id"], body["nodes"][0]["id"]);
}
