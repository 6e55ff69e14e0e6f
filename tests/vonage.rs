//! Channel type `vonage` against a stub of the Vonage (Nexmo) SMS API: inbound SMS and
//! delivery receipts as GET queries, forms and JSON, sends and their per-message statuses.
//! Payloads are Vonage's documented ones (as in courier's `nexmo` test data).

mod common;
use common::cases::*;
use serde_json::json;

const SECRET: &str = "vns_8c3e1f0a9b7d";

fn table() -> Table {
    Table {
        channel_type: "vonage",
        config: Box::new(|stub| {
            json!({"api_key": "nexmo-api-key", "api_secret": SECRET, "from": "2020",
                   "base_url": stub})
        }),
        send: ("POST", "/sms/json"),
        secrets: vec![SECRET],
        signer: None,
    }
}

fn accepted(id: &str) -> String {
    json!({"message-count": "1", "messages": [{"to": "254711000001", "message-id": id,
        "status": "0", "remaining-balance": "15.53590000", "message-price": "0.03330000",
        "network": "63902"}]})
    .to_string()
}

fn refused(status: &str, text: &str) -> String {
    json!({"message-count": "1", "messages": [{"status": status, "error-text": text}]}).to_string()
}

#[tokio::test]
async fn incoming_cases() {
    let sent = || Some((200, accepted("1002")));
    let mo = || Some(json!({"from": "2349067554729", "to": "2020", "content": "Join"}));
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "an SMS by GET",
                action: "inbound",
                method: "GET",
                query: query(&[
                    ("to", "2020"),
                    ("msisdn", "2349067554729"),
                    ("text", "Join"),
                    ("messageId", "external1"),
                ]),
                status: 200,
                response_contains: vec!["Message Accepted"],
                inbound: mo(),
                ..Default::default()
            },
            Incoming {
                label: "an SMS by POST form",
                action: "inbound",
                body: form(&[
                    ("to", "2020"),
                    ("msisdn", "2349067554729"),
                    ("text", "Join"),
                    ("messageId", "external1"),
                ]),
                status: 200,
                inbound: mo(),
                ..Default::default()
            },
            Incoming {
                label: "an SMS by POST JSON",
                action: "inbound",
                body: Body::Json(json!({"msisdn": "447700900001", "to": "447700900000",
                    "messageId": "0A0000000123ABCD1", "text": "Hello world ☺", "type": "unicode",
                    "keyword": "HELLO", "api-key": "nexmo-api-key",
                    "message-timestamp": "2020-01-01 12:00:00"})),
                status: 200,
                inbound: Some(json!({"from": "447700900001", "to": "447700900000",
                                     "content": "Hello world ☺"})),
                ..Default::default()
            },
            Incoming {
                label: "Vonage's check of the URL (no fields)",
                action: "inbound",
                status: 200,
                response_contains: vec!["Ignored"],
                ..Default::default()
            },
            Incoming {
                label: "an SMS without text",
                action: "inbound",
                method: "GET",
                query: query(&[
                    ("to", "2020"),
                    ("msisdn", "2349067554729"),
                    ("messageId", "external1"),
                ]),
                status: 400,
                response_contains: vec!["field 'text' required"],
                ..Default::default()
            },
            Incoming {
                label: "delivered (the receipt names our client-ref)",
                action: "status",
                method: "GET",
                query: query(&[
                    ("msisdn", "254711000001"),
                    ("to", "2020"),
                    ("network-code", "63902"),
                    ("messageId", "0A0000001234567B"),
                    ("price", "0.03330000"),
                    ("status", "delivered"),
                    ("scts", "2001011400"),
                    ("err-code", "0"),
                    ("client-ref", "{message_id}"),
                    ("message-timestamp", "2020-01-01 12:00:00"),
                ]),
                prior_send: sent(),
                status: 200,
                response_contains: vec!["Status Update Accepted"],
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "failed (found by Vonage's message id)",
                action: "status",
                method: "GET",
                query: query(&[
                    ("to", "2020"),
                    ("messageId", "1002"),
                    ("status", "failed"),
                    ("err-code", "6"),
                ]),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "accepted, by POST JSON",
                action: "status",
                body: Body::Json(json!({"msisdn": "254711000001", "to": "2020",
                    "network-code": "63902", "messageId": "1002", "price": "0.03330000",
                    "status": "accepted", "scts": "2001011400", "err-code": "0",
                    "client-ref": "{message_id}", "api-key": "nexmo-api-key",
                    "message-timestamp": "2020-01-01 12:00:00"})),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_pending"})),
                ..Default::default()
            },
            Incoming {
                label: "expired, by POST form",
                action: "status",
                body: form(&[
                    ("messageId", "1002"),
                    ("status", "expired"),
                    ("err-code", "2"),
                ]),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "a receipt with an unknown status word (logged, ignored)",
                action: "status",
                method: "GET",
                query: query(&[
                    ("to", "2020"),
                    ("messageId", "external1"),
                    ("status", "unexpected"),
                ]),
                status: 200,
                response_contains: vec!["Ignored"],
                log_contains: vec!["unknown status 'unexpected'"],
                ..Default::default()
            },
            Incoming {
                label: "a receipt without status",
                action: "status",
                method: "GET",
                query: query(&[("to", "2020"), ("messageId", "external1")]),
                status: 400,
                response_contains: vec!["field 'status' required"],
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases() {
    let send = json!({"to": "+254711000001", "content": "Simple Message"});
    let fields = |text: &str, kind: &str| {
        vec![
            ("api_key", "nexmo-api-key".to_string()),
            ("api_secret", SECRET.to_string()),
            ("from", "2020".into()),
            ("to", "254711000001".into()),
            ("text", text.into()),
            ("type", kind.into()),
            ("status-report-req", "1".into()),
            ("client-ref", "{message_id}".into()),
            ("callback", "{callback}/status".into()),
        ]
    };
    run_outgoing(
        &table(),
        &[
            Outgoing {
                label: "accepted",
                send: send.clone(),
                responses: vec![(200, accepted("0C000000217B7F02"))],
                request: ExpectRequest {
                    headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
                    form: fields("Simple Message", "text"),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "unicode",
                send: json!({"to": "254711000001", "content": "Unicode ☺"}),
                responses: vec![(200, accepted("0C000000217B7F03"))],
                request: ExpectRequest {
                    form: fields("Unicode ☺", "unicode"),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "refused by Vonage",
                send: send.clone(),
                responses: vec![(200, refused("15", "Illegal Sender Address - rejected"))],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Vonage: Illegal Sender Address - rejected (status 15)"}}),
                ..Default::default()
            },
            Outgoing {
                label: "throughput rate exceeded, then accepted",
                send: send.clone(),
                responses: vec![
                    (
                        200,
                        refused(
                            "1",
                            "Throughput Rate Exceeded - please wait [ 250 ] and retry",
                        ),
                    ),
                    (200, accepted("0C000000217B7F04")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "too many binds (10), then accepted",
                send: send.clone(),
                responses: vec![
                    (200, refused("10", "Too many existing binds")),
                    (200, accepted("0C000000217B7F05")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "throttled (429) then accepted",
                send: send.clone(),
                responses: vec![
                    (429, "Throttled".into()),
                    (200, accepted("0C000000217B7F06")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "a 500 then accepted",
                send: send.clone(),
                responses: vec![(500, "Error".into()), (200, accepted("0C000000217B7F07"))],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "a bad token (401) is final",
                send: send.clone(),
                responses: vec![(401, "Invalid API token".into())],
                event: json!({"event_type": "rejected",
                              "event_details": {"reason": "HTTP 401: Invalid API token"}}),
                ..Default::default()
            },
        ],
    )
    .await;
}

/// With `signature_secret` (signed webhooks on for the account), a callback counts only with
/// Vonage's `sig` over its fields: an inbound SMS signed with the channel's secret and
/// algorithm arrives; unsigned, or signed with another secret, it is refused and logged.
#[tokio::test]
async fn signed_callbacks_are_checked_when_a_signature_secret_is_set() {
    use hmac::Mac;
    let bench = Bench::start("").await;
    let mut t = table();
    t.config = Box::new(|stub| {
        json!({"api_key": "nexmo-api-key", "api_secret": SECRET, "from": "2020",
               "base_url": stub, "signature_secret": "sig-secret-5f4e3d", "signature_method": "sha256"})
    });
    let (cid, tag) = bench.channel(&t, "http://127.0.0.1:9", "signed").await;
    let sign = |fields: &[(&str, &str)], secret: &str| {
        let mut sorted = fields.to_vec();
        sorted.sort();
        let text: String = sorted
            .iter()
            .map(|(k, v)| format!("&{k}={}", v.replace(['&', '='], "_")))
            .collect();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(text.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let fields = [
        ("msisdn", "447700900001"),
        ("to", "2020"),
        ("messageId", "0A0000000123ABCD1"),
        ("text", "Signed & sealed"),
        ("type", "text"),
        ("timestamp", "1733568000"),
    ];
    let post = |sig: String| {
        let mut all: Vec<(&str, String)> =
            fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
        all.push(("sig", sig));
        let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = query(&pairs);
        let url = format!("{}/inbound", common::callback_base(&bench.public, &cid));
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    assert_eq!(post(String::new()).await, 403, "unsigned");
    assert_eq!(
        post(sign(&fields, "another-secret")).await,
        403,
        "another secret"
    );
    assert_eq!(
        post(sign(&fields, "sig-secret-5f4e3d").to_uppercase()).await,
        200
    );
    let mo = bench.nth_inbound(&tag, 0).await;
    assert_eq!(mo["content"], "Signed & sealed");
    let logs = bench.api.logs(&cid).await;
    let refusals = logs
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("the sig does not match")
        })
        .count();
    assert_eq!(refusals, 2, "{logs:?}");
    let shown = bench.api.get(&format!("/channels/{cid}")).await.text;
    assert!(!shown.contains("sig-secret-5f4e3d"), "{shown}");
}
