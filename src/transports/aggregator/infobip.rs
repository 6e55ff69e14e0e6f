//! Channel type `infobip`: Infobip SMS (API v3, `POST {base_url}/sms/3/messages`, JSON,
//! `Authorization: App <api_key>` or Basic `username:password`). Every account has its own
//! base URL (`https://xxxxx.api.infobip.com`); `https://api.infobip.com` also answers.
//!
//! Callbacks (`{public}/channels/{id}/<action>`, JSON):
//! - `inbound`: the MO webhook set in the Infobip portal (`results[]`: `messageId`, `from`,
//!   `to`, `text`, `receivedAt`, `keyword`, `smsCount`, ...; `messageCount`), or the MMS one
//!   (MO_MMS_2: `message` is a list of segments, `{"contentType": "text/plain", "value"}`
//!   for text, `{"contentType", "url"}` for media): the text segments make the content, the
//!   media URLs go to `transport_metadata.infobip.media`. A message without text (an empty
//!   SMS, an MMS of pictures only) is answered 200 and ignored (logged), not passed on empty;
//! - `status`: delivery reports (`results[]`: `messageId`, `status{groupId, groupName, id,
//!   name, description}`, `error`, `doneAt`, ...). Each send names it as the message's
//!   `webhooks.delivery.url` when the public listener is on.
//!
//! Quirks: the send gives our message id as the destination's `messageId`, which Infobip
//! keeps and every report names, so a report finds its message without the id map (which
//! is still kept, for ids that are not hornbill's own format). Success is `status.groupId` 1
//! (PENDING) or 3 (DELIVERED) on `messages[0]`; any other group is a final refusal. Courier
//! sends the v1 field name `from`; v3 documents `sender`, which is sent here. With
//! intermediate reports on, `DELIVERED_TO_OPERATOR` (group DELIVERED, not yet the handset) is
//! pending, not delivered; the EXPIRED group (validity ran out without a handset receipt) is
//! final, so it is failed, where courier says "sent". Addresses are kept as Infobip gives
//! them (international, no `+`); a leading `+` is taken off destinations.

use crate::message::{DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, Provider, ProviderRequest, ProviderResponse, Received, Refusal, Report,
    RequestBody, SendContext, SendOutcome,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

const BASE: &str = "https://api.infobip.com";

fn default_base() -> String {
    BASE.into()
}

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InfobipConfig {
    /// API key (`Authorization: App <key>`); or `username` and `password`.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Sender id or number; the account's default sender when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// The account's base URL.
    #[serde(default = "default_base")]
    pub base_url: String,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for InfobipConfig {
    fn check(&mut self) -> Result<(), String> {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        match (set(&self.api_key), set(&self.username), set(&self.password)) {
            (true, false, false) | (false, true, true) => {}
            (true, _, _) => return Err("give api_key or username and password, not both".into()),
            _ => return Err("api_key, or username and password, required".into()),
        }
        crate::transports::check_http_url("base_url", &self.base_url)?;
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `infobip` channel type.
pub type InfobipFactory = aggregator::Factory<Infobip>;

impl aggregator::HttpType for Infobip {
    const TYPE: &'static str = "infobip";
    const TRANSPORT_TYPE: &'static str = "sms";
    const ACTIONS: &'static [&'static str] = &["inbound", "status"];
    type Config = InfobipConfig;

    fn new(cfg: InfobipConfig, _cx: &aggregator::StartContext) -> Self {
        Infobip { cfg }
    }
}

pub struct Infobip {
    pub cfg: InfobipConfig,
}

/// Infobip's status groups (`status.groupName`), refined by `status.name`.
fn report_status(group: &str, name: &str) -> Option<DeliveryStatus> {
    Some(match group {
        "DELIVERED" if name == "DELIVERED_TO_OPERATOR" => DeliveryStatus::Pending,
        "DELIVERED" => DeliveryStatus::Delivered,
        "PENDING" => DeliveryStatus::Pending,
        "UNDELIVERABLE" | "REJECTED" | "EXPIRED" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// Whether a report's `messageId` is one of ours (a Vumi id: 32 lower-case hex digits).
/// Any other id (an application's own message ids, or one Infobip chose) is looked up in
/// the provider id map the driver keeps.
fn ours(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Infobip's reason in an error answer (v3 `description`, or v1/v2
/// `requestError.serviceException.text`).
fn error_text(body: &Value) -> Option<String> {
    let v3 = body["description"].as_str();
    let v2 = body["requestError"]["serviceException"]["text"].as_str();
    v3.or(v2).map(|s| format!("Infobip: {s}"))
}

/// The `results` array of a callback, or a 400.
fn results(cb: &Callback) -> Result<Vec<Map<String, Value>>, Refusal> {
    let body: Value = serde_json::from_slice(&cb.body)
        .map_err(|e| Refusal::bad_request(format!("unable to parse request JSON: {e}")))?;
    let list = body
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| Refusal::bad_request("field 'results' required"))?;
    list.iter()
        .map(|r| {
            r.as_object()
                .cloned()
                .ok_or_else(|| Refusal::bad_request("results must be objects"))
        })
        .collect()
}

/// The text of an inbound result, and its media: an SMS's `text`, or the `text/plain`
/// segments of an MMS's `message` (`[{"contentType", "value"}]`, joined by line breaks;
/// segments with a `url` are its media: `{"url", "content_type"}`). A result with neither
/// `text` nor a `message` list is a 400.
fn inbound_content(r: &Map<String, Value>) -> Result<(String, Vec<Value>), Refusal> {
    if let Some(text) = r.get("text").and_then(Value::as_str) {
        return Ok((text.to_string(), Vec::new()));
    }
    let Some(segments) = r.get("message").and_then(Value::as_array) else {
        return Err(Refusal::bad_request("field 'results[].text' required"));
    };
    let mut texts = Vec::new();
    let mut media = Vec::new();
    for segment in segments {
        let kind = segment["contentType"].as_str().unwrap_or("");
        if let Some(url) = segment["url"].as_str() {
            media.push(json!({"url": url, "content_type": kind}));
        } else if kind.to_ascii_lowercase().starts_with("text/plain")
            && let Some(value) = segment["value"].as_str()
            && !value.is_empty()
        {
            texts.push(value);
        }
    }
    Ok((texts.join("\n"), media))
}

/// A string field of a result, or a 400 naming it.
fn required<'a>(r: &'a Map<String, Value>, name: &str) -> Result<&'a str, Refusal> {
    r.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Refusal::bad_request(format!("field 'results[].{name}' required")))
}

impl Provider for Infobip {
    fn name(&self) -> &'static str {
        "infobip"
    }

    fn secrets(&self) -> Vec<String> {
        [&self.cfg.api_key, &self.cfg.password]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    fn build_send(&self, msg: &Message, cx: &SendContext) -> Result<ProviderRequest, String> {
        let to = msg
            .to_addr
            .as_deref()
            .map(|t| t.trim_start_matches('+'))
            .filter(|t| !t.is_empty())
            .ok_or("The message has no to address")?;
        let mut message = json!({
            "destinations": [{"to": to, "messageId": msg.message_id}],
            "content": {"text": msg.content.clone().unwrap_or_default()},
        });
        if let Some(from) = msg.from_addr.clone().or_else(|| self.cfg.from.clone())
            && !from.is_empty()
        {
            message["sender"] = json!(from.trim_start_matches('+'));
        }
        if let Some(url) = cx.callback("status") {
            message["webhooks"] = json!({"delivery": {
                "url": url, "intermediateReport": true, "contentType": "application/json"}});
        }
        let base = self.cfg.base_url.trim_end_matches('/');
        let req = ProviderRequest::new(
            "POST",
            format!("{base}/sms/3/messages"),
            RequestBody::Json(json!({"messages": [message]})),
        )
        .header("Accept", "application/json");
        match (&self.cfg.api_key, &self.cfg.username, &self.cfg.password) {
            (Some(key), _, _) if !key.is_empty() => {
                Ok(req.header("Authorization", format!("App {key}")))
            }
            (_, Some(user), Some(password)) => Ok(req.basic(user, password)),
            _ => Err("The channel has no Infobip credentials".into()),
        }
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
        let Some(first) = body["messages"].get(0) else {
            return SendOutcome::Failed("Infobip: no message in the answer".into());
        };
        let status = &first["status"];
        match status["groupId"].as_u64() {
            Some(1) | Some(3) => SendOutcome::Accepted(
                first["messageId"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            ),
            _ => {
                let name = status["name"]
                    .as_str()
                    .or(status["groupName"].as_str())
                    .map(str::to_string)
                    .or_else(|| {
                        status["groupId"]
                            .as_u64()
                            .map(|g| format!("status group {g}"))
                    })
                    .unwrap_or_else(|| "no status".into());
                let mut reason = format!("Infobip: {name}");
                if let Some(d) = status["description"].as_str() {
                    reason = format!("{reason}: {d}");
                }
                SendOutcome::Failed(reason)
            }
        }
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        match cb.action.as_str() {
            "inbound" => {
                let mut messages = Vec::new();
                let mut without_text = 0;
                for r in results(cb)? {
                    let id = required(&r, "messageId")?;
                    let from = required(&r, "from")?;
                    let to = required(&r, "to")?;
                    let (text, media) = inbound_content(&r)?;
                    if text.is_empty() {
                        without_text += 1;
                        continue;
                    }
                    let mut meta: Map<String, Value> = [
                        "messageId",
                        "receivedAt",
                        "keyword",
                        "cleanText",
                        "smsCount",
                        "callbackData",
                        "pairedMessageId",
                    ]
                    .iter()
                    .filter_map(|k| r.get(*k).map(|v| (k.to_string(), v.clone())))
                    .collect();
                    meta.insert("message_id".into(), Value::String(id.to_string()));
                    if !media.is_empty() {
                        meta.insert("media".into(), Value::Array(media));
                    }
                    messages.push(Inbound {
                        group: None,
                        media: Vec::new(),
                        from: from.to_string(),
                        to: to.to_string(),
                        content: Some(text),
                        metadata: meta,
                    });
                }
                if messages.is_empty() {
                    let why = if without_text > 0 {
                        format!("no text in the callback's {without_text} message(s)")
                    } else {
                        "no messages in the callback".into()
                    };
                    return Ok((Received::Ignored(why), aggregator::accepted("Ignored")));
                }
                Ok((
                    Received::Messages(messages),
                    aggregator::accepted("Message Accepted"),
                ))
            }
            "status" => {
                let mut reports = Vec::new();
                for r in results(cb)? {
                    let id = required(&r, "messageId")?;
                    let status = r.get("status").cloned().unwrap_or(Value::Null);
                    let group = status["groupName"].as_str().ok_or_else(|| {
                        Refusal::bad_request("field 'results[].status.groupName' required")
                    })?;
                    let name = status["name"].as_str().unwrap_or("");
                    let mapped = report_status(group, name).ok_or_else(|| {
                        Refusal::bad_request(format!(
                            "unknown status '{group}', must be one of 'DELIVERED', 'EXPIRED', 'PENDING', 'REJECTED', 'UNDELIVERABLE'"
                        ))
                    })?;
                    let mut detail = if name.is_empty() {
                        group.to_string()
                    } else {
                        format!("{group}/{name}")
                    };
                    if let Some(e) = r.get("error").and_then(|e| e["name"].as_str())
                        && e != "NO_ERROR"
                    {
                        detail = format!("{detail}: {e}");
                    }
                    reports.push(Report {
                        provider_id: Some(id.to_string()),
                        message_id: ours(id).then(|| id.to_string()),
                        status: mapped,
                        detail,
                    });
                }
                if reports.is_empty() {
                    return Ok((
                        Received::Ignored("no reports in the callback".into()),
                        aggregator::accepted("Ignored"),
                    ));
                }
                Ok((
                    Received::Reports(reports),
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

    fn parse(config: &Value) -> Result<InfobipConfig, String> {
        aggregator::parse_config(config)
    }

    fn ib() -> Infobip {
        Infobip {
            cfg: parse(&json!({"api_key": "k3y-secret", "from": "2020"})).unwrap(),
        }
    }

    fn r(status: u16, body: &str) -> ProviderResponse {
        ProviderResponse::new(status, body)
    }

    fn callback(action: &str, body: &str) -> Callback {
        Callback::for_test(action, "", "application/json", body)
    }

    #[test]
    fn credentials_are_one_kind_or_the_other() {
        assert!(parse(&json!({"username": "u", "password": "p"})).is_ok());
        assert!(parse(&json!({"username": "u"})).is_err());
        assert!(parse(&json!({"api_key": "k", "username": "u", "password": "p"})).is_err());
        assert!(parse(&json!({})).is_err());
        assert!(parse(&json!({"api_key": "k", "transliteration": "x"})).is_err());
    }

    #[test]
    fn send_answers() {
        let ok = r#"{"messages":[{"status":{"groupId":1,"groupName":"PENDING","id":26,"name":"PENDING_ACCEPTED","description":"Message sent to next instance"},"messageId":"0191e180-7d60-7000-aded-7d8b151cbd5b","destination":"250788383383"}]}"#;
        assert_eq!(
            ib().read_send(&r(200, ok)),
            SendOutcome::Accepted(Some("0191e180-7d60-7000-aded-7d8b151cbd5b".into()))
        );
        let rejected = r#"{"messages":[{"status":{"groupId":5,"groupName":"REJECTED","id":12,"name":"REJECTED_NOT_ENOUGH_CREDITS","description":"Not enough credits"}}]}"#;
        assert_eq!(
            ib().read_send(&r(200, rejected)),
            SendOutcome::Failed("Infobip: REJECTED_NOT_ENOUGH_CREDITS: Not enough credits".into())
        );
        assert_eq!(
            ib().read_send(&r(200, r#"{"messages":[{"status":{"groupId": 2}}]}"#)),
            SendOutcome::Failed("Infobip: status group 2".into())
        );
        let unauthorized = r#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#;
        assert_eq!(
            ib().read_send(&r(401, unauthorized)),
            SendOutcome::Failed("HTTP 401: Infobip: Invalid login details".into())
        );
        assert!(matches!(
            ib().read_send(&r(429, "{}")),
            SendOutcome::Retry(_)
        ));
        assert!(matches!(
            ib().read_send(&r(502, "bad gateway")),
            SendOutcome::Retry(_)
        ));
    }

    #[test]
    fn the_send_names_our_id_and_the_report_url() {
        let msg = Message::new(Some("+250788383383".into()), None, Some("Hi".into()));
        let cx = SendContext {
            channel_id: "c",
            callback_base: Some("https://hb.example/channels/c"),
        };
        let req = ib().build_send(&msg, &cx).unwrap();
        assert_eq!(req.url, "https://api.infobip.com/sms/3/messages");
        assert!(
            req.headers
                .contains(&("Authorization".into(), "App k3y-secret".into()))
        );
        let RequestBody::Json(body) = req.body else {
            panic!("a JSON body")
        };
        assert_eq!(
            body,
            json!({"messages": [{
                "destinations": [{"to": "250788383383", "messageId": msg.message_id}],
                "content": {"text": "Hi"},
                "sender": "2020",
                "webhooks": {"delivery": {"url": "https://hb.example/channels/c/status",
                    "intermediateReport": true, "contentType": "application/json"}}}]})
        );
    }

    #[test]
    fn mms_text_segments_are_the_content_and_media_the_metadata() {
        let mms = r#"{"results":[{"messageId":"m1","from":"41793026727","to":"25256",
            "message":[{"contentType":"text/plain","value":"Look"},
                       {"contentType":"image/png","url":"https://m.example/1.png"},
                       {"contentType":"TEXT/PLAIN; charset=utf-8","value":"here"}]}]}"#;
        let (received, _) = ib().receive(&callback("inbound", mms)).unwrap();
        let Received::Messages(list) = received else {
            panic!("a message")
        };
        assert_eq!(list[0].content.as_deref(), Some("Look\nhere"));
        assert_eq!(
            list[0].metadata["media"],
            json!([{"url": "https://m.example/1.png", "content_type": "image/png"}])
        );
        let pictures_only = r#"{"results":[{"messageId":"m2","from":"4179","to":"25256",
            "message":[{"contentType":"image/png","url":"https://m.example/2.png"}]},
            {"messageId":"m3","from":"4179","to":"25256","text":""}]}"#;
        let (received, answer) = ib().receive(&callback("inbound", pictures_only)).unwrap();
        assert_eq!(
            received,
            Received::Ignored("no text in the callback's 2 message(s)".into())
        );
        assert!(answer.body.contains("Ignored"));
        let neither = r#"{"results":[{"messageId":"m4","from":"4179","to":"25256"}]}"#;
        let refused = ib().receive(&callback("inbound", neither)).unwrap_err();
        assert_eq!(refused.response.status, 400);
    }

    #[test]
    fn report_statuses() {
        let cases = [
            (
                "DELIVERED",
                "DELIVERED_TO_HANDSET",
                Some(DeliveryStatus::Delivered),
            ),
            (
                "DELIVERED",
                "DELIVERED_TO_OPERATOR",
                Some(DeliveryStatus::Pending),
            ),
            ("PENDING", "PENDING_ENROUTE", Some(DeliveryStatus::Pending)),
            ("EXPIRED", "EXPIRED_EXPIRED", Some(DeliveryStatus::Failed)),
            ("REJECTED", "", Some(DeliveryStatus::Failed)),
            ("UNDELIVERABLE", "", Some(DeliveryStatus::Failed)),
            ("LOST", "", None),
        ];
        for (group, name, want) in cases {
            assert_eq!(report_status(group, name), want, "{group}/{name}");
        }
        let two = r#"{"results":[{"messageId":"0123456789abcdef0123456789abcdef","status":{"groupName":"PENDING"}},{"messageId":"12347","status":{"groupName":"DELIVERED"}}]}"#;
        let (received, _) = ib().receive(&callback("status", two)).unwrap();
        let Received::Reports(list) = received else {
            panic!("reports")
        };
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0].message_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(list[1].message_id, None);
        assert_eq!(list[1].provider_id.as_deref(), Some("12347"));
        assert_eq!(list[1].status, DeliveryStatus::Delivered);
        let bad = ib()
            .receive(&callback("status", r#"{"deliveryReport":[]}"#))
            .unwrap_err();
        assert_eq!(bad.response.status, 400);
    }
}
