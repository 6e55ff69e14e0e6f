//! Choosing an encoding, splitting long messages into parts (UDH with 8- or 16-bit
//! references, SAR TLVs, or one `message_payload`), and decoding inbound short messages.
//! Pure functions: no PDUs, no I/O.

use super::gsm7;

/// How a message's text is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// GSM 03.38, packed (7 bits per character) or one septet per octet.
    Gsm7 { packed: bool },
    /// ISO 8859-1.
    Latin1,
    /// UCS-2 / UTF-16BE (characters beyond the BMP as surrogate pairs).
    Ucs2,
}

impl Coding {
    /// SMPP `data_coding`: 0 (SMSC default alphabet, GSM 03.38), 3 (Latin-1), 8 (UCS-2).
    pub fn data_coding(self) -> u8 {
        match self {
            Coding::Gsm7 { .. } => 0x00,
            Coding::Latin1 => 0x03,
            Coding::Ucs2 => 0x08,
        }
    }
}

/// How a long message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concat {
    Udh8,
    Udh16,
    Sar,
    Payload,
}

/// One submit_sm's worth of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The `short_message` bytes (with the UDH in front when there is one), or the
    /// `message_payload` for `Concat::Payload`.
    pub bytes: Vec<u8>,
    /// Set `esm_class` UDHI (0x40).
    pub udhi: bool,
    /// SAR TLVs: (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum).
    pub sar: Option<(u16, u8, u8)>,
    /// Send as the `message_payload` TLV with an empty `short_message`.
    pub payload: bool,
}

fn latin1_fits(text: &str) -> bool {
    text.chars().all(|c| (c as u32) < 0x100)
}

/// The coding for `text`: the configured one when every character fits it, else GSM 03.38
/// when every character fits, else UCS-2.
pub fn choose(text: &str, configured: Option<Coding>) -> Coding {
    match configured {
        Some(c @ Coding::Gsm7 { .. }) if gsm7::fits(text) => c,
        Some(Coding::Latin1) if latin1_fits(text) => Coding::Latin1,
        Some(Coding::Ucs2) => Coding::Ucs2,
        Some(Coding::Gsm7 { .. }) | Some(Coding::Latin1) => Coding::Ucs2,
        None if gsm7::fits(text) => Coding::Gsm7 { packed: false },
        None => Coding::Ucs2,
    }
}

/// `text` encoded whole (what `units` gives, joined, without a vector per character).
fn encode(text: &str, coding: Coding) -> Vec<u8> {
    match coding {
        Coding::Gsm7 { .. } => gsm7::encode(text).unwrap_or_else(|| units(text, coding).concat()),
        Coding::Latin1 => text
            .chars()
            .map(|c| if (c as u32) < 0x100 { c as u8 } else { b'?' })
            .collect(),
        Coding::Ucs2 => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
    }
}

/// `text` as indivisible units (an escape pair, a surrogate pair stays whole).
fn units(text: &str, coding: Coding) -> Vec<Vec<u8>> {
    text.chars()
        .map(|c| match coding {
            Coding::Gsm7 { .. } => gsm7::char_septets(c)
                .map(|(s, n)| s[..n].to_vec())
                .unwrap_or_else(|| vec![0x3F]),
            Coding::Latin1 => vec![if (c as u32) < 0x100 { c as u8 } else { b'?' }],
            Coding::Ucs2 => {
                let mut buf = [0u16; 2];
                c.encode_utf16(&mut buf)
                    .iter()
                    .flat_map(|u| u.to_be_bytes())
                    .collect()
            }
        })
        .collect()
}

/// Room in one part, in units of the coding (septets for GSM, octets otherwise).
fn capacity(coding: Coding, udh_len: usize) -> usize {
    match coding {
        Coding::Gsm7 { .. } if udh_len == 0 => 160,
        Coding::Gsm7 { .. } => gsm7::septets_in(140 - udh_len, fill_bits(udh_len)),
        Coding::Latin1 => 140 - udh_len,
        // Whole UTF-16 code units only.
        Coding::Ucs2 => (140 - udh_len) & !1,
    }
}

/// Padding bits after a UDH of `udh_len` octets, so GSM septets start on a boundary.
pub fn fill_bits(udh_len: usize) -> usize {
    (7 - (udh_len * 8) % 7) % 7
}

fn body(unit_bytes: &[u8], coding: Coding, udh: &[u8]) -> Vec<u8> {
    let mut out = udh.to_vec();
    match coding {
        Coding::Gsm7 { packed: true } => out.extend(gsm7::pack(unit_bytes, fill_bits(udh.len()))),
        _ => out.extend_from_slice(unit_bytes),
    }
    out
}

/// Splits `text` for sending. A message that fits one short message is one part with no
/// UDH or SAR; otherwise parts carry `reference` (the low byte only for `Udh8`). Escape
/// pairs and surrogate pairs are never cut.
pub fn split(text: &str, coding: Coding, concat: Concat, reference: u16) -> Vec<Part> {
    let mut all = encode(text, coding);
    let single = capacity(coding, 0);
    let packed = coding == Coding::Gsm7 { packed: true };
    if concat == Concat::Payload || all.len() <= single {
        let payload = concat == Concat::Payload && all.len() > single;
        if packed && cr_on_boundary(&all, 0) {
            if payload || all.len() < single {
                all.push(CR);
            } else {
                // No room for the second CR: two parts instead (below).
                return split_parts(text, coding, concat, reference);
            }
        }
        return vec![Part {
            bytes: body(&all, coding, &[]),
            udhi: false,
            sar: None,
            payload,
        }];
    }
    split_parts(text, coding, concat, reference)
}

/// Carriage return, in GSM 03.38 and ASCII alike.
const CR: u8 = 0x0D;

/// Whether packed septets would end with a CR on an octet boundary after `fill` bits: a
/// receiver takes such a CR for padding (TS 23.038 §6.1.2.3.1).
fn cr_on_boundary(septets: &[u8], fill: usize) -> bool {
    let escaped = septets.len() >= 2 && septets[septets.len() - 2] == gsm7::ESC;
    septets.last() == Some(&CR) && !escaped && (septets.len() * 7 + fill).is_multiple_of(8)
}

fn split_parts(text: &str, coding: Coding, concat: Concat, reference: u16) -> Vec<Part> {
    let packed = coding == Coding::Gsm7 { packed: true };
    let udh_len = match concat {
        Concat::Udh8 => 6,
        Concat::Udh16 => 7,
        _ => 0,
    };
    let room = capacity(coding, udh_len);
    let fill = fill_bits(udh_len);
    let mut chunks: Vec<Vec<u8>> = vec![Vec::new()];
    for u in units(text, coding) {
        let last = chunks.last_mut().expect("one chunk at least");
        if last.len() + u.len() > room {
            // Packed GSM: a part may not end with a CR on an octet boundary, or the
            // receiver drops it as padding; that CR opens the next part instead.
            let mut next = Vec::new();
            if packed && cr_on_boundary(last, fill) {
                last.pop();
                next.push(CR);
            }
            next.extend(u);
            chunks.push(next);
        } else {
            last.extend(u);
        }
    }
    // The last part: the second CR the specification asks for (shown as two line ends),
    // in a part of its own when there is no room for it.
    if packed && chunks.last().is_some_and(|c| cr_on_boundary(c, fill)) {
        let last = chunks.last_mut().expect("one chunk at least");
        if last.len() < room {
            last.push(CR);
        } else {
            last.pop();
            let mut tail = vec![CR];
            if cr_on_boundary(&tail, fill) {
                tail.push(CR);
            }
            chunks.push(tail);
        }
    }
    let total = chunks.len().min(255) as u8;
    chunks
        .into_iter()
        .take(255)
        .enumerate()
        .map(|(i, chunk)| {
            let seq = (i + 1) as u8;
            let udh: Vec<u8> = match concat {
                Concat::Udh8 => vec![0x05, 0x00, 0x03, reference as u8, total, seq],
                Concat::Udh16 => {
                    let [hi, lo] = reference.to_be_bytes();
                    vec![0x06, 0x08, 0x04, hi, lo, total, seq]
                }
                _ => vec![],
            };
            Part {
                bytes: body(&chunk, coding, &udh),
                udhi: !udh.is_empty(),
                sar: (concat == Concat::Sar).then_some((reference, total, seq)),
                payload: false,
            }
        })
        .collect()
}

/// A concatenation header found in an inbound UDH: (reference, total, sequence).
pub type ConcatInfo = (u16, u8, u8);

/// Splits a UDH off `bytes` (when `udhi`): the concatenation info if any, and the rest.
pub fn strip_udh(bytes: &[u8]) -> (Option<ConcatInfo>, usize, &[u8]) {
    let Some(&udhl) = bytes.first() else {
        return (None, 0, bytes);
    };
    let end = (1 + udhl as usize).min(bytes.len());
    let header = &bytes[1..end];
    let mut info = None;
    let mut i = 0;
    while i + 1 < header.len() {
        let (iei, len) = (header[i], header[i + 1] as usize);
        let data = header.get(i + 2..i + 2 + len).unwrap_or(&[]);
        match (iei, data) {
            (0x00, [r, t, s]) => info = Some((*r as u16, *t, *s)),
            (0x08, [hi, lo, t, s]) => info = Some((u16::from_be_bytes([*hi, *lo]), *t, *s)),
            _ => {}
        }
        i += 2 + len;
    }
    (info, end, &bytes[end..])
}

/// Text of an inbound short message by its `data_coding`. `udh_len` is the length of a UDH
/// already split off (it shifts packed GSM septets). `default` decides what data_coding 0
/// means (GSM 03.38 unpacked unless configured otherwise).
pub fn decode(data_coding: u8, bytes: &[u8], udh_len: usize, default: Coding) -> String {
    let gsm = |packed: bool| {
        if packed {
            let fill = fill_bits(udh_len);
            let count =
                gsm7::septets_in(bytes.len(), 0).min(((bytes.len() * 8).saturating_sub(fill)) / 7);
            let mut padded = vec![0u8; udh_len];
            padded.extend_from_slice(bytes);
            let mut septets = gsm7::unpack(&padded, udh_len * 8 + fill, count);
            // A CR in the last 7 spare bits is padding (TS 23.038 §6.1.2.3.1).
            if (bytes.len() * 8).saturating_sub(fill).is_multiple_of(7)
                && septets.last() == Some(&0x0D)
            {
                septets.pop();
            }
            gsm7::decode(&septets)
        } else {
            gsm7::decode(bytes)
        }
    };
    let ucs2 = || {
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        String::from_utf16_lossy(&units)
    };
    let latin1 = || bytes.iter().map(|&b| b as char).collect::<String>();
    match data_coding {
        0x00 => match default {
            Coding::Gsm7 { packed } => gsm(packed),
            Coding::Latin1 => latin1(),
            Coding::Ucs2 => ucs2(),
        },
        0x01 => String::from_utf8_lossy(bytes).into_owned(),
        0x03 => latin1(),
        0x08 => ucs2(),
        // GSM data coding groups: the alphabet is in bits 2-3 (00 GSM, 01 8-bit, 10 UCS-2).
        dc if (0x10..=0x3F).contains(&dc) || (0xF0..=0xFF).contains(&dc) => {
            let alphabet = if dc >= 0xF0 {
                (dc >> 2) & 0x01
            } else {
                (dc >> 2) & 0x03
            };
            match alphabet {
                0 => gsm(matches!(default, Coding::Gsm7 { packed: true })),
                2 => ucs2(),
                _ => latin1(),
            }
        }
        _ => latin1(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_when_it_fits_else_ucs2() {
        assert_eq!(choose("hello €", None), Coding::Gsm7 { packed: false });
        assert_eq!(choose("привет", None), Coding::Ucs2);
        assert_eq!(choose("café", Some(Coding::Latin1)), Coding::Latin1);
        assert_eq!(choose("€", Some(Coding::Latin1)), Coding::Ucs2);
    }

    #[test]
    fn part_sizes_per_encoding() {
        let gsm = Coding::Gsm7 { packed: false };
        assert_eq!(split(&"a".repeat(160), gsm, Concat::Udh8, 1).len(), 1);
        let parts = split(&"a".repeat(161), gsm, Concat::Udh8, 7);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].bytes.len(), 6 + 153);
        assert_eq!(&parts[0].bytes[..6], &[0x05, 0x00, 0x03, 7, 2, 1]);
        assert!(parts[0].udhi);
        let parts = split(&"a".repeat(305), gsm, Concat::Udh16, 0x1234);
        assert_eq!(parts.len(), 3, "152 septets a part with a 16-bit reference");
        assert_eq!(&parts[2].bytes[..7], &[0x06, 0x08, 0x04, 0x12, 0x34, 3, 3]);
        let ucs = split(&"ж".repeat(71), Coding::Ucs2, Concat::Udh8, 1);
        assert_eq!(ucs.len(), 2);
        assert_eq!(ucs[0].bytes.len(), 6 + 134);
        let sar = split(&"ж".repeat(141), Coding::Ucs2, Concat::Sar, 9);
        assert_eq!(sar.len(), 3, "70 UCS-2 characters a part with SAR");
        assert_eq!(sar[1].sar, Some((9, 3, 2)));
        assert!(!sar[1].udhi);
        let payload = split(&"a".repeat(400), gsm, Concat::Payload, 0);
        assert_eq!(payload.len(), 1);
        assert!(payload[0].payload);
        assert_eq!(payload[0].bytes.len(), 400);
    }

    #[test]
    fn escapes_and_surrogate_pairs_are_never_cut() {
        let gsm = Coding::Gsm7 { packed: false };
        // 152 'a' then '€' (2 septets): the escape pair does not fit in part one (153).
        let text = "a".repeat(152) + "€" + &"b".repeat(10);
        let parts = split(&text, gsm, Concat::Udh8, 1);
        assert_eq!(parts[0].bytes.len(), 6 + 152);
        assert_eq!(&parts[1].bytes[6..9], &[0x1B, 0x65, b'b']);
        // 66 UCS-2 characters (132 octets) then a surrogate pair: 136 > 134, so it moves.
        let text = "a".repeat(66) + "😀" + "bbb";
        let parts = split(&text, Coding::Ucs2, Concat::Udh8, 1);
        assert_eq!(parts[0].bytes.len(), 6 + 132);
        assert_eq!(decode(8, &parts[1].bytes[6..], 0, gsm), "😀bbb");
    }

    #[test]
    fn a_packed_cr_is_never_read_as_padding() {
        // 8 septets end on an octet boundary: the CR gets a second one (TS 23.038).
        let parts = split("1234567\r", Coding::Gsm7 { packed: true }, Concat::Udh8, 1);
        assert_eq!(parts.len(), 1);
        let text = decode(0, &parts[0].bytes, 0, Coding::Gsm7 { packed: true });
        assert_eq!(text, "1234567\r\r");
        // A part that would end with a CR on a boundary passes it to the next part.
        let long = format!("{}\r{}", "a".repeat(152), "b".repeat(20));
        let parts = split(&long, Coding::Gsm7 { packed: true }, Concat::Udh8, 1);
        let mut back = String::new();
        for p in &parts {
            let (_, len, rest) = strip_udh(&p.bytes);
            back.push_str(&decode(0, rest, len, Coding::Gsm7 { packed: true }));
        }
        assert_eq!(back, long);
    }

    #[test]
    fn packed_parts_decode_back() {
        let gsm = Coding::Gsm7 { packed: true };
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(5);
        let parts = split(&text, gsm, Concat::Udh8, 3);
        let mut joined = String::new();
        for p in &parts {
            let (info, udh_len, rest) = strip_udh(&p.bytes);
            assert_eq!(info.unwrap().0, 3);
            joined += &decode(0, rest, udh_len, gsm);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn any_bytes_decode_without_panicking() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let len = rng.usize(0..200);
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let dc = rng.u8(..);
            for default in [
                Coding::Gsm7 { packed: true },
                Coding::Gsm7 { packed: false },
                Coding::Ucs2,
            ] {
                let _ = decode(dc, &bytes, rng.usize(0..8), default);
            }
            let _ = strip_udh(&bytes);
        }
    }

    #[test]
    fn inbound_decoding_by_data_coding() {
        let gsm = Coding::Gsm7 { packed: false };
        assert_eq!(decode(0, &gsm7::encode("Hi €5").unwrap(), 0, gsm), "Hi €5");
        assert_eq!(decode(3, &[0x63, 0x61, 0x66, 0xE9], 0, gsm), "café");
        assert_eq!(
            decode(8, &[0x04, 0x36, 0xD8, 0x3D, 0xDE, 0x00], 0, gsm),
            "ж😀"
        );
        assert_eq!(decode(1, b"ascii", 0, gsm), "ascii");
        let (info, len, rest) = strip_udh(&[0x06, 0x08, 0x04, 0x01, 0x02, 2, 1, b'x']);
        assert_eq!((info, len, rest), (Some((0x0102, 2, 1)), 7, &b"x"[..]));
    }
}
