//! Channel type `aat`: the AAT USSD gateway (XML answers), ported from vxaat's
//! `AatUssdTransport` (praekeltfoundation/vumi-aat,
//! vxaat 0.5.6 `vxaat/ussd.py`; Junebug ran it as `aat_ussd:vxaat.AatUssdTransport`),
//! request for request and answer for answer.
//!
//! AAT calls `{public}/channels/{id}/ussd` (GET with a query string, or a form POST) with
//! `msisdn` and `provider` (the user's network), both required, and `request` (the user's
//! text), `ussdSessionId` and `to_addr`, optional. The request is held until the
//! application replies (`reply_to`) and answered with XML:
//! `<request><headertext>{reply}</headertext><options><option callback="{url}" command="1"
//! display="false" order="1" /></options></request>`, where `{url}` is where AAT sends the
//! user's answer: this callback with `?to_addr=<the dialled code>`. A reply that closes the
//! session is answered without `<options>`.
//!
//! Whether a request starts a session or continues one is said by the URL alone, as in
//! vxaat: without `to_addr` (the first request, at the URL set up at AAT) it is `new`, with
//! no content, and its `request` (the dialled code) is the message's `to`; with `to_addr`
//! (the callback we gave) it is `resume`, with `request` as content. The session id is
//! `ussdSessionId`, or the `msisdn` when AAT gives none (vxaat had no session at all then:
//! its `session_id` was `null`). `provider_mappings` rename networks (`{"MTN": "mtn"}`);
//! an unmapped one is kept as it came. AAT never says that a user left: a session the
//! application does not end gets `close` after `ussd_session_timeout` without a request.
//!
//! Refusals, as Vumi's: a missing field or (with `validation_mode` strict, the default) an
//! unknown one is a 400 `{"missing_parameter": [...]}` / `{"unexpected_parameter": [...]}`,
//! a value that is not UTF-8 a 400 `{"invalid_request": {...}}` (vxaat left such a request
//! hanging), and with `web_username` / `web_password` set a request without those Basic
//! credentials a 401. Answers are `text/plain`, as vxaat's were, XML included.
//!
//! Differences from vxaat: a request the application leaves unanswered for
//! `request_timeout` (default 30 s; vxaat waited 240 s and then answered 504 with an empty
//! body) is answered with `timeout_message` as a session end, so the user is told, and the
//! application gets `close`.

use crate::message::Message;
use crate::transports::aggregator::httprpc;
use crate::transports::aggregator::{
    self, Provider, ProviderRequest, ProviderResponse, Received, Refusal, SendContext, SendOutcome,
    UssdRequest, UssdSettings, UssdStep, ussd_defaults,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Required fields, in Python 2's set order (that of `missing_parameter` answers).
const FIELDS: &[&str] = &["msisdn", "provider"];
const OPTIONAL: &[&str] = &["request", "ussdSessionId", "to_addr"];

const NO_CONTENT: &str = "Outbound message has no content.";
const NOT_A_REPLY: &str = "Outbound message is not a reply";
const GONE: &str = "Response to http request failed.";

fn strict() -> String {
    httprpc::STRICT.into()
}

/// A Junebug AAT channel's config: vxaat's keys, and hornbill's `timeout_message` and
/// `ussd_session_timeout`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AatConfig {
    /// Where AAT reaches hornbill's public listener (a proxy, another host name), e.g.
    /// `https://ussd.example.org`: the callback given to AAT is then
    /// `{base_url}/channels/{id}/ussd?to_addr=...` instead of the one under `[public]
    /// base_url`. vxaat's callback was `base_url` + `web_path`; hornbill's path is fixed,
    /// so `web_path` is not added.
    #[serde(default)]
    pub base_url: Option<String>,
    /// AAT's `provider` values -> the ones the messages carry.
    #[serde(default)]
    pub provider_mappings: BTreeMap<String, String>,
    /// Basic credentials AAT must give (both or neither).
    #[serde(default)]
    pub web_username: Option<String>,
    #[serde(default)]
    pub web_password: Option<String>,
    /// How long a request waits for the application's reply, seconds. vxaat's default was
    /// 240 (and a 504 then); hornbill answers the user with `timeout_message` instead.
    #[serde(default = "ussd_defaults::request_timeout")]
    pub request_timeout: f64,
    /// What the user is told when the application did not answer in time.
    #[serde(default = "ussd_defaults::timeout_message")]
    pub timeout_message: String,
    /// Seconds without a request after which a session is over.
    #[serde(default = "ussd_defaults::session_timeout")]
    pub ussd_session_timeout: f64,
    /// USSD sessions open at once on this node; a new one past it is refused.
    #[serde(default = "ussd_defaults::max_sessions")]
    pub max_ussd_sessions: usize,
    /// `strict` (unknown request fields are refused) or `permissive` (they are ignored).
    #[serde(default = "strict")]
    pub validation_mode: String,
    /// Junebug's documentation lists it from vxaat's early versions; the dialled code now
    /// comes in each first request. Accepted and ignored.
    #[serde(default)]
    pub to_addr: Option<Value>,
}

impl aggregator::TypeConfig for AatConfig {
    const IGNORED_KEYS: &'static [&'static str] = httprpc::IGNORED_HTTPRPC_KEYS;

    fn check(&mut self) -> Result<(), String> {
        httprpc::check_config(
            &self.web_username,
            &self.web_password,
            &self.validation_mode,
        )?;
        if let Some(b) = &self.base_url {
            crate::transports::check_http_url("base_url", b)?;
        }
        ussd_defaults::check(
            self.max_ussd_sessions,
            self.request_timeout,
            self.ussd_session_timeout,
        )
    }
}

/// The `aat` channel type.
pub type AatFactory = aggregator::Factory<Aat>;

impl aggregator::HttpType for Aat {
    const TYPE: &'static str = "aat";
    const TRANSPORT_TYPE: &'static str = "ussd";
    const ACTIONS: &'static [&'static str] = &["ussd"];
    type Config = AatConfig;

    fn new(cfg: AatConfig, cx: &aggregator::StartContext) -> Self {
        let base = match cfg.base_url.as_deref() {
            Some(b) => {
                let b = format!("{}/channels/{}", b.trim_end_matches('/'), cx.channel_id);
                match cx.callback_secret {
                    Some(secret) => format!("{b}/{secret}"),
                    None => b,
                }
            }
            // With the public listener off no request arrives to be answered.
            None => cx
                .callback_base
                .map(str::to_string)
                .unwrap_or_else(|| format!("/channels/{}", cx.channel_id)),
        };
        Aat {
            cfg,
            callback: format!("{base}/ussd"),
        }
    }
}

pub struct Aat {
    pub cfg: AatConfig,
    /// This channel's `ussd` callback as AAT reaches it.
    pub callback: String,
}

/// Python 2's `urllib.quote(text)`: letters, digits, `_.-/` as they are, every other byte
/// of the UTF-8 `%XX`.
pub fn py_quote(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// XML text, escaped as ElementTree did (`&`, `<`, `>`; in an attribute also `"` and a
/// newline).
fn escape(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\n' if attribute => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

/// The answer to a held request, as vxaat wrote it: `text`, and unless the session ends
/// the option that sends the user's answer to `callback`.
pub fn answer_xml(text: &str, callback: &str, end: bool) -> String {
    let header = format!("<headertext>{}</headertext>", escape(text, false));
    let options = if end {
        String::new()
    } else {
        format!(
            "<options><option callback=\"{}\" command=\"1\" display=\"false\" order=\"1\" /></options>",
            escape(callback, true)
        )
    };
    format!("<request>{header}{options}</request>")
}

/// vxaat's checks of a reply, in its order.
pub fn check_reply(msg: &Message) -> Result<(), String> {
    if msg.content.as_deref().unwrap_or_default().is_empty() {
        return Err(NO_CONTENT.into());
    }
    if msg.in_reply_to.as_deref().unwrap_or_default().is_empty() {
        return Err(NOT_A_REPLY.into());
    }
    Ok(())
}

impl Aat {
    /// The URL AAT sends the user's answer to, for a session to `to` (the dialled code).
    pub fn callback_url(&self, to: &str) -> String {
        format!("{}?to_addr={}", self.callback, py_quote(to))
    }

    /// An AAT request: what it means for the session, or Vumi's refusal.
    pub fn parse_request(&self, cb: &Callback) -> Result<UssdRequest, Refusal> {
        httprpc::check_method(cb)?;
        let credentials = self
            .cfg
            .web_username
            .as_deref()
            .zip(self.cfg.web_password.as_deref());
        httprpc::check_auth(cb, credentials)?;
        let args = httprpc::args(cb)?;
        let strict = self.cfg.validation_mode == httprpc::STRICT;
        let v = httprpc::field_values(args, FIELDS, OPTIONAL, strict)?;
        let raw = v.req("provider");
        let provider = self
            .cfg
            .provider_mappings
            .get(raw)
            .map_or(raw, String::as_str);
        let session = v.get("ussdSessionId");
        let mut meta = Map::new();
        meta.insert("provider".into(), Value::String(provider.to_string()));
        meta.insert(
            "ussd_session_id".into(),
            session.map_or(Value::Null, |s| Value::String(s.to_string())),
        );
        let request = v.get("request");
        let (step, to, content) = match v.get("to_addr") {
            Some(to) => (UssdStep::Resume, to, request),
            None => (UssdStep::Start, request.unwrap_or_default(), None),
        };
        Ok(UssdRequest {
            session_id: session.unwrap_or(v.req("msisdn")).to_string(),
            from: v.req("msisdn").to_string(),
            to: to.to_string(),
            content: content.map(str::to_string),
            cumulative: false,
            new_without_content: true,
            step,
            metadata: meta,
        })
    }
}

impl Provider for Aat {
    fn name(&self) -> &'static str {
        "aat_ussd"
    }

    fn secrets(&self) -> Vec<String> {
        self.cfg.web_password.iter().cloned().collect()
    }

    fn build_send(&self, msg: &Message, _cx: &SendContext) -> Result<ProviderRequest, String> {
        // Only a reply to a waiting request reaches AAT (as its answer); `check_send`
        // refused the rest, so this is a reply whose request is gone.
        check_reply(msg)?;
        Err(GONE.into())
    }

    fn read_send(&self, _resp: &ProviderResponse) -> SendOutcome {
        SendOutcome::Failed(NOT_A_REPLY.into())
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let req = self.parse_request(cb)?;
        Ok((Received::Ussd(req), CallbackResponse::text(200, "")))
    }

    fn ussd_answer(&self, req: &UssdRequest, text: &str, end: bool) -> CallbackResponse {
        CallbackResponse::text(200, answer_xml(text, &self.callback_url(&req.to), end))
    }

    fn ussd(&self) -> Option<UssdSettings> {
        Some(UssdSettings {
            request_timeout: Duration::from_secs_f64(self.cfg.request_timeout),
            timeout_message: self.cfg.timeout_message.clone(),
            session_timeout: Duration::from_secs_f64(self.cfg.ussd_session_timeout),
            max_sessions: self.cfg.max_ussd_sessions,
        })
    }

    fn maps_ids(&self) -> bool {
        false
    }

    fn check_send(&self, msg: &Message) -> Result<(), String> {
        check_reply(msg)
    }

    fn request_gone(&self) -> &'static str {
        GONE
    }

    fn message_provider(&self, metadata: &Map<String, Value>) -> Option<String> {
        metadata
            .get("provider")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: &Value) -> Result<AatConfig, String> {
        aggregator::parse_config(config)
    }

    fn aat(extra: Value) -> Aat {
        let mut config = json!({"base_url": "http://www.example.com/foo",
                                "web_path": "/api/aat/ussd/", "web_port": "0"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let cfg = parse(&config).unwrap();
        let base = cfg.base_url.clone().unwrap();
        Aat {
            callback: format!("{}/channels/c1/ussd", base.trim_end_matches('/')),
            cfg,
        }
    }

    fn get(pairs: &[(&str, &str)]) -> Callback {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let (reply, _) = tokio::sync::oneshot::channel();
        Callback {
            action: "ussd".into(),
            method: "GET".into(),
            url: format!("http://h:1/channels/c1/ussd?{query}"),
            query,
            headers: Vec::new(),
            body: bytes::Bytes::new(),
            reply,
        }
    }

    #[test]
    fn a_first_request_and_a_later_one() {
        let a = aat(json!({}));
        let new = a
            .parse_request(&get(&[
                ("msisdn", "27729042520"),
                ("provider", "MTN"),
                ("request", "*1234#"),
            ]))
            .unwrap();
        assert_eq!(new.step, UssdStep::Start);
        assert_eq!(new.to, "*1234#");
        assert_eq!(new.content, None);
        assert_eq!(new.from, "27729042520");
        assert_eq!(new.session_id, "27729042520");
        assert_eq!(
            Value::Object(new.metadata),
            json!({"provider": "MTN", "ussd_session_id": null})
        );
        let resume = a
            .parse_request(&get(&[
                ("msisdn", "27729042520"),
                ("provider", "MTN"),
                ("request", "Well, what is it you want?"),
                ("to_addr", "xxxx"),
                ("ussdSessionId", "s-1"),
            ]))
            .unwrap();
        assert_eq!(resume.step, UssdStep::Resume);
        assert_eq!(resume.to, "xxxx");
        assert_eq!(
            resume.content.as_deref(),
            Some("Well, what is it you want?")
        );
        assert_eq!(resume.session_id, "s-1");
    }

    #[test]
    fn providers_are_mapped() {
        let a = aat(json!({"provider_mappings": {"Camelot": "camelot", "MTN": "mtn"}}));
        let req = |p| {
            a.parse_request(&get(&[
                ("msisdn", "27729042520"),
                ("provider", p),
                ("request", "*code#"),
                ("ussdSessionId", "xxxx"),
            ]))
            .unwrap()
        };
        assert_eq!(req("Camelot").metadata["provider"], "camelot");
        assert_eq!(req("Tim").metadata["provider"], "Tim");
        let mtn = req("MTN");
        assert_eq!(
            Value::Object(mtn.metadata.clone()),
            json!({"provider": "mtn", "ussd_session_id": "xxxx"})
        );
        assert_eq!(a.message_provider(&mtn.metadata).as_deref(), Some("mtn"));
    }

    #[test]
    fn missing_and_unexpected_parameters() {
        let a = aat(json!({}));
        let refused = a
            .parse_request(&get(&[("request", ""), ("provider", "")]))
            .unwrap_err();
        assert_eq!(refused.response.status, 400);
        assert_eq!(
            refused.response.body,
            r#"{"missing_parameter": ["msisdn"]}"#
        );
        let refused = a
            .parse_request(&get(&[
                ("msisdn", "27729042520"),
                ("provider", "MTN"),
                ("unexpected_p1", ""),
                ("unexpected_p2", ""),
            ]))
            .unwrap_err();
        assert_eq!(
            refused.response.body,
            r#"{"unexpected_parameter": ["unexpected_p1", "unexpected_p2"]}"#
        );
    }

    #[test]
    fn answers_as_vxaat_wrote_them() {
        let a = aat(json!({}));
        assert_eq!(
            answer_xml(
                "We are the Knights Who Say ... Ni!",
                &a.callback_url("*1234#"),
                false
            ),
            "<request><headertext>We are the Knights Who Say ... Ni!</headertext><options><option callback=\"http://www.example.com/foo/channels/c1/ussd?to_addr=%2A1234%23\" command=\"1\" display=\"false\" order=\"1\" /></options></request>"
        );
        assert_eq!(
            answer_xml("Nobody expects the Spanish Inquisition!", "x", true),
            "<request><headertext>Nobody expects the Spanish Inquisition!</headertext></request>"
        );
        assert_eq!(
            answer_xml("Thrëë & <me>", "http://x/?a=\"1\"\n", false),
            "<request><headertext>Thrëë &amp; &lt;me&gt;</headertext><options><option callback=\"http://x/?a=&quot;1&quot;&#10;\" command=\"1\" display=\"false\" order=\"1\" /></options></request>"
        );
        // a trailing slash on base_url is not doubled
        let slash = aat(json!({"base_url": "http://www.example.com/foo/"}));
        assert_eq!(
            slash.callback_url("*1234#"),
            "http://www.example.com/foo/channels/c1/ussd?to_addr=%2A1234%23"
        );
    }

    #[test]
    fn quoting_as_python_2() {
        assert_eq!(py_quote("*120*123#"), "%2A120%2A123%23");
        assert_eq!(py_quote("xxxx"), "xxxx");
        assert_eq!(py_quote("a b~/_.-ë"), "a%20b%7E/_.-%C3%AB");
    }

    #[test]
    fn replies_need_content_then_in_reply_to() {
        let mut m = Message::new(Some("27729042520".into()), Some("*1234#".into()), None);
        assert_eq!(check_reply(&m).unwrap_err(), NO_CONTENT);
        m.content = Some("Nudge, nudge, wink, wink. Know what I mean?".into());
        assert_eq!(check_reply(&m).unwrap_err(), NOT_A_REPLY);
        m.in_reply_to = Some("xxxx".into());
        assert!(check_reply(&m).is_ok());
        let cx = SendContext {
            channel_id: "c1",
            callback_base: None,
        };
        assert_eq!(aat(json!({})).build_send(&m, &cx).unwrap_err(), GONE);
    }

    #[test]
    fn config() {
        assert!(parse(&json!({})).is_ok());
        assert!(
            parse(
                &json!({"base_url": "http://www.example.com/foo", "web_path": "/api/aat/ussd/",
                "web_port": 8080, "to_addr": "*120*1234#", "provider_mappings": {"MTN": "mtn"},
                "request_timeout": 240, "transport_name": "c", "worker_name": "c",
                "publish_status": true, "timeout_message": "Later."})
            )
            .is_ok()
        );
        assert!(parse(&json!({"base_url": "ftp://x"})).is_err());
        assert!(parse(&json!({"web_password": "p"})).is_err());
        assert!(parse(&json!({"nope": 1})).is_err());
    }
}
