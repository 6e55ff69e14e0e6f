//! `GET /metrics`: Prometheus text that moves with a channel's traffic (messages, events,
//! webhooks, queue and in-flight gauges, transport status) and times the API by route
//! pattern; behind the API's auth when it has one.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn counters_and_gauges_follow_a_channels_traffic() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    body["event_url"] = json!(format!("{}/ev", mock.uri()));
    let cid = api.create(body).await;
    let ch = [("channel", cid.as_str()), ("type", "telnet")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut l = ch.to_vec();
        l.extend_from_slice(extra);
        l
    };

    // A new channel's series are there from the start, at zero.
    let before = until(
        &api,
        "hornbill_transport_status",
        &with(&[("component", "transport")]),
        1.0,
    )
    .await;
    for name in [
        "hornbill_messages_inbound_total",
        "hornbill_messages_outbound_total",
        "hornbill_messages_sent_total",
    ] {
        assert_eq!(sample(&before, name, &ch), Some(0.0), "{name}:\n{before}");
    }
    assert_eq!(
        sample(
            &before,
            "hornbill_events_total",
            &with(&[("event_type", "submitted")])
        ),
        Some(0.0)
    );
    assert_eq!(sample(&before, "hornbill_in_flight", &ch), Some(0.0));
    assert_eq!(sample(&before, "hornbill_queue_length", &ch), Some(0.0));
    assert_eq!(
        sample(&before, "hornbill_bus_up", &[("kind", "memory")]),
        Some(1.0)
    );

    // In: the session opening and two lines, each posted to mo_url.
    let mut user = User::connect(port).await;
    user.say("one").await;
    user.say("two").await;
    eventually("three inbound webhooks", || async {
        (hits(&mock).await.len() >= 3).then_some(())
    })
    .await;
    let text = until(&api, "hornbill_messages_inbound_total", &ch, 3.0).await;
    let mo_delivered = [
        ("channel", cid.as_str()),
        ("kind", "mo"),
        ("outcome", "delivered"),
    ];
    let text = if sample(&text, "hornbill_webhook_attempts_total", &mo_delivered) == Some(3.0) {
        text
    } else {
        until(&api, "hornbill_webhook_attempts_total", &mo_delivered, 3.0).await
    };
    let mo_failed = [("channel", cid.as_str()), ("kind", "mo")];
    assert_eq!(
        sample(&text, "hornbill_webhook_failures_total", &mo_failed),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "hornbill_messages_outbound_total", &ch),
        Some(0.0)
    );

    // Out: two sends, accepted by the API, acked by the transport, each with its event.
    for content in ["a", "b"] {
        api.send(&cid, json!({"to": user.address, "content": content}))
            .await;
    }
    user.wait_line("b").await;
    let text = until(&api, "hornbill_messages_sent_total", &ch, 2.0).await;
    assert_eq!(
        sample(&text, "hornbill_messages_outbound_total", &ch),
        Some(2.0)
    );
    until(
        &api,
        "hornbill_events_total",
        &with(&[("event_type", "submitted")]),
        2.0,
    )
    .await;
    let text = until(
        &api,
        "hornbill_webhook_attempts_total",
        &[
            ("channel", cid.as_str()),
            ("kind", "event"),
            ("outcome", "delivered"),
        ],
        2.0,
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "hornbill_events_total",
            &with(&[("event_type", "rejected")])
        ),
        Some(0.0)
    );
    assert_eq!(sample(&text, "hornbill_in_flight", &ch), Some(0.0));
    assert_eq!(sample(&text, "hornbill_queue_length", &ch), Some(0.0));

    // The sends were timed under their route pattern, not their path.
    let send = [
        ("method", "POST"),
        ("route", "/channels/{id}/messages/"),
        ("status", "201"),
    ];
    let count = sample(&text, "hornbill_api_request_duration_seconds_count", &send);
    assert_eq!(count, Some(2.0), "{text}");
    let mut bucket = send.to_vec();
    bucket.push(("le", "+Inf"));
    assert_eq!(
        sample(
            &text,
            "hornbill_api_request_duration_seconds_bucket",
            &bucket
        ),
        Some(2.0)
    );
    assert!(
        text.contains("# TYPE hornbill_api_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        !text.contains(&format!("/channels/{cid}")),
        "raw paths in labels"
    );
}

#[tokio::test]
async fn queue_length_counts_what_the_rate_limit_holds() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    body["rate_limit_count"] = json!(1);
    body["rate_limit_window"] = json!(3600);
    let cid = api.create(body).await;
    let ch = [("channel", cid.as_str()), ("type", "telnet")];
    let user = User::connect(port).await;
    // Connected once hornbill has the user (the `new` webhook), not when the kernel does:
    // a send before that finds nobody (a race seen with other tests loading the machine).
    let addr = user.address.clone();
    wait_hit(&mock, "the user's new session", |_, b| {
        b["from"] == json!(addr)
    })
    .await;
    for content in ["first", "second", "third"] {
        api.send(&cid, json!({"to": user.address, "content": content}))
            .await;
    }
    user.wait_line("first").await;
    let text = until(&api, "hornbill_queue_length", &ch, 2.0).await;
    assert_eq!(
        sample(&text, "hornbill_messages_outbound_total", &ch),
        Some(3.0)
    );
    let text = until(&api, "hornbill_messages_sent_total", &ch, 1.0).await;
    assert_eq!(sample(&text, "hornbill_queue_length", &ch), Some(2.0));

    // Cancelled, they leave the queue.
    api.delete(&format!("/channels/{cid}/messages/")).await;
    until(&api, "hornbill_queue_length", &ch, 0.0).await;
}

#[tokio::test]
async fn unmatched_paths_are_one_label_and_refusals_are_timed() {
    let server = Server::start("");
    let api = server.api();
    for path in ["/nope/1", "/nope/2", "/channels/missing-id"] {
        api.get(path).await;
    }
    let text = scrape(&api).await;
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(
        sample(
            &text,
            "hornbill_api_request_duration_seconds_count",
            &unmatched
        ),
        Some(2.0),
        "{text}"
    );
    let get = [
        ("method", "GET"),
        ("route", "/channels/{id}"),
        ("status", "404"),
    ];
    assert_eq!(
        sample(&text, "hornbill_api_request_duration_seconds_count", &get),
        Some(1.0)
    );
    assert!(!text.contains("/nope/"), "{text}");
    assert!(!text.contains("missing-id"), "{text}");
}

#[tokio::test]
async fn metrics_are_behind_the_apis_auth_when_it_has_one() {
    let server = Server::start("[server]\nport = 0\nworkers = 2\nauth_token = \"sekrit\"\n");
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", server.url);
    let refused = http.get(&url).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let ok = http
        .get(&url)
        .header("Authorization", "Token sekrit")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    let text = ok.text().await.unwrap();
    // The refusal was timed, under the route it asked for.
    let refused = [("method", "GET"), ("route", "/metrics"), ("status", "401")];
    assert_eq!(
        sample(
            &text,
            "hornbill_api_request_duration_seconds_count",
            &refused
        ),
        Some(1.0),
        "{text}"
    );
}
