//! The IRC protocol layer, with no I/O: which received lines are messages for the bot (Vumi's
//! addressing rules), where a message goes and what its lines are (split to fit the protocol's
//! 512-byte line), the registration lines, nicknames to try after a collision, and the
//! one-liners of the protocol log. Lines are parsed with `irc-proto` (its `Message` and
//! `Command` types, no I/O of its own).

use irc_proto::{ChannelExt, Command, Message as IrcLine, Prefix};
use serde_json::{Map, Value, json};

/// Longest line the protocol allows, CR LF included (RFC 2812 §2.3).
pub const MAX_LINE: usize = 512;
/// What the server adds before our line when it relays it: `:nick!user@host `. The user is
/// at most 10 characters on most servers (ngircd: 20, plus `~`), the host at most 63 (a DNS
/// name; cloaks and IPv6 addresses are shorter). Counted at their largest, so a relayed line
/// never exceeds 512 bytes whatever our mask is.
const RELAY_USER: usize = 21;
const RELAY_HOST: usize = 63;
/// How the bot signs on: `USER <nick> 0 * :<REALNAME>`.
pub const REALNAME: &str = "hornbill";

/// Whether a name is a channel's (`#`, `&`, `+`, `!`), as Vumi and RFC 2812 say.
pub fn is_channel(name: &str) -> bool {
    name.is_channel_name()
}

/// A nickname or channel as Vumi compares them: the nick of `nick!user@host`, lowercased.
pub fn canonical(name: &str) -> String {
    name.split('!').next().unwrap_or("").to_lowercase()
}

/// A message received from a user (a PRIVMSG, or a CTCP ACTION in one).
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    /// The sender's nickname, lowercased (Vumi's `canonicalize_recipient`).
    pub sender: String,
    /// Our nick or a channel, lowercased.
    pub recipient: String,
    pub content: String,
    /// `PRIVMSG` or `ACTION`.
    pub command: &'static str,
}

impl Said {
    /// The channel it was said in, if any.
    pub fn channel(&self) -> Option<&str> {
        is_channel(&self.recipient).then_some(self.recipient.as_str())
    }

    /// Vumi's `addressed_to`: a private message to `nick`, or a channel line whose first word,
    /// without trailing `:` and `,`, is `nick` (`bot: hi`, `bot, hi`, `bot hi`).
    pub fn addressed_to(&self, nick: &str) -> bool {
        let nick = canonical(nick);
        if self.channel().is_none() {
            return self.recipient == nick;
        }
        let first = self.content.split_whitespace().next().unwrap_or("");
        canonical(first.trim_end_matches([':', ','])) == nick
    }

    /// An inbound message for the application, or `None` when it is channel chatter not
    /// addressed to the bot. `nick` is the bot's nickname now, `server` the server's address.
    pub fn inbound(&self, nick: &str, server: &str) -> Option<Inbound> {
        let addressed = self.addressed_to(nick);
        let channel = self.channel().map(str::to_string);
        let (to_addr, content) = match &channel {
            None => (self.recipient.clone(), self.content.clone()),
            Some(_) if addressed => {
                // Without the nick, so applications need not strip it (Vumi does the same).
                let rest = self
                    .content
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .map(|(_, rest)| rest.trim_start().to_string())
                    .unwrap_or_default();
                (canonical(nick), rest)
            }
            Some(_) => return None,
        };
        let helper = json!({"irc": {
            "transport_nickname": nick,
            "addressed_to_transport": addressed,
            "irc_server": server,
            "irc_channel": channel,
            "irc_command": self.command,
        }});
        let mut transport_metadata = Map::new();
        transport_metadata.insert("irc_channel".into(), json!(channel));
        Some(Inbound {
            to_addr,
            from_addr: self.sender.clone(),
            group: channel,
            content,
            helper_metadata: helper.as_object().cloned().unwrap_or_default(),
            transport_metadata,
        })
    }
}

/// The fields of an inbound message (Vumi's `handle_inbound_irc_message`).
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub to_addr: String,
    pub from_addr: String,
    pub group: Option<String>,
    pub content: String,
    pub helper_metadata: Map<String, Value>,
    pub transport_metadata: Map<String, Value>,
}

/// A CTCP request (`\x01VERB args\x01`) other than ACTION: answered or ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum Ctcp {
    /// `VERSION`: answered with hornbill's name.
    Version,
    /// `PING <token>`: answered with the token.
    Ping(String),
    /// Anything else, ignored.
    Other(String),
}

/// What a received line means to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message from a user (addressed or not).
    Said(Said),
    /// A CTCP request from `from`.
    Ctcp { from: String, request: Ctcp },
    /// The server's PING: answered with a PONG of the same arguments.
    Ping(String, Option<String>),
    /// 001: registered under `nick`.
    Welcome { nick: String },
    /// 433 (or 436, 437): the nickname is taken.
    NickInUse(String),
    /// 432: the server refuses the nickname itself.
    BadNick(String),
    /// Someone's nick changed (ours, when `old` is our nick).
    NickChanged { old: String, new: String },
    /// `nick` joined `channel` (we did, when `nick` is ours).
    Joined { nick: String, channel: String },
    /// We were kicked from a channel.
    Kicked {
        channel: String,
        nick: String,
        reason: String,
    },
    /// A JOIN refused (471, 473, 474, 475, 405, ...): channel and reason.
    JoinRefused { channel: String, reason: String },
    /// A line to `target` refused: 401 (no such nick), 403 (no such channel; also the answer
    /// to a JOIN), 404 (cannot send to the channel).
    Undeliverable {
        code: u16,
        target: String,
        reason: String,
    },
    /// The server's PONG: its token (ours, when we sent a PING).
    Pong(String),
    /// 464: the server password is wrong.
    BadPassword(String),
    /// ERROR: the server is closing the link.
    Error(String),
    /// Anything else (MOTD, NOTICEs, other users' JOINs, ...).
    Other,
}

/// Reads one line (without CR LF); `Err` with the parser's reason when it is not IRC.
pub fn parse(line: &str) -> Result<Event, String> {
    let msg: IrcLine = line.parse().map_err(|e| format!("{e}"))?;
    if matches!(&msg.command, Command::Raw(c, _) if c.is_empty()) {
        return Err(format!("no command in {line:?}"));
    }
    let nick = || match &msg.prefix {
        Some(Prefix::Nickname(n, _, _)) => Some(n.clone()),
        _ => None,
    };
    Ok(match &msg.command {
        Command::PRIVMSG(target, text) => {
            // Only users say things; a server's PRIVMSG is not a user's message.
            let Some(sender) = nick() else {
                return Ok(Event::Other);
            };
            match ctcp(text) {
                Some(("ACTION", rest)) => Event::Said(Said {
                    sender: canonical(&sender),
                    recipient: canonical(target),
                    content: rest.to_string(),
                    command: "ACTION",
                }),
                Some((verb, rest)) => Event::Ctcp {
                    from: sender,
                    request: match verb.to_ascii_uppercase().as_str() {
                        "VERSION" => Ctcp::Version,
                        "PING" => Ctcp::Ping(rest.to_string()),
                        other => Ctcp::Other(other.to_string()),
                    },
                },
                None => Event::Said(Said {
                    sender: canonical(&sender),
                    recipient: canonical(target),
                    content: text.clone(),
                    command: "PRIVMSG",
                }),
            }
        }
        Command::PING(a, b) => Event::Ping(a.clone(), b.clone()),
        Command::PONG(a, b) => Event::Pong(b.clone().unwrap_or_else(|| a.clone())),
        Command::NICK(new) => match nick() {
            Some(old) => Event::NickChanged {
                old,
                new: new.clone(),
            },
            None => Event::Other,
        },
        Command::JOIN(channels, _, _) => match nick() {
            Some(nick) => Event::Joined {
                nick,
                channel: channels.clone(),
            },
            None => Event::Other,
        },
        Command::KICK(channel, who, reason) => Event::Kicked {
            channel: channel.clone(),
            nick: who.clone(),
            reason: reason.clone().unwrap_or_default(),
        },
        Command::ERROR(why) => Event::Error(why.clone()),
        Command::Response(code, args) => response(*code as u16, args),
        _ => Event::Other,
    })
}

/// A numeric reply: `args` are its parameters, the first being our nick.
fn response(code: u16, args: &[String]) -> Event {
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let last = || args.last().cloned().unwrap_or_default();
    match code {
        1 => Event::Welcome { nick: arg(0) },
        // In use, collided, or held for a while after someone left with it.
        433 | 436 | 437 => Event::NickInUse(arg(1)),
        432 => Event::BadNick(arg(1)),
        464 => Event::BadPassword(last()),
        // Cannot join: no such channel, too many channels, full, invite only, banned, key.
        401 | 403 | 404 => Event::Undeliverable {
            code,
            target: arg(1),
            reason: format!("{code} {}", last()),
        },
        405 | 471 | 473 | 474 | 475 | 476 | 477 => Event::JoinRefused {
            channel: arg(1),
            reason: format!("{code} {}", last()),
        },
        _ => Event::Other,
    }
}

/// A CTCP request's verb and argument, when `text` is one (`\x01VERB args\x01`).
fn ctcp(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('\x01')?;
    let inner = inner.strip_suffix('\x01').unwrap_or(inner);
    Some(inner.split_once(' ').unwrap_or((inner, "")))
}

/// How a message is sent (`helper_metadata.irc.irc_command`, Vumi's key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Privmsg,
    /// `/me`: a CTCP ACTION in a PRIVMSG.
    Action,
    Notice,
}

impl Verb {
    fn command(self) -> &'static str {
        match self {
            Verb::Privmsg | Verb::Action => "PRIVMSG",
            Verb::Notice => "NOTICE",
        }
    }
}

/// A message to send, as lines: where it goes and each line's text.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub target: String,
    pub verb: Verb,
    /// Each one line of the protocol (without CR LF).
    pub lines: Vec<String>,
}

/// Where an outbound message goes and its lines (Vumi's `handle_outbound_message`): to its
/// `group` (or `transport_metadata.irc_channel`) when it has one, the text then prefixed
/// `to_addr: ` (a reply in a channel names whom it answers); else to `to_addr`, a nick or a
/// channel. Text longer than a line is split (each piece of a channel reply prefixed again),
/// and so is text with line breaks. `Err` with the reason when it cannot be sent.
pub fn outgoing(msg: &crate::message::Message, nick: &str) -> Result<Outgoing, String> {
    let irc = msg.helper_metadata.get("irc");
    let verb = match irc
        .and_then(|v| v.get("irc_command"))
        .and_then(Value::as_str)
    {
        None => Verb::Privmsg,
        Some(c) if c.eq_ignore_ascii_case("PRIVMSG") => Verb::Privmsg,
        Some(c) if c.eq_ignore_ascii_case("ACTION") => Verb::Action,
        Some(c) if c.eq_ignore_ascii_case("NOTICE") => Verb::Notice,
        Some(other) => {
            return Err(format!(
                "irc_command {other:?} is not one of PRIVMSG, ACTION, NOTICE"
            ));
        }
    };
    let channel = msg.group.clone().filter(|g| !g.is_empty()).or_else(|| {
        msg.transport_metadata
            .get("irc_channel")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    });
    let to_addr = msg.to_addr.clone().filter(|t| !t.is_empty());
    let target = match (&channel, &to_addr) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => return Err("no to_addr or group to send to".into()),
    };
    check_target(&target)?;
    // A directed line in a channel, as Vumi writes it (not for an action, nor when the
    // address is the channel itself).
    let prefix = match (&channel, &to_addr) {
        (Some(_), Some(to)) if verb != Verb::Action && !is_channel(to) => format!("{to}: "),
        _ => String::new(),
    };
    let text = msg.content.clone().unwrap_or_default();
    let budget = budget(nick, &target, verb)
        .checked_sub(prefix.len())
        .filter(|b| *b >= 16)
        .ok_or_else(|| format!("{target:?} leaves no room for text in a line"))?;
    let mut lines = Vec::new();
    for paragraph in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        // NUL cannot travel in a line; other control characters (colours, bold) can.
        let paragraph = paragraph.replace('\0', "");
        if paragraph.trim().is_empty() {
            continue;
        }
        for piece in split(&paragraph, budget) {
            let body = format!("{prefix}{piece}");
            lines.push(match verb {
                Verb::Action => format!("\x01ACTION {body}\x01"),
                _ => body,
            });
        }
    }
    if lines.is_empty() {
        return Err("the message has no text (IRC cannot send an empty line)".into());
    }
    Ok(Outgoing {
        target,
        verb,
        lines,
    })
}

impl Outgoing {
    /// The protocol lines, each with CR LF.
    pub fn wire(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|text| format!("{} {} :{text}\r\n", self.verb.command(), self.target))
            .collect()
    }
}

/// A nick or channel we may write to: not empty, no spaces, commas or line breaks, not a
/// `:` first (each would change the line's meaning).
fn check_target(target: &str) -> Result<(), String> {
    let bad = target.is_empty()
        || target.starts_with(':')
        || target
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    if bad {
        Err(format!("{target:?} is not an IRC nickname or channel"))
    } else {
        Ok(())
    }
}

/// Bytes of text one line to `target` may hold: 512 less CR LF, the command and target, and
/// the prefix the server relays it with (counted at its largest), and the CTCP wrapping of
/// an action.
pub fn budget(nick: &str, target: &str, verb: Verb) -> usize {
    let relay = 1 + nick.len() + 1 + RELAY_USER + 1 + RELAY_HOST + 1;
    let command = verb.command().len() + 1 + target.len() + 2;
    let ctcp = if verb == Verb::Action { 9 } else { 0 };
    MAX_LINE.saturating_sub(2 + relay + command + ctcp)
}

/// `text` in pieces of at most `max` bytes, cut on UTF-8 character boundaries, at the last
/// whitespace that fits when there is one (the whitespace at a cut is dropped).
pub fn split(text: &str, max: usize) -> Vec<String> {
    let max = max.max(4);
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut end = max;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let window = &rest[..end];
        // A space right after the window is the best cut of all.
        let cut = rest[end..]
            .starts_with(char::is_whitespace)
            .then_some(end)
            .filter(|i| *i > 0)
            .or_else(|| {
                window
                    .char_indices()
                    .filter(|(_, c)| c.is_whitespace())
                    .map(|(i, _)| i)
                    .next_back()
                    .filter(|i| *i > 0)
            });
        match cut {
            Some(i) => {
                pieces.push(rest[..i].to_string());
                rest = rest[i..].trim_start();
            }
            None => {
                pieces.push(window.to_string());
                rest = &rest[end..];
            }
        }
    }
    if !rest.is_empty() {
        pieces.push(rest.to_string());
    }
    pieces
}

/// The lines that sign on: PASS (when there is a password), NICK, USER.
pub fn register(password: Option<&str>, nick: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        lines.push(format!("PASS {p}\r\n"));
    }
    lines.push(format!("NICK {nick}\r\n"));
    lines.push(format!("USER {nick} 0 * :{REALNAME}\r\n"));
    lines
}

/// The nickname to try after `taken` was refused as in use: the configured one with one
/// more `_` (`bot_`, `bot__`, ...), up to `max_len` (the server's NICKLEN; 9 by RFC 1459),
/// then the configured one's head with random digits.
pub fn next_nick(configured: &str, taken: &str, max_len: usize) -> String {
    let max_len = max_len.max(configured.len()).max(4);
    let underscored =
        if taken.starts_with(configured) && taken[configured.len()..].bytes().all(|b| b == b'_') {
            Some(format!("{taken}_"))
        } else {
            None
        };
    match underscored {
        Some(n) if n.len() <= max_len => n,
        _ => {
            let head: String = configured.chars().take(max_len.saturating_sub(3)).collect();
            format!("{head}{:03}", fastrand::u16(..1000))
        }
    }
}

/// A line as the protocol log shows it (without CR LF), the server password hidden.
pub fn describe(line: &str) -> String {
    let line = line.trim_end_matches(['\r', '\n']);
    let (tags, rest) = match line.strip_prefix('@') {
        Some(_) => line
            .split_once(' ')
            .map(|(t, r)| (Some(t), r))
            .unwrap_or((None, line)),
        None => (None, line),
    };
    let (prefix, command_line) = match rest.strip_prefix(':') {
        Some(_) => rest
            .split_once(' ')
            .map(|(p, r)| (Some(p), r))
            .unwrap_or((None, rest)),
        None => (None, rest),
    };
    let command = command_line.split(' ').next().unwrap_or("");
    if command.eq_ignore_ascii_case("PASS") {
        let mut out = String::new();
        for part in [tags, prefix].into_iter().flatten() {
            out.push_str(part);
            out.push(' ');
        }
        out.push_str("PASS ***");
        return out;
    }
    line.to_string()
}

/// The nick length the server announces (`NICKLEN=` in 005), if this line has it.
pub fn nicklen(line: &str) -> Option<usize> {
    let msg: IrcLine = line.parse().ok()?;
    let Command::Response(code, args) = &msg.command else {
        return None;
    };
    if *code as u16 != 5 {
        return None;
    }
    args.iter()
        .find_map(|a| a.strip_prefix("NICKLEN="))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn said(line: &str) -> Said {
        match parse(line).unwrap() {
            Event::Said(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn private_messages_are_inbound_from_the_sender() {
        let s = said(":Alice!a@host PRIVMSG HornBot :hello there");
        let i = s.inbound("HornBot", "127.0.0.1:6667").unwrap();
        assert_eq!(i.from_addr, "alice");
        assert_eq!(i.to_addr, "hornbot");
        assert_eq!(i.group, None);
        assert_eq!(i.content, "hello there");
        assert_eq!(i.helper_metadata["irc"]["irc_command"], "PRIVMSG");
        assert_eq!(i.helper_metadata["irc"]["addressed_to_transport"], true);
        assert_eq!(i.transport_metadata["irc_channel"], Value::Null);
    }

    #[test]
    fn channel_lines_count_when_they_start_with_the_nick() {
        for (line, content) in [
            ("bot: hi there", "hi there"),
            ("bot, hi", "hi"),
            ("BOT hi", "hi"),
            ("bot:: hi", "hi"),
            ("bot:", ""),
        ] {
            let s = said(&format!(":Bob!b@h PRIVMSG #Room :{line}"));
            let i = s.inbound("Bot", "srv").unwrap_or_else(|| panic!("{line}"));
            assert_eq!(i.content, content, "{line}");
            assert_eq!(i.group.as_deref(), Some("#room"));
            assert_eq!(i.to_addr, "bot");
            assert_eq!(i.from_addr, "bob");
            assert_eq!(i.transport_metadata["irc_channel"], "#room");
            assert_eq!(i.helper_metadata["irc"]["irc_channel"], "#room");
        }
        for line in ["hi bot", "botany is fun", "robot: hi", ""] {
            let s = said(&format!(":Bob!b@h PRIVMSG #room :{line}"));
            assert_eq!(s.inbound("bot", "srv"), None, "{line:?}");
        }
    }

    #[test]
    fn actions_and_ctcp() {
        let s = said(":Al!a@h PRIVMSG bot :\x01ACTION waves\x01");
        assert_eq!(s.command, "ACTION");
        assert_eq!(s.content, "waves");
        assert_eq!(
            parse(":Al!a@h PRIVMSG bot :\x01VERSION\x01").unwrap(),
            Event::Ctcp {
                from: "Al".into(),
                request: Ctcp::Version
            }
        );
        assert_eq!(
            parse(":Al!a@h PRIVMSG bot :\x01PING 123\x01").unwrap(),
            Event::Ctcp {
                from: "Al".into(),
                request: Ctcp::Ping("123".into())
            }
        );
        // A server's PRIVMSG is not a user's message.
        assert_eq!(
            parse(":irc.example.net PRIVMSG bot :hi").unwrap(),
            Event::Other
        );
    }

    #[test]
    fn numerics_and_commands() {
        assert_eq!(
            parse(":irc.x 001 bot_ :Welcome").unwrap(),
            Event::Welcome {
                nick: "bot_".into()
            }
        );
        assert_eq!(
            parse(":irc.x 433 * bot :Nickname already in use").unwrap(),
            Event::NickInUse("bot".into())
        );
        assert_eq!(
            parse("PING :irc.x").unwrap(),
            Event::Ping("irc.x".into(), None)
        );
        assert_eq!(
            parse("ERROR :Closing connection").unwrap(),
            Event::Error("Closing connection".into())
        );
        assert!(matches!(
            parse(":irc.x 474 bot #c :Cannot join channel (+b)").unwrap(),
            Event::JoinRefused { channel, .. } if channel == "#c"
        ));
        assert_eq!(
            nicklen(":irc.x 005 bot NICKLEN=9 CHANTYPES=# :are supported"),
            Some(9)
        );
        assert_eq!(
            parse(":irc.x 401 bot ghost :No such nick or channel name").unwrap(),
            Event::Undeliverable {
                code: 401,
                target: "ghost".into(),
                reason: "401 No such nick or channel name".into()
            }
        );
        assert_eq!(
            parse(":irc.x PONG irc.x :hb-7").unwrap(),
            Event::Pong("hb-7".into())
        );
        assert!(parse(":only-a-prefix").is_err());
    }

    fn message(to: Option<&str>, group: Option<&str>, content: &str) -> Message {
        let mut m = Message::new(to.map(Into::into), Some("bot".into()), Some(content.into()));
        m.group = group.map(Into::into);
        m
    }

    #[test]
    fn replies_go_where_the_message_came_from() {
        let o = outgoing(&message(Some("alice"), Some("#room"), "hi"), "bot").unwrap();
        assert_eq!(o.wire(), ["PRIVMSG #room :alice: hi\r\n"]);
        let o = outgoing(&message(Some("alice"), None, "hi"), "bot").unwrap();
        assert_eq!(o.wire(), ["PRIVMSG alice :hi\r\n"]);
        let o = outgoing(&message(Some("#room"), None, "all"), "bot").unwrap();
        assert_eq!(o.wire(), ["PRIVMSG #room :all\r\n"]);
        // Vumi's pre-group key.
        let mut m = message(Some("alice"), None, "hi");
        m.transport_metadata
            .insert("irc_channel".into(), json!("#old"));
        assert_eq!(
            outgoing(&m, "bot").unwrap().wire(),
            ["PRIVMSG #old :alice: hi\r\n"]
        );
        let mut m = message(Some("alice"), Some("#room"), "waves");
        m.helper_metadata
            .insert("irc".into(), json!({"irc_command": "ACTION"}));
        assert_eq!(
            outgoing(&m, "bot").unwrap().wire(),
            ["PRIVMSG #room :\x01ACTION waves\x01\r\n"]
        );
    }

    #[test]
    fn what_cannot_be_sent_is_refused_with_a_reason() {
        assert!(outgoing(&message(None, None, "x"), "bot").is_err());
        assert!(outgoing(&message(Some("a b"), None, "x"), "bot").is_err());
        assert!(outgoing(&message(Some("a\r\nQUIT"), None, "x"), "bot").is_err());
        assert!(outgoing(&message(Some(":x"), None, "x"), "bot").is_err());
        assert!(outgoing(&message(Some("alice"), None, " \n "), "bot").is_err());
        let mut m = message(Some("a"), None, "x");
        m.helper_metadata
            .insert("irc".into(), json!({"irc_command": "KICK"}));
        assert!(outgoing(&m, "bot").unwrap_err().contains("KICK"));
    }

    #[test]
    fn line_breaks_become_lines_and_cannot_inject_commands() {
        let o = outgoing(&message(Some("al"), None, "one\r\nQUIT :x\n\ntwo"), "bot").unwrap();
        assert_eq!(
            o.wire(),
            [
                "PRIVMSG al :one\r\n",
                "PRIVMSG al :QUIT :x\r\n",
                "PRIVMSG al :two\r\n"
            ]
        );
    }

    #[test]
    fn long_text_is_split_within_the_line_limit() {
        let nick = "hornbot";
        let words: Vec<String> = (0..300).map(|i| format!("wörd{i}")).collect();
        let text = words.join(" ");
        let o = outgoing(&message(Some("alice"), Some("#room"), &text), nick).unwrap();
        assert!(o.lines.len() > 3, "{}", o.lines.len());
        let relay = format!(
            ":{nick}!{}@{} ",
            "u".repeat(RELAY_USER),
            "h".repeat(RELAY_HOST)
        );
        let mut joined = Vec::new();
        for line in o.wire() {
            assert!(relay.len() + line.len() <= MAX_LINE, "{}", line.len());
            let text = line
                .strip_prefix("PRIVMSG #room :alice: ")
                .unwrap()
                .trim_end();
            // Cut between words, never inside one.
            assert!(!text.starts_with(' ') && !text.ends_with(' '));
            joined.push(text.to_string());
        }
        assert_eq!(joined.join(" "), text);
    }

    #[test]
    fn split_respects_char_boundaries_without_whitespace() {
        let text = "€".repeat(100);
        let pieces = split(&text, 31);
        assert!(pieces.iter().all(|p| p.len() <= 31 && p.len() % 3 == 0));
        assert_eq!(pieces.concat(), text);
        assert_eq!(split("short", 100), ["short"]);
        assert_eq!(split("aa bb cc", 5), ["aa bb", "cc"]);
    }

    #[test]
    fn pass_is_hidden_in_the_log() {
        assert_eq!(describe("PASS s3cr3t\r\n"), "PASS ***");
        assert_eq!(describe("pass :s3 cr3t"), "PASS ***");
        assert_eq!(describe("NICK bot\r\n"), "NICK bot");
        assert_eq!(
            register(Some("pw"), "bot"),
            ["PASS pw\r\n", "NICK bot\r\n", "USER bot 0 * :hornbill\r\n"]
        );
        assert_eq!(register(None, "bot").len(), 2);
    }

    #[test]
    fn nick_collisions_add_underscores_then_digits() {
        assert_eq!(next_nick("bot", "bot", 9), "bot_");
        assert_eq!(next_nick("bot", "bot_", 9), "bot__");
        assert_eq!(next_nick("hornbot", "hornbot_", 9), "hornbot__");
        let n = next_nick("hornbot", "hornbot__", 9);
        assert!(n.starts_with("hornbo") && n.len() == 9, "{n}");
        let n = next_nick("hornbot", "hornbot", 7);
        assert!(n.starts_with("horn") && n.len() == 7, "{n}");
    }
}
