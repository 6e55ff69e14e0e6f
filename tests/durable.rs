//! The durable backends (RabbitMQ, Redis) through a real hornbill process: Junebug's Redis
//! layout, Vumi workers over AMQP, and nothing lost across kill -9, broker and Redis
//! restarts, or a webhook destination that is down across a hornbill restart.

mod common;
use common::vumi::VumiWorker;
use common::*;
use lapin::options::*;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn prefix() -> String {
    format!("t{}", hornbill::message::new_id())
}

/// A config on RabbitMQ + Redis (`amqp_url()`, and `redis` or else `redis_url()`).
fn durable(prefix: &str, redis: Option<&str>) -> String {
    let amqp = amqp_url();
    let redis = redis.map_or_else(redis_url, str::to_string);
    format!(
        "[bus]\nkind = \"amqp\"\nurl = \"{amqp}\"\n[store]\nkind = \"redis\"\nurl = \"{redis}\"\nkey_prefix = \"{prefix}\"\n{FAST_WEBHOOKS}"
    )
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Removes what a test left on the broker and in Redis.
async fn cleanup(prefix: &str, queues: &[String]) {
    if let Ok(conn) =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
    {
        if let Ok(ch) = conn.create_channel().await {
            for q in queues {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        let _ = conn.close(200, "bye".into()).await;
    }
    let mut r = redis(&redis_url()).await;
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
            .unwrap_or(());
    }
}

fn channel_queues(cid: &str) -> Vec<String> {
    ["outbound", "outbound.realtime", "inbound", "event"]
        .iter()
        .map(|s| format!("{cid}.{s}"))
        .collect()
}

/// A provider on a fixed port (started when the test wants it up).
async fn provider_on(port: u16) -> wiremock::MockServer {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mock = wiremock::MockServer::builder()
        .listener(listener)
        .start()
        .await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&mock)
        .await;
    mock
}

/// message_id -> how many times the provider got it.
async fn received_ids(mock: &wiremock::MockServer) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in mock.received_requests().await.unwrap_or_default() {
        if let Ok(v) = serde_json::from_slice::<Value>(&r.body)
            && let Some(id) = v["message_id"].as_str()
        {
            *out.entry(id.to_string()).or_default() += 1;
        }
    }
    out
}

/// Sends `n` messages with `clients` concurrent clients; returns the ids answered 201 and
/// how many were refused.
async fn send_many(api: &Api, cid: &str, n: usize, clients: usize) -> (Vec<String>, usize) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = format!("{}/channels/{cid}/messages/", api.base);
    let mut tasks = vec![];
    for _ in 0..clients {
        let (http, url, next, accepted, refused) = (
            api.http.clone(),
            url.clone(),
            next.clone(),
            accepted.clone(),
            refused.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let body = json!({"to": "+27820000000", "content": format!("m{i}")}).to_string();
                match http.post(&url).body(body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let v: Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .unwrap()
                            .push(v["result"]["message_id"].as_str().unwrap().to_string());
                    }
                    _ => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ids = accepted.lock().unwrap().clone();
    (ids, refused.load(std::sync::atomic::Ordering::SeqCst))
}

/// A `webhook` channel whose provider is at `url`.
async fn webhook_channel(api: &Api, url: &str) -> String {
    api.create(
        json!({"type": "webhook", "mo_url": "http://127.0.0.1:9/unused",
                      "config": {"url": url}}),
    )
    .await
}

/// Sends batches of `batch` messages for `secs`, in the background; answers the accepted
/// ids and how many sends were refused.
fn stream_for(
    api: &Api,
    cid: &str,
    secs: Duration,
    batch: usize,
) -> tokio::task::JoinHandle<(Vec<String>, usize)> {
    let api = Api {
        base: api.base.clone(),
        http: api.http.clone(),
    };
    let cid = cid.to_string();
    tokio::spawn(async move {
        let mut all = vec![];
        let mut refused = 0;
        let end = Instant::now() + secs;
        while Instant::now() < end {
            let (ids, r) = send_many(&api, &cid, batch, 4).await;
            all.extend(ids);
            refused += r;
        }
        (all, refused)
    })
}

/// Waits until the provider has every id; returns (missing, duplicates).
async fn await_delivery(
    mock: &wiremock::MockServer,
    ids: &[String],
    within: Duration,
) -> (usize, usize) {
    let end = Instant::now() + within;
    loop {
        let got = received_ids(mock).await;
        let missing = ids.iter().filter(|id| !got.contains_key(*id)).count();
        let duplicates: usize = got.values().map(|n| n - 1).sum();
        if missing == 0 || Instant::now() > end {
            return (missing, duplicates);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junebug_redis_is_picked_up_and_channels_are_saved_in_its_layout() {
    let prefix = prefix();
    let port = free_port();
    let mock = receiver().await;
    // What Junebug wrote for a channel: the set and the properties, nothing else.
    let junebug_id = uuid_v4();
    let mut r = redis(&redis_url()).await;
    let props = json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")},
                       "mo_url": format!("{}/mo", mock.uri()), "label": "from junebug"});
    let _: () = redis::cmd("SADD")
        .arg(format!("{prefix}:channels"))
        .arg(&junebug_id)
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:{junebug_id}:properties"))
        .arg(props.to_string())
        .query_async(&mut r)
        .await
        .unwrap();

    let server = Server::start(&durable(&prefix, None));
    let api = server.api();
    let ch = api.channel(&junebug_id).await;
    assert_eq!(ch["label"], "from junebug");
    let user = User::connect(port).await;
    let addr = user.address.clone();
    wait_hit(&mock, "inbound from the restored channel", |_, b| {
        b["from"] == json!(addr)
    })
    .await;

    let (body, _) = telnet_body(&mock.uri());
    let cid = api.create(body.clone()).await;
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:channels"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(members.contains(&cid));
    let saved: String = redis::cmd("GET")
        .arg(format!("{prefix}:{cid}:properties"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&saved).unwrap(), body);
    let sent = api.send(&cid, json!({"to": "x", "content": "y"})).await;
    let mid = sent["message_id"].as_str().unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{prefix}:{cid}:outbound_messages:{mid}"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!((172_700..=172_800).contains(&ttl), "outbound TTL {ttl}");
    drop(server);
    let mut queues = channel_queues(&cid);
    queues.extend(channel_queues(&junebug_id));
    cleanup(&prefix, &queues).await;
}

/// A `{cid}:status` entry as Junebug's status worker writes it: Vumi's `TransportStatus`
/// JSON, no `channel_id`.
fn junebug_status(component: &str, status: &str, kind: &str, message: &str) -> Value {
    json!({"status": status, "component": component, "helper_metadata": {},
           "timestamp": "2016-03-18 11:49:36.830534", "routing_metadata": {},
           "message_version": "20110921", "reasons": [], "details": {"smsc": "smsc1"},
           "message_type": "status_event", "type": kind, "message": message})
}

/// What Vumi's `TransportStatus.from_json` (Junebug's `StatusStore.get_statuses`) and
/// Junebug's `api_from_status` need of an entry; the reason it falls short, if it does.
fn vumi_status_problem(entry: &Value) -> Option<String> {
    let text = |k: &str| entry[k].as_str().map(str::to_string);
    if entry["message_version"] != "20110921" {
        return Some("message_version is not \"20110921\"".into());
    }
    if entry["message_type"] != "status_event" {
        return Some("message_type is not \"status_event\"".into());
    }
    let stamp = text("timestamp").unwrap_or_default();
    if chrono::NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S%.6f").is_err() {
        return Some(format!("timestamp {stamp:?} is not Vumi's format"));
    }
    for k in ["component", "type", "message"] {
        if text(k).is_none() {
            return Some(format!("{k} is not a string"));
        }
    }
    if !matches!(text("status").as_deref(), Some("ok" | "degraded" | "down")) {
        return Some("status is not ok, degraded or down".into());
    }
    for k in ["details", "helper_metadata", "routing_metadata"] {
        if !entry[k].is_object() {
            return Some(format!("{k} is not an object"));
        }
    }
    if !entry["reasons"].is_array() {
        return Some("reasons is not a list".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junebug_status_entries_are_read_and_hornbills_are_vumi_status_messages() {
    let prefix = prefix();
    let port = free_port();
    let mock = receiver().await;
    let cid = uuid_v4();
    let mut r = redis(&redis_url()).await;
    let props = json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")},
                       "mo_url": format!("{}/mo", mock.uri())});
    let _: () = redis::cmd("SADD")
        .arg(format!("{prefix}:channels"))
        .arg(&cid)
        .query_async(&mut r)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:{cid}:properties"))
        .arg(props.to_string())
        .query_async(&mut r)
        .await
        .unwrap();
    // A component the telnet transport does not report, so Junebug's entry stays as it was.
    let left = junebug_status("smpp", "down", "connection_lost", "Connection lost");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}:{cid}:status"))
        .arg("smpp")
        .arg(left.to_string())
        .query_async(&mut r)
        .await
        .unwrap();

    let server = Server::start(&durable(&prefix, None));
    let api = server.api();
    // Junebug's entry is shown (as JUNEBUG-API §2.5, named by the channel), beside hornbill's.
    let status = eventually("hornbill's own components beside Junebug's", || async {
        let st = api.channel(&cid).await["status"].clone();
        st["components"]["telnet"].is_object().then_some(st)
    })
    .await;
    assert_eq!(
        status["components"]["smpp"],
        json!({"component": "smpp", "channel_id": cid, "status": "down",
               "type": "connection_lost", "message": "Connection lost",
               "details": {"smsc": "smsc1"}}),
        "{status:#}"
    );
    assert_eq!(status["status"], "down", "the worst component: {status:#}");

    // Every entry hornbill wrote is a Vumi status message Junebug can read back.
    let written: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:{cid}:status"))
        .query_async(&mut r)
        .await
        .unwrap();
    for component in ["transport", "telnet"] {
        let entry: Value = serde_json::from_str(&written[component]).unwrap();
        assert_eq!(vumi_status_problem(&entry), None, "{component}: {entry:#}");
        assert_eq!(entry["component"], component);
        assert_eq!(entry["channel_id"], json!(cid), "hornbill's own field");
    }
    // Junebug's entry was not rewritten.
    let kept: Value = serde_json::from_str(&written["smpp"]).unwrap();
    assert_eq!(kept, left);
    drop(server);
    cleanup(&prefix, &channel_queues(&cid)).await;
}

fn uuid_v4() -> String {
    let h = hornbill::message::new_id();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vumi_application_worker_talks_to_a_channel_over_amqp() {
    let prefix = prefix();
    let q = format!("vumiapp_{}", &hornbill::message::new_id()[..8]);
    let server = Server::start(&durable(&prefix, None));
    let api = server.api();
    let port = free_port();
    let cid = api
        .create(json!({"type": "telnet", "amqp_queue": q,
                       "config": {"twisted_endpoint": format!("tcp:{port}"), "to_addr": "*99#"}}))
        .await;
    let mut worker = VumiWorker::connect(&amqp_url(), &q).await;
    let mut user = User::connect(port).await;
    user.say("hi app").await;
    let msg = worker.next("inbound", |v| v["content"] == "hi app").await;
    for key in [
        "message_version",
        "message_type",
        "message_id",
        "timestamp",
        "to_addr",
        "from_addr",
        "in_reply_to",
        "session_event",
        "content",
        "transport_name",
        "transport_type",
        "transport_metadata",
        "helper_metadata",
        "routing_metadata",
        "group",
    ] {
        assert!(msg.get(key).is_some(), "{key} missing from {msg}");
    }
    assert_eq!(msg["transport_name"], json!(cid));
    assert_eq!(msg["to_addr"], "*99#");
    assert_eq!(msg["session_event"], "resume");
    let reply_id = worker.reply(&msg, "hello from vumi").await;
    user.wait_line("hello from vumi").await;
    assert_queued_like_an_api_send(&api, &cid, &reply_id).await;
    let ack = worker
        .next("event", |v| v["user_message_id"] == json!(reply_id))
        .await;
    assert_eq!(ack["event_type"], "ack");
    assert_eq!(ack["message_type"], "event");
    assert!(ack["event_id"].as_str().unwrap().len() == 32);
    worker.close().await;
    drop(server);
    let mut queues = channel_queues(&cid);
    queues.extend(
        ["inbound", "event", "outbound"]
            .iter()
            .map(|k| format!("{q}.{k}")),
    );
    cleanup(&prefix, &queues).await;
}

#[tokio::test]
async fn a_vumi_worker_behind_a_router_destination_talks_over_amqp() {
    let prefix = prefix();
    let q = format!("vumidest_{}", &hornbill::message::new_id()[..8]);
    let server = Server::start(&durable(&prefix, None));
    let api = server.api();
    let port = free_port();
    let cid = api
        .create(json!({"type": "telnet",
                       "config": {"twisted_endpoint": format!("tcp:{port}"), "to_addr": "*99#"}}))
        .await;
    let rid = api
        .post(
            "/routers/",
            json!({"type": "from_address", "config": {"channel": cid}}),
        )
        .await
        .ok(201, "router created")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let did = api
        .post(
            &format!("/routers/{rid}/destinations/"),
            json!({"config": {"regular_expression": "99"}, "amqp_queue": q}),
        )
        .await
        .ok(201, "destination created")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut worker = VumiWorker::connect(&amqp_url(), &q).await;
    let mut user = User::connect(port).await;
    user.say("hi destination").await;
    let msg = worker
        .next("inbound", |v| v["content"] == "hi destination")
        .await;
    let reply_id = worker.reply(&msg, "hello from behind the router").await;
    user.wait_line("hello from behind the router").await;
    assert_queued_like_an_api_send(&api, &cid, &reply_id).await;
    let ack = worker
        .next("event", |v| v["user_message_id"] == json!(reply_id))
        .await;
    assert_eq!(ack["event_type"], "ack");
    // The reply's events are the destination's too.
    let status = eventually("the ack under the destination", || async {
        let s = api
            .get(&format!(
                "/routers/{rid}/destinations/{did}/messages/{reply_id}"
            ))
            .await
            .ok(200, "message status");
        (s["last_event_type"] == "submitted").then_some(s)
    })
    .await;
    assert_eq!(status["events"][0]["channel_id"], json!(cid));
    worker.close().await;
    drop(server);
    let mut queues = channel_queues(&cid);
    queues.extend(
        ["inbound", "event", "outbound"]
            .iter()
            .map(|k| format!("{q}.{k}")),
    );
    cleanup(&prefix, &queues).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_that_was_accepted() {
    let prefix = prefix();
    let config = durable(&prefix, None);
    let provider_port = free_port();
    let server = Server::start(&config);
    let api = server.api();
    let cid = webhook_channel(&api, &format!("http://127.0.0.1:{provider_port}/send")).await;
    let window = 64;
    let (accepted, refused) = send_many(&api, &cid, 20_000, 32).await;
    assert_eq!(refused, 0);
    // SIGKILL, mid-retry: the provider has been down all along.
    drop(server);
    let server = Server::start(&config);
    let provider = provider_on(provider_port).await;
    let (missing, duplicates) =
        await_delivery(&provider, &accepted, Duration::from_secs(180)).await;
    println!(
        "kill -9: accepted {}, missing {missing}, duplicates {duplicates} (window {window})",
        accepted.len()
    );
    assert_eq!(missing, 0, "accepted messages lost");
    assert!(
        duplicates <= window,
        "{duplicates} duplicates, more than the window"
    );
    drop(server);
    cleanup(&prefix, &channel_queues(&cid)).await;
}

/// Starts the broker's app again however the test ends, so later tests find it running.
struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

fn rabbitmqctl(cmd: &str) {
    let ok = Command::new("rabbitmqctl")
        .arg(cmd)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "rabbitmqctl {cmd} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_during_a_stream_loses_nothing() {
    let prefix = prefix();
    let provider = receiver().await;
    let server = Server::start(&durable(&prefix, None));
    let api = server.api();
    let cid = webhook_channel(&api, &format!("{}/send", provider.uri())).await;
    let stream = stream_for(&api, &cid, Duration::from_secs(12), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _back = BrokerBack;
    rabbitmqctl("stop_app");
    let down = eventually("broker down in status", || async {
        let st = api.channel(&cid).await["status"].clone();
        (st["components"]["broker"]["status"] == "down").then_some(st)
    })
    .await;
    assert_eq!(down["status"], "down");
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl("start_app");
    let (mut accepted, refused) = stream.await.unwrap();
    // Work resumes by itself: the broker comes back in status and sends are accepted again.
    // start_app can take a while on a busy machine: allow two minutes.
    let back_by = Instant::now() + Duration::from_secs(120);
    loop {
        let st = api.channel(&cid).await["status"].clone();
        if st["components"]["broker"]["status"] == "ok" {
            break;
        }
        assert!(
            Instant::now() < back_by,
            "the broker never came back in status: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (after, refused_after) = send_many(&api, &cid, 100, 4).await;
    assert_eq!(refused_after, 0, "sends refused after the broker came back");
    accepted.extend(after);
    let (missing, duplicates) = await_delivery(&provider, &accepted, Duration::from_secs(60)).await;
    println!(
        "rabbitmq restart: accepted {}, refused while down {refused}, missing {missing}, duplicates {duplicates}",
        accepted.len()
    );
    assert!(refused > 0, "the outage should have refused some sends");
    assert_eq!(missing, 0, "accepted messages lost");
    drop(server);
    cleanup(&prefix, &channel_queues(&cid)).await;
}

struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed by shared/services/start)");
        let end = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "private redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateRedis { port, child }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_during_a_stream_loses_nothing() {
    let prefix = prefix();
    let port = free_port();
    let redis_server = PrivateRedis::start(port);
    let provider = receiver().await;
    let url = format!("redis://127.0.0.1:{}/0", redis_server.port);
    let server = Server::start(&durable(&prefix, Some(&url)));
    let api = server.api();
    let cid = webhook_channel(&api, &format!("{}/send", provider.uri())).await;
    let stream = stream_for(&api, &cid, Duration::from_secs(8), 100);
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(redis_server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let redis_server = PrivateRedis::start(port);
    let (mut accepted, refused) = stream.await.unwrap();
    // Work resumes by itself once Redis is back.
    let (after, refused_after) = send_many(&api, &cid, 100, 4).await;
    assert_eq!(refused_after, 0, "sends refused after Redis came back");
    accepted.extend(after);
    let (missing, duplicates) = await_delivery(&provider, &accepted, Duration::from_secs(60)).await;
    println!(
        "redis restart: accepted {}, refused while down {refused}, missing {missing}, duplicates {duplicates}",
        accepted.len()
    );
    assert!(refused > 0, "the outage should have refused some sends");
    assert_eq!(missing, 0, "accepted messages lost");
    drop(server);
    drop(redis_server);
    cleanup(&prefix, &channel_queues(&cid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_waits_for_mo_url_across_a_restart() {
    let prefix = prefix();
    let config = durable(&prefix, None);
    let mo_port = free_port();
    let server = Server::start(&config);
    let api = server.api();
    let port = free_port();
    let cid = api
        .create(
            json!({"type": "telnet", "mo_url": format!("http://127.0.0.1:{mo_port}/mo"),
                       "config": {"twisted_endpoint": format!("tcp:{port}")}}),
        )
        .await;
    let mut user = User::connect(port).await;
    for i in 0..5 {
        user.say(&format!("line {i}")).await;
    }
    // new + 5 lines, each tried at least once against the dead mo_url
    let tried: HashSet<String> = eventually("six failed deliveries", || async {
        let ids: HashSet<String> = api
            .logs(&cid)
            .await
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .unwrap()
                    .contains("failed: connection failed")
            })
            .filter_map(|e| e["message_id"].as_str().map(str::to_string))
            .collect();
        (ids.len() >= 6).then_some(ids)
    })
    .await;
    drop(user);
    drop(server); // SIGKILL
    let server = Server::start(&config);
    let mo = provider_on(mo_port).await;
    let ids: Vec<String> = tried.into_iter().collect();
    let (missing, _) = await_delivery(&mo, &ids, Duration::from_secs(30)).await;
    assert_eq!(missing, 0, "inbound messages lost across the restart");
    let got = mo.received_requests().await.unwrap();
    let lines: HashSet<String> = got
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|v| v["content"].as_str().map(str::to_string))
        .collect();
    for i in 0..5 {
        assert!(lines.contains(&format!("line {i}")), "{lines:?}");
    }
    drop(server);
    cleanup(&prefix, &channel_queues(&cid)).await;
}
