//! Channel type `smpp` against the repository's own SMSC simulator (`tests/peers/smsc`, built
//! on the npm `smpp` package, independent of hornbill's codec): bind, submit, acks, receipts,
//! MO, multipart (inbound parts out of order and across a restart too), encodings, refusals,
//! throttling and a full queue, withheld answers, garbage, a silent SMSC and a dropped link.

mod common;
use common::smsc::Smsc;
use common::*;
use serde_json::{Value, json};

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

/// Waits until the simulator's counter `name` reaches `n`.
async fn stat_reaches(smsc: &Smsc, name: &str, n: u64) {
    eventually(&format!("{name} reaching {n}"), || async {
        (smsc.get("/stats").await[name].as_u64().unwrap_or(0) >= n).then_some(())
    })
    .await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One part of a concatenated MO (8-bit ref UDH, GSM 03.38 unpacked), sent exactly as given
/// by the simulator's `/deliver`, so parts can come in any order.
async fn deliver_part(smsc: &Smsc, reference: u8, total: u8, seq: u8, septets: &[u8]) {
    let mut sm = vec![5, 0x00, 3, reference, total, seq];
    sm.extend_from_slice(septets);
    let sent = smsc
        .post(
            "/deliver",
            json!({"from": "27820000051", "to": "12345", "esm_class": 0x40,
                   "data_coding": 0, "short_message_hex": hex(&sm)}),
        )
        .await;
    assert_eq!(sent["sent"], 1, "{sent}");
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
            .starts_with("SMPP transceiver session ended; reconnecting")),
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

/// The SMSC answers every third submit_sm with `status` (started with `flag`): the channel
/// pauses and sends again, so all 12 are accepted, none rejected, and the log says so.
async fn retry_later_answers_lose_nothing(flag: &str, stat: &str, status: &str) {
    let smsc = Smsc::start(&[flag, "3"]);
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
        wait_hit(&hooks, "submitted despite the SMSC's answers", |p, b| {
            p == "/ev" && b["message_id"] == *id && b["event_type"] == "submitted"
        })
        .await;
    }
    let stats = smsc.get("/stats").await;
    assert!(stats[stat].as_u64().unwrap() >= 3, "{stats}");
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
            .any(|m| m.contains(&format!("Provider asked to retry later: {status}"))),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("The SMSC accepts messages again")),
        "{text:?}"
    );
}

#[tokio::test]
async fn throttling_pauses_and_retries_without_loss() {
    retry_later_answers_lose_nothing("--throttle-every", "throttled", "ESME_RTHROTTLED").await;
}

#[tokio::test]
async fn queue_full_answers_are_retried_without_loss() {
    retry_later_answers_lose_nothing("--queue-full-every", "queue_full", "ESME_RMSGQFUL").await;
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

#[tokio::test]
async fn transmitter_receiver_pair_and_unbind_on_stop() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(
        &api,
        &smsc,
        &format!("{}/mo", hooks.uri()),
        json!({"bind_mode": "pair"}),
    )
    .await;
    eventually("the receiver bound", || async {
        let st = api.channel(&cid).await["status"].clone();
        (st["components"]["smpp_rx"]["type"] == "bound").then_some(())
    })
    .await;
    let sessions = smsc.get("/sessions").await;
    let mut binds: Vec<String> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bind"].as_str().unwrap_or("").to_string())
        .collect();
    binds.sort();
    assert_eq!(binds.len(), 2, "{sessions}");
    assert!(
        binds[0].contains("receiver") && binds[1].contains("transmitter"),
        "{sessions}"
    );

    // Sent over the transmitter, its receipt back over the receiver.
    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000021", "content": "over a pair", "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    wait_hit(&hooks, "delivered through the receiver", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "delivery_succeeded"
    })
    .await;
    smsc.post(
        "/mo",
        json!({"from": "27820000022", "to": "12345", "text": "to the receiver"}),
    )
    .await;
    let (_, _, mo) = wait_hit(&hooks, "MO over the receiver", |p, b| {
        p == "/mo" && b["from"] == "27820000022"
    })
    .await;
    assert_eq!(mo["content"], "to the receiver");

    // Stopping the channel unbinds both sessions.
    let before = smsc.get("/stats").await["unbind"].as_u64().unwrap();
    assert_eq!(api.delete(&format!("/channels/{cid}")).await.status, 200);
    eventually("both sessions unbound", || async {
        let stats = smsc.get("/stats").await;
        (stats["unbind"].as_u64().unwrap() == before + 2 && stats["binds_active"] == 0)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_receiver_bind_refuses_sends_and_a_transmitter_gets_no_mo() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let rx = smpp_channel(
        &api,
        &smsc,
        &format!("{}/mo", hooks.uri()),
        json!({"bind_mode": "receiver"}),
    )
    .await;
    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &rx,
            json!({"to": "27820000031", "content": "cannot", "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    let (_, _, nack) = wait_hit(&hooks, "nack from a receiver", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "rejected"
    })
    .await;
    assert!(
        nack["event_details"]["reason"]
            .as_str()
            .unwrap()
            .contains("receiver only"),
        "{nack}"
    );
    assert_eq!(smsc.get("/stats").await["submit_sm"], 0);

    let tx = smpp_channel(
        &api,
        &smsc,
        &format!("{}/mo2", hooks.uri()),
        json!({"bind_mode": "transmitter", "system_id": "tx-only"}),
    )
    .await;
    let sent = api
        .send(
            &tx,
            json!({"to": "27820000032", "content": "one way", "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    wait_hit(&hooks, "submitted by a transmitter", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted"
    })
    .await;
    let record = record_for(&smsc, "single", |r| r["destination_addr"] == "27820000032").await;
    assert_eq!(record["system_id"], "tx-only");
    // Its receipt goes to the receiving session (the other channel), which knows nothing
    // of the message: it is logged there, not lost silently, and no MO reached /mo2.
    eventually("the receipt reached the receiver channel", || async {
        let logs = api.logs(&rx).await;
        logs.iter()
            .any(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Delivery receipt for unknown SMSC id")
            })
            .then_some(())
    })
    .await;
    assert!(hits(&hooks).await.iter().all(|(p, _, _)| p != "/mo2"));
}

#[tokio::test]
async fn registered_delivery_off_asks_for_no_receipt() {
    let smsc = Smsc::start(&["--dlr-delay-ms", "10"]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(
        &api,
        &smsc,
        &hooks.uri(),
        json!({"registered_delivery": false}),
    )
    .await;
    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000041", "content": "no receipt please", "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    wait_hit(&hooks, "submitted", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted"
    })
    .await;
    let record = record_for(&smsc, "single", |r| r["destination_addr"] == "27820000041").await;
    assert_eq!(record["registered_delivery"], 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smsc.get("/stats").await["dlr_sent"], 0);
    assert!(
        !hits(&hooks).await.iter().any(|(_, _, b)| b["event_type"]
            .as_str()
            .unwrap_or("")
            .starts_with("delivery_")),
        "no delivery report without a receipt"
    );
}

#[tokio::test]
async fn inbound_parts_out_of_order_survive_a_restart_on_redis() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let prefix = format!("hbtest-smpp-{}:", std::process::id());
    let config = format!(
        "[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        redis_url()
    );
    let server = Server::start(&config);
    let api = server.api();
    let cid = api
        .create(
            json!({"type": "smpp", "mo_url": format!("{}/mo", hooks.uri()),
                       "config": {"twisted_endpoint": format!("tcp:127.0.0.1:{}", smsc.smpp),
                                  "system_id": "hornbill", "smpp_enquire_link_interval": 1}}),
        )
        .await;
    stat_reaches(&smsc, "binds_total", 1).await;
    // Part 3, then part 1 (ending in the escape of a "€" whose second half is in part 2).
    deliver_part(&smsc, 0x42, 3, 3, b" and three").await;
    deliver_part(&smsc, 0x42, 3, 1, b"one \x1b").await;
    stat_reaches(&smsc, "deliver_sm_resp", 2).await;
    drop(server); // SIGKILL
    let server = Server::start(&config);
    stat_reaches(&smsc, "binds_total", 2).await;
    deliver_part(&smsc, 0x42, 3, 2, b"\x65 two").await;
    let (_, _, mo) = wait_hit(&hooks, "the whole message", |p, _| p == "/mo").await;
    assert_eq!(mo["content"], "one € two and three");
    assert_eq!(mo["channel_id"], json!(cid));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(hits(&hooks).await.len(), 1, "one message for three parts");
    // The parts are gone from the store once joined.
    let mut r = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*parts:*"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    drop(server);
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut r)
        .await
        .unwrap();
    if !all.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&all)
            .query_async(&mut r)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn garbage_gets_generic_nack_and_a_silent_smsc_a_bind_timeout() {
    let smsc = Smsc::start(&[]);
    let server = Server::start("");
    let api = server.api();
    let config = |port: u16| {
        json!({"twisted_endpoint": format!("tcp:127.0.0.1:{port}"), "system_id": "hornbill",
               "smpp_bind_timeout": 0.5, "initial_reconnect_delay": 0.2})
    };
    api.create(json!({"type": "smpp", "config": config(smsc.smpp)}))
        .await;
    stat_reaches(&smsc, "binds_total", 1).await;
    // A command the ESME does not know: answered with generic_nack ESME_RINVCMDID (3).
    let sent = smsc
        .post(
            "/raw",
            json!({"command_id": 0x0000_0999, "body_hex": hex(b"junk")}),
        )
        .await;
    assert_eq!(sent["sent"], 1, "{sent}");
    eventually("generic_nack", || async {
        smsc.get("/stats").await["generic_nack_statuses"]
            .as_array()
            .unwrap()
            .contains(&json!(3))
            .then_some(())
    })
    .await;

    let silent = Smsc::start(&["--silent", "1"]);
    let cid = api
        .create(json!({"type": "smpp", "config": config(silent.smpp)}))
        .await;
    eventually("the bind timeout in the channel log", || async {
        api.logs(&cid)
            .await
            .iter()
            .any(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("No bind response in time")
            })
            .then_some(())
    })
    .await;
    let st = api.channel(&cid).await["status"].clone();
    assert_eq!(st["components"]["smpp"]["status"], "down", "{st}");
}

#[tokio::test]
async fn receipts_with_decimal_ids_early_and_twice() {
    // Receipts come before the submit_sm_resp, twice each, with decimal SMSC ids.
    let smsc = Smsc::start(&[
        "--id-format",
        "dec",
        "--resp-delay-ms",
        "300",
        "--dlr-delay-ms",
        "20",
        "--dlr-duplicate",
        "1",
        "--dlr-undeliv-dest",
        "^27820000062",
    ]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &hooks.uri(), json!({})).await;
    let ev = format!("{}/ev", hooks.uri());
    let mut ids = vec![];
    for to in ["27820000061", "27820000062"] {
        let sent = api
            .send(
                &cid,
                json!({"to": to, "content": "receipt test", "event_url": ev}),
            )
            .await;
        ids.push(sent["message_id"].clone());
    }
    wait_hit(&hooks, "delivered", |p, b| {
        p == "/ev" && b["message_id"] == ids[0] && b["event_type"] == "delivery_succeeded"
    })
    .await;
    wait_hit(&hooks, "undeliverable", |p, b| {
        p == "/ev" && b["message_id"] == ids[1] && b["event_type"] == "delivery_failed"
    })
    .await;
    // The second copy of each receipt finds its mapping gone: logged, not reported again.
    eventually("both repeats logged", || async {
        let logs = api.logs(&cid).await;
        (logs
            .iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Delivery receipt for unknown SMSC id")
            })
            .count()
            == 2)
            .then_some(())
    })
    .await;
    assert_eq!(smsc.get("/stats").await["dlr_sent"], 4);
    let reports = hits(&hooks)
        .await
        .into_iter()
        .filter(|(_, _, b)| {
            b["event_type"]
                .as_str()
                .unwrap_or("")
                .starts_with("delivery_")
        })
        .count();
    assert_eq!(reports, 2, "one delivery report per message");
}

#[tokio::test]
async fn a_withheld_response_times_out_and_the_message_is_retried() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &hooks.uri(), json!({"response_timeout": 1})).await;
    smsc.post("/pause", json!({})).await;
    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000071", "content": "stuck", "event_url": ev}),
        )
        .await;
    let id = sent["message_id"].clone();
    eventually("sent again after the timeout", || async {
        (smsc.get("/stats").await["withheld"].as_u64().unwrap_or(0) >= 2).then_some(())
    })
    .await;
    smsc.post("/resume", json!({})).await;
    wait_hit(&hooks, "submitted after the SMSC answered", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted"
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let acks = hits(&hooks)
        .await
        .into_iter()
        .filter(|(_, _, b)| b["message_id"] == id && b["event_type"] == "submitted")
        .count();
    assert_eq!(
        acks, 1,
        "the late answer to the first attempt is not a second ack"
    );
}

/// A message's events reach its event_url in the order they happened, even when the
/// event_url refuses a `submitted` event once (HTTP 500: retried after a backoff) while its
/// receipt comes ~50 ms later: the `delivery_succeeded` waits for it. Before, the report was
/// posted at once and arrived first (seconds before the retried `submitted`).
#[tokio::test]
async fn each_messages_events_arrive_in_the_order_they_happened() {
    let smsc = Smsc::start(&["--dlr-delay-ms", "50"]);
    let n = 40;
    let hooks = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::body_partial_json(
        json!({"event_type": "submitted"}),
    ))
    .respond_with(wiremock::ResponseTemplate::new(500))
    .up_to_n_times(n as u64 / 2)
    .with_priority(1)
    .mount(&hooks)
    .await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&hooks)
        .await;
    let server = Server::start(FAST_WEBHOOKS);
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &hooks.uri(), json!({})).await;
    let ev = format!("{}/ev", hooks.uri());
    let mut ids = Vec::new();
    for i in 0..n {
        let sent = api
            .send(
                &cid,
                json!({"to": format!("2782{i:07}"), "content": "in order", "event_url": ev}),
            )
            .await;
        ids.push(sent["message_id"].as_str().unwrap().to_string());
    }
    // Every request the event_url got, in the order it got them (refused ones included).
    let events = eventually("every message's two events delivered", || async {
        let got: Vec<(String, String)> = hits(&hooks)
            .await
            .into_iter()
            .filter(|(p, _, _)| p == "/ev")
            .map(|(_, _, b)| {
                (
                    b["message_id"].as_str().unwrap_or("").to_string(),
                    b["event_type"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        (got.len() >= 2 * n + n / 2).then_some(got)
    })
    .await;
    // Each message: its `submitted` (refused and retried any number of times: on a loaded
    // machine a retry may meet a refusal meant for another), then its report, never before.
    let mut refused = 0;
    for id in &ids {
        let order: Vec<&str> = events
            .iter()
            .filter(|(m, _)| m == id)
            .map(|(_, t)| t.as_str())
            .collect();
        let (last, acks) = order.split_last().expect("events");
        assert_eq!(*last, "delivery_succeeded", "message {id}: {order:?}");
        assert!(
            !acks.is_empty() && acks.iter().all(|t| *t == "submitted"),
            "message {id}: the report went ahead of its (retried) ack: {order:?}"
        );
        refused += acks.len() - 1;
    }
    assert_eq!(refused, n / 2);
}

#[tokio::test]
async fn past_max_reassembly_parts_the_oldest_incomplete_message_is_dropped() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(
        &api,
        &smsc,
        &format!("{}/mo", hooks.uri()),
        json!({"max_reassembly_parts": 2}),
    )
    .await;
    stat_reaches(&smsc, "binds_total", 1).await;
    // The first parts of three long messages: the third takes the parts waiting to 3, and
    // the oldest, 0x10, is dropped.
    deliver_part(&smsc, 0x10, 3, 1, b"ten ").await;
    deliver_part(&smsc, 0x11, 3, 1, b"eleven ").await;
    deliver_part(&smsc, 0x12, 2, 1, b"twelve ").await;
    // 0x10 starts over, and 0x11, the oldest now, is dropped; 0x12's last part completes it.
    deliver_part(&smsc, 0x10, 3, 2, b"again ").await;
    deliver_part(&smsc, 0x12, 2, 2, b"done").await;
    let (_, _, mo) = wait_hit(&hooks, "the whole of 0x12", |p, _| p == "/mo").await;
    assert_eq!(mo["content"], "twelve done");
    // 0x10 lost its first part: its last one completes nothing.
    deliver_part(&smsc, 0x10, 3, 3, b"end").await;
    stat_reaches(&smsc, "deliver_sm_resp", 6).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(hits(&hooks).await.len(), 1, "{:?}", hits(&hooks).await);

    let logs: Vec<String> = api
        .logs(&cid)
        .await
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    for (reference, held) in [(16, 1), (17, 1)] {
        let line = format!(
            "Dropping an incomplete long message (parts:27820000051:12345:{reference}:3, {held} of 3 parts): more than 2 parts were waiting (max_reassembly_parts)"
        );
        assert!(
            logs.iter().any(|l| l.starts_with(&line)),
            "{line:?} not in {logs:#?}"
        );
    }
    let text = scrape(&api).await;
    let dropped = sample(
        &text,
        "hornbill_limit_reached_total",
        &[("channel", &cid), ("limit", "smpp_parts")],
    );
    assert!(dropped >= Some(2.0), "{text}");
}

/// The lines of a message's story (`GET /channels/{id}/messages/{mid}/logs`).
async fn story(api: &Api, cid: &str, mid: &str) -> Vec<String> {
    api.get(&format!("/channels/{cid}/messages/{mid}/logs"))
        .await
        .ok(200, "logs retrieved")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn log_protocol_is_switched_on_by_a_modify_and_tells_a_messages_pdus() {
    let smsc = Smsc::start(&[]);
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = smpp_channel(&api, &smsc, &format!("{}/mo", hooks.uri()), json!({})).await;
    let ev = format!("{}/ev", hooks.uri());
    let delivered = |id: Value| {
        let hooks = &hooks;
        async move {
            wait_hit(hooks, "delivered", |p, b| {
                p == "/ev" && b["message_id"] == id && b["event_type"] == "delivery_succeeded"
            })
            .await;
        }
    };

    // Off by default: the story has no PDUs.
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000001", "content": "quiet", "event_url": ev}),
        )
        .await;
    let quiet = sent["message_id"].as_str().unwrap().to_string();
    delivered(json!(quiet)).await;
    let lines = story(&api, &cid, &quiet).await;
    assert!(!lines.iter().any(|l| l.contains("submit_sm")), "{lines:#?}");

    // On through a modify, with no restart: the channel stays bound on its first bind.
    let binds = smsc.get("/stats").await["binds_total"].clone();
    api.post(&format!("/channels/{cid}"), json!({"log_protocol": true}))
        .await
        .ok(200, "channel updated");
    assert_eq!(api.channel(&cid).await["log_protocol"], true);
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000002", "content": "loud €", "event_url": ev}),
        )
        .await;
    let loud = sent["message_id"].as_str().unwrap().to_string();
    delivered(json!(loud)).await;
    let lines = eventually("the receipt's PDU in the story", || async {
        let lines = story(&api, &cid, &loud).await;
        lines
            .iter()
            .any(|l| l.starts_with("<< deliver_sm") && l.contains("receipt_for="))
            .then_some(lines)
    })
    .await;
    let submit = lines
        .iter()
        .find(|l| l.starts_with(">> submit_sm "))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(submit.contains("dst=27820000002"), "{submit}");
    assert!(submit.contains("text=\"loud €\""), "{submit}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<< submit_sm_resp ") && l.contains("status=ESME_ROK")),
        "{lines:#?}"
    );
    // The receipt's answer follows it, in the same story.
    let at = lines
        .iter()
        .position(|l| l.starts_with("<< deliver_sm") && l.contains("receipt_for="))
        .unwrap();
    assert!(
        lines[at + 1..]
            .iter()
            .any(|l| l.starts_with(">> deliver_sm_resp ") && l.contains("status=ESME_ROK")),
        "{lines:#?}"
    );
    assert_eq!(smsc.get("/stats").await["binds_total"], binds, "no rebind");

    // An MO's deliver_sm is in its own story; enquire_links are in the channel's log.
    smsc.post(
        "/mo",
        json!({"from": "27820000009", "to": "12345", "text": "hi pdu"}),
    )
    .await;
    let (_, _, mo) = wait_hit(&hooks, "MO", |p, b| p == "/mo" && b["content"] == "hi pdu").await;
    let mo_story = story(&api, &cid, mo["message_id"].as_str().unwrap()).await;
    assert!(
        mo_story
            .iter()
            .any(|l| l.starts_with("<< deliver_sm") && l.contains("text=\"hi pdu\"")),
        "{mo_story:#?}"
    );
    let log = eventually("an enquire_link in the log", || async {
        let text = api.get(&format!("/channels/{cid}/logs?n=1000")).await.text;
        text.contains(">> enquire_link").then_some(text)
    })
    .await;
    assert!(!log.contains("s3cr3tpw"));

    // A restart binds again: the bind PDU shows the system_id, never the password.
    api.post(&format!("/channels/{cid}/restart"), json!({}))
        .await;
    let log = eventually("the bind in the log", || async {
        let text = api.get(&format!("/channels/{cid}/logs?n=1000")).await.text;
        text.contains(">> bind_transceiver").then_some(text)
    })
    .await;
    assert!(log.contains("system_id=hornbill"), "{log}");
    assert!(!log.contains("s3cr3tpw"));
    assert!(!server.output().contains("s3cr3tpw"));

    // Off again: no more PDUs.
    api.post(&format!("/channels/{cid}"), json!({"log_protocol": false}))
        .await
        .ok(200, "channel updated");
    let sent = api
        .send(
            &cid,
            json!({"to": "27820000003", "content": "quiet again", "event_url": ev}),
        )
        .await;
    let again = sent["message_id"].as_str().unwrap().to_string();
    delivered(json!(again)).await;
    let lines = story(&api, &cid, &again).await;
    assert!(!lines.iter().any(|l| l.contains("submit_sm")), "{lines:#?}");
}
