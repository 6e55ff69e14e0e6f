//! Typed definitions: what a channel, a router and an application are, in one place.
//!
//! The API's schema checks (`api_schema`), redaction (`redact`), the engine (`actors`), the
//! config file's checks (`config`) and the OpenAPI document's test all read them from here.
//! A leaf: it uses nothing else of hornbill's, so any module may use it without a cycle.

use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Channels

/// The most messages a rate limit lets through per window.
pub const MAX_RATE_LIMIT_COUNT: u64 = 1_000_000;
/// The longest rate-limit window, seconds (a day).
pub const MAX_RATE_LIMIT_WINDOW: u64 = 86_400;
/// The longest `character_limit`.
pub const MAX_CHARACTER_LIMIT: u64 = 1_000_000;
/// The largest in-flight `window`.
pub const MAX_WINDOW: u64 = 10_000;

/// The JSON type of a body key, as the API's schemas check it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyType {
    Str,
    StrOrNull,
    Obj,
    /// An integer from 0 to the maximum (JSON Schema's integer: `1.0` is one).
    Int(u64),
    Bool,
    /// A JSON array (its items are checked where it is read).
    List,
}

/// One key of a request body.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub ty: KeyType,
    /// A channel modify may set it to `null` (to remove it).
    pub modify_nullable: bool,
    /// Its value is a secret: the API shows the mark instead.
    pub secret: bool,
    /// A URL that may carry credentials: the API shows it redacted.
    pub url: bool,
}

impl Key {
    const fn new(name: &'static str, ty: KeyType) -> Key {
        Key {
            name,
            ty,
            modify_nullable: false,
            secret: false,
            url: false,
        }
    }
    const fn nullable(mut self) -> Key {
        self.modify_nullable = true;
        self
    }
    const fn secret(mut self) -> Key {
        self.secret = true;
        self
    }
    const fn url(mut self) -> Key {
        self.url = true;
        self
    }
}

use KeyType::{Int, Obj, Str};

/// A channel's body (`POST /channels/`, `POST /channels/{id}`): Junebug's keys, then
/// hornbill's own with the same conventions. Other keys are allowed and kept.
pub const CHANNEL_KEYS: &[Key] = &[
    Key::new("type", Str),
    Key::new("label", Str),
    Key::new("config", Obj),
    Key::new("metadata", Obj),
    Key::new("status_url", Str).nullable().url(),
    Key::new("mo_url", Str).nullable().url(),
    Key::new("mo_url_auth_token", Str).secret(),
    Key::new("amqp_queue", Str),
    Key::new("rate_limit_count", Int(MAX_RATE_LIMIT_COUNT)),
    Key::new("rate_limit_window", Int(MAX_RATE_LIMIT_WINDOW)),
    Key::new("character_limit", Int(MAX_CHARACTER_LIMIT)),
    Key::new("event_url", Str).nullable().url(),
    Key::new("event_auth_token", Str).nullable().secret(),
    Key::new("application", Str).nullable(),
    Key::new("window", Int(MAX_WINDOW)),
    // hornbill: each PDU, stanza or line of a socket protocol in the channel log
    Key::new("log_protocol", KeyType::Bool),
];

/// A router destination's body. Closed: no other keys.
pub const DESTINATION_KEYS: &[Key] = &[
    Key::new("config", Obj),
    Key::new("label", Str),
    Key::new("metadata", Obj),
    Key::new("mo_url", Str).url(),
    Key::new("mo_url_token", Str).secret(),
    Key::new("amqp_queue", Str),
    Key::new("character_limit", Int(MAX_CHARACTER_LIMIT)),
    // hornbill: a built-in application as the destination
    Key::new("application", Str),
];

/// A router's body. Closed.
pub const ROUTER_KEYS: &[Key] = &[
    Key::new("type", Str),
    Key::new("config", Obj),
    Key::new("label", Str),
    Key::new("metadata", Obj),
];

/// A send's body (a channel's or a destination's). Closed.
pub const MESSAGE_KEYS: &[Key] = &[
    Key::new("to", Str),
    Key::new("from", KeyType::StrOrNull),
    Key::new("group", KeyType::StrOrNull),
    Key::new("reply_to", Str),
    Key::new("content", KeyType::StrOrNull),
    Key::new("event_url", Str),
    Key::new("event_auth_token", Str),
    Key::new("priority", Str),
    Key::new("channel_data", Obj),
    // hornbill: media, `[{"url", "content_type", "caption"}]` (`message::Attachment`)
    Key::new("attachments", KeyType::List),
];

/// The keys a channel's destination is one of: a channel may be sent to only with one.
pub const DESTINATION_KINDS: &[&str] = &["mo_url", "amqp_queue", "application"];

/// Property keys of a channel's callback secret, and of the one it replaced (accepted for
/// `PREVIOUS_SECRET_GRACE` after a rotation, so providers can be updated without loss).
/// Kept with the channel's properties, never shown by the API but to the rotation's caller.
pub const CALLBACK_SECRET: &str = "callback_secret";
pub const PREVIOUS_CALLBACK_SECRET: &str = "previous_callback_secret";
pub const PREVIOUS_SECRET_GRACE: f64 = 3600.0;

/// A JSON number that is a non-negative integer (`3`, `3.0`), as JSON Schema counts them.
pub fn as_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// A channel's settings, read from its properties (the API body as stored, checked).
#[derive(Clone, Debug, Default)]
pub struct ChannelSpec {
    pub kind: String,
    pub config: Value,
    pub mo_url: Option<String>,
    pub mo_url_auth_token: Option<String>,
    pub amqp_queue: Option<String>,
    pub status_url: Option<String>,
    pub event_url: Option<String>,
    pub event_auth_token: Option<String>,
    pub application: Option<String>,
    pub rate_limit_count: u64,
    pub rate_limit_window: u64,
    pub character_limit: Option<u64>,
    pub window: usize,
    /// Vumi `transport_type` of the channel's messages (from its type and config).
    pub transport_type: String,
    /// Junebug: a channel may be sent to only when it has a destination key.
    pub has_destination: bool,
    /// What a provider's callback URL must carry (channel types with callbacks).
    pub callback_secret: CallbackSecret,
    /// Each protocol unit (PDU, stanza, line) goes to the channel log.
    pub log_protocol: bool,
}

impl ChannelSpec {
    /// `default_window` when the channel sets none; `transport_type` from its type and
    /// config (the channel type registry's answer).
    pub fn from_props(
        props: &Value,
        default_window: usize,
        transport_type: impl FnOnce(&str, &Value) -> String,
    ) -> ChannelSpec {
        let s = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| props.get(k).and_then(as_count);
        let kind = s("type").unwrap_or_default();
        let config = props.get("config").cloned().unwrap_or(Value::Null);
        ChannelSpec {
            transport_type: transport_type(&kind, &config),
            kind,
            config,
            mo_url: s("mo_url"),
            mo_url_auth_token: s("mo_url_auth_token"),
            amqp_queue: s("amqp_queue"),
            status_url: s("status_url"),
            event_url: s("event_url"),
            event_auth_token: s("event_auth_token"),
            application: s("application"),
            rate_limit_count: n("rate_limit_count").unwrap_or(0),
            rate_limit_window: n("rate_limit_window").unwrap_or(0),
            character_limit: n("character_limit"),
            window: n("window")
                .map(|w| w.max(1) as usize)
                .unwrap_or(default_window),
            has_destination: DESTINATION_KINDS.iter().any(|k| props.get(*k).is_some()),
            callback_secret: CallbackSecret::from_props(props),
            log_protocol: props.get("log_protocol").and_then(Value::as_bool) == Some(true),
        }
    }
}

/// The unguessable path segment in a channel's callback URLs,
/// `/channels/{id}/{secret}/{action}`: without it a provider callback is refused, so nobody
/// who merely knows (or guesses) a channel id can inject messages or reports.
#[derive(Clone, Debug, Default)]
pub struct CallbackSecret {
    pub current: Option<String>,
    /// The secret a rotation replaced, and until when (epoch seconds) it still opens.
    pub previous: Option<(String, f64)>,
}

impl CallbackSecret {
    fn from_props(props: &Value) -> CallbackSecret {
        let previous = props.get(PREVIOUS_CALLBACK_SECRET).and_then(|p| {
            Some((
                p.get("secret")?.as_str()?.to_string(),
                p.get("until")?.as_f64()?,
            ))
        });
        CallbackSecret {
            current: props
                .get(CALLBACK_SECRET)
                .and_then(Value::as_str)
                .map(str::to_string),
            previous,
        }
    }

    /// A new secret: 128 bits from the operating system's generator (uuid v4 uses getrandom).
    pub fn generate() -> String {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// Whether `given` opens this channel's callbacks (compared in constant time).
    pub fn accepts(&self, given: &str, now: f64) -> bool {
        use subtle::ConstantTimeEq;
        let matches = |s: &str| bool::from(s.as_bytes().ct_eq(given.as_bytes()));
        self.current.as_deref().is_some_and(matches)
            || self
                .previous
                .as_ref()
                .is_some_and(|(s, until)| now < *until && matches(s))
    }
}

// ---------------------------------------------------------------------------------------
// Routers

/// A router's `type` (see `actors::router` for what each does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterKind {
    FromAddress,
    Keyword,
    ToAddr,
    FromAddr,
    LoadBalance,
    ChannelToChannel,
}

impl RouterKind {
    pub const ALL: [RouterKind; 6] = [
        RouterKind::FromAddress,
        RouterKind::Keyword,
        RouterKind::ToAddr,
        RouterKind::FromAddr,
        RouterKind::LoadBalance,
        RouterKind::ChannelToChannel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouterKind::FromAddress => "from_address",
            RouterKind::Keyword => "keyword",
            RouterKind::ToAddr => "to_addr",
            RouterKind::FromAddr => "from_addr",
            RouterKind::LoadBalance => "load_balance",
            RouterKind::ChannelToChannel => "channel_to_channel",
        }
    }

    /// The kind a `type` names, or Junebug's error text.
    pub fn parse(kind: &str) -> Result<RouterKind, String> {
        RouterKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| {
                let all: Vec<&str> = RouterKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "Invalid router type {kind}, must be one of: {}",
                    all.join(", ")
                )
            })
    }

    /// Whether its destinations are chosen by `regular_expression`.
    pub fn matches_addresses(self) -> bool {
        matches!(
            self,
            RouterKind::FromAddress
                | RouterKind::ToAddr
                | RouterKind::FromAddr
                | RouterKind::ChannelToChannel
        )
    }

    /// Checks a destination's config for this kind (the text of
    /// `InvalidRouterDestinationConfig`).
    pub fn check_destination(self, config: &Value) -> Result<(), String> {
        if !config.is_object() {
            return Err("The destination config must be an object".into());
        }
        if let Some(d) = config.get("default")
            && !d.is_boolean()
        {
            return Err("Field 'default' must be a boolean".into());
        }
        let default = config
            .get("default")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if self.matches_addresses() {
            match config.get("regular_expression") {
                Some(Value::String(re)) => {
                    if let Err(e) = regex::Regex::new(re) {
                        return Err(format!(
                            "Field 'regular_expression' is not a valid regular expression: {e}"
                        ));
                    }
                }
                None if default => {}
                _ => return Err("Missing required config field 'regular_expression'".into()),
            }
            if let Some(p) = config.get("priority")
                && !p.is_i64()
            {
                return Err("Field 'priority' must be an integer".into());
            }
        }
        if self == RouterKind::Keyword && keywords(config).is_empty() && !default {
            return Err("Missing required config field 'keyword'".into());
        }
        Ok(())
    }
}

/// A `keyword` destination's words (`keyword` and `keywords`), lower case.
pub fn keywords(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(k) = config.get("keyword").and_then(Value::as_str) {
        out.push(k.to_lowercase());
    }
    if let Some(Value::Array(ks)) = config.get("keywords") {
        out.extend(ks.iter().filter_map(Value::as_str).map(str::to_lowercase));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Applications

/// An application channels and destinations can name (`[[applications]]`, and `echo`).
#[derive(Clone, Debug)]
pub struct AppDef {
    pub name: String,
    pub kind: AppKind,
}

#[derive(Clone, Debug)]
pub enum AppKind {
    Echo,
    Relay(RelayConfig),
    Menu(Arc<MenuConfig>),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub url: String,
    #[serde(default)]
    pub auth_token: Option<String>,
    #[serde(default)]
    pub timeout: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuConfig {
    pub start: String,
    #[serde(default)]
    pub submit_url: Option<String>,
    #[serde(default)]
    pub session_timeout: Option<f64>,
    pub pages: Vec<Page>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub options: Vec<Choice>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    pub label: String,
    pub next: String,
}

impl AppDef {
    /// The built-in `echo`.
    pub fn echo() -> AppDef {
        AppDef {
            name: "echo".into(),
            kind: AppKind::Echo,
        }
    }

    /// One `[[applications]]` entry (`name`, `type`, `config`), or its problems, one line
    /// each.
    pub fn parse(entry: &Value) -> Result<AppDef, Vec<String>> {
        let mut problems = vec![];
        let name = entry.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() || name == "echo" {
            problems.push("needs a name (other than echo)".to_string());
        }
        match kind_of(entry) {
            Ok(kind) if problems.is_empty() => Ok(AppDef {
                name: name.to_string(),
                kind,
            }),
            Ok(_) => Err(problems),
            Err(e) => {
                problems.push(e);
                Err(problems)
            }
        }
    }
}

fn kind_of(entry: &Value) -> Result<AppKind, String> {
    let config = entry
        .get("config")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    match entry.get("type").and_then(Value::as_str) {
        Some("echo") => Ok(AppKind::Echo),
        Some("http_relay") => serde_json::from_value(config)
            .map(AppKind::Relay)
            .map_err(|e| format!("http_relay config: {e}")),
        Some("ussd_menu") => {
            let menu: MenuConfig =
                serde_json::from_value(config).map_err(|e| format!("ussd_menu config: {e}"))?;
            let ids: Vec<&str> = menu.pages.iter().map(|p| p.id.as_str()).collect();
            let mut targets: Vec<&str> = vec![menu.start.as_str()];
            for p in &menu.pages {
                targets.extend(p.options.iter().map(|o| o.next.as_str()));
                targets.extend(p.next.as_deref());
                if p.input.is_some() && p.next.is_none() {
                    return Err(format!(
                        "ussd_menu page {:?}: an input needs a next page",
                        p.id
                    ));
                }
            }
            if let Some(missing) = targets.iter().find(|t| !ids.contains(t)) {
                return Err(format!("ussd_menu: no page {missing:?}"));
            }
            Ok(AppKind::Menu(Arc::new(menu)))
        }
        other => Err(format!(
            "type {other:?} must be echo, http_relay or ussd_menu"
        )),
    }
}

/// Checks an application name against those defined (`Err` with the message for the API).
pub fn check_app_name(apps: &[AppDef], name: &str) -> Result<(), String> {
    if name == "echo" || apps.iter().any(|a| a.name == name) {
        return Ok(());
    }
    let mut known = vec!["echo"];
    known.extend(apps.iter().map(|a| a.name.as_str()));
    Err(format!(
        "Unknown application {name:?}, must be one of: {}",
        known.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn router_kinds_round_trip_and_refuse_others() {
        for k in RouterKind::ALL {
            assert_eq!(RouterKind::parse(k.as_str()), Ok(k));
        }
        assert_eq!(
            RouterKind::parse("nope").unwrap_err(),
            "Invalid router type nope, must be one of: from_address, keyword, to_addr, \
             from_addr, load_balance, channel_to_channel"
        );
    }

    #[test]
    fn destinations_checked_per_kind() {
        let k = RouterKind::FromAddress;
        assert!(
            k.check_destination(&json!({"regular_expression": "^1"}))
                .is_ok()
        );
        assert!(k.check_destination(&json!({"default": true})).is_ok());
        assert!(k.check_destination(&json!({})).is_err());
        assert!(
            k.check_destination(&json!({"regular_expression": "("}))
                .is_err()
        );
        assert!(RouterKind::Keyword.check_destination(&json!({})).is_err());
        assert!(
            RouterKind::Keyword
                .check_destination(&json!({"keywords": ["A"]}))
                .is_ok()
        );
        assert!(
            RouterKind::LoadBalance
                .check_destination(&json!({}))
                .is_ok()
        );
        assert!(
            RouterKind::LoadBalance
                .check_destination(&json!(1))
                .is_err()
        );
    }

    #[test]
    fn applications_parsed_once_with_their_problems() {
        let menu = json!({"name": "m", "type": "ussd_menu", "config": {"start": "a",
            "pages": [{"id": "a", "text": "hi", "options": [{"label": "x", "next": "b"}]}]}});
        assert_eq!(
            AppDef::parse(&menu).unwrap_err(),
            ["ussd_menu: no page \"b\""]
        );
        let relay = json!({"name": "r", "type": "http_relay", "config": {"url": "http://x"}});
        let apps = vec![AppDef::parse(&relay).unwrap()];
        assert!(check_app_name(&apps, "r").is_ok());
        assert!(check_app_name(&apps, "echo").is_ok());
        assert_eq!(
            check_app_name(&apps, "zz").unwrap_err(),
            "Unknown application \"zz\", must be one of: echo, r"
        );
        assert_eq!(
            AppDef::parse(&json!({"type": "echo"})).unwrap_err(),
            ["needs a name (other than echo)"]
        );
    }
}
