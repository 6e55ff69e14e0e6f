//! Channel type `webhook`: outbound messages POSTed to a provider that follows the
//! documented contract; acks, refusals and "retry later" answers.

mod common;
use common::*;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn messages_reach_the_provider_and_its_answers_become_events() {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .and(body_partial_json(json!({"content": "refuse me"})))
        .respond_with(ResponseTemplate::new(400))
        .with_priority(1)
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .and(body_partial_json(json!({"content": "flaky"})))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "prov-1"})))
        .with_priority(2)
        .mount(&provider)
        .await;
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = api
        .create(json!({"type": "webhook", "mo_url": hooks.uri(),
                       "config": {"url": format!("{}/send", provider.uri()), "auth_token": "prov-secret"}}))
        .await;
    let created = api.channel(&cid).await;
    assert_eq!(created["config"]["auth_token"], "***");
    let ev = format!("{}/ev", hooks.uri());
    let mut ids = vec![];
    for content in ["hello", "refuse me", "flaky"] {
        let sent = api
            .send(
                &cid,
                json!({"to": "+27820000001", "content": content, "event_url": ev}),
            )
            .await;
        ids.push(sent["message_id"].clone());
    }
    let (_, _, ok) = wait_hit(&hooks, "submitted", |p, b| {
        p == "/ev" && b["message_id"] == ids[0]
    })
    .await;
    assert_eq!(ok["event_type"], "submitted");
    let (_, _, refused) = wait_hit(&hooks, "rejected", |p, b| {
        p == "/ev" && b["message_id"] == ids[1]
    })
    .await;
    assert_eq!(refused["event_type"], "rejected");
    assert_eq!(refused["event_details"], json!({"reason": "HTTP 400"}));
    let (_, _, retried) = wait_hit(&hooks, "flaky submitted", |p, b| {
        p == "/ev" && b["message_id"] == ids[2]
    })
    .await;
    assert_eq!(retried["event_type"], "submitted");

    let got = provider.received_requests().await.unwrap();
    let first = got
        .iter()
        .find(|r| r.body_json::<serde_json::Value>().unwrap()["content"] == "hello")
        .unwrap();
    assert_eq!(
        first.headers.get("authorization").unwrap(),
        "Token prov-secret"
    );
    let body: serde_json::Value = first.body_json().unwrap();
    assert_eq!(body["to"], "+27820000001");
    assert_eq!(body["message_id"], ids[0]);
    let flaky = got
        .iter()
        .filter(|r| r.body_json::<serde_json::Value>().unwrap()["content"] == "flaky")
        .count();
    assert_eq!(flaky, 3, "two 503s, then accepted");
    let logs = api.logs(&cid).await;
    assert!(logs.iter().any(|e| {
        e["message"]
            .as_str()
            .unwrap()
            .contains("Provider asked to retry later: HTTP 503")
    }));
    assert!(!server.output().contains("prov-secret"));
}
