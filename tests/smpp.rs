//! Channel type `smpp` against the independent SMSC simulator (`../shared/peers/smsc`, built
//! on the npm `smpp` package): bind, submit, acks, receipts, MO, multipart, encodings,
//! refusals and a dropped link.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Smsc {
    child: Child,
    smpp: u16,
    control: String,
}

impl Smsc {
    fn start(args: &[&str]) -> Smsc {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers/smsc");
        let ok = Command::new(dir.join("setup"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the SMSC simulator's setup failed (node and npm are needed)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("smsc.js"))
            .args(["--port", "0", "--control-port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "smsc listening smpp=127.0.0.1:PORT control=127.0.0.1:PORT"
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        let smpp = field("smpp=").rsplit(':').next().unwrap().parse().unwrap();
        Smsc {
            child,
            smpp,
            control: format!("http://{}", field("control=")),
        }
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.control))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn smpp_channel(api: &Api, smsc: &Smsc, mo: &str, extra: Value) -> String {
    let mut config = json!({"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.smpp),
                            "system_id": "hornbill", "password": "s3cr3tpw",
                            "smpp_enquire_link_interval": 1});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let cid = api
        .create(json!({"type": "smpp", "mo_url": mo, "config": config}))
        .await;
    eventually("bound", || async {
        let st = api.channel(&cid).await["status"].clone();
        (st["components"]["smpp"]["type"] == "bound").then_some(())
    })
    .await;
    cid
}

async fn record_for(smsc: &Smsc, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually("an SMSC record", || async {
        smsc.get(&format!("/messages?kind={kind}"))
            .await
            .as_array()
            .unwrap()
            .iter()
            .find(|r| pred(r))
            .cloned()
    })
    .await
}

#[tokio::test]
async fn send_ack_receipt_and_mo() {
    let smsc = Smsc::start(&["--fail-dest", "^999"]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &format!("{}/mo", hooks.uri()), json!({})).await;
    let ev = format!("{}/ev", hooks.uri());

    let sent = api.send(&cid, json!({"to": "27820000001", "from": "12345", "content": "Hello €uro {ok}", "event_url": ev})).await;
    let id = sent["message_id"].clone();
    let (_, _, submitted) = wait_hit(&hooks, "submitted", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted"
    })
    .await;
    assert_eq!(submitted["event_details"], json!({}));
    wait_hit(&hooks, "delivered", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "delivery_succeeded"
    })
    .await;
    let rec = record_for(&smsc, "single", |r| r["destination_addr"] == "27820000001").await;
    assert_eq!(rec["text"], "Hello €uro {ok}");
    assert_eq!(rec["data_coding"], 0);
    assert_eq!(rec["source_addr"], "12345");
    assert_eq!(rec["system_id"], "hornbill");

    // UCS-2 when GSM 03.38 cannot carry it.
    api.send(&cid, json!({"to": "27820000002", "content": "Привет 😀"}))
        .await;
    let rec = record_for(&smsc, "single", |r| r["destination_addr"] == "27820000002").await;
    assert_eq!(rec["data_coding"], 8);
    assert_eq!(rec["text"], "Привет 😀");

    // A long message: parts with a UDH, one submitted event for the whole.
    let long = "Long messages are split into parts. ".repeat(6);
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000003", "content": long, "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    let whole = record_for(&smsc, "reassembled", |r| {
        r["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Long messages"))
    })
    .await;
    assert_eq!(whole["text"], json!(long));
    assert_eq!(whole["via"], "udh8");
    wait_hit(&hooks, "long submitted", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted"
    })
    .await;
    let submitted = hits(&hooks)
        .await
        .iter()
        .filter(|(p, _, b)| p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted")
        .count();
    assert_eq!(submitted, 1, "one ack per message, not per part");

    // A refusal becomes a rejected event named after the status.
    let sent = api
        .send(
            &cid,
            json!({"to": "99912345", "content": "nope", "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    let (_, _, rejected) = wait_hit(&hooks, "rejected", |p, b| {
        p == "/ev" && b["message_id"] == id
    })
    .await;
    assert_eq!(rejected["event_type"], "rejected");
    assert_eq!(
        rejected["event_details"],
        json!({"reason": "ESME_RINVDSTADR"})
    );

    // MO, single and multipart.
    smsc.post(
        "/mo",
        json!({"from": "27820000009", "to": "12345", "text": "hi there"}),
    )
    .await;
    let (_, _, mo) = wait_hit(&hooks, "MO", |p, b| {
        p == "/mo" && b["content"] == "hi there"
    })
    .await;
    assert_eq!(mo["from"], "27820000009");
    assert_eq!(mo["to"], "12345");
    assert_eq!(mo["channel_id"], json!(cid));

    // Secrets stay out of responses and logs.
    let shown = api.get(&format!("/channels/{cid}")).await.text;
    assert!(!shown.contains("s3cr3tpw"), "{shown}");
    assert!(
        !api.get(&format!("/channels/{cid}/logs?n=1000"))
            .await
            .text
            .contains("s3cr3tpw")
    );
    assert!(!server.output().contains("s3cr3tpw"));
}

#[tokio::test]
async fn a_dropped_link_is_rebound_and_sending_resumes() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(
        &api,
        &smsc,
        &hooks.uri(),
        json!({"initial_reconnect_delay": 0.2}),
    )
    .await;
    smsc.post("/drop", json!({})).await;
    eventually("reconnected", || async {
        let binds = smsc.get("/stats").await["binds_total"]
            .as_u64()
            .unwrap_or(0);
        (binds >= 2).then_some(())
    })
    .await;
    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000004", "content": "after the drop", "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    wait_hit(&hooks, "submitted after reconnect", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted"
    })
    .await;
    let logs = api.logs(&cid).await;
    assert!(
        logs.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .starts_with("SMPP session ended; reconnecting")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn long_inbound_messages_are_reassembled() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    smpp_channel(&api, &smsc, &format!("{}/mo", hooks.uri()), json!({})).await;
    let long = "This long inbound message arrives in three parts. ".repeat(4);
    smsc.post(
        "/mo",
        json!({"from": "27820000011", "to": "12345", "text": long, "parts": 3}),
    )
    .await;
    let (_, _, mo) = wait_hit(&hooks, "UDH MO", |p, b| {
        p == "/mo" && b["from"] == "27820000011"
    })
    .await;
    assert_eq!(mo["content"], json!(long));
    let sar = "Parts by SAR TLVs, in UCS-2: привет. ".repeat(4);
    smsc.post("/mo", json!({"from": "27820000012", "to": "12345", "text": sar, "parts": 2, "sar": true, "data_coding": 8})).await;
    let (_, _, mo) = wait_hit(&hooks, "SAR MO", |p, b| {
        p == "/mo" && b["from"] == "27820000012"
    })
    .await;
    assert_eq!(mo["content"], json!(sar));
    let hits_from = |n: &str| {
        let n = n.to_string();
        async move {
            hits(&hooks)
                .await
                .into_iter()
                .filter(|(_, _, b)| b["from"] == json!(n))
                .count()
        }
    };
    assert_eq!(
        hits_from("27820000011").await,
        1,
        "one inbound message for all the parts"
    );
}

#[tokio::test]
async fn outbound_parts_by_udh16_and_sar() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let long = "Sixteen-bit references and SAR TLVs both carry long messages. ".repeat(4);
    for (mode, to) in [("udh16", "27820000021"), ("sar", "27820000022")] {
        let cid = smpp_channel(&api, &smsc, &hooks.uri(), json!({"multipart": mode})).await;
        api.send(&cid, json!({"to": to, "content": long})).await;
        let whole = record_for(&smsc, "reassembled", |r| {
            r["text"] == json!(long) && r["via"] == json!(mode)
        })
        .await;
        assert_eq!(whole["total"], 2);
    }
}

#[tokio::test]
async fn throttling_pauses_and_retries_without_loss() {
    let smsc = Smsc::start(&["--throttle-every", "3"]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &hooks.uri(), json!({})).await;
    let ev = format!("{}/ev", hooks.uri());
    let mut ids = vec![];
    for i in 0..12 {
        let sent = api.send(&cid, json!({"to": format!("2782000{i:04}"), "content": format!("t{i}"), "event_url": ev})).await;
        ids.push(sent["message_id"].clone());
    }
    for id in &ids {
        wait_hit(&hooks, "submitted despite throttling", |p, b| {
            p == "/ev" && b["message_id"] == *id && b["event_type"] == "submitted"
        })
        .await;
    }
    let stats = smsc.get("/stats").await;
    assert!(stats["throttled"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(stats["accepted"], 12);
    assert!(
        hits(&hooks)
            .await
            .iter()
            .all(|(_, _, b)| b["event_type"] != "rejected")
    );
    let logs = api.logs(&cid).await;
    let text: Vec<&str> = logs
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        text.iter()
            .any(|m| m.contains("Provider asked to retry later: ESME_RTHROTTLED")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("The SMSC accepts messages again")),
        "{text:?}"
    );
}

#[tokio::test]
async fn mt_tps_holds() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &hooks.uri(), json!({"mt_tps": 5})).await;
    let start = std::time::Instant::now();
    for i in 0..15 {
        api.send(
            &cid,
            json!({"to": "27820000031", "content": format!("tps{i}")}),
        )
        .await;
    }
    eventually("all accepted", || async {
        (smsc.get("/stats").await["accepted"] == 15).then_some(())
    })
    .await;
    let took = start.elapsed().as_secs_f64();
    assert!(took >= 1.8, "15 messages at mt_tps 5 took {took:.2} s");
}

#[tokio::test]
async fn ussd_sessions_and_data_sm() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &format!("{}/mo", hooks.uri()), json!({})).await;
    // A USSD dialogue opens (PSSR indication, session 1, sequence 2).
    smsc.post(
        "/mo",
        json!({"from": "27820000041", "to": "*120#", "text": "*120#", "service_type": "USSD",
                            "ussd_service_op": 1, "its_session_info": 258}),
    )
    .await;
    let (_, _, new) = wait_hit(&hooks, "USSD new", |p, b| {
        p == "/mo" && b["from"] == "27820000041"
    })
    .await;
    assert_eq!(new["channel_data"]["session_event"], "new");
    let menu = api
        .send(
            &cid,
            json!({"reply_to": new["message_id"], "content": "1. Balance\n2. Exit"}),
        )
        .await;
    assert_eq!(menu["to"], "27820000041");
    let rec = record_for(&smsc, "single", |r| r["text"] == "1. Balance\n2. Exit").await;
    assert_eq!(
        rec["ussd_service_op"], 2,
        "a continuing reply is a USSR request: {rec}"
    );
    assert_eq!(
        rec["its_session_info"].as_u64().unwrap() >> 8,
        1,
        "same session: {rec}"
    );
    // The user answers (USSR confirm); the reply ends the session.
    smsc.post("/mo", json!({"from": "27820000041", "to": "*120#", "text": "1", "ussd_service_op": 18, "its_session_info": 260})).await;
    let (_, _, answer) = wait_hit(&hooks, "USSD resume", |p, b| {
        p == "/mo" && b["content"] == "1"
    })
    .await;
    assert_eq!(answer["channel_data"]["session_event"], "resume");
    api.send(
        &cid,
        json!({"reply_to": answer["message_id"], "content": "Balance: 5",
                          "channel_data": {"continue_session": false}}),
    )
    .await;
    let rec = record_for(&smsc, "single", |r| r["text"] == "Balance: 5").await;
    assert_eq!(
        rec["ussd_service_op"], 17,
        "an ending reply is a PSSR response: {rec}"
    );
    assert_eq!(
        rec["its_session_info"].as_u64().unwrap() & 1,
        1,
        "end-of-session bit: {rec}"
    );

    // data_sm with message_payload, answered and delivered like deliver_sm.
    let got = smsc.post("/mo", json!({"from": "27820000042", "to": "12345", "text": "by data_sm", "data_sm": true, "wait_ms": 2000})).await;
    assert_eq!(got["statuses"], json!([0]), "{got}");
    let (_, _, mo) = wait_hit(&hooks, "data_sm MO", |p, b| {
        p == "/mo" && b["from"] == "27820000042"
    })
    .await;
    assert_eq!(mo["content"], "by data_sm");
}

#[tokio::test]
async fn a_dead_link_is_noticed_by_enquire_link() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(
        &api,
        &smsc,
        &hooks.uri(),
        json!({"initial_reconnect_delay": 0.2}),
    )
    .await;
    smsc.post("/pause", json!({"enquire_link": true})).await;
    eventually("dead link noticed", || async {
        let logs = api.logs(&cid).await;
        logs.iter()
            .any(|e| e["message"].as_str().unwrap().contains("the link is dead"))
            .then_some(())
    })
    .await;
    smsc.post("/resume", json!({})).await;
    eventually("bound again", || async {
        (smsc.get("/stats").await["binds_total"]
            .as_u64()
            .unwrap_or(0)
            >= 2)
            .then_some(())
    })
    .await;
}
