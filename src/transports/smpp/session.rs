//! The SMPP client sessions: one bind (transceiver, transmitter or receiver) or a transmitter
//! and a receiver pair, each over its own TCP connection and kept up with backoff; submit_sm
//! matched to its submit_sm_resp by sequence number; deliver_sm and data_sm as inbound
//! messages (long ones joined from parts kept in the store, at most `max_reassembly_parts`
//! waiting: `reassembly`) or delivery receipts;
//! enquire_link both ways; on stop, the window's responses are waited for, then unbind.
//! PDUs are rusmpp's (pinned 0.4.0); what is read from and built into them is `pdu`'s, the
//! protocol text layers (encodings, splitting, receipts) this folder's other modules.

use super::codec::{Codec, Unreadable};
use super::config::{Role, SmppConfig};
use super::pdu::{
    self, Incoming, StoredPart, inspect, join_parts, status_name, submit_sm, ussd_inbound,
};
use super::reassembly::Partial;
use super::{dlr, split};
use crate::message::{Level, Message};
use crate::transports::{
    Dir, Reporter, TransportCommand, TransportContext, TransportError, TransportReport,
};
use futures::{FutureExt, SinkExt, StreamExt};
use rusmpp::pdus::DeliverSmResp;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

mod inbound;

/// How long an SMSC id -> message id mapping is kept for delivery receipts (Vumi: 1 week).
const RECEIPT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// One message in flight: how many of its parts still wait for their resp.
struct InFlight {
    message_id: String,
    parts_left: usize,
    smsc_ids: Vec<String>,
    failed: Option<(String, bool)>,
    sent_at: Instant,
}

pub async fn run(cfg: SmppConfig, ctx: TransportContext) -> Result<(), TransportError> {
    let reporter = ctx.reporter();
    let TransportContext {
        channel_id,
        mut commands,
        store,
        stop,
        ..
    } = ctx;
    let link = Link {
        store,
        reporter,
        channel_id,
    };
    let binds = cfg.binds();
    match binds.as_slice() {
        [(role, component)] => {
            bind_loop(&cfg, *role, component, &link, Some(&mut commands), &stop).await;
        }
        _ => {
            // A transmitter and a receiver: the receiver stops when the transmitter has.
            let rx_stop = stop.child_token();
            let (tx_role, tx_component) = binds[0];
            let (rx_role, rx_component) = binds[1];
            let tx = async {
                bind_loop(
                    &cfg,
                    tx_role,
                    tx_component,
                    &link,
                    Some(&mut commands),
                    &stop,
                )
                .await;
                rx_stop.cancel();
            };
            let rx = bind_loop(&cfg, rx_role, rx_component, &link, None, &rx_stop);
            tokio::join!(tx, rx);
        }
    }
    Ok(())
}

/// One bind, kept up: bound, lost, rebound with backoff, until the channel stops it.
async fn bind_loop(
    cfg: &SmppConfig,
    role: Role,
    component: &str,
    link: &Link,
    mut commands: Option<&mut mpsc::Receiver<TransportCommand>>,
    stop: &CancellationToken,
) {
    let mut delay = cfg.initial_reconnect_delay();
    loop {
        link.reporter.status(
            component,
            Level::Down,
            "binding",
            format!("Binding to {} as {}", cfg.address(), role.name()),
        );
        let mut session = Session::new(cfg, role, component, link);
        match session.run(commands.as_deref_mut(), stop).await {
            Ok(Done::Stopped) => return,
            Ok(Done::Lost(why)) => {
                link.reporter
                    .status(component, Level::Down, "connection_lost", &why);
                delay = cfg.initial_reconnect_delay();
            }
            Err(why) => link
                .reporter
                .status(component, Level::Down, "connection_lost", &why),
        }
        session.lost("connection lost");
        link.reporter.log(
            crate::logs::WARNING,
            format!(
                "SMPP {} session ended; reconnecting in {:.1} s",
                role.name(),
                delay.as_secs_f64()
            ),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

enum Done {
    Stopped,
    Lost(String),
}

/// The next command, or never when this bind takes none (a receiver of a pair).
async fn next_command(
    commands: &mut Option<&mut mpsc::Receiver<TransportCommand>>,
) -> Option<TransportCommand> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// One connection's state.
struct Session<'a> {
    cfg: &'a SmppConfig,
    role: Role,
    component: &'a str,
    link: &'a Link,
    seq: u32,
    /// submit_sm sequence number -> slot of the message it is a part of.
    in_flight: HashMap<u32, usize>,
    messages: HashMap<usize, InFlight>,
    next_slot: usize,
    /// Long inbound messages under way (their parts are in the store), bounded by
    /// `max_reassembly_parts`.
    partial: Partial,
    reference: u16,
    throttled: bool,
    /// mt_tps: at most this many submit_sm a second.
    tps_tokens: f64,
    tps_at: Instant,
}

impl<'a> Session<'a> {
    fn new(cfg: &'a SmppConfig, role: Role, component: &'a str, link: &'a Link) -> Self {
        Session {
            cfg,
            role,
            component,
            link,
            seq: 1,
            in_flight: HashMap::new(),
            messages: HashMap::new(),
            next_slot: 0,
            partial: Partial::new(cfg.max_reassembly_parts()),
            reference: fastrand::u16(..),
            throttled: false,
            tps_tokens: cfg.mt_tps().unwrap_or(0.0),
            tps_at: Instant::now(),
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = if self.seq >= 0x7FFF_FFFF {
            2
        } else {
            self.seq + 1
        };
        self.seq
    }

    /// A PDU sent or received, in the channel log when `log_protocol` is on.
    fn wire(&self, dir: Dir, cmd: &Command, message_id: Option<&str>) {
        self.link.reporter.protocol(dir, message_id, || {
            pdu::describe(cmd, self.cfg.default_coding())
        });
    }

    /// Every message still waiting for a response goes back to be retried.
    fn lost(&mut self, why: &str) {
        self.in_flight.clear();
        for (_, m) in self.messages.drain() {
            self.link.reporter.report(TransportReport::Nack {
                message_id: m.message_id,
                reason: why.to_string(),
                retry: true,
            });
        }
    }

    /// Connects and binds, then serves the bind until it is lost or stopped.
    async fn run(
        &mut self,
        commands: Option<&mut mpsc::Receiver<TransportCommand>>,
        stop: &CancellationToken,
    ) -> Result<Done, String> {
        match self.bind(stop).await? {
            Some(framed) => Ok(self.serve(framed, commands, stop).await),
            None => Ok(Done::Stopped),
        }
    }

    /// Connects and binds: the bound connection, or `None` when the channel stopped first.
    async fn bind(&mut self, stop: &CancellationToken) -> Result<Option<Connection>, String> {
        let cfg = self.cfg;
        let stream = tokio::select! {
            s = tokio::time::timeout(cfg.bind_timeout(), TcpStream::connect(cfg.address())) => s
                .map_err(|_| format!("Connecting to {} timed out", cfg.address()))?
                .map_err(|e| format!("Cannot connect to {}: {e}", cfg.address()))?,
            _ = stop.cancelled() => return Ok(None),
        };
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, Codec::new());
        let bind = Command::new(CommandStatus::EsmeRok, self.seq, pdu::bind(cfg, self.role)?);
        self.wire(Dir::Out, &bind, None);
        framed
            .send(bind)
            .await
            .map_err(|e| format!("Sending bind failed: {e}"))?;
        let deadline = tokio::time::Instant::now() + cfg.bind_timeout();
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout_at(deadline, framed.next()) => n,
                _ = stop.cancelled() => return Ok(None),
            };
            let cmd = match next {
                Err(_) => {
                    self.link.reporter.status(
                        self.component,
                        Level::Down,
                        "bind_timeout",
                        "No bind response in time",
                    );
                    return Err("bind timed out".into());
                }
                Ok(None) => return Err("the SMSC closed the connection during bind".into()),
                Ok(Some(Err(e))) => return Err(format!("Unreadable stream during bind: {e}")),
                Ok(Some(Ok(Err(bad)))) => {
                    return Err(format!("Unreadable PDU during bind: {}", bad.reason));
                }
                Ok(Some(Ok(Ok(c)))) => c,
            };
            self.wire(Dir::In, &cmd, None);
            if cmd.id() == pdu::bind_resp_id(self.role)
                || (cmd.sequence_number() == self.seq && cmd.id() == CommandId::GenericNack)
            {
                if cmd.status() != CommandStatus::EsmeRok {
                    return Err(format!("Bind refused: {}", status_name(cmd.status())));
                }
                break;
            }
        }
        self.link.reporter.status(
            self.component,
            Level::Ok,
            "bound",
            format!("Bound to {} as {}", cfg.address(), self.role.name()),
        );
        Ok(Some(framed))
    }

    /// A bound connection: PDUs from the SMSC answered, messages sent, enquire_link kept up
    /// and the window swept, until the link is lost or, once stopped, drained and unbound.
    async fn serve(
        &mut self,
        mut framed: Connection,
        mut commands: Option<&mut mpsc::Receiver<TransportCommand>>,
        stop: &CancellationToken,
    ) -> Done {
        let cfg = self.cfg;
        let mut enquire = tokio::time::interval(cfg.enquire_link_interval());
        enquire.tick().await;
        let mut last_heard = Instant::now();
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        // Stopping: no new messages; the window's responses are waited for until `drain_by`,
        // then unbind.
        let mut drain_by: Option<tokio::time::Instant> = None;

        loop {
            if let Some(by) = drain_by
                && (self.messages.is_empty() || tokio::time::Instant::now() >= by)
            {
                self.unbind(&mut framed).await;
                return Done::Stopped;
            }
            tokio::select! {
                cmd = framed.next() => {
                    let cmd = match cmd {
                        None => return Done::Lost("The SMSC closed the connection".into()),
                        // No command_length to go by: the stream cannot be read on.
                        Some(Err(e)) => return Done::Lost(format!("Unreadable stream from the SMSC: {e}")),
                        Some(Ok(frame)) => frame,
                    };
                    last_heard = Instant::now();
                    if let Some(done) = self.answer(&mut framed, cmd).await {
                        return done;
                    }
                }
                command = next_command(&mut commands), if drain_by.is_none() => {
                    let Some(TransportCommand::Send(msg)) = command else {
                        drain_by = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                        continue;
                    };
                    if let Some(done) = self.send(&mut framed, msg, &mut commands).await {
                        return done;
                    }
                }
                _ = stop.cancelled(), if drain_by.is_none() => {
                    drain_by = Some(tokio::time::Instant::now() + Duration::from_secs(3));
                }
                _ = tokio::time::sleep_until(drain_by.unwrap_or_else(tokio::time::Instant::now)), if drain_by.is_some() => {}
                _ = enquire.tick() => {
                    if last_heard.elapsed() > cfg.enquire_link_interval() * 3 {
                        return Done::Lost("No answer to enquire_link: the link is dead".into());
                    }
                    let seq = self.next_seq();
                    let enquire_link = Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink);
                    self.wire(Dir::Out, &enquire_link, None);
                    if let Err(e) = framed.send(enquire_link).await {
                        return Done::Lost(format!("Writing enquire_link failed: {e}"));
                    }
                }
                _ = sweep.tick() => self.sweep(),
            }
        }
    }

    /// A PDU from the SMSC and whatever else has already arrived (up to 64), answered in
    /// one write; `Some` when the session is over.
    async fn answer(
        &mut self,
        framed: &mut Connection,
        first: Result<Command, Unreadable>,
    ) -> Option<Done> {
        let mut next = Some(first);
        let mut more = 0;
        while let Some(frame) = next.take() {
            match frame {
                Ok(cmd) => {
                    if let Some(done) = self.pdu(framed, cmd).await {
                        return Some(done);
                    }
                }
                Err(bad) => {
                    self.link.reporter.log(
                        crate::logs::WARNING,
                        format!(
                            "Unreadable PDU from the SMSC (sequence {}): {}",
                            bad.sequence, bad.reason
                        ),
                    );
                    let nack = Command::new(
                        CommandStatus::EsmeRinvcmdlen,
                        bad.sequence,
                        Pdu::GenericNack,
                    );
                    self.wire(Dir::Out, &nack, None);
                    let _ = framed.feed(nack).await;
                }
            }
            more += 1;
            if more < 64
                && let Some(Some(Ok(frame))) = framed.next().now_or_never()
            {
                next = Some(frame);
            }
        }
        if let Err(e) = flush(framed).await {
            return Some(Done::Lost(format!("Writing to the SMSC failed: {e}")));
        }
        None
    }

    /// A message and whatever else is waiting (up to 64 more), sent in one write; `Some`
    /// when the session is over.
    async fn send(
        &mut self,
        framed: &mut Connection,
        msg: Message,
        commands: &mut Option<&mut mpsc::Receiver<TransportCommand>>,
    ) -> Option<Done> {
        let mut result = self.submit(framed, msg).await;
        let mut more = 0;
        while result.is_ok() && more < 64 {
            match commands.as_deref_mut().map(|rx| rx.try_recv()) {
                Some(Ok(TransportCommand::Send(msg))) => result = self.submit(framed, msg).await,
                _ => break,
            }
            more += 1;
        }
        if let Err(e) = match result {
            Ok(()) => flush(framed).await,
            Err(e) => Err(e),
        } {
            return Some(Done::Lost(format!("Writing submit_sm failed: {e}")));
        }
        None
    }

    /// The window given up (its messages retried elsewhere), then unbind, its response
    /// waited for briefly.
    async fn unbind(&mut self, framed: &mut Connection) {
        self.lost("the channel stopped");
        let seq = self.next_seq();
        let unbind = Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind);
        self.wire(Dir::Out, &unbind, None);
        let _ = framed.send(unbind).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(frame)) = framed.next().await {
                if frame.is_ok_and(|c| c.id() == CommandId::UnbindResp) {
                    break;
                }
            }
        })
        .await;
    }

    /// One PDU from the SMSC (answers are fed, not flushed); `Some` when the session is over.
    async fn pdu(&mut self, framed: &mut Connection, cmd: Command) -> Option<Done> {
        let status = cmd.status();
        let cseq = cmd.sequence_number();
        let is_sm = matches!(cmd.pdu(), Some(Pdu::DeliverSm(_) | Pdu::DataSm(_)));
        if !is_sm && self.link.reporter.logs_protocol() {
            let mid = self
                .in_flight
                .get(&cseq)
                .filter(|_| cmd.id() == CommandId::SubmitSmResp)
                .and_then(|slot| self.messages.get(slot))
                .map(|m| m.message_id.clone());
            self.wire(Dir::In, &cmd, mid.as_deref());
        }
        // An error response may come without a body (SMPP 3.4 allows it).
        if cmd.id() == CommandId::SubmitSmResp {
            let smsc_id = pdu::submit_sm_resp_id(cmd.pdu());
            self.submit_resp(cseq, status, smsc_id);
            return None;
        }
        match cmd.pdu() {
            Some(pdu @ (Pdu::DeliverSm(_) | Pdu::DataSm(_))) => {
                let ack = match pdu {
                    Pdu::DataSm(_) => Command::new(
                        CommandStatus::EsmeRok,
                        cseq,
                        rusmpp::pdus::DataSmResp::builder().build(),
                    ),
                    _ => Command::new(
                        CommandStatus::EsmeRok,
                        cseq,
                        DeliverSmResp::builder().build(),
                    ),
                };
                // Answered once the message (or part) is handed on or stored.
                // Both lines are written with the message id the PDU turns out to concern
                // (a receipt's is looked up), the answer after the PDU.
                let lines = self.link.reporter.logs_protocol().then(|| {
                    let coding = self.cfg.default_coding();
                    (pdu::describe(&cmd, coding), pdu::describe(&ack, coding))
                });
                self.incoming(pdu, lines).await;
                if let Err(e) = framed.feed(ack).await {
                    return Some(Done::Lost(format!("Writing deliver_sm_resp failed: {e}")));
                }
            }
            Some(Pdu::EnquireLink) => {
                let resp = Command::new(CommandStatus::EsmeRok, cseq, Pdu::EnquireLinkResp);
                self.wire(Dir::Out, &resp, None);
                let _ = framed.feed(resp).await;
            }
            Some(Pdu::Unbind) => {
                let resp = Command::new(CommandStatus::EsmeRok, cseq, Pdu::UnbindResp);
                self.wire(Dir::Out, &resp, None);
                let _ = framed.send(resp).await;
                return Some(Done::Lost("The SMSC unbound".into()));
            }
            Some(Pdu::EnquireLinkResp) | Some(Pdu::UnbindResp) | Some(Pdu::GenericNack) => {}
            _ => {
                let nack = Command::new(CommandStatus::EsmeRinvcmdid, cseq, Pdu::GenericNack);
                self.wire(Dir::Out, &nack, None);
                let _ = framed.feed(nack).await;
            }
        }
        None
    }

    fn submit_resp(&mut self, cseq: u32, status: CommandStatus, smsc_id: String) {
        let Some(slot) = self.in_flight.remove(&cseq) else {
            return;
        };
        let Some(m) = self.messages.get_mut(&slot) else {
            return;
        };
        m.parts_left = m.parts_left.saturating_sub(1);
        if status == CommandStatus::EsmeRok {
            if self.throttled {
                self.throttled = false;
                self.link.reporter.status(
                    self.component,
                    Level::Ok,
                    "throttled_end",
                    "The SMSC accepts messages again",
                );
            }
            m.smsc_ids.push(smsc_id);
        } else {
            let retry = matches!(
                status,
                CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful
            );
            if retry && !self.throttled {
                self.throttled = true;
                self.link.reporter.status(
                    self.component,
                    Level::Degraded,
                    "throttled",
                    format!("The SMSC answered {}", status_name(status)),
                );
            }
            m.failed.get_or_insert((status_name(status), retry));
        }
        if m.parts_left == 0
            && let Some(m) = self.messages.remove(&slot)
        {
            match (&m.failed, self.cfg.registered_delivery()) {
                // Receipts will come: the SMSC ids are kept for them first.
                (None, true) => {
                    tokio::task::spawn_local(finish(self.link.clone(), m));
                }
                (None, false) => self.link.reporter.report(TransportReport::Ack {
                    sent_message_id: m.smsc_ids.first().cloned().unwrap_or_default(),
                    message_id: m.message_id,
                }),
                (Some((reason, retry)), _) => self.link.reporter.report(TransportReport::Nack {
                    message_id: m.message_id,
                    reason: reason.clone(),
                    retry: *retry,
                }),
            }
        }
    }

    /// Writes one message as its parts (flushed by the caller).
    async fn submit(&mut self, framed: &mut Connection, msg: Message) -> Result<(), String> {
        if !self.role.sends() {
            self.link.reporter.report(TransportReport::Nack {
                message_id: msg.message_id,
                reason: "the channel binds as a receiver only and cannot send".into(),
                retry: false,
            });
            return Ok(());
        }
        let cfg = self.cfg;
        let text = msg.content.clone().unwrap_or_default();
        let coding = split::choose(&text, cfg.configured_coding());
        self.reference = self.reference.wrapping_add(1);
        let parts = split::split(&text, coding, cfg.concat(), self.reference);
        let slot = self.next_slot;
        self.next_slot += 1;
        self.messages.insert(
            slot,
            InFlight {
                message_id: msg.message_id.clone(),
                parts_left: parts.len(),
                smsc_ids: vec![],
                failed: None,
                sent_at: Instant::now(),
            },
        );
        for part in parts {
            if let Some(tps) = cfg.mt_tps() {
                self.tps_tokens =
                    (self.tps_tokens + self.tps_at.elapsed().as_secs_f64() * tps).min(tps);
                self.tps_at = Instant::now();
                if self.tps_tokens < 1.0 {
                    let wait = Duration::from_secs_f64((1.0 - self.tps_tokens) / tps);
                    flush(framed).await?;
                    tokio::time::sleep(wait).await;
                    self.tps_tokens = 1.0;
                    self.tps_at = Instant::now();
                }
                self.tps_tokens -= 1.0;
            }
            let pdu = match submit_sm(cfg, &msg, coding, part) {
                Ok(p) => p,
                Err(why) => {
                    if let Some(m) = self.messages.remove(&slot) {
                        self.in_flight.retain(|_, s| *s != slot);
                        self.link.reporter.report(TransportReport::Nack {
                            message_id: m.message_id,
                            reason: why,
                            retry: false,
                        });
                    }
                    return Ok(());
                }
            };
            let seq = self.next_seq();
            self.in_flight.insert(seq, slot);
            let cmd = Command::new(CommandStatus::EsmeRok, seq, pdu);
            self.wire(Dir::Out, &cmd, Some(&msg.message_id));
            framed.feed(cmd).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn sweep(&mut self) {
        // Parts of a long inbound message that never completed: a counted, logged refusal.
        let timeout = self.cfg.reassembly_timeout();
        for stale in self.partial.stale(timeout, Instant::now()) {
            let (key, total) = (stale.key, stale.total);
            let link = self.link.clone();
            tokio::task::spawn_local(async move {
                let _ = link.store.delete_state(&link.channel_id, &key).await;
                link.reporter.log(
                    crate::logs::ERROR,
                    format!("Dropping an incomplete long message ({key}, {total} parts expected)"),
                );
            });
        }
        // A response that never comes: the message is retried, not lost.
        let timeout = self.cfg.response_timeout();
        let expired: Vec<usize> = self
            .messages
            .iter()
            .filter(|(_, m)| m.sent_at.elapsed() > timeout)
            .map(|(k, _)| *k)
            .collect();
        for slot in expired {
            if let Some(m) = self.messages.remove(&slot) {
                self.in_flight.retain(|_, s| *s != slot);
                self.link.reporter.report(TransportReport::Nack {
                    message_id: m.message_id,
                    reason: "no submit_sm_resp in time".into(),
                    retry: true,
                });
            }
        }
    }
}

/// One SMPP connection, framed by `codec`.
type Connection = Framed<TcpStream, Codec>;

/// Writes what was fed.
async fn flush(framed: &mut Connection) -> Result<(), String> {
    SinkExt::<Command>::flush(framed)
        .await
        .map_err(|e| e.to_string())
}

/// What a session and its helpers need of the transport context.
#[derive(Clone)]
struct Link {
    store: std::sync::Arc<dyn crate::store::Store>,
    channel_id: String,
    reporter: Reporter,
}

/// All parts accepted and receipts asked for: the SMSC ids are mapped to the message (for
/// its receipts), then one ack (with the first part's SMSC id).
async fn finish(ctx: Link, m: InFlight) {
    match m.failed {
        Some((reason, retry)) => {
            ctx.reporter.report(TransportReport::Nack {
                message_id: m.message_id,
                reason,
                retry,
            });
        }
        None => {
            for id in &m.smsc_ids {
                let _ = ctx
                    .store
                    .set_message_state(
                        &ctx.channel_id,
                        &format!("smsc:{}", id.to_ascii_lowercase()),
                        &m.message_id,
                        RECEIPT_WINDOW,
                    )
                    .await;
            }
            ctx.reporter.report(TransportReport::Ack {
                sent_message_id: m.smsc_ids.first().cloned().unwrap_or_default(),
                message_id: m.message_id,
            });
        }
    }
}
