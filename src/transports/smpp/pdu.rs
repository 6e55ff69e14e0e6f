//! SMPP PDUs as hornbill reads and builds them, pure: no I/O, no tokio, no store. Reading a
//! deliver_sm or data_sm (`inspect`: receipt or message, UDH or SAR concatenation,
//! message_payload, USSD TLVs), joining a long message's parts, building bind and submit_sm
//! PDUs, the USSD session mapping both ways and `ESME_R...` status names. `session` does
//! the I/O around them; the fuzz target drives them through `codec`.

use super::config::{Role, SmppConfig};
use super::{dlr, split};
use crate::message::Message;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rusmpp::pdus::{BindReceiver, BindTransceiver, BindTransmitter, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, MessagePayload, Npi, RegisteredDelivery, Ton,
};
use rusmpp::{CommandId, CommandStatus, Pdu};
use std::str::FromStr;

/// SMPP's `ESME_R...` name of a command status.
pub fn status_name(status: CommandStatus) -> String {
    let debug = format!("{status:?}");
    match debug.strip_prefix("Esme") {
        Some(rest) => format!("ESME_{}", rest.to_ascii_uppercase()),
        None => format!("0x{:08X}", u32::from(status)),
    }
}

/// A PDU as one readable line for the channel log (`log_protocol`): command, sequence,
/// status and its key fields, the text of a short message decoded (with `default` for
/// data_coding 0). A bind's password is never shown.
pub fn describe(cmd: &rusmpp::Command, default: split::Coding) -> String {
    let name = {
        let debug = format!("{:?}", cmd.id());
        let mut out = String::with_capacity(debug.len() + 4);
        for (i, c) in debug.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    };
    let mut line = format!("{name} seq={}", cmd.sequence_number());
    if cmd.status() != CommandStatus::EsmeRok || name.ends_with("_resp") || name == "generic_nack" {
        line.push_str(&format!(" status={}", status_name(cmd.status())));
    }
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches('\0')
            .to_string()
    };
    let sm = |src: &[u8], dst: &[u8], esm: u8, dc: u8, body: &[u8], line: &mut String| {
        let (body, udh) = if esm & 0x40 != 0 {
            let (info, len, rest) = split::strip_udh(body);
            if let Some((r, total, n)) = info {
                line.push_str(&format!(" udh=ref:{r},part:{n}/{total}"));
            }
            (rest, len)
        } else {
            (body, 0)
        };
        let _ = udh;
        line.push_str(&format!(
            " src={} dst={} esm=0x{esm:02x} dcs=0x{dc:02x} text={:?}",
            text(src),
            text(dst),
            split::decode(dc, body, 0, default)
        ));
    };
    match cmd.pdu() {
        Some(Pdu::BindTransceiver(b)) => {
            line.push_str(&format!(" system_id={}", text(b.system_id.as_ref())))
        }
        Some(Pdu::BindTransmitter(b)) => {
            line.push_str(&format!(" system_id={}", text(b.system_id.as_ref())))
        }
        Some(Pdu::BindReceiver(b)) => {
            line.push_str(&format!(" system_id={}", text(b.system_id.as_ref())))
        }
        Some(Pdu::SubmitSm(d)) => {
            sm(
                d.source_addr.as_ref(),
                d.destination_addr.as_ref(),
                u8::from(d.esm_class),
                u8::from(d.data_coding),
                d.short_message().as_ref(),
                &mut line,
            );
            line.push_str(&format!(
                " registered_delivery={}",
                u8::from(d.registered_delivery)
            ));
        }
        Some(pdu @ (Pdu::DeliverSm(_) | Pdu::DataSm(_))) => {
            if let Pdu::DeliverSm(d) = pdu {
                sm(
                    d.source_addr.as_ref(),
                    d.destination_addr.as_ref(),
                    u8::from(d.esm_class),
                    u8::from(d.data_coding),
                    d.short_message().as_ref(),
                    &mut line,
                );
            }
            if let Some(Incoming::Receipt { smsc_id, status }) = inspect(pdu) {
                line.push_str(&format!(
                    " receipt_for={} state={status:?}",
                    smsc_id.unwrap_or_default()
                ));
            }
        }
        Some(Pdu::SubmitSmResp(_)) => {
            line.push_str(&format!(" message_id={}", submit_sm_resp_id(cmd.pdu())))
        }
        _ => {}
    }
    line
}

/// A C-octet string field, `None` when `s` is too long for it (or holds a NUL).
pub fn octets<const MIN: usize, const MAX: usize>(s: &str) -> Option<COctetString<MIN, MAX>> {
    COctetString::from_str(s).ok()
}

/// The bind PDU for `role` with the configured credentials.
pub fn bind(cfg: &SmppConfig, role: Role) -> Result<Pdu, String> {
    let system_id = octets(&cfg.system_id).ok_or("system_id is too long")?;
    let password = octets(cfg.password.as_deref().unwrap_or("")).ok_or("password is too long")?;
    let system_type =
        octets(cfg.system_type.as_deref().unwrap_or("")).ok_or("system_type is too long")?;
    let range =
        octets(cfg.address_range.as_deref().unwrap_or("")).ok_or("address_range is too long")?;
    macro_rules! bind {
        ($pdu:ident) => {
            $pdu::builder()
                .system_id(system_id)
                .password(password)
                .system_type(system_type)
                .interface_version(InterfaceVersion::Smpp3_4)
                .addr_ton(Ton::Unknown)
                .addr_npi(Npi::Unknown)
                .address_range(range)
                .build()
                .into()
        };
    }
    Ok(match role {
        Role::Transceiver => bind!(BindTransceiver),
        Role::Transmitter => bind!(BindTransmitter),
        Role::Receiver => bind!(BindReceiver),
    })
}

/// The response a bind as `role` waits for.
pub fn bind_resp_id(role: Role) -> CommandId {
    match role {
        Role::Transceiver => CommandId::BindTransceiverResp,
        Role::Transmitter => CommandId::BindTransmitterResp,
        Role::Receiver => CommandId::BindReceiverResp,
    }
}

/// The SMSC's id of a submitted part from its submit_sm_resp ("" when the response has no
/// body, as an error response may not).
pub fn submit_sm_resp_id(pdu: Option<&Pdu>) -> String {
    match pdu {
        Some(Pdu::SubmitSmResp(resp)) => String::from_utf8_lossy(resp.message_id().as_ref())
            .trim_end_matches('\0')
            .to_string(),
        _ => String::new(),
    }
}

/// One inbound part as the store keeps it until the rest arrive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredPart {
    /// The part's data_coding.
    pub dc: u8,
    /// The length of its UDH (already split off the body).
    pub udh: usize,
    /// Its body, base64.
    pub body: String,
}

impl StoredPart {
    pub fn new(dc: u8, udh: usize, body: &[u8]) -> StoredPart {
        StoredPart {
            dc,
            udh,
            body: BASE64.encode(body),
        }
    }
}

/// What a deliver_sm or data_sm carries, read from the PDU alone (no I/O, no state).
#[derive(Debug)]
pub enum Incoming {
    /// A delivery receipt: the SMSC's id of the message (TLV `receipted_message_id`, else
    /// the receipt text's `id:`), and its status (TLV `message_state`, else `stat:`).
    Receipt {
        smsc_id: Option<String>,
        status: crate::message::DeliveryStatus,
    },
    /// A message or one part of one: the body with any UDH split off (`udh_len` is its
    /// length) and the concatenation info from the UDH or SAR TLVs.
    Message {
        from: String,
        to: String,
        data_coding: u8,
        body: Vec<u8>,
        udh_len: usize,
        concat: Option<split::ConcatInfo>,
        ussd_op: Option<u8>,
        session_info: Option<(u8, u8)>,
    },
}

/// Reads a deliver_sm or data_sm (`None` for any other PDU).
pub fn inspect(pdu: &Pdu) -> Option<Incoming> {
    let (esm, dc, mut bytes, tlvs, source, dest) = match pdu {
        Pdu::DeliverSm(d) => (
            u8::from(d.esm_class),
            u8::from(d.data_coding),
            d.short_message().as_ref().to_vec(),
            d.tlvs(),
            AsRef::<[u8]>::as_ref(&d.source_addr),
            AsRef::<[u8]>::as_ref(&d.destination_addr),
        ),
        // data_sm's text is in message_payload.
        Pdu::DataSm(d) => (
            u8::from(d.esm_class),
            u8::from(d.data_coding),
            Vec::new(),
            d.tlvs(),
            AsRef::<[u8]>::as_ref(&d.source_addr),
            AsRef::<[u8]>::as_ref(&d.destination_addr),
        ),
        _ => return None,
    };
    let mut receipted = None;
    let mut state = None;
    let (mut sar_ref, mut sar_total, mut sar_seq) = (None, None, None);
    let (mut ussd_op, mut session_info) = (None, None);
    for tlv in tlvs {
        match tlv.value() {
            Some(TlvValue::UssdServiceOp(op)) => ussd_op = Some(u8::from(*op)),
            Some(TlvValue::ItsSessionInfo(i)) => {
                session_info = Some((i.session_number, i.sequence_number))
            }
            Some(TlvValue::SarMsgRefNum(r)) => sar_ref = Some(*r),
            Some(TlvValue::SarTotalSegments(t)) => sar_total = Some(*t),
            Some(TlvValue::SarSegmentSeqnum(n)) => sar_seq = Some(*n),
            Some(TlvValue::ReceiptedMessageId(id)) => {
                receipted = Some(
                    String::from_utf8_lossy(id.as_ref())
                        .trim_end_matches('\0')
                        .to_string(),
                )
            }
            Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
            Some(TlvValue::MessagePayload(p)) if bytes.is_empty() => {
                bytes = p.value.as_ref().to_vec()
            }
            _ => {}
        }
    }
    if esm & 0x3C == 0x04 || receipted.is_some() {
        let text = split::decode(0, &bytes, 0, split::Coding::Gsm7 { packed: false });
        let parsed = dlr::parse(&text);
        let status = match (state, &parsed) {
            (Some(s), _) => dlr::status_of_state(s),
            (None, Some(r)) => dlr::status_of_stat(&r.stat),
            (None, None) => crate::message::DeliveryStatus::Pending,
        };
        return Some(Incoming::Receipt {
            smsc_id: receipted.or_else(|| parsed.map(|r| r.id)),
            status,
        });
    }
    let sar = match (sar_ref, sar_total, sar_seq) {
        (Some(r), Some(t), Some(n)) => Some((r, t, n)),
        _ => None,
    };
    let (concat, body, udh_len) = if esm & 0x40 != 0 {
        let (info, len, rest) = split::strip_udh(&bytes);
        (info, rest.to_vec(), len)
    } else {
        (sar, bytes, 0)
    };
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .trim_end_matches('\0')
            .to_string()
    };
    Some(Incoming::Message {
        from: text(source),
        to: text(dest),
        data_coding: dc,
        body,
        udh_len,
        concat,
        ussd_op,
        session_info,
    })
}

/// The text of a long message from its parts: decoded from the joined bytes (so a GSM
/// escape or a UTF-16 surrogate pair split across parts comes out whole), or part by part
/// for packed GSM, whose septets are aligned per part.
pub fn join_parts(parts: &[StoredPart], default: split::Coding) -> String {
    let bodies: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| BASE64.decode(&p.body).unwrap_or_default())
        .collect();
    let packed = matches!(default, split::Coding::Gsm7 { packed: true });
    let same = parts.windows(2).all(|w| w[0].dc == w[1].dc);
    match parts.first() {
        Some(first) if same && !packed => split::decode(first.dc, &bodies.concat(), 0, default),
        _ => parts
            .iter()
            .zip(&bodies)
            .map(|(p, b)| split::decode(p.dc, b, p.udh, default))
            .collect(),
    }
}

/// Builds one submit_sm.
pub fn submit_sm(
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

/// USSD over SMPP: `ussd_service_op` and `its_session_info` as a session event, kept in
/// `transport_metadata` so a reply continues the same session. PSSR indication (1) opens a
/// session, USSR confirm (18) continues it; the end-of-session bit of `its_session_info`
/// (or op 129, a user release) closes it.
pub fn ussd_inbound(msg: &mut Message, op: Option<u8>, session: Option<(u8, u8)>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{DeliveryStatus, SessionEvent};
    use crate::transports::smpp::codec::Codec;
    use bytes::BytesMut;
    use serde_json::json;
    use tokio_util::codec::{Decoder, Encoder};

    const DELIVER_SM: u32 = 0x0000_0005;
    const DATA_SM: u32 = 0x0000_0103;

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn tlvs(out: &mut Vec<u8>, tlvs: &[(u16, &[u8])]) {
        for (tag, value) in tlvs {
            out.extend_from_slice(&tag.to_be_bytes());
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
            out.extend_from_slice(value);
        }
    }

    /// Hand-written bytes of one PDU, read through hornbill's framing.
    fn decoded(id: u32, body: &[u8]) -> Pdu {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
        bytes.extend_from_slice(body);
        let mut buf = BytesMut::from(&bytes[..]);
        let cmd = Codec::new()
            .decode(&mut buf)
            .expect("framed")
            .expect("whole")
            .expect("readable");
        cmd.pdu().cloned().expect("a body")
    }

    /// A deliver_sm from 27820001111 to 1234.
    fn deliver_sm(esm: u8, dc: u8, short: &[u8], extra: &[(u16, &[u8])]) -> Pdu {
        let mut b = Vec::new();
        cstr(&mut b, ""); // service_type
        b.extend_from_slice(&[1, 1]);
        cstr(&mut b, "27820001111");
        b.extend_from_slice(&[0, 0]);
        cstr(&mut b, "1234");
        b.extend_from_slice(&[esm, 0, 0]); // esm_class, protocol_id, priority_flag
        cstr(&mut b, ""); // schedule_delivery_time
        cstr(&mut b, ""); // validity_period
        b.extend_from_slice(&[0, 0, dc, 0, short.len() as u8]);
        b.extend_from_slice(short);
        tlvs(&mut b, extra);
        decoded(DELIVER_SM, &b)
    }

    fn message(
        pdu: &Pdu,
    ) -> (
        String,
        String,
        u8,
        Vec<u8>,
        usize,
        Option<split::ConcatInfo>,
    ) {
        match inspect(pdu) {
            Some(Incoming::Message {
                from,
                to,
                data_coding,
                body,
                udh_len,
                concat,
                ..
            }) => (from, to, data_coding, body, udh_len, concat),
            other => panic!("not a message: {other:?}"),
        }
    }

    fn cfg(extra: serde_json::Value) -> SmppConfig {
        let mut config = json!({"twisted_endpoint": "tcp:127.0.0.1:2775", "system_id": "hb",
                                "password": "pw", "system_type": "vma"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        SmppConfig::parse(&config).unwrap()
    }

    fn stored(dc: u8, udh: usize, body: &[u8]) -> StoredPart {
        StoredPart::new(dc, udh, body)
    }

    fn short_message(pdu: &SubmitSm) -> Vec<u8> {
        pdu.short_message().as_ref().to_vec()
    }

    fn submit_tlvs(pdu: &SubmitSm) -> Vec<TlvValue> {
        pdu.tlvs()
            .iter()
            .filter_map(|t| t.value().cloned())
            .collect()
    }

    #[test]
    fn inspect_reads_a_single_deliver_sm() {
        let pdu = deliver_sm(0, 0, b"Hello", &[]);
        let (from, to, dc, body, udh_len, concat) = message(&pdu);
        assert_eq!((from.as_str(), to.as_str()), ("27820001111", "1234"));
        assert_eq!(
            (dc, body.as_slice(), udh_len, concat),
            (0, &b"Hello"[..], 0, None)
        );
    }

    #[test]
    fn inspect_splits_off_an_8_bit_udh() {
        let short = [5, 0, 3, 0x42, 2, 1, b'a', b'b'];
        let (_, _, _, body, udh_len, concat) = message(&deliver_sm(0x40, 0, &short, &[]));
        assert_eq!((body.as_slice(), udh_len), (&b"ab"[..], 6));
        assert_eq!(concat, Some((0x42, 2, 1)));
    }

    #[test]
    fn inspect_splits_off_a_16_bit_udh() {
        let short = [6, 8, 4, 0x12, 0x34, 3, 2, b'z'];
        let (_, _, _, body, udh_len, concat) = message(&deliver_sm(0x40, 0, &short, &[]));
        assert_eq!((body.as_slice(), udh_len), (&b"z"[..], 7));
        assert_eq!(concat, Some((0x1234, 3, 2)));
    }

    #[test]
    fn inspect_reads_sar_parts() {
        let pdu = deliver_sm(
            0,
            0,
            b"part",
            &[(0x020C, &[0x01, 0x02]), (0x020E, &[2]), (0x020F, &[2])],
        );
        let (_, _, _, body, udh_len, concat) = message(&pdu);
        assert_eq!((body.as_slice(), udh_len), (&b"part"[..], 0));
        assert_eq!(concat, Some((0x0102, 2, 2)));
    }

    #[test]
    fn inspect_takes_message_payload_when_short_message_is_empty() {
        let pdu = deliver_sm(0, 8, b"", &[(0x0424, &[0, b'h', 0, b'i'])]);
        let (_, _, dc, body, _, _) = message(&pdu);
        assert_eq!((dc, body.as_slice()), (8, &[0, b'h', 0, b'i'][..]));
    }

    #[test]
    fn inspect_reads_a_data_sm() {
        let mut b = Vec::new();
        cstr(&mut b, "");
        b.extend_from_slice(&[1, 1]);
        cstr(&mut b, "27820002222");
        b.extend_from_slice(&[0, 0]);
        cstr(&mut b, "5678");
        b.extend_from_slice(&[0, 0, 3]); // esm_class, registered_delivery, data_coding
        tlvs(&mut b, &[(0x0424, "caf\u{e9}".as_bytes())]);
        let (from, to, dc, body, _, concat) = message(&decoded(DATA_SM, &b));
        assert_eq!((from.as_str(), to.as_str(), dc), ("27820002222", "5678", 3));
        assert_eq!((body.as_slice(), concat), ("caf\u{e9}".as_bytes(), None));
    }

    #[test]
    fn inspect_reads_a_receipt_from_its_text() {
        let text = b"id:abc123 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:hi";
        match inspect(&deliver_sm(0x04, 0, text, &[])) {
            Some(Incoming::Receipt { smsc_id, status }) => {
                assert_eq!(smsc_id.as_deref(), Some("abc123"));
                assert_eq!(status, DeliveryStatus::Delivered);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inspect_prefers_a_receipts_tlvs_to_its_text() {
        // receipted_message_id and message_state 5 (UNDELIVERABLE) over the text's DELIVRD.
        let pdu = deliver_sm(
            0x04,
            0,
            b"id:other stat:DELIVRD",
            &[(0x001E, b"f00d\0"), (0x0427, &[5])],
        );
        match inspect(&pdu) {
            Some(Incoming::Receipt { smsc_id, status }) => {
                assert_eq!(smsc_id.as_deref(), Some("f00d"));
                assert_eq!(status, DeliveryStatus::Failed);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inspect_ignores_other_pdus() {
        assert!(inspect(&Pdu::EnquireLink).is_none());
    }

    #[test]
    fn inspect_reads_the_ussd_tlvs() {
        let pdu = deliver_sm(0, 0, b"*120#", &[(0x0501, &[1]), (0x1383, &[7, 4])]);
        match inspect(&pdu) {
            Some(Incoming::Message {
                ussd_op,
                session_info,
                ..
            }) => assert_eq!((ussd_op, session_info), (Some(1), Some((7, 4)))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ussd_inbound_maps_ops_to_session_events() {
        let event = |op, session| {
            let mut msg = Message::new(None, None, None);
            ussd_inbound(&mut msg, op, session);
            assert_eq!(msg.transport_type.as_deref(), Some("ussd"));
            (msg.session_event, msg.transport_metadata)
        };
        let (new, meta) = event(Some(1), Some((7, 4)));
        assert_eq!(new, Some(SessionEvent::New));
        assert_eq!(meta["ussd_service_op"], json!(1));
        assert_eq!(meta["session_info"], json!((7 << 8) | 4));
        assert_eq!(event(Some(18), Some((7, 6))).0, Some(SessionEvent::Resume));
        // The end-of-session bit, or a user release, closes it.
        assert_eq!(event(Some(18), Some((7, 7))).0, Some(SessionEvent::Close));
        assert_eq!(event(Some(129), None).0, Some(SessionEvent::Close));
    }

    #[test]
    fn submit_sm_continues_or_ends_a_ussd_session() {
        let cfg = cfg(json!({}));
        let part = split::split(
            "Menu",
            split::Coding::Gsm7 { packed: false },
            split::Concat::Udh8,
            1,
        )
        .remove(0);
        let mut reply = Message::new(Some("27820001111".into()), None, Some("Menu".into()));
        reply
            .transport_metadata
            .insert("session_info".into(), json!((7 << 8) | 4));
        let pdu = submit_sm(
            &cfg,
            &reply,
            split::Coding::Gsm7 { packed: false },
            part.clone(),
        )
        .unwrap();
        let found = |pdu: &SubmitSm| {
            let (mut op, mut info) = (None, None);
            for t in submit_tlvs(pdu) {
                match t {
                    TlvValue::UssdServiceOp(o) => op = Some(u8::from(o)),
                    TlvValue::ItsSessionInfo(i) => {
                        info = Some((i.session_number, i.sequence_number))
                    }
                    _ => {}
                }
            }
            (op, info)
        };
        assert_eq!(found(&pdu), (Some(2), Some((7, 4))));
        reply.session_event = Some(SessionEvent::Close);
        let pdu = submit_sm(&cfg, &reply, split::Coding::Gsm7 { packed: false }, part).unwrap();
        assert_eq!(found(&pdu), (Some(17), Some((7, 5))));
    }

    #[test]
    fn submit_sm_sets_data_coding_esm_class_and_registered_delivery() {
        let msg = Message::new(
            Some("27820001111".into()),
            Some("1234".into()),
            Some("hi".into()),
        );
        let parts = split::split("hi", split::Coding::Ucs2, split::Concat::Udh8, 1);
        let pdu = submit_sm(&cfg(json!({})), &msg, split::Coding::Ucs2, parts[0].clone()).unwrap();
        assert_eq!(u8::from(pdu.data_coding), 8);
        assert_eq!(u8::from(pdu.esm_class), 0);
        assert_eq!(u8::from(pdu.registered_delivery), 1);
        assert_eq!(short_message(&pdu), vec![0, b'h', 0, b'i']);
        assert_eq!(AsRef::<[u8]>::as_ref(&pdu.source_addr), b"1234\0");
        let quiet = cfg(json!({"registered_delivery": false, "source_addr": "999"}));
        let anon = Message::new(Some("2782".into()), None, Some("hi".into()));
        let pdu = submit_sm(&quiet, &anon, split::Coding::Ucs2, parts[0].clone()).unwrap();
        assert_eq!(u8::from(pdu.registered_delivery), 0);
        assert_eq!(AsRef::<[u8]>::as_ref(&pdu.source_addr), b"999\0");
    }

    #[test]
    fn submit_sm_carries_each_multipart_mode() {
        let text = "x".repeat(200);
        let msg = Message::new(Some("2782".into()), None, Some(text.clone()));
        let gsm = split::Coding::Gsm7 { packed: false };
        let cfg = cfg(json!({}));
        // UDH: esm_class UDHI and the header in short_message.
        let udh = split::split(&text, gsm, split::Concat::Udh8, 0x42);
        let pdu = submit_sm(&cfg, &msg, gsm, udh[0].clone()).unwrap();
        assert_eq!(u8::from(pdu.esm_class), 0x40);
        assert_eq!(short_message(&pdu)[..6], [5, 0, 3, 0x42, 2, 1]);
        // SAR: three TLVs, no UDHI.
        let sar = split::split(&text, gsm, split::Concat::Sar, 0x42);
        let pdu = submit_sm(&cfg, &msg, gsm, sar[1].clone()).unwrap();
        assert_eq!(u8::from(pdu.esm_class), 0);
        let tlvs = submit_tlvs(&pdu);
        assert!(tlvs.contains(&TlvValue::SarMsgRefNum(0x42)), "{tlvs:?}");
        assert!(tlvs.contains(&TlvValue::SarTotalSegments(2)), "{tlvs:?}");
        assert!(tlvs.contains(&TlvValue::SarSegmentSeqnum(2)), "{tlvs:?}");
        // Payload: one submit_sm, the text in message_payload, short_message empty.
        let payload = split::split(&text, gsm, split::Concat::Payload, 0x42);
        assert_eq!(payload.len(), 1);
        let pdu = submit_sm(&cfg, &msg, gsm, payload[0].clone()).unwrap();
        assert!(short_message(&pdu).is_empty());
        let carried = submit_tlvs(&pdu).into_iter().find_map(|t| match t {
            TlvValue::MessagePayload(p) => Some(p.value.as_ref().to_vec()),
            _ => None,
        });
        assert_eq!(carried, Some(text.into_bytes()));
    }

    #[test]
    fn submit_sm_refuses_an_address_too_long() {
        let msg = Message::new(Some("1".repeat(30)), None, Some("hi".into()));
        let gsm = split::Coding::Gsm7 { packed: false };
        let part = split::split("hi", gsm, split::Concat::Udh8, 1).remove(0);
        let err = submit_sm(&cfg(json!({})), &msg, gsm, part).unwrap_err();
        assert!(err.contains("too long"), "{err}");
    }

    #[test]
    fn bind_carries_the_credentials_for_each_role() {
        let cfg = cfg(json!({}));
        match bind(&cfg, Role::Transceiver).unwrap() {
            Pdu::BindTransceiver(b) => {
                assert_eq!(AsRef::<[u8]>::as_ref(&b.system_id), b"hb\0");
                assert_eq!(AsRef::<[u8]>::as_ref(&b.password), b"pw\0");
                assert_eq!(AsRef::<[u8]>::as_ref(&b.system_type), b"vma\0");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            bind(&cfg, Role::Transmitter),
            Ok(Pdu::BindTransmitter(_))
        ));
        assert!(matches!(
            bind(&cfg, Role::Receiver),
            Ok(Pdu::BindReceiver(_))
        ));
        assert_eq!(bind_resp_id(Role::Receiver), CommandId::BindReceiverResp);
        assert_eq!(
            bind_resp_id(Role::Transmitter),
            CommandId::BindTransmitterResp
        );
        assert_eq!(
            bind_resp_id(Role::Transceiver),
            CommandId::BindTransceiverResp
        );
    }

    #[test]
    fn status_names_are_smpps() {
        assert_eq!(status_name(CommandStatus::EsmeRok), "ESME_ROK");
        assert_eq!(
            status_name(CommandStatus::EsmeRthrottled),
            "ESME_RTHROTTLED"
        );
        assert_eq!(status_name(CommandStatus::EsmeRmsgqful), "ESME_RMSGQFUL");
        assert_eq!(status_name(CommandStatus::from(0x0000_0401)), "0x00000401");
    }

    #[test]
    fn submit_sm_resp_id_reads_the_smsc_id() {
        let mut b = b"abc\0".to_vec();
        let mut bytes = ((16 + b.len()) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x80, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 3]);
        bytes.append(&mut b);
        let cmd = Codec::new()
            .decode(&mut BytesMut::from(&bytes[..]))
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(submit_sm_resp_id(cmd.pdu()), "abc");
        assert_eq!(submit_sm_resp_id(None), "");
    }

    #[test]
    fn join_parts_keeps_a_gsm_escape_split_across_parts() {
        // "a€b": the euro sign is ESC 0x65, its escape at the end of the first part.
        let parts = [stored(0, 6, &[b'a', 0x1B]), stored(0, 6, &[0x65, b'b'])];
        let text = join_parts(&parts, split::Coding::Gsm7 { packed: false });
        assert_eq!(text, "a\u{20ac}b");
    }

    #[test]
    fn join_parts_keeps_a_surrogate_pair_split_across_parts() {
        // "a😀": U+1F600 is D83D DE00 in UTF-16, split between the two parts.
        let parts = [
            stored(8, 6, &[0, b'a', 0xD8, 0x3D]),
            stored(8, 6, &[0xDE, 0x00]),
        ];
        let text = join_parts(&parts, split::Coding::Gsm7 { packed: false });
        assert_eq!(text, "a\u{1F600}");
    }

    #[test]
    fn join_parts_decodes_mixed_codings_part_by_part() {
        let parts = [stored(3, 0, &[b'c', 0xE9]), stored(8, 0, &[0, b'!'])];
        assert_eq!(
            join_parts(&parts, split::Coding::Gsm7 { packed: false }),
            "c\u{e9}!"
        );
    }

    #[test]
    fn built_submit_sm_goes_through_the_codec() {
        let msg = Message::new(Some("2782".into()), None, Some("hi".into()));
        let gsm = split::Coding::Gsm7 { packed: false };
        let part = split::split("hi", gsm, split::Concat::Udh8, 1).remove(0);
        let pdu = submit_sm(&cfg(json!({})), &msg, gsm, part).unwrap();
        let mut buf = BytesMut::new();
        Codec::new()
            .encode(
                rusmpp::Command::new(CommandStatus::EsmeRok, 5, pdu),
                &mut buf,
            )
            .unwrap();
        let back = Codec::new().decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(back.id(), CommandId::SubmitSm);
        assert_eq!(back.sequence_number(), 5);
    }
}
