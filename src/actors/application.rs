//! Built-in applications: answerers that run inside hornbill as a channel's destination
//! (channel key `"application": "echo"`) or a router destination's (destination key
//! `"application"`). An application sees only the message, never the
//! channel type; its replies go out on the channel's `realtime` route like API replies.

use super::{ChannelShared, Core};
use crate::bus::routes;
use crate::message::Message;
use actix::prelude::*;
use std::sync::Arc;

/// Names of the built-in applications.
pub const NAMES: &[&str] = &["echo"];

/// An inbound message for the application.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub Message);

/// Vumi's echo worker: answers every message that has content with that content.
pub struct Application {
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    /// Added to its replies' outbound records (a router destination's ids, so the events
    /// of its replies come back to the destination).
    extras: serde_json::Map<String, serde_json::Value>,
}

impl Actor for Application {
    type Context = Context<Self>;
}

/// Starts the named application for a channel (`None` for an unknown name).
pub fn start(name: &str, core: Arc<Core>, shared: Arc<ChannelShared>) -> Option<Addr<Application>> {
    start_with(name, core, shared, serde_json::Map::new())
}

/// Starts the named application, its replies' records carrying `extras`.
pub fn start_with(
    name: &str,
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    extras: serde_json::Map<String, serde_json::Value>,
) -> Option<Addr<Application>> {
    match name {
        "echo" => Some(
            Application {
                core,
                shared,
                extras,
            }
            .start(),
        ),
        _ => None,
    }
}

impl Handler<Inbound> for Application {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Inbound(msg): Inbound, _ctx: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        let shared = self.shared.clone();
        let extras = self.extras.clone();
        Box::pin(async move {
            let Some(content) = msg.content.clone() else {
                return;
            };
            let reply = msg.reply(Some(content), false);
            let cid = &shared.id;
            let mut record = serde_json::json!({"to": reply.to_addr, "from": reply.from_addr});
            if let serde_json::Value::Object(m) = &mut record {
                m.extend(extras.clone());
            }
            let _ = core
                .store
                .save_outbound(cid, &reply.message_id, &record)
                .await;
            if let Err(e) = core
                .bus
                .publish(&routes::outbound_realtime(cid), reply.to_bytes())
                .await
            {
                shared
                    .log
                    .warn(Some(&msg.message_id), format!("Echo reply not queued: {e}"));
            }
        })
    }
}
