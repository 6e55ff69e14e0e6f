//! Settings: `config.toml` (via the `config` crate) with `HORNBILL__SECTION__KEY` environment
//! overrides, and the checks `hornbill check-config` reports.

use crate::api_schema;
use crate::defs::{AppDef, RouterKind, check_app_name};
use crate::transports::Registry;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address the HTTP API listens on.
    pub host: String,
    /// Port of the HTTP API (0 picks a free one).
    pub port: u16,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// When set, every API request (but `/health`) needs `Authorization: Token <auth_token>`.
    pub auth_token: Option<String>,
    /// When both are set, every API request (but `/health`) may use HTTP Basic with these.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Origins (`https://admin.example.org`, or `*`) whose web pages may call the API from a
    /// browser. A request carrying any other `Origin` than the API's own is refused (403), so
    /// a web page the operator happens to open cannot create channels or send.
    pub cors_origins: Vec<String>,
    /// Host names the API answers to (the `Host` header, port ignored; `*`: any). Unset: the
    /// loopback names when `host` is a loopback address (so a DNS-rebinding page cannot reach
    /// a local API), any otherwise.
    pub allowed_hosts: Option<Vec<String>>,
    /// File descriptors kept free for the APIs, the store, the bus, log files and webhooks:
    /// a listener taking anonymous connections (telnet) refuses one when the process is
    /// within this many of its open-files limit.
    pub fd_reserve: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: None,
            auth_token: None,
            username: None,
            password: None,
            cors_origins: Vec::new(),
            allowed_hosts: None,
            fd_reserve: crate::limits::DEFAULT_FD_RESERVE,
        }
    }
}

/// The public listener: where providers call back (inbound messages, delivery reports, USSD
/// requests) at `/channels/{channel_id}/{action}`, apart from the management API so that one
/// can stay private.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicSettings {
    /// Serve the public listener at all.
    pub enabled: bool,
    pub host: String,
    /// Port of the public listener (0 picks a free one).
    pub port: u16,
    /// The URL providers reach the listener at (behind a proxy: its public address, e.g.
    /// `https://sms.example.org`); given to providers as callback URLs and used to check
    /// signed callbacks (Twilio). Default: `http://host:port` as bound.
    pub base_url: Option<String>,
    /// Largest callback body accepted, bytes.
    pub max_body: usize,
    /// Longest a callback waits for its channel (a USSD request for the application's
    /// answer is bounded by its channel's own `request_timeout`), seconds.
    pub timeout: f64,
    /// Most connections the listener holds at once (then it stops accepting until one
    /// ends; the kernel queues the rest). At most half of what the open-files limit leaves
    /// above `[server] fd_reserve`.
    pub max_connections: usize,
}

impl Default for PublicSettings {
    fn default() -> Self {
        PublicSettings {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 8081,
            base_url: None,
            max_body: 256 * 1024,
            timeout: 120.0,
            max_connections: 4096,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSettings {
    /// `memory` (embedded, nothing survives a restart) or `amqp` (RabbitMQ).
    pub kind: String,
    /// AMQP URL (default `amqp://guest:guest@127.0.0.1:5672/%2f`), or several separated by
    /// commas (the nodes of a cluster): tried in order, and round the list on a reconnect.
    pub url: Option<String>,
    /// Most messages one in-memory queue holds before publishes are refused.
    pub max_queue_length: usize,
}

impl BusSettings {
    /// `url` as given: one AMQP URL or several, separated by commas.
    pub fn amqp_url(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
    }

    /// The addresses `url` names, without their passwords, separated by ", ".
    pub fn amqp_url_shown(&self) -> String {
        crate::bus::amqp::addresses(&self.amqp_url())
            .iter()
            .map(|a| crate::redact::url(a))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl StoreSettings {
    pub fn redis_url(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| "redis://127.0.0.1:6379/0".into())
    }
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            kind: "memory".into(),
            url: None,
            max_queue_length: 1_000_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `memory` (embedded, nothing survives a restart) or `redis`.
    pub kind: String,
    /// Redis URL (default `redis://127.0.0.1:6379/0`).
    pub url: Option<String>,
    /// Prepended (with ":") to every Redis key, as Junebug's `redis.key_prefix`.
    pub key_prefix: Option<String>,
    /// Reply window in seconds (Junebug's `inbound_message_ttl`).
    pub inbound_message_ttl: u64,
    /// Event window in seconds (Junebug's `outbound_message_ttl`).
    pub outbound_message_ttl: u64,
    /// The embedded store's budget: most message records (outbound with their events,
    /// inbound, provider id maps) it holds before evicting the oldest. At least 1; the
    /// Redis store ignores it.
    pub max_records: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: "memory".into(),
            url: None,
            key_prefix: None,
            inbound_message_ttl: 600,
            outbound_message_ttl: 172_800,
            max_records: crate::store::memory::DEFAULT_MAX_RECORDS,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Timeout of one attempt, seconds (Junebug: 10).
    pub timeout: f64,
    /// First retry delay, seconds; doubles each attempt.
    pub initial_backoff: f64,
    /// Longest delay between two attempts, seconds.
    pub max_backoff: f64,
    /// Give up on a delivery this many seconds after its first attempt.
    pub retry_for: f64,
    /// Most requests in flight to one destination (scheme, host and port).
    pub max_per_destination: usize,
    /// Most deliveries waiting for one destination (scheme, host and port): in a request,
    /// waiting for one, or waiting to be retried. A new one past it gives the oldest up
    /// (logged as a failure, counted in `hornbill_webhook_failures_total`).
    pub max_pending_per_destination: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout: 10.0,
            initial_backoff: 1.0,
            max_backoff: 300.0,
            retry_for: 4.0 * 3600.0,
            max_per_destination: 32,
            max_pending_per_destination: 10_000,
        }
    }
}

impl WebhookSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.max(0.001))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelDefaults {
    /// Messages a channel hands to its transport before the first is answered.
    pub window: usize,
    /// Rate bucket in seconds (Junebug's `metric_window`).
    pub metric_window: f64,
    /// Reply to an expired `reply_to` as a plain send when `to` is given.
    pub allow_expired_replies: bool,
    /// Longest pause between two restarts of a failing transport, seconds.
    pub max_restart_backoff: f64,
}

impl Default for ChannelDefaults {
    fn default() -> Self {
        ChannelDefaults {
            window: 64,
            metric_window: 10.0,
            allow_expired_replies: false,
            max_restart_backoff: 60.0,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Default level filter (RUST_LOG overrides it).
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// Entries kept in memory per channel.
    pub ring_size: usize,
    /// Cap on `n` for the logs endpoint (Junebug's `max_logs`).
    pub max_logs: usize,
    /// Where each channel's and router's log is written, `{id}.log` (Junebug's
    /// `logging_path`); empty: no files, the in-memory ring only.
    pub logging_path: String,
    /// A log file is rotated once it is larger than this many bytes (Junebug's
    /// `log_rotate_size`).
    pub log_rotate_size: usize,
    /// Rotated files kept per log, `{id}.log.1` (newest) to `{id}.log.{n}`; 0 keeps them all
    /// (Junebug's `max_log_files`).
    pub max_log_files: usize,
    /// Keep the INFO entries about single messages (each message's story); off saves their
    /// cost at the highest rates. Warnings and errors are kept either way.
    pub message_entries: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: "text".into(),
            ring_size: 1000,
            max_logs: 100,
            logging_path: "logs/".into(),
            log_rotate_size: 1_000_000,
            max_log_files: 5,
            message_entries: true,
        }
    }
}

/// `[cluster]`: this node among others on the same Redis and RabbitMQ. A node with the
/// Redis store and the RabbitMQ bus is a member of the cluster of every node on them (under
/// the same key prefix); any other is a cluster of one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// This node's id: unique in the cluster (default: host name and API port).
    pub node_id: Option<String>,
    /// Where the other nodes and operators reach this node's API (default: the address it
    /// listens on, the host name for an unspecified address).
    pub advertise_url: Option<String>,
    /// Seconds a channel lease and a heartbeat last without renewal (renewed every quarter
    /// of it): how long a dead node's channels wait before another takes them (default 5).
    pub lease_ttl: f64,
    /// Seconds a node stopped with SIGTERM may take to hand its channels over.
    pub grace: f64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node_id: None,
            advertise_url: None,
            lease_ttl: 5.0,
            grace: 20.0,
        }
    }
}

/// Everything hornbill reads from its config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub public: PublicSettings,
    pub bus: BusSettings,
    pub store: StoreSettings,
    pub webhooks: WebhookSettings,
    pub channel_defaults: ChannelDefaults,
    pub log: LogSettings,
    /// Channels started at boot: the API's create body, plus an optional fixed `id`.
    pub channels: Vec<Value>,
    /// Routers started at boot: `id`, the API's router body, and `destinations` (each the
    /// API's destination body plus an `id`). They cannot be changed through the API.
    pub routers: Vec<Value>,
    /// Applications channels and destinations can name: `name`, `type`, `config`.
    pub applications: Vec<Value>,
    pub cluster: ClusterSettings,
    /// The same, read and checked (`echo` is not among them).
    #[serde(skip)]
    pub apps: Vec<AppDef>,
}

/// The problems found in a config file, one line each.
#[derive(Debug)]
pub struct ConfigProblems(pub Vec<String>);

impl std::fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.0 {
            writeln!(f, "- {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigProblems {}

const SECTIONS: &[&str] = &[
    "server",
    "cluster",
    "public",
    "bus",
    "store",
    "webhooks",
    "channel_defaults",
    "log",
    "channels",
    "routers",
    "applications",
];

impl Settings {
    /// Reads `path` (if it exists; `required` makes a missing file an error) and the
    /// `HORNBILL__*` environment, and checks the result against the channel types of
    /// `registry` (those the server starts with). Every problem is reported, not just the
    /// first.
    pub fn load(
        path: &Path,
        required: bool,
        registry: &Registry,
    ) -> Result<Settings, ConfigProblems> {
        let mut builder = config::Config::builder();
        if path.exists() || required {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(required),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("HORNBILL")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let raw = builder
            .build()
            .map_err(|e| ConfigProblems(vec![e.to_string()]))?;
        let tree: Value = raw
            .try_deserialize()
            .map_err(|e| ConfigProblems(vec![e.to_string()]))?;
        Settings::from_value(tree, registry)
    }

    /// Checks a parsed config tree section by section.
    pub fn from_value(tree: Value, registry: &Registry) -> Result<Settings, ConfigProblems> {
        let mut problems = Vec::new();
        let mut settings = Settings::default();
        let Value::Object(top) = tree else {
            return Err(ConfigProblems(vec!["the config is not a table".into()]));
        };
        for key in top.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(format!(
                    "unknown section or key `{key}` (known: {})",
                    SECTIONS.join(", ")
                ));
            }
        }
        fn section<T: serde::de::DeserializeOwned + Default>(
            top: &serde_json::Map<String, Value>,
            name: &str,
            problems: &mut Vec<String>,
        ) -> T {
            match top.get(name) {
                None => T::default(),
                Some(v) => serde_json::from_value(v.clone()).unwrap_or_else(|e| {
                    problems.push(format!("[{name}]: {e}"));
                    T::default()
                }),
            }
        }
        settings.server = section(&top, "server", &mut problems);
        settings.public = section(&top, "public", &mut problems);
        settings.bus = section(&top, "bus", &mut problems);
        settings.store = section(&top, "store", &mut problems);
        settings.webhooks = section(&top, "webhooks", &mut problems);
        settings.channel_defaults = section(&top, "channel_defaults", &mut problems);
        settings.log = section(&top, "log", &mut problems);
        settings.cluster = section(&top, "cluster", &mut problems);
        settings.channels = section(&top, "channels", &mut problems);
        settings.routers = section(&top, "routers", &mut problems);
        settings.applications = section(&top, "applications", &mut problems);

        if settings.server.username.is_some() != settings.server.password.is_some() {
            problems.push("[server] username and password must be set together".into());
        }
        if let Some(base) = &settings.public.base_url
            && !url::Url::parse(base).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problems.push(format!(
                "[public] base_url = {base:?}: must be an http(s) URL"
            ));
        }
        if !matches!(settings.bus.kind.as_str(), "memory" | "amqp") {
            problems.push(format!(
                "[bus] kind = {:?}: must be \"memory\" or \"amqp\"",
                settings.bus.kind
            ));
        }
        if let Some(url) = &settings.bus.url {
            let addresses = crate::bus::amqp::addresses(url);
            if addresses.is_empty() {
                problems.push("[bus] url names no address".into());
            }
            for (i, address) in addresses.iter().enumerate() {
                if let Err(e) = crate::bus::amqp::check_address(address) {
                    problems.push(if addresses.len() > 1 {
                        format!("[bus] url, address #{}: {e}", i + 1)
                    } else {
                        format!("[bus] url: {e}")
                    });
                }
            }
        }
        if !matches!(settings.store.kind.as_str(), "memory" | "redis") {
            problems.push(format!(
                "[store] kind = {:?}: must be \"memory\" or \"redis\"",
                settings.store.kind
            ));
        }
        if settings.store.max_records == 0 {
            problems.push("[store] max_records must be at least 1".into());
        }
        if !matches!(settings.log.format.as_str(), "text" | "json") {
            problems.push(format!(
                "[log] format = {:?}: must be \"text\" or \"json\"",
                settings.log.format
            ));
        }
        if settings.log.log_rotate_size == 0 {
            problems.push("[log] log_rotate_size must be at least 1".into());
        }
        let window = settings.channel_defaults.window as u64;
        if !(1..=api_schema::MAX_WINDOW).contains(&window) {
            problems.push(format!(
                "[channel_defaults] window must be from 1 to {}",
                api_schema::MAX_WINDOW
            ));
        }
        let w = &settings.webhooks;
        // Durations, seconds: finite and in a range that cannot overflow a timer.
        for (key, v, min, max) in [
            ("[public] timeout", settings.public.timeout, 0.1, 3_600.0),
            (
                "[channel_defaults] metric_window",
                settings.channel_defaults.metric_window,
                0.1,
                3_600.0,
            ),
            ("[webhooks] timeout", w.timeout, 0.1, 300.0),
            (
                "[webhooks] initial_backoff",
                w.initial_backoff,
                0.01,
                3_600.0,
            ),
            ("[webhooks] max_backoff", w.max_backoff, 0.01, 86_400.0),
            ("[webhooks] retry_for", w.retry_for, 0.0, 30.0 * 86_400.0),
            (
                "[cluster] lease_ttl",
                settings.cluster.lease_ttl,
                1.0,
                600.0,
            ),
            ("[cluster] grace", settings.cluster.grace, 0.0, 3_600.0),
        ] {
            if let Err(e) = crate::transports::check_range(key, v, min, max) {
                problems.push(e);
            }
        }
        if settings.cluster.node_id.as_deref().is_some_and(|n| {
            n.is_empty() || n.len() > 200 || n.chars().any(|c| c.is_control() || c == '|')
        }) {
            problems.push("[cluster] node_id must be 1 to 200 characters, no '|'".into());
        }
        if let Some(u) = &settings.cluster.advertise_url
            && !url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problems.push(format!(
                "[cluster] advertise_url = {u:?}: must be an http(s) URL"
            ));
        }
        if w.max_per_destination == 0 {
            problems.push("[webhooks] max_per_destination must be at least 1".into());
        }
        for (key, v, min, max) in [
            (
                "[webhooks] max_pending_per_destination",
                w.max_pending_per_destination,
                1,
                10_000_000,
            ),
            (
                "[server] fd_reserve",
                settings.server.fd_reserve,
                16,
                1_000_000,
            ),
            (
                "[public] max_connections",
                settings.public.max_connections,
                1,
                10_000_000,
            ),
        ] {
            if !(min..=max).contains(&v) {
                problems.push(format!("{key} must be from {min} to {max} (got {v})"));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, channel) in settings.channels.iter().enumerate() {
            let at = format!("[[channels]] #{}", i + 1);
            let mut body = channel.clone();
            if let Some(obj) = body.as_object_mut()
                && let Some(id) = obj.remove("id")
            {
                match id.as_str().map(uuid::Uuid::parse_str) {
                    Some(Ok(_)) => {
                        if !ids.insert(id.as_str().unwrap_or_default().to_string()) {
                            problems.push(format!("{at}: id {id} is used twice"));
                        }
                    }
                    _ => problems.push(format!("{at}: id {id} is not a uuid")),
                }
            }
            for e in api_schema::validate_channel(&body, true) {
                problems.push(format!("{at}: {}", e.message));
            }
            if let (Some(t), Some(c)) =
                (body.get("type").and_then(Value::as_str), body.get("config"))
                && let Err(e) = registry.validate(t, c)
            {
                problems.push(format!("{at}: {e}"));
            }
        }
        check_routers(&settings.routers, &mut problems);
        let mut app_names = std::collections::HashSet::new();
        for (i, app) in settings.applications.iter().enumerate() {
            let at = format!("[[applications]] #{}", i + 1);
            match AppDef::parse(app) {
                Ok(def) => settings.apps.push(def),
                Err(found) => problems.extend(found.into_iter().map(|p| format!("{at}: {p}"))),
            }
            if let Some(name) = app.get("name").and_then(Value::as_str)
                && !app_names.insert(name.to_string())
            {
                problems.push(format!("{at}: name {name:?} is used twice"));
            }
        }
        // What channels and router destinations name must exist.
        let named = settings.channels.iter().map(|c| ("[[channels]]", c)).chain(
            settings
                .routers
                .iter()
                .filter_map(|r| r.get("destinations").and_then(Value::as_array))
                .flatten()
                .map(|d| ("[[routers.destinations]]", d)),
        );
        for (at, entry) in named {
            if let Some(name) = entry.get("application").and_then(Value::as_str)
                && let Err(e) = check_app_name(&settings.apps, name)
            {
                problems.push(format!("{at}: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigProblems(problems))
        }
    }
}

/// A config-file id: letters, digits, `-` and `_` (it appears in URLs).
fn plain_id(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|id| {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// `[[routers]]` and their `[[routers.destinations]]`: ids, the API's schemas, and each
/// destination's config for its router's type.
fn check_routers(routers: &[Value], problems: &mut Vec<String>) {
    let mut ids = std::collections::HashSet::new();
    for (i, router) in routers.iter().enumerate() {
        let at = format!("[[routers]] #{}", i + 1);
        let mut body = router.clone();
        let Some(obj) = body.as_object_mut() else {
            problems.push(format!("{at}: must be a table"));
            continue;
        };
        match plain_id(obj.get("id")) {
            Some(id) if !ids.insert(id.to_string()) => {
                problems.push(format!("{at}: id {id:?} is used twice"))
            }
            Some(_) => {}
            None => problems.push(format!("{at}: needs an id of letters, digits, '-' and '_'")),
        }
        obj.remove("id");
        let destinations = obj.remove("destinations").unwrap_or(Value::Array(vec![]));
        for e in api_schema::validate_router(&body, true) {
            problems.push(format!("{at}: {}", e.message));
        }
        let kind = RouterKind::parse(body.get("type").and_then(Value::as_str).unwrap_or_default());
        if let Err(e) = &kind {
            problems.push(format!("{at}: {e}"));
        }
        let Value::Array(destinations) = destinations else {
            problems.push(format!("{at}: destinations must be a list of tables"));
            continue;
        };
        let mut dids = std::collections::HashSet::new();
        for (j, dest) in destinations.iter().enumerate() {
            let at = format!("{at} destination #{}", j + 1);
            let mut dest = dest.clone();
            let Some(d) = dest.as_object_mut() else {
                problems.push(format!("{at}: must be a table"));
                continue;
            };
            match plain_id(d.get("id")) {
                Some(id) if !dids.insert(id.to_string()) => {
                    problems.push(format!("{at}: id {id:?} is used twice"))
                }
                Some(_) => {}
                None => problems.push(format!("{at}: needs an id of letters, digits, '-' and '_'")),
            }
            d.remove("id");
            for e in api_schema::validate_destination(&dest, true) {
                problems.push(format!("{at}: {}", e.message));
            }
            if let Ok(kind) = kind
                && let Err(e) = kind.check_destination(dest.get("config").unwrap_or(&Value::Null))
            {
                problems.push(format!("{at}: {e}"));
            }
        }
    }
}
