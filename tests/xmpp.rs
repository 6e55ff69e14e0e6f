//! Channel type `xmpp` against a real Prosody (Debian's `prosody`), one per test on a free
//! port: a user's chat to the application and the reply back, subscriptions and presence, a
//! restarted and a frozen server (down, then up, and messages flow again), the rate limit
//! holding a flood, StartTLS, the protocol log, and the password kept out of everything.

mod common;
use common::prosody::{ChatUser, Prosody, self_signed};
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_xmpp::parsers::presence::{Presence, Show, Type as PresenceType};

const BOT_PW: &str = "b0t-Pa55word-xyz";
const ALICE_PW: &str = "alice-pw-1234";
const BOT: &str = "bot@localhost";
const ALICE: &str = "alice@localhost";

/// A Prosody with the bot's and alice's accounts.
fn server_with_accounts() -> Prosody {
    let prosody = Prosody::start();
    prosody.register("bot", BOT_PW);
    prosody.register("alice", ALICE_PW);
    prosody
}

fn config(prosody: &Prosody, extra: Value) -> Value {
    let mut config = json!({
        "host": "127.0.0.1", "port": prosody.port, "username": BOT, "password": BOT_PW,
        "status": "chat", "status_message": "Ask me anything",
        "insecure_loopback": true, "initial_reconnect_delay": 0.2,
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

/// Creates an xmpp channel (`body` adds channel keys) and waits until it is connected.
async fn xmpp_channel(api: &Api, prosody: &Prosody, extra: Value, body: Value) -> String {
    let mut channel = json!({"type": "xmpp", "config": config(prosody, extra)});
    for (k, v) in body.as_object().unwrap() {
        channel[k] = v.clone();
    }
    let cid = api.create(channel).await;
    connected(api, &cid).await;
    cid
}

async fn connected(api: &Api, cid: &str) -> Value {
    let deadline = Instant::now() + WAIT + WAIT;
    loop {
        let st = api.channel(cid).await["status"]["components"]["xmpp"].clone();
        if st["type"] == "connected" {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "not connected: {st}; log: {:#?}",
            log_lines(api, cid).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn story(api: &Api, cid: &str, mid: &str) -> Vec<String> {
    api.get(&format!("/channels/{cid}/messages/{mid}/logs"))
        .await
        .ok(200, "logs retrieved")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn log_lines(api: &Api, cid: &str) -> Vec<String> {
    api.logs(cid)
        .await
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_users_chat_reaches_the_application_and_the_reply_reaches_the_user() {
    let prosody = server_with_accounts();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = xmpp_channel(
        &api,
        &prosody,
        json!({}),
        json!({"mo_url": format!("{}/mo", hooks.uri())}),
    )
    .await;
    let alice = ChatUser::connect(prosody.port, "alice", ALICE_PW).await;

    // A chat state without a body is no message; the chat after it is.
    alice.send(
        tokio_xmpp::parsers::message::Message::chat(Some(tokio_xmpp::jid::Jid::new(BOT).unwrap()))
            .with_payload(tokio_xmpp::parsers::chatstates::ChatState::Composing),
    );
    alice.say(BOT, "  hello bot  ");
    let (path, _, inbound) = wait_hit(&hooks, "the chat at mo_url", |_, b| {
        b["content"] == "hello bot"
    })
    .await;
    assert_eq!(path, "/mo");
    assert_eq!(inbound["from"], ALICE, "the sender's bare JID");
    assert_eq!(inbound["to"], BOT, "our bare JID");
    assert_eq!(inbound["channel_id"], json!(cid));
    let mos: Vec<Value> = hits(&hooks)
        .await
        .into_iter()
        .filter(|(p, _, _)| p == "/mo")
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(mos.len(), 1, "the chat state is not a message: {mos:?}");

    // The reply goes back to alice from the bot, and is submitted.
    let mid = inbound["message_id"].as_str().unwrap();
    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &cid,
            json!({"reply_to": mid, "content": "hi alice <3 & more", "event_url": ev}),
        )
        .await;
    assert_eq!(sent["to"], ALICE);
    assert_eq!(sent["from"], BOT);
    let (_, from) = alice.wait_message("hi alice <3 & more").await;
    assert!(from.starts_with(BOT), "{from}");
    let sent_id = sent["message_id"].clone();
    let (_, _, event) = wait_hit(&hooks, "submitted", |p, b| {
        p == "/ev" && b["message_id"] == sent_id
    })
    .await;
    assert_eq!(event["event_type"], "submitted");

    // A new message to a JID with a resource goes to the bare JID.
    api.send(
        &cid,
        json!({"to": "alice@localhost/elsewhere", "content": "second"}),
    )
    .await;
    alice.wait_message("second").await;

    // An address that is no JID is rejected with the reason; a user the server does not
    // know bounces, and that is the message's delivery_failed.
    let bad = api
        .send(
            &cid,
            json!({"to": "not a jid@", "content": "x", "event_url": ev}),
        )
        .await;
    let bad_id = bad["message_id"].clone();
    let (_, _, nack) = wait_hit(&hooks, "rejected", |p, b| {
        p == "/ev" && b["message_id"] == bad_id
    })
    .await;
    assert_eq!(nack["event_type"], "rejected");
    assert!(
        nack["event_details"]["reason"]
            .as_str()
            .unwrap()
            .contains("not a JID"),
        "{nack}"
    );
    let lost = api
        .send(
            &cid,
            json!({"to": "nobody@localhost", "content": "anyone?", "event_url": ev}),
        )
        .await;
    let lost_id = lost["message_id"].clone();
    wait_hit(&hooks, "delivery_failed for the bounce", |p, b| {
        p == "/ev" && b["message_id"] == lost_id && b["event_type"] == "delivery_failed"
    })
    .await;
    assert_eq!(alice.messages().len(), 2, "{:?}", alice.messages());
}

#[tokio::test]
async fn subscriptions_are_accepted_and_the_presence_announced() {
    let prosody = server_with_accounts();
    let server = Server::start("");
    let api = server.api();
    let cid = xmpp_channel(
        &api,
        &prosody,
        json!({"presence_interval": 1}),
        json!({"mo_url": "http://127.0.0.1:9/mo"}),
    )
    .await;
    let alice = ChatUser::connect(prosody.port, "alice", ALICE_PW).await;
    alice.send(Presence::subscribe().with_to(tokio_xmpp::jid::Jid::new(BOT).unwrap()));
    let from_bot = |p: &Presence| {
        p.from
            .as_ref()
            .is_some_and(|f| f.to_bare().to_string() == BOT)
    };
    alice
        .wait_presence("subscribed from the bot", |p| {
            from_bot(p) && p.type_ == PresenceType::Subscribed
        })
        .await;
    alice
        .wait_presence("the bot subscribing back", |p| {
            from_bot(p) && p.type_ == PresenceType::Subscribe
        })
        .await;
    let available = alice
        .wait_presence("the bot's presence", |p| {
            from_bot(p) && p.type_ == PresenceType::None
        })
        .await;
    assert_eq!(available.show, Some(Show::Chat));
    assert_eq!(
        available.statuses.values().next().map(String::as_str),
        Some("Ask me anything")
    );
    // Announced again every presence_interval.
    eventually("three announcements", || async {
        let n = alice
            .presences()
            .iter()
            .filter(|p| from_bot(p) && p.type_ == PresenceType::None)
            .count();
        (n >= 3).then_some(())
    })
    .await;
    eventually("the acceptance in the channel log", || async {
        log_lines(&api, &cid)
            .await
            .iter()
            .any(|l| {
                l == "Accepted the subscription request of alice@localhost and subscribed back"
            })
            .then_some(())
    })
    .await;
}

/// The status events at `status_url` for the xmpp component: (status, type).
async fn statuses(hooks: &wiremock::MockServer) -> Vec<(String, String)> {
    hits(hooks)
        .await
        .into_iter()
        .filter(|(p, _, b)| p == "/status" && b["component"] == "xmpp")
        .map(|(_, _, b)| {
            (
                b["status"].as_str().unwrap_or_default().to_string(),
                b["type"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_restarted_server_shows_down_then_up_and_messages_flow_again() {
    let mut prosody = server_with_accounts();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = xmpp_channel(
        &api,
        &prosody,
        json!({"ping_interval": 1}),
        json!({"mo_url": format!("{}/mo", hooks.uri()),
               "status_url": format!("{}/status", hooks.uri())}),
    )
    .await;
    eventually("connected at status_url", || async {
        statuses(&hooks)
            .await
            .contains(&("ok".into(), "connected".into()))
            .then_some(())
    })
    .await;

    prosody.stop();
    let down = eventually("down in the channel status", || async {
        let st = api.channel(&cid).await["status"]["components"]["xmpp"].clone();
        (st["status"] == "down").then_some(st)
    })
    .await;
    assert!(
        ["connection_lost", "connecting", "connect_failed"]
            .contains(&down["type"].as_str().unwrap()),
        "{down}"
    );
    // Messages sent while it is down wait for the connection.
    let ev = format!("{}/ev", hooks.uri());
    let waiting = api
        .send(
            &cid,
            json!({"to": ALICE, "content": "sent while down", "event_url": ev}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    prosody.run();
    connected(&api, &cid).await;
    // At status_url, in order: up, down (the connection lost), up again.
    let seen = eventually("connected again at status_url", || async {
        let seen = statuses(&hooks).await;
        let ok = ("ok".to_string(), "connected".to_string());
        let lost = seen
            .iter()
            .position(|s| s.0 == "down" && s.1 == "connection_lost")?;
        (seen.iter().rposition(|s| *s == ok)? > lost).then_some(seen)
    })
    .await;
    let first_up = seen.iter().position(|s| s.1 == "connected").unwrap();
    let lost = seen.iter().position(|s| s.1 == "connection_lost").unwrap();
    assert!(first_up < lost, "{seen:?}");
    assert!(
        seen[lost..]
            .iter()
            .all(|s| s.0 == "down" || s.1 == "connected"),
        "{seen:?}"
    );

    let alice = ChatUser::connect(prosody.port, "alice", ALICE_PW).await;
    // What waited is delivered (the server kept it while alice was away).
    alice.wait_message("sent while down").await;
    let waiting_id = waiting["message_id"].clone();
    wait_hit(&hooks, "the waiting message submitted", |p, b| {
        p == "/ev" && b["message_id"] == waiting_id && b["event_type"] == "submitted"
    })
    .await;
    alice.say(BOT, "after the restart");
    wait_hit(&hooks, "a chat after the restart", |p, b| {
        p == "/mo" && b["content"] == "after the restart"
    })
    .await;
    api.send(&cid, json!({"to": ALICE, "content": "and back"}))
        .await;
    alice.wait_message("and back").await;
    let logs = log_lines(&api, &cid).await;
    assert!(
        logs.iter()
            .any(|l| l.starts_with("XMPP session ended; reconnecting in")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_frozen_server_is_noticed_by_the_unanswered_ping() {
    let prosody = server_with_accounts();
    let server = Server::start("");
    let api = server.api();
    let cid = xmpp_channel(
        &api,
        &prosody,
        json!({"ping_interval": 0.5}),
        json!({"mo_url": "http://127.0.0.1:9/mo"}),
    )
    .await;
    // Stopped, not closed: the TCP connection stays up, nothing answers.
    prosody.signal("STOP");
    let lost = eventually("the dead link noticed", || async {
        let st = api.channel(&cid).await["status"]["components"]["xmpp"].clone();
        (st["status"] == "down").then_some(st)
    })
    .await;
    prosody.signal("CONT");
    let logs = log_lines(&api, &cid).await;
    assert!(
        logs.iter().any(|l| l.contains("No answer to ping")),
        "{lost} {logs:#?}"
    );
    connected(&api, &cid).await;
    let alice = ChatUser::connect(prosody.port, "alice", ALICE_PW).await;
    api.send(&cid, json!({"to": ALICE, "content": "still here"}))
        .await;
    alice.wait_message("still here").await;
}

#[tokio::test]
async fn a_flood_of_sends_is_held_to_the_rate_limit() {
    let prosody = server_with_accounts();
    let server = Server::start("");
    let api = server.api();
    let cid = xmpp_channel(
        &api,
        &prosody,
        json!({}),
        json!({"mo_url": "http://127.0.0.1:9/mo", "rate_limit_count": 5, "rate_limit_window": 1}),
    )
    .await;
    let alice = ChatUser::connect(prosody.port, "alice", ALICE_PW).await;
    let start = Instant::now();
    for i in 0..20 {
        api.send(&cid, json!({"to": ALICE, "content": format!("m{i}")}))
            .await;
    }
    let accepted = start.elapsed().as_secs_f64();
    let (last, _) = alice.wait_message("m19").await;
    let span = last.duration_since(start).as_secs_f64();
    // 5 at once, then 5 a second: the 20th goes out after about 3 s.
    assert!(
        accepted < 2.5,
        "the API held its answers for {accepted:.2} s"
    );
    assert!(
        (2.7..10.0).contains(&span),
        "20 messages at 5/s took {span:.2} s"
    );
    let bodies: Vec<String> = alice.messages().into_iter().map(|m| m.2).collect();
    assert_eq!(bodies, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    // After the first burst of 5, the other 15 at 5 a second: about 3 s.
    let times: Vec<f64> = alice
        .messages()
        .iter()
        .map(|m| m.0.duration_since(start).as_secs_f64())
        .collect();
    let tail = times[19] - times[4];
    assert!(
        tail >= 2.4,
        "15 messages after the burst took {tail:.2} s: {times:?}"
    );
}

#[tokio::test]
async fn the_protocol_log_tells_each_stanza_and_never_the_password() {
    let prosody = server_with_accounts();
    let hooks = receiver().await;
    // tokio-xmpp's own byte trace asked for: it stays off.
    let server = Server::start_with_env("", &[("RUST_LOG", "info,tokio_xmpp=trace")]);
    let api = server.api();
    let cid = xmpp_channel(
        &api,
        &prosody,
        json!({"ping_interval": 1}),
        json!({"mo_url": format!("{}/mo", hooks.uri()), "log_protocol": true}),
    )
    .await;
    let alice = ChatUser::connect(prosody.port, "alice", ALICE_PW).await;
    alice.send(Presence::subscribe().with_to(tokio_xmpp::jid::Jid::new(BOT).unwrap()));
    alice.say(BOT, "log me");
    let (_, _, inbound) = wait_hit(&hooks, "the chat", |_, b| b["content"] == "log me").await;
    let mid = inbound["message_id"].as_str().unwrap();
    let lines = story(&api, &cid, mid).await;
    assert!(
        lines.iter().any(|l| l
            .starts_with("<< message from=alice@localhost/phone to=bot@localhost")
            && l.contains(" type=chat")
            && l.ends_with("body=\"log me\"")),
        "{lines:#?}"
    );
    let sent = api
        .send(&cid, json!({"reply_to": mid, "content": "logged reply"}))
        .await;
    alice.wait_message("logged reply").await;
    let sent_id = sent["message_id"].as_str().unwrap();
    let lines = story(&api, &cid, sent_id).await;
    assert!(
        lines.contains(&format!(
            ">> message to=alice@localhost type=chat id={sent_id} body=\"logged reply\""
        )),
        "{lines:#?}"
    );
    let log = eventually("a ping and its answer in the log", || async {
        let lines = log_lines(&api, &cid).await;
        let ping = lines
            .iter()
            .any(|l| l.starts_with(">> iq type=get id=ping-") && l.ends_with("to=localhost ping"));
        let pong = lines
            .iter()
            .any(|l| l.starts_with("<< iq type=result id=ping-"));
        (ping && pong).then_some(lines)
    })
    .await;
    for want in [
        "<< presence from=alice@localhost to=bot@localhost type=subscribe",
        ">> presence to=alice@localhost type=subscribed",
        ">> presence show=chat status=\"Ask me anything\"",
        ">> sasl auth (credentials not shown)",
        "<< sasl success",
        ">> stream:stream to=localhost",
    ] {
        assert!(log.iter().any(|l| l.starts_with(want)), "{want}: {log:#?}");
    }
    assert!(
        log.iter()
            .any(|l| l.starts_with("<< iq type=result id=bind-1")
                && l.contains("bind jid=bot@localhost/")),
        "{log:#?}"
    );

    // The password: not in the API's view of the channel, its logs, their files, or the
    // process's output, though the protocol log is on and a restart logs in again.
    let view = api.get(&format!("/channels/{cid}")).await;
    assert_eq!(
        view.body["result"]["config"]["password"], "***",
        "{}",
        view.text
    );
    api.post(&format!("/channels/{cid}/restart"), json!({}))
        .await;
    connected(&api, &cid).await;
    let all = api.get(&format!("/channels/{cid}/logs?n=1000")).await.text;
    assert!(all.contains("sasl success"));
    assert!(!all.contains(BOT_PW));
    assert!(!view.text.contains(BOT_PW));
    let list = api.get("/channels/").await.text;
    assert!(!list.contains(BOT_PW));
    let files: String = std::fs::read_dir(&server.log_dir)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(files.contains("sasl success"), "the log files are written");
    assert!(!files.contains(BOT_PW));
    let output = server.output();
    assert!(!output.contains(BOT_PW));
    assert!(
        !output.contains("tokio_xmpp::xmlstream::capture"),
        "tokio-xmpp's byte trace is off"
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_down_status_that_does_not_show_it() {
    let prosody = server_with_accounts();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let wrong = "wr0ng-Pa55word-abc";
    let cfg = config(&prosody, json!({"password": wrong}));
    let cid = api
        .create(json!({"type": "xmpp", "config": cfg, "log_protocol": true,
                       "mo_url": "http://127.0.0.1:9/mo",
                       "status_url": format!("{}/status", hooks.uri())}))
        .await;
    let st = eventually("auth_failed", || async {
        let st = api.channel(&cid).await["status"]["components"]["xmpp"].clone();
        (st["type"] == "auth_failed").then_some(st)
    })
    .await;
    assert_eq!(st["status"], "down");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("refused the login of bot@localhost"),
        "{st}"
    );
    let all = api.get(&format!("/channels/{cid}/logs?n=1000")).await.text;
    assert!(!all.contains(wrong));
    assert!(
        !api.get(&format!("/channels/{cid}"))
            .await
            .text
            .contains(wrong)
    );
    assert!(!server.output().contains(wrong));
    assert!(
        !hits(&hooks)
            .await
            .iter()
            .any(|(_, _, b)| b.to_string().contains(wrong)),
        "status_url"
    );
}

#[tokio::test]
async fn starttls_is_used_where_the_server_offers_it() {
    let dir = TempDir::new();
    let tls = self_signed(&dir.0);
    let prosody = Prosody::start_with(Some(&tls));
    prosody.register("bot", BOT_PW);
    // The test's certificate is trusted through the system store's SSL_CERT_FILE.
    let cert = tls.cert.display().to_string();
    let server = Server::start_with_env("", &[("SSL_CERT_FILE", &cert)]);
    let api = server.api();
    let mut cfg = config(&prosody, json!({}));
    cfg.as_object_mut().unwrap().remove("insecure_loopback");
    let cid = api
        .create(json!({"type": "xmpp", "config": cfg, "log_protocol": true,
                       "mo_url": "http://127.0.0.1:9/mo"}))
        .await;
    connected(&api, &cid).await;
    let lines = log_lines(&api, &cid).await;
    assert!(lines.iter().any(|l| l == ">> starttls"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l == "<< proceed (TLS established)"),
        "{lines:#?}"
    );

    // Without the certificate trusted, the channel refuses the server rather than
    // sending the password.
    let untrusting = Server::start("");
    let api = untrusting.api();
    let cid = api
        .create(json!({"type": "xmpp", "config": cfg, "mo_url": "http://127.0.0.1:9/mo"}))
        .await;
    let st = eventually("tls_failed", || async {
        let st = api.channel(&cid).await["status"]["components"]["xmpp"].clone();
        (st["type"] == "tls_failed").then_some(st)
    })
    .await;
    assert_eq!(st["status"], "down", "{st}");
}
