//! The management API described as OpenAPI 3.1 (`GET /openapi.json`), browsable at `/docs/`.
//!
//! The operations are the `#[utoipa::path]` attributes on the handlers; the types here only
//! describe the JSON the handlers read and write (they validate raw bodies with Junebug's
//! schemas, `api_schema.rs`, and build answers as `serde_json::Value`). `tests/openapi.rs`
//! checks that every route `configure` registers is described here, and the reverse.
//!
//! The public listener (provider callbacks, `public.rs`) is a separate server with its own
//! small spec, `public::PublicApiDoc`, served here at `/openapi/public.json` and selectable
//! on the docs page; it is not part of this one.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// Junebug's envelope, around every answer of the API.
#[derive(ToSchema)]
pub struct Envelope<T> {
    /// The HTTP status code, repeated.
    #[schema(example = 200)]
    pub status: u16,
    /// Twisted's reason phrase for the status: `OK`, `Created`, `Bad Request`, `Not Found`...
    #[schema(example = "OK")]
    pub code: String,
    /// What happened (`channel created`, `message submitted`) or what went wrong (`channel
    /// not found`, `api usage error`).
    #[schema(required = true)]
    pub description: Option<String>,
    pub result: T,
}

/// The `result` of an error answer.
#[derive(ToSchema)]
pub struct Errors {
    pub errors: Vec<ErrorObject>,
}

/// One error, as Junebug reports it. A schema violation is `{"type": "invalid_body",
/// "message", "schema_path"}`, one entry per violation; a routing error (unknown path 404,
/// wrong method 405) also has `code`.
#[derive(ToSchema)]
#[schema(example = json!({"type": "ChannelNotFound", "message": ""}))]
pub struct ErrorObject {
    /// `invalid_body`, `JsonDecodeError`, `ApiUsageError`, `ChannelNotFound`,
    /// `MessageNotFound`, `MessageTooLong`, `InvalidChannelType`, `InvalidChannelConfig`,
    /// `RouterNotFound`, `DestinationNotFound`, `InvalidRouterType`, `InvalidRouterConfig`,
    /// `InvalidRouterDestinationConfig`, `ConfigDefined`, `Unauthorized`, `QueueFull`,
    /// `AmqpConnectionError`, `StoreUnavailable`, `InternalError`, or the reason phrase
    /// (`Not Found`, `Method Not Allowed`) for routing errors.
    #[schema(rename = "type")]
    pub kind: String,
    pub message: String,
    /// Where in Junebug's JSON schema a violation is (`invalid_body` only), e.g.
    /// `["properties", "rate_limit_count", "minimum"]`.
    #[schema(nullable = false)]
    pub schema_path: Option<Vec<String>>,
    /// The HTTP status (routing errors only).
    #[schema(nullable = false)]
    pub code: Option<u16>,
}

/// An error answer: Junebug's envelope with `{"errors": [...]}` as its result.
#[derive(ToSchema)]
#[schema(example = json!({"status": 404, "code": "Not Found", "description": "channel not found",
                          "result": {"errors": [{"type": "ChannelNotFound", "message": ""}]}}))]
pub struct ErrorEnvelope {
    #[schema(example = 400)]
    pub status: u16,
    #[schema(example = "Bad Request")]
    pub code: String,
    /// What went wrong, e.g. `api usage error`, `channel not found`.
    #[schema(required = true)]
    pub description: Option<String>,
    pub result: Errors,
}

/// The query of the logs endpoints.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// How many entries, newest first (default and most: `[log] max_logs`; 0 or less: none).
    pub n: Option<i64>,
}

/// An empty result, `{}`.
#[derive(ToSchema)]
pub struct Empty {}

/// A channel's new callback secret, shown once.
#[derive(ToSchema)]
pub struct CallbackSecret {
    /// The path segment its callback URLs carry: `/channels/{id}/{callback_secret}/{action}`.
    pub callback_secret: String,
    /// `{public base}/channels/{id}/{callback_secret}/`, when the public listener is on.
    pub callback_url_base: Option<String>,
}

/// `POST /channels/`: a new channel. `type` and `config` are required; other keys are kept
/// as given. Each typed key rejects `null`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"type": "telnet", "config": {"twisted_endpoint": "tcp:9002"},
                          "mo_url": "http://127.0.0.1:8000/inbound"}))]
pub struct ChannelCreate {
    /// The channel type: `telnet`, `smpp`, `webhook`, `http`, `dmark`, `aat`,
    /// `africastalking`, `twilio`, `infobip`, `vonage`, `clickatell`, and the chat types
    /// `xmpp`, `irc`, `telegram`, `whatsapp`, `twitter` (`InvalidChannelType` lists those
    /// this server has). Media (`attachments`) only on `twilio`, `telegram`, `whatsapp` and
    /// `twitter`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The transport's settings, checked by the channel type (`InvalidChannelConfig`).
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Where status events (component health) are POSTed.
    #[schema(nullable = false)]
    pub status_url: Option<String>,
    /// Where inbound messages are POSTed (the message object).
    #[schema(nullable = false)]
    pub mo_url: Option<String>,
    /// Sent as `Authorization: Token <token>` with each `mo_url` POST.
    #[schema(nullable = false)]
    pub mo_url_auth_token: Option<String>,
    /// A Vumi worker's queue prefix (RabbitMQ bus only): inbound goes to `Q.inbound`, events
    /// to `Q.event`, and `Q.outbound` is sent.
    #[schema(nullable = false)]
    pub amqp_queue: Option<String>,
    /// Messages per `rate_limit_window` seconds (a token bucket).
    #[schema(nullable = false, minimum = 0, maximum = 1000000)]
    pub rate_limit_count: Option<u64>,
    #[schema(nullable = false, minimum = 0, maximum = 86400)]
    pub rate_limit_window: Option<u64>,
    /// Longest `content` accepted by a send (in characters).
    #[schema(nullable = false, minimum = 0, maximum = 1000000)]
    pub character_limit: Option<u64>,
    /// hornbill: the default `event_url` of messages sent without one.
    #[schema(nullable = false)]
    pub event_url: Option<String>,
    #[schema(nullable = false)]
    pub event_auth_token: Option<String>,
    /// hornbill: a built-in or configured application answers the channel (`echo`, or an
    /// `[[applications]]` name).
    #[schema(nullable = false)]
    pub application: Option<String>,
    /// hornbill: messages handed to the provider before the first is answered (default 64).
    #[schema(nullable = false, minimum = 0, maximum = 10000)]
    pub window: Option<u64>,
    /// hornbill: write each PDU, stanza or line the channel's socket protocol (`smpp`,
    /// `xmpp`, `irc`) sends and receives to the channel log, secrets scrubbed, tagged with
    /// the message id where there is one. Off by default; a modify turns it on or off
    /// without restarting the channel.
    #[schema(nullable = false)]
    pub log_protocol: Option<bool>,
}

/// `POST /channels/{id}`: the keys to change, merged into the channel (a new `config`
/// replaces the old one whole). Nothing is required; `mo_url`, `status_url`, `event_url`,
/// `event_auth_token` and `application` may be `null`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"label": "USSD *120*1#", "character_limit": 182}))]
pub struct ChannelModify {
    #[serde(rename = "type")]
    #[schema(nullable = false)]
    pub kind: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub status_url: Option<String>,
    pub mo_url: Option<String>,
    #[schema(nullable = false)]
    pub mo_url_auth_token: Option<String>,
    #[schema(nullable = false)]
    pub amqp_queue: Option<String>,
    #[schema(nullable = false, minimum = 0, maximum = 1000000)]
    pub rate_limit_count: Option<u64>,
    #[schema(nullable = false, minimum = 0, maximum = 86400)]
    pub rate_limit_window: Option<u64>,
    #[schema(nullable = false, minimum = 0, maximum = 1000000)]
    pub character_limit: Option<u64>,
    pub event_url: Option<String>,
    pub event_auth_token: Option<String>,
    pub application: Option<String>,
    #[schema(nullable = false, minimum = 0, maximum = 10000)]
    pub window: Option<u64>,
    #[schema(nullable = false)]
    pub log_protocol: Option<bool>,
}

/// A channel: its stored properties as given (secrets redacted), with `id` and
/// `status`.
#[derive(ToSchema)]
pub struct Channel {
    /// A uuid4 with dashes.
    #[schema(example = "0a1d2f6c-4f51-4b0e-9d8e-0c6f3b7e5a11")]
    pub id: String,
    #[schema(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    pub status: ChannelStatus,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub mo_url: Option<String>,
    pub status_url: Option<String>,
    #[schema(nullable = false)]
    pub amqp_queue: Option<String>,
    #[schema(nullable = false)]
    pub character_limit: Option<u64>,
    #[schema(nullable = false)]
    pub rate_limit_count: Option<u64>,
    #[schema(nullable = false)]
    pub rate_limit_window: Option<u64>,
}

/// A channel's `status`: its components' health and its rates (per second, over the last
/// complete `metric_window`; the integer 0 when nothing happened), plus hornbill's queue
/// figures.
#[derive(ToSchema)]
pub struct ChannelStatus {
    /// The worst component level, `null` before any component reported.
    #[schema(required = true, value_type = Option<Level>)]
    pub status: Option<String>,
    /// The latest status event of each component (`smpp`, `request`, `broker`, ...).
    pub components: std::collections::BTreeMap<String, StatusEvent>,
    pub inbound_message_rate: f64,
    pub outbound_message_rate: f64,
    pub submitted_event_rate: f64,
    pub rejected_event_rate: f64,
    pub delivery_succeeded_rate: f64,
    pub delivery_failed_rate: f64,
    pub delivery_pending_rate: f64,
    /// hornbill: messages waiting to be sent (queued and held).
    pub queue_length: u64,
    /// hornbill: messages handed to the provider and not yet answered.
    pub in_flight: u64,
}

/// A component's health level.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Degraded,
    Down,
}

/// A status event: POSTed to `status_url`, and shown in `status.components`.
#[derive(ToSchema)]
#[schema(example = json!({"component": "smpp", "channel_id": "0a1d2f6c-4f51-4b0e-9d8e-0c6f3b7e5a11",
                          "status": "ok", "type": "bound", "message": "Bound to the SMSC", "details": {}}))]
pub struct StatusEvent {
    pub component: String,
    pub channel_id: String,
    pub status: Level,
    /// What happened: `starting`, `binding`, `bound`, `connection_lost`, `throttled`, ...
    #[schema(rename = "type")]
    pub kind: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Map<String, Value>,
}

/// `POST /channels/{id}/messages/` and `POST /routers/{rid}/destinations/{did}/messages/`:
/// `content` is required, and `to` or `reply_to`; no other keys are allowed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+27820000001", "from": "1234", "content": "Hello",
                          "event_url": "http://127.0.0.1:8000/events"}))]
pub struct MessageSend {
    /// The address to send to (ignored when `reply_to` names a stored inbound message).
    #[schema(nullable = false)]
    pub to: Option<String>,
    pub from: Option<String>,
    pub group: Option<String>,
    /// The `message_id` of an inbound message to answer (within `inbound_message_ttl`).
    #[schema(nullable = false)]
    pub reply_to: Option<String>,
    #[schema(required = true)]
    pub content: Option<String>,
    /// Where this message's events are POSTed (default: the channel's `event_url`).
    #[schema(nullable = false)]
    pub event_url: Option<String>,
    /// Sent as `Authorization: Token <token>` with each event POST.
    #[schema(nullable = false)]
    pub event_auth_token: Option<String>,
    /// `realtime` overtakes `bulk` (replies default to `realtime`).
    #[schema(nullable = false, example = "bulk")]
    pub priority: Option<String>,
    /// Transport extras; `session_event` (`new`, `resume`, `close`) and `continue_session`
    /// (false ends a USSD session) are read by hornbill.
    #[schema(nullable = false, value_type = Option<Object>)]
    pub channel_data: Option<Map<String, Value>>,
    /// hornbill: media to send, for channel types that carry it (`twilio`, `telegram`,
    /// `whatsapp`, `twitter`); any other type refuses the send with a 400.
    #[schema(nullable = false)]
    pub attachments: Option<Vec<Attachment>>,
}

/// A piece of media (hornbill's extension): kept on the Vumi message in
/// `helper_metadata.attachments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// For a send, an http(s) URL the provider fetches the media from. On an inbound
    /// message, the provider's URL when it can be fetched without credentials, otherwise
    /// hornbill's `/channels/{id}/media/{ref}`, which fetches it with the channel's.
    pub url: String,
    /// MIME type, e.g. `image/jpeg`.
    #[schema(nullable = false)]
    pub content_type: Option<String>,
    /// Text shown with the media where the channel has captions.
    #[schema(nullable = false)]
    pub caption: Option<String>,
}

/// A message: the send answer, the body POSTed to `mo_url`, and replies. All nine keys
/// are always present; `attachments` only when the message carries media.
#[derive(ToSchema)]
pub struct Message {
    #[schema(required = true)]
    pub to: Option<String>,
    #[schema(required = true)]
    pub from: Option<String>,
    #[schema(required = true)]
    pub group: Option<String>,
    /// 32 hex digits (a uuid4 without dashes).
    #[schema(example = "4b6b4c8f0e2a4e5c9c3f1d2a7b8e9f01")]
    pub message_id: String,
    /// The channel the message went out (or came in) on.
    pub channel_id: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS.ffffff`.
    #[schema(example = "2026-11-22 10:15:30.123456")]
    pub timestamp: String,
    /// For a reply, the id of the inbound message it answers.
    #[schema(required = true)]
    pub reply_to: Option<String>,
    #[schema(required = true)]
    pub content: Option<String>,
    #[schema(value_type = Object)]
    pub channel_data: Map<String, Value>,
    /// hornbill: the message's media.
    #[schema(nullable = false)]
    pub attachments: Option<Vec<Attachment>>,
}

/// The `type` of an event.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum EventType {
    Submitted,
    Rejected,
    DeliveryPending,
    DeliveryFailed,
    DeliverySucceeded,
}

/// An event: POSTed to the message's `event_url`, and listed in its status.
#[derive(ToSchema)]
pub struct Event {
    pub event_type: EventType,
    /// The id the send answered with.
    pub message_id: String,
    /// The channel, or for a destination send the destination id.
    pub channel_id: String,
    #[schema(example = "2026-11-22 10:15:31.000001")]
    pub timestamp: String,
    /// `{"reason": ...}` for `rejected`, else `{}`.
    #[schema(value_type = Object)]
    pub event_details: Map<String, Value>,
}

/// A sent message's status: its events, oldest first. An unknown id has no events.
#[derive(ToSchema)]
pub struct MessageStatus {
    pub id: String,
    #[schema(required = true)]
    pub last_event_type: Option<EventType>,
    #[schema(required = true)]
    pub last_event_timestamp: Option<String>,
    pub events: Vec<Event>,
}

/// `DELETE /channels/{id}/messages/`: how many queued messages were cancelled (each got a
/// `rejected` event with reason `cancelled`).
#[derive(ToSchema)]
pub struct Cancelled {
    pub cancelled: u64,
}

/// A log entry.
#[derive(ToSchema)]
pub struct LogEntry {
    /// The channel's or router's id.
    pub logger: String,
    /// Python's level number: 20 INFO, 30 WARNING, 40 ERROR.
    #[schema(example = 20)]
    pub level: u8,
    /// Seconds since the epoch.
    #[schema(example = 1795428930.5)]
    pub timestamp: f64,
    pub message: String,
    /// hornbill: the message the entry is about, if any.
    #[schema(nullable = false)]
    pub message_id: Option<String>,
}

/// `POST /routers/` and `PUT /routers/{rid}`: `type` and `config` required; no other
/// keys allowed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "from_address",
                          "config": {"channel": "0a1d2f6c-4f51-4b0e-9d8e-0c6f3b7e5a11"}}))]
pub struct RouterBody {
    /// `from_address`, `keyword`, `to_addr`, `from_addr`, `load_balance` or
    /// `channel_to_channel`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The router type's settings; every type has `channel` (the channel it owns).
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// `PATCH /routers/{rid}`: the keys to change; nothing required, no other keys allowed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterPatch {
    #[serde(rename = "type")]
    #[schema(nullable = false)]
    pub kind: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// A router: what was stored, with its id.
#[derive(ToSchema)]
pub struct Router {
    pub id: String,
    #[schema(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// `POST /routers/{rid}/destinations/` and `PUT .../{did}`: `config` required; no
/// other keys allowed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"config": {"regular_expression": "^\\*120\\*1#"},
                          "mo_url": "http://127.0.0.1:8000/inbound"}))]
pub struct DestinationBody {
    /// The router type's destination settings (`from_address`: `regular_expression`,
    /// `default`).
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    pub mo_url: Option<String>,
    /// Sent as `Authorization: Token <token>` with each `mo_url` POST.
    #[schema(nullable = false)]
    pub mo_url_token: Option<String>,
    #[schema(nullable = false)]
    pub amqp_queue: Option<String>,
    #[schema(nullable = false, minimum = 0, maximum = 1000000)]
    pub character_limit: Option<u64>,
    /// hornbill: a built-in or configured application as the destination.
    #[schema(nullable = false)]
    pub application: Option<String>,
}

/// `PATCH /routers/{rid}/destinations/{did}`: the keys to change; nothing required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationPatch {
    #[schema(nullable = false, value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    pub mo_url: Option<String>,
    #[schema(nullable = false)]
    pub mo_url_token: Option<String>,
    #[schema(nullable = false)]
    pub amqp_queue: Option<String>,
    #[schema(nullable = false, minimum = 0, maximum = 1000000)]
    pub character_limit: Option<u64>,
    #[schema(nullable = false)]
    pub application: Option<String>,
}

/// A router destination: what was stored (secrets redacted), with its id.
#[derive(ToSchema)]
pub struct Destination {
    pub id: String,
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    #[schema(nullable = false)]
    pub label: Option<String>,
    #[schema(nullable = false, value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    #[schema(nullable = false)]
    pub mo_url: Option<String>,
    #[schema(nullable = false)]
    pub mo_url_token: Option<String>,
    #[schema(nullable = false)]
    pub amqp_queue: Option<String>,
    #[schema(nullable = false)]
    pub character_limit: Option<u64>,
    #[schema(nullable = false)]
    pub application: Option<String>,
}

/// `PATCH /routers/{rid}` shares `PUT`'s handler (`routers::replace`); only its body differs.
#[utoipa::path(patch, path = "/routers/{rid}", tag = "routers", operation_id = "patch_router",
    summary = "Change some of a router's keys",
    params(("rid" = String, Path, description = "Router id")),
    request_body(content = RouterPatch, description = "The keys to change (merged)"),
    responses(
        (status = 200, description = "router updated", body = Envelope<Router>),
        (status = 400, description = "json decode error, api usage error, invalid router type or config", body = ErrorEnvelope),
        (status = 403, description = "defined in the config file", body = ErrorEnvelope),
        (status = 404, description = "router not found", body = ErrorEnvelope),
    ))]
#[allow(dead_code)]
fn patch_router() {}

/// `PATCH /routers/{rid}/destinations/{did}` shares `PUT`'s handler.
#[utoipa::path(patch, path = "/routers/{rid}/destinations/{did}", tag = "destinations",
    operation_id = "patch_destination",
    summary = "Change some of a destination's keys",
    params(("rid" = String, Path, description = "Router id"),
           ("did" = String, Path, description = "Destination id")),
    request_body(content = DestinationPatch, description = "The keys to change (merged)"),
    responses(
        (status = 200, description = "destination updated", body = Envelope<Destination>),
        (status = 400, description = "json decode error, api usage error, invalid router destination config", body = ErrorEnvelope),
        (status = 403, description = "defined in the config file", body = ErrorEnvelope),
        (status = 404, description = "router or destination not found", body = ErrorEnvelope),
    ))]
#[allow(dead_code)]
fn patch_destination() {}

/// `GET /metrics` (its handler is `metrics::scrape`).
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    summary = "Metrics, in Prometheus's text format",
    responses((status = 200, description = "Prometheus's text exposition format 0.0.4",
               content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
#[allow(dead_code)]
fn metrics() {}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "service", operation_id = "openapi",
    summary = "This OpenAPI document",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn spec() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(spec_json())
}

/// `GET /openapi/public.json`: the public listener's document.
#[utoipa::path(get, path = "/openapi/public.json", tag = "service", operation_id = "openapi_public",
    summary = "The public listener's OpenAPI document (provider callbacks; a separate server)",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of the public listener", content_type = "application/json", body = Object)))]
pub async fn public_spec() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(public_spec_json())
}

/// The management API's document, as JSON (built once).
pub fn spec_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        with_channel_configs(&mut doc, &crate::transports::Registry::builtin());
        doc.to_string()
    })
}

/// What the derived schemas cannot say: each channel type's `config` schema
/// (`ChannelConfig_{type}`, from the type's own config struct, with its duration ranges) and
/// the rule on `ChannelCreate` that picks it by `type`; and that a send needs `to` or
/// `reply_to`.
pub fn with_channel_configs(doc: &mut Value, registry: &crate::transports::Registry) {
    let mut rules = Vec::new();
    for name in registry.names() {
        let Ok(factory) = registry.get(name) else {
            continue;
        };
        let schema_name = format!("ChannelConfig_{name}");
        doc["components"]["schemas"][&schema_name] = factory.config_schema();
        rules.push(json!({
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {"properties": {"config": {"$ref": format!("#/components/schemas/{schema_name}")}}},
        }));
    }
    doc["components"]["schemas"]["ChannelCreate"]["allOf"] = Value::Array(rules);
    // A send names its recipient: `to`, or the message it answers (`reply_to`).
    doc["components"]["schemas"]["MessageSend"]["anyOf"] =
        json!([{"required": ["to"]}, {"required": ["reply_to"]}]);
}

/// The public listener's document, as JSON (built once).
pub fn public_spec_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        super::public::PublicApiDoc::openapi()
            .to_json()
            .unwrap_or_default()
    })
}

/// `Authorization: Token <auth_token>` or HTTP Basic, when `[server]` sets them.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <auth_token>` ([server] auth_token)",
            ))),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("[server] username and password"))
                    .build(),
            ),
        );
    }
}

/// The docs page (`/docs/`), reading `/openapi.json` and the public listener's document
/// (by relative URLs, so it also works behind a proxy that adds a prefix).
pub fn docs() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::new([
        utoipa_swagger_ui::Url::with_primary("hornbill API", "../openapi.json", true),
        utoipa_swagger_ui::Url::new(
            "public listener (provider callbacks)",
            "../openapi/public.json",
        ),
    ]))
}

/// `/docs` to `/docs/` (relative, so it also works behind a proxy that adds a prefix).
async fn docs_redirect() -> actix_web::HttpResponse {
    actix_web::HttpResponse::PermanentRedirect()
        .insert_header((actix_web::http::header::LOCATION, "docs/"))
        .finish()
}

/// The paths `access::guard` lets through without credentials: the documents and the docs page, which describe
/// the code, not the deployment.
pub fn is_public(path: &str) -> bool {
    path == "/openapi.json"
        || path == "/openapi/public.json"
        || path == "/docs"
        || path.starts_with("/docs/")
}

/// Registers `/openapi.json`, `/openapi/public.json` and the docs page.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::web;
    let na = || super::not_allowed("GET");
    cfg.service(
        web::resource("/openapi.json")
            .route(web::get().to(spec))
            .default_service(na()),
    )
    .service(
        web::resource("/openapi/public.json")
            .route(web::get().to(public_spec))
            .default_service(na()),
    )
    .service(
        web::resource("/docs")
            .route(web::get().to(docs_redirect))
            .default_service(na()),
    )
    .service(docs());
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "hornbill",
        description = "hornbill's management API: Junebug's HTTP API (channels, messages, routers \
and destinations, logs, health), with hornbill's additions under the same conventions. Every \
answer is Junebug's envelope, `{status, code, description, result}`. Request bodies are read \
as JSON whatever their content type. Collection paths are served with and without their \
trailing slash (`/channels` and `/channels/`); this document names Junebug's form. When \
`[server]` sets `auth_token` or `username`/`password`, every path except `/health`, \
`/openapi.json` and the docs page needs `Authorization`.\n\nNot described here: the docs \
page (`/docs/`), the dashboard (`/ui/`), which are HTML pages, and the public listener \
(provider callbacks), a separate server with its own document, `/openapi/public.json`.",
        license(name = "BSD-3-Clause", identifier = "BSD-3-Clause"),
    ),
    paths(
        super::channels::list, super::channels::create, super::channels::get,
        super::channels::modify, super::channels::delete, super::channels::restart,
        super::channels::rotate_secret, super::channels::logs,
        super::messages::send, super::messages::cancel, super::messages::status,
        super::messages::logs,
        super::routers::list, super::routers::create, super::routers::get,
        super::routers::replace, patch_router, super::routers::delete, super::routers::logs,
        super::routers::list_destinations, super::routers::create_destination,
        super::routers::get_destination, super::routers::replace_destination,
        patch_destination, super::routers::delete_destination, super::routers::send,
        super::routers::status,
        super::health, super::cluster::get, metrics, spec, public_spec,
    ),
    modifiers(&Security),
    security(("token" = []), ("basic" = [])),
    tags(
        (name = "channels", description = "Channels: connections to providers"),
        (name = "messages", description = "Sending, message status, cancelling queued messages"),
        (name = "routers", description = "Routers: one channel's inbound shared among destinations"),
        (name = "destinations", description = "A router's destinations, and sending as one"),
        (name = "service", description = "Health, metrics and this document"),
    ),
)]
pub struct ApiDoc;
