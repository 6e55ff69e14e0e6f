//! The Redis store: Junebug's key layout (`JUNEBUG-API.md` §3.5) with its sliding TTLs, so a
//! hornbill pointed at a running Junebug's Redis finds its channels, plus hornbill's own keys
//! (pending webhooks). An optional `key_prefix` is joined with ":" as Vumi's redis manager
//! does. The connection reconnects by itself; while Redis is away, calls fail and their
//! callers retry or refuse (the API answers with an error, never a 201 it cannot keep).

use super::{Defs, RateCount, RecordRefs, Store, StoreError, Ttls, keys};
use crate::message::{Event, Message, StatusEvent};
use async_trait::async_trait;
use redis::aio::ConnectionManager;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    ttls: Ttls,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

impl RedisStore {
    /// Connects, waiting up to `wait` for Redis to answer.
    pub async fn connect(
        url: &str,
        key_prefix: Option<&str>,
        ttls: Ttls,
        wait: Duration,
    ) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let deadline = tokio::time::Instant::now() + wait;
        let conn = loop {
            match client
                .get_connection_manager_with_config(config.clone())
                .await
            {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(unavailable(e)),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        Ok(RedisStore {
            conn,
            prefix: key_prefix.map(|p| format!("{p}:")).unwrap_or_default(),
            ttls,
        })
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }

    /// HSET field + EXPIRE, atomically.
    async fn hset_ttl(
        &self,
        key: &str,
        field: &str,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic().hset(key, field, value).ignore();
        if let Some(ttl) = ttl {
            pipe.expire(key, ttl.as_secs() as i64).ignore();
        }
        self.run::<()>(&pipe).await
    }

    /// HGET + EXPIRE (the sliding TTL).
    async fn hget_ttl(
        &self,
        key: &str,
        field: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hget(key, field)
            .expire(key, ttl.as_secs() as i64)
            .ignore();
        let (value,): (Option<String>,) = self.run(&pipe).await?;
        Ok(value)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn save_def(&self, defs: Defs<'_>, id: &str, value: &Value) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set(self.key(&defs.item_key(id)), value.to_string())
            .ignore()
            .sadd(self.key(&defs.set_key()), id)
            .ignore();
        self.run(&pipe).await
    }

    async fn delete_def(&self, defs: Defs<'_>, id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.key(&defs.item_key(id)))
            .ignore()
            .srem(self.key(&defs.set_key()), id)
            .ignore();
        self.run(&pipe).await
    }

    async fn load_defs(&self, defs: Defs<'_>) -> Result<Vec<(String, Value)>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.smembers(self.key(&defs.set_key()));
        let (mut ids,): (Vec<String>,) = self.run(&pipe).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(&defs.item_key(id))).collect();
        let mut pipe = redis::pipe();
        pipe.mget(&keys);
        let (texts,): (Vec<Option<String>>,) = self.run(&pipe).await?;
        let mut out = Vec::new();
        for ((id, key), text) in ids.into_iter().zip(&keys).zip(texts) {
            if let Some(text) = text {
                out.push((
                    id,
                    serde_json::from_str(&text).map_err(|e| corrupt(key, e))?,
                ));
            }
        }
        Ok(out)
    }

    async fn load_def(&self, defs: Defs<'_>, id: &str) -> Result<Option<Value>, StoreError> {
        let key = self.key(&defs.item_key(id));
        let mut pipe = redis::pipe();
        pipe.sismember(self.key(&defs.set_key()), id).get(&key);
        let (member, text): (bool, Option<String>) = self.run(&pipe).await?;
        match text {
            Some(text) if member => Ok(Some(
                serde_json::from_str(&text).map_err(|e| corrupt(&key, e))?,
            )),
            _ => Ok(None),
        }
    }

    async fn save_inbound(&self, cid: &str, msg: &Message) -> Result<(), StoreError> {
        let key = self.key(&keys::inbound(cid, &msg.message_id));
        let text = serde_json::to_string(msg).map_err(|e| corrupt(&key, e))?;
        self.hset_ttl(&key, "message", text, Some(self.ttls.inbound))
            .await
    }

    async fn load_inbound(&self, cid: &str, mid: &str) -> Result<Option<Message>, StoreError> {
        let key = self.key(&keys::inbound(cid, mid));
        match self.hget_ttl(&key, "message", self.ttls.inbound).await? {
            Some(text) => Message::from_slice(text.as_bytes())
                .map(Some)
                .map_err(|e| corrupt(&key, e)),
            None => Ok(None),
        }
    }

    async fn save_outbound(&self, cid: &str, mid: &str, record: &Value) -> Result<(), StoreError> {
        let key = self.key(&keys::outbound(cid, mid));
        self.hset_ttl(
            &key,
            "message",
            record.to_string(),
            Some(self.ttls.outbound),
        )
        .await
    }

    async fn load_outbound(&self, cid: &str, mid: &str) -> Result<Option<Value>, StoreError> {
        let key = self.key(&keys::outbound(cid, mid));
        match self.hget_ttl(&key, "message", self.ttls.outbound).await? {
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| corrupt(&key, e)),
            None => Ok(None),
        }
    }

    async fn save_event(&self, cid: &str, event: &Event) -> Result<(), StoreError> {
        let key = self.key(&keys::outbound(cid, &event.user_message_id));
        let text = serde_json::to_string(event).map_err(|e| corrupt(&key, e))?;
        self.hset_ttl(&key, &event.event_id, text, Some(self.ttls.outbound))
            .await
    }

    async fn load_events(&self, cid: &str, mid: &str) -> Result<Vec<Event>, StoreError> {
        let key = self.key(&keys::outbound(cid, mid));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hgetall(&key)
            .expire(&key, self.ttls.outbound.as_secs() as i64)
            .ignore();
        let (all,): (HashMap<String, String>,) = self.run(&pipe).await?;
        all.into_iter()
            .filter(|(field, _)| field != "message")
            .map(|(_, text)| Event::from_slice(text.as_bytes()).map_err(|e| corrupt(&key, e)))
            .collect()
    }

    async fn record_event(
        &self,
        cid: &str,
        event: &Event,
    ) -> Result<Option<RecordRefs>, StoreError> {
        let key = self.key(&keys::outbound(cid, &event.user_message_id));
        let text = serde_json::to_string(event).map_err(|e| corrupt(&key, e))?;
        let ttl = self.ttls.outbound.as_secs() as i64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&key, &event.event_id, text)
            .ignore()
            .expire(&key, ttl)
            .ignore()
            .hget(&key, "message");
        let (record,): (Option<String>,) = self.run(&pipe).await?;
        match record {
            Some(t) => RecordRefs::parse(&key, &t).map(Some),
            None => Ok(None),
        }
    }

    async fn save_status(&self, status: &StatusEvent) -> Result<(), StoreError> {
        let key = self.key(&keys::status(&status.channel_id));
        let text = status.to_vumi().to_string();
        self.hset_ttl(&key, &status.component, text, None).await
    }

    async fn load_statuses(&self, cid: &str) -> Result<Vec<StatusEvent>, StoreError> {
        let key = self.key(&keys::status(cid));
        let mut pipe = redis::pipe();
        pipe.hgetall(&key);
        let (all,): (HashMap<String, String>,) = self.run(&pipe).await?;
        let mut out = super::read_statuses(&key, cid, all.iter());
        out.sort_by(|a, b| a.component.cmp(&b.component));
        Ok(out)
    }

    async fn incr_rates(&self, counts: &[RateCount], window: Duration) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let ttl = (2.0 * window.as_secs_f64()).ceil() as i64;
        let mut pipe = redis::pipe();
        for c in counts {
            let key = self.key(&keys::rate(&c.cid, &c.label, c.bucket));
            pipe.incr(&key, c.n).ignore().expire(&key, ttl).ignore();
        }
        self.run(&pipe).await
    }

    async fn rate_count(&self, cid: &str, label: &str, bucket: i64) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        pipe.get(self.key(&keys::rate(cid, label, bucket)));
        let (n,): (Option<u64>,) = self.run(&pipe).await?;
        Ok(n.unwrap_or(0))
    }

    async fn set_state(
        &self,
        cid: &str,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.set_ex(
            self.key(&keys::state(cid, key)),
            value,
            ttl.as_secs().max(1),
        )
        .ignore();
        self.run(&pipe).await
    }

    async fn get_state(&self, cid: &str, key: &str) -> Result<Option<String>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.get(self.key(&keys::state(cid, key)));
        let (v,): (Option<String>,) = self.run(&pipe).await?;
        Ok(v)
    }

    async fn delete_state(&self, cid: &str, key: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.del(self.key(&keys::state(cid, key))).ignore();
        self.run(&pipe).await
    }

    async fn save_webhook(&self, id: &str, job: &Value) -> Result<(), StoreError> {
        self.hset_ttl(&self.key(keys::WEBHOOKS), id, job.to_string(), None)
            .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.hdel(self.key(keys::WEBHOOKS), id).ignore();
        self.run(&pipe).await
    }

    async fn load_webhooks(&self) -> Result<Vec<(String, Value)>, StoreError> {
        let key = self.key(keys::WEBHOOKS);
        let mut pipe = redis::pipe();
        pipe.hgetall(&key);
        let (all,): (HashMap<String, String>,) = self.run(&pipe).await?;
        all.into_iter()
            .map(|(id, t)| {
                serde_json::from_str(&t)
                    .map(|v| (id, v))
                    .map_err(|e| corrupt(&key, e))
            })
            .collect()
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
