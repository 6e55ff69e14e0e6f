//! The embedded store: Junebug's Redis key layout held in a process-local map with TTLs,
//! under a budget of `[store] max_records` records.
//!
//! # The budget
//!
//! What every message adds is *evictable*; at most `max_records` evictable records are held:
//! - an outbound message's record, `{cid}:outbound_messages:{mid}`, with its events (one
//!   record however many events), under its channel and, for a router destination's send,
//!   under the destination too;
//! - an inbound message's record, `{cid}:inbound_messages:{mid}` (what a reply looks up),
//!   under its channel and under a router destination that received it;
//! - a transport's map from the id a provider or SMSC gave a sent message to the message
//!   (`Store::set_message_state`), kept to turn its delivery reports into events.
//!
//! A new record beyond the budget evicts the oldest: by when it was first written, not when
//! it was last read (reads renew the TTL, not the place in line). Each eviction counts in
//! `hornbill_store_evictions_total`, and a warning with the count is logged at most once a
//! minute while evicting. The order is a queue of (key, generation) in write order: a write
//! pushes one item and evicts from the front, O(1); items whose record was deleted, expired
//! or rewritten meanwhile are skipped when they come up, and the queue is compacted when they
//! outnumber the live records two to one (amortised O(1) per write, no scan per insert).
//!
//! Never evicted, as evicting them would lose or garble something accepted; each is bounded
//! by its own lifetime or by its owner instead of by the number of messages:
//! - channel, router and destination definitions, and channel statuses;
//! - pending webhooks (`hornbill:webhooks`: deleted once delivered or given up on after
//!   `[webhooks] retry_for`);
//! - rate counters (one per channel, label and bucket; two windows long);
//! - every other transport state (`Store::set_state`): USSD sessions and held USSD requests,
//!   the parts of a long inbound message waiting for the rest, application sessions.
//!
//! What eviction means for a message:
//! - a reply to an evicted inbound message fails with `MessageNotFound` (unless
//!   `[channel_defaults] allow_expired_replies` and the reply names `to`), as after its TTL;
//! - an evicted outbound message's status shows none of the events recorded before the
//!   eviction; an event that comes later starts a new record holding only itself (as with
//!   Redis after the TTL), so the status then shows that event;
//! - such a later event goes to the channel's `event_url` (with the channel's
//!   `event_auth_token`), not to the message's own `event_url`, which went with the record;
//!   with neither, no webhook. A router destination's send no longer knows its destination,
//!   so the destination neither stores nor counts the event. It is still published to the
//!   channel's `amqp_queue`;
//! - a delivery report that needs an evicted id map (an SMPP receipt; an aggregator's report
//!   naming only the provider's id, or naming ours when that record was evicted too) finds no
//!   message: it is logged (for an aggregator, also counted in
//!   `hornbill_callbacks_refused_total{reason="unknown_message"}`) and dropped, as after the
//!   map's TTL, so the message gets no delivery event.

use super::{Defs, RateCount, RecordRefs, Store, StoreError, Ttls, keys};
use crate::message::{Event, Message, StatusEvent};
use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `[store] max_records` when not set: about 340 MB of message records at the ~1.7 KB a
/// sent message with one event takes (~500 MB at the ~2.5 KB of one with a delivery report
/// too), so the store fits a 1-2 GB machine beside the rest of the process.
pub const DEFAULT_MAX_RECORDS: usize = 200_000;
/// Least time between two warnings about evictions.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Stale queue items tolerated beyond two per live record before a compaction.
const QUEUE_SLACK: usize = 1024;

enum Data {
    Str(String),
    Hash(BTreeMap<String, String>),
    Set(BTreeSet<String>),
    Counter(u64),
}

struct Entry {
    data: Data,
    expires: Option<Instant>,
    /// An evictable record's generation, as queued in `Inner::queue`; 0: never evicted.
    generation: u64,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// Whether a record written is one the budget may evict (see the module header).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Fixed,
    Evictable,
}

struct Inner {
    map: HashMap<Arc<str>, Entry>,
    /// Evictable records, oldest first, as (key, generation). An item whose key no longer
    /// holds that generation is stale: skipped, and dropped at the next compaction.
    queue: VecDeque<(Arc<str>, u64)>,
    /// The last generation given out.
    generation: u64,
    /// Evictable records in `map`.
    records: usize,
    max_records: usize,
    /// Records evicted since the process started, since the last warning, and when that was.
    evicted: u64,
    unwarned: u64,
    warned: Option<Instant>,
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.map.remove(key)?;
        if entry.generation != 0 {
            self.records -= 1;
        }
        Some(entry)
    }

    /// The live entry at `key`; an expired one is dropped.
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| !e.live(now)) {
            self.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Puts a new entry at `key` in place of any there; an evictable one joins the back of
    /// the queue and may evict the oldest.
    fn put(&mut self, key: &str, data: Data, expires: Option<Instant>, kind: Kind, now: Instant) {
        let key: Arc<str> = Arc::from(key);
        let generation = match kind {
            Kind::Fixed => 0,
            Kind::Evictable => {
                self.generation += 1;
                self.generation
            }
        };
        let entry = Entry {
            data,
            expires,
            generation,
        };
        if let Some(old) = self.map.insert(key.clone(), entry)
            && old.generation != 0
        {
            self.records -= 1;
        }
        if generation != 0 {
            self.records += 1;
            self.queue.push_back((key, generation));
            self.evict(now);
        }
    }

    /// Evicts the oldest records while there are more than `max_records`, and compacts the
    /// queue when stale items outnumber live records two to one.
    fn evict(&mut self, now: Instant) {
        while self.records > self.max_records {
            let Some((key, generation)) = self.queue.pop_front() else {
                break;
            };
            if self
                .map
                .get(&*key)
                .is_some_and(|e| e.generation == generation)
            {
                let entry = self.remove(&key);
                // One that had expired anyway was not lost to the budget.
                if entry.is_some_and(|e| e.live(now)) {
                    self.evicted += 1;
                    self.unwarned += 1;
                }
            }
        }
        if self.queue.len() > 3 * self.records + QUEUE_SLACK {
            let map = &self.map;
            self.queue.retain(|(key, generation)| {
                map.get(&**key).is_some_and(|e| e.generation == *generation)
            });
        }
    }

    fn hset(
        &mut self,
        key: &str,
        field: &str,
        value: String,
        ttl: Option<Duration>,
        kind: Kind,
        now: Instant,
    ) {
        let expires = ttl.map(|t| now + t);
        if let Some(Entry {
            data: Data::Hash(h),
            expires: e,
            ..
        }) = self.live(key, now)
        {
            h.insert(field.to_string(), value);
            *e = expires;
            return;
        }
        let mut h = BTreeMap::new();
        h.insert(field.to_string(), value);
        self.put(key, Data::Hash(h), expires, kind, now);
    }
}

/// Process-local store. Expired records vanish on access and in `sweep`; message records
/// beyond `max_records` are evicted oldest first (see the module header).
pub struct MemoryStore {
    inner: Mutex<Inner>,
    ttls: Ttls,
    evictions: metrics::Counter,
}

impl MemoryStore {
    /// A store holding at most `DEFAULT_MAX_RECORDS` message records.
    pub fn new(ttls: Ttls) -> Self {
        MemoryStore::with_max_records(ttls, DEFAULT_MAX_RECORDS)
    }

    /// A store holding at most `max_records` (at least 1) message records.
    pub fn with_max_records(ttls: Ttls, max_records: usize) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                queue: VecDeque::new(),
                generation: 0,
                records: 0,
                max_records: max_records.max(1),
                evicted: 0,
                unwarned: 0,
                warned: None,
            }),
            ttls,
            evictions: metrics::counter!(crate::telemetry::STORE_EVICTIONS),
        }
    }

    /// Message records held now, and evicted since the start.
    pub fn records(&self) -> (usize, u64) {
        let inner = self.inner.lock();
        (inner.records, inner.evicted)
    }

    /// Drops every expired record; the engine calls this periodically.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let before = inner.map.len();
        let mut evictable = 0;
        inner.map.retain(|_, e| {
            let keep = e.live(now);
            if !keep && e.generation != 0 {
                evictable += 1;
            }
            keep
        });
        inner.records -= evictable;
        before - inner.map.len()
    }

    /// Runs `f` on the store's state; then counts what it evicted, and warns (at most once
    /// every `WARN_EVERY`) outside the lock.
    fn write<R>(&self, f: impl FnOnce(&mut Inner, Instant) -> R) -> R {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let before = inner.evicted;
        let result = f(&mut inner, now);
        let evicted = inner.evicted - before;
        if evicted == 0 {
            return result;
        }
        let warn = inner
            .warned
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
        let report = warn.then(|| {
            inner.warned = Some(now);
            (
                std::mem::take(&mut inner.unwarned),
                inner.evicted,
                inner.max_records,
            )
        });
        drop(inner);
        self.evictions.increment(evicted);
        if let Some((since, total, max_records)) = report {
            tracing::warn!(
                evicted = since,
                evicted_total = total,
                max_records,
                "The embedded store is full: the oldest message records were evicted (replies to \
                 those inbound messages fail, those sent messages show no events). Raise [store] \
                 max_records or use Redis."
            );
        }
        result
    }

    /// Runs `f` on the live entry at `key` (renewing its TTL to `ttl` if given).
    fn with_live<R>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        f: impl FnOnce(Option<&mut Entry>) -> R,
    ) -> R {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        match inner.live(key, now) {
            Some(e) => {
                if let Some(ttl) = ttl {
                    e.expires = Some(now + ttl);
                }
                f(Some(e))
            }
            None => f(None),
        }
    }

    fn hset(&self, key: &str, field: &str, value: String, ttl: Option<Duration>, kind: Kind) {
        self.write(|inner, now| inner.hset(key, field, value, ttl, kind, now));
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

    fn put_state(&self, cid: &str, key: &str, value: &str, ttl: Duration, kind: Kind) {
        self.write(|inner, now| {
            let data = Data::Str(value.to_string());
            inner.put(&keys::state(cid, key), data, Some(now + ttl), kind, now)
        });
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
        let mut inner = self.inner.lock();
        let now = Instant::now();
        inner.put(&defs.item_key(id), Data::Str(text), None, Kind::Fixed, now);
        let set_key = defs.set_key();
        if !matches!(
            inner.map.get(set_key.as_str()),
            Some(Entry {
                data: Data::Set(_),
                ..
            })
        ) {
            inner.put(&set_key, Data::Set(BTreeSet::new()), None, Kind::Fixed, now);
        }
        if let Some(Entry {
            data: Data::Set(s), ..
        }) = inner.map.get_mut(set_key.as_str())
        {
            s.insert(id.to_string());
        }
        Ok(())
    }

    async fn delete_def(&self, defs: Defs<'_>, id: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        inner.remove(&defs.item_key(id));
        if let Some(Entry {
            data: Data::Set(s), ..
        }) = inner.map.get_mut(defs.set_key().as_str())
        {
            s.remove(id);
        }
        Ok(())
    }

    async fn load_defs(&self, defs: Defs<'_>) -> Result<Vec<(String, Value)>, StoreError> {
        let inner = self.inner.lock();
        let ids = match inner.map.get(defs.set_key().as_str()) {
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
            }) = inner.map.get(key.as_str())
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
        let ttl = Some(self.ttls.inbound);
        self.hset(&key, "message", text, ttl, Kind::Evictable);
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
        let ttl = Some(self.ttls.outbound);
        self.hset(&key, "message", record.to_string(), ttl, Kind::Evictable);
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
        let ttl = Some(self.ttls.outbound);
        self.hset(&key, &event.event_id, text, ttl, Kind::Evictable);
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
        let key = keys::outbound(cid, &event.user_message_id);
        let text = serde_json::to_string(event).map_err(|e| corrupt(&key, e))?;
        let ttl = Some(self.ttls.outbound);
        // The event and the read of its record under one lock.
        let record = self.write(|inner, now| {
            inner.hset(&key, &event.event_id, text, ttl, Kind::Evictable, now);
            match inner.map.get(key.as_str()).map(|e| &e.data) {
                Some(Data::Hash(h)) => h.get("message").cloned(),
                _ => None,
            }
        });
        match record {
            Some(text) => RecordRefs::parse(&key, &text).map(Some),
            None => Ok(None),
        }
    }

    async fn save_status(&self, status: &StatusEvent) -> Result<(), StoreError> {
        let key = keys::status(&status.channel_id);
        let text = status.to_vumi().to_string();
        self.hset(&key, &status.component, text, None, Kind::Fixed);
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
        let mut inner = self.inner.lock();
        for c in counts {
            let key = keys::rate(&c.cid, &c.label, c.bucket);
            match inner.map.get_mut(key.as_str()) {
                Some(Entry {
                    data: Data::Counter(n),
                    ..
                }) => *n += c.n,
                _ => inner.put(&key, Data::Counter(c.n), Some(now + ttl), Kind::Fixed, now),
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
        self.put_state(cid, key, value, ttl, Kind::Fixed);
        Ok(())
    }

    async fn set_message_state(
        &self,
        cid: &str,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_state(cid, key, value, ttl, Kind::Evictable);
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
        self.inner.lock().remove(&keys::state(cid, key));
        Ok(())
    }

    async fn save_webhook(&self, id: &str, job: &Value) -> Result<(), StoreError> {
        self.hset(keys::WEBHOOKS, id, job.to_string(), None, Kind::Fixed);
        Ok(())
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if let Some(Entry {
            data: Data::Hash(h),
            ..
        }) = inner.map.get_mut(keys::WEBHOOKS)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store(max_records: usize) -> MemoryStore {
        let ttls = Ttls {
            inbound: Duration::from_secs(600),
            outbound: Duration::from_secs(600),
        };
        MemoryStore::with_max_records(ttls, max_records)
    }

    fn event(mid: &str, eid: &str) -> Event {
        let mut e = Event::ack(mid, "sent", "c");
        e.event_id = eid.to_string();
        e
    }

    async fn outbound(s: &MemoryStore, mid: &str) -> bool {
        s.load_outbound("c", mid).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn the_oldest_records_are_evicted_first() {
        let s = store(3);
        for mid in ["m1", "m2", "m3"] {
            s.save_outbound("c", mid, &json!({"id": mid}))
                .await
                .unwrap();
        }
        // An event adds to its message's record: one record still, and no younger.
        s.save_event("c", &event("m1", "e1")).await.unwrap();
        assert_eq!(s.records(), (3, 0));
        s.save_outbound("c", "m4", &json!({})).await.unwrap();
        assert!(!outbound(&s, "m1").await);
        assert!(s.load_events("c", "m1").await.unwrap().is_empty());
        // A read renews the TTL, not the place in line.
        assert!(outbound(&s, "m2").await);
        s.save_inbound("c", &Message::new(None, None, None))
            .await
            .unwrap();
        assert!(!outbound(&s, "m2").await);
        for mid in ["m3", "m4"] {
            assert!(outbound(&s, mid).await, "{mid}");
        }
        assert_eq!(s.records(), (3, 2));
        // An event of an evicted message starts a record of its own, the youngest.
        let refs = s.record_event("c", &event("m1", "e2")).await.unwrap();
        assert_eq!(refs, None);
        assert_eq!(s.load_events("c", "m1").await.unwrap().len(), 1);
        assert!(!outbound(&s, "m3").await);
        assert_eq!(s.records(), (3, 3));
    }

    #[tokio::test]
    async fn only_message_records_are_evicted() {
        let s = store(2);
        let ttl = Duration::from_secs(60);
        s.save_channel("c", &json!({"type": "telnet"}))
            .await
            .unwrap();
        s.set_state("c", "ussd:1", "session", ttl).await.unwrap();
        s.save_webhook("w1", &json!({"url": "http://x"}))
            .await
            .unwrap();
        s.set_message_state("c", "smsc:a", "m0", ttl).await.unwrap();
        for i in 0..10 {
            s.save_outbound("c", &format!("m{i}"), &json!({}))
                .await
                .unwrap();
            let msg = Message::new(None, None, None);
            s.save_inbound("c", &msg).await.unwrap();
        }
        assert_eq!(s.records(), (2, 19));
        assert_eq!(s.get_state("c", "smsc:a").await.unwrap(), None);
        assert_eq!(s.load_channels().await.unwrap().len(), 1);
        let session = s.get_state("c", "ussd:1").await.unwrap();
        assert_eq!(session.as_deref(), Some("session"));
        assert_eq!(s.load_webhooks().await.unwrap().len(), 1);
        assert!(outbound(&s, "m9").await);
    }

    #[tokio::test]
    async fn deleted_and_expired_records_leave_the_budget() {
        let s = store(2);
        let ttl = Duration::from_secs(60);
        // Id maps deleted when their receipt came: the queue stays short, nothing is evicted.
        for i in 0..10 * QUEUE_SLACK {
            let key = format!("smsc:{i}");
            s.set_message_state("c", &key, "m", ttl).await.unwrap();
            s.delete_state("c", &key).await.unwrap();
        }
        s.save_outbound("c", "m1", &json!({})).await.unwrap();
        s.save_outbound("c", "m2", &json!({})).await.unwrap();
        assert_eq!(s.records(), (2, 0));
        assert!(s.inner.lock().queue.len() <= 3 * 2 + QUEUE_SLACK + 1);
        // Expired ones go in the sweep, and are not counted as evicted after.
        let short = Duration::from_millis(1);
        s.set_message_state("c", "smsc:x", "m", short)
            .await
            .unwrap();
        assert_eq!(s.records(), (2, 1));
        std::thread::sleep(Duration::from_millis(5));
        s.sweep();
        assert_eq!(s.records(), (1, 1));
        s.save_outbound("c", "m3", &json!({})).await.unwrap();
        assert_eq!(s.records(), (2, 1));
        for mid in ["m2", "m3"] {
            assert!(outbound(&s, mid).await, "{mid}");
        }
    }
}
