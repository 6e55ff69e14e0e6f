//! The keys every Vumi worker's config accepts (`amqp_prefetch_count`, `middleware`, ...),
//! which Junebug channel configs carry, are accepted on every channel type and ignored; a
//! misspelt key of the type's own is still refused.

mod common;
use common::*;
use serde_json::{Value, json};

/// A valid `config` of each channel type (nothing it would reach is listening).
fn configs() -> Vec<(&'static str, Value)> {
    let nowhere = "http://127.0.0.1:9";
    vec![
        ("aat", json!({})),
        (
            "africastalking",
            json!({"username": "hornbill", "api_key": "atsk_0123456789", "base_url": nowhere}),
        ),
        (
            "clickatell",
            json!({"api_key": "ck-1", "base_url": nowhere}),
        ),
        ("dmark", json!({})),
        ("http", json!({"send_url": format!("{nowhere}/send")})),
        ("infobip", json!({"api_key": "ib-1", "base_url": nowhere})),
        (
            "irc",
            json!({"network": "127.0.0.1", "port": 9, "nickname": "hornbot"}),
        ),
        (
            "smpp",
            json!({"twisted_endpoint": "tcp:127.0.0.1:9", "system_id": "hb"}),
        ),
        (
            "telegram",
            json!({"bot_token": "123456789:AAH-test_token", "api_url": nowhere}),
        ),
        (
            "telnet",
            json!({"twisted_endpoint": format!("tcp:{}", free_port())}),
        ),
        (
            "twilio",
            json!({"account_sid": "AC1", "auth_token": "t", "from": "+15005550006",
                   "base_url": nowhere}),
        ),
        (
            "twitter",
            json!({"user_id": "1", "api_key": "k", "api_key_secret": "s",
                   "access_token": "t", "access_token_secret": "ts", "base_url": nowhere}),
        ),
        (
            "vonage",
            json!({"api_key": "k", "api_secret": "s", "base_url": nowhere}),
        ),
        ("webhook", json!({"url": format!("{nowhere}/out")})),
        (
            "whatsapp",
            json!({"phone_number_id": "1", "access_token": "t", "app_secret": "s",
                   "verify_token": "v", "base_url": nowhere}),
        ),
        (
            "xmpp",
            json!({"host": "127.0.0.1", "port": 9, "username": "bot@localhost",
                   "password": "pw", "insecure_loopback": true}),
        ),
    ]
}

#[tokio::test]
async fn every_channel_type_accepts_the_keys_of_every_vumi_worker() {
    let table = configs();
    let mut types: Vec<&str> = table.iter().map(|(t, _)| *t).collect();
    types.sort();
    assert_eq!(
        types,
        hornbill::transports::Registry::builtin().names(),
        "every channel type is in the table"
    );
    let server = Server::start("");
    let api = server.api();
    for (kind, config) in table {
        let mut junebug = config.clone();
        junebug["amqp_prefetch_count"] = json!(20);
        junebug["middleware"] = json!([]);
        junebug["transport_name"] = json!("c1");
        junebug["worker_name"] = json!("c1");
        junebug["publish_status"] = json!(true);
        junebug["redis_manager"] = json!({"key_prefix": "junebug"});
        let body = json!({"type": kind, "config": junebug, "mo_url": "http://127.0.0.1:9/mo"});
        let reply = api.post("/channels/", body).await;
        assert_eq!(reply.status, 201, "{kind}: {}", reply.text);
        // Stored and shown as given, as Junebug does.
        assert_eq!(
            reply.body["result"]["config"]["amqp_prefetch_count"],
            json!(20),
            "{kind}"
        );

        let mut typo = config.clone();
        typo["amqp_prefetch_cuont"] = json!(20);
        let body = json!({"type": kind, "config": typo, "mo_url": "http://127.0.0.1:9/mo"});
        let reply = api.post("/channels/", body).await;
        assert_eq!(
            reply.status, 400,
            "{kind}: a typo is refused: {}",
            reply.text
        );
        assert!(
            reply.text.contains("amqp_prefetch_cuont"),
            "{kind}: {}",
            reply.text
        );
    }
}
