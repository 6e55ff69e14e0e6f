//! The HTTP API: Junebug's endpoints and envelope (`JUNEBUG-API.md` §1-2), with hornbill's
//! additions under the same conventions. Both `/channels` and `/channels/` are served.

pub mod channels;
pub mod envelope;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod public;
pub mod routers;
pub mod ui;

use crate::actors::Core;
use crate::actors::engine::Engine;
use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use base64::Engine as _;
use envelope::ApiError;
use std::sync::Arc;

/// What every handler gets.
pub struct State {
    pub core: Arc<Core>,
    pub engine: Addr<Engine>,
    /// `Authorization` header values that open the API; empty: no auth (Junebug's default).
    pub credentials: Vec<String>,
}

/// The `Authorization` values that open the API, if it is protected (`[server]` auth_token,
/// or username and password).
pub fn accepted_credentials(settings: &crate::config::ServerSettings) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(t) = &settings.auth_token {
        out.push(format!("Token {t}"));
    }
    if let (Some(u), Some(p)) = (&settings.username, &settings.password) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        out.push(format!("Basic {encoded}"));
    }
    out
}

/// Refuses requests without accepted credentials when the API is protected.
pub async fn require_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let allowed = req
        .app_data::<web::Data<State>>()
        .map(|s| s.credentials.clone())
        .unwrap_or_default();
    let path = req.path();
    if !allowed.is_empty()
        && path != "/health"
        && path != "/health/"
        && !ui::is_public(path)
        && !openapi::is_public(path)
    {
        let given = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !allowed.iter().any(|a| a == given) {
            let resp = ApiError::Unauthorized.error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

#[utoipa::path(get, path = "/health", tag = "service", operation_id = "health",
    summary = "Health check (needs no credentials)",
    security(()),
    responses((status = 200, description = "health ok", body = openapi::Envelope<openapi::Empty>)))]
async fn health() -> HttpResponse {
    envelope::ok("health ok", serde_json::json!({}))
}

/// Registers every route on an actix-web `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let na = || web::to(method_not_allowed);
    // actix-router tries patterns in order, each a regex: the send path, the hot one, first.
    cfg.service(
        web::resource(["/channels/{id}/messages/", "/channels/{id}/messages"])
            .route(web::post().to(messages::send))
            .route(web::delete().to(messages::cancel))
            .default_service(na()),
    )
    .service(
        web::resource(["/channels", "/channels/"])
            .route(web::get().to(channels::list))
            .route(web::post().to(channels::create))
            .default_service(na()),
    )
    .service(
        web::resource("/channels/{id}")
            .route(web::get().to(channels::get))
            .route(web::post().to(channels::modify))
            .route(web::delete().to(channels::delete))
            .default_service(na()),
    )
    .service(
        web::resource("/channels/{id}/restart")
            .route(web::post().to(channels::restart))
            .default_service(na()),
    )
    .service(
        web::resource("/channels/{id}/logs")
            .route(web::get().to(channels::logs))
            .default_service(na()),
    )
    .service(
        web::resource("/channels/{id}/messages/{mid}")
            .route(web::get().to(messages::status))
            .default_service(na()),
    )
    .service(
        web::resource("/channels/{id}/messages/{mid}/logs")
            .route(web::get().to(messages::logs))
            .default_service(na()),
    )
    .service(
        web::resource(["/routers", "/routers/"])
            .route(web::get().to(routers::list))
            .route(web::post().to(routers::create))
            .default_service(na()),
    )
    .service(
        web::resource("/routers/{rid}")
            .route(web::get().to(routers::get))
            .route(web::put().to(routers::replace))
            .route(web::patch().to(routers::replace))
            .route(web::delete().to(routers::delete))
            .default_service(na()),
    )
    .service(
        web::resource("/routers/{rid}/logs")
            .route(web::get().to(routers::logs))
            .default_service(na()),
    )
    .service(
        web::resource([
            "/routers/{rid}/destinations",
            "/routers/{rid}/destinations/",
        ])
        .route(web::get().to(routers::list_destinations))
        .route(web::post().to(routers::create_destination))
        .default_service(na()),
    )
    .service(
        web::resource("/routers/{rid}/destinations/{did}")
            .route(web::get().to(routers::get_destination))
            .route(web::put().to(routers::replace_destination))
            .route(web::patch().to(routers::replace_destination))
            .route(web::delete().to(routers::delete_destination))
            .default_service(na()),
    )
    .service(
        web::resource([
            "/routers/{rid}/destinations/{did}/messages/",
            "/routers/{rid}/destinations/{did}/messages",
        ])
        .route(web::post().to(routers::send))
        .default_service(na()),
    )
    .service(
        web::resource("/routers/{rid}/destinations/{did}/messages/{mid}")
            .route(web::get().to(routers::status))
            .default_service(na()),
    )
    .service(
        web::resource(["/health", "/health/"])
            .route(web::get().to(health))
            .default_service(na()),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics::scrape))
            .default_service(na()),
    )
    .configure(ui::configure)
    .configure(openapi::configure)
    .default_service(web::to(not_found));
}
