//! The embedded store: Junebug's Redis key layout held in a process-local map with TTLs.

use super::{Defs, RateCount, RecordRefs, Store, StoreError, Ttls, keys};
use crate::message::{Event, Message, StatusEvent};
use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

enum Data {
    Str(String),
    Hash(BTreeMap<String, String>),
    Set(BTreeSet<String>),
    Counter(u64),
}

struct Entry {
    data: Data,
    expires: Option<Instant>,
}

/// Process-local store. Expired records vanish on access and in `sweep`.
pub struct MemoryStore {
    map: Mutex<HashMap<String, Entry>>,
    ttls: Ttls,
}

impl MemoryStore {
    pub fn new(ttls: Ttls) -> Self {
        MemoryStore {
            map: Mutex::new(HashMap::new()),
            ttls,
        }
    }

    /// Drops every expired record; the engine calls this periodically.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut map = self.map.lock();
        let before = map.len();
        map.retain(|_, e| e.expires.is_none_or(|t| t > now));
        before - map.len()
    }

    /// Runs `f` on the live entry at `key` (renewing its TTL to `ttl` if given).
    fn with_live<R>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        f: impl FnOnce(Option<&mut Entry>) -> R,
    ) -> R {
        let now = Instant::now();
        let mut map = self.map.lock();
        if map
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|t| t <= now))
        {
            map.remove(key);
        }
        let entry = map.get_mut(key);
        match entry {
            Some(e) => {
                if let Some(ttl) = ttl {
                    e.expires = Some(now + ttl);
                }
                f(Some(e))
            }
            None => f(None),
        }
    }

    fn hset(&self, key: &str, field: &str, value: String, ttl: Option<Duration>) {
        let now = Instant::now();
        let mut map = self.map.lock();
        let entry = map.entry(key.to_string()).or_insert_with(|| Entry {
            data: Data::Hash(BTreeMap::new()),
            expires: None,
        });
        if entry.expires.is_some_and(|t| t <= now) || !matches!(entry.data, Data::Hash(_)) {
            entry.data = Data::Hash(BTreeMap::new());
        }
        if let Data::Hash(h) = &mut entry.data {
            h.insert(field.to_string(), value);
        }
        entry.expires = ttl.map(|t| now + t);
    }

    fn hgetall(&self, key: &str, ttl: Option<Duration>) -> BTreeMap<String, String> {
        self.with_live(key, ttl, |e| match e.map(|e| &e.data) {
            Some(Data::Hash(h)) => h.clone(),
            _ => BTreeMap::new(),
        })
    }

    fn hget(&self, key: &str, field: &str, ttl: Option<Duration>) -> Option<String> {
        self.with_live(key, ttl, |e| match e.map(|e| &e.data) {
            Some(Data::Hash(h)) => h.get(field).cloned(),
            _ => None,
        })
    }
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn save_def(&self, defs: Defs<'_>, id: &str, value: &Value) -> Result<(), StoreError> {
        let text = value.to_string();
        let mut map = self.map.lock();
        map.insert(
            defs.item_key(id),
            Entry {
                data: Data::Str(text),
                expires: None,
            },
        );
        let set = map.entry(defs.set_key()).or_insert_with(|| Entry {
            data: Data::Set(BTreeSet::new()),
            expires: None,
        });
        if let Data::Set(s) = &mut set.data {
            s.insert(id.to_string());
        }
        Ok(())
    }

    async fn delete_def(&self, defs: Defs<'_>, id: &str) -> Result<(), StoreError> {
        let mut map = self.map.lock();
        map.remove(&defs.item_key(id));
        if let Some(Entry {
            data: Data::Set(s), ..
        }) = map.get_mut(&defs.set_key())
        {
            s.remove(id);
        }
        Ok(())
    }

    async fn load_defs(&self, defs: Defs<'_>) -> Result<Vec<(String, Value)>, StoreError> {
        let map = self.map.lock();
        let ids = match map.get(&defs.set_key()) {
            Some(Entry {
                data: Data::Set(s), ..
            }) => s.clone(),
            _ => return Ok(vec![]),
        };
        let mut out = Vec::new();
        for id in ids {
            let key = defs.item_key(&id);
            if let Some(Entry {
                data: Data::Str(text),
                ..
            }) = map.get(&key)
            {
                let value = serde_json::from_str(text).map_err(|e| corrupt(&key, e))?;
                out.push((id, value));
            }
        }
        Ok(out)
    }

    async fn save_inbound(&self, cid: &str, msg: &Message) -> Result<(), StoreError> {
        let text = serde_json::to_string(msg).map_err(|e| corrupt(&msg.message_id, e))?;
        let key = keys::inbound(cid, &msg.message_id);
        self.hset(&key, "message", text, Some(self.ttls.inbound));
        Ok(())
    }

    async fn load_inbound(&self, cid: &str, mid: &str) -> Result<Option<Message>, StoreError> {
        let key = keys::inbound(cid, mid);
        match self.hget(&key, "message", Some(self.ttls.inbound)) {
            Some(text) => Message::from_slice(text.as_bytes())
                .map(Some)
                .map_err(|e| corrupt(&key, e)),
            None => Ok(None),
        }
    }

    async fn save_outbound(&self, cid: &str, mid: &str, record: &Value) -> Result<(), StoreError> {
        let key = keys::outbound(cid, mid);
        self.hset(
            &key,
            "message",
            record.to_string(),
            Some(self.ttls.outbound),
        );
        Ok(())
    }

    async fn load_outbound(&self, cid: &str, mid: &str) -> Result<Option<Value>, StoreError> {
        let key = keys::outbound(cid, mid);
        match self.hget(&key, "message", Some(self.ttls.outbound)) {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| corrupt(&key, e)),
            None => Ok(None),
        }
    }

    async fn save_event(&self, cid: &str, event: &Event) -> Result<(), StoreError> {
        let key = keys::outbound(cid, &event.user_message_id);
        let text = serde_json::to_string(event).map_err(|e| corrupt(&key, e))?;
        self.hset(&key, &event.event_id, text, Some(self.ttls.outbound));
        Ok(())
    }

    async fn load_events(&self, cid: &str, mid: &str) -> Result<Vec<Event>, StoreError> {
        let key = keys::outbound(cid, mid);
        let mut events = Vec::new();
        for (field, text) in self.hgetall(&key, Some(self.ttls.outbound)) {
            if field == "message" {
                continue;
            }
            events.push(Event::from_slice(text.as_bytes()).map_err(|e| corrupt(&key, e))?);
        }
        Ok(events)
    }

    async fn record_event(
        &self,
        cid: &str,
        event: &Event,
    ) -> Result<Option<RecordRefs>, StoreError> {
        self.save_event(cid, event).await?;
        let key = keys::outbound(cid, &event.user_message_id);
        match self.hget(&key, "message", Some(self.ttls.outbound)) {
            Some(text) => RecordRefs::parse(&key, &text).map(Some),
            None => Ok(None),
        }
    }

    async fn save_status(&self, status: &StatusEvent) -> Result<(), StoreError> {
        let key = keys::status(&status.channel_id);
        self.hset(&key, &status.component, status.to_vumi().to_string(), None);
        Ok(())
    }

    async fn load_statuses(&self, cid: &str) -> Result<Vec<StatusEvent>, StoreError> {
        let key = keys::status(cid);
        let all = self.hgetall(&key, None);
        Ok(super::read_statuses(&key, cid, all.iter()))
    }

    async fn incr_rates(&self, counts: &[RateCount], window: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        // Junebug: ceil(2 × metric_window).
        let ttl = Duration::from_secs_f64((2.0 * window.as_secs_f64()).ceil());
        let mut map = self.map.lock();
        for c in counts {
            let entry = map
                .entry(keys::rate(&c.cid, &c.label, c.bucket))
                .or_insert_with(|| Entry {
                    data: Data::Counter(0),
                    expires: Some(now + ttl),
                });
            if let Data::Counter(n) = &mut entry.data {
                *n += c.n;
            }
        }
        Ok(())
    }

    async fn rate_count(&self, cid: &str, label: &str, bucket: i64) -> Result<u64, StoreError> {
        let key = keys::rate(cid, label, bucket);
        Ok(self.with_live(&key, None, |e| match e.map(|e| &e.data) {
            Some(Data::Counter(n)) => *n,
            _ => 0,
        }))
    }

    async fn set_state(
        &self,
        cid: &str,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.map.lock().insert(
            keys::state(cid, key),
            Entry {
                data: Data::Str(value.to_string()),
                expires: Some(Instant::now() + ttl),
            },
        );
        Ok(())
    }

    async fn get_state(&self, cid: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            self.with_live(&keys::state(cid, key), None, |e| match e.map(|e| &e.data) {
                Some(Data::Str(s)) => Some(s.clone()),
                _ => None,
            }),
        )
    }

    async fn delete_state(&self, cid: &str, key: &str) -> Result<(), StoreError> {
        self.map.lock().remove(&keys::state(cid, key));
        Ok(())
    }

    async fn save_webhook(&self, id: &str, job: &Value) -> Result<(), StoreError> {
        self.hset(keys::WEBHOOKS, id, job.to_string(), None);
        Ok(())
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        let mut map = self.map.lock();
        if let Some(Entry {
            data: Data::Hash(h),
            ..
        }) = map.get_mut(keys::WEBHOOKS)
        {
            h.remove(id);
        }
        Ok(())
    }

    async fn load_webhooks(&self) -> Result<Vec<(String, Value)>, StoreError> {
        self.hgetall(keys::WEBHOOKS, None)
            .into_iter()
            .map(|(id, text)| {
                serde_json::from_str(&text)
                    .map(|v| (id, v))
                    .map_err(|e| corrupt(keys::WEBHOOKS, e))
            })
            .collect()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
