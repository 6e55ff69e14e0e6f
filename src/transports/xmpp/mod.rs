//! Channel type `xmpp`: an XMPP (Jabber) client account as Junebug's (Vumi's
//! `XMPPTransport`) was, chatting one to one. Config: Junebug's keys (`host`, `port`,
//! `username` the account's JID, `password`, `status`, `status_message`, `ping_interval`,
//! `presence_interval`; Vumi's `debug` accepted and ignored: `log_protocol` does its job),
//! plus hornbill's `insecure_loopback` (plaintext to a server on this machine, for tests) and
//! `initial_reconnect_delay`.
//!
//! Built on tokio-xmpp's XML stream (connection, StartTLS, SASL) and xmpp-parsers' stanzas;
//! the session (resource binding, presence, pings, sends) is ours, in `session`, so that an
//! ack means the stanza was written and every reconnect shows in the channel's status. What
//! is read from and built into stanzas is `stanza`'s (pure).

pub mod session;
pub mod stanza;

use crate::transports::{TransportContext, TransportError, TransportFactory};
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::time::Duration;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::presence::Show;

/// Junebug's default port (`port`).
pub const DEFAULT_PORT: u16 = 5222;
/// Junebug's default of `ping_interval` and `presence_interval`, seconds.
pub const DEFAULT_INTERVAL: f64 = 60.0;
/// Default of `initial_reconnect_delay`, seconds (doubling to a minute).
pub const DEFAULT_RECONNECT_DELAY: f64 = 1.0;

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct XmppConfig {
    /// The server to connect to (its name or address).
    pub host: String,
    /// Its client port (default 5222); a number or a numeric string, as Vumi took it.
    #[serde(default = "default_port", deserialize_with = "port_number")]
    #[schema(value_type = u16)]
    pub port: u16,
    /// The account's JID (`bot@example.org`, optionally with a resource).
    pub username: String,
    /// The account's password (secret: shown as `***`, never logged).
    #[serde(deserialize_with = "secret_string")]
    pub password: String,
    /// Presence `show`: `chat`, `away`, `xa` or `dnd`. Any other word (Vumi sent this key as
    /// the status text) is announced as the status text when `status_message` is empty.
    #[serde(default)]
    pub status: Option<String>,
    /// The status text announced with the presence.
    #[serde(default)]
    pub status_message: Option<String>,
    /// Seconds between XMPP pings (XEP-0199) to the server; one unanswered by the next
    /// is a dead link, and the channel reconnects.
    #[serde(default = "default_interval")]
    pub ping_interval: f64,
    /// Seconds between presence announcements.
    #[serde(default = "default_interval")]
    pub presence_interval: f64,
    /// Seconds before the first reconnect; doubled after each failure, up to a minute.
    #[serde(default = "default_reconnect_delay")]
    pub initial_reconnect_delay: f64,
    /// Allow a server that does not offer StartTLS, only when `host` is a loopback address
    /// (a local test server). Everywhere else StartTLS is required.
    #[serde(default)]
    pub insecure_loopback: bool,
    /// Vumi's traffic logging switch: accepted and ignored (see `log_protocol`).
    #[serde(default)]
    pub debug: Option<bool>,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_interval() -> f64 {
    DEFAULT_INTERVAL
}

fn default_reconnect_delay() -> f64 {
    DEFAULT_RECONNECT_DELAY
}

/// A port as a number or a numeric string (Vumi's `int(config['port'])`).
fn port_number<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = Value::deserialize(d)?;
    let port = match &v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match port {
        Some(p @ 1..=65535) => Ok(p as u16),
        _ => Err(serde::de::Error::custom(format!(
            "port must be a port number from 1 to 65535 (got {v})"
        ))),
    }
}

/// A secret string; a wrong type is refused without echoing the value.
fn secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        _ => Err(serde::de::Error::custom("password must be a string")),
    }
}

impl XmppConfig {
    pub fn parse(config: &Value) -> Result<XmppConfig, String> {
        let cfg: XmppConfig = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        if cfg.host.trim().is_empty() {
            return Err("host must name the XMPP server".into());
        }
        cfg.jid()?;
        if cfg.password.is_empty() {
            return Err("password must not be empty".into());
        }
        super::check_seconds(&[
            ("ping_interval", cfg.ping_interval),
            ("presence_interval", cfg.presence_interval),
            ("initial_reconnect_delay", cfg.initial_reconnect_delay),
        ])?;
        if cfg.insecure_loopback && !is_loopback(&cfg.host) {
            return Err(format!(
                "insecure_loopback is only allowed for a server on this machine (host {:?} is not a loopback address)",
                cfg.host
            ));
        }
        Ok(cfg)
    }

    /// The account's JID, as configured (a resource, if given, is asked for at binding).
    pub fn jid(&self) -> Result<Jid, String> {
        let jid = Jid::new(self.username.trim())
            .map_err(|e| format!("username must be a JID (user@domain): {e}"))?;
        if jid.node().is_none() {
            return Err("username must be a JID with a user part (user@domain)".into());
        }
        Ok(jid)
    }

    /// Our address: the account's bare JID (inbound messages' `to_addr`).
    pub fn bare_jid(&self) -> Result<BareJid, String> {
        self.jid().map(|j| j.to_bare())
    }

    /// What the presence announces: its `show`, and its status text.
    pub fn presence(&self) -> (Option<Show>, Option<String>) {
        let show = match self.status.as_deref().map(str::trim) {
            Some("chat") => Some(Show::Chat),
            Some("away") => Some(Show::Away),
            Some("xa") => Some(Show::Xa),
            Some("dnd") => Some(Show::Dnd),
            _ => None,
        };
        let text = self
            .status_message
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| {
                // Vumi announced `status` itself as the text: a word that is no `show`
                // keeps doing that.
                self.status
                    .clone()
                    .filter(|s| show.is_none() && !s.trim().is_empty())
            });
        (show, text)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs_f64(self.ping_interval)
    }

    pub fn presence_interval(&self) -> Duration {
        Duration::from_secs_f64(self.presence_interval)
    }

    pub fn initial_reconnect_delay(&self) -> Duration {
        Duration::from_secs_f64(self.initial_reconnect_delay)
    }

    /// `host:port` as shown in statuses and logs.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Whether `host` names this machine: `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub struct XmppFactory;

impl TransportFactory for XmppFactory {
    fn name(&self) -> &'static str {
        "xmpp"
    }

    fn transport_type(&self, _config: &Value) -> String {
        "xmpp".into()
    }

    fn graceful_stop(&self) -> bool {
        true
    }

    fn config_schema(&self) -> Value {
        super::config_schema::<XmppConfig>()
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        XmppConfig::parse(config).map(|_| ())
    }

    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>> {
        let cfg = XmppConfig::parse(config);
        Box::pin(async move { session::run(cfg.map_err(TransportError::Other)?, ctx).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"host": "xmpp.example.org", "username": "bot@example.org", "password": "s3cr3t-pw"})
    }

    fn with(key: &str, value: Value) -> Result<XmppConfig, String> {
        let mut c = minimal();
        c[key] = value;
        XmppConfig::parse(&c)
    }

    #[test]
    fn junebug_keys_and_defaults() {
        let cfg = XmppConfig::parse(&json!({
            "host": "xmpp.example.org", "port": "5223", "username": "bot@example.org/hb",
            "password": "pw", "status": "chat", "status_message": "Ask me",
            "ping_interval": 30, "presence_interval": 120, "debug": true
        }))
        .unwrap();
        assert_eq!(cfg.port, 5223);
        assert_eq!(cfg.bare_jid().unwrap().to_string(), "bot@example.org");
        assert_eq!(cfg.presence(), (Some(Show::Chat), Some("Ask me".into())));
        assert_eq!(cfg.ping_interval(), Duration::from_secs(30));
        let cfg = XmppConfig::parse(&minimal()).unwrap();
        assert_eq!(cfg.port, 5222);
        assert_eq!(cfg.ping_interval, 60.0);
        assert_eq!(cfg.presence_interval, 60.0);
        assert!(!cfg.insecure_loopback);
        assert_eq!(cfg.presence(), (None, None));
    }

    #[test]
    fn a_status_that_is_no_show_is_the_status_text_as_in_vumi() {
        let cfg = with("status", json!("Available")).unwrap();
        assert_eq!(cfg.presence(), (None, Some("Available".into())));
        let mut c = minimal();
        c["status"] = json!("Available");
        c["status_message"] = json!("Here");
        let cfg = XmppConfig::parse(&c).unwrap();
        assert_eq!(cfg.presence(), (None, Some("Here".into())));
    }

    #[test]
    fn bad_configs_are_refused_with_the_key_named() {
        for (key, value, needle) in [
            ("port", json!(0), "port"),
            ("port", json!("x"), "port"),
            ("port", json!(70000), "port"),
            ("username", json!("no-at-sign"), "username"),
            ("username", json!("a@b@c"), "username"),
            ("host", json!(" "), "host"),
            ("ping_interval", json!(0), "ping_interval"),
            ("presence_interval", json!(-1), "presence_interval"),
            ("no_such_key", json!(1), "no_such_key"),
        ] {
            let e = with(key, value.clone()).unwrap_err();
            assert!(e.contains(needle), "{key}={value}: {e}");
        }
        let mut c = minimal();
        c.as_object_mut().unwrap().remove("password");
        assert!(XmppConfig::parse(&c).unwrap_err().contains("password"));
    }

    #[test]
    fn a_password_of_the_wrong_type_is_not_echoed() {
        let e = with("password", json!(987654321)).unwrap_err();
        assert!(e.contains("password") && !e.contains("987654321"), "{e}");
    }

    #[test]
    fn plaintext_only_on_loopback() {
        let e = with("insecure_loopback", json!(true)).unwrap_err();
        assert!(e.contains("insecure_loopback"), "{e}");
        for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            let mut c = minimal();
            c["host"] = json!(host);
            c["insecure_loopback"] = json!(true);
            assert!(XmppConfig::parse(&c).is_ok(), "{host}");
        }
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("localhost.example.org"));
    }
}
