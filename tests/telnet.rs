//! Telnet channels end to end: real sockets in, webhooks out, replies back.

mod common;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn session(b: &Value) -> Option<&str> {
    b["channel_data"]["session_event"].as_str()
}

#[tokio::test]
async fn a_session_from_connect_to_hang_up() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    body["mo_url_auth_token"] = json!("tok-1");
    let cid = api.create(body).await;

    let mut user = User::connect(port).await;
    let addr = user.address.clone();
    let (_, auth, new) = wait_hit(&mock, "new session", |_, b| {
        b["from"] == json!(addr) && session(b) == Some("new")
    })
    .await;
    assert_eq!(auth.as_deref(), Some("Token tok-1"));
    assert_eq!(new["content"], Value::Null);
    assert_eq!(new["to"], "*120#");
    assert_eq!(new["channel_id"], json!(cid));
    let keys: Vec<&String> = new.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "to",
            "from",
            "group",
            "message_id",
            "channel_id",
            "timestamp",
            "reply_to",
            "content",
            "channel_data"
        ]
    );

    user.say("hello").await;
    let (path, _, inbound) = wait_hit(&mock, "line", |_, b| b["content"] == "hello").await;
    assert_eq!(path, "/mo");
    assert_eq!(session(&inbound), Some("resume"));

    // A reply goes back to the user, from the address they wrote to.
    let mid = inbound["message_id"].as_str().unwrap();
    let sent = api
        .send(
            &cid,
            json!({"reply_to": mid, "content": "hi there", "event_url": format!("{}/ev", mock.uri()),
                   "event_auth_token": "evtok"}),
        )
        .await;
    assert_eq!(sent["to"], json!(user.address));
    assert_eq!(sent["from"], "*120#");
    assert_eq!(sent["reply_to"], json!(mid));
    user.wait_line("hi there").await;
    let sent_id = sent["message_id"].as_str().unwrap().to_string();
    let (_, auth, event) = wait_hit(&mock, "submitted event", |p, b| {
        p == "/ev" && b["message_id"] == json!(sent_id)
    })
    .await;
    assert_eq!(auth.as_deref(), Some("Token evtok"));
    assert_eq!(event["event_type"], "submitted");
    assert_eq!(event["event_details"], json!({}));

    let status = api
        .get(&format!("/channels/{cid}/messages/{sent_id}"))
        .await
        .ok(200, "message status");
    assert_eq!(status["last_event_type"], "submitted");
    assert_eq!(status["events"].as_array().unwrap().len(), 1);

    // The user hangs up: the close is forwarded, not dropped.
    drop(user);
    wait_hit(&mock, "close", |_, b| {
        b["from"] == json!(addr) && session(b) == Some("close")
    })
    .await;
}

#[tokio::test]
async fn continue_session_false_closes_the_connection() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (body, port) = telnet_body(&mock.uri());
    let cid = api.create(body).await;
    let mut user = User::connect(port).await;
    user.say("bye?").await;
    let (_, _, inbound) = wait_hit(&mock, "line", |_, b| b["content"] == "bye?").await;
    let sent = api
        .send(
            &cid,
            json!({"reply_to": inbound["message_id"], "content": "goodbye",
                   "channel_data": {"continue_session": false}}),
        )
        .await;
    assert_eq!(sent["channel_data"]["continue_session"], false);
    assert_eq!(sent["channel_data"]["session_event"], "close");
    user.wait_line("goodbye").await;
    assert!(user.wait_closed().await, "the connection stayed open");
    let addr = user.address.clone();
    wait_hit(&mock, "close", |_, b| {
        b["from"] == json!(addr) && session(b) == Some("close")
    })
    .await;
}

#[tokio::test]
async fn sending_to_nobody_is_rejected_with_a_reason() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (body, _) = telnet_body(&mock.uri());
    let cid = api.create(body).await;
    let sent = api
        .send(
            &cid,
            json!({"to": "10.0.0.1:1", "content": "x", "event_url": format!("{}/ev", mock.uri())}),
        )
        .await;
    let id = sent["message_id"].clone();
    let (_, _, event) = wait_hit(&mock, "rejected event", |p, b| {
        p == "/ev" && b["message_id"] == id
    })
    .await;
    assert_eq!(event["event_type"], "rejected");
    assert!(
        event["event_details"]["reason"]
            .as_str()
            .unwrap()
            .contains("10.0.0.1:1"),
        "{event}"
    );
}

#[tokio::test]
async fn echo_application_answers_over_telnet() {
    let server = Server::start("");
    let api = server.api();
    let port = free_port();
    let cid = api
        .create(json!({"type": "telnet", "application": "echo",
                       "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut user = User::connect(port).await;
    user.say("marco").await;
    user.wait_line("marco").await;
    let logs = api.logs(&cid).await;
    assert!(
        logs.iter()
            .any(|e| e["message"].as_str().unwrap().starts_with("Inbound from")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn config_change_moves_the_listener_and_restart_keeps_it() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (body, old_port) = telnet_body(&mock.uri());
    let cid = api.create(body).await;
    User::connect(old_port).await;
    let new_port = free_port();
    let updated = api
        .post(
            &format!("/channels/{cid}"),
            json!({"config": {"twisted_endpoint": format!("tcp:{new_port}"), "to_addr": "new"}}),
        )
        .await
        .ok(200, "channel updated");
    assert_eq!(updated["config"]["to_addr"], "new");
    let user = User::connect(new_port).await;
    let addr = user.address.clone();
    let (_, _, hit) = wait_hit(&mock, "new on the new port", |_, b| {
        b["from"] == json!(addr)
    })
    .await;
    assert_eq!(hit["to"], "new");
    eventually("old port closed", || async {
        std::net::TcpStream::connect(("127.0.0.1", old_port))
            .is_err()
            .then_some(())
    })
    .await;
    let started = |logs: Vec<serde_json::Value>| {
        logs.iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Started telnet transport")
            })
            .count()
    };
    let before = started(api.logs(&cid).await);
    api.post(&format!("/channels/{cid}/restart"), json!({}))
        .await
        .ok(200, "channel restarted");
    // The restart is under way when the API answers: connect to the new transport, not to
    // the one being stopped.
    eventually("the transport started again", || async {
        (started(api.logs(&cid).await) > before).then_some(())
    })
    .await;
    let user = User::connect(new_port).await;
    let addr = user.address.clone();
    wait_hit(&mock, "new after restart", |_, b| b["from"] == json!(addr)).await;
    api.delete(&format!("/channels/{cid}"))
        .await
        .ok(200, "channel deleted");
    eventually("port closed after delete", || async {
        std::net::TcpStream::connect(("127.0.0.1", new_port))
            .is_err()
            .then_some(())
    })
    .await;
}

/// Waits `for_` and says whether `mock` got anything from `addr` in that time.
async fn heard_from(mock: &wiremock::MockServer, addr: &str, for_: Duration) -> bool {
    tokio::time::sleep(for_).await;
    hits(mock)
        .await
        .iter()
        .any(|(_, _, b)| b["from"] == json!(addr))
}

async fn log_lines(api: &Api, cid: &str) -> Vec<String> {
    api.logs(cid)
        .await
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn past_max_connections_a_connection_is_refused_logged_and_counted() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&mock.uri());
    body["config"]["max_connections"] = json!(5);
    let cid = api.create(body).await;
    let mut users = Vec::new();
    for _ in 0..5 {
        let user = User::connect(port).await;
        let addr = user.address.clone();
        wait_hit(&mock, "new session", |_, b| {
            b["from"] == json!(addr) && session(b) == Some("new")
        })
        .await;
        users.push(user);
    }

    let sixth = User::connect(port).await;
    assert!(
        sixth.wait_closed().await,
        "the sixth connection stayed open"
    );
    assert_eq!(
        sixth.received(),
        ["Sorry, the service is busy. Please try again later."]
    );
    assert!(
        !heard_from(&mock, &sixth.address, Duration::from_millis(300)).await,
        "a refused connection is no session"
    );
    for u in &users {
        assert!(!*u.closed.lock().unwrap(), "the five stay connected");
    }
    let logs = log_lines(&api, &cid).await;
    let refusal = format!(
        "Refused a telnet connection from {}: 5 users are connected (max_connections)",
        sixth.address
    );
    assert!(logs.contains(&refusal), "{logs:#?}");
    until(
        &api,
        "hornbill_limit_reached_total",
        &[("channel", &cid), ("limit", "telnet_connections")],
        1.0,
    )
    .await;

    // One leaves: there is room again.
    let gone = users.pop().unwrap();
    let gone_addr = gone.address.clone();
    drop(gone);
    wait_hit(&mock, "close", |_, b| {
        b["from"] == json!(gone_addr) && session(b) == Some("close")
    })
    .await;
    let next = User::connect(port).await;
    let addr = next.address.clone();
    wait_hit(&mock, "new session after one left", |_, b| {
        b["from"] == json!(addr) && session(b) == Some("new")
    })
    .await;
    assert!(!*next.closed.lock().unwrap());
}

#[tokio::test]
async fn an_idle_user_is_disconnected_and_the_application_gets_close() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&mock.uri());
    body["config"]["idle_timeout"] = json!(1);
    let cid = api.create(body).await;
    let idle = User::connect(port).await;
    let mut talker = User::connect(port).await;
    let connected = Instant::now();
    let mut closed_at = None;
    // The talker says a line every 0.3 s for 2.4 s: each line counts as activity.
    for i in 0..8 {
        talker.say(&format!("line {i}")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if closed_at.is_none() && *idle.closed.lock().unwrap() {
            closed_at = Some(connected.elapsed());
        }
    }
    let closed_at = closed_at.expect("the idle user was not disconnected");
    assert!(
        closed_at >= Duration::from_millis(900),
        "disconnected after {closed_at:?}, before idle_timeout"
    );
    assert!(!*talker.closed.lock().unwrap(), "a user who talks stays");
    let addr = idle.address.clone();
    wait_hit(&mock, "close for the idle user", |_, b| {
        b["from"] == json!(addr) && session(b) == Some("close")
    })
    .await;
    let logs = log_lines(&api, &cid).await;
    let line = format!(
        "Telnet user {} sent nothing for 1 s (idle_timeout): disconnected",
        idle.address
    );
    assert!(logs.contains(&line), "{logs:#?}");
    let text = scrape(&api).await;
    let count = sample(
        &text,
        "hornbill_limit_reached_total",
        &[("channel", &cid), ("limit", "idle_timeout")],
    );
    assert!(count >= Some(1.0), "{text}");
}

/// The finding: idle telnet connections exhausted the process's file descriptors
/// and the management API and the public listener stopped answering. Under a limit of 256
/// open files, a flood of connections is refused once the process is within `[server]
/// fd_reserve` (128) of it, and both APIs answer within a second throughout.
#[tokio::test]
async fn a_flood_of_telnet_connections_leaves_the_apis_answering() {
    // The flood needs more descriptors than the server has, in this process.
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let server = Server::start_with_open_files("[log]\nmax_logs = 1000\n", 256);
    let api = server.api();
    let public = server.public_url();
    let port = free_port();
    let cid = api
        .create(json!({"type": "telnet", "application": "echo",
                       "config": {"twisted_endpoint": format!("tcp:{port}")}}))
        .await;
    let mut user = User::connect(port).await;
    user.say("before").await;
    user.wait_line("before").await;
    drop(user);

    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Faster than the listener's backlog (128) is drained: a SYN may be dropped and sent
    // again a second later. A server that no longer accepts at all ends the flood.
    let mut flood = Vec::new();
    for _ in 0..300 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => flood.push(s),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for url in [
        format!("{}/health", server.url),
        format!("{}/channels/", server.url),
        format!("{public}/health"),
    ] {
        let started = Instant::now();
        let resp = quick
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url} did not answer within a second: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        assert!(started.elapsed() < Duration::from_secs(1), "{url}");
    }

    let logs = log_lines(&api, &cid).await;
    assert!(
        logs.iter()
            .any(|l| l.starts_with("Refused a telnet connection from")
                && l.contains(
                    "of its limit of 256 and keeps 128 for the APIs ([server] fd_reserve)"
                )),
        "{logs:#?}"
    );
    let text = scrape(&api).await;
    let refused = sample(
        &text,
        "hornbill_limit_reached_total",
        &[("channel", &cid), ("limit", "open_files")],
    )
    .unwrap_or(0.0);
    assert!(refused >= 100.0, "{refused} refused of 300:\n{text}");
    assert_eq!(sample(&text, "hornbill_open_files_limit", &[]), Some(256.0));
    let open = sample(&text, "hornbill_open_files", &[]).unwrap();
    assert!(open < 256.0 - 64.0, "{open} files open");

    // The flood gone, users are served again.
    drop(flood);
    let mut user = eventually("a user served after the flood", || async {
        let mut user = User::connect(port).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        (!*user.closed.lock().unwrap()).then_some(())?;
        user.say("after").await;
        Some(user)
    })
    .await;
    user.say("again").await;
    user.wait_line("again").await;
}
