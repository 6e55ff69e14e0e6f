//! Vumi message and event types (`VUMI-WIRE.md`), and their Junebug API views
//! (`JUNEBUG-API.md` §2.2, §2.3).
//!
//! These are the one message shape every part of hornbill passes around, on the in-memory bus
//! and on RabbitMQ alike. Required nullable fields are always emitted (as `null`), unknown keys
//! are kept in `extra` and written back unchanged, ids are 32 lower-case hex digits and
//! timestamps are naive UTC `YYYY-MM-DD HH:MM:SS.ffffff`.

use chrono::{NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use std::fmt;

/// The only message version Vumi accepts.
pub const MESSAGE_VERSION: &str = "20110921";
const TIMESTAMP_IN: &str = "%Y-%m-%d %H:%M:%S%.f";

/// A fresh Vumi id: a uuid4 as 32 lower-case hex digits.
pub fn new_id() -> String {
    // A version 4 UUID from the thread's fast generator: ids need to be unique, not secret,
    // and the OS generator costs a system call per id on the hot path.
    let bytes = (u128::from(fastrand::u64(..)) << 64 | u128::from(fastrand::u64(..))).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .simple()
        .to_string()
}

/// A Vumi timestamp: naive UTC, written with exactly six fractional digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub NaiveDateTime);

impl Timestamp {
    /// Now, at the microsecond precision of the wire format (so a message equals itself
    /// after a round trip).
    pub fn now() -> Self {
        let now = Utc::now().naive_utc();
        let micros = now.and_utc().timestamp_subsec_micros();
        Timestamp(now.with_nanosecond(micros * 1000).unwrap_or(now))
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_fast(text).or_else(|| {
            NaiveDateTime::parse_from_str(text, TIMESTAMP_IN)
                .ok()
                .map(Timestamp)
        })
    }

    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` by hand (chrono re-parses its pattern on every call,
    /// and every message and event read off the bus has one).
    fn parse_fast(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b' '
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let digits = b.get(r)?;
            digits.iter().try_fold(0u32, |acc, d| {
                d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
            })
        };
        let nanos = match b.get(19) {
            None => 0,
            Some(b'.') => {
                let frac = &b[20..];
                if frac.is_empty() || frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                let n = num(20..b.len())?;
                n * 10u32.pow(9 - frac.len() as u32)
            }
            Some(_) => return None,
        };
        let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        let time =
            chrono::NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, num(17..19)?, nanos)?;
        Some(Timestamp(NaiveDateTime::new(date, time)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand: chrono's format() re-parses its pattern on every call (hot path).
        use chrono::Datelike;
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 1000 % 1_000_000
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "timestamp {text:?} is not 'YYYY-MM-DD HH:MM:SS.ffffff'"
            ))
        })
    }
}

/// `session_event` of a user message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionEvent {
    New,
    Resume,
    Close,
}

impl SessionEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEvent::New => "new",
            SessionEvent::Resume => "resume",
            SessionEvent::Close => "close",
        }
    }
}

fn user_message_type() -> String {
    "user_message".into()
}
fn event_message_type() -> String {
    "event".into()
}
fn version() -> String {
    MESSAGE_VERSION.into()
}

/// A Vumi `user_message` (TransportUserMessage).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    #[serde(default = "version")]
    pub message_version: String,
    #[serde(default = "user_message_type")]
    pub message_type: String,
    pub message_id: String,
    pub timestamp: Timestamp,
    #[serde(default)]
    pub routing_metadata: Map<String, Value>,
    #[serde(default)]
    pub helper_metadata: Map<String, Value>,
    #[serde(default)]
    pub to_addr: Option<String>,
    #[serde(default)]
    pub from_addr: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub in_reply_to: Option<String>,
    #[serde(default)]
    pub session_event: Option<SessionEvent>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub transport_name: Option<String>,
    #[serde(default)]
    pub transport_type: Option<String>,
    #[serde(default)]
    pub transport_metadata: Map<String, Value>,
    /// Keys Vumi peers add that hornbill does not interpret (`continue_session`,
    /// `to_addr_type`, `__cache__`, ...): kept and written back.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A new message with a fresh id and the current time, everything else empty.
    pub fn new(
        to_addr: Option<String>,
        from_addr: Option<String>,
        content: Option<String>,
    ) -> Self {
        Message {
            message_version: version(),
            message_type: user_message_type(),
            message_id: new_id(),
            timestamp: Timestamp::now(),
            routing_metadata: Map::new(),
            helper_metadata: Map::new(),
            to_addr,
            from_addr,
            group: None,
            provider: None,
            in_reply_to: None,
            session_event: None,
            content,
            transport_name: None,
            transport_type: None,
            transport_metadata: Map::new(),
            extra: Map::new(),
        }
    }

    /// Parses a user message and checks what Vumi checks (version and type).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, WireError> {
        let msg: Message = serde_json::from_slice(bytes)?;
        check_header(&msg.message_version, &msg.message_type, "user_message")?;
        Ok(msg)
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        // Serialising a struct of strings and maps cannot fail.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Junebug's non-standard top-level `continue_session`, if present.
    pub fn continue_session(&self) -> Option<bool> {
        self.extra.get("continue_session").and_then(Value::as_bool)
    }

    /// The reply Vumi's `reply()` builds: addresses swapped, transport fields copied.
    pub fn reply(&self, content: Option<String>, close: bool) -> Message {
        let mut reply = Message::new(self.from_addr.clone(), self.to_addr.clone(), content);
        reply.group = self.group.clone();
        reply.provider = self.provider.clone();
        reply.in_reply_to = Some(self.message_id.clone());
        reply.transport_name = self.transport_name.clone();
        reply.transport_type = self.transport_type.clone();
        reply.transport_metadata = self.transport_metadata.clone();
        reply.helper_metadata = self.helper_metadata.clone();
        // The user's media is not the reply's.
        reply.helper_metadata.remove(ATTACHMENTS);
        if let Some(endpoint) = self.routing_metadata.get("endpoint_name") {
            reply
                .routing_metadata
                .insert("endpoint_name".into(), endpoint.clone());
        }
        if close {
            reply.session_event = Some(SessionEvent::Close);
        }
        reply
    }

    /// The message's media (`helper_metadata.attachments`; none when absent or unreadable).
    pub fn attachments(&self) -> Vec<Attachment> {
        self.helper_metadata
            .get(ATTACHMENTS)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// Whether the message carries media (`helper_metadata.attachments` non-empty).
    pub fn has_attachments(&self) -> bool {
        self.helper_metadata
            .get(ATTACHMENTS)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    }

    /// Sets its media (removes the key when there is none).
    pub fn set_attachments(&mut self, attachments: Vec<Attachment>) {
        if attachments.is_empty() {
            self.helper_metadata.remove(ATTACHMENTS);
        } else {
            self.helper_metadata.insert(
                ATTACHMENTS.into(),
                serde_json::to_value(attachments).unwrap_or_default(),
            );
        }
    }

    /// The nine-key message object of the Junebug API (§2.2), plus `attachments` (hornbill's
    /// extension) when the message carries media.
    pub fn api_view(&self, channel_id: &str) -> Value {
        let mut data = self.helper_metadata.clone();
        let attachments = data.remove(ATTACHMENTS);
        if let Some(ev) = self.session_event {
            data.insert("session_event".into(), Value::from(ev.as_str()));
        }
        if let Some(cont) = self.extra.get("continue_session") {
            data.insert("continue_session".into(), cont.clone());
        }
        let mut view = json!({
            "to": self.to_addr,
            "from": self.from_addr,
            "group": self.group,
            "message_id": self.message_id,
            "channel_id": channel_id,
            "timestamp": self.timestamp,
            "reply_to": self.in_reply_to,
            "content": self.content,
            "channel_data": data,
        });
        if let Some(a) = attachments.filter(|a| a.as_array().is_some_and(|a| !a.is_empty())) {
            view[ATTACHMENTS] = a;
        }
        view
    }
}

/// Where a message's media travels on the Vumi wire: `helper_metadata.attachments`, a list
/// of [`Attachment`] objects. The API shows it as the message's `attachments`.
pub const ATTACHMENTS: &str = "attachments";

/// One piece of media a message carries (hornbill's extension of Junebug's message).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Where it can be fetched: for a send, a URL the provider fetches; for an inbound
    /// message, the provider's URL when it needs no credentials, otherwise hornbill's own
    /// (`/channels/{id}/media/{ref}`), which fetches it with the channel's credentials.
    pub url: String,
    /// Its MIME type (`image/jpeg`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Text shown with it, where the channel has captions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

impl Attachment {
    /// The `attachments` of a send body: a list of objects with a `url` (http or https) and
    /// optional `content_type` and `caption` strings, nothing else; the error names the item.
    pub fn parse_list(v: &Value) -> Result<Vec<Attachment>, String> {
        let Value::Array(items) = v else {
            return Err("attachments must be a list".into());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let a: Attachment = serde_json::from_value(item.clone())
                    .map_err(|e| format!("attachments[{i}]: {e}"))?;
                let keys_ok = item.as_object().is_some_and(|o| {
                    o.keys()
                        .all(|k| matches!(k.as_str(), "url" | "content_type" | "caption"))
                });
                if !keys_ok {
                    return Err(format!(
                        "attachments[{i}]: only url, content_type and caption are allowed"
                    ));
                }
                match url::Url::parse(&a.url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(a),
                    _ => Err(format!("attachments[{i}]: url must be an http(s) URL")),
                }
            })
            .collect()
    }
}

/// `event_type` of a Vumi event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Ack,
    Nack,
    DeliveryReport,
}

/// `delivery_status` of a delivery report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Failed,
    Delivered,
}

/// A Vumi `event` (TransportEvent): ack, nack or delivery report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default = "version")]
    pub message_version: String,
    #[serde(default = "event_message_type")]
    pub message_type: String,
    pub event_id: String,
    pub event_type: EventType,
    pub user_message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nack_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<DeliveryStatus>,
    pub timestamp: Timestamp,
    #[serde(default)]
    pub routing_metadata: Map<String, Value>,
    #[serde(default)]
    pub helper_metadata: Map<String, Value>,
    #[serde(default)]
    pub transport_name: Option<String>,
    #[serde(default)]
    pub transport_metadata: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    fn base(event_type: EventType, user_message_id: &str, transport_name: &str) -> Event {
        Event {
            message_version: version(),
            message_type: event_message_type(),
            event_id: new_id(),
            event_type,
            user_message_id: user_message_id.to_string(),
            sent_message_id: None,
            nack_reason: None,
            delivery_status: None,
            timestamp: Timestamp::now(),
            routing_metadata: Map::new(),
            helper_metadata: Map::new(),
            transport_name: Some(transport_name.to_string()),
            transport_metadata: Map::new(),
            extra: Map::new(),
        }
    }

    pub fn ack(user_message_id: &str, sent_message_id: &str, transport_name: &str) -> Event {
        let mut e = Event::base(EventType::Ack, user_message_id, transport_name);
        e.sent_message_id = Some(sent_message_id.to_string());
        e
    }

    pub fn nack(user_message_id: &str, reason: &str, transport_name: &str) -> Event {
        let mut e = Event::base(EventType::Nack, user_message_id, transport_name);
        e.nack_reason = Some(reason.to_string());
        e
    }

    pub fn delivery_report(
        user_message_id: &str,
        status: DeliveryStatus,
        transport_name: &str,
    ) -> Event {
        let mut e = Event::base(EventType::DeliveryReport, user_message_id, transport_name);
        e.delivery_status = Some(status);
        e
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, WireError> {
        let ev: Event = serde_json::from_slice(bytes)?;
        check_header(&ev.message_version, &ev.message_type, "event")?;
        Ok(ev)
    }

    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Junebug's `event_type` for this event (§2.3); `None` means "not posted".
    pub fn api_event_type(&self) -> Option<&'static str> {
        match (self.event_type, self.delivery_status) {
            (EventType::Ack, _) => Some("submitted"),
            (EventType::Nack, _) => Some("rejected"),
            (EventType::DeliveryReport, Some(DeliveryStatus::Pending)) => Some("delivery_pending"),
            (EventType::DeliveryReport, Some(DeliveryStatus::Failed)) => Some("delivery_failed"),
            (EventType::DeliveryReport, Some(DeliveryStatus::Delivered)) => {
                Some("delivery_succeeded")
            }
            (EventType::DeliveryReport, None) => None,
        }
    }

    /// The event object posted to `event_url` and listed in message status (§2.3).
    pub fn api_view(&self, channel_id: &str) -> Value {
        let details = match self.event_type {
            EventType::Nack => json!({"reason": self.nack_reason}),
            _ => json!({}),
        };
        json!({
            "event_type": self.api_event_type(),
            "message_id": self.user_message_id,
            "channel_id": channel_id,
            "timestamp": self.timestamp,
            "event_details": details,
        })
    }
}

/// A message that is not a valid Vumi message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported message_version {0:?} (expected \"20110921\")")]
    Version(String),
    #[error("message_type {found:?} where {expected:?} was expected")]
    Type {
        found: String,
        expected: &'static str,
    },
}

fn check_header(version: &str, found: &str, expected: &'static str) -> Result<(), WireError> {
    if version != MESSAGE_VERSION {
        return Err(WireError::Version(version.to_string()));
    }
    if found != expected {
        return Err(WireError::Type {
            found: found.to_string(),
            expected,
        });
    }
    Ok(())
}

/// A Junebug/Vumi status event (§2.5): one component's latest state. Its serde form is the
/// API's view (`status.components`, the `status_url` body); the store keeps it as a Vumi
/// `status_event` instead (`to_vumi`, `from_vumi`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub component: String,
    pub channel_id: String,
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub details: Map<String, Value>,
    /// When it was reported (Vumi's `timestamp`; not in the API's view).
    #[serde(skip, default = "Timestamp::now")]
    pub timestamp: Timestamp,
}

fn status_message_type() -> String {
    "status_event".into()
}

/// A stored status as Vumi (`TransportStatus`) and Junebug's status worker write it, and as
/// hornbill wrote it before it wrote Vumi's: only the four fields Vumi requires of every
/// status are required here.
#[derive(Deserialize)]
struct StoredStatus {
    #[serde(default = "version")]
    message_version: String,
    #[serde(default = "status_message_type")]
    message_type: String,
    component: String,
    status: String,
    #[serde(rename = "type")]
    kind: String,
    message: String,
    #[serde(default)]
    details: Option<Map<String, Value>>,
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(default)]
    channel_id: Option<String>,
}

impl StatusEvent {
    pub fn new(channel_id: &str, component: &str, level: Level, kind: &str, message: &str) -> Self {
        StatusEvent {
            component: component.into(),
            channel_id: channel_id.into(),
            status: level.as_str().into(),
            kind: kind.into(),
            message: message.into(),
            details: Map::new(),
            timestamp: Timestamp::now(),
        }
    }

    /// The entry of `{cid}:status` (JUNEBUG-API §3.5): a valid Vumi `status_event` (what
    /// Junebug reads back with `TransportStatus.from_json`, so a Junebug started on this
    /// Redis shows the channel's components), plus hornbill's `channel_id`.
    pub fn to_vumi(&self) -> Value {
        json!({
            "message_version": MESSAGE_VERSION,
            "message_type": status_message_type(),
            "timestamp": self.timestamp,
            "routing_metadata": {},
            "helper_metadata": {},
            "component": self.component,
            "status": self.status,
            "type": self.kind,
            "message": self.message,
            "details": self.details,
            "reasons": [],
            "channel_id": self.channel_id,
        })
    }

    /// Reads an entry of `{cid}:status`: hornbill's, or one Junebug wrote (no `channel_id`:
    /// the entry's key names the channel, `cid`). A missing `timestamp` reads as now.
    pub fn from_vumi(cid: &str, bytes: &[u8]) -> Result<StatusEvent, WireError> {
        let s: StoredStatus = serde_json::from_slice(bytes)?;
        check_header(&s.message_version, &s.message_type, "status_event")?;
        Ok(StatusEvent {
            component: s.component,
            channel_id: s.channel_id.unwrap_or_else(|| cid.to_string()),
            status: s.status,
            kind: s.kind,
            message: s.message,
            details: s.details.unwrap_or_default(),
            timestamp: s.timestamp.unwrap_or_else(Timestamp::now),
        })
    }
}

/// A component's health level, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Down,
    Degraded,
    Ok,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Down => "down",
            Level::Degraded => "degraded",
            Level::Ok => "ok",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "down" => Some(Level::Down),
            "degraded" => Some(Level::Degraded),
            "ok" => Some(Level::Ok),
            _ => None,
        }
    }
}

/// Seconds since the epoch as a float.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_like_chrono() {
        for text in [
            "2026-11-22 23:45:18.123456",
            "2026-11-22 23:45:18",
            "2026-01-02 03:04:05.5",
            "2026-01-02 03:04:05.123456789",
        ] {
            let slow = NaiveDateTime::parse_from_str(text, TIMESTAMP_IN).unwrap();
            assert_eq!(Timestamp::parse_fast(text), Some(Timestamp(slow)), "{text}");
        }
        for bad in [
            "2026-13-01 00:00:00",
            "2026-11-22T23:45:18",
            "2026-11-22 23:45",
            "x",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
        assert_eq!(new_id().len(), 32);
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn statuses_are_stored_as_vumi_status_events() {
        let mut s = StatusEvent::new("c1", "smpp", Level::Down, "connection_lost", "lost");
        s.details.insert("tries".into(), json!(3));
        let stored = s.to_vumi();
        assert_eq!(stored["message_version"], "20110921");
        assert_eq!(stored["message_type"], "status_event");
        assert_eq!(stored["reasons"], json!([]));
        assert_eq!(stored["details"], json!({"tries": 3}));
        assert_eq!(stored["channel_id"], "c1");
        assert!(Timestamp::parse(stored["timestamp"].as_str().unwrap()).is_some());
        let back = StatusEvent::from_vumi("c1", stored.to_string().as_bytes()).unwrap();
        assert_eq!(back, s);
        // The API's view is unchanged: §2.5's six keys.
        let view = serde_json::to_value(&s).unwrap();
        let keys: Vec<&String> = view.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "component",
                "channel_id",
                "status",
                "type",
                "message",
                "details"
            ]
        );
    }

    #[test]
    fn junebugs_and_older_status_entries_are_read() {
        // As Junebug's status worker writes it (Vumi's TransportStatus.to_json).
        let junebug = r#"{"status": "ok", "component": "smpp", "helper_metadata": {},
            "timestamp": "2016-03-18 11:49:36.830534", "routing_metadata": {},
            "message_version": "20110921", "reasons": [], "details": {},
            "message_type": "status_event", "type": "bound", "message": "Bound"}"#;
        let s = StatusEvent::from_vumi("c9", junebug.as_bytes()).unwrap();
        assert_eq!(
            (s.channel_id.as_str(), s.component.as_str(), s.kind.as_str()),
            ("c9", "smpp", "bound")
        );
        assert_eq!(s.timestamp.to_string(), "2016-03-18 11:49:36.830534");
        // hornbill's own entries before it wrote Vumi's shape.
        let older = r#"{"component": "transport", "channel_id": "c9", "status": "ok",
            "type": "started", "message": "Transport running", "details": {}}"#;
        assert_eq!(
            StatusEvent::from_vumi("c9", older.as_bytes()).unwrap().kind,
            "started"
        );
        let foreign = junebug.replace("20110921", "1");
        assert!(StatusEvent::from_vumi("c9", foreign.as_bytes()).is_err());
        assert!(StatusEvent::from_vumi("c9", br#"{"component": "x"}"#).is_err());
    }
}
