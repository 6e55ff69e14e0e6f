//! Arbitrary bytes from an SMSC, through what hornbill's SMPP session does with them:
//! rusmpp's `CommandCodec` (the PDU decoder the session reads with), then for each PDU
//! the session's own reading of what it carries (`session::inspect`: TLVs, UDH, SAR,
//! delivery receipt text; submit_sm_resp's message_id; the status name), then the text
//! decoded by data_coding and read as a receipt body. Nothing may panic or hang.
#![no_main]

use bytes::BytesMut;
use hornbill::transports::smpp::dlr;
use hornbill::transports::smpp::session::{self, Incoming};
use hornbill::transports::smpp::split::{self, Coding};
use libfuzzer_sys::fuzz_target;
use rusmpp::Pdu;
use rusmpp::tokio_codec::CommandCodec;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = CommandCodec::new();
    let mut buf = BytesMut::from(data);
    // At most as many frames as could fit (each is at least 16 bytes), so a decoder that
    // makes no progress cannot loop forever here.
    for _ in 0..=data.len() / 16 {
        match codec.decode(&mut buf) {
            Ok(Some(cmd)) => {
                // What the session logs and reports for any command.
                let _ = session::status_name(cmd.status());
                match cmd.pdu() {
                    // As `Session::pdu` reads it: the SMSC id, kept for receipts.
                    Some(Pdu::SubmitSmResp(resp)) => {
                        let id = String::from_utf8_lossy(resp.message_id().as_ref())
                            .trim_end_matches('\0')
                            .to_string();
                        let _ = dlr::id_forms(&id);
                    }
                    Some(pdu) => match session::inspect(pdu) {
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
                            }
                        }
                        _ => {}
                    },
                    None => {}
                }
            }
            Ok(None) => break,
            // Errors are fine. Decoding goes on with what is left of the buffer (rusmpp
            // resets to reading a length prefix), which exercises more of the decoder than
            // the session does: its `Framed` ends the stream after one error.
            Err(_) => continue,
        }
    }
});
