//! Routers (Junebug's routers, Vumi's dispatchers): a router owns a channel and decides which
//! of its destinations each inbound message goes to. A destination is reached like a
//! channel's own destination (`mo_url` with `mo_url_token`, `amqp_queue`, or an
//! application) and sends through the router (`POST /routers/{rid}/destinations/{did}/messages/`);
//! the events of what it sent come back to it.
//!
//! Types (config `{"channel": cid}` for all; destination config per type):
//! - `from_address` (Junebug's): `regular_expression` searched in the inbound `to_addr` (the
//!   channel's own address, e.g. the USSD code); every match gets a copy; `default: true`
//!   destinations get what nothing matched.
//! - `keyword`: `keyword` (or `keywords`) equal to the first word of the content, any case.
//! - `to_addr` / `from_addr`: `regular_expression` on that address, tried by `priority`
//!   (higher first, then by id); the first match alone gets the message.
//! - `load_balance`: round robin; a USSD session stays with the destination that opened it.
//! - `channel_to_channel`: like `from_address`, plus `reply_channel` in the router config:
//!   replies go out as new messages on that channel (a USSD request answered by SMS), and
//!   with `session_close_text` the USSD session is closed with that text.

use super::Core;
use super::application::Application;
use crate::bus::Delivery;
use crate::defs::{RouterKind, keywords};
use crate::logs::ChannelLog;
use crate::message::{Message, SessionEvent};
use actix::prelude::*;
use futures::StreamExt;
use parking_lot::RwLock;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the HTTP API and the actors share about one router.
pub struct RouterShared {
    pub id: String,
    /// `{"id", "type", "config", "label"?, "metadata"?}` as stored.
    pub def: RwLock<Value>,
    /// Destination id -> `{"id", "config", "label"?, "mo_url"?, ...}` as stored.
    pub destinations: RwLock<BTreeMap<String, Value>>,
    pub log: ChannelLog,
    /// Defined in the config file: not changed or deleted through the API.
    pub from_config: bool,
    pub actor: RwLock<Option<Addr<Router>>>,
    /// Applications its destinations name, started on their first message.
    pub apps: parking_lot::Mutex<HashMap<String, Addr<Application>>>,
}

impl RouterShared {
    /// Its type (`None` only for a definition stored by something else than hornbill).
    pub fn kind(&self) -> Option<RouterKind> {
        RouterKind::parse(&str_at(&self.def.read(), &["type"]).unwrap_or_default()).ok()
    }

    /// The channel it owns.
    pub fn channel(&self) -> String {
        str_at(&self.def.read(), &["config", "channel"]).unwrap_or_default()
    }

    /// The channel replies go out on (`channel_to_channel`), else the owned one.
    pub fn reply_channel(&self) -> String {
        str_at(&self.def.read(), &["config", "reply_channel"]).unwrap_or_else(|| self.channel())
    }

    pub fn destination(&self, did: &str) -> Option<Value> {
        self.destinations.read().get(did).cloned()
    }

    /// The application a destination names, started if it is not running.
    pub fn application(
        &self,
        did: &str,
        name: &str,
        core: &Arc<Core>,
        channel: &Arc<super::ChannelShared>,
    ) -> Option<Addr<Application>> {
        let mut apps = self.apps.lock();
        if let Some(a) = apps.get(did).filter(|a| a.connected()) {
            return Some(a.clone());
        }
        let mut extras = serde_json::Map::new();
        extras.insert("router_id".into(), Value::String(self.id.clone()));
        extras.insert("destination_id".into(), Value::String(did.to_string()));
        let app = super::application::start_with(name, core.clone(), channel.clone(), extras)?;
        apps.insert(did.to_string(), app.clone());
        Some(app)
    }

    /// The router object of the API (2.7).
    pub fn view(&self) -> Value {
        self.def.read().clone()
    }
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::to_string)
}

/// Checks a router's type and config against what runs (Junebug's `InvalidRouterType` and
/// `InvalidRouterConfig`). `rid` is the router being replaced, if any.
pub fn check_router(
    core: &Core,
    rid: Option<&str>,
    kind: &str,
    config: &Value,
) -> Result<RouterKind, RouterError> {
    let kind = RouterKind::parse(kind).map_err(RouterError::Type)?;
    let invalid = RouterError::Config;
    let channel_field = |field: &str| -> Result<Option<String>, RouterError> {
        match config.get(field) {
            None | Some(Value::Null) if field != "channel" => Ok(None),
            None | Some(Value::Null) => {
                Err(invalid(format!("Missing required config field '{field}'")))
            }
            Some(Value::String(c)) if uuid::Uuid::parse_str(c).is_ok() => Ok(Some(c.clone())),
            Some(_) => Err(invalid(format!("Field '{field}' is not a valid UUID"))),
        }
    };
    let Some(cid) = channel_field("channel")? else {
        return Err(invalid("Missing required config field 'channel'".into()));
    };
    let Some(channel) = core.channel(&cid) else {
        return Err(invalid(format!("Channel {cid} does not exist")));
    };
    if channel.spec().has_destination {
        return Err(invalid(format!(
            "Channel {cid} already has a destination specified"
        )));
    }
    if let Some(other) = core.router_of(&cid)
        && Some(other.id.as_str()) != rid
    {
        return Err(invalid(format!(
            "Router {} is already routing channel {cid}",
            other.id
        )));
    }
    if kind == RouterKind::ChannelToChannel {
        match channel_field("reply_channel")? {
            Some(reply) if core.channel(&reply).is_none() => {
                return Err(invalid(format!("Channel {reply} does not exist")));
            }
            Some(_) => {}
            None => {
                return Err(invalid(
                    "Missing required config field 'reply_channel'".into(),
                ));
            }
        }
    }
    Ok(kind)
}

/// Checks a destination's config for its router's type (`InvalidRouterDestinationConfig`).
pub fn check_destination(kind: RouterKind, config: &Value) -> Result<(), RouterError> {
    kind.check_destination(config)
        .map_err(RouterError::DestinationConfig)
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("{0}")]
    Type(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    DestinationConfig(String),
}

/// One destination's rule, compiled.
struct Rule {
    did: String,
    regex: Option<regex::Regex>,
    keywords: Vec<String>,
    default: bool,
    priority: i64,
}

/// The router actor: holds the compiled rules and the routing state (round robin, sticky
/// sessions), answers `Route`, and consumes `Q.outbound` of destinations with an
/// `amqp_queue` (a Vumi application's replies), sending them on the router's channel.
pub struct Router {
    core: Arc<Core>,
    shared: Arc<RouterShared>,
    rules: Vec<Rule>,
    next: usize,
    /// USSD sessions (by user address) and the destination that has them.
    sticky: HashMap<String, String>,
    /// Consumed `amqp_queue`s and the stream reading each.
    queues: HashMap<String, SpawnHandle>,
}

impl Router {
    pub fn new(core: Arc<Core>, shared: Arc<RouterShared>) -> Router {
        let mut r = Router {
            core,
            shared,
            rules: vec![],
            next: 0,
            sticky: HashMap::new(),
            queues: HashMap::new(),
        };
        r.compile();
        r
    }

    /// Consumes the `Q.outbound` of every destination's `amqp_queue`, and no other.
    fn sync_queues(&mut self, ctx: &mut Context<Self>) {
        let wanted: HashMap<String, String> = self
            .shared
            .destinations
            .read()
            .iter()
            .filter_map(|(did, d)| {
                let q = d.get("amqp_queue").and_then(Value::as_str)?;
                Some((q.to_string(), did.clone()))
            })
            .collect();
        let gone: Vec<String> = self
            .queues
            .keys()
            .filter(|q| !wanted.contains_key(*q))
            .cloned()
            .collect();
        for q in gone {
            if let Some(h) = self.queues.remove(&q) {
                ctx.cancel_future(h);
            }
        }
        for (q, did) in wanted {
            if self.queues.contains_key(&q) {
                continue;
            }
            let bus = self.core.bus.clone();
            let route = crate::bus::routes::outbound(&q);
            let name = q.clone();
            let handle = ctx.spawn(
                async move { bus.consume(&route, 20).await }
                    .into_actor(self)
                    .map(move |res, act, ctx| match res {
                        Ok(stream) => {
                            let h = ctx.add_stream(stream.map(move |d| (did.clone(), d)));
                            act.queues.insert(name, h);
                        }
                        Err(e) => act.shared.log.log(
                            crate::logs::ERROR,
                            None,
                            format!("Cannot consume {name}.outbound: {e}"),
                        ),
                    }),
            );
            self.queues.insert(q, handle);
        }
    }

    fn compile(&mut self) {
        let mut rules: Vec<Rule> = self
            .shared
            .destinations
            .read()
            .iter()
            .map(|(did, d)| {
                let config = d.get("config").cloned().unwrap_or(Value::Null);
                Rule {
                    did: did.clone(),
                    regex: config
                        .get("regular_expression")
                        .and_then(Value::as_str)
                        .and_then(|r| regex::Regex::new(r).ok()),
                    keywords: keywords(&config),
                    default: config
                        .get("default")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    priority: config.get("priority").and_then(Value::as_i64).unwrap_or(0),
                }
            })
            .collect();
        rules.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.did.cmp(&b.did)));
        self.rules = rules;
        self.sticky
            .retain(|_, did| self.shared.destinations.read().contains_key(did));
    }

    /// The destinations an inbound message goes to.
    fn route(&mut self, msg: &Message) -> Vec<String> {
        let Some(kind) = self.shared.kind() else {
            return vec![];
        };
        let to = msg.to_addr.as_deref().unwrap_or("");
        let from = msg.from_addr.as_deref().unwrap_or("");
        let searched = |r: &Rule, addr: &str| r.regex.as_ref().is_some_and(|re| re.is_match(addr));
        let chosen: Vec<String> = match kind {
            RouterKind::FromAddress | RouterKind::ChannelToChannel => self
                .rules
                .iter()
                .filter(|r| searched(r, to))
                .map(|r| r.did.clone())
                .collect(),
            RouterKind::ToAddr | RouterKind::FromAddr => {
                let addr = if kind == RouterKind::ToAddr { to } else { from };
                self.rules
                    .iter()
                    .find(|r| searched(r, addr))
                    .map(|r| vec![r.did.clone()])
                    .unwrap_or_default()
            }
            RouterKind::Keyword => {
                let first = msg
                    .content
                    .as_deref()
                    .and_then(|c| c.split_whitespace().next())
                    .map(str::to_lowercase)
                    .unwrap_or_default();
                self.rules
                    .iter()
                    .filter(|r| r.keywords.contains(&first))
                    .map(|r| r.did.clone())
                    .collect()
            }
            RouterKind::LoadBalance => return self.balance(msg),
        };
        if !chosen.is_empty() {
            return chosen;
        }
        self.rules
            .iter()
            .filter(|r| r.default)
            .map(|r| r.did.clone())
            .collect()
    }

    /// Round robin, except that a session's later messages follow its first.
    fn balance(&mut self, msg: &Message) -> Vec<String> {
        if self.rules.is_empty() {
            return vec![];
        }
        let user = msg.from_addr.clone().unwrap_or_default();
        let in_session = matches!(
            msg.session_event,
            Some(SessionEvent::Resume) | Some(SessionEvent::Close)
        );
        if in_session && let Some(did) = self.sticky.get(&user).cloned() {
            if msg.session_event == Some(SessionEvent::Close) {
                self.sticky.remove(&user);
            }
            return vec![did];
        }
        let did = self.rules[self.next % self.rules.len()].did.clone();
        self.next = self.next.wrapping_add(1);
        if msg.session_event == Some(SessionEvent::New) {
            self.sticky.insert(user, did.clone());
        }
        vec![did]
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sync_queues(ctx);
    }
}

/// A Vumi application's reply for a destination (from its `Q.outbound`): sent on the
/// router's channel (its reply channel for `channel_to_channel`) as it is, its events coming
/// back to the destination.
impl StreamHandler<(String, Delivery)> for Router {
    fn handle(&mut self, (did, d): (String, Delivery), ctx: &mut Context<Self>) {
        let core = self.core.clone();
        let shared = self.shared.clone();
        ctx.spawn(
            async move {
                let msg = match Message::from_slice(&d.body) {
                    Ok(m) => m,
                    Err(e) => {
                        shared.log.log(
                            crate::logs::ERROR,
                            None,
                            format!("Dropping an item from amqp_queue that is not a Vumi user message: {e}"),
                        );
                        d.ack();
                        return;
                    }
                };
                let cid = shared.reply_channel();
                let Some(channel) = core.channel(&cid) else {
                    shared.log.warn(Some(&msg.message_id), format!("Reply from destination {did} not sent yet: channel {cid} is not running"));
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    d.requeue();
                    return;
                };
                let mut record = serde_json::Map::new();
                record.insert("router_id".into(), shared.id.clone().into());
                record.insert("destination_id".into(), did.clone().into());
                let out = super::outbound::Outbound {
                    msg: &msg,
                    raw: Some(d.body.clone()),
                    record,
                    also_under: Some(&did),
                    realtime: msg.in_reply_to.is_some(),
                    from: Some(format!("destination {did} (amqp_queue)")),
                };
                let sent = super::outbound::enqueue(&core, &channel, out).await;
                match sent {
                    Ok(_) => {
                        shared.log.info(Some(&msg.message_id), format!("Outbound message from destination {did}, queued on channel {cid}"));
                        d.ack();
                    }
                    Err(e) => {
                        shared.log.warn(Some(&msg.message_id), format!("Reply from destination {did} not sent yet: {e}"));
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        d.requeue();
                    }
                }
            }
            .into_actor(self),
        );
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

/// Which destinations get this inbound message.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Route(pub Message);

impl Handler<Route> for Router {
    type Result = Vec<String>;

    fn handle(&mut self, Route(msg): Route, _ctx: &mut Context<Self>) -> Vec<String> {
        let chosen = self.route(&msg);
        if chosen.is_empty() {
            self.shared.log.log(
                crate::logs::ERROR,
                Some(&msg.message_id),
                format!(
                    "No destination for the message to {} from {}; dropped",
                    msg.to_addr.as_deref().unwrap_or("?"),
                    msg.from_addr.as_deref().unwrap_or("?")
                ),
            );
        } else {
            self.shared.log.info(
                Some(&msg.message_id),
                format!("Routed to {}", chosen.join(", ")),
            );
        }
        chosen
    }
}

/// The destinations changed: compile the rules again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload;

impl Handler<Reload> for Router {
    type Result = ();
    fn handle(&mut self, _: Reload, ctx: &mut Context<Self>) {
        self.compile();
        self.sync_queues(ctx);
    }
}

/// Stops a router.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopRouter;

impl Handler<StopRouter> for Router {
    type Result = ();
    fn handle(&mut self, _: StopRouter, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
