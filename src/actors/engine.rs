//! Engine: the registry. It creates, changes, restarts and deletes channels (each a
//! `Channel` actor with its `Forwarder`), saves their definitions in the store, and restores
//! them at start: first what the store holds, then the `[[channels]]` of the config file.
//! Routers and their destinations: `engine/routers.rs`.

use super::channel::{self, Channel};
use super::forwarder::Forwarder;
use super::router::{self, Router, RouterShared};
use super::{ChannelShared, Core};
use crate::bus::routes;
use crate::store::Defs;
use crate::store::StoreError;
use actix::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod routers;
pub use routers::{DeleteDestination, DeleteRouter, PutDestination, PutRouter, ReloadRouter};
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("channel not found")]
    NotFound,
    #[error("router {0} not found")]
    RouterNotFound(String),
    #[error("destination {1} of router {0} not found")]
    DestinationNotFound(String, String),
    /// Defined in the config file: change it there.
    #[error("router {0} is defined in the config file; change it there")]
    ConfigDefined(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Engine {
    core: Arc<Core>,
    /// The thread the channels' forwarders run on (the channels run on the engine's).
    forwarders: actix_rt::ArbiterHandle,
}

impl Engine {
    /// Within a running actix System.
    pub fn new(core: Arc<Core>) -> Engine {
        // The arbiter's thread runs until the System stops.
        let forwarders = actix_rt::Arbiter::new().handle();
        Engine { core, forwarders }
    }

    /// A channel known to this node: it runs here once this node holds its lease
    /// (`Activate`); until then it answers the API and, for a type that takes provider
    /// callbacks on every node, those.
    fn launch(&self, id: String, props: Value) -> Arc<ChannelShared> {
        let spec = Arc::new(self.core.channel_spec(&props));
        let shared = Arc::new(ChannelShared::new(
            &id,
            props,
            spec,
            self.core.settings.log.ring_size,
        ));
        self.core.channels.write().insert(id, shared.clone());
        self.start_passive(&shared);
        self.core.membership.wake.notify_one();
        shared
    }

    /// The callbacks-only actor of a channel not held here, for the types that have one.
    fn start_passive(&self, shared: &Arc<ChannelShared>) {
        let everywhere = self
            .core
            .registry
            .get(&shared.spec().kind)
            .is_ok_and(|f| f.callbacks_everywhere());
        if everywhere && shared.actor.read().is_none() {
            let actor = Channel::new(self.core.clone(), shared.clone(), false).start();
            *shared.actor.write() = Some(actor);
        }
    }
}

/// This node holds the channel's lease now: run it here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Activate(pub String);

impl Handler<Activate> for Engine {
    type Result = ();

    fn handle(&mut self, msg: Activate, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(shared) = self.core.channel(&msg.0) else {
            return;
        };
        if shared
            .active
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        // A callbacks-only actor takes the queue too (its transport, with any USSD request
        // it holds, carries on); otherwise the channel starts here.
        let passive = shared.actor.read().clone();
        match passive {
            Some(actor) => actor.do_send(channel::BecomeActive),
            None => {
                let actor = Channel::new(self.core.clone(), shared.clone(), true).start();
                *shared.actor.write() = Some(actor);
            }
        }
        let forwarder = start_forwarder(&self.forwarders, self.core.clone(), shared.clone());
        *shared.forwarder.write() = Some(forwarder);
    }
}

/// This node no longer holds the channel's lease: stop running it here. `graceful`: the
/// channel is drained first (`channel::Drain`), its workers and transport end, then this
/// answers; otherwise it stops at once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deactivate {
    pub id: String,
    pub graceful: bool,
}

impl Handler<Deactivate> for Engine {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Deactivate, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(shared) = self.core.channel(&msg.id) else {
            return Box::pin(fut::ready(()));
        };
        if !shared
            .active
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Box::pin(fut::ready(()));
        }
        let actor = shared.actor.write().take();
        let forwarder = shared.forwarder.write().take();
        let graceful = msg.graceful;
        Box::pin(
            async move {
                let deadline = tokio::time::Instant::now()
                    + crate::transports::GRACEFUL_STOP
                    + crate::transports::GRACEFUL_STOP
                    + Duration::from_secs(1);
                if let Some(a) = actor {
                    if graceful {
                        // What is in flight is answered first (the channel then stops).
                        let _ = a.send(channel::Drain).await;
                        while a.connected() && tokio::time::Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    let _ = a.send(channel::StopChannel).await;
                }
                if graceful {
                    // The answers' events recorded and their deliveries settled, before the
                    // forwarder (which takes the channel's own events) goes.
                    while shared.workers.load(std::sync::atomic::Ordering::SeqCst) > 0
                        && tokio::time::Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                if let Some(f) = forwarder {
                    let _ = f.send(StopForwarder).await;
                }
                if graceful {
                    // Then its transport ends (an SMPP session unbinds).
                    while shared.transports.load(std::sync::atomic::Ordering::SeqCst) > 0
                        && tokio::time::Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                shared.clear_lease();
                shared
            }
            .into_actor(self)
            .map(|shared, act, _| {
                if act.core.channel(&shared.id).is_some() && !shared.is_active() {
                    act.start_passive(&shared);
                }
            }),
        )
    }
}

/// A channel changed on another node: take its definition from the store again (created,
/// modified, or gone).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload(pub String);

impl Handler<Reload> for Engine {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Reload, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.core.store.clone();
        let id = msg.0;
        Box::pin(
            async move {
                let found = store.load_def(Defs::Channels, &id).await;
                (id, found)
            }
            .into_actor(self)
            .map(|(id, found), act, _| match found {
                Err(e) => {
                    tracing::warn!(channel = %id, error = %e, "Changed channel not reloaded.")
                }
                Ok(None) => {
                    if let Some(old) = act.core.channels.write().remove(&id) {
                        old.active.store(false, std::sync::atomic::Ordering::SeqCst);
                        stop(&old);
                    }
                }
                Ok(Some(props)) => match act.core.channel(&id) {
                    None => {
                        act.launch(id, props);
                    }
                    Some(shared) => {
                        let old = shared.props.read().clone();
                        if old == props {
                            return;
                        }
                        let changed = |k: &str| old.get(k) != props.get(k);
                        let new_config =
                            changed("config") || changed("type") || changed(super::CALLBACK_SECRET);
                        let new_queue = changed("amqp_queue");
                        apply_props(
                            &act.core,
                            &act.forwarders,
                            &shared,
                            props,
                            new_config,
                            new_queue,
                        );
                    }
                },
            }),
        )
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

/// `props` with a callback secret when its channel type takes provider callbacks: the one
/// it has, else the running channel's of that id (a config-file channel replayed at start
/// keeps the secret the store holds), else a new one.
fn with_callback_secret(core: &Core, id: &str, mut props: Value) -> Value {
    let kind = props
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let config = props.get("config").cloned().unwrap_or(Value::Null);
    let takes_callbacks = core
        .registry
        .get(kind)
        .is_ok_and(|f| !f.callback_actions(&config).is_empty());
    if let Value::Object(map) = &mut props
        && takes_callbacks
        && !map
            .get(super::CALLBACK_SECRET)
            .is_some_and(Value::is_string)
    {
        let kept = core
            .channel(id)
            .and_then(|old| old.props.read().get(super::CALLBACK_SECRET).cloned())
            .filter(Value::is_string);
        let secret = kept.unwrap_or_else(|| Value::String(super::CallbackSecret::generate()));
        map.insert(super::CALLBACK_SECRET.into(), secret);
    }
    props
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
        let props = with_callback_secret(&self.core, &id, msg.props);
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
        let props = with_callback_secret(&self.core, &msg.id, props);
        let new_config = msg.changes.contains_key("config")
            || msg.changes.contains_key("type")
            || msg.changes.contains_key(super::CALLBACK_SECRET);
        let new_queue = msg.changes.contains_key("amqp_queue");
        let core = self.core.clone();
        let forwarders = self.forwarders.clone();
        let store = self.core.store.clone();
        Box::pin(
            async move {
                store.save_channel(&shared.id, &props).await?;
                apply_props(&core, &forwarders, &shared, props, new_config, new_queue);
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
        let actor = shared.actor.write().take();
        let forwarder = shared.forwarder.write().take();
        let store = self.core.store.clone();
        let bus = self.core.bus.clone();
        Box::pin(
            async move {
                // Stopped first (each answers once it has stopped taking work; one still
                // setting up its consumers answers after that): a queue removed under a
                // consumer being declared makes the broker close that AMQP channel.
                if let Some(a) = actor {
                    let _ = a.send(channel::StopChannel).await;
                }
                if let Some(f) = forwarder {
                    let _ = f.send(StopForwarder).await;
                }
                store.delete_channel(&shared.id).await?;
                // Its queues go too when nothing waits in them (Junebug left them all behind),
                // in the background: the bus may first wait for its consumers to let go.
                actix_rt::spawn(async move {
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
                    // Its file stays on disk (as Junebug's), but not open.
                    shared.log.close_file();
                });
                Ok(())
            }
            .into_actor(self),
        )
    }
}

/// A channel's new properties, on this node: its spec and metric labels, its actor told
/// (the transport restarted for a new `config`, `type` or callback secret), and for a new
/// `amqp_queue` a new forwarder (it consumes that queue) where the channel runs.
fn apply_props(
    core: &Arc<Core>,
    forwarders: &actix_rt::ArbiterHandle,
    shared: &Arc<ChannelShared>,
    props: Value,
    new_config: bool,
    new_queue: bool,
) {
    let spec = Arc::new(core.channel_spec(&props));
    shared.metrics.write().retype(&shared.id, &spec.kind);
    shared
        .protocol_log
        .store(spec.log_protocol, std::sync::atomic::Ordering::Relaxed);
    *shared.spec.write() = spec;
    *shared.props.write() = props;
    if let Some(actor) = shared.actor.read().clone() {
        actor.do_send(channel::SpecChanged);
        if new_config {
            actor.do_send(channel::RestartTransport);
        }
    }
    if new_queue && shared.is_active() {
        let fresh = start_forwarder(forwarders, core.clone(), shared.clone());
        if let Some(old) = shared.forwarder.write().replace(fresh) {
            old.do_send(StopForwarder);
        }
    }
}

/// Forwarders (inbound, events, webhooks queued) run on a thread of their own, beside the
/// channels' (queues, windows, transports): on a busy server each side has a core's worth of
/// work.
fn start_forwarder(
    arbiter: &actix_rt::ArbiterHandle,
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
) -> Addr<Forwarder> {
    Forwarder::start_in_arbiter(arbiter, move |_| Forwarder::new(core, shared))
}

fn stop(shared: &ChannelShared) {
    if let Some(a) = shared.actor.write().take() {
        a.do_send(channel::StopChannel);
    }
    if let Some(r) = shared.forwarder.write().take() {
        r.do_send(StopForwarder);
    }
}

/// Stop a channel's router.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopForwarder;

impl Handler<StopForwarder> for Forwarder {
    type Result = ();
    fn handle(&mut self, _: StopForwarder, ctx: &mut Context<Self>) {
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
