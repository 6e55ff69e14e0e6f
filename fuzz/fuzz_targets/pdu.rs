//! Arbitrary bytes from an SMSC, through what hornbill's SMPP session does with them:
//! rusmpp's `CommandCodec` (the PDU decoder the session reads with), then for each PDU
//! the session's own reading of what it carries (`session::inspect`: TLVs, UDH, SAR,
//! delivery receipt text), then the text decoded by data_coding. Nothing may panic or hang.
#![no_main]

use bytes::BytesMut;
use hornbill::transports::smpp::session::{self, Incoming};
use hornbill::transports::smpp::split::{self, Coding};
use libfuzzer_sys::fuzz_target;
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
                if let Some(pdu) = cmd.pdu()
                    && let Some(Incoming::Message {
                        data_coding,
                        body,
                        udh_len,
                        ..
                    }) = session::inspect(pdu)
                {
                    // Decoded as the channel would, under each inbound default it offers.
                    for default in [
                        Coding::Gsm7 { packed: false },
                        Coding::Gsm7 { packed: true },
                        Coding::Latin1,
                    ] {
                        let _ = split::decode(data_coding, &body, udh_len, default);
                    }
                }
            }
            Ok(None) => break,
            // The session logs the error, answers generic_nack and reads on.
            Err(_) => continue,
        }
    }
});
