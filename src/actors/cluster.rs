//! This node's part in the cluster (see `crate::cluster` for the rules): a loop that sends
//! the heartbeat, works out which channels this node should hold (`cluster::assign` over the
//! live nodes), takes and renews their leases, and has the engine start a channel's transport
//! once its lease is granted and stop it when the lease must go (another node should hold
//! it: stopped gracefully, its window drained, then released) or is lost (renewal refused,
//! or its local deadline passed: stopped at once). Notices from other nodes have the engine
//! reload what changed, and wake the loop so a new channel starts within a second.
//!
//! The lease's local deadline is `ChannelShared::lease`: the channel hands nothing to its
//! transport once it has passed, whatever this loop is doing.

use super::Core;
use super::engine::{Activate, Deactivate, Engine, Reload, ReloadRouter, RestartChannel};
use crate::cluster::{Change, Coordinator, NodeInfo, Notice, Token, assign};
use actix::Addr;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a node compares its channels with the store's (notices do it at once; this
/// catches one that was missed).
const RESYNC: Duration = Duration::from_secs(30);

/// Reloads the channels whose definition in the store is new or differs from this node's.
/// A channel this node knows that the store does not is kept, with a warning: a delete
/// comes with its notice, while a Redis that restarted empty (no persistence) would
/// otherwise stop every channel of the cluster.
async fn resync(core: &Core, engine: &Addr<Engine>) {
    let Ok(stored) = core.store.load_channels().await else {
        return;
    };
    let stored: HashMap<String, serde_json::Value> = stored.into_iter().collect();
    let differ: Vec<String> = stored
        .iter()
        .filter(|(id, props)| core.channel(id).is_none_or(|c| *c.props.read() != **props))
        .map(|(id, _)| id.clone())
        .collect();
    let missing = core
        .channels
        .read()
        .keys()
        .filter(|id| !stored.contains_key(*id))
        .count();
    if missing > 0 {
        tracing::warn!(
            missing,
            "Channels running here are not in the store (did Redis lose its data?); kept."
        );
    }
    for id in differ {
        tracing::info!(channel = %id, "Channel reloaded: it changed without a notice reaching this node.");
        let _ = engine.send(Reload(id)).await;
    }
}

/// A lease this node holds.
struct Held {
    token: Token,
    /// When it was last granted or extended (before the call was made).
    renewed: Instant,
}

/// This node in the cluster: its id, its address, and its coordinator.
pub struct Membership {
    pub node_id: String,
    pub url: String,
    pub started: f64,
    pub coordinator: Arc<dyn Coordinator>,
    /// How long a lease or a heartbeat lasts without renewal.
    pub ttl: Duration,
    /// Wakes the loop (a channel was created here, a notice came).
    pub wake: tokio::sync::Notify,
    /// Set once this node is leaving: it takes no lease any more.
    pub leaving: std::sync::atomic::AtomicBool,
    /// The loop's last view of the live nodes.
    pub members: parking_lot::RwLock<Vec<NodeInfo>>,
    /// Set once the loop has ended (after leaving).
    done: tokio::sync::watch::Sender<bool>,
}

impl Membership {
    pub fn new(
        node_id: String,
        url: String,
        coordinator: Arc<dyn Coordinator>,
        ttl: Duration,
    ) -> Membership {
        Membership {
            node_id,
            url,
            started: crate::message::now_secs(),
            coordinator,
            ttl,
            wake: tokio::sync::Notify::new(),
            leaving: Default::default(),
            members: Default::default(),
            done: tokio::sync::watch::channel(false).0,
        }
    }

    /// Hands every channel over and leaves the cluster; waits up to `grace` for it.
    pub async fn leave(&self, grace: Duration) {
        self.leaving
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
        let mut done = self.done.subscribe();
        if tokio::time::timeout(grace, done.wait_for(|d| *d))
            .await
            .is_err()
        {
            tracing::warn!(
                "Cluster: the channels were not all handed over within [cluster] grace."
            );
        }
    }

    /// How long this node may act on a lease after it was last granted or extended: the TTL
    /// less a fifth (Redis expires the key at the TTL; clocks and pauses get the margin).
    pub fn validity(&self) -> Duration {
        if self.coordinator.kind() == "local" {
            // A cluster of one: nobody else can take it.
            return Duration::from_secs(10 * 365 * 86_400);
        }
        self.ttl.mul_f64(0.8)
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }
}

/// Runs this node's cluster loop until the process ends.
pub async fn run(core: Arc<Core>, engine: Addr<Engine>) {
    let m = core.membership.clone();
    let mut notices = m.coordinator.subscribe().await;
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut last_heartbeat: Option<Instant> = None;
    let mut reported: Vec<String> = vec![];
    let mut known: Option<Vec<String>> = None;
    let mut resynced = Instant::now();
    let period = (m.ttl / 4).max(Duration::from_millis(100));
    loop {
        let live = tick(
            &core,
            &engine,
            &mut held,
            &mut last_heartbeat,
            &mut reported,
            period,
        )
        .await;
        // Work a node left behind (saved webhooks): at start, and when a node is gone.
        if let Some(live) = live {
            let departed = known
                .as_ref()
                .is_some_and(|k| k.iter().any(|n| !live.contains(n)));
            if departed {
                resume_webhooks(&core, &live, false).await;
            }
            known = Some(live);
        }
        // Notices are not stored: one missed (a node cut off from Redis for a moment) is
        // caught up here.
        if resynced.elapsed() >= RESYNC {
            resynced = Instant::now();
            resync(&core, &engine).await;
        }
        if m.leaving.load(std::sync::atomic::Ordering::SeqCst) {
            hand_over_all(&core, &engine, &mut held).await;
            m.done.send_replace(true);
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(period.min(Duration::from_millis(500))) => {}
            () = m.wake.notified() => {}
            notice = notices.recv() => if let Some(n) = notice {
                apply(&core, &engine, n).await;
                // Others that came with it.
                while let Ok(n) = notices.try_recv() {
                    apply(&core, &engine, n).await;
                }
            },
        }
    }
}

async fn apply(core: &Core, engine: &Addr<Engine>, notice: Notice) {
    if notice.from == core.membership.node_id {
        return;
    }
    match notice.change {
        Change::Channel { id } => {
            let _ = engine.send(Reload(id)).await;
        }
        Change::Restart { id } => {
            if core.channel(&id).is_some_and(|c| c.is_active()) {
                let _ = engine.send(RestartChannel(id)).await;
            }
        }
        Change::Router { id } => {
            let _ = engine.send(ReloadRouter(id)).await;
        }
        Change::Left => {}
        Change::Resync => resync(core, engine).await,
    }
}

async fn tick(
    core: &Core,
    engine: &Addr<Engine>,
    held: &mut HashMap<String, Held>,
    last_heartbeat: &mut Option<Instant>,
    reported: &mut Vec<String>,
    period: Duration,
) -> Option<Vec<String>> {
    let m = &core.membership;
    let me = m.node_id.as_str();
    let leaving = m.leaving.load(std::sync::atomic::Ordering::SeqCst);
    heartbeat(core, held, last_heartbeat, reported, period, leaving).await;
    let members = match m.coordinator.members().await {
        Ok(members) => {
            *m.members.write() = members.clone();
            Some(members)
        }
        Err(e) => {
            tracing::warn!(error = %e, "Cluster members not read; holding what is held.");
            None
        }
    };
    let mut live: Vec<String> = members
        .iter()
        .flatten()
        .map(|n| n.id.clone())
        .filter(|id| !(leaving && id == me))
        .collect();
    if !leaving && !live.iter().any(|n| n == me) && last_heartbeat.is_some() {
        // Our own heartbeat was written: count on it even if the read raced it.
        live.push(me.to_string());
    }
    let channels: Vec<String> = core.channels.read().keys().cloned().collect();
    let running: HashMap<String, String> = members
        .iter()
        .flatten()
        .flat_map(|n| n.channels.iter().map(move |c| (c.clone(), n.id.clone())))
        .collect();
    let placed = assign(&live, &channels, &running);
    for cid in &channels {
        let should_hold = members.is_some() && placed.get(cid).map(String::as_str) == Some(me);
        match held.get(cid) {
            Some(h) if h.renewed.elapsed() >= m.validity() => {
                // Paused or cut off past the lease: whoever holds it now, not us.
                lost(
                    core,
                    engine,
                    held,
                    cid,
                    "its lease expired before it was renewed",
                )
                .await;
            }
            Some(_) if !should_hold && members.is_some() => {
                // Another node should hold it: drain, then let go.
                let _ = engine
                    .send(Deactivate {
                        id: cid.clone(),
                        graceful: true,
                    })
                    .await;
                if let Some(h) = held.remove(cid) {
                    let _ = m.coordinator.release(cid, me, h.token).await;
                    if let Some(c) = core.channel(cid) {
                        c.log.info(None, format!("Handed over by node {me}"));
                    }
                }
            }
            Some(h) if h.renewed.elapsed() >= period => {
                let token = h.token;
                let asked = Instant::now();
                match m.coordinator.renew(cid, me, token, m.ttl_ms()).await {
                    Ok(true) => {
                        if let Some(h) = held.get_mut(cid) {
                            h.renewed = asked;
                        }
                        if let Some(c) = core.channel(cid) {
                            c.set_lease(token.0, asked + m.validity());
                        }
                    }
                    Ok(false) => {
                        lost(core, engine, held, cid, "another node holds its lease").await;
                    }
                    Err(e) => {
                        // Kept until its deadline: Redis may be back before then.
                        tracing::warn!(channel = %cid, error = %e, "Lease not renewed.");
                    }
                }
            }
            Some(_) => {}
            None if should_hold && !leaving => {
                let asked = Instant::now();
                match m.coordinator.acquire(cid, me, m.ttl_ms()).await {
                    Ok(Some(token)) => {
                        held.insert(
                            cid.clone(),
                            Held {
                                token,
                                renewed: asked,
                            },
                        );
                        if let Some(c) = core.channel(cid) {
                            c.set_lease(token.0, asked + m.validity());
                            c.log
                                .info(None, format!("Held by node {me} (lease {})", token.0));
                        }
                        let _ = engine.send(Activate(cid.clone())).await;
                    }
                    Ok(None) => {} // still held elsewhere: it is let go, or it expires
                    Err(e) => tracing::warn!(channel = %cid, error = %e, "Lease not taken."),
                }
            }
            None => {}
        }
    }
    // Deleted channels: their leases go.
    let gone: Vec<String> = held
        .keys()
        .filter(|cid| core.channel(cid).is_none())
        .cloned()
        .collect();
    for cid in gone {
        if let Some(h) = held.remove(&cid) {
            let _ = m.coordinator.release(&cid, me, h.token).await;
        }
    }
    members.map(|_| live)
}

/// Writes this node's heartbeat (what it holds) every `period`, and at once when that
/// changed, so `GET /cluster` follows a move within a loop.
async fn heartbeat(
    core: &Core,
    held: &HashMap<String, Held>,
    last_heartbeat: &mut Option<Instant>,
    reported: &mut Vec<String>,
    period: Duration,
    leaving: bool,
) {
    let m = &core.membership;
    let mut channels: Vec<String> = held.keys().cloned().collect();
    channels.sort();
    let due = last_heartbeat.is_none_or(|t| t.elapsed() >= period) || channels != *reported;
    if leaving || !due {
        return;
    }
    let routers = core
        .routers
        .read()
        .values()
        .filter(|r| held.contains_key(&r.channel()))
        .map(|r| r.id.clone())
        .collect();
    let info = NodeInfo {
        id: m.node_id.clone(),
        url: m.url.clone(),
        started: m.started,
        last_seen: crate::message::now_secs(),
        channels: channels.clone(),
        routers,
    };
    match m.coordinator.heartbeat(&info, m.ttl_ms()).await {
        Ok(()) => {
            *last_heartbeat = Some(Instant::now());
            *reported = channels;
        }
        Err(e) => tracing::warn!(error = %e, "Cluster heartbeat not written."),
    }
}

/// A lease this node can no longer act on: the transport stops at once.
async fn lost(
    core: &Core,
    engine: &Addr<Engine>,
    held: &mut HashMap<String, Held>,
    cid: &str,
    why: &str,
) {
    held.remove(cid);
    if let Some(c) = core.channel(cid) {
        c.clear_lease();
        c.log.warn(
            None,
            format!(
                "Transport stopped on node {}: {why}",
                core.membership.node_id
            ),
        );
    }
    let _ = engine
        .send(Deactivate {
            id: cid.to_string(),
            graceful: false,
        })
        .await;
}

/// A graceful stop: every channel drained and let go, then this node leaves the membership
/// and says so, so the others take the channels over at once.
async fn hand_over_all(core: &Core, engine: &Addr<Engine>, held: &mut HashMap<String, Held>) {
    let m = &core.membership;
    let stops = held.keys().map(|cid| {
        engine.send(Deactivate {
            id: cid.clone(),
            graceful: true,
        })
    });
    futures::future::join_all(stops).await;
    let _ = m.coordinator.leave(&m.node_id).await;
    for (cid, h) in held.drain() {
        let _ = m.coordinator.release(&cid, &m.node_id, h.token).await;
    }
    let _ = m
        .coordinator
        .publish(&Notice {
            from: m.node_id.clone(),
            change: Change::Left,
        })
        .await;
}

/// Saved webhook deliveries (Redis store) taken on by this node: at start (`own_too`) its
/// own (saved by its earlier run), and, at start and whenever a node leaves, those of
/// nodes no longer alive (and those that name no node: saved before clusters). Each dead
/// node's are claimed under a lease, then read again, so two nodes never both take one.
/// Answers how many were resumed.
pub async fn resume_webhooks(core: &Core, live: &[String], own_too: bool) -> usize {
    let m = &core.membership;
    let me = m.node_id.as_str();
    if core.memory_store.is_some() {
        // Nothing saved outlives the process.
        return 0;
    }
    let owner = |v: &serde_json::Value| {
        v.get("node")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let saved = match core.store.load_webhooks().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "Saved webhooks not read; tried again when a node leaves.");
            return 0;
        }
    };
    let mut take: Vec<(String, serde_json::Value)> = vec![];
    let mut orphans = std::collections::BTreeSet::new();
    for (id, v) in saved {
        let node = owner(&v);
        if node == me {
            if own_too {
                take.push((id, v));
            }
        } else if !live.contains(&node) {
            orphans.insert(node);
        }
    }
    for node in orphans {
        let resource = format!("webhooks-of:{node}");
        let Ok(Some(token)) = m.coordinator.acquire(&resource, me, m.ttl_ms()).await else {
            continue;
        };
        // Read again under the lease: another node may have taken them meanwhile.
        if let Ok(saved) = core.store.load_webhooks().await {
            for (id, mut v) in saved.into_iter().filter(|(_, v)| owner(v) == node) {
                v["node"] = serde_json::Value::String(me.to_string());
                if core.store.save_webhook(&id, &v).await.is_ok() {
                    take.push((id, v));
                }
            }
        }
        let _ = m.coordinator.release(&resource, me, token).await;
        tracing::info!(node = %node, "Took on the saved webhook deliveries of a node that is gone.");
    }
    let resumed = super::webhooks::saved_jobs(take, |cid| {
        core.channel(cid)
            .map(|c| c.log.clone())
            .unwrap_or_else(|| crate::logs::ChannelLog::new(cid, 10))
    });
    let count = resumed.len();
    if count > 0 {
        tracing::info!(count, "Resuming saved webhook deliveries.");
    }
    for job in resumed {
        core.webhooks.do_send(job);
    }
    count
}

/// Tells the other nodes (and wakes this node's loop).
pub async fn tell(core: &Core, change: Change) {
    let m = &core.membership;
    m.wake.notify_one();
    let notice = Notice {
        from: m.node_id.clone(),
        change,
    };
    if let Err(e) = m.coordinator.publish(&notice).await {
        tracing::warn!(error = %e, "Cluster notice not published; the other nodes see the change on their next look.");
    }
}
