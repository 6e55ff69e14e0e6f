//! Channel: one actor per channel. It takes outbound messages off the channel's two routes
//! (`realtime` first, then `bulk`) as fast as its token bucket (`rate_limit_count` per
//! `rate_limit_window` seconds) and in-flight window allow, hands them to its transport, and
//! turns the transport's answers into Vumi events. A bus delivery is acknowledged only after
//! the provider answered, so a crash means redelivery, not loss.
//!
//! The transport runs as a task this actor supervises: when it fails or panics, the messages
//! it held go back to the front of the queue and it is started again with exponential
//! backoff, while every other channel carries on.

use super::webhooks::{HookKind, PostWebhook};
use super::{ChannelShared, Core, parse_or_drop, retry};
use crate::bus::{Delivery, routes};
use crate::message::{Event, Level, Message, StatusEvent};
use crate::transports::{TransportCommand, TransportReport};
use actix::prelude::*;
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod work;
pub use super::token_bucket::TokenBucket;
use work::{publish_events, run_in_order};

/// Provider callbacks waiting for the transport to take them; past this the public listener
/// answers 503 (the provider retries later).
const CALLBACK_QUEUE: usize = 1024;

/// Counts a task (a transport, a worker) while it runs, however it ends (returned, failed,
/// aborted).
struct RunningGuard(Arc<std::sync::atomic::AtomicUsize>);

impl RunningGuard {
    fn new(count: Arc<std::sync::atomic::AtomicUsize>) -> RunningGuard {
        count.fetch_add(1, Ordering::SeqCst);
        RunningGuard(count)
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A message taken off the bus, with the delivery that settles it.
struct Pending {
    msg: Message,
    delivery: Delivery,
    realtime: bool,
}

/// Work that must happen in order: inbound messages are stored and published one after
/// another, so a user's lines reach the destination in the order they were typed; statuses
/// likewise. (Events go straight to `publish_events`, in order per message.)
enum InOrder {
    Inbound(Box<Message>),
    Status(StatusEvent),
}

/// An event for `publish_events`, with the outbound delivery it settles.
type EventJob = (Box<Event>, Option<Delivery>);

struct TransportRun {
    tx: mpsc::Sender<TransportCommand>,
    abort: tokio::task::AbortHandle,
    stop: tokio_util::sync::CancellationToken,
    graceful: bool,
    generation: u64,
    started: Instant,
}

impl TransportRun {
    /// Asks the transport to stop: a graceful one gets `GRACEFUL_STOP` to wind down (finish
    /// its window, unbind), any other is aborted now.
    fn end(&self) {
        self.stop.cancel();
        if !self.graceful {
            self.abort.abort();
            return;
        }
        let abort = self.abort.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(crate::transports::GRACEFUL_STOP).await;
            abort.abort();
        });
    }
}

pub struct Channel {
    /// Runs the channel here (see `new`).
    active: bool,
    /// Handing the channel over (`Drain`): nothing new is sent; it stops once what is in
    /// flight has been answered.
    draining: bool,
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    realtime: VecDeque<Pending>,
    bulk: VecDeque<Pending>,
    in_flight: HashMap<String, Pending>,
    bucket: Option<TokenBucket>,
    window: usize,
    transport: Option<TransportRun>,
    generation: u64,
    failures: u32,
    /// Start a new transport as soon as the current one has ended.
    restart_now: bool,
    stopping: bool,
    pump_at: Option<Instant>,
    /// Since when the provider has been asking to retry later (reset by an ack).
    unavailable_since: Option<Instant>,
    /// No sending before this (the provider asked to retry later).
    paused_until: Option<Instant>,
    /// Messages the provider asked to retry, put back in order when the pause ends.
    retry_later: Vec<Pending>,
    reports_tx: mpsc::UnboundedSender<TransportReport>,
    reports_rx: Option<mpsc::UnboundedReceiver<TransportReport>>,
    in_order: mpsc::UnboundedSender<InOrder>,
    in_order_rx: Option<mpsc::UnboundedReceiver<InOrder>>,
    events: mpsc::UnboundedSender<EventJob>,
    events_rx: Option<mpsc::UnboundedReceiver<EventJob>>,
}

impl Channel {
    /// `active`: it runs the channel (consumes its outbound queue and sends); otherwise it
    /// only answers provider callbacks (a channel type that takes them on every node).
    pub fn new(core: Arc<Core>, shared: Arc<ChannelShared>, active: bool) -> Channel {
        let spec = shared.spec();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let (in_order, in_order_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        Channel {
            active,
            draining: false,
            bucket: TokenBucket::new(spec.rate_limit_count, spec.rate_limit_window),
            window: spec.window,
            core,
            shared,
            realtime: VecDeque::new(),
            bulk: VecDeque::new(),
            in_flight: HashMap::new(),
            transport: None,
            generation: 0,
            failures: 0,
            restart_now: false,
            stopping: false,
            pump_at: None,
            unavailable_since: None,
            paused_until: None,
            retry_later: Vec::new(),
            reports_tx,
            reports_rx: Some(reports_rx),
            in_order,
            in_order_rx: Some(in_order_rx),
            events,
            events_rx: Some(events_rx),
        }
    }

    fn id(&self) -> &str {
        &self.shared.id
    }

    fn status(&self, level: Level, kind: &str, message: &str) {
        let ev = StatusEvent::new(self.id(), "transport", level, kind, message);
        let _ = self.in_order.send(InOrder::Status(ev));
    }

    fn start_transport(&mut self, ctx: &mut Context<Self>) {
        if self.stopping || self.transport.is_some() {
            return;
        }
        let spec = self.shared.spec();
        let factory = match self.core.registry.get(&spec.kind) {
            Ok(f) => f,
            Err(e) => {
                self.shared.log.log(crate::logs::ERROR, None, e.to_string());
                return;
            }
        };
        self.generation += 1;
        let generation = self.generation;
        let (tx, rx) = mpsc::channel(self.window + 1);
        let (callbacks_tx, callbacks) = mpsc::channel(CALLBACK_QUEUE);
        let tctx = crate::transports::TransportContext {
            channel_id: self.id().to_string(),
            commands: rx,
            reports: self.reports_tx.clone(),
            store: self.core.store.clone(),
            stop: tokio_util::sync::CancellationToken::new(),
            callbacks,
            callback_base: self.core.public_base.as_ref().map(|b| {
                match &spec.callback_secret.current {
                    Some(secret) => format!("{b}/channels/{}/{secret}", self.id()),
                    None => format!("{b}/channels/{}", self.id()),
                }
            }),
            callback_secret: spec.callback_secret.current.clone(),
            ttls: self.core.store_ttls(),
            protocol_log: self.shared.protocol_log.clone(),
        };
        *self.shared.callbacks.write() = Some(callbacks_tx);
        let stop = tctx.stop.clone();
        let running = RunningGuard::new(self.shared.transports.clone());
        let transport = factory.start(&spec.config, tctx);
        let handle = tokio::task::spawn_local(async move {
            let _running = running;
            transport.await
        });
        self.transport = Some(TransportRun {
            tx,
            abort: handle.abort_handle(),
            stop,
            graceful: factory.graceful_stop(),
            generation,
            started: Instant::now(),
        });
        self.shared
            .log
            .info(None, format!("Started {} transport", spec.kind));
        self.status(Level::Ok, "started", "Transport running");
        ctx.spawn(
            handle
                .into_actor(self)
                .map(move |res, act, ctx| act.transport_ended(generation, res, ctx)),
        );
        self.pump(ctx);
    }

    fn transport_ended(
        &mut self,
        generation: u64,
        res: Result<Result<(), crate::transports::TransportError>, tokio::task::JoinError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(run) = self.transport.take_if(|r| r.generation == generation) else {
            return;
        };
        // What the transport held goes back to the front of its queue, in order.
        let held: Vec<Pending> = self.in_flight.drain().map(|(_, p)| p).collect();
        self.requeue_in_order(held);
        if self.stopping {
            return;
        }
        if self.restart_now {
            self.restart_now = false;
            self.failures = 0;
            self.start_transport(ctx);
            return;
        }
        let why = match res {
            Ok(Ok(())) => "stopped".to_string(),
            Ok(Err(e)) => format!("failed: {e}"),
            Err(e) if e.is_panic() => {
                let p = e.into_panic();
                let text = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                format!("panicked: {text}")
            }
            Err(_) => "was cancelled".to_string(),
        };
        if run.started.elapsed() > Duration::from_secs(60) {
            self.failures = 0;
        }
        self.failures += 1;
        self.shared.metrics.read().restarts.increment(1);
        let max = self.core.settings.channel_defaults.max_restart_backoff;
        let delay = (0.5 * 2f64.powi(self.failures.min(20) as i32 - 1)).min(max.max(0.1));
        let text = format!("Transport {why}; restarting in {delay:.1} s");
        self.shared.log.log(crate::logs::ERROR, None, text.clone());
        self.status(Level::Down, "crashed", &text);
        ctx.run_later(Duration::from_secs_f64(delay), |act, ctx| {
            act.start_transport(ctx)
        });
    }

    /// Stops the transport; with `restart`, starts a new one once the old one has ended.
    fn stop_transport(&mut self, restart: bool, ctx: &mut Context<Self>) {
        match &self.transport {
            Some(run) => {
                self.restart_now = restart;
                run.end();
            }
            None if restart => {
                self.failures = 0;
                self.start_transport(ctx);
            }
            None => {}
        }
    }

    fn update_counts(&self) {
        self.shared.held.store(
            self.realtime.len() + self.bulk.len() + self.retry_later.len(),
            Ordering::Relaxed,
        );
        self.shared
            .in_flight
            .store(self.in_flight.len(), Ordering::Relaxed);
    }

    /// Takes the outbound queue (`realtime` and `bulk`) off the bus.
    fn consume(&mut self, ctx: &mut Context<Self>) {
        let id = self.id().to_string();
        let bus = self.core.bus.clone();
        let window = self.window;
        let fut = async move {
            let rt = bus.consume(&routes::outbound_realtime(&id), window).await?;
            let bulk = bus.consume(&routes::outbound(&id), window).await?;
            Ok::<_, crate::bus::BusError>((rt, bulk))
        };
        ctx.wait(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((rt, bulk)) => {
                ctx.add_stream(rt.map(|d| (d, true)));
                ctx.add_stream(bulk.map(|d| (d, false)));
            }
            Err(e) => {
                act.shared.log.log(
                    crate::logs::ERROR,
                    None,
                    format!("Cannot consume the outbound queue: {e}"),
                );
                ctx.stop();
            }
        }));
    }

    fn carries_media(&self) -> bool {
        let kind = &self.shared.spec().kind;
        self.core
            .registry
            .get(kind)
            .is_ok_and(|f| f.carries_media())
    }

    /// Hands queued messages to the transport while the window and rate limit allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self
            .transport
            .as_ref()
            .is_none_or(|r| r.stop.is_cancelled())
        {
            self.update_counts();
            return;
        }
        // Nothing is sent without a lease still valid here (a node paused past it wakes to
        // find it gone: its transport is stopped, it sends nothing).
        if !self.active || self.draining || !self.shared.lease_valid() {
            self.update_counts();
            return;
        }
        if self.paused_until.is_some_and(|t| t > Instant::now()) {
            self.update_counts();
            return;
        }
        while self.in_flight.len() < self.window {
            if self.realtime.is_empty() && self.bulk.is_empty() {
                break;
            }
            if let Some(bucket) = &mut self.bucket
                && !bucket.try_take()
            {
                let wait = bucket.wait();
                let at = Instant::now() + wait;
                if self.pump_at.is_none_or(|t| t <= Instant::now()) {
                    self.pump_at = Some(at);
                    ctx.run_later(wait, |act, ctx| {
                        act.pump_at = None;
                        act.pump(ctx)
                    });
                }
                break;
            }
            let p = match self.realtime.pop_front() {
                Some(p) => p,
                None => match self.bulk.pop_front() {
                    Some(p) => p,
                    None => break,
                },
            };
            if p.msg.has_attachments() && !self.carries_media() {
                let reason = format!(
                    "Channel type {} cannot carry attachments",
                    self.shared.spec().kind
                );
                self.shared.log.warn(
                    Some(&p.msg.message_id),
                    format!("Message rejected: {reason}"),
                );
                let event = Event::nack(&p.msg.message_id, &reason, self.id());
                self.settle_after(event, Some(p.delivery));
                continue;
            }
            let Some(run) = self.transport.as_ref() else {
                break;
            };
            match run.tx.try_send(TransportCommand::Send(p.msg.clone())) {
                Ok(()) => {
                    self.in_flight.insert(p.msg.message_id.clone(), p);
                }
                Err(_) => {
                    // The transport is going away; keep the message for its successor.
                    if p.realtime {
                        self.realtime.push_front(p)
                    } else {
                        self.bulk.push_front(p)
                    }
                    break;
                }
            }
        }
        self.update_counts();
    }

    /// The provider is unavailable or throttles: the message goes back to the front and the
    /// channel pauses, for at least `at_least` (the provider's `retry_after`), and longer the
    /// longer the outage (0.5 s to 30 s).
    fn retry_later(
        &mut self,
        message_id: &str,
        reason: &str,
        at_least: Duration,
        ctx: &mut Context<Self>,
    ) {
        let Some(p) = self.in_flight.remove(message_id) else {
            return;
        };
        let since = *self.unavailable_since.get_or_insert_with(Instant::now);
        let delay = since
            .elapsed()
            .clamp(Duration::from_millis(500), Duration::from_secs(30))
            .max(at_least.min(Duration::from_secs(3600)));
        if self.paused_until.is_none_or(|t| t <= Instant::now()) {
            self.shared.log.warn(
                Some(message_id),
                format!(
                    "Provider asked to retry later: {reason}; pausing {:.1} s",
                    delay.as_secs_f64()
                ),
            );
            self.paused_until = Some(Instant::now() + delay);
            ctx.run_later(delay, |act, ctx| {
                act.paused_until = None;
                let held = std::mem::take(&mut act.retry_later);
                act.requeue_in_order(held);
                act.pump(ctx);
            });
        }
        self.retry_later.push(p);
    }

    /// Puts messages back at the front of their queues, oldest first.
    fn requeue_in_order(&mut self, mut held: Vec<Pending>) {
        held.sort_by_key(|p| std::cmp::Reverse(p.msg.timestamp));
        for p in held {
            if p.realtime {
                self.realtime.push_front(p)
            } else {
                self.bulk.push_front(p)
            }
        }
        self.update_counts();
    }

    /// Hands `event` to the events worker, which settles `delivery` once the event is
    /// recorded (counted in `unsettled` until then).
    fn settle_after(&mut self, event: Event, delivery: Option<Delivery>) {
        if delivery.is_some() {
            self.shared.unsettled.fetch_add(1, Ordering::SeqCst);
        }
        let _ = self.events.send((Box::new(event), delivery));
    }

    /// Once a drain has nothing in flight left and every answered message's delivery is
    /// settled, the channel stops (its transport ends, a graceful one unbinding). Stopping
    /// closes its consumers' channels, so settling first keeps the broker from handing the
    /// next holder what was sent here already.
    fn stop_if_drained(&mut self, ctx: &mut Context<Self>) {
        if self.draining
            && self.in_flight.is_empty()
            && self.shared.unsettled.load(Ordering::SeqCst) == 0
        {
            // The acks just issued are written first.
            ctx.run_later(Duration::from_millis(100), |_, ctx| ctx.stop());
        }
    }

    fn queue(&mut self, p: Pending) {
        if p.realtime {
            self.realtime.push_back(p)
        } else {
            self.bulk.push_back(p)
        }
    }
}

impl Actor for Channel {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(rx) = self.reports_rx.take() {
            ctx.add_stream(futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|r| (r, rx))
            }));
        }
        if let Some(rx) = self.in_order_rx.take() {
            let running = RunningGuard::new(self.shared.workers.clone());
            let work = run_in_order(self.core.clone(), self.shared.clone(), rx);
            actix_rt::spawn(async move {
                let _running = running;
                work.await
            });
        }
        if let Some(rx) = self.events_rx.take() {
            let running = RunningGuard::new(self.shared.workers.clone());
            let work = publish_events(self.core.clone(), self.shared.clone(), rx);
            actix_rt::spawn(async move {
                let _running = running;
                work.await
            });
        }
        if self.active {
            self.consume(ctx);
        }
        self.start_transport(ctx);
    }

    fn stopping(&mut self, _ctx: &mut Context<Self>) -> Running {
        self.stopping = true;
        if let Some(run) = self.transport.take() {
            run.end();
        }
        Running::Stop
    }
}

impl StreamHandler<(Delivery, bool)> for Channel {
    fn handle(&mut self, (delivery, realtime): (Delivery, bool), ctx: &mut Context<Self>) {
        if self.draining {
            // Back to the queue, for the channel's next holder.
            drop(delivery);
            return;
        }
        let what = "an outbound item that is not a Vumi user message";
        match parse_or_drop(&self.shared, &delivery, what, Message::from_slice) {
            Some(msg) => {
                self.queue(Pending {
                    msg,
                    delivery,
                    realtime,
                });
                self.pump(ctx);
            }
            // Nothing can send it: logged, and settled so it does not come back.
            None => delivery.ack(),
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl StreamHandler<TransportReport> for Channel {
    fn handle(&mut self, report: TransportReport, ctx: &mut Context<Self>) {
        let cid = self.id().to_string();
        match report {
            TransportReport::Inbound(mut msg) => {
                self.shared.metrics.read().inbound.increment(1);
                let from = msg.from_addr.as_deref().unwrap_or("?");
                let session = msg
                    .session_event
                    .map(|e| format!(", session {}", e.as_str()))
                    .unwrap_or_default();
                self.shared.log.info(
                    Some(&msg.message_id),
                    format!("Inbound from {from}{session}"),
                );
                msg.transport_name = Some(cid);
                if msg.transport_type.is_none() {
                    msg.transport_type = Some(self.shared.spec().transport_type.clone());
                }
                let _ = self.in_order.send(InOrder::Inbound(msg));
            }
            TransportReport::Ack {
                message_id,
                sent_message_id,
            } => {
                self.unavailable_since = None;
                self.shared.metrics.read().sent.increment(1);
                let delivery = self.in_flight.remove(&message_id).map(|p| p.delivery);
                self.shared.log.info(
                    Some(&message_id),
                    format!("Submitted: the provider accepted it as {sent_message_id}"),
                );
                let event = Event::ack(&message_id, &sent_message_id, &cid);
                self.settle_after(event, delivery);
                self.pump(ctx);
                self.stop_if_drained(ctx);
            }
            TransportReport::Nack {
                message_id,
                reason,
                retry,
            } => {
                if retry {
                    self.retry_later(&message_id, &reason, Duration::ZERO, ctx);
                } else {
                    let delivery = self.in_flight.remove(&message_id).map(|p| p.delivery);
                    self.shared
                        .log
                        .warn(Some(&message_id), format!("Message rejected: {reason}"));
                    let event = Event::nack(&message_id, &reason, &cid);
                    self.settle_after(event, delivery);
                }
                self.pump(ctx);
                self.stop_if_drained(ctx);
            }
            TransportReport::RetryAfter {
                message_id,
                reason,
                after,
            } => {
                self.retry_later(&message_id, &reason, after, ctx);
                self.pump(ctx);
                self.stop_if_drained(ctx);
            }
            TransportReport::DeliveryReport { message_id, status } => {
                self.shared
                    .log
                    .info(Some(&message_id), format!("Delivery report: {status:?}"));
                let event = Event::delivery_report(&message_id, status, &cid);
                let _ = self.events.send((Box::new(event), None));
            }
            TransportReport::Status(status) => {
                self.shared.log.info(
                    None,
                    format!(
                        "Status {}: {} ({})",
                        status.component, status.status, status.message
                    ),
                );
                let _ = self.in_order.send(InOrder::Status(status));
            }
            TransportReport::Log {
                level,
                message,
                message_id,
            } => self.shared.log.log(level, message_id.as_deref(), message),
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

/// This node now holds the channel's lease: a callbacks-only channel starts taking its
/// outbound queue too (its transport keeps running, with whatever it holds).
#[derive(Message)]
#[rtype(result = "()")]
pub struct BecomeActive;

impl Handler<BecomeActive> for Channel {
    type Result = ();
    fn handle(&mut self, _: BecomeActive, ctx: &mut Context<Self>) {
        if !self.active {
            self.active = true;
            self.consume(ctx);
            self.pump(ctx);
        }
    }
}

/// Hand the channel over (its lease goes to another node): nothing new is sent, messages
/// held here go back to the queue at once, and the channel stops as soon as the provider
/// has answered what is in flight (their events recorded, their deliveries settled), or
/// after `GRACEFUL_STOP`, whichever comes first. Nothing is sent twice by the next holder
/// unless the provider did not answer in time.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for Channel {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        let held: Vec<Pending> = self
            .realtime
            .drain(..)
            .chain(self.bulk.drain(..))
            .chain(std::mem::take(&mut self.retry_later))
            .collect();
        drop(held);
        self.update_counts();
        ctx.run_later(crate::transports::GRACEFUL_STOP, |_, ctx| ctx.stop());
        ctx.run_interval(Duration::from_millis(20), |act, ctx| {
            act.stop_if_drained(ctx)
        });
    }
}

/// Restart the transport (the API's restart, or a new `config`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestartTransport;

impl Handler<RestartTransport> for Channel {
    type Result = ();
    fn handle(&mut self, _: RestartTransport, ctx: &mut Context<Self>) {
        self.shared.log.info(None, "Restarting transport");
        self.stop_transport(true, ctx);
    }
}

/// The channel's properties changed: take the new limits.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SpecChanged;

impl Handler<SpecChanged> for Channel {
    type Result = ();
    fn handle(&mut self, _: SpecChanged, ctx: &mut Context<Self>) {
        let spec = self.shared.spec();
        self.bucket = TokenBucket::new(spec.rate_limit_count, spec.rate_limit_window);
        self.window = spec.window;
        self.pump(ctx);
    }
}

/// Stop the channel: the transport ends, held messages go back to the bus.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopChannel;

impl Handler<StopChannel> for Channel {
    type Result = ();
    fn handle(&mut self, _: StopChannel, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Cancel every queued (not yet sent) message; each gets a `rejected` event, reason
/// `cancelled`. Answers how many were cancelled.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CancelQueued;

impl Handler<CancelQueued> for Channel {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, _: CancelQueued, _ctx: &mut Context<Self>) -> Self::Result {
        let cid = self.id().to_string();
        let bus = self.core.bus.clone();
        let log = self.shared.log.clone();
        // The bus first, then what this actor holds: a message the consumer takes off the bus
        // meanwhile is in the actor's queues by the time they are emptied, so none slips by.
        let drained = async move {
            let mut bodies = Vec::new();
            for route in [routes::outbound_realtime(&cid), routes::outbound(&cid)] {
                match bus.drain(&route).await {
                    Ok(b) => bodies.extend(b),
                    Err(e) => log.warn(None, format!("Could not cancel queued messages: {e}")),
                }
            }
            bodies
        };
        Box::pin(drained.into_actor(self).map(|bodies, act, _ctx| {
            let cid = act.id().to_string();
            let mut cancelled: Vec<(String, Option<Delivery>)> = Vec::new();
            for body in bodies {
                match Message::from_slice(&body) {
                    Ok(msg) => cancelled.push((msg.message_id, None)),
                    Err(e) => act.shared.log.warn(
                        None,
                        format!("Dropped a queued item that is not a message: {e}"),
                    ),
                }
            }
            let mut held: Vec<Pending> = act.realtime.drain(..).collect();
            held.extend(act.bulk.drain(..));
            held.append(&mut act.retry_later);
            cancelled.extend(
                held.into_iter()
                    .map(|p| (p.msg.message_id, Some(p.delivery))),
            );
            act.update_counts();
            let count = cancelled.len();
            for (mid, delivery) in cancelled {
                let event = Event::nack(&mid, "cancelled", &cid);
                let _ = act.events.send((Box::new(event), delivery));
            }
            act.shared
                .log
                .info(None, format!("Cancelled {count} queued messages"));
            count
        }))
    }
}
