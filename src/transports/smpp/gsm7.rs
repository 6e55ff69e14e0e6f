//! GSM 03.38 default alphabet with its extension table (3GPP TS 23.038 §6.2.1), and septet
//! packing (§6.1.2.1.1). Pure functions: text <-> septets <-> octets.

/// The basic table: septet value -> character.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table (after ESC 0x1B): septet value -> character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

pub const ESC: u8 = 0x1B;

/// The septets of one character: one, two (ESC + extension) or none (not in GSM 03.38).
pub fn char_septets(c: char) -> Option<([u8; 2], usize)> {
    // Most text is ASCII: a table for it, the tables' search for the rest.
    if c.is_ascii() {
        return match ASCII_SEPTETS[c as usize] {
            NONE => None,
            s if s & EXTENDED != 0 => Some(([ESC, s & !EXTENDED], 2)),
            s => Some(([s, 0], 1)),
        };
    }
    search(c)
}

fn search(c: char) -> Option<([u8; 2], usize)> {
    if c != '\u{1b}'
        && let Some(i) = BASIC.iter().position(|&b| b == c)
    {
        return Some(([i as u8, 0], 1));
    }
    EXTENSION
        .iter()
        .find(|(_, e)| *e == c)
        .map(|(s, _)| ([ESC, *s], 2))
}

/// `ASCII_SEPTETS` entry for a character GSM 03.38 lacks.
const NONE: u8 = 0xFF;
/// Flag in an `ASCII_SEPTETS` entry: the value is an extension-table septet (after ESC).
const EXTENDED: u8 = 0x80;

/// The septet of each ASCII character, built once from the tables.
static ASCII_SEPTETS: std::sync::LazyLock<[u8; 128]> = std::sync::LazyLock::new(|| {
    let mut table = [NONE; 128];
    for (i, slot) in table.iter_mut().enumerate() {
        *slot = match search(i as u8 as char) {
            Some(([s, _], 1)) => s,
            Some(([_, s], _)) => s | EXTENDED,
            None => NONE,
        };
    }
    table
});

/// True when every character of `text` has a GSM 03.38 encoding.
pub fn fits(text: &str) -> bool {
    text.chars().all(|c| char_septets(c).is_some())
}

/// `text` as septets (one per byte), or `None` if a character has no GSM encoding.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let (s, n) = char_septets(c)?;
        out.extend_from_slice(&s[..n]);
    }
    Some(out)
}

/// Septets (one per byte) as text. An ESC before a value without an extension character
/// gives that value's basic character (TS 23.038 §6.2.1.1); values above 0x7F are masked.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut escaped = false;
    for &b in septets {
        let s = b & 0x7F;
        if escaped {
            escaped = false;
            match EXTENSION.iter().find(|(v, _)| *v == s) {
                Some((_, c)) => out.push(*c),
                None => out.push(BASIC[s as usize]),
            }
        } else if s == ESC {
            escaped = true;
        } else {
            out.push(BASIC[s as usize]);
        }
    }
    out
}

/// Packs septets into octets, LSB first, after `fill_bits` zero bits (0-6: the padding that
/// puts the first septet on a septet boundary after a UDH). When 7 bits are left over in the
/// last octet they hold CR, as TS 23.038 §6.1.2.3.1 asks (else they would read as '@').
pub fn pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let mut padded;
    let mut septets = septets;
    if (fill_bits + septets.len() * 7) % 8 == 1 {
        padded = septets.to_vec();
        padded.push(0x0D);
        septets = &padded;
    }
    let total_bits = fill_bits + septets.len() * 7;
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    let mut bit = fill_bits;
    for &s in septets {
        let v = (s & 0x7F) as u16;
        let (byte, shift) = (bit / 8, bit % 8);
        out[byte] |= (v << shift) as u8;
        if shift > 1 {
            out[byte + 1] |= (v >> (8 - shift)) as u8;
        }
        bit += 7;
    }
    out
}

/// Unpacks `count` septets from octets that start with `fill_bits` padding bits.
pub fn unpack(octets: &[u8], fill_bits: usize, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = fill_bits + i * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let Some(&lo) = octets.get(byte) else {
            break;
        };
        let hi = octets.get(byte + 1).copied().unwrap_or(0) as u16;
        let v = (((hi << 8) | lo as u16) >> shift) & 0x7F;
        out.push(v as u8);
    }
    out
}

/// How many septets fit in `octets` after `fill_bits` padding.
pub fn septets_in(octets: usize, fill_bits: usize) -> usize {
    (octets * 8).saturating_sub(fill_bits) / 7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_whole_alphabet() {
        let all: String =
            BASIC.iter().filter(|&&c| c != '\u{1b}').collect::<String>() + "^{}\\[~]|€\u{0c}";
        let septets = encode(&all).unwrap();
        assert_eq!(septets.len(), 127 + 2 * 10);
        assert_eq!(decode(&septets), all);
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(encode("€").unwrap(), vec![0x1B, 0x65]);
        assert_eq!(encode("a{b").unwrap(), vec![0x61, 0x1B, 0x28, 0x62]);
        assert!(encode("日本").is_none());
        assert!(!fits("héllo ☃"));
        assert!(fits("Hello @ £5 {ok}"));
        // An escape before a value with no extension character reads as the basic one.
        assert_eq!(decode(&[0x41, 0x1B, 0x41]), "AA");
    }

    #[test]
    fn packing_matches_the_specification_example() {
        // "hellohello" packed (3GPP TS 23.038 / a common test vector).
        let packed = pack(&encode("hellohello").unwrap(), 0);
        assert_eq!(
            packed,
            vec![0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(decode(&unpack(&packed, 0, 10)), "hellohello");
    }

    #[test]
    fn packing_with_fill_bits_round_trips() {
        let septets = encode("The quick brown fox jumps over the lazy dog €").unwrap();
        for fill in 0..7 {
            let packed = pack(&septets, fill);
            assert_eq!(unpack(&packed, fill, septets.len()), septets, "fill {fill}");
        }
        // 160 septets fill 140 octets exactly; after a 6-octet UDH, 153 fit with 1 fill bit.
        assert_eq!(pack(&[0x41; 160], 0).len(), 140);
        assert_eq!(septets_in(140 - 6, 1), 153);
        assert_eq!(septets_in(140 - 7, 0), 152);
    }
}
