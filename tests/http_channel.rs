//! Channel type `http` (a generic, configurable HTTP aggregator) against a stub that
//! speaks what its config says: form, JSON and GET sends, header and Basic auth, a
//! success check, inbound field mapping and delivery reports naming hornbill's id.

mod common;
use common::callback_base;
use common::cases::*;
use serde_json::json;

const TOKEN: &str = "Bearer gw-7a6b5c4d3e";
const PASSWORD: &str = "kannel-pw-91";

fn form_table() -> Table {
    Table {
        channel_type: "http",
        config: Box::new(|stub| {
            json!({
                "send_url": format!("{stub}/cgi-bin/sendsms"),
                "send_body": "to={{to}}&text={{text}}&from={{from}}&dlr-url={{status_url}}",
                "username": "kannel", "password": PASSWORD,
                "success_contains": "Accepted",
                "mo_from_field": "sender", "mo_to_field": "receiver", "mo_text_field": "msgdata",
                "mo_id_field": "smsid", "mo_response": "OK",
                "status_field": "dlr", "status_map": {"1": "delivered", "2": "failed", "8": "pending", "16": "failed"},
            })
        }),
        send: ("POST", "/cgi-bin/sendsms"),
        secrets: vec![PASSWORD],
        signer: None,
    }
}

fn json_table() -> Table {
    Table {
        channel_type: "http",
        config: Box::new(|stub| {
            json!({
                "send_url": format!("{stub}/api/messages"),
                "content_type": "json",
                "send_body": r#"{"destination": "{{to}}", "body": "{{text}}", "reference": "{{id}}"}"#,
                "headers": {"Authorization": TOKEN},
                "id_path": "/messages/0/id",
                "mo_from_field": "/message/from", "mo_to_field": "/message/to",
                "mo_text_field": "/message/text",
                "status_id_field": "/id", "status_field": "/state",
                "status_map": {"DELIVERED": "delivered", "UNDELIVERABLE": "failed", "ENROUTE": "pending"},
            })
        }),
        send: ("POST", "/api/messages"),
        secrets: vec![TOKEN],
        signer: None,
    }
}

#[tokio::test]
async fn incoming_cases_form() {
    run_incoming(
        &form_table(),
        &[
            Incoming {
                label: "an SMS from query fields",
                action: "inbound",
                method: "GET",
                query: query(&[
                    ("sender", "+27820000001"),
                    ("receiver", "31337"),
                    ("msgdata", "hi there"),
                    ("smsid", "k-1"),
                ]),
                status: 200,
                response: Some("OK"),
                inbound: Some(
                    json!({"from": "+27820000001", "to": "31337", "content": "hi there"}),
                ),
                ..Default::default()
            },
            Incoming {
                label: "an SMS whose + the provider did not URL-encode",
                action: "inbound",
                method: "GET",
                // `+` in a query is a space once decoded: " 27820000001".
                query: "sender=+27820000001&receiver=31337+&msgdata=hi+there&smsid=k-2".into(),
                status: 200,
                response: Some("OK"),
                inbound: Some(
                    json!({"from": "+27820000001", "to": "31337", "content": "hi there"}),
                ),
                ..Default::default()
            },
            Incoming {
                label: "an SMS in a multipart/form-data body",
                action: "inbound",
                body: Body::Raw(
                    "multipart/form-data; boundary=hb-7Rq2",
                    [
                        "--hb-7Rq2",
                        r#"Content-Disposition: form-data; name="sender""#,
                        "",
                        "+27820000001",
                        "--hb-7Rq2",
                        r#"Content-Disposition: form-data; name="receiver""#,
                        "",
                        "31337",
                        "--hb-7Rq2",
                        r#"Content-Disposition: form-data; name="msgdata""#,
                        "Content-Type: text/plain; charset=utf-8",
                        "",
                        "sawubona ☺",
                        "--hb-7Rq2--",
                        "",
                    ]
                    .join("\r\n"),
                ),
                status: 200,
                response: Some("OK"),
                inbound: Some(
                    json!({"from": "+27820000001", "to": "31337", "content": "sawubona ☺"}),
                ),
                ..Default::default()
            },
            Incoming {
                label: "a multipart body cut short",
                action: "inbound",
                body: Body::Raw(
                    "multipart/form-data; boundary=hb-7Rq2",
                    "--hb-7Rq2\r\nContent-Disposition: form-data; name=\"sender\"\r\n\r\n+2782"
                        .into(),
                ),
                status: 400,
                response_contains: vec!["the multipart body cannot be read"],
                ..Default::default()
            },
            Incoming {
                label: "an SMS without its text",
                action: "inbound",
                body: form(&[("sender", "+27820000001"), ("receiver", "31337")]),
                status: 400,
                response_contains: vec!["field 'msgdata' required"],
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn incoming_cases_json() {
    let sent = || Some((200, json!({"messages": [{"id": "gw-55"}]}).to_string()));
    run_incoming(
        &json_table(),
        &[
            Incoming {
                label: "an SMS from a JSON body",
                action: "inbound",
                body: Body::Json(
                    json!({"message": {"from": "+254700000001", "to": "20222", "text": "jambo"}}),
                ),
                status: 200,
                inbound: Some(json!({"from": "+254700000001", "to": "20222", "content": "jambo"})),
                ..Default::default()
            },
            Incoming {
                label: "a body that is not JSON",
                action: "inbound",
                body: Body::Raw("application/json", "{nope".into()),
                status: 400,
                response_contains: vec!["not JSON"],
                ..Default::default()
            },
            Incoming {
                label: "delivered, by the provider's id",
                action: "status",
                body: Body::Json(json!({"id": "gw-55", "state": "DELIVERED"})),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "undeliverable",
                action: "status",
                body: Body::Json(json!({"id": "gw-55", "state": "undeliverable"})),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "a word the status map lacks",
                action: "status",
                body: Body::Json(json!({"id": "gw-55", "state": "LOST"})),
                status: 400,
                response_contains: vec!["unknown status 'LOST'"],
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases_form() {
    let send = json!({"to": "+27820000001", "from": "31337", "content": "a & b = ☺"});
    run_outgoing(
        &form_table(),
        &[
            Outgoing {
                label: "accepted",
                send: send.clone(),
                responses: vec![(202, "0: Accepted for delivery".into())],
                request: ExpectRequest {
                    headers: vec![("authorization", "Basic a2FubmVsOmthbm5lbC1wdy05MQ==".into())],
                    form: vec![
                        ("to", "+27820000001".into()),
                        ("text", "a & b = ☺".into()),
                        ("from", "31337".into()),
                    ],
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a 2xx without the success text is final",
                send: send.clone(),
                responses: vec![(200, "3: Queued for later delivery failed".into())],
                event: json!({"event_type": "rejected"}),
                ..Default::default()
            },
            Outgoing {
                label: "a 503 is retried",
                send: send.clone(),
                responses: vec![(503, "busy".into()), (202, "0: Accepted for delivery".into())],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "a 403 is final",
                send: send.clone(),
                responses: vec![(403, "Authorization failed for sendsms".into())],
                event: json!({"event_type": "rejected",
                              "event_details": {"reason": "HTTP 403: Authorization failed for sendsms"}}),
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases_json() {
    run_outgoing(
        &json_table(),
        &[Outgoing {
            label: "accepted, JSON escaped",
            send: json!({"to": "+254700000001", "content": "say \"hi\"\nnow"}),
            responses: vec![(200, json!({"messages": [{"id": "gw-1"}]}).to_string())],
            request: ExpectRequest {
                headers: vec![("authorization", TOKEN.into())],
                json: Some(json!({"destination": "+254700000001", "body": "say \"hi\"\nnow"})),
                ..Default::default()
            },
            event: json!({"event_type": "submitted"}),
            ..Default::default()
        }],
    )
    .await;
}

/// `{{status_url}}` names the message, so the provider's report needs no id mapping.
#[tokio::test]
async fn a_report_at_the_status_url_given_with_the_send() {
    let bench = Bench::start("").await;
    let table = form_table();
    let provider = wiremock::MockServer::start().await;
    mount_answers(
        &provider,
        &table,
        &[(202, "0: Accepted for delivery".into())],
    )
    .await;
    let (cid, tag) = bench.channel(&table, &provider.uri(), "dlr").await;
    let ev = format!("{}/ev/{tag}", bench.hooks.uri());
    let sent = bench
        .api
        .send(
            &cid,
            json!({"to": "+27820000001", "content": "x", "event_url": ev}),
        )
        .await;
    let mid = sent["message_id"].as_str().unwrap().to_string();
    let got = common::eventually("the send", || async {
        provider
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .next()
    })
    .await;
    let dlr_url = request_form(&got)
        .into_iter()
        .find(|(k, _)| k == "dlr-url")
        .map(|(_, v)| v)
        .unwrap();
    assert_eq!(
        dlr_url,
        format!(
            "{}/status?message_id={mid}",
            callback_base(&bench.public, &cid)
        )
    );
    // Kannel calls it back with its own fields added.
    let resp = reqwest::Client::new()
        .get(format!("{dlr_url}&dlr=1&smsid=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ev_path = format!("/ev/{tag}");
    let event = common::eventually("the delivery report", || async {
        bench
            .posted(&ev_path)
            .await
            .into_iter()
            .find(|e| e["event_type"] == "delivery_succeeded")
    })
    .await;
    assert_eq!(event["message_id"], json!(mid));
}
