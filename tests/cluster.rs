//! Several hornbill processes on one RabbitMQ + Redis (issue 15), with the SMSC simulator
//! for SMPP channels: each channel's transport
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

/// Waits until `api`'s view shows `n` live nodes.
async fn live(api: &Api, n: usize) {
    eventually(&format!("{n} live nodes"), || async {
        (holdings(api).await.len() == n).then_some(())
    })
    .await;
}

/// The index in `nodes` of the node whose id is `id` (host name and API port).
fn node_index(nodes: &[Server], id: &str) -> usize {
    let port = id.rsplit(':').next().unwrap();
    nodes
        .iter()
        .position(|n| n.url.ends_with(&format!(":{port}")))
        .unwrap_or_else(|| panic!("no node with the API port of {id}"))
}

/// The index in `nodes` of the node holding `cid`, as `held` shows it.
fn holder_index(nodes: &[Server], held: &BTreeMap<String, BTreeSet<String>>, cid: &str) -> usize {
    let (id, _) = held
        .iter()
        .find(|(_, c)| c.contains(cid))
        .unwrap_or_else(|| panic!("nobody holds {cid}: {held:?}"));
    node_index(nodes, id)
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
    live(&apis[0], 3).await;

    // Thirty channels, 24 telnet and 6 SMPP (each its own SMSC account), created through the
    // three APIs in turn.
    let smsc = common::smsc::Smsc::start(&[]);
    let mut ports = BTreeMap::new();
    let mut accounts = BTreeMap::new();
    for i in 0..30 {
        let api = &apis[i % 3];
        if i % 5 == 4 {
            let account = format!("spread{i}");
            let cid = api
                .create(json!({"type": "smpp", "mo_url": mo.uri(),
                    "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.smpp),
                               "system_id": account, "password": "pw",
                               "smpp_enquire_link_interval": 1}}))
                .await;
            accounts.insert(cid, account);
        } else {
            let (body, port) = telnet_body(&mo.uri());
            ports.insert(api.create(body).await, port);
        }
    }
    let all: BTreeSet<String> = ports.keys().chain(accounts.keys()).cloned().collect();
    let held = settled(&apis[1], 3, &all).await;
    for (node, channels) in &held {
        assert!(
            (9..=11).contains(&channels.len()),
            "{node} holds {} of 30: {held:?}",
            channels.len()
        );
    }
    // The SMSC sees one bind per account.
    eventually("one bind per SMPP channel", || async {
        let b = binds(&smsc).await;
        (b.len() == accounts.len() && accounts.values().all(|a| b.get(a) == Some(&1))).then_some(())
    })
    .await;
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
    let (cid0, port) = ports.iter().next().map(|(c, p)| (c.clone(), *p)).unwrap();
    assert_eq!(binds(&smsc).await.values().sum::<usize>(), accounts.len());
    let views: Vec<Value> = futures::future::join_all(apis.iter().map(|a| a.channel(&cid0))).await;
    for v in &views {
        assert_eq!(v["id"], json!(cid0));
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
    // Its lease is let go: gone from every node's view by the next heartbeats.
    for api in &apis {
        // (The others, evened out again, may move one channel meanwhile.)
        eventually(
            "the deleted channel held nowhere, the others each once",
            || async {
                let h = holdings(api).await;
                let held: BTreeSet<&String> = h.values().flatten().collect();
                (!held.contains(&cid) && held.len() == 30).then_some(())
            },
        )
        .await;
    }
    // The first channel still works end to end through its holder.
    let mut user = User::connect_seen(port, &mo).await;
    user.say("hello cluster").await;
    wait_hit(&mo, "the inbound message", |_, body| {
        body["content"] == json!("hello cluster")
    })
    .await;
    // A reply sent through a node that does not hold the channel: its story, read from a
    // third node, has the sending node's lines and the holder's.
    let holder = holder_index(&nodes, &held, &cid0);
    let at = |i: usize| i == holder;
    let sender = (0..3).find(|i| !at(*i)).unwrap();
    let reader = (0..3).find(|i| *i != sender && !at(*i)).unwrap_or(sender);
    let sent = apis[sender]
        .send(
            &cid0,
            json!({"to": user.address, "content": "hi from afar"}),
        )
        .await;
    user.wait_line("hi from afar").await;
    let mid = sent["message_id"].as_str().unwrap().to_string();
    let story = eventually("the story from both nodes", || async {
        let r = apis[reader]
            .get(&format!("/channels/{cid0}/messages/{mid}/logs"))
            .await
            .ok(200, "logs retrieved");
        let lines: Vec<String> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect();
        let accepted = lines.iter().any(|l| l.starts_with("Accepted"));
        let submitted = lines.iter().any(|l| l.starts_with("Submitted"));
        (accepted && submitted).then_some(lines)
    })
    .await;
    assert!(story[0].starts_with("Accepted"), "oldest first: {story:?}");
    // The channel's log and its live view read the same from every node.
    let path = format!("/channels/{cid0}/logs");
    let logs: Vec<Value> = futures::future::join_all(
        apis.iter()
            .map(|a| async { a.get(&path).await.ok(200, "logs retrieved") }),
    )
    .await;
    assert!(logs.iter().all(|l| *l == logs[0]), "{logs:?}");
    let views: Vec<Value> = futures::future::join_all(apis.iter().map(|a| a.channel(&cid0))).await;
    for v in &views {
        assert_eq!(v["status"]["in_flight"], views[0]["status"]["in_flight"]);
        assert_eq!(
            v["status"]["queue_length"],
            views[0]["status"]["queue_length"]
        );
    }
    drop(nodes);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_killed_node_loses_its_channels_to_the_others_within_the_ttl() {
    let prefix = prefix();
    let mut nodes: Vec<Server> = (0..3).map(|_| Server::start(&node(&prefix, 3.0))).collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    let mo = receiver().await;
    live(&apis[0], 3).await;
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
    let victim = node_index(&nodes, &victim_id);
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
    live(&apis[0], 2).await;
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

/// The SMSC's bound sessions, by `system_id`.
async fn binds(smsc: &common::smsc::Smsc) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in smsc.get("/sessions").await.as_array().unwrap() {
        if !s["bind"].is_null() {
            *out.entry(s["system_id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    out
}

#[tokio::test]
async fn kill_9_of_an_smpp_holder_mid_burst_loses_nothing_accepted() {
    let prefix = prefix();
    let smsc = common::smsc::Smsc::start(&[]);
    let mut nodes: Vec<Server> = (0..3).map(|_| Server::start(&node(&prefix, 3.0))).collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    let events = receiver().await;
    live(&apis[0], 3).await;
    // Three SMPP channels, each its own SMSC account: one bind each, from its holder.
    let window = 20;
    let mut accounts = BTreeMap::new();
    for (i, api) in apis.iter().enumerate() {
        let system_id = format!("acct{i}");
        let cid = api
            .create(
                json!({"type": "smpp", "event_url": format!("{}/events", events.uri()),
                "mo_url": format!("{}/mo", events.uri()), "window": window,
                "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.smpp),
                           "system_id": system_id, "password": "pw",
                           "smpp_enquire_link_interval": 1}}),
            )
            .await;
        accounts.insert(cid, system_id);
    }
    let all: BTreeSet<String> = accounts.keys().cloned().collect();
    let held = settled(&apis[0], 3, &all).await;
    eventually("one bind per account", || async {
        let b = binds(&smsc).await;
        (accounts.values().all(|a| b.get(a) == Some(&1))).then_some(())
    })
    .await;

    // The burst: 5,000 sends to one channel, spread over the three APIs.
    let (cid, account) = accounts
        .iter()
        .next()
        .map(|(c, a)| (c.clone(), a.clone()))
        .unwrap();
    let victim = holder_index(&nodes, &held, &cid);
    let total = 5000;
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // (API, status or error) -> count, for the message if too few were accepted.
    let refused = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let senders: Vec<_> = (0..24)
        .map(|w| {
            let (apis, cid, accepted, sent, refused) = (
                apis.clone(),
                cid.clone(),
                accepted.clone(),
                sent.clone(),
                refused.clone(),
            );
            tokio::spawn(async move {
                let mut i = w;
                while i < total {
                    let api = &apis[i % 3];
                    let body = json!({"to": "+27820000001", "content": format!("burst {i}")});
                    let r = api
                        .http
                        .post(format!("{}/channels/{cid}/messages/", api.base))
                        .json(&body)
                        .send()
                        .await;
                    let why = match &r {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(e) if e.is_connect() => "connect".to_string(),
                        Err(e) if e.is_timeout() => "timeout".to_string(),
                        Err(_) => "request".to_string(),
                    };
                    if why != "201" {
                        *refused.lock().unwrap().entry((i % 3, why)).or_insert(0) += 1;
                    }
                    if let Ok(r) = r
                        && r.status().as_u16() == 201
                    {
                        let v: Value = r.json().await.unwrap();
                        let mid = v["result"]["message_id"].as_str().unwrap().to_string();
                        accepted.lock().unwrap().insert(format!("burst {i}"), mid);
                    }
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    i += 24;
                }
            })
        })
        .collect();
    while sent.load(std::sync::atomic::Ordering::SeqCst) < total / 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = Instant::now();
    nodes[victim].kill();
    // Bound again, from another node, within 10 s.
    eventually("the account bound again", || async {
        let b = binds(&smsc).await;
        (b.get(&account) == Some(&1) && killed.elapsed() > Duration::from_millis(100)).then_some(())
    })
    .await;
    let rebound = killed.elapsed();
    assert!(
        rebound < Duration::from_secs(10),
        "bound again after {rebound:?}"
    );
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() > total / 2,
        "{} accepted; refused by (API, status or error), the killed one {victim}: {:?}",
        accepted.len(),
        refused.lock().unwrap()
    );

    // Every accepted message reached the SMSC; duplicates at most a window's worth.
    let records = eventually("every accepted message at the SMSC", || async {
        let records = smsc.get("/messages").await;
        let texts: Vec<String> = records
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["system_id"] == json!(account))
            .filter_map(|r| r["text"].as_str().map(str::to_string))
            .collect();
        let seen: BTreeSet<&String> = texts.iter().collect();
        accepted.keys().all(|t| seen.contains(t)).then_some(texts)
    })
    .await;
    let distinct: BTreeSet<&String> = records.iter().collect();
    let duplicates = records.len() - distinct.len();
    assert!(
        duplicates <= window,
        "{duplicates} duplicates (window {window})"
    );
    eprintln!(
        "failover: {} of {total} accepted, bound again after {rebound:?}, {} at the SMSC, {duplicates} duplicates",
        accepted.len(),
        records.len()
    );

    // Every accepted message's `submitted` event reached its event_url.
    eventually("every submitted event", || async {
        let acked: BTreeSet<String> = hits(&events)
            .await
            .into_iter()
            .filter(|(_, _, b)| b["event_type"] == json!("submitted"))
            .filter_map(|(_, _, b)| b["message_id"].as_str().map(str::to_string))
            .collect();
        accepted.values().all(|m| acked.contains(m)).then_some(())
    })
    .await;
    drop(nodes);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn a_node_paused_past_its_lease_never_sends_with_it_again() {
    let prefix = prefix();
    let smsc = common::smsc::Smsc::start(&[]);
    let nodes: Vec<Server> = (0..2).map(|_| Server::start(&node(&prefix, 3.0))).collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    let mo = receiver().await;
    live(&apis[0], 2).await;
    let cid = apis[0]
        .create(json!({"type": "smpp", "mo_url": mo.uri(), "window": 10,
            "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.smpp),
                       "system_id": "paused", "password": "pw",
                       "smpp_enquire_link_interval": 1}}))
        .await;
    let all = BTreeSet::from([cid.clone()]);
    let held = settled(&apis[0], 2, &all).await;
    let p = holder_index(&nodes, &held, &cid);
    let q = 1 - p;
    let first_session = eventually("bound", || async {
        let s = smsc.get("/sessions").await;
        let bound: Vec<&Value> = s
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["bind"].is_null())
            .collect();
        (bound.len() == 1).then(|| bound[0]["id"].clone())
    })
    .await;
    let at_smsc = |n: usize| {
        let smsc = &smsc;
        async move {
            eventually("messages at the SMSC", || async {
                let r = smsc.get("/messages").await;
                (r.as_array().unwrap().len() >= n).then_some(r)
            })
            .await
        }
    };
    for i in 0..10 {
        apis[q]
            .send(
                &cid,
                json!({"to": "+2782", "content": format!("before {i}")}),
            )
            .await;
    }
    at_smsc(10).await;

    // Paused past the lease: the other node takes the channel and binds.
    nodes[p].signal("STOP");
    let paused_at = smsc.get("/messages").await.as_array().unwrap().len();
    eventually("the other node holds it", || async {
        let h = holdings(&apis[q]).await;
        (h.len() == 1 && h.values().next().unwrap().contains(&cid)).then_some(())
    })
    .await;
    // (The broker may hand some of these to the paused node's consumer, still connected:
    // they wait there until it wakes, lets them go, and the holder sends them.)
    for i in 0..20 {
        apis[q]
            .send(
                &cid,
                json!({"to": "+2782", "content": format!("during {i}")}),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Woken: it stops its transport (its bind goes) and sends nothing more.
    nodes[p].signal("CONT");
    for i in 0..20 {
        apis[q]
            .send(
                &cid,
                json!({"to": "+2782", "content": format!("after {i}")}),
            )
            .await;
    }
    let records = at_smsc(50).await;
    eventually("the paused node's bind gone", || async {
        let s = smsc.get("/sessions").await;
        let bound: Vec<&Value> = s
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["bind"].is_null())
            .collect();
        (bound.len() == 1 && bound[0]["id"] != first_session).then_some(())
    })
    .await;
    let records = records.as_array().unwrap();
    let late: Vec<&Value> = records[paused_at..]
        .iter()
        .filter(|r| r["session"] == first_session)
        .collect();
    assert!(late.is_empty(), "sent with the old lease: {late:?}");
    let texts: BTreeSet<&str> = records.iter().filter_map(|r| r["text"].as_str()).collect();
    assert_eq!(texts.len(), 50, "every message once at least");
    drop(nodes);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn inbound_webhooks_of_a_dead_node_are_delivered_once_by_another() {
    let prefix = prefix();
    let mut nodes: Vec<Server> = (0..2).map(|_| Server::start(&node(&prefix, 3.0))).collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    // The destination is down.
    let mo = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&mo)
        .await;
    live(&apis[0], 2).await;
    let (body, port) = telnet_body(&mo.uri());
    let cid = apis[0].create(body).await;
    let all = BTreeSet::from([cid.clone()]);
    let held = settled(&apis[0], 2, &all).await;
    let p = holder_index(&nodes, &held, &cid);
    let q = 1 - p;
    until("listening", Duration::from_secs(5), || listening(port)).await;
    let mut user = User::connect(port).await;
    for i in 0..10 {
        user.say(&format!("line {i}")).await;
    }
    // Each line tried (and refused) at least once: saved for retries on the holder.
    eventually("every line tried", || async {
        let tried: BTreeSet<String> = hits(&mo)
            .await
            .into_iter()
            .filter_map(|(_, _, b)| b["content"].as_str().map(str::to_string))
            .collect();
        (tried.len() >= 10).then_some(())
    })
    .await;
    nodes[p].kill();
    // A node restarts meanwhile: it takes nothing twice.
    nodes[p] = Server::start(&node(&prefix, 3.0));
    eventually("the channel held again", || async {
        let h = holdings(&apis[q]).await;
        h.values().any(|c| c.contains(&cid)).then_some(())
    })
    .await;
    // The destination comes back: every line is delivered, each once.
    mo.reset().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&mo)
        .await;
    let delivered = eventually("every line delivered", || async {
        let lines: Vec<String> = hits(&mo)
            .await
            .into_iter()
            .filter_map(|(_, _, b)| b["content"].as_str().map(str::to_string))
            .filter(|c| c.starts_with("line "))
            .collect();
        (lines.iter().collect::<BTreeSet<_>>().len() == 10).then_some(lines)
    })
    .await;
    // Retries still due would show up now as second deliveries.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = hits(&mo)
        .await
        .into_iter()
        .filter_map(|(_, _, b)| b["content"].as_str().map(str::to_string))
        .filter(|c| c.starts_with("line "))
        .count();
    assert_eq!(again, 10, "delivered more than once: {delivered:?}");
    drop(nodes);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn sigterm_of_an_smpp_holder_mid_burst_moves_it_without_duplicates_or_losses() {
    let prefix = prefix();
    let smsc = common::smsc::Smsc::start(&["--resp-delay-ms", "20"]);
    let mut nodes: Vec<Server> = (0..2).map(|_| Server::start(&node(&prefix, 3.0))).collect();
    let apis: Vec<Api> = nodes.iter().map(Server::api).collect();
    let events = receiver().await;
    live(&apis[0], 2).await;
    let cid = apis[0]
        .create(
            json!({"type": "smpp", "mo_url": format!("{}/mo", events.uri()), "window": 20,
            "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.smpp),
                       "system_id": "handover", "password": "pw",
                       "smpp_enquire_link_interval": 1}}),
        )
        .await;
    let held = settled(&apis[0], 2, &BTreeSet::from([cid.clone()])).await;
    let p = holder_index(&nodes, &held, &cid);
    let q = 1 - p;
    eventually("bound", || async {
        (binds(&smsc).await.get("handover") == Some(&1)).then_some(())
    })
    .await;
    // 1,500 sends through the node that stays, while the holder is stopped with SIGTERM.
    let total = 1500;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..8)
        .map(|w| {
            let (api, cid, sent, ev) = (
                apis[q].clone(),
                cid.clone(),
                sent.clone(),
                format!("{}/ev", events.uri()),
            );
            tokio::spawn(async move {
                let mut ids = vec![];
                let mut i = w;
                while i < total {
                    let body = json!({"to": "+27820000002", "content": format!("handover {i}"),
                                      "event_url": ev});
                    let v = api.send(&cid, body).await;
                    ids.push(v["message_id"].as_str().unwrap().to_string());
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    i += 8;
                }
                ids
            })
        })
        .collect();
    while sent.load(std::sync::atomic::Ordering::SeqCst) < total / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nodes[p].terminate();
    let mut ids = vec![];
    for s in senders {
        ids.extend(s.await.unwrap());
    }
    assert_eq!(
        ids.len(),
        total,
        "every send accepted by the node that stayed"
    );
    // Each message at the SMSC exactly once, each `submitted` event at its event_url once.
    let texts = eventually("every message at the SMSC", || async {
        let texts: Vec<String> = smsc
            .get("/messages")
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["text"].as_str().map(str::to_string))
            .collect();
        (texts.iter().collect::<BTreeSet<_>>().len() >= total).then_some(texts)
    })
    .await;
    let acked = eventually("every submitted event", || async {
        let acked: Vec<String> = hits(&events)
            .await
            .into_iter()
            .filter(|(_, _, b)| b["event_type"] == json!("submitted"))
            .filter_map(|(_, _, b)| b["message_id"].as_str().map(str::to_string))
            .collect();
        (acked.iter().collect::<BTreeSet<_>>().len() >= total).then_some(acked)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = smsc.get("/messages").await.as_array().unwrap().len();
    assert_eq!(texts.len(), total, "duplicates at the SMSC");
    assert_eq!(again, total, "duplicates at the SMSC, late");
    assert_eq!(acked.len(), total, "duplicate submitted events");
    drop(nodes);
    cleanup(&prefix).await;
}
