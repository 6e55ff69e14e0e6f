//! Webhooks: the poster (mo_url, event_url, status_url).
//!
//! Each job is POSTed as JSON with Junebug's auth rules (`Authorization: Token <t>` when a
//! token is set, otherwise HTTP Basic from credentials in the URL, which are removed from the
//! URL) and retried with jittered exponential backoff until the destination answers 2xx or
//! `retry_for` has passed. At most `max_per_destination` requests are in flight to one
//! destination, and one message's webhooks to one URL go one after another, in the order
//! they came (its events arrive in the order they happened). Every attempt is written to the
//! channel's log, with the URL redacted.
//!
//! At most `max_pending_per_destination` deliveries wait for one destination (scheme, host
//! and port: the unit a dead or slow application is), counted from acceptance to settling.
//! A cap per destination rather than overall, so that one application that is down cannot
//! make the others' retries be given up. Past it, the oldest waiting delivery (the one that
//! has failed longest) is given up as a retried-out one is: an ERROR in its message's story,
//! `hornbill_webhook_failures_total` and `hornbill_limit_reached_total{limit=
//! "webhooks_pending"}`; one in a request is given up only if that request fails. New
//! inbound is not refused: the provider has been answered already, so refusing could not
//! stop it, and the newest message is the likeliest to still matter.
//!
//! Each job is saved in the store (`hornbill:webhooks` in Redis) before it is accepted and
//! removed once it is settled, so with the Redis store pending deliveries survive a restart:
//! at start `serve` reads them back (`saved_jobs`) and sends each as a `ResumeWebhook`.

use crate::config::WebhookSettings;
use crate::logs::ChannelLog;
use crate::redact;
use crate::telemetry::{Limit, WebhookMetrics, WebhookOutcome};
use actix::prelude::*;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What a webhook carries (for logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Inbound,
    Event,
    Status,
}

impl HookKind {
    fn name(self) -> &'static str {
        match self {
            HookKind::Inbound => "inbound",
            HookKind::Event => "event",
            HookKind::Status => "status",
        }
    }

    fn from_name(name: &str) -> HookKind {
        match name {
            "inbound" => HookKind::Inbound,
            "status" => HookKind::Status,
            _ => HookKind::Event,
        }
    }

    /// The `kind` label of the webhook metrics (after the URL keys: `mo_url`, ...).
    fn metric_label(self) -> &'static str {
        match self {
            HookKind::Inbound => "mo",
            HookKind::Event => "event",
            HookKind::Status => "status",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            HookKind::Inbound => "inbound message",
            HookKind::Event => "event",
            HookKind::Status => "status",
        }
    }
}

/// POST `body` to `url`, retrying until accepted. Answers once the job is saved.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), crate::store::StoreError>")]
pub struct PostWebhook {
    pub kind: HookKind,
    pub url: String,
    pub token: Option<String>,
    pub body: Bytes,
    pub message_id: Option<String>,
    pub log: ChannelLog,
}

/// A saved job, as the store keeps it.
fn job_json(job: &PostWebhook, first: f64, node: &str) -> serde_json::Value {
    serde_json::json!({
        "node": node,
        "channel_id": job.log.id(),
        "kind": job.kind.name(),
        "url": job.url,
        "token": job.token,
        "body": String::from_utf8_lossy(&job.body),
        "message_id": job.message_id,
        "first_attempt": first,
    })
}

/// A job saved by an earlier run, to be started again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResumeWebhook {
    pub id: String,
    pub job: PostWebhook,
    pub first_attempt: f64,
}

/// Reads the saved jobs back (`log_for` finds each channel's log).
pub fn saved_jobs(
    saved: Vec<(String, serde_json::Value)>,
    log_for: impl Fn(&str) -> ChannelLog,
) -> Vec<ResumeWebhook> {
    saved
        .into_iter()
        .filter_map(|(id, v)| {
            let s = |k: &str| {
                v.get(k)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            };
            Some(ResumeWebhook {
                job: PostWebhook {
                    kind: HookKind::from_name(&s("kind")?),
                    url: s("url")?,
                    token: s("token"),
                    body: Bytes::from(s("body")?),
                    message_id: s("message_id"),
                    log: log_for(&s("channel_id")?),
                },
                first_attempt: v
                    .get("first_attempt")
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or_else(crate::actors::now_secs),
                id,
            })
        })
        .collect()
}

/// Values substituted into `{message_id}`, `{channel_id}`, `{event_type}`, `{to}`, `{from}`.
#[derive(Default)]
pub struct TemplateVars<'a> {
    pub message_id: Option<&'a str>,
    pub channel_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub to: Option<&'a str>,
    pub from: Option<&'a str>,
}

/// A callback URL with its templates filled in (values percent-encoded).
pub fn expand_url(template: &str, vars: &TemplateVars<'_>) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    // Everything but RFC 3986's unreserved characters is encoded.
    const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let enc = |v: Option<&str>| {
        percent_encoding::utf8_percent_encode(v.unwrap_or(""), COMPONENT).to_string()
    };
    template
        .replace("{message_id}", &enc(vars.message_id))
        .replace("{channel_id}", &enc(vars.channel_id))
        .replace("{event_type}", &enc(vars.event_type))
        .replace("{to}", &enc(vars.to))
        .replace("{from}", &enc(vars.from))
}

pub struct Webhooks {
    /// This node's id, saved with each job.
    node: String,
    client: reqwest::Client,
    settings: WebhookSettings,
    destinations: HashMap<String, Arc<Destination>>,
    /// Deliveries not yet settled, all destinations (`hornbill_webhooks_pending`).
    pending_total: Arc<AtomicUsize>,
    /// Orders deliveries accepted in the same millisecond.
    next_seq: u64,
    store: Arc<dyn crate::store::Store>,
    /// Callback URLs already taken apart (most traffic goes to a few).
    targets: HashMap<String, Arc<WebhookUrl>>,
    /// Counter handles by channel (or router) id, one set per kind.
    counters: HashMap<String, [Option<Arc<WebhookMetrics>>; 3]>,
    /// One message's webhooks to one URL go one after another, in the order they came
    /// (a `submitted` event is delivered before its `delivery_succeeded`).
    lanes: super::ordered::Lanes,
}

/// A callback URL taken apart: where to POST, its credentials, how it is shown in logs,
/// and its destination.
struct WebhookUrl {
    url: url::Url,
    user: String,
    password: Option<String>,
    shown: String,
    dest: Arc<Destination>,
}

/// One destination (scheme, host and port): its requests in flight and its deliveries.
struct Destination {
    limit: Semaphore,
    pending: parking_lot::Mutex<Pending>,
}

/// Where a delivery stands among its destination's: when it was first tried (ms), then
/// the order it came in.
type PendingKey = (u64, u64);

/// The deliveries to one destination not yet settled, oldest first; each can be told to
/// give up.
#[derive(Default)]
pub struct Pending {
    jobs: BTreeMap<PendingKey, CancellationToken>,
}

impl Pending {
    /// Adds a delivery; past `cap`, the oldest others are taken out and returned, to be
    /// given up.
    pub fn admit(
        &mut self,
        key: PendingKey,
        give_up: CancellationToken,
        cap: usize,
    ) -> Vec<CancellationToken> {
        self.jobs.insert(key, give_up);
        let mut out = Vec::new();
        while self.jobs.len() > cap.max(1) {
            let Some(oldest) = self.jobs.keys().find(|k| **k != key).copied() else {
                break;
            };
            out.extend(self.jobs.remove(&oldest));
        }
        out
    }

    /// A delivery settled: whether it was still counted (one given up was not).
    pub fn settle(&mut self, key: PendingKey) -> bool {
        self.jobs.remove(&key).is_some()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// A delivery's place among its destination's, given back when its task ends.
struct Admitted {
    dest: Arc<Destination>,
    key: PendingKey,
    total: Arc<AtomicUsize>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.dest.pending.lock().settle(self.key) {
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How many distinct callback URLs are kept taken apart.
const TARGET_CACHE: usize = 4096;

impl Webhooks {
    /// `node`: this node's id, saved with each job (whose jobs they are in a cluster).
    pub fn new(
        settings: WebhookSettings,
        store: Arc<dyn crate::store::Store>,
        pending_total: Arc<AtomicUsize>,
        node: String,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout())
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Webhooks {
            node,
            client,
            settings,
            destinations: HashMap::new(),
            pending_total,
            next_seq: 0,
            store,
            targets: HashMap::new(),
            counters: HashMap::new(),
            lanes: Default::default(),
        }
    }

    fn counters(&mut self, channel: &str, kind: HookKind) -> Arc<WebhookMetrics> {
        let slot = kind as usize;
        if let Some(c) = self.counters.get(channel).and_then(|k| k[slot].clone()) {
            return c;
        }
        if self.counters.len() >= TARGET_CACHE {
            self.counters.clear();
        }
        let c = Arc::new(WebhookMetrics::new(channel, kind.metric_label()));
        self.counters.entry(channel.to_string()).or_default()[slot] = Some(c.clone());
        c
    }

    /// `raw` taken apart, or why it cannot be posted to.
    fn target(&mut self, raw: &str) -> Result<Arc<WebhookUrl>, ()> {
        if let Some(t) = self.targets.get(raw) {
            return Ok(t.clone());
        }
        let mut url = match url::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => return Err(()),
        };
        let user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8_lossy()
            .to_string();
        let password = url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .to_string()
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let target = Arc::new(WebhookUrl {
            dest: self.destination(&url),
            shown: redact::url(raw),
            url,
            user,
            password,
        });
        if self.targets.len() >= TARGET_CACHE {
            self.targets.clear();
        }
        self.targets.insert(raw.to_string(), target.clone());
        Ok(target)
    }

    fn destination(&mut self, url: &url::Url) -> Arc<Destination> {
        let key = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let n = self.settings.max_per_destination;
        self.destinations
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Destination {
                    limit: Semaphore::new(n),
                    pending: Default::default(),
                })
            })
            .clone()
    }

    /// Counts a delivery in its destination's; past the cap, the oldest are told to give up.
    fn admit(&mut self, dest: &Arc<Destination>, first: f64) -> (Admitted, CancellationToken) {
        self.next_seq += 1;
        let key = ((first.max(0.0) * 1000.0) as u64, self.next_seq);
        let give_up = CancellationToken::new();
        let cap = self.settings.max_pending_per_destination;
        let crowded_out = dest.pending.lock().admit(key, give_up.clone(), cap);
        self.pending_total.fetch_add(1, Ordering::Relaxed);
        self.pending_total
            .fetch_sub(crowded_out.len(), Ordering::Relaxed);
        for t in crowded_out {
            t.cancel();
        }
        let admitted = Admitted {
            dest: dest.clone(),
            key,
            total: self.pending_total.clone(),
        };
        (admitted, give_up)
    }
}

impl Actor for Webhooks {
    type Context = Context<Self>;
}

/// Delay before attempt `attempt + 1` (attempt counts from 1), with ±20 % jitter.
pub fn backoff(settings: &WebhookSettings, attempt: u32) -> Duration {
    let base = settings.initial_backoff * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
    let capped = base.min(settings.max_backoff);
    Duration::from_secs_f64(capped * (0.8 + 0.4 * fastrand::f64()))
}

impl Handler<PostWebhook> for Webhooks {
    type Result = ResponseActFuture<Self, Result<(), crate::store::StoreError>>;

    fn handle(&mut self, job: PostWebhook, _ctx: &mut Context<Self>) -> Self::Result {
        let first = crate::actors::now_secs();
        // The embedded store does not outlive the process: nothing to save the job in.
        if self.store.kind() == "memory" {
            self.attempt(None, job, first);
            return Box::pin(fut::ready(Ok(())));
        }
        let id = crate::message::new_id();
        let saved = job_json(&job, first, &self.node);
        let store = self.store.clone();
        Box::pin(
            async move { store.save_webhook(&id, &saved).await.map(|()| id) }
                .into_actor(self)
                .map(move |res, act, _| {
                    let id = res?;
                    act.attempt(Some(id), job, first);
                    Ok(())
                }),
        )
    }
}

impl Handler<ResumeWebhook> for Webhooks {
    type Result = ();

    fn handle(&mut self, r: ResumeWebhook, _ctx: &mut Context<Self>) {
        r.job.log.info(
            r.job.message_id.as_deref(),
            format!(
                "Resuming the delivery of a {} saved before a restart",
                r.job.kind.noun()
            ),
        );
        self.attempt(Some(r.id), r.job, r.first_attempt);
    }
}

impl Webhooks {
    /// Tries `job` until it is accepted or its time is up, then forgets the saved copy.
    fn attempt(&mut self, id: Option<String>, job: PostWebhook, first: f64) {
        let store = self.store.clone();
        let forget = move || {
            if let Some(id) = id {
                actix_rt::spawn(async move {
                    let _ = store.delete_webhook(&id).await;
                });
            }
        };
        let counters = self.counters(job.log.id(), job.kind);
        let Ok(target) = self.target(&job.url) else {
            counters.failures.increment(1);
            job.log.log(
                crate::logs::ERROR,
                job.message_id.as_deref(),
                format!(
                    "Not delivering {} to {}: not an http(s) URL",
                    job.kind.noun(),
                    redact::url(&job.url)
                ),
            );
            forget();
            return;
        };
        let client = self.client.clone();
        let settings = self.settings.clone();
        // Taken now, in the order the webhooks came; waited for in the task.
        let mut turn = job
            .message_id
            .as_ref()
            .map(|mid| self.lanes.join(&format!("{mid} {}", job.url)));
        let (admitted, crowded) = self.admit(&target.dest, first);
        actix_rt::spawn(async move {
            let _admitted = admitted;
            // Given up to make room for newer deliveries to the same destination.
            let crowded_out = |attempts: u32, why: &str| {
                counters.failures.increment(1);
                crate::telemetry::limit_reached(job.log.id(), Limit::WebhooksPending);
                job.log.log(
                    crate::logs::ERROR,
                    job.message_id.as_deref(),
                    format!(
                        "Giving up delivering {} to {}: {} newer deliveries to this destination are waiting ([webhooks] max_pending_per_destination){why} (attempts: {attempts}, waited {:.0} s)",
                        job.kind.noun(),
                        target.shown,
                        settings.max_pending_per_destination,
                        crate::actors::now_secs() - first
                    ),
                );
            };
            if let Some(turn) = turn.as_mut() {
                tokio::select! {
                    () = turn.wait() => {}
                    () = crowded.cancelled() => {
                        crowded_out(0, " before its first attempt");
                        forget();
                        return;
                    }
                }
            }
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let mut req = client
                    .post(target.url.clone())
                    .header("Content-Type", "application/json")
                    .body(job.body.clone());
                if let Some(token) = &job.token {
                    req = req.header("Authorization", format!("Token {token}"));
                } else if !target.user.is_empty() || target.password.is_some() {
                    req = req.basic_auth(&target.user, target.password.as_ref());
                }
                let shown_url = &target.shown;
                let outcome = {
                    let _permit = tokio::select! {
                        permit = target.dest.limit.acquire() => permit,
                        () = crowded.cancelled() => {
                            crowded_out(attempt - 1, "");
                            forget();
                            return;
                        }
                    };
                    match req.send().await {
                        Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
                        Ok(resp) => Err((
                            WebhookOutcome::HttpError,
                            format!("HTTP {}", resp.status().as_u16()),
                        )),
                        Err(e) if e.is_timeout() => {
                            Err((WebhookOutcome::Timeout, "timed out".to_string()))
                        }
                        Err(e) if e.is_connect() => Err((
                            WebhookOutcome::ConnectionFailed,
                            "connection failed".to_string(),
                        )),
                        Err(_) => {
                            Err((WebhookOutcome::RequestFailed, "request failed".to_string()))
                        }
                    }
                };
                let mid = job.message_id.as_deref();
                match outcome {
                    Ok(status) => {
                        counters.attempt(WebhookOutcome::Delivered);
                        job.log.info(
                            mid,
                            format!(
                                "Delivered {} to {shown_url}: HTTP {status} (attempt {attempt})",
                                job.kind.noun()
                            ),
                        );
                        forget();
                        return;
                    }
                    Err((outcome, why)) => {
                        counters.attempt(outcome);
                        if crowded.is_cancelled() {
                            crowded_out(attempt, &format!("; the last attempt: {why}"));
                            forget();
                            return;
                        }
                        let delay = backoff(&settings, attempt);
                        let elapsed = crate::actors::now_secs() - first + delay.as_secs_f64();
                        if elapsed > settings.retry_for {
                            counters.failures.increment(1);
                            job.log.log(
                                crate::logs::ERROR,
                                mid,
                                format!(
                                    "Giving up delivering {} to {shown_url}: {why} (attempt {attempt}, retried for {:.0} s)",
                                    job.kind.noun(),
                                    crate::actors::now_secs() - first
                                ),
                            );
                            forget();
                            return;
                        }
                        job.log.warn(
                            mid,
                            format!(
                                "Delivering {} to {shown_url} failed: {why} (attempt {attempt}); retrying in {:.1} s",
                                job.kind.noun(),
                                delay.as_secs_f64()
                            ),
                        );
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = crowded.cancelled() => {
                                crowded_out(attempt, &format!("; the last attempt: {why}"));
                                forget();
                                return;
                            }
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_and_encoded() {
        let vars = TemplateVars {
            message_id: Some("abc"),
            channel_id: Some("c1"),
            event_type: Some("submitted"),
            to: Some("+27 82"),
            from: None,
        };
        assert_eq!(
            expand_url(
                "http://h/{channel_id}/{message_id}?t={event_type}&to={to}&f={from}",
                &vars
            ),
            "http://h/c1/abc?t=submitted&to=%2B27%2082&f="
        );
    }

    #[test]
    fn past_the_cap_the_oldest_pending_delivery_is_given_up() {
        let mut p = Pending::default();
        let tokens: Vec<CancellationToken> = (0..4).map(|_| CancellationToken::new()).collect();
        assert!(p.admit((1000, 1), tokens[0].clone(), 2).is_empty());
        assert!(p.admit((2000, 2), tokens[1].clone(), 2).is_empty());
        // A resumed delivery, first tried before both: the one given up is the oldest other.
        let out = p.admit((500, 3), tokens[2].clone(), 2);
        assert_eq!(out.len(), 1);
        out[0].cancel();
        assert!(tokens[0].is_cancelled() && !tokens[1].is_cancelled());
        assert!(
            !p.settle((1000, 1)),
            "the one given up is no longer counted"
        );
        assert_eq!(p.len(), 2);
        // The one just admitted is never the one given up.
        let out = p.admit((3000, 4), tokens[3].clone(), 1);
        assert_eq!(out.len(), 2);
        assert_eq!(p.len(), 1);
        assert!(p.settle((3000, 4)));
        assert!(p.is_empty());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let s = WebhookSettings::default();
        let d1 = backoff(&s, 1).as_secs_f64();
        let d5 = backoff(&s, 5).as_secs_f64();
        assert!((0.8..=1.2).contains(&d1), "{d1}");
        assert!((12.8..=19.2).contains(&d5), "{d5}");
        assert!(backoff(&s, 40).as_secs_f64() <= 360.0);
    }
}
