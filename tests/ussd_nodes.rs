//! USSD sessions across nodes: two hornbills share a Redis store (each with its own bus),
//! so a session's requests may reach either node, and the application's answer may reach
//! the node that does not hold the request; it is handed over through the store.

mod common;
use common::*;
use serde_json::{Value, json};

async fn redis_keys(prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut r)
        .await
        .unwrap()
}

async fn cleanup(prefix: &str) {
    let keys = redis_keys(prefix).await;
    if !keys.is_empty() {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut r = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut r)
            .await
            .unwrap();
    }
}

fn ussd(public: &str, cid: &str, text: &str) -> tokio::task::JoinHandle<(u16, String)> {
    let url = format!("{}/ussd", callback_base(public, cid));
    let body = cases::query(&[
        ("sessionId", "ATUid_nodes"),
        ("serviceCode", "*384*99#"),
        ("phoneNumber", "+254711000009"),
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
async fn a_session_moves_between_nodes_and_answers_find_their_request() {
    let prefix = format!("t{}", hornbill::message::new_id());
    let config = format!(
        "[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n{FAST_WEBHOOKS}",
        redis_url()
    );
    let hooks = receiver().await;
    let a = Server::start(&config);
    let cid = a
        .api()
        .create(json!({"type": "africastalking", "mo_url": format!("{}/mo", hooks.uri()),
                       "config": {"username": "u", "api_key": "nodes-key", "base_url": "http://127.0.0.1:9"}}))
        .await;
    // the second node finds the channel in Redis
    let b = Server::start(&config);
    eventually("the channel on node b", || async {
        (b.api().get(&format!("/channels/{cid}")).await.status == 200).then_some(())
    })
    .await;
    let inbound = |n: usize| {
        let hooks = &hooks;
        async move {
            eventually(&format!("inbound #{n}"), || async {
                hits(hooks)
                    .await
                    .into_iter()
                    .filter(|(p, _, _)| p == "/mo")
                    .nth(n)
                    .map(|(_, _, b)| b)
            })
            .await
        }
    };
    let reply = |api: Api, to: Value, text: &'static str, more: bool| {
        let cid = cid.clone();
        async move {
            api.send(
                &cid,
                json!({"reply_to": to["message_id"], "content": text,
                       "channel_data": {"continue_session": more}}),
            )
            .await
        }
    };

    // new, held by a; answered through b
    let held = ussd(&a.public_url(), &cid, "");
    let new = inbound(0).await;
    assert_eq!(new["channel_data"]["session_event"], "new");
    reply(b.api(), new, "Menu\n1. Yes", true).await;
    assert_eq!(held.await.unwrap(), (200, "CON Menu\n1. Yes".into()));

    // the next request reaches b, which resumes the session a started; answered through a
    let held = ussd(&b.public_url(), &cid, "1");
    let second = inbound(1).await;
    assert_eq!(second["channel_data"]["session_event"], "resume");
    assert_eq!(second["content"], "1");
    reply(a.api(), second, "Done", false).await;
    assert_eq!(held.await.unwrap(), (200, "END Done".into()));

    let logs = a.api().logs(&cid).await;
    assert!(
        logs.iter().any(|e| e["message"]
            .as_str()
            .unwrap()
            .contains("handed to the node holding request")),
        "{logs:?}"
    );
    // the ended session and its requests leave nothing behind but the channel's records
    eventually("the session's keys gone", || async {
        let keys = redis_keys(&prefix).await;
        (!keys
            .iter()
            .any(|k| k.contains(":state:ussd:") || k.contains(":state:held:")))
        .then_some(())
    })
    .await;
    drop((a, b));
    cleanup(&prefix).await;
}
