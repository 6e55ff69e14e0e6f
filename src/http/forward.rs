//! Reads of what only a channel's holder knows, asked of another node: its log (`/logs`, a
//! message's story), its live counts (`queue_length`, `in_flight` in `GET /channels/{id}`)
//! and its queue (cancelling queued messages). The request is passed on to the holder's API
//! as it came (method, path, query, credentials), once: a request already passed on
//! (`X-Hornbill-Forwarded`) is answered where it lands. If the holder cannot be reached the
//! node answers with what it has itself.
//!
//! Forwarding rather than copying every log line into Redis: the log is the hot path's
//! busiest write (several lines per message), and a read of it is rare; one hop on a rare
//! read costs less than a Redis write per line on every message.

use super::State;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use std::time::Duration;

/// Marks a request one node passed on to another (its value: the node that did).
pub const FORWARDED: &str = "x-hornbill-forwarded";

/// How long the holder has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

fn client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// The API address of the node holding `cid`, when that is another live node.
fn holder_url(state: &State, cid: &str) -> Option<String> {
    let m = &state.core.membership;
    if state.core.channel(cid).is_some_and(|c| c.is_active()) {
        return None;
    }
    m.members
        .read()
        .iter()
        .find(|n| n.id != m.node_id && n.channels.iter().any(|c| c == cid))
        .map(|n| n.url.clone())
}

/// This request, passed on to the node at `base` once (marked `FORWARDED`), with its
/// method, path, query and credentials; `None` for a method reqwest does not take.
fn pass_on(state: &State, req: &HttpRequest, base: &str) -> Option<reqwest::RequestBuilder> {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path(), |p| p.as_str());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).ok()?;
    let mut out = client()
        .request(method, format!("{base}{path}"))
        .header(FORWARDED, state.core.membership.node_id.as_str());
    if let Some(auth) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        out = out.header(reqwest::header::AUTHORIZATION, auth.as_bytes());
    }
    Some(out)
}

/// The holder's answer to this request, if another node holds `cid` and answered.
pub async fn to_holder(state: &State, req: &HttpRequest, cid: &str) -> Option<HttpResponse> {
    if req.headers().contains_key(FORWARDED) {
        return None;
    }
    let base = holder_url(state, cid)?;
    let answer = match pass_on(state, req, &base)?.send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(channel = %cid, holder = %crate::redact::url(&base), error = %e,
                "The channel's holder did not answer; answering from this node.");
            return None;
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).ok()?;
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body = answer.bytes().await.ok()?;
    Some(
        HttpResponse::build(status)
            .insert_header((actix_web::http::header::CONTENT_TYPE, content_type))
            .body(body),
    )
}

/// The entries the other live nodes have of this request's log (a channel's newest, or one
/// message's story), each node asked once, in parallel; none for a request passed on already.
/// A node that does not answer in time is left out (its entries are missing, nothing fails).
pub async fn other_logs(state: &State, req: &HttpRequest) -> Vec<crate::logs::LogEntry> {
    if req.headers().contains_key(FORWARDED) {
        return vec![];
    }
    let m = &state.core.membership;
    let others: Vec<String> = m
        .members
        .read()
        .iter()
        .filter(|n| n.id != m.node_id)
        .map(|n| n.url.clone())
        .collect();
    let asks = others.into_iter().map(|base| {
        let out = pass_on(state, req, &base);
        async move {
            let answer: serde_json::Value = out?.send().await.ok()?.json().await.ok()?;
            serde_json::from_value::<Vec<crate::logs::LogEntry>>(answer.get("result")?.clone()).ok()
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}
