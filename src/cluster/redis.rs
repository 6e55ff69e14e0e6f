//! Membership, leases and notices in Redis (the store's Redis, under its key prefix):
//!
//! - `hornbill:cluster:node:{id}`: the node's heartbeat (JSON [`NodeInfo`]), expiring after
//!   the lease TTL; `hornbill:cluster:nodes`, a sorted set of node ids by last heartbeat, to
//!   list them without a key scan.
//! - `hornbill:cluster:lease:{resource}`: `{token}|{node}`, set only if absent, with the
//!   TTL; extended and deleted by Lua scripts that first compare the value, so only the
//!   holder with its token can. `hornbill:cluster:fence:{resource}` counts the grants (the
//!   fencing tokens).
//! - `hornbill:cluster:notices`: a pub/sub channel of JSON [`Notice`]s.

use super::{CoordError, Coordinator, NodeInfo, Notice, Token};
use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::time::Duration;
use tokio::sync::mpsc;

const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], t .. '|' .. ARGV[1], 'PX', ARGV[2])
return t
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// Heartbeats older than this are dropped from the node index (the node key itself expired
/// long before).
const FORGET_AFTER_MS: i64 = 3_600_000;

pub struct RedisCoordinator {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

fn err(e: redis::RedisError) -> CoordError {
    CoordError(e.to_string())
}

fn now_ms() -> i64 {
    (crate::message::now_secs() * 1000.0) as i64
}

impl RedisCoordinator {
    /// Connects (waiting up to `wait`); `key_prefix` as the store's.
    pub async fn connect(
        url: &str,
        key_prefix: Option<&str>,
        wait: Duration,
    ) -> Result<RedisCoordinator, CoordError> {
        let client = redis::Client::open(url).map_err(err)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let deadline = tokio::time::Instant::now() + wait;
        let conn = loop {
            match client
                .get_connection_manager_with_config(config.clone())
                .await
            {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(err(e)),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        Ok(RedisCoordinator {
            client,
            conn,
            prefix: key_prefix.map(|p| format!("{p}:")).unwrap_or_default(),
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}hornbill:cluster:{rest}", self.prefix)
    }

    fn value(node: &str, token: Token) -> String {
        format!("{}|{node}", token.0)
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn heartbeat(&self, info: &NodeInfo, ttl_ms: u64) -> Result<(), CoordError> {
        let text = serde_json::to_string(info).map_err(|e| CoordError(e.to_string()))?;
        let now = now_ms();
        let mut conn = self.conn.clone();
        redis::pipe()
            .set_options(
                self.key(&format!("node:{}", info.id)),
                text,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms)),
            )
            .ignore()
            .zadd(self.key("nodes"), &info.id, now)
            .ignore()
            .zrembyscore(self.key("nodes"), "-inf", now - FORGET_AFTER_MS)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
    }

    async fn leave(&self, node: &str) -> Result<(), CoordError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .del(self.key(&format!("node:{node}")))
            .ignore()
            .zrem(self.key("nodes"), node)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
    }

    async fn members(&self) -> Result<Vec<NodeInfo>, CoordError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.zrange(self.key("nodes"), 0, -1).await.map_err(err)?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let keys: Vec<String> = ids.iter().map(|i| self.key(&format!("node:{i}"))).collect();
        let found: Vec<Option<String>> = conn.mget(&keys).await.map_err(err)?;
        let mut nodes: Vec<NodeInfo> = found
            .into_iter()
            .flatten()
            .filter_map(|t| serde_json::from_str(&t).ok())
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    async fn acquire(
        &self,
        resource: &str,
        node: &str,
        ttl_ms: u64,
    ) -> Result<Option<Token>, CoordError> {
        let mut conn = self.conn.clone();
        let t: u64 = redis::Script::new(ACQUIRE)
            .key(self.key(&format!("lease:{resource}")))
            .key(self.key(&format!("fence:{resource}")))
            .arg(node)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        Ok((t > 0).then_some(Token(t)))
    }

    async fn renew(
        &self,
        resource: &str,
        node: &str,
        token: Token,
        ttl_ms: u64,
    ) -> Result<bool, CoordError> {
        let mut conn = self.conn.clone();
        let kept: u64 = redis::Script::new(RENEW)
            .key(self.key(&format!("lease:{resource}")))
            .arg(Self::value(node, token))
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(kept == 1)
    }

    async fn release(&self, resource: &str, node: &str, token: Token) -> Result<(), CoordError> {
        let mut conn = self.conn.clone();
        let _: u64 = redis::Script::new(RELEASE)
            .key(self.key(&format!("lease:{resource}")))
            .arg(Self::value(node, token))
            .invoke_async(&mut conn)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn holder(&self, resource: &str) -> Result<Option<(String, Token)>, CoordError> {
        let mut conn = self.conn.clone();
        let v: Option<String> = conn
            .get(self.key(&format!("lease:{resource}")))
            .await
            .map_err(err)?;
        Ok(v.and_then(|v| {
            let (t, node) = v.split_once('|')?;
            Some((node.to_string(), Token(t.parse().ok()?)))
        }))
    }

    async fn publish(&self, notice: &Notice) -> Result<(), CoordError> {
        let text = serde_json::to_string(notice).map_err(|e| CoordError(e.to_string()))?;
        let mut conn = self.conn.clone();
        conn.publish::<_, _, ()>(self.key("notices"), text)
            .await
            .map_err(err)
    }

    async fn subscribe(&self) -> mpsc::UnboundedReceiver<Notice> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.client.clone();
        let channel = self.key("notices");
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
        let mut first = Some(first_tx);
        actix_rt::spawn(async move {
            use futures::StreamExt;
            loop {
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match subscribed.await {
                    Ok(pubsub) => {
                        // What was published before now was missed: look again.
                        let resync = Notice {
                            from: String::new(),
                            change: super::Change::Resync,
                        };
                        if tx.send(resync).is_err() {
                            return;
                        }
                        if let Some(f) = first.take() {
                            let _ = f.send(());
                        }
                        let mut messages = pubsub.into_on_message();
                        while let Some(m) = messages.next().await {
                            let Ok(text) = m.get_payload::<String>() else {
                                continue;
                            };
                            match serde_json::from_str::<Notice>(&text) {
                                Ok(n) => {
                                    if tx.send(n).is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "Cluster notice not understood; ignored.")
                                }
                            }
                        }
                        tracing::warn!(
                            "Cluster notices: the Redis subscription ended; subscribing again."
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Cluster notices: cannot subscribe; trying again in 1 s.");
                    }
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        // The first subscription, before this node takes part (a notice published while
        // it was being made would otherwise be missed until the resync).
        let _ = tokio::time::timeout(Duration::from_secs(5), first_rx).await;
        rx
    }
}
