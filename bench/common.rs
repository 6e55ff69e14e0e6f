//! Helpers the benchmarks share (included by each with `#[path = "common.rs"] mod common;`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// RabbitMQ for `bench/run.sh amqp`: `HORNBILL_TEST_AMQP_URL`, else the local broker.
pub fn amqp_url() -> String {
    std::env::var("HORNBILL_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Redis for `bench/run.sh amqp`: `HORNBILL_TEST_REDIS_URL`, else the local one.
pub fn redis_url() -> String {
    std::env::var("HORNBILL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// A `kB` field of a process's `/proc/PID/status`, in MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A process's peak resident memory (VmHWM), MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmHWM:")
}

/// A process's resident memory now (VmRSS), MB.
pub fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(") ")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A child process that is killed when dropped, so a failing bench leaves nothing running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release `hornbill` started with `config` (TOML) written to a folder of its own: the
/// process (killed when dropped), its pid and the API's base URL.
pub struct Hornbill {
    pub child: Killed,
    pub pid: u32,
    pub base: String,
    pub dir: PathBuf,
}

impl Hornbill {
    /// `name` names the folder (`hornbill-bench-NAME-PID` under the temp dir), which goes
    /// when this is dropped; `{dir}` in `config` is replaced by its path.
    pub fn start(name: &str, config: &str) -> Hornbill {
        let dir =
            std::env::temp_dir().join(format!("hornbill-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        let config = config.replace("{dir}", &dir.display().to_string());
        std::fs::write(&path, config).unwrap();
        let mut child = Killed(
            Command::new(env!("CARGO_BIN_EXE_hornbill"))
                .args(["serve", "--config"])
                .arg(&path)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start hornbill"),
        );
        let pid = child.0.id();
        let mut line = String::new();
        BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("hornbill listening on ")
            .expect("listening line")
            .to_string();
        Hornbill {
            child,
            pid,
            base,
            dir,
        }
    }
}

impl Drop for Hornbill {
    fn drop(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The repository's SMSC simulator (tests/peers/smsc).
pub fn smsc_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smsc")
}

/// The SMSC simulator, running (`SMSC_RECORD=0`: counters only): its process, pid, SMPP
/// port and control API's base URL.
pub struct Smsc {
    pub child: Killed,
    pub pid: u32,
    pub port: u16,
    pub control: String,
}

impl Smsc {
    /// Runs the simulator's setup (`npm ci` once), then the simulator on free ports, sending
    /// receipts `dlr_delay_ms` after each submit_sm.
    pub fn start(dlr_delay_ms: u64) -> Smsc {
        let ok = Command::new(smsc_dir().join("setup"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the SMSC simulator's setup failed (node and npm are needed)"
        );
        let mut child = Killed(
            Command::new("node")
                .arg(smsc_dir().join("smsc.js"))
                .args(["--port", "0", "--control-port", "0", "--dlr-delay-ms"])
                .arg(dlr_delay_ms.to_string())
                .env("SMSC_RECORD", "0")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("node smsc.js"),
        );
        let pid = child.0.id();
        let mut line = String::new();
        BufReader::new(child.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "smsc listening smpp=127.0.0.1:PORT control=127.0.0.1:PORT"
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        let port: u16 = field("smpp=").rsplit(':').next().unwrap().parse().unwrap();
        let control = format!("http://{}", field("control="));
        Smsc {
            child,
            pid,
            port,
            control,
        }
    }

    /// The simulator's counters (`GET /stats`).
    pub async fn stats(&self, http: &reqwest::Client) -> serde_json::Value {
        http.get(format!("{}/stats", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Creates a channel through the API: its id.
pub async fn create_channel(http: &reqwest::Client, base: &str, body: serde_json::Value) -> String {
    let created: serde_json::Value = http
        .post(format!("{base}/channels/"))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["result"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no channel: {created}"))
        .to_string()
}

/// Waits (up to 20 s) until an SMPP channel's status says `bound`.
pub async fn wait_bound(http: &reqwest::Client, base: &str, cid: &str) {
    let bound_by = Instant::now() + Duration::from_secs(20);
    loop {
        let ch: serde_json::Value = http
            .get(format!("{base}/channels/{cid}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ch["result"]["status"]["components"]["smpp"]["type"] == "bound" {
            return;
        }
        assert!(Instant::now() < bound_by, "the channel never bound: {ch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the event_url receiver has counted.
#[derive(Default)]
pub struct Counts {
    pub submitted: AtomicUsize,
    pub delivery: AtomicUsize,
    pub other: AtomicUsize,
}

impl Counts {
    pub fn count(&self, body: &[u8]) {
        let has = |w: &[u8]| body.windows(w.len()).any(|x| x == w);
        if has(b"\"event_type\":\"submitted\"") {
            self.submitted.fetch_add(1, Ordering::Relaxed);
        } else if has(b"\"event_type\":\"delivery_") {
            self.delivery.fetch_add(1, Ordering::Relaxed);
        } else {
            self.other.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where `\r\n\r\n` ends in `buf`, if it is there.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The Content-Length of an HTTP/1.1 head; a chunked body is not expected from either side.
pub fn content_length(head: &[u8]) -> usize {
    let head = String::from_utf8_lossy(head);
    let mut length = 0;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().expect("Content-Length");
        }
        assert!(
            !(name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")),
            "the bench's HTTP reader does not take chunked bodies: {head}"
        );
    }
    length
}

/// The lean event_url receiver: HTTP/1.1 keep-alive, each POST counted and answered 200.
pub async fn lean_receiver(listener: tokio::net::TcpListener, counts: Arc<Counts>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let counts = counts.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            let mut chunk = vec![0u8; 16384];
            loop {
                // Every complete request in the buffer (a client may pipeline).
                let mut answers = 0;
                while let Some(end) = head_end(&buf) {
                    let length = content_length(&buf[..end]);
                    if buf.len() < end + length {
                        break;
                    }
                    counts.count(&buf[end..end + length]);
                    buf.drain(..end + length);
                    answers += 1;
                }
                if answers > 0 {
                    let out = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".repeat(answers);
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        });
    }
}

/// Reads one response from a keep-alive connection: its status.
pub async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> std::io::Result<u16> {
    loop {
        if let Some(end) = head_end(buf) {
            let length = content_length(&buf[..end]);
            if buf.len() >= end + length {
                let status = std::str::from_utf8(&buf[..end])
                    .ok()
                    .and_then(|h| h.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                buf.drain(..end + length);
                return Ok(status);
            }
        }
        match stream.read(chunk).await? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A prepared HTTP/1.1 POST of a JSON body, as the lean clients write it.
pub fn post_request(host: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One lean client's keep-alive connection: writes a prepared request, reads the answer's
/// status; connects when it has no connection, and drops it after an error.
pub struct LeanConn {
    addr: String,
    conn: Option<tokio::net::TcpStream>,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl LeanConn {
    /// `addr`: host:port.
    pub fn new(addr: &str) -> LeanConn {
        LeanConn {
            addr: addr.to_string(),
            conn: None,
            buf: Vec::with_capacity(4096),
            chunk: vec![0u8; 4096],
        }
    }

    pub async fn send(&mut self, request: &[u8]) -> std::io::Result<u16> {
        if self.conn.is_none() {
            self.buf.clear();
            let s = tokio::net::TcpStream::connect(&self.addr).await?;
            let _ = s.set_nodelay(true);
            self.conn = Some(s);
        }
        let stream = self.conn.as_mut().unwrap();
        let answer = match stream.write_all(request).await {
            Ok(()) => read_response(stream, &mut self.buf, &mut self.chunk).await,
            Err(e) => Err(e),
        };
        if answer.is_err() {
            self.conn = None;
        }
        answer
    }
}

/// One lean client: sends the prepared request while messages remain, one at a time on one
/// keep-alive connection (reconnecting after an error); accept latencies in us, and errors.
pub async fn lean_client(
    addr: String,
    request: Arc<Vec<u8>>,
    next: Arc<AtomicUsize>,
    total: usize,
) -> (Vec<u64>, usize) {
    let mut lat = Vec::with_capacity(total / 32);
    let mut errors = 0usize;
    let mut conn = LeanConn::new(&addr);
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let t = Instant::now();
        match conn.send(&request).await {
            Ok(201) => lat.push(t.elapsed().as_micros() as u64),
            _ => errors += 1,
        }
    }
    (lat, errors)
}

/// `clients` lean clients sending `request` to `host` until `total` are sent: every accept
/// latency in us, and the errors.
pub async fn lean_load(
    host: &str,
    request: Arc<Vec<u8>>,
    clients: usize,
    total: usize,
) -> (Vec<u64>, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(lean_client(
                host.to_string(),
                request.clone(),
                next.clone(),
                total,
            ))
        })
        .collect();
    let (mut lat, mut errors) = (Vec::with_capacity(total), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    (lat, errors)
}

/// Waits until `count()` reaches `want`, or has not moved for 30 s.
pub async fn wait_count(count: impl Fn() -> usize, want: usize) {
    let (mut last, mut last_at) = (count(), Instant::now());
    while count() < want && last_at.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = count();
        if now != last {
            (last, last_at) = (now, Instant::now());
        }
    }
}
