//! USSD sessions of an aggregator channel: requests held until the application answers
//! (or `request_timeout` passes), session state in the store, replies handed over
//! between nodes through the store, and the `max_ussd_sessions` bound.

use super::driver::Driver;
use super::{Inbound, Provider, UssdRequest, UssdSettings, UssdStep, ussd_defaults};
use crate::message::{Message, SessionEvent};
use crate::transports::{Callback, CallbackResponse, TransportReport};
use serde_json::Value;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub(super) struct Held {
    pub(super) reply: tokio::sync::oneshot::Sender<CallbackResponse>,
    pub(super) deadline: Instant,
    pub(super) request: UssdRequest,
    /// The inbound message's addresses and metadata, for the `close` sent on a timeout.
    pub(super) inbound: Message,
}

/// A USSD session as the store keeps it (`hornbill:{cid}:state:ussd:{session id}`).
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(super) struct SessionState {
    /// The text of the last request (a cumulative provider's path so far).
    pub(super) text: String,
    /// Seconds since the epoch of the last request.
    pub(super) last: f64,
}

const USSD_KEY: &str = "ussd:";
/// State key prefix of USSD requests some node holds (by inbound message id).
const HELD_KEY: &str = "held:";
/// State key prefix of answers handed to the node holding the request.
const ANSWER_KEY: &str = "answer:";

impl<P: Provider> Driver<P> {
    pub(super) fn ussd_settings(&self) -> UssdSettings {
        self.provider.ussd().unwrap_or_else(|| UssdSettings {
            request_timeout: Duration::from_secs_f64(ussd_defaults::request_timeout()),
            timeout_message: ussd_defaults::timeout_message(),
            session_timeout: Duration::from_secs_f64(ussd_defaults::session_timeout()),
            max_sessions: ussd_defaults::max_sessions(),
        })
    }

    /// The `close` the application gets when a session ends without it ending it.
    pub(super) fn close_message(last: &Message) -> Message {
        let mut m = Message::new(last.to_addr.clone(), last.from_addr.clone(), None);
        m.session_event = Some(SessionEvent::Close);
        m.transport_metadata = last.transport_metadata.clone();
        m.helper_metadata = last.helper_metadata.clone();
        m.provider = last.provider.clone();
        m
    }

    pub(super) async fn forget_session(&self, sid: &str) {
        self.sessions.borrow_mut().remove(sid);
        let key = format!("{USSD_KEY}{sid}");
        if let Err(e) = self.store.delete_state(&self.cid, &key).await {
            self.log(
                crate::logs::WARNING,
                format!("Could not end USSD session {sid}: {e}"),
            );
        }
    }

    pub(super) async fn ussd_request(
        self: Rc<Self>,
        cb: Callback,
        req: UssdRequest,
        response: CallbackResponse,
    ) {
        let settings = self.ussd_settings();
        let sid = req.session_id.clone();
        let key = format!("{USSD_KEY}{sid}");
        let previous = match self.store.get_state(&self.cid, &key).await {
            Ok(v) => v.map(|t| serde_json::from_str::<SessionState>(&t).unwrap_or_default()),
            Err(e) => {
                // Without the session the request cannot be placed: the user is told, and
                // the provider gets a proper answer rather than an error page.
                self.log(
                    crate::logs::ERROR,
                    format!("USSD session {sid}: the store is unavailable ({e}); the user was told to try later"),
                );
                let answer = self
                    .provider
                    .ussd_answer(&req, &settings.timeout_message, true);
                self.respond(cb, answer);
                return;
            }
        };
        if req.step == UssdStep::End {
            let local = self.sessions.borrow().get(&sid).map(|(_, m)| m.clone());
            if previous.is_some() || local.is_some() {
                let base = local.unwrap_or_else(|| {
                    self.inbound_message(
                        Inbound {
                            group: None,
                            media: Vec::new(),
                            from: req.from.clone(),
                            to: req.to.clone(),
                            content: None,
                            metadata: req.metadata.clone(),
                        },
                        Some((&sid, SessionEvent::Resume)),
                    )
                });
                let close = Self::close_message(&base);
                self.log(
                    crate::logs::INFO,
                    format!(
                        "USSD session {sid} ended by the provider; close sent as {}",
                        close.message_id
                    ),
                );
                self.report(TransportReport::Inbound(Box::new(close)));
                self.forget_session(&sid).await;
            } else {
                self.log(
                    crate::logs::INFO,
                    format!("End of unknown USSD session {sid}"),
                );
            }
            self.respond(cb, response);
            return;
        }
        let raw = req.content.clone().unwrap_or_default();
        let previous = match req.step {
            UssdStep::Start => None,
            UssdStep::Resume => Some(previous.unwrap_or_default()),
            _ => previous,
        };
        let (event, content) = match &previous {
            None if req.new_without_content || raw.is_empty() => (SessionEvent::New, None),
            None => (SessionEvent::New, Some(raw.clone())),
            Some(prev) if req.cumulative && !prev.text.is_empty() => {
                let prefix = format!("{}*", prev.text);
                let part = raw.strip_prefix(prefix.as_str()).unwrap_or(&raw);
                (SessionEvent::Resume, Some(part.to_string()))
            }
            Some(_) => (SessionEvent::Resume, Some(raw.clone())),
        };
        if event == SessionEvent::New && !self.sessions.borrow().contains_key(&sid) {
            let open = self.sessions.borrow().len();
            if open >= settings.max_sessions {
                // Refused before anything is kept: the user is told to try later, the
                // application hears nothing.
                crate::telemetry::limit_reached(&self.cid, crate::telemetry::Limit::UssdSessions);
                let due = self.refusals.borrow_mut().due(Instant::now());
                if let Some(unwritten) = due {
                    self.log(
                        crate::logs::WARNING,
                        format!(
                            "USSD session {sid} refused: {open} sessions are open on this channel (max_ussd_sessions); the user was told to try later{}",
                            crate::limits::more_since(unwritten)
                        ),
                    );
                }
                let answer = self
                    .provider
                    .ussd_answer(&req, &settings.timeout_message, true);
                self.respond(cb, answer);
                return;
            }
        }
        let state = SessionState {
            text: raw,
            last: crate::message::now_secs(),
        };
        let ttl = settings.session_timeout + Duration::from_secs(60);
        let saved = serde_json::to_string(&state).unwrap_or_default();
        if let Err(e) = self.store.set_state(&self.cid, &key, &saved, ttl).await {
            self.log(
                crate::logs::WARNING,
                format!("USSD session {sid}: could not save it ({e}); carrying on"),
            );
        }
        let msg = self.inbound_message(
            Inbound {
                group: None,
                media: Vec::new(),
                from: req.from.clone(),
                to: req.to.clone(),
                content,
                metadata: req.metadata.clone(),
            },
            Some((&sid, event)),
        );
        let now = Instant::now();
        self.log_about(
            crate::logs::INFO,
            Some(&msg.message_id),
            format!(
                "USSD request in session {sid} ({}): inbound {}, waiting up to {:.0} s for the answer",
                event.as_str(),
                msg.message_id,
                settings.request_timeout.as_secs_f64()
            ),
        );
        self.sessions
            .borrow_mut()
            .insert(sid.clone(), (now + settings.session_timeout, msg.clone()));
        if self.shared_store {
            let key = format!("{HELD_KEY}{}", msg.message_id);
            let ttl = settings.request_timeout + Duration::from_secs(10);
            if let Err(e) = self.store.set_state(&self.cid, &key, "1", ttl).await {
                self.log(
                    crate::logs::WARNING,
                    format!("USSD session {sid}: other nodes cannot answer it ({e})"),
                );
            }
        }
        self.held.borrow_mut().insert(
            msg.message_id.clone(),
            Held {
                reply: cb.reply,
                deadline: now + settings.request_timeout,
                request: req,
                inbound: msg.clone(),
            },
        );
        self.report(TransportReport::Inbound(Box::new(msg)));
    }

    /// Junebug's (Vumi's) answer to a reply whose request has gone (timed out, answered
    /// already, or never seen).
    pub(super) fn no_request(&self, msg: Message) {
        self.log_about(
            crate::logs::WARNING,
            Some(&msg.message_id),
            format!(
                "USSD reply {} has no request waiting for it",
                msg.message_id
            ),
        );
        self.nack(msg.message_id, self.provider.request_gone().into(), false);
    }

    /// A reply to a request this node does not hold: if another node holds it, the answer is
    /// left in the store for that node, which looks for answers every sweep.
    pub(super) async fn hand_over(&self, original: String, msg: Message) {
        let held = self
            .store
            .get_state(&self.cid, &format!("{HELD_KEY}{original}"))
            .await;
        match held {
            Ok(Some(_)) => {
                let answer = serde_json::json!({
                    "message_id": msg.message_id,
                    "content": msg.content,
                    "end": msg.session_event == Some(SessionEvent::Close)
                        || msg.continue_session() == Some(false),
                });
                let key = format!("{ANSWER_KEY}{original}");
                let ttl = Duration::from_secs(60);
                match self
                    .store
                    .set_state(&self.cid, &key, &answer.to_string(), ttl)
                    .await
                {
                    Ok(()) => {
                        self.log_about(
                            crate::logs::INFO,
                            Some(&msg.message_id),
                            format!(
                                "USSD answer {} handed to the node holding request {original}",
                                msg.message_id
                            ),
                        );
                        self.ack(msg.message_id.clone(), msg.message_id);
                    }
                    Err(e) => self.nack(
                        msg.message_id,
                        format!("Could not hand the answer over: {e}"),
                        true,
                    ),
                }
            }
            Ok(None) => self.no_request(msg),
            Err(e) => self.nack(
                msg.message_id,
                format!("Could not look the request up: {e}"),
                true,
            ),
        }
    }

    /// A held request is over: other nodes no longer hand answers to it.
    pub(super) fn release(self: &Rc<Self>, original: &str) {
        if !self.shared_store {
            return;
        }
        let (me, original) = (self.clone(), original.to_string());
        tokio::task::spawn_local(async move {
            for key in [HELD_KEY, ANSWER_KEY] {
                let _ = me
                    .store
                    .delete_state(&me.cid, &format!("{key}{original}"))
                    .await;
            }
        });
    }

    /// Answers handed over by other nodes for the requests this node holds.
    pub(super) fn poll_answers(self: &Rc<Self>) {
        if !self.shared_store || self.polling.get() || self.held.borrow().is_empty() {
            return;
        }
        self.polling.set(true);
        let ids: Vec<String> = self.held.borrow().keys().cloned().collect();
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let looks = ids.iter().map(|id| {
                let key = format!("{ANSWER_KEY}{id}");
                let store = me.store.clone();
                let cid = me.cid.clone();
                async move { store.get_state(&cid, &key).await.ok().flatten() }
            });
            let found = futures::future::join_all(looks).await;
            for (id, answer) in ids.into_iter().zip(found) {
                let Some(answer) = answer.and_then(|a| serde_json::from_str::<Value>(&a).ok())
                else {
                    continue;
                };
                let Some(held) = me.held.borrow_mut().remove(&id) else {
                    continue;
                };
                let text = answer["content"].as_str().unwrap_or_default();
                let end = answer["end"].as_bool().unwrap_or(false);
                let response = me.provider.ussd_answer(&held.request, text, end);
                let sid = held.request.session_id.clone();
                me.wire_callback_answer(&response);
                let _ = held.reply.send(response);
                me.log(
                    crate::logs::INFO,
                    format!(
                        "USSD answer {} (handed over by another node) in session {sid}",
                        answer["message_id"].as_str().unwrap_or("?")
                    ),
                );
                me.release(&id);
                if end {
                    me.forget_session(&sid).await;
                }
            }
            me.polling.set(false);
        });
    }

    pub(super) fn answer_ussd(self: Rc<Self>, held: Held, msg: Message) {
        let end =
            msg.session_event == Some(SessionEvent::Close) || msg.continue_session() == Some(false);
        let text = msg.content.clone().unwrap_or_default();
        let answer = self.provider.ussd_answer(&held.request, &text, end);
        let sid = held.request.session_id.clone();
        self.release(&held.inbound.message_id);
        self.wire_callback_answer(&answer);
        if held.reply.send(answer).is_ok() {
            self.log_about(
                crate::logs::INFO,
                Some(&msg.message_id),
                format!(
                    "USSD answer {} in session {sid} ({})",
                    msg.message_id,
                    if end {
                        "session ended"
                    } else {
                        "session continues"
                    }
                ),
            );
            self.ack(msg.message_id.clone(), msg.message_id);
        } else {
            self.nack(msg.message_id, self.provider.request_gone().into(), false);
        }
        if end {
            tokio::task::spawn_local(async move { self.forget_session(&sid).await });
        }
    }

    /// Answers the requests the application left waiting too long, and closes the sessions
    /// that went idle.
    pub(super) fn sweep(self: Rc<Self>) {
        self.poll_answers();
        let now = Instant::now();
        let expired: Vec<Held> = {
            let mut held = self.held.borrow_mut();
            let ids: Vec<String> = held
                .iter()
                .filter(|(_, h)| h.deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter().filter_map(|id| held.remove(&id)).collect()
        };
        let idle: Vec<(String, Message)> = {
            let held = self.held.borrow();
            let waiting: std::collections::HashSet<&str> = held
                .values()
                .map(|h| h.request.session_id.as_str())
                .collect();
            self.sessions
                .borrow()
                .iter()
                .filter(|(sid, (deadline, _))| *deadline <= now && !waiting.contains(sid.as_str()))
                .map(|(sid, (_, m))| (sid.clone(), m.clone()))
                .collect()
        };
        if expired.is_empty() && idle.is_empty() {
            return;
        }
        let settings = self.ussd_settings();
        for h in expired {
            let sid = h.request.session_id.clone();
            let answer = self
                .provider
                .ussd_answer(&h.request, &settings.timeout_message, true);
            self.wire_callback_answer(&answer);
            let _ = h.reply.send(answer);
            self.release(&h.inbound.message_id);
            let close = Self::close_message(&h.inbound);
            self.log_about(
                crate::logs::WARNING,
                Some(&h.inbound.message_id),
                format!(
                    "USSD request {} timed out after {:.0} s: the user was told so, session {sid} closed ({})",
                    h.inbound.message_id,
                    settings.request_timeout.as_secs_f64(),
                    close.message_id
                ),
            );
            self.report(TransportReport::Inbound(Box::new(close)));
            self.sessions.borrow_mut().remove(&sid);
            let me = self.clone();
            tokio::task::spawn_local(async move { me.forget_session(&sid).await });
        }
        for (sid, last) in idle {
            self.sessions.borrow_mut().remove(&sid);
            let me = self.clone();
            tokio::task::spawn_local(async move {
                let key = format!("{USSD_KEY}{sid}");
                // Another node may have taken the session's later requests.
                let state = me.store.get_state(&me.cid, &key).await.ok().flatten();
                let touched = state
                    .and_then(|t| serde_json::from_str::<SessionState>(&t).ok())
                    .is_some_and(|s| {
                        crate::message::now_secs() - s.last < settings.session_timeout.as_secs_f64()
                    });
                if touched {
                    return;
                }
                let close = Self::close_message(&last);
                me.log(
                    crate::logs::INFO,
                    format!(
                        "USSD session {sid} idle for {:.0} s: closed ({})",
                        settings.session_timeout.as_secs_f64(),
                        close.message_id
                    ),
                );
                me.report(TransportReport::Inbound(Box::new(close)));
                me.forget_session(&sid).await;
            });
        }
    }
}
