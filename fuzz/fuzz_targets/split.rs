//! Arbitrary text through outbound splitting and back: every encoding and multipart mode
//! the smpp channel offers must split without panicking, and what it sends must decode
//! back to the text (GSM 03.38 when the text fits, else UCS-2), part by part.
#![no_main]

use hornbill::transports::smpp::split::{self, Coding, Concat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for configured in [
        None,
        Some(Coding::Gsm7 { packed: false }),
        Some(Coding::Gsm7 { packed: true }),
        Some(Coding::Latin1),
        Some(Coding::Ucs2),
    ] {
        let coding = split::choose(text, configured);
        for concat in [Concat::Udh8, Concat::Udh16, Concat::Sar, Concat::Payload] {
            let parts = split::split(text, coding, concat, 7);
            let mut back = String::new();
            for p in &parts {
                let (body, udh_len) = if p.udhi {
                    let (_, len, rest) = split::strip_udh(&p.bytes);
                    (rest.to_vec(), len)
                } else {
                    (p.bytes.clone(), 0)
                };
                back.push_str(&split::decode(coding.data_coding(), &body, udh_len, coding));
            }
            // Packed GSM: a final CR on an octet boundary is sent twice (TS 23.038
            // §6.1.2.3.1), so it may come back doubled; nothing else may differ.
            let doubled = coding == (Coding::Gsm7 { packed: true })
                && text.ends_with('\r')
                && back.strip_suffix('\r') == Some(text);
            assert!(back == text || doubled, "{coding:?} {concat:?}: {back:?}");
        }
    }
});
