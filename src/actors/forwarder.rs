//! Forwarder: for now, a channel's own destination (Junebug's message forwarder). It consumes
//! the channel's inbound and event routes and, for each message: stores it, posts it to
//! `mo_url`/`event_url` (through `Webhooks`, which retries), republishes it raw to
//! `amqp_queue` (`Q.inbound`, `Q.event`), hands inbound to the channel's application, and
//! counts it in the channel's rates. Inbound `close` is forwarded like any other message.

use super::application::{self, Application};
use super::router::{Route, RouterShared};
use super::webhooks::{HookKind, PostWebhook, TemplateVars, expand_url};
use super::{ChannelShared, Core, parse_or_drop, retry, retry_value};
use crate::bus::{Delivery, routes};
use crate::message::{Event, Message};
use actix::prelude::*;
use futures::StreamExt;
use serde_json::Value;
use std::sync::Arc;

pub struct Forwarder {
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    app: Option<Addr<Application>>,
}

impl Forwarder {
    pub fn new(core: Arc<Core>, shared: Arc<ChannelShared>) -> Forwarder {
        Forwarder {
            core,
            shared,
            app: None,
        }
    }
}

enum Item {
    Inbound(Delivery),
    Event(Delivery),
    /// A message a Vumi application published on `amqp_queue`'s `.outbound`.
    Reply(Delivery),
}

impl Actor for Forwarder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let id = self.shared.id.clone();
        let bus = self.core.bus.clone();
        let spec = self.shared.spec();
        let prefetch = spec.window.max(20);
        let queue = spec.amqp_queue.clone();
        let fut = async move {
            let inbound = bus.consume(&routes::inbound(&id), prefetch).await?;
            let events = bus.consume(&routes::event(&id), prefetch).await?;
            let replies = match queue {
                Some(q) => Some(bus.consume(&routes::outbound(&q), prefetch).await?),
                None => None,
            };
            Ok::<_, crate::bus::BusError>((inbound, events, replies))
        };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((inbound, events, replies)) => {
                ctx.add_stream(inbound.map(Item::Inbound));
                ctx.add_stream(events.map(Item::Event));
                if let Some(replies) = replies {
                    ctx.add_stream(replies.map(Item::Reply));
                }
            }
            Err(e) => {
                act.shared.log.log(
                    crate::logs::ERROR,
                    None,
                    format!("Cannot consume inbound and events: {e}"),
                );
                ctx.stop();
            }
        }));
    }
}

impl StreamHandler<Item> for Forwarder {
    fn handle(&mut self, item: Item, ctx: &mut Context<Self>) {
        let core = self.core.clone();
        let shared = self.shared.clone();
        let spec = shared.spec();
        if let Some(name) = &spec.application
            && self.app.is_none()
        {
            self.app = application::start(name, core.clone(), shared.clone());
        }
        let app = self.app.clone();
        match item {
            // Inbound one at a time, so a user's messages leave in the order they came.
            Item::Inbound(d) => {
                ctx.wait(
                    async move { forward_inbound(&core, &shared, d, app).await }.into_actor(self),
                );
            }
            // Events and replies concurrently (bounded by the bus prefetch).
            Item::Event(d) => {
                ctx.spawn(async move { forward_event(&core, &shared, d).await }.into_actor(self));
            }
            Item::Reply(d) => {
                ctx.spawn(async move { forward_reply(&core, &shared, d).await }.into_actor(self));
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

async fn forward_inbound(
    core: &Arc<Core>,
    shared: &Arc<ChannelShared>,
    d: Delivery,
    app: Option<Addr<Application>>,
) {
    let cid = &shared.id;
    let Some(msg) = parse_or_drop(
        shared,
        &d,
        "an inbound item that is not a Vumi user message",
        Message::from_slice,
    ) else {
        d.ack();
        return;
    };
    // (Its arrival is in the log already: the channel wrote it when the transport reported it.)
    let spec = shared.spec();
    if let Some(router) = core.router_of(cid) {
        route_inbound(core, shared, &router, &msg, &d.body).await;
        core.count(cid, "inbound");
        d.ack();
        return;
    }
    if let Some(url) = &spec.mo_url {
        let vars = TemplateVars {
            message_id: Some(&msg.message_id),
            channel_id: Some(cid),
            event_type: None,
            to: msg.to_addr.as_deref(),
            from: msg.from_addr.as_deref(),
        };
        queue_webhook(
            core,
            shared,
            PostWebhook {
                kind: HookKind::Inbound,
                url: expand_url(url, &vars),
                token: spec.mo_url_auth_token.clone(),
                body: serde_json::to_vec(&msg.api_view(cid))
                    .unwrap_or_default()
                    .into(),
                message_id: Some(msg.message_id.clone()),
                log: shared.log.clone(),
            },
        )
        .await;
    }
    if let Some(q) = &spec.amqp_queue {
        let route = routes::inbound(q);
        retry(shared, &format!("publish to {route}"), || {
            core.bus.publish(&route, d.body.clone())
        })
        .await;
    }
    if let Some(app) = app {
        app.do_send(application::Inbound(msg.clone()));
    }
    core.count(cid, "inbound");
    d.ack();
}

/// A router's channel: the router picks the destinations, each gets the message like a
/// channel's own destination would (stored under its id, so it can reply to it).
async fn route_inbound(
    core: &Arc<Core>,
    shared: &Arc<ChannelShared>,
    router: &Arc<RouterShared>,
    msg: &Message,
    raw: &bytes::Bytes,
) {
    let cid = &shared.id;
    let actor = router.actor.read().clone();
    let dids = match actor {
        Some(a) => a.send(Route(msg.clone())).await.unwrap_or_default(),
        None => vec![],
    };
    for did in dids {
        let Some(dest) = router.destination(&did) else {
            continue;
        };
        let field = |k: &str| dest.get(k).and_then(Value::as_str).map(str::to_string);
        retry(shared, "store the inbound message", || {
            core.store.save_inbound(&did, msg)
        })
        .await;
        if let Some(url) = field("mo_url") {
            let vars = TemplateVars {
                message_id: Some(&msg.message_id),
                channel_id: Some(cid),
                event_type: None,
                to: msg.to_addr.as_deref(),
                from: msg.from_addr.as_deref(),
            };
            queue_webhook(
                core,
                shared,
                PostWebhook {
                    kind: HookKind::Inbound,
                    url: expand_url(&url, &vars),
                    token: field("mo_url_token"),
                    body: serde_json::to_vec(&msg.api_view(cid))
                        .unwrap_or_default()
                        .into(),
                    message_id: Some(msg.message_id.clone()),
                    log: router.log.clone(),
                },
            )
            .await;
        }
        if let Some(q) = field("amqp_queue") {
            let route = routes::inbound(&q);
            retry(shared, &format!("publish to {route}"), || {
                core.bus.publish(&route, raw.clone())
            })
            .await;
        }
        if let Some(name) = field("application")
            && let Some(app) = router.application(&did, &name, core, shared)
        {
            app.do_send(application::Inbound(msg.clone()));
        }
        core.count(&did, "inbound");
    }
}

/// An event of the channel's own transport, handed over in process: `handle_event`
/// (stored with its message, its webhook saved, republished to `amqp_queue`) answers once
/// all of that is done, so the outbound delivery it answers can then be settled. Events
/// from elsewhere (a Vumi transport publishing to `<cid>.event`) still come over the bus.
#[derive(Message)]
#[rtype(result = "()")]
pub struct OwnEvent(pub Box<Event>);

impl Handler<OwnEvent> for Forwarder {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, OwnEvent(event): OwnEvent, _ctx: &mut Context<Self>) -> Self::Result {
        let (core, shared) = (self.core.clone(), self.shared.clone());
        Box::pin(
            async move {
                let raw = event.to_bytes();
                handle_event(&core, &shared, &event, &raw).await;
            }
            .into_actor(self),
        )
    }
}

async fn forward_event(core: &Core, shared: &ChannelShared, d: Delivery) {
    let Some(event) = parse_or_drop(
        shared,
        &d,
        "an event item that is not a Vumi event",
        Event::from_slice,
    ) else {
        d.ack();
        return;
    };
    handle_event(core, shared, &event, &d.body).await;
    d.ack();
}

/// What an event leads to: stored with its message, posted to the message's (or the
/// channel's) `event_url`, republished raw to `amqp_queue`, counted.
pub async fn handle_event(core: &Core, shared: &ChannelShared, event: &Event, raw: &bytes::Bytes) {
    let cid = &shared.id;
    let record = retry_value(shared, "store the event", || {
        core.store.record_event(cid, event)
    })
    .await
    .unwrap_or_default();
    let spec = shared.spec();
    let (url, token) = match &record.event_url {
        Some(url) => (Some(url.clone()), record.event_auth_token.clone()),
        None => (spec.event_url.clone(), spec.event_auth_token.clone()),
    };
    let event_type = event.api_event_type();
    if let (Some(url), Some(event_type)) = (url, event_type) {
        let vars = TemplateVars {
            message_id: Some(&event.user_message_id),
            channel_id: Some(cid),
            event_type: Some(event_type),
            to: record.to.as_deref(),
            from: record.from.as_deref(),
        };
        queue_webhook(
            core,
            shared,
            PostWebhook {
                kind: HookKind::Event,
                url: expand_url(&url, &vars),
                token,
                body: serde_json::to_vec(&event.api_view(cid))
                    .unwrap_or_default()
                    .into(),
                message_id: Some(event.user_message_id.clone()),
                log: shared.log.clone(),
            },
        )
        .await;
    }
    if let Some(q) = &spec.amqp_queue {
        let route = routes::event(q);
        retry(shared, &format!("publish to {route}"), || {
            core.bus.publish(&route, raw.clone())
        })
        .await;
    }
    // A message a router's destination sent: its events are the destination's too.
    if let Some(did) = &record.destination_id {
        retry(shared, "store the event for its destination", || {
            core.store.save_event(did, event)
        })
        .await;
        let queue = record
            .router_id
            .as_deref()
            .and_then(|rid| core.router(rid))
            .and_then(|r| r.destination(did))
            .and_then(|d| {
                d.get("amqp_queue")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        if let Some(q) = queue {
            let route = routes::event(&q);
            retry(shared, &format!("publish to {route}"), || {
                core.bus.publish(&route, raw.clone())
            })
            .await;
        }
        if let Some(label) = event_type {
            core.count(did, label);
        }
    }
    if let Some(label) = event_type {
        core.count(cid, label);
        shared.metrics.read().event(label);
        shared
            .log
            .info(Some(&event.user_message_id), format!("Event {label}"));
    }
}

/// Junebug's AMQP integration: what a Vumi application publishes to `Q.outbound` goes to
/// the channel unchanged (replies on the realtime route), bypassing the API's checks.
async fn forward_reply(core: &Core, shared: &ChannelShared, d: Delivery) {
    let Some(msg) = parse_or_drop(
        shared,
        &d,
        "an item from amqp_queue that is not a Vumi user message",
        Message::from_slice,
    ) else {
        d.ack();
        return;
    };
    super::retry_value(shared, "queue it", || {
        let out = super::outbound::Outbound {
            msg: &msg,
            raw: Some(d.body.clone()),
            record: serde_json::Map::new(),
            also_under: None,
            realtime: msg.in_reply_to.is_some(),
            from: Some("amqp_queue".into()),
        };
        super::outbound::enqueue(core, shared, out)
    })
    .await;
    d.ack();
}

/// Hands a webhook to `Webhooks`, which saves it before answering; retried while the store
/// is away, so the bus delivery is acknowledged only once the webhook is safe.
async fn queue_webhook(core: &Core, shared: &ChannelShared, job: PostWebhook) {
    retry(shared, "save the webhook", || {
        let (job, delivery) = (job.clone(), core.webhooks.clone());
        async move {
            match delivery.send(job).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;
}
