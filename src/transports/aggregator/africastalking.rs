//! Channel type `africastalking`: Africa's Talking SMS (bulk messaging API, `POST
//! /version1/messaging`, form-encoded, `apiKey` header) and USSD (synchronous: each request
//! is answered `CON <text>` to continue or `END <text>` to close).
//!
//! Callbacks (set in the AT dashboard to `{public}/channels/{id}/<action>`):
//! - `inbound`: an SMS (`from`, `to`, `text`, `date`, `id`, `linkId`, `networkCode`);
//! - `status`: a delivery report (`id` = the send's `messageId`, `status`, `failureReason`);
//! - `ussd`: a USSD request (`sessionId`, `serviceCode`, `phoneNumber`, `text`: the whole
//!   path typed so far, `*`-separated, empty on the first request; the application gets the
//!   new part);
//! - `ussd_end`: the end-of-session notification (`sessionId`, `status`, ...): a session
//!   the user or network ended gets `close` at the application.
//!
//! Quirks: success is HTTP 201 with `SMSMessageData.Recipients[0].status == "Success"` (the
//! id is that recipient's `messageId`); a recipient `statusCode` of 500/501 is AT's own
//! failure and is retried, other recipient failures are final. Courier answers 400 to the
//! report statuses `Submitted` and `AbsentSubscriber`; AT documents them, so they are mapped
//! (pending, failed) instead.

use crate::message::{DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, Provider, ProviderRequest, ProviderResponse, Received, Refusal, Report,
    RequestBody, SendContext, SendOutcome, UssdRequest, UssdSettings, UssdStep, form_field,
    form_metadata, required_fields, ussd_defaults,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

const LIVE: &str = "https://api.africastalking.com";
const SANDBOX: &str = "https://api.sandbox.africastalking.com";

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AfricasTalkingConfig {
    /// The AT application's username (`sandbox` in the sandbox).
    pub username: String,
    pub api_key: String,
    /// Sender id or short code; AT's default sender when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// Use AT's sandbox.
    #[serde(default)]
    pub sandbox: bool,
    /// Replaces the API's base URL (a proxy, a test stub).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    #[serde(default = "ussd_defaults::request_timeout")]
    pub request_timeout: f64,
    #[serde(default = "ussd_defaults::timeout_message")]
    pub timeout_message: String,
    #[serde(default = "ussd_defaults::session_timeout")]
    pub ussd_session_timeout: f64,
    /// USSD sessions open at once on this node; a new one past it is refused.
    #[serde(default = "ussd_defaults::max_sessions")]
    pub max_ussd_sessions: usize,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for AfricasTalkingConfig {
    fn check(&mut self) -> Result<(), String> {
        if self.username.is_empty() || self.api_key.is_empty() {
            return Err("username and api_key must not be empty".into());
        }
        if let Some(b) = &self.base_url {
            crate::transports::check_http_url("base_url", b)?;
        }
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        ussd_defaults::check(
            self.max_ussd_sessions,
            self.request_timeout,
            self.ussd_session_timeout,
        )
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `africastalking` channel type.
pub type AfricasTalkingFactory = aggregator::Factory<AfricasTalking>;

impl aggregator::HttpType for AfricasTalking {
    const TYPE: &'static str = "africastalking";
    const TRANSPORT_TYPE: &'static str = "sms";
    const ACTIONS: &'static [&'static str] = &["inbound", "status", "ussd", "ussd_end"];
    type Config = AfricasTalkingConfig;

    fn new(cfg: AfricasTalkingConfig, _cx: &aggregator::StartContext) -> Self {
        AfricasTalking { cfg }
    }
}

pub struct AfricasTalking {
    pub cfg: AfricasTalkingConfig,
}

/// AT's delivery report words.
fn report_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "Success" => DeliveryStatus::Delivered,
        "Sent" | "Submitted" | "Buffered" => DeliveryStatus::Pending,
        "Rejected" | "Failed" | "Expired" | "AbsentSubscriber" => DeliveryStatus::Failed,
        _ => return None,
    })
}

impl Provider for AfricasTalking {
    fn name(&self) -> &'static str {
        "africastalking"
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.cfg.api_key.clone()]
    }

    fn build_send(&self, msg: &Message, _cx: &SendContext) -> Result<ProviderRequest, String> {
        let to = msg
            .to_addr
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("The message has no to address")?;
        let base = match (&self.cfg.base_url, self.cfg.sandbox) {
            (Some(b), _) => b.trim_end_matches('/'),
            (None, true) => SANDBOX,
            (None, false) => LIVE,
        };
        let mut fields = vec![
            ("username".to_string(), self.cfg.username.clone()),
            ("to".to_string(), to),
            (
                "message".to_string(),
                msg.content.clone().unwrap_or_default(),
            ),
        ];
        if let Some(from) = msg.from_addr.clone().or_else(|| self.cfg.from.clone())
            && !from.is_empty()
        {
            fields.push(("from".into(), from));
        }
        // A reply to a premium (on-demand) message must carry its linkId.
        if let Some(link) = msg
            .transport_metadata
            .get("africastalking")
            .and_then(|m| m.get("linkId"))
            .and_then(Value::as_str)
        {
            fields.push(("linkId".into(), link.to_string()));
        }
        Ok(ProviderRequest::new(
            "POST",
            format!("{base}/version1/messaging"),
            RequestBody::Form(fields),
        )
        .header("apiKey", self.cfg.api_key.clone())
        .header("Accept", "application/json"))
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        if let Some(outcome) = aggregator::status_outcome(resp) {
            return outcome;
        }
        let body = resp.json().unwrap_or(Value::Null);
        let Some(recipient) = body["SMSMessageData"]["Recipients"].get(0) else {
            let said = body["SMSMessageData"]["Message"]
                .as_str()
                .unwrap_or("no recipient in the answer");
            return SendOutcome::Failed(format!("Africa's Talking: {said}"));
        };
        let status = recipient["status"].as_str().unwrap_or("");
        if status == "Success" {
            let id = recipient["messageId"]
                .as_str()
                .filter(|id| !id.is_empty() && *id != "None")
                .map(str::to_string);
            return SendOutcome::Accepted(id);
        }
        let code = recipient["statusCode"].as_u64().unwrap_or(0);
        let reason = format!("Africa's Talking: {status} ({code})");
        if code == 500 || code == 501 {
            SendOutcome::Retry(reason)
        } else {
            SendOutcome::Failed(reason)
        }
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let form = cb.form();
        match cb.action.as_str() {
            "inbound" => {
                let v = required_fields(&form, &["from", "to", "text", "id"])?;
                let mut meta =
                    form_metadata(&form, &["id", "date", "linkId", "networkCode", "cost"]);
                meta.insert("message_id".into(), Value::String(v[3].to_string()));
                let inbound = Inbound {
                    group: None,
                    media: Vec::new(),
                    from: v[0].to_string(),
                    to: v[1].to_string(),
                    content: Some(v[2].to_string()),
                    metadata: meta,
                };
                Ok((
                    Received::Messages(vec![inbound]),
                    aggregator::accepted("Message Accepted"),
                ))
            }
            "status" => {
                let v = required_fields(&form, &["id", "status"])?;
                let status = report_status(v[1]).ok_or_else(|| {
                    Refusal::bad_request(format!(
                        "unknown status '{}', must be one of 'AbsentSubscriber', 'Buffered', 'Expired', 'Failed', 'Rejected', 'Sent', 'Submitted', 'Success'",
                        v[1]
                    ))
                })?;
                let mut detail = v[1].to_string();
                if let Some(why) = form_field(&form, "failureReason") {
                    detail = format!("{detail}: {why}");
                }
                let report = Report {
                    provider_id: Some(v[0].to_string()),
                    message_id: None,
                    status,
                    detail,
                };
                Ok((
                    Received::Reports(vec![report]),
                    aggregator::accepted("Status Update Accepted"),
                ))
            }
            "ussd" | "ussd_end" => {
                let v = required_fields(&form, &["sessionId", "serviceCode", "phoneNumber"])?;
                let end = cb.action == "ussd_end";
                let req = UssdRequest {
                    session_id: v[0].to_string(),
                    from: v[2].to_string(),
                    to: v[1].to_string(),
                    content: form_field(&form, "text").map(str::to_string),
                    cumulative: true,
                    new_without_content: false,
                    step: if end {
                        UssdStep::End
                    } else {
                        UssdStep::Continue
                    },
                    metadata: form_metadata(
                        &form,
                        &["sessionId", "networkCode", "text", "status", "input"],
                    ),
                };
                Ok((Received::Ussd(req), CallbackResponse::text(200, "")))
            }
            other => Err(Refusal::bad_request(format!("no action {other}"))),
        }
    }

    fn ussd_answer(&self, _req: &UssdRequest, text: &str, end: bool) -> CallbackResponse {
        let word = if end { "END" } else { "CON" };
        CallbackResponse::text(200, format!("{word} {text}"))
    }

    fn ussd(&self) -> Option<UssdSettings> {
        Some(UssdSettings {
            request_timeout: Duration::from_secs_f64(self.cfg.request_timeout),
            timeout_message: self.cfg.timeout_message.clone(),
            session_timeout: Duration::from_secs_f64(self.cfg.ussd_session_timeout),
            max_sessions: self.cfg.max_ussd_sessions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: &Value) -> Result<AfricasTalkingConfig, String> {
        aggregator::parse_config(config)
    }

    fn at() -> AfricasTalking {
        AfricasTalking {
            cfg: parse(&json!({"username": "u", "api_key": "k"})).unwrap(),
        }
    }

    #[test]
    fn send_answers() {
        let r = |status, body: &str| ProviderResponse::new(status, body);
        let ok = r#"{"SMSMessageData":{"Message":"Sent to 1/1","Recipients":[{"statusCode":101,"number":"+254711000001","status":"Success","cost":"KES 0.8000","messageId":"ATXid_1"}]}}"#;
        assert_eq!(
            at().read_send(&r(201, ok)),
            SendOutcome::Accepted(Some("ATXid_1".into()))
        );
        let dnd = r#"{"SMSMessageData":{"Message":"Sent to 0/1 Total Cost: 0","Recipients":[{"cost":"0","messageId":"None","number":"+2348","status":"DoNotDisturbRejection","statusCode":409}]}}"#;
        assert_eq!(
            at().read_send(&r(201, dnd)),
            SendOutcome::Failed("Africa's Talking: DoNotDisturbRejection (409)".into())
        );
        let busy = r#"{"SMSMessageData":{"Recipients":[{"status":"InternalServerError","statusCode":500}]}}"#;
        assert!(matches!(
            at().read_send(&r(201, busy)),
            SendOutcome::Retry(_)
        ));
        assert!(matches!(
            at().read_send(&r(429, "{}")),
            SendOutcome::Retry(_)
        ));
        assert!(matches!(
            at().read_send(&r(401, "{}")),
            SendOutcome::Failed(_)
        ));
    }
}
