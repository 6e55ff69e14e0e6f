//! `GET /cluster`: the live nodes as this node sees them, and what each holds.

use super::State;
use super::envelope::{ApiError, ok};
use super::openapi::Envelope;
use actix_web::{HttpResponse, web};
use serde_json::json;
use utoipa::ToSchema;

/// The cluster as one node sees it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ClusterView {
    /// The node that answered.
    node_id: String,
    /// `redis` (nodes on one Redis and RabbitMQ) or `local` (a cluster of one).
    backend: String,
    /// Seconds a lease or a heartbeat lasts without renewal.
    lease_ttl: f64,
    nodes: Vec<NodeView>,
}

/// One live node.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NodeView {
    id: String,
    /// Its management API.
    url: String,
    /// Seconds since the epoch.
    started: f64,
    last_seen: f64,
    /// The channels whose lease it holds (their transports run there).
    channels: Vec<String>,
    /// The routers of those channels.
    routers: Vec<String>,
}

#[utoipa::path(get, path = "/cluster", tag = "service", operation_id = "cluster",
    summary = "The live nodes, when each was last seen, and the channels and routers each holds",
    description = "On the embedded default (or without both the Redis store and the RabbitMQ \
bus) a node is a cluster of one, and shows itself.",
    responses(
        (status = 200, description = "cluster", body = Envelope<ClusterView>),
        (status = 500, description = "the cluster's backend (Redis) is unavailable", body = super::openapi::ErrorEnvelope),
    ))]
pub async fn get(state: web::Data<State>) -> Result<HttpResponse, ApiError> {
    let m = &state.core.membership;
    let nodes = m
        .coordinator
        .members()
        .await
        .map_err(|e| ApiError::Store(e.to_string()))?;
    Ok(ok(
        "cluster",
        json!({
            "node_id": m.node_id,
            "backend": m.coordinator.kind(),
            "lease_ttl": m.ttl.as_secs_f64(),
            "nodes": nodes,
        }),
    ))
}
