//! Applications: answerers that run inside hornbill as a channel's destination (channel key
//! `"application": NAME`) or a router destination's (destination key `"application"`). An
//! application sees only the message, never the channel type; its replies go out on the
//! channel's `realtime` route like API replies, and their events come back to whoever it
//! answers for.
//!
//! `echo` is always there. Others are named in the config file, `[[applications]]` with
//! `name`, `type` and `config`:
//! - `http_relay` (Vumi's HTTP relay): `url` (credentials in it for Basic auth),
//!   `auth_token` (sent as `Authorization: Token`), `timeout` (s, 10). Each message is POSTed
//!   as Junebug's message object; a 2xx body is the reply: JSON `{"content",
//!   "continue_session"}` or plain text; an empty body, no reply.
//! - `ussd_menu`: a menu as data. `start` (page id), `submit_url` (the answers are POSTed
//!   there at the end, with retries), `session_timeout` (s, 600), and `pages`, each with
//!   `id`, `text`, and either `options` (`[{label, next}]`, chosen by number), or `input`
//!   (an answer name) with `next`, or neither (the last page: the session ends). `{name}` in
//!   a text is replaced by that answer.
//!
//! Each runs as a supervised actor; a message that makes one panic is logged and dropped,
//! and the actor carries on.

use super::outbound::{self, Outbound};
use super::webhooks::{HookKind, PostWebhook};
use super::{ChannelShared, Core};
use crate::defs::{AppKind as Kind, MenuConfig, RelayConfig};
use crate::message::{Message, SessionEvent};
use actix::prelude::*;
use futures::FutureExt;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Checks an application name (`Err` with the message for the API).
pub fn check_name(settings: &crate::config::Settings, name: &str) -> Result<(), String> {
    crate::defs::check_app_name(&settings.apps, name)
}

/// An inbound message for the application.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub Message);

pub struct Application {
    name: String,
    kind: Kind,
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    /// Added to its replies' outbound records (a router destination's ids, so the events
    /// of its replies come back to the destination).
    extras: Map<String, Value>,
    http: reqwest::Client,
}

impl Actor for Application {
    type Context = Context<Self>;
}

impl Supervised for Application {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.shared
            .log
            .warn(None, format!("Application {} restarted", self.name));
    }
}

/// Starts the named application for a channel (`None` for an unknown name).
pub fn start(name: &str, core: Arc<Core>, shared: Arc<ChannelShared>) -> Option<Addr<Application>> {
    start_with(name, core, shared, Map::new())
}

/// Starts the named application, its replies' records carrying `extras`.
pub fn start_with(
    name: &str,
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    extras: Map<String, Value>,
) -> Option<Addr<Application>> {
    let kind = if name == "echo" {
        Kind::Echo
    } else {
        core.settings
            .apps
            .iter()
            .find(|a| a.name == name)?
            .kind
            .clone()
    };
    let app = Application {
        name: name.to_string(),
        kind,
        core,
        shared,
        extras,
        http: reqwest::Client::new(),
    };
    Some(Supervisor::start(move |_| app))
}

impl Handler<Inbound> for Application {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Inbound(msg): Inbound, _ctx: &mut Context<Self>) -> Self::Result {
        let job = Answer {
            name: self.name.clone(),
            kind: self.kind.clone(),
            core: self.core.clone(),
            shared: self.shared.clone(),
            extras: self.extras.clone(),
            http: self.http.clone(),
        };
        let shared = self.shared.clone();
        let mid = msg.message_id.clone();
        Box::pin(async move {
            let run = std::panic::AssertUnwindSafe(job.run(msg)).catch_unwind();
            if run.await.is_err() {
                shared.log.log(
                    crate::logs::ERROR,
                    Some(&mid),
                    "The application failed on this message; it was dropped",
                );
            }
        })
    }
}

/// One message's work, apart from the actor so a panic in it is caught.
struct Answer {
    name: String,
    kind: Kind,
    core: Arc<Core>,
    shared: Arc<ChannelShared>,
    extras: Map<String, Value>,
    http: reqwest::Client,
}

impl Answer {
    async fn run(self, msg: Message) {
        match self.kind.clone() {
            Kind::Echo => {
                if let Some(content) = msg.content.clone() {
                    self.reply(&msg, content, false).await;
                }
            }
            Kind::Relay(cfg) => self.relay(&cfg, &msg).await,
            Kind::Menu(menu) => self.menu(&menu, &msg).await,
        }
    }

    /// Queues a reply on the channel's realtime route.
    async fn reply(&self, msg: &Message, content: String, close: bool) {
        let reply = msg.reply(Some(content), close);
        let out = Outbound {
            msg: &reply,
            raw: None,
            record: self.extras.clone(),
            also_under: None,
            realtime: true,
            from: Some(format!("application {}", self.name)),
        };
        if let Err(e) = outbound::enqueue(&self.core, &self.shared, out).await {
            self.shared.log.warn(
                Some(&msg.message_id),
                format!("{} reply not queued: {e}", self.name),
            );
        }
    }

    async fn relay(&self, cfg: &RelayConfig, msg: &Message) {
        let log = &self.shared.log;
        let mut req = self
            .http
            .post(&cfg.url)
            .timeout(Duration::from_secs_f64(
                cfg.timeout.unwrap_or(10.0).max(0.1),
            ))
            .json(&msg.api_view(&self.shared.id));
        if let Some(t) = &cfg.auth_token {
            req = req.header("Authorization", format!("Token {t}"));
        }
        if let Ok(u) = url::Url::parse(&cfg.url)
            && !u.username().is_empty()
        {
            req = req.basic_auth(u.username(), u.password());
        }
        let url = crate::redact::url(&cfg.url);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                log.warn(Some(&msg.message_id), format!("Relay to {url} failed: {e}"));
                return;
            }
        };
        let status = resp.status();
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("json"));
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            log.warn(
                Some(&msg.message_id),
                format!("Relay to {url} answered {status}; no reply"),
            );
            return;
        }
        let (content, close) = match serde_json::from_str::<Value>(&body) {
            Ok(v) if is_json && v.is_object() => (
                v.get("content").and_then(Value::as_str).map(str::to_string),
                v.get("continue_session") == Some(&Value::Bool(false)),
            ),
            _ => (Some(body).filter(|b| !b.is_empty()), false),
        };
        if let Some(content) = content {
            self.reply(msg, content, close).await;
        }
    }

    async fn menu(&self, menu: &MenuConfig, msg: &Message) {
        let store = &self.core.store;
        let scope = format!("app:{}", self.name);
        let user = format!(
            "session:{}:{}",
            self.shared.id,
            msg.from_addr.as_deref().unwrap_or("")
        );
        let ttl = Duration::from_secs_f64(menu.session_timeout.unwrap_or(600.0).max(1.0));
        if msg.session_event == Some(SessionEvent::Close) {
            let _ = store.delete_state(&scope, &user).await;
            return;
        }
        let saved: Option<Value> = match msg.session_event {
            Some(SessionEvent::New) => None,
            _ => store
                .get_state(&scope, &user)
                .await
                .ok()
                .flatten()
                .and_then(|s| serde_json::from_str(&s).ok()),
        };
        let page_of = |id: &str| menu.pages.iter().find(|p| p.id == id);
        let (page_id, answers, prefix) = match saved {
            None => (menu.start.clone(), HashMap::new(), String::new()),
            Some(state) => {
                let current = state["page"].as_str().unwrap_or(&menu.start).to_string();
                let mut answers: HashMap<String, String> =
                    serde_json::from_value(state["answers"].clone()).unwrap_or_default();
                let input = msg.content.as_deref().unwrap_or("").trim().to_string();
                match page_of(&current) {
                    Some(p) if !p.options.is_empty() => {
                        match input
                            .parse::<usize>()
                            .ok()
                            .and_then(|n| p.options.get(n.wrapping_sub(1)))
                        {
                            Some(choice) => {
                                answers.insert(p.id.clone(), choice.label.clone());
                                (choice.next.clone(), answers, String::new())
                            }
                            None => (current, answers, "Invalid choice. ".to_string()),
                        }
                    }
                    Some(p) if p.input.is_some() && !input.is_empty() => {
                        answers.insert(p.input.clone().unwrap_or_default(), input);
                        (p.next.clone().unwrap_or(current), answers, String::new())
                    }
                    _ => (current, answers, String::new()),
                }
            }
        };
        let Some(page) = page_of(&page_id) else {
            return;
        };
        let mut text = format!("{prefix}{}", page.text);
        for (k, v) in &answers {
            text = text.replace(&format!("{{{k}}}"), v);
        }
        for (i, o) in page.options.iter().enumerate() {
            text.push_str(&format!("\n{}. {}", i + 1, o.label));
        }
        let last = page.options.is_empty() && page.input.is_none();
        if last {
            let _ = store.delete_state(&scope, &user).await;
            if let Some(url) = &menu.submit_url {
                let body = json!({
                    "application": self.name,
                    "channel_id": self.shared.id,
                    "from": msg.from_addr,
                    "to": msg.to_addr,
                    "answers": answers,
                });
                let job = PostWebhook {
                    kind: HookKind::Inbound,
                    url: url.clone(),
                    token: None,
                    body: serde_json::to_vec(&body).unwrap_or_default().into(),
                    message_id: Some(msg.message_id.clone()),
                    log: self.shared.log.clone(),
                };
                let queued = match self.core.webhooks.send(job).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = queued {
                    self.shared
                        .log
                        .warn(Some(&msg.message_id), format!("Answers not queued: {e}"));
                }
            }
        } else {
            let state = json!({"page": page.id, "answers": answers});
            let _ = store
                .set_state(&scope, &user, &state.to_string(), ttl)
                .await;
        }
        self.reply(msg, text, last).await;
    }
}
