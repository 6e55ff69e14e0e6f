//! Test harness: a real hornbill process on a free port, an API client that checks Junebug's
//! envelope, a webhook receiver (wiremock), and telnet users on real sockets.
#![allow(dead_code)]

pub mod cases;
pub mod ngircd;
pub mod prosody;
pub mod smsc;
pub mod vumi;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const WAIT: Duration = Duration::from_secs(10);

/// The RabbitMQ the durable tests use: `HORNBILL_TEST_AMQP_URL`, else the local broker
/// (`script/services` starts it).
pub fn amqp_url() -> String {
    std::env::var("HORNBILL_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The Redis the durable tests use: `HORNBILL_TEST_REDIS_URL`, else the local one.
pub fn redis_url() -> String {
    std::env::var("HORNBILL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A hornbill process, killed when dropped. Its stdout and stderr are kept for inspection.
pub struct Server {
    pub url: String,
    /// The public listener (provider callbacks), once it printed its address.
    pub public: Arc<Mutex<Option<String>>>,
    child: Child,
    pub output: Arc<Mutex<String>>,
    /// Where the server writes its channel log files (unless the test chose elsewhere).
    pub log_dir: std::path::PathBuf,
    _dir: TempDir,
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("hornbill-test-{}", uuid_like()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_hornbill")
}

/// Webhook timings short enough for tests.
pub const FAST_WEBHOOKS: &str = "[webhooks]\ninitial_backoff = 0.2\nmax_backoff = 1.0\n";

impl Server {
    /// Starts `hornbill serve --config <file>` where the file is `[server] port = 0` plus
    /// `extra` TOML.
    pub fn start(extra: &str) -> Server {
        Server::start_with_env(extra, &[])
    }

    pub fn start_with_env(extra: &str, env: &[(&str, &str)]) -> Server {
        Server::start_with_args(extra, env, &[])
    }

    /// As `start_with_env`, with more arguments after `serve --config FILE`.
    pub fn start_with_args(extra: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::spawn(extra, env, args, None)
    }

    /// As `start`, under an open-files limit of `open_files` (soft and hard: started
    /// through `sh -c 'ulimit -n N; exec hornbill ...'`).
    pub fn start_with_open_files(extra: &str, open_files: u64) -> Server {
        Server::spawn(extra, &[], &[], Some(open_files))
    }

    fn spawn(extra: &str, env: &[(&str, &str)], args: &[&str], open_files: Option<u64>) -> Server {
        let dir = TempDir::new();
        let path = dir.0.join("config.toml");
        let mut text = if extra.contains("[server]") {
            extra.to_string()
        } else {
            format!("[server]\nport = 0\nworkers = 2\n{extra}")
        };
        // The public listener on a free port too, unless the test sets it.
        if !text.contains("[public]") {
            text = format!("[public]\nport = 0\n{text}");
        }
        std::fs::write(&path, &text).unwrap();
        let mut cmd = match open_files {
            None => Command::new(binary()),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(binary());
                sh
            }
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Log files in the test's own folder, unless the test says where.
        if !env.iter().any(|(k, _)| *k == "HORNBILL__LOG__LOGGING_PATH")
            && !text.contains("logging_path")
        {
            cmd.env("HORNBILL__LOG__LOGGING_PATH", dir.0.join("logs"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start hornbill");
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let out2 = output.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                out2.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out3 = output.clone();
        let public: Arc<Mutex<Option<String>>> = Arc::default();
        let public2 = public.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(url) = line.trim().strip_prefix("hornbill public listener on ") {
                    *public2.lock().unwrap() = Some(url.to_string());
                }
                if let Some(url) = line.trim().strip_prefix("hornbill listening on ") {
                    let _ = tx.send(url.to_string());
                }
                out3.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hornbill did not start; output:\n{}",
                    output.lock().unwrap()
                );
            }
        };
        Server {
            url,
            public,
            log_dir: dir.0.join("logs"),
            child,
            output,
            _dir: dir,
        }
    }

    /// Sends `signal` (`KILL`, `TERM`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// kill -9, and waits for the process to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits (up to 30 s) for the process to end.
    pub fn terminate(&mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("hornbill did not stop within 30 s of SIGTERM");
    }

    pub fn api(&self) -> Api {
        Api {
            base: self.url.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// The public listener's base URL (it is printed right after the API's).
    pub fn public_url(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(u) = self.public.lock().unwrap().clone() {
                return u;
            }
            assert!(Instant::now() < deadline, "no public listener was printed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hornbill <args>` to completion: (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hornbill");
    let mut stdout = String::new();
    let mut stderr = String::new();
    out.stdout.as_slice().read_to_string(&mut stdout).unwrap();
    out.stderr.as_slice().read_to_string(&mut stderr).unwrap();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// One API answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Checks Junebug's envelope and returns the body.
    pub fn envelope(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected HTTP status: {}", self.text);
        let keys: Vec<&String> = self.body.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 4, "envelope keys: {}", self.text);
        assert_eq!(self.body["status"], json!(status), "{}", self.text);
        &self.body
    }

    /// A success envelope with `description`; returns `result`.
    pub fn ok(&self, status: u16, description: &str) -> Value {
        let body = self.envelope(status);
        assert_eq!(body["description"], json!(description), "{}", self.text);
        body["result"].clone()
    }

    /// An error envelope: the exact body expected (status, code, description, errors).
    pub fn error(&self, status: u16, code: &str, description: &str) -> Vec<Value> {
        let body = self.envelope(status);
        assert_eq!(body["code"], json!(code), "{}", self.text);
        assert_eq!(body["description"], json!(description), "{}", self.text);
        body["result"]["errors"]
            .as_array()
            .expect("errors list")
            .clone()
    }
}

fn callback_secrets() -> &'static Mutex<std::collections::HashMap<String, String>> {
    static SECRETS: std::sync::OnceLock<Mutex<std::collections::HashMap<String, String>>> =
        std::sync::OnceLock::new();
    SECRETS.get_or_init(Default::default)
}

/// Where a channel created by `Api::create` takes provider callbacks:
/// `{public}/channels/{cid}/{callback secret}` (no trailing slash).
pub fn callback_base(public: &str, cid: &str) -> String {
    let secret = callback_secrets()
        .lock()
        .unwrap()
        .get(cid)
        .cloned()
        .unwrap_or_else(|| panic!("no callback secret known for channel {cid}"));
    format!("{public}/channels/{cid}/{secret}")
}

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub async fn raw(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.raw("POST", path, Some(&body.to_string())).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.raw("DELETE", path, None).await
    }

    /// Creates a channel; returns its id.
    /// Creates a channel: its id. Its callback secret (shown only in this answer) is kept
    /// for `callback_base`.
    pub async fn create(&self, body: Value) -> String {
        let result = self
            .post("/channels/", body)
            .await
            .ok(201, "channel created");
        let cid = result["id"].as_str().unwrap().to_string();
        if let Some(secret) = result["callback_secret"].as_str() {
            callback_secrets()
                .lock()
                .unwrap()
                .insert(cid.clone(), secret.to_string());
        }
        cid
    }

    pub async fn send(&self, cid: &str, body: Value) -> Value {
        self.post(&format!("/channels/{cid}/messages/"), body)
            .await
            .ok(201, "message submitted")
    }

    pub async fn logs(&self, cid: &str) -> Vec<Value> {
        let r = self.get(&format!("/channels/{cid}/logs?n=1000")).await;
        r.ok(200, "logs retrieved").as_array().unwrap().clone()
    }

    pub async fn channel(&self, cid: &str) -> Value {
        self.get(&format!("/channels/{cid}"))
            .await
            .ok(200, "channel found")
    }
}

/// A port nobody listens on right now: 10000-19999, below the kernel's ephemeral range and
/// apart from the conformance suite's 20000-32000, which runs beside these tests.
pub fn free_port() -> u16 {
    loop {
        let port = 10000 + (fastrand::u16(..) % 10000);
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// A telnet channel body on a free port: (body, port).
pub fn telnet_body(mo_url: &str) -> (Value, u16) {
    let port = free_port();
    (
        json!({
            "type": "telnet",
            "config": {"twisted_endpoint": format!("tcp:{port}"), "to_addr": "*120#"},
            "mo_url": mo_url,
        }),
        port,
    )
}

/// A user connected to a telnet channel.
pub struct User {
    pub address: String,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub lines: Arc<Mutex<Vec<(Instant, String)>>>,
    pub closed: Arc<Mutex<bool>>,
}

impl User {
    pub async fn connect(port: u16) -> User {
        let end = Instant::now() + WAIT;
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(s) => break s,
                Err(e) if Instant::now() > end => panic!("cannot connect to {port}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let address = stream.local_addr().unwrap().to_string();
        let (reader, writer) = stream.into_split();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(false));
        let (l2, c2) = (lines.clone(), closed.clone());
        tokio::spawn(async move {
            let mut r = tokio::io::BufReader::new(reader).lines();
            while let Ok(Some(line)) = r.next_line().await {
                l2.lock()
                    .unwrap()
                    .push((Instant::now(), line.trim().to_string()));
            }
            *c2.lock().unwrap() = true;
        });
        User {
            address,
            writer,
            lines,
            closed,
        }
    }

    /// Connects, and waits until hornbill has the user: its `new` session reached `mo`
    /// (the channel's mo_url receiver). A send before that could find nobody to go to.
    pub async fn connect_seen(port: u16, mo: &wiremock::MockServer) -> User {
        let user = User::connect(port).await;
        let addr = user.address.clone();
        wait_hit(mo, "the user's new session", |_, b| {
            b["from"] == json!(addr) && b["channel_data"]["session_event"] == "new"
        })
        .await;
        user
    }

    pub async fn say(&mut self, text: &str) {
        self.writer
            .write_all(format!("{text}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Waits for a line; returns when it arrived.
    pub async fn wait_line(&self, text: &str) -> Instant {
        let end = Instant::now() + WAIT + WAIT;
        loop {
            if let Some((at, _)) = self.lines.lock().unwrap().iter().find(|(_, l)| l == text) {
                return *at;
            }
            assert!(
                Instant::now() < end,
                "line {text:?} never arrived; got {:?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn received(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub async fn wait_closed(&self) -> bool {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if *self.closed.lock().unwrap() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// Polls `check` until it gives `Some`, or fails after `WAIT`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + WAIT + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One sample of the exposition text: the value of `name` whose labels include `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let has = |(k, v): &(&str, &str)| {
                rest.split("\",")
                    .any(|pair| pair.trim_end_matches('"') == format!("{k}=\"{v}"))
            };
            labels.iter().all(has).then(|| value.parse().ok())?
        })
}

/// The management API's `GET /metrics` text.
pub async fn scrape(api: &Api) -> String {
    let r = api.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

/// Scrapes until `name{labels}` reaches `want`; returns the text of that scrape.
pub async fn until(api: &Api, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    let end = std::time::Instant::now() + WAIT + WAIT;
    loop {
        let text = scrape(api).await;
        let got = sample(&text, name, labels);
        if got == Some(want) {
            return text;
        }
        assert!(
            std::time::Instant::now() < end,
            "{name}{labels:?} is {got:?}, not {want}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Requests a wiremock server got, as (path, headers, JSON body).
pub async fn hits(mock: &wiremock::MockServer) -> Vec<(String, Option<String>, Value)> {
    mock.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let auth = r
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap_or("").to_string());
            let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (r.url.path().to_string(), auth, body)
        })
        .collect()
}

/// Waits for a webhook whose JSON satisfies `pred`.
pub async fn wait_hit(
    mock: &wiremock::MockServer,
    what: &str,
    pred: impl Fn(&str, &Value) -> bool,
) -> (String, Option<String>, Value) {
    eventually(what, || async {
        hits(mock).await.into_iter().find(|(p, _, b)| pred(p, b))
    })
    .await
}

/// A receiver that answers 200 to everything.
pub async fn receiver() -> wiremock::MockServer {
    let mock = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&mock)
        .await;
    mock
}

/// A receiver that answers `status` to the first `n` requests, then 200.
pub async fn flaky_receiver(n: u64, status: u16) -> wiremock::MockServer {
    let mock = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(status))
        .up_to_n_times(n)
        .with_priority(1)
        .mount(&mock)
        .await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&mock)
        .await;
    mock
}

/// What every queued outbound message has, whoever sent it (an API send, an application, a
/// router destination, a Vumi worker on `amqp_queue`): its story starts with the channel's
/// "Accepted (…) and queued (…)" entry, its record gets its events (`submitted`), and
/// `hornbill_messages_outbound_total` counts it on the channel.
pub async fn assert_queued_like_an_api_send(api: &Api, cid: &str, mid: &str) {
    let story = eventually("the message's story", || async {
        let logs = api
            .get(&format!("/channels/{cid}/messages/{mid}/logs"))
            .await
            .ok(200, "logs retrieved");
        let entries = logs.as_array().cloned().unwrap_or_default();
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    let first = story[0]["message"].as_str().unwrap_or("").to_string();
    assert!(
        first.starts_with("Accepted (") && first.contains(") and queued ("),
        "{story:?}"
    );
    eventually("the submitted event in its record", || async {
        let s = api
            .get(&format!("/channels/{cid}/messages/{mid}"))
            .await
            .ok(200, "message status");
        (s["last_event_type"] == "submitted").then_some(())
    })
    .await;
    let metrics = scrape(api).await;
    let counted = sample(
        &metrics,
        "hornbill_messages_outbound_total",
        &[("channel", cid)],
    );
    assert!(counted >= Some(1.0), "not counted:\n{metrics}");
}

/// `rabbitmqctl ARGS`: its output, or a panic naming the command.
pub fn rabbitmqctl_out(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("rabbitmqctl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `amqp_url()` with its host, port or vhost replaced.
pub fn amqp_url_with(host: Option<&str>, port: Option<u16>, vhost: Option<&str>) -> String {
    let mut u = url::Url::parse(&amqp_url()).expect("amqp_url() is a URL");
    if let Some(h) = host {
        u.set_host(Some(h)).unwrap();
    }
    if let Some(p) = port {
        u.set_port(Some(p)).unwrap();
    }
    if let Some(v) = vhost {
        u.set_path(&format!("/{v}"));
    }
    u.to_string()
}

/// A RabbitMQ vhost of the test's own (guest may use it), deleted with everything in it when
/// dropped, however the test ends.
pub struct Vhost {
    pub name: String,
}

impl Vhost {
    /// A vhost whose default queue type is `quorum`: the queues declared in it without an
    /// `x-queue-type` (hornbill's, Vumi's) are quorum queues.
    pub fn quorum() -> Vhost {
        let name = format!("hornbill-qq-{}", &uuid_like().replace('-', "")[..]);
        rabbitmqctl_out(&["add_vhost", &name, "--default-queue-type", "quorum"]);
        let vhost = Vhost { name };
        rabbitmqctl_out(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    /// `amqp_url()` on this vhost.
    pub fn url(&self) -> String {
        amqp_url_with(None, None, Some(&self.name))
    }

    /// The vhost's queues: name -> type (`classic`, `quorum`, ...).
    pub fn queue_types(&self) -> std::collections::BTreeMap<String, String> {
        rabbitmqctl_out(&[
            "list_queues",
            "-q",
            "--no-table-headers",
            "-p",
            &self.name,
            "name",
            "type",
        ])
        .lines()
        .filter_map(|l| {
            let (name, kind) = l.split_once('\t')?;
            Some((name.trim().to_string(), kind.trim().to_string()))
        })
        .collect()
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}
