//! Channel type `telnet`: Junebug's (Vumi's `TelnetServerTransport`) line-based TCP server.
//!
//! Config: `twisted_endpoint` ("tcp:PORT", required), `to_addr` (the address users write to;
//! default the server's `ip:port`), `transport_type` (default `telnet`). Every connection is a
//! user whose address is its `ip:port`: connecting sends an inbound with session_event `new`
//! and no content, each line a `resume` with the line, and the connection closing (by either
//! side) a `close`. An outbound message to a connected address is written as one line; with
//! session_event `close` the connection is closed after it.
//!
//! Bounded (README, "Limits"): `max_connections` users at once (default 1,000), and a user
//! who sends no line for `idle_timeout` seconds (default 600) is disconnected and the
//! application gets `close`, as for a hang-up. A connection past `max_connections`, or one
//! that would take the process within `[server] fd_reserve` descriptors of its open-files
//! limit (`crate::limits`), is closed at once after a one-line apology: never a session,
//! counted in `hornbill_limit_reached_total` and logged (a flood at most once per 10 s).

use super::{
    Reporter, TransportCommand, TransportContext, TransportError, TransportFactory,
    TransportReport, parse_server_endpoint,
};
use crate::limits::{LogEvery, more_since};
use crate::message::{Level, Message, SessionEvent};
use crate::telemetry::{Limit, limit_reached};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::{AnyDelimiterCodec, FramedRead};

/// Longest line a user may send (bytes); a longer one ends the connection.
const MAX_LINE: usize = 64 * 1024;
/// Default of `max_connections`: users connected at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_000;
/// Largest `max_connections` accepted (each connection is a file descriptor).
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// Default of `idle_timeout`, seconds.
pub const DEFAULT_IDLE_TIMEOUT: f64 = 600.0;
/// What a refused connection is told before it is closed.
const REFUSED: &[u8] = b"Sorry, the service is busy. Please try again later.\r\n";
/// A flood of refusals is logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelnetConfig {
    pub twisted_endpoint: String,
    #[serde(default)]
    pub to_addr: Option<String>,
    #[serde(default)]
    pub transport_type: Option<String>,
    /// Users connected at once; a connection past it is refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds without a line from a user before they are disconnected.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: f64,
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

fn default_idle_timeout() -> f64 {
    DEFAULT_IDLE_TIMEOUT
}

pub struct TelnetFactory;

fn parse(config: &Value) -> Result<TelnetConfig, String> {
    let cfg: TelnetConfig = serde_json::from_value(config.clone()).map_err(|e| e.to_string())?;
    parse_server_endpoint(&cfg.twisted_endpoint)?;
    if !(1..=MAX_MAX_CONNECTIONS).contains(&cfg.max_connections) {
        return Err(format!(
            "max_connections must be from 1 to {MAX_MAX_CONNECTIONS} (got {})",
            cfg.max_connections
        ));
    }
    super::check_seconds(&[("idle_timeout", cfg.idle_timeout)])?;
    Ok(cfg)
}

impl TransportFactory for TelnetFactory {
    fn name(&self) -> &'static str {
        "telnet"
    }

    fn transport_type(&self, config: &Value) -> String {
        super::configured_transport_type(config, "telnet")
    }

    fn config_schema(&self) -> Value {
        super::config_schema::<TelnetConfig>()
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        parse(config).map(|_| ())
    }

    fn start(
        &self,
        config: &Value,
        ctx: TransportContext,
    ) -> LocalBoxFuture<'static, Result<(), TransportError>> {
        let cfg = parse(config);
        let transport_type = self.transport_type(config);
        Box::pin(async move {
            let cfg = cfg.map_err(TransportError::Other)?;
            run(cfg, transport_type, ctx).await
        })
    }
}

enum ClientCmd {
    Write {
        text: Option<String>,
        close: bool,
        done: oneshot::Sender<std::io::Result<()>>,
    },
}

type Clients = Rc<RefCell<HashMap<String, mpsc::UnboundedSender<ClientCmd>>>>;

/// Aborts the connection tasks when the transport ends, so a stopped channel holds no sockets.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

async fn run(
    cfg: TelnetConfig,
    transport_type: String,
    mut ctx: TransportContext,
) -> Result<(), TransportError> {
    let addr = parse_server_endpoint(&cfg.twisted_endpoint).map_err(TransportError::Other)?;
    let reporter = ctx.reporter();
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            reporter.status(
                "telnet",
                Level::Down,
                "bind_failed",
                format!("Cannot listen on {}: {e}", cfg.twisted_endpoint),
            );
            return Err(e.into());
        }
    };
    reporter.status(
        "telnet",
        Level::Ok,
        "listening",
        format!("Listening on {}", cfg.twisted_endpoint),
    );
    let clients: Clients = Rc::default();
    let mut tasks = Tasks(Vec::new());
    let mut refusals = LogEvery::new(REFUSAL_LOG_EVERY);
    let idle_timeout = Duration::from_secs_f64(cfg.idle_timeout);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        reporter.log(30, format!("Accept failed: {e}"));
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                tasks.0.retain(|t| !t.is_finished());
                let full = if tasks.0.len() >= cfg.max_connections {
                    Some((Limit::TelnetConnections, format!(
                        "{} users are connected (max_connections)",
                        tasks.0.len()
                    )))
                } else {
                    crate::limits::room_for_connection().err().map(|r| (Limit::OpenFiles, format!(
                        "the process has {} files open of its limit of {} and keeps {} for the APIs ([server] fd_reserve)",
                        r.open, r.limit, r.reserve
                    )))
                };
                if let Some((limit, why)) = full {
                    // Closed at once: the apology fits the socket's buffer or is dropped.
                    let _ = stream.try_write(REFUSED);
                    drop(stream);
                    limit_reached(&ctx.channel_id, limit);
                    if let Some(unwritten) = refusals.due(Instant::now()) {
                        reporter.log(30, format!("Refused a telnet connection from {peer}: {why}{}", more_since(unwritten)));
                    }
                    continue;
                }
                let to_addr = cfg.to_addr.clone().unwrap_or_else(|| {
                    stream.local_addr().map(|a| a.to_string()).unwrap_or_default()
                });
                let (tx, rx) = mpsc::unbounded_channel();
                let user = peer.to_string();
                clients.borrow_mut().insert(user.clone(), tx);
                let conn = Connection {
                    user,
                    idle_timeout,
                    to_addr,
                    transport_type: transport_type.clone(),
                    reporter: reporter.clone(),
                    clients: clients.clone(),
                };
                tasks.0.push(tokio::task::spawn_local(conn.run(stream, rx)));
            }
            command = ctx.commands.recv() => match command {
                None => return Ok(()),
                Some(TransportCommand::Send(msg)) => send(&reporter, &clients, msg),
            }
        }
    }
}

fn send(reporter: &Reporter, clients: &Clients, msg: Message) {
    let to = msg.to_addr.clone().unwrap_or_default();
    let Some(client) = clients.borrow().get(&to).cloned() else {
        reporter.report(TransportReport::Nack {
            message_id: msg.message_id,
            reason: format!("No telnet user is connected as {to:?}"),
            retry: false,
        });
        return;
    };
    let (done, answer) = oneshot::channel();
    let close = msg.session_event == Some(SessionEvent::Close);
    let cmd = ClientCmd::Write {
        text: msg.content.clone(),
        close,
        done,
    };
    let reporter = reporter.clone();
    let message_id = msg.message_id;
    if client.send(cmd).is_err() {
        reporter.report(TransportReport::Nack {
            message_id,
            reason: format!("Telnet user {to:?} has disconnected"),
            retry: false,
        });
        return;
    }
    tokio::task::spawn_local(async move {
        let report = match answer.await {
            Ok(Ok(())) => TransportReport::Ack {
                sent_message_id: message_id.clone(),
                message_id,
            },
            Ok(Err(e)) => TransportReport::Nack {
                message_id,
                reason: format!("Write to telnet user {to:?} failed: {e}"),
                retry: false,
            },
            Err(_) => TransportReport::Nack {
                message_id,
                reason: format!("Telnet user {to:?} has disconnected"),
                retry: false,
            },
        };
        reporter.report(report);
    });
}

struct Connection {
    user: String,
    idle_timeout: Duration,
    to_addr: String,
    transport_type: String,
    reporter: Reporter,
    clients: Clients,
}

impl Connection {
    fn inbound(&self, content: Option<String>, event: SessionEvent) {
        let mut msg = Message::new(Some(self.to_addr.clone()), Some(self.user.clone()), content);
        msg.session_event = Some(event);
        msg.transport_type = Some(self.transport_type.clone());
        self.reporter
            .report(TransportReport::Inbound(Box::new(msg)));
    }

    async fn run(self, stream: TcpStream, mut cmds: mpsc::UnboundedReceiver<ClientCmd>) {
        let _ = stream.set_nodelay(true);
        let (reader, mut writer) = stream.into_split();
        let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), vec![], MAX_LINE);
        let mut lines = FramedRead::new(reader, codec);
        self.inbound(None, SessionEvent::New);
        let idle = tokio::time::sleep(self.idle_timeout);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                () = &mut idle => {
                    limit_reached(self.reporter.channel_id(), Limit::IdleTimeout);
                    self.reporter.log(20, format!(
                        "Telnet user {} sent nothing for {} s (idle_timeout): disconnected",
                        self.user,
                        self.idle_timeout.as_secs_f64()
                    ));
                    break;
                }
                line = lines.next() => match line {
                    Some(Ok(bytes)) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + self.idle_timeout);
                        self.inbound(Some(decode_line(&bytes)), SessionEvent::Resume)
                    }
                    Some(Err(e)) => {
                        self.reporter.log(30, format!("Closing telnet user {}: {e}", self.user));
                        break;
                    }
                    None => break,
                },
                cmd = cmds.recv() => match cmd {
                    None => break,
                    Some(ClientCmd::Write { text, close, done }) => {
                        let result = match text {
                            Some(text) => {
                                let mut out = text.lines().collect::<Vec<_>>().join("\r\n");
                                out.push_str("\r\n");
                                writer.write_all(out.as_bytes()).await
                            }
                            None => Ok(()),
                        };
                        let failed = result.is_err();
                        let _ = done.send(result);
                        if close || failed {
                            break;
                        }
                    }
                },
            }
        }
        self.clients.borrow_mut().remove(&self.user);
        let _ = writer.shutdown().await;
        self.inbound(None, SessionEvent::Close);
    }
}

/// A received line as text: telnet commands (IAC ...) and the trailing CR removed, invalid
/// UTF-8 replaced.
pub fn decode_line(raw: &[u8]) -> String {
    const IAC: u8 = 255;
    const SB: u8 = 250;
    const SE: u8 = 240;
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == IAC && i + 1 < raw.len() {
            match raw[i + 1] {
                IAC => {
                    out.push(IAC);
                    i += 2;
                }
                SB => {
                    let end = raw[i + 2..]
                        .windows(2)
                        .position(|w| w == [IAC, SE])
                        .map(|p| i + 2 + p + 2);
                    i = end.unwrap_or(raw.len());
                }
                251..=254 => i += 3,
                _ => i += 2,
            }
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    let text = String::from_utf8_lossy(&out);
    text.trim_end_matches(['\r', '\n']).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_telnet_commands_and_cr() {
        assert_eq!(decode_line(b"hello\r"), "hello");
        assert_eq!(decode_line(b"\xff\xfb\x01hi\xff\xff"), "hi\u{fffd}");
        assert_eq!(decode_line(b"a\xff\xfa\x18\x01\xff\xf0b"), "ab");
    }

    #[test]
    fn config_is_checked() {
        let f = TelnetFactory;
        assert!(
            f.validate(&serde_json::json!({"twisted_endpoint": "tcp:9001"}))
                .is_ok()
        );
        assert!(
            f.validate(&serde_json::json!({"twisted_endpoint": "tcp:x"}))
                .is_err()
        );
        let e = f
            .validate(&serde_json::json!({"twisted_endpoint": "tcp:1", "password": "s3cret"}))
            .unwrap_err();
        assert!(e.contains("password") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn connection_caps_are_bounded() {
        let f = TelnetFactory;
        let with = |k: &str, v: serde_json::Value| {
            f.validate(&serde_json::json!({"twisted_endpoint": "tcp:9001", k: v}))
        };
        assert!(with("max_connections", 5.into()).is_ok());
        assert!(with("idle_timeout", 1.5.into()).is_ok());
        let e = with("max_connections", 0.into()).unwrap_err();
        assert!(e.contains("max_connections"), "{e}");
        assert!(with("max_connections", (-1).into()).is_err());
        assert!(with("max_connections", 1_000_001.into()).is_err());
        for bad in [0.0, 0.5, 1e308, 86_401.0] {
            let e = with("idle_timeout", bad.into()).unwrap_err();
            assert!(e.contains("idle_timeout"), "{e}");
        }
        let cfg = parse(&serde_json::json!({"twisted_endpoint": "tcp:9001"})).unwrap();
        assert_eq!(cfg.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(cfg.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    }
}
