//! Arbitrary bytes from an SMSC, through what hornbill's SMPP session does with them:
//! hornbill's framing (`smpp::codec`, which cuts each PDU by its command_length before
//! rusmpp reads it), then for each PDU the session's own reading of what it carries
//! (`smpp::pdu`: `inspect` for TLVs, UDH, SAR, delivery receipt text; submit_sm_resp's
//! message_id; the status name), then the text decoded by data_coding, read as a receipt
//! body, and a long message's parts joined. Nothing may panic or hang.
#![no_main]

use bytes::BytesMut;
use hornbill::transports::smpp::codec::Codec;
use hornbill::transports::smpp::dlr;
use hornbill::transports::smpp::pdu::{self, Incoming, StoredPart};
use hornbill::transports::smpp::split::{self, Coding};
use libfuzzer_sys::fuzz_target;
use rusmpp::Pdu;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::new();
    let mut buf = BytesMut::from(data);
    // At most as many frames as could fit (each is at least 16 bytes), so a decoder that
    // makes no progress cannot loop forever here.
    for _ in 0..=data.len() / 16 {
        match codec.decode(&mut buf) {
            Ok(Some(Ok(cmd))) => {
                // What the session logs and reports for any command.
                let _ = pdu::status_name(cmd.status());
                match cmd.pdu() {
                    // As `Session::pdu` reads it: the SMSC id, kept for receipts.
                    resp @ Some(Pdu::SubmitSmResp(_)) => {
                        let _ = dlr::id_forms(&pdu::submit_sm_resp_id(resp));
                    }
                    Some(other) => match pdu::inspect(other) {
                        Some(Incoming::Receipt {
                            smsc_id: Some(id), ..
                        }) => {
                            // As `receipt` looks the message up.
                            let _ = dlr::id_forms(&id);
                        }
                        Some(Incoming::Message {
                            data_coding,
                            body,
                            udh_len,
                            ..
                        }) => {
                            // Decoded as the channel would, under each inbound default it
                            // offers; any text may be read as a receipt body too.
                            for default in [
                                Coding::Gsm7 { packed: false },
                                Coding::Gsm7 { packed: true },
                                Coding::Latin1,
                                Coding::Ucs2,
                            ] {
                                let text = split::decode(data_coding, &body, udh_len, default);
                                if let Some(r) = dlr::parse(&text) {
                                    let _ = dlr::id_forms(&r.id);
                                    let _ = dlr::status_of_stat(&r.stat);
                                }
                                // As a long message's parts, cut anywhere: the first with
                                // this data_coding, the second with another or the same.
                                let cut = body.len() / 2;
                                let parts = [
                                    StoredPart::new(data_coding, udh_len, &body[..cut]),
                                    StoredPart::new(
                                        data_coding ^ (cut as u8 & 0x08),
                                        0,
                                        &body[cut..],
                                    ),
                                ];
                                let _ = pdu::join_parts(&parts, default);
                            }
                        }
                        _ => {}
                    },
                    None => {}
                }
            }
            // A frame whose body is unreadable: the session answers generic_nack and reads on.
            Ok(Some(Err(_))) => continue,
            Ok(None) => break,
            // An impossible command_length: the framing is lost and the session drops the
            // connection (the codec has cleared the buffer).
            Err(_) => break,
        }
    }
});
