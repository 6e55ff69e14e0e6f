//! Per-channel logs: what happened on one channel (connections, transport restarts, webhook
//! attempts, refusals), kept in a bounded ring and served by `GET /channels/{id}/logs`
//! in Junebug's entry shape (§2.6). Entries carry Python level numbers (20 INFO, 30 WARNING,
//! 40 ERROR) and, where there is one, the message id.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;

pub const INFO: u8 = 20;
pub const WARNING: u8 = 30;
pub const ERROR: u8 = 40;

#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    pub logger: String,
    pub level: u8,
    pub timestamp: f64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// One channel's log ring. Cheap to clone (shared).
#[derive(Clone)]
pub struct ChannelLog {
    id: Arc<str>,
    ring: Arc<Mutex<VecDeque<LogEntry>>>,
    capacity: usize,
}

impl ChannelLog {
    pub fn new(id: &str, capacity: usize) -> Self {
        ChannelLog {
            id: Arc::from(id),
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity: capacity.max(1),
        }
    }

    /// Records one entry and mirrors it to the process log. Callers pass text that holds no
    /// secrets (URLs go through `redact::url`).
    pub fn log(&self, level: u8, message_id: Option<&str>, message: impl Into<String>) {
        let message = message.into();
        // Per-message INFO entries would flood the process log of a busy server: they go to
        // the channel log, and to the process log only at debug level.
        match level {
            l if l >= ERROR => {
                tracing::error!(channel = %self.id, message_id, "{message}")
            }
            l if l >= WARNING => {
                tracing::warn!(channel = %self.id, message_id, "{message}")
            }
            _ if message_id.is_some() => {
                tracing::debug!(channel = %self.id, message_id, "{message}")
            }
            _ => tracing::info!(channel = %self.id, "{message}"),
        }
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let entry = LogEntry {
            logger: self.id.to_string(),
            level,
            timestamp,
            message,
            message_id: message_id.map(str::to_string),
        };
        let mut ring = self.ring.lock();
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// The channel (or router) this log belongs to.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn info(&self, message_id: Option<&str>, message: impl Into<String>) {
        self.log(INFO, message_id, message)
    }

    pub fn warn(&self, message_id: Option<&str>, message: impl Into<String>) {
        self.log(WARNING, message_id, message)
    }

    /// The newest `n` entries, newest first (`n == 0`: all of them).
    pub fn newest(&self, n: usize) -> Vec<LogEntry> {
        let ring = self.ring.lock();
        let take = if n == 0 { ring.len() } else { n };
        ring.iter().rev().take(take).cloned().collect()
    }
}
