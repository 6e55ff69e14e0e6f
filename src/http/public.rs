//! The public listener (`[public]`): providers call hornbill back here, at
//! `/channels/{channel_id}/{callback_secret}/{action}` (Courier's convention,
//! `/c/<type>/<uuid>/<action>`, with the channel id first since the id alone finds the
//! channel, and the channel's unguessable secret: a URL without it is refused, 403). The request is handed to the
//! channel's running transport, which answers it: at once (an inbound SMS, a delivery report)
//! or once the application has (a synchronous USSD request).
//!
//! An unknown channel, or an action its type does not take, is a 404; a channel whose
//! transport is restarting, or is flooded, a 503 the provider retries. Bad provider requests
//! are the transport's to refuse (400, with a channel-log entry).

use crate::actors::Core;
use crate::transports::{Callback, CallbackResponse};
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::Arc;
use std::time::Duration;

pub struct PublicState {
    pub core: Arc<Core>,
}

fn answer(r: CallbackResponse) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(r.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::build(status);
    resp.content_type(r.content_type);
    for (name, value) in r.headers {
        resp.insert_header((name, value));
    }
    resp.body(r.body)
}

fn not_found(what: &str) -> HttpResponse {
    answer(CallbackResponse::json(
        404,
        &serde_json::json!({"status": 404, "code": "Not Found", "description": what, "result": {}}),
    ))
}

fn unavailable(what: &str) -> HttpResponse {
    let mut resp = answer(CallbackResponse::json(
        503,
        &serde_json::json!({"status": 503, "code": "Service Unavailable", "description": what, "result": {}}),
    ));
    resp.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static("5"),
    );
    resp
}

#[utoipa::path(post, path = "/channels/{id}/{secret}/{action}", tag = "callbacks", operation_id = "callback",
    summary = "A provider's callback: handed to the channel's transport, which answers it",
    description = "The body, query and answer are the provider's own format (see the channel type). \
Any method is accepted (providers use POST or GET); a trailing slash too. Without the channel's \
callback secret in the path (`/channels/{id}/{action}`, or a wrong one) the answer is 403, \
logged on the channel and counted in `hornbill_callbacks_refused_total`.",
    params(("id" = String, Path, description = "Channel id"),
           ("secret" = String, Path, description = "The channel's callback secret (shown when it is created, and by `POST /channels/{id}/callback_secret`)"),
           ("action" = String, Path, description = "What the provider reports; the channel type names the actions it takes (e.g. `inbound`, `status`, `ussd`)")),
    request_body(content = String, description = "The provider's request, as it sends it", content_type = "*/*"),
    responses(
        (status = 200, description = "Answered by the transport, in the provider's format"),
        (status = 400, description = "Refused by the transport (logged on the channel)"),
        (status = 401, description = "The provider's credentials did not match the channel's (types with Basic auth)"),
        (status = 403, description = "The URL lacks the channel's callback secret, or has a wrong one", body = super::openapi::Envelope<super::openapi::Empty>),
        (status = 404, description = "channel not found, or the channel type has no such callback", body = super::openapi::Envelope<super::openapi::Empty>),
        (status = 503, description = "The transport is restarting, busy, or did not answer in time: try again (`Retry-After`)", body = super::openapi::Envelope<super::openapi::Empty>),
    ))]
async fn callback(
    state: web::Data<PublicState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (cid, secret, action) = path.into_inner();
    handle(&state.core, req, cid, Some(secret), action, body).await
}

/// `/channels/{id}/{action}`: a callback URL without the channel's secret, refused (403)
/// once the channel and action are known to exist.
#[utoipa::path(post, path = "/channels/{id}/{action}", tag = "callbacks", operation_id = "callback_without_secret",
    summary = "A callback URL without the channel's secret: refused",
    description = "Logged on the channel and counted (`hornbill_callbacks_refused_total{reason=\"no_secret\"}`). Any method.",
    params(("id" = String, Path, description = "Channel id"),
           ("action" = String, Path, description = "What the provider reports")),
    responses(
        (status = 403, description = "The URL lacks the channel's callback secret", body = super::openapi::Envelope<super::openapi::Empty>),
        (status = 404, description = "channel not found, or the channel type has no such callback", body = super::openapi::Envelope<super::openapi::Empty>),
    ))]
async fn callback_without_secret(
    state: web::Data<PublicState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (cid, action) = path.into_inner();
    handle(&state.core, req, cid, None, action, body).await
}

/// A 403 for a callback without the right secret: logged on the channel and counted.
fn forbidden(
    shared: &crate::actors::ChannelShared,
    action: &str,
    reason: &'static str,
) -> HttpResponse {
    shared.log.warn(
        None,
        format!(
            "Refused a {action:?} callback (403): {}",
            match reason {
                "no_secret" => "its URL lacks the channel's callback secret",
                _ => "its URL has a wrong callback secret",
            }
        ),
    );
    crate::telemetry::callback_refused(&shared.id, reason);
    answer(CallbackResponse::json(
        403,
        &serde_json::json!({"status": 403, "code": "Forbidden",
            "description": "this callback URL is not the channel's (see its callback_secret)", "result": {}}),
    ))
}

async fn handle(
    core: &Arc<Core>,
    req: HttpRequest,
    cid: String,
    secret: Option<String>,
    action: String,
    body: web::Bytes,
) -> HttpResponse {
    let Some(shared) = core.channel(&cid) else {
        return not_found("channel not found");
    };
    let spec = shared.spec();
    let actions = core
        .registry
        .get(&spec.kind)
        .map(|f| f.callback_actions(&spec.config))
        .unwrap_or_default();
    if !actions.contains(&action.as_str()) {
        return not_found(&format!(
            "channel type {} has no callback {action:?}",
            spec.kind
        ));
    }
    match secret {
        None => return forbidden(&shared, &action, "no_secret"),
        Some(s) if !spec.callback_secret.accepts(&s, crate::message::now_secs()) => {
            return forbidden(&shared, &action, "wrong_secret");
        }
        Some(_) => {}
    }
    let Some(intake) = shared.callbacks.read().clone() else {
        return unavailable("the channel's transport is not running");
    };
    let query = req.query_string().to_string();
    let base = core.public_base.clone().unwrap_or_default();
    let url = if query.is_empty() {
        format!("{base}{}", req.path())
    } else {
        format!("{base}{}?{query}", req.path())
    };
    let headers = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let (reply, answered) = tokio::sync::oneshot::channel();
    let cb = Callback {
        action,
        method: req.method().as_str().to_string(),
        url,
        query,
        headers,
        body,
        reply,
    };
    if intake.try_send(cb).is_err() {
        shared.log.warn(
            None,
            "Provider callback refused (503): the transport is busy or restarting",
        );
        return unavailable("the channel's transport is busy or restarting");
    }
    let wait = Duration::from_secs_f64(core.settings.public.timeout);
    match tokio::time::timeout(wait, answered).await {
        Ok(Ok(r)) => answer(r),
        // The transport ended (restart) before answering: the provider should try again.
        Ok(Err(_)) => unavailable("the channel's transport stopped"),
        Err(_) => {
            shared
                .log
                .warn(None, "Provider callback not answered in time (503)");
            unavailable("the channel did not answer in time")
        }
    }
}

/// `GET /channels/{id}/{secret}/media/{ref}`: an inbound message's media, fetched from the
/// provider with the channel's credentials (which never leave hornbill).
#[utoipa::path(get, path = "/channels/{id}/{secret}/media/{ref}", tag = "callbacks", operation_id = "media",
    summary = "Media of an inbound message (an attachment's `url`)",
    description = "Where a provider's media needs the channel's credentials to be fetched (a Telegram \
file, WhatsApp media), an inbound message's attachment points here: hornbill fetches it from the \
provider and passes it on. The channel's callback secret in the path is the credential.",
    params(("id" = String, Path, description = "Channel id"),
           ("secret" = String, Path, description = "The channel's callback secret"),
           ("ref" = String, Path, description = "The provider's reference for the media")),
    responses(
        (status = 200, description = "The media, with the provider's content type"),
        (status = 403, description = "The URL has a wrong callback secret", body = super::openapi::Envelope<super::openapi::Empty>),
        (status = 404, description = "channel not found, or no such media", body = super::openapi::Envelope<super::openapi::Empty>),
        (status = 502, description = "The provider did not give it", body = super::openapi::Envelope<super::openapi::Empty>),
    ))]
async fn media(
    state: web::Data<PublicState>,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let (cid, secret, media_ref) = path.into_inner();
    let core = &state.core;
    let Some(shared) = core.channel(&cid) else {
        return not_found("channel not found");
    };
    let spec = shared.spec();
    if !spec
        .callback_secret
        .accepts(&secret, crate::message::now_secs())
    {
        return forbidden(&shared, "media", "wrong_secret");
    }
    let Ok(factory) = core.registry.get(&spec.kind) else {
        return not_found("no such media");
    };
    match factory.media(&spec.config, &media_ref).await {
        Ok(m) => HttpResponse::Ok().content_type(m.content_type).body(m.body),
        Err(crate::transports::MediaError::NotFound) => not_found("no such media"),
        Err(e) => {
            shared
                .log
                .warn(None, format!("Media {media_ref:?} not fetched: {e}"));
            answer(CallbackResponse::json(
                502,
                &serde_json::json!({"status": 502, "code": "Bad Gateway", "description": e.to_string(), "result": {}}),
            ))
        }
    }
}

/// `GET /channels/{id}/{action}` (no secret) is refused as the POST is.
#[utoipa::path(get, path = "/channels/{id}/{action}", tag = "callbacks", operation_id = "callback_without_secret_get",
    summary = "A callback URL without the channel's secret, by GET: refused",
    params(("id" = String, Path, description = "Channel id"),
           ("action" = String, Path, description = "What the provider reports")),
    responses(
        (status = 403, description = "The URL lacks the channel's callback secret", body = super::openapi::Envelope<super::openapi::Empty>),
        (status = 404, description = "channel not found, or the channel type has no such callback", body = super::openapi::Envelope<super::openapi::Empty>),
    ))]
#[allow(dead_code)]
fn callback_without_secret_get() {}

/// `GET /channels/{id}/{secret}/{action}` reaches `callback` too.
#[utoipa::path(get, path = "/channels/{id}/{secret}/{action}", tag = "callbacks", operation_id = "callback_get",
    summary = "A provider's callback, by GET (as POST)",
    params(("id" = String, Path, description = "Channel id"),
           ("secret" = String, Path, description = "The channel's callback secret"),
           ("action" = String, Path, description = "What the provider reports")),
    responses(
        (status = 200, description = "Answered by the transport, in the provider's format"),
        (status = 404, description = "channel not found, or the channel type has no such callback", body = super::openapi::Envelope<super::openapi::Empty>),
        (status = 503, description = "Try again (`Retry-After`)", body = super::openapi::Envelope<super::openapi::Empty>),
    ))]
#[allow(dead_code)]
fn callback_get() {}

#[utoipa::path(get, path = "/health", tag = "callbacks", operation_id = "public_health",
    summary = "Health check of the public listener",
    responses((status = 200, description = "health ok", body = super::openapi::Envelope<super::openapi::Empty>)))]
async fn health() -> HttpResponse {
    answer(CallbackResponse::json(
        200,
        &serde_json::json!({"status": 200, "code": "OK", "description": "health ok", "result": {}}),
    ))
}

async fn nothing_here() -> HttpResponse {
    not_found("no such callback")
}

/// The public listener's document (served by the management listener, at
/// `/openapi/public.json`; the public listener serves only what providers call).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "hornbill public listener",
         description = "The public listener (`[public]`): providers call hornbill back here, at \
`/channels/{channel_id}/{callback_secret}/{action}`. It is a separate server from the management \
API, with no API credentials: the path carries the channel's callback secret, and channel types \
check their provider's own credentials too where it has some (Twilio's signature, Basic auth)."),
    paths(callback, callback_get, callback_without_secret, callback_without_secret_get, media, health),
    tags((name = "callbacks", description = "Provider callbacks")),
)]
pub struct PublicApiDoc;

/// The public listener's routes.
pub fn configure(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(web::PayloadConfig::new(max_body))
        .service(web::resource(["/health", "/health/"]).route(web::get().to(health)))
        .service(web::resource("/channels/{id}/{secret}/media/{ref}").route(web::get().to(media)))
        .service(
            web::resource([
                "/channels/{id}/{secret}/{action}",
                "/channels/{id}/{secret}/{action}/",
            ])
            .route(web::route().to(callback)),
        )
        .service(
            web::resource(["/channels/{id}/{action}", "/channels/{id}/{action}/"])
                .route(web::route().to(callback_without_secret)),
        )
        .default_service(web::to(nothing_here));
}
