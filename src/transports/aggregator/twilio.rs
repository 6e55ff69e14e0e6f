//! Channel type `twilio`: Twilio Programmable Messaging (REST API 2010-04-01, `POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP Basic
//! `AccountSid:AuthToken`), from a number (`from`) or a Messaging Service
//! (`messaging_service_sid`).
//!
//! Callbacks (`{public}/channels/{id}/<action>`):
//! - `inbound`: the number's (or service's) incoming-message webhook (`From`, `To`, `Body`,
//!   `MessageSid`, `AccountSid`, `NumMedia`, `MediaUrl{N}`, ...), answered with empty TwiML
//!   (no auto-reply);
//! - `status`: the `StatusCallback` each send names, `status?id=<our message id>`, so a
//!   report finds its message without the provider id map (`MessageStatus`, `MessageSid`,
//!   `ErrorCode`); one without any of them (a bare, signed request) is answered and ignored.
//!
//! Both are signed (`X-Twilio-Signature`: base64 HMAC-SHA1 with the auth token over the URL
//! Twilio called, then each POST parameter's name and value, sorted by name). Behind a proxy
//! `[public] base_url` must be the address Twilio is given, or every callback is refused
//! (403). As in Twilio's own validators, the URL is also tried without its port and with the
//! scheme's default port, since Twilio's signing is inconsistent about it.
//!
//! Send answers: 2xx with the Message resource (`sid` is the provider id); otherwise Twilio's
//! error object (`code`, `message`, `more_info`, `status`). 429 (code 20429) and 5xx are
//! retried; any other refusal is final, with Twilio's code in the reason (21610: the recipient
//! opted out with STOP). Status words follow Twilio's Message resource: `accepted`,
//! `scheduled`, `queued`, `sending` and `sent` are pending; `delivered`, `read` and
//! `partially_delivered` delivered; `undelivered`, `failed` and `canceled` failed. Courier
//! answers 400 to `sending`, `accepted`, `scheduled`, `canceled` and `partially_delivered`,
//! which Twilio documents, so they are mapped instead; other words are a 400.
//!
//! Not done: MMS sends (`MediaUrl`), splitting bodies over Twilio's 1600 characters (Twilio
//! refuses them, 21617, final), base64 `Body` decoding, JSON webhooks (`bodySHA256`) and
//! HMAC-SHA256 signatures. Inbound media URLs are kept in `transport_metadata.twilio.media`.

use crate::message::{DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, Provider, ProviderRequest, ProviderResponse, Received, Refusal, Report,
    RequestBody, SendContext, SendOutcome, form_field, form_metadata, required_fields,
};
use crate::transports::{Callback, CallbackResponse};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const LIVE: &str = "https://api.twilio.com";
/// Empty TwiML: Twilio sends nothing back to the user.
const TWIML_EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;
const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// Twilio's "Too Many Requests".
const CODE_THROTTLED: u64 = 20429;
/// Twilio's "Attempt to send to unsubscribed recipient" (the user sent STOP).
const CODE_OPTED_OUT: u64 = 21610;

fn default_timeout() -> f64 {
    10.0
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// The account (`AC…`).
    pub account_sid: String,
    pub auth_token: String,
    /// The Twilio number sent from (E.164) when the message names no sender.
    #[serde(default)]
    pub from: Option<String>,
    /// Send through this Messaging Service (`MG…`) instead of from a number.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Replaces the API's base URL (a proxy, a test stub).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Refuse callbacks without a valid `X-Twilio-Signature`.
    #[serde(default = "default_true")]
    pub validate_signature: bool,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for TwilioConfig {
    fn check(&mut self) -> Result<(), String> {
        if self.account_sid.is_empty() || self.auth_token.is_empty() {
            return Err("account_sid and auth_token must not be empty".into());
        }
        // It is a path segment of the API's URLs.
        if !self.account_sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("account_sid must be letters and digits (AC…)".into());
        }
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        match (given(&self.from), given(&self.messaging_service_sid)) {
            (false, false) => return Err("one of from or messaging_service_sid is required".into()),
            (true, true) => return Err("give from or messaging_service_sid, not both".into()),
            _ => {}
        }
        if let Some(b) = &self.base_url {
            crate::transports::check_http_url("base_url", b)?;
        }
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `twilio` channel type.
pub type TwilioFactory = aggregator::Factory<Twilio>;

impl aggregator::HttpType for Twilio {
    const TYPE: &'static str = "twilio";
    const TRANSPORT_TYPE: &'static str = "sms";
    const ACTIONS: &'static [&'static str] = &["inbound", "status"];
    const MEDIA: bool = true;
    type Config = TwilioConfig;

    fn new(cfg: TwilioConfig, _cx: &aggregator::StartContext) -> Self {
        Twilio { cfg }
    }
}

pub struct Twilio {
    pub cfg: TwilioConfig,
}

/// The signed text of a request: the URL, then each parameter name followed by its values,
/// names sorted, a name's distinct values sorted (as twilio-python and twilio-node do).
fn signed_text(url: &str, params: &[(String, String)]) -> String {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (k, v) in params {
        by_name.entry(k).or_default().insert(v);
    }
    let mut text = url.to_string();
    for (k, values) in by_name {
        for v in values {
            text.push_str(k);
            text.push_str(v);
        }
    }
    text
}

fn mac(token: &str, url: &str, params: &[(String, String)]) -> Hmac<sha1::Sha1> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC keys may have any length"));
    mac.update(signed_text(url, params).as_bytes());
    mac
}

/// Twilio's signature of a request to `url` with POST parameters `params`.
pub fn signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(mac(token, url, params).finalize().into_bytes())
}

/// `url`, then `url` without its port, or with the scheme's default port when it has none
/// (twilio-python's `RequestValidator.validate`). Plain string surgery: the path and query
/// must stay byte for byte as Twilio signed them.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some(s) = url.find("://") else {
        return out;
    };
    let start = s + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let host_at = authority.rfind('@').map_or(0, |i| i + 1);
    let host = &authority[host_at..];
    // A ':' after any ']' (an IPv6 literal) starts the port.
    match host.rfind(':').filter(|&i| !host[i..].contains(']')) {
        Some(i) => out.push(format!("{}{}", &url[..start + host_at + i], &url[end..])),
        None => {
            let port = match url[..s].to_ascii_lowercase().as_str() {
                "https" => "443",
                "http" => "80",
                _ => return out,
            };
            out.push(format!("{}:{port}{}", &url[..end], &url[end..]));
        }
    }
    out
}

/// Whether `given` (the header's value) signs a request to `url` with `params`.
pub fn signature_valid(token: &str, url: &str, params: &[(String, String)], given: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
        return false;
    };
    url_variants(url)
        .iter()
        // verify_slice compares in constant time.
        .any(|u| mac(token, u, params).verify_slice(&given).is_ok())
}

/// The POST parameters of a callback (only the form body is signed; the query is part of
/// the URL).
fn body_params(cb: &Callback) -> Vec<(String, String)> {
    let is_form = cb
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if cb.method.eq_ignore_ascii_case("POST") && is_form {
        url::form_urlencoded::parse(&cb.body).into_owned().collect()
    } else {
        Vec::new()
    }
}

fn twiml() -> CallbackResponse {
    CallbackResponse::new(200, "text/xml", TWIML_EMPTY)
}

/// Twilio's message status words (the Message resource's `status`), sorted.
const STATUS_WORDS: &[&str] = &[
    "accepted",
    "canceled",
    "delivered",
    "failed",
    "partially_delivered",
    "queued",
    "read",
    "scheduled",
    "sending",
    "sent",
    "undelivered",
];

fn report_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "accepted" | "scheduled" | "queued" | "sending" | "sent" => DeliveryStatus::Pending,
        "delivered" | "read" | "partially_delivered" => DeliveryStatus::Delivered,
        "undelivered" | "failed" | "canceled" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// The words of a report's `ErrorCode`, for the log.
fn error_code_detail(code: &str) -> String {
    match code.parse::<u64>() {
        Ok(CODE_OPTED_OUT) => format!("ErrorCode {code}: the recipient opted out (STOP)"),
        Ok(63018) => format!("ErrorCode {code}: rate limit exceeded for the sender"),
        _ => format!("ErrorCode {code}"),
    }
}

impl Twilio {
    /// Refuses a callback Twilio did not sign (403).
    fn check_signature(&self, cb: &Callback) -> Result<(), Refusal> {
        if !self.cfg.validate_signature {
            return Ok(());
        }
        let refuse = |why: &str| {
            Refusal::with(
                CallbackResponse::text(403, why),
                format!("{why} (checked against {})", cb.url),
            )
        };
        let Some(given) = cb.header(SIGNATURE_HEADER) else {
            return Err(refuse("missing request signature"));
        };
        if signature_valid(&self.cfg.auth_token, &cb.url, &body_params(cb), given) {
            Ok(())
        } else {
            Err(refuse("invalid request signature"))
        }
    }
}

impl Provider for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.cfg.auth_token.clone()]
    }

    fn build_send(&self, msg: &Message, cx: &SendContext) -> Result<ProviderRequest, String> {
        let to = msg
            .to_addr
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("The message has no to address")?;
        let base = self
            .cfg
            .base_url
            .as_deref()
            .unwrap_or(LIVE)
            .trim_end_matches('/');
        let mut fields = vec![("To".to_string(), to)];
        match self.cfg.messaging_service_sid.as_deref() {
            Some(service) if !service.is_empty() => {
                fields.push(("MessagingServiceSid".into(), service.to_string()));
            }
            _ => {
                let from = msg
                    .from_addr
                    .clone()
                    .filter(|f| !f.is_empty())
                    .or_else(|| self.cfg.from.clone())
                    .ok_or("The message has no from address")?;
                fields.push(("From".into(), from));
            }
        }
        fields.push(("Body".into(), msg.content.clone().unwrap_or_default()));
        // MMS: each attachment a MediaUrl (Twilio takes up to 10; a caption has no place of
        // its own: the message's Body carries the text).
        let attachments = msg.attachments();
        if attachments.len() > 10 {
            return Err(format!(
                "Twilio takes at most 10 media per message ({} given)",
                attachments.len()
            ));
        }
        for a in attachments {
            fields.push(("MediaUrl".into(), a.url));
        }
        if let Some(status) = cx.callback("status") {
            let id: String =
                url::form_urlencoded::byte_serialize(msg.message_id.as_bytes()).collect();
            fields.push(("StatusCallback".into(), format!("{status}?id={id}")));
        }
        Ok(ProviderRequest::new(
            "POST",
            format!(
                "{base}/2010-04-01/Accounts/{}/Messages.json",
                self.cfg.account_sid
            ),
            RequestBody::Form(fields),
        )
        .header("Accept", "application/json")
        .basic(&self.cfg.account_sid, &self.cfg.auth_token))
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        let body = resp.json().unwrap_or(Value::Null);
        let code = body["code"].as_u64();
        let by_status = aggregator::status_outcome(resp);
        if by_status.is_none() && code.is_none() {
            let sid = body["sid"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            return SendOutcome::Accepted(sid);
        }
        let Some(code) = code else {
            // Not Twilio's error object (a proxy's page, say): the HTTP status decides.
            return by_status.unwrap_or_else(|| SendOutcome::Failed("Twilio: no sid".into()));
        };
        let said = aggregator::quote(body["message"].as_str().unwrap_or("no message"));
        let reason = match code {
            CODE_OPTED_OUT => {
                format!("Twilio {code}: {said} (the recipient opted out with STOP)")
            }
            _ => format!("Twilio {code}: {said}"),
        };
        match by_status {
            Some(SendOutcome::Retry(_)) => SendOutcome::Retry(reason),
            _ if code == CODE_THROTTLED => SendOutcome::Retry(reason),
            _ => SendOutcome::Failed(reason),
        }
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        match cb.action.as_str() {
            "inbound" | "status" => self.check_signature(cb)?,
            other => return Err(Refusal::bad_request(format!("no action {other}"))),
        }
        let form = cb.form();
        if cb.action == "inbound" {
            let v = required_fields(&form, &["From", "To", "MessageSid"])?;
            let mut meta = form_metadata(
                &form,
                &[
                    "MessageSid",
                    "AccountSid",
                    "MessagingServiceSid",
                    "NumSegments",
                    "NumMedia",
                    "FromCountry",
                    "FromState",
                    "FromCity",
                    "FromZip",
                    "ToCountry",
                    "ToState",
                    "ToCity",
                    "ToZip",
                ],
            );
            let count = form_field(&form, "NumMedia")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let media: Vec<Value> = (0..count)
                .filter_map(|i| {
                    let url = form_field(&form, &format!("MediaUrl{i}"))?;
                    let kind = form_field(&form, &format!("MediaContentType{i}"));
                    Some(json!({"url": url, "content_type": kind}))
                })
                .collect();
            // Twilio's media URLs are fetched without credentials unless the account
            // enforces HTTP auth on them: the attachment is Twilio's URL as given.
            let attachments = media
                .iter()
                .map(|m| aggregator::InboundMedia {
                    at: aggregator::MediaAt::Url(m["url"].as_str().unwrap_or_default().into()),
                    content_type: m["content_type"].as_str().map(str::to_string),
                    caption: None,
                })
                .collect();
            if !media.is_empty() {
                meta.insert("media".into(), Value::Array(media));
            }
            let inbound = Inbound {
                group: None,
                media: attachments,
                from: v[0].to_string(),
                to: v[1].to_string(),
                content: form_field(&form, "Body").map(str::to_string),
                metadata: meta,
            };
            return Ok((Received::Messages(vec![inbound]), twiml()));
        }
        if !["MessageSid", "MessageStatus", "SmsStatus"]
            .iter()
            .any(|k| form_field(&form, k).is_some())
        {
            // Nothing to report (a bare request to the URL): refusing it would only make
            // Twilio retry it and log an error on the account.
            return Ok((
                Received::Ignored("a status callback without parameters".into()),
                twiml(),
            ));
        }
        let sid = required_fields(&form, &["MessageSid"])?[0];
        let word = form_field(&form, "MessageStatus")
            .or_else(|| form_field(&form, "SmsStatus"))
            .ok_or_else(|| Refusal::bad_request("field 'MessageStatus' required"))?;
        let status = report_status(word).ok_or_else(|| {
            let known: Vec<String> = STATUS_WORDS.iter().map(|w| format!("'{w}'")).collect();
            Refusal::bad_request(format!(
                "unknown status '{word}', must be one of {}",
                known.join(", ")
            ))
        })?;
        let mut detail = word.to_string();
        if let Some(code) = form_field(&form, "ErrorCode").filter(|c| !c.is_empty() && *c != "0") {
            detail = format!("{detail} ({})", error_code_detail(code));
        }
        let report = Report {
            provider_id: Some(sid.to_string()),
            message_id: form_field(&form, "id")
                .filter(|id| !id.is_empty())
                .map(str::to_string),
            status,
            detail,
        };
        Ok((Received::Reports(vec![report]), twiml()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(config: &Value) -> Result<TwilioConfig, String> {
        aggregator::parse_config(config)
    }

    fn twilio(extra: Value) -> Twilio {
        let mut config =
            json!({"account_sid": "AC123", "auth_token": "tok3n", "from": "+15005550006"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        Twilio {
            cfg: parse(&config).unwrap(),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn callback(action: &str, url: &str, body: &str, sig: Option<&str>) -> Callback {
        let mut headers = vec![(
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        )];
        if let Some(s) = sig {
            headers.push((SIGNATURE_HEADER.to_string(), s.to_string()));
        }
        Callback {
            action: action.into(),
            method: "POST".into(),
            url: url.into(),
            query: url
                .split_once('?')
                .map(|(_, q)| q.to_string())
                .unwrap_or_default(),
            headers,
            body: bytes::Bytes::from(body.to_string()),
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    #[test]
    fn configs() {
        let base = json!({"account_sid": "AC1", "auth_token": "t"});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            parse(&c)
        };
        assert!(parse(&base).is_err(), "needs from or a service");
        assert!(with("from", json!("+1500")).is_ok());
        assert!(with("messaging_service_sid", json!("MG1")).is_ok());
        let both = json!({"account_sid": "AC1", "auth_token": "t", "from": "+1",
                          "messaging_service_sid": "MG1"});
        assert!(parse(&both).is_err());
        assert!(with("from", json!("+1")).unwrap().validate_signature);
        let mut c = base.clone();
        c["from"] = json!("+1");
        c["acount_sid"] = json!("typo");
        assert!(parse(&c).is_err());
        c = base.clone();
        c["from"] = json!("+1");
        c["account_sid"] = json!("AC1/../x");
        assert!(parse(&c).is_err());
    }

    #[test]
    fn the_signature_of_twilios_docs_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(signature_valid(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        // Twilio may have signed with the default port, or we may know the URL with it.
        assert!(signature_valid(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        let with_port = signature(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
        );
        assert!(signature_valid("12345", url, &params, &with_port));
        // Anything else changed is refused.
        assert!(!signature_valid(
            "12346",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!signature_valid(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!signature_valid(
            "12345",
            url,
            &params[1..],
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!signature_valid("12345", url, &params, "not base64!"));
        // Parameter order does not matter; repeated names sign each distinct value, sorted.
        let mut shuffled = params.clone();
        shuffled.reverse();
        assert_eq!(
            signature("12345", url, &shuffled),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert_eq!(
            signed_text(
                "u",
                &pairs(&[("b", "2"), ("a", "y"), ("a", "x"), ("a", "x")])
            ),
            "uaxayb2"
        );
    }

    #[test]
    fn url_variants_add_or_drop_the_port() {
        assert_eq!(
            url_variants("https://example.org/c/x?id=1"),
            [
                "https://example.org/c/x?id=1",
                "https://example.org:443/c/x?id=1"
            ]
        );
        assert_eq!(
            url_variants("http://127.0.0.1:8081/c"),
            ["http://127.0.0.1:8081/c", "http://127.0.0.1/c"]
        );
        assert_eq!(
            url_variants("http://[::1]/c?a=b:c"),
            ["http://[::1]/c?a=b:c", "http://[::1]:80/c?a=b:c"]
        );
        assert_eq!(
            url_variants("https://u@h:8443"),
            ["https://u@h:8443", "https://u@h"]
        );
    }

    #[test]
    fn callbacks_need_the_signature() {
        let t = twilio(json!({}));
        let url = "https://sms.example.org/channels/c1/inbound";
        let body = "From=%2B14133881111&To=%2B12028831111&Body=Hi&MessageSid=SM1&AccountSid=AC123";
        let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let good = signature("tok3n", url, &params);
        let (received, answer) = t
            .receive(&callback("inbound", url, body, Some(&good)))
            .unwrap();
        assert_eq!(answer.body, TWIML_EMPTY);
        assert_eq!(answer.content_type, "text/xml");
        let Received::Messages(list) = received else {
            panic!("{received:?}")
        };
        assert_eq!(list[0].from, "+14133881111");
        assert_eq!(list[0].content.as_deref(), Some("Hi"));
        let missing = t
            .receive(&callback("inbound", url, body, None))
            .unwrap_err();
        assert_eq!(missing.response.status, 403);
        let wrong = t
            .receive(&callback(
                "inbound",
                url,
                body,
                Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
            ))
            .unwrap_err();
        assert_eq!(wrong.response.status, 403);
        // Signed for another URL (a wrong [public] base_url): refused.
        let elsewhere = signature(
            "tok3n",
            "https://other.example.org/channels/c1/inbound",
            &params,
        );
        assert!(
            t.receive(&callback("inbound", url, body, Some(&elsewhere)))
                .is_err()
        );
        // Unless the channel says not to check.
        let lax = twilio(json!({"validate_signature": false}));
        assert!(lax.receive(&callback("inbound", url, body, None)).is_ok());
    }

    #[test]
    fn media_and_status_callbacks() {
        let t = twilio(json!({"validate_signature": false}));
        let body = "From=%2B1&To=%2B2&Body=&MessageSid=MM1&NumMedia=2&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm0&MediaContentType0=image%2Fjpeg&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm1";
        let (received, _) = t
            .receive(&callback("inbound", "https://h/i", body, None))
            .unwrap();
        let Received::Messages(list) = received else {
            panic!()
        };
        assert_eq!(
            list[0].metadata["media"],
            json!([{"url": "https://api.twilio.com/m0", "content_type": "image/jpeg"},
                   {"url": "https://api.twilio.com/m1", "content_type": null}])
        );
        let status = |query: &str, body: &str| {
            t.receive(&callback(
                "status",
                &format!("https://h/status?{query}"),
                body,
                None,
            ))
        };
        let (received, _) = status(
            "id=abc",
            "MessageSid=SM1&MessageStatus=undelivered&ErrorCode=21610",
        )
        .unwrap();
        assert_eq!(
            received,
            Received::Reports(vec![Report {
                provider_id: Some("SM1".into()),
                message_id: Some("abc".into()),
                status: DeliveryStatus::Failed,
                detail: "undelivered (ErrorCode 21610: the recipient opted out (STOP))".into(),
            }])
        );
        let (received, _) = status("", "MessageSid=SM1&SmsStatus=sent").unwrap();
        let Received::Reports(r) = received else {
            panic!()
        };
        assert_eq!(
            (r[0].status, r[0].message_id.clone()),
            (DeliveryStatus::Pending, None)
        );
        let unknown = status("", "MessageSid=SM1&MessageStatus=received").unwrap_err();
        assert_eq!(unknown.response.status, 400);
        assert!(
            unknown.reason.contains("'delivered', 'failed'"),
            "{}",
            unknown.reason
        );
        assert_eq!(
            status("", "MessageSid=SM1").unwrap_err().response.status,
            400
        );
    }

    #[test]
    fn the_send_request() {
        let msg = Message::new(Some("+250788383383".into()), None, Some("Hi ☺".into()));
        let cx = SendContext {
            channel_id: "c1",
            callback_base: Some("https://sms.example.org/channels/c1"),
        };
        let r = twilio(json!({"base_url": "http://stub/"}))
            .build_send(&msg, &cx)
            .unwrap();
        assert_eq!(r.url, "http://stub/2010-04-01/Accounts/AC123/Messages.json");
        assert_eq!(r.basic_auth, Some(("AC123".into(), "tok3n".into())));
        let callback = format!(
            "https://sms.example.org/channels/c1/status?id={}",
            msg.message_id
        );
        assert_eq!(
            r.body,
            RequestBody::Form(pairs(&[
                ("To", "+250788383383"),
                ("From", "+15005550006"),
                ("Body", "Hi ☺"),
                ("StatusCallback", &callback),
            ]))
        );
        let service = Twilio {
            cfg: parse(&json!({"account_sid": "AC1", "auth_token": "t",
                               "messaging_service_sid": "MG9"}))
            .unwrap(),
        };
        let off = SendContext {
            channel_id: "c1",
            callback_base: None,
        };
        let r = service.build_send(&msg, &off).unwrap();
        assert_eq!(
            r.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
        );
        assert_eq!(
            r.body,
            RequestBody::Form(pairs(&[
                ("To", "+250788383383"),
                ("MessagingServiceSid", "MG9"),
                ("Body", "Hi ☺"),
            ]))
        );
    }

    #[test]
    fn send_answers() {
        let t = twilio(json!({}));
        let r = |status, body: &str| t.read_send(&ProviderResponse::new(status, body));
        let ok = r#"{"sid":"SM29f4f980778e4621b72df75ac82f5000","status":"queued","error_code":null,"error_message":null}"#;
        assert_eq!(
            r(201, ok),
            SendOutcome::Accepted(Some("SM29f4f980778e4621b72df75ac82f5000".into()))
        );
        assert_eq!(
            r(201, r#"{"status":"queued"}"#),
            SendOutcome::Accepted(None)
        );
        assert_eq!(
            r(
                400,
                r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#
            ),
            SendOutcome::Failed(
                "Twilio 21211: The 'To' number is not a valid phone number.".into()
            )
        );
        assert_eq!(
            r(400, r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}"#),
            SendOutcome::Failed("Twilio 21610: Attempt to send to unsubscribed recipient (the recipient opted out with STOP)".into())
        );
        assert_eq!(
            r(
                429,
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#
            ),
            SendOutcome::Retry("Twilio 20429: Too Many Requests".into())
        );
        assert!(matches!(r(503, "<html>busy</html>"), SendOutcome::Retry(_)));
        assert!(matches!(
            r(500, r#"{"code":20500,"message":"Internal Server Error"}"#),
            SendOutcome::Retry(_)
        ));
        assert_eq!(
            r(
                401,
                r#"{"code":20003,"message":"Authenticate","status":401}"#
            ),
            SendOutcome::Failed("Twilio 20003: Authenticate".into())
        );
        assert!(matches!(r(403, "Forbidden"), SendOutcome::Failed(_)));
        // An error object with a 2xx status is still an error.
        assert!(matches!(
            r(200, r#"{"code":21606,"message":"bad From"}"#),
            SendOutcome::Failed(_)
        ));
    }
}
