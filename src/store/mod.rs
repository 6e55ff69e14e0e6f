//! The store: channel definitions, message and event records, statuses and rate counters.
//!
//! Keys follow Junebug's Redis layout (`JUNEBUG-API.md` §3.5) in every implementation, so the
//! in-memory store and the Redis store behave alike and a hornbill pointed at a Junebug's Redis
//! finds its channels. TTLs are sliding: every read or write of a record renews it.

pub mod memory;
pub mod redis;

use crate::message::{Event, Message, StatusEvent};
use async_trait::async_trait;
use serde_json::Value;
use std::time::Duration;

pub use self::redis::RedisStore;
pub use memory::MemoryStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// One batch entry of rate counts.
#[derive(Clone, Debug, PartialEq)]
pub struct RateCount {
    pub cid: String,
    pub label: String,
    pub bucket: i64,
    pub n: u64,
}

/// What an event needs of its message's outbound record: where to post it, the message's
/// addresses (for URL templates), and the router destination that sent it. Read without
/// building the whole record (every event reads one).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct RecordRefs {
    #[serde(default, deserialize_with = "text")]
    pub event_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub event_auth_token: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub to: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub router_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub destination_id: Option<String>,
}

/// A string field, or nothing if it holds anything else.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::Deserialize;
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

impl RecordRefs {
    pub fn parse(key: &str, text: &str) -> Result<RecordRefs, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })
    }
}

/// The entries of a `{cid}:status` hash (component -> Vumi status JSON), each read on its
/// own: one that cannot be read (another program's, or damaged) is left out with a warning,
/// and the others still show.
pub fn read_statuses<'a>(
    key: &str,
    cid: &str,
    entries: impl Iterator<Item = (&'a String, &'a String)>,
) -> Vec<StatusEvent> {
    entries
        .filter_map(
            |(component, text)| match StatusEvent::from_vumi(cid, text.as_bytes()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(%key, %component, error = %e, "Unreadable status entry left out.");
                    None
                }
            },
        )
        .collect()
}

/// Record lifetimes (Junebug's defaults: 600 s inbound, 172800 s outbound).
#[derive(Clone, Copy, Debug)]
pub struct Ttls {
    pub inbound: Duration,
    pub outbound: Duration,
}

/// A kind of saved definition: a set of ids plus one JSON string per id, never expiring.
#[derive(Clone, Copy, Debug)]
pub enum Defs<'a> {
    /// `channels` + `{cid}:properties`.
    Channels,
    /// `routers` + `routers:{rid}`.
    Routers,
    /// `routers:{rid}:destinations` + `routers:{rid}:destinations:{did}`.
    Destinations(&'a str),
}

impl Defs<'_> {
    pub fn set_key(&self) -> String {
        match self {
            Defs::Channels => keys::CHANNELS.to_string(),
            Defs::Routers => "routers".to_string(),
            Defs::Destinations(rid) => format!("routers:{rid}:destinations"),
        }
    }

    pub fn item_key(&self, id: &str) -> String {
        match self {
            Defs::Channels => keys::properties(id),
            Defs::Routers => format!("routers:{id}"),
            Defs::Destinations(rid) => format!("routers:{rid}:destinations:{id}"),
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Saves a definition: its id in the set, its JSON under its own key.
    async fn save_def(&self, defs: Defs<'_>, id: &str, value: &Value) -> Result<(), StoreError>;
    async fn delete_def(&self, defs: Defs<'_>, id: &str) -> Result<(), StoreError>;
    /// Every saved definition of a kind, by id, in id order.
    async fn load_defs(&self, defs: Defs<'_>) -> Result<Vec<(String, Value)>, StoreError>;
    /// One saved definition.
    async fn load_def(&self, defs: Defs<'_>, id: &str) -> Result<Option<Value>, StoreError> {
        Ok(self
            .load_defs(defs)
            .await?
            .into_iter()
            .find_map(|(i, v)| (i == id).then_some(v)))
    }

    /// Saves a channel definition (`channels` set + `{cid}:properties`).
    async fn save_channel(&self, id: &str, properties: &Value) -> Result<(), StoreError> {
        self.save_def(Defs::Channels, id, properties).await
    }
    async fn delete_channel(&self, id: &str) -> Result<(), StoreError> {
        self.delete_def(Defs::Channels, id).await
    }
    /// Every saved channel definition, by id.
    async fn load_channels(&self) -> Result<Vec<(String, Value)>, StoreError> {
        self.load_defs(Defs::Channels).await
    }

    /// `{cid}:inbound_messages:{mid}`, field `message`.
    async fn save_inbound(&self, cid: &str, msg: &Message) -> Result<(), StoreError>;
    async fn load_inbound(&self, cid: &str, mid: &str) -> Result<Option<Message>, StoreError>;

    /// `{cid}:outbound_messages:{mid}`, field `message` (the API record with its extras).
    async fn save_outbound(&self, cid: &str, mid: &str, record: &Value) -> Result<(), StoreError>;
    async fn load_outbound(&self, cid: &str, mid: &str) -> Result<Option<Value>, StoreError>;
    /// Adds field `{event_id}` to the outbound record's hash.
    async fn save_event(&self, cid: &str, event: &Event) -> Result<(), StoreError>;
    async fn load_events(&self, cid: &str, mid: &str) -> Result<Vec<Event>, StoreError>;
    /// Saves an event and returns what it needs of its message's outbound record (one round
    /// trip).
    async fn record_event(
        &self,
        cid: &str,
        event: &Event,
    ) -> Result<Option<RecordRefs>, StoreError>;

    /// `{cid}:status`, one field per component; never expires.
    async fn save_status(&self, status: &StatusEvent) -> Result<(), StoreError>;
    async fn load_statuses(&self, cid: &str) -> Result<Vec<StatusEvent>, StoreError>;

    /// Adds counts to rate buckets (`{cid}:{label}:{bucket}`, expiring after 2 windows).
    async fn incr_rates(&self, counts: &[RateCount], window: Duration) -> Result<(), StoreError>;
    async fn rate_count(&self, cid: &str, label: &str, bucket: i64) -> Result<u64, StoreError>;

    /// A transport's own state (e.g. SMSC message id -> hornbill message id), kept under
    /// `hornbill:{cid}:state:{key}` for `ttl`.
    async fn set_state(
        &self,
        cid: &str,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// As `set_state`, for an entry that belongs to one sent message (the id a provider gave
    /// it, kept for its delivery reports): the embedded store counts it in its budget of
    /// message records and may evict it, oldest first, like the message's own record.
    async fn set_message_state(
        &self,
        cid: &str,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.set_state(cid, key, value, ttl).await
    }
    async fn get_state(&self, cid: &str, key: &str) -> Result<Option<String>, StoreError>;
    async fn delete_state(&self, cid: &str, key: &str) -> Result<(), StoreError>;

    /// Pending webhook deliveries (hornbill's own key), so retries survive a restart.
    async fn save_webhook(&self, id: &str, job: &Value) -> Result<(), StoreError>;
    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError>;
    async fn load_webhooks(&self) -> Result<Vec<(String, Value)>, StoreError>;

    fn kind(&self) -> &'static str;
}

/// Junebug's key names.
pub mod keys {
    pub const CHANNELS: &str = "channels";
    pub fn properties(cid: &str) -> String {
        format!("{cid}:properties")
    }
    pub fn status(cid: &str) -> String {
        format!("{cid}:status")
    }
    pub fn inbound(cid: &str, mid: &str) -> String {
        format!("{cid}:inbound_messages:{mid}")
    }
    pub fn outbound(cid: &str, mid: &str) -> String {
        format!("{cid}:outbound_messages:{mid}")
    }
    pub fn rate(cid: &str, label: &str, bucket: i64) -> String {
        format!("{cid}:{label}:{bucket}")
    }
    /// A transport's state entry.
    pub fn state(cid: &str, key: &str) -> String {
        format!("hornbill:{cid}:state:{key}")
    }
    /// hornbill's pending webhooks: a hash of job id -> job JSON.
    pub const WEBHOOKS: &str = "hornbill:webhooks";
}
