//! Delivery receipts: the `id:… sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…`
//! body (SMPP 3.4 Appendix B) and the `receipted_message_id`/`message_state` TLVs, mapped to
//! Vumi delivery statuses; and matching SMSC ids given in hex or in decimal.

use crate::message::DeliveryStatus;

/// What a receipt says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    pub stat: String,
    pub err: Option<String>,
}

const KEYS: &[&str] = &[
    "id",
    "sub",
    "dlvrd",
    "submit date",
    "done date",
    "stat",
    "err",
    "text",
];

/// Parses a receipt body; `None` when it has no `id:` or no `stat:`.
pub fn parse(text: &str) -> Option<Receipt> {
    let lower = text.to_ascii_lowercase();
    // Find each key ("key:") where it starts a field: at the start or after a space.
    let mut found: Vec<(usize, &str)> = Vec::new();
    for key in KEYS {
        let pat = format!("{key}:");
        let mut from = 0;
        while let Some(pos) = lower[from..].find(&pat).map(|p| p + from) {
            if pos == 0 || lower.as_bytes()[pos - 1] == b' ' {
                found.push((pos, key));
                break;
            }
            from = pos + 1;
        }
    }
    found.sort();
    let value = |key: &str| {
        let i = found.iter().position(|(_, k)| *k == key)?;
        let start = found[i].0 + key.len() + 1;
        let end = if key == "text" {
            text.len()
        } else {
            found.get(i + 1).map(|(p, _)| *p).unwrap_or(text.len())
        };
        Some(text.get(start..end)?.trim().to_string())
    };
    Some(Receipt {
        id: value("id").filter(|v| !v.is_empty())?,
        stat: value("stat")
            .filter(|v| !v.is_empty())?
            .to_ascii_uppercase(),
        err: value("err"),
    })
}

/// A receipt's `stat` as a Vumi delivery status.
pub fn status_of_stat(stat: &str) -> DeliveryStatus {
    match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" => DeliveryStatus::Delivered,
        "UNDELIV" | "UNDELIVERABLE" | "REJECTD" | "REJECTED" | "EXPIRED" | "DELETED" => {
            DeliveryStatus::Failed
        }
        // ENROUTE, ACCEPTD, UNKNOWN and anything else: not final yet.
        _ => DeliveryStatus::Pending,
    }
}

/// The `message_state` TLV (SMPP 3.4 §5.2.28) as a Vumi delivery status.
pub fn status_of_state(state: u8) -> DeliveryStatus {
    match state {
        2 => DeliveryStatus::Delivered,
        3..=5 | 8 => DeliveryStatus::Failed,
        _ => DeliveryStatus::Pending,
    }
}

/// Forms under which an SMSC id may come back: as given (lower-cased), and its decimal or
/// hexadecimal twin. Some SMSCs answer submit_sm in hex and report receipts in decimal.
pub fn id_forms(id: &str) -> Vec<String> {
    let id = id.trim().to_ascii_lowercase();
    let mut forms = vec![id.clone()];
    let trimmed = id.trim_start_matches('0');
    if !id.is_empty()
        && id.chars().all(|c| c.is_ascii_digit())
        && let Ok(n) = id.parse::<u128>()
    {
        forms.push(format!("{n:x}"));
    }
    if !id.is_empty()
        && id.chars().all(|c| c.is_ascii_hexdigit())
        && let Ok(n) = u128::from_str_radix(&id, 16)
    {
        forms.push(n.to_string());
    }
    if trimmed != id && !trimmed.is_empty() {
        forms.push(trimmed.to_string());
    }
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_standard_body() {
        let r = parse("id:1a2b3c sub:001 dlvrd:001 submit date:2611221530 done date:2611221531 stat:DELIVRD err:000 text:hello world: yes").unwrap();
        assert_eq!(
            r,
            Receipt {
                id: "1a2b3c".into(),
                stat: "DELIVRD".into(),
                err: Some("000".into())
            }
        );
        let r = parse("id:42 stat:undeliv err:012").unwrap();
        assert_eq!(r.stat, "UNDELIV");
        assert!(parse("hello, this is a normal message").is_none());
        assert!(parse("id: stat:DELIVRD").is_none());
        // "text:" content that looks like keys does not confuse the parser.
        let r = parse("id:7 sub:001 dlvrd:000 submit date:2611221530 done date:2611221530 stat:EXPIRED err:000 text:stat:DELIVRD").unwrap();
        assert_eq!(r.stat, "EXPIRED");
    }

    #[test]
    fn any_text_parses_without_panicking() {
        let mut rng = fastrand::Rng::with_seed(11);
        let pieces = [
            "id:",
            "stat:",
            "err:",
            "text:",
            " ",
            "é",
            "DELIVRD",
            "submit date:",
            "ü",
            "x",
        ];
        for _ in 0..5000 {
            let text: String = (0..rng.usize(0..12))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let _ = parse(&text);
            let _ = id_forms(&text);
        }
    }

    #[test]
    fn statuses_are_mapped() {
        assert_eq!(status_of_stat("DELIVRD"), DeliveryStatus::Delivered);
        for s in ["UNDELIV", "REJECTD", "EXPIRED", "DELETED"] {
            assert_eq!(status_of_stat(s), DeliveryStatus::Failed, "{s}");
        }
        for s in ["ENROUTE", "ACCEPTD", "UNKNOWN"] {
            assert_eq!(status_of_stat(s), DeliveryStatus::Pending, "{s}");
        }
        assert_eq!(status_of_state(2), DeliveryStatus::Delivered);
        assert_eq!(status_of_state(5), DeliveryStatus::Failed);
        assert_eq!(status_of_state(1), DeliveryStatus::Pending);
    }

    #[test]
    fn ids_match_in_hex_and_decimal() {
        assert!(id_forms("255").contains(&"ff".to_string()));
        assert!(id_forms("FF").contains(&"255".to_string()));
        assert!(id_forms("00ab").contains(&"ab".to_string()));
        assert_eq!(id_forms("msg-1"), vec!["msg-1".to_string()]);
    }
}
