//! hornbill: a multi-channel text-messaging engine with a Junebug-compatible HTTP API.
//!
//! One process holds channels (connections to providers), their routers and applications as
//! supervised actix actors, joined by a bus and a store (embedded in memory by default). See
//! `DESIGN.md` in the shared folder for the architecture; `serve` is the entry point, shaped
//! so that tests start a real server on a free port.

pub mod actors;
pub mod api_schema;
pub mod bus;
pub mod cluster;
pub mod config;
pub mod defs;
pub mod http;
pub mod limits;
pub mod logs;
pub mod message;
pub mod redact;
pub mod store;
pub mod telemetry;
pub mod transports;

use actix::Actor;
use actix_web::{App, HttpServer, web};
use actors::Core;
use actors::engine::{CreateChannel, Engine, PutRouter};
use actors::webhooks::Webhooks;
use config::Settings;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::Defs;
use transports::Registry;

/// The thread the backend clients (lapin's and redis's connection tasks) run on, apart from
/// the channels' and the HTTP workers' threads.
fn backend_arbiter() -> &'static actix_rt::ArbiterHandle {
    static ARBITER: std::sync::OnceLock<actix_rt::ArbiterHandle> = std::sync::OnceLock::new();
    ARBITER.get_or_init(|| {
        let arbiter = actix_rt::Arbiter::new();
        let handle = arbiter.handle();
        // The arbiter lives as long as the process.
        std::mem::forget(arbiter);
        handle
    })
}

/// Runs `fut` on the backend thread, so the connections it opens do their I/O there.
async fn on_backend_thread<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = backend_arbiter().spawn(async move {
        let _ = tx.send(fut.await);
    });
    if !spawned {
        anyhow::bail!("the backend thread is not running");
    }
    Ok(rx.await?)
}

/// A started server: its address, and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
    pub server: actix_web::dev::Server,
    pub core: Arc<Core>,
    /// The public listener (provider callbacks), when `[public] enabled`.
    pub public_addr: Option<SocketAddr>,
    pub public_handle: Option<actix_web::dev::ServerHandle>,
}

/// Starts hornbill inside the current actix `System`: backends, engine, the channels of the
/// store and of the config file, and the HTTP API on `listener`. Await `Running::server` to
/// run until stopped.
pub async fn start(
    settings: Settings,
    registry: Registry,
    listener: std::net::TcpListener,
) -> anyhow::Result<Running> {
    let api_addr = listener.local_addr()?;
    let node_id = settings
        .cluster
        .node_id
        .clone()
        .unwrap_or_else(|| cluster::default_node_id(api_addr.port()));
    // Before any channel registers its counters (with no recorder they would count nowhere).
    telemetry::set_node(&node_id);
    telemetry::init();
    logs::keep_message_entries(settings.log.message_entries);
    limits::set_fd_reserve(settings.server.fd_reserve);
    let open_files_limit = limits::soft_limit();
    match open_files_limit {
        Some(limit)
            if !limits::leaves_reserve(0, limit, settings.server.fd_reserve.saturating_mul(2)) =>
        {
            tracing::warn!(
                limit,
                reserve = settings.server.fd_reserve,
                "The open-files limit leaves little above [server] fd_reserve: telnet channels will refuse most connections."
            );
        }
        _ => {}
    }
    if !settings.log.logging_path.is_empty() {
        let dir = std::path::Path::new(&settings.log.logging_path);
        logs::keep_files(
            dir,
            settings.log.log_rotate_size,
            settings.log.max_log_files,
        )
        .map_err(|e| anyhow::anyhow!("cannot write logs under {}: {e}", dir.display()))?;
    }
    let ttls = store::Ttls {
        inbound: Duration::from_secs(settings.store.inbound_message_ttl),
        outbound: Duration::from_secs(settings.store.outbound_message_ttl),
    };
    let wait = Duration::from_secs(30);
    let (store, memory_store): (Arc<dyn store::Store>, _) = match settings.store.kind.as_str() {
        "redis" => {
            let url = settings.store.redis_url();
            let prefix = settings.store.key_prefix.clone();
            let target = url.clone();
            let redis = on_backend_thread(async move {
                store::RedisStore::connect(&target, prefix.as_deref(), ttls, wait).await
            })
            .await?
            .map_err(|e| anyhow::anyhow!("cannot reach Redis at {}: {e}", redact::url(&url)))?;
            (Arc::new(redis), None)
        }
        _ => {
            let memory = Arc::new(store::MemoryStore::with_max_records(
                ttls,
                settings.store.max_records,
            ));
            (memory.clone(), Some(memory))
        }
    };
    let bus: Arc<dyn bus::Bus> = match settings.bus.kind.as_str() {
        "amqp" => {
            let target = settings.bus.amqp_url();
            let shown = settings.bus.amqp_url_shown();
            let name = format!("hornbill {node_id}");
            let amqp =
                on_backend_thread(
                    async move { bus::AmqpBus::connect_as(&target, &name, wait).await },
                )
                .await?
                .map_err(|e| anyhow::anyhow!("cannot reach RabbitMQ at {shown}: {e}"))?;
            Arc::new(amqp)
        }
        _ => Arc::new(bus::MemoryBus::new(settings.bus.max_queue_length)),
    };
    // A cluster needs what every node shares: the Redis store and the RabbitMQ bus.
    let coordinator: Arc<dyn cluster::Coordinator> =
        if settings.store.kind == "redis" && settings.bus.kind == "amqp" {
            let url = settings.store.redis_url();
            let prefix = settings.store.key_prefix.clone();
            let target = url.clone();
            let redis = on_backend_thread(async move {
                cluster::RedisCoordinator::connect(&target, prefix.as_deref(), wait).await
            })
            .await?
            .map_err(|e| anyhow::anyhow!("cannot reach Redis at {}: {e}", redact::url(&url)))?;
            Arc::new(redis)
        } else {
            Arc::new(cluster::Local::default())
        };
    let advertise = settings.cluster.advertise_url.clone().unwrap_or_else(|| {
        if api_addr.ip().is_unspecified() {
            let host = cluster::default_node_id(api_addr.port());
            format!("http://{host}")
        } else {
            format!("http://{api_addr}")
        }
    });
    let membership = Arc::new(actors::cluster::Membership::new(
        node_id,
        advertise.trim_end_matches('/').to_string(),
        coordinator,
        Duration::from_secs_f64(settings.cluster.lease_ttl),
    ));
    // Webhooks are posted from their own thread: on a busy server they are the largest share
    // of the work that follows a message, and the channels' thread has the rest to do.
    let webhooks_pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let webhooks = {
        let (settings, store) = (settings.webhooks.clone(), store.clone());
        let pending = webhooks_pending.clone();
        let node = membership.node_id.clone();
        let arbiter = actix_rt::Arbiter::new();
        let addr = Webhooks::start_in_arbiter(&arbiter.handle(), move |_| {
            Webhooks::new(settings, store, pending, node)
        });
        // Like the backend arbiter, it lives as long as the process.
        std::mem::forget(arbiter);
        addr
    };
    // The public listener is bound first: its address is every channel's callback base.
    let public_listener = if settings.public.enabled {
        let bind = format!("{}:{}", settings.public.host, settings.public.port);
        Some(
            std::net::TcpListener::bind(&bind)
                .map_err(|e| anyhow::anyhow!("cannot listen on {bind} (public listener): {e}"))?,
        )
    } else {
        None
    };
    let public_addr = match &public_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let public_base = public_addr.map(|a| {
        settings
            .public
            .base_url
            .clone()
            .map(|b| b.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{a}"))
    });
    let core = Arc::new(Core {
        membership,
        public_base,
        store,
        memory_store,
        bus,
        registry,
        webhooks,
        webhooks_pending,
        channels: Default::default(),
        routers: Default::default(),
        rates: Default::default(),
        settings: settings.clone(),
    });
    let engine = Engine::new(core.clone()).start();
    actix_rt::spawn(actors::cluster::run(core.clone(), engine.clone()));

    for (id, props) in core.store.load_channels().await? {
        engine
            .send(CreateChannel {
                id: Some(id),
                props,
            })
            .await??;
    }
    for entry in &settings.channels {
        let mut props = entry.clone();
        let id = props
            .as_object_mut()
            .and_then(|m| m.remove("id"))
            .and_then(|v| v.as_str().map(str::to_string));
        if let Value::Object(_) = props {
            engine.send(CreateChannel { id, props }).await??;
        }
    }

    // Routers: what the store holds, then the config file's (which cannot be changed
    // through the API, and are checked against the running channels like API ones).
    for (rid, def) in core.store.load_defs(Defs::Routers).await? {
        let destinations = core
            .store
            .load_defs(Defs::Destinations(&rid))
            .await?
            .into_iter()
            .collect();
        engine
            .send(PutRouter {
                id: Some(rid),
                def,
                destinations: Some(destinations),
                from_config: false,
            })
            .await??;
    }
    for entry in &settings.routers {
        let mut def = entry.clone();
        let Some(obj) = def.as_object_mut() else {
            continue;
        };
        let rid = obj
            .remove("id")
            .and_then(|v| v.as_str().map(str::to_string));
        let mut destinations = std::collections::BTreeMap::new();
        if let Some(Value::Array(list)) = obj.remove("destinations") {
            for mut dest in list {
                if let Some(did) = dest.get("id").and_then(Value::as_str).map(str::to_string) {
                    if let Some(d) = dest.as_object_mut() {
                        d.insert("id".into(), Value::String(did.clone()));
                    }
                    destinations.insert(did, dest);
                }
            }
        }
        let kind = def.get("type").and_then(Value::as_str).unwrap_or_default();
        let config = def.get("config").cloned().unwrap_or(Value::Null);
        actors::router::check_router(&core, rid.as_deref(), kind, &config)
            .map_err(|e| anyhow::anyhow!("[[routers]] {}: {e}", rid.as_deref().unwrap_or("?")))?;
        engine
            .send(PutRouter {
                id: rid,
                def,
                destinations: Some(destinations),
                from_config: true,
            })
            .await??;
    }

    // Webhooks saved by an earlier run (Redis store) are tried again: this node's own, and
    // those of nodes that are gone (later, the cluster loop takes on those of nodes that go).
    let live: Vec<String> = core
        .membership
        .coordinator
        .members()
        .await
        .map(|m| m.into_iter().map(|n| n.id).collect())
        .unwrap_or_default();
    actors::cluster::resume_webhooks(&core, &live, true).await;

    let state = web::Data::new(http::State {
        core: core.clone(),
        engine,
        access: http::access::Access::new(&settings.server),
    });
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Inside the guard: CORS headers and preflight answers for the origins it lets in.
            .wrap(state.access.cors())
            .wrap(actix_web::middleware::from_fn(http::access::guard))
            // Outermost, so refused requests are timed too.
            .wrap(actix_web::middleware::from_fn(http::metrics::time_requests))
            .configure(http::configure)
    })
    .listen(listener)?;
    if let Some(w) = settings.server.workers {
        server = server.workers(w.max(1));
    }
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the server has no address"))?;
    let server = server.disable_signals().shutdown_timeout(5).run();
    let public_handle = match public_listener {
        Some(listener) => {
            let state = web::Data::new(http::public::PublicState { core: core.clone() });
            let max_body = settings.public.max_body;
            // Anonymous connections: bounded, so that a flood of them leaves descriptors for
            // the management API (actix counts per worker; past it, accepting pauses).
            let workers = settings.server.workers.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
            });
            let (max_connections, per_worker) = limits::public_connections(
                settings.public.max_connections,
                open_files_limit,
                settings.server.fd_reserve,
                workers,
            );
            tracing::info!(
                max_connections,
                "The public listener holds at most this many connections at once."
            );
            let public = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .configure(|cfg| http::public::configure(cfg, max_body))
            })
            .max_connections(per_worker)
            .workers(workers.max(1))
            .listen(listener)?;
            let public = public.disable_signals().shutdown_timeout(5).run();
            let handle = public.handle();
            actix_rt::spawn(async move {
                if let Err(e) = public.await {
                    tracing::error!(error = %e, "The public listener stopped.");
                }
            });
            Some(handle)
        }
        None => None,
    };
    Ok(Running {
        addr,
        handle: server.handle(),
        server,
        core,
        public_addr,
        public_handle,
    })
}
