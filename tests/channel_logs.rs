//! Channel logs after real traffic on a telnet channel: the channel's log, one message's
//! story (`GET /channels/{id}/messages/{mid}/logs`), the JSON-lines files under
//! `logging_path` and their rotation, and no secret in any of them.

mod common;
use common::*;
use serde_json::{Value, json};

fn messages(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn story(api: &Api, cid: &str, mid: &str) -> Vec<Value> {
    api.get(&format!("/channels/{cid}/messages/{mid}/logs"))
        .await
        .ok(200, "logs retrieved")
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the story of `mid` has an entry containing `text`.
async fn story_with(api: &Api, cid: &str, mid: &str, text: &str) -> Vec<Value> {
    eventually(&format!("{text:?} in the story of {mid}"), || async {
        let s = story(api, cid, mid).await;
        messages(&s).iter().any(|m| m.contains(text)).then_some(s)
    })
    .await
}

#[tokio::test]
async fn a_messages_story_and_the_channels_log_after_real_traffic() {
    let server = Server::start(FAST_WEBHOOKS);
    let api = server.api();
    let hooks = receiver().await;
    let (mut body, port) = telnet_body(&format!("{}/mo", hooks.uri()));
    body["mo_url_auth_token"] = json!("mo-secret-4242");
    body["event_auth_token"] = json!("ev-secret-4242");
    let cid = api.create(body).await;
    let mut user = User::connect_seen(port, &hooks).await;
    user.say("hello there").await;
    let (_, _, inbound) = wait_hit(&hooks, "the line at mo_url", |p, b| {
        p == "/mo" && b["content"] == "hello there"
    })
    .await;
    let imid = inbound["message_id"].as_str().unwrap().to_string();
    let sent = api
        .send(
            &cid,
            json!({"reply_to": imid, "content": "hi back",
                   "event_url": format!("{}/ev", hooks.uri())}),
        )
        .await;
    user.wait_line("hi back").await;
    let mid = sent["message_id"].as_str().unwrap().to_string();

    // The reply's story, oldest first: accepted and queued, submitted, and the
    // event's webhook.
    let s = story_with(&api, &cid, &mid, "Delivered").await;
    let text = messages(&s);
    let at = |needle: &str| {
        text.iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in {text:#?}"))
    };
    let accepted = at(&format!("Accepted (reply to {imid}) and queued (realtime)"));
    let submitted = at("Submitted: the provider accepted it");
    let delivered = at("Delivered event");
    assert!(accepted < submitted && submitted < delivered, "{text:#?}");
    assert!(s.iter().all(|e| e["message_id"] == json!(mid)));
    assert!(s.iter().all(|e| e["logger"] == json!(cid)));
    let times: Vec<f64> = s.iter().map(|e| e["timestamp"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    // The inbound message's story: its arrival and its mo_url webhook.
    let s = story_with(&api, &cid, &imid, "Delivered").await;
    assert!(
        messages(&s)[0].starts_with("Inbound from 127.0.0.1:"),
        "{s:#?}"
    );
    assert_eq!(
        messages(&s)
            .iter()
            .filter(|m| m.starts_with("Inbound"))
            .count(),
        1,
        "its arrival is logged once: {s:#?}"
    );

    // The channel's log holds both, newest first, as Junebug's.
    let all = api.logs(&cid).await;
    let times: Vec<f64> = all
        .iter()
        .map(|e| e["timestamp"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(all.iter().any(|e| e["message_id"] == json!(mid)));
    assert!(all.iter().any(|e| e["message_id"] == json!(imid)));
    // An unknown message has an empty story; an unknown channel is Junebug's 404.
    assert_eq!(
        story(&api, &cid, "0123456789abcdef").await,
        Vec::<Value>::new()
    );
    api.get("/channels/nope/messages/x/logs")
        .await
        .error(404, "Not Found", "channel not found");

    // The same entries are in the channel's file, one JSON object a line.
    let file = server.log_dir.join(format!("{cid}.log"));
    let lines = eventually("the log file", || async {
        let text = std::fs::read_to_string(&file).ok()?;
        text.contains(&mid).then_some(text)
    })
    .await;
    for line in lines.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["logger"], json!(cid));
    }
    for secret in ["mo-secret-4242", "ev-secret-4242"] {
        assert!(!lines.contains(secret), "{secret} in the log file");
        assert!(!server.output().contains(secret));
    }
}

#[tokio::test]
async fn log_files_rotate_and_a_story_reaches_into_rotated_files() {
    let server = Server::start(&format!(
        "[log]\nlog_rotate_size = 4000\nmax_log_files = 2\n{FAST_WEBHOOKS}"
    ));
    let api = server.api();
    let hooks = receiver().await;
    let (body, port) = telnet_body(&format!("{}/mo", hooks.uri()));
    let cid = api.create(body).await;
    let user = User::connect_seen(port, &hooks).await;
    let first = api
        .send(&cid, json!({"to": user.address, "content": "first"}))
        .await;
    let first = first["message_id"].as_str().unwrap().to_string();
    story_with(&api, &cid, &first, "Submitted").await;
    // Enough traffic for several rotations.
    for i in 0..40 {
        api.send(
            &cid,
            json!({"to": user.address, "content": format!("m{i}")}),
        )
        .await;
    }
    user.wait_line("m39").await;
    // The latest message's story is found, whichever file holds it.
    let last = api
        .send(&cid, json!({"to": user.address, "content": "last"}))
        .await;
    let last = last["message_id"].as_str().unwrap().to_string();
    let s = story_with(&api, &cid, &last, "Submitted").await;
    assert!(messages(&s)[0].starts_with("Accepted (to "), "{s:#?}");
    // Traffic is over (its last entry is written): the files as rotation left them.
    let current = server.log_dir.join(format!("{cid}.log"));
    let rotated = |n: usize| server.log_dir.join(format!("{cid}.log.{n}"));
    assert!(rotated(2).exists(), "two rotated files");
    assert!(current.exists());
    assert!(!rotated(3).exists(), "max_log_files = 2 keeps two");
    for path in [rotated(1), rotated(2)] {
        let size = std::fs::metadata(&path).unwrap().len();
        // Rotated once past the limit: by at most a batch (an eighth of it) and an entry.
        assert!(
            size > 4000 && size < 5000,
            "{}: {size} bytes",
            path.display()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}

#[tokio::test]
async fn message_entries_can_be_turned_off_but_warnings_stay() {
    let server = Server::start(&format!("[log]\nmessage_entries = false\n{FAST_WEBHOOKS}"));
    let api = server.api();
    let hooks = receiver().await;
    let (body, _port) = telnet_body(&format!("{}/mo", hooks.uri()));
    let cid = api.create(body).await;
    // Nobody is connected as "ghost": the send is rejected, a warning about the message.
    let sent = api
        .send(&cid, json!({"to": "ghost", "content": "anyone?"}))
        .await;
    let mid = sent["message_id"].as_str().unwrap().to_string();
    let s = story_with(&api, &cid, &mid, "Message rejected").await;
    assert_eq!(s.len(), 1, "only the warning: {s:#?}");
    assert_eq!(s[0]["level"], 30);
    // Entries about the channel itself are kept.
    assert!(
        messages(&api.logs(&cid).await)
            .iter()
            .any(|m| m == "Channel created")
    );
}
