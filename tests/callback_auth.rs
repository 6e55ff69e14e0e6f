//! Provider callbacks are authentic: every callback URL carries the channel's unguessable
//! secret (shown once, when the channel is created or the secret rotated; redacted in every
//! view), a callback without it is refused (403, logged, counted) on every type, and a
//! delivery report is believed only for a message the channel sent, never creating a record
//! for an unknown id.

mod common;
use common::*;
use serde_json::{Value, json};

/// A channel of every type that takes callbacks, and one of its actions.
fn channels() -> Vec<(Value, &'static str)> {
    let url = "http://127.0.0.1:9";
    vec![
        (
            json!({"type": "africastalking", "config": {"username": "hb", "api_key": "atsk_0123456789"}}),
            "inbound",
        ),
        (
            json!({"type": "infobip", "config": {"api_key": "ib-key-0123456789", "base_url": url}}),
            "inbound",
        ),
        (
            json!({"type": "vonage", "config": {"api_key": "vn-key", "api_secret": "vns_0123456789"}}),
            "inbound",
        ),
        (
            json!({"type": "clickatell", "config": {"api_key": "ck-key-0123456789"}}),
            "inbound",
        ),
        (
            json!({"type": "http", "config": {"send_url": format!("{url}/send"),
                   "mo_from_field": "from", "mo_to_field": "to", "mo_text_field": "text",
                   "status_field": "status", "status_map": {"1": "delivered"}}}),
            "inbound",
        ),
        (
            json!({"type": "twilio", "config": {"account_sid": "AC0123456789", "auth_token": "tw-token-0123456789",
                   "from": "+15005550006", "validate_signature": false}}),
            "inbound",
        ),
        (
            json!({"type": "whatsapp", "config": {"phone_number_id": "1234567890",
                   "access_token": "wa-token-0123456789", "app_secret": "wa-secret-0123456789",
                   "verify_token": "wa-verify-0123456789", "base_url": url}}),
            "receive",
        ),
        (
            json!({"type": "twitter", "config": {"user_id": "835740314006511618",
                   "api_key": "x-key", "api_key_secret": "x-secret-0123456789",
                   "access_token": "x-token-0123456789", "access_token_secret": "x-ts-0123456789",
                   "base_url": url}}),
            "receive",
        ),
        (
            json!({"type": "telegram", "config": {"bot_token": "123456789:AAH-tg-token-0123456789",
                   "api_url": url}}),
            "receive",
        ),
        (json!({"type": "dmark", "config": {}}), "ussd"),
        (json!({"type": "aat", "config": {}}), "ussd"),
    ]
}

async fn call(url: &str, body: &'static str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `hornbill_callbacks_refused_total` of a channel and reason (0 before the first).
fn refused_count(metrics: &str, cid: &str, reason: &str) -> f64 {
    sample(
        metrics,
        "hornbill_callbacks_refused_total",
        &[("channel", cid), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_callback_without_the_channels_secret_is_refused_on_every_type() {
    let server = Server::start(FAST_WEBHOOKS);
    let api = server.api();
    let public = server.public_url();
    for (mut body, action) in channels() {
        body["mo_url"] = json!("http://127.0.0.1:9/mo");
        let kind = body["type"].as_str().unwrap().to_string();
        let created = api
            .post("/channels/", body)
            .await
            .ok(201, "channel created");
        let cid = created["id"].as_str().unwrap().to_string();
        let secret = created["callback_secret"]
            .as_str()
            .expect("a callback secret")
            .to_string();
        assert!(
            secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_hexdigit()),
            "{secret}"
        );

        let body = "from=%2B27820000001&to=12345&text=forged";
        let bare = format!("{public}/channels/{cid}/{action}");
        assert_eq!(call(&bare, body).await, 403, "{kind} without the secret");
        let wrong = format!(
            "{public}/channels/{cid}/{}/{action}",
            "0".repeat(secret.len())
        );
        assert_eq!(call(&wrong, body).await, 403, "{kind} with a wrong secret");
        // Another channel's secret does not open this one.
        let logs = eventually("the refusals in the channel log", || async {
            let logs = api.logs(&cid).await;
            (logs
                .iter()
                .filter(|e| e["message"].as_str().unwrap_or("").starts_with("Refused a"))
                .count()
                >= 2)
                .then_some(logs)
        })
        .await;
        let text = serde_json::to_string(&logs).unwrap();
        assert!(
            text.contains("lacks the channel's callback secret"),
            "{kind}: {text}"
        );
        assert!(text.contains("wrong callback secret"), "{kind}: {text}");
        assert!(!text.contains(&secret), "{kind}: the secret is in the log");

        // Shown once: redacted in the channel's view and the list's objects.
        let shown = api.get(&format!("/channels/{cid}")).await.text;
        assert!(!shown.contains(&secret), "{kind}: {shown}");
        assert!(
            shown.contains("\"callback_secret\":\"***\""),
            "{kind}: {shown}"
        );

        let metrics = api.get("/metrics").await.text;
        assert_eq!(refused_count(&metrics, &cid, "no_secret"), 1.0, "{kind}");
        assert_eq!(refused_count(&metrics, &cid, "wrong_secret"), 1.0, "{kind}");
    }
    assert!(
        !server.output().contains("forged"),
        "a forged message went somewhere"
    );

    // Channel types without provider callbacks have no secret.
    let (telnet, _) = telnet_body("http://127.0.0.1:9/mo");
    let created = api
        .post("/channels/", telnet)
        .await
        .ok(201, "channel created");
    assert!(created.get("callback_secret").is_none(), "{created}");
}

#[tokio::test]
async fn the_secret_opens_callbacks_and_can_be_rotated_without_losing_any() {
    let hooks = receiver().await;
    let server = Server::start(FAST_WEBHOOKS);
    let api = server.api();
    let public = server.public_url();
    let cid = api
        .create(
            json!({"type": "africastalking", "mo_url": format!("{}/mo", hooks.uri()),
                       "config": {"username": "hb", "api_key": "atsk_0123456789"}}),
        )
        .await;
    let old = callback_base(&public, &cid);
    let inbound = |base: String, text: &'static str| async move {
        reqwest::Client::new()
            .post(format!("{base}/inbound"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(cases::query(&[
                ("from", "+254711000001"),
                ("to", "21512"),
                ("text", text),
                ("date", "2026-12-07 10:00:00"),
                ("id", "ATXid_x"),
                ("linkId", ""),
            ]))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(inbound(old.clone(), "with the first secret").await, 200);
    wait_hit(&hooks, "the first inbound", |_, b| {
        b["content"] == "with the first secret"
    })
    .await;

    let rotated = api
        .post(&format!("/channels/{cid}/callback_secret"), json!({}))
        .await
        .ok(200, "callback secret rotated");
    let secret = rotated["callback_secret"].as_str().unwrap().to_string();
    assert_eq!(
        rotated["callback_url_base"],
        json!(format!("{public}/channels/{cid}/{secret}/"))
    );
    let new = format!("{public}/channels/{cid}/{secret}");
    assert_ne!(new, old);
    // The new secret opens the callbacks, and the old one still does for a while, so the
    // provider's settings can change without a message lost.
    eventually("the new secret works", || async {
        (inbound(new.clone(), "with the new secret").await == 200).then_some(())
    })
    .await;
    assert_eq!(inbound(old.clone(), "with the old secret").await, 200);
    wait_hit(&hooks, "after the rotation", |_, b| {
        b["content"] == "with the old secret"
    })
    .await;
    let shown = api.get(&format!("/channels/{cid}")).await.text;
    assert!(!shown.contains(&secret), "{shown}");

    // A view sent back as a modify keeps the secret; changing it is the rotation's job.
    let view = api.channel(&cid).await;
    api.post(
        &format!("/channels/{cid}"),
        json!({"label": "renamed", "callback_secret": view["callback_secret"]}),
    )
    .await
    .ok(200, "channel updated");
    eventually("still open after the modify", || async {
        (inbound(new.clone(), "after a modify").await == 200).then_some(())
    })
    .await;
    let errors = api
        .post(
            &format!("/channels/{cid}"),
            json!({"callback_secret": "guessable"}),
        )
        .await
        .error(400, "Bad Request", "api usage error");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("callback_secret")
    );

    // A telnet channel has none to rotate.
    let (telnet, _) = telnet_body("http://127.0.0.1:9/mo");
    let tid = api.create(telnet).await;
    api.post(&format!("/channels/{tid}/callback_secret"), json!({}))
        .await
        .error(400, "Bad Request", "api usage error");
}

#[tokio::test]
async fn delivery_reports_are_believed_only_for_messages_the_channel_sent() {
    let hooks = receiver().await;
    let server = Server::start(FAST_WEBHOOKS);
    let api = server.api();
    let public = server.public_url();
    let http_channel = |name: &str| {
        json!({"type": "http", "mo_url": format!("{}/mo", hooks.uri()),
               "event_url": format!("{}/ev/{name}", hooks.uri()),
               "config": {"send_url": format!("{}/send", hooks.uri()),
                          "mo_from_field": "from", "mo_to_field": "to", "mo_text_field": "text",
                          "status_field": "status", "status_map": {"1": "delivered", "2": "failed"}}})
    };
    let cid = api.create(http_channel("a")).await;
    let other = api.create(http_channel("b")).await;
    // A message the other channel sent: a report for it through this channel is not believed.
    let sent = api
        .send(&other, json!({"to": "+27820000001", "content": "hello"}))
        .await;
    let mid = sent["message_id"].as_str().unwrap().to_string();
    let base = callback_base(&public, &cid);
    let forged_ids: Vec<String> = (0..50)
        .map(|i| format!("{:032x}", 0xfeed_0000u64 + i))
        .collect();
    for id in forged_ids.iter().chain([&mid]) {
        let url = format!("{base}/status?message_id={id}&status=2");
        let resp = reqwest::Client::new().get(url).send().await.unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "the provider is answered as usual"
        );
    }
    // An id too long to be anybody's.
    let long = "x".repeat(250_000);
    let resp = reqwest::Client::new()
        .post(format!("{base}/status"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(cases::query(&[
            ("message_id", long.as_str()),
            ("status", "1"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    let logs = eventually("every forged report logged", || async {
        let logs = api.logs(&cid).await;
        let n = logs
            .iter()
            .filter(|e| {
                let m = e["message"].as_str().unwrap_or("");
                m.contains("a message this channel did not send") || m.contains("longer than 128")
            })
            .count();
        (n == 52).then_some(logs)
    })
    .await;
    assert!(
        !serde_json::to_string(&logs)
            .unwrap()
            .contains(&"x".repeat(200))
    );
    // No record was made for any of them: the ids have no events.
    for id in forged_ids.iter().take(5) {
        let status = api
            .get(&format!("/channels/{cid}/messages/{id}"))
            .await
            .ok(200, "message status");
        assert_eq!(status["events"], json!([]), "{status}");
        assert_eq!(status["last_event_type"], Value::Null);
    }
    // The other channel's message has no event from this one.
    let status = api
        .get(&format!("/channels/{other}/messages/{mid}"))
        .await
        .ok(200, "message status");
    assert!(
        !serde_json::to_string(&status)
            .unwrap()
            .contains("delivery_failed"),
        "{status}"
    );
    assert!(
        hits(&hooks)
            .await
            .iter()
            .all(|(p, _, _)| !p.starts_with("/ev/a"))
    );
    let metrics = api.get("/metrics").await.text;
    assert_eq!(refused_count(&metrics, &cid, "unknown_message"), 52.0);
}
