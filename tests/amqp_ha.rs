//! RabbitMQ high availability (issue 15 item 5): `[bus] url` naming several brokers, tried
//! in order and round the list on a reconnect, and quorum queues through a vhost whose
//! default queue type is `quorum`, beside Vumi workers that keep declaring plain durable
//! queues.
//!
//! There is one local broker: the "nodes" of a cluster are TCP relays to it, each on a port
//! of its own, which the test stops (closing every connection through it, and refusing new
//! ones) as a node that goes away.

mod common;
use common::vumi::VumiWorker;
use common::*;
use lapin::options::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// A config on RabbitMQ at `bus_url` and Redis under `prefix`.
fn config(bus_url: &str, prefix: &str) -> String {
    let redis = redis_url();
    format!(
        "[bus]\nkind = \"amqp\"\nurl = \"{bus_url}\"\n[store]\nkind = \"redis\"\nurl = \"{redis}\"\nkey_prefix = \"{prefix}\"\n{FAST_WEBHOOKS}"
    )
}

/// Removes the Redis keys under `prefix`, and `queues` from the broker at `amqp`.
async fn cleanup(prefix: &str, amqp: &str, queues: &[String]) {
    if !queues.is_empty()
        && let Ok(conn) =
            lapin::Connection::connect(amqp, lapin::ConnectionProperties::default()).await
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
    if let Ok(client) = redis::Client::open(redis_url())
        && let Ok(mut r) = client.get_multiplexed_async_connection().await
    {
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

/// What a test leaves on the broker and in Redis, removed when dropped, however the test
/// ends. Made before the hornbill process, so that it is dropped after it.
struct Leftovers {
    prefix: String,
    amqp: String,
    queues: Vec<String>,
}

impl Leftovers {
    fn new(amqp: &str) -> Leftovers {
        Leftovers {
            prefix: format!("t{}", hornbill::message::new_id()),
            amqp: amqp.to_string(),
            queues: Vec::new(),
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let (prefix, amqp) = (self.prefix.clone(), self.amqp.clone());
        let queues = std::mem::take(&mut self.queues);
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(cleanup(&prefix, &amqp, &queues))
        })
        .join();
    }
}

fn channel_queues(cid: &str) -> Vec<String> {
    ["outbound", "outbound.realtime", "inbound", "event"]
        .iter()
        .map(|s| format!("{cid}.{s}"))
        .collect()
}

/// Waits until hornbill's output has `text`.
async fn wait_output(server: &Server, text: &str) {
    let end = Instant::now() + WAIT + WAIT;
    while !server.output().contains(text) {
        assert!(
            Instant::now() < end,
            "{text:?} never appeared; output:\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How often hornbill's output has `text`.
fn count_output(server: &Server, text: &str) -> usize {
    server.output().matches(text).count()
}

/// Waits until `queues` (on `amqp_url()`'s vhost) hold no message, ready or unacknowledged:
/// what was sent through them is settled, so cutting the connection now redelivers nothing.
async fn settled(queues: &[String]) {
    let path = url::Url::parse(&amqp_url()).unwrap().path().to_string();
    let vhost = match path.trim_start_matches('/') {
        "" | "%2f" | "%2F" => "/".to_string(),
        v => v.to_string(),
    };
    eventually("the channel's queues settled", || async {
        let listed = rabbitmqctl_out(&[
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            &vhost,
            "name",
            "messages",
        ]);
        let busy = listed.lines().any(|l| {
            l.split_once('\t')
                .is_some_and(|(name, n)| queues.contains(&name.to_string()) && n.trim() != "0")
        });
        (!busy).then_some(())
    })
    .await;
}

/// A node of the "cluster": a TCP relay on `port` to the test broker. Stopping it closes
/// the listener and every connection through it.
struct Relay {
    port: u16,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start(port: u16) -> Relay {
        let target = url::Url::parse(&amqp_url()).unwrap();
        let target = format!(
            "{}:{}",
            target.host_str().unwrap(),
            target.port().unwrap_or(5672)
        );
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        let listener = socket.listen(64).unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut until_stop = stopped.clone();
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    got = listener.accept() => match got { Ok(c) => c, Err(_) => return },
                    _ = until_stop.changed() => return,
                };
                let target = target.clone();
                let mut until_stop = stopped.clone();
                tokio::spawn(async move {
                    let Ok(mut broker) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut broker) => {}
                        _ = until_stop.changed() => {}
                    }
                    // Both sockets close here, as when the node goes away.
                });
            }
        });
        Relay { port, stop }
    }

    fn url(&self) -> String {
        amqp_url_with(Some("127.0.0.1"), Some(self.port), None)
    }

    fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The line hornbill logs once connected to `url` (shown without its password).
fn connected_to(url: &str) -> String {
    format!("Connected to RabbitMQ at {}.", hornbill::redact::url(url))
}

#[test]
fn check_config_names_the_bad_address_of_a_list_without_its_password() {
    let dir = TempDir::new();
    let path = dir.0.join("bus.toml");
    std::fs::write(
        &path,
        "[bus]\nkind = \"amqp\"\nurl = \"amqp://guest:s3cret@rmq1:5672/%2F, http://guest:s3cret@rmq2:5672/%2F,amqp://guest:s3cret@rmq3:5672/%2F\"\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("[bus] url, address #2: http://guest:***@rmq2:5672/%2F is not an AMQP URL"),
        "{err}"
    );
    assert_eq!(err.matches("[bus] url").count(), 1, "only #2 is bad: {err}");
    assert!(
        !err.contains("s3cret") && !out.contains("s3cret"),
        "{out}{err}"
    );
    // Good addresses (a password holding a comma included) pass.
    std::fs::write(
        &path,
        "[bus]\nkind = \"amqp\"\nurl = \"amqp://guest:s3cret@rmq1:5672/%2F, amqp://guest:s3,cret@rmq2:5672/%2F\"\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_address_is_skipped_and_messages_reach_the_user() {
    let dead = "amqp://guest:deadsecret@127.0.0.1:1/%2f";
    let live = amqp_url();
    let mut leftovers = Leftovers::new(&live);
    let server = Server::start(&config(&format!("{dead},{live}"), &leftovers.prefix));
    let api = server.api();
    let mo = receiver().await;
    let (body, port) = telnet_body(&mo.uri());
    let cid = api.create(body).await;
    leftovers.queues.extend(channel_queues(&cid));
    let user = User::connect_seen(port, &mo).await;
    api.send(
        &cid,
        json!({"to": user.address, "content": "through the second broker"}),
    )
    .await;
    user.wait_line("through the second broker").await;
    let output = server.output();
    assert!(
        output.contains("RabbitMQ address unreachable")
            && output.contains("amqp://guest:***@127.0.0.1:1/%2f"),
        "the dead address is not reported: {output}"
    );
    assert!(output.contains(&connected_to(&live)), "{output}");
    assert!(
        !output.contains("deadsecret"),
        "a password in the logs: {output}"
    );
}

/// Three "nodes" A, B, C. Hornbill starts on A; A goes away and it moves to B; A comes back
/// and B goes away: it moves to C (the address after B), not back to the first of the list.
/// Messages reach the telnet user on each node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_node_goes_away_hornbill_moves_to_the_next_address() {
    let mut leftovers = Leftovers::new(&amqp_url());
    let ports = [free_port(), free_port(), free_port()];
    let a = Relay::start(ports[0]).await;
    let b = Relay::start(ports[1]).await;
    let c = Relay::start(ports[2]).await;
    let list = format!("{},{},{}", a.url(), b.url(), c.url());
    let server = Server::start(&config(&list, &leftovers.prefix));
    let api = server.api();
    wait_output(&server, &connected_to(&a.url())).await;
    let mo = receiver().await;
    let (body, port) = telnet_body(&mo.uri());
    let cid = api.create(body).await;
    leftovers.queues.extend(channel_queues(&cid));
    let user = User::connect_seen(port, &mo).await;
    api.send(&cid, json!({"to": user.address, "content": "via A"}))
        .await;
    user.wait_line("via A").await;
    // Each cut comes once what was sent is settled: a delivery not yet acknowledged when the
    // connection goes is delivered again (at least once), which is not what this test shows.
    settled(&leftovers.queues).await;

    a.stop();
    wait_output(&server, &connected_to(&b.url())).await;
    api.send(&cid, json!({"to": user.address, "content": "via B"}))
        .await;
    user.wait_line("via B").await;
    settled(&leftovers.queues).await;

    let a = Relay::start(ports[0]).await;
    let on_a = count_output(&server, &connected_to(&a.url()));
    b.stop();
    wait_output(&server, &connected_to(&c.url())).await;
    assert_eq!(
        count_output(&server, &connected_to(&a.url())),
        on_a,
        "went back to the first address instead of the one after B"
    );
    api.send(&cid, json!({"to": user.address, "content": "via C"}))
        .await;
    user.wait_line("via C").await;
    assert_eq!(user.received(), ["via A", "via B", "via C"]);
    let output = server.output();
    assert!(output.contains("connection lost"), "{output}");
    assert!(
        !output.contains(":guest@"),
        "a password in the logs: {output}"
    );
}

/// A vhost whose default queue type is quorum: hornbill and a Vumi worker, both declaring
/// plain durable queues, get quorum queues and talk both ways; deleting the channel removes
/// its (empty, quorum) queues without breaking hornbill's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_quorum_vhost_vumi_workers_and_hornbill_talk_both_ways() {
    let vhost = Vhost::quorum();
    let url = vhost.url();
    // The vhost goes with its queues; Redis keeps what is under the prefix.
    let leftovers = Leftovers::new(&url);
    let server = Server::start(&config(&url, &leftovers.prefix));
    let api = server.api();
    let q = format!("vumiapp_{}", &hornbill::message::new_id()[..8]);
    let mo = receiver().await;
    let (mut body, port) = telnet_body(&mo.uri());
    body["amqp_queue"] = json!(q);
    body.as_object_mut().unwrap().remove("mo_url");
    let cid = api.create(body).await;
    let mut worker = VumiWorker::connect(&url, &q).await;
    let mut user = User::connect(port).await;
    user.say("hi quorum app").await;
    let msg = worker
        .next("inbound", |v| v["content"] == "hi quorum app")
        .await;
    assert_eq!(msg["transport_name"], json!(cid));
    let reply_id = worker.reply(&msg, "hello from a quorum queue").await;
    user.wait_line("hello from a quorum queue").await;
    let ack = worker
        .next("event", |v| v["user_message_id"] == json!(reply_id))
        .await;
    assert_eq!(ack["event_type"], "ack");
    // An API send takes the channel's quorum outbound queue too.
    api.send(&cid, json!({"to": user.address, "content": "from the API"}))
        .await;
    user.wait_line("from the API").await;

    let types = vhost.queue_types();
    for name in [
        format!("{q}.inbound"),
        format!("{q}.event"),
        format!("{q}.outbound"),
        format!("{cid}.outbound"),
        format!("{cid}.outbound.realtime"),
    ] {
        assert_eq!(
            types.get(&name).map(String::as_str),
            Some("quorum"),
            "{name}: {types:?}"
        );
    }
    assert!(
        types.values().all(|t| t == "quorum"),
        "a queue that is not quorum: {types:?}"
    );
    // The broker shows which connection is hornbill's.
    let connections = rabbitmqctl_out(&["list_connections", "-q", "vhost", "client_properties"]);
    assert!(
        connections
            .lines()
            .any(|l| l.starts_with(&format!("{}\t", vhost.name)) && l.contains("hornbill ")),
        "{connections}"
    );

    // Deleting the channel removes its empty queues (quorum queues refuse a conditional
    // delete, with an error that would close hornbill's whole connection).
    worker.close().await;
    let r = api.delete(&format!("/channels/{cid}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let gone = channel_queues(&cid);
    let left = eventually("the channel's queues removed", || async {
        let types = vhost.queue_types();
        let left: Vec<&String> = gone.iter().filter(|q| types.contains_key(*q)).collect();
        (left.is_empty()).then_some(types)
    })
    .await;
    assert!(left.contains_key(&format!("{q}.outbound")), "{left:?}");
    assert!(
        !server.output().contains("connection lost"),
        "hornbill lost its connection: {}",
        server.output()
    );
    // And the bus still carries messages: a new channel works at once.
    let (body, port) = telnet_body(&mo.uri());
    let cid2 = api.create(body).await;
    let user2 = User::connect_seen(port, &mo).await;
    api.send(&cid2, json!({"to": user2.address, "content": "still here"}))
        .await;
    user2.wait_line("still here").await;
}
