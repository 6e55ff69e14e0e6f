//! Channel type `aat` through the public listener, as AAT's gateway calls it: the shared
//! case tables (vxaat's refusals, Basic auth, sends that are not replies), vxaat's test
//! cases, then a session walked end to end with the exact XML answers, the callback URL
//! AAT is given included.

mod common;
use common::callback_base;
use common::cases::*;
use serde_json::{Value, json};

const PASSWORD: &str = "a4t-s3cret-pw";

fn table() -> Table {
    Table {
        channel_type: "aat",
        config: Box::new(|_| {
            json!({"web_path": "/api/aat/ussd/", "web_port": "0", "request_timeout": 2,
                   "provider_mappings": {"Camelot": "camelot"}})
        }),
        send: ("POST", "/unused"),
        secrets: vec![],
        signer: None,
    }
}

fn guarded() -> Table {
    Table {
        channel_type: "aat",
        config: Box::new(|_| {
            json!({"base_url": "https://ussd.example.org/gw/", "web_path": "/api/aat/ussd/",
                   "web_port": 8080, "web_username": "aat", "web_password": PASSWORD,
                   "to_addr": "*120*1234#", "request_timeout": 2, "transport_name": "x",
                   "worker_name": "x", "publish_status": true})
        }),
        send: ("POST", "/unused"),
        secrets: vec![PASSWORD],
        signer: None,
    }
}

const TIMED_OUT: &str = "<request><headertext>Sorry, the service did not answer in time. Please try again later.</headertext></request>";

#[tokio::test]
async fn incoming_cases() {
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "missing parameters",
                action: "ussd",
                method: "GET",
                query: query(&[("request", ""), ("provider", "")]),
                status: 400,
                response: Some(r#"{"missing_parameter": ["msisdn"]}"#),
                ..Default::default()
            },
            Incoming {
                label: "unexpected parameters",
                action: "ussd",
                method: "GET",
                query: query(&[
                    ("msisdn", "27729042520"),
                    ("provider", "MTN"),
                    ("unexpected_p1", ""),
                    ("unexpected_p2", ""),
                ]),
                status: 400,
                response: Some(r#"{"unexpected_parameter": ["unexpected_p1", "unexpected_p2"]}"#),
                ..Default::default()
            },
            Incoming {
                label: "nothing at all, in a form POST",
                action: "ussd",
                body: form(&[]),
                status: 400,
                response: Some(r#"{"missing_parameter": ["msisdn", "provider"]}"#),
                ..Default::default()
            },
            Incoming {
                label: "a value that is not UTF-8",
                action: "ussd",
                method: "GET",
                query: "msisdn=27729042520&provider=MTN&request=%FF%FEW".into(),
                status: 400,
                response_contains: vec![r#"{"invalid_request": {"#],
                ..Default::default()
            },
            Incoming {
                label: "a first request the application leaves unanswered",
                action: "ussd",
                method: "GET",
                query: query(&[
                    ("msisdn", "27729042520"),
                    ("provider", "Camelot"),
                    ("request", "*1234#"),
                    ("ussdSessionId", "s-77"),
                ]),
                status: 200,
                response: Some(TIMED_OUT),
                inbound: Some(
                    json!({"from": "27729042520", "to": "*1234#", "content": null,
                    "channel_data": {"session_event": "new", "session_id": "s-77"}}),
                ),
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn basic_auth() {
    let request = query(&[
        ("msisdn", "27729042520"),
        ("provider", "MTN"),
        ("request", "*1234#"),
    ]);
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
                headers: vec![("Authorization", basic("aat", "guess"))],
                status: 401,
                response: Some("Unauthorized"),
                ..Default::default()
            },
            Incoming {
                label: "the right ones",
                action: "ussd",
                method: "GET",
                query: request.clone(),
                headers: vec![("Authorization", basic("aat", PASSWORD))],
                status: 200,
                response: Some(TIMED_OUT),
                inbound: Some(json!({"from": "27729042520", "to": "*1234#",
                    "channel_data": {"session_event": "new", "session_id": "27729042520"}})),
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn sends_that_are_not_replies_are_rejected() {
    let bench = Bench::start("").await;
    let (cid, _) = bench.channel(&table(), "", "not replies").await;
    for (label, body, reason) in [
        (
            "no_reply_to_in_response",
            json!({"to": "27729042520", "content": "Nudge, nudge, wink, wink. Know what I mean?"}),
            "Outbound message is not a reply",
        ),
        (
            "no_content_in_reply",
            json!({"to": "27729042520", "content": ""}),
            "Outbound message has no content.",
        ),
    ] {
        let event = bench.event_of(&cid, body, label).await;
        assert_eq!(event["event_type"], "rejected", "{label}");
        assert_eq!(event["event_details"]["reason"], reason, "{label}");
    }
}

/// An AAT request (GET, as AAT sends them) to `url` held until the application answers.
fn ussd(url: String) -> tokio::task::JoinHandle<(u16, String)> {
    tokio::spawn(async move {
        let resp = reqwest::get(url).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

/// The callback an XML answer gives AAT.
fn callback_of(xml: &str) -> String {
    let start = xml.find("callback=\"").expect("a callback") + "callback=\"".len();
    let end = start + xml[start..].find('"').unwrap();
    xml[start..end].replace("&amp;", "&")
}

#[tokio::test]
async fn a_ussd_session_end_to_end() {
    let bench = Bench::start("").await;
    let t = table();
    let (cid, tag) = bench.channel(&t, "", "session").await;
    let user = query(&[
        ("msisdn", "27729042520"),
        ("provider", "Camelot"),
        ("ussdSessionId", "aat-s-1"),
    ]);

    // new: the dialled code is the `to` (vxaat's inbound_begin)
    let first = format!(
        "{}/ussd?{user}&{}",
        callback_base(&bench.public, &cid),
        query(&[("request", "*1234#")])
    );
    let pending = ussd(first);
    let new = bench.nth_inbound(&tag, 0).await;
    assert_eq!(new["channel_data"]["session_event"], "new");
    assert_eq!(new["channel_data"]["session_id"], "aat-s-1");
    assert_eq!(new["content"], Value::Null);
    assert_eq!(new["from"], "27729042520");
    assert_eq!(new["to"], "*1234#");
    bench
        .answer(&cid, &new, "We are the Knights Who Say ... Ni!", true)
        .await;
    let (status, xml) = pending.await.unwrap();
    assert_eq!(status, 200);
    let callback = format!(
        "{}/ussd?to_addr=%2A1234%23",
        callback_base(&bench.public, &cid)
    );
    assert_eq!(
        xml,
        format!(
            "<request><headertext>We are the Knights Who Say ... Ni!</headertext><options><option callback=\"{callback}\" command=\"1\" display=\"false\" order=\"1\" /></options></request>"
        )
    );

    // resume: AAT calls the callback with the user's answer
    let pending = ussd(format!(
        "{}&{user}&{}",
        callback_of(&xml),
        query(&[("request", "Well, what is it you want?")])
    ));
    let second = bench.nth_inbound(&tag, 1).await;
    assert_eq!(second["channel_data"]["session_event"], "resume");
    assert_eq!(second["content"], "Well, what is it you want?");
    assert_eq!(second["to"], "*1234#");
    bench
        .answer(&cid, &second, "Thrëë & <co>, my lord.", true)
        .await;
    let (_, xml) = pending.await.unwrap();
    assert_eq!(
        xml,
        format!(
            "<request><headertext>Thrëë &amp; &lt;co&gt;, my lord.</headertext><options><option callback=\"{callback}\" command=\"1\" display=\"false\" order=\"1\" /></options></request>"
        )
    );

    // close: no options (resume_and_reply_with_end)
    let pending = ussd(format!(
        "{}&{user}&{}",
        callback_of(&xml),
        query(&[("request", "I didn't expect a kind of Spanish Inquisition!")])
    ));
    let third = bench.nth_inbound(&tag, 2).await;
    assert_eq!(third["channel_data"]["session_event"], "resume");
    bench
        .answer(
            &cid,
            &third,
            "Nobody expects the Spanish Inquisition!",
            false,
        )
        .await;
    assert_eq!(
        pending.await.unwrap(),
        (
            200,
            "<request><headertext>Nobody expects the Spanish Inquisition!</headertext></request>"
                .into()
        )
    );

    // a second answer to a request already answered (vxaat's failed_request)
    let late = bench
        .event_of(
            &cid,
            json!({"reply_to": third["message_id"], "content": "She turned me into a newt!"}),
            "late",
        )
        .await;
    assert_eq!(late["event_type"], "rejected");
    assert_eq!(
        late["event_details"]["reason"],
        "Response to http request failed."
    );
    bench.assert_redacted(&t, &cid, "session").await;
}

#[tokio::test]
async fn base_url_names_the_public_address_in_the_callback() {
    let bench = Bench::start("").await;
    let t = guarded();
    let (cid, tag) = bench.channel(&t, "", "base_url").await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/ussd?{}",
        callback_base(&bench.public, &cid),
        query(&[
            ("msisdn", "27729042520"),
            ("provider", "MTN"),
            ("request", "*120*123#")
        ])
    );
    let pending = tokio::spawn(
        http.get(url)
            .header("Authorization", basic("aat", PASSWORD))
            .send(),
    );
    let new = bench.nth_inbound(&tag, 0).await;
    bench.answer(&cid, &new, "Menu", true).await;
    let xml = pending.await.unwrap().unwrap().text().await.unwrap();
    assert_eq!(
        xml,
        format!(
            "<request><headertext>Menu</headertext><options><option callback=\"{}/ussd?to_addr=%2A120%2A123%23\" command=\"1\" display=\"false\" order=\"1\" /></options></request>",
            callback_base("https://ussd.example.org/gw", &cid)
        )
    );
    bench.assert_redacted(&t, &cid, "base_url").await;
}

#[tokio::test]
async fn a_ussd_request_the_application_does_not_answer_times_out() {
    let bench = Bench::start("").await;
    let t = table();
    let (cid, tag) = bench.channel(&t, "", "timeout").await;
    let url = format!(
        "{}/ussd?{}",
        callback_base(&bench.public, &cid),
        query(&[
            ("msisdn", "27729042520"),
            ("provider", "MTN"),
            ("request", "*1234#"),
            ("ussdSessionId", "aat-s-2"),
        ])
    );
    let pending = ussd(url);
    let new = bench.nth_inbound(&tag, 0).await;
    assert_eq!(pending.await.unwrap(), (200, TIMED_OUT.into()));
    let close = bench.nth_inbound(&tag, 1).await;
    assert_eq!(close["channel_data"]["session_event"], "close");
    assert_eq!(close["channel_data"]["session_id"], "aat-s-2");
    assert_eq!(close["to"], "*1234#");
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
        "Response to http request failed."
    );
}
