//! Channel type `clickatell`: the Clickatell Platform HTTP API (`GET
//! {base_url}/messages/http/send?apiKey=..&to=..&content=..&from=..`), as courier uses it.
//! The API key travels in the URL: it is one of the provider's `secrets()`, so the driver
//! scrubs it (plain and URL-encoded) from every log line.
//!
//! Callbacks (`{public}/channels/{id}/<action>`, set in the Clickatell integration; JSON,
//! or form/query fields):
//! - `inbound`: the reply callback (`messageId`, `replyMessageId`, `fromNumber`, `toNumber`,
//!   `timestamp` in ms, `text`, `charset`, `keyword`, ...). With `charset` `ISO-8859-1` or
//!   `UTF-16BE` the text is URL-escaped bytes of that charset, decoded here;
//! - `status`: the status callback (`messageId` = the send's `apiMessageId`, `statusCode`,
//!   `status`, `statusDescription`, ...).
//!
//! Quirks: success is `messages[0].apiMessageId`; a refusal can be per message
//! (`accepted: false`, `error`) or for the whole request (top-level `error`, no messages).
//! Status code 4 ("received by recipient") is delivered here; courier says "sent". Courier
//! decodes UTF-16BE through a UTF-8 string, which turns every byte above 0x7F into `ý`;
//! here the bytes are decoded as they are (`%00%ED` is `í`). No delivery-report URL is
//! sent: Clickatell takes it from the integration. Addresses are kept as Clickatell gives
//! them (no `+`); a leading `+` is taken off `to` and `from` when sending.

use crate::message::{DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, Provider, ProviderRequest, ProviderResponse, Received, Refusal, Report,
    RequestBody, SendContext, SendOutcome, form_field, form_metadata, required_fields,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

const BASE: &str = "https://platform.clickatell.com";

fn default_base() -> String {
    BASE.into()
}

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClickatellConfig {
    pub api_key: String,
    /// The integration's two-way number; none for a one-way integration.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default = "default_base")]
    pub base_url: String,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for ClickatellConfig {
    fn check(&mut self) -> Result<(), String> {
        if self.api_key.is_empty() {
            return Err("api_key must not be empty".into());
        }
        crate::transports::check_http_url("base_url", &self.base_url)?;
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `clickatell` channel type.
pub type ClickatellFactory = aggregator::Factory<Clickatell>;

impl aggregator::HttpType for Clickatell {
    const TYPE: &'static str = "clickatell";
    const TRANSPORT_TYPE: &'static str = "sms";
    const ACTIONS: &'static [&'static str] = &["inbound", "status"];
    type Config = ClickatellConfig;

    fn new(cfg: ClickatellConfig, _cx: &aggregator::StartContext) -> Self {
        Clickatell { cfg }
    }
}

pub struct Clickatell {
    pub cfg: ClickatellConfig,
}

/// The fields of a callback: a JSON object's (values as text), else its query and form.
fn fields(cb: &Callback) -> Result<Vec<(String, String)>, Refusal> {
    Ok(aggregator::json_fields(cb)?.unwrap_or_else(|| cb.form()))
}

/// Clickatell's message status codes (`statusCode`), as the Platform documents them.
fn report_status(code: i64) -> Option<DeliveryStatus> {
    Some(match code {
        // 2 queued, 3 delivered to the gateway, 8 received by the gateway, 11 queued
        // for later delivery
        2 | 3 | 8 | 11 => DeliveryStatus::Pending,
        // 4 received by the recipient
        4 => DeliveryStatus::Delivered,
        // 1 message unknown, 5 error with the message, 6 cancelled, 7 error delivering,
        // 9 routing error, 10 expired, 12 out of credit, 14 maximum MT limit exceeded
        1 | 5 | 6 | 7 | 9 | 10 | 12 | 14 => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Undoes URL escaping (`%XX`, `+` for a space) into bytes.
fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The text of a reply callback in its `charset`.
fn decode(text: &str, charset: Option<&str>) -> String {
    match charset.map(str::to_ascii_uppercase).as_deref() {
        Some("ISO-8859-1") => unescape(text).into_iter().map(char::from).collect(),
        Some("UTF-16BE") => {
            let units: Vec<u16> = unescape(text)
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => text.to_string(),
    }
}

/// Clickatell's reason in an answer: a message's or the request's `error` (with its code).
fn error_text(item: &Value) -> Option<String> {
    let error = match &item["error"] {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("description")
            .or(o.get("message"))
            .and_then(Value::as_str)?
            .to_string(),
        _ => return None,
    };
    let mut text = format!("Clickatell: {error}");
    match &item["errorCode"] {
        Value::Null => {}
        Value::String(c) => text = format!("{text} ({c})"),
        c => text = format!("{text} ({c})"),
    }
    Some(text)
}

impl Provider for Clickatell {
    fn name(&self) -> &'static str {
        "clickatell"
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.cfg.api_key.clone()]
    }

    fn build_send(&self, msg: &Message, _cx: &SendContext) -> Result<ProviderRequest, String> {
        let to = msg
            .to_addr
            .as_deref()
            .map(|t| t.trim_start_matches('+'))
            .filter(|t| !t.is_empty())
            .ok_or("The message has no to address")?;
        let content = msg.content.clone().unwrap_or_default();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("apiKey", &self.cfg.api_key)
            .append_pair("content", &content);
        if let Some(from) = msg.from_addr.clone().or_else(|| self.cfg.from.clone())
            && !from.is_empty()
        {
            query.append_pair("from", from.trim_start_matches('+'));
        }
        query.append_pair("to", to);
        let base = self.cfg.base_url.trim_end_matches('/');
        Ok(ProviderRequest::new(
            "GET",
            format!("{base}/messages/http/send?{}", query.finish()),
            RequestBody::None,
        )
        .header("Accept", "application/json"))
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        let body = resp.json().unwrap_or(Value::Null);
        if let Some(outcome) = aggregator::status_outcome(resp) {
            return match (outcome, error_text(&body)) {
                (SendOutcome::Retry(_), Some(t)) => {
                    SendOutcome::Retry(format!("HTTP {}: {t}", resp.status))
                }
                (SendOutcome::Failed(_), Some(t)) => {
                    SendOutcome::Failed(format!("HTTP {}: {t}", resp.status))
                }
                (outcome, _) => outcome,
            };
        }
        let first = &body["messages"][0];
        let id = first["apiMessageId"].as_str().filter(|s| !s.is_empty());
        match id {
            Some(id) if first["accepted"] != Value::Bool(false) => {
                SendOutcome::Accepted(Some(id.to_string()))
            }
            _ => SendOutcome::Failed(
                error_text(first)
                    .or_else(|| error_text(&body))
                    .unwrap_or_else(|| "Clickatell: no apiMessageId in the answer".into()),
            ),
        }
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let form = fields(cb)?;
        match cb.action.as_str() {
            "inbound" => {
                let v = required_fields(&form, &["messageId", "fromNumber", "text"])?;
                let to = form_field(&form, "toNumber")
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .or_else(|| self.cfg.from.clone())
                    .unwrap_or_default();
                let mut meta = form_metadata(
                    &form,
                    &[
                        "messageId",
                        "replyMessageId",
                        "timestamp",
                        "charset",
                        "keyword",
                        "network",
                        "integrationName",
                    ],
                );
                meta.insert("message_id".into(), Value::String(v[0].to_string()));
                let inbound = Inbound {
                    group: None,
                    media: Vec::new(),
                    from: v[1].to_string(),
                    to,
                    content: Some(decode(v[2], form_field(&form, "charset"))),
                    metadata: meta,
                };
                Ok((
                    Received::Messages(vec![inbound]),
                    aggregator::accepted("Message Accepted"),
                ))
            }
            "status" => {
                let v = required_fields(&form, &["messageId", "statusCode"])?;
                let code = v[1].trim_matches('"');
                let status = code
                    .parse::<i64>()
                    .ok()
                    .and_then(report_status)
                    .ok_or_else(|| {
                        Refusal::bad_request(format!(
                            "unknown status '{code}', must be one of '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '14'"
                        ))
                    })?;
                let mut detail = format!("statusCode {code}");
                for k in ["status", "statusDescription"] {
                    if let Some(s) = form_field(&form, k).filter(|s| !s.is_empty()) {
                        detail = format!("{detail} {s}");
                    }
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
            other => Err(Refusal::bad_request(format!("no action {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: &Value) -> Result<ClickatellConfig, String> {
        aggregator::parse_config(config)
    }

    fn ct() -> Clickatell {
        Clickatell {
            cfg: parse(&json!({"api_key": "API-KEY+/x", "from": "+2020"})).unwrap(),
        }
    }

    fn r(status: u16, body: &str) -> ProviderResponse {
        ProviderResponse::new(status, body)
    }

    fn callback(action: &str, body: &str) -> Callback {
        Callback::for_test(action, "", "application/json", body)
    }

    #[test]
    fn the_send_is_a_get_with_the_key_in_the_query() {
        let msg = Message::new(Some("+250788383383".into()), None, Some("Unicode ☺".into()));
        let cx = SendContext {
            channel_id: "c",
            callback_base: None,
        };
        let req = ct().build_send(&msg, &cx).unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(
            req.url,
            "https://platform.clickatell.com/messages/http/send?apiKey=API-KEY%2B%2Fx&content=Unicode+%E2%98%BA&from=2020&to=250788383383"
        );
        let shown = aggregator::scrub(&req.url, &ct().secrets());
        assert!(!shown.contains("API-KEY"), "{shown}");
    }

    #[test]
    fn send_answers() {
        let ok = r#"{"messages":[{"apiMessageId":"id1002","accepted":true,"to":"12067799299","error":null}],"error":null}"#;
        assert_eq!(
            ct().read_send(&r(200, ok)),
            SendOutcome::Accepted(Some("id1002".into()))
        );
        let two_way = r#"{"messages":[],"error":"Two-Way integration error - From number is not related to integration"}"#;
        assert_eq!(
            ct().read_send(&r(200, two_way)),
            SendOutcome::Failed(
                "Clickatell: Two-Way integration error - From number is not related to integration"
                    .into()
            )
        );
        let refused = r#"{"messages":[{"apiMessageId":"","accepted":false,"to":"1","errorCode":105,"error":"Invalid destination address.","errorDescription":"The destination address you entered is not a valid phone number."}],"error":null}"#;
        assert_eq!(
            ct().read_send(&r(202, refused)),
            SendOutcome::Failed("Clickatell: Invalid destination address. (105)".into())
        );
        let bad_key = r#"{"messages":[],"errorCode":1,"error":"Invalid or missing Integration API Key","errorDescription":"Invalid or missing Integration API Key"}"#;
        assert_eq!(
            ct().read_send(&r(401, bad_key)),
            SendOutcome::Failed(
                "HTTP 401: Clickatell: Invalid or missing Integration API Key (1)".into()
            )
        );
        assert!(matches!(
            ct().read_send(&r(429, "Error")),
            SendOutcome::Retry(_)
        ));
        assert!(matches!(ct().read_send(&r(500, "")), SendOutcome::Retry(_)));
    }

    #[test]
    fn charsets() {
        assert_eq!(decode("hello%21", Some("ISO-8859-1")), "hello!");
        assert_eq!(decode("caf%E9", Some("ISO-8859-1")), "café");
        assert_eq!(decode("100%", Some("ISO-8859-1")), "100%");
        assert_eq!(decode("Hello World!", Some("UTF-8")), "Hello World!");
        let utf16 = "%00m%00e%00x%00i%00c%00o%00+%00k%00+%00t%00e%00n%00%ED%00a%00.%00.";
        assert_eq!(decode(utf16, Some("UTF-16BE")), "mexico k tenía..");
    }

    #[test]
    fn report_statuses() {
        assert_eq!(report_status(4), Some(DeliveryStatus::Delivered));
        assert_eq!(report_status(3), Some(DeliveryStatus::Pending));
        assert_eq!(report_status(5), Some(DeliveryStatus::Failed));
        assert_eq!(report_status(13), None);
        assert_eq!(report_status(-1), None);
        let (got, _) = ct()
            .receive(&callback(
                "status",
                r#"{"messageId":"msg1","statusCode":5}"#,
            ))
            .unwrap();
        assert_eq!(
            got,
            Received::Reports(vec![Report {
                provider_id: Some("msg1".into()),
                message_id: None,
                status: DeliveryStatus::Failed,
                detail: "statusCode 5".into(),
            }])
        );
        let unknown = ct()
            .receive(&callback(
                "status",
                r#"{"messageId":"msg1","statusCode":-1}"#,
            ))
            .unwrap_err();
        assert!(unknown.reason.starts_with("unknown status '-1'"));
        let missing = ct().receive(&callback("status", "{}")).unwrap_err();
        assert_eq!(missing.reason, "field 'messageId' required");
    }
}
