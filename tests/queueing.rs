//! The channel's queue: rate limits, realtime ahead of bulk, queue length and cancelling.

mod common;
use common::*;
use serde_json::json;
use std::time::Instant;

#[tokio::test]
async fn rate_limit_spreads_delivery() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&mock.uri());
    body["rate_limit_count"] = json!(10);
    body["rate_limit_window"] = json!(1);
    let cid = api.create(body).await;
    let user = User::connect_seen(port, &mock).await;
    let start = Instant::now();
    for i in 0..40 {
        api.send(
            &cid,
            json!({"to": user.address, "content": format!("m{i}")}),
        )
        .await;
    }
    let accepted = start.elapsed().as_secs_f64();
    let last = user.wait_line("m39").await;
    let span = last.duration_since(start).as_secs_f64();
    // 10 at once, then 10 per second: the 40th goes out after about 3 s.
    assert!(
        accepted < 1.5,
        "the API held its answers for {accepted:.2} s"
    );
    assert!(
        (2.7..6.0).contains(&span),
        "40 messages at 10/s took {span:.2} s"
    );
    assert_eq!(
        user.received(),
        (0..40).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn realtime_overtakes_queued_bulk_and_queue_length_shows() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&mock.uri());
    body["rate_limit_count"] = json!(2);
    body["rate_limit_window"] = json!(1);
    let cid = api.create(body).await;
    let user = User::connect_seen(port, &mock).await;
    for i in 0..8 {
        api.send(
            &cid,
            json!({"to": user.address, "content": format!("bulk-{i}")}),
        )
        .await;
    }
    let status = api.channel(&cid).await["status"].clone();
    assert!(status["queue_length"].as_u64().unwrap() >= 5, "{status}");
    api.send(
        &cid,
        json!({"to": user.address, "content": "urgent", "priority": "realtime"}),
    )
    .await;
    user.wait_line("urgent").await;
    let got = user.received();
    let at = got.iter().position(|l| l == "urgent").unwrap();
    assert!(at <= 3, "realtime waited behind bulk: {got:?}");
}

#[tokio::test]
async fn cancelling_rejects_every_queued_message() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&mock.uri());
    body["rate_limit_count"] = json!(1);
    body["rate_limit_window"] = json!(60);
    let cid = api.create(body).await;
    let user = User::connect_seen(port, &mock).await;
    let mut ids = vec![];
    for i in 0..5 {
        let sent = api
            .send(
                &cid,
                json!({"to": user.address, "content": format!("c{i}"),
                               "event_url": format!("{}/ev", mock.uri())}),
            )
            .await;
        ids.push(sent["message_id"].clone());
    }
    user.wait_line("c0").await;
    let result = api
        .delete(&format!("/channels/{cid}/messages/"))
        .await
        .ok(200, "messages cancelled");
    assert_eq!(result, json!({"cancelled": 4}));
    for id in &ids[1..] {
        let (_, _, ev) = wait_hit(&mock, "rejected", |p, b| {
            p == "/ev" && b["message_id"] == *id
        })
        .await;
        assert_eq!(ev["event_type"], "rejected");
        assert_eq!(ev["event_details"], json!({"reason": "cancelled"}));
    }
    let status = api.channel(&cid).await["status"].clone();
    assert_eq!(status["queue_length"], 0);
    assert_eq!(user.received(), vec!["c0"]);
}

#[tokio::test]
async fn status_rates_follow_traffic() {
    let mock = receiver().await;
    let server = Server::start("[channel_defaults]\nmetric_window = 1.0\n");
    let api = server.api();
    let (body, port) = telnet_body(&mock.uri());
    let cid = api.create(body).await;
    let status = api.channel(&cid).await["status"].clone();
    for key in [
        "inbound_message_rate",
        "outbound_message_rate",
        "submitted_event_rate",
        "rejected_event_rate",
        "delivery_succeeded_rate",
        "delivery_failed_rate",
        "delivery_pending_rate",
    ] {
        assert_eq!(status[key], 0, "{key} before traffic: {status}");
    }
    let user = User::connect_seen(port, &mock).await;
    let rates = eventually("rates after traffic", || async {
        for i in 0..5 {
            api.send(
                &cid,
                json!({"to": user.address, "content": format!("r{i}")}),
            )
            .await;
        }
        api.send(&cid, json!({"to": "nobody", "content": "x"}))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let st = api.channel(&cid).await["status"].clone();
        (st["outbound_message_rate"].as_f64().unwrap_or(0.0) >= 6.0
            && st["submitted_event_rate"].as_f64().unwrap_or(0.0) >= 5.0
            && st["rejected_event_rate"].as_f64().unwrap_or(0.0) >= 1.0
            && st["inbound_message_rate"].as_f64().unwrap_or(0.0) >= 1.0)
            .then_some(st)
    })
    .await;
    assert_eq!(rates["status"], "ok");
}
