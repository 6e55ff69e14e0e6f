//! Config values that were accepted and then panicked or looped inside (a window of 2^61, a
//! timeout of 1e308 or 1e-300, a rate-limit window of 2^64-1) are refused when the channel
//! is created or modified, with a 400 naming the key; in the config file, `check-config`
//! names them. In-range values, `1.0` as an integer included, are accepted.

mod common;
use common::*;
use serde_json::{Value, json};

fn africastalking(extra: Value) -> Value {
    let mut config = json!({"username": "hornbill", "api_key": "atsk_0123456789", "from": "21512"});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    json!({"type": "africastalking", "mo_url": "http://127.0.0.1:9/mo", "config": config})
}

fn smpp(extra: Value) -> Value {
    let mut config = json!({"twisted_endpoint": "tcp:127.0.0.1:9", "system_id": "hb"});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    json!({"type": "smpp", "config": config})
}

#[tokio::test]
async fn channel_keys_out_of_range_are_a_400_naming_the_key() {
    let server = Server::start("");
    let api = server.api();
    let (telnet, _) = telnet_body("http://127.0.0.1:9/mo");
    for (key, value, message) in [
        (
            "window",
            json!(2u64.pow(61)),
            "2305843009213693952 is greater than the maximum of 10000",
        ),
        (
            "rate_limit_window",
            json!(u64::MAX),
            "18446744073709551615 is greater than the maximum of 86400",
        ),
        (
            "rate_limit_count",
            json!(1_000_001),
            "1000001 is greater than the maximum of 1000000",
        ),
        (
            "character_limit",
            json!(1e12),
            "1000000000000.0 is greater than the maximum of 1000000",
        ),
    ] {
        let mut body = telnet.clone();
        body[key] = value;
        let errors =
            api.post("/channels/", body)
                .await
                .error(400, "Bad Request", "api usage error");
        assert_eq!(
            errors,
            vec![json!({"type": "invalid_body", "message": message,
                        "schema_path": ["properties", key, "maximum"]})],
            "{key}"
        );
    }
    // JSON Schema's integers: 1.0 is one, 1.5 is not.
    let mut body = telnet.clone();
    body["window"] = json!(8.0);
    body["rate_limit_count"] = json!(5.0);
    body["rate_limit_window"] = json!(1);
    let cid = api.create(body).await;
    let mut body = telnet.clone();
    body["character_limit"] = json!(1.5);
    api.post("/channels/", body)
        .await
        .error(400, "Bad Request", "api usage error");
    // A modify is checked the same way, and the channel keeps its settings.
    let errors = api
        .post(&format!("/channels/{cid}"), json!({"window": 1_000_000}))
        .await
        .error(400, "Bad Request", "api usage error");
    assert_eq!(
        errors[0]["schema_path"],
        json!(["properties", "window", "maximum"])
    );
    assert_eq!(api.channel(&cid).await["window"], json!(8.0));
}

#[tokio::test]
async fn durations_out_of_range_are_invalid_channel_config_naming_the_key() {
    let server = Server::start("");
    let api = server.api();
    for (body, key) in [
        (africastalking(json!({"timeout": 1e308})), "timeout"),
        (africastalking(json!({"timeout": 1e-300})), "timeout"),
        (
            africastalking(json!({"request_timeout": 1e308})),
            "request_timeout",
        ),
        (
            africastalking(json!({"ussd_session_timeout": 1e308})),
            "ussd_session_timeout",
        ),
        (
            smpp(json!({"smpp_bind_timeout": 1e308})),
            "smpp_bind_timeout",
        ),
        (
            smpp(json!({"smpp_enquire_link_interval": 0.0})),
            "smpp_enquire_link_interval",
        ),
        (smpp(json!({"response_timeout": -1})), "response_timeout"),
        (smpp(json!({"mt_tps": 1e-300})), "mt_tps"),
        (
            json!({"type": "webhook", "config": {"url": "http://127.0.0.1:9/send", "timeout": 1e308}}),
            "timeout",
        ),
        (
            json!({"type": "telnet", "mo_url": "http://127.0.0.1:9/mo",
                   "config": {"twisted_endpoint": "tcp:0", "idle_timeout": 1e308}}),
            "idle_timeout",
        ),
        // Caps (README, "Limits") likewise.
        (
            json!({"type": "telnet", "mo_url": "http://127.0.0.1:9/mo",
                   "config": {"twisted_endpoint": "tcp:0", "max_connections": 0}}),
            "max_connections",
        ),
        (
            africastalking(json!({"max_ussd_sessions": 0})),
            "max_ussd_sessions",
        ),
        (
            smpp(json!({"max_reassembly_parts": 0})),
            "max_reassembly_parts",
        ),
    ] {
        let errors = api.post("/channels/", body.clone()).await.error(
            400,
            "Bad Request",
            "invalid channel config",
        );
        let message = errors[0]["message"].as_str().unwrap();
        assert_eq!(errors[0]["type"], "InvalidChannelConfig");
        assert!(
            message.contains(&format!("{key} must be")),
            "{body}: {message}"
        );
    }
    assert_eq!(
        api.get("/channels/").await.ok(200, "channels listed"),
        json!([])
    );

    // In range: created and running.
    let cid = api
        .create(africastalking(
            json!({"timeout": 0.5, "request_timeout": 30, "ussd_session_timeout": 600}),
        ))
        .await;
    let errors = api
        .post(
            &format!("/channels/{cid}"),
            json!({"config": {"username": "hornbill", "api_key": "atsk_0123456789",
                              "request_timeout": 1e308}}),
        )
        .await
        .error(400, "Bad Request", "invalid channel config");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("request_timeout must be a number of seconds from 0.1 to 300"),
        "{errors:?}"
    );
}

#[test]
fn the_config_file_is_checked_the_same_way() {
    let dir = TempDir::new();
    let path = dir.0.join("bounds.toml");
    std::fs::write(
        &path,
        r#"
[server]
fd_reserve = 0

[public]
max_connections = 0

[webhooks]
timeout = 1e308
max_backoff = 0.0
max_pending_per_destination = 0

[channel_defaults]
window = 2305843009213693952

[[channels]]
type = "telnet"
rate_limit_window = 9223372036854775807
config = { twisted_endpoint = "tcp:0" }

[[channels]]
type = "africastalking"
config = { username = "u", api_key = "atsk_0123456789", timeout = 1e-300 }
"#,
    )
    .unwrap();
    let (code, _, err) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "[webhooks] timeout must be a number of seconds from 0.1 to 300",
        "[webhooks] max_backoff must be a number of seconds",
        "[webhooks] max_pending_per_destination must be from 1 to 10000000 (got 0)",
        "[server] fd_reserve must be from 16 to 1000000 (got 0)",
        "[public] max_connections must be from 1 to 10000000 (got 0)",
        "[channel_defaults] window must be from 1 to 10000",
        "[[channels]] #1: 9223372036854775807 is greater than the maximum of 86400",
        "[[channels]] #2: Invalid config for channel type africastalking: timeout must be a number of seconds",
    ] {
        assert!(err.contains(expected), "{expected:?} not in:\n{err}");
    }
}
