//! Channel type `dmark` through the public listener, as Dmark's gateway calls it: the
//! shared case tables (Vumi's refusals, Basic auth, sends that are not replies), Vumi's
//! `DmarkUssdTransport` test cases, then a session walked end to end with an application
//! answering over `mo_url`, and a request the application leaves unanswered.

mod common;
use common::callback_base;
use common::cases::*;
use serde_json::{Value, json};

const PASSWORD: &str = "dm4rk-s3cret-pw";
const TIMEOUT: &str = "Sorry, the service did not answer in time. Please try again later.";

fn table() -> Table {
    Table {
        channel_type: "dmark",
        config: Box::new(|_| {
            json!({"web_path": "/api/v1/dmark/ussd/", "web_port": 0, "publish_status": true,
                   "request_timeout": 2})
        }),
        send: ("POST", "/unused"),
        secrets: vec![],
        signer: None,
    }
}

/// A Junebug config with Basic credentials and `fix_to_addr`.
fn guarded() -> Table {
    Table {
        channel_type: "dmark",
        config: Box::new(|_| {
            json!({"web_path": "/api/v1/dmark/ussd/", "web_port": 0,
                   "web_username": "dmark", "web_password": PASSWORD, "fix_to_addr": true,
                   "request_timeout": 2, "ussd_session_timeout": 600, "health_path": "/health",
                   "redis_manager": {"key_prefix": "junebug"}, "transport_name": "x",
                   "worker_name": "x", "validation_mode": "strict", "noisy": false})
        }),
        send: ("POST", "/unused"),
        secrets: vec![PASSWORD],
        signer: None,
    }
}

/// Vumi's test defaults, with `changes` applied (a new name is added).
fn params(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut pairs = vec![
        ("transactionId", "transaction-123"),
        ("msisdn", "+00775551122"),
        ("ussdServiceCode", "*121#"),
        ("transactionTime", "1389971940"),
        ("ussdRequestString", "*121#"),
        ("creationTime", "1389971950"),
        ("response", "false"),
    ];
    for (k, v) in changes {
        match pairs.iter_mut().find(|(n, _)| n == k) {
            Some(p) => p.1 = v,
            None => pairs.push((k, v)),
        }
    }
    pairs
}

fn timed_out() -> &'static str {
    r#"{"responseString": "Sorry, the service did not answer in time. Please try again later.", "action": "end"}"#
}

#[tokio::test]
async fn incoming_cases() {
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "missing parameters",
                action: "ussd",
                method: "GET",
                query: query(&[("ussdServiceCode", ""), ("msisdn", ""), ("creationTime", "")]),
                status: 400,
                response: Some(
                    r#"{"missing_parameter": ["transactionTime", "transactionId", "response", "ussdRequestString"]}"#,
                ),
                ..Default::default()
            },
            Incoming {
                label: "unexpected parameters",
                action: "ussd",
                method: "GET",
                query: query(&params(&[("unexpected_p1", ""), ("unexpected_p2", "")])),
                status: 400,
                response: Some(r#"{"unexpected_parameter": ["unexpected_p1", "unexpected_p2"]}"#),
                ..Default::default()
            },
            Incoming {
                label: "missing and unexpected, in a form POST",
                action: "ussd",
                body: form(&[("msisdn", "+00775551122"), ("x", "1")]),
                status: 400,
                response: Some(
                    r#"{"missing_parameter": ["ussdServiceCode", "creationTime", "transactionTime", "transactionId", "response", "ussdRequestString"], "unexpected_parameter": ["x"]}"#,
                ),
                ..Default::default()
            },
            Incoming {
                label: "a value that is not UTF-8",
                action: "ussd",
                method: "GET",
                // "Who are you?" in UTF-32
                query: "transactionId=transaction-123&msisdn=%2B00775551122&ussdServiceCode=%2A121%23&transactionTime=1389971940&creationTime=1389971950&response=false&ussdRequestString=%FF%FE%00%00W%00%00%00h%00%00%00o%00%00%00".into(),
                status: 400,
                response_contains: vec![
                    r#"{"invalid_request": {"content": "", "path": "/channels/"#,
                    r#""uri": "/channels/"#,
                    "ussdRequestString=%FF%FE%00%00W",
                    r#""method": "GET"}}"#,
                ],
                ..Default::default()
            },
            Incoming {
                label: "a DELETE",
                action: "ussd",
                method: "DELETE",
                query: query(&params(&[])),
                status: 405,
                ..Default::default()
            },
            Incoming {
                label: "a first request the application leaves unanswered (POST form)",
                action: "ussd",
                body: form(&params(&[("ussdRequestString", "SHOULD BE IGNORED")])),
                status: 200,
                response: Some(timed_out()),
                inbound: Some(json!({"from": "+00775551122", "to": "*121#", "content": null,
                    "channel_data": {"session_event": "new", "session_id": "transaction-123"}})),
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn basic_auth_and_fixed_service_codes() {
    let request = query(&params(&[
        ("ussdServiceCode", "128"),
        ("ussdRequestString", ""),
    ]));
    run_incoming(
        &guarded(),
        &[
            Incoming {
                label: "no credentials",
                action: "ussd",
                method: "GET",
                query: request.clone(),
                status: 401,
                response: Some("Unauthorized"),
                ..Default::default()
            },
            Incoming {
                label: "wrong credentials",
                action: "ussd",
                method: "GET",
                query: request.clone(),
                headers: vec![("Authorization", basic("dmark", "guess"))],
                status: 401,
                response: Some("Unauthorized"),
                ..Default::default()
            },
            Incoming {
                label: "the right ones; 128 is dialled as *128#",
                action: "ussd",
                method: "GET",
                query: request.clone(),
                headers: vec![("Authorization", basic("dmark", PASSWORD))],
                status: 200,
                response: Some(timed_out()),
                inbound: Some(
                    json!({"from": "+00775551122", "to": "*128#", "content": null,
                    "channel_data": {"session_event": "new"}}),
                ),
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn configs_junebug_gave_load_and_bad_ones_do_not() {
    let bench = Bench::start("").await;
    let t = guarded();
    let (cid, _) = bench.channel(&t, "", "junebug config").await;
    let shown = bench.api.channel(&cid).await;
    assert_eq!(shown["config"]["web_password"], "***");
    for (config, says) in [
        (
            json!({"web_username": "dmark"}),
            "If either web_username or web_password is specified, both must be specified",
        ),
        (
            json!({"validation_mode": "lax"}),
            "Invalid validation mode: lax",
        ),
        (json!({"api_key": "x"}), "unknown field `api_key`"),
    ] {
        let reply = bench
            .api
            .post(
                "/channels/",
                json!({"type": "dmark", "config": config,
                       "mo_url": format!("{}/mo", bench.hooks.uri())}),
            )
            .await;
        assert_eq!(reply.status, 400, "{config}: {}", reply.text);
        assert!(reply.text.contains(says), "{config}: {}", reply.text);
    }
}

#[tokio::test]
async fn sends_that_are_not_replies_are_rejected() {
    let bench = Bench::start("").await;
    let (cid, _) = bench.channel(&table(), "", "not replies").await;
    for (label, body, reason) in [
        (
            "a message",
            json!({"to": "+00775551122", "content": "There are some who call me ... Tim!"}),
            "Missing fields: in_reply_to",
        ),
        (
            "an empty message",
            json!({"to": "+00775551122", "content": ""}),
            "Missing fields: in_reply_to, content",
        ),
    ] {
        let tag = label.replace(' ', "_");
        let event = bench.event_of(&cid, body, &tag).await;
        assert_eq!(event["event_type"], "rejected", "{label}");
        assert_eq!(event["event_details"]["reason"], reason, "{label}");
    }
}

/// A Dmark request (GET, as Dmark sends them) held until the application answers:
/// `(status, content type, body)`.
fn ussd(
    bench: &Bench,
    cid: &str,
    pairs: Vec<(&'static str, &'static str)>,
) -> tokio::task::JoinHandle<(u16, String, String)> {
    let url = format!(
        "{}/ussd?{}",
        callback_base(&bench.public, cid),
        query(&pairs)
    );
    tokio::spawn(async move {
        let resp = reqwest::get(url).await.unwrap();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (resp.status().as_u16(), ct, resp.text().await.unwrap())
    })
}

async fn body_of(pending: tokio::task::JoinHandle<(u16, String, String)>) -> String {
    let (status, ct, body) = pending.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/plain"), "{ct}");
    body
}

#[tokio::test]
async fn a_ussd_session_end_to_end() {
    let bench = Bench::start("").await;
    let t = table();
    let (cid, tag) = bench.channel(&t, "", "session").await;

    // new: Vumi's inbound_begin (the request string is not content)
    let pending = ussd(
        &bench,
        &cid,
        params(&[("ussdRequestString", "SHOULD BE IGNORED")]),
    );
    let new = bench.nth_inbound(&tag, 0).await;
    assert_eq!(new["channel_data"]["session_event"], "new");
    assert_eq!(new["channel_data"]["session_id"], "transaction-123");
    assert_eq!(new["content"], Value::Null);
    assert_eq!(new["from"], "+00775551122");
    assert_eq!(new["to"], "*121#");
    // an empty answer is refused as Vumi refused it, and the request still waits
    let empty = bench
        .event_of(
            &cid,
            json!({"reply_to": new["message_id"], "content": ""}),
            "empty",
        )
        .await;
    assert_eq!(empty["event_type"], "rejected");
    assert_eq!(empty["event_details"]["reason"], "Missing fields: content");
    let menu = bench.event_of(&cid,
        json!({"reply_to": new["message_id"], "content": "We are the Knights Who Say ... Ni!\n1. Ni\n2. Ekke"}),
        "menu",
    )
    .await;
    assert_eq!(menu["event_type"], "submitted");
    assert_eq!(
        body_of(pending).await,
        r#"{"responseString": "We are the Knights Who Say ... Ni!\n1. Ni\n2. Ekke", "action": "request"}"#
    );

    // resume: the user's answer is the content (Vumi's resume_and_reply_with_resume)
    let pending = ussd(
        &bench,
        &cid,
        params(&[
            ("ussdRequestString", "Well, what is it you want?"),
            ("response", "true"),
        ]),
    );
    let second = bench.nth_inbound(&tag, 1).await;
    assert_eq!(second["channel_data"]["session_event"], "resume");
    assert_eq!(second["content"], "Well, what is it you want?");
    bench.answer(&cid, &second, "Thrëë, my lord.", true).await;
    assert_eq!(
        body_of(pending).await,
        r#"{"responseString": "Thr\u00eb\u00eb, my lord.", "action": "request"}"#
    );

    // close (resume_and_reply_with_end)
    let pending = ussd(
        &bench,
        &cid,
        params(&[("ussdRequestString", "2"), ("response", "true")]),
    );
    let third = bench.nth_inbound(&tag, 2).await;
    assert_eq!(third["channel_data"]["session_event"], "resume");
    assert_eq!(third["content"], "2");
    bench
        .answer(&cid, &third, "We want ... a shrubbery!", false)
        .await;
    assert_eq!(
        body_of(pending).await,
        r#"{"responseString": "We want ... a shrubbery!", "action": "end"}"#
    );

    // a second answer to a request already answered (nack_http_http_response_failure)
    let late = bench.event_of(&cid,
        json!({"reply_to": third["message_id"], "content": "There are some who call me ... Tim!"}),
        "late",
    )
    .await;
    assert_eq!(late["event_type"], "rejected");
    assert_eq!(
        late["event_details"]["reason"],
        "Could not find original request."
    );
    // no close for a session the application ended
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(bench.posted(&format!("/mo/{tag}")).await.len(), 3);
    bench.assert_redacted(&t, &cid, "session").await;
}

#[tokio::test]
async fn a_ussd_request_the_application_does_not_answer_times_out() {
    let bench = Bench::start("").await;
    let t = table();
    let (cid, tag) = bench.channel(&t, "", "timeout").await;
    let started = std::time::Instant::now();
    let pending = ussd(
        &bench,
        &cid,
        params(&[("transactionId", "transaction-456")]),
    );
    let new = bench.nth_inbound(&tag, 0).await;
    // no answer: after request_timeout (2 s) the user is told, and the application gets close
    let body = body_of(pending).await;
    assert_eq!(
        body,
        format!(r#"{{"responseString": "{TIMEOUT}", "action": "end"}}"#)
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let close = bench.nth_inbound(&tag, 1).await;
    assert_eq!(close["channel_data"]["session_event"], "close");
    assert_eq!(close["channel_data"]["session_id"], "transaction-456");
    assert_eq!(close["from"], "+00775551122");
    assert_eq!(close["to"], "*121#");
    assert_eq!(close["content"], Value::Null);
    // the application's late answer is refused
    let late = bench
        .event_of(
            &cid,
            json!({"reply_to": new["message_id"], "content": "too late"}),
            "late",
        )
        .await;
    assert_eq!(late["event_type"], "rejected");
    assert_eq!(
        late["event_details"]["reason"],
        "Could not find original request."
    );
    let logs = bench.api.logs(&cid).await;
    assert!(
        logs.iter()
            .any(|e| e["message"].as_str().unwrap().contains("timed out")),
        "{logs:?}"
    );
}
