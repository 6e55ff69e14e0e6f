//! The HTTP API: Junebug's endpoints and envelope (`JUNEBUG-API.md` §1-2), with hornbill's
//! additions under the same conventions. Both `/channels` and `/channels/` are served.

pub mod channels;
pub mod envelope;
pub mod messages;

use crate::actors::Core;
use crate::actors::engine::Engine;
use actix::Addr;
use actix_web::{HttpResponse, web};
use envelope::ApiError;
use std::sync::Arc;

/// What every handler gets.
pub struct State {
    pub core: Arc<Core>,
    pub engine: Addr<Engine>,
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

async fn health() -> HttpResponse {
    envelope::ok("health ok", serde_json::json!({}))
}

/// Registers every route on an actix-web `App`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let na = || web::to(method_not_allowed);
    cfg.service(
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
        web::resource(["/channels/{id}/messages/", "/channels/{id}/messages"])
            .route(web::post().to(messages::send))
            .route(web::delete().to(messages::cancel))
            .default_service(na()),
    )
    .service(
        web::resource("/channels/{id}/messages/{mid}")
            .route(web::get().to(messages::status))
            .default_service(na()),
    )
    .service(
        web::resource(["/health", "/health/"])
            .route(web::get().to(health))
            .default_service(na()),
    )
    .default_service(web::to(not_found));
}
