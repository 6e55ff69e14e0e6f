//! The driver every HTTP aggregator channel type shares (`africastalking`, `twilio`,
//! `infobip`, `vonage`, `clickatell`, `dmark`, `aat`, `http`).
//!
//! A type is a [`Provider`]: pure functions from a message to the provider's HTTP request,
//! from the provider's answer to an outcome, and from a provider callback to what it means
//! (inbound messages, delivery reports, a USSD request). This module does the I/O around
//! them: it sends with reqwest (each send its own task, bounded by the channel window),
//! classifies failures (throttled, 5xx and timeouts are retried by the channel, other
//! refusals are final `nack`s with the provider's reason), maps provider ids to ours for
//! delivery reports (in the store, so a report reaching another node finds its message),
//! answers callbacks, and runs USSD sessions (`ussd` below). Every request and callback is
//! summarised in the channel log with the channel's secrets scrubbed out.
//!
//! USSD sessions are bounded per channel and node (`max_ussd_sessions`, default 20,000:
//! the sessions this node saw the last request of, each held until it ends or idles out):
//! a new session past it is answered at once with `timeout_message` as a session end,
//! never reaches the application, and is counted (`hornbill_limit_reached_total{limit=
//! "ussd_sessions"}`) and logged (a flood at most once per 10 s). Sessions already open go
//! on as before.

pub mod aat;
pub mod africastalking;
pub mod clickatell;
pub mod dmark;
pub mod http;
pub mod httprpc;
pub mod infobip;
pub mod twilio;
pub mod vonage;
pub mod webhook;

use super::{
    Callback, CallbackResponse, Reporter, TransportCommand, TransportContext, TransportError,
    TransportReport,
};
use crate::message::{DeliveryStatus, Level, Message, SessionEvent};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest provider answer quoted in the channel log.
const QUOTE: usize = 300;

/// An HTTP request to the provider.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub basic_auth: Option<(String, String)>,
    pub body: RequestBody,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RequestBody {
    None,
    Form(Vec<(String, String)>),
    Json(Value),
    Raw { content_type: String, body: String },
}

impl ProviderRequest {
    pub fn new(method: &'static str, url: impl Into<String>, body: RequestBody) -> Self {
        ProviderRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            basic_auth: None,
            body,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn basic(mut self, user: &str, password: &str) -> Self {
        self.basic_auth = Some((user.to_string(), password.to_string()));
        self
    }
}

/// The provider's answer to a request.
#[derive(Clone, Debug)]
pub struct ProviderResponse {
    pub status: u16,
    pub body: String,
}

impl ProviderResponse {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        ProviderResponse {
            status,
            body: body.into(),
        }
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// What a send came to.
#[derive(Clone, Debug, PartialEq)]
pub enum SendOutcome {
    /// Accepted; the provider's id for it (delivery reports name it), if it gave one.
    Accepted(Option<String>),
    /// Not now (throttled, the provider is down): the channel pauses and tries again.
    Retry(String),
    /// Refused for good, with the provider's reason.
    Failed(String),
}

/// The usual reading of an HTTP status: 408, 429 and 5xx mean "try again later"; any
/// other non-2xx is final. `None` for 2xx: the provider's body decides.
pub fn status_outcome(resp: &ProviderResponse) -> Option<SendOutcome> {
    let code = resp.status;
    if (200..300).contains(&code) {
        return None;
    }
    let said = quote(&resp.body);
    let reason = if said.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {said}")
    };
    Some(if code == 408 || code == 429 || code >= 500 {
        SendOutcome::Retry(reason)
    } else {
        SendOutcome::Failed(reason)
    })
}

/// A message from a user, as the provider's callback gave it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inbound {
    pub from: String,
    pub to: String,
    pub content: Option<String>,
    /// Kept under `transport_metadata.<provider name>`.
    pub metadata: Map<String, Value>,
}

/// A delivery report: whose, and what it says.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The provider's id of the message.
    pub provider_id: Option<String>,
    /// Our id, when the callback carries it (a callback URL or reference we gave).
    pub message_id: Option<String>,
    pub status: DeliveryStatus,
    /// The provider's own word for it, for the log.
    pub detail: String,
}

/// Where a USSD request stands, as far as the provider says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UssdStep {
    /// The store decides: a session it knows is resumed, any other is new.
    Continue,
    /// The provider says the session starts here (whatever the store knows).
    Start,
    /// The provider says the session goes on (AAT: its callback URL says so).
    Resume,
    /// The user or network ended the session (a notification, no answer expected).
    End,
}

/// One USSD request from a synchronous provider: held open until the application answers.
#[derive(Clone, Debug, PartialEq)]
pub struct UssdRequest {
    pub session_id: String,
    pub from: String,
    pub to: String,
    /// The user's text of this step.
    pub content: Option<String>,
    /// The provider sends the whole path typed so far, `*`-separated (Africa's Talking):
    /// the new part is what follows the text of the session's previous request.
    pub cumulative: bool,
    /// A new session starts without content (Vumi's Dmark: the dialled code is not input).
    pub new_without_content: bool,
    pub step: UssdStep,
    pub metadata: Map<String, Value>,
}

/// What a callback means.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    Messages(Vec<Inbound>),
    Reports(Vec<Report>),
    Ussd(UssdRequest),
    /// Nothing for the channel (e.g. an intermediate status no event stands for).
    Ignored(String),
}

/// A provider request hornbill refuses (its answer, and a channel-log entry).
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub response: CallbackResponse,
    pub reason: String,
}

impl Refusal {
    /// 400 with the reason as text.
    pub fn bad_request(reason: impl Into<String>) -> Refusal {
        let reason = reason.into();
        Refusal {
            response: CallbackResponse::text(400, reason.clone()),
            reason,
        }
    }

    pub fn with(response: CallbackResponse, reason: impl Into<String>) -> Refusal {
        Refusal {
            response,
            reason: reason.into(),
        }
    }
}

/// What a provider's send knows about where it runs.
pub struct SendContext<'a> {
    pub channel_id: &'a str,
    /// `{public base}/channels/{channel id}`, for callback URLs given to the provider.
    pub callback_base: Option<&'a str>,
}

impl SendContext<'_> {
    /// The public URL of one of this channel's callbacks, if the public listener is on.
    pub fn callback(&self, action: &str) -> Option<String> {
        self.callback_base.map(|b| format!("{b}/{action}"))
    }
}

/// USSD timings of a channel (its config keys).
#[derive(Clone, Debug)]
pub struct UssdSettings {
    /// How long a request waits for the application (`request_timeout`).
    pub request_timeout: Duration,
    /// What the user is told when it did not answer in time (`timeout_message`).
    pub timeout_message: String,
    /// A session without a request for this long is over (`ussd_session_timeout`).
    pub session_timeout: Duration,
    /// Sessions open at once on this node; a new one past it is refused
    /// (`max_ussd_sessions`).
    pub max_sessions: usize,
}

/// Defaults of the USSD keys, shared by the USSD channel types.
pub mod ussd_defaults {
    pub fn request_timeout() -> f64 {
        30.0
    }
    pub fn timeout_message() -> String {
        "Sorry, the service did not answer in time. Please try again later.".into()
    }
    pub fn session_timeout() -> f64 {
        600.0
    }
    pub fn max_sessions() -> usize {
        20_000
    }
    /// Largest `max_ussd_sessions` accepted.
    pub const MAX_MAX_SESSIONS: usize = 10_000_000;
    pub fn check_max_sessions(n: usize) -> Result<(), String> {
        if (1..=MAX_MAX_SESSIONS).contains(&n) {
            Ok(())
        } else {
            Err(format!(
                "max_ussd_sessions must be from 1 to {MAX_MAX_SESSIONS} (got {n})"
            ))
        }
    }
}

/// One channel type's protocol: pure functions, no I/O.
pub trait Provider: 'static {
    /// The key of its `transport_metadata` (e.g. `africastalking`, Vumi's `dmark_ussd`).
    fn name(&self) -> &'static str;
    /// Values that must never appear in a log line (API keys, passwords, tokens).
    fn secrets(&self) -> Vec<String>;
    /// The request that sends `msg`, or the final reason it cannot be sent.
    fn build_send(&self, msg: &Message, cx: &SendContext) -> Result<ProviderRequest, String>;
    /// What the provider's answer to a send means.
    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome;
    /// What a callback means, and the answer it gets (ignored for a USSD request that
    /// waits for the application).
    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal>;
    /// The answer to a held USSD request: `text`, continuing the session or ending it.
    fn ussd_answer(&self, req: &UssdRequest, text: &str, end: bool) -> CallbackResponse {
        let _ = (req, end);
        CallbackResponse::text(200, text)
    }
    /// The channel's USSD timings, if it takes USSD requests.
    fn ussd(&self) -> Option<UssdSettings> {
        None
    }
    /// Whether the provider sends delivery reports that name its own ids (the driver then
    /// keeps a provider id -> message id map for `outbound_message_ttl`).
    fn maps_ids(&self) -> bool {
        true
    }
    /// Checked first for every outbound message, replies to held USSD requests included:
    /// the final reason it cannot go (Vumi's Dmark and AAT nack a reply without content).
    fn check_send(&self, msg: &Message) -> Result<(), String> {
        let _ = msg;
        Ok(())
    }
    /// The nack reason of a USSD reply whose request has gone (timed out, or answered).
    fn request_gone(&self) -> &'static str {
        "Could not find original request."
    }
    /// The `provider` of its inbound messages, given their transport metadata (Vumi's
    /// Dmark: `dmark`; AAT: the user's network).
    fn message_provider(&self, metadata: &Map<String, Value>) -> Option<String> {
        let _ = metadata;
        None
    }
}

/// Where a channel of an HTTP type starts: what its provider may need to know of itself.
pub struct StartContext<'a> {
    pub channel_id: &'a str,
    /// As `TransportContext::callback_base`; `None` when only validating a config.
    pub callback_base: Option<&'a str>,
    /// The secret in it (a type that builds its callback URLs from its own base URL).
    pub callback_secret: Option<&'a str>,
}

/// An HTTP aggregator channel type: a provider made from a channel's `config`.
pub trait HttpType: Provider + Sized {
    /// The API `type` string.
    const TYPE: &'static str;
    /// The Vumi `transport_type` of its messages unless the config says otherwise.
    const TRANSPORT_TYPE: &'static str;
    /// Its callbacks on the public listener (`/channels/{id}/{secret}/{action}`).
    const ACTIONS: &'static [&'static str];
    /// Its config struct (for the OpenAPI document).
    type Config: utoipa::ToSchema;
    /// The provider for a (checked) config; the error text is shown to the API client.
    fn from_config(config: &Value, cx: &StartContext) -> Result<Self, String>;
    /// How long one request to the provider may take.
    fn http_timeout(&self) -> Duration;
}

/// The `TransportFactory` of an HTTP aggregator channel type.
pub struct Factory<T>(std::marker::PhantomData<fn() -> T>);

impl<T> Factory<T> {
    pub const fn new() -> Self {
        Factory(std::marker::PhantomData)
    }
}

impl<T> Default for Factory<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: HttpType> super::TransportFactory for Factory<T> {
    fn name(&self) -> &'static str {
        T::TYPE
    }

    fn transport_type(&self, config: &Value) -> String {
        super::configured_transport_type(config, T::TRANSPORT_TYPE)
    }

    fn callback_actions(&self, _config: &Value) -> Vec<&'static str> {
        T::ACTIONS.to_vec()
    }

    fn config_schema(&self) -> Value {
        super::config_schema::<T::Config>()
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        let cx = StartContext {
            channel_id: "",
            callback_base: None,
            callback_secret: None,
        };
        T::from_config(config, &cx).map(|_| ())
    }

    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> futures::future::LocalBoxFuture<'static, Result<(), TransportError>> {
        let cx = StartContext {
            channel_id: &ctx.channel_id,
            callback_base: ctx.callback_base.as_deref(),
            callback_secret: ctx.callback_secret.as_deref(),
        };
        let provider = T::from_config(config, &cx);
        Box::pin(async move {
            let provider = provider.map_err(TransportError::Other)?;
            let timeout = provider.http_timeout();
            run(provider, timeout, ctx).await
        })
    }
}

/// The value of a callback's form field, if present.
pub fn form_field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The named form fields, or a 400 naming the first one missing.
pub fn required_fields<'a>(
    form: &'a [(String, String)],
    names: &[&str],
) -> Result<Vec<&'a str>, Refusal> {
    names
        .iter()
        .map(|n| {
            form_field(form, n).ok_or_else(|| Refusal::bad_request(format!("field '{n}' required")))
        })
        .collect()
}

/// A JSON object body's fields, values as text (nulls left out); `None` when the callback's
/// body is not JSON.
pub fn json_fields(cb: &Callback) -> Result<Option<Vec<(String, String)>>, Refusal> {
    let json = cb
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return Ok(None);
    }
    let body: Value = serde_json::from_slice(&cb.body)
        .map_err(|e| Refusal::bad_request(format!("unable to parse request JSON: {e}")))?;
    let Value::Object(map) = body else {
        return Err(Refusal::bad_request("the JSON body must be an object"));
    };
    Ok(Some(
        map.into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect(),
    ))
}

/// The `{"message": ...}` answer to a callback that was taken.
pub fn accepted(what: &str) -> CallbackResponse {
    CallbackResponse::json(200, &serde_json::json!({"message": what}))
}

/// The named form fields that are present, as transport metadata.
pub fn form_metadata(form: &[(String, String)], keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| form_field(form, k).map(|v| (k.to_string(), Value::String(v.to_string()))))
        .collect()
}

/// `text` cut to `QUOTE` characters for a log line.
pub fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// `text` with every secret replaced by the redaction mark (secrets shorter than 4
/// characters are too likely to match innocent text; configs reject none, so they are
/// scrubbed too when they appear as a whole word of a URL or form).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), crate::redact::MARK);
        let encoded: String =
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        if encoded != *s {
            out = out.replace(&encoded, crate::redact::MARK);
        }
    }
    out
}

/// The URL of a request, as the channel log shows it.
fn shown_url(url: &str, secrets: &[String]) -> String {
    scrub(&crate::redact::url(url), secrets)
}

struct Held {
    reply: tokio::sync::oneshot::Sender<CallbackResponse>,
    deadline: Instant,
    request: UssdRequest,
    /// The inbound message's addresses and metadata, for the `close` sent on a timeout.
    inbound: Message,
}

/// A USSD session as the store keeps it (`hornbill:{cid}:state:ussd:{session id}`).
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct SessionState {
    /// The text of the last request (a cumulative provider's path so far).
    text: String,
    /// Seconds since the epoch of the last request.
    last: f64,
}

struct Driver<P: Provider> {
    provider: P,
    cid: String,
    /// Reports, log lines and status events, the provider's and callback secrets scrubbed.
    reporter: Reporter,
    store: std::sync::Arc<dyn crate::store::Store>,
    callback_base: Option<String>,
    ttls: crate::store::Ttls,
    client: reqwest::Client,
    held: RefCell<HashMap<String, Held>>,
    /// Sessions this node saw the last request of: id -> (when it ends if idle, its last
    /// inbound message, for the `close` the application gets then).
    sessions: RefCell<HashMap<String, (Instant, Message)>>,
    up: std::cell::Cell<bool>,
    /// The store outlives this process and may be shared with other nodes (Redis): a reply
    /// that reaches a node not holding its request is handed over through the store.
    shared_store: bool,
    /// A look in the store for answers handed over is under way.
    polling: std::cell::Cell<bool>,
    /// Sessions refused at `max_ussd_sessions`, logged at most once per 10 s.
    refusals: RefCell<crate::limits::LogEvery>,
}

/// Runs a provider's channel until its command channel closes.
pub async fn run<P: Provider>(
    provider: P,
    timeout: Duration,
    ctx: TransportContext,
) -> Result<(), TransportError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| TransportError::Other(e.to_string()))?;
    let TransportContext {
        channel_id,
        mut commands,
        reports,
        store,
        mut callbacks,
        callback_base,
        callback_secret,
        ttls,
        ..
    } = ctx;
    let shared_store = store.kind() != "memory";
    let mut secrets = provider.secrets();
    secrets.extend(callback_secret);
    let driver = Rc::new(Driver {
        shared_store,
        polling: std::cell::Cell::new(false),
        provider,
        reporter: Reporter::new(&channel_id, reports).with_secrets(secrets),
        cid: channel_id,
        store,
        callback_base,
        ttls,
        client,
        held: RefCell::default(),
        sessions: RefCell::default(),
        up: std::cell::Cell::new(true),
        refusals: RefCell::new(crate::limits::LogEvery::new(Duration::from_secs(10))),
    });
    let started = match &driver.callback_base {
        Some(b) => format!("Running; callbacks at {b}/"),
        None => "Running (the public listener is off: no callbacks)".into(),
    };
    driver.status(Level::Ok, "started", started);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut intake_open = true;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return Ok(()),
                Some(TransportCommand::Send(msg)) => driver.clone().send(msg),
            },
            cb = callbacks.recv(), if intake_open => match cb {
                Some(cb) => driver.clone().callback(cb),
                None => intake_open = false,
            },
            _ = tick.tick() => driver.clone().sweep(),
        }
    }
}

impl<P: Provider> Driver<P> {
    fn report(&self, r: TransportReport) {
        self.reporter.report(r);
    }

    fn log(&self, level: u8, message: impl AsRef<str>) {
        self.reporter.log(level, message)
    }

    /// A log line about one message (its story: `GET /channels/{id}/messages/{mid}/logs`).
    fn log_about(&self, level: u8, message_id: Option<&str>, message: impl AsRef<str>) {
        self.reporter.log_about(level, message_id, message)
    }

    fn status(&self, level: Level, kind: &str, message: impl AsRef<str>) {
        self.reporter
            .status(self.provider.name(), level, kind, message)
    }

    fn ack(&self, message_id: String, sent_message_id: String) {
        self.report(TransportReport::Ack {
            message_id,
            sent_message_id,
        });
    }

    fn nack(&self, message_id: String, reason: String, retry: bool) {
        self.report(TransportReport::Nack {
            message_id,
            reason: self.reporter.scrub(&reason),
            retry,
        });
    }

    /// The session id a message belongs to, if it is part of a USSD session of ours.
    fn session_of(&self, msg: &Message) -> Option<String> {
        msg.transport_metadata
            .get(self.provider.name())
            .and_then(|m| m.get(SESSION_KEY))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn send(self: Rc<Self>, msg: Message) {
        if let Err(reason) = self.provider.check_send(&msg) {
            self.nack(msg.message_id, reason, false);
            return;
        }
        // A reply to a held USSD request is its answer.
        let held = msg
            .in_reply_to
            .as_ref()
            .and_then(|id| self.held.borrow_mut().remove(id));
        if let Some(held) = held {
            self.answer_ussd(held, msg);
            return;
        }
        if let (Some(original), Some(_)) = (msg.in_reply_to.clone(), self.session_of(&msg)) {
            if self.shared_store {
                // Another node may hold the request: the answer goes to it through the store.
                tokio::task::spawn_local(async move { self.hand_over(original, msg).await });
            } else {
                self.no_request(msg);
            }
            return;
        }
        let cx = SendContext {
            channel_id: &self.cid,
            callback_base: self.callback_base.as_deref(),
        };
        let request = match self.provider.build_send(&msg, &cx) {
            Ok(r) => r,
            Err(reason) => {
                self.nack(msg.message_id, reason, false);
                return;
            }
        };
        tokio::task::spawn_local(async move {
            let started = Instant::now();
            let shown = format!(
                "{} {}",
                request.method,
                shown_url(&request.url, self.reporter.secrets())
            );
            let outcome = match self.execute(&request).await {
                Ok(resp) => {
                    let outcome = self.provider.read_send(&resp);
                    let took = started.elapsed().as_millis();
                    let line = format!(
                        "Sent {} to the provider: {shown} answered {} in {took} ms: {}",
                        msg.message_id,
                        resp.status,
                        quote(&resp.body)
                    );
                    let level = match outcome {
                        SendOutcome::Accepted(_) => crate::logs::INFO,
                        _ => crate::logs::WARNING,
                    };
                    self.log_about(level, Some(&msg.message_id), line);
                    outcome
                }
                Err(why) => {
                    self.log_about(
                        crate::logs::WARNING,
                        Some(&msg.message_id),
                        format!("Sending {} failed: {shown}: {why}", msg.message_id),
                    );
                    SendOutcome::Retry(why)
                }
            };
            match outcome {
                SendOutcome::Accepted(provider_id) => {
                    if !self.up.replace(true) {
                        self.status(Level::Ok, "provider_ok", "The provider answers again");
                    }
                    let sent = provider_id
                        .clone()
                        .unwrap_or_else(|| msg.message_id.clone());
                    if let Some(pid) = provider_id.filter(|_| self.provider.maps_ids()) {
                        let key = format!("{ID_KEY}{pid}");
                        // A failed write loses only this message's delivery reports.
                        if let Err(e) = self
                            .store
                            .set_message_state(&self.cid, &key, &msg.message_id, self.ttls.outbound)
                            .await
                        {
                            self.log_about(
                                crate::logs::WARNING,
                                Some(&msg.message_id),
                                format!(
                                    "Could not keep the provider id of {}: {e}",
                                    msg.message_id
                                ),
                            );
                        }
                    }
                    self.ack(msg.message_id, sent);
                }
                SendOutcome::Retry(why) => {
                    if self.up.replace(false) {
                        self.status(
                            Level::Degraded,
                            "provider_unavailable",
                            format!("{shown}: {why}"),
                        );
                    }
                    self.nack(msg.message_id, why, true);
                }
                SendOutcome::Failed(why) => self.nack(msg.message_id, why, false),
            }
        });
    }

    /// Sends one request: the provider's answer, or why there was none.
    async fn execute(&self, r: &ProviderRequest) -> Result<ProviderResponse, String> {
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.client.request(method, &r.url);
        for (k, v) in &r.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some((u, p)) = &r.basic_auth {
            req = req.basic_auth(u, Some(p));
        }
        req = match &r.body {
            RequestBody::None => req,
            RequestBody::Form(fields) => req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(fields)
                        .finish(),
                ),
            RequestBody::Json(v) => req
                .header("Content-Type", "application/json")
                .body(v.to_string()),
            RequestBody::Raw { content_type, body } => req
                .header("Content-Type", content_type.as_str())
                .body(body.clone()),
        };
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                Ok(ProviderResponse { status, body })
            }
            Err(e) if e.is_timeout() => Err("timed out".into()),
            Err(e) if e.is_connect() => Err("connection failed".into()),
            Err(_) => Err("request failed".into()),
        }
    }

    fn callback(self: Rc<Self>, cb: Callback) {
        let action = cb.action.clone();
        let (received, response) = match self.provider.receive(&cb) {
            Ok(x) => x,
            Err(refusal) => {
                self.log(
                    crate::logs::WARNING,
                    format!(
                        "Refused a {action} callback ({}): {}",
                        refusal.response.status, refusal.reason
                    ),
                );
                crate::telemetry::callback_refused(&self.cid, "refused");
                cb.respond(refusal.response);
                return;
            }
        };
        match received {
            Received::Messages(list) => {
                for inbound in list {
                    // (The channel logs its arrival.)
                    let msg = self.inbound_message(inbound, None);
                    self.report(TransportReport::Inbound(Box::new(msg)));
                }
                cb.respond(response);
            }
            Received::Reports(list) => {
                cb.respond(response);
                tokio::task::spawn_local(async move {
                    for r in list {
                        self.delivery_report(r).await;
                    }
                });
            }
            Received::Ignored(why) => {
                self.log(
                    crate::logs::INFO,
                    format!("Ignored a {action} callback: {why}"),
                );
                cb.respond(response);
            }
            Received::Ussd(req) => {
                tokio::task::spawn_local(async move { self.ussd_request(cb, req, response).await });
            }
        }
    }

    fn inbound_message(&self, inbound: Inbound, session: Option<(&str, SessionEvent)>) -> Message {
        let mut msg = Message::new(Some(inbound.to), Some(inbound.from), inbound.content);
        let mut meta = inbound.metadata;
        msg.provider = self.provider.message_provider(&meta);
        if let Some((sid, event)) = session {
            meta.insert(SESSION_KEY.into(), Value::String(sid.to_string()));
            msg.session_event = Some(event);
            msg.transport_type = Some("ussd".into());
            msg.helper_metadata
                .insert("session_id".into(), Value::String(sid.to_string()));
        }
        msg.transport_metadata
            .insert(self.provider.name().into(), Value::Object(meta));
        msg
    }

    async fn delivery_report(&self, r: Report) {
        let too_long = |id: &Option<String>| id.as_ref().is_some_and(|i| i.len() > MAX_ID);
        if too_long(&r.message_id) || too_long(&r.provider_id) {
            self.log(
                crate::logs::WARNING,
                format!("Delivery report ignored: an id longer than {MAX_ID} characters"),
            );
            crate::telemetry::callback_refused(&self.cid, "unknown_message");
            return;
        }
        // Our id, when the callback names one (a reference or URL we gave the provider), is
        // believed only for a message this channel sent: a forged report cannot touch (or
        // create a record for) anybody else's. Then the provider's id, through the map kept
        // when the provider accepted the send (Twilio's `MessageSid` when `id` is unknown).
        let mut mid = None;
        if let Some(m) = &r.message_id {
            match self.store.load_outbound(&self.cid, m).await {
                Ok(Some(_)) => mid = Some(m.clone()),
                Ok(None) => {}
                Err(e) => self.log(
                    crate::logs::WARNING,
                    format!("Could not look up message {m}: {e}"),
                ),
            }
        }
        if mid.is_none()
            && let Some(pid) = &r.provider_id
        {
            let key = format!("{ID_KEY}{pid}");
            // The report may overtake the provider's answer to the send: wait a little.
            for _ in 0..10 {
                match self.store.get_state(&self.cid, &key).await {
                    Ok(Some(m)) => {
                        mid = Some(m);
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(e) => {
                        self.log(
                            crate::logs::WARNING,
                            format!("Could not look up {pid}: {e}"),
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        match mid {
            Some(message_id) => {
                self.log_about(
                    crate::logs::INFO,
                    Some(&message_id),
                    format!(
                        "Delivery report for {message_id}: {} ({})",
                        r.detail,
                        status_word(r.status)
                    ),
                );
                self.report(TransportReport::DeliveryReport {
                    message_id,
                    status: r.status,
                });
            }
            None => {
                crate::telemetry::callback_refused(&self.cid, "unknown_message");
                self.log(
                    crate::logs::WARNING,
                    match (&r.message_id, &r.provider_id) {
                        (Some(m), _) => format!(
                            "Delivery report for a message this channel did not send ({m:?}): {}",
                            r.detail
                        ),
                        (None, p) => format!(
                            "Delivery report for unknown provider id {:?}: {}",
                            p.clone().unwrap_or_default(),
                            r.detail
                        ),
                    },
                )
            }
        }
    }
}

fn status_word(s: DeliveryStatus) -> &'static str {
    match s {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
    }
}

/// `transport_metadata.<provider>` key of a USSD message's session id.
pub const SESSION_KEY: &str = "session_id";
/// Longest message or provider id a delivery report may name.
const MAX_ID: usize = 128;
/// State key prefix of the provider id -> message id map.
const ID_KEY: &str = "id:";
/// State key prefix of USSD sessions.
const USSD_KEY: &str = "ussd:";
/// State key prefix of USSD requests some node holds (by inbound message id).
const HELD_KEY: &str = "held:";
/// State key prefix of answers handed to the node holding the request.
const ANSWER_KEY: &str = "answer:";

impl<P: Provider> Driver<P> {
    fn ussd_settings(&self) -> UssdSettings {
        self.provider.ussd().unwrap_or_else(|| UssdSettings {
            request_timeout: Duration::from_secs_f64(ussd_defaults::request_timeout()),
            timeout_message: ussd_defaults::timeout_message(),
            session_timeout: Duration::from_secs_f64(ussd_defaults::session_timeout()),
            max_sessions: ussd_defaults::max_sessions(),
        })
    }

    /// The `close` the application gets when a session ends without it ending it.
    fn close_message(last: &Message) -> Message {
        let mut m = Message::new(last.to_addr.clone(), last.from_addr.clone(), None);
        m.session_event = Some(SessionEvent::Close);
        m.transport_metadata = last.transport_metadata.clone();
        m.helper_metadata = last.helper_metadata.clone();
        m.provider = last.provider.clone();
        m
    }

    async fn forget_session(&self, sid: &str) {
        self.sessions.borrow_mut().remove(sid);
        let key = format!("{USSD_KEY}{sid}");
        if let Err(e) = self.store.delete_state(&self.cid, &key).await {
            self.log(
                crate::logs::WARNING,
                format!("Could not end USSD session {sid}: {e}"),
            );
        }
    }

    async fn ussd_request(
        self: Rc<Self>,
        cb: Callback,
        req: UssdRequest,
        response: CallbackResponse,
    ) {
        let settings = self.ussd_settings();
        let sid = req.session_id.clone();
        let key = format!("{USSD_KEY}{sid}");
        let previous = match self.store.get_state(&self.cid, &key).await {
            Ok(v) => v.map(|t| serde_json::from_str::<SessionState>(&t).unwrap_or_default()),
            Err(e) => {
                // Without the session the request cannot be placed: the user is told, and
                // the provider gets a proper answer rather than an error page.
                self.log(
                    crate::logs::ERROR,
                    format!("USSD session {sid}: the store is unavailable ({e}); the user was told to try later"),
                );
                let answer = self
                    .provider
                    .ussd_answer(&req, &settings.timeout_message, true);
                cb.respond(answer);
                return;
            }
        };
        if req.step == UssdStep::End {
            let local = self.sessions.borrow().get(&sid).map(|(_, m)| m.clone());
            if previous.is_some() || local.is_some() {
                let base = local.unwrap_or_else(|| {
                    self.inbound_message(
                        Inbound {
                            from: req.from.clone(),
                            to: req.to.clone(),
                            content: None,
                            metadata: req.metadata.clone(),
                        },
                        Some((&sid, SessionEvent::Resume)),
                    )
                });
                let close = Self::close_message(&base);
                self.log(
                    crate::logs::INFO,
                    format!(
                        "USSD session {sid} ended by the provider; close sent as {}",
                        close.message_id
                    ),
                );
                self.report(TransportReport::Inbound(Box::new(close)));
                self.forget_session(&sid).await;
            } else {
                self.log(
                    crate::logs::INFO,
                    format!("End of unknown USSD session {sid}"),
                );
            }
            cb.respond(response);
            return;
        }
        let raw = req.content.clone().unwrap_or_default();
        let previous = match req.step {
            UssdStep::Start => None,
            UssdStep::Resume => Some(previous.unwrap_or_default()),
            _ => previous,
        };
        let (event, content) = match &previous {
            None if req.new_without_content || raw.is_empty() => (SessionEvent::New, None),
            None => (SessionEvent::New, Some(raw.clone())),
            Some(prev) if req.cumulative && !prev.text.is_empty() => {
                let prefix = format!("{}*", prev.text);
                let part = raw.strip_prefix(prefix.as_str()).unwrap_or(&raw);
                (SessionEvent::Resume, Some(part.to_string()))
            }
            Some(_) => (SessionEvent::Resume, Some(raw.clone())),
        };
        if event == SessionEvent::New && !self.sessions.borrow().contains_key(&sid) {
            let open = self.sessions.borrow().len();
            if open >= settings.max_sessions {
                // Refused before anything is kept: the user is told to try later, the
                // application hears nothing.
                crate::telemetry::limit_reached(&self.cid, crate::telemetry::Limit::UssdSessions);
                let due = self.refusals.borrow_mut().due(Instant::now());
                if let Some(unwritten) = due {
                    self.log(
                        crate::logs::WARNING,
                        format!(
                            "USSD session {sid} refused: {open} sessions are open on this channel (max_ussd_sessions); the user was told to try later{}",
                            crate::limits::more_since(unwritten)
                        ),
                    );
                }
                let answer = self
                    .provider
                    .ussd_answer(&req, &settings.timeout_message, true);
                cb.respond(answer);
                return;
            }
        }
        let state = SessionState {
            text: raw,
            last: crate::actors::now_secs(),
        };
        let ttl = settings.session_timeout + Duration::from_secs(60);
        let saved = serde_json::to_string(&state).unwrap_or_default();
        if let Err(e) = self.store.set_state(&self.cid, &key, &saved, ttl).await {
            self.log(
                crate::logs::WARNING,
                format!("USSD session {sid}: could not save it ({e}); carrying on"),
            );
        }
        let msg = self.inbound_message(
            Inbound {
                from: req.from.clone(),
                to: req.to.clone(),
                content,
                metadata: req.metadata.clone(),
            },
            Some((&sid, event)),
        );
        let now = Instant::now();
        self.log_about(
            crate::logs::INFO,
            Some(&msg.message_id),
            format!(
                "USSD request in session {sid} ({}): inbound {}, waiting up to {:.0} s for the answer",
                event.as_str(),
                msg.message_id,
                settings.request_timeout.as_secs_f64()
            ),
        );
        self.sessions
            .borrow_mut()
            .insert(sid.clone(), (now + settings.session_timeout, msg.clone()));
        if self.shared_store {
            let key = format!("{HELD_KEY}{}", msg.message_id);
            let ttl = settings.request_timeout + Duration::from_secs(10);
            if let Err(e) = self.store.set_state(&self.cid, &key, "1", ttl).await {
                self.log(
                    crate::logs::WARNING,
                    format!("USSD session {sid}: other nodes cannot answer it ({e})"),
                );
            }
        }
        self.held.borrow_mut().insert(
            msg.message_id.clone(),
            Held {
                reply: cb.reply,
                deadline: now + settings.request_timeout,
                request: req,
                inbound: msg.clone(),
            },
        );
        self.report(TransportReport::Inbound(Box::new(msg)));
    }

    /// Junebug's (Vumi's) answer to a reply whose request has gone (timed out, answered
    /// already, or never seen).
    fn no_request(&self, msg: Message) {
        self.log_about(
            crate::logs::WARNING,
            Some(&msg.message_id),
            format!(
                "USSD reply {} has no request waiting for it",
                msg.message_id
            ),
        );
        self.nack(msg.message_id, self.provider.request_gone().into(), false);
    }

    /// A reply to a request this node does not hold: if another node holds it, the answer is
    /// left in the store for that node, which looks for answers every sweep.
    async fn hand_over(&self, original: String, msg: Message) {
        let held = self
            .store
            .get_state(&self.cid, &format!("{HELD_KEY}{original}"))
            .await;
        match held {
            Ok(Some(_)) => {
                let answer = serde_json::json!({
                    "message_id": msg.message_id,
                    "content": msg.content,
                    "end": msg.session_event == Some(SessionEvent::Close)
                        || msg.continue_session() == Some(false),
                });
                let key = format!("{ANSWER_KEY}{original}");
                let ttl = Duration::from_secs(60);
                match self
                    .store
                    .set_state(&self.cid, &key, &answer.to_string(), ttl)
                    .await
                {
                    Ok(()) => {
                        self.log_about(
                            crate::logs::INFO,
                            Some(&msg.message_id),
                            format!(
                                "USSD answer {} handed to the node holding request {original}",
                                msg.message_id
                            ),
                        );
                        self.ack(msg.message_id.clone(), msg.message_id);
                    }
                    Err(e) => self.nack(
                        msg.message_id,
                        format!("Could not hand the answer over: {e}"),
                        true,
                    ),
                }
            }
            Ok(None) => self.no_request(msg),
            Err(e) => self.nack(
                msg.message_id,
                format!("Could not look the request up: {e}"),
                true,
            ),
        }
    }

    /// A held request is over: other nodes no longer hand answers to it.
    fn release(self: &Rc<Self>, original: &str) {
        if !self.shared_store {
            return;
        }
        let (me, original) = (self.clone(), original.to_string());
        tokio::task::spawn_local(async move {
            for key in [HELD_KEY, ANSWER_KEY] {
                let _ = me
                    .store
                    .delete_state(&me.cid, &format!("{key}{original}"))
                    .await;
            }
        });
    }

    /// Answers handed over by other nodes for the requests this node holds.
    fn poll_answers(self: &Rc<Self>) {
        if !self.shared_store || self.polling.get() || self.held.borrow().is_empty() {
            return;
        }
        self.polling.set(true);
        let ids: Vec<String> = self.held.borrow().keys().cloned().collect();
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let looks = ids.iter().map(|id| {
                let key = format!("{ANSWER_KEY}{id}");
                let store = me.store.clone();
                let cid = me.cid.clone();
                async move { store.get_state(&cid, &key).await.ok().flatten() }
            });
            let found = futures::future::join_all(looks).await;
            for (id, answer) in ids.into_iter().zip(found) {
                let Some(answer) = answer.and_then(|a| serde_json::from_str::<Value>(&a).ok())
                else {
                    continue;
                };
                let Some(held) = me.held.borrow_mut().remove(&id) else {
                    continue;
                };
                let text = answer["content"].as_str().unwrap_or_default();
                let end = answer["end"].as_bool().unwrap_or(false);
                let response = me.provider.ussd_answer(&held.request, text, end);
                let sid = held.request.session_id.clone();
                let _ = held.reply.send(response);
                me.log(
                    crate::logs::INFO,
                    format!(
                        "USSD answer {} (handed over by another node) in session {sid}",
                        answer["message_id"].as_str().unwrap_or("?")
                    ),
                );
                me.release(&id);
                if end {
                    me.forget_session(&sid).await;
                }
            }
            me.polling.set(false);
        });
    }

    fn answer_ussd(self: Rc<Self>, held: Held, msg: Message) {
        let end =
            msg.session_event == Some(SessionEvent::Close) || msg.continue_session() == Some(false);
        let text = msg.content.clone().unwrap_or_default();
        let answer = self.provider.ussd_answer(&held.request, &text, end);
        let sid = held.request.session_id.clone();
        self.release(&held.inbound.message_id);
        if held.reply.send(answer).is_ok() {
            self.log_about(
                crate::logs::INFO,
                Some(&msg.message_id),
                format!(
                    "USSD answer {} in session {sid} ({})",
                    msg.message_id,
                    if end {
                        "session ended"
                    } else {
                        "session continues"
                    }
                ),
            );
            self.ack(msg.message_id.clone(), msg.message_id);
        } else {
            self.nack(msg.message_id, self.provider.request_gone().into(), false);
        }
        if end {
            tokio::task::spawn_local(async move { self.forget_session(&sid).await });
        }
    }

    /// Answers the requests the application left waiting too long, and closes the sessions
    /// that went idle.
    fn sweep(self: Rc<Self>) {
        self.poll_answers();
        let now = Instant::now();
        let expired: Vec<Held> = {
            let mut held = self.held.borrow_mut();
            let ids: Vec<String> = held
                .iter()
                .filter(|(_, h)| h.deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter().filter_map(|id| held.remove(&id)).collect()
        };
        let idle: Vec<(String, Message)> = {
            let held = self.held.borrow();
            let waiting: std::collections::HashSet<&str> = held
                .values()
                .map(|h| h.request.session_id.as_str())
                .collect();
            self.sessions
                .borrow()
                .iter()
                .filter(|(sid, (deadline, _))| *deadline <= now && !waiting.contains(sid.as_str()))
                .map(|(sid, (_, m))| (sid.clone(), m.clone()))
                .collect()
        };
        if expired.is_empty() && idle.is_empty() {
            return;
        }
        let settings = self.ussd_settings();
        for h in expired {
            let sid = h.request.session_id.clone();
            let answer = self
                .provider
                .ussd_answer(&h.request, &settings.timeout_message, true);
            let _ = h.reply.send(answer);
            self.release(&h.inbound.message_id);
            let close = Self::close_message(&h.inbound);
            self.log_about(
                crate::logs::WARNING,
                Some(&h.inbound.message_id),
                format!(
                    "USSD request {} timed out after {:.0} s: the user was told so, session {sid} closed ({})",
                    h.inbound.message_id,
                    settings.request_timeout.as_secs_f64(),
                    close.message_id
                ),
            );
            self.report(TransportReport::Inbound(Box::new(close)));
            self.sessions.borrow_mut().remove(&sid);
            let me = self.clone();
            tokio::task::spawn_local(async move { me.forget_session(&sid).await });
        }
        for (sid, last) in idle {
            self.sessions.borrow_mut().remove(&sid);
            let me = self.clone();
            tokio::task::spawn_local(async move {
                let key = format!("{USSD_KEY}{sid}");
                // Another node may have taken the session's later requests.
                let state = me.store.get_state(&me.cid, &key).await.ok().flatten();
                let touched = state
                    .and_then(|t| serde_json::from_str::<SessionState>(&t).ok())
                    .is_some_and(|s| {
                        crate::actors::now_secs() - s.last < settings.session_timeout.as_secs_f64()
                    });
                if touched {
                    return;
                }
                let close = Self::close_message(&last);
                me.log(
                    crate::logs::INFO,
                    format!(
                        "USSD session {sid} idle for {:.0} s: closed ({})",
                        settings.session_timeout.as_secs_f64(),
                        close.message_id
                    ),
                );
                me.report(TransportReport::Inbound(Box::new(close)));
                me.forget_session(&sid).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_plain_and_url_encoded() {
        let secrets = vec!["s3cr3t+key/1".to_string()];
        assert_eq!(
            scrub(
                "GET https://x/?apiKey=s3cr3t%2Bkey%2F1 and s3cr3t+key/1",
                &secrets
            ),
            "GET https://x/?apiKey=*** and ***"
        );
    }

    #[test]
    fn statuses_split_into_retry_and_final() {
        let r = |status| ProviderResponse {
            status,
            body: "x".into(),
        };
        assert_eq!(status_outcome(&r(201)), None);
        assert!(matches!(
            status_outcome(&r(429)),
            Some(SendOutcome::Retry(_))
        ));
        assert!(matches!(
            status_outcome(&r(503)),
            Some(SendOutcome::Retry(_))
        ));
        assert!(matches!(
            status_outcome(&r(400)),
            Some(SendOutcome::Failed(_))
        ));
    }
}
