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
