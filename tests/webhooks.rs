//! Webhooks: retries with backoff, auth, URL templates, channel defaults, status_url, and
//! every attempt in the channel log.

mod common;
use common::*;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn inbound_is_retried_until_accepted_and_each_attempt_is_logged() {
    let mock = flaky_receiver(3, 503).await;
    let server = Server::start(FAST_WEBHOOKS);
    let api = server.api();
    let (body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    let cid = api.create(body).await;
    let _user = User::connect(port).await;
    let all = eventually("a delivery after 3 failures", || async {
        let h = hits(&mock).await;
        (h.len() >= 4).then_some(h)
    })
    .await;
    let ids: Vec<&Value> = all.iter().map(|(_, _, b)| &b["message_id"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "a retry must resend the same message"
    );
    let logs = api.logs(&cid).await;
    let attempts: Vec<&str> = logs
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.contains("inbound message to"))
        .collect();
    assert_eq!(attempts.len(), 4, "{attempts:?}");
    assert!(attempts[0].contains("HTTP 200 (attempt 4)"), "{attempts:?}");
    assert!(
        attempts[3].contains("HTTP 503 (attempt 1); retrying in"),
        "{attempts:?}"
    );
    let warn = logs
        .iter()
        .find(|e| e["message"].as_str().unwrap().contains("attempt 1"))
        .unwrap();
    assert_eq!(warn["level"], 30);
    assert_eq!(warn["message_id"], ids[0].clone());
}

#[tokio::test]
async fn credentials_in_urls_become_basic_auth_and_templates_are_filled() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let port = free_port();
    let base = mock.uri().replace("http://", "http://alice:s3cr%40t@");
    let cid = api
        .create(json!({
            "type": "telnet",
            "config": {"twisted_endpoint": format!("tcp:{port}"), "to_addr": "*1#"},
            "mo_url": format!("{base}/mo/{{channel_id}}/{{from}}"),
            // a channel-level default for sends that name no event_url
            "event_url": format!("{}/ev/{{event_type}}/{{message_id}}?to={{to}}", mock.uri()),
            "event_auth_token": "chan-token",
        }))
        .await;
    let user = User::connect(port).await;
    let encoded_from = user.address.replace(':', "%3A");
    let (path, auth, _) = wait_hit(&mock, "inbound at the templated URL", |p, _| {
        p.starts_with("/mo/")
    })
    .await;
    assert_eq!(path, format!("/mo/{cid}/{encoded_from}"));
    // "alice:s3cr@t" in base64
    assert_eq!(auth.as_deref(), Some("Basic YWxpY2U6czNjckB0"));

    let sent = api
        .send(&cid, json!({"to": user.address, "content": "x"}))
        .await;
    let mid = sent["message_id"].as_str().unwrap().to_string();
    let (path, auth, event) = wait_hit(&mock, "event at the channel default", |p, _| {
        p.starts_with("/ev/")
    })
    .await;
    assert_eq!(path, format!("/ev/submitted/{mid}"));
    assert_eq!(auth.as_deref(), Some("Token chan-token"));
    assert_eq!(event["message_id"], json!(mid));
    let got = mock.received_requests().await.unwrap();
    let ev = got
        .iter()
        .find(|r| r.url.path().starts_with("/ev/"))
        .unwrap();
    assert_eq!(ev.url.query(), Some(format!("to={encoded_from}").as_str()));
}

#[tokio::test]
async fn status_changes_are_posted_to_status_url() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, _) = telnet_body(&mock.uri());
    body["status_url"] = json!(format!("{}/status", mock.uri()));
    let cid = api.create(body).await;
    let (_, _, status) = wait_hit(&mock, "telnet status", |p, b| {
        p == "/status" && b["component"] == "telnet"
    })
    .await;
    assert_eq!(
        status,
        json!({"component": "telnet", "channel_id": cid, "status": "ok", "type": "listening",
               "message": status["message"], "details": {}})
    );
    let channel = api.channel(&cid).await;
    assert_eq!(channel["status"]["status"], "ok");
    assert_eq!(
        channel["status"]["components"]["telnet"]["type"],
        "listening"
    );
}

#[tokio::test]
async fn at_most_max_per_destination_requests_are_in_flight() {
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_millis(400)))
        .mount(&mock)
        .await;
    let server = Server::start("[webhooks]\nmax_per_destination = 2\n");
    let api = server.api();
    let (body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    let cid = api.create(body).await;
    let started = std::time::Instant::now();
    // Six connections: six `new` sessions, posted two at a time.
    let mut users = vec![];
    for _ in 0..6 {
        users.push(User::connect(port).await);
    }
    eventually("six deliveries", || async {
        (hits(&mock).await.len() >= 6).then_some(())
    })
    .await;
    let first_batch = started.elapsed();
    eventually("all answered", || async {
        let logs = api.logs(&cid).await;
        (logs
            .iter()
            .filter(|e| e["message"].as_str().unwrap().contains("HTTP 200"))
            .count()
            >= 6)
            .then_some(())
    })
    .await;
    let all = started.elapsed().as_secs_f64();
    // 6 requests of 0.4 s, 2 at a time: at least 3 rounds (1.2 s); all at once would be 0.4 s.
    assert!(
        all >= 1.15,
        "6 deliveries, 2 at a time, finished in {all:.2} s (first batch {first_batch:?})"
    );
}

#[tokio::test]
async fn past_max_pending_per_destination_the_oldest_delivery_is_given_up() {
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&mock)
        .await;
    let server = Server::start(&format!("{FAST_WEBHOOKS}max_pending_per_destination = 2\n"));
    let api = server.api();
    let (body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    let cid = api.create(body).await;
    // Three users, three `new` messages for a destination that keeps failing.
    let mut ids = Vec::new();
    let mut users = Vec::new();
    for _ in 0..3 {
        let user = User::connect(port).await;
        let addr = user.address.clone();
        let (_, _, hit) = wait_hit(&mock, "a first attempt", |_, b| b["from"] == json!(addr)).await;
        ids.push(hit["message_id"].as_str().unwrap().to_string());
        users.push(user);
    }
    let oldest = &ids[0];
    let story = eventually("the oldest given up", || async {
        let r = api
            .get(&format!("/channels/{cid}/messages/{oldest}/logs"))
            .await;
        let entries = r.body["result"].as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .any(|e| e["message"].as_str().unwrap().starts_with("Giving up"))
            .then_some(entries)
    })
    .await;
    let given_up = story
        .iter()
        .find(|e| e["message"].as_str().unwrap().starts_with("Giving up"))
        .unwrap();
    assert_eq!(given_up["level"], 40, "{given_up}");
    let text = given_up["message"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "Giving up delivering inbound message to {}/mo: 2 newer deliveries to this destination are waiting ([webhooks] max_pending_per_destination)",
            mock.uri()
        )),
        "{text}"
    );
    let labels = [("channel", cid.as_str()), ("kind", "mo")];
    until(&api, "hornbill_webhook_failures_total", &labels, 1.0).await;
    let limit = [("channel", cid.as_str()), ("limit", "webhooks_pending")];
    until(&api, "hornbill_limit_reached_total", &limit, 1.0).await;
    until(&api, "hornbill_webhooks_pending", &[], 2.0).await;

    // The oldest is tried no more; the two newer ones still are.
    let tries = |id: String| {
        let mock = &mock;
        async move {
            hits(mock)
                .await
                .iter()
                .filter(|(_, _, b)| b["message_id"] == json!(id))
                .count()
        }
    };
    let before = (tries(ids[0].clone()).await, tries(ids[2].clone()).await);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let after = (tries(ids[0].clone()).await, tries(ids[2].clone()).await);
    assert_eq!(before.0, after.0, "the oldest was tried again");
    assert!(after.1 > before.1, "the newest is no longer tried");
}
