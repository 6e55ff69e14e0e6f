//! The I/O around a [`Provider`]: sends (each its own task, bounded by the channel
//! window), failure classes, the provider id -> message id map for delivery reports, and
//! callbacks. USSD sessions are in `ussd.rs`; the provider's model in `mod.rs`.

use super::ussd::Held;
use super::{
    Inbound, MediaAt, Provider, ProviderRequest, ProviderResponse, Received, Report, RequestBody,
    SendContext, SendOutcome, quote, shown_url,
};
use crate::message::{Attachment, DeliveryStatus, Level, Message, SessionEvent};
use crate::transports::{
    Callback, CallbackResponse, Dir, Reporter, TransportCommand, TransportContext, TransportError,
    TransportReport,
};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// `transport_metadata.<provider>` key of a USSD message's session id.
pub const SESSION_KEY: &str = "session_id";
/// Longest message or provider id a delivery report may name.
pub(super) const MAX_ID: usize = 128;
/// State key prefix of the provider id -> message id map.
const ID_KEY: &str = "id:";

pub(super) struct Driver<P: Provider> {
    pub(super) provider: P,
    pub(super) cid: String,
    /// Reports, log lines and status events, the provider's and callback secrets scrubbed.
    pub(super) reporter: Reporter,
    pub(super) store: std::sync::Arc<dyn crate::store::Store>,
    pub(super) callback_base: Option<String>,
    pub(super) ttls: crate::store::Ttls,
    pub(super) client: reqwest::Client,
    pub(super) held: RefCell<HashMap<String, Held>>,
    /// Sessions this node saw the last request of: id -> (when it ends if idle, its last
    /// inbound message, for the `close` the application gets then).
    pub(super) sessions: RefCell<HashMap<String, (Instant, Message)>>,
    pub(super) up: std::cell::Cell<bool>,
    /// The store outlives this process and may be shared with other nodes (Redis): a reply
    /// that reaches a node not holding its request is handed over through the store.
    pub(super) shared_store: bool,
    /// A look in the store for answers handed over is under way.
    pub(super) polling: std::cell::Cell<bool>,
    /// Sessions refused at `max_ussd_sessions`, logged at most once per 10 s.
    pub(super) refusals: RefCell<crate::limits::LogEvery>,
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
    let reporter = ctx.reporter();
    let TransportContext {
        channel_id,
        mut commands,
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
        reporter: reporter.with_secrets(secrets),
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
    let setup = driver.clone().set_up();
    tokio::pin!(setup);
    let mut set_up = false;
    loop {
        tokio::select! {
            _ = &mut setup, if !set_up => set_up = true,
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
    pub(super) fn report(&self, r: TransportReport) {
        self.reporter.report(r);
    }

    pub(super) fn log(&self, level: u8, message: impl AsRef<str>) {
        self.reporter.log(level, message)
    }

    /// A log line about one message (its story: `GET /channels/{id}/messages/{mid}/logs`).
    pub(super) fn log_about(&self, level: u8, message_id: Option<&str>, message: impl AsRef<str>) {
        self.reporter.log_about(level, message_id, message)
    }

    pub(super) fn status(&self, level: Level, kind: &str, message: impl AsRef<str>) {
        self.reporter
            .status(self.provider.name(), level, kind, message)
    }

    /// A request to the provider, as its `>>` protocol line (when `log_protocol` is on):
    /// method, URL (`shown`, secrets scrubbed) and body; never its headers (credentials).
    fn wire_request(&self, message_id: Option<&str>, shown: &str, r: &ProviderRequest) {
        self.reporter.protocol(Dir::Out, message_id, || {
            let body = match &r.body {
                RequestBody::None => String::new(),
                RequestBody::Form(fields) => url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish(),
                RequestBody::Json(v) => v.to_string(),
                RequestBody::Raw { body, .. } => body.clone(),
            };
            format!("{shown} {}", quote(&body)).trim_end().to_string()
        });
    }

    /// The provider's answer, as its `<<` protocol line.
    fn wire_answer(&self, message_id: Option<&str>, resp: &ProviderResponse) {
        self.reporter.protocol(Dir::In, message_id, || {
            format!("{} {}", resp.status, quote(&resp.body))
                .trim_end()
                .to_string()
        });
    }

    /// Hornbill's answer to a provider's callback, as its `>>` protocol line.
    pub(super) fn wire_callback_answer(&self, r: &CallbackResponse) {
        self.reporter.protocol(Dir::Out, None, || {
            format!("{} {}", r.status, quote(&r.body))
                .trim_end()
                .to_string()
        });
    }

    /// Answers a provider's callback (and writes the answer's protocol line).
    pub(super) fn respond(&self, cb: Callback, r: CallbackResponse) {
        self.wire_callback_answer(&r);
        cb.respond(r);
    }

    pub(super) fn ack(&self, message_id: String, sent_message_id: String) {
        self.report(TransportReport::Ack {
            message_id,
            sent_message_id,
        });
    }

    pub(super) fn nack(&self, message_id: String, reason: String, retry: bool) {
        self.report(TransportReport::Nack {
            message_id,
            reason: self.reporter.scrub(&reason),
            retry,
        });
    }

    /// The session id a message belongs to, if it is part of a USSD session of ours.
    pub(super) fn session_of(&self, msg: &Message) -> Option<String> {
        msg.transport_metadata
            .get(self.provider.name())
            .and_then(|m| m.get(SESSION_KEY))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    pub(super) fn send(self: Rc<Self>, msg: Message) {
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
        let requests = match self.provider.build_sends(&msg, &cx) {
            Ok(r) if r.is_empty() => {
                self.nack(msg.message_id, "Nothing to send".into(), false);
                return;
            }
            Ok(r) => r,
            Err(reason) => {
                self.nack(msg.message_id, reason, false);
                return;
            }
        };
        tokio::task::spawn_local(async move {
            let parts = requests.len();
            let mut provider_ids = Vec::new();
            let mut last_shown = String::new();
            let mut outcome = SendOutcome::Accepted(None);
            for (i, request) in requests.iter().enumerate() {
                let (shown, part) = self.send_one(&msg, request, i, parts).await;
                last_shown = shown;
                match part {
                    SendOutcome::Accepted(pid) => {
                        provider_ids.extend(pid.clone());
                        outcome = SendOutcome::Accepted(pid);
                    }
                    other => {
                        if i > 0 {
                            self.log_about(
                                crate::logs::WARNING,
                                Some(&msg.message_id),
                                format!(
                                    "{} of the {parts} requests of {} were accepted before this one was not",
                                    i, msg.message_id
                                ),
                            );
                        }
                        outcome = other;
                        break;
                    }
                }
            }
            let shown = last_shown;
            match outcome {
                SendOutcome::Accepted(provider_id) => {
                    if !self.up.replace(true) {
                        self.status(Level::Ok, "provider_ok", "The provider answers again");
                    }
                    let sent = provider_id.unwrap_or_else(|| msg.message_id.clone());
                    if self.provider.maps_ids() {
                        for pid in provider_ids {
                            self.keep_provider_id(&msg.message_id, &pid).await;
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
                SendOutcome::RetryAfter(why, after) => {
                    self.report(TransportReport::RetryAfter {
                        message_id: msg.message_id,
                        reason: self.reporter.scrub(&why),
                        after,
                    });
                }
                SendOutcome::Failed(why) => self.nack(msg.message_id, why, false),
            }
        });
    }

    /// Sends request `i` of the `parts` of `msg`: how it is shown in the log, and what
    /// came of it.
    async fn send_one(
        &self,
        msg: &Message,
        request: &ProviderRequest,
        i: usize,
        parts: usize,
    ) -> (String, SendOutcome) {
        let started = Instant::now();
        let shown = format!(
            "{} {}",
            request.method,
            shown_url(&request.url, self.reporter.secrets())
        );
        let which = if parts > 1 {
            format!("{} (part {} of {parts})", msg.message_id, i + 1)
        } else {
            msg.message_id.clone()
        };
        self.wire_request(Some(&msg.message_id), &shown, request);
        let outcome = match self.execute(request).await {
            Ok(resp) => {
                self.wire_answer(Some(&msg.message_id), &resp);
                let outcome = self.provider.read_send(&resp);
                let took = started.elapsed().as_millis();
                let line = format!(
                    "Sent {which} to the provider: {shown} answered {} in {took} ms: {}",
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
                    format!("Sending {which} failed: {shown}: {why}"),
                );
                SendOutcome::Retry(why)
            }
        };
        (shown, outcome)
    }

    /// Maps a provider id to our message id, for its delivery reports.
    async fn keep_provider_id(&self, message_id: &str, pid: &str) {
        let key = format!("{ID_KEY}{pid}");
        // A failed write loses only this message's delivery reports.
        if let Err(e) = self
            .store
            .set_message_state(&self.cid, &key, message_id, self.ttls.outbound)
            .await
        {
            self.log_about(
                crate::logs::WARNING,
                Some(message_id),
                format!("Could not keep the provider id of {message_id}: {e}"),
            );
        }
    }

    /// Sends one request: the provider's answer, or why there was none.
    pub(super) async fn execute(&self, r: &ProviderRequest) -> Result<ProviderResponse, String> {
        let resp = send(&self.client, r).await?;
        let status = resp.status().as_u16();
        let headers = response_headers(&resp);
        let body = resp.text().await.unwrap_or_default();
        Ok(ProviderResponse {
            status,
            body,
            headers,
        })
    }

    /// The provider's `setup` requests, each tried until accepted (1 s, doubling to 60 s
    /// between tries), with the channel's status saying where it stands.
    async fn set_up(self: Rc<Self>) {
        for request in self.provider.setup() {
            let shown = self.reporter.scrub(&request.url);
            let mut delay = Duration::from_secs(1);
            loop {
                self.wire_request(
                    None,
                    &format!(
                        "{} {}",
                        request.method,
                        shown_url(&request.url, self.reporter.secrets())
                    ),
                    &request,
                );
                let result = match self.execute(&request).await {
                    Ok(resp) => {
                        self.wire_answer(None, &resp);
                        self.provider.read_setup(&resp)
                    }
                    Err(why) => Err(why),
                };
                match result {
                    Ok(()) => {
                        self.log(crate::logs::INFO, format!("Set up: {shown} accepted"));
                        self.status(Level::Ok, "setup_done", format!("Set up: {shown}"));
                        break;
                    }
                    Err(why) => {
                        self.status(
                            Level::Down,
                            "setup_failed",
                            format!(
                                "{shown}: {}; trying again in {} s",
                                quote(&why),
                                delay.as_secs()
                            ),
                        );
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(60));
                    }
                }
            }
        }
    }

    pub(super) fn callback(self: Rc<Self>, cb: Callback) {
        let action = cb.action.clone();
        self.reporter.protocol(Dir::In, None, || {
            let query = if cb.query.is_empty() {
                String::new()
            } else {
                // Secret-looking query values (`?token=`) hidden as in any logged URL.
                let shown = crate::redact::url(&format!("http://x/?{}", cb.query));
                format!("?{}", shown.split_once('?').map_or("", |(_, q)| q))
            };
            format!(
                "{} {action}{query} {}",
                cb.method,
                quote(&String::from_utf8_lossy(&cb.body))
            )
        });
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
                self.respond(cb, refusal.response);
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
                self.respond(cb, response);
            }
            Received::Both(messages, list) => {
                for inbound in messages {
                    let msg = self.inbound_message(inbound, None);
                    self.report(TransportReport::Inbound(Box::new(msg)));
                }
                self.respond(cb, response);
                tokio::task::spawn_local(async move {
                    for r in list {
                        self.delivery_report(r).await;
                    }
                });
            }
            Received::Reports(list) => {
                self.respond(cb, response);
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
                self.respond(cb, response);
            }
            Received::Ussd(req) => {
                tokio::task::spawn_local(async move { self.ussd_request(cb, req, response).await });
            }
        }
    }

    pub(super) fn inbound_message(
        &self,
        inbound: Inbound,
        session: Option<(&str, SessionEvent)>,
    ) -> Message {
        let mut msg = Message::new(Some(inbound.to), Some(inbound.from), inbound.content);
        msg.group = inbound.group;
        let mut meta = inbound.metadata;
        if let Some(Value::Object(data)) = meta.remove(super::CHANNEL_DATA) {
            msg.helper_metadata.extend(data);
        }
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
        let base = self.callback_base.as_deref().unwrap_or("");
        msg.set_attachments(
            inbound
                .media
                .into_iter()
                .map(|m| Attachment {
                    url: match m.at {
                        MediaAt::Url(u) => u,
                        MediaAt::Provider(r) => format!(
                            "{base}/media/{}",
                            url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
                        ),
                    },
                    content_type: m.content_type,
                    caption: m.caption,
                })
                .collect(),
        );
        msg
    }

    pub(super) async fn delivery_report(&self, r: Report) {
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

/// Sends one request to the provider: its answer, or why there was none (no URL or
/// credential in the reason).
async fn send(client: &reqwest::Client, r: &ProviderRequest) -> Result<reqwest::Response, String> {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client.request(method, &r.url);
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
        Ok(resp) => Ok(resp),
        Err(e) if e.is_timeout() => Err("timed out".into()),
        Err(e) if e.is_connect() => Err("connection failed".into()),
        Err(_) => Err("request failed".into()),
    }
}

fn response_headers(resp: &reqwest::Response) -> Vec<(String, String)> {
    resp.headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The largest media `fetch_media` passes on (bytes).
pub const MAX_MEDIA: usize = 64 * 1024 * 1024;

/// Fetches the media an inbound message's attachment names by reference, with the
/// channel's credentials (`Provider::media_request`, then `media_follow`).
pub async fn fetch_media<P: Provider>(
    provider: &P,
    timeout: Duration,
    media_ref: &str,
) -> Result<crate::transports::Media, crate::transports::MediaError> {
    use crate::transports::{Media, MediaError};
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| MediaError::Provider(e.to_string()))?;
    let first = provider
        .media_request(media_ref)
        .ok_or(MediaError::NotFound)?;
    let mut resp = send(&client, &first).await.map_err(MediaError::Provider)?;
    let too_big = |r: &reqwest::Response| r.content_length().is_some_and(|n| n > MAX_MEDIA as u64);
    let status = resp.status().as_u16();
    if status == 404 || status == 400 {
        return Err(MediaError::NotFound);
    }
    if !(200..300).contains(&status) {
        return Err(MediaError::Provider(format!("HTTP {status}")));
    }
    if too_big(&resp) {
        return Err(MediaError::Provider(format!(
            "larger than {MAX_MEDIA} bytes"
        )));
    }
    let headers = response_headers(&resp);
    let content_type = |h: &[(String, String)]| {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "application/octet-stream".into())
    };
    let body = resp
        .bytes()
        .await
        .map_err(|_| MediaError::Provider("read failed".into()))?;
    let answer = ProviderResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        headers: headers.clone(),
    };
    let (headers, body) = match provider
        .media_follow(&answer)
        .map_err(MediaError::Provider)?
    {
        None => (headers, body),
        Some(next) => {
            resp = send(&client, &next).await.map_err(MediaError::Provider)?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                return Err(MediaError::Provider(format!("HTTP {status}")));
            }
            if too_big(&resp) {
                return Err(MediaError::Provider(format!(
                    "larger than {MAX_MEDIA} bytes"
                )));
            }
            let headers = response_headers(&resp);
            let body = resp
                .bytes()
                .await
                .map_err(|_| MediaError::Provider("read failed".into()))?;
            (headers, body)
        }
    };
    if body.len() > MAX_MEDIA {
        return Err(MediaError::Provider(format!(
            "larger than {MAX_MEDIA} bytes"
        )));
    }
    Ok(Media {
        content_type: content_type(&headers),
        body,
    })
}
