//! The embedded store's budget (`[store] max_records`): beyond it the oldest message records
//! are evicted, counted in `hornbill_store_evictions_total` and warned about, and what
//! remains is the newest.

mod common;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_oldest_records_are_evicted_beyond_max_records() {
    let mock = receiver().await;
    let server = Server::start("[store]\nmax_records = 100\n");
    let api = server.api();
    let (body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    let cid = api.create(body).await;

    // The user's session opening: an inbound message (a record too) to reply to later.
    let user = User::connect(port).await;
    let addr = user.address.clone();
    let (_, _, opening) = wait_hit(&mock, "new session", |_, b| b["from"] == json!(addr)).await;
    let opening = opening["message_id"].as_str().unwrap().to_string();

    let text = api.get("/metrics").await.text;
    assert_eq!(
        sample(&text, "hornbill_store_evictions_total", &[]),
        Some(0.0),
        "{text}"
    );

    let mut sent = Vec::new();
    for i in 0..500 {
        let m = api
            .send(
                &cid,
                json!({"to": user.address, "content": format!("m{i}")}),
            )
            .await;
        sent.push(m["message_id"].as_str().unwrap().to_string());
    }
    user.wait_line("m499").await;
    let status = |mid: String| {
        let api = &api;
        let cid = &cid;
        async move {
            api.get(&format!("/channels/{cid}/messages/{mid}"))
                .await
                .ok(200, "message status")
        }
    };
    // The newest are there with their events...
    for mid in &sent[450..] {
        let s = eventually("the submitted event of a recent message", || async {
            let s = status(mid.clone()).await;
            (s["last_event_type"] == "submitted").then_some(s)
        })
        .await;
        assert_eq!(s["events"].as_array().unwrap().len(), 1, "{s}");
    }
    // ... the oldest are gone: no events.
    for mid in &sent[..100] {
        let s = status(mid.clone()).await;
        assert_eq!(s["events"], json!([]), "{s}");
        assert_eq!(s["last_event_type"], Value::Null, "{s}");
    }
    // A reply to an evicted inbound message: as after its TTL.
    let r = api
        .post(
            &format!("/channels/{cid}/messages/"),
            json!({"reply_to": opening, "content": "late"}),
        )
        .await;
    let errors = r.error(400, "Bad Request", "message not found");
    assert_eq!(errors[0]["type"], "MessageNotFound", "{errors:?}");

    // 501 records (500 sent, and the session opening) in a budget of 100.
    let text = api.get("/metrics").await.text;
    let evicted = sample(&text, "hornbill_store_evictions_total", &[]).unwrap_or(0.0);
    assert!(evicted >= 400.0, "{evicted} evictions:\n{text}");
    assert!(
        text.contains("# HELP hornbill_store_evictions_total"),
        "{text}"
    );
    // One warning: they are at most a minute apart.
    let output = server.output();
    let warnings = output.matches("The embedded store is full").count();
    assert_eq!(warnings, 1, "{output}");
}

#[test]
fn max_records_cannot_be_zero() {
    let dir = TempDir::new();
    let path = dir.0.join("unbounded.toml");
    std::fs::write(&path, "[store]\nmax_records = 0\n").unwrap();
    let (code, _, err) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[store] max_records must be at least 1"),
        "{err}"
    );
}
