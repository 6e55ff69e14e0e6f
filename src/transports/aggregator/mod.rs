//! HTTP aggregator channel types (`africastalking`, `twilio`, `infobip`, `vonage`,
//! `clickatell`, `dmark`, `aat`, `http`, `webhook`, and the chat types `whatsapp`,
//! `twitter` and `telegram`), one file each, and what they share.
//!
//! A type is a [`Provider`]: pure functions from a message to the provider's HTTP request,
//! from the provider's answer to an outcome, and from a provider callback to what it means
//! (inbound messages, delivery reports, a USSD request), plus a typed config
//! ([`TypeConfig`]) and one line in `transports::registry`. The rest is shared:
//! - `driver.rs` does the I/O around a provider: it sends with reqwest (each send its own
//!   task, bounded by the channel window), classifies failures (throttled, 5xx and
//!   timeouts are retried by the channel, other refusals are final `nack`s with the
//!   provider's reason), maps provider ids to ours for delivery reports (in the store, so
//!   a report reaching another node finds its message) and answers callbacks. Every
//!   request and callback is summarised in the channel log with the channel's secrets
//!   scrubbed out.
//! - `ussd.rs` runs USSD sessions, bounded per channel and node (`max_ussd_sessions`,
//!   default 20,000: the sessions this node saw the last request of, each held until it
//!   ends or idles out): a new session past it is answered at once with `timeout_message`
//!   as a session end, never reaches the application, and is counted
//!   (`hornbill_limit_reached_total{limit="ussd_sessions"}`) and logged (a flood at most
//!   once per 10 s). Sessions already open go on as before.
//! - `fields.rs` has the helpers providers use to read callbacks and quote answers.
//!
//! `httprpc.rs` is not a type: it is what `dmark` and `aat` share (Vumi's HTTP RPC
//! transport base: Basic auth, strict/permissive request validation).

pub mod aat;
pub mod africastalking;
pub mod clickatell;
pub mod dmark;
pub mod http;
pub mod httprpc;
pub mod infobip;
pub mod telegram;
pub mod twilio;
pub mod twitter;
pub mod vonage;
pub mod webhook;
pub mod whatsapp;

mod driver;
mod fields;
mod ussd;

pub use driver::{SESSION_KEY, run};
pub use fields::*;

use super::{Callback, CallbackResponse, TransportContext, TransportError};
use crate::message::{DeliveryStatus, Message};
use serde_json::{Map, Value};
use std::time::Duration;

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
    /// Header names in lower case (rate-limit headers, `retry-after`).
    pub headers: Vec<(String, String)>,
}

impl ProviderResponse {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        ProviderResponse {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
    /// Throttled, with the provider's own wait (`retry_after`): the channel pauses at
    /// least that long.
    RetryAfter(String, Duration),
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

/// The key of an inbound message's `metadata` whose object goes to the message's
/// `helper_metadata` (the API's `channel_data`) instead of its transport metadata: what the
/// application needs of a chat message (an interactive reply's id, a location).
pub const CHANNEL_DATA: &str = "channel_data";

/// A message from a user, as the provider's callback gave it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inbound {
    pub from: String,
    pub to: String,
    /// The group chat it was said in (the message's `group`; replies keep it).
    pub group: Option<String>,
    pub content: Option<String>,
    /// Kept under `transport_metadata.<provider name>`, but for its [`CHANNEL_DATA`] object.
    pub metadata: Map<String, Value>,
    /// The message's media (its `attachments`).
    pub media: Vec<InboundMedia>,
}

/// A piece of media on an inbound message.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundMedia {
    pub at: MediaAt,
    pub content_type: Option<String>,
    pub caption: Option<String>,
}

/// Where an inbound message's media can be fetched.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaAt {
    /// A URL anybody given it can fetch, no credentials needed (Twilio's media URLs).
    Url(String),
    /// The provider's reference for it, fetched with the channel's credentials
    /// (`Provider::media_request`): the message's attachment is hornbill's own URL,
    /// `{callback base}/media/{ref}` on the public listener, behind the channel's callback
    /// secret, so the credentials (a bot token in a Telegram file URL, a WhatsApp access
    /// token) never leave hornbill.
    Provider(String),
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
    /// Both in one callback (a WhatsApp notification batching messages and statuses).
    Both(Vec<Inbound>, Vec<Report>),
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
    /// The USSD keys of a config: `max_ussd_sessions`, `request_timeout` and
    /// `ussd_session_timeout`.
    pub fn check(
        max_sessions: usize,
        request_timeout: f64,
        session_timeout: f64,
    ) -> Result<(), String> {
        check_max_sessions(max_sessions)?;
        crate::transports::check_seconds(&[
            ("request_timeout", request_timeout),
            ("ussd_session_timeout", session_timeout),
        ])
    }
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
    /// The requests that send `msg`, in order: more than one where the API takes one
    /// medium per message (WhatsApp: one per attachment). They go one after the other; the
    /// first not accepted decides the message's outcome (a retry sends them all again), and
    /// every provider id of the accepted ones is mapped to the message (a delivery report
    /// naming any of them is the message's). Default: `build_send` alone.
    fn build_sends(&self, msg: &Message, cx: &SendContext) -> Result<Vec<ProviderRequest>, String> {
        self.build_send(msg, cx).map(|r| vec![r])
    }
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
    /// Requests made when the channel starts (Telegram's `setWebhook`), in order, each
    /// tried again with backoff until `read_setup` accepts its answer; the channel sends
    /// meanwhile.
    fn setup(&self) -> Vec<ProviderRequest> {
        Vec::new()
    }
    /// Whether the provider accepted a `setup` request (the reason if not).
    fn read_setup(&self, resp: &ProviderResponse) -> Result<(), String> {
        match status_outcome(resp) {
            None => Ok(()),
            Some(
                SendOutcome::Failed(why)
                | SendOutcome::Retry(why)
                | SendOutcome::RetryAfter(why, _),
            ) => Err(why),
            Some(SendOutcome::Accepted(_)) => Ok(()),
        }
    }
    /// The first request fetching the media an inbound message named by `MediaAt::Provider`
    /// (`None`: there is no such media).
    fn media_request(&self, media_ref: &str) -> Option<ProviderRequest> {
        let _ = media_ref;
        None
    }
    /// Given the answer to `media_request`: the request downloading the media itself
    /// (Telegram's file path, WhatsApp's media URL), or `None` when that answer was it.
    fn media_follow(&self, first: &ProviderResponse) -> Result<Option<ProviderRequest>, String> {
        let _ = first;
        Ok(None)
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

/// A channel type's `config` as a typed struct (unknown keys refused by
/// `#[serde(deny_unknown_fields)]`), read and checked once by [`parse_config`].
pub trait TypeConfig: serde::de::DeserializeOwned + utoipa::ToSchema + Sized {
    /// Keys the type accepts and ignores (Vumi's), taken off before it is read.
    const IGNORED_KEYS: &'static [&'static str] = &[];
    /// What the types alone cannot say (non-empty keys, URLs, ranges); may normalise
    /// values. The error text is shown to the API client.
    fn check(&mut self) -> Result<(), String>;
    /// How long one request to the provider may take (a type that never sends: unused).
    fn http_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// A channel's `config` read as `C` and checked (the keys of every Vumi worker and the
/// type's `IGNORED_KEYS` taken off first).
pub fn parse_config<C: TypeConfig>(config: &Value) -> Result<C, String> {
    let mut config = config.clone();
    if let Value::Object(map) = &mut config {
        for k in super::VUMI_WORKER_KEYS.iter().chain(C::IGNORED_KEYS) {
            map.remove(*k);
        }
    }
    let mut cfg: C = serde_json::from_value(config).map_err(|e| e.to_string())?;
    cfg.check()?;
    Ok(cfg)
}

/// An HTTP aggregator channel type: a provider made from a channel's checked `config`.
pub trait HttpType: Provider + Sized {
    /// The API `type` string.
    const TYPE: &'static str;
    /// The Vumi `transport_type` of its messages unless the config says otherwise.
    const TRANSPORT_TYPE: &'static str;
    /// Its callbacks on the public listener (`/channels/{id}/{secret}/{action}`).
    const ACTIONS: &'static [&'static str];
    /// Whether its `build_send` sends a message's attachments.
    const MEDIA: bool = false;
    /// Its config (also the channel type's schema in the OpenAPI document).
    type Config: TypeConfig;
    /// The provider of one channel.
    fn new(cfg: Self::Config, cx: &StartContext) -> Self;
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

    fn callbacks_everywhere(&self) -> bool {
        true
    }

    fn carries_media(&self) -> bool {
        T::MEDIA
    }

    fn config_schema(&self) -> Value {
        super::config_schema::<T::Config>()
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        parse_config::<T::Config>(config).map(|_| ())
    }

    fn media(
        &self,
        config: &Value,
        media_ref: &str,
    ) -> futures::future::LocalBoxFuture<'static, super::MediaResult> {
        let cx = StartContext {
            channel_id: "",
            callback_base: None,
            callback_secret: None,
        };
        let parsed = parse_config::<T::Config>(config).map(|cfg| {
            let timeout = cfg.http_timeout();
            (T::new(cfg, &cx), timeout)
        });
        let media_ref = media_ref.to_string();
        Box::pin(async move {
            let (provider, timeout) = parsed.map_err(super::MediaError::Provider)?;
            driver::fetch_media(&provider, timeout, &media_ref).await
        })
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
        let parsed = parse_config::<T::Config>(config).map(|cfg| {
            let timeout = cfg.http_timeout();
            (T::new(cfg, &cx), timeout)
        });
        Box::pin(async move {
            let (provider, timeout) = parsed.map_err(TransportError::Other)?;
            run(provider, timeout, ctx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_split_into_retry_and_final() {
        let r = |status| ProviderResponse::new(status, "x");
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
