//! Secrets (tokens, passwords in URLs and configs) appear in no response and no log: not the
//! API's, not the channel log, not the process output.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn secrets_stay_out_of_responses_and_logs() {
    let mock = flaky_receiver(1, 500).await;
    let server = Server::start(FAST_WEBHOOKS);
    let api = server.api();
    let secrets = [
        "mo-pass-7f3a",
        "mo-token-91bc",
        "ev-pass-44d2",
        "ev-token-0e5f",
        "chan-ev-tok-5a5a",
    ];
    let port = free_port();
    let mo_url = mock.uri().replace("http://", "http://carol:mo-pass-7f3a@");
    let ev_url = mock.uri().replace("http://", "http://dave:ev-pass-44d2@");
    let created = api
        .post(
            "/channels/",
            json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")},
                   "mo_url": format!("{mo_url}/mo"), "mo_url_auth_token": "mo-token-91bc",
                   "event_auth_token": "chan-ev-tok-5a5a"}),
        )
        .await;
    let cid = created.ok(201, "channel created")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let result = created.body["result"].clone();
    assert_eq!(result["mo_url_auth_token"], "***");
    assert!(
        result["mo_url"].as_str().unwrap().contains("carol:***@"),
        "{result}"
    );

    let mut user = User::connect(port).await;
    user.say("hello").await;
    wait_hit(&mock, "hello", |_, b| b["content"] == "hello").await;
    let sent = api
        .send(
            &cid,
            json!({"to": user.address, "content": "reply", "event_url": format!("{ev_url}/ev"),
                           "event_auth_token": "ev-token-0e5f"}),
        )
        .await;
    user.wait_line("reply").await;
    let mid = sent["message_id"].clone();
    wait_hit(&mock, "event", |p, b| p == "/ev" && b["message_id"] == mid).await;
    // Every hit really carried the credentials (so they were in play, not absent).
    let auths: Vec<String> = hits(&mock)
        .await
        .into_iter()
        .filter_map(|(_, a, _)| a)
        .collect();
    assert!(auths.iter().any(|a| a == "Token mo-token-91bc"));
    assert!(auths.iter().any(|a| a == "Token ev-token-0e5f"));

    let mut texts = vec![
        created.text.clone(),
        api.get(&format!("/channels/{cid}")).await.text,
        api.get("/channels/").await.text,
        api.post(&format!("/channels/{cid}"), json!({"label": "x"}))
            .await
            .text,
        api.get(&format!("/channels/{cid}/logs?n=1000")).await.text,
        api.get(&format!(
            "/channels/{cid}/messages/{}",
            mid.as_str().unwrap()
        ))
        .await
        .text,
    ];
    let logs = api.logs(&cid).await;
    assert!(
        logs.iter()
            .any(|e| e["message"].as_str().unwrap().contains("HTTP 500")),
        "the failed delivery must be logged: {logs:?}"
    );
    api.delete(&format!("/channels/{cid}")).await;
    texts.push(server.output());
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "secret {secret} leaked in:\n{text}");
        }
    }
}
