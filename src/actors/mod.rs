//! The actors: `Engine` (registry and lifecycle), `Channel` (one per channel: queue, rate
//! limit, window, transport supervision), `Forwarder` (a channel's inbound and events to its
//! destination: mo_url, amqp_queue, an application, or its router's destinations), `Router`
//! (Junebug routers: which destination gets what), `Application` (built-in answerers) and
//! `Webhooks` (posting mo_url, event_url and status_url). `Core` is what they and the HTTP
//! API share.

pub mod application;
pub mod channel;
pub mod engine;
pub mod forwarder;
pub mod ordered;
pub mod outbound;
pub mod router;
pub mod webhooks;

use crate::bus::Bus;
use crate::config::Settings;
use crate::logs::ChannelLog;
use crate::store::Store;
use crate::transports::Registry;
use actix::Addr;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

/// Shared by the actors and the HTTP handlers.
pub struct Core {
    pub settings: Settings,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn Store>,
    /// The embedded store, when that is the one in use (swept for expired records).
    pub memory_store: Option<Arc<crate::store::MemoryStore>>,
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

/// A channel's settings, read from its properties (the API body as stored).
#[derive(Clone, Debug, Default)]
pub struct ChannelSpec {
    pub kind: String,
    pub config: Value,
    pub mo_url: Option<String>,
    pub mo_url_auth_token: Option<String>,
    pub amqp_queue: Option<String>,
    pub status_url: Option<String>,
    pub event_url: Option<String>,
    pub event_auth_token: Option<String>,
    pub application: Option<String>,
    pub rate_limit_count: u64,
    pub rate_limit_window: u64,
    pub character_limit: Option<u64>,
    pub window: usize,
    /// Vumi `transport_type` of the channel's messages (from its type and config).
    pub transport_type: String,
    /// Junebug: a channel may be sent to only when it has a destination key.
    pub has_destination: bool,
    /// What a provider's callback URL must carry (channel types with callbacks).
    pub callback_secret: CallbackSecret,
}

/// Property keys of a channel's callback secret, and of the one it replaced (accepted for
/// `PREVIOUS_SECRET_GRACE` after a rotation, so providers can be updated without loss).
pub const CALLBACK_SECRET: &str = "callback_secret";
pub const PREVIOUS_CALLBACK_SECRET: &str = "previous_callback_secret";
pub const PREVIOUS_SECRET_GRACE: f64 = 3600.0;

/// The unguessable path segment in a channel's callback URLs,
/// `/channels/{id}/{secret}/{action}`: without it a provider callback is refused, so nobody
/// who merely knows (or guesses) a channel id can inject messages or reports.
#[derive(Clone, Debug, Default)]
pub struct CallbackSecret {
    pub current: Option<String>,
    /// The secret a rotation replaced, and until when (epoch seconds) it still opens.
    pub previous: Option<(String, f64)>,
}

impl CallbackSecret {
    fn from_props(props: &Value) -> CallbackSecret {
        let previous = props.get(PREVIOUS_CALLBACK_SECRET).and_then(|p| {
            Some((
                p.get("secret")?.as_str()?.to_string(),
                p.get("until")?.as_f64()?,
            ))
        });
        CallbackSecret {
            current: props
                .get(CALLBACK_SECRET)
                .and_then(Value::as_str)
                .map(str::to_string),
            previous,
        }
    }

    /// A new secret: 128 bits from the operating system's generator (uuid v4 uses getrandom).
    pub fn generate() -> String {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// Whether `given` opens this channel's callbacks (compared in constant time).
    pub fn accepts(&self, given: &str, now: f64) -> bool {
        use subtle::ConstantTimeEq;
        let matches = |s: &str| bool::from(s.as_bytes().ct_eq(given.as_bytes()));
        self.current.as_deref().is_some_and(matches)
            || self
                .previous
                .as_ref()
                .is_some_and(|(s, until)| now < *until && matches(s))
    }
}

impl ChannelSpec {
    pub fn from_props(props: &Value, core: &Core) -> ChannelSpec {
        let s = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| props.get(k).and_then(crate::api_schema::as_count);
        let default_window = core.settings.channel_defaults.window;
        let kind = s("type").unwrap_or_default();
        let config = props.get("config").cloned().unwrap_or(Value::Null);
        let transport_type = core
            .registry
            .get(&kind)
            .map(|f| f.transport_type(&config))
            .unwrap_or_else(|_| kind.clone());
        ChannelSpec {
            transport_type,
            kind,
            config,
            mo_url: s("mo_url"),
            mo_url_auth_token: s("mo_url_auth_token"),
            amqp_queue: s("amqp_queue"),
            status_url: s("status_url"),
            event_url: s("event_url"),
            event_auth_token: s("event_auth_token"),
            application: s("application"),
            rate_limit_count: n("rate_limit_count").unwrap_or(0),
            rate_limit_window: n("rate_limit_window").unwrap_or(0),
            character_limit: n("character_limit"),
            window: n("window")
                .map(|w| w.max(1) as usize)
                .unwrap_or(default_window),
            has_destination: ["mo_url", "amqp_queue", "application"]
                .iter()
                .any(|k| props.get(*k).is_some()),
            callback_secret: CallbackSecret::from_props(props),
        }
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
}

impl ChannelShared {
    pub fn spec(&self) -> Arc<ChannelSpec> {
        self.spec.read().clone()
    }
}

/// Seconds since the epoch as a float.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

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
