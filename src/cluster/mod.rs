//! Several hornbill nodes on one Redis and one RabbitMQ: who is alive, who holds which
//! channel, and word of changes. No consensus of our own: Redis does it.
//!
//! - **Membership**: each node writes its [`NodeInfo`] under a key that expires after the
//!   lease TTL, and renews it every quarter of it; a node whose key has expired is gone.
//! - **Ownership by lease**: a channel's transport (its bind or port, its consumer of
//!   `<cid>.outbound`) runs only on the node holding the channel's lease: a Redis key set
//!   only if absent, with the TTL, renewed by its holder (compare and extend) well inside
//!   it. Each grant comes with a fencing token (a per-channel counter): the holder renews
//!   and releases only with its token, and stops using the lease as soon as its local
//!   deadline passes, even before Redis says so (a node paused past the TTL stops on waking,
//!   before it sends anything).
//! - **Placement**: rendezvous hashing of channel ids over the live nodes, evened out to
//!   within one channel per node ([`assign`]): every node computes the same owner from the
//!   same membership, and a join or a leave moves few channels besides those that must.
//! - **Notices**: a change made through one node's API (create, modify, delete, restart) is
//!   published on a Redis channel; every node reloads what changed from the store at once.
//!
//! The embedded default (in-memory store) is a cluster of one: [`Local`].

pub mod local;
pub mod redis;

pub use local::Local;
pub use redis::RedisCoordinator;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a node says of itself in its heartbeat.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    pub id: String,
    /// Where its management API answers (for the other nodes and operators).
    pub url: String,
    /// Seconds since the epoch: when it started, and its last heartbeat.
    pub started: f64,
    pub last_seen: f64,
    /// The channels it holds the lease of, and the routers of those channels.
    pub channels: Vec<String>,
    pub routers: Vec<String>,
}

/// A grant of a channel's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(pub u64);

/// Word that something changed, for every node: `from` is the node it happened on (which
/// has applied it already and skips its own notices).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Notice {
    pub from: String,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A channel was created, modified or deleted: reload it from the store.
    Channel { id: String },
    /// Restart a channel's transport (on its holder).
    Restart { id: String },
    /// A router or its destinations changed: reload it from the store.
    Router { id: String },
    /// A node left (graceful stop): look again at who holds what.
    Left,
    /// (Local only, never published.) Notices may have been missed (the subscription was
    /// just made, or made again): compare everything with the store.
    Resync,
}

#[derive(Debug, thiserror::Error)]
#[error("cluster backend: {0}")]
pub struct CoordError(pub String);

/// Membership, leases and notices (Redis, or one node in memory).
#[async_trait]
pub trait Coordinator: Send + Sync {
    /// `redis` or `local`.
    fn kind(&self) -> &'static str;
    /// Writes this node's heartbeat, alive for `ttl_ms`.
    async fn heartbeat(&self, info: &NodeInfo, ttl_ms: u64) -> Result<(), CoordError>;
    /// Takes this node out of the membership at once (a graceful stop).
    async fn leave(&self, node: &str) -> Result<(), CoordError>;
    /// The live nodes, by id.
    async fn members(&self) -> Result<Vec<NodeInfo>, CoordError>;
    /// The lease of `resource` for `node` if nobody holds it.
    async fn acquire(
        &self,
        resource: &str,
        node: &str,
        ttl_ms: u64,
    ) -> Result<Option<Token>, CoordError>;
    /// Extends a lease still held with `token`; `false` when it was lost.
    async fn renew(
        &self,
        resource: &str,
        node: &str,
        token: Token,
        ttl_ms: u64,
    ) -> Result<bool, CoordError>;
    /// Gives a lease up (only if still held with `token`).
    async fn release(&self, resource: &str, node: &str, token: Token) -> Result<(), CoordError>;
    /// Who holds a lease, if anyone: (node, token).
    async fn holder(&self, resource: &str) -> Result<Option<(String, Token)>, CoordError>;
    /// Tells every node (this one included).
    async fn publish(&self, notice: &Notice) -> Result<(), CoordError>;
    /// Notices as they come, until the receiver is dropped (resubscribing after a lost
    /// connection by itself). Answers once subscribed (or after a few seconds of trying);
    /// after each (re)subscription a `Change::Resync` comes first, since notices published
    /// before it were missed.
    async fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Notice>;
}

/// Which node holds each of `resources`: rendezvous hashing, then evened out so that no
/// node holds more than one more than another. Deterministic (every node computes the same
/// from the same membership and channels, whatever the order given) and stable: a channel
/// moves only when its node leaves, a node joins and takes its share, or evening out needs
/// it (the channels moved are those that weigh most on their new node).
///
/// `running` (resource -> the node running it now, from the heartbeats) keeps what runs
/// where it runs: a channel running on a live node starts there, and evening out moves a
/// channel not yet running first, so creating a channel does not make a running one change
/// nodes. Nodes that read slightly different heartbeats may disagree for a moment; the
/// leases keep that from running anything twice, and the next heartbeats settle it.
pub fn assign(
    nodes: &[String],
    resources: &[String],
    running: &std::collections::HashMap<String, String>,
) -> std::collections::HashMap<String, String> {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    let mut out: HashMap<String, String> = HashMap::new();
    if nodes.is_empty() {
        return out;
    }
    let nodes: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
    let resources: BTreeSet<&str> = resources.iter().map(String::as_str).collect();
    let mut held: BTreeMap<&str, BTreeSet<&str>> =
        nodes.iter().map(|n| (*n, BTreeSet::new())).collect();
    for r in &resources {
        // Where it runs now, if that node is alive; else its rendezvous node.
        let owner = match running.get(*r).map(String::as_str) {
            Some(n) if nodes.contains(n) => nodes.get(n).expect("a live node"),
            _ => nodes
                .iter()
                .max_by_key(|n| (weight(n, r), **n))
                .expect("nodes is not empty"),
        };
        held.get_mut(owner).expect("a node").insert(r);
    }
    // Quotas: everyone the floor; the remainder to the nodes holding most already (ties by
    // id), which moves the fewest channels.
    let (k, n) = (nodes.len(), resources.len());
    let mut by_load: Vec<&str> = nodes.iter().copied().collect();
    by_load.sort_by(|a, b| held[b].len().cmp(&held[a].len()).then(a.cmp(b)));
    let quota: HashMap<&str, usize> = by_load
        .iter()
        .enumerate()
        .map(|(i, node)| (*node, n / k + usize::from(i < n % k)))
        .collect();
    loop {
        let over: Vec<&str> = by_load
            .iter()
            .copied()
            .filter(|node| held[node].len() > quota[node])
            .collect();
        let under: Vec<&str> = by_load
            .iter()
            .copied()
            .filter(|node| held[node].len() < quota[node])
            .collect();
        let (Some(from), false) = (over.first().copied(), under.is_empty()) else {
            break;
        };
        // A channel not running there yet first, then the move that weighs most on its new
        // node.
        let idle = |r: &str| running.get(r).map(String::as_str) != Some(from);
        let (r, to) = held[from]
            .iter()
            .flat_map(|r| under.iter().map(move |u| (*r, *u)))
            .max_by_key(|(r, u)| (idle(r), weight(u, r), *r, *u))
            .expect("an over-quota node holds something");
        held.get_mut(from).expect("a node").remove(r);
        held.get_mut(to).expect("a node").insert(r);
    }
    for (node, rs) in held {
        for r in rs {
            out.insert(r.to_string(), node.to_string());
        }
    }
    out
}

/// A stable 64-bit hash of (node, resource): FNV-1a then a finaliser (splitmix64), so nodes
/// named alike (`node-1`, `node-2`) still weigh independently.
fn weight(node: &str, resource: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0xff]).chain(resource.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// This node's id when `[cluster] node_id` is not set: the host name and the API port.
pub fn default_node_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "hornbill".into());
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_even_deterministic_and_stable() {
        for k in 1..=5 {
            for n in [0, 1, 7, 9, 30, 101] {
                let nodes: Vec<String> = (0..k).map(|i| format!("host:{}", 8000 + i)).collect();
                let ids: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
                let a = assign(&nodes, &ids, &Default::default());
                assert_eq!(a.len(), n);
                let mut counts: std::collections::HashMap<&str, usize> =
                    nodes.iter().map(|n| (n.as_str(), 0)).collect();
                for node in a.values() {
                    *counts.get_mut(node.as_str()).unwrap() += 1;
                }
                let (min, max) = (counts.values().min(), counts.values().max());
                assert!(max.unwrap() - min.unwrap() <= 1, "k={k} n={n}: {counts:?}");
                // The same whatever the order given.
                let mut rev_nodes = nodes.clone();
                rev_nodes.reverse();
                let mut rev_ids = ids.clone();
                rev_ids.reverse();
                assert_eq!(assign(&rev_nodes, &rev_ids, &Default::default()), a);
            }
        }
        // One node of three leaves: most of the others' channels stay where they are.
        let three: Vec<String> = (1..=3).map(|i| format!("node-{i}")).collect();
        let ids: Vec<String> = (0..300).map(|i| format!("channel-{i}")).collect();
        let before = assign(&three, &ids, &Default::default());
        let after = assign(&three[..2], &ids, &Default::default());
        let stayed = ids
            .iter()
            .filter(|c| before[*c] != "node-3" && after[*c] == before[*c])
            .count();
        let kept = ids.iter().filter(|c| before[*c] != "node-3").count();
        assert!(stayed * 10 >= kept * 9, "{stayed} of {kept} stayed");
    }

    #[test]
    fn a_new_channel_moves_before_a_running_one() {
        let two: Vec<String> = vec!["node-1".into(), "node-2".into()];
        // Channels one by one, each running where it was placed: no running one moves.
        let mut running = std::collections::HashMap::new();
        let mut ids: Vec<String> = vec![];
        for i in 0..40 {
            ids.push(format!("channel-{i}"));
            let placed = assign(&two, &ids, &running);
            for (c, n) in &running {
                assert_eq!(&placed[c], n, "{c} moved when channel-{i} was added");
            }
            running.insert(ids[i].clone(), placed[&ids[i]].clone());
        }
    }
}
