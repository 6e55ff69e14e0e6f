//! The client commands (`channels`, `send`, `logs tail`, `cluster`) against a real server with real
//! telnet traffic: what they print, their errors, credentials, and `logs tail --follow`.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The client's environment variables, removed so that the runner's cannot leak in.
const CLIENT_VARS: &[&str] = &[
    "HORNBILL_URL",
    "HORNBILL_TOKEN",
    "HORNBILL_USER",
    "HORNBILL_PASSWORD",
];

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    for v in CLIENT_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `hornbill <args>` off the test's runtime: (exit code, stdout, stderr).
async fn hb(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = command(args, env);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run hornbill"))
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hornbill --url <server> <args>`, which must succeed: its stdout.
async fn ok(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["--url", &server.url];
    all.extend_from_slice(args);
    let (code, out, err) = hb(&all, &[]).await;
    assert_eq!(code, 0, "hornbill {args:?} failed:\n{out}\n{err}");
    out
}

/// `hornbill --url <server> <args>`, which must fail: its stderr.
async fn fails(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["--url", &server.url];
    all.extend_from_slice(args);
    let (code, out, err) = hb(&all, &[]).await;
    assert_eq!(code, 1, "hornbill {args:?} did not fail:\n{out}\n{err}");
    err
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_send_and_logs_against_a_running_server() {
    let mock = receiver().await;
    let server = Server::start("");
    let dir = TempDir::new();

    // A channel from a TOML file, another from a JSON file.
    let port = free_port();
    let toml = dir.0.join("channel.toml");
    std::fs::write(
        &toml,
        format!(
            "type = \"telnet\"\nlabel = \"from-cli\"\nmo_url = \"{}/mo\"\n[config]\ntwisted_endpoint = \"tcp:{port}\"\nto_addr = \"*120#\"\n",
            mock.uri()
        ),
    )
    .unwrap();
    let cid = ok(
        &server,
        &["channels", "create", "--file", toml.to_str().unwrap()],
    )
    .await;
    let cid = cid.trim().to_string();
    assert_eq!(cid.len(), 36, "{cid:?}");
    let (body, _) = telnet_body(&format!("{}/mo", mock.uri()));
    let json_file = dir.0.join("channel.json");
    std::fs::write(&json_file, body.to_string()).unwrap();
    let created = ok(
        &server,
        &[
            "channels",
            "create",
            "--file",
            json_file.to_str().unwrap(),
            "--json",
        ],
    )
    .await;
    let created: Value = serde_json::from_str(&created).unwrap();
    let cid2 = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["type"], "telnet");

    let list = ok(&server, &["channels", "list"]).await;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("QUEUE"),
        "{list}"
    );
    let row = lines.iter().find(|l| l.starts_with(&cid)).expect(&list);
    assert!(row.contains("telnet") && row.contains("from-cli"), "{row}");
    assert!(list.contains(&cid2), "{list}");
    let listed: Value =
        serde_json::from_str(&ok(&server, &["channels", "list", "--json"]).await).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&cid.as_str()) && ids.contains(&cid2.as_str()));
    let shown: Value =
        serde_json::from_str(&ok(&server, &["channels", "show", &cid]).await).unwrap();
    assert_eq!(shown["id"], json!(cid));
    assert_eq!(shown["label"], "from-cli");
    assert_eq!(shown["config"]["to_addr"], "*120#");

    // Traffic: a user says hello, the CLI replies and sends a new message.
    let mut user = User::connect(port).await;
    user.say("hello").await;
    let (_, _, inbound) = wait_hit(&mock, "the line", |_, b| b["content"] == "hello").await;
    let mid = inbound["message_id"].as_str().unwrap().to_string();
    let sent = ok(
        &server,
        &[
            "send",
            "--channel",
            &cid,
            "--reply-to",
            &mid,
            "--content",
            "hi there",
        ],
    )
    .await;
    let sent_id = sent.trim().to_string();
    assert_eq!(sent_id.len(), 32, "{sent:?}");
    assert!(sent_id.chars().all(|c| c.is_ascii_hexdigit()), "{sent:?}");
    user.wait_line("hi there").await;
    let waited = ok(
        &server,
        &[
            "send",
            "--channel",
            &cid,
            "--to",
            &user.address,
            "--content",
            "second",
            "--priority",
            "realtime",
            "--wait",
        ],
    )
    .await;
    let lines: Vec<&str> = waited.lines().collect();
    assert_eq!(lines.len(), 2, "{waited}");
    assert_eq!(lines[0].len(), 32, "{waited}");
    assert!(lines[1].starts_with("submitted 20"), "{waited}");
    user.wait_line("second").await;
    let object: Value = serde_json::from_str(
        &ok(
            &server,
            &[
                "send",
                "--channel",
                &cid,
                "--to",
                &user.address,
                "--content",
                "third",
                "--json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(object["content"], "third");
    assert_eq!(object["to"], json!(user.address));
    user.wait_line("third").await;
    let sent_third = object["message_id"].as_str().unwrap().to_string();

    // The log, readable and as JSON lines, oldest first.
    let submitted = |entries: &[Value], id: &str| {
        entries.iter().any(|e| {
            e["message_id"] == json!(id)
                && e["message"].as_str().unwrap_or("").starts_with("Submitted")
        })
    };
    let entries = eventually("the third message's submission in the log", || async {
        let out = ok(
            &server,
            &["logs", "tail", "--channel", &cid, "-n", "100", "--json"],
        )
        .await;
        let entries = json_lines(&out);
        submitted(&entries, &sent_third).then_some(entries)
    })
    .await;
    for e in &entries {
        assert_eq!(e["logger"], json!(cid), "{e}");
        assert!([20, 30, 40].contains(&e["level"].as_i64().unwrap()), "{e}");
        assert!(e["timestamp"].is_f64(), "{e}");
    }
    let times: Vec<f64> = entries
        .iter()
        .map(|e| e["timestamp"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(entries.iter().any(|e| e["message_id"] == json!(mid)));
    assert!(
        entries.iter().any(|e| e["message"] == "Channel created"),
        "{entries:?}"
    );

    let pretty = ok(&server, &["logs", "tail", "--channel", &cid, "-n", "100"]).await;
    assert!(pretty.lines().count() >= entries.len(), "{pretty}");
    let line = pretty
        .lines()
        .find(|l| l.contains(&format!("[{mid}]")))
        .expect(&pretty);
    assert!(line.contains(" INFO ") && line.contains(&cid), "{line}");
    let last = ok(
        &server,
        &["logs", "tail", "--channel", &cid, "-n", "1", "--json"],
    )
    .await;
    let last = json_lines(&last);
    assert_eq!(last.len(), 1);
    assert!(last[0]["timestamp"].as_f64() >= entries[entries.len() - 1]["timestamp"].as_f64());

    // Every channel's log, merged.
    let all = json_lines(&ok(&server, &["logs", "tail", "-n", "100", "--json"]).await);
    assert!(all.iter().any(|e| e["logger"] == json!(cid)));
    assert!(all.iter().any(|e| e["logger"] == json!(cid2)));

    // One message's entries: the lead's GET /channels/{id}/messages/{mid}/logs.
    let mut args = vec!["--url", &server.url, "logs", "tail", "--channel", &cid];
    args.extend(["--message", &sent_third, "--json"]);
    let (code, out, err) = hb(&args, &[]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let own = json_lines(&out);
    assert!(!own.is_empty(), "no entries for {sent_third}");
    assert!(
        own.iter().all(|e| e["message_id"] == json!(sent_third)),
        "{out}"
    );
    assert!(submitted(&own, &sent_third), "{out}");

    // Delete.
    let gone = ok(&server, &["channels", "delete", &cid2]).await;
    assert!(gone.contains("deleted"), "{gone}");
    let list = ok(&server, &["channels", "list"]).await;
    assert!(!list.contains(&cid2), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_the_servers_words_on_stderr() {
    let server = Server::start("");
    let err = fails(&server, &["channels", "show", "no-such-channel"]).await;
    assert!(
        err.contains(
            "GET /channels/no-such-channel: the server answered 404 Not Found: channel not found"
        ),
        "{err}"
    );
    assert!(err.contains("- ChannelNotFound"), "{err}");

    let dir = TempDir::new();
    let file = dir.0.join("bad.json");
    std::fs::write(&file, r#"{"config": {}, "rate_limit_count": -3}"#).unwrap();
    let err = fails(
        &server,
        &["channels", "create", "--file", file.to_str().unwrap()],
    )
    .await;
    assert!(err.contains("400 Bad Request: api usage error"), "{err}");
    assert!(err.contains("'type' is a required property"), "{err}");
    assert!(err.contains("-3 is less than the minimum of 0"), "{err}");
    std::fs::write(&file, "not json = [").unwrap();
    let err = fails(
        &server,
        &["channels", "create", "--file", file.to_str().unwrap()],
    )
    .await;
    assert!(err.contains("is not JSON"), "{err}");

    let err = fails(
        &server,
        &["send", "--channel", "nope", "--to", "x", "--content", "y"],
    )
    .await;
    assert!(err.contains("channel not found"), "{err}");
    let err = fails(&server, &["logs", "tail", "--channel", "nope"]).await;
    assert!(err.contains("404 Not Found: channel not found"), "{err}");

    // Nobody listening.
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, out, err) = hb(&["--url", &url, "channels", "list"], &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&format!("cannot reach the server at {url}")),
        "{err}"
    );
    assert!(err.contains("Is it running?"), "{err}");
    // HORNBILL_URL is the default address.
    let (code, _, err) = hb(&["channels", "list"], &[("HORNBILL_URL", &url)]).await;
    assert_eq!(code, 1);
    assert!(err.contains(&url), "{err}");
    let (code, out, _) = hb(&["channels", "list"], &[("HORNBILL_URL", &server.url)]).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "No channels.");

    // Usage: clap's own errors (exit 2).
    let (code, _, err) = hb(&["send", "--channel", "c", "--content", "x"], &[]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--to") && err.contains("--reply-to"), "{err}");
    let (code, _, err) = hb(&["logs", "tail", "--message", "m"], &[]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--channel"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_api_needs_the_token_which_is_never_printed() {
    let token = "s3cret-api-token";
    let server = Server::start(&format!(
        "[server]\nport = 0\nauth_token = \"{token}\"\nusername = \"ops\"\npassword = \"pa55word\"\n"
    ));
    let url = server.url.as_str();
    let no_secret = |out: &str, err: &str| {
        for secret in [token, "pa55word", "b3BzOnBhNTV3b3Jk"] {
            assert!(
                !out.contains(secret) && !err.contains(secret),
                "{out}\n{err}"
            );
        }
    };
    let (code, out, err) = hb(&["--url", url, "channels", "list"], &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("401 Unauthorized: unauthorized"), "{err}");
    assert!(
        err.contains("The API needs credentials: pass --token"),
        "{err}"
    );

    let (code, out, err) = hb(&["--url", url, "--token", token, "channels", "list"], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "No channels.");
    no_secret(&out, &err);
    let (code, out, err) = hb(
        &["--url", url, "channels", "list"],
        &[("HORNBILL_TOKEN", token)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    no_secret(&out, &err);
    let (code, out, err) = hb(
        &["channels", "list", "--user", "ops", "--url", url],
        &[("HORNBILL_PASSWORD", "pa55word")],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    no_secret(&out, &err);

    // A wrong token: refused, and not echoed either.
    let (code, out, err) = hb(
        &["--url", url, "--token", "wrong-tok-123", "logs", "tail"],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("The credentials given were refused"), "{err}");
    assert!(!err.contains("wrong-tok-123") && !out.contains("wrong-tok-123"));

    // With traffic and a failure, still nothing secret.
    let (body, port) = telnet_body("http://127.0.0.1:9/mo");
    let dir = TempDir::new();
    let file = dir.0.join("c.json");
    std::fs::write(&file, body.to_string()).unwrap();
    let (code, out, err) = hb(
        &[
            "--url",
            url,
            "channels",
            "create",
            "--file",
            file.to_str().unwrap(),
        ],
        &[("HORNBILL_TOKEN", token)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let cid = out.trim().to_string();
    let mut user = User::connect(port).await;
    user.say("ping").await;
    for args in [
        vec!["logs", "tail", "--channel", &cid],
        vec!["channels", "show", &cid],
        vec![
            "send",
            "--channel",
            &cid,
            "--to",
            "nobody",
            "--content",
            "x",
        ],
        vec!["channels", "show", "missing"],
    ] {
        let mut all = vec!["--url", url];
        all.extend(args);
        let (_, out, err) = hb(&all, &[("HORNBILL_TOKEN", token)]).await;
        no_secret(&out, &err);
    }
    // --help does not show the environment's values.
    let (_, out, err) = hb(&["--help"], &[("HORNBILL_TOKEN", token)]).await;
    no_secret(&out, &err);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_follow_prints_new_entries_once() {
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    let cid = api.create(body).await;

    let mut child = command(
        &[
            "--url",
            &server.url,
            "logs",
            "tail",
            "--channel",
            &cid,
            "--follow",
            "--interval",
            "0.2",
            "--json",
        ],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(serde_json::from_str(&line).unwrap_or(json!({"unparsed": line})));
        }
    });
    let mut got: Vec<Value> = Vec::new();
    async fn wait_for(
        what: &str,
        pred: impl Fn(&Value) -> bool,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
        got: &mut Vec<Value>,
    ) {
        let end = tokio::time::Instant::now() + WAIT;
        while !got.iter().any(&pred) {
            match tokio::time::timeout_at(end, rx.recv()).await {
                Ok(Some(v)) => got.push(v),
                _ => panic!("no {what} in {got:?}"),
            }
        }
    }
    wait_for(
        "Channel created",
        |e| e["message"] == "Channel created",
        &mut rx,
        &mut got,
    )
    .await;

    // Traffic after the follow started.
    let mut user = User::connect(port).await;
    user.say("after the start").await;
    let (_, _, inbound) =
        wait_hit(&mock, "the line", |_, b| b["content"] == "after the start").await;
    let mid = inbound["message_id"].as_str().unwrap().to_string();
    wait_for(
        "the new inbound",
        |e| e["message_id"] == json!(mid),
        &mut rx,
        &mut got,
    )
    .await;
    // A few more polls, then: nothing was printed twice, and in order.
    tokio::time::sleep(Duration::from_millis(700)).await;
    while let Ok(v) = rx.try_recv() {
        got.push(v);
    }
    let mut keys: Vec<String> = got.iter().map(|e| e.to_string()).collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "printed twice: {got:?}");
    let times: Vec<f64> = got.iter().filter_map(|e| e["timestamp"].as_f64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(got.iter().all(|e| e["logger"] == json!(cid)), "{got:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn help_names_every_command() {
    let (code, out, _) = run_cli(&["--help"], &[]);
    assert_eq!(code, 0);
    for word in [
        "serve",
        "check-config",
        "logs",
        "channels",
        "send",
        "--url",
        "--token",
        "HORNBILL_TOKEN",
        "Examples:",
    ] {
        assert!(out.contains(word), "{word} missing from --help:\n{out}");
    }
    for (args, words) in [
        (
            &["logs", "tail", "--help"][..],
            &[
                "--follow",
                "--json",
                "--message",
                "--router",
                "-n",
                "oldest first",
            ][..],
        ),
        (
            &["channels", "--help"],
            &["list", "show", "create", "delete", "restart"],
        ),
        (&["channels", "create", "--help"], &["--file", "TOML"]),
        (
            &["send", "--help"],
            &[
                "--to",
                "--reply-to",
                "--content",
                "--priority",
                "realtime",
                "--event-url",
                "--wait",
                "Examples:",
            ],
        ),
    ] {
        let (code, out, err) = run_cli(args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        for word in words {
            assert!(out.contains(word), "{word} missing from {args:?}:\n{out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_reads_a_routers_log() {
    let server = Server::start("");
    let api = server.api();
    let hooks = receiver().await;
    let port = free_port();
    let cid = api
        .create(json!({"type": "telnet",
                       "config": {"twisted_endpoint": format!("tcp:{port}"), "to_addr": "*120#"}}))
        .await;
    let rid = api
        .post(
            "/routers/",
            json!({"type": "from_address", "config": {"channel": cid}}),
        )
        .await
        .ok(201, "router created")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let did = api
        .post(
            &format!("/routers/{rid}/destinations/"),
            json!({"config": {"default": true}, "mo_url": format!("{}/d", hooks.uri())}),
        )
        .await
        .ok(201, "destination created")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut user = User::connect(port).await;
    user.say("routed").await;
    wait_hit(&hooks, "the routed line", |_, b| b["content"] == "routed").await;
    let routed = format!("Routed to {did}");
    let entries = eventually("the routing in the router's log", || async {
        let out = ok(&server, &["logs", "tail", "--router", &rid, "--json"]).await;
        let entries = json_lines(&out);
        entries
            .iter()
            .any(|e| e["message"] == json!(routed))
            .then_some(entries)
    })
    .await;
    assert!(
        entries.iter().all(|e| e["logger"] == json!(rid)),
        "{entries:?}"
    );
    let pretty = ok(&server, &["logs", "tail", "--router", &rid]).await;
    assert!(pretty.contains(&routed), "{pretty}");
    let err = fails(&server, &["logs", "tail", "--router", "nope"]).await;
    assert!(err.contains("router not found"), "{err}");
}

/// A server without the per-message route (Junebug, an older hornbill) and one behind a proxy
/// that answers with its own page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_server_and_a_proxys_page_are_told_apart() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let old = MockServer::start().await;
    let text = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
    Mock::given(method("GET"))
        .and(path("/channels/c1/messages/m1/logs"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": 404, "code": "Not Found", "description": text,
            "result": {"errors": [{"code": 404, "type": "Not Found", "message": format!("404 Not Found: {text}")}]}
        })))
        .mount(&old)
        .await;
    Mock::given(method("GET"))
        .and(path("/channels/"))
        .respond_with(
            ResponseTemplate::new(502).set_body_string("<html><body>Bad gateway</body></html>"),
        )
        .mount(&old)
        .await;
    let url = old.uri();
    let (code, _, err) = hb(
        &[
            "--url",
            &url,
            "logs",
            "tail",
            "--channel",
            "c1",
            "--message",
            "m1",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("has no per-message logs"), "{err}");
    assert!(err.contains("older than this client"), "{err}");
    let (code, _, err) = hb(&["--url", &url, "channels", "list"], &[]).await;
    assert_eq!(code, 1);
    assert!(err.contains("the server answered 502 Bad Gateway"), "{err}");
    assert!(
        err.contains("(not a Junebug envelope) <html><body>Bad gateway"),
        "{err}"
    );
}

#[tokio::test]
async fn cluster_prints_the_membership_table() {
    let server = Server::start("");
    let api = server.api();
    let (body, _port) = telnet_body("http://127.0.0.1:9/");
    let cid = api.create(body).await;
    let view = eventually("the channel held", || async {
        let v = api.get("/cluster").await.ok(200, "cluster");
        (v["nodes"][0]["channels"] == json!([cid])).then_some(v)
    })
    .await;
    let me = view["node_id"].as_str().unwrap();
    let out = ok(&server, &["cluster"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("backend local") && lines[0].contains(me),
        "{out}"
    );
    assert!(
        lines[1].contains("NODE") && lines[1].contains("CHANNELS"),
        "{out}"
    );
    assert_eq!(lines.len(), 3, "{out}");
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(row[0], "*", "{out}");
    assert_eq!(row[1], me, "{out}");
    assert_eq!(row[row.len() - 2], "1", "one channel: {out}");
}
