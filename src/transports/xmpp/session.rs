//! The XMPP client session: connect (StartTLS where the server offers it; plaintext only on
//! loopback with `insecure_loopback`), SASL, resource binding, then one loop that reads
//! stanzas, writes the channel's messages (acked once written and flushed), answers the
//! server's pings and subscription requests, pings the server every `ping_interval` (an
//! unanswered ping is a dead link), announces presence every `presence_interval`; lost,
//! it is reconnected with backoff, each step shown in the channel's `xmpp` status.

use super::XmppConfig;
use super::stanza::{self, Received};
use crate::logs::{INFO, WARNING};
use crate::message::{DeliveryStatus, Level, Message};
use crate::transports::{
    Dir, Reporter, TransportCommand, TransportContext, TransportError, TransportReport,
};
use futures::{SinkExt, StreamExt};
use sasl::common::{ChannelBinding, Credentials};
use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_xmpp::connect::AsyncReadAndWrite;
use tokio_xmpp::connect::starttls::starttls;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamElementError, StreamHeader, Timeouts, XmlStream,
    XmppStream, XmppStreamElement, initiate_stream,
};
use xmpp_parsers::bind::{BindQuery, BindResponse};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, FullJid, Jid};
use xmpp_parsers::ns;
use xmpp_parsers::ping::Ping;
use xmpp_parsers::presence::Presence;
use xmpp_parsers::roster::Roster;
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::stream_features::StreamFeatures;

/// The status component.
pub const COMPONENT: &str = "xmpp";
/// Longest a connection may take from TCP connect to a bound resource.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between reconnects.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(60);
/// Messages written before one flush (and their acks).
const BATCH: usize = 64;
/// Sent message ids remembered, so that a bounce (an error message naming one) becomes
/// that message's `delivery_failed`.
const SENT_MEMORY: usize = 10_000;
/// Longest a stop waits for the server to close its side of the stream.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
const BIND_ID: &str = "bind-1";
const ROSTER_ID: &str = "roster-1";

type Stream = XmppStream<Box<dyn AsyncReadAndWrite + Send + 'static>>;

/// Why a connection attempt failed: the status `kind` and its message.
struct Failure {
    kind: &'static str,
    message: String,
}

fn failure(kind: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
    }
}

enum Done {
    /// The channel stopped the transport (or closed its commands).
    Stopped,
    /// The connection is gone: why.
    Lost(String),
}

pub async fn run(cfg: XmppConfig, ctx: TransportContext) -> Result<(), TransportError> {
    let jid = cfg.jid().map_err(TransportError::Other)?;
    let reporter = ctx.reporter().with_secrets(vec![cfg.password.clone()]);
    let TransportContext {
        mut commands, stop, ..
    } = ctx;
    let mut sent = Recent::new(SENT_MEMORY);
    let mut delay = cfg.initial_reconnect_delay();
    loop {
        reporter.status(
            COMPONENT,
            Level::Down,
            "connecting",
            format!("Connecting to {} as {}", cfg.address(), jid.to_bare()),
        );
        let connected = tokio::select! {
            c = tokio::time::timeout(CONNECT_TIMEOUT, connect(&cfg, &jid, &reporter)) => {
                c.unwrap_or_else(|_| Err(failure(
                    "connect_timeout",
                    format!("No session with {} within {} s", cfg.address(), CONNECT_TIMEOUT.as_secs()),
                )))
            }
            _ = stop.cancelled() => return Ok(()),
        };
        match connected {
            Ok((stream, bound)) => {
                delay = cfg.initial_reconnect_delay();
                reporter.status(
                    COMPONENT,
                    Level::Ok,
                    "connected",
                    format!("Connected to {} as {bound}", cfg.address()),
                );
                let mut session = Session {
                    cfg: &cfg,
                    reporter: &reporter,
                    us: jid.to_bare(),
                    stream,
                    ping: None,
                    pings: 0,
                    sent: &mut sent,
                };
                match session.serve(&mut commands, &stop).await {
                    Done::Stopped => return Ok(()),
                    Done::Lost(why) => {
                        reporter.status(COMPONENT, Level::Down, "connection_lost", &why);
                    }
                }
            }
            Err(f) => reporter.status(COMPONENT, Level::Down, f.kind, &f.message),
        }
        reporter.log(
            WARNING,
            format!(
                "XMPP session ended; reconnecting in {:.1} s",
                delay.as_secs_f64()
            ),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return Ok(()),
        }
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

/// The stream's own silence timeouts: a backstop behind the pings.
fn timeouts(cfg: &XmppConfig) -> Timeouts {
    let t = (cfg.ping_interval() * 2).max(Duration::from_secs(10));
    Timeouts {
        read_timeout: t,
        response_timeout: t,
    }
}

/// The header of a stream to `domain`.
fn header(domain: &str) -> StreamHeader<'static> {
    StreamHeader {
        to: Some(Cow::Owned(domain.to_string())),
        from: None,
        id: None,
    }
}

/// Opens the XML stream on `io` (`<stream:stream to=domain>`) and reads the server's
/// features, both in the protocol log.
async fn open_stream<Io: AsyncBufRead + AsyncWrite + Unpin>(
    io: Io,
    domain: &str,
    timeouts: Timeouts,
    reporter: &Reporter,
) -> Result<(StreamFeatures, XmlStream<Io, FallibleStreamElement>), String> {
    reporter.protocol(Dir::Out, None, || format!("stream:stream to={domain}"));
    let (features, stream) = initiate_stream(io, ns::JABBER_CLIENT, header(domain), timeouts)
        .await
        .map_err(|e| e.to_string())?
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| e.to_string())?;
    reporter.protocol(Dir::In, None, || stanza::describe_features(&features));
    Ok((features, stream))
}

/// Connects, secures, authenticates and binds a resource: the stream and our full JID.
async fn connect(
    cfg: &XmppConfig,
    jid: &Jid,
    reporter: &Reporter,
) -> Result<(Stream, FullJid), Failure> {
    let domain = jid.domain().as_str().to_string();
    let timeouts = timeouts(cfg);
    let address = cfg.address();
    let broken = |e: &dyn std::fmt::Display| {
        failure(
            "connect_failed",
            format!("The stream with {address} failed: {e}"),
        )
    };
    let host = cfg
        .host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = TcpStream::connect((host, cfg.port)).await.map_err(|e| {
        failure(
            "connect_failed",
            format!("Cannot connect to {address}: {e}"),
        )
    })?;
    let _ = tcp.set_nodelay(true);
    let (features, plain) = open_stream(BufStream::new(tcp), &domain, timeouts, reporter)
        .await
        .map_err(|e| broken(&e))?;
    let (features, stream, binding) = if features.can_starttls() {
        reporter.protocol(Dir::Out, None, || "starttls".into());
        let (tls, binding) = starttls(plain, &domain)
            .await
            .map_err(|e| failure("tls_failed", format!("StartTLS with {address} failed: {e}")))?;
        reporter.protocol(Dir::In, None, || "proceed (TLS established)".into());
        let (features, stream) = open_stream(BufStream::new(tls), &domain, timeouts, reporter)
            .await
            .map_err(|e| broken(&e))?;
        (features, stream.box_stream(), binding)
    } else if cfg.insecure_loopback {
        (features, plain.box_stream(), ChannelBinding::None)
    } else {
        return Err(failure(
            "no_tls",
            format!(
                "{address} does not offer StartTLS, and the password is not sent in the clear \
                 (insecure_loopback allows that for a server on this machine only)"
            ),
        ));
    };

    // SASL: the exchange is tokio-xmpp's, and never logged (only that it happened).
    let user = jid.node().map(|n| n.as_str()).unwrap_or_default();
    let creds = Credentials::default()
        .with_username(user)
        .with_password(cfg.password.clone())
        .with_channel_binding(binding);
    reporter.protocol(Dir::Out, None, || {
        "sasl auth (credentials not shown)".into()
    });
    let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms.clone(), creds)
        .await
        .map_err(|e| match e {
            tokio_xmpp::Error::Auth(a) => failure(
                "auth_failed",
                format!("{address} refused the login of {}: {a}", jid.to_bare()),
            ),
            other => broken(&other),
        })?;
    reporter.protocol(Dir::In, None, || "sasl success".into());
    reporter.protocol(Dir::Out, None, || format!("stream:stream to={domain}"));
    let (features, mut stream) = stream
        .send_header(header(&domain))
        .await
        .map_err(|e| broken(&e))?
        .recv_features::<FallibleStreamElement>()
        .await
        .map_err(|e| broken(&e))?;
    reporter.protocol(Dir::In, None, || stanza::describe_features(&features));
    if !features.can_bind() {
        return Err(failure(
            "connect_failed",
            format!("{address} offers no resource binding"),
        ));
    }

    let resource = jid.resource().map(|r| r.as_str().to_string());
    let bind =
        XmppStreamElement::Stanza(Stanza::Iq(Iq::from_set(BIND_ID, BindQuery::new(resource))));
    reporter.protocol(Dir::Out, None, || stanza::describe(&bind));
    stream.send(&bind).await.map_err(|e| broken(&e))?;
    loop {
        let el = match stream.next().await {
            Some(Ok(FallibleStreamElement::Ok(el))) => el,
            Some(Ok(FallibleStreamElement::Err(e))) => {
                reporter.log(WARNING, format!("Unreadable element from {address}: {e}"));
                continue;
            }
            Some(Err(ReadError::SoftTimeout | ReadError::ParseError(_))) => continue,
            Some(Err(ReadError::HardError(e))) => return Err(broken(&e)),
            None | Some(Err(ReadError::StreamFooterReceived)) => {
                return Err(failure(
                    "connect_failed",
                    format!("{address} closed the stream before binding a resource"),
                ));
            }
        };
        reporter.protocol(Dir::In, None, || stanza::describe(&el));
        match el {
            XmppStreamElement::Stanza(Stanza::Iq(Iq::Result {
                id,
                payload: Some(payload),
                ..
            })) if id == BIND_ID => {
                let bound = BindResponse::try_from(payload)
                    .map_err(|e| broken(&format!("unreadable bind result: {e}")))?
                    .jid;
                if bound.to_bare() != jid.to_bare() {
                    // E.g. an anonymous login: never chat as someone else.
                    return Err(failure(
                        "auth_failed",
                        format!(
                            "{address} bound the session as {bound}, not {}",
                            jid.to_bare()
                        ),
                    ));
                }
                return Ok((stream, bound));
            }
            XmppStreamElement::Stanza(Stanza::Iq(Iq::Error { id, error, .. })) if id == BIND_ID => {
                return Err(failure(
                    "bind_failed",
                    format!(
                        "{address} refused the resource binding: {}",
                        stanza::error_text(&error)
                    ),
                ));
            }
            XmppStreamElement::StreamError(e) => {
                return Err(failure(
                    "connect_failed",
                    format!("{address} ended the stream: {e}"),
                ));
            }
            _ => {}
        }
    }
}

/// A bounded memory of recent ids.
struct Recent {
    ids: HashSet<String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Recent {
    fn new(cap: usize) -> Recent {
        Recent {
            ids: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn insert(&mut self, id: String) {
        if self.ids.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.ids.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

/// One bound connection.
struct Session<'a> {
    cfg: &'a XmppConfig,
    reporter: &'a Reporter,
    us: BareJid,
    stream: Stream,
    /// The ping waiting for its answer: (id, when it was sent).
    ping: Option<(String, Instant)>,
    pings: u64,
    sent: &'a mut Recent,
}

impl Session<'_> {
    async fn serve(
        &mut self,
        commands: &mut mpsc::Receiver<TransportCommand>,
        stop: &CancellationToken,
    ) -> Done {
        // The roster first (who has added us), then our presence: the server then hands
        // over what waited for us (offline messages, subscription requests).
        let roster = Iq::from_get(
            ROSTER_ID,
            Roster {
                ver: None,
                items: vec![],
            },
        );
        let (show, text) = self.cfg.presence();
        let presence = stanza::announce(show.clone(), text.as_deref());
        for el in [Stanza::Iq(roster), Stanza::Presence(presence)] {
            if let Err(why) = self.feed(el, None).await {
                return Done::Lost(why);
            }
        }
        if let Err(why) = self.flush().await {
            return Done::Lost(why);
        }
        let start = tokio::time::Instant::now();
        let mut ping =
            tokio::time::interval_at(start + self.cfg.ping_interval(), self.cfg.ping_interval());
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut announce = tokio::time::interval_at(
            start + self.cfg.presence_interval(),
            self.cfg.presence_interval(),
        );
        announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = self.stream.next() => {
                    if let Some(done) = self.received(item).await {
                        return done;
                    }
                }
                command = commands.recv() => match command {
                    None => {
                        self.close().await;
                        return Done::Stopped;
                    }
                    Some(TransportCommand::Send(msg)) => {
                        if let Some(done) = self.send(msg, commands).await {
                            return done;
                        }
                    }
                },
                _ = ping.tick() => {
                    if let Some((id, at)) = &self.ping {
                        return Done::Lost(format!(
                            "No answer to ping {id} in {:.1} s: the link is dead",
                            at.elapsed().as_secs_f64()
                        ));
                    }
                    if let Err(why) = self.send_ping().await {
                        return Done::Lost(why);
                    }
                }
                _ = announce.tick() => {
                    let presence = stanza::announce(show.clone(), text.as_deref());
                    if let Err(why) = self.write(Stanza::Presence(presence), None).await {
                        return Done::Lost(why);
                    }
                }
                _ = stop.cancelled() => {
                    self.close().await;
                    return Done::Stopped;
                }
            }
        }
    }

    /// Writes a stanza to the stream's buffer (logged first when `log_protocol` is on).
    async fn feed(&mut self, stanza: Stanza, message_id: Option<&str>) -> Result<(), String> {
        let el = XmppStreamElement::Stanza(stanza);
        self.reporter
            .protocol(Dir::Out, message_id, || stanza::describe(&el));
        self.stream
            .feed(&el)
            .await
            .map_err(|e| format!("Writing to the XMPP server failed: {e}"))
    }

    async fn flush(&mut self) -> Result<(), String> {
        SinkExt::<&XmppStreamElement>::flush(&mut self.stream)
            .await
            .map_err(|e| format!("Writing to the XMPP server failed: {e}"))
    }

    async fn write(&mut self, stanza: Stanza, message_id: Option<&str>) -> Result<(), String> {
        self.feed(stanza, message_id).await?;
        self.flush().await
    }

    async fn send_ping(&mut self) -> Result<(), String> {
        self.pings += 1;
        let id = format!("ping-{}", self.pings);
        let server = Jid::from(BareJid::from_parts(None, self.us.domain()));
        let iq = Iq::from_get(id.clone(), Ping).with_to(server);
        self.ping = Some((id, Instant::now()));
        self.write(Stanza::Iq(iq), None).await
    }

    /// A message and whatever else is waiting (up to `BATCH`), written with one flush, then
    /// acked; `Some` when the connection is lost.
    async fn send(
        &mut self,
        first: Message,
        commands: &mut mpsc::Receiver<TransportCommand>,
    ) -> Option<Done> {
        let mut written: Vec<String> = Vec::new();
        let mut next = Some(first);
        let mut taken = 1;
        let mut failed = None;
        while let Some(msg) = next.take() {
            match stanza::chat(&msg) {
                Err(reason) => self.reporter.report(TransportReport::Nack {
                    message_id: msg.message_id,
                    reason,
                    retry: false,
                }),
                Ok(chat) => {
                    let result = self
                        .feed(Stanza::Message(chat), Some(&msg.message_id))
                        .await;
                    written.push(msg.message_id);
                    if let Err(why) = result {
                        failed = Some(why);
                        break;
                    }
                }
            }
            if taken < BATCH
                && let Ok(TransportCommand::Send(msg)) = commands.try_recv()
            {
                next = Some(msg);
                taken += 1;
            }
        }
        if failed.is_none()
            && let Err(why) = self.flush().await
        {
            failed = Some(why);
        }
        match failed {
            None => {
                for id in written {
                    self.sent.insert(id.clone());
                    self.reporter.report(TransportReport::Ack {
                        sent_message_id: id.clone(),
                        message_id: id,
                    });
                }
                None
            }
            Some(why) => {
                // Not known to be written: tried again once the channel reconnects.
                for id in written {
                    self.reporter.report(TransportReport::Nack {
                        message_id: id,
                        reason: why.clone(),
                        retry: true,
                    });
                }
                Some(Done::Lost(why))
            }
        }
    }

    /// One read from the stream; `Some` when the connection is over.
    async fn received(
        &mut self,
        item: Option<Result<FallibleStreamElement, ReadError>>,
    ) -> Option<Done> {
        match item {
            None => Some(Done::Lost("The server closed the connection".into())),
            Some(Err(ReadError::StreamFooterReceived)) => {
                Some(Done::Lost("The server closed the stream".into()))
            }
            Some(Err(ReadError::HardError(e))) => Some(Done::Lost(format!(
                "Reading from the XMPP server failed: {e}"
            ))),
            Some(Err(ReadError::SoftTimeout)) => {
                // Silence: a ping makes the server speak (or shows the link is dead).
                if self.ping.is_none()
                    && let Err(why) = self.send_ping().await
                {
                    return Some(Done::Lost(why));
                }
                None
            }
            Some(Err(ReadError::ParseError(e))) => {
                self.reporter.log(
                    WARNING,
                    format!("Unreadable element from the XMPP server: {e}"),
                );
                None
            }
            Some(Ok(FallibleStreamElement::Err(e))) => self.unreadable(e).await,
            Some(Ok(FallibleStreamElement::Ok(el))) => self.element(el).await,
        }
    }

    /// A stanza that could not be read: logged (and counted in the channel log); an IQ
    /// request still gets its error answer.
    async fn unreadable(&mut self, e: StreamElementError) -> Option<Done> {
        self.reporter.log(
            WARNING,
            format!("Refused an unreadable stanza from the XMPP server: {e}"),
        );
        if let StreamElementError::InvalidStanza { name, header, .. } = &e
            && name.to_string() == "iq"
            && matches!(header.type_.as_deref(), Some("get" | "set"))
        {
            let answer = Iq::Error {
                from: None,
                to: header.from.as_deref().and_then(|f| Jid::new(f).ok()),
                id: header.id.clone().unwrap_or_default(),
                error: StanzaError::new(
                    ErrorType::Modify,
                    DefinedCondition::BadRequest,
                    "en",
                    "unreadable request",
                ),
                payload: None,
            };
            if let Err(why) = self.write(Stanza::Iq(answer), None).await {
                return Some(Done::Lost(why));
            }
        }
        None
    }

    async fn element(&mut self, el: XmppStreamElement) -> Option<Done> {
        let stanza = match el {
            XmppStreamElement::Stanza(s) => s,
            XmppStreamElement::StreamError(e) => {
                self.reporter
                    .protocol(Dir::In, None, || stanza::describe_stream_error(&e));
                return Some(Done::Lost(format!("The server ended the stream: {e}")));
            }
            other => {
                self.reporter
                    .protocol(Dir::In, None, || stanza::describe(&other));
                return None;
            }
        };
        let result = match stanza {
            Stanza::Message(m) => {
                self.message(m);
                Ok(())
            }
            Stanza::Presence(p) => self.presence(p).await,
            Stanza::Iq(iq) => self.iq(iq).await,
        };
        result.err().map(Done::Lost)
    }

    fn message(&mut self, m: xmpp_parsers::message::Message) {
        match stanza::received(&m, &self.us) {
            Received::Inbound(msg) => {
                self.reporter.protocol(Dir::In, Some(&msg.message_id), || {
                    stanza::describe_stanza(&Stanza::Message(m))
                });
                self.reporter.report(TransportReport::Inbound(msg));
            }
            Received::Bounced(id, why) if self.sent.contains(&id) => {
                self.reporter.protocol(Dir::In, Some(&id), || {
                    stanza::describe_stanza(&Stanza::Message(m))
                });
                self.reporter.log_about(
                    WARNING,
                    Some(&id),
                    format!("The XMPP server bounced the message: {why}"),
                );
                self.reporter.report(TransportReport::DeliveryReport {
                    message_id: id,
                    status: DeliveryStatus::Failed,
                });
            }
            Received::Bounced(..) | Received::Ignored(_) => {
                self.reporter.protocol(Dir::In, None, || {
                    stanza::describe_stanza(&Stanza::Message(m))
                });
            }
        }
    }

    async fn presence(&mut self, p: Presence) -> Result<(), String> {
        self.reporter.protocol(Dir::In, None, || {
            stanza::describe_stanza(&Stanza::Presence(p.clone()))
        });
        let answers = stanza::presence_answers(&p);
        if answers.is_empty() {
            return Ok(());
        }
        if let Some(from) = &p.from {
            let what = match p.type_ {
                xmpp_parsers::presence::Type::Subscribe => {
                    "Accepted the subscription request of {} and subscribed back"
                }
                _ => "{} unsubscribed: unsubscribed from them too",
            };
            self.reporter
                .log(INFO, what.replace("{}", &from.to_bare().to_string()));
        }
        for answer in answers {
            self.feed(Stanza::Presence(answer), None).await?;
        }
        self.flush().await
    }

    async fn iq(&mut self, iq: Iq) -> Result<(), String> {
        self.reporter.protocol(Dir::In, None, || {
            stanza::describe_stanza(&Stanza::Iq(iq.clone()))
        });
        match &iq {
            Iq::Result { id, .. } | Iq::Error { id, .. }
                if self.ping.as_ref().is_some_and(|(p, _)| p == id) =>
            {
                // Any answer, even an error, shows the link is alive.
                self.ping = None;
                Ok(())
            }
            Iq::Result {
                id,
                payload: Some(payload),
                ..
            } if id == ROSTER_ID => {
                if let Ok(roster) = Roster::try_from(payload.clone()) {
                    self.reporter
                        .log(INFO, format!("Roster: {} contacts", roster.items.len()));
                }
                Ok(())
            }
            _ => match stanza::iq_answer(&iq, &self.us) {
                Some(answer) => self.write(Stanza::Iq(answer), None).await,
                None => Ok(()),
            },
        }
    }

    /// Leaves cleanly: unavailable, then the stream's end, the server's given a moment.
    async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if self
                .write(Stanza::Presence(Presence::unavailable()), None)
                .await
                .is_err()
            {
                return;
            }
            self.reporter
                .protocol(Dir::Out, None, || "/stream:stream".into());
            if self.stream.shutdown().await.is_err() {
                return;
            }
            while let Some(item) = self.stream.next().await {
                if matches!(
                    item,
                    Err(ReadError::StreamFooterReceived | ReadError::HardError(_))
                ) {
                    break;
                }
            }
        })
        .await;
    }
}
