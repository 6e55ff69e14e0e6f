//! Engine: the registry. It creates, changes, restarts and deletes channels (each a
//! `Channel` actor with its `Router`), saves their definitions in the store, and restores
//! them at start: first what the store holds, then the `[[channels]]` of the config file.

use super::channel::{self, Channel};
use super::router::Router;
use super::{ChannelShared, ChannelSpec, Core};
use crate::bus::routes;
use crate::logs::ChannelLog;
use crate::store::StoreError;
use actix::prelude::*;
use parking_lot::RwLock;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("channel not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Engine {
    core: Arc<Core>,
}

impl Engine {
    pub fn new(core: Arc<Core>) -> Engine {
        Engine { core }
    }

    fn launch(&self, id: String, props: Value) -> Arc<ChannelShared> {
        let d = &self.core.settings;
        let shared = Arc::new(ChannelShared {
            spec: RwLock::new(Arc::new(ChannelSpec::from_props(&props, &self.core))),
            props: RwLock::new(props),
            log: ChannelLog::new(&id, d.log.ring_size),
            held: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            actor: RwLock::new(None),
            router: RwLock::new(None),
            id: id.clone(),
        });
        let actor = Channel::new(self.core.clone(), shared.clone()).start();
        let router = Router::new(self.core.clone(), shared.clone()).start();
        *shared.actor.write() = Some(actor);
        *shared.router.write() = Some(router);
        self.core.channels.write().insert(id, shared.clone());
        shared
    }
}

impl Actor for Engine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Expired records go away even when nobody reads them.
        let core = self.core.clone();
        ctx.run_interval(Duration::from_secs(10), move |_, _| {
            if let Some(m) = core.memory_store.as_ref() {
                m.sweep();
            }
        });
        // Rate counts are batched: one store round trip per quarter second, not per message.
        let core = self.core.clone();
        ctx.run_interval(Duration::from_millis(250), move |_, _| {
            let core = core.clone();
            actix_rt::spawn(async move { core.flush_rates().await });
        });
    }
}

/// Create a channel from validated properties (with a fixed id, or a new one).
#[derive(Message)]
#[rtype(result = "Result<Arc<ChannelShared>, EngineError>")]
pub struct CreateChannel {
    pub id: Option<String>,
    pub props: Value,
}

impl Handler<CreateChannel> for Engine {
    type Result = ResponseActFuture<Self, Result<Arc<ChannelShared>, EngineError>>;

    fn handle(&mut self, msg: CreateChannel, _ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let store = self.core.store.clone();
        let props = msg.props;
        Box::pin(
            async move {
                store.save_channel(&id, &props).await?;
                Ok((id, props))
            }
            .into_actor(self)
            .map(|res: Result<(String, Value), EngineError>, act, _| {
                let (id, props) = res?;
                if let Some(old) = act.core.channels.write().remove(&id) {
                    stop(&old);
                }
                let shared = act.launch(id, props);
                shared.log.info(None, "Channel created");
                Ok(shared)
            }),
        )
    }
}

/// Merge `changes` into a channel's properties (shallowly, as Junebug does).
#[derive(Message)]
#[rtype(result = "Result<Arc<ChannelShared>, EngineError>")]
pub struct UpdateChannel {
    pub id: String,
    pub changes: Map<String, Value>,
}

impl Handler<UpdateChannel> for Engine {
    type Result = ResponseActFuture<Self, Result<Arc<ChannelShared>, EngineError>>;

    fn handle(&mut self, msg: UpdateChannel, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(shared) = self.core.channel(&msg.id) else {
            return Box::pin(fut::ready(Err(EngineError::NotFound)));
        };
        let mut props = shared.props.read().clone();
        if let Value::Object(map) = &mut props {
            for (k, v) in &msg.changes {
                map.insert(k.clone(), v.clone());
            }
        }
        let new_config = msg.changes.contains_key("config") || msg.changes.contains_key("type");
        let new_queue = msg.changes.contains_key("amqp_queue");
        let core = self.core.clone();
        let store = self.core.store.clone();
        Box::pin(
            async move {
                store.save_channel(&shared.id, &props).await?;
                *shared.spec.write() = Arc::new(ChannelSpec::from_props(&props, &core));
                *shared.props.write() = props;
                if let Some(actor) = shared.actor.read().clone() {
                    actor.do_send(channel::SpecChanged);
                    if new_config {
                        actor.do_send(channel::RestartTransport);
                    }
                }
                if new_queue {
                    // The router consumes `amqp_queue`: a new one means a new router.
                    let fresh = Router::new(core, shared.clone()).start();
                    if let Some(old) = shared.router.write().replace(fresh) {
                        old.do_send(StopRouter);
                    }
                }
                shared.log.info(None, "Channel updated");
                Ok(shared)
            }
            .into_actor(self),
        )
    }
}

/// Delete a channel: stop it and forget its definition.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct DeleteChannel(pub String);

impl Handler<DeleteChannel> for Engine {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: DeleteChannel, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(shared) = self.core.channels.write().remove(&msg.0) else {
            return Box::pin(fut::ready(Err(EngineError::NotFound)));
        };
        stop(&shared);
        let store = self.core.store.clone();
        let bus = self.core.bus.clone();
        Box::pin(
            async move {
                store.delete_channel(&shared.id).await?;
                // Its queues go too when nothing waits in them (Junebug left them all behind).
                let cid = &shared.id;
                for route in [
                    routes::outbound(cid),
                    routes::outbound_realtime(cid),
                    routes::inbound(cid),
                    routes::event(cid),
                ] {
                    match bus.remove_if_empty(&route).await {
                        Ok(true) => {}
                        Ok(false) => shared
                            .log
                            .warn(None, format!("Queue {route} still holds messages; kept")),
                        Err(e) => shared
                            .log
                            .warn(None, format!("Queue {route} not removed: {e}")),
                    }
                }
                Ok(())
            }
            .into_actor(self),
        )
    }
}

fn stop(shared: &ChannelShared) {
    if let Some(a) = shared.actor.write().take() {
        a.do_send(channel::StopChannel);
    }
    if let Some(r) = shared.router.write().take() {
        r.do_send(StopRouter);
    }
}

/// Stop a channel's router.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRouter;

impl Handler<StopRouter> for Router {
    type Result = ();
    fn handle(&mut self, _: StopRouter, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Restart a channel's transport.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct RestartChannel(pub String);

impl Handler<RestartChannel> for Engine {
    type Result = Result<(), EngineError>;

    fn handle(&mut self, msg: RestartChannel, _ctx: &mut Context<Self>) -> Self::Result {
        let shared = self.core.channel(&msg.0).ok_or(EngineError::NotFound)?;
        if let Some(actor) = shared.actor.read().clone() {
            actor.do_send(channel::RestartTransport);
        }
        Ok(())
    }
}
