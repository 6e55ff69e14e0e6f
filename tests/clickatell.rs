//! Channel type `clickatell` against a stub of the Clickatell Platform HTTP API: reply and
//! status callbacks (JSON), sends as GET requests with the API key in the query (which
//! must stay out of every log). Payloads are Clickatell's documented ones (as in courier's
//! test data).

mod common;
use common::cases::*;
use serde_json::json;

// URL-encoding changes it: both forms must be scrubbed.
const KEY: &str = "ctk+Zm9v/YmFy==";

fn table() -> Table {
    Table {
        channel_type: "clickatell",
        config: Box::new(|stub| json!({"api_key": KEY, "from": "2020", "base_url": stub})),
        send: ("GET", "/messages/http/send"),
        secrets: vec![KEY, "ctk%2BZm9v%2FYmFy%3D%3D"],
        signer: None,
    }
}

fn accepted(id: &str) -> String {
    json!({"messages": [{"apiMessageId": id, "accepted": true, "to": "254711000001",
                         "errorCode": null, "error": null, "errorDescription": null}],
           "error": null})
    .to_string()
}

#[tokio::test]
async fn incoming_cases() {
    let sent = || Some((202, accepted("id1002")));
    let reply = |text: &str, charset: &str| {
        Body::Json(json!({"messageId": "1234", "fromNumber": "250788383383",
            "timestamp": 1516217711000u64, "text": text, "charset": charset}))
    };
    let status = |code: i64| Body::Json(json!({"messageId": "id1002", "statusCode": code}));
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "a reply",
                action: "inbound",
                body: reply("Hello World!", "UTF-8"),
                status: 200,
                response_contains: vec!["Message Accepted"],
                inbound: Some(json!({"from": "250788383383", "to": "2020",
                                     "content": "Hello World!"})),
                ..Default::default()
            },
            Incoming {
                label: "a reply in ISO-8859-1",
                action: "inbound",
                body: reply("hello%21", "ISO-8859-1"),
                status: 200,
                inbound: Some(json!({"content": "hello!"})),
                ..Default::default()
            },
            Incoming {
                label: "a reply in UTF-16BE",
                action: "inbound",
                body: reply(
                    "%00m%00e%00x%00i%00c%00o%00+%00k%00+%00m%00i%00s%00+%00p%00a%00p%00a%00s%00+%00n%00o%00+%00t%00e%00n%00%ED%00a%00+%00d%00i%00n%00e%00r%00o%00+%00p%00a%00r%00a%00+%00c%00o%00m%00p%00r%00a%00r%00n%00o%00s%00+%00l%00o%00+%00q%00+%00q%00u%00e%00r%00%ED%00a%00m%00o%00s%00.%00.",
                    "UTF-16BE",
                ),
                status: 200,
                inbound: Some(json!({
                    "content": "mexico k mis papas no tenía dinero para comprarnos lo q queríamos.."})),
                ..Default::default()
            },
            Incoming {
                label: "a reply naming the number it went to",
                action: "inbound",
                body: Body::Json(json!({"integrationName": "hornbill", "messageId": "c2a3a7d4",
                    "replyMessageId": "8b1f7e0f", "apiKey": "", "fromNumber": "27820000000",
                    "toNumber": "27830000000", "timestamp": 1506607698000u64, "text": "Hi there",
                    "charset": "UTF-8", "udh": "", "network": "Vodacom", "keyword": ""})),
                status: 200,
                inbound: Some(json!({"from": "27820000000", "to": "27830000000",
                                     "content": "Hi there"})),
                ..Default::default()
            },
            Incoming {
                label: "a reply without fields",
                action: "inbound",
                body: Body::Json(json!({})),
                status: 400,
                response_contains: vec!["field 'messageId' required"],
                ..Default::default()
            },
            Incoming {
                label: "a reply without text",
                action: "inbound",
                body: Body::Json(json!({"messageId": "1234", "fromNumber": "250788383383",
                    "timestamp": 1516217711000u64})),
                status: 400,
                response_contains: vec!["field 'text' required"],
                ..Default::default()
            },
            Incoming {
                label: "a reply that is not JSON",
                action: "inbound",
                body: Body::Raw("application/json", "foo".into()),
                status: 400,
                response_contains: vec!["unable to parse request JSON"],
                ..Default::default()
            },
            Incoming {
                label: "received by the recipient (4)",
                action: "status",
                body: status(4),
                prior_send: sent(),
                status: 200,
                response_contains: vec!["Status Update Accepted"],
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "an error with the message (5)",
                action: "status",
                body: status(5),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "delivered to the gateway (3), the documented payload",
                action: "status",
                body: Body::Json(json!({"integrationName": "hornbill", "messageId": "id1002",
                    "requestId": "c2a3a7d4", "clientMessageId": "", "to": "254711000001",
                    "from": "2020", "statusCode": 3, "status": "DELIVERED_TO_GATEWAY",
                    "statusDescription": "Delivered to gateway",
                    "timestamp": 1506607698000u64})),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_pending"})),
                ..Default::default()
            },
            Incoming {
                label: "an unknown status code",
                action: "status",
                body: status(-1),
                status: 400,
                response_contains: vec![
                    "unknown status '-1', must be one of '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '14'",
                ],
                ..Default::default()
            },
            Incoming {
                label: "a status without fields",
                action: "status",
                body: Body::Json(json!({})),
                status: 400,
                response_contains: vec!["field 'messageId' required"],
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases() {
    let send = json!({"to": "+254711000001", "content": "Simple Message"});
    run_outgoing(
        &table(),
        &[
            Outgoing {
                label: "accepted",
                send: send.clone(),
                responses: vec![(202, accepted("id1002"))],
                request: ExpectRequest {
                    headers: vec![("accept", "application/json".into())],
                    form: vec![
                        ("apiKey", KEY.into()),
                        ("content", "Simple Message".into()),
                        ("from", "2020".into()),
                        ("to", "254711000001".into()),
                    ],
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "unicode",
                send: json!({"to": "254711000001", "content": "Unicode ☺"}),
                responses: vec![(202, accepted("id1003"))],
                request: ExpectRequest {
                    form: vec![("content", "Unicode ☺".into())],
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a two-way integration error",
                send: send.clone(),
                responses: vec![(
                    200,
                    json!({"messages": [], "error":
                        "Two-Way integration error - From number is not related to integration"})
                    .to_string(),
                )],
                event: json!({"event_type": "rejected", "event_details": {"reason":
                    "Clickatell: Two-Way integration error - From number is not related to integration"}}),
                ..Default::default()
            },
            Outgoing {
                label: "a destination refused",
                send: send.clone(),
                responses: vec![(
                    202,
                    json!({"messages": [{"apiMessageId": "", "accepted": false,
                        "to": "254711000001", "errorCode": 105,
                        "error": "Invalid destination address.",
                        "errorDescription": "The destination address you entered is not a valid phone number."}],
                        "error": null})
                    .to_string(),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Clickatell: Invalid destination address. (105)"}}),
                ..Default::default()
            },
            Outgoing {
                label: "a 400 is final",
                send: send.clone(),
                responses: vec![(400, "Error".into())],
                event: json!({"event_type": "rejected",
                              "event_details": {"reason": "HTTP 400: Error"}}),
                ..Default::default()
            },
            Outgoing {
                label: "throttled (429) then accepted",
                send: send.clone(),
                responses: vec![(429, "Error".into()), (202, accepted("id1004"))],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "a 503 then accepted",
                send: send.clone(),
                responses: vec![(503, "busy".into()), (202, accepted("id1005"))],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
        ],
    )
    .await;
}
