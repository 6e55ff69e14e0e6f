//! Channel type `dmark`: Dmark Mobile's USSD gateway (Uganda), ported from Vumi's
//! `DmarkUssdTransport` (vumi 0.6.19 `vumi/transports/dmark/dmark_ussd.py`, Junebug's
//! built-in `dmark`), request for request and answer for answer.
//!
//! Dmark calls `{public}/channels/{id}/ussd` (GET with a query string, or a form POST) once
//! per step of a session with seven fields, all required (an empty value counts):
//! `transactionId` (the session), `msisdn`, `ussdServiceCode`, `transactionTime`,
//! `ussdRequestString`, `creationTime` and `response` (`false` on the first request; Vumi
//! ignored it, the transaction id decides). The request is held until the application
//! replies (`reply_to`), and answered `{"responseString": <reply>, "action": "request"}`, or
//! `"action": "end"` for a reply that closes the session. The first request of a
//! transaction is a `new` message with no content (the dialled code is not input), later
//! ones `resume` with the user's text. Dmark never says that a user left: a session the
//! application does not end gets `close` after `ussd_session_timeout` without a request.
//!
//! Refusals, as Vumi's: a missing field or (with `validation_mode` strict, the default) an
//! unknown one is a 400 `{"missing_parameter": [...]}` / `{"unexpected_parameter": [...]}`,
//! a value that is not UTF-8 a 400 `{"invalid_request": {...}}`, and with `web_username` /
//! `web_password` set a request without those Basic credentials a 401. Answers are
//! `text/plain`, as Vumi's were, JSON included.
//!
//! Differences from Vumi: a request the application leaves unanswered for
//! `request_timeout` (default 30 s; Vumi waited 240 s and then answered 504 with an empty
//! body) is answered with `timeout_message` and `"action": "end"`, so the user is told, and
//! the application gets `close`. The session lives `ussd_session_timeout` from its last
//! request, not from its first, and ends when the application closes it. Sessions are kept
//! in hornbill's store, so any node can take a session's next request, and an answer that
//! reaches another node is handed to the one holding the request.

use crate::message::Message;
use crate::transports::aggregator::httprpc;
use crate::transports::aggregator::{
    self, Provider, ProviderRequest, ProviderResponse, Received, Refusal, SendContext, SendOutcome,
    UssdRequest, UssdSettings, UssdStep, ussd_defaults,
};
use crate::transports::{Callback, CallbackResponse};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The fields of a request, in the order Vumi's (Python 2) `frozenset` listed them, which is
/// the order of the names in its `missing_parameter` answers.
const FIELDS: &[&str] = &[
    "ussdServiceCode",
    "msisdn",
    "creationTime",
    "transactionTime",
    "transactionId",
    "response",
    "ussdRequestString",
];

fn strict() -> String {
    httprpc::STRICT.into()
}

/// A Junebug `dmark` channel's config: Vumi's keys, and hornbill's `timeout_message`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DmarkConfig {
    /// Basic credentials Dmark must give (both or neither).
    #[serde(default)]
    pub web_username: Option<String>,
    #[serde(default)]
    pub web_password: Option<String>,
    /// How long a request waits for the application's reply, seconds. Vumi's default was
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
    /// Wraps a service code that neither starts with `*` nor ends with `#` into `*<code>#`.
    #[serde(default)]
    pub fix_to_addr: bool,
    /// `strict` (unknown request fields are refused) or `permissive` (they are ignored).
    #[serde(default = "strict")]
    pub validation_mode: String,
}

impl aggregator::TypeConfig for DmarkConfig {
    const IGNORED_KEYS: &'static [&'static str] = httprpc::IGNORED_HTTPRPC_KEYS;

    fn check(&mut self) -> Result<(), String> {
        httprpc::check_config(
            &self.web_username,
            &self.web_password,
            &self.validation_mode,
        )?;
        ussd_defaults::check(
            self.max_ussd_sessions,
            self.request_timeout,
            self.ussd_session_timeout,
        )
    }
}

/// The `dmark` channel type.
pub type DmarkFactory = aggregator::Factory<Dmark>;

impl aggregator::HttpType for Dmark {
    const TYPE: &'static str = "dmark";
    const TRANSPORT_TYPE: &'static str = "ussd";
    const ACTIONS: &'static [&'static str] = &["ussd"];
    type Config = DmarkConfig;

    fn new(cfg: DmarkConfig, _cx: &aggregator::StartContext) -> Self {
        Dmark { cfg }
    }
}

pub struct Dmark {
    pub cfg: DmarkConfig,
}

/// The service code as the inbound's `to`: with `fix_to_addr`, `128` becomes `*128#` (but
/// `*128` and `128#` stay as they are, as in Vumi).
pub fn to_addr(code: &str, fix: bool) -> String {
    if fix && !code.starts_with('*') && !code.ends_with('#') {
        format!("*{code}#")
    } else {
        code.to_string()
    }
}

/// The answer to a held request, as Vumi wrote it.
pub fn answer_body(text: &str, end: bool) -> String {
    let action = if end { "end" } else { "request" };
    httprpc::dumps(&json!({"responseString": text, "action": action}))
}

/// Vumi's `ensure_message_values(msg, ['in_reply_to', 'content'])`: the fields that are
/// missing or empty, as a nack reason.
pub fn missing_fields(msg: &Message) -> Option<String> {
    let mut missing = Vec::new();
    if msg.in_reply_to.as_deref().unwrap_or_default().is_empty() {
        missing.push("in_reply_to");
    }
    if msg.content.as_deref().unwrap_or_default().is_empty() {
        missing.push("content");
    }
    (!missing.is_empty()).then(|| format!("Missing fields: {}", missing.join(", ")))
}

impl Dmark {
    /// A Dmark request: what it means for the session, or Vumi's refusal.
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
        let v = httprpc::field_values(args, FIELDS, &[], strict)?;
        let mut meta = Map::new();
        for (key, field) in [
            ("transaction_id", "transactionId"),
            ("transaction_time", "transactionTime"),
            ("creation_time", "creationTime"),
        ] {
            meta.insert(key.into(), Value::String(v.req(field).to_string()));
        }
        Ok(UssdRequest {
            session_id: v.req("transactionId").to_string(),
            from: v.req("msisdn").to_string(),
            to: to_addr(v.req("ussdServiceCode"), self.cfg.fix_to_addr),
            content: Some(v.req("ussdRequestString").to_string()),
            cumulative: false,
            new_without_content: true,
            step: UssdStep::Continue,
            metadata: meta,
        })
    }
}

impl Provider for Dmark {
    fn name(&self) -> &'static str {
        "dmark_ussd"
    }

    fn secrets(&self) -> Vec<String> {
        self.cfg.web_password.iter().cloned().collect()
    }

    fn build_send(&self, msg: &Message, _cx: &SendContext) -> Result<ProviderRequest, String> {
        // Only a reply to a waiting request reaches Dmark (as its answer); `check_send`
        // refused the rest, so this is a reply whose request is gone.
        Err(missing_fields(msg).unwrap_or_else(|| self.request_gone().into()))
    }

    fn read_send(&self, _resp: &ProviderResponse) -> SendOutcome {
        SendOutcome::Failed("Dmark USSD can only reply to a request".into())
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let req = self.parse_request(cb)?;
        Ok((Received::Ussd(req), CallbackResponse::text(200, "")))
    }

    fn ussd_answer(&self, _req: &UssdRequest, text: &str, end: bool) -> CallbackResponse {
        CallbackResponse::text(200, answer_body(text, end))
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
        missing_fields(msg).map_or(Ok(()), Err)
    }

    fn message_provider(&self, _metadata: &Map<String, Value>) -> Option<String> {
        Some("dmark".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(config: &Value) -> Result<DmarkConfig, String> {
        aggregator::parse_config(config)
    }

    fn dmark(extra: Value) -> Dmark {
        let mut config = json!({"web_path": "/api/v1/dmark/ussd/", "web_port": 0,
                                "publish_status": true});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        Dmark {
            cfg: parse(&config).unwrap(),
        }
    }

    const DEFAULTS: &[(&str, &str)] = &[
        ("transactionId", "transaction-123"),
        ("msisdn", "+00775551122"),
        ("ussdServiceCode", "*121#"),
        ("transactionTime", "1389971940"),
        ("ussdRequestString", "*121#"),
        ("creationTime", "1389971950"),
        ("response", "false"),
    ];

    fn get(pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Callback {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let (reply, _) = tokio::sync::oneshot::channel();
        Callback {
            action: "ussd".into(),
            method: "GET".into(),
            url: format!("http://h:1/channels/c/ussd?{query}"),
            query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: bytes::Bytes::new(),
            reply,
        }
    }

    fn with(changes: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<_> = DEFAULTS.to_vec();
        for (k, v) in changes {
            match pairs.iter_mut().find(|(n, _)| n == k) {
                Some(p) => p.1 = v,
                None => pairs.push((k, v)),
            }
        }
        pairs
    }

    #[test]
    fn a_request() {
        let req = dmark(json!({}))
            .parse_request(&get(
                &with(&[("ussdRequestString", "SHOULD BE IGNORED")]),
                &[],
            ))
            .unwrap();
        assert_eq!(req.session_id, "transaction-123");
        assert_eq!(req.from, "+00775551122");
        assert_eq!(req.to, "*121#");
        assert!(req.new_without_content);
        assert_eq!(req.step, UssdStep::Continue);
        assert_eq!(
            Value::Object(req.metadata),
            json!({"transaction_id": "transaction-123", "transaction_time": "1389971940",
                   "creation_time": "1389971950"})
        );
    }

    #[test]
    fn missing_and_unexpected_parameters() {
        let d = dmark(json!({}));
        let only = [
            ("ussdServiceCode", ""),
            ("msisdn", ""),
            ("creationTime", ""),
        ];
        let refused = d.parse_request(&get(&only, &[])).unwrap_err();
        assert_eq!(refused.response.status, 400);
        assert_eq!(
            refused.response.body,
            r#"{"missing_parameter": ["transactionTime", "transactionId", "response", "ussdRequestString"]}"#
        );
        let extra = with(&[("unexpected_p1", ""), ("unexpected_p2", "")]);
        let refused = d.parse_request(&get(&extra, &[])).unwrap_err();
        assert_eq!(
            refused.response.body,
            r#"{"unexpected_parameter": ["unexpected_p1", "unexpected_p2"]}"#
        );
        let lax = dmark(json!({"validation_mode": "permissive"}));
        assert!(lax.parse_request(&get(&extra, &[])).is_ok());
    }

    #[test]
    fn service_codes_are_fixed_only_when_asked() {
        assert_eq!(to_addr("128", true), "*128#");
        assert_eq!(to_addr("120*123", true), "*120*123#");
        assert_eq!(to_addr("*128", true), "*128");
        assert_eq!(to_addr("128#", true), "128#");
        assert_eq!(to_addr("128", false), "128");
        let req = dmark(json!({"fix_to_addr": true}))
            .parse_request(&get(
                &with(&[("ussdServiceCode", "128"), ("ussdRequestString", "")]),
                &[],
            ))
            .unwrap();
        assert_eq!(req.to, "*128#");
    }

    #[test]
    fn answers_as_vumi_wrote_them() {
        assert_eq!(
            answer_body("We want ... a shrubbery!", true),
            r#"{"responseString": "We want ... a shrubbery!", "action": "end"}"#
        );
        assert_eq!(
            answer_body("Thrëë, my lord.", false),
            r#"{"responseString": "Thr\u00eb\u00eb, my lord.", "action": "request"}"#
        );
    }

    #[test]
    fn replies_need_in_reply_to_and_content() {
        let mut m = Message::new(Some("+00775551122".into()), Some("*121#".into()), None);
        assert_eq!(
            missing_fields(&m).unwrap(),
            "Missing fields: in_reply_to, content"
        );
        m.content = Some("Ni!".into());
        assert_eq!(missing_fields(&m).unwrap(), "Missing fields: in_reply_to");
        m.in_reply_to = Some("some-number".into());
        assert_eq!(missing_fields(&m), None);
        let d = dmark(json!({}));
        let cx = SendContext {
            channel_id: "c",
            callback_base: None,
        };
        assert_eq!(
            d.build_send(&m, &cx).unwrap_err(),
            "Could not find original request."
        );
    }

    #[test]
    fn basic_auth_when_configured() {
        let d = dmark(json!({"web_username": "dmark", "web_password": "s3cret-pw"}));
        let refused = d.parse_request(&get(DEFAULTS, &[])).unwrap_err();
        assert_eq!(refused.response.status, 401);
        // base64("dmark:s3cret-pw")
        let auth = [("authorization", "Basic ZG1hcms6czNjcmV0LXB3")];
        assert!(d.parse_request(&get(DEFAULTS, &auth)).is_ok());
        assert_eq!(d.secrets(), vec!["s3cret-pw".to_string()]);
    }

    #[test]
    fn config() {
        assert!(parse(&json!({})).is_ok());
        let junebug = json!({"web_path": "/api/v1/dmark/ussd/", "web_port": 8080,
            "web_username": "u", "web_password": "p", "health_path": "/health",
            "request_timeout": 240, "ussd_session_timeout": 600, "fix_to_addr": true,
            "redis_manager": {"host": "127.0.0.1", "port": 6379, "key_prefix": "junebug"},
            "transport_name": "c1", "worker_name": "c1", "publish_status": true,
            "noisy": false, "validation_mode": "strict", "timeout_message": "Later."});
        let cfg = parse(&junebug).unwrap();
        assert_eq!(cfg.request_timeout, 240.0);
        assert!(parse(&json!({"web_username": "u"})).is_err());
        assert!(parse(&json!({"validation_mode": "lax"})).is_err());
        assert!(parse(&json!({"api_key": "x"})).is_err());
        assert!(parse(&json!({"request_timeout": 0})).is_err());
    }
}
