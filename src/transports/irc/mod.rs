//! Channel type `irc`: a bot on an IRC network (Vumi's `IrcTransport`). Config: Vumi's keys
//! `network` (host), `port` (6667), `nickname`, `channels` (to join), plus `password` (the
//! server's PASS; a secret) and `tls`, and hornbill's `initial_reconnect_delay`. Private
//! messages to the bot, and channel lines that start with its nick (`bot: hi`), are inbound
//! (`from` the sender's nick, `group` the channel, the nick taken off); replies go back where
//! the message came from. `proto` is the protocol (no I/O: addressing, splitting, the
//! protocol log's lines), `session` the connection kept up with backoff.
//!
//! Built on `irc-proto` (the `irc` crate's parser, without its client): the session owns its
//! socket so that a message is acked once its lines are written, reconnects itself, bounds
//! the length of a line it reads, and writes every line to the protocol log with the
//! password hidden (STACK.md §5.3: "own the reconnect").

pub mod proto;
pub mod session;

use super::{TransportContext, TransportError, TransportFactory};
use futures::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Default of `initial_reconnect_delay`, seconds (doubled after each failed attempt, to 60).
pub const DEFAULT_RECONNECT_DELAY: f64 = 1.0;

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IrcConfig {
    /// The IRC server's host name or address.
    pub network: String,
    /// Its port (6667; 6697 is the usual one for TLS).
    #[serde(default = "default_port")]
    pub port: u64,
    /// The bot's nickname. When it is taken, `nickname_`, `nickname__`, ... are tried.
    pub nickname: String,
    /// Channels to join (`#name`), joined again after every reconnect.
    #[serde(default)]
    pub channels: Vec<String>,
    /// The server password (PASS); never shown or logged.
    #[serde(default)]
    pub password: Option<String>,
    /// Connect with TLS (certificates checked against the system's roots).
    #[serde(default)]
    pub tls: bool,
    /// Vumi's `transport_type` of inbound messages (default `irc`).
    #[serde(default)]
    pub transport_type: Option<String>,
    /// Seconds before the first reconnect; doubled after each failure, at most 60.
    #[serde(default)]
    pub initial_reconnect_delay: Option<f64>,
}

fn default_port() -> u64 {
    6667
}

/// Characters RFC 2812 allows in a nickname after the first (letters, digits, `-` and
/// `[]\`^_{|}`).
fn nick_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-[]\\`^_{|}".contains(c)
}

impl IrcConfig {
    pub fn parse(config: &Value) -> Result<IrcConfig, String> {
        let cfg: IrcConfig = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
        if cfg.network.is_empty() || cfg.network.chars().any(|c| c.is_whitespace()) {
            return Err("network must be a host name or address".into());
        }
        if !(1..=65535).contains(&cfg.port) {
            return Err("port must be from 1 to 65535".into());
        }
        let nick = &cfg.nickname;
        let first_ok = nick
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || "[]\\`^_{|}".contains(c));
        if !first_ok || nick.len() > 30 || !nick.chars().all(nick_char) {
            return Err(format!(
                "nickname {nick:?} is not a valid IRC nickname (a letter first, then letters, digits, - [ ] \\ ` ^ _ {{ | }}; at most 30)"
            ));
        }
        for c in &cfg.channels {
            let ok = proto::is_channel(c)
                && c.len() > 1
                && c.len() <= 50
                && !c
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control() || ch == ',');
            if !ok {
                return Err(format!(
                    "channels: {c:?} is not a channel name (#name, at most 50 characters, no spaces or commas)"
                ));
            }
        }
        if cfg
            .password
            .as_deref()
            .is_some_and(|p| p.contains(['\r', '\n', '\0']))
        {
            return Err("password must not contain line breaks".into());
        }
        if let Some(d) = cfg.initial_reconnect_delay {
            super::check_seconds(&[("initial_reconnect_delay", d)])?;
        }
        Ok(cfg)
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        if self.network.contains(':') && !self.network.starts_with('[') {
            format!("[{}]:{}", self.network, self.port)
        } else {
            format!("{}:{}", self.network, self.port)
        }
    }

    pub fn initial_reconnect_delay(&self) -> Duration {
        Duration::from_secs_f64(
            self.initial_reconnect_delay
                .unwrap_or(DEFAULT_RECONNECT_DELAY),
        )
    }

    /// What must never appear in a log line or status.
    pub fn secrets(&self) -> Vec<String> {
        self.password
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect()
    }
}

pub struct IrcFactory;

impl TransportFactory for IrcFactory {
    fn name(&self) -> &'static str {
        "irc"
    }

    fn transport_type(&self, config: &Value) -> String {
        super::configured_transport_type(config, "irc")
    }

    fn graceful_stop(&self) -> bool {
        true
    }

    fn config_schema(&self) -> Value {
        super::config_schema::<IrcConfig>()
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        IrcConfig::parse(config).map(|_| ())
    }

    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>> {
        let cfg = IrcConfig::parse(config);
        let transport_type = self.transport_type(config);
        Box::pin(async move {
            let cfg = cfg.map_err(TransportError::Other)?;
            session::run(cfg, transport_type, ctx).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_defaults_and_checks() {
        let cfg = IrcConfig::parse(&json!({"network": "irc.example.org", "nickname": "hornbot"}))
            .unwrap();
        assert_eq!(cfg.port, 6667);
        assert!(!cfg.tls);
        assert!(cfg.channels.is_empty());
        assert_eq!(cfg.address(), "irc.example.org:6667");
        let ok = |c: Value| IrcConfig::parse(&c);
        assert!(
            ok(json!({"network": "::1", "nickname": "b"}))
                .unwrap()
                .address()
                == "[::1]:6667"
        );
        for (bad, word) in [
            (json!({"nickname": "b"}), "network"),
            (json!({"network": "h", "nickname": "1bot"}), "nickname"),
            (json!({"network": "h", "nickname": "bo t"}), "nickname"),
            (
                json!({"network": "h", "nickname": "b", "channels": ["room"]}),
                "channels",
            ),
            (
                json!({"network": "h", "nickname": "b", "channels": ["#a,#b"]}),
                "channels",
            ),
            (json!({"network": "h", "nickname": "b", "port": 0}), "port"),
            (
                json!({"network": "h", "nickname": "b", "port": 70000}),
                "port",
            ),
            (
                json!({"network": "h", "nickname": "b", "initial_reconnect_delay": 0}),
                "initial_reconnect_delay",
            ),
            (
                json!({"network": "h", "nickname": "b", "password": "a\r\nQUIT"}),
                "password",
            ),
            (
                json!({"network": "h", "nickname": "b", "nick": "c"}),
                "nick",
            ),
        ] {
            let e = ok(bad.clone()).unwrap_err();
            assert!(e.contains(word), "{bad}: {e}");
        }
    }

    #[test]
    fn the_password_is_a_secret() {
        let cfg = IrcConfig::parse(&json!({"network": "h", "nickname": "b", "password": "s3cr3t"}))
            .unwrap();
        assert_eq!(cfg.secrets(), ["s3cr3t"]);
        let e = IrcFactory
            .validate(&json!({"network": "h", "nickname": "b", "password": "s3cr3t", "x": 1}))
            .unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
