//! Channel endpoints: list, create, get, modify, delete, restart, logs (§1.2 rows 1-7).

use super::State;
use super::envelope::{ApiError, Body, created, ok, parse_json};
use super::openapi as doc;
use crate::actors::cluster::tell;
use crate::actors::engine::{CreateChannel, DeleteChannel, RestartChannel, UpdateChannel};
use crate::actors::{
    CALLBACK_SECRET, CallbackSecret, ChannelShared, Core, PREVIOUS_CALLBACK_SECRET,
    PREVIOUS_SECRET_GRACE, rate_bucket,
};
use crate::api_schema;
use crate::bus::routes;
use crate::cluster::Change;
use crate::message::{Level, StatusEvent};
use crate::redact;
use crate::transports::ConfigError;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use std::sync::atomic::Ordering;

/// Junebug's rate labels and the status keys they are shown under.
pub const RATES: &[(&str, &str)] = &[
    ("inbound", "inbound_message_rate"),
    ("outbound", "outbound_message_rate"),
    ("submitted", "submitted_event_rate"),
    ("rejected", "rejected_event_rate"),
    ("delivery_succeeded", "delivery_succeeded_rate"),
    ("delivery_failed", "delivery_failed_rate"),
    ("delivery_pending", "delivery_pending_rate"),
];

/// The `status` object of a channel (§2.1), plus hornbill's queue figures.
pub async fn status_object(core: &Core, shared: &ChannelShared) -> Value {
    let cid = &shared.id;
    let statuses: Vec<StatusEvent> = core.store.load_statuses(cid).await.unwrap_or_default();
    let worst = statuses
        .iter()
        .filter_map(|s| Level::parse(&s.status))
        .min();
    let mut components = Map::new();
    for s in &statuses {
        components.insert(
            s.component.clone(),
            serde_json::to_value(s).unwrap_or(Value::Null),
        );
    }
    // The broker is every channel's concern: shown live, not stored.
    let mut worst = worst;
    if core.bus.kind() == "amqp" {
        let (level, kind, text) = match core.bus.trouble() {
            None => (Level::Ok, "connected", "Connected to RabbitMQ".to_string()),
            Some(t) => (Level::Down, "connection_lost", t),
        };
        let broker = StatusEvent::new(cid, "broker", level, kind, &text);
        worst = Some(worst.map_or(level, |w| w.min(level)));
        components.insert(
            "broker".into(),
            serde_json::to_value(&broker).unwrap_or(Value::Null),
        );
    }
    let mut out = Map::new();
    out.insert("status".into(), json!(worst.map(Level::as_str)));
    out.insert("components".into(), Value::Object(components));
    let window = core.settings.channel_defaults.metric_window;
    let bucket = rate_bucket(window) - 1;
    for (label, key) in RATES {
        let count = core.store.rate_count(cid, label, bucket).await.unwrap_or(0);
        let rate = if count == 0 {
            json!(0)
        } else {
            json!(count as f64 / window)
        };
        out.insert((*key).into(), rate);
    }
    let waiting = core
        .bus
        .queue_len(&routes::outbound(cid))
        .await
        .unwrap_or(0)
        + core
            .bus
            .queue_len(&routes::outbound_realtime(cid))
            .await
            .unwrap_or(0)
        + shared.held.load(Ordering::Relaxed) as u64;
    out.insert("queue_length".into(), json!(waiting));
    out.insert(
        "in_flight".into(),
        json!(shared.in_flight.load(Ordering::Relaxed)),
    );
    Value::Object(out)
}

/// The channel object (§2.1): the stored properties, secrets redacted, with id and status.
pub async fn channel_view(core: &Core, shared: &ChannelShared) -> Value {
    let props = shared.props.read().clone();
    let mut view = match redact::channel(&props) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    view.insert("id".into(), json!(shared.id));
    view.insert("status".into(), status_object(core, shared).await);
    Value::Object(view)
}

/// Checks `type` + `config` against the channel types.
pub fn check_channel_type(core: &Core, kind: &str, config: &Value) -> Result<(), ApiError> {
    core.registry.validate(kind, config).map_err(|e| match e {
        ConfigError::UnknownType(..) => ApiError::InvalidChannelType(e.to_string()),
        ConfigError::Invalid(..) => ApiError::InvalidChannelConfig(e.to_string()),
    })
}

/// Checks the destinations a channel (or a router destination) names: hornbill's `application` key, and
/// `amqp_queue`, which only means something on the RabbitMQ bus (on the embedded bus no
/// Vumi worker could ever read it, and its queue would grow without end).
pub fn check_destinations(core: &Core, props: &Map<String, Value>) -> Result<(), ApiError> {
    if props.get("amqp_queue").is_some_and(Value::is_string) && core.bus.kind() != "amqp" {
        return Err(ApiError::Usage(
            "\"amqp_queue\" needs the RabbitMQ bus ([bus] kind = \"amqp\")".into(),
        ));
    }
    match props.get("application").and_then(Value::as_str) {
        Some(name) => {
            crate::actors::application::check_name(&core.settings, name).map_err(ApiError::Usage)
        }
        None => Ok(()),
    }
}

#[utoipa::path(get, path = "/channels/", tag = "channels", operation_id = "list_channels",
    summary = "List the channels' ids",
    responses((status = 200, description = "channels listed", body = doc::Envelope<Vec<String>>)))]
pub async fn list(state: web::Data<State>) -> HttpResponse {
    let ids: Vec<String> = state.core.channels.read().keys().cloned().collect();
    ok("channels listed", json!(ids))
}

#[utoipa::path(post, path = "/channels/", tag = "channels", operation_id = "create_channel",
    summary = "Create a channel (and start it)",
    request_body(content = doc::ChannelCreate, description = "The channel's properties"),
    responses(
        (status = 201, description = "channel created", body = doc::Envelope<doc::Channel>),
        (status = 400, description = "json decode error, api usage error, invalid channel type or config", body = doc::ErrorEnvelope),
    ))]
pub async fn create(state: web::Data<State>, Body(body): Body) -> Result<HttpResponse, ApiError> {
    let props = parse_json(&body)?;
    let errors = api_schema::validate_channel(&props, true);
    if !errors.is_empty() {
        return Err(ApiError::Schema(errors));
    }
    let map = props.as_object().cloned().unwrap_or_default();
    let kind = map.get("type").and_then(Value::as_str).unwrap_or_default();
    check_channel_type(&state.core, kind, map.get("config").unwrap_or(&Value::Null))?;
    check_destinations(&state.core, &map)?;
    let shared = state
        .engine
        .send(CreateChannel { id: None, props })
        .await??;
    tell(
        &state.core,
        Change::Channel {
            id: shared.id.clone(),
        },
    )
    .await;
    // The callback secret is shown here, once (and by a rotation); views show it redacted.
    let mut view = channel_view(&state.core, &shared).await;
    if let Some(secret) = shared.props.read().get(CALLBACK_SECRET) {
        view[CALLBACK_SECRET] = secret.clone();
    }
    Ok(created("channel created", view))
}

#[utoipa::path(post, path = "/channels/{id}/callback_secret", tag = "channels", operation_id = "rotate_callback_secret",
    summary = "Give the channel a new callback secret (its callback URLs change)",
    description = "The answer shows the new secret, once; the old one still opens the channel's \
callbacks for an hour, so the provider's settings can be changed without losing a message. \
Channel types without provider callbacks (telnet, smpp) have none.",
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "callback secret rotated", body = doc::Envelope<doc::CallbackSecret>),
        (status = 400, description = "api usage error (the channel type takes no callbacks)", body = doc::ErrorEnvelope),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn rotate_secret(
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let shared = state.channel(&path).await?;
    let Some(old) = shared.spec().callback_secret.current.clone() else {
        return Err(ApiError::Usage(
            "This channel's type takes no provider callbacks: it has no callback secret".into(),
        ));
    };
    let secret = CallbackSecret::generate();
    let mut changes = Map::new();
    changes.insert(CALLBACK_SECRET.into(), json!(secret));
    changes.insert(
        PREVIOUS_CALLBACK_SECRET.into(),
        json!({"secret": old, "until": crate::message::now_secs() + PREVIOUS_SECRET_GRACE}),
    );
    let shared = state
        .engine
        .send(UpdateChannel {
            id: path.into_inner(),
            changes,
        })
        .await??;
    tell(
        &state.core,
        Change::Channel {
            id: shared.id.clone(),
        },
    )
    .await;
    shared.log.info(None, "Callback secret rotated");
    let base = state
        .core
        .public_base
        .as_ref()
        .map(|b| format!("{b}/channels/{}/{secret}/", shared.id));
    Ok(ok(
        "callback secret rotated",
        json!({CALLBACK_SECRET: secret, "callback_url_base": base}),
    ))
}

#[utoipa::path(get, path = "/channels/{id}", tag = "channels", operation_id = "get_channel",
    summary = "A channel, with its status",
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "channel found", body = doc::Envelope<doc::Channel>),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn get(
    state: web::Data<State>,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let shared = state.channel(&path).await?;
    // Its live counts (queue held, in flight) are its holder's.
    if let Some(answer) = super::forward::to_holder(&state, &req, &shared.id).await {
        return Ok(answer);
    }
    Ok(ok(
        "channel found",
        channel_view(&state.core, &shared).await,
    ))
}

#[utoipa::path(post, path = "/channels/{id}", tag = "channels", operation_id = "modify_channel",
    summary = "Change a channel's properties (merged; restarts what they concern)",
    params(("id" = String, Path, description = "Channel id")),
    request_body(content = doc::ChannelModify, description = "The properties to change"),
    responses(
        (status = 200, description = "channel updated", body = doc::Envelope<doc::Channel>),
        (status = 400, description = "json decode error, api usage error, invalid channel type or config (checked before the channel is looked up)", body = doc::ErrorEnvelope),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn modify(
    state: web::Data<State>,
    path: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, ApiError> {
    let changes = parse_json(&body)?;
    let errors = api_schema::validate_channel(&changes, false);
    if !errors.is_empty() {
        return Err(ApiError::Schema(errors));
    }
    let shared = state.channel(&path).await?;
    let mut changes = changes.as_object().cloned().unwrap_or_default();
    // The secret changes only by a rotation; a view sent back (secrets redacted) keeps it.
    for key in [CALLBACK_SECRET, PREVIOUS_CALLBACK_SECRET] {
        match changes.remove(key) {
            None => {}
            Some(v) if v == json!(redact::MARK) => {}
            Some(_) => {
                return Err(ApiError::Usage(format!(
                    "{key} is changed by POST /channels/{{id}}/callback_secret"
                )));
            }
        }
    }
    if changes.contains_key("config") || changes.contains_key("type") {
        let props = shared.props.read().clone();
        let kind = changes
            .get("type")
            .or(props.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let config = changes
            .get("config")
            .or(props.get("config"))
            .cloned()
            .unwrap_or(Value::Null);
        check_channel_type(&state.core, kind, &config)?;
    }
    check_destinations(&state.core, &changes)?;
    let shared = state
        .engine
        .send(UpdateChannel {
            id: path.into_inner(),
            changes,
        })
        .await??;
    tell(
        &state.core,
        Change::Channel {
            id: shared.id.clone(),
        },
    )
    .await;
    Ok(ok(
        "channel updated",
        channel_view(&state.core, &shared).await,
    ))
}

#[utoipa::path(delete, path = "/channels/{id}", tag = "channels", operation_id = "delete_channel",
    summary = "Stop and delete a channel",
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "channel deleted", body = doc::Envelope<doc::Empty>),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn delete(
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    state.engine.send(DeleteChannel(id.clone())).await??;
    tell(&state.core, Change::Channel { id }).await;
    Ok(ok("channel deleted", json!({})))
}

#[utoipa::path(post, path = "/channels/{id}/restart", tag = "channels", operation_id = "restart_channel",
    summary = "Restart a channel's transport (any body is ignored)",
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "channel restarted", body = doc::Envelope<doc::Empty>),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn restart(
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    state.engine.send(RestartChannel(id.clone())).await??;
    // The channel's holder restarts it, wherever it is.
    tell(&state.core, Change::Restart { id }).await;
    Ok(ok("channel restarted", json!({})))
}

#[utoipa::path(get, path = "/channels/{id}/logs", tag = "channels", operation_id = "channel_logs",
    summary = "A channel's newest log entries, newest first",
    params(("id" = String, Path, description = "Channel id"), doc::LogsQuery),
    responses(
        (status = 200, description = "logs retrieved", body = doc::Envelope<Vec<doc::LogEntry>>),
        (status = 400, description = "api usage error (n is not an integer)", body = doc::ErrorEnvelope),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn logs(
    state: web::Data<State>,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let shared = state.channel(&path).await?;
    let n = log_n(&state.core, &req)?;
    // Every node's entries: the API's (accepted, queued) and the holder's (sent, answered).
    let mut entries = shared.log.newest(n);
    entries.extend(super::forward::other_logs(&state, &req).await);
    entries.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp));
    if n > 0 {
        entries.truncate(n);
    }
    Ok(ok("logs retrieved", json!(entries)))
}

/// The newest `?n=` entries of a log (Junebug's `n`, at most `max_logs`).
pub fn log_view(
    core: &Core,
    log: &crate::logs::ChannelLog,
    req: &actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    Ok(ok("logs retrieved", json!(log.newest(log_n(core, req)?))))
}

/// The `?n=` of a log request (Junebug's `n`, at most `max_logs`; 0 for all).
fn log_n(core: &Core, req: &actix_web::HttpRequest) -> Result<usize, ApiError> {
    let max = core.settings.log.max_logs;
    let n_param = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "n")
        .map(|(_, v)| v.into_owned());
    let n = match n_param.as_deref() {
        None => max,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(n) if n <= 0 => 0,
            Ok(n) => (n as usize).min(max),
            Err(_) => {
                return Err(ApiError::Usage(format!(
                    "n must be an integer, not {text:?}"
                )));
            }
        },
    };
    Ok(n)
}
