//! Channel type `infobip` against a stub of Infobip's SMS API v3: inbound SMS and delivery
//! reports (JSON `results[]`), sends and their answers, with an API key and with Basic
//! credentials. Payloads are Infobip's documented ones (as in courier's test data).

mod common;
use common::cases::*;
use serde_json::json;

const KEY: &str = "ibk_4a1f9c0e7d2b6a83";
const PASSWORD: &str = "ib-pw-Zq81xkLm";

fn table() -> Table {
    Table {
        channel_type: "infobip",
        config: Box::new(|stub| json!({"api_key": KEY, "from": "2020", "base_url": stub})),
        send: ("POST", "/sms/3/messages"),
        secrets: vec![KEY],
        signer: None,
    }
}

/// Infobip's answer to a send: one message in `group` (1 PENDING, 5 REJECTED, ...).
fn answer(id: &str, group: u64, group_name: &str, name: &str, description: &str) -> String {
    json!({"bulkId": "2034072219640523072", "messages": [{
        "messageId": id, "destination": "254711000001",
        "status": {"groupId": group, "groupName": group_name, "id": 26, "name": name,
                   "description": description}}]})
    .to_string()
}

fn pending(id: &str) -> String {
    answer(
        id,
        1,
        "PENDING",
        "PENDING_ACCEPTED",
        "Message sent to next instance",
    )
}

/// A delivery report of `id` in `group`/`name`.
fn report(id: &str, group: &str, name: &str) -> Body {
    Body::Json(json!({"results": [{
        "bulkId": "2034072219640523072", "messageId": id, "to": "254711000001", "from": "2020",
        "sentAt": "2019-11-09T16:00:00.000+0000", "doneAt": "2019-11-09T16:00:00.000+0000",
        "smsCount": 1, "price": {"pricePerMessage": 0.01, "currency": "EUR"},
        "status": {"groupId": 3, "groupName": group, "id": 5, "name": name,
                   "description": "Message delivered to handset"},
        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
                  "description": "No Error", "permanent": false}}]}))
}

#[tokio::test]
async fn incoming_cases() {
    let sent = || Some((200, pending("ib-accepted-1")));
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "an SMS",
                action: "inbound",
                body: Body::Json(json!({"results": [{
                    "messageId": "0191e180-7d60-7000-aded-7d8b151cbd5b",
                    "from": "385916242494", "to": "385921004027",
                    "text": "This is an SMS message", "cleanText": "This is an SMS message",
                    "keyword": "", "receivedAt": "2016-10-06T09:28:40.000+0000",
                    "smsCount": 1, "price": {"pricePerMessage": 0, "currency": "EUR"},
                    "callbackData": "callbackData"}],
                    "messageCount": 1, "pendingMessageCount": 0})),
                status: 200,
                response_contains: vec!["Message Accepted"],
                inbound: Some(json!({
                    "from": "385916242494", "to": "385921004027",
                    "content": "This is an SMS message", "reply_to": null})),
                ..Default::default()
            },
            Incoming {
                label: "an MMS, its text in a text/plain segment",
                action: "inbound",
                body: Body::Json(json!({"results": [{
                    "messageId": "817790313235066448", "from": "41793026727", "to": "25256",
                    "receivedAt": "2024-10-06T09:28:39.220+0000",
                    "userAgent": "motogstylus5g", "callbackData": "Some custom data",
                    "message": [
                        {"contentType": "image/jpeg", "url": "https://media.example/p1.jpg"},
                        {"contentType": "text/plain; charset=utf-8", "value": "Photo of the flood"}
                    ],
                    "price": {"pricePerMessage": 0, "currency": "EUR"}}],
                    "messageCount": 1, "pendingMessageCount": 0})),
                status: 200,
                response_contains: vec!["Message Accepted"],
                inbound: Some(json!({"from": "41793026727", "to": "25256",
                                     "content": "Photo of the flood"})),
                ..Default::default()
            },
            Incoming {
                label: "an SMS with empty text (ignored)",
                action: "inbound",
                body: Body::Json(json!({"results": [{
                    "messageId": "817790313235066449", "from": "385916242494",
                    "to": "385921004027", "text": "", "cleanText": "", "keyword": "",
                    "receivedAt": "2016-10-06T09:28:40.000+0000", "smsCount": 1}],
                    "messageCount": 1, "pendingMessageCount": 0})),
                status: 200,
                response_contains: vec!["Ignored"],
                log_contains: vec!["no text"],
                ..Default::default()
            },
            Incoming {
                label: "an SMS without a sender",
                action: "inbound",
                body: Body::Json(json!({"results": [{"messageId": "x", "to": "385921004027",
                    "text": "hi"}], "messageCount": 1})),
                status: 400,
                response_contains: vec!["field 'results[].from' required"],
                ..Default::default()
            },
            Incoming {
                label: "a body without results",
                action: "inbound",
                body: Body::Json(json!({"deliveryReport": [{"messageId": "x"}]})),
                status: 400,
                response_contains: vec!["field 'results' required"],
                ..Default::default()
            },
            Incoming {
                label: "a body that is not JSON",
                action: "inbound",
                body: Body::Raw("application/json", "Invalid".into()),
                status: 400,
                response_contains: vec!["unable to parse request JSON"],
                ..Default::default()
            },
            Incoming {
                label: "no messages",
                action: "inbound",
                body: Body::Json(
                    json!({"results": [], "messageCount": 0, "pendingMessageCount": 0}),
                ),
                status: 200,
                response_contains: vec!["Ignored"],
                ..Default::default()
            },
            Incoming {
                label: "delivered to the handset (the report names our id)",
                action: "status",
                body: report("{message_id}", "DELIVERED", "DELIVERED_TO_HANDSET"),
                prior_send: sent(),
                status: 200,
                response_contains: vec!["Status Update Accepted"],
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "delivered (the report names the id Infobip answered)",
                action: "status",
                body: report(
                    "0191e180-7d60-7000-aded-7d8b151cbd5b",
                    "DELIVERED",
                    "DELIVERED_TO_HANDSET",
                ),
                prior_send: Some((200, pending("0191e180-7d60-7000-aded-7d8b151cbd5b"))),
                status: 200,
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "delivered to the operator only",
                action: "status",
                body: report("{message_id}", "DELIVERED", "DELIVERED_TO_OPERATOR"),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_pending"})),
                ..Default::default()
            },
            Incoming {
                label: "rejected",
                action: "status",
                body: Body::Json(json!({"results": [{"messageId": "{message_id}",
                    "status": {"groupName": "REJECTED"}}]})),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "expired",
                action: "status",
                body: report("{message_id}", "EXPIRED", "EXPIRED_EXPIRED"),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "an unknown status group",
                action: "status",
                body: Body::Json(json!({"results": [{"messageId": "x",
                    "status": {"groupName": "LOST"}}]})),
                status: 400,
                response_contains: vec!["unknown status 'LOST', must be one of 'DELIVERED'"],
                ..Default::default()
            },
            Incoming {
                label: "a report without status",
                action: "status",
                body: Body::Json(json!({"results": [{"messageId": "x"}]})),
                status: 400,
                response_contains: vec!["field 'results[].status.groupName' required"],
                ..Default::default()
            },
            Incoming {
                label: "an action the type does not take",
                action: "receive",
                body: Body::Json(json!({"results": []})),
                status: 404,
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases() {
    let send = json!({"to": "+254711000001", "content": "Simple Message ☺"});
    run_outgoing(
        &table(),
        &[
            Outgoing {
                label: "accepted",
                send: send.clone(),
                responses: vec![(200, pending("ib-accepted-7"))],
                request: ExpectRequest {
                    headers: vec![
                        ("authorization", format!("App {KEY}")),
                        ("content-type", "application/json".into()),
                        ("accept", "application/json".into()),
                    ],
                    json: Some(json!({"messages": [{
                        "sender": "2020",
                        "destinations": [{"to": "254711000001", "messageId": "{message_id}"}],
                        "content": {"text": "Simple Message ☺"},
                        "webhooks": {"delivery": {
                            "url": "{callback}/status",
                            "intermediateReport": true, "contentType": "application/json"}}}]})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "rejected by Infobip",
                send: send.clone(),
                responses: vec![(
                    200,
                    answer(
                        "ib-rejected-1",
                        5,
                        "REJECTED",
                        "REJECTED_NOT_ENOUGH_CREDITS",
                        "Not enough credits",
                    ),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Infobip: REJECTED_NOT_ENOUGH_CREDITS: Not enough credits"}}),
                ..Default::default()
            },
            Outgoing {
                label: "an unexpected status group",
                send: send.clone(),
                responses: vec![(200, r#"{"messages":[{"status":{"groupId": 2}}]}"#.into())],
                event: json!({"event_type": "rejected",
                              "event_details": {"reason": "Infobip: status group 2"}}),
                ..Default::default()
            },
            Outgoing {
                label: "bad credentials (401) are final",
                send: send.clone(),
                responses: vec![(
                    401,
                    r#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#.into(),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "HTTP 401: Infobip: Invalid login details"}}),
                ..Default::default()
            },
            Outgoing {
                label: "throttled (429) then accepted",
                send: send.clone(),
                responses: vec![
                    (
                        429,
                        r#"{"requestError":{"serviceException":{"messageId":"TOO_MANY_REQUESTS","text":"Too many requests"}}}"#.into(),
                    ),
                    (200, pending("ib-accepted-8")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "a 503 then accepted",
                send: send.clone(),
                responses: vec![
                    (503, "Service Unavailable".into()),
                    (200, pending("ib-accepted-9")),
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
async fn basic_credentials() {
    let table = Table {
        channel_type: "infobip",
        config: Box::new(
            |stub| json!({"username": "hornbill", "password": PASSWORD, "base_url": stub}),
        ),
        send: ("POST", "/sms/3/messages"),
        secrets: vec![PASSWORD],
        signer: None,
    };
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("hornbill:{PASSWORD}"));
    run_outgoing(
        &table,
        &[Outgoing {
            label: "accepted with Basic credentials and no sender",
            send: json!({"to": "254711000001", "content": "Simple Message"}),
            responses: vec![(200, pending("ib-accepted-10"))],
            request: ExpectRequest {
                headers: vec![("authorization", format!("Basic {basic}"))],
                json: Some(json!({"messages": [{"sender": null,
                    "destinations": [{"to": "254711000001"}],
                    "content": {"text": "Simple Message"}}]})),
                ..Default::default()
            },
            event: json!({"event_type": "submitted"}),
            ..Default::default()
        }],
    )
    .await;
}
