//! Routers and their destinations (§1.2 rows 10-24, §2.7, §3.8), with DESIGN.md's fixes:
//! the destination's `mo_url_token` is really sent, `default` destinations work, events of
//! destination sends reach their `event_url`, and a router's destinations go with it.

use super::State;
use super::channels::log_view;
use super::envelope::{ApiError, Body, created, ok, parse_json};
use super::messages::{SendTarget, status_view, submit};
use super::openapi as doc;
use crate::actors::cluster::tell;
use crate::actors::engine::{DeleteDestination, DeleteRouter, PutDestination, PutRouter};
use crate::actors::router::{RouterShared, check_destination, check_router};
use crate::api_schema;
use crate::cluster::Change;
use crate::defs::RouterKind;
use crate::redact;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn lookup(state: &State, rid: &str) -> Result<Arc<RouterShared>, ApiError> {
    state
        .core
        .router(rid)
        .ok_or_else(|| ApiError::RouterNotFound(rid.to_string()))
}

fn destination(router: &RouterShared, did: &str) -> Result<Value, ApiError> {
    router
        .destination(did)
        .ok_or_else(|| ApiError::DestinationNotFound(router.id.clone(), did.to_string()))
}

fn checked(
    body: &[u8],
    check: impl Fn(&Value) -> Vec<api_schema::SchemaError>,
) -> Result<Value, ApiError> {
    let value = parse_json(body)?;
    let errors = check(&value);
    if !errors.is_empty() {
        return Err(ApiError::Schema(errors));
    }
    Ok(value)
}

/// The keys of a router definition, from a request body.
fn router_def(body: &Value) -> Value {
    let mut def = Map::new();
    for k in ["type", "config", "label", "metadata"] {
        if let Some(v) = body.get(k) {
            def.insert(k.into(), v.clone());
        }
    }
    Value::Object(def)
}

async fn put_router(state: &State, id: Option<String>, def: Value) -> Result<Value, ApiError> {
    let kind = def.get("type").and_then(Value::as_str).unwrap_or_default();
    let config = def.get("config").cloned().unwrap_or(Value::Null);
    let kind = check_router(&state.core, id.as_deref(), kind, &config)?;
    // A changed type may not suit the destinations it has.
    if let Some(router) = id.as_deref().and_then(|r| state.core.router(r)) {
        for dest in router.destinations.read().values() {
            check_destination(kind, dest.get("config").unwrap_or(&Value::Null))?;
        }
    }
    let shared = state
        .engine
        .send(PutRouter {
            id,
            def,
            destinations: None,
            from_config: false,
        })
        .await??;
    tell(
        &state.core,
        Change::Router {
            id: shared.id.clone(),
        },
    )
    .await;
    Ok(shared.view())
}

#[utoipa::path(get, path = "/routers/", tag = "routers", operation_id = "list_routers",
    summary = "List the routers' ids",
    responses((status = 200, description = "routers retrieved", body = doc::Envelope<Vec<String>>)))]
pub async fn list(state: web::Data<State>) -> HttpResponse {
    let ids: Vec<String> = state.core.routers.read().keys().cloned().collect();
    ok("routers retrieved", json!(ids))
}

#[utoipa::path(post, path = "/routers/", tag = "routers", operation_id = "create_router",
    summary = "Create a router",
    request_body(content = doc::RouterBody, description = "The router"),
    responses(
        (status = 201, description = "router created", body = doc::Envelope<doc::Router>),
        (status = 400, description = "json decode error, api usage error, invalid router type or config", body = doc::ErrorEnvelope),
    ))]
pub async fn create(state: web::Data<State>, Body(body): Body) -> Result<HttpResponse, ApiError> {
    let body = checked(&body, |v| api_schema::validate_router(v, true))?;
    let view = put_router(&state, None, router_def(&body)).await?;
    Ok(created("router created", view))
}

#[utoipa::path(get, path = "/routers/{rid}", tag = "routers", operation_id = "get_router",
    summary = "A router",
    params(("rid" = String, Path, description = "Router id")),
    responses(
        (status = 200, description = "router found", body = doc::Envelope<doc::Router>),
        (status = 404, description = "router not found", body = doc::ErrorEnvelope),
    ))]
pub async fn get(
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(ok("router found", lookup(&state, &path)?.view()))
}

#[utoipa::path(put, path = "/routers/{rid}", tag = "routers", operation_id = "replace_router",
    summary = "Replace a router's type, config, label and metadata (PATCH: see patch_router)",
    params(("rid" = String, Path, description = "Router id")),
    request_body(content = doc::RouterBody, description = "The router"),
    responses(
        (status = 200, description = "router updated", body = doc::Envelope<doc::Router>),
        (status = 400, description = "json decode error, api usage error, invalid router type or config", body = doc::ErrorEnvelope),
        (status = 403, description = "defined in the config file", body = doc::ErrorEnvelope),
        (status = 404, description = "router not found", body = doc::ErrorEnvelope),
    ))]
/// PUT replaces type, config, label and metadata; PATCH merges what it is given.
pub async fn replace(
    state: web::Data<State>,
    path: web::Path<String>,
    req: HttpRequest,
    Body(body): Body,
) -> Result<HttpResponse, ApiError> {
    let full = req.method() == actix_web::http::Method::PUT;
    let body = checked(&body, |v| api_schema::validate_router(v, full))?;
    let router = lookup(&state, &path)?;
    let mut def = if full {
        Map::new()
    } else {
        router.def.read().as_object().cloned().unwrap_or_default()
    };
    if let Value::Object(given) = router_def(&body) {
        def.extend(given);
    }
    def.remove("id");
    let view = put_router(&state, Some(router.id.clone()), Value::Object(def)).await?;
    Ok(ok("router updated", view))
}

#[utoipa::path(delete, path = "/routers/{rid}", tag = "routers", operation_id = "delete_router",
    summary = "Delete a router and its destinations",
    params(("rid" = String, Path, description = "Router id")),
    responses(
        (status = 200, description = "router deleted", body = doc::Envelope<doc::Empty>),
        (status = 403, description = "defined in the config file", body = doc::ErrorEnvelope),
        (status = 404, description = "router not found", body = doc::ErrorEnvelope),
    ))]
pub async fn delete(
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rid = path.into_inner();
    state.engine.send(DeleteRouter(rid.clone())).await??;
    tell(&state.core, Change::Router { id: rid }).await;
    Ok(ok("router deleted", json!({})))
}

#[utoipa::path(get, path = "/routers/{rid}/logs", tag = "routers", operation_id = "router_logs",
    summary = "A router's newest log entries, newest first",
    params(("rid" = String, Path, description = "Router id"), doc::LogsQuery),
    responses(
        (status = 200, description = "logs retrieved", body = doc::Envelope<Vec<doc::LogEntry>>),
        (status = 400, description = "api usage error (n is not an integer)", body = doc::ErrorEnvelope),
        (status = 404, description = "router not found", body = doc::ErrorEnvelope),
    ))]
pub async fn logs(
    state: web::Data<State>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let router = lookup(&state, &path)?;
    log_view(&state.core, &router.log, &req)
}

#[utoipa::path(get, path = "/routers/{rid}/destinations/", tag = "destinations", operation_id = "list_destinations",
    summary = "List a router's destinations' ids",
    params(("rid" = String, Path, description = "Router id")),
    responses(
        (status = 200, description = "destinations retrieved", body = doc::Envelope<Vec<String>>),
        (status = 404, description = "router not found", body = doc::ErrorEnvelope),
    ))]
pub async fn list_destinations(
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let router = lookup(&state, &path)?;
    let ids: Vec<String> = router.destinations.read().keys().cloned().collect();
    Ok(ok("destinations retrieved", json!(ids)))
}

async fn put_destination(
    state: &State,
    router: &RouterShared,
    did: Option<String>,
    dest: Value,
) -> Result<Value, ApiError> {
    if let Some(kind) = router.kind() {
        check_destination(kind, dest.get("config").unwrap_or(&Value::Null))?;
    }
    super::channels::check_destinations(&state.core, dest.as_object().unwrap_or(&Map::new()))?;
    let saved = state
        .engine
        .send(PutDestination {
            rid: router.id.clone(),
            did,
            dest,
        })
        .await??;
    tell(
        &state.core,
        Change::Router {
            id: router.id.clone(),
        },
    )
    .await;
    Ok(redact::channel(&saved))
}

#[utoipa::path(post, path = "/routers/{rid}/destinations/", tag = "destinations", operation_id = "create_destination",
    summary = "Add a destination to a router",
    params(("rid" = String, Path, description = "Router id")),
    request_body(content = doc::DestinationBody, description = "The destination"),
    responses(
        (status = 201, description = "destination created", body = doc::Envelope<doc::Destination>),
        (status = 400, description = "json decode error, api usage error, invalid router destination config", body = doc::ErrorEnvelope),
        (status = 403, description = "defined in the config file", body = doc::ErrorEnvelope),
        (status = 404, description = "router not found", body = doc::ErrorEnvelope),
    ))]
pub async fn create_destination(
    state: web::Data<State>,
    path: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, ApiError> {
    let body = checked(&body, |v| api_schema::validate_destination(v, true))?;
    let router = lookup(&state, &path)?;
    let view = put_destination(&state, &router, None, body).await?;
    Ok(created("destination created", view))
}

#[utoipa::path(get, path = "/routers/{rid}/destinations/{did}", tag = "destinations", operation_id = "get_destination",
    summary = "A destination",
    params(("rid" = String, Path, description = "Router id"), ("did" = String, Path, description = "Destination id")),
    responses(
        (status = 200, description = "destination found", body = doc::Envelope<doc::Destination>),
        (status = 404, description = "router or destination not found", body = doc::ErrorEnvelope),
    ))]
pub async fn get_destination(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (rid, did) = path.into_inner();
    let router = lookup(&state, &rid)?;
    Ok(ok(
        "destination found",
        redact::channel(&destination(&router, &did)?),
    ))
}

#[utoipa::path(put, path = "/routers/{rid}/destinations/{did}", tag = "destinations", operation_id = "replace_destination",
    summary = "Replace a destination (PATCH: see patch_destination)",
    params(("rid" = String, Path, description = "Router id"), ("did" = String, Path, description = "Destination id")),
    request_body(content = doc::DestinationBody, description = "The destination"),
    responses(
        (status = 200, description = "destination updated", body = doc::Envelope<doc::Destination>),
        (status = 400, description = "json decode error, api usage error, invalid router destination config", body = doc::ErrorEnvelope),
        (status = 403, description = "defined in the config file", body = doc::ErrorEnvelope),
        (status = 404, description = "router or destination not found", body = doc::ErrorEnvelope),
    ))]
pub async fn replace_destination(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    Body(body): Body,
) -> Result<HttpResponse, ApiError> {
    let full = req.method() == actix_web::http::Method::PUT;
    let body = checked(&body, |v| api_schema::validate_destination(v, full))?;
    let (rid, did) = path.into_inner();
    let router = lookup(&state, &rid)?;
    let mut dest = if full {
        Map::new()
    } else {
        destination(&router, &did)?
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    if !full || router.destination(&did).is_some() {
        if let Value::Object(given) = body {
            dest.extend(given);
        }
    } else {
        return Err(ApiError::DestinationNotFound(rid, did));
    }
    dest.remove("id");
    let view = put_destination(&state, &router, Some(did), Value::Object(dest)).await?;
    Ok(ok("destination updated", view))
}

#[utoipa::path(delete, path = "/routers/{rid}/destinations/{did}", tag = "destinations", operation_id = "delete_destination",
    summary = "Delete a destination",
    params(("rid" = String, Path, description = "Router id"), ("did" = String, Path, description = "Destination id")),
    responses(
        (status = 200, description = "destination deleted", body = doc::Envelope<doc::Empty>),
        (status = 403, description = "defined in the config file", body = doc::ErrorEnvelope),
        (status = 404, description = "router or destination not found", body = doc::ErrorEnvelope),
    ))]
pub async fn delete_destination(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (rid, did) = path.into_inner();
    state
        .engine
        .send(DeleteDestination {
            rid: rid.clone(),
            did,
        })
        .await??;
    tell(&state.core, Change::Router { id: rid }).await;
    Ok(ok("destination deleted", json!({})))
}

#[utoipa::path(post, path = "/routers/{rid}/destinations/{did}/messages/", tag = "destinations", operation_id = "send_as_destination",
    summary = "Send a message as a destination (on the router's channel)",
    description = "The destination's `character_limit` applies; its events come back to the destination. For `channel_to_channel`, a reply goes out as a new message on `reply_channel`.",
    params(("rid" = String, Path, description = "Router id"), ("did" = String, Path, description = "Destination id")),
    request_body(content = doc::MessageSend, description = "The message"),
    responses(
        (status = 201, description = "message submitted", body = doc::Envelope<doc::Message>),
        (status = 400, description = "json decode error, api usage error, message not found (`reply_to`), message too long", body = doc::ErrorEnvelope),
        (status = 404, description = "router or destination not found", body = doc::ErrorEnvelope),
        (status = 500, description = "amqp connection error", body = doc::ErrorEnvelope),
        (status = 503, description = "message not sent: the channel's queue is full", body = doc::ErrorEnvelope),
    ))]
/// `POST /routers/{rid}/destinations/{did}/messages/`: sends on the router's channel (for
/// `channel_to_channel`, a reply goes out on its `reply_channel`), with the destination's
/// character limit; the events come back to the destination.
pub async fn send(
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    Body(body): Body,
) -> Result<HttpResponse, ApiError> {
    let core = &state.core;
    let mut request = checked(&body, api_schema::validate_message)?;
    let (rid, did) = path.into_inner();
    let router = lookup(&state, &rid)?;
    let dest = destination(&router, &did)?;
    let mut extras = Map::new();
    extras.insert("router_id".into(), json!(rid));
    extras.insert("destination_id".into(), json!(did));
    let target = |cid: String| SendTarget {
        cid,
        replies_from: did.clone(),
        character_limit: dest
            .get("character_limit")
            .and_then(crate::api_schema::as_count),
        extras: extras.clone(),
        also_under: Some(did.clone()),
    };
    let reply_to = request
        .get("reply_to")
        .and_then(Value::as_str)
        .map(str::to_string);
    if router.kind() == Some(RouterKind::ChannelToChannel)
        && let Some(reply_to) = reply_to
    {
        // Answered on the other channel: a new message to the user who wrote.
        let original = core
            .store
            .load_inbound(&did, &reply_to)
            .await?
            .ok_or_else(|| {
                ApiError::MessageNotFound(format!("Inbound message with id {reply_to} not found"))
            })?;
        if let Value::Object(m) = &mut request {
            m.remove("reply_to");
            if !m.contains_key("to") {
                m.insert("to".into(), json!(original.from_addr));
            }
        }
        let view = submit(core, &target(router.reply_channel()), request).await?;
        let close_text = router
            .def
            .read()
            .pointer("/config/session_close_text")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(text) = close_text
            && original.session_event.is_some()
        {
            let close = json!({"reply_to": reply_to, "content": text,
                               "channel_data": {"continue_session": false}});
            submit(core, &target(router.channel()), close).await?;
        }
        return Ok(created("message submitted", view));
    }
    let view = submit(core, &target(router.channel()), request).await?;
    Ok(created("message submitted", view))
}

#[utoipa::path(get, path = "/routers/{rid}/destinations/{did}/messages/{mid}", tag = "destinations", operation_id = "destination_message_status",
    summary = "The events of a message a destination sent",
    params(("rid" = String, Path, description = "Router id"), ("did" = String, Path, description = "Destination id"), ("mid" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "message status", body = doc::Envelope<doc::MessageStatus>),
        (status = 404, description = "router or destination not found", body = doc::ErrorEnvelope),
    ))]
pub async fn status(
    state: web::Data<State>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (rid, did, mid) = path.into_inner();
    let router = lookup(&state, &rid)?;
    destination(&router, &did)?;
    // A channel_to_channel router's replies leave on its reply channel: their events are
    // that channel's.
    let reply = router.reply_channel();
    let cid = if router.kind() == Some(RouterKind::ChannelToChannel)
        && state
            .core
            .store
            .load_outbound(&reply, &mid)
            .await?
            .is_some()
    {
        reply
    } else {
        router.channel()
    };
    Ok(ok(
        "message status",
        status_view(&state.core, &did, &cid, &mid).await?,
    ))
}
