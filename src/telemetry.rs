//! Telemetry: hornbill's Prometheus metrics, served at `GET /metrics` on the management API.
//!
//! The `metrics` facade's recorder is global, so it is installed once per process (`init`);
//! servers started in one process (some tests) share it. Counters on the message path are
//! handles registered once per channel (`ChannelMetrics`) and per webhook destination kind
//! (`WebhookMetrics`), so counting is an atomic add with no label strings built. Gauges
//! (queue length, in flight, transport status) are set from the channels' shared state when
//! `/metrics` is scraped; a gauge not set for `GAUGE_IDLE` is dropped, so a deleted
//! channel's gauges go away (its counters stay until the process restarts, as Prometheus
//! expects). Label values are bounded: channel ids, types, outcomes, route patterns; never
//! message content or raw paths.
//!
//! Caps (README, "Limits") count in `hornbill_limit_reached_total{channel, limit}` when they
//! act (`limit_reached`).
//!
//! Also the text process log's writer (`LineSafe`): one event, one line.

use crate::message::Level;
use metrics::{Counter, Label, Unit, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::sync::OnceLock;
use std::time::Duration;

pub const MESSAGES_INBOUND: &str = "hornbill_messages_inbound_total";
pub const MESSAGES_OUTBOUND: &str = "hornbill_messages_outbound_total";
pub const MESSAGES_SENT: &str = "hornbill_messages_sent_total";
pub const EVENTS: &str = "hornbill_events_total";
pub const TRANSPORT_RESTARTS: &str = "hornbill_transport_restarts_total";
pub const WEBHOOK_ATTEMPTS: &str = "hornbill_webhook_attempts_total";
pub const WEBHOOK_FAILURES: &str = "hornbill_webhook_failures_total";
pub const QUEUE_LENGTH: &str = "hornbill_queue_length";
pub const IN_FLIGHT: &str = "hornbill_in_flight";
pub const TRANSPORT_STATUS: &str = "hornbill_transport_status";
pub const BUS_UP: &str = "hornbill_bus_up";
pub const API_REQUEST_DURATION: &str = "hornbill_api_request_duration_seconds";
pub const CALLBACKS_REFUSED: &str = "hornbill_callbacks_refused_total";
pub const LIMIT_REACHED: &str = "hornbill_limit_reached_total";
pub const WEBHOOKS_PENDING: &str = "hornbill_webhooks_pending";
pub const OPEN_FILES: &str = "hornbill_open_files";
pub const OPEN_FILES_LIMIT: &str = "hornbill_open_files_limit";
pub const STORE_EVICTIONS: &str = "hornbill_store_evictions_total";

/// Bucket bounds of the API latency histogram, in seconds.
const API_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// A gauge not set for this long is dropped from the output (all gauges are set per scrape).
const GAUGE_IDLE: Duration = Duration::from_secs(60);
/// How often histogram samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(5);
/// How long a scrape waits for the bus to tell its queue lengths.
pub const BUS_WAIT: Duration = Duration::from_secs(5);

/// Junebug's event types, as counted in `hornbill_events_total{event_type}`.
const EVENT_TYPES: [&str; 5] = [
    "submitted",
    "rejected",
    "delivery_succeeded",
    "delivery_failed",
    "delivery_pending",
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder, the first time it is called in the process; later
/// calls return the same handle.
static NODE: OnceLock<String> = OnceLock::new();

/// This node's id, as the `node` label of every metric: set before `init`.
pub fn set_node(id: &str) {
    let _ = NODE.set(id.to_string());
}

pub fn init() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        if let Some(node) = NODE.get() {
            builder = builder.add_global_label("node", node.clone());
        }
        let recorder = builder
            .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
            .set_buckets_for_metric(Matcher::Full(API_REQUEST_DURATION.into()), API_BUCKETS)
            .expect("API_BUCKETS is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "Another metrics recorder is installed: /metrics shows none of hornbill's metrics."
            );
        }
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "No metrics upkeep thread: histograms are folded only when scraped.");
        }
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        MESSAGES_INBOUND,
        "Inbound messages received by the channel's transport."
    );
    describe_counter!(
        MESSAGES_OUTBOUND,
        "Outbound messages accepted for the channel (API sends, router destination sends, amqp_queue)."
    );
    describe_counter!(
        MESSAGES_SENT,
        "Outbound messages the provider accepted (acked)."
    );
    describe_counter!(
        EVENTS,
        "Events of the channel's messages, by Junebug event type."
    );
    describe_counter!(
        TRANSPORT_RESTARTS,
        "Times the channel's transport failed and was restarted."
    );
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook POSTs (kind mo, event or status) by outcome."
    );
    describe_counter!(
        WEBHOOK_FAILURES,
        "Webhooks given up on: retried for [webhooks] retry_for, or not an http(s) URL."
    );
    describe_gauge!(
        QUEUE_LENGTH,
        "Outbound messages waiting: on the bus, or taken off it and held for the rate limit or window."
    );
    describe_gauge!(
        IN_FLIGHT,
        "Outbound messages handed to the provider and not yet answered."
    );
    describe_gauge!(
        TRANSPORT_STATUS,
        "Status of each component of the channel: 1 ok, 0.5 degraded, 0 down."
    );
    describe_gauge!(BUS_UP, "1 when the bus is reachable, else 0.");
    describe_counter!(
        CALLBACKS_REFUSED,
        "Provider callbacks refused, by reason: no_secret or wrong_secret (the URL lacks the channel's callback secret), refused (the channel type refused the request), unknown_message (a delivery report for a message the channel did not send)."
    );
    describe_counter!(
        LIMIT_REACHED,
        "Times a cap acted (README, Limits), by limit: telnet_connections and open_files (a telnet connection refused), idle_timeout (an idle telnet user disconnected), ussd_sessions (a new USSD session refused), smpp_parts (an incomplete long SMPP message dropped to make room), webhooks_pending (the oldest waiting webhook given up)."
    );
    describe_gauge!(
        WEBHOOKS_PENDING,
        "Webhook deliveries accepted and not yet settled (in a request, waiting for one, or waiting to be retried)."
    );
    describe_gauge!(
        OPEN_FILES,
        "File descriptors the process has open (Linux: /proc/self/fd)."
    );
    describe_gauge!(
        OPEN_FILES_LIMIT,
        "The process's open-files soft limit (RLIMIT_NOFILE)."
    );
    describe_counter!(
        STORE_EVICTIONS,
        "Message records the embedded store evicted, oldest first, to stay within [store] max_records."
    );
    describe_histogram!(
        API_REQUEST_DURATION,
        Unit::Seconds,
        "Management API request latency, by method, route pattern and status."
    );
}

fn level_value(level: Level) -> f64 {
    match level {
        Level::Ok => 1.0,
        Level::Degraded => 0.5,
        Level::Down => 0.0,
    }
}

/// One channel's counter handles (labels `channel`, `type`), and the last status of each
/// of its components.
pub struct ChannelMetrics {
    kind: String,
    pub inbound: Counter,
    pub outbound: Counter,
    pub sent: Counter,
    pub restarts: Counter,
    events: [Counter; 5],
    statuses: parking_lot::Mutex<Vec<(String, f64)>>,
}

impl ChannelMetrics {
    pub fn new(channel: &str, kind: &str) -> ChannelMetrics {
        let labels = || {
            vec![
                Label::new("channel", channel.to_string()),
                Label::new("type", kind.to_string()),
            ]
        };
        let events = EVENT_TYPES.map(|t| {
            let mut l = labels();
            l.push(Label::new("event_type", t));
            counter!(EVENTS, l)
        });
        ChannelMetrics {
            kind: kind.to_string(),
            inbound: counter!(MESSAGES_INBOUND, labels()),
            outbound: counter!(MESSAGES_OUTBOUND, labels()),
            sent: counter!(MESSAGES_SENT, labels()),
            restarts: counter!(TRANSPORT_RESTARTS, labels()),
            events,
            statuses: Default::default(),
        }
    }

    /// The channel's type changed: its counters are new series.
    pub fn retype(&mut self, channel: &str, kind: &str) {
        if self.kind != kind {
            *self = ChannelMetrics::new(channel, kind);
        }
    }

    /// Counts an event by its Junebug type (`Event::api_event_type`).
    pub fn event(&self, event_type: &str) {
        if let Some(i) = EVENT_TYPES.iter().position(|t| *t == event_type) {
            self.events[i].increment(1);
        }
    }

    /// A component reported its status (`StatusEvent::status`: ok, degraded, down).
    /// The component statuses last set, as `transport_status` shows them.
    pub fn statuses(&self) -> Vec<(String, f64)> {
        self.statuses.lock().clone()
    }

    pub fn status(&self, component: &str, status: &str) {
        let Some(level) = Level::parse(status) else {
            return;
        };
        let value = level_value(level);
        let mut statuses = self.statuses.lock();
        match statuses.iter_mut().find(|(c, _)| c == component) {
            Some(entry) => entry.1 = value,
            None => statuses.push((component.to_string(), value)),
        }
    }
}

/// How one webhook attempt ended (`outcome` of `hornbill_webhook_attempts_total`).
#[derive(Clone, Copy, Debug)]
pub enum WebhookOutcome {
    Delivered,
    HttpError,
    Timeout,
    ConnectionFailed,
    RequestFailed,
}

const WEBHOOK_OUTCOMES: [&str; 5] = [
    "delivered",
    "http_error",
    "timeout",
    "connection_failed",
    "request_failed",
];

/// Webhook counter handles of one channel (or router) and kind (`mo`, `event`, `status`).
pub struct WebhookMetrics {
    attempts: [Counter; 5],
    pub failures: Counter,
}

impl WebhookMetrics {
    pub fn new(channel: &str, kind: &'static str) -> WebhookMetrics {
        let labels = || {
            vec![
                Label::new("channel", channel.to_string()),
                Label::new("kind", kind),
            ]
        };
        WebhookMetrics {
            attempts: WEBHOOK_OUTCOMES.map(|o| {
                let mut l = labels();
                l.push(Label::new("outcome", o));
                counter!(WEBHOOK_ATTEMPTS, l)
            }),
            failures: counter!(WEBHOOK_FAILURES, labels()),
        }
    }

    pub fn attempt(&self, outcome: WebhookOutcome) {
        self.attempts[outcome as usize].increment(1);
    }
}

/// Counts a refused provider callback (`reason`: one of a fixed few, see `describe`).
pub fn callback_refused(channel: &str, reason: &'static str) {
    counter!(CALLBACKS_REFUSED, "channel" => channel.to_string(), "reason" => reason).increment(1);
}

/// A cap that acted (the `limit` label of `hornbill_limit_reached_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A telnet connection refused: the channel's `max_connections` are connected.
    TelnetConnections,
    /// A telnet connection refused: the process is within `[server] fd_reserve` of its
    /// open-files limit.
    OpenFiles,
    /// A telnet user disconnected after `idle_timeout` without a line.
    IdleTimeout,
    /// A new USSD session refused: the channel's `max_ussd_sessions` are open.
    UssdSessions,
    /// An incomplete long SMPP message dropped: `max_reassembly_parts` parts were waiting.
    SmppParts,
    /// The oldest webhook waiting for one destination given up:
    /// `[webhooks] max_pending_per_destination` were waiting.
    WebhooksPending,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Limit::TelnetConnections => "telnet_connections",
            Limit::OpenFiles => "open_files",
            Limit::IdleTimeout => "idle_timeout",
            Limit::UssdSessions => "ussd_sessions",
            Limit::SmppParts => "smpp_parts",
            Limit::WebhooksPending => "webhooks_pending",
        }
    }
}

/// Counts a cap acting on a channel (or a router, for its destinations' webhooks).
pub fn limit_reached(channel: &str, limit: Limit) {
    counter!(LIMIT_REACHED, "channel" => channel.to_string(), "limit" => limit.label())
        .increment(1);
}

/// Records one management API request (`route`: the matched pattern, if any).
pub fn api_request(method: &str, route: Option<String>, status: u16, elapsed: Duration) {
    let route = route.unwrap_or_else(|| "unmatched".to_string());
    histogram!(
        API_REQUEST_DURATION,
        "method" => method_label(method),
        "route" => route,
        "status" => status.to_string(),
    )
    .record(elapsed);
}

/// The standard methods as they are; anything else as `other` (bounded labels).
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// One channel's state, as the gauges show it.
pub struct ChannelGauges {
    pub id: String,
    pub kind: String,
    /// Waiting on the bus plus held by the channel; `None` when the bus could not tell.
    pub queue_length: Option<u64>,
    pub in_flight: u64,
    /// Component statuses (`transport_status`).
    pub statuses: Vec<(String, f64)>,
}

/// Sets the gauges from the channels' and the process's state (gathered by
/// `actors::Core::scrape`), then renders every metric in Prometheus's text format.
pub fn render(
    channels: &[ChannelGauges],
    bus_kind: &'static str,
    bus_up: bool,
    webhooks_pending: usize,
) -> String {
    let handle = init();
    for c in channels {
        let labels = vec![
            Label::new("channel", c.id.clone()),
            Label::new("type", c.kind.clone()),
        ];
        if let Some(n) = c.queue_length {
            gauge!(QUEUE_LENGTH, labels.clone()).set(n as f64);
        }
        gauge!(IN_FLIGHT, labels.clone()).set(c.in_flight as f64);
        for (component, value) in &c.statuses {
            let mut l = labels.clone();
            l.push(Label::new("component", component.clone()));
            gauge!(TRANSPORT_STATUS, l).set(*value);
        }
    }
    gauge!(BUS_UP, "kind" => bus_kind).set(if bus_up { 1.0 } else { 0.0 });
    gauge!(WEBHOOKS_PENDING).set(webhooks_pending as f64);
    if let Ok(open) = crate::limits::open_files() {
        gauge!(OPEN_FILES).set(open as f64);
    }
    if let Some(limit) = crate::limits::soft_limit() {
        gauge!(OPEN_FILES_LIMIT).set(limit as f64);
    }
    handle.render()
}

/// The text process log's writer: one log event is one line, whatever its fields hold. A
/// control character inside an event (a newline in a refused value a client sent, say) is
/// written escaped (`\n`, `\r`, `\t`, `\u{1b}`), so nobody can forge a line of the log; only
/// the event's own final newline, and ANSI colour escapes when `colours` is on, go through.
/// tracing-subscriber writes each event with one `write_all`.
pub struct LineSafe<W> {
    inner: W,
    colours: bool,
}

impl<W: std::io::Write> LineSafe<W> {
    pub fn new(inner: W, colours: bool) -> LineSafe<W> {
        LineSafe { inner, colours }
    }
}

impl<W: std::io::Write> std::io::Write for LineSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        let unsafe_byte = |b: u8| (b < 0x20 && !(self.colours && b == 0x1b)) || b == 0x7f;
        if !body.iter().any(|&b| unsafe_byte(b)) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b if unsafe_byte(b) => out.extend_from_slice(format!("\\u{{{b:x}}}").as_bytes()),
                b => out.push(b),
            }
        }
        out.extend_from_slice(&buf[body.len()..]);
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod line_safe_tests {
    use super::LineSafe;
    use std::io::Write;

    fn written(input: &[u8], colours: bool) -> String {
        let mut out = Vec::new();
        LineSafe::new(&mut out, colours).write_all(input).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_event_stays_one_line() {
        assert_eq!(written(b"plain line\n", false), "plain line\n");
        assert_eq!(
            written(b"refused \"a\nINFO forged\"\n", false),
            "refused \"a\\nINFO forged\"\n"
        );
        assert_eq!(
            written(b"a\r\tb\x1b[2J\x7f\n", false),
            "a\\r\\tb\\u{1b}[2J\\u{7f}\n"
        );
        assert_eq!(
            written(b"\x1b[32mINFO\x1b[0m x\ny\n", true),
            "\x1b[32mINFO\x1b[0m x\\ny\n"
        );
        assert_eq!(written("é €\n".as_bytes(), false), "é €\n");
    }
}
