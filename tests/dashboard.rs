//! The dashboard (`/ui/`) end to end in headless Chromium, driven over WebDriver: channels
//! listed with their status, a test message sent from the page to a telnet user, its id, its
//! events and its log entries shown; the cluster panel, each channel's holder and its
//! 15-minute chart drawing the messages sent; and the page on a protected API (token, Basic).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`script/test` installs them); without them
//! the tests fail and say so. `CHROMEDRIVER` and `CHROMIUM` name other binaries;
//! `DASHBOARD_SCREENSHOT=file.png` keeps a picture of the page at the end of the send test.

mod common;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the page gets for anything to show up (it polls every 1.5-2 s).
const PAGE_WAIT: Duration = Duration::from_secs(20);

const INSTALL: &str = "run the suite with script/test (it installs Debian's chromium and \
    chromium-driver), or apt-get install -y chromium chromium-driver, or set CHROMEDRIVER \
    and CHROMIUM to their paths";

fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver on a free port, killed when dropped; its Chromium gets a fresh profile.
struct Driver {
    child: Child,
    url: String,
    chromium: PathBuf,
    profile: TempDir,
}

impl Driver {
    fn start() -> Driver {
        let driver = program("CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found: {INSTALL}"));
        let chromium = program("CHROMIUM", &["chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium not found: {INSTALL}"));
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL}", driver.display()));
        let mut this = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            profile: TempDir::new(),
        };
        let end = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = this.child.try_wait() {
                panic!("chromedriver exited at start ({status})");
            }
            assert!(
                Instant::now() < end,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        this
    }

    /// A headless Chromium session, with the flags this machine's closed network needs.
    async fn browser(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", self.profile.0.display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": self.chromium, "args": args}),
        );
        ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session from chromedriver: {e}"))
    }
}

impl Drop for Driver {
    /// Asks chromedriver to quit (it closes its browsers, which a kill would leave running,
    /// e.g. after a failed test that never closed its session), then kills it if need be.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://").to_string();
        if let Ok(mut conn) = std::net::TcpStream::connect(&addr) {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                conn,
                "GET /shutdown HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.read_to_end(&mut Vec::new());
        }
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `script` (its `arguments` are `args`) until it returns something other than
/// null or false; fails after `PAGE_WAIT` with what the page shows.
async fn wait_js(page: &Client, what: &str, script: &str, args: Vec<Value>) -> Value {
    let end = Instant::now() + PAGE_WAIT;
    loop {
        let v = page
            .execute(script, args.clone())
            .await
            .unwrap_or_else(|e| panic!("script for {what}: {e}"));
        if !v.is_null() && v != json!(false) {
            return v;
        }
        if Instant::now() > end {
            let shown = page
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!(
                "timed out waiting for {what}; the page shows:\n{}",
                shown.as_str().unwrap_or("")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `selector`, once there is one and `pred` holds.
async fn wait_text(page: &Client, selector: &str, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + PAGE_WAIT;
    loop {
        let v = page
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(selector)],
            )
            .await
            .unwrap_or_else(|e| panic!("reading {selector}: {e}"));
        if let Some(text) = v.as_str().filter(|t| pred(t)) {
            return text.to_string();
        }
        if Instant::now() > end {
            panic!("timed out waiting for {selector}; it shows {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(page: &Client, id: &str, text: &str) {
    let field = page.find(Locator::Id(id)).await.expect(id);
    field.clear().await.expect("clear");
    if !text.is_empty() {
        field.send_keys(text).await.expect("type");
    }
}

async fn click(page: &Client, css: &str) {
    page.wait()
        .at_most(PAGE_WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

const IS_HIDDEN: &str = "return document.getElementById(arguments[0]).hidden;";
const IS_SHOWN: &str = "return !document.getElementById(arguments[0]).hidden;";

#[tokio::test]
async fn the_dashboard_sends_to_a_telnet_user_and_shows_the_log() {
    let started = Instant::now();
    let driver = Driver::start();
    let mock = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (mut body, port) = telnet_body(&format!("{}/mo", mock.uri()));
    // A label that is markup: it must show as text.
    let label = "<img src=x id=injected> & co";
    body["label"] = json!(label);
    let cid = api.create(body).await;
    let mut user = User::connect(port).await;
    user.say("hi").await;

    let page = driver.browser().await;
    let browser_up = started.elapsed();
    page.goto(&format!("{}/ui/", server.url))
        .await
        .expect("load /ui/");

    // The channel is listed, with its status and queue figures.
    wait_js(
        &page,
        "the channel's row",
        "return [...document.querySelectorAll('tr[data-channel]')]
            .some(r => r.dataset.channel === arguments[0] && r.textContent.includes('Listening'));",
        vec![json!(cid)],
    )
    .await;
    let row = format!("tr[data-channel=\"{cid}\"]");
    let shown = wait_text(&page, &row, |t| t.contains(label)).await;
    assert!(shown.contains("telnet"), "{shown}");
    wait_text(&page, &format!("{row} td:nth-child(3)"), |t| t == "ok").await;

    // Chat channels show like any other: an IRC bot whose server is not there is down, its
    // `irc` component saying why; a WhatsApp number is listed with its type.
    let irc = api
        .create(
            json!({"type": "irc", "label": "irc bot", "mo_url": mock.uri(),
                       "config": {"network": "127.0.0.1", "port": free_port(),
                                  "nickname": "hornbot"}}),
        )
        .await;
    let wa = api
        .create(
            json!({"type": "whatsapp", "label": "wa number", "mo_url": mock.uri(),
                       "config": {"phone_number_id": "1234567890", "access_token": "wa-token",
                                  "app_secret": "wa-secret", "verify_token": "wa-verify"}}),
        )
        .await;
    let irc_row = format!("tr[data-channel=\"{irc}\"]");
    let shown = wait_text(&page, &irc_row, |t| t.contains("irc bot")).await;
    assert!(shown.contains("irc"), "{shown}");
    wait_text(&page, &format!("{irc_row} td:nth-child(3)"), |t| {
        t == "down"
    })
    .await;
    let components = wait_text(&page, &format!("{irc_row} td:nth-child(5)"), |t| {
        t.contains("irc")
    })
    .await;
    assert!(!components.contains("wa-token"), "{components}");
    let shown = wait_text(&page, &format!("tr[data-channel=\"{wa}\"]"), |t| {
        t.contains("wa number")
    })
    .await;
    assert!(shown.contains("whatsapp"), "{shown}");
    assert!(!shown.contains("wa-token"), "{shown}");

    let injected = page
        .execute(
            "return document.getElementById('injected') !== null;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!(false), "the label became markup");

    // Select it: the panel and its log appear.
    click(&page, &format!("button[data-select=\"{cid}\"]")).await;
    wait_js(
        &page,
        "the channel panel",
        IS_SHOWN,
        vec![json!("channel-panel")],
    )
    .await;
    assert_eq!(
        wait_text(&page, "#selected-channel", |t| !t.is_empty()).await,
        cid
    );
    wait_text(&page, "#log-list", |t| t.contains("Channel created")).await;

    // A send the API refuses shows Junebug's description.
    fill(&page, "send-to", "").await;
    fill(&page, "send-content", "nobody to send to").await;
    click(&page, "#send-button").await;
    let refused = wait_text(&page, "#send-error", |t| !t.is_empty()).await;
    assert!(refused.contains("api usage error"), "{refused}");
    assert!(refused.contains("\"to\" or \"reply_to\""), "{refused}");

    // Media on a channel type that cannot carry it: refused, and the page says why.
    fill(&page, "send-to", &user.address).await;
    fill(&page, "send-content", "a picture").await;
    fill(&page, "send-media", "https://cdn.example/cat.jpg").await;
    click(&page, "#send-button").await;
    let refused = wait_text(&page, "#send-error", |t| t.contains("attachments")).await;
    assert!(refused.contains("cannot carry attachments"), "{refused}");
    fill(&page, "send-media", "").await;

    // The protocol-lines switch is the channel's log_protocol, set by a modify.
    click(&page, "#log-protocol").await;
    eventually("log_protocol on", || async {
        (api.channel(&cid).await["log_protocol"] == json!(true)).then_some(())
    })
    .await;

    // A real one reaches the telnet user; its id, events and log entries show.
    let content = "hello <b>from</b> the dashboard & co";
    fill(&page, "send-to", &user.address).await;
    fill(&page, "send-content", content).await;
    click(&page, "#send-button").await;
    let mid = wait_text(&page, "#send-message-id", |t| !t.is_empty()).await;
    assert_eq!(mid.len(), 32, "message id {mid:?}");
    assert!(mid.chars().all(|c| c.is_ascii_hexdigit()), "{mid}");
    user.wait_line(content).await;
    let entry = wait_text(
        &page,
        &format!("#log-list li[data-message-id=\"{mid}\"]"),
        |t| !t.is_empty(),
    )
    .await;
    assert!(entry.contains("INFO"), "{entry}");
    let events = wait_text(&page, "#lookup-events", |t| t.contains("submitted")).await;
    assert!(events.contains("submitted"), "{events}");
    wait_text(&page, "#lookup-last-event", |t| {
        t.contains("last event submitted")
    })
    .await;
    wait_text(
        &page,
        &format!("#lookup-logs li[data-message-id=\"{mid}\"]"),
        |t| !t.is_empty(),
    )
    .await;

    // The API agrees with what the page showed.
    let status = api
        .get(&format!("/channels/{cid}/messages/{mid}"))
        .await
        .ok(200, "message status");
    assert_eq!(status["last_event_type"], "submitted");

    if let Some(path) = std::env::var_os("DASHBOARD_SCREENSHOT") {
        std::fs::write(path, page.screenshot().await.expect("screenshot")).unwrap();
    }
    page.close().await.expect("close the browser");
    eprintln!(
        "dashboard: browser up after {:.1} s, done after {:.1} s",
        browser_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// What a chart (`div.chart`, one `svg` lane per series) drew: its samples, the maximum of its out line, that line's
/// points.
#[derive(Debug, Clone, Copy)]
struct Drawn {
    samples: u64,
    max_out: f64,
    out_points: u64,
}

/// The chart at `selector` once there is one and `pred` holds of what it drew.
async fn wait_chart(page: &Client, selector: &str, pred: impl Fn(Drawn) -> bool) -> Drawn {
    let end = Instant::now() + PAGE_WAIT;
    loop {
        let v = page
            .execute(
                "const chart = document.querySelector(arguments[0]);
                 if (!chart) return null;
                 const line = chart.querySelector('svg.s-out path.line');
                 return [chart.dataset.samples, chart.dataset.maxOut, line && line.dataset.points];",
                vec![json!(selector)],
            )
            .await
            .unwrap_or_else(|e| panic!("reading {selector}: {e}"));
        let number = |i: usize| v[i].as_str().and_then(|t| t.parse::<f64>().ok());
        let drawn = match (number(0), number(1), number(2)) {
            (Some(samples), Some(max_out), Some(points)) => Some(Drawn {
                samples: samples as u64,
                max_out,
                out_points: points as u64,
            }),
            _ => None,
        };
        if let Some(d) = drawn.filter(|d| pred(*d)) {
            return d;
        }
        if Instant::now() > end {
            panic!("timed out waiting for the chart {selector}; it drew {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_dashboard_shows_the_cluster_and_charts_each_channel() {
    let driver = Driver::start();
    // Rates over 1 s windows, so that sends show within a poll or two.
    let server = Server::start("[channel_defaults]\nmetric_window = 1.0\n");
    let api = server.api();
    let (body, port) = telnet_body("http://127.0.0.1:9/mo");
    let cid = api.create(body).await;
    let user = User::connect(port).await;
    let view = eventually("the channel held", || async {
        let v = api.get("/cluster").await.ok(200, "cluster");
        (v["nodes"][0]["channels"] == json!([cid])).then_some(v)
    })
    .await;
    let node = view["node_id"].as_str().expect("node_id").to_string();
    assert!(!node.is_empty());

    let page = driver.browser().await;
    page.goto(&format!("{}/ui/", server.url))
        .await
        .expect("load /ui/");

    // The Cluster panel: this node, marked as the one answering, holding the one channel.
    let member = format!("#cluster-rows tr[data-node=\"{node}\"]");
    let shown = wait_text(&page, &member, |t| t.contains("this node")).await;
    assert!(shown.contains(&node), "{shown}");
    assert!(shown.contains(" s ago"), "{shown}");
    let count = |cell: &str| format!("{member} td.{cell}");
    assert_eq!(
        wait_text(&page, &count("channels"), |t| !t.is_empty()).await,
        "1"
    );
    assert_eq!(
        wait_text(&page, &count("routers"), |t| !t.is_empty()).await,
        "0"
    );
    let backend = wait_text(&page, "#cluster-backend", |t| !t.is_empty()).await;
    assert!(backend.starts_with("local backend"), "{backend}");
    let members = page
        .execute(
            "return document.querySelectorAll('#cluster-rows tr').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(members, json!(1));

    // The channel's row names its holder.
    let row = format!("tr[data-channel=\"{cid}\"]");
    let holder = wait_text(&page, &format!("{row} td:nth-child(4)"), |t| !t.is_empty()).await;
    assert_eq!(holder, node);

    // Its chart samples while the page is open; nothing sent yet, so nothing out.
    let chart = format!("tr[data-chart-for=\"{cid}\"] div.chart");
    let before = wait_chart(&page, &chart, |d| d.samples > 1).await;
    assert_eq!(before.max_out, 0.0, "{before:?}");

    // Messages out for a few seconds: the out line rises from zero.
    let sender = {
        let api = server.api();
        let (cid, to) = (cid.clone(), user.address.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                api.send(&cid, json!({"to": to, "content": format!("chart {i}")}))
                    .await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    user.wait_line("chart 0").await;
    let after = wait_chart(&page, &chart, |d| d.max_out > 0.0 && d.out_points > 1).await;
    assert!(after.samples > before.samples, "{before:?} then {after:?}");
    let label = wait_text(&page, &format!("{chart} svg.s-out text.label"), |t| {
        t.starts_with("out ")
    })
    .await;
    assert!(label.ends_with("/s"), "{label}");
    let max = wait_text(&page, &format!("{chart} svg.s-out text.max"), |t| {
        t.starts_with("max ")
    })
    .await;
    assert_ne!(max, "max 0", "{max}");
    sender.await.expect("sender");
    user.wait_line("chart 29").await;

    // The channel's panel: its holder, and the same history drawn larger.
    click(&page, &format!("button[data-select=\"{cid}\"]")).await;
    assert_eq!(
        wait_text(&page, "#selected-holder", |t| !t.is_empty()).await,
        node
    );
    let detail = wait_chart(&page, "#history-chart div.chart", |d| {
        d.max_out >= after.max_out && d.out_points > 1
    })
    .await;
    assert!(detail.samples >= after.samples, "{after:?} then {detail:?}");

    page.close().await.expect("close the browser");
}

#[tokio::test]
async fn the_dashboard_asks_for_credentials_when_the_api_is_protected() {
    let driver = Driver::start();
    let server = Server::start(
        "[server]\nport = 0\nworkers = 2\nauth_token = \"dash-secret\"\n\
         username = \"ops\"\npassword = \"pä55\"\n",
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The page itself is open; the API is not; /ui leads to /ui/.
    let page_resp = http
        .get(format!("{}/ui/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page_resp.status(), 200);
    let headers = page_resp.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    for asset in ["app.js", "chart.js", "style.css"] {
        let r = http
            .get(format!("{}/ui/{asset}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let redirect = http.get(format!("{}/ui", server.url)).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "ui/");
    let refused = http
        .get(format!("{}/channels/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let port = free_port();
    let created: Value = http
        .post(format!("{}/channels/", server.url))
        .header("Authorization", "Token dash-secret")
        .body(
            json!({"type": "telnet", "config": {"twisted_endpoint": format!("tcp:{port}")},
                   "mo_url": "http://127.0.0.1:9/mo"})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = created["result"]["id"]
        .as_str()
        .expect("channel id")
        .to_string();
    let row = format!("tr[data-channel=\"{cid}\"]");

    let page = driver.browser().await;
    page.goto(&format!("{}/ui", server.url))
        .await
        .expect("load /ui");
    wait_js(
        &page,
        "the credentials form",
        IS_SHOWN,
        vec![json!("login")],
    )
    .await;

    // A wrong token is refused and forgotten; the right one opens the list.
    fill(&page, "login-token", "wrong").await;
    click(&page, "#login-form button[type=submit]").await;
    wait_text(&page, "#login-reason", |t| t.contains("refused")).await;
    fill(&page, "login-token", "dash-secret").await;
    click(&page, "#login-form button[type=submit]").await;
    wait_js(
        &page,
        "the credentials form to go",
        IS_HIDDEN,
        vec![json!("login")],
    )
    .await;
    wait_text(&page, &row, |t| t.contains(&cid)).await;
    let kept = page
        .execute(
            "return sessionStorage.getItem('hornbill.authorization');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!("Token dash-secret"));

    // Forgotten, it asks again; a username and password (not ASCII) work too.
    click(&page, "#forget").await;
    wait_js(
        &page,
        "the credentials form again",
        IS_SHOWN,
        vec![json!("login")],
    )
    .await;
    fill(&page, "login-user", "ops").await;
    fill(&page, "login-password", "pä55").await;
    click(&page, "#login-form button[type=submit]").await;
    wait_js(
        &page,
        "the credentials form to go",
        IS_HIDDEN,
        vec![json!("login")],
    )
    .await;
    click(&page, &format!("button[data-select=\"{cid}\"]")).await;
    wait_text(&page, "#log-list", |t| t.contains("Channel created")).await;
    let kept = page
        .execute(
            "return sessionStorage.getItem('hornbill.authorization');",
            vec![],
        )
        .await
        .unwrap();
    assert!(kept.as_str().unwrap().starts_with("Basic "), "{kept}");

    page.close().await.expect("close the browser");
}
