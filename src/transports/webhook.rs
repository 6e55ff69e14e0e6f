//! Channel type `webhook`: a provider reached by HTTP. Each outbound message is POSTed as
//! Junebug's message object (JSON) to `url`, with `Authorization: Token <auth_token>` when
//! one is set. 2xx is an ack (the provider's id from `message_id` or `result.message_id` in
//! its JSON answer, else ours); 408, 429, 5xx and connection failures mean "provider
//! unavailable", and the message is retried with backoff by its channel; any other status is
//! a nack with the status as reason. Outbound only: inbound comes with the HTTP callbacks of
//! the aggregator channel types.

use super::{
    TransportCommand, TransportContext, TransportError, TransportFactory, TransportReport,
};
use crate::message::{Level, Message};
use futures::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::Value;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub auth_token: Option<String>,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    #[serde(default)]
    pub transport_type: Option<String>,
}

fn parse(config: &Value) -> Result<WebhookConfig, String> {
    let cfg: WebhookConfig = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
    match url::Url::parse(&cfg.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => return Err("url must be an http(s) URL".into()),
    }
    if cfg.timeout <= 0.0 {
        return Err("timeout must be above 0".into());
    }
    Ok(cfg)
}

pub struct WebhookFactory;

impl TransportFactory for WebhookFactory {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn transport_type(&self, config: &Value) -> String {
        super::configured_transport_type(config, "http_api")
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        parse(config).map(|_| ())
    }

    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>> {
        let cfg = parse(config);
        Box::pin(async move { run(cfg.map_err(TransportError::Other)?, ctx).await })
    }
}

/// What one attempt came to.
enum Outcome {
    Accepted(String),
    Unavailable(String),
    Refused(String),
}

async fn post(client: &reqwest::Client, cfg: &WebhookConfig, msg: &Message, cid: &str) -> Outcome {
    let mut req = client
        .post(&cfg.url)
        .header("Content-Type", "application/json")
        .body(msg.api_view(cid).to_string());
    if let Some(t) = &cfg.auth_token {
        req = req.header("Authorization", format!("Token {t}"));
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let id = body
                .get("message_id")
                .or_else(|| body.get("result").and_then(|r| r.get("message_id")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| msg.message_id.clone());
            Outcome::Accepted(id)
        }
        Ok(resp) => {
            let code = resp.status().as_u16();
            if code == 408 || code == 429 || code >= 500 {
                Outcome::Unavailable(format!("HTTP {code}"))
            } else {
                Outcome::Refused(format!("HTTP {code}"))
            }
        }
        Err(e) if e.is_timeout() => Outcome::Unavailable("timed out".into()),
        Err(e) if e.is_connect() => Outcome::Unavailable("connection failed".into()),
        Err(_) => Outcome::Unavailable("request failed".into()),
    }
}

async fn run(cfg: WebhookConfig, mut ctx: TransportContext) -> Result<(), TransportError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(cfg.timeout))
        .build()
        .map_err(|e| TransportError::Other(e.to_string()))?;
    let cfg = Rc::new(cfg);
    let shown = crate::redact::url(&cfg.url);
    ctx.status(
        "webhook",
        Level::Ok,
        "started",
        &format!("Sending to {shown}"),
    );
    // The last reported state: true = available.
    let up = Rc::new(Cell::new(true));
    while let Some(TransportCommand::Send(msg)) = ctx.commands.recv().await {
        let (client, cfg, up, shown) = (client.clone(), cfg.clone(), up.clone(), shown.clone());
        let reports = ctx.reports.clone();
        let cid = ctx.channel_id.clone();
        tokio::task::spawn_local(async move {
            let outcome = post(&client, &cfg, &msg, &cid).await;
            let status = |level: Level, kind: &str, text: String| {
                let ev = crate::message::StatusEvent::new(&cid, "webhook", level, kind, &text);
                let _ = reports.send(TransportReport::Status(ev));
            };
            let report = match outcome {
                Outcome::Accepted(id) => {
                    if !up.replace(true) {
                        status(Level::Ok, "provider_ok", format!("{shown} answers again"));
                    }
                    TransportReport::Ack {
                        message_id: msg.message_id,
                        sent_message_id: id,
                    }
                }
                Outcome::Unavailable(why) => {
                    if up.replace(false) {
                        status(
                            Level::Degraded,
                            "provider_unavailable",
                            format!("{shown}: {why}"),
                        );
                    }
                    TransportReport::Nack {
                        message_id: msg.message_id,
                        reason: why,
                        retry: true,
                    }
                }
                Outcome::Refused(why) => TransportReport::Nack {
                    message_id: msg.message_id,
                    reason: why,
                    retry: false,
                },
            };
            let _ = reports.send(report);
        });
    }
    Ok(())
}
