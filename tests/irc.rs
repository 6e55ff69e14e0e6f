//! Channel type `irc` against a real IRC server (ngircd, started per test on a free port) and
//! people on it (plain line clients): private messages and channel lines addressed to the bot
//! reach the application, chatter does not; replies go back where the message came from; long
//! text is split into lines that fit; a flood is held to the channel's rate limit; the bot
//! takes another nick when its own is in use, and reconnects (rejoining) after the server
//! restarts; the server password is never shown, and log_protocol tells every line.

mod common;
use common::ngircd::{IrcUser, Ngircd};
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// An `irc` channel on `server` as `nick`, joining `channels`, with `extra` top-level keys and
/// `config` keys; waits until it is connected.
async fn irc_channel(
    api: &Api,
    server: &Ngircd,
    mo: &str,
    nick: &str,
    channels: &[&str],
    extra: Value,
) -> String {
    let mut body = json!({"type": "irc", "mo_url": mo,
        "config": {"network": "127.0.0.1", "port": server.port, "nickname": nick,
                   "channels": channels, "initial_reconnect_delay": 0.2}});
    for (k, v) in extra.as_object().unwrap() {
        if k == "config" {
            for (ck, cv) in v.as_object().unwrap() {
                body["config"][ck] = cv.clone();
            }
        } else {
            body[k] = v.clone();
        }
    }
    let cid = api.create(body).await;
    connected(api, &cid).await;
    cid
}

/// Waits until the channel's `irc` component is up; returns its status message.
async fn connected(api: &Api, cid: &str) -> String {
    eventually("the irc component connected", || async {
        let st = api.channel(cid).await["status"].clone();
        let c = &st["components"]["irc"];
        (c["status"] == "ok" && c["type"] == "connected")
            .then(|| c["message"].as_str().unwrap_or_default().to_string())
    })
    .await
}

/// Waits until `user` sees `nick` join `channel`.
async fn sees_join(user: &IrcUser, nick: &str, channel: &str) {
    let head = format!(":{nick}!");
    let tail = format!(" JOIN :{channel}");
    user.wait(&format!("{nick} joining {channel}"), |l| {
        l.starts_with(&head) && (l.ends_with(&tail) || l.ends_with(&format!(" JOIN {channel}")))
    })
    .await;
}

#[tokio::test]
async fn a_private_message_reaches_the_application_and_its_reply_the_user() {
    let irc = Ngircd::start();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = irc_channel(
        &api,
        &irc,
        &format!("{}/mo", hooks.uri()),
        "hornbot",
        &[],
        json!({}),
    )
    .await;
    let mut alice = IrcUser::connect(irc.port, "alice").await;
    alice.privmsg("hornbot", "hello there").await;
    let (path, _, inbound) = wait_hit(&hooks, "the private message", |_, b| {
        b["content"] == "hello there"
    })
    .await;
    assert_eq!(path, "/mo");
    assert_eq!(inbound["from"], "alice");
    assert_eq!(inbound["to"], "hornbot");
    assert_eq!(inbound["group"], Value::Null);
    assert_eq!(inbound["channel_id"], json!(cid));
    let irc_data = &inbound["channel_data"]["irc"];
    assert_eq!(irc_data["irc_command"], "PRIVMSG");
    assert_eq!(irc_data["addressed_to_transport"], true);
    assert_eq!(irc_data["transport_nickname"], "hornbot");

    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &cid,
            json!({"reply_to": inbound["message_id"], "content": "hi alice", "event_url": ev}),
        )
        .await;
    assert_eq!(sent["to"], "alice");
    alice.wait_message("hornbot", "alice", "hi alice").await;
    let id = sent["message_id"].clone();
    let (_, _, event) = wait_hit(&hooks, "submitted", |p, b| {
        p == "/ev" && b["message_id"] == id
    })
    .await;
    assert_eq!(event["event_type"], "submitted");

    // A new message to a nick.
    api.send(&cid, json!({"to": "alice", "content": "a new thread"}))
        .await;
    alice.wait_message("hornbot", "alice", "a new thread").await;

    // IRC acks nothing, but a server refuses a line to a nick nobody has (401): that message
    // gets delivery_failed after its submitted event; one to alice beside it does not.
    let ghost = api
        .send(
            &cid,
            json!({"to": "ghost", "content": "anyone?", "event_url": ev}),
        )
        .await;
    let beside = api
        .send(
            &cid,
            json!({"to": "alice", "content": "beside", "event_url": ev}),
        )
        .await;
    let (ghost_id, beside_id) = (ghost["message_id"].clone(), beside["message_id"].clone());
    wait_hit(&hooks, "delivery_failed for ghost", |p, b| {
        p == "/ev" && b["message_id"] == ghost_id && b["event_type"] == "delivery_failed"
    })
    .await;
    alice.wait_message("hornbot", "alice", "beside").await;
    wait_hit(&hooks, "submitted beside", |p, b| {
        p == "/ev" && b["message_id"] == beside_id && b["event_type"] == "submitted"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !hits(&hooks)
            .await
            .iter()
            .any(|(_, _, b)| b["message_id"] == beside_id && b["event_type"] == "delivery_failed"),
        "a delivered message reported failed"
    );
    let story = api
        .get(&format!(
            "/channels/{cid}/messages/{}/logs",
            ghost_id.as_str().unwrap()
        ))
        .await
        .text;
    assert!(story.contains("Not delivered to ghost: 401"), "{story}");

    // A CTCP ACTION (/me) in private is inbound too, marked as such.
    alice.privmsg("hornbot", "\x01ACTION waves\x01").await;
    let (_, _, action) = wait_hit(&hooks, "the action", |_, b| b["content"] == "waves").await;
    assert_eq!(action["channel_data"]["irc"]["irc_command"], "ACTION");

    // A CTCP VERSION is answered by the bot itself, not passed on.
    alice.privmsg("hornbot", "\x01VERSION\x01").await;
    alice
        .wait("the VERSION answer", |l| {
            l.starts_with(":hornbot!") && l.contains(" NOTICE alice :\x01VERSION hornbill ")
        })
        .await;
    assert!(
        !hits(&hooks)
            .await
            .iter()
            .any(|(_, _, b)| b["content"].as_str().is_some_and(|c| c.contains("VERSION"))),
        "a CTCP request reached the application"
    );
}

#[tokio::test]
async fn channel_lines_addressed_to_the_bot_are_inbound_and_chatter_is_not() {
    let irc = Ngircd::start();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let mut alice = IrcUser::connect(irc.port, "alice").await;
    alice.join("#hb").await;
    let cid = irc_channel(&api, &irc, &hooks.uri(), "hornbot", &["#hb"], json!({})).await;
    sees_join(&alice, "hornbot", "#hb").await;

    alice.privmsg("#hb", "just chatting about hornbot").await;
    alice.privmsg("#hb", "hornbot: what time is it?").await;
    alice.privmsg("#hb", "HornBot, and the date?").await;
    let (_, _, first) = wait_hit(&hooks, "the addressed line", |_, b| {
        b["content"] == "what time is it?"
    })
    .await;
    assert_eq!(first["from"], "alice");
    assert_eq!(first["to"], "hornbot");
    assert_eq!(first["group"], "#hb");
    assert_eq!(first["channel_data"]["irc"]["irc_channel"], "#hb");
    wait_hit(&hooks, "the second addressed line", |_, b| {
        b["content"] == "and the date?"
    })
    .await;
    // Lines arrive in order: the chatter before them was not passed on.
    let all = hits(&hooks).await;
    assert_eq!(all.len(), 2, "{all:#?}");

    // The reply goes to the channel, naming whom it answers.
    api.send(
        &cid,
        json!({"reply_to": first["message_id"], "content": "half past"}),
    )
    .await;
    alice
        .wait_message("hornbot", "#hb", "alice: half past")
        .await;
    // A new message to the channel itself.
    api.send(&cid, json!({"to": "#hb", "content": "announcement"}))
        .await;
    alice.wait_message("hornbot", "#hb", "announcement").await;
}

#[tokio::test]
async fn the_bot_reconnects_after_the_server_restarts_and_holds_what_it_cannot_send() {
    let mut irc = Ngircd::start();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = irc_channel(&api, &irc, &hooks.uri(), "hornbot", &["#hb"], json!({})).await;

    irc.kill();
    eventually("the irc component down", || async {
        let st = api.channel(&cid).await["status"].clone();
        (st["components"]["irc"]["status"] == "down").then_some(())
    })
    .await;
    // A message sent while the server is away waits: no event until the bot is back.
    let ev = format!("{}/ev", hooks.uri());
    let held = api
        .send(
            &cid,
            json!({"to": "#hb", "content": "sent while away", "event_url": ev}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !hits(&hooks).await.iter().any(|(p, _, _)| p == "/ev"),
        "an event for a message that could not be sent"
    );

    irc.restart();
    let message = connected(&api, &cid).await;
    assert!(message.contains("#hb"), "{message}");
    let id = held["message_id"].clone();
    let (_, _, event) = wait_hit(&hooks, "the held message's event", |p, b| {
        p == "/ev" && b["message_id"] == id
    })
    .await;
    assert_eq!(event["event_type"], "submitted");

    // Messages flow again both ways, and the channel was joined again.
    let mut alice = IrcUser::connect(irc.port, "alice").await;
    alice.join("#hb").await;
    alice
        .wait("hornbot in #hb's names", |l| {
            l.contains(" 353 alice ") && l.contains("hornbot")
        })
        .await;
    alice.privmsg("#hb", "hornbot: still there?").await;
    let (_, _, inbound) = wait_hit(&hooks, "after the restart", |_, b| {
        b["content"] == "still there?"
    })
    .await;
    api.send(
        &cid,
        json!({"reply_to": inbound["message_id"], "content": "yes"}),
    )
    .await;
    alice.wait_message("hornbot", "#hb", "alice: yes").await;
    let logs = api.logs(&cid).await;
    assert!(
        logs.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("reconnecting in")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_nick_in_use_makes_the_bot_take_another() {
    let irc = Ngircd::start();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let _squatter = IrcUser::connect(irc.port, "hornbot").await;
    let mut alice = IrcUser::connect(irc.port, "alice").await;
    alice.join("#hb").await;
    let cid = irc_channel(&api, &irc, &hooks.uri(), "hornbot", &["#hb"], json!({})).await;
    let message = connected(&api, &cid).await;
    assert!(message.contains("as hornbot_"), "{message}");
    let logs = api.logs(&cid).await;
    assert!(
        logs.iter()
            .any(|e| e["message"] == "Nickname hornbot is in use; trying hornbot_"),
        "{logs:#?}"
    );
    sees_join(&alice, "hornbot_", "#hb").await;
    alice.privmsg("#hb", "hornbot_: you there?").await;
    let (_, _, inbound) = wait_hit(&hooks, "addressed to the new nick", |_, b| {
        b["content"] == "you there?"
    })
    .await;
    assert_eq!(inbound["to"], "hornbot_");
    api.send(
        &cid,
        json!({"reply_to": inbound["message_id"], "content": "here"}),
    )
    .await;
    alice.wait_message("hornbot_", "#hb", "alice: here").await;
}

#[tokio::test]
async fn a_long_reply_is_split_into_lines_that_fit() {
    let irc = Ngircd::start();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let mut alice = IrcUser::connect(irc.port, "alice").await;
    alice.join("#hb").await;
    let cid = irc_channel(&api, &irc, &hooks.uri(), "hornbot", &["#hb"], json!({})).await;
    sees_join(&alice, "hornbot", "#hb").await;
    alice.privmsg("#hb", "hornbot: tell me a story").await;
    let (_, _, inbound) = wait_hit(&hooks, "the request", |_, b| {
        b["content"] == "tell me a story"
    })
    .await;
    let story: Vec<String> = (0..250).map(|i| format!("wörd{i}")).collect();
    let story = story.join(" ");
    assert!(story.len() > 1500);
    let ev = format!("{}/ev", hooks.uri());
    let sent = api
        .send(
            &cid,
            json!({"reply_to": inbound["message_id"], "content": story, "event_url": ev}),
        )
        .await;
    let last_word = "wörd249";
    alice
        .wait("the story's end", |l| l.ends_with(last_word))
        .await;
    let lines: Vec<String> = alice
        .received()
        .into_iter()
        .filter(|l| l.contains(" PRIVMSG #hb :alice: "))
        .collect();
    assert!(lines.len() >= 4, "{lines:#?}");
    for line in &lines {
        // As the server relayed it, prefix and CR LF included.
        assert!(line.len() + 2 <= 512, "{} bytes: {line}", line.len() + 2);
    }
    let pieces: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once(" PRIVMSG #hb :alice: ").unwrap().1)
        .collect();
    assert_eq!(pieces.join(" "), story, "words cut or lost");
    let id = sent["message_id"].clone();
    wait_hit(&hooks, "one submitted event", |p, b| {
        p == "/ev" && b["message_id"] == id && b["event_type"] == "submitted"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = hits(&hooks)
        .await
        .into_iter()
        .filter(|(p, _, b)| p == "/ev" && b["message_id"] == id)
        .count();
    assert_eq!(events, 1);
}

#[tokio::test]
async fn a_flood_of_sends_is_held_to_the_rate_limit() {
    let irc = Ngircd::start();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = irc_channel(
        &api,
        &irc,
        &hooks.uri(),
        "hornbot",
        &[],
        json!({"rate_limit_count": 5, "rate_limit_window": 1}),
    )
    .await;
    let alice = IrcUser::connect(irc.port, "alice").await;
    for i in 0..15 {
        api.send(
            &cid,
            json!({"to": "alice", "content": format!("flood {i}")}),
        )
        .await;
    }
    alice.wait_message("hornbot", "alice", "flood 14").await;
    let got = alice.messages("hornbot", "alice");
    let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    let want: Vec<String> = (0..15).map(|i| format!("flood {i}")).collect();
    assert_eq!(texts, want, "all of them, in order");
    // A bucket of 5 refilled at 5 a second: message k (from 0) cannot go before (k - 4) / 5 s
    // after the first, whenever the sends came.
    for (k, (at, _)) in got.iter().enumerate().skip(5) {
        let after = at.duration_since(got[0].0).as_secs_f64();
        let earliest = (k as f64 - 4.0) / 5.0;
        assert!(
            after >= earliest - 0.1,
            "message {k} arrived {after:.2} s after the first, before {earliest:.2} s"
        );
    }
    let took = got[14].0.duration_since(got[0].0).as_secs_f64();
    assert!(
        took >= 1.8,
        "15 messages at 5 per second arrived in {took:.2} s"
    );
}

#[tokio::test]
async fn the_password_is_used_but_never_shown() {
    let secret = "s3cr3t-irc-pw";
    let irc = Ngircd::with_password(Some(secret));
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let cid = irc_channel(
        &api,
        &irc,
        &hooks.uri(),
        "hornbot",
        &["#hb"],
        json!({"log_protocol": true, "config": {"password": secret}}),
    )
    .await;
    // Connected: the server took the password.
    let mut alice = IrcUser::connect_with_password(irc.port, "alice", secret).await;
    alice.privmsg("hornbot", "psst").await;
    wait_hit(&hooks, "inbound", |_, b| b["content"] == "psst").await;

    let shown = api.channel(&cid).await;
    assert_eq!(shown["config"]["password"], "***", "{shown}");
    let list = api.get("/channels/").await.text;
    assert!(!list.contains(secret), "{list}");
    let log = api.get(&format!("/channels/{cid}/logs?n=1000")).await.text;
    assert!(log.contains(">> PASS ***"), "{log}");
    assert!(!log.contains(secret), "{log}");

    // A wrong password: the channel says so, without either password.
    let wrong = "wr0ng-irc-pw";
    let bad = api
        .create(
            json!({"type": "irc", "mo_url": hooks.uri(), "log_protocol": true,
            "config": {"network": "127.0.0.1", "port": irc.port, "nickname": "badbot",
                       "password": wrong, "initial_reconnect_delay": 0.2}}),
        )
        .await;
    let status = eventually("the refusal in the status", || async {
        let st = api.channel(&bad).await["status"].clone();
        let c = st["components"]["irc"].clone();
        (c["type"] == "connection_lost").then_some(c)
    })
    .await;
    let text = status.to_string();
    assert!(!text.contains(wrong) && !text.contains(secret), "{text}");
    let log = api.get(&format!("/channels/{bad}/logs?n=1000")).await.text;
    assert!(!log.contains(wrong), "{log}");
    let output = server.output();
    assert!(!output.contains(secret) && !output.contains(wrong));
    // Nor in the channel log files on disk.
    let file = std::fs::read_to_string(server.log_dir.join(format!("{cid}.log"))).unwrap();
    assert!(file.contains("PASS ***"), "{file}");
    assert!(!file.contains(secret), "{file}");
}

#[tokio::test]
async fn log_protocol_tells_every_line_and_which_message_it_carries() {
    let irc = Ngircd::start();
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let mut alice = IrcUser::connect(irc.port, "alice").await;
    alice.join("#hb").await;
    let cid = irc_channel(
        &api,
        &irc,
        &hooks.uri(),
        "hornbot",
        &["#hb"],
        json!({"log_protocol": true}),
    )
    .await;
    sees_join(&alice, "hornbot", "#hb").await;
    let log = api.get(&format!("/channels/{cid}/logs?n=1000")).await.text;
    for line in [
        ">> NICK hornbot",
        ">> USER hornbot 0 * :hornbill",
        ">> JOIN #hb",
        " 001 hornbot ",
    ] {
        assert!(log.contains(line), "{line:?} not in {log}");
    }
    assert!(!log.contains(">> PASS"), "no password, no PASS: {log}");

    alice.privmsg("#hb", "hornbot: ping me").await;
    alice.privmsg("#hb", "chatter").await;
    let (_, _, inbound) = wait_hit(&hooks, "inbound", |_, b| b["content"] == "ping me").await;
    let mid = inbound["message_id"].as_str().unwrap().to_string();
    let story = |id: String| {
        let api = api.clone();
        let cid = cid.clone();
        async move {
            api.get(&format!("/channels/{cid}/messages/{id}/logs"))
                .await
                .ok(200, "logs retrieved")
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<String>>()
        }
    };
    let lines = story(mid.clone()).await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<< :alice!") && l.ends_with("PRIVMSG #hb :hornbot: ping me")),
        "{lines:#?}"
    );
    // Chatter is in the channel's log, not passed on.
    let log = eventually("the chatter in the log", || async {
        let text = api.get(&format!("/channels/{cid}/logs?n=1000")).await.text;
        text.contains("PRIVMSG #hb :chatter").then_some(text)
    })
    .await;
    assert!(log.contains("<< :alice!"), "{log}");

    let sent = api
        .send(&cid, json!({"reply_to": mid, "content": "pong"}))
        .await;
    alice.wait_message("hornbot", "#hb", "alice: pong").await;
    let out = sent["message_id"].as_str().unwrap().to_string();
    let lines = eventually("the reply's line in its story", || {
        let story = story(out.clone());
        async move {
            let lines = story.await;
            lines
                .iter()
                .any(|l| l == ">> PRIVMSG #hb :alice: pong")
                .then_some(lines)
        }
    })
    .await;
    assert!(!lines.is_empty());
}

#[tokio::test]
async fn bad_configs_are_refused_with_the_key_named() {
    let server = Server::start("");
    let api = server.api();
    for (config, key) in [
        (json!({"nickname": "hornbot"}), "network"),
        (
            json!({"network": "127.0.0.1", "nickname": "9lives"}),
            "nickname",
        ),
        (
            json!({"network": "127.0.0.1", "nickname": "hb", "channels": ["nohash"]}),
            "channels",
        ),
        (
            json!({"network": "127.0.0.1", "nickname": "hb", "password": "s3cret\r\nQUIT"}),
            "password",
        ),
    ] {
        let reply = api
            .post(
                "/channels/",
                json!({"type": "irc", "config": config, "mo_url": "http://127.0.0.1:9"}),
            )
            .await;
        assert_eq!(reply.status, 400, "{config}: {}", reply.text);
        assert!(reply.text.contains(key), "{key}: {}", reply.text);
        assert!(!reply.text.contains("s3cret"), "{}", reply.text);
    }
    // Attachments cannot travel on IRC.
    let cid = api
        .create(json!({"type": "irc", "mo_url": "http://127.0.0.1:9",
            "config": {"network": "127.0.0.1", "port": 9, "nickname": "hb"}}))
        .await;
    let reply = api
        .post(
            &format!("/channels/{cid}/messages/"),
            json!({"to": "alice", "content": "look",
                   "attachments": [{"url": "https://example.com/a.jpg", "content_type": "image/jpeg"}]}),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("attachments"), "{}", reply.text);
}

#[tokio::test]
async fn tls_connects_to_a_trusted_server_and_refuses_an_untrusted_one() {
    let irc = Ngircd::with_tls();
    let (tls_port, ca) = (irc.tls_port.unwrap(), irc.ca.clone().unwrap());
    let hooks = receiver().await;
    // The test CA is trusted through SSL_CERT_FILE, as an operator's own CA would be.
    let server = Server::start_with_env("", &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    let api = server.api();
    let cid = api
        .create(json!({"type": "irc", "mo_url": hooks.uri(),
            "config": {"network": "localhost", "port": tls_port, "tls": true,
                       "nickname": "tlsbot", "initial_reconnect_delay": 0.2}}))
        .await;
    connected(&api, &cid).await;
    let mut alice = IrcUser::connect(irc.port, "alice").await;
    alice.privmsg("tlsbot", "over tls?").await;
    let (_, _, inbound) = wait_hit(&hooks, "inbound", |_, b| b["content"] == "over tls?").await;
    api.send(
        &cid,
        json!({"reply_to": inbound["message_id"], "content": "yes"}),
    )
    .await;
    alice.wait_message("tlsbot", "alice", "yes").await;

    // Without the CA the certificate is not trusted: the channel says why and stays down.
    let plain = Server::start("");
    let api = plain.api();
    let cid = api
        .create(json!({"type": "irc", "mo_url": hooks.uri(),
            "config": {"network": "localhost", "port": tls_port, "tls": true,
                       "nickname": "nobot", "initial_reconnect_delay": 0.2}}))
        .await;
    let status = eventually("the TLS refusal", || async {
        let st = api.channel(&cid).await["status"].clone();
        let c = st["components"]["irc"].clone();
        (c["type"] == "connection_lost").then_some(c)
    })
    .await;
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TLS"),
        "{status}"
    );
}
