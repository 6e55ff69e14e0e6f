//! Channel type `whatsapp` against a stub of Meta's WhatsApp Cloud API: the shared case
//! tables (webhook verification, signed notifications with Courier's payload shapes — text,
//! media fetched through hornbill, interactive replies, statuses — and sends: text, media,
//! templates and the Graph API's error answers).

mod common;
use common::cases::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const NUMBER_ID: &str = "1234567890";
const TOKEN: &str = "EAAGm0PX4ZCpsBAwatok_9f8e7d6c5b4a";
const APP_SECRET: &str = "wa_app_secret_0a1b2c3d4e";
const VERIFY: &str = "wa-verify-7f6e5d";
const SEND_PATH: &str = "/v21.0/1234567890/messages";
const MEDIA_ID: &str = "1033713764211956";

fn hex_sig(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Meta's signature: the hex HMAC-SHA256 of the raw body with the app secret.
fn sign(_url: &str, body: &Body) -> Vec<(String, String)> {
    let raw = match body {
        Body::Json(v) => v.to_string(),
        Body::Raw(_, t) => t.clone(),
        _ => String::new(),
    };
    vec![("X-Hub-Signature-256".into(), hex_sig(raw.as_bytes()))]
}

fn table() -> Table {
    Table {
        channel_type: "whatsapp",
        config: Box::new(|stub| {
            json!({"phone_number_id": NUMBER_ID, "access_token": TOKEN, "app_secret": APP_SECRET,
                   "verify_token": VERIFY, "base_url": stub})
        }),
        send: ("POST", SEND_PATH),
        secrets: vec![TOKEN, APP_SECRET, VERIFY],
        signer: Some(Box::new(sign)),
    }
}

/// A notification carrying `messages` or `statuses` for `number` (Courier's `wac` shapes).
fn notification(number: &str, key: &str, items: Value) -> Body {
    let mut value = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "+250 788 123 200", "phone_number_id": number},
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "5678"}]});
    value[key] = items;
    Body::Json(json!({"object": "whatsapp_business_account", "entry": [{
        "id": "8856996819413533", "changes": [{"value": value, "field": "messages"}]}]}))
}

fn message(kind: &str, body: Value) -> Body {
    let mut m = json!({"from": "5678", "id": "wamid.HBgLMjUwNzg4MTIzMjAwFQIAEhgUM0E",
                       "timestamp": "1454119029", "type": kind});
    m[kind] = body;
    notification(NUMBER_ID, "messages", json!([m]))
}

fn status(id: &str, word: &str, errors: Option<Value>) -> Body {
    let mut s = json!({"id": id, "recipient_id": "5678", "status": word,
        "timestamp": "1454119029", "type": "message",
        "conversation": {"id": "CONVERSATION_ID", "expiration_timestamp": 1454119029,
                         "origin": {"type": "service"}},
        "pricing": {"pricing_model": "CBP", "billable": true, "category": "service"}});
    if let Some(e) = errors {
        s["errors"] = e;
    }
    notification(NUMBER_ID, "statuses", json!([s]))
}

/// Meta's answer to a send it took.
fn accepted(wamid: &str) -> String {
    json!({"messaging_product": "whatsapp",
           "contacts": [{"input": "5678", "wa_id": "5678"}],
           "messages": [{"id": wamid}]})
    .to_string()
}

fn error(code: u64, message: &str, details: &str) -> String {
    json!({"error": {"message": message, "type": "OAuthException", "code": code,
           "error_data": {"messaging_product": "whatsapp", "details": details},
           "fbtrace_id": "AbCdEf"}})
    .to_string()
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 not really a jpeg";

/// The stub's Graph API media endpoints: the media object, then its bytes (both only with
/// the access token).
fn media_stubs() -> Vec<Stub> {
    vec![
        Stub {
            method: "GET",
            path: "/v21.0/1033713764211956",
            headers: vec![("authorization", bearer())],
            status: 200,
            content_type: "application/json",
            body: json!({"messaging_product": "whatsapp",
                         "url": "{stub}/whatsapp_business/attachments/1033713764211956",
                         "mime_type": "image/jpeg", "sha256": "29ed50", "file_size": 23,
                         "id": MEDIA_ID})
            .to_string()
            .into_bytes(),
        },
        Stub {
            method: "GET",
            path: "/whatsapp_business/attachments/1033713764211956",
            headers: vec![("authorization", bearer())],
            status: 200,
            content_type: "image/jpeg",
            body: JPEG.to_vec(),
        },
    ]
}

#[tokio::test]
async fn incoming_cases() {
    let sent = || Some((200, accepted("wamid.SENT1")));
    let verify = |token: &str| {
        query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", token),
            ("hub.challenge", "1158201444"),
        ])
    };
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "the webhook verification",
                action: "receive",
                method: "GET",
                query: verify(VERIFY),
                status: 200,
                response: Some("1158201444"),
                ..Default::default()
            },
            Incoming {
                label: "a verification with a wrong token",
                action: "receive",
                method: "GET",
                query: verify("guess"),
                status: 403,
                log_contains: vec!["Refused a receive callback (403)", "wrong hub.verify_token"],
                ..Default::default()
            },
            Incoming {
                label: "a signed text message",
                action: "receive",
                body: message("text", json!({"body": "Hello World"})),
                signed: true,
                status: 200,
                inbound: Some(
                    json!({"from": "5678", "to": NUMBER_ID, "content": "Hello World",
                    "channel_data": {"whatsapp": {"profile_name": "Kerry Fisher"}}}),
                ),
                ..Default::default()
            },
            Incoming {
                label: "a notification without a signature",
                action: "receive",
                body: message("text", json!({"body": "Hello World"})),
                status: 403,
                response_contains: vec!["missing X-Hub-Signature-256"],
                log_contains: vec!["Refused a receive callback (403)"],
                ..Default::default()
            },
            Incoming {
                label: "a notification with a forged signature",
                action: "receive",
                body: message("text", json!({"body": "Hello World"})),
                headers: vec![("X-Hub-Signature-256", hex_sig(b"something else"))],
                status: 403,
                response_contains: vec!["invalid X-Hub-Signature-256"],
                log_contains: vec!["invalid X-Hub-Signature-256"],
                ..Default::default()
            },
            Incoming {
                label: "an image with a caption, fetched through hornbill",
                action: "receive",
                body: message(
                    "image",
                    json!({"id": MEDIA_ID, "mime_type": "image/jpeg",
                           "sha256": "29ed500fa64eb55fc19dc4124acb300e5dcc54a0f822a301ae99944db",
                           "caption": "Check out my new phone!"}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"from": "5678", "content": "Check out my new phone!",
                    "attachments": [{"url": format!("{{callback}}/media/{MEDIA_ID}"),
                                     "content_type": "image/jpeg",
                                     "caption": "Check out my new phone!"}]})),
                stubs: media_stubs(),
                media: Some(MediaFetch {
                    index: 0,
                    status: 200,
                    content_type: "image/jpeg",
                    body: JPEG.to_vec(),
                }),
                ..Default::default()
            },
            Incoming {
                label: "media the provider no longer has: 404 through hornbill",
                action: "receive",
                body: message(
                    "video",
                    json!({"id": "9988776655", "mime_type": "video/mp4"}),
                ),
                signed: true,
                status: 200,
                inbound: Some(
                    json!({"attachments": [{"url": "{callback}/media/9988776655",
                                                      "content_type": "video/mp4"}]}),
                ),
                media: Some(MediaFetch {
                    index: 0,
                    status: 404,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Incoming {
                label: "a notification with a message and a status",
                action: "receive",
                body: {
                    let Body::Json(mut both) = status("wamid.SENT1", "delivered", None) else {
                        unreachable!()
                    };
                    both["entry"][0]["changes"][0]["value"]["messages"] = json!([{
                        "from": "5678", "id": "wamid.IN2", "timestamp": "1454119030",
                        "type": "text", "text": {"body": "thanks"}}]);
                    Body::Json(both)
                },
                signed: true,
                prior_send: sent(),
                prior_to: Some("5678"),
                status: 200,
                inbound: Some(json!({"from": "5678", "content": "thanks"})),
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "a voice note without caption",
                action: "receive",
                body: message(
                    "audio",
                    json!({"id": "5678901234", "mime_type": "audio/ogg; codecs=opus",
                           "sha256": "abc", "voice": true}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"from": "5678", "content": null,
                    "attachments": [{"url": "{callback}/media/5678901234",
                                     "content_type": "audio/ogg; codecs=opus"}]})),
                ..Default::default()
            },
            Incoming {
                label: "a document",
                action: "receive",
                body: message(
                    "document",
                    json!({"id": "4455667788", "mime_type": "application/pdf",
                           "filename": "invoice.pdf", "caption": "My invoice"}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": "My invoice",
                    "attachments": [{"url": "{callback}/media/4455667788",
                                     "content_type": "application/pdf",
                                     "caption": "My invoice"}]})),
                ..Default::default()
            },
            Incoming {
                label: "an interactive button reply",
                action: "receive",
                body: message(
                    "interactive",
                    json!({"type": "button_reply",
                           "button_reply": {"id": "id_button_reply", "title": "Yes"}}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": "Yes", "channel_data": {"whatsapp": {
                    "interactive": {"type": "button_reply", "id": "id_button_reply"}}}})),
                ..Default::default()
            },
            Incoming {
                label: "an interactive list reply",
                action: "receive",
                body: message(
                    "interactive",
                    json!({"type": "list_reply",
                           "list_reply": {"id": "id_list_reply", "title": "Row 1",
                                          "description": "the first"}}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": "Row 1", "channel_data": {"whatsapp": {
                    "interactive": {"type": "list_reply", "id": "id_list_reply",
                                    "description": "the first"}}}})),
                ..Default::default()
            },
            Incoming {
                label: "a template quick-reply button",
                action: "receive",
                body: message(
                    "button",
                    json!({"payload": "No-Button-Payload", "text": "No"}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": "No", "channel_data": {"whatsapp": {
                    "button_payload": "No-Button-Payload"}}})),
                ..Default::default()
            },
            Incoming {
                label: "a location",
                action: "receive",
                body: message(
                    "location",
                    json!({"latitude": -1.9441, "longitude": 30.0619, "name": "Kigali"}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": null, "channel_data": {"whatsapp": {
                    "location": {"latitude": -1.9441, "longitude": 30.0619, "name": "Kigali"}}}})),
                ..Default::default()
            },
            Incoming {
                label: "a message for another number of the account",
                action: "receive",
                body: notification(
                    "999999",
                    "messages",
                    json!([{"from": "5678", "id": "wamid.X", "timestamp": "1454119029",
                            "type": "text", "text": {"body": "not ours"}}]),
                ),
                signed: true,
                status: 200,
                log_contains: vec!["Ignored a receive callback", "999999"],
                ..Default::default()
            },
            Incoming {
                label: "a message without from",
                action: "receive",
                body: notification(
                    NUMBER_ID,
                    "messages",
                    json!([{"id": "wamid.X", "timestamp": "1454119029", "type": "text",
                            "text": {"body": "x"}}]),
                ),
                signed: true,
                status: 400,
                response_contains: vec!["a message without 'from'"],
                ..Default::default()
            },
            Incoming {
                label: "sent",
                action: "receive",
                body: status("wamid.SENT1", "sent", None),
                signed: true,
                prior_send: sent(),
                prior_to: Some("5678"),
                status: 200,
                event: Some(json!({"event_type": "delivery_pending"})),
                ..Default::default()
            },
            Incoming {
                label: "read",
                action: "receive",
                body: status("wamid.SENT1", "read", None),
                signed: true,
                prior_send: sent(),
                prior_to: Some("5678"),
                status: 200,
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "failed",
                action: "receive",
                body: status(
                    "wamid.SENT1",
                    "failed",
                    Some(json!([{"code": 131026, "title": "Message undeliverable"}])),
                ),
                signed: true,
                prior_send: sent(),
                prior_to: Some("5678"),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                log_contains: vec!["WhatsApp 131026: Message undeliverable"],
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases() {
    let text = json!({"to": "5678", "content": "Simple Message ☺"});
    run_outgoing(
        &table(),
        &[
            Outgoing {
                label: "a text",
                send: text.clone(),
                responses: vec![(200, accepted("wamid.T1"))],
                request: ExpectRequest {
                    headers: vec![
                        ("authorization", bearer()),
                        ("content-type", "application/json".into()),
                    ],
                    json: Some(json!({"messaging_product": "whatsapp",
                        "recipient_type": "individual", "to": "5678", "type": "text",
                        "text": {"body": "Simple Message ☺", "preview_url": false}})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "an image with the content as its caption",
                send: json!({"to": "5678", "content": "Look",
                    "attachments": [{"url": "https://media.example/cat.jpg",
                                     "content_type": "image/jpeg"}]}),
                responses: vec![(200, accepted("wamid.M1"))],
                request: ExpectRequest {
                    json: Some(json!({"to": "5678", "type": "image",
                        "image": {"link": "https://media.example/cat.jpg", "caption": "Look"}})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "two attachments and a text: one request each",
                send: json!({"to": "5678", "content": "Here you are",
                    "attachments": [
                        {"url": "https://media.example/song.mp3", "content_type": "audio/mpeg"},
                        {"url": "https://media.example/report.pdf",
                         "content_type": "application/pdf", "caption": "The report"}]}),
                responses: vec![(200, accepted("wamid.M2"))],
                request: ExpectRequest {
                    json: Some(json!({"type": "audio",
                        "audio": {"link": "https://media.example/song.mp3", "caption": null}})),
                    ..Default::default()
                },
                more: vec![
                    ExpectRequest {
                        json: Some(json!({"type": "document", "document": {
                            "link": "https://media.example/report.pdf",
                            "caption": "The report", "filename": "report.pdf"}})),
                        ..Default::default()
                    },
                    ExpectRequest {
                        json: Some(json!({"type": "text",
                                          "text": {"body": "Here you are"}})),
                        ..Default::default()
                    },
                ],
                attempts: 3,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a template",
                send: json!({"to": "5678", "content": "ignored",
                    "channel_data": {"whatsapp": {"template": {"name": "order_update",
                        "language": "en_US",
                        "components": [{"type": "body", "parameters": [
                            {"type": "text", "text": "#1234"}]}]}}}}),
                responses: vec![(200, accepted("wamid.TPL"))],
                request: ExpectRequest {
                    json: Some(json!({"type": "template", "template": {
                        "name": "order_update", "language": {"code": "en_US"},
                        "components": [{"type": "body", "parameters": [
                            {"type": "text", "text": "#1234"}]}]}})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a template without a language is rejected unsent",
                send: json!({"to": "5678", "content": "x",
                    "channel_data": {"whatsapp": {"template": {"name": "order_update"}}}}),
                responses: vec![(200, accepted("wamid.never"))],
                unsent: true,
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "channel_data.whatsapp.template needs a language code"}}),
                ..Default::default()
            },
            Outgoing {
                label: "outside the 24-hour window (131047) is final",
                send: text.clone(),
                responses: vec![(
                    400,
                    error(
                        131047,
                        "(#131047) Re-engagement message",
                        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
                    ),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "WhatsApp 131047: (#131047) Re-engagement message (Message failed to send because more than 24 hours have passed since the customer last replied to this number.) [more than 24 hours since the user last wrote: send a template]"}}),
                ..Default::default()
            },
            Outgoing {
                label: "an expired access token (190) is final",
                send: text.clone(),
                responses: vec![(
                    401,
                    error(190, "Error validating access token: Session has expired", ""),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "WhatsApp 190: Error validating access token: Session has expired"}}),
                ..Default::default()
            },
            Outgoing {
                label: "throughput limit (130429) then accepted",
                send: text.clone(),
                responses: vec![
                    (
                        400,
                        error(
                            130429,
                            "(#130429) Rate limit hit",
                            "Cloud API message throughput has been reached.",
                        ),
                    ),
                    (200, accepted("wamid.T2")),
                ],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "pair rate limit (131056) with Retry-After then accepted",
                send: text.clone(),
                responses: vec![
                    (
                        400,
                        error(
                            131056,
                            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                            "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
                        ),
                    ),
                    (200, accepted("wamid.T3")),
                ],
                response_headers: vec![("retry-after", "1".into())],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a 500 then accepted",
                send: text.clone(),
                responses: vec![
                    (500, error(131000, "Something went wrong", "")),
                    (200, accepted("wamid.T4")),
                ],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn configs_are_checked_and_secrets_hidden() {
    let bench = Bench::start("").await;
    let base = json!({"phone_number_id": NUMBER_ID, "access_token": TOKEN,
                      "app_secret": APP_SECRET, "verify_token": VERIFY});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    for (config, why) in [
        (with("phone_number_id", json!("+250788123200")), "digits"),
        (
            with("app_secret", json!("")),
            "app_secret must not be empty",
        ),
        (with("appsecret", json!("x")), "unknown field `appsecret`"),
    ] {
        let reply = bench
            .api
            .post(
                "/channels/",
                json!({"type": "whatsapp", "config": config, "mo_url": "http://127.0.0.1:9/mo"}),
            )
            .await;
        assert_eq!(reply.status, 400, "{config}: {}", reply.text);
        assert!(reply.text.contains(why), "{config}: {}", reply.text);
        for s in [TOKEN, APP_SECRET, VERIFY] {
            assert!(!reply.text.contains(s), "{}", reply.text);
        }
    }
    let cid = bench
        .api
        .create(json!({"type": "whatsapp", "config": base, "mo_url": "http://127.0.0.1:9/mo"}))
        .await;
    let shown = bench.api.get(&format!("/channels/{cid}")).await.text;
    for s in [TOKEN, APP_SECRET, VERIFY] {
        assert!(!shown.contains(s), "{shown}");
    }
    assert!(shown.contains(NUMBER_ID), "{shown}");
}
