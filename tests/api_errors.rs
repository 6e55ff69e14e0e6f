//! Every error of the API, with Junebug's exact envelope, description and error object.

mod common;
use common::*;
use serde_json::json;

const MISSING: &str = "00000000-0000-4000-8000-000000000000";

#[tokio::test]
async fn invalid_json_gives_json_decode_error() {
    let server = Server::start("");
    let api = server.api();
    for raw in ["{not json", "", "[1, 2", "{\"type\": \"telnet\",}"] {
        let r = api.raw("POST", "/channels/", Some(raw)).await;
        let errors = r.error(400, "Bad Request", "json decode error");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["type"], "JsonDecodeError");
        assert!(
            errors[0]["message"].as_str().unwrap().len() > 3,
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn schema_violations_one_entry_each_with_junebug_text() {
    let server = Server::start("");
    let api = server.api();
    let r = api
        .post(
            "/channels/",
            json!({"label": 5, "rate_limit_count": -3, "character_limit": "many"}),
        )
        .await;
    let errors = r.error(400, "Bad Request", "api usage error");
    assert_eq!(
        errors,
        vec![
            json!({"type": "invalid_body", "message": "'config' is a required property", "schema_path": ["required"]}),
            json!({"type": "invalid_body", "message": "'type' is a required property", "schema_path": ["required"]}),
            json!({"type": "invalid_body", "message": "-3 is less than the minimum of 0",
                   "schema_path": ["properties", "rate_limit_count", "minimum"]}),
            json!({"type": "invalid_body", "message": "5 is not of type 'string'",
                   "schema_path": ["properties", "label", "type"]}),
            json!({"type": "invalid_body", "message": "u'many' is not of type 'integer'",
                   "schema_path": ["properties", "character_limit", "type"]}),
        ]
    );
}

#[tokio::test]
async fn channel_errors() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();

    for (method, path) in [
        ("GET", format!("/channels/{MISSING}")),
        ("DELETE", format!("/channels/{MISSING}")),
        ("POST", format!("/channels/{MISSING}/restart")),
        ("GET", format!("/channels/{MISSING}/logs")),
        (
            "GET",
            format!("/channels/{MISSING}/messages/{}", "0".repeat(32)),
        ),
    ] {
        let r = api.raw(method, &path, None).await;
        let errors = r.error(404, "Not Found", "channel not found");
        assert_eq!(
            errors,
            vec![json!({"type": "ChannelNotFound", "message": ""})]
        );
    }
    // A valid send to an unknown channel is a 404; an invalid one is a 400 first (as Junebug).
    let r = api
        .post(
            &format!("/channels/{MISSING}/messages/"),
            json!({"to": "x", "content": "x"}),
        )
        .await;
    r.error(404, "Not Found", "channel not found");
    let r = api
        .post(
            &format!("/channels/{MISSING}/messages/"),
            json!({"to": "x"}),
        )
        .await;
    r.error(400, "Bad Request", "api usage error");

    let (mut body, _) = telnet_body(&mock.uri());
    body["type"] = json!("carrier-pigeon");
    let r = api.post("/channels/", body).await;
    let errors = r.error(400, "Bad Request", "invalid channel type");
    assert_eq!(errors[0]["type"], "InvalidChannelType");
    assert_eq!(
        errors[0]["message"],
        "Invalid channel type u'carrier-pigeon', must be one of: aat, africastalking, clickatell, dmark, http, infobip, irc, smpp, telegram, telnet, twilio, twitter, vonage, webhook, whatsapp, xmpp"
    );

    let r = api
        .post(
            "/channels/",
            json!({"type": "telnet", "config": {"twisted_endpoint": "udp:1"}}),
        )
        .await;
    let errors = r.error(400, "Bad Request", "invalid channel config");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("tcp:PORT"),
        "{}",
        r.text
    );

    let r = api.raw("GET", "/no/such/path", None).await;
    let errors = r.error(404, "Not Found", common_not_found());
    assert_eq!(errors[0]["type"], "Not Found");
    let r = api.raw("DELETE", "/channels/", None).await;
    let errors = r.error(
        405,
        "Method Not Allowed",
        "The method is not allowed for the requested URL.",
    );
    assert_eq!(errors[0]["code"], 405);
}

fn common_not_found() -> &'static str {
    "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
}

#[tokio::test]
async fn send_errors() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, _) = telnet_body(&mock.uri());
    body["character_limit"] = json!(5);
    let cid = api.create(body).await;
    let path = format!("/channels/{cid}/messages/");

    let r = api.post(&path, json!({"content": "nowhere"})).await;
    let errors = r.error(400, "Bad Request", "api usage error");
    assert_eq!(
        errors,
        vec![
            json!({"type": "ApiUsageError", "message": "Either \"to\" or \"reply_to\" must be specified"})
        ]
    );

    let r = api
        .post(&path, json!({"to": "x", "content": "123456"}))
        .await;
    let errors = r.error(400, "Bad Request", "message too long");
    assert_eq!(
        errors,
        vec![json!({"type": "MessageTooLong", "message":
            "Message content u'123456' is of length 6, which is greater than the character limit of 5"})]
    );
    // code points, not bytes; null content counts as empty
    api.send(&cid, json!({"to": "x", "content": "\u{1F600}".repeat(5)}))
        .await;
    api.send(&cid, json!({"to": "x", "content": null})).await;

    let unknown = "f".repeat(32);
    let r = api
        .post(&path, json!({"reply_to": unknown, "content": "x"}))
        .await;
    let errors = r.error(400, "Bad Request", "message not found");
    assert_eq!(
        errors,
        vec![
            json!({"type": "MessageNotFound", "message": format!("Inbound message with id {unknown} not found")})
        ]
    );

    let r = api
        .post(&path, json!({"to": "x", "content": "x", "priority": 1}))
        .await;
    let errors = r.error(400, "Bad Request", "api usage error");
    assert_eq!(errors[0]["message"], "1 is not of type 'string'");
    assert_eq!(
        errors[0]["schema_path"],
        json!(["properties", "priority", "type"])
    );

    let r = api
        .post(&path, json!({"to": "x", "content": "x", "surprise": true}))
        .await;
    let errors = r.error(400, "Bad Request", "api usage error");
    assert_eq!(
        errors[0]["message"],
        "Additional properties are not allowed (u'surprise' was unexpected)"
    );

    let r = api.raw("POST", &path, Some("{\"to\": ")).await;
    r.error(400, "Bad Request", "json decode error");

    // A channel with no destination refuses sends, as Junebug's did.
    let (mut body, _) = telnet_body(&mock.uri());
    body.as_object_mut().unwrap().remove("mo_url");
    let bare = api.create(body).await;
    let r = api
        .post(
            &format!("/channels/{bare}/messages/"),
            json!({"to": "x", "content": "x"}),
        )
        .await;
    let errors = r.error(400, "Bad Request", "api usage error");
    assert_eq!(
        errors[0]["message"],
        "This channel has no \"mo_url\" or \"amqp_queue\""
    );

    let r = api.get(&format!("/channels/{cid}/logs?n=lots")).await;
    r.error(400, "Bad Request", "api usage error");
}

#[tokio::test]
async fn an_oversized_body_gets_the_envelope() {
    let server = Server::start("");
    let api = server.api();
    let big = format!("{{\"label\": \"{}\"}}", "x".repeat(2 << 20));
    let r = api.raw("POST", "/channels/", Some(&big)).await;
    let errors = r.error(413, "Request Entity Too Large", "request entity too large");
    assert_eq!(errors[0]["type"], "RequestEntityTooLarge");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("larger than 1048576 bytes"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn amqp_queue_needs_the_rabbitmq_bus() {
    let server = Server::start("");
    let api = server.api();
    let (mut body, _) = telnet_body("http://127.0.0.1:9/x");
    body["amqp_queue"] = json!("app");
    let r = api.post("/channels/", body).await;
    let errors = r.error(400, "Bad Request", "api usage error");
    assert_eq!(errors[0]["type"], "ApiUsageError");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("amqp"),
        "{}",
        r.text
    );
}
