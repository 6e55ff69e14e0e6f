//! `GET /metrics`: Prometheus's text format (`crate::telemetry`), behind the API's auth
//! like every route but `/health`; and the middleware that times every API request.

use super::State;
use crate::telemetry;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use std::time::Instant;

/// Prometheus's text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn scrape(state: web::Data<State>) -> HttpResponse {
    let text = state.core.scrape().await;
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(text)
}

/// Records each request in `hornbill_api_request_duration_seconds`, labelled with the route
/// pattern it matched (never the raw path), its method and its status.
pub async fn time_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().clone();
    let res = next.call(req).await;
    let (route, status) = match &res {
        Ok(r) => (r.request().match_pattern(), r.status().as_u16()),
        Err(e) => (None, e.as_response_error().status_code().as_u16()),
    };
    telemetry::api_request(method.as_str(), route, status, start.elapsed());
    res
}
