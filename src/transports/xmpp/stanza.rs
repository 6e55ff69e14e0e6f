//! What the `xmpp` channel reads from and builds into stanzas, without I/O: a chat message
//! from an outbound message and an inbound message from a chat message, the presence it
//! announces, its answers to the server's IQs, and the one-line descriptions of stanzas for
//! the protocol log.

use crate::message::Message;
use std::fmt::Write;
use tokio_xmpp::xmlstream::XmppStreamElement;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::jid::{BareJid, Jid};
use xmpp_parsers::message::{Id, Lang, Message as Chat, MessageType};
use xmpp_parsers::minidom::Element;
use xmpp_parsers::ns;
use xmpp_parsers::presence::{Presence, Show, Type as PresenceType};
use xmpp_parsers::stanza::Stanza;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::stream_features::StreamFeatures;

/// Largest body sent, in bytes as XML (escapes counted): servers cap stanzas (Prosody at
/// 256 KiB by default) and close the stream on a bigger one, which would make the message
/// fail on every retry.
pub const MAX_BODY_XML_BYTES: usize = 60_000;

/// The chat message that sends `msg`: to the bare JID of its `to_addr`, its
/// `message_id` as the stanza id (a bounce names it). `Err` is the reason it cannot be sent.
pub fn chat(msg: &Message) -> Result<Chat, String> {
    let to = msg.to_addr.as_deref().unwrap_or_default().trim();
    let jid = Jid::new(to).map_err(|e| format!("to_addr {to:?} is not a JID: {e}"))?;
    if jid.node().is_none() {
        return Err(format!("to_addr {to:?} is not a user's JID (user@domain)"));
    }
    let body = match msg.content.as_deref() {
        None | Some("") => return Err("the message has no content to send".into()),
        Some(body) => body,
    };
    if let Some(bad) = body.chars().find(|c| !xml_char(*c)) {
        return Err(format!(
            "content has a character XML cannot carry (U+{:04X})",
            bad as u32
        ));
    }
    let size = xml_size(body);
    if size > MAX_BODY_XML_BYTES {
        return Err(format!(
            "content is too long for one XMPP message ({size} bytes as XML, at most {MAX_BODY_XML_BYTES})"
        ));
    }
    let mut chat = Chat::chat(Some(Jid::from(jid.to_bare()))).with_body(Lang::new(), body.into());
    chat.id = Some(Id(msg.message_id.clone()));
    Ok(chat)
}

/// Whether XML 1.0 allows `c` in text.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

/// The size of `text` written as XML character data.
fn xml_size(text: &str) -> usize {
    text.len()
        + text
            .bytes()
            .map(|b| match b {
                b'&' => 4,
                b'<' | b'>' => 3,
                _ => 0,
            })
            .sum::<usize>()
}

/// What a received chat message means.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// A message from a user, for the application.
    Inbound(Box<Message>),
    /// A message we sent came back as an error: (its message id, why).
    Bounced(String, String),
    /// Nothing for the application (a chat state, a group chat, an error about no message
    /// of ours): why.
    Ignored(&'static str),
}

/// A received `<message/>`, as Vumi's transport read it: a chat (or normal) message with a
/// body is an inbound message from the sender's bare JID to ours, its text trimmed, the
/// stanza id kept as `transport_metadata.xmpp_id`.
pub fn received(m: &Chat, us: &BareJid) -> Received {
    match m.type_ {
        MessageType::Chat | MessageType::Normal => {}
        MessageType::Error => {
            let why = m
                .payloads
                .iter()
                .find_map(|p| StanzaError::try_from(p.clone()).ok())
                .map(|e| error_text(&e))
                .unwrap_or_else(|| "error".into());
            return match &m.id {
                Some(id) => Received::Bounced(id.0.clone(), why),
                None => Received::Ignored("an error message about no message of ours"),
            };
        }
        MessageType::Groupchat => return Received::Ignored("a group chat message"),
        MessageType::Headline => return Received::Ignored("a headline"),
    }
    let Some((_, body)) = m.get_best_body(vec![]) else {
        return Received::Ignored("no body (a chat state or receipt)");
    };
    let Some(from) = &m.from else {
        return Received::Ignored("no sender");
    };
    let mut msg = Message::new(
        Some(us.to_string()),
        Some(from.to_bare().to_string()),
        Some(body.trim().to_string()),
    );
    msg.transport_type = Some("xmpp".into());
    if let Some(id) = &m.id {
        msg.transport_metadata
            .insert("xmpp_id".into(), serde_json::Value::String(id.0.clone()));
    }
    Received::Inbound(Box::new(msg))
}

/// A stanza error as `condition (text)`.
pub fn error_text(e: &StanzaError) -> String {
    let condition = condition_name(&e.defined_condition);
    match e.texts.values().next() {
        Some(text) => format!("{condition} ({text})"),
        None => condition,
    }
}

fn condition_name(c: &DefinedCondition) -> String {
    // The element name: `ServiceUnavailable` -> `service-unavailable`.
    let debug = format!("{c:?}");
    let mut out = String::new();
    for (i, ch) in debug.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else if ch.is_alphanumeric() {
            out.push(ch);
        } else {
            break;
        }
    }
    out
}

/// The presence we announce (to every subscriber: no `to`).
pub fn announce(show: Option<Show>, text: Option<&str>) -> Presence {
    let mut p = Presence::available();
    p.show = show;
    if let Some(text) = text {
        p.set_status("", text);
    }
    p
}

/// What we answer to a presence: a subscription request is accepted and returned (Vumi's
/// `subscribeReceived`: subscribe, subscribed), an unsubscription likewise mirrored.
pub fn presence_answers(p: &Presence) -> Vec<Presence> {
    let Some(from) = p.from.as_ref().map(|j| Jid::from(j.to_bare())) else {
        return Vec::new();
    };
    match p.type_ {
        PresenceType::Subscribe => vec![
            Presence::subscribed().with_to(from.clone()),
            Presence::subscribe().with_to(from),
        ],
        PresenceType::Unsubscribe => vec![
            Presence::new(PresenceType::Unsubscribed).with_to(from.clone()),
            Presence::unsubscribe().with_to(from),
        ],
        _ => Vec::new(),
    }
}

/// An IQ request as Vumi's client answered it: a ping gets its result, a roster push
/// from our own account is acknowledged, anything else `service-unavailable` (RFC 6120
/// 8.2.3: every request gets an answer). Results and errors get none.
pub fn iq_answer(iq: &Iq, us: &BareJid) -> Option<Iq> {
    let (from, id, payload) = match iq {
        Iq::Get {
            from, id, payload, ..
        }
        | Iq::Set {
            from, id, payload, ..
        } => (from, id, payload),
        Iq::Result { .. } | Iq::Error { .. } => return None,
    };
    let ours = from
        .as_ref()
        .is_none_or(|f| f.to_bare() == *us || f.node().is_none() && f.domain() == us.domain());
    let ok = match iq {
        Iq::Get { .. } => payload.is("ping", ns::PING),
        _ => payload.is("query", ns::ROSTER) && ours,
    };
    Some(if ok {
        Iq::Result {
            from: None,
            to: from.clone(),
            id: id.clone(),
            payload: None,
        }
    } else {
        Iq::Error {
            from: None,
            to: from.clone(),
            id: id.clone(),
            error: StanzaError::new(
                ErrorType::Cancel,
                DefinedCondition::ServiceUnavailable,
                "en",
                "not supported by this client",
            ),
            payload: None,
        }
    })
}

/// A stream-level element as one readable line (never credentials: SASL data is left out).
pub fn describe(el: &XmppStreamElement) -> String {
    match el {
        XmppStreamElement::Stanza(s) => describe_stanza(s),
        XmppStreamElement::Sasl(_) => "sasl (credentials not shown)".into(),
        XmppStreamElement::Starttls(_) => "starttls".into(),
        XmppStreamElement::ComponentHandshake(_) => "handshake".into(),
        XmppStreamElement::StreamError(e) => describe_stream_error(e),
        XmppStreamElement::SM(_) => "sm".into(),
    }
}

/// A stream error as one line: `stream:error condition=conflict text="…"`.
pub fn describe_stream_error(e: &xmpp_parsers::stream_error::ReceivedStreamError) -> String {
    format!(
        "stream:error condition={}{}",
        condition_name_stream(&e.0),
        e.0.texts
            .values()
            .next()
            .map(|t| format!(" text={t:?}"))
            .unwrap_or_default()
    )
}

fn condition_name_stream(e: &xmpp_parsers::stream_error::StreamError) -> String {
    let debug = format!("{:?}", e.condition);
    let name: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// A stanza as one readable line: `message to=… type=chat id=… body="…"`,
/// `presence from=… type=subscribe`, `iq type=get id=… to=… ping`.
pub fn describe_stanza(s: &Stanza) -> String {
    let mut out = String::new();
    let attr = |out: &mut String, name: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = write!(out, " {name}={v}");
        }
    };
    match s {
        Stanza::Message(m) => {
            out.push_str("message");
            attr(&mut out, "from", m.from.as_ref().map(Jid::to_string));
            attr(&mut out, "to", m.to.as_ref().map(Jid::to_string));
            let _ = write!(out, " type={}", message_type(&m.type_));
            attr(&mut out, "id", m.id.as_ref().map(|i| i.0.clone()));
            for body in m.bodies.values() {
                let _ = write!(out, " body={body:?}");
            }
            for p in &m.payloads {
                if let Ok(e) = StanzaError::try_from(p.clone()) {
                    let _ = write!(out, " error={:?}", error_text(&e));
                } else {
                    let _ = write!(out, " +{}", p.name());
                }
            }
        }
        Stanza::Presence(p) => {
            out.push_str("presence");
            attr(&mut out, "from", p.from.as_ref().map(Jid::to_string));
            attr(&mut out, "to", p.to.as_ref().map(Jid::to_string));
            attr(
                &mut out,
                "type",
                presence_type(&p.type_).map(str::to_string),
            );
            attr(&mut out, "id", p.id.clone());
            attr(
                &mut out,
                "show",
                p.show.as_ref().map(|s| show_name(s).to_string()),
            );
            for status in p.statuses.values() {
                let _ = write!(out, " status={status:?}");
            }
            if p.priority.0 != 0 {
                let _ = write!(out, " priority={}", p.priority.0);
            }
        }
        Stanza::Iq(iq) => {
            let (kind, from, to, id) = match iq {
                Iq::Get { from, to, id, .. } => ("get", from, to, id),
                Iq::Set { from, to, id, .. } => ("set", from, to, id),
                Iq::Result { from, to, id, .. } => ("result", from, to, id),
                Iq::Error { from, to, id, .. } => ("error", from, to, id),
            };
            let _ = write!(out, "iq type={kind} id={id}");
            attr(&mut out, "from", from.as_ref().map(Jid::to_string));
            attr(&mut out, "to", to.as_ref().map(Jid::to_string));
            match iq {
                Iq::Get { payload, .. } | Iq::Set { payload, .. } => {
                    out.push(' ');
                    out.push_str(&payload_name(payload));
                }
                Iq::Result {
                    payload: Some(payload),
                    ..
                } => {
                    out.push(' ');
                    out.push_str(&payload_name(payload));
                }
                Iq::Result { payload: None, .. } => {}
                Iq::Error { error, .. } => {
                    let _ = write!(out, " error={:?}", error_text(error));
                }
            }
        }
    }
    out
}

/// An IQ payload by name: `ping`, `roster items=3`, `bind jid=…`, else `name (xmlns)`.
fn payload_name(e: &Element) -> String {
    if e.is("ping", ns::PING) {
        "ping".into()
    } else if e.is("query", ns::ROSTER) {
        format!("roster items={}", e.children().count())
    } else if e.is("bind", ns::BIND) {
        let child = |name: &str| {
            e.children()
                .find(|c| c.name() == name)
                .map(|c| c.text())
                .unwrap_or_default()
        };
        match (child("jid"), child("resource")) {
            (jid, _) if !jid.is_empty() => format!("bind jid={jid}"),
            (_, res) if !res.is_empty() => format!("bind resource={res}"),
            _ => "bind".into(),
        }
    } else {
        format!("{} ({})", e.name(), e.ns())
    }
}

/// The stream features as one line: `stream:features starttls sasl=SCRAM-SHA-1,PLAIN bind`.
pub fn describe_features(f: &StreamFeatures) -> String {
    let mut out = String::from("stream:features");
    if f.can_starttls() {
        out.push_str(" starttls");
    }
    if !f.sasl_mechanisms.is_empty() {
        let mechs: Vec<&str> = f.sasl_mechanisms.iter().map(String::as_str).collect();
        let _ = write!(out, " sasl={}", mechs.join(","));
    }
    if f.can_bind() {
        out.push_str(" bind");
    }
    if f.stream_management.is_some() {
        out.push_str(" sm");
    }
    out
}

fn message_type(t: &MessageType) -> &'static str {
    match t {
        MessageType::Chat => "chat",
        MessageType::Error => "error",
        MessageType::Groupchat => "groupchat",
        MessageType::Headline => "headline",
        MessageType::Normal => "normal",
    }
}

fn presence_type(t: &PresenceType) -> Option<&'static str> {
    Some(match t {
        PresenceType::None => return None,
        PresenceType::Error => "error",
        PresenceType::Probe => "probe",
        PresenceType::Subscribe => "subscribe",
        PresenceType::Subscribed => "subscribed",
        PresenceType::Unavailable => "unavailable",
        PresenceType::Unsubscribe => "unsubscribe",
        PresenceType::Unsubscribed => "unsubscribed",
    })
}

fn show_name(s: &Show) -> &'static str {
    match s {
        Show::Away => "away",
        Show::Chat => "chat",
        Show::Dnd => "dnd",
        Show::Xa => "xa",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> BareJid {
        BareJid::new("bot@localhost").unwrap()
    }

    fn parse(xml: &str) -> Stanza {
        let el: Element = xml.parse().unwrap();
        Stanza::try_from(el).unwrap()
    }

    fn outbound(to: &str, content: Option<&str>) -> Message {
        Message::new(Some(to.into()), None, content.map(str::to_string))
    }

    #[test]
    fn a_send_is_a_chat_message_to_the_bare_jid_with_the_message_id() {
        let msg = outbound("alice@localhost/phone", Some("hi <there> & \"you\""));
        let chat = chat(&msg).unwrap();
        assert_eq!(chat.to.as_ref().unwrap().to_string(), "alice@localhost");
        assert_eq!(chat.type_, MessageType::Chat);
        assert_eq!(chat.id.as_ref().unwrap().0, msg.message_id);
        let line = describe_stanza(&Stanza::Message(chat));
        assert_eq!(
            line,
            format!(
                "message to=alice@localhost type=chat id={} body=\"hi <there> & \\\"you\\\"\"",
                msg.message_id
            )
        );
    }

    #[test]
    fn unsendable_messages_get_a_reason() {
        for (to, content, needle) in [
            ("not a jid@", Some("x"), "to_addr"),
            ("localhost", Some("x"), "user's JID"),
            ("alice@localhost", None, "no content"),
            ("alice@localhost", Some(""), "no content"),
            ("alice@localhost", Some("bell \u{7}"), "U+0007"),
        ] {
            let e = chat(&outbound(to, content)).unwrap_err();
            assert!(e.contains(needle), "{to} {content:?}: {e}");
        }
        let long = "&".repeat(MAX_BODY_XML_BYTES / 5 + 1);
        let e = chat(&outbound("a@b", Some(&long))).unwrap_err();
        assert!(e.contains("too long"), "{e}");
        assert!(chat(&outbound("a@b", Some(&"a".repeat(MAX_BODY_XML_BYTES)))).is_ok());
    }

    #[test]
    fn a_chat_with_a_body_is_inbound_from_the_bare_jid() {
        let Stanza::Message(m) = parse(
            "<message xmlns='jabber:client' from='alice@localhost/phone' to='bot@localhost/hb' \
             type='chat' id='m1'><body> hello bot </body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
        ) else {
            panic!()
        };
        let Received::Inbound(msg) = received(&m, &us()) else {
            panic!()
        };
        assert_eq!(msg.from_addr.as_deref(), Some("alice@localhost"));
        assert_eq!(msg.to_addr.as_deref(), Some("bot@localhost"));
        assert_eq!(msg.content.as_deref(), Some("hello bot"));
        assert_eq!(msg.transport_type.as_deref(), Some("xmpp"));
        assert_eq!(msg.transport_metadata["xmpp_id"], "m1");
        let line = describe_stanza(&Stanza::Message(m));
        assert_eq!(
            line,
            "message from=alice@localhost/phone to=bot@localhost/hb type=chat id=m1 body=\" hello bot \" +active"
        );
    }

    #[test]
    fn chat_states_group_chats_and_bounces() {
        let Stanza::Message(m) = parse(
            "<message xmlns='jabber:client' from='alice@localhost/p' type='chat'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        ) else {
            panic!()
        };
        assert!(matches!(received(&m, &us()), Received::Ignored(_)));
        let Stanza::Message(m) = parse(
            "<message xmlns='jabber:client' from='room@muc.localhost/x' type='groupchat'><body>hi</body></message>",
        ) else {
            panic!()
        };
        assert!(matches!(received(&m, &us()), Received::Ignored(_)));
        let Stanza::Message(m) = parse(
            "<message xmlns='jabber:client' from='nobody@localhost' type='error' id='abc'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        ) else {
            panic!()
        };
        assert_eq!(
            received(&m, &us()),
            Received::Bounced("abc".into(), "service-unavailable".into())
        );
    }

    #[test]
    fn subscriptions_are_accepted_and_returned() {
        let Stanza::Presence(p) = parse(
            "<presence xmlns='jabber:client' from='alice@localhost/phone' type='subscribe'/>",
        ) else {
            panic!()
        };
        assert_eq!(
            describe_stanza(&Stanza::Presence(p.clone())),
            "presence from=alice@localhost/phone type=subscribe"
        );
        let answers: Vec<String> = presence_answers(&p)
            .into_iter()
            .map(|p| describe_stanza(&Stanza::Presence(p)))
            .collect();
        assert_eq!(
            answers,
            [
                "presence to=alice@localhost type=subscribed",
                "presence to=alice@localhost type=subscribe"
            ]
        );
        let Stanza::Presence(p) =
            parse("<presence xmlns='jabber:client' from='alice@localhost/phone'/>")
        else {
            panic!()
        };
        assert!(presence_answers(&p).is_empty());
    }

    #[test]
    fn the_announced_presence() {
        let p = announce(Some(Show::Chat), Some("Ask me"));
        assert_eq!(
            describe_stanza(&Stanza::Presence(p)),
            "presence show=chat status=\"Ask me\""
        );
        let p = announce(None, None);
        assert_eq!(describe_stanza(&Stanza::Presence(p)), "presence");
    }

    #[test]
    fn pings_are_answered_and_other_requests_refused() {
        let Stanza::Iq(ping) = parse(
            "<iq xmlns='jabber:client' from='localhost' to='bot@localhost/hb' type='get' id='p1'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        ) else {
            panic!()
        };
        assert_eq!(
            describe_stanza(&Stanza::Iq(ping.clone())),
            "iq type=get id=p1 from=localhost to=bot@localhost/hb ping"
        );
        let answer = iq_answer(&ping, &us()).unwrap();
        assert_eq!(
            describe_stanza(&Stanza::Iq(answer)),
            "iq type=result id=p1 to=localhost"
        );
        let Stanza::Iq(version) = parse(
            "<iq xmlns='jabber:client' from='alice@localhost/p' type='get' id='v1'>\
             <query xmlns='jabber:iq:version'/></iq>",
        ) else {
            panic!()
        };
        assert_eq!(
            describe_stanza(&Stanza::Iq(iq_answer(&version, &us()).unwrap())),
            "iq type=error id=v1 to=alice@localhost/p error=\"service-unavailable (not supported by this client)\""
        );
        let Stanza::Iq(push) = parse(
            "<iq xmlns='jabber:client' type='set' id='r1'><query xmlns='jabber:iq:roster'>\
             <item jid='alice@localhost' subscription='both'/></query></iq>",
        ) else {
            panic!()
        };
        assert_eq!(
            describe_stanza(&Stanza::Iq(push.clone())),
            "iq type=set id=r1 roster items=1"
        );
        assert!(matches!(iq_answer(&push, &us()), Some(Iq::Result { .. })));
        let Stanza::Iq(forged) = parse(
            "<iq xmlns='jabber:client' from='mallory@evil' type='set' id='r2'><query xmlns='jabber:iq:roster'/></iq>",
        ) else {
            panic!()
        };
        assert!(matches!(iq_answer(&forged, &us()), Some(Iq::Error { .. })));
        let Stanza::Iq(result) = parse("<iq xmlns='jabber:client' type='result' id='x'/>") else {
            panic!()
        };
        assert!(iq_answer(&result, &us()).is_none());
    }
}
