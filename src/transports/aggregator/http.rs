//! Channel type `http`: a generic, configurable HTTP aggregator, for the long tail of
//! providers with no type of their own (Kannel's generic HTTP SMSC, Courier's external
//! channel). The module is not called `http` so that it is not mistaken for the API's.
//!
//! Sending: `send_url` (placeholders allowed) with `send_method`, and for POST/PUT a body from
//! `send_body`, a template whose placeholders are encoded for `content_type` (`form`: URL
//! encoding; `json`: JSON string escaping, without the quotes, which the template writes;
//! `xml`: XML escaping; `text`: as is). Placeholders: `{{to}}`, `{{from}}`, `{{text}}`,
//! `{{id}}` (hornbill's message id), `{{channel}}` and `{{status_url}}` (this channel's status
//! callback naming the message: `{public}/channels/{id}/status?message_id={{id}}`). In the
//! URL they are always URL-encoded. Auth: `username`/`password` (Basic) and/or `headers`
//! (e.g. `{"Authorization": "Bearer ..."}`: header values are treated as secrets).
//! Success: a 2xx (408/429/5xx are retried, other statuses are final) whose body contains
//! `success_contains` when it is set; the provider id is read from the JSON answer at
//! `id_path` (a JSON pointer such as `/messages/0/id`, or a top-level key).
//!
//! Callbacks: `inbound` reads `mo_from_field`, `mo_to_field`, `mo_text_field`, `mo_id_field`
//! from the query, a form body (URL-encoded or `multipart/form-data`) or a JSON body (a
//! name, or a JSON pointer), and answers `mo_response` (`mo_response_content_type`); its
//! addresses are trimmed, and a number (7 digits or more) after a space gets back the `+`
//! that form decoding made a space of (`" 27820000001"` -> `+27820000001`); `status` reads
//! `status_id_field` (the
//! provider's id) or the `message_id` query parameter `{{status_url}}` added, and
//! `status_field`, mapped through `status_map` (provider word -> delivered | failed |
//! pending; words are matched without regard to case).

use crate::message::{DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, Provider, ProviderRequest, ProviderResponse, Received, Refusal, Report,
    RequestBody, SendContext, SendOutcome,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn default_method() -> String {
    "POST".into()
}
fn default_content_type() -> String {
    "form".into()
}
fn default_timeout() -> f64 {
    10.0
}
fn name(n: &str) -> String {
    n.to_string()
}
fn default_from() -> String {
    name("from")
}
fn default_to() -> String {
    name("to")
}
fn default_text() -> String {
    name("text")
}
fn default_id() -> String {
    name("id")
}
fn default_status() -> String {
    name("status")
}
fn default_status_map() -> BTreeMap<String, String> {
    [
        ("delivered", "delivered"),
        ("failed", "failed"),
        ("pending", "pending"),
        ("sent", "pending"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub send_url: String,
    #[serde(default = "default_method")]
    pub send_method: String,
    #[serde(default)]
    pub send_body: Option<String>,
    /// `form`, `json`, `xml` or `text`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub success_contains: Option<String>,
    #[serde(default)]
    pub id_path: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    #[serde(default = "default_from")]
    pub mo_from_field: String,
    #[serde(default = "default_to")]
    pub mo_to_field: String,
    #[serde(default = "default_text")]
    pub mo_text_field: String,
    #[serde(default)]
    pub mo_id_field: Option<String>,
    /// The `to` of inbound messages whose request has no `mo_to_field` (the channel's own
    /// number or short code).
    #[serde(default)]
    pub mo_default_to: Option<String>,
    #[serde(default)]
    pub mo_response: String,
    #[serde(default)]
    pub mo_response_content_type: Option<String>,
    #[serde(default = "default_id")]
    pub status_id_field: String,
    #[serde(default = "default_status")]
    pub status_field: String,
    #[serde(default = "default_status_map")]
    pub status_map: BTreeMap<String, String>,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for HttpConfig {
    fn check(&mut self) -> Result<(), String> {
        // The URL is checked with its placeholders filled.
        crate::transports::check_http_url(
            "send_url",
            &self.send_url.replace("{{", "").replace("}}", ""),
        )?;
        self.send_method = self.send_method.to_ascii_uppercase();
        if !matches!(self.send_method.as_str(), "GET" | "POST" | "PUT") {
            return Err("send_method must be GET, POST or PUT".into());
        }
        if !matches!(self.content_type.as_str(), "form" | "json" | "xml" | "text") {
            return Err("content_type must be form, json, xml or text".into());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("username and password must be set together".into());
        }
        for (word, status) in &self.status_map {
            if delivery_status(status).is_none() {
                return Err(format!(
                    "status_map: {word:?} maps to {status:?}, which is not delivered, failed or pending"
                ));
            }
        }
        self.status_map = std::mem::take(&mut self.status_map)
            .into_iter()
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect();
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

fn delivery_status(word: &str) -> Option<DeliveryStatus> {
    Some(match word {
        "delivered" => DeliveryStatus::Delivered,
        "failed" => DeliveryStatus::Failed,
        "pending" => DeliveryStatus::Pending,
        _ => return None,
    })
}

/// The `http` channel type.
pub type HttpFactory = aggregator::Factory<HttpChannel>;

impl aggregator::HttpType for HttpChannel {
    const TYPE: &'static str = "http";
    const TRANSPORT_TYPE: &'static str = "sms";
    const ACTIONS: &'static [&'static str] = &["inbound", "status"];
    type Config = HttpConfig;

    fn new(cfg: HttpConfig, _cx: &aggregator::StartContext) -> Self {
        HttpChannel { cfg }
    }
}

pub struct HttpChannel {
    pub cfg: HttpConfig,
}

/// How a placeholder's value is written where it goes.
#[derive(Clone, Copy)]
enum Encoding {
    Url,
    Json,
    Xml,
    Plain,
}

fn encode(value: &str, how: Encoding) -> String {
    match how {
        Encoding::Url => url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        Encoding::Json => {
            let quoted = Value::String(value.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }
        Encoding::Xml => value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;"),
        Encoding::Plain => value.to_string(),
    }
}

/// `template` with its `{{name}}` placeholders filled in (unknown names are left as they are).
fn fill(template: &str, values: &[(&str, String)], how: Encoding) -> String {
    let mut out = template.to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), &encode(value, how));
    }
    out
}

/// A field of a callback: a JSON pointer or key in a JSON body, else a query/form field.
fn lookup(json: &Option<Value>, form: &[(String, String)], name: &str) -> Option<String> {
    if let Some(body) = json {
        let v = if name.starts_with('/') {
            body.pointer(name)
        } else {
            body.get(name)
        };
        match v {
            Some(Value::String(s)) => return Some(s.clone()),
            Some(Value::Number(n)) => return Some(n.to_string()),
            _ => {}
        }
    }
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// An address as the provider meant it. Surrounding white space is dropped; and a number
/// that arrives with a leading space (`" 27820000001"`) was sent as `+27820000001` by a
/// provider that did not URL-encode its `+`, which form decoding turns into a space: the
/// `+` is put back. (No provider means a space there.) Only for 7 digits or more, the
/// shortest international numbers: a short code after a stray space stays a short code.
fn address(raw: &str) -> String {
    let trimmed = raw.trim();
    let international = trimmed.len() >= 7 && trimmed.bytes().all(|b| b.is_ascii_digit());
    if raw.starts_with(' ') && international {
        format!("+{trimmed}")
    } else {
        trimmed.to_string()
    }
}

impl HttpChannel {
    fn values(&self, msg: &Message, cx: &SendContext) -> Vec<(&'static str, String)> {
        let status_url = cx
            .callback("status")
            .map(|u| format!("{u}?message_id={}", msg.message_id))
            .unwrap_or_default();
        vec![
            ("to", msg.to_addr.clone().unwrap_or_default()),
            ("from", msg.from_addr.clone().unwrap_or_default()),
            ("text", msg.content.clone().unwrap_or_default()),
            ("id", msg.message_id.clone()),
            ("channel", cx.channel_id.to_string()),
            ("status_url", status_url),
        ]
    }
}

impl Provider for HttpChannel {
    fn name(&self) -> &'static str {
        "http"
    }

    fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.cfg.headers.values().cloned().collect();
        out.extend(self.cfg.password.clone());
        out
    }

    fn build_send(&self, msg: &Message, cx: &SendContext) -> Result<ProviderRequest, String> {
        let values = self.values(msg, cx);
        let url = fill(&self.cfg.send_url, &values, Encoding::Url);
        let method = match self.cfg.send_method.as_str() {
            "GET" => "GET",
            "PUT" => "PUT",
            _ => "POST",
        };
        let body = match (&self.cfg.send_body, method) {
            (_, "GET") | (None, _) => RequestBody::None,
            (Some(t), _) => {
                let (how, content_type) = match self.cfg.content_type.as_str() {
                    "json" => (Encoding::Json, "application/json"),
                    "xml" => (Encoding::Xml, "application/xml; charset=utf-8"),
                    "text" => (Encoding::Plain, "text/plain; charset=utf-8"),
                    _ => (Encoding::Url, "application/x-www-form-urlencoded"),
                };
                RequestBody::Raw {
                    content_type: content_type.into(),
                    body: fill(t, &values, how),
                }
            }
        };
        let mut req = ProviderRequest::new(method, url, body);
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v.clone());
        }
        if let (Some(u), Some(p)) = (&self.cfg.username, &self.cfg.password) {
            req = req.basic(u, p);
        }
        Ok(req)
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        if let Some(outcome) = aggregator::status_outcome(resp) {
            return outcome;
        }
        if let Some(needed) = &self.cfg.success_contains
            && !resp.body.contains(needed.as_str())
        {
            return SendOutcome::Failed(format!(
                "the answer does not contain {needed:?}: {}",
                aggregator::quote(&resp.body)
            ));
        }
        let id = self.cfg.id_path.as_ref().and_then(|p| {
            let body = resp.json()?;
            let v = if p.starts_with('/') {
                body.pointer(p).cloned()
            } else {
                body.get(p).cloned()
            }?;
            match v {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        });
        SendOutcome::Accepted(id)
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let form = cb
            .try_form()
            .map_err(|e| Refusal::bad_request(format!("the multipart body cannot be read: {e}")))?;
        let json = cb
            .header("content-type")
            .filter(|t| t.contains("json"))
            .map(|_| {
                serde_json::from_slice::<Value>(&cb.body)
                    .map_err(|e| Refusal::bad_request(format!("the body is not JSON: {e}")))
            })
            .transpose()?;
        let get = |name: &str| lookup(&json, &form, name);
        let need = |name: &str| {
            get(name).ok_or_else(|| Refusal::bad_request(format!("field '{name}' required")))
        };
        match cb.action.as_str() {
            "inbound" => {
                // An address that is only white space is no address.
                let find = |name: &str| get(name).map(|a| address(&a)).filter(|a| !a.is_empty());
                let required = |name: &str| {
                    find(name)
                        .ok_or_else(|| Refusal::bad_request(format!("field '{name}' required")))
                };
                let from = required(&self.cfg.mo_from_field)?;
                let to =
                    match find(&self.cfg.mo_to_field).or_else(|| self.cfg.mo_default_to.clone()) {
                        Some(t) => t,
                        None => required(&self.cfg.mo_to_field)?,
                    };
                let text = need(&self.cfg.mo_text_field)?;
                let mut metadata = Map::new();
                if let Some(id) = self.cfg.mo_id_field.as_ref().and_then(|f| get(f)) {
                    metadata.insert("provider_id".into(), Value::String(id));
                }
                let content_type = match self.cfg.mo_response_content_type.as_deref() {
                    Some("application/json") => "application/json",
                    Some("application/xml") | Some("text/xml") => "application/xml",
                    _ => "text/plain; charset=utf-8",
                };
                let response =
                    CallbackResponse::new(200, content_type, self.cfg.mo_response.clone());
                let inbound = Inbound {
                    group: None,
                    media: Vec::new(),
                    from,
                    to,
                    content: Some(text),
                    metadata,
                };
                Ok((Received::Messages(vec![inbound]), response))
            }
            "status" => {
                let ours = form
                    .iter()
                    .find(|(k, _)| k == "message_id")
                    .map(|(_, v)| v.clone());
                let theirs = get(&self.cfg.status_id_field);
                if ours.is_none() && theirs.is_none() {
                    return Err(Refusal::bad_request(format!(
                        "field '{}' required",
                        self.cfg.status_id_field
                    )));
                }
                let word = need(&self.cfg.status_field)?;
                let status = self
                    .cfg
                    .status_map
                    .get(&word.to_lowercase())
                    .and_then(|s| delivery_status(s))
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            self.cfg.status_map.keys().map(String::as_str).collect();
                        Refusal::bad_request(format!(
                            "unknown status '{word}', must be one of {}",
                            known.join(", ")
                        ))
                    })?;
                let report = Report {
                    provider_id: theirs,
                    message_id: ours,
                    status,
                    detail: word,
                };
                Ok((
                    Received::Reports(vec![report]),
                    CallbackResponse::text(200, ""),
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

    fn parse(config: &Value) -> Result<HttpConfig, String> {
        aggregator::parse_config(config)
    }

    #[test]
    fn placeholders_are_encoded_for_where_they_go() {
        let v = vec![("text", "a \"b\" & <c> é".to_string())];
        assert_eq!(
            fill("t={{text}}", &v, Encoding::Url),
            "t=a+%22b%22+%26+%3Cc%3E+%C3%A9"
        );
        assert_eq!(
            fill(r#"{"t": "{{text}}"}"#, &v, Encoding::Json),
            r#"{"t": "a \"b\" & <c> é"}"#
        );
        assert_eq!(
            fill("<t>{{text}}</t>", &v, Encoding::Xml),
            "<t>a &quot;b&quot; &amp; &lt;c&gt; é</t>"
        );
        assert_eq!(fill("{{nope}}", &v, Encoding::Url), "{{nope}}");
    }

    #[test]
    fn addresses_are_trimmed_and_an_unencoded_plus_put_back() {
        assert_eq!(address(" 27820000001"), "+27820000001");
        assert_eq!(address("+27820000001 "), "+27820000001");
        assert_eq!(address("\t31337\n"), "31337");
        assert_eq!(address(" MTN"), "MTN");
        assert_eq!(address(" 31337"), "31337", "a short code stays one");
        assert_eq!(address("27820000001"), "27820000001");
        assert_eq!(address(" "), "");
    }

    #[test]
    fn configs_are_checked() {
        assert!(parse(&json!({"send_url": "http://x/{{to}}"})).is_ok());
        assert!(parse(&json!({"send_url": "ftp://x"})).is_err());
        assert!(parse(&json!({"send_url": "http://x", "send_method": "DELETE"})).is_err());
        assert!(parse(&json!({"send_url": "http://x", "status_map": {"ok": "great"}})).is_err());
        assert!(parse(&json!({"send_url": "http://x", "username": "u"})).is_err());
        assert!(parse(&json!({"send_url": "http://x", "surprise": 1})).is_err());
    }
}
