//! Channel type `twilio` against a stub of Twilio's published Messaging API: the shared case
//! tables (signed inbound SMS, signed status callbacks, sends and Twilio's error answers),
//! then a send whose `StatusCallback` URL is called back with our message id.

mod common;
use base64::Engine;
use common::cases::*;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::json;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twtok_5e4d3c2b1a09f8e7";
const FROM: &str = "+12028831111";
const SEND_PATH: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

/// Twilio's signature, computed here from the URL and form body as Twilio documents it.
fn sign(url: &str, body: &Body) -> Vec<(String, String)> {
    let mut params = match body {
        Body::Form(pairs) => pairs.clone(),
        _ => Vec::new(),
    };
    params.sort();
    let mut text = url.to_string();
    for (k, v) in &params {
        text.push_str(k);
        text.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![("X-Twilio-Signature".into(), sig)]
}

fn table() -> Table {
    Table {
        channel_type: "twilio",
        config: Box::new(
            |stub| json!({"account_sid": SID, "auth_token": TOKEN, "from": FROM, "base_url": stub}),
        ),
        send: ("POST", SEND_PATH),
        secrets: vec![TOKEN],
        signer: Some(Box::new(sign)),
    }
}

/// Twilio's answer to a send it took (the Message resource).
fn created(sid: &str) -> String {
    json!({"sid": sid, "account_sid": SID, "to": "+254711000001", "from": FROM,
           "messaging_service_sid": null, "body": "hello", "status": "queued",
           "num_segments": "1", "num_media": "0", "direction": "outbound-api",
           "api_version": "2010-04-01", "error_code": null, "error_message": null,
           "uri": format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json")})
    .to_string()
}

fn error(code: u64, message: &str, status: u16) -> String {
    json!({"code": code, "message": message,
           "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status})
    .to_string()
}

const TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;
const MSG_SID: &str = "SMe287d7109a5a925f182f0e07fe5b223b";

fn inbound_form() -> Body {
    form(&[
        ("ToCountry", "US"),
        ("ToState", "District Of Columbia"),
        ("SmsMessageSid", MSG_SID),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", "01022"),
        ("SmsSid", MSG_SID),
        ("FromState", "MA"),
        ("SmsStatus", "received"),
        ("FromCity", "CHICOPEE"),
        ("Body", "Msg ☺ & more"),
        ("FromCountry", "US"),
        ("To", FROM),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", MSG_SID),
        ("AccountSid", SID),
        ("From", "+14133881111"),
        ("ApiVersion", "2010-04-01"),
    ])
}

fn status_form(sid: &str, status: &str, error_code: Option<&str>) -> Body {
    let mut pairs = vec![
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", "+254711000001"),
        ("MessageSid", sid),
        ("AccountSid", SID),
        ("From", FROM),
        ("ApiVersion", "2010-04-01"),
    ];
    if let Some(code) = error_code {
        pairs.push(("ErrorCode", code));
    }
    form(&pairs)
}

#[tokio::test]
async fn incoming_cases() {
    let sent = || Some((201, created("SM0001")));
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "a signed SMS",
                action: "inbound",
                body: inbound_form(),
                signed: true,
                status: 200,
                response: Some(TWIML),
                inbound: Some(json!({"from": "+14133881111", "to": FROM,
                                     "content": "Msg ☺ & more", "reply_to": null})),
                ..Default::default()
            },
            Incoming {
                label: "a signed MMS: its media are attachments at Twilio's URLs",
                action: "inbound",
                body: {
                    let Body::Form(mut pairs) = inbound_form() else {
                        unreachable!()
                    };
                    pairs.retain(|(k, _)| k != "NumMedia");
                    let media = format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages/{MSG_SID}/Media/ME0001");
                    pairs.extend([
                        ("NumMedia".to_string(), "2".to_string()),
                        ("MediaUrl0".to_string(), media.clone()),
                        ("MediaContentType0".to_string(), "image/jpeg".to_string()),
                        ("MediaUrl1".to_string(), format!("{media}2")),
                        ("MediaContentType1".to_string(), "video/mp4".to_string()),
                    ]);
                    Body::Form(pairs)
                },
                signed: true,
                status: 200,
                inbound: Some(json!({"from": "+14133881111", "content": "Msg ☺ & more",
                    "attachments": [
                        {"url": format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages/{MSG_SID}/Media/ME0001"),
                         "content_type": "image/jpeg"},
                        {"url": format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages/{MSG_SID}/Media/ME00012"),
                         "content_type": "video/mp4"}]})),
                ..Default::default()
            },
            Incoming {
                label: "an SMS without a signature",
                action: "inbound",
                body: inbound_form(),
                status: 403,
                response_contains: vec!["missing request signature"],
                ..Default::default()
            },
            Incoming {
                label: "an SMS with a wrong signature",
                action: "inbound",
                body: inbound_form(),
                headers: vec![("X-Twilio-Signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=".into())],
                status: 403,
                response_contains: vec!["invalid request signature"],
                ..Default::default()
            },
            Incoming {
                label: "a signed SMS without From",
                action: "inbound",
                body: form(&[("To", FROM), ("Body", "x"), ("MessageSid", MSG_SID)]),
                signed: true,
                status: 400,
                response_contains: vec!["field 'From' required"],
                ..Default::default()
            },
            Incoming {
                label: "delivered",
                action: "status",
                body: status_form("SM0001", "delivered", None),
                signed: true,
                prior_send: sent(),
                status: 200,
                response: Some(TWIML),
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "undelivered",
                action: "status",
                body: status_form("SM0001", "undelivered", Some("30003")),
                signed: true,
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "sent",
                action: "status",
                body: status_form("SM0001", "sent", None),
                signed: true,
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_pending"})),
                ..Default::default()
            },
            Incoming {
                label: "a signed status callback without parameters",
                action: "status",
                signed: true,
                status: 200,
                response: Some(TWIML),
                ..Default::default()
            },
            Incoming {
                label: "a status callback without a signature",
                action: "status",
                body: status_form("SM0001", "delivered", None),
                status: 403,
                ..Default::default()
            },
            Incoming {
                label: "an unknown status word",
                action: "status",
                body: status_form("SM0001", "borked", None),
                signed: true,
                status: 400,
                response_contains: vec!["unknown status 'borked', must be one of", "'delivered'"],
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases() {
    let send = json!({"to": "+254711000001", "content": "Simple Message ☺"});
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
    );
    run_outgoing(
        &table(),
        &[
            Outgoing {
                label: "accepted",
                send: send.clone(),
                responses: vec![(201, created("SM0007"))],
                request: ExpectRequest {
                    headers: vec![
                        ("authorization", basic),
                        ("accept", "application/json".into()),
                        ("content-type", "application/x-www-form-urlencoded".into()),
                    ],
                    form: vec![
                        ("To", "+254711000001".into()),
                        ("From", FROM.into()),
                        ("Body", "Simple Message ☺".into()),
                    ],
                    absent: vec!["MessagingServiceSid"],
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "an MMS: each attachment a MediaUrl",
                send: json!({"to": "+254711000001", "content": "Look",
                             "attachments": [{"url": "https://cdn.example/cat.jpg",
                                              "content_type": "image/jpeg", "caption": "a cat"}]}),
                responses: vec![(201, created("SM0008"))],
                request: ExpectRequest {
                    form: vec![
                        ("Body", "Look".into()),
                        ("MediaUrl", "https://cdn.example/cat.jpg".into()),
                    ],
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "an invalid To (400) is final, with Twilio's reason",
                send: send.clone(),
                responses: vec![(
                    400,
                    error(21211, "The 'To' number is not a valid phone number.", 400),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Twilio 21211: The 'To' number is not a valid phone number."}}),
                ..Default::default()
            },
            Outgoing {
                label: "an opted-out recipient (21610) is final",
                send: send.clone(),
                responses: vec![(
                    400,
                    error(21610, "Attempt to send to unsubscribed recipient", 400),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Twilio 21610: Attempt to send to unsubscribed recipient (the recipient opted out with STOP)"}}),
                ..Default::default()
            },
            Outgoing {
                label: "throttled (429) then accepted",
                send: send.clone(),
                responses: vec![
                    (429, error(20429, "Too Many Requests", 429)),
                    (201, created("SM0008")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "a 500 then accepted",
                send: send.clone(),
                responses: vec![
                    (500, error(20500, "Internal Server Error", 500)),
                    (201, created("SM0009")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn status_callbacks_find_their_message_by_the_id_in_the_callback_url() {
    let bench = Bench::start("").await;
    let t = table();
    let provider = wiremock::MockServer::start().await;
    mount_answers(&provider, &t, &[(201, created("SM0010"))]).await;
    let (cid, tag) = bench.channel(&t, &provider.uri(), "by_id").await;
    let events = format!("/ev/{tag}");
    let sent = bench
        .api
        .send(
            &cid,
            json!({"to": "+254711000001", "content": "hello",
                   "event_url": format!("{}{events}", bench.hooks.uri())}),
        )
        .await;
    let mid = sent["message_id"].as_str().unwrap().to_string();
    eventually("the send is submitted", || async {
        bench
            .posted(&events)
            .await
            .into_iter()
            .find(|e| e["event_type"] == "submitted")
    })
    .await;
    let got = provider.received_requests().await.unwrap();
    let callback = request_form(&got[0])
        .into_iter()
        .find(|(k, _)| k == "StatusCallback")
        .map(|(_, v)| v);
    let expected = format!("{}/status?id={mid}", callback_base(&bench.public, &cid));
    assert_eq!(callback.as_deref(), Some(expected.as_str()));

    // Twilio calls it back with a sid the channel never saw: the id in the URL finds it.
    let case = Incoming {
        action: "status",
        query: format!("id={mid}"),
        body: status_form("SM_unknown", "delivered", None),
        signed: true,
        ..Default::default()
    };
    let (status, body) = bench.call(&t, &cid, &case).await;
    assert_eq!((status, body.as_str()), (200, TWIML));
    let event = eventually("the delivery report", || async {
        bench
            .posted(&events)
            .await
            .into_iter()
            .find(|e| e["event_type"] == "delivery_succeeded")
    })
    .await;
    assert_eq!(event["message_id"], json!(mid));

    // A callback whose id is not a message of this channel falls back to the sid Twilio
    // gave when it accepted the send.
    let by_sid = Incoming {
        action: "status",
        query: "id=0123456789abcdef0123456789abcdef".into(),
        body: status_form("SM0010", "undelivered", None),
        signed: true,
        ..Default::default()
    };
    let (status, _) = bench.call(&t, &cid, &by_sid).await;
    assert_eq!(status, 200);
    let event = eventually("the report found by its sid", || async {
        bench
            .posted(&events)
            .await
            .into_iter()
            .find(|e| e["event_type"] == "delivery_failed")
    })
    .await;
    assert_eq!(event["message_id"], json!(mid));

    // The same callback signed without the query is refused: the query is signed too.
    let tampered = Incoming {
        headers: sign(
            &format!("{}/status", callback_base(&bench.public, &cid)),
            &case.body,
        )
        .into_iter()
        .map(|(_, v)| ("X-Twilio-Signature", v))
        .collect(),
        signed: false,
        ..case.clone()
    };
    let (status, _) = bench.call(&t, &cid, &tampered).await;
    assert_eq!(status, 403);
    bench.assert_redacted(&t, &cid, "by_id").await;
}

#[tokio::test]
async fn configs_are_checked_at_creation() {
    let bench = Bench::start("").await;
    for (config, why) in [
        (
            json!({"account_sid": SID, "auth_token": TOKEN}),
            "one of from or messaging_service_sid is required",
        ),
        (
            json!({"account_sid": SID, "auth_token": TOKEN, "from": FROM, "messaging_service_sid": "MG1"}),
            "not both",
        ),
        (
            json!({"account_sid": SID, "auth_token": TOKEN, "from": FROM, "sender": "x"}),
            "unknown field `sender`",
        ),
    ] {
        let reply = bench
            .api
            .post(
                "/channels/",
                json!({"type": "twilio", "config": config, "mo_url": "http://127.0.0.1:9/mo"}),
            )
            .await;
        assert_eq!(reply.status, 400, "{config}: {}", reply.text);
        assert!(reply.text.contains(why), "{config}: {}", reply.text);
        assert!(!reply.text.contains(TOKEN), "{}", reply.text);
    }
}
