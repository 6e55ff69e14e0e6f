//! Telnet channels end to end: real sockets in, webhooks out, replies back.

mod common;
use common::*;
use serde_json::{Value, json};

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
    api.post(&format!("/channels/{cid}/restart"), json!({}))
        .await
        .ok(200, "channel restarted");
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
