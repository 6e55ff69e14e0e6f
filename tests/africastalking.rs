//! Channel type `africastalking` against a stub of Africa's Talking's published API: the
//! shared case tables (SMS in, delivery reports, sends and their answers), then USSD
//! sessions walked end to end through the public listener with an application answering
//! over `mo_url`.

mod common;
use common::cases::*;
use common::*;
use serde_json::{Value, json};

const KEY: &str = "atsk_9f8e7d6c5b4a";

fn table() -> Table {
    Table {
        channel_type: "africastalking",
        config: Box::new(|stub| {
            json!({"username": "hornbill", "api_key": KEY, "from": "21512", "base_url": stub,
                   "request_timeout": 2.0})
        }),
        send: ("POST", "/version1/messaging"),
        secrets: vec![KEY],
        signer: None,
    }
}

fn recipients(status: &str, code: u64, id: &str) -> String {
    json!({"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: KES 0.8000",
        "Recipients": [{"statusCode": code, "number": "+254711000001", "status": status,
                        "cost": "KES 0.8000", "messageId": id}]}})
    .to_string()
}

#[tokio::test]
async fn incoming_cases() {
    let sent = || Some((201, recipients("Success", 101, "ATXid_1")));
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "an SMS",
                action: "inbound",
                body: form(&[
                    ("linkId", "03090445075804249226"),
                    ("text", "Msg ☺"),
                    ("to", "21512"),
                    ("id", "ec9adc86-51d5-4bc8-8eb0-d8ab0bb53dc3"),
                    ("date", "2017-05-03T06:04:45Z"),
                    ("from", "+254791541111"),
                ]),
                status: 200,
                response_contains: vec!["Message Accepted"],
                inbound: Some(
                    json!({"from": "+254791541111", "to": "21512", "content": "Msg ☺",
                                     "reply_to": null}),
                ),
                ..Default::default()
            },
            Incoming {
                label: "an SMS without text",
                action: "inbound",
                body: form(&[("to", "21512"), ("id", "x"), ("from", "+254791541111")]),
                status: 400,
                response_contains: vec!["field 'text' required"],
                ..Default::default()
            },
            Incoming {
                label: "delivered",
                action: "status",
                body: form(&[("id", "ATXid_1"), ("status", "Success")]),
                prior_send: sent(),
                status: 200,
                response_contains: vec!["Status Update Accepted"],
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
            Incoming {
                label: "expired",
                action: "status",
                body: form(&[
                    ("id", "ATXid_1"),
                    ("status", "Expired"),
                    ("failureReason", "DeliveryFailure"),
                ]),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_failed"})),
                ..Default::default()
            },
            Incoming {
                label: "buffered",
                action: "status",
                body: form(&[("id", "ATXid_1"), ("status", "Buffered")]),
                prior_send: sent(),
                status: 200,
                event: Some(json!({"event_type": "delivery_pending"})),
                ..Default::default()
            },
            Incoming {
                label: "an unknown status word",
                action: "status",
                body: form(&[("id", "ATXid_1"), ("status", "Borked")]),
                status: 400,
                response_contains: vec!["unknown status 'Borked'"],
                ..Default::default()
            },
            Incoming {
                label: "a report without status",
                action: "status",
                body: form(&[("id", "ATXid_1")]),
                status: 400,
                response_contains: vec!["field 'status' required"],
                ..Default::default()
            },
            Incoming {
                label: "an action the type does not take",
                action: "receive-all",
                body: form(&[("id", "ATXid_1")]),
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
                responses: vec![(201, recipients("Success", 101, "ATXid_7"))],
                request: ExpectRequest {
                    headers: vec![("apikey", KEY.into()), ("accept", "application/json".into())],
                    form: vec![
                        ("username", "hornbill".into()),
                        ("to", "+254711000001".into()),
                        ("message", "Simple Message ☺".into()),
                        ("from", "21512".into()),
                    ],
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "refused by the recipient's network",
                send: send.clone(),
                responses: vec![(201, recipients("DoNotDisturbRejection", 409, "None"))],
                event: json!({"event_type": "rejected",
                              "event_details": {"reason": "Africa's Talking: DoNotDisturbRejection (409)"}}),
                ..Default::default()
            },
            Outgoing {
                label: "a bad key (401) is final",
                send: send.clone(),
                responses: vec![(401, "The supplied authentication is invalid".into())],
                event: json!({"event_type": "rejected",
                              "event_details": {"reason": "HTTP 401: The supplied authentication is invalid"}}),
                ..Default::default()
            },
            Outgoing {
                label: "throttled (429) then accepted",
                send: send.clone(),
                responses: vec![
                    (429, "{\"error\":\"failed\"}".into()),
                    (201, recipients("Success", 101, "ATXid_8")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 2,
                ..Default::default()
            },
            Outgoing {
                label: "a 503 then AT's own failure, then accepted",
                send: send.clone(),
                responses: vec![
                    (503, "busy".into()),
                    (201, recipients("InternalServerError", 500, "None")),
                    (201, recipients("Success", 101, "ATXid_9")),
                ],
                event: json!({"event_type": "submitted"}),
                attempts: 3,
                ..Default::default()
            },
        ],
    )
    .await;
}

/// A USSD request held until the application answers; `(status, body)`.
fn ussd(
    bench: &Bench,
    cid: &str,
    session: &str,
    text: &str,
) -> tokio::task::JoinHandle<(u16, String)> {
    let url = format!("{}/ussd", callback_base(&bench.public, cid));
    let body = query(&[
        ("sessionId", session),
        ("serviceCode", "*384*1234#"),
        ("phoneNumber", "+254711000002"),
        ("networkCode", "63902"),
        ("text", text),
    ]);
    tokio::spawn(async move {
        let resp = reqwest::Client::new()
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

#[tokio::test]
async fn a_ussd_session_end_to_end() {
    let bench = Bench::start("").await;
    let t = table();
    let (cid, tag) = bench.channel(&t, "http://127.0.0.1:9", "session").await;

    // new: the menu
    let pending = ussd(&bench, &cid, "ATUid_1", "");
    let new = bench.nth_inbound(&tag, 0).await;
    assert_eq!(new["channel_data"]["session_event"], "new");
    assert_eq!(new["content"], Value::Null);
    assert_eq!(new["from"], "+254711000002");
    assert_eq!(new["to"], "*384*1234#");
    bench
        .answer(&cid, &new, "Menu\n1. Balance\n2. Name", true)
        .await;
    assert_eq!(
        pending.await.unwrap(),
        (200, "CON Menu\n1. Balance\n2. Name".into())
    );

    // resume: an answer, then another (AT sends the whole path)
    let pending = ussd(&bench, &cid, "ATUid_1", "2");
    let second = bench.nth_inbound(&tag, 1).await;
    assert_eq!(second["channel_data"]["session_event"], "resume");
    assert_eq!(second["content"], "2");
    bench.answer(&cid, &second, "Your name?", true).await;
    assert_eq!(pending.await.unwrap(), (200, "CON Your name?".into()));

    let pending = ussd(&bench, &cid, "ATUid_1", "2*Wanjiru");
    let third = bench.nth_inbound(&tag, 2).await;
    assert_eq!(third["content"], "Wanjiru");
    bench
        .answer(&cid, &third, "Thank you, Wanjiru", false)
        .await;
    assert_eq!(
        pending.await.unwrap(),
        (200, "END Thank you, Wanjiru".into())
    );

    // the session is over: the same id starts a new one
    let pending = ussd(&bench, &cid, "ATUid_1", "");
    let again = bench.nth_inbound(&tag, 3).await;
    assert_eq!(again["channel_data"]["session_event"], "new");
    bench.answer(&cid, &again, "Bye", false).await;
    assert_eq!(pending.await.unwrap(), (200, "END Bye".into()));

    // a second answer to a request already answered is refused, as Junebug's were
    let late = bench
        .api
        .send(
            &cid,
            json!({"reply_to": third["message_id"], "content": "again?",
                   "event_url": format!("{}/ev/late", bench.hooks.uri())}),
        )
        .await;
    let (_, _, nack) = wait_hit(&bench.hooks, "the late reply's event", |p, b| {
        p == "/ev/late" && b["message_id"] == late["message_id"]
    })
    .await;
    assert_eq!(nack["event_type"], "rejected");
    assert_eq!(
        nack["event_details"]["reason"],
        "Could not find original request."
    );
    bench.assert_redacted(&t, &cid, "session").await;
}

#[tokio::test]
async fn a_ussd_request_the_application_does_not_answer_times_out() {
    let bench = Bench::start("").await;
    let t = table();
    let (cid, tag) = bench.channel(&t, "http://127.0.0.1:9", "timeout").await;
    let started = std::time::Instant::now();
    let pending = ussd(&bench, &cid, "ATUid_2", "");
    let new = bench.nth_inbound(&tag, 0).await;
    // no answer: after request_timeout (2 s) the user is told, and the application gets close
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "END Sorry, the service did not answer in time. Please try again later."
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let close = bench.nth_inbound(&tag, 1).await;
    assert_eq!(close["channel_data"]["session_event"], "close");
    assert_eq!(close["from"], "+254711000002");
    assert_eq!(close["content"], Value::Null);
    // the application's late answer is refused
    let late = bench
        .api
        .send(
            &cid,
            json!({"reply_to": new["message_id"], "content": "too late",
                   "event_url": format!("{}/ev/late", bench.hooks.uri())}),
        )
        .await;
    let (_, _, nack) = wait_hit(&bench.hooks, "the late reply's event", |p, b| {
        p == "/ev/late" && b["message_id"] == late["message_id"]
    })
    .await;
    assert_eq!(nack["event_type"], "rejected");
    let logs = bench.api.logs(&cid).await;
    assert!(
        logs.iter()
            .any(|e| e["message"].as_str().unwrap().contains("timed out")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn a_session_the_network_ends_closes_at_the_application() {
    let bench = Bench::start("").await;
    let t = table();
    let (cid, tag) = bench.channel(&t, "http://127.0.0.1:9", "ended").await;
    let pending = ussd(&bench, &cid, "ATUid_3", "");
    let new = bench.nth_inbound(&tag, 0).await;
    bench.answer(&cid, &new, "Menu", true).await;
    pending.await.unwrap();
    // the user walks away: AT's end-of-session notification
    let (status, _) = bench
        .call(
            &t,
            &cid,
            &Incoming {
                action: "ussd_end",
                body: form(&[
                    ("sessionId", "ATUid_3"),
                    ("serviceCode", "*384*1234#"),
                    ("phoneNumber", "+254711000002"),
                    ("status", "Incomplete"),
                    ("input", ""),
                ]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(status, 200);
    let close = bench.nth_inbound(&tag, 1).await;
    assert_eq!(close["channel_data"]["session_event"], "close");
    assert_eq!(close["from"], "+254711000002");
}

#[tokio::test]
async fn an_idle_session_closes_at_the_application() {
    let bench = Bench::start("").await;
    let mut t = table();
    t.config = Box::new(|stub| {
        json!({"username": "hornbill", "api_key": KEY, "base_url": stub,
               "ussd_session_timeout": 1.0})
    });
    let (cid, tag) = bench.channel(&t, "http://127.0.0.1:9", "idle").await;
    let pending = ussd(&bench, &cid, "ATUid_4", "");
    let new = bench.nth_inbound(&tag, 0).await;
    bench.answer(&cid, &new, "Menu", true).await;
    assert_eq!(pending.await.unwrap(), (200, "CON Menu".into()));
    // the user never answers: after ussd_session_timeout the application gets close
    let close = bench.nth_inbound(&tag, 1).await;
    assert_eq!(close["channel_data"]["session_event"], "close");
    assert_eq!(close["from"], "+254711000002");
    // and the session is over: the same id starts a new one
    let pending = ussd(&bench, &cid, "ATUid_4", "1");
    let again = bench.nth_inbound(&tag, 2).await;
    assert_eq!(again["channel_data"]["session_event"], "new");
    bench.answer(&cid, &again, "Bye", false).await;
    assert_eq!(pending.await.unwrap(), (200, "END Bye".into()));
}

#[tokio::test]
async fn unknown_channels_and_actions_are_404_on_the_public_listener() {
    let bench = Bench::start("").await;
    let http = reqwest::Client::new();
    let unknown = http
        .post(format!(
            "{}/channels/00000000-0000-0000-0000-000000000000/inbound",
            bench.public
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    // a telnet channel takes no callbacks
    let (body, _) = telnet_body(&bench.hooks.uri());
    let telnet = bench.api.create(body).await;
    let resp = http
        .post(format!("{}/channels/{telnet}/inbound", bench.public))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    // the management API is not on the public listener
    let api = http
        .get(format!("{}/channels/", bench.public))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 404);
}

#[tokio::test]
async fn past_max_ussd_sessions_a_new_session_is_refused_and_counted() {
    let bench = Bench::start("").await;
    let mut t = table();
    t.config = Box::new(|stub| {
        json!({"username": "hornbill", "api_key": KEY, "base_url": stub,
               "max_ussd_sessions": 1})
    });
    let (cid, tag) = bench.channel(&t, "http://127.0.0.1:9", "cap").await;
    let pending = ussd(&bench, &cid, "ATUid_5", "");
    let new = bench.nth_inbound(&tag, 0).await;
    bench.answer(&cid, &new, "Menu", true).await;
    assert_eq!(pending.await.unwrap(), (200, "CON Menu".into()));

    // One session is open: a second is told to try later, and the application never hears
    // of it.
    let refused = ussd(&bench, &cid, "ATUid_6", "").await.unwrap();
    assert_eq!(
        refused,
        (
            200,
            "END Sorry, the service did not answer in time. Please try again later.".into()
        )
    );
    // The open one goes on.
    let pending = ussd(&bench, &cid, "ATUid_5", "1");
    let next = bench.nth_inbound(&tag, 1).await;
    assert_eq!(next["channel_data"]["session_event"], "resume");
    assert_eq!(next["content"], "1");
    bench.answer(&cid, &next, "Bye", false).await;
    assert_eq!(pending.await.unwrap(), (200, "END Bye".into()));
    assert_eq!(bench.posted(&format!("/mo/{tag}")).await.len(), 2);

    let logs = bench.api.logs(&cid).await;
    assert!(
        logs.iter().any(|e| {
            e["message"].as_str().unwrap().starts_with(
            "USSD session ATUid_6 refused: 1 sessions are open on this channel (max_ussd_sessions)"
        )
        }),
        "{logs:#?}"
    );
    until(
        &bench.api,
        "hornbill_limit_reached_total",
        &[("channel", &cid), ("limit", "ussd_sessions")],
        1.0,
    )
    .await;

    // That one ended: there is room again.
    let pending = ussd(&bench, &cid, "ATUid_6", "");
    let again = bench.nth_inbound(&tag, 2).await;
    assert_eq!(again["channel_data"]["session_event"], "new");
    bench.answer(&cid, &again, "Hi", false).await;
    assert_eq!(pending.await.unwrap(), (200, "END Hi".into()));
}
