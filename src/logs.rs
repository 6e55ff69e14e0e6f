//! Per-channel logs: what happened on one channel (connections, transport restarts, provider
//! requests and answers, webhook attempts, refusals), kept in a bounded ring and served by
//! `GET /channels/{id}/logs` in Junebug's entry shape (§2.6), and written as JSON lines to
//! `{logging_path}/{id}.log`, rotated at `log_rotate_size` bytes into `{id}.log.1` ...
//! `{id}.log.{max_log_files}` (Junebug's files and defaults). Entries carry Python level
//! numbers (20 INFO, 30 WARNING, 40 ERROR) and, where there is one, the message id: the
//! entries of one message are its story (`GET /channels/{id}/messages/{mid}/logs`).
//!
//! Files are written by one thread of their own, so a channel's actor only queues the line.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

pub const INFO: u8 = 20;
pub const WARNING: u8 = 30;
pub const ERROR: u8 = 40;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogEntry {
    #[serde(serialize_with = "as_str", deserialize_with = "from_string")]
    pub logger: Arc<str>,
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
    /// Shared with the file writer: an entry is built once.
    ring: Arc<Mutex<VecDeque<Arc<LogEntry>>>>,
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
        if level < WARNING && message_id.is_some() && !STORIES.load(Ordering::Relaxed) {
            return;
        }
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
        let entry = Arc::new(LogEntry {
            logger: self.id.clone(),
            level,
            timestamp,
            message,
            message_id: message_id.map(str::to_string),
        });
        if let Some(files) = FILES.get() {
            // The writer thread lives as long as the process.
            files.entries.lock().push(entry.clone());
        }
        let mut ring = self.ring.lock();
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// The entries about one message, oldest first: from the files when they are kept (they
    /// reach further back than the ring), else from the ring.
    pub fn of_message(&self, message_id: &str) -> Vec<LogEntry> {
        if let Some(files) = FILES.get() {
            let (tx, rx) = mpsc::channel();
            // Written entries first, so the search sees all of them.
            if files.control.send(Control::Flush(tx)).is_ok() {
                let _ = rx.recv();
            }
            return search(&files.dir, &self.id, message_id, files.max_files);
        }
        let ring = self.ring.lock();
        ring.iter()
            .filter(|e| e.message_id.as_deref() == Some(message_id))
            .map(|e| (**e).clone())
            .collect()
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

    /// Closes the log's file (its channel or router was deleted); a later entry opens it again.
    pub fn close_file(&self) {
        if let Some(files) = FILES.get() {
            let _ = files.control.send(Control::Close(self.id.clone()));
        }
    }

    /// The newest `n` entries, newest first (`n == 0`: all of them).
    pub fn newest(&self, n: usize) -> Vec<LogEntry> {
        let ring = self.ring.lock();
        let take = if n == 0 { ring.len() } else { n };
        ring.iter()
            .rev()
            .take(take)
            .map(|e| (**e).clone())
            .collect()
    }
}

/// Where and how the log files are kept (`[log] logging_path`, `log_rotate_size`,
/// `max_log_files`).
struct Files {
    /// Entries not yet written. The writer takes them every `WRITE_EVERY`: a channel's
    /// thread only pushes (waking the writer for each entry cost more than the entry).
    entries: Mutex<Vec<Arc<LogEntry>>>,
    control: mpsc::Sender<Control>,
    dir: PathBuf,
    max_files: usize,
}

enum Control {
    /// Answered once everything logged before it is written.
    Flush(mpsc::Sender<()>),
    Close(Arc<str>),
}

/// How often the writer writes what was logged meanwhile.
const WRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

static FILES: OnceLock<Files> = OnceLock::new();

/// `[log] message_entries`: whether INFO entries about one message (its story) are kept.
static STORIES: AtomicBool = AtomicBool::new(true);

/// Keeps (the default) or drops the INFO entries about single messages: at the highest rates
/// they are a noticeable share of the work; warnings and errors are always kept.
pub fn keep_message_entries(keep: bool) {
    STORIES.store(keep, Ordering::Relaxed);
}

fn as_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

fn from_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
    String::deserialize(d).map(Arc::from)
}

type Rotating = file_rotate::FileRotate<file_rotate::suffix::AppendCount>;

/// Lines of one log gathered before they are written.
const BATCH_BYTES: usize = 16 * 1024;

/// A log's file name in `dir`: its id, kept to file-name-safe characters.
fn file_of(dir: &Path, id: &str) -> PathBuf {
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("{name}.log"))
}

/// Starts writing every log to files under `dir` (once per process; later calls are
/// ignored). `max_files == 0` keeps every rotated file.
pub fn keep_files(dir: &Path, rotate_size: usize, max_files: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let (control, rx) = mpsc::channel::<Control>();
    let files = Files {
        entries: Mutex::new(Vec::new()),
        control,
        dir: dir.to_path_buf(),
        max_files,
    };
    if FILES.set(files).is_err() {
        return Ok(());
    }
    let dir = dir.to_path_buf();
    let keep = if max_files == 0 {
        usize::MAX
    } else {
        max_files
    };
    std::thread::Builder::new()
        .name("hornbill-logs".into())
        .spawn(move || {
            let mut open: HashMap<Arc<str>, Rotating> = HashMap::new();
            // A small limit gets small batches, so a file passes it by little.
            let batch = BATCH_BYTES.min(rotate_size / 8).max(1);
            // Lines waiting to be written, by log: one write per log and pass, not per entry.
            let mut pending: HashMap<Arc<str>, Vec<u8>> = HashMap::new();
            let write_out = |open: &mut HashMap<Arc<str>, Rotating>,
                                 pending: &mut HashMap<Arc<str>, Vec<u8>>| {
                for (id, lines) in pending.iter_mut().filter(|(_, l)| !l.is_empty()) {
                    let file = open.entry(id.clone()).or_insert_with(|| {
                        file_rotate::FileRotate::new(
                            file_of(&dir, id),
                            file_rotate::suffix::AppendCount::new(keep),
                            file_rotate::ContentLimit::BytesSurpassed(rotate_size.max(1)),
                            file_rotate::compression::Compression::None,
                            None,
                        )
                    });
                    // Rotation is checked before each write: a batch stays in one file, and
                    // a rotated file is past the limit by at most one batch (an eighth of the
                    // limit, at most BATCH_BYTES, plus an entry).
                    if let Err(e) = file.write_all(lines) {
                        tracing::warn!(log = %id, error = %e, "Log entries not written to their file.");
                    }
                    lines.clear();
                }
            };
            let Some(files) = FILES.get() else {
                return;
            };
            loop {
                let control = match rx.recv_timeout(WRITE_EVERY) {
                    Ok(c) => Some(c),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                };
                let entries = std::mem::take(&mut *files.entries.lock());
                for entry in entries {
                    let lines = pending.entry(entry.logger.clone()).or_default();
                    if serde_json::to_writer(&mut *lines, &*entry).is_ok() {
                        lines.push(b'\n');
                    }
                    if lines.len() >= batch {
                        write_out(&mut open, &mut pending);
                    }
                }
                write_out(&mut open, &mut pending);
                match control {
                    Some(Control::Flush(done)) => {
                        for f in open.values_mut() {
                            let _ = f.flush();
                        }
                        let _ = done.send(());
                    }
                    Some(Control::Close(id)) => {
                        pending.remove(&id);
                        open.remove(&id);
                    }
                    None => {}
                }
            }
        })?;
    Ok(())
}

/// The entries of `message_id` in a log's files, oldest first.
fn search(dir: &Path, id: &str, message_id: &str, max_files: usize) -> Vec<LogEntry> {
    let current = file_of(dir, id);
    let mut paths = vec![current.clone()];
    let mut n = 1;
    loop {
        let rotated = PathBuf::from(format!("{}.{n}", current.display()));
        if !rotated.exists() || (max_files != 0 && n > max_files) {
            break;
        }
        paths.push(rotated);
        n += 1;
    }
    let needle = format!("\"message_id\":{}", serde_json::Value::from(message_id));
    let mut found = Vec::new();
    // Oldest file first.
    for path in paths.iter().rev() {
        let Ok(f) = std::fs::File::open(path) else {
            continue;
        };
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            if line.contains(&needle)
                && let Ok(entry) = serde_json::from_str::<LogEntry>(&line)
                && entry.message_id.as_deref() == Some(message_id)
            {
                found.push(entry);
            }
        }
    }
    found
}
