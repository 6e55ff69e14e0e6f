//! The one way an outbound message is queued, whoever sends it (an API send, a router
//! destination's send, a built-in application's reply, a Vumi worker on `amqp_queue`):
//! its outbound record is saved (the events that follow find their `event_url` and
//! destination there), it goes on the channel's realtime or bulk route and is confirmed by
//! the bus, and it is counted (rates, `hornbill_messages_outbound_total`) and logged as the
//! first entry of its story.

use super::{ChannelShared, Core};
use crate::bus::{BusError, routes};
use crate::message::Message;
use crate::store::StoreError;
use bytes::Bytes;
use serde_json::{Map, Value};

/// One message to queue on `shared`'s channel.
pub struct Outbound<'a> {
    pub msg: &'a Message,
    /// Its Vumi JSON as a worker published it, to pass on unchanged; `None`: `msg`'s own.
    pub raw: Option<Bytes>,
    /// Kept in the outbound record beside the message object (the send request's
    /// `event_url`, `event_auth_token`, `priority`; a destination send's router and
    /// destination).
    pub record: Map<String, Value>,
    /// A second id the message object is stored under (Junebug: a destination's).
    pub also_under: Option<&'a str>,
    /// On the realtime route (ahead of bulk traffic).
    pub realtime: bool,
    /// Who sent it, for the log when it is not the API (`application echo`, `destination
    /// <id>`, `amqp_queue`).
    pub from: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Bus(#[from] BusError),
}

/// Records, queues (confirmed by the bus), counts and logs `out` on `shared`'s channel: the
/// message object (§2.2) it was stored as.
pub async fn enqueue(
    core: &Core,
    shared: &ChannelShared,
    out: Outbound<'_>,
) -> Result<Value, EnqueueError> {
    let cid = &shared.id;
    let msg = out.msg;
    let view = msg.api_view(cid);
    if let Some(other) = out.also_under {
        core.store
            .save_outbound(other, &msg.message_id, &view)
            .await?;
    }
    let mut record = out.record;
    if let Value::Object(v) = &view {
        for (k, val) in v {
            record.insert(k.clone(), val.clone());
        }
    }
    core.store
        .save_outbound(cid, &msg.message_id, &Value::Object(record))
        .await?;
    let route = if out.realtime {
        routes::outbound_realtime(cid)
    } else {
        routes::outbound(cid)
    };
    // Logged before the publish: the channel may hand it over before this line would run.
    let queue = if out.realtime { "realtime" } else { "bulk" };
    let what = match &msg.in_reply_to {
        Some(rid) => format!("reply to {rid}"),
        None => format!("to {}", msg.to_addr.as_deref().unwrap_or("?")),
    };
    let from = out.from.map(|f| format!(", from {f}")).unwrap_or_default();
    shared.log.info(
        Some(&msg.message_id),
        format!("Accepted ({what}{from}) and queued ({queue})"),
    );
    let body = out.raw.unwrap_or_else(|| msg.to_bytes());
    if let Err(e) = core.bus.publish(&route, body).await {
        tracing::warn!(channel = %cid, error = %e, "Message not accepted: the bus refused it.");
        shared
            .log
            .warn(Some(&msg.message_id), format!("Not queued after all: {e}"));
        return Err(e.into());
    }
    core.count(cid, "outbound");
    shared.metrics.read().outbound.increment(1);
    Ok(view)
}
