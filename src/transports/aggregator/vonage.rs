//! Channel type `vonage`: the Vonage (Nexmo) SMS API (`POST {base_url}/sms/json`,
//! form-encoded, `api_key` and `api_secret` as fields; Vonage's OpenAPI `sms.yml`).
//!
//! Callbacks (`{public}/channels/{id}/<action>`; Vonage calls them GET with a query, POST
//! with a form, or POST with JSON, as the account's "HTTP Method" setting says):
//! - `inbound`: the account's (or number's) inbound SMS URL (`msisdn`, `to`, `text`,
//!   `messageId`, `type`, `keyword`, `message-timestamp`, `concat*`, ...);
//! - `status`: delivery receipts (`messageId`, `status`, `err-code`, `client-ref`, ...), at
//!   the URL each send names as `callback` when the public listener is on.
//!
//! Quirks: the answer is HTTP 200 even when a message is refused; `messages[].status` (a
//! string) says it, `"0"` = accepted. Vonage documents status 1 (Throttled) and 10 (Too Many
//! Existing Binds) as "back off and retry", and 5 (Internal Error) is its own failure: those
//! three (and any "Throughput Rate Exceeded" text, courier's check) are retried, as the
//! research notes recommend; courier retries only the throttle text. 9 (Partner Quota Violation) wants a top-up by a person, so it is
//! final like every other code. Vonage splits a long text itself and answers one entry per
//! part (each its own `message-id`, each its own receipt); the send gives our message id as
//! `client-ref`, which every part's receipt names. Vonage checks a new callback URL with a
//! request carrying no fields: that is answered 200 and ignored, as is a receipt whose
//! `status` is a word Vonage did not document (logged: Vonage resends what is not answered
//! 200). With `signature_secret` set (signed webhooks on for the account) every callback
//! must carry a valid `sig` (403 otherwise); only Vonage's URL check, which carries nothing,
//! is answered without one. Addresses are kept as Vonage gives them (no `+`); a leading `+` is
//! taken off `to` and `from` when sending.

use crate::message::{DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, Provider, ProviderRequest, ProviderResponse, Received, Refusal, Report,
    RequestBody, SendContext, SendOutcome, form_field, form_metadata, required_fields,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

const BASE: &str = "https://rest.nexmo.com";

fn default_base() -> String {
    BASE.into()
}

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VonageConfig {
    pub api_key: String,
    pub api_secret: String,
    /// The sender (a Vonage number or an alphanumeric id), unless a message names one.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default = "default_base")]
    pub base_url: String,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// The account's signature secret (Vonage's dashboard, once signed webhooks are on for
    /// the account): every callback must then carry a valid `sig`.
    #[serde(default)]
    pub signature_secret: Option<String>,
    /// The account's signing algorithm: `md5hash` (Vonage's default), `md5`, `sha1`,
    /// `sha256` or `sha512` (HMACs).
    #[serde(default)]
    pub signature_method: Option<String>,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for VonageConfig {
    fn check(&mut self) -> Result<(), String> {
        if self.api_key.is_empty() || self.api_secret.is_empty() {
            return Err("api_key and api_secret must not be empty".into());
        }
        crate::transports::check_http_url("base_url", &self.base_url)?;
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        if let Some(m) = &self.signature_method
            && !SIGNATURE_METHODS.contains(&m.as_str())
        {
            return Err(format!(
                "signature_method {m:?} must be one of {}",
                SIGNATURE_METHODS.join(", ")
            ));
        }
        if self.signature_secret.as_deref() == Some("") {
            return Err("signature_secret must not be empty".into());
        }
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

const SIGNATURE_METHODS: &[&str] = &["md5hash", "md5", "sha1", "sha256", "sha512"];

/// Vonage's signature of a callback's fields (its "Signing Messages" guide, as its SDKs
/// compute it): every field but `sig`, sorted by name, `&` and `=` in values replaced by
/// `_`, joined as `&name=value...`; then MD5 of that followed by the secret (`md5hash`), or
/// an HMAC of it keyed by the secret. Lower-case hex.
fn signature(fields: &[(String, String)], secret: &str, method: &str) -> String {
    use hmac::Mac;
    let mut sorted: Vec<&(String, String)> = fields.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::new();
    for (k, v) in sorted {
        text.push('&');
        text.push_str(k);
        text.push('=');
        text.push_str(&v.replace(['&', '='], "_"));
    }
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    macro_rules! hmac_hex {
        ($d:ty) => {{
            let mut mac = hmac::Hmac::<$d>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes a key of any length");
            mac.update(text.as_bytes());
            hex(&mac.finalize().into_bytes())
        }};
    }
    match method {
        "md5" => hmac_hex!(md5::Md5),
        "sha1" => hmac_hex!(sha1::Sha1),
        "sha256" => hmac_hex!(sha2::Sha256),
        "sha512" => hmac_hex!(sha2::Sha512),
        _ => {
            use md5::Digest;
            text.push_str(secret);
            hex(&md5::Md5::digest(text.as_bytes()))
        }
    }
}

/// The `vonage` channel type.
pub type VonageFactory = aggregator::Factory<Vonage>;

impl aggregator::HttpType for Vonage {
    const TYPE: &'static str = "vonage";
    const TRANSPORT_TYPE: &'static str = "sms";
    const ACTIONS: &'static [&'static str] = &["inbound", "status"];
    type Config = VonageConfig;

    fn new(cfg: VonageConfig, _cx: &aggregator::StartContext) -> Self {
        Vonage { cfg }
    }
}

pub struct Vonage {
    pub cfg: VonageConfig,
}

/// The fields of a callback: its query, then a form or JSON body (JSON values as text).
fn fields(cb: &Callback) -> Result<Vec<(String, String)>, Refusal> {
    let mut out = cb.form();
    out.extend(aggregator::json_fields(cb)?.unwrap_or_default());
    Ok(out)
}

/// Vonage's delivery receipt words.
fn report_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "delivered" => DeliveryStatus::Delivered,
        // `unknown`: the network gave no final receipt (courier: "wired").
        "accepted" | "buffered" | "unknown" => DeliveryStatus::Pending,
        "failed" | "expired" | "rejected" => DeliveryStatus::Failed,
        _ => return None,
    })
}

/// The SMS API's send status codes (`messages[].status`).
fn send_error(code: &str) -> &'static str {
    match code {
        "1" => "Throttled",
        "2" => "Missing Parameters",
        "3" => "Invalid Parameters",
        "4" => "Invalid Credentials",
        "5" => "Internal Error",
        "6" => "Invalid Message",
        "7" => "Number Barred",
        "8" => "Partner Account Barred",
        "9" => "Partner Quota Violation",
        "10" => "Too Many Existing Binds",
        "11" => "Account Not Enabled For HTTP",
        "12" => "Message Too Long",
        "14" => "Invalid Signature",
        "15" => "Invalid Sender Address",
        "22" => "Invalid Network Code",
        "23" => "Invalid Callback URL",
        "29" => "Non-Whitelisted Destination",
        "32" => "Signature And API Secret Disallowed",
        "33" => "Number De-activated",
        _ => "Unknown Error",
    }
}

/// Send statuses worth another try later (see the module header).
const RETRY_CODES: &[&str] = &["1", "5", "10"];

/// The receipt error codes (`err-code`), for the log.
fn receipt_error(code: &str) -> &'static str {
    match code {
        "1" => "Unknown",
        "2" => "Absent Subscriber - Temporary",
        "3" => "Absent Subscriber - Permanent",
        "4" => "Call Barred by User",
        "5" => "Portability Error",
        "6" => "Anti-Spam Rejection",
        "7" => "Handset Busy",
        "8" => "Network Error",
        "9" => "Illegal Number",
        "10" => "Illegal Message",
        "11" => "Unroutable",
        "12" => "Destination Unreachable",
        "13" => "Subscriber Age Restriction",
        "14" => "Number Blocked by Carrier",
        "15" => "Prepaid Insufficient Funds",
        "16" => "Gateway Quota Exceeded",
        "50" => "Entity Filter",
        "51" => "Header Filter",
        "52" => "Content Filter",
        "53" => "Consent Filter",
        "54" => "Regulation Error",
        "99" => "General Error",
        _ => "Unknown Error",
    }
}

impl Provider for Vonage {
    fn name(&self) -> &'static str {
        "vonage"
    }

    fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.cfg.api_secret.clone()];
        out.extend(self.cfg.signature_secret.clone());
        out
    }

    fn build_send(&self, msg: &Message, cx: &SendContext) -> Result<ProviderRequest, String> {
        let to = msg
            .to_addr
            .as_deref()
            .map(|t| t.trim_start_matches('+'))
            .filter(|t| !t.is_empty())
            .ok_or("The message has no to address")?;
        let from = msg
            .from_addr
            .clone()
            .or_else(|| self.cfg.from.clone())
            .filter(|f| !f.is_empty())
            .ok_or("The message has no from address and the channel no `from`")?;
        let text = msg.content.clone().unwrap_or_default();
        let kind = if crate::transports::smpp::gsm7::fits(&text) {
            "text"
        } else {
            "unicode"
        };
        let mut form = vec![
            ("api_key".to_string(), self.cfg.api_key.clone()),
            ("api_secret".to_string(), self.cfg.api_secret.clone()),
            ("from".to_string(), from.trim_start_matches('+').to_string()),
            ("to".to_string(), to.to_string()),
            ("text".to_string(), text),
            ("type".to_string(), kind.to_string()),
            ("client-ref".to_string(), msg.message_id.clone()),
            ("status-report-req".to_string(), "1".to_string()),
        ];
        if let Some(url) = cx.callback("status") {
            form.push(("callback".into(), url));
        }
        let base = self.cfg.base_url.trim_end_matches('/');
        Ok(
            ProviderRequest::new("POST", format!("{base}/sms/json"), RequestBody::Form(form))
                .header("Accept", "application/json"),
        )
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        if let Some(outcome) = aggregator::status_outcome(resp) {
            return outcome;
        }
        let body = resp.json().unwrap_or(Value::Null);
        let parts = body["messages"].as_array().cloned().unwrap_or_default();
        let Some(first) = parts.first() else {
            return SendOutcome::Failed("Vonage: no messages in the answer".into());
        };
        // The status is documented as a string; take a number too.
        let code = |m: &Value| match &m["status"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let Some((i, refused)) = parts.iter().enumerate().find(|(_, m)| code(m) != "0") else {
            let id = first["message-id"].as_str().map(str::to_string);
            return SendOutcome::Accepted(id);
        };
        let status = code(refused);
        let text = refused["error-text"]
            .as_str()
            .unwrap_or_else(|| send_error(&status));
        let reason = format!("Vonage: {text} (status {status})");
        let throttled = text.contains("Throughput Rate Exceeded");
        // A later part refused after earlier ones went out: retrying would send those
        // again, so the refusal is final.
        if i == 0 && (throttled || RETRY_CODES.contains(&status.as_str())) {
            SendOutcome::Retry(reason)
        } else {
            SendOutcome::Failed(reason)
        }
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let form = fields(cb)?;
        if form.is_empty() && matches!(cb.action.as_str(), "inbound" | "status") {
            // Vonage's check of a new callback URL.
            return Ok((
                Received::Ignored("a request without fields (Vonage's URL check)".into()),
                aggregator::accepted("Ignored"),
            ));
        }
        if let Some(secret) = &self.cfg.signature_secret {
            let method = self.cfg.signature_method.as_deref().unwrap_or("md5hash");
            let given = form_field(&form, "sig")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let expected = signature(&form, secret, method);
            use subtle::ConstantTimeEq;
            if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(Refusal::with(
                    CallbackResponse::text(403, "invalid signature"),
                    "the sig does not match the channel's signature_secret",
                ));
            }
        }
        match cb.action.as_str() {
            "inbound" => {
                if form_field(&form, "type") == Some("binary") {
                    return Ok((
                        Received::Ignored("a binary message".into()),
                        aggregator::accepted("Ignored"),
                    ));
                }
                let v = required_fields(&form, &["msisdn", "to", "messageId", "text"])?;
                let mut meta = form_metadata(
                    &form,
                    &[
                        "messageId",
                        "type",
                        "keyword",
                        "message-timestamp",
                        "concat",
                        "concat-ref",
                        "concat-total",
                        "concat-part",
                    ],
                );
                meta.insert("message_id".into(), Value::String(v[2].to_string()));
                let inbound = Inbound {
                    group: None,
                    media: Vec::new(),
                    from: v[0].to_string(),
                    to: v[1].to_string(),
                    content: Some(v[3].to_string()),
                    metadata: meta,
                };
                Ok((
                    Received::Messages(vec![inbound]),
                    aggregator::accepted("Message Accepted"),
                ))
            }
            "status" => {
                let v = required_fields(&form, &["messageId", "status"])?;
                let Some(status) = report_status(v[1]) else {
                    // Vonage resends a receipt that is not answered 200 for a day: a word it
                    // adds later is logged and left, not refused over and over.
                    return Ok((
                        Received::Ignored(format!(
                            "receipt {} has the unknown status '{}' (known: 'accepted', 'buffered', 'delivered', 'expired', 'failed', 'rejected', 'unknown')",
                            v[0], v[1]
                        )),
                        aggregator::accepted("Ignored"),
                    ));
                };
                let mut detail = v[1].to_string();
                if let Some(code) = form_field(&form, "err-code").filter(|c| *c != "0") {
                    detail = format!("{detail} (err-code {code}: {})", receipt_error(code));
                }
                let report = Report {
                    provider_id: Some(v[0].to_string()),
                    message_id: form_field(&form, "client-ref")
                        .filter(|r| !r.is_empty())
                        .map(str::to_string),
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

    fn parse(config: &Value) -> Result<VonageConfig, String> {
        aggregator::parse_config(config)
    }

    #[test]
    fn signatures_as_vonage_computes_them() {
        let fields: Vec<(String, String)> = [("a", "1"), ("b", "2"), ("timestamp", "1461605396")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // The vector of Vonage's Python SDK's tests (MD5 hash, secret "secret").
        assert_eq!(
            signature(&fields, "secret", "md5hash"),
            "6af838ef94998832dbfc29020b564830"
        );
        let mut with_sig = fields.clone();
        with_sig.push(("sig".into(), "anything".into()));
        assert_eq!(
            signature(&with_sig, "secret", "md5hash"),
            "6af838ef94998832dbfc29020b564830"
        );
        for method in ["md5", "sha1", "sha256", "sha512"] {
            let sig = signature(&fields, "secret", method);
            assert_ne!(sig, signature(&fields, "other", method), "{method}");
            assert!(
                sig.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        // `&` and `=` in values cannot shift fields around.
        let shifted: Vec<(String, String)> = vec![("a".into(), "1&b=2".into())];
        let plain: Vec<(String, String)> = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
        assert_ne!(
            signature(&shifted, "secret", "md5hash"),
            signature(&plain, "secret", "md5hash")
        );
    }
    use serde_json::json;

    fn vonage() -> Vonage {
        Vonage {
            cfg: parse(&json!({"api_key": "key", "api_secret": "s3cret", "from": "2020"})).unwrap(),
        }
    }

    fn r(status: u16, body: &str) -> ProviderResponse {
        ProviderResponse::new(status, body)
    }

    fn callback(action: &str, query: &str, content_type: &str, body: &str) -> Callback {
        Callback::for_test(action, query, content_type, body)
    }

    #[test]
    fn send_answers() {
        let ok = r#"{"message-count":"1","messages":[{"to":"447700900000","message-id":"0C000000217B7F02","status":"0","remaining-balance":"15.53590000","message-price":"0.03330000","network":"23410"}]}"#;
        assert_eq!(
            vonage().read_send(&r(200, ok)),
            SendOutcome::Accepted(Some("0C000000217B7F02".into()))
        );
        let throttled = r#"{"messages":[{"status":"1","error-text":"Throughput Rate Exceeded - please wait [ 250 ] and retry"}]}"#;
        assert!(matches!(
            vonage().read_send(&r(200, throttled)),
            SendOutcome::Retry(_)
        ));
        assert!(matches!(
            vonage().read_send(&r(200, r#"{"messages":[{"status":"10"}]}"#)),
            SendOutcome::Retry(_)
        ));
        assert_eq!(
            vonage().read_send(&r(
                200,
                r#"{"messages":[{"status":"2","error-text":"Missing to param"}]}"#
            )),
            SendOutcome::Failed("Vonage: Missing to param (status 2)".into())
        );
        assert_eq!(
            vonage().read_send(&r(200, r#"{"messages":[{"status":"9"}]}"#)),
            SendOutcome::Failed("Vonage: Partner Quota Violation (status 9)".into())
        );
        let second_part = r#"{"message-count":"2","messages":[{"status":"0","message-id":"a"},{"status":"1","error-text":"Throttled"}]}"#;
        assert!(matches!(
            vonage().read_send(&r(200, second_part)),
            SendOutcome::Failed(_)
        ));
        assert!(matches!(
            vonage().read_send(&r(429, "")),
            SendOutcome::Retry(_)
        ));
        assert!(matches!(
            vonage().read_send(&r(401, "Invalid API token")),
            SendOutcome::Failed(_)
        ));
    }

    #[test]
    fn unicode_only_when_needed() {
        let cx = SendContext {
            channel_id: "c",
            callback_base: None,
        };
        let kind = |text: &str| {
            let msg = Message::new(Some("+250788383383".into()), None, Some(text.into()));
            let RequestBody::Form(f) = vonage().build_send(&msg, &cx).unwrap().body else {
                panic!("a form")
            };
            assert_eq!(form_field(&f, "to"), Some("250788383383"));
            assert_eq!(form_field(&f, "client-ref"), Some(msg.message_id.as_str()));
            assert_eq!(form_field(&f, "callback"), None);
            form_field(&f, "type").unwrap().to_string()
        };
        assert_eq!(kind("Simple Message {€}"), "text");
        assert_eq!(kind("Unicode ☺"), "unicode");
    }

    #[test]
    fn receipts() {
        for (word, want) in [
            ("delivered", Some(DeliveryStatus::Delivered)),
            ("accepted", Some(DeliveryStatus::Pending)),
            ("buffered", Some(DeliveryStatus::Pending)),
            ("unknown", Some(DeliveryStatus::Pending)),
            ("failed", Some(DeliveryStatus::Failed)),
            ("expired", Some(DeliveryStatus::Failed)),
            ("rejected", Some(DeliveryStatus::Failed)),
            ("unexpected", None),
        ] {
            assert_eq!(report_status(word), want, "{word}");
        }
        let json = r#"{"msisdn":"447700900000","to":"AcmeInc","network-code":"12345","messageId":"0A0000001234567B","price":"0.03330000","status":"failed","scts":"2001011400","err-code":"6","client-ref":"ours","message-timestamp":"2020-01-01 12:00:00"}"#;
        let (got, _) = vonage()
            .receive(&callback("status", "", "application/json", json))
            .unwrap();
        assert_eq!(
            got,
            Received::Reports(vec![Report {
                provider_id: Some("0A0000001234567B".into()),
                message_id: Some("ours".into()),
                status: DeliveryStatus::Failed,
                detail: "failed (err-code 6: Anti-Spam Rejection)".into(),
            }])
        );
        let (check, _) = vonage()
            .receive(&callback("status", "", "text/plain", ""))
            .unwrap();
        assert!(matches!(check, Received::Ignored(_)));
    }
}
