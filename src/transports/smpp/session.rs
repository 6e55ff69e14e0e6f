//! The SMPP client session: one transceiver bind over TCP, submit_sm matched to its
//! submit_sm_resp by sequence number, deliver_sm as inbound messages or delivery receipts,
//! enquire_link both ways, and reconnecting with backoff. PDUs are rusmpp's (pinned 0.4.0);
//! the protocol text layers (encodings, splitting, receipts) are this folder's.

use super::config::SmppConfig;
use super::{dlr, split};
use crate::message::{Level, Message};
use crate::transports::{TransportCommand, TransportContext, TransportError, TransportReport};
use futures::{SinkExt, StreamExt};
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, MessagePayload, Npi, RegisteredDelivery, Ton,
};
use rusmpp::{Command, CommandStatus, Pdu};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long an SMSC id -> message id mapping is kept for delivery receipts (Vumi: 1 week).
const RECEIPT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// SMPP's `ESME_R...` name of a command status.
pub fn status_name(status: CommandStatus) -> String {
    let debug = format!("{status:?}");
    match debug.strip_prefix("Esme") {
        Some(rest) => format!("ESME_{}", rest.to_ascii_uppercase()),
        None => format!("0x{:08X}", u32::from(status)),
    }
}

/// What deliver_sm and data_sm have in common: the response to send, esm_class,
/// data_coding, short_message, TLVs, source and destination addresses.
type Incoming<'a> = (
    Command,
    u8,
    u8,
    Vec<u8>,
    &'a [rusmpp::tlvs::Tlv],
    &'a [u8],
    &'a [u8],
);

/// One message in flight: how many of its parts still wait for their resp.
struct InFlight {
    message_id: String,
    parts_left: usize,
    smsc_ids: Vec<String>,
    failed: Option<(String, bool)>,
    sent_at: Instant,
}

fn octets<const MIN: usize, const MAX: usize>(s: &str) -> Option<COctetString<MIN, MAX>> {
    COctetString::from_str(s).ok()
}

pub async fn run(cfg: SmppConfig, mut ctx: TransportContext) -> Result<(), TransportError> {
    let mut delay = cfg.initial_reconnect_delay();
    loop {
        ctx.status(
            "smpp",
            Level::Down,
            "binding",
            &format!("Binding to {}", cfg.address()),
        );
        match session(&cfg, &mut ctx).await {
            Ok(Done::Stopped) => return Ok(()),
            Ok(Done::Lost(why)) => {
                ctx.status("smpp", Level::Down, "connection_lost", &why);
                delay = cfg.initial_reconnect_delay();
            }
            Err(why) => {
                ctx.status("smpp", Level::Down, "connection_lost", &why);
            }
        }
        ctx.report(TransportReport::Log {
            level: crate::logs::WARNING,
            message: format!(
                "SMPP session ended; reconnecting in {:.1} s",
                delay.as_secs_f64()
            ),
        });
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

enum Done {
    Stopped,
    Lost(String),
}

async fn session(cfg: &SmppConfig, ctx: &mut TransportContext) -> Result<Done, String> {
    let stream = tokio::time::timeout(cfg.bind_timeout(), TcpStream::connect(cfg.address()))
        .await
        .map_err(|_| format!("Connecting to {} timed out", cfg.address()))?
        .map_err(|e| format!("Cannot connect to {}: {e}", cfg.address()))?;
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, CommandCodec::new());
    let mut seq: u32 = 1;
    let bind = BindTransceiver::builder()
        .system_id(octets(&cfg.system_id).ok_or("system_id is too long")?)
        .password(octets(cfg.password.as_deref().unwrap_or("")).ok_or("password is too long")?)
        .system_type(
            octets(cfg.system_type.as_deref().unwrap_or("")).ok_or("system_type is too long")?,
        )
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .build();
    framed
        .send(Command::new(CommandStatus::EsmeRok, seq, bind))
        .await
        .map_err(|e| format!("Sending bind failed: {e}"))?;
    let deadline = tokio::time::Instant::now() + cfg.bind_timeout();
    loop {
        let next = tokio::time::timeout_at(deadline, framed.next()).await;
        let cmd = match next {
            Err(_) => {
                ctx.status(
                    "smpp",
                    Level::Down,
                    "bind_timeout",
                    "No bind response in time",
                );
                return Err("bind timed out".into());
            }
            Ok(None) => return Err("the SMSC closed the connection during bind".into()),
            Ok(Some(Err(e))) => return Err(format!("Bad PDU during bind: {e}")),
            Ok(Some(Ok(c))) => c,
        };
        if let Some(Pdu::BindTransceiverResp(_)) = cmd.pdu() {
            if cmd.status() != CommandStatus::EsmeRok {
                return Err(format!("Bind refused: {}", status_name(cmd.status())));
            }
            break;
        }
        if cmd.sequence_number() == seq && cmd.status() != CommandStatus::EsmeRok {
            return Err(format!("Bind refused: {}", status_name(cmd.status())));
        }
    }
    ctx.status(
        "smpp",
        Level::Ok,
        "bound",
        &format!("Bound to {} as transceiver", cfg.address()),
    );

    let mut in_flight: HashMap<u32, usize> = HashMap::new(); // seq -> slot
    let mut messages: HashMap<usize, InFlight> = HashMap::new();
    let mut next_slot = 0usize;
    // Inbound parts by (from, to, reference, total): when they came, and text by sequence.
    type Parts = (Instant, HashMap<u8, String>);
    let mut partial: HashMap<(String, String, u16, u8), Parts> = HashMap::new();
    let mut reference: u16 = fastrand::u16(..);
    let mut enquire = tokio::time::interval(cfg.enquire_link_interval());
    enquire.tick().await;
    let mut last_heard = Instant::now();
    let mut throttled = false;
    // mt_tps: at most this many submit_sm a second.
    let mut tps_tokens = cfg.mt_tps().unwrap_or(0.0);
    let mut tps_at = Instant::now();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let reports = ctx.reports.clone();
    let report = |r: TransportReport| {
        let _ = reports.send(r);
    };
    let lost = |messages: &mut HashMap<usize, InFlight>, why: &str| {
        for (_, m) in messages.drain() {
            let _ = ctx.reports.send(TransportReport::Nack {
                message_id: m.message_id,
                reason: why.to_string(),
                retry: true,
            });
        }
    };

    loop {
        tokio::select! {
            cmd = framed.next() => {
                let cmd = match cmd {
                    None => { lost(&mut messages, "connection lost"); return Ok(Done::Lost("The SMSC closed the connection".into())) }
                    Some(Err(e)) => {
                        // A PDU we cannot read: say so and carry on (the codec resynchronises
                        // on the next length prefix).
                        report(TransportReport::Log { level: crate::logs::WARNING, message: format!("Unreadable PDU from the SMSC: {e}") });
                        let _ = framed.send(Command::new(CommandStatus::EsmeRinvcmdlen, 0, Pdu::GenericNack)).await;
                        continue;
                    }
                    Some(Ok(c)) => c,
                };
                last_heard = Instant::now();
                let status = cmd.status();
                let cseq = cmd.sequence_number();
                // An error response may come without a body (SMPP 3.4 allows it).
                if cmd.id() == rusmpp::CommandId::SubmitSmResp {
                        let Some(slot) = in_flight.remove(&cseq) else { continue };
                        let Some(m) = messages.get_mut(&slot) else { continue };
                        m.parts_left = m.parts_left.saturating_sub(1);
                        let smsc_id = match cmd.pdu() {
                            Some(Pdu::SubmitSmResp(resp)) => String::from_utf8_lossy(resp.message_id().as_ref()).trim_end_matches('\0').to_string(),
                            _ => String::new(),
                        };
                        if status == CommandStatus::EsmeRok && throttled {
                            throttled = false;
                            ctx.status("smpp", Level::Ok, "throttled_end", "The SMSC accepts messages again");
                        }
                        if status == CommandStatus::EsmeRok {
                            m.smsc_ids.push(smsc_id);
                        } else {
                            let retry = matches!(status, CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful);
                            if retry && !throttled {
                                throttled = true;
                                ctx.status("smpp", Level::Degraded, "throttled", &format!("The SMSC answered {}", status_name(status)));
                            }
                            m.failed.get_or_insert((status_name(status), retry));
                        }
                        if m.parts_left == 0 && let Some(m) = messages.remove(&slot) {
                            tokio::task::spawn_local(finish(Handle::of(ctx), m));
                        }
                        continue;
                }
                match cmd.pdu() {
                    Some(pdu @ (Pdu::DeliverSm(_) | Pdu::DataSm(_))) => {
                        // deliver_sm and data_sm carry the same things; data_sm's text is in
                        // message_payload.
                        let (ack, esm, dc, mut bytes, tlvs, source, dest): Incoming<'_> = match pdu {
                            Pdu::DeliverSm(d) => (
                                Command::new(CommandStatus::EsmeRok, cseq, DeliverSmResp::builder().build()),
                                d.esm_class.into(), d.data_coding.into(), d.short_message().as_ref().to_vec(), d.tlvs(),
                                d.source_addr.as_ref(), d.destination_addr.as_ref(),
                            ),
                            Pdu::DataSm(d) => (
                                Command::new(CommandStatus::EsmeRok, cseq, rusmpp::pdus::DataSmResp::builder().build()),
                                d.esm_class.into(), d.data_coding.into(), Vec::new(), d.tlvs(),
                                d.source_addr.as_ref(), d.destination_addr.as_ref(),
                            ),
                            _ => continue,
                        };
                        if let Err(e) = framed.send(ack).await {
                            lost(&mut messages, "connection lost");
                            return Ok(Done::Lost(format!("Writing deliver_sm_resp failed: {e}")));
                        }
                        let mut receipted = None;
                        let mut state = None;
                        let (mut sar_ref, mut sar_total, mut sar_seq) = (None, None, None);
                        let (mut ussd_op, mut session_info) = (None, None);
                        for tlv in tlvs {
                            match tlv.value() {
                                Some(TlvValue::UssdServiceOp(op)) => ussd_op = Some(u8::from(*op)),
                                Some(TlvValue::ItsSessionInfo(i)) => session_info = Some((i.session_number, i.sequence_number)),
                                Some(TlvValue::SarMsgRefNum(r)) => sar_ref = Some(*r),
                                Some(TlvValue::SarTotalSegments(t)) => sar_total = Some(*t),
                                Some(TlvValue::SarSegmentSeqnum(n)) => sar_seq = Some(*n),
                                Some(TlvValue::ReceiptedMessageId(id)) => receipted = Some(String::from_utf8_lossy(id.as_ref()).trim_end_matches('\0').to_string()),
                                Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
                                Some(TlvValue::MessagePayload(p)) if bytes.is_empty() => bytes = p.value.as_ref().to_vec(),
                                _ => {}
                            }
                        }
                        let sar = match (sar_ref, sar_total, sar_seq) {
                            (Some(r), Some(t), Some(n)) => Some((r, t, n)),
                            _ => None,
                        };
                        if esm & 0x3C == 0x04 || receipted.is_some() {
                            let text = split::decode(0, &bytes, 0, split::Coding::Gsm7 { packed: false });
                            let parsed = dlr::parse(&text);
                            let id = receipted.or_else(|| parsed.as_ref().map(|r| r.id.clone()));
                            let status = match (state, &parsed) {
                                (Some(s), _) => dlr::status_of_state(s),
                                (None, Some(r)) => dlr::status_of_stat(&r.stat),
                                (None, None) => crate::message::DeliveryStatus::Pending,
                            };
                            match id {
                                Some(id) => { tokio::task::spawn_local(receipt(Handle::of(ctx), id, status)); }
                                None => report(TransportReport::Log { level: crate::logs::WARNING, message: "A delivery receipt without an id".into() }),
                            }
                        } else {
                            let (concat, body, udh_len) = if esm & 0x40 != 0 {
                                let (info, len, rest) = split::strip_udh(&bytes);
                                (info, rest.to_vec(), len)
                            } else {
                                (sar, bytes.clone(), 0)
                            };
                            let from = String::from_utf8_lossy(source).trim_end_matches('\0').to_string();
                            let to = String::from_utf8_lossy(dest).trim_end_matches('\0').to_string();
                            let text = match concat {
                                Some((r, total, seqn)) if total > 1 => {
                                    let key = (from.clone(), to.clone(), r, total);
                                    let text = split::decode(dc, &body, udh_len, cfg.default_coding());
                                    let entry = partial.entry(key.clone()).or_insert_with(|| (Instant::now(), HashMap::new()));
                                    entry.1.insert(seqn, text);
                                    if entry.1.len() < total as usize {
                                        continue;
                                    }
                                    let parts = partial.remove(&key).map(|(_, p)| p).unwrap_or_default();
                                    let mut parts: Vec<(u8, String)> = parts.into_iter().collect();
                                    parts.sort();
                                    parts.into_iter().map(|(_, t)| t).collect::<String>()
                                }
                                _ => split::decode(dc, &body, udh_len, cfg.default_coding()),
                            };
                            let mut msg = Message::new(Some(to), Some(from), Some(text));
                            msg.transport_type = Some("sms".into());
                            if ussd_op.is_some() || session_info.is_some() {
                                ussd_inbound(&mut msg, ussd_op, session_info);
                            }
                            report(TransportReport::Inbound(Box::new(msg)));
                        }
                    }
                    Some(Pdu::EnquireLink) => {
                        let _ = framed.send(Command::new(CommandStatus::EsmeRok, cseq, Pdu::EnquireLinkResp)).await;
                    }
                    Some(Pdu::Unbind) => {
                        let _ = framed.send(Command::new(CommandStatus::EsmeRok, cseq, Pdu::UnbindResp)).await;
                        lost(&mut messages, "the SMSC unbound");
                        return Ok(Done::Lost("The SMSC unbound".into()));
                    }
                    Some(Pdu::EnquireLinkResp) | Some(Pdu::UnbindResp) | Some(Pdu::GenericNack) => {}
                    _ => {
                        let _ = framed.send(Command::new(CommandStatus::EsmeRinvcmdid, cseq, Pdu::GenericNack)).await;
                    }
                }
            }
            command = ctx.commands.recv() => {
                let Some(TransportCommand::Send(msg)) = command else {
                    seq = seq.wrapping_add(1);
                    let _ = framed.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind)).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), framed.next()).await;
                    return Ok(Done::Stopped);
                };
                let text = msg.content.clone().unwrap_or_default();
                let coding = split::choose(&text, cfg.configured_coding());
                reference = reference.wrapping_add(1);
                let parts = split::split(&text, coding, cfg.concat(), reference);
                let slot = next_slot;
                next_slot += 1;
                messages.insert(slot, InFlight {
                    message_id: msg.message_id.clone(),
                    parts_left: parts.len(),
                    smsc_ids: vec![],
                    failed: None,
                    sent_at: Instant::now(),
                });
                for part in parts {
                    if let Some(tps) = cfg.mt_tps() {
                        tps_tokens = (tps_tokens + tps_at.elapsed().as_secs_f64() * tps).min(tps);
                        tps_at = Instant::now();
                        if tps_tokens < 1.0 {
                            let wait = Duration::from_secs_f64((1.0 - tps_tokens) / tps);
                            tokio::time::sleep(wait).await;
                            tps_tokens = 1.0;
                            tps_at = Instant::now();
                        }
                        tps_tokens -= 1.0;
                    }
                    seq = if seq >= 0x7FFF_FFFF { 2 } else { seq + 1 };
                    let pdu = match submit_sm(cfg, &msg, coding, part) {
                        Ok(p) => p,
                        Err(why) => {
                            if let Some(m) = messages.remove(&slot) {
                                report(TransportReport::Nack { message_id: m.message_id, reason: why, retry: false });
                            }
                            break;
                        }
                    };
                    in_flight.insert(seq, slot);
                    if let Err(e) = framed.send(Command::new(CommandStatus::EsmeRok, seq, pdu)).await {
                        lost(&mut messages, "connection lost");
                        return Ok(Done::Lost(format!("Writing submit_sm failed: {e}")));
                    }
                }
            }
            _ = enquire.tick() => {
                if last_heard.elapsed() > cfg.enquire_link_interval() * 3 {
                    lost(&mut messages, "link dead");
                    return Ok(Done::Lost("No answer to enquire_link: the link is dead".into()));
                }
                seq = seq.wrapping_add(1);
                if let Err(e) = framed.send(Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink)).await {
                    lost(&mut messages, "connection lost");
                    return Ok(Done::Lost(format!("Writing enquire_link failed: {e}")));
                }
            }
            _ = sweep.tick() => {
                // Parts of a long inbound message that never completed: a counted, logged refusal.
                let stale: Vec<_> = partial.iter().filter(|(_, (at, _))| at.elapsed() > cfg.reassembly_timeout()).map(|(k, _)| k.clone()).collect();
                for key in stale {
                    if let Some((_, parts)) = partial.remove(&key) {
                        report(TransportReport::Log {
                            level: crate::logs::ERROR,
                            message: format!("Dropping an incomplete long message from {} ({} of {} parts arrived)", key.0, parts.len(), key.3),
                        });
                    }
                }
                // A response that never comes: the message is retried, not lost.
                let timeout = cfg.response_timeout();
                let expired: Vec<usize> = messages.iter().filter(|(_, m)| m.sent_at.elapsed() > timeout).map(|(k, _)| *k).collect();
                for slot in expired {
                    if let Some(m) = messages.remove(&slot) {
                        in_flight.retain(|_, s| *s != slot);
                        report(TransportReport::Nack { message_id: m.message_id, reason: "no submit_sm_resp in time".into(), retry: true });
                    }
                }
            }
        }
    }
}

/// Builds one submit_sm.
fn submit_sm(
    cfg: &SmppConfig,
    msg: &Message,
    coding: split::Coding,
    part: split::Part,
) -> Result<SubmitSm, String> {
    let to = msg.to_addr.clone().unwrap_or_default();
    let from = msg
        .from_addr
        .clone()
        .or_else(|| cfg.source_addr.clone())
        .unwrap_or_default();
    let mut esm: u8 = 0;
    if part.udhi {
        esm |= 0x40;
    }
    let mut builder = SubmitSm::builder()
        .source_addr_ton(Ton::from(cfg.source_addr_ton.unwrap_or(0)))
        .source_addr_npi(Npi::from(cfg.source_addr_npi.unwrap_or(0)))
        .source_addr(octets(&from).ok_or_else(|| format!("source address {from:?} is too long"))?)
        .dest_addr_ton(Ton::from(cfg.dest_addr_ton.unwrap_or(0)))
        .dest_addr_npi(Npi::from(cfg.dest_addr_npi.unwrap_or(0)))
        .destination_addr(
            octets(&to).ok_or_else(|| format!("destination address {to:?} is too long"))?,
        )
        .esm_class(EsmClass::from(esm))
        .registered_delivery(RegisteredDelivery::from(if cfg.registered_delivery() {
            1
        } else {
            0
        }))
        .data_coding(DataCoding::from(coding.data_coding()));
    if part.payload {
        builder = builder.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
            MessagePayload::new(rusmpp::types::AnyOctetString::from_slice(&part.bytes)),
        ));
    } else {
        builder = builder.short_message(
            OctetString::from_slice(&part.bytes).map_err(|e| format!("short message: {e}"))?,
        );
    }
    if let Some(session) = msg
        .transport_metadata
        .get("session_info")
        .and_then(serde_json::Value::as_u64)
    {
        // A USSD reply: continue the dialogue (USSR request) or end it (PSSR response),
        // with the session it belongs to and, when ending, the end-of-session bit.
        let close = msg.session_event == Some(crate::message::SessionEvent::Close);
        let op = if close { 17u8 } else { 2u8 };
        let number = (session >> 8) as u8;
        let sequence = (session as u8 & 0xFE) | u8::from(close);
        builder = builder
            .push_tlv(MessageSubmissionRequestTlvValue::UssdServiceOp(
                rusmpp::values::UssdServiceOp::from(op),
            ))
            .push_tlv(MessageSubmissionRequestTlvValue::ItsSessionInfo(
                rusmpp::values::ItsSessionInfo::new(number, sequence),
            ));
    }
    if let Some((r, total, s)) = part.sar {
        builder = builder
            .push_tlv(MessageSubmissionRequestTlvValue::SarMsgRefNum(r))
            .push_tlv(MessageSubmissionRequestTlvValue::SarTotalSegments(total))
            .push_tlv(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(s));
    }
    Ok(builder.build())
}

/// What the spawned helpers need of the transport context.
struct Handle {
    store: std::sync::Arc<dyn crate::store::Store>,
    channel_id: String,
    reports: tokio::sync::mpsc::UnboundedSender<TransportReport>,
}

impl Handle {
    fn of(ctx: &TransportContext) -> Handle {
        Handle {
            store: ctx.store.clone(),
            channel_id: ctx.channel_id.clone(),
            reports: ctx.reports.clone(),
        }
    }
}

/// All parts answered: one ack (first part's SMSC id), or one nack with the first failure.
async fn finish(ctx: Handle, m: InFlight) {
    match m.failed {
        Some((reason, retry)) => {
            let _ = ctx.reports.send(TransportReport::Nack {
                message_id: m.message_id,
                reason,
                retry,
            });
        }
        None => {
            for id in &m.smsc_ids {
                let _ = ctx
                    .store
                    .set_state(
                        &ctx.channel_id,
                        &format!("smsc:{}", id.to_ascii_lowercase()),
                        &m.message_id,
                        RECEIPT_WINDOW,
                    )
                    .await;
            }
            let _ = ctx.reports.send(TransportReport::Ack {
                sent_message_id: m.smsc_ids.first().cloned().unwrap_or_default(),
                message_id: m.message_id,
            });
        }
    }
}

/// A receipt for an SMSC id: the message it belongs to gets a delivery report. A receipt
/// that comes before the submit_sm_resp finds nothing yet and is retried briefly.
async fn receipt(ctx: Handle, smsc_id: String, status: crate::message::DeliveryStatus) {
    for attempt in 0..20 {
        for form in dlr::id_forms(&smsc_id) {
            if let Ok(Some(mid)) = ctx
                .store
                .get_state(&ctx.channel_id, &format!("smsc:{form}"))
                .await
            {
                let _ = ctx.reports.send(TransportReport::DeliveryReport {
                    message_id: mid,
                    status,
                });
                return;
            }
        }
        if attempt < 19 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let _ = ctx.reports.send(TransportReport::Log {
        level: crate::logs::WARNING,
        message: format!("Delivery receipt for unknown SMSC id {smsc_id}"),
    });
}

/// USSD over SMPP: `ussd_service_op` and `its_session_info` as a session event, kept in
/// `transport_metadata` so a reply continues the same session. PSSR indication (1) opens a
/// session, USSR confirm (18) continues it; the end-of-session bit of `its_session_info`
/// (or op 129, a user release) closes it.
fn ussd_inbound(msg: &mut Message, op: Option<u8>, session: Option<(u8, u8)>) {
    use crate::message::SessionEvent;
    let ended = session.is_some_and(|(_, seq)| seq & 0x01 == 1) || op == Some(129);
    msg.session_event = Some(match op {
        _ if ended => SessionEvent::Close,
        Some(1) => SessionEvent::New,
        _ => SessionEvent::Resume,
    });
    msg.transport_type = Some("ussd".into());
    if let Some(op) = op {
        msg.transport_metadata
            .insert("ussd_service_op".into(), op.into());
    }
    if let Some((number, seq)) = session {
        let value = (u64::from(number) << 8) | u64::from(seq);
        msg.transport_metadata
            .insert("session_info".into(), value.into());
    }
}
