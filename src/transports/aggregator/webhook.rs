//! Channel type `webhook`: a provider reached by HTTP. Each outbound message is POSTed as
//! Junebug's message object (JSON) to `url`, with `Authorization: Token <auth_token>` when
//! one is set. 2xx is an ack (the provider's id from `message_id` or `result.message_id` in
//! its JSON answer, else ours); 408, 429, 5xx and connection failures mean "provider
//! unavailable", and the message is retried with backoff by its channel; any other status is
//! a nack with the status (and the provider's answer) as reason. Outbound only. It runs on
//! the aggregator driver (`aggregator.rs`).

use crate::message::Message;
use crate::transports::aggregator::{
    self, Provider, ProviderRequest, ProviderResponse, Received, Refusal, RequestBody, SendContext,
    SendOutcome,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
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

impl aggregator::TypeConfig for WebhookConfig {
    fn check(&mut self) -> Result<(), String> {
        crate::transports::check_http_url("url", &self.url)?;
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `webhook` channel type.
pub type WebhookFactory = aggregator::Factory<Webhook>;

impl aggregator::HttpType for Webhook {
    const TYPE: &'static str = "webhook";
    const TRANSPORT_TYPE: &'static str = "http_api";
    const ACTIONS: &'static [&'static str] = &[];
    type Config = WebhookConfig;

    fn new(cfg: WebhookConfig, _cx: &aggregator::StartContext) -> Self {
        Webhook { cfg }
    }
}

pub struct Webhook {
    pub cfg: WebhookConfig,
}

impl Provider for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn secrets(&self) -> Vec<String> {
        self.cfg.auth_token.iter().cloned().collect()
    }

    fn build_send(&self, msg: &Message, cx: &SendContext) -> Result<ProviderRequest, String> {
        let body = RequestBody::Json(msg.api_view(cx.channel_id));
        let mut req = ProviderRequest::new("POST", self.cfg.url.clone(), body);
        if let Some(t) = &self.cfg.auth_token {
            req = req.header("Authorization", format!("Token {t}"));
        }
        Ok(req)
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        if let Some(outcome) = aggregator::status_outcome(resp) {
            return outcome;
        }
        let body = resp.json().unwrap_or(Value::Null);
        let id = body
            .get("message_id")
            .or_else(|| body.get("result").and_then(|r| r.get("message_id")))
            .and_then(Value::as_str)
            .map(str::to_string);
        SendOutcome::Accepted(id)
    }

    fn receive(&self, _cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        Err(Refusal::bad_request(
            "the webhook channel type takes no callbacks",
        ))
    }

    fn maps_ids(&self) -> bool {
        false
    }
}
