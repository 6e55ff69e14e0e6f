//! The actors: `Engine` (registry and lifecycle), `Channel` (one per channel: queue, rate
//! limit, window, transport supervision), `Forwarder` (a channel's inbound and events to its
//! destination: mo_url, amqp_queue, an application, or its router's destinations), `Router`
//! (Junebug routers: which destination gets what), `Application` (built-in answerers) and
//! `Webhooks` (posting mo_url, event_url and status_url). `Core` is what they and the HTTP
//! API share.

pub mod application;
pub mod channel;
pub mod cluster;
pub mod engine;
pub mod forwarder;
pub mod ordered;
pub mod outbound;
pub mod router;
pub mod token_bucket;
pub mod webhooks;

use crate::bus::{Bus, routes};
use crate::config::Settings;
use crate::logs::ChannelLog;
use crate::store::Store;
use crate::transports::Registry;
use actix::Addr;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Shared by the actors and the HTTP handlers.
pub struct Core {
    pub settings: Settings,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    /// The embedded store, when that is the one in use (swept for expired records).
    pub memory_store: Option<Arc<crate::store::MemoryStore>>,
    /// This node in the cluster (a cluster of one on the embedded default).
    pub membership: Arc<cluster::Membership>,
    pub registry: Registry,
    pub webhooks: Addr<webhooks::Webhooks>,
    /// Webhook deliveries not yet settled (`hornbill_webhooks_pending`).
    pub webhooks_pending: Arc<std::sync::atomic::AtomicUsize>,
    /// Where providers reach the public listener (`[public] base_url`, or the address it is
    /// bound to; no trailing slash); `None` when it is off.
    pub public_base: Option<String>,
    pub channels: RwLock<BTreeMap<String, Arc<ChannelShared>>>,
    pub routers: RwLock<BTreeMap<String, Arc<router::RouterShared>>>,
    /// Rate counts not yet written to the store (flushed by the engine every 250 ms).
    pub rates: parking_lot::Mutex<std::collections::HashMap<(String, &'static str, i64), u64>>,
}

impl Core {
    /// The record lifetimes of the store settings.
    pub fn store_ttls(&self) -> crate::store::Ttls {
        crate::store::Ttls {
            inbound: Duration::from_secs(self.settings.store.inbound_message_ttl),
            outbound: Duration::from_secs(self.settings.store.outbound_message_ttl),
        }
    }

    pub fn channel(&self, id: &str) -> Option<Arc<ChannelShared>> {
        self.channels.read().get(id).cloned()
    }

    pub fn router(&self, id: &str) -> Option<Arc<router::RouterShared>> {
        self.routers.read().get(id).cloned()
    }

    /// The router that owns a channel, if one does.
    pub fn router_of(&self, cid: &str) -> Option<Arc<router::RouterShared>> {
        self.routers
            .read()
            .values()
            .find(|r| r.channel() == cid)
            .cloned()
    }

    /// Counts one for `label` (Junebug's rate labels) in the current rate bucket.
    pub fn count(&self, cid: &str, label: &'static str) {
        let bucket = rate_bucket(self.settings.channel_defaults.metric_window);
        *self
            .rates
            .lock()
            .entry((cid.to_string(), label, bucket))
            .or_default() += 1;
    }

    /// Writes the pending rate counts to the store in one batch.
    pub async fn flush_rates(&self) {
        let pending = std::mem::take(&mut *self.rates.lock());
        let counts: Vec<crate::store::RateCount> = pending
            .into_iter()
            .map(|((cid, label, bucket), n)| crate::store::RateCount {
                cid,
                label: label.to_string(),
                bucket,
                n,
            })
            .collect();
        let window = Duration::from_secs_f64(self.settings.channel_defaults.metric_window);
        if let Err(e) = self.store.incr_rates(&counts, window).await {
            tracing::warn!(error = %e, "Rate counts not saved.");
        }
    }
}

impl Core {
    /// Every metric in Prometheus's text format, the gauges set from the channels' state.
    pub async fn scrape(&self) -> String {
        let channels: Vec<Arc<ChannelShared>> = self.channels.read().values().cloned().collect();
        // Waiting on the bus: cheap in memory, one passive declare per route with RabbitMQ
        // (all channels at once). A length the bus cannot tell is left unset, not shown as 0.
        let on_bus = futures::future::join_all(channels.iter().map(|shared| {
            let bus = self.bus.clone();
            async move {
                let bulk = bus.queue_len(&routes::outbound(&shared.id)).await.ok()?;
                let realtime = bus
                    .queue_len(&routes::outbound_realtime(&shared.id))
                    .await
                    .ok()?;
                Some(bulk + realtime)
            }
        }));
        let on_bus = tokio::time::timeout(crate::telemetry::BUS_WAIT, on_bus)
            .await
            .unwrap_or_else(|_| vec![None; channels.len()]);
        let gauges: Vec<crate::telemetry::ChannelGauges> = channels
            .iter()
            .zip(on_bus)
            .map(|(shared, on_bus)| crate::telemetry::ChannelGauges {
                id: shared.id.clone(),
                kind: shared.spec().kind.clone(),
                queue_length: on_bus.map(|n| n + shared.held.load(Ordering::Relaxed) as u64),
                in_flight: shared.in_flight.load(Ordering::Relaxed) as u64,
                statuses: shared.metrics.read().statuses(),
            })
            .collect();
        crate::telemetry::render(
            &gauges,
            self.bus.kind(),
            self.bus.trouble().is_none(),
            self.webhooks_pending.load(Ordering::Relaxed),
        )
    }
}

pub use crate::defs::{
    CALLBACK_SECRET, CallbackSecret, ChannelSpec, PREVIOUS_CALLBACK_SECRET, PREVIOUS_SECRET_GRACE,
};

impl Core {
    /// A channel's settings from its properties, with this server's defaults and registry.
    pub fn channel_spec(&self, props: &Value) -> ChannelSpec {
        ChannelSpec::from_props(
            props,
            self.settings.channel_defaults.window,
            |kind, config| {
                self.registry
                    .get(kind)
                    .map(|f| f.transport_type(config))
                    .unwrap_or_else(|_| kind.to_string())
            },
        )
    }
}

/// What the HTTP API and the actors share about one running channel.
pub struct ChannelShared {
    pub id: String,
    /// The stored properties (as submitted, merged on modify).
    pub props: RwLock<Value>,
    pub spec: RwLock<Arc<ChannelSpec>>,
    pub log: ChannelLog,
    /// Messages taken off the bus and waiting for the rate limit or window.
    pub held: AtomicUsize,
    /// Messages handed to the transport and not yet answered.
    pub in_flight: AtomicUsize,
    /// Counter handles and component statuses for `/metrics`.
    pub metrics: RwLock<crate::telemetry::ChannelMetrics>,
    pub actor: RwLock<Option<Addr<channel::Channel>>>,
    pub forwarder: RwLock<Option<Addr<forwarder::Forwarder>>>,
    /// The running transport's intake of provider callbacks (public listener).
    pub callbacks: RwLock<Option<tokio::sync::mpsc::Sender<crate::transports::Callback>>>,
    /// This node holds the channel's lease and runs it (its transport, its consumer of the
    /// outbound queue, its forwarder). Otherwise the channel is known here for the API, and
    /// at most answers provider callbacks.
    pub active: std::sync::atomic::AtomicBool,
    /// The lease's fencing token and until when this node may act on it.
    pub lease: parking_lot::Mutex<Option<(u64, std::time::Instant)>>,
    /// Transport tasks still running (a stopped one may take `GRACEFUL_STOP` to end).
    pub transports: Arc<AtomicUsize>,
    /// The channel actors' workers still running (events and inbound being recorded and
    /// their deliveries settled; they end once a stopped actor's last work is done).
    pub workers: Arc<AtomicUsize>,
    /// Deliveries answered by the provider whose events are being recorded (settled after).
    pub unsettled: AtomicUsize,
    /// The channel's `log_protocol`, shared with its running transport (a modify flips it
    /// without a restart).
    pub protocol_log: Arc<std::sync::atomic::AtomicBool>,
}

impl ChannelShared {
    pub fn new(id: &str, props: Value, spec: Arc<ChannelSpec>, ring_size: usize) -> ChannelShared {
        ChannelShared {
            protocol_log: Arc::new(spec.log_protocol.into()),
            metrics: RwLock::new(crate::telemetry::ChannelMetrics::new(id, &spec.kind)),
            spec: RwLock::new(spec),
            props: RwLock::new(props),
            log: ChannelLog::new(id, ring_size),
            held: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            actor: RwLock::new(None),
            forwarder: RwLock::new(None),
            callbacks: RwLock::new(None),
            active: Default::default(),
            lease: Default::default(),
            transports: Default::default(),
            workers: Default::default(),
            unsettled: Default::default(),
            id: id.to_string(),
        }
    }

    pub fn spec(&self) -> Arc<ChannelSpec> {
        self.spec.read().clone()
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    pub fn set_lease(&self, token: u64, until: std::time::Instant) {
        *self.lease.lock() = Some((token, until));
    }

    pub fn clear_lease(&self) {
        *self.lease.lock() = None;
    }

    /// Whether this node may hand the channel's messages to its transport now.
    pub fn lease_valid(&self) -> bool {
        self.lease
            .lock()
            .is_some_and(|(_, until)| std::time::Instant::now() < until)
    }
}

pub use crate::message::now_secs;

/// The rate bucket `now` falls in.
pub fn rate_bucket(window: f64) -> i64 {
    (now_secs() / window).floor() as i64
}

/// Runs `f` until it succeeds, waiting longer after each failure (100 ms doubling to 10 s)
/// and logging each failure on the channel: backends that are down hold work up, they do
/// not lose it.
pub async fn retry<F, Fut, E>(shared: &ChannelShared, what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    retry_value(shared, what, f).await
}

/// `retry` for an operation that returns a value.
pub async fn retry_value<T, F, Fut, E>(shared: &ChannelShared, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                shared.log.warn(
                    None,
                    format!(
                        "Could not {what}: {e}; retrying in {:.1} s",
                        delay.as_secs_f64()
                    ),
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Reads a bus item. One that does not parse can never be handled: it is logged as an error
/// and settled, so it does not come back forever; `None` then.
pub fn parse_or_drop<T, E: std::fmt::Display>(
    shared: &ChannelShared,
    d: &crate::bus::Delivery,
    what: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Option<T> {
    match parse(&d.body) {
        Ok(v) => Some(v),
        Err(e) => {
            shared
                .log
                .log(crate::logs::ERROR, None, format!("Dropping {what}: {e}"));
            None
        }
    }
}
