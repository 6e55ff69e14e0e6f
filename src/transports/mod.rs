//! Channel types. A transport is the protocol driver of one channel: it starts from the
//! channel's `config`, takes outbound messages from its channel, and reports inbound messages,
//! acks, nacks, delivery reports and status changes back up.
//!
//! A transport runs as one task that its channel supervises: when the task returns an error
//! or panics, the channel requeues what was in flight and starts it again with backoff.
//! Laid out by kind: socket protocols each in their own module (`smpp/`, `irc/`, `telnet`, `xmpp/`), the HTTP
//! aggregators in `aggregator/` (the driver they share, and one file per provider), and the
//! provider requests the public listener hands to a transport in `callback`. Adding a
//! channel type: a module with a config struct (`deny_unknown_fields`), a pure protocol
//! layer, and a `TransportFactory` (for an HTTP aggregator, `aggregator::HttpType`); then one
//! line in `Registry::builtin`.

pub mod aggregator;
pub mod callback;
pub mod irc;
pub mod smpp;
pub mod telnet;
pub mod xmpp;

pub use callback::{Callback, CallbackResponse};

use crate::message::{DeliveryStatus, Message, StatusEvent};
use futures::future::LocalBoxFuture;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// What a channel asks of its transport.
#[derive(Debug)]
pub enum TransportCommand {
    /// Send this message; answer with `Ack` or `Nack` for its `message_id`.
    Send(Message),
}

/// What a transport tells its channel.
#[derive(Debug)]
pub enum TransportReport {
    /// A message from a user (transport fields are filled in by the channel).
    Inbound(Box<Message>),
    /// The provider accepted the message.
    Ack {
        message_id: String,
        sent_message_id: String,
    },
    /// The provider refused the message. `retry` means: try again later (throttling, a
    /// dropped connection), not a final answer.
    Nack {
        message_id: String,
        reason: String,
        retry: bool,
    },
    /// The provider throttles: try the message again, not before `after` (its
    /// `retry_after`; the channel pauses at least that long, at most an hour).
    RetryAfter {
        message_id: String,
        reason: String,
        after: std::time::Duration,
    },
    /// A delivery report for a message sent earlier.
    DeliveryReport {
        message_id: String,
        status: DeliveryStatus,
    },
    /// A component's state changed.
    Status(StatusEvent),
    /// A line for the channel log, about one message when `message_id` is set.
    Log {
        level: u8,
        message: String,
        message_id: Option<String>,
    },
}

/// How long a transport that stops gracefully is given before it is aborted.
pub const GRACEFUL_STOP: std::time::Duration = std::time::Duration::from_secs(5);

/// What a running transport is given.
pub struct TransportContext {
    pub channel_id: String,
    pub commands: mpsc::Receiver<TransportCommand>,
    pub reports: mpsc::UnboundedSender<TransportReport>,
    /// For state that must outlive the transport (`Store::set_state`): with the Redis store
    /// it survives a restart.
    pub store: Arc<dyn crate::store::Store>,
    /// Cancelled when the channel stops or restarts the transport. A transport whose factory
    /// says `graceful_stop` winds down by itself (an SMPP session finishes its window and
    /// unbinds); every other one is aborted at once.
    pub stop: tokio_util::sync::CancellationToken,
    /// Provider requests to the public listener for this channel (only the factory's
    /// `callback_actions` arrive). A transport without callbacks may ignore it.
    pub callbacks: mpsc::Receiver<Callback>,
    /// Where providers reach this channel's callbacks: `{public base}/channels/{id}/{secret}`
    /// (no trailing slash); `None` when the public listener is off.
    pub callback_base: Option<String>,
    /// The secret in `callback_base`: never written to a log.
    pub callback_secret: Option<String>,
    /// Records that must last as long as an outbound message's events can come
    /// (`outbound_message_ttl`), and as long as a reply may come (`inbound_message_ttl`).
    pub ttls: crate::store::Ttls,
    /// The channel's `log_protocol` switch, flipped by a channel modify while the transport
    /// runs: when on, each PDU, stanza or line goes to the channel log ([`Reporter::protocol`]).
    pub protocol_log: Arc<AtomicBool>,
}

impl TransportContext {
    pub fn report(&self, report: TransportReport) {
        // The channel only goes away after stopping the transport.
        let _ = self.reports.send(report);
    }

    pub fn status(&self, component: &str, level: crate::message::Level, kind: &str, msg: &str) {
        self.reporter().status(component, level, kind, msg);
    }

    /// What a transport's tasks report through (its own copy of the sender).
    pub fn reporter(&self) -> Reporter {
        Reporter::new(&self.channel_id, self.reports.clone())
            .with_protocol_log(self.protocol_log.clone())
    }
}

/// What a transport tells its channel, for one channel: reports, log lines and status
/// events, with the text of log lines and status events scrubbed of the channel's
/// secrets (when it was given any). Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    channel_id: String,
    reports: mpsc::UnboundedSender<TransportReport>,
    secrets: Arc<[String]>,
    protocol_log: Arc<AtomicBool>,
}

impl Reporter {
    pub fn new(channel_id: &str, reports: mpsc::UnboundedSender<TransportReport>) -> Reporter {
        Reporter {
            channel_id: channel_id.to_string(),
            reports,
            secrets: Arc::new([]),
            protocol_log: Arc::default(),
        }
    }

    /// The same, writing protocol lines while `flag` (the channel's `log_protocol`) is on.
    pub fn with_protocol_log(mut self, flag: Arc<AtomicBool>) -> Reporter {
        self.protocol_log = flag;
        self
    }

    /// Whether the channel's `log_protocol` switch is on now.
    pub fn logs_protocol(&self) -> bool {
        self.protocol_log.load(Ordering::Relaxed)
    }

    /// One protocol unit (a PDU, a stanza, an IRC line) sent (`Dir::Out`) or received, as a
    /// readable one-liner for the channel log, about a message where there is one; `line`
    /// is only built when `log_protocol` is on, and its secrets are scrubbed like every
    /// log line's (a transport still leaves passwords out of what it builds).
    pub fn protocol(&self, dir: Dir, message_id: Option<&str>, line: impl FnOnce() -> String) {
        if self.logs_protocol() {
            let arrow = match dir {
                Dir::In => "<<",
                Dir::Out => ">>",
            };
            self.log_about(crate::logs::INFO, message_id, format!("{arrow} {}", line()));
        }
    }

    /// The same, scrubbing `secrets` (and their URL-encoded forms) from log and status text.
    pub fn with_secrets(mut self, secrets: Vec<String>) -> Reporter {
        self.secrets = secrets.into();
        self
    }

    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// `text` with the secrets replaced by the redaction mark.
    pub fn scrub(&self, text: &str) -> String {
        aggregator::scrub(text, &self.secrets)
    }

    pub fn report(&self, report: TransportReport) {
        // The channel only goes away after stopping the transport.
        let _ = self.reports.send(report);
    }

    pub fn log(&self, level: u8, message: impl AsRef<str>) {
        self.log_about(level, None, message)
    }

    /// A log line about one message (its story: `GET /channels/{id}/messages/{mid}/logs`).
    pub fn log_about(&self, level: u8, message_id: Option<&str>, message: impl AsRef<str>) {
        self.report(TransportReport::Log {
            level,
            message: self.scrub(message.as_ref()),
            message_id: message_id.map(str::to_string),
        });
    }

    pub fn status(
        &self,
        component: &str,
        level: crate::message::Level,
        kind: &str,
        message: impl AsRef<str>,
    ) {
        let text = self.scrub(message.as_ref());
        self.report(TransportReport::Status(StatusEvent::new(
            &self.channel_id,
            component,
            level,
            kind,
            &text,
        )));
    }
}

/// Media fetched from a provider for a client (`TransportFactory::media`).
pub struct Media {
    pub content_type: String,
    pub body: bytes::Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no such media")]
    NotFound,
    #[error("the provider did not give it: {0}")]
    Provider(String),
}

pub type MediaResult = Result<Media, MediaError>;

/// Which way a protocol unit went ([`Reporter::protocol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Received from the peer (`<<` in the log).
    In,
    /// Sent to the peer (`>>`).
    Out,
}

/// Why a transport stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// One channel type.
pub trait TransportFactory: Send + Sync + 'static {
    /// The API `type` string.
    fn name(&self) -> &'static str;
    /// Vumi `transport_type` of its messages (`telnet`, `sms`, `ussd`, ...).
    fn transport_type(&self, config: &Value) -> String;
    /// Whether the transport watches `TransportContext::stop` and ends by itself (within
    /// `GRACEFUL_STOP`); if not, stopping aborts it at once.
    fn graceful_stop(&self) -> bool {
        false
    }
    /// Whether every node of a cluster runs it for provider callbacks (an HTTP provider's
    /// callbacks may reach any node), while only the channel's holder gives it messages to
    /// send. A socket protocol (a bind, a listening port) runs on its holder alone.
    fn callbacks_everywhere(&self) -> bool {
        false
    }
    /// The `{action}`s of `/channels/{id}/{action}` on the public listener this channel type
    /// answers (any other is a 404 there).
    fn callback_actions(&self, _config: &Value) -> Vec<&'static str> {
        Vec::new()
    }
    /// Whether it sends messages' `attachments` (media). A send with attachments to a type
    /// that does not is refused at the API (400), and one from the bus is rejected with the
    /// reason: media is never dropped silently.
    fn carries_media(&self) -> bool {
        false
    }
    /// Fetches, with the channel's credentials, the media an inbound message's attachment
    /// names by the provider's reference: what `GET {callback base}/media/{ref}` on the
    /// public listener answers (behind the channel's callback secret).
    fn media(&self, config: &Value, media_ref: &str) -> LocalBoxFuture<'static, MediaResult> {
        let _ = (config, media_ref);
        Box::pin(async { Err(MediaError::NotFound) })
    }
    /// Checks a `config` object; the error text is shown to the API client.
    fn validate(&self, config: &Value) -> Result<(), String>;
    /// The JSON Schema of its `config` (OpenAPI), as `config_schema::<TheConfig>()` makes it.
    fn config_schema(&self) -> Value {
        serde_json::json!({"type": "object"})
    }
    /// The running transport. Ends with `Ok` when its command channel closes.
    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>>;
}

/// A config's `transport_type` key, or the type's own default.
pub fn configured_transport_type(config: &Value, default: &str) -> String {
    config
        .get("transport_type")
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// Checks that a config key holds an http(s) URL.
pub fn check_http_url(key: &str, value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("{key} must be an http(s) URL")),
    }
}

/// The range of every duration a channel config may set, in seconds: a value outside it
/// (or not finite) is refused when the channel is created, modified or loaded, naming the
/// key, never a panic or a busy loop later. README "Limits" lists them.
pub const SECONDS: &[(&str, f64, f64)] = &[
    // a provider's answer to one request (HTTP types)
    ("timeout", 0.1, 300.0),
    // a USSD request waiting for the application's answer
    ("request_timeout", 0.1, 300.0),
    ("ussd_session_timeout", 1.0, 86_400.0),
    ("smpp_bind_timeout", 0.1, 300.0),
    ("smpp_enquire_link_interval", 0.1, 3_600.0),
    ("initial_reconnect_delay", 0.1, 3_600.0),
    ("response_timeout", 0.1, 3_600.0),
    ("reassembly_timeout", 1.0, 86_400.0),
    // a telnet user who sends nothing for this long is disconnected
    ("idle_timeout", 1.0, 86_400.0),
    // XMPP keep-alive pings and presence announcements
    ("ping_interval", 0.1, 3_600.0),
    ("presence_interval", 0.1, 86_400.0),
];

/// The JSON Schema of a config struct (its `utoipa::ToSchema`), with the `SECONDS` range of
/// each duration key it has, and no other keys allowed (`deny_unknown_fields`): what the
/// OpenAPI document states, and what `validate` enforces (tests/openapi.rs compares them).
pub fn config_schema<T: utoipa::PartialSchema>() -> Value {
    let mut schema = serde_json::to_value(T::schema()).unwrap_or_default();
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (key, min, max) in SECONDS {
            if let Some(p) = props.get_mut(*key) {
                p["minimum"] = serde_json::json!(min);
                p["maximum"] = serde_json::json!(max);
            }
        }
    }
    schema["additionalProperties"] = Value::Bool(false);
    schema
}

/// Checks durations (seconds) against `SECONDS`; the first key out of range is named.
pub fn check_seconds(values: &[(&str, f64)]) -> Result<(), String> {
    for (key, v) in values {
        let (min, max) = SECONDS
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, min, max)| (*min, *max))
            .unwrap_or((0.001, 86_400.0));
        check_range(key, *v, min, max)?;
    }
    Ok(())
}

/// Checks one duration (seconds): finite, from `min` to `max`, or an error naming `key`.
pub fn check_range(key: &str, v: f64, min: f64, max: f64) -> Result<(), String> {
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "{key} must be a number of seconds from {min} to {max} (got {v})"
        ))
    }
}

/// Keys every Vumi worker's config may carry, which Junebug channel configs therefore carry
/// too: Vumi's `BaseWorker` config (`amqp_prefetch_count`), its middleware list
/// (`middleware`), the keys Junebug adds to every transport's config (`transport_name`,
/// `worker_name`, `publish_status`), and the Redis connection Vumi transports keep their state
/// on (`redis_manager`). Every channel type accepts them and ignores them: hornbill names its
/// own queues, runs no Vumi middleware, always keeps statuses, sets prefetch from the channel
/// window and keeps transport state in its own store. `Registry::register` takes them off
/// before a type sees a config, so a type's `deny_unknown_fields` still refuses real typos.
pub const VUMI_WORKER_KEYS: &[&str] = &[
    "amqp_prefetch_count",
    "middleware",
    "transport_name",
    "worker_name",
    "publish_status",
    "redis_manager",
];

/// `config` without `VUMI_WORKER_KEYS`.
pub fn without_worker_keys(config: &Value) -> std::borrow::Cow<'_, Value> {
    match config {
        Value::Object(map) if VUMI_WORKER_KEYS.iter().any(|k| map.contains_key(*k)) => {
            let mut map = map.clone();
            for k in VUMI_WORKER_KEYS {
                map.remove(*k);
            }
            std::borrow::Cow::Owned(Value::Object(map))
        }
        _ => std::borrow::Cow::Borrowed(config),
    }
}

/// A channel type as the registry hands it out: every config it is given is first rid of
/// `VUMI_WORKER_KEYS`.
struct WorkerKeysIgnored(Arc<dyn TransportFactory>);

impl TransportFactory for WorkerKeysIgnored {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn transport_type(&self, config: &Value) -> String {
        self.0.transport_type(&without_worker_keys(config))
    }

    fn graceful_stop(&self) -> bool {
        self.0.graceful_stop()
    }

    fn callbacks_everywhere(&self) -> bool {
        self.0.callbacks_everywhere()
    }

    fn callback_actions(&self, config: &Value) -> Vec<&'static str> {
        self.0.callback_actions(&without_worker_keys(config))
    }

    fn carries_media(&self) -> bool {
        self.0.carries_media()
    }

    fn media(&self, config: &Value, media_ref: &str) -> LocalBoxFuture<'static, MediaResult> {
        self.0.media(&without_worker_keys(config), media_ref)
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        self.0.validate(&without_worker_keys(config))
    }

    fn config_schema(&self) -> Value {
        let mut schema = self.0.config_schema();
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for key in VUMI_WORKER_KEYS {
                props.insert(
                    (*key).into(),
                    serde_json::json!({"description": "A Vumi worker's key: accepted and ignored"}),
                );
            }
        }
        schema
    }

    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>> {
        self.0.start(&without_worker_keys(config), ctx)
    }
}

/// Why a channel type/config pair was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Invalid channel type {0}, must be one of: {1}")]
    UnknownType(String, String),
    #[error("Invalid config for channel type {0}: {1}")]
    Invalid(String, String),
}

/// The channel types this server knows.
#[derive(Clone)]
pub struct Registry {
    types: BTreeMap<&'static str, Arc<dyn TransportFactory>>,
}

impl Registry {
    /// The built-in channel types.
    pub fn builtin() -> Registry {
        let mut r = Registry {
            types: BTreeMap::new(),
        };
        r.register(Arc::new(aggregator::aat::AatFactory::new()));
        r.register(Arc::new(
            aggregator::africastalking::AfricasTalkingFactory::new(),
        ));
        r.register(Arc::new(aggregator::clickatell::ClickatellFactory::new()));
        r.register(Arc::new(aggregator::dmark::DmarkFactory::new()));
        r.register(Arc::new(aggregator::http::HttpFactory::new()));
        r.register(Arc::new(aggregator::infobip::InfobipFactory::new()));
        r.register(Arc::new(irc::IrcFactory));
        r.register(Arc::new(smpp::SmppFactory));
        r.register(Arc::new(aggregator::telegram::TelegramFactory::new()));
        r.register(Arc::new(telnet::TelnetFactory));
        r.register(Arc::new(aggregator::twilio::TwilioFactory::new()));
        r.register(Arc::new(aggregator::twitter::TwitterFactory::new()));
        r.register(Arc::new(aggregator::vonage::VonageFactory::new()));
        r.register(Arc::new(aggregator::webhook::WebhookFactory::new()));
        r.register(Arc::new(aggregator::whatsapp::WhatsAppFactory::new()));
        r.register(Arc::new(xmpp::XmppFactory));
        r
    }

    /// Adds (or replaces) a channel type, e.g. one an embedding program brings. Its configs
    /// reach it without `VUMI_WORKER_KEYS`.
    pub fn register(&mut self, factory: Arc<dyn TransportFactory>) {
        self.types
            .insert(factory.name(), Arc::new(WorkerKeysIgnored(factory)));
    }

    pub fn get(&self, name: &str) -> Result<Arc<dyn TransportFactory>, ConfigError> {
        self.types.get(name).cloned().ok_or_else(|| {
            ConfigError::UnknownType(
                crate::api_schema::py_repr(&Value::String(name.into())),
                self.names().join(", "),
            )
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.types.keys().copied().collect()
    }

    pub fn validate(&self, name: &str, config: &Value) -> Result<(), ConfigError> {
        self.get(name)?
            .validate(config)
            .map_err(|e| ConfigError::Invalid(name.into(), e))
    }
}

/// Parses a Twisted server endpoint (`tcp:PORT`, `tcp:PORT:interface=ADDR`,
/// `tcp:port=PORT`) into an address to bind.
pub fn parse_server_endpoint(endpoint: &str) -> Result<std::net::SocketAddr, String> {
    let mut parts = endpoint.split(':');
    if parts.next() != Some("tcp") {
        return Err(format!(
            "endpoint {endpoint:?} is not of the form \"tcp:PORT\""
        ));
    }
    let mut port = None;
    let mut interface = "0.0.0.0".to_string();
    for (i, part) in parts.enumerate() {
        if let Some(v) = part.strip_prefix("port=") {
            port = v.parse::<u16>().ok();
        } else if let Some(v) = part.strip_prefix("interface=") {
            interface = v.to_string();
        } else if i == 0 {
            port = part.parse::<u16>().ok();
        } else {
            return Err(format!("endpoint {endpoint:?}: unknown option {part:?}"));
        }
    }
    let port = port.ok_or_else(|| format!("endpoint {endpoint:?} has no valid port"))?;
    format!("{interface}:{port}")
        .parse()
        .or_else(|_| format!("[{interface}]:{port}").parse())
        .map_err(|_| format!("endpoint {endpoint:?}: bad interface {interface:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporter_scrubs_secrets_from_logs_and_statuses() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let reporter = Reporter::new("ch1", tx).with_secrets(vec!["s3cr3t".into()]);
        reporter.log(30, "token s3cr3t refused");
        reporter.status("sms", crate::message::Level::Down, "down", "key=s3cr3t");
        match rx.try_recv().unwrap() {
            TransportReport::Log { message, .. } => {
                assert!(!message.contains("s3cr3t"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        match rx.try_recv().unwrap() {
            TransportReport::Status(ev) => {
                let text = serde_json::to_string(&ev).unwrap();
                assert!(!text.contains("s3cr3t") && text.contains("ch1"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
    use serde_json::json;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_server_endpoint("tcp:9001").unwrap().to_string(),
            "0.0.0.0:9001"
        );
        assert_eq!(
            parse_server_endpoint("tcp:port=9001:interface=127.0.0.1")
                .unwrap()
                .to_string(),
            "127.0.0.1:9001"
        );
        assert!(parse_server_endpoint("udp:9001").is_err());
        assert!(parse_server_endpoint("tcp:nope").is_err());
    }

    #[test]
    fn form_fields_come_from_the_query_and_a_urlencoded_or_multipart_body() {
        let cb = Callback::for_test(
            "inbound",
            "a=1",
            "application/x-www-form-urlencoded",
            "b=%2B2+3",
        );
        assert_eq!(
            cb.form(),
            [("a".into(), "1".into()), ("b".into(), "+2 3".into())]
        );
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"from\"\r\n\r\n+27820000001\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhé llo\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"pic\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nGIF89a\x01\r\n\
            --XyZ--\r\n";
        let cb = Callback::for_test("inbound", "", "multipart/form-data; boundary=XyZ", body);
        assert_eq!(
            cb.try_form().unwrap(),
            [
                ("from".into(), "+27820000001".into()),
                ("text".into(), "hé llo".into())
            ]
        );
        let cut = Callback::for_test(
            "inbound",
            "q=1",
            "multipart/form-data; boundary=XyZ",
            &body[..40],
        );
        assert!(cut.try_form().is_err());
        assert_eq!(cut.form(), [("q".into(), "1".into())]);
        let unbounded = Callback::for_test("inbound", "", "multipart/form-data", body);
        assert!(unbounded.try_form().is_err());
    }

    #[test]
    fn every_type_ignores_vumi_worker_keys_and_refuses_typos() {
        let registry = Registry::builtin();
        let telnet = json!({"twisted_endpoint": "tcp:9001"});
        let mut with_keys = telnet.clone();
        for k in VUMI_WORKER_KEYS {
            with_keys[*k] = json!({"any": "value"});
        }
        assert!(registry.validate("telnet", &with_keys).is_ok());
        let mut typo = telnet.clone();
        typo["twisted_endpiont"] = json!("tcp:1");
        assert!(registry.validate("telnet", &typo).is_err());
        assert_eq!(
            without_worker_keys(&with_keys).into_owned(),
            telnet,
            "only the worker keys go"
        );
    }

    #[test]
    fn unknown_type_lists_the_known_ones() {
        let e = Registry::builtin().get("pigeon").err().unwrap().to_string();
        assert_eq!(
            e,
            "Invalid channel type u'pigeon', must be one of: aat, africastalking, clickatell, dmark, http, infobip, irc, smpp, telegram, telnet, twilio, twitter, vonage, webhook, whatsapp, xmpp"
        );
    }
}
