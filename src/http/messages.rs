//! Sending and message status (§1.2 rows 8-9, §3.3), and cancelling queued messages.

use super::State;
use super::envelope::{ApiError, Body, created, ok, parse_json};
use super::openapi as doc;
use crate::actors::channel::CancelQueued;
use crate::actors::outbound::{self, EnqueueError, Outbound};
use crate::api_schema::{self, py_repr};
use crate::bus::BusError;
use crate::message::{Attachment, Message, SessionEvent};
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

fn session_event(v: Option<&Value>) -> Option<SessionEvent> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
}

#[utoipa::path(post, path = "/channels/{id}/messages/", tag = "messages", operation_id = "send_message",
    summary = "Send a message, or a reply (`reply_to`)",
    description = "Answers once the message is queued; what the provider does with it comes back as events (to `event_url`, and in the message status).",
    params(("id" = String, Path, description = "Channel id")),
    request_body(content = doc::MessageSend, description = "The message"),
    responses(
        (status = 201, description = "message submitted", body = doc::Envelope<doc::Message>),
        (status = 400, description = "json decode error, api usage error (schema; neither `to` nor `reply_to`; the channel has no `mo_url` or `amqp_queue`), message not found (`reply_to`), message too long", body = doc::ErrorEnvelope),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
        (status = 500, description = "amqp connection error (the bus refused the message)", body = doc::ErrorEnvelope),
        (status = 503, description = "message not sent: the channel's queue is full", body = doc::ErrorEnvelope),
    ))]
pub async fn send(
    state: web::Data<State>,
    path: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, ApiError> {
    let core = &state.core;
    let request = parse_json(&body)?;
    let errors = api_schema::validate_message(&request);
    if !errors.is_empty() {
        return Err(ApiError::Schema(errors));
    }
    let cid = path.into_inner();
    let shared = state.channel(&cid).await?;
    let spec = shared.spec();
    if !spec.has_destination {
        return Err(ApiError::Usage(
            "This channel has no \"mo_url\" or \"amqp_queue\"".into(),
        ));
    }
    let target = SendTarget {
        replies_from: cid.clone(),
        character_limit: spec.character_limit,
        extras: Map::new(),
        also_under: None,
        cid,
    };
    let view = submit(core, &target, request).await?;
    Ok(created("message submitted", view))
}

/// Where a send goes, and whose records it reads and writes.
pub struct SendTarget {
    /// The channel it goes out on.
    pub cid: String,
    /// Whose inbound records `reply_to` is looked up in (the channel, or a destination).
    pub replies_from: String,
    pub character_limit: Option<u64>,
    /// Added to the outbound record (a destination send: its router and destination).
    pub extras: Map<String, Value>,
    /// A second id the message object is stored under (Junebug: the destination's).
    pub also_under: Option<String>,
}

/// Checks and queues one message (a validated send request) for `target`: the message
/// object (§2.2) once the bus has confirmed it.
pub async fn submit(
    core: &crate::actors::Core,
    target: &SendTarget,
    request: Value,
) -> Result<Value, ApiError> {
    let cid = &target.cid;
    let shared = core.channel(cid).ok_or(ApiError::ChannelNotFound)?;
    let spec = shared.spec();
    let req = request.as_object().cloned().unwrap_or_default();
    let text = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_string);
    let (to, reply_to) = (text("to"), text("reply_to"));
    if to.is_none() && reply_to.is_none() {
        return Err(ApiError::Usage(
            "Either \"to\" or \"reply_to\" must be specified".into(),
        ));
    }
    let content = text("content");
    let attachments = match req.get("attachments") {
        Some(v) => Attachment::parse_list(v).map_err(ApiError::Usage)?,
        None => Vec::new(),
    };
    let carries_media = core
        .registry
        .get(&spec.kind)
        .is_ok_and(|f| f.carries_media());
    if !attachments.is_empty() && !carries_media {
        return Err(ApiError::Usage(format!(
            "Channel type {} cannot carry attachments",
            py_repr(&Value::String(spec.kind.clone()))
        )));
    }
    let mut channel_data: Map<String, Value> = match req.get("channel_data") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let continue_session = channel_data.remove("continue_session");
    let explicit_session = session_event(channel_data.remove("session_event").as_ref());

    let original = match &reply_to {
        Some(rid) => match core.store.load_inbound(&target.replies_from, rid).await? {
            Some(m) => Some(m),
            None if core.settings.channel_defaults.allow_expired_replies && to.is_some() => None,
            None => {
                return Err(ApiError::MessageNotFound(format!(
                    "Inbound message with id {rid} not found"
                )));
            }
        },
        None => None,
    };
    let is_reply = original.is_some();
    let mut msg = match original {
        Some(orig) => {
            let close = continue_session == Some(Value::Bool(false));
            let mut m = orig.reply(content, close);
            if let Some(ev) = explicit_session {
                m.session_event = Some(ev);
            }
            m
        }
        None => {
            let mut m = Message::new(to, text("from"), content);
            m.group = text("group");
            m.session_event = explicit_session;
            m.transport_name = Some(cid.clone());
            m.transport_type = Some(spec.transport_type.clone());
            m
        }
    };
    msg.helper_metadata = channel_data;
    msg.set_attachments(attachments);
    if let Some(c) = continue_session {
        msg.extra.insert("continue_session".into(), c);
    }
    if let (Some(limit), Some(content)) = (target.character_limit, &msg.content) {
        let length = content.chars().count() as u64;
        if length > limit {
            return Err(ApiError::MessageTooLong(format!(
                "Message content {} is of length {length}, which is greater than the character limit of {limit}",
                py_repr(&Value::String(content.clone()))
            )));
        }
    }
    // The outbound record keeps the request's event_url, event_auth_token and priority
    // for the events that follow.
    let mut record = req.clone();
    for (k, val) in &target.extras {
        record.insert(k.clone(), val.clone());
    }
    let realtime = match req.get("priority").and_then(Value::as_str) {
        Some(p) => p.eq_ignore_ascii_case("realtime"),
        None => is_reply,
    };
    let out = Outbound {
        msg: &msg,
        raw: None,
        record,
        also_under: target.also_under.as_deref(),
        realtime,
        from: None,
    };
    let view = outbound::enqueue(core, &shared, out)
        .await
        .map_err(|e| match e {
            EnqueueError::Store(e) => ApiError::from(e),
            EnqueueError::Bus(e @ BusError::QueueFull(_)) => ApiError::QueueFull(e.to_string()),
            EnqueueError::Bus(e) => ApiError::BusUnavailable(e.to_string()),
        })?;
    Ok(view)
}

#[utoipa::path(get, path = "/channels/{id}/messages/{mid}", tag = "messages", operation_id = "message_status",
    summary = "A sent message's events",
    params(("id" = String, Path, description = "Channel id"), ("mid" = String, Path, description = "Message id (as the send answered)")),
    responses(
        (status = 200, description = "message status (an unknown id has no events)", body = doc::Envelope<doc::MessageStatus>),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn status(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (cid, mid) = path.into_inner();
    state.core.channel(&cid).ok_or(ApiError::ChannelNotFound)?;
    Ok(ok(
        "message status",
        status_view(&state.core, &cid, &cid, &mid).await?,
    ))
}

/// A message's status object (§2.4) from the events stored under `owner` (a channel or a
/// destination) of a message sent on channel `cid`.
pub async fn status_view(
    core: &crate::actors::Core,
    owner: &str,
    cid: &str,
    mid: &str,
) -> Result<Value, ApiError> {
    let mut events = core.store.load_events(owner, mid).await?;
    events.retain(|e| e.api_event_type().is_some());
    events.sort_by_key(|a| a.timestamp);
    let views: Vec<Value> = events.iter().map(|e| e.api_view(cid)).collect();
    let last = events.last();
    Ok(json!({
        "id": mid,
        "last_event_type": last.and_then(|e| e.api_event_type()),
        "last_event_timestamp": last.map(|e| e.timestamp),
        "events": views,
    }))
}

/// `DELETE /channels/{id}/messages/`: cancels every message still queued on the channel.
#[utoipa::path(delete, path = "/channels/{id}/messages/", tag = "messages", operation_id = "cancel_messages",
    summary = "Cancel every message still queued on a channel",
    description = "hornbill's addition: each cancelled message gets a `rejected` event with reason `cancelled`.",
    params(("id" = String, Path, description = "Channel id")),
    responses(
        (status = 200, description = "messages cancelled", body = doc::Envelope<doc::Cancelled>),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
pub async fn cancel(
    state: web::Data<State>,
    path: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let shared = state.core.channel(&path).ok_or(ApiError::ChannelNotFound)?;
    // What it holds is its holder's.
    if let Some(answer) = super::forward::to_holder(&state, &req, &shared.id).await {
        return Ok(answer);
    }
    let actor = shared
        .actor
        .read()
        .clone()
        .ok_or(ApiError::ChannelNotFound)?;
    let cancelled = actor.send(CancelQueued).await?;
    Ok(ok("messages cancelled", json!({"cancelled": cancelled})))
}

#[utoipa::path(get, path = "/channels/{id}/messages/{mid}/logs", tag = "messages", operation_id = "message_logs",
    summary = "One message's log entries, oldest first",
    params(("id" = String, Path, description = "Channel id"), ("mid" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "logs retrieved", body = doc::Envelope<Vec<doc::LogEntry>>),
        (status = 404, description = "channel not found", body = doc::ErrorEnvelope),
    ))]
/// `GET /channels/{id}/messages/{mid}/logs`: one message's story, oldest first: accepted and
/// queued, handed to the provider, the provider's answer, its events, webhook attempts.
pub async fn logs(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (cid, mid) = path.into_inner();
    let shared = state.core.channel(&cid).ok_or(ApiError::ChannelNotFound)?;
    let log = shared.log.clone();
    // The files are read off the HTTP worker.
    let mut entries = web::block(move || log.of_message(&mid))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    // Its story as every node saw it: accepted on one, sent from another.
    entries.extend(super::forward::other_logs(&state, &req).await);
    entries.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
    Ok(ok("logs retrieved", json!(entries)))
}
