//! The engine's routers: create, replace, delete, reload from the store; and their
//! destinations.

use super::*;
use parking_lot::RwLock;

/// Create or replace a router: `def` is `{"type", "config", "label"?, "metadata"?}` (already
/// checked). Replacing keeps its destinations; `destinations` gives them when restoring.
#[derive(Message)]
#[rtype(result = "Result<Arc<RouterShared>, EngineError>")]
pub struct PutRouter {
    pub id: Option<String>,
    pub def: Value,
    pub destinations: Option<BTreeMap<String, Value>>,
    pub from_config: bool,
}

impl Handler<PutRouter> for Engine {
    type Result = ResponseActFuture<Self, Result<Arc<RouterShared>, EngineError>>;

    fn handle(&mut self, msg: PutRouter, _ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let old = self.core.router(&id);
        if old.as_ref().is_some_and(|r| r.from_config) && !msg.from_config {
            return Box::pin(fut::ready(Err(EngineError::ConfigDefined(id))));
        }
        let mut def = msg.def;
        if let Value::Object(m) = &mut def {
            m.insert("id".into(), Value::String(id.clone()));
        }
        let destinations = msg
            .destinations
            .or_else(|| old.as_ref().map(|r| r.destinations.read().clone()))
            .unwrap_or_default();
        let store = self.core.store.clone();
        let from_config = msg.from_config;
        Box::pin(
            async move {
                if !from_config {
                    store.save_def(Defs::Routers, &id, &def).await?;
                }
                Ok((id, def))
            }
            .into_actor(self)
            .map(move |res: Result<(String, Value), EngineError>, act, _| {
                let (id, def) = res?;
                let log = match act.core.routers.write().remove(&id) {
                    Some(old) => {
                        stop_router(&old);
                        old.log.clone()
                    }
                    None => crate::logs::ChannelLog::new(&id, act.core.settings.log.ring_size),
                };
                let shared = Arc::new(RouterShared {
                    id: id.clone(),
                    def: RwLock::new(def),
                    destinations: RwLock::new(destinations),
                    log,
                    from_config,
                    actor: RwLock::new(None),
                    apps: Default::default(),
                });
                *shared.actor.write() = Some(Router::new(act.core.clone(), shared.clone()).start());
                act.core.routers.write().insert(id, shared.clone());
                shared.log.info(
                    None,
                    format!(
                        "Router ({}) started",
                        shared.kind().map_or("?", |k| k.as_str())
                    ),
                );
                Ok(shared)
            }),
        )
    }
}

/// A router changed on another node: take it and its destinations from the store again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadRouter(pub String);

impl Handler<ReloadRouter> for Engine {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: ReloadRouter, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.core.store.clone();
        let rid = msg.0;
        Box::pin(
            async move {
                let def = store.load_def(Defs::Routers, &rid).await?;
                let destinations = match def {
                    Some(_) => store.load_defs(Defs::Destinations(&rid)).await?,
                    None => vec![],
                };
                Ok::<_, StoreError>((rid, def, destinations))
            }
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Err(e) => tracing::warn!(error = %e, "Changed router not reloaded."),
                Ok((rid, None, _)) => {
                    if let Some(old) = act.core.routers.write().remove(&rid) {
                        stop_router(&old);
                    }
                }
                Ok((rid, Some(def), destinations)) => {
                    // Saved again as it is (the same write the other node made).
                    ctx.address().do_send(PutRouter {
                        id: Some(rid),
                        def,
                        destinations: Some(destinations.into_iter().collect()),
                        from_config: false,
                    });
                }
            }),
        )
    }
}

fn stop_router(shared: &RouterShared) {
    if let Some(a) = shared.actor.write().take() {
        a.do_send(router::StopRouter);
    }
}

/// Delete a router and its destinations.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct DeleteRouter(pub String);

impl Handler<DeleteRouter> for Engine {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: DeleteRouter, _ctx: &mut Context<Self>) -> Self::Result {
        let rid = msg.0;
        match self.core.router(&rid) {
            None => return Box::pin(fut::ready(Err(EngineError::RouterNotFound(rid)))),
            Some(r) if r.from_config => {
                return Box::pin(fut::ready(Err(EngineError::ConfigDefined(rid))));
            }
            Some(_) => {}
        }
        let Some(shared) = self.core.routers.write().remove(&rid) else {
            return Box::pin(fut::ready(Err(EngineError::RouterNotFound(rid))));
        };
        stop_router(&shared);
        let store = self.core.store.clone();
        Box::pin(
            async move {
                // Junebug left the destinations behind; they go with their router here.
                let dids: Vec<String> = shared.destinations.read().keys().cloned().collect();
                for did in dids {
                    store
                        .delete_def(Defs::Destinations(&shared.id), &did)
                        .await?;
                }
                store.delete_def(Defs::Routers, &shared.id).await?;
                Ok(())
            }
            .into_actor(self),
        )
    }
}

/// Create or replace one destination of a router (`dest` already checked).
#[derive(Message)]
#[rtype(result = "Result<Value, EngineError>")]
pub struct PutDestination {
    pub rid: String,
    pub did: Option<String>,
    pub dest: Value,
}

impl Handler<PutDestination> for Engine {
    type Result = ResponseActFuture<Self, Result<Value, EngineError>>;

    fn handle(&mut self, msg: PutDestination, _ctx: &mut Context<Self>) -> Self::Result {
        let rid = msg.rid;
        let shared = match self.core.router(&rid) {
            None => return Box::pin(fut::ready(Err(EngineError::RouterNotFound(rid)))),
            Some(r) if r.from_config => {
                return Box::pin(fut::ready(Err(EngineError::ConfigDefined(rid))));
            }
            Some(r) => r,
        };
        let did = msg.did.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut dest = msg.dest;
        if let Value::Object(m) = &mut dest {
            m.insert("id".into(), Value::String(did.clone()));
        }
        let store = self.core.store.clone();
        Box::pin(
            async move {
                store
                    .save_def(Defs::Destinations(&shared.id), &did, &dest)
                    .await?;
                shared
                    .destinations
                    .write()
                    .insert(did.clone(), dest.clone());
                if let Some(a) = shared.actor.read().as_ref() {
                    a.do_send(router::Reload);
                }
                shared.log.info(None, format!("Destination {did} saved"));
                Ok(dest)
            }
            .into_actor(self),
        )
    }
}

/// Delete one destination of a router.
#[derive(Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct DeleteDestination {
    pub rid: String,
    pub did: String,
}

impl Handler<DeleteDestination> for Engine {
    type Result = ResponseActFuture<Self, Result<(), EngineError>>;

    fn handle(&mut self, msg: DeleteDestination, _ctx: &mut Context<Self>) -> Self::Result {
        let DeleteDestination { rid, did } = msg;
        let shared = match self.core.router(&rid) {
            None => return Box::pin(fut::ready(Err(EngineError::RouterNotFound(rid)))),
            Some(r) if r.from_config => {
                return Box::pin(fut::ready(Err(EngineError::ConfigDefined(rid))));
            }
            Some(r) => r,
        };
        if shared.destinations.write().remove(&did).is_none() {
            return Box::pin(fut::ready(Err(EngineError::DestinationNotFound(rid, did))));
        }
        if let Some(a) = shared.actor.read().as_ref() {
            a.do_send(router::Reload);
        }
        let store = self.core.store.clone();
        Box::pin(
            async move {
                store.delete_def(Defs::Destinations(&rid), &did).await?;
                Ok(())
            }
            .into_actor(self),
        )
    }
}
