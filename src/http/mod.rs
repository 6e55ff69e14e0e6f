//! The HTTP API: Junebug's endpoints and envelope (`JUNEBUG-API.md` §1-2), with hornbill's
//! additions under the same conventions. Both `/channels` and `/channels/` are served.

pub mod access;
pub mod channels;
pub mod cluster;
pub mod envelope;
pub mod forward;
pub mod messages;
pub mod metrics;
pub mod openapi;
pub mod public;
pub mod routers;
pub mod ui;

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
    /// Who may use the API (`[server]`): hosts, origins, credentials.
    pub access: access::Access,
}

impl State {
    /// A channel this node knows, or one just created through another node whose notice
    /// has not reached this one yet: found in the store, it is loaded here first, so a send
    /// right after a create elsewhere is not refused.
    pub async fn channel(&self, id: &str) -> Result<Arc<crate::actors::ChannelShared>, ApiError> {
        if let Some(c) = self.core.channel(id) {
            return Ok(c);
        }
        if let Ok(Some(_)) = self
            .core
            .store
            .load_def(crate::store::Defs::Channels, id)
            .await
        {
            let _ = self
                .engine
                .send(crate::actors::engine::Reload(id.to_string()))
                .await;
        }
        self.core.channel(id).ok_or(ApiError::ChannelNotFound)
    }
}

/// A resource's answer to a method it does not serve: 405, with the ones it does in `Allow`.
pub fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow)) })
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute)
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
    let na = not_allowed;
    // actix-router tries patterns in order, each a regex: the send path, the hot one, first.
    cfg.service(
        web::resource(["/channels/{id}/messages/", "/channels/{id}/messages"])
            .route(web::post().to(messages::send))
            .route(web::delete().to(messages::cancel))
            .default_service(na("POST, DELETE")),
    )
    .service(
        web::resource(["/channels", "/channels/"])
            .route(web::get().to(channels::list))
            .route(web::post().to(channels::create))
            .default_service(na("GET, POST")),
    )
    .service(
        web::resource("/channels/{id}")
            .route(web::get().to(channels::get))
            .route(web::post().to(channels::modify))
            .route(web::delete().to(channels::delete))
            .default_service(na("GET, POST, DELETE")),
    )
    .service(
        web::resource("/channels/{id}/restart")
            .route(web::post().to(channels::restart))
            .default_service(na("POST")),
    )
    .service(
        web::resource("/channels/{id}/callback_secret")
            .route(web::post().to(channels::rotate_secret))
            .default_service(na("POST")),
    )
    .service(
        web::resource("/channels/{id}/logs")
            .route(web::get().to(channels::logs))
            .default_service(na("GET")),
    )
    .service(
        web::resource("/channels/{id}/messages/{mid}")
            .route(web::get().to(messages::status))
            .default_service(na("GET")),
    )
    .service(
        web::resource("/channels/{id}/messages/{mid}/logs")
            .route(web::get().to(messages::logs))
            .default_service(na("GET")),
    )
    .service(
        web::resource(["/routers", "/routers/"])
            .route(web::get().to(routers::list))
            .route(web::post().to(routers::create))
            .default_service(na("GET, POST")),
    )
    .service(
        web::resource("/routers/{rid}")
            .route(web::get().to(routers::get))
            .route(web::put().to(routers::replace))
            .route(web::patch().to(routers::replace))
            .route(web::delete().to(routers::delete))
            .default_service(na("GET, PUT, PATCH, DELETE")),
    )
    .service(
        web::resource("/routers/{rid}/logs")
            .route(web::get().to(routers::logs))
            .default_service(na("GET")),
    )
    .service(
        web::resource([
            "/routers/{rid}/destinations",
            "/routers/{rid}/destinations/",
        ])
        .route(web::get().to(routers::list_destinations))
        .route(web::post().to(routers::create_destination))
        .default_service(na("GET, POST")),
    )
    .service(
        web::resource("/routers/{rid}/destinations/{did}")
            .route(web::get().to(routers::get_destination))
            .route(web::put().to(routers::replace_destination))
            .route(web::patch().to(routers::replace_destination))
            .route(web::delete().to(routers::delete_destination))
            .default_service(na("GET, PUT, PATCH, DELETE")),
    )
    .service(
        web::resource([
            "/routers/{rid}/destinations/{did}/messages/",
            "/routers/{rid}/destinations/{did}/messages",
        ])
        .route(web::post().to(routers::send))
        .default_service(na("POST")),
    )
    .service(
        web::resource("/routers/{rid}/destinations/{did}/messages/{mid}")
            .route(web::get().to(routers::status))
            .default_service(na("GET")),
    )
    .service(
        web::resource(["/cluster", "/cluster/"])
            .route(web::get().to(cluster::get))
            .default_service(na("GET")),
    )
    .service(
        web::resource(["/health", "/health/"])
            .route(web::get().to(health))
            .default_service(na("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics::scrape))
            .default_service(na("GET")),
    )
    .configure(ui::configure)
    .configure(openapi::configure)
    .default_service(web::to(not_found));
}
