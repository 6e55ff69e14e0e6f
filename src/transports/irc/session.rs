//! The IRC connection, kept up: connect (TCP or TLS), sign on (PASS, NICK, USER; another
//! nick while the server says it is in use), join the channels, then serve: PING answered,
//! messages to the bot reported inbound, messages sent as lines and acked once written.
//! A lost connection is reconnected with backoff (doubling to 60 s) and the channels joined
//! again; while it is down the channel's messages wait (they are not taken from the channel,
//! as with an unbound SMPP session), and those whose lines could not be written are retried.

use super::IrcConfig;
use super::proto::{self, Ctcp, Event};
use crate::limits::{LogEvery, more_since};
use crate::logs::{INFO, WARNING};
use crate::message::{DeliveryStatus, Level, Message};
use crate::transports::{
    Dir, Reporter, TransportCommand, TransportContext, TransportError, TransportReport,
};
use futures::StreamExt;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{AnyDelimiterCodec, FramedRead};
use tokio_util::sync::CancellationToken;

/// The status component.
const COMPONENT: &str = "irc";
/// Longest line read (IRCv3 tags may take 8191 bytes before the 512 of the line); a longer
/// one ends the connection.
const MAX_READ_LINE: usize = 16 * 1024;
/// Connecting and signing on must be done within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Nothing heard for this long: we PING the server.
const PING_AFTER: Duration = Duration::from_secs(90);
/// Nothing heard for this long: the connection is dead.
const DEAD_AFTER: Duration = Duration::from_secs(180);
/// Messages written in one go, at most.
const BATCH: usize = 64;
/// Unreadable lines are logged at most this often.
const UNREADABLE_LOG_EVERY: Duration = Duration::from_secs(10);
/// The token of the PING written after each batch of messages (`hb-<n>`).
const MARK: &str = "hb-";
/// CTCP requests (VERSION, PING) are answered at most this often.
const CTCP_EVERY: Duration = Duration::from_secs(2);
/// Lines remembered for matching refusals, at most.
const MAX_UNSETTLED: usize = 10_000;
/// The nick length RFC 1459 allows, assumed until the server announces its own (005).
const DEFAULT_NICKLEN: usize = 9;

trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

type Reader = FramedRead<tokio::io::ReadHalf<Box<dyn Io>>, AnyDelimiterCodec>;

pub async fn run(
    cfg: IrcConfig,
    transport_type: String,
    ctx: TransportContext,
) -> Result<(), TransportError> {
    let reporter = ctx.reporter().with_secrets(cfg.secrets());
    let TransportContext {
        mut commands, stop, ..
    } = ctx;
    let mut delay = cfg.initial_reconnect_delay();
    loop {
        reporter.status(
            COMPONENT,
            Level::Down,
            "connecting",
            format!("Connecting to {}", cfg.address()),
        );
        let mut conn = Connection::new(&cfg, &reporter, &transport_type);
        let why = match conn.run(&mut commands, &stop).await {
            Done::Stopped => return Ok(()),
            Done::Lost(why) => why,
        };
        if conn.registered {
            delay = cfg.initial_reconnect_delay();
        }
        reporter.status(COMPONENT, Level::Down, "connection_lost", &why);
        reporter.log(
            WARNING,
            format!(
                "IRC connection to {} ended ({why}); reconnecting in {:.1} s",
                cfg.address(),
                delay.as_secs_f64()
            ),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Ok(()),
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

enum Done {
    Stopped,
    Lost(String),
}

/// One connection's state.
struct Connection<'a> {
    cfg: &'a IrcConfig,
    reporter: &'a Reporter,
    transport_type: &'a str,
    /// Our nickname now (the configured one, or another after a collision).
    nick: String,
    nicklen: usize,
    registered: bool,
    last_heard: Instant,
    pinged: bool,
    unreadable: LogEvery,
    /// Lines written and not yet known to be through: (mark, target, message id), one per
    /// line, oldest first. The server answers a line it cannot deliver (401, 403, 404) before
    /// the PONG to the `PING :hb-<mark>` written after it, so a refusal is matched to the
    /// oldest line to its target here, and the PONG settles every line up to its mark.
    unsettled: VecDeque<(u64, String, String)>,
    /// Messages already reported undelivered (one report for a message of many lines).
    failed: HashSet<String>,
    mark: u64,
    /// When a CTCP request was last answered.
    ctcp_at: Option<Instant>,
}

impl<'a> Connection<'a> {
    fn new(cfg: &'a IrcConfig, reporter: &'a Reporter, transport_type: &'a str) -> Self {
        Connection {
            cfg,
            reporter,
            transport_type,
            nick: cfg.nickname.clone(),
            nicklen: DEFAULT_NICKLEN,
            registered: false,
            last_heard: Instant::now(),
            pinged: false,
            unreadable: LogEvery::new(UNREADABLE_LOG_EVERY),
            unsettled: VecDeque::new(),
            failed: HashSet::new(),
            mark: 0,
            ctcp_at: None,
        }
    }

    async fn run(
        &mut self,
        commands: &mut mpsc::Receiver<TransportCommand>,
        stop: &CancellationToken,
    ) -> Done {
        let stream = tokio::select! {
            s = tokio::time::timeout(CONNECT_TIMEOUT, connect(self.cfg)) => match s {
                Ok(Ok(s)) => s,
                Ok(Err(why)) => return Done::Lost(why),
                Err(_) => return Done::Lost(format!("Connecting to {} timed out", self.cfg.address())),
            },
            _ = stop.cancelled() => return Done::Stopped,
        };
        let (reader, mut writer) = tokio::io::split(stream);
        let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), vec![], MAX_READ_LINE);
        let mut reader = FramedRead::new(reader, codec);
        let lines = proto::register(self.cfg.password.as_deref(), &self.nick);
        if let Err(e) = self.write(&mut writer, &lines, None).await {
            return Done::Lost(format!("Writing to the server failed: {e}"));
        }
        let signed_on = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, self.sign_on(&mut reader, &mut writer)) => match r {
                Ok(r) => r,
                Err(_) => Err(format!("The server did not welcome us within {} s", CONNECT_TIMEOUT.as_secs())),
            },
            _ = stop.cancelled() => return Done::Stopped,
        };
        if let Err(why) = signed_on {
            return Done::Lost(why);
        }
        self.registered = true;
        let joins: Vec<String> = self
            .cfg
            .channels
            .iter()
            .map(|c| format!("JOIN {c}\r\n"))
            .collect();
        if let Err(e) = self.write(&mut writer, &joins, None).await {
            return Done::Lost(format!("Writing to the server failed: {e}"));
        }
        let joining = if self.cfg.channels.is_empty() {
            String::new()
        } else {
            format!("; joining {}", self.cfg.channels.join(", "))
        };
        self.reporter.status(
            COMPONENT,
            Level::Ok,
            "connected",
            format!(
                "Connected to {} as {}{joining}",
                self.cfg.address(),
                self.nick
            ),
        );
        let done = self.serve(&mut reader, &mut writer, commands, stop).await;
        if matches!(done, Done::Stopped) {
            let quit = ["QUIT :hornbill is stopping\r\n".to_string()];
            let _ =
                tokio::time::timeout(Duration::from_secs(2), self.write(&mut writer, &quit, None))
                    .await;
        }
        done
    }

    /// Reads until the server's welcome (001), answering PINGs and trying other nicks while
    /// ours is taken.
    async fn sign_on(
        &mut self,
        reader: &mut Reader,
        writer: &mut WriteHalf<Box<dyn Io>>,
    ) -> Result<(), String> {
        loop {
            let line = match reader.next().await {
                None => return Err("The server closed the connection while we signed on".into()),
                Some(Err(e)) => return Err(format!("Unreadable stream from the server: {e}")),
                Some(Ok(bytes)) => decode(&bytes),
            };
            if line.is_empty() {
                continue;
            }
            self.last_heard = Instant::now();
            self.reporter
                .protocol(Dir::In, None, || proto::describe(&line));
            let event = match proto::parse(&line) {
                Ok(e) => e,
                Err(why) => {
                    self.unreadable_line(&why);
                    continue;
                }
            };
            match event {
                Event::Welcome { nick } => {
                    if !nick.is_empty() && nick != "*" {
                        self.nick = nick;
                    }
                    return Ok(());
                }
                Event::Ping(a, b) => {
                    let pong = [pong(&a, b.as_deref())];
                    self.write(writer, &pong, None)
                        .await
                        .map_err(|e| format!("Writing to the server failed: {e}"))?;
                }
                Event::NickInUse(taken) => {
                    let taken = if taken.is_empty() {
                        self.nick.clone()
                    } else {
                        taken
                    };
                    let next = proto::next_nick(&self.cfg.nickname, &taken, self.nicklen);
                    self.reporter.log(
                        WARNING,
                        format!("Nickname {taken} is in use; trying {next}"),
                    );
                    self.nick = next;
                    let nick = [format!("NICK {}\r\n", self.nick)];
                    self.write(writer, &nick, None)
                        .await
                        .map_err(|e| format!("Writing to the server failed: {e}"))?;
                }
                Event::BadNick(nick) if nick != self.cfg.nickname && !nick.is_empty() => {
                    // An alternative too long for the server: one of the configured length.
                    let next = proto::next_nick(&self.cfg.nickname, "", self.cfg.nickname.len());
                    self.reporter.log(
                        WARNING,
                        format!("The server refused nickname {nick}; trying {next}"),
                    );
                    self.nick = next;
                    let nick = [format!("NICK {}\r\n", self.nick)];
                    self.write(writer, &nick, None)
                        .await
                        .map_err(|e| format!("Writing to the server failed: {e}"))?;
                }
                Event::BadNick(nick) => {
                    return Err(format!("The server refuses the nickname {nick:?}"));
                }
                Event::BadPassword(why) => {
                    return Err(format!("The server refused the password: {why}"));
                }
                Event::Error(why) => return Err(format!("The server closed the link: {why}")),
                _ => {}
            }
        }
    }

    /// A signed-on connection, until it is lost or the channel stops.
    async fn serve(
        &mut self,
        reader: &mut Reader,
        writer: &mut WriteHalf<Box<dyn Io>>,
        commands: &mut mpsc::Receiver<TransportCommand>,
        stop: &CancellationToken,
    ) -> Done {
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        keepalive.tick().await;
        loop {
            tokio::select! {
                line = reader.next() => {
                    let line = match line {
                        None => return Done::Lost("The server closed the connection".into()),
                        Some(Err(e)) => return Done::Lost(format!("Unreadable stream from the server: {e}")),
                        Some(Ok(bytes)) => decode(&bytes),
                    };
                    self.last_heard = Instant::now();
                    self.pinged = false;
                    if let Err(why) = self.line(writer, &line).await {
                        return Done::Lost(why);
                    }
                }
                command = commands.recv() => {
                    let Some(TransportCommand::Send(msg)) = command else {
                        return Done::Stopped;
                    };
                    if let Err(why) = self.send(writer, msg, commands).await {
                        return Done::Lost(why);
                    }
                }
                _ = keepalive.tick() => {
                    let quiet = self.last_heard.elapsed();
                    if quiet > DEAD_AFTER {
                        return Done::Lost(format!("Nothing from the server for {} s", quiet.as_secs()));
                    }
                    if quiet > PING_AFTER && !self.pinged {
                        self.pinged = true;
                        let ping = [format!("PING :{}\r\n", proto::REALNAME)];
                        if let Err(e) = self.write(writer, &ping, None).await {
                            return Done::Lost(format!("Writing to the server failed: {e}"));
                        }
                    }
                }
                _ = stop.cancelled() => return Done::Stopped,
            }
        }
    }

    /// One line from the server; `Err` when the connection is over.
    async fn line(
        &mut self,
        writer: &mut WriteHalf<Box<dyn Io>>,
        line: &str,
    ) -> Result<(), String> {
        if line.is_empty() {
            return Ok(());
        }
        let event = match proto::parse(line) {
            Ok(e) => e,
            Err(why) => {
                self.reporter
                    .protocol(Dir::In, None, || proto::describe(line));
                self.unreadable_line(&why);
                return Ok(());
            }
        };
        if let Some(n) = proto::nicklen(line) {
            self.nicklen = n;
        }
        let write_failed = |e: std::io::Error| format!("Writing to the server failed: {e}");
        match event {
            Event::Said(said) => {
                let server = self.cfg.address();
                match said.inbound(&self.nick, &server) {
                    Some(inbound) => {
                        let mut msg = Message::new(
                            Some(inbound.to_addr),
                            Some(inbound.from_addr),
                            Some(inbound.content),
                        );
                        msg.group = inbound.group;
                        msg.helper_metadata = inbound.helper_metadata;
                        msg.transport_metadata = inbound.transport_metadata;
                        msg.transport_type = Some(self.transport_type.to_string());
                        self.reporter
                            .protocol(Dir::In, Some(&msg.message_id), || proto::describe(line));
                        self.reporter
                            .report(TransportReport::Inbound(Box::new(msg)));
                    }
                    // Channel chatter not addressed to the bot.
                    None => self
                        .reporter
                        .protocol(Dir::In, None, || proto::describe(line)),
                }
                return Ok(());
            }
            _ => self
                .reporter
                .protocol(Dir::In, None, || proto::describe(line)),
        }
        match event {
            Event::Ping(a, b) => {
                let pong = [pong(&a, b.as_deref())];
                self.write(writer, &pong, None)
                    .await
                    .map_err(write_failed)?;
            }
            Event::Ctcp { from, request } => {
                let answer = match request {
                    Ctcp::Version => {
                        Some(format!("VERSION hornbill {}", env!("CARGO_PKG_VERSION")))
                    }
                    Ctcp::Ping(token) => Some(format!("PING {token}")),
                    Ctcp::Other(_) => None,
                };
                // At most one answer per CTCP_EVERY: a CTCP flood must not make the server
                // kill the bot for flooding.
                let due = self.ctcp_at.is_none_or(|at| at.elapsed() >= CTCP_EVERY);
                if let Some(answer) = answer.filter(|_| due) {
                    self.ctcp_at = Some(Instant::now());
                    let notice = [format!("NOTICE {from} :\x01{answer}\x01\r\n")];
                    self.write(writer, &notice, None)
                        .await
                        .map_err(write_failed)?;
                }
            }
            Event::NickChanged { old, new } if old.eq_ignore_ascii_case(&self.nick) => {
                self.reporter
                    .log(INFO, format!("Our nickname is now {new} (was {old})"));
                self.nick = new;
            }
            Event::Joined { nick, channel } if nick.eq_ignore_ascii_case(&self.nick) => {
                self.reporter.log(INFO, format!("Joined {channel}"));
            }
            Event::Kicked {
                channel,
                nick,
                reason,
            } if nick.eq_ignore_ascii_case(&self.nick) => {
                self.reporter.log(
                    WARNING,
                    format!("Kicked from {channel} ({reason}); joining again"),
                );
                let join = [format!("JOIN {channel}\r\n")];
                self.write(writer, &join, None)
                    .await
                    .map_err(write_failed)?;
            }
            Event::Pong(token) => {
                if let Some(mark) = token.strip_prefix(MARK).and_then(|m| m.parse::<u64>().ok()) {
                    while self.unsettled.front().is_some_and(|(m, ..)| *m <= mark) {
                        if let Some((_, _, message_id)) = self.unsettled.pop_front() {
                            self.failed.remove(&message_id);
                        }
                    }
                }
            }
            Event::Undeliverable {
                code,
                target,
                reason,
            } => {
                let key = target.to_lowercase();
                let at = self.unsettled.iter().position(|(_, t, _)| *t == key);
                match at.and_then(|i| self.unsettled.remove(i)) {
                    Some((_, _, message_id)) => {
                        let first = self.failed.insert(message_id.clone());
                        // Its last line refused: nothing more can come for it.
                        if !self.unsettled.iter().any(|(_, _, m)| *m == message_id) {
                            self.failed.remove(&message_id);
                        }
                        if first {
                            self.reporter.log_about(
                                WARNING,
                                Some(&message_id),
                                format!("Not delivered to {target}: {reason}"),
                            );
                            self.reporter.report(TransportReport::DeliveryReport {
                                message_id,
                                status: DeliveryStatus::Failed,
                            });
                        }
                    }
                    None if code == 403 => {
                        let text = format!("Cannot join {target}: {reason}");
                        self.reporter.log(WARNING, &text);
                        self.reporter
                            .status(COMPONENT, Level::Degraded, "join_failed", text);
                    }
                    None => self.reporter.log(
                        WARNING,
                        format!("The server refused a line to {target}: {reason}"),
                    ),
                }
            }
            Event::JoinRefused { channel, reason } => {
                let text = format!("Cannot join {channel}: {reason}");
                self.reporter.log(WARNING, &text);
                self.reporter
                    .status(COMPONENT, Level::Degraded, "join_failed", text);
            }
            Event::Error(why) => return Err(format!("The server closed the link: {why}")),
            _ => {}
        }
        Ok(())
    }

    /// A message and whatever else is waiting (up to `BATCH`), written in one go, each acked
    /// once written (or refused when it cannot be sent); `Err` when the connection failed
    /// (the unwritten messages are retried).
    async fn send(
        &mut self,
        writer: &mut WriteHalf<Box<dyn Io>>,
        first: Message,
        commands: &mut mpsc::Receiver<TransportCommand>,
    ) -> Result<(), String> {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match commands.try_recv() {
                Ok(TransportCommand::Send(m)) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut out = String::new();
        let mut written = Vec::with_capacity(batch.len());
        for msg in batch {
            match proto::outgoing(&msg, &self.nick) {
                Ok(o) => {
                    let target = o.target.to_lowercase();
                    for line in o.wire() {
                        self.reporter
                            .protocol(Dir::Out, Some(&msg.message_id), || proto::describe(&line));
                        out.push_str(&line);
                        self.unsettled.push_back((
                            self.mark + 1,
                            target.clone(),
                            msg.message_id.clone(),
                        ));
                    }
                    written.push(msg.message_id);
                }
                Err(reason) => self.reporter.report(TransportReport::Nack {
                    message_id: msg.message_id,
                    reason,
                    retry: false,
                }),
            }
        }
        if !written.is_empty() {
            self.mark += 1;
            let ping = format!("PING :{MARK}{}\r\n", self.mark);
            self.reporter
                .protocol(Dir::Out, None, || proto::describe(&ping));
            out.push_str(&ping);
            // Bounded: a server that never answers PINGs is dead within DEAD_AFTER anyway.
            while self.unsettled.len() > MAX_UNSETTLED {
                self.unsettled.pop_front();
            }
        }
        let result = async {
            writer.write_all(out.as_bytes()).await?;
            writer.flush().await
        }
        .await;
        match result {
            Ok(()) => {
                for message_id in written {
                    // IRC has no message ids: Vumi's sent_message_id is the message's own.
                    self.reporter.report(TransportReport::Ack {
                        sent_message_id: message_id.clone(),
                        message_id,
                    });
                }
                Ok(())
            }
            Err(e) => {
                let why = format!("Writing to the server failed: {e}");
                for message_id in written {
                    self.reporter.report(TransportReport::Nack {
                        message_id,
                        reason: why.clone(),
                        retry: true,
                    });
                }
                Err(why)
            }
        }
    }

    /// Writes lines (each with CR LF), in the protocol log first.
    async fn write(
        &self,
        writer: &mut WriteHalf<Box<dyn Io>>,
        lines: &[String],
        message_id: Option<&str>,
    ) -> std::io::Result<()> {
        let mut out = String::new();
        for line in lines {
            self.reporter
                .protocol(Dir::Out, message_id, || proto::describe(line));
            out.push_str(line);
        }
        writer.write_all(out.as_bytes()).await?;
        writer.flush().await
    }

    fn unreadable_line(&mut self, why: &str) {
        if let Some(unwritten) = self.unreadable.due(Instant::now()) {
            self.reporter.log(
                WARNING,
                format!(
                    "Ignored a line from the IRC server that is not IRC: {why}{}",
                    more_since(unwritten)
                ),
            );
        }
    }
}

fn pong(a: &str, b: Option<&str>) -> String {
    match b {
        Some(b) => format!("PONG {a} :{b}\r\n"),
        None => format!("PONG :{a}\r\n"),
    }
}

/// A received line as text, without CR: UTF-8, or Latin-1 when it is not (older clients).
fn decode(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => raw.iter().map(|&b| b as char).collect(),
    }
}

/// A connection to the server: TCP, with TLS when `tls` is set.
async fn connect(cfg: &IrcConfig) -> Result<Box<dyn Io>, String> {
    let address = cfg.address();
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("Cannot connect to {address}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if !cfg.tls {
        return Ok(Box::new(tcp));
    }
    let connector = tls_connector()?;
    let name = rustls::pki_types::ServerName::try_from(cfg.network.clone())
        .map_err(|e| format!("{:?} is not a TLS server name: {e}", cfg.network))?;
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {address} failed: {e}"))?;
    Ok(Box::new(tls))
}

/// A TLS client checking certificates against the system's roots (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured), with the process's one crypto provider (aws-lc-rs).
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("No trusted root certificates found for TLS".into());
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_utf8_or_latin1() {
        assert_eq!(decode(b"PRIVMSG a :caf\xc3\xa9\r"), "PRIVMSG a :café");
        assert_eq!(decode(b"PRIVMSG a :caf\xe9"), "PRIVMSG a :café");
    }

    #[test]
    fn pongs_echo_the_ping() {
        assert_eq!(pong("irc.x", None), "PONG :irc.x\r\n");
        assert_eq!(pong("a", Some("b")), "PONG a :b\r\n");
    }
}
