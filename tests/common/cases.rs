//! The shared harness of the HTTP aggregator channel types (after Courier's `handlertest`):
//! a type's tests are tables of incoming cases (a provider request to the public listener ->
//! its answer, the inbound message at `mo_url`, the event at `event_url`) and outgoing cases
//! (a message sent through the API -> the request the stub provider got, its mocked answers
//! -> the event). Every case runs on its own channel of one real hornbill and its own stub
//! provider (wiremock), and every case checks that the channel's secrets appear in no log
//! entry, no API answer and nothing the server printed.
#![allow(dead_code)]

use super::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A request body.
#[derive(Clone, Debug, Default)]
pub enum Body {
    #[default]
    None,
    Form(Vec<(String, String)>),
    Json(Value),
    Raw(&'static str, String),
}

/// A form body from pairs.
pub fn form(pairs: &[(&str, &str)]) -> Body {
    Body::Form(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A query string from pairs (URL-encoded).
pub fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// An HTTP Basic `Authorization` value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Signs a callback: (its full URL, its body) -> headers to add.
pub type Signer = Box<dyn Fn(&str, &Body) -> Vec<(String, String)> + Send + Sync>;

/// One channel type under test.
pub struct Table {
    pub channel_type: &'static str,
    /// The channel's `config`, given the stub provider's base URL.
    pub config: Box<dyn Fn(&str) -> Value + Send + Sync>,
    /// Where the stub provider takes sends (method, path).
    pub send: (&'static str, &'static str),
    /// Values that must appear in no log entry.
    pub secrets: Vec<&'static str>,
    /// Signs the incoming cases that ask for it.
    pub signer: Option<Signer>,
}

/// A provider request to the public listener and what must follow.
#[derive(Clone, Debug, Default)]
pub struct Incoming {
    pub label: &'static str,
    pub action: &'static str,
    /// Default POST.
    pub method: &'static str,
    pub query: String,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
    /// Sign it with the table's signer.
    pub signed: bool,
    /// A message is sent first and the stub provider answers it with (status, body): the
    /// case's callback then reports on it. `{message_id}` in the case's query and body is
    /// that message's id (for providers whose reports name an id we gave them).
    pub prior_send: Option<(u16, String)>,
    pub status: u16,
    /// Texts the answer's body must contain.
    pub response_contains: Vec<&'static str>,
    /// The answer's exact body.
    pub response: Option<&'static str>,
    /// Texts that one entry of the channel's log must contain (each).
    pub log_contains: Vec<&'static str>,
    /// What reaches `mo_url` (a JSON subset), or `None`: nothing does.
    pub inbound: Option<Value>,
    /// The event the prior send gets at `event_url` (a JSON subset).
    pub event: Option<Value>,
    /// The prior send's `to` (default `+254711000001`).
    pub prior_to: Option<&'static str>,
    /// Further answers of the stub provider, mounted before the callback (media downloads).
    pub stubs: Vec<Stub>,
    /// The inbound message's attachment to GET from hornbill's public listener, and what it
    /// must answer (the stub's bytes: credentials stay inside hornbill).
    pub media: Option<MediaFetch>,
}

/// An answer of the stub provider to `method path` (`{stub}` in the body is the stub's base
/// URL), given only to requests that carry `headers` (exact values).
#[derive(Clone, Debug, Default)]
pub struct Stub {
    pub method: &'static str,
    pub path: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Fetching attachment `index` of the inbound message through its `url`.
#[derive(Clone, Debug, Default)]
pub struct MediaFetch {
    pub index: usize,
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Mounts stub answers on `provider`.
pub async fn mount_stubs(provider: &MockServer, stubs: &[Stub]) {
    for s in stubs {
        let body = match std::str::from_utf8(&s.body) {
            Ok(text) => text.replace("{stub}", &provider.uri()).into_bytes(),
            Err(_) => s.body.clone(),
        };
        let mut mock = Mock::given(method(s.method)).and(path(s.path));
        for (k, v) in &s.headers {
            mock = mock.and(wiremock::matchers::header(*k, v.as_str()));
        }
        mock.respond_with(ResponseTemplate::new(s.status).set_body_raw(body, s.content_type))
            .with_priority(1)
            .mount(provider)
            .await;
    }
}

/// A check of a whole request the stub got (the reason it fails).
pub type RequestCheck = fn(&wiremock::Request) -> Result<(), String>;

/// The request the stub provider must have got (`{channel_id}`, `{public}`, `{callback}` and
/// `{message_id}`, the sent message's id, are filled in).
#[derive(Clone, Debug, Default)]
pub struct ExpectRequest {
    /// Its path, when not the table's send path (a send method per medium: Telegram's
    /// `sendPhoto`).
    pub path: Option<&'static str>,
    /// Headers (lower-case names) and their exact values.
    pub headers: Vec<(&'static str, String)>,
    /// Form fields (body, or query for a GET) and their exact values.
    pub form: Vec<(&'static str, String)>,
    /// Form fields that must be absent.
    pub absent: Vec<&'static str>,
    /// A JSON subset of the body.
    pub json: Option<Value>,
    /// A check of the whole request (a signature computed per request).
    pub verify: Option<RequestCheck>,
}

/// A message sent through the API and what must follow.
#[derive(Clone, Debug, Default)]
pub struct Outgoing {
    pub label: &'static str,
    /// The API's send body (`event_url` is added).
    pub send: Value,
    /// The stub provider's answers (status, body) in order; the last one repeats.
    pub responses: Vec<(u16, String)>,
    pub request: ExpectRequest,
    /// The event that ends it at `event_url` (a JSON subset).
    pub event: Value,
    /// Sends the provider got (more than one: retried, or a message sent in parts).
    pub attempts: usize,
    /// The message never reaches the provider (refused by the type before sending).
    pub unsent: bool,
    /// The requests after the first, in order (a message sent in several requests).
    pub more: Vec<ExpectRequest>,
    /// Headers on every answer of the stub (`retry-after`, rate-limit resets).
    pub response_headers: Vec<(&'static str, String)>,
    /// Further answers of the stub provider, mounted before the send (other send paths).
    pub stubs: Vec<Stub>,
}

/// Whether `actual` has everything `expected` has (objects by key, recursively; arrays
/// element by element; `null` also matches a missing key).
pub fn subset(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (_, Value::Null) => actual.is_null(),
        (Value::Object(a), Value::Object(e)) => e.iter().all(|(k, v)| match a.get(k) {
            Some(x) => subset(x, v),
            None => v.is_null(),
        }),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| subset(x, y))
        }
        _ => actual == expected,
    }
}

/// `{channel_id}`, `{public}` and `{callback}` (the channel's callback base, with its
/// secret) in an expected text, filled in.
fn fill(text: &str, cid: &str, public: &str) -> String {
    let mut text = text.replace("{channel_id}", cid);
    if text.contains("{callback}") {
        text = text.replace("{callback}", &callback_base(public, cid));
    }
    text.replace("{public}", public)
}

fn fill_json(v: &Value, cid: &str, public: &str) -> Value {
    match v {
        Value::String(s) => Value::String(fill(s, cid, public)),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), fill_json(v, cid, public)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| fill_json(v, cid, public)).collect()),
        other => other.clone(),
    }
}

/// `v` with `{message_id}` in its strings replaced by `mid`.
fn json_message_id(v: &Value, mid: &str) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{message_id}", mid)),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), json_message_id(v, mid)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| json_message_id(v, mid)).collect()),
        other => other.clone(),
    }
}

/// `case` with `{message_id}` in its query and body replaced by `mid`.
fn with_message_id(case: &Incoming, mid: &str) -> Incoming {
    let mut case = case.clone();
    case.query = case.query.replace("{message_id}", mid);
    // In a query built with `query()` the braces are URL-encoded.
    case.query = case.query.replace("%7Bmessage_id%7D", mid);
    case.body = match &case.body {
        Body::None => Body::None,
        Body::Form(pairs) => Body::Form(
            pairs
                .iter()
                .map(|(k, v)| (k.clone(), v.replace("{message_id}", mid)))
                .collect(),
        ),
        Body::Json(v) => Body::Json(json_message_id(v, mid)),
        Body::Raw(ct, text) => Body::Raw(ct, text.replace("{message_id}", mid)),
    };
    case
}

/// One hornbill for a table, and a channel per case.
pub struct Bench {
    pub server: Server,
    pub api: Api,
    pub hooks: MockServer,
    pub public: String,
}

impl Bench {
    pub async fn start(extra: &str) -> Bench {
        let server = Server::start(&format!("{FAST_WEBHOOKS}{extra}"));
        let api = server.api();
        let public = server.public_url();
        Bench {
            server,
            api,
            hooks: receiver().await,
            public,
        }
    }

    /// A channel of the table's type, talking to `provider`; (channel id, mo path, event
    /// path) — each case's webhooks go to paths of its own.
    pub async fn channel(&self, table: &Table, provider: &str, label: &str) -> (String, String) {
        let tag: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cid = self
            .api
            .create(json!({
                "type": table.channel_type,
                "config": (table.config)(provider),
                "mo_url": format!("{}/mo/{tag}", self.hooks.uri()),
            }))
            .await;
        // Callbacks are taken once the transport runs: a provider request before that gets
        // a 503 (a race seen on a loaded machine).
        let started = format!("Started {} transport", table.channel_type);
        eventually("the transport started", || async {
            self.api
                .logs(&cid)
                .await
                .iter()
                .any(|e| e["message"] == json!(started))
                .then_some(())
        })
        .await;
        (cid, tag)
    }

    /// What the stub `hooks` got at `path`, as JSON bodies.
    pub async fn posted(&self, at: &str) -> Vec<Value> {
        hits(&self.hooks)
            .await
            .into_iter()
            .filter(|(p, _, _)| p == at)
            .map(|(_, _, b)| b)
            .collect()
    }

    /// Fails if a secret is in the channel's log, its API view or the server's output.
    pub async fn assert_redacted(&self, table: &Table, cid: &str, label: &str) {
        let logs = self.api.logs(cid).await;
        let shown = self.api.get(&format!("/channels/{cid}")).await.text;
        for secret in &table.secrets {
            for e in &logs {
                assert!(
                    !e.to_string().contains(secret),
                    "{label}: secret {secret:?} in a log entry: {e}"
                );
            }
            assert!(
                !shown.contains(secret),
                "{label}: secret {secret:?} in the channel's API view: {shown}"
            );
            assert!(
                !self.server.output().contains(secret),
                "{label}: secret {secret:?} in the server's output"
            );
        }
    }

    /// The `n`th message the application got at the case's `mo_url` (waits for it).
    pub async fn nth_inbound(&self, tag: &str, n: usize) -> Value {
        let at = format!("/mo/{tag}");
        eventually(&format!("inbound #{n}"), || async {
            self.posted(&at).await.get(n).cloned()
        })
        .await
    }

    /// The application answers `to`, continuing the session or not.
    pub async fn answer(&self, cid: &str, to: &Value, text: &str, more: bool) {
        self.api
            .send(
                cid,
                json!({"reply_to": to["message_id"], "content": text,
                       "channel_data": {"continue_session": more}}),
            )
            .await;
    }

    /// Sends `body` on the channel and waits for its event (at `/ev/{tag}`).
    pub async fn event_of(&self, cid: &str, body: Value, tag: &str) -> Value {
        let mut body = body;
        let at = format!("/ev/{tag}");
        body["event_url"] = json!(format!("{}{at}", self.hooks.uri()));
        let sent = self.api.send(cid, body).await;
        let (_, _, event) = wait_hit(&self.hooks, &format!("the event of {tag}"), |p, b| {
            p == at && b["message_id"] == sent["message_id"]
        })
        .await;
        event
    }

    /// Sends a provider request to the channel's public callback: (status, body).
    pub async fn call(&self, table: &Table, cid: &str, case: &Incoming) -> (u16, String) {
        let mut url = format!("{}/{}", callback_base(&self.public, cid), case.action);
        if !case.query.is_empty() {
            url = format!("{url}?{}", case.query);
        }
        let method = if case.method.is_empty() {
            "POST"
        } else {
            case.method
        };
        let http = reqwest::Client::new();
        let mut req = http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            &url,
        );
        for (k, v) in &case.headers {
            req = req.header(*k, v.as_str());
        }
        if case.signed {
            let signer = table.signer.as_ref().expect("the table has a signer");
            for (k, v) in signer(&url, &case.body) {
                req = req.header(k, v);
            }
        }
        req = match &case.body {
            Body::None => req,
            Body::Form(pairs) => req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(pairs)
                        .finish(),
                ),
            Body::Json(v) => req
                .header("Content-Type", "application/json")
                .body(v.to_string()),
            Body::Raw(ct, text) => req.header("Content-Type", *ct).body(text.clone()),
        };
        let resp = req.send().await.expect("callback request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }
}

/// Mounts the stub provider's answers to sends: `responses` in order, the last repeating.
pub async fn mount_answers(provider: &MockServer, table: &Table, responses: &[(u16, String)]) {
    mount_answers_with(provider, table, responses, &[]).await
}

/// As `mount_answers`, each answer with `headers`.
pub async fn mount_answers_with(
    provider: &MockServer,
    table: &Table,
    responses: &[(u16, String)],
    headers: &[(&'static str, String)],
) {
    let (m, p) = table.send;
    let count = responses.len();
    for (i, (status, body)) in responses.iter().enumerate() {
        let mut template = ResponseTemplate::new(*status).set_body_string(body.clone());
        for (k, v) in headers {
            template = template.insert_header(*k, v.as_str());
        }
        let mock = Mock::given(method(m)).and(path(p)).respond_with(template);
        let mock = if i + 1 < count {
            mock.up_to_n_times(1).with_priority(1 + i as u8)
        } else {
            mock.with_priority(1 + i as u8)
        };
        mock.mount(provider).await;
    }
}

/// Form fields of a request the stub got: its query, then a form body.
pub fn request_form(r: &wiremock::Request) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = r.url.query_pairs().into_owned().collect();
    out.extend(url::form_urlencoded::parse(&r.body).into_owned());
    out
}

/// Runs a table's incoming cases.
pub async fn run_incoming(table: &Table, cases: &[Incoming]) {
    run_incoming_with(table, &[], cases).await
}

/// As `run_incoming`, for a type whose channel makes `setup` requests when it starts
/// (Telegram's `setWebhook`): the stub answers them with these.
pub async fn run_incoming_with(table: &Table, setup: &[Stub], cases: &[Incoming]) {
    let bench = Bench::start("").await;
    for case in cases {
        let label = case.label;
        let provider = MockServer::start().await;
        mount_stubs(&provider, setup).await;
        let (cid, tag) = bench.channel(table, &provider.uri(), label).await;
        let event_path = format!("/ev/{tag}");
        let mut sent_id = None;
        if let Some((status, body)) = &case.prior_send {
            mount_answers(&provider, table, &[(*status, body.clone())]).await;
            let sent = bench
                .api
                .send(
                    &cid,
                    json!({"to": case.prior_to.unwrap_or("+254711000001"), "content": "hello",
                           "event_url": format!("{}{event_path}", bench.hooks.uri())}),
                )
                .await;
            let mid = sent["message_id"].as_str().unwrap().to_string();
            eventually(&format!("{label}: the prior send is submitted"), || async {
                bench
                    .posted(&event_path)
                    .await
                    .into_iter()
                    .find(|e| e["message_id"] == mid && e["event_type"] == "submitted")
            })
            .await;
            sent_id = Some(mid);
        }
        mount_stubs(&provider, &case.stubs).await;
        let (status, body) = match &sent_id {
            Some(mid) => bench.call(table, &cid, &with_message_id(case, mid)).await,
            None => bench.call(table, &cid, case).await,
        };
        assert_eq!(status, case.status, "{label}: status; body {body}");
        for text in &case.response_contains {
            assert!(
                body.contains(text),
                "{label}: {text:?} not in the answer {body:?}"
            );
        }
        if let Some(exact) = case.response {
            assert_eq!(body, exact, "{label}: the answer");
        }
        if case.status == 400 {
            // A refused provider request leaves its reason in the channel's log.
            // (It reaches the log through the channel's actor: it may trail the answer.)
            eventually(
                &format!("{label}: a channel-log entry for the 400"),
                || async {
                    let logs = bench.api.logs(&cid).await;
                    logs.iter()
                        .any(|e| e["message"].as_str().unwrap_or("").starts_with("Refused"))
                        .then_some(())
                },
            )
            .await;
        }
        for text in &case.log_contains {
            eventually(&format!("{label}: {text:?} in the channel log"), || async {
                let logs = bench.api.logs(&cid).await;
                logs.iter()
                    .any(|e| e["message"].as_str().unwrap_or("").contains(text))
                    .then_some(())
            })
            .await;
        }
        let mo_path = format!("/mo/{tag}");
        match &case.inbound {
            Some(expected) => {
                let expected = fill_json(expected, &cid, &bench.public);
                let got = eventually(&format!("{label}: the inbound message"), || async {
                    bench.posted(&mo_path).await.into_iter().next()
                })
                .await;
                assert!(
                    subset(&got, &expected),
                    "{label}: inbound\n got {got:#}\nwant {expected:#}"
                );
                assert_eq!(got["channel_id"], json!(cid), "{label}");
                if let Some(fetch) = &case.media {
                    let url = got["attachments"][fetch.index]["url"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{label}: no attachment url in {got}"));
                    let resp = reqwest::get(url).await.expect("media request");
                    assert_eq!(
                        resp.status().as_u16(),
                        fetch.status,
                        "{label}: media status"
                    );
                    if fetch.status == 200 {
                        let ct = resp
                            .headers()
                            .get("content-type")
                            .map(|v| v.to_str().unwrap_or("").to_string());
                        assert_eq!(
                            ct.as_deref(),
                            Some(fetch.content_type),
                            "{label}: media type"
                        );
                        let bytes = resp.bytes().await.unwrap();
                        assert_eq!(
                            bytes.as_ref(),
                            fetch.body.as_slice(),
                            "{label}: media bytes"
                        );
                    }
                }
            }
            None => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let got = bench.posted(&mo_path).await;
                assert!(
                    got.is_empty(),
                    "{label}: nothing should reach mo_url: {got:?}"
                );
            }
        }
        if let Some(expected) = &case.event {
            let mid = sent_id.clone().expect("an event needs a prior_send");
            let got = eventually(&format!("{label}: the event"), || async {
                bench
                    .posted(&event_path)
                    .await
                    .into_iter()
                    .find(|e| e["message_id"] == mid && e["event_type"] != "submitted")
            })
            .await;
            assert!(
                subset(&got, expected),
                "{label}: event\n got {got:#}\nwant {expected:#}"
            );
        }
        bench.assert_redacted(table, &cid, label).await;
    }
}

/// Runs a table's outgoing cases.
pub async fn run_outgoing(table: &Table, cases: &[Outgoing]) {
    run_outgoing_with(table, &[], cases).await
}

/// As `run_outgoing`, for a type whose channel makes `setup` requests when it starts
/// (Telegram's `setWebhook`): the stub answers them with these, and they are not counted
/// among the sends' requests.
pub async fn run_outgoing_with(table: &Table, setup: &[Stub], cases: &[Outgoing]) {
    let bench = Bench::start("").await;
    for case in cases {
        let label = case.label;
        let provider = MockServer::start().await;
        mount_stubs(&provider, setup).await;
        mount_stubs(&provider, &case.stubs).await;
        mount_answers_with(&provider, table, &case.responses, &case.response_headers).await;
        let (cid, tag) = bench.channel(table, &provider.uri(), label).await;
        let event_path = format!("/ev/{tag}");
        let mut send = case.send.clone();
        send["event_url"] = json!(format!("{}{event_path}", bench.hooks.uri()));
        let sent = bench.api.send(&cid, send).await;
        let mid = sent["message_id"].as_str().unwrap().to_string();
        let event = eventually(&format!("{label}: the event"), || async {
            bench
                .posted(&event_path)
                .await
                .into_iter()
                .find(|e| e["message_id"] == mid)
        })
        .await;
        let expected = fill_json(&case.event, &cid, &bench.public);
        assert!(
            subset(&event, &expected),
            "{label}: event\n got {event:#}\nwant {expected:#}"
        );
        let is_setup = |r: &wiremock::Request| {
            setup
                .iter()
                .any(|s| r.method.as_str() == s.method && r.url.path() == s.path)
        };
        let got: Vec<wiremock::Request> = provider
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| !is_setup(r))
            .collect();
        let attempts = match (case.unsent, case.attempts) {
            (true, _) => 0,
            (false, 0) => 1,
            (false, n) => n,
        };
        assert_eq!(got.len(), attempts, "{label}: requests the provider got");
        let (m, p) = table.send;
        for (i, (request, expect)) in got
            .iter()
            .zip(std::iter::once(&case.request).chain(&case.more))
            .enumerate()
        {
            let label = format!("{label} (request {})", i + 1);
            assert_eq!(request.method.as_str(), m, "{label}: method");
            assert_eq!(
                request.url.path(),
                expect.path.unwrap_or(p),
                "{label}: path"
            );
            check_request(request, expect, &label, &cid, &bench.public, &mid);
        }
        bench.assert_redacted(table, &cid, label).await;
    }
}

/// Checks one request the stub got against what was expected.
fn check_request(
    r: &wiremock::Request,
    expect: &ExpectRequest,
    label: &str,
    cid: &str,
    public: &str,
    mid: &str,
) {
    let bench_public = public;
    if let Some(verify) = expect.verify
        && let Err(why) = verify(r)
    {
        panic!("{label}: {why}");
    }
    for (name, value) in &expect.headers {
        let value = fill(value, cid, bench_public).replace("{message_id}", mid);
        let got = r
            .headers
            .get(*name)
            .map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(
            got.as_deref(),
            Some(value.as_str()),
            "{label}: header {name}"
        );
    }
    let fields = request_form(r);
    for (name, value) in &expect.form {
        let value = fill(value, cid, bench_public).replace("{message_id}", mid);
        let got: Vec<&String> = fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, vec![&value], "{label}: field {name} in {fields:?}");
    }
    for name in &expect.absent {
        assert!(
            !fields.iter().any(|(k, _)| k == name),
            "{label}: field {name} should be absent: {fields:?}"
        );
    }
    if let Some(expected) = &expect.json {
        let expected = json_message_id(&fill_json(expected, cid, bench_public), mid);
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        assert!(
            subset(&body, &expected),
            "{label}: request body\n got {body:#}\nwant {expected:#}"
        );
    }
}
