//! Channel type `telegram`: one Telegram bot, through the Bot API
//! (`{api_url}/bot<bot_token>/METHOD`, JSON bodies, answers `{"ok": true, "result": …}` or
//! `{"ok": false, "error_code", "description", "parameters"}`).
//!
//! At start the channel calls `setWebhook` with its public callback URL
//! (`{public}/channels/{id}/{secret}/receive`), `allowed_updates: ["message", "callback_query"]` and a
//! `secret_token`; the setup status is `setup_done` once Telegram answers `ok: true`, and
//! `setup_failed` (Telegram's description; tried again with backoff) until then. The secret
//! token is derived, not stored: the hex HMAC-SHA256 of `hornbill telegram webhook <channel
//! id>` keyed with the bot token. So it is the same after a restart and on every node of a
//! cluster, survives a rotation of the callback secret (the URL changes, the header does not
//! need to), differs between channels, and cannot be computed by someone who only learned the
//! callback URL (from a proxy's log, say): only by someone holding the bot token, who could
//! set the webhook anyway. It is never logged.
//!
//! Callback (`receive`): Telegram's POSTed `Update`s, which must carry
//! `X-Telegram-Bot-Api-Secret-Token` equal to that token (403 otherwise, logged and counted,
//! nothing delivered). A `message` with text, a caption or media, a location, venue or contact
//! is an inbound message, and so is a press of an inline keyboard's button (`callback_query`:
//! its `data` the content, `channel_data.telegram.callback_query_id`; answered with
//! `answerCallbackQuery` in the webhook's answer); any other update (edits, channel posts,
//! member changes) and service messages (members joining, pinned messages) are answered 200
//! and ignored, with a log line. Inbound: `from` is the chat id (so a reply goes back to the chat
//! the message came from; in a group that is the group), `to` the bot (`bot_username`, else the
//! bot's numeric id, the part of the token before `:`), `group` the chat id for `group` and
//! `supergroup` chats. The text or caption is the content. A medium (`photo`: its largest
//! size, `animation`, `video`, `video_note`, `voice`, `audio`, `document`, `sticker`) is an
//! attachment whose URL is hornbill's `…/media/{file_id}`: fetching it calls `getFile` and
//! downloads `{api_url}/file/bot<token>/<file_path>` (the bot token stays inside; Telegram
//! lets bots download files of up to 20 MB). The sender (`from`), the chat, the message id
//! and, where present, the message replied to, the album (`media_group_id`), a forum topic,
//! the file name, a sticker's emoji, a location, venue or contact are in
//! `channel_data.telegram`; the update id, message id, chat id and type and date in
//! `transport_metadata.telegram`.
//!
//! Sends: `to` is a chat id (digits, `-` for groups) or `@channelusername`. Text goes with
//! `sendMessage`; each attachment with its own request by content type (`image/gif`
//! `sendAnimation`, `image/*` `sendPhoto`, `video/*` `sendVideo`, `audio/ogg` `sendVoice`,
//! other `audio/*` `sendAudio`, anything else `sendDocument`), the URL as the file field
//! (Telegram fetches it: 5 MB for photos, 20 MB for others; `sendDocument` by URL only takes
//! GIF, PDF and ZIP). The content is the first attachment's caption when that one has none
//! and it fits Telegram's 1024 characters (UTF-16 code units, as Telegram counts); otherwise
//! it is a `sendMessage` after the media. A retry sends every part again.
//! `sendMediaGroup` is not used: it takes only photos and videos together, or documents, or
//! audio, 2 to 10 of them, where one request per attachment takes any mix. A reply (the
//! message it answers came from the same chat) quotes it (`reply_parameters`, with
//! `allow_sending_without_reply`, so a deleted original does not fail it) and stays in its
//! forum topic. `channel_data.telegram` may carry `parse_mode`, `entities`,
//! `link_preview_options`, `disable_notification`, `protect_content`, `message_thread_id` and
//! `reply_markup` (keyboards; on the last request of the message); any other key there is
//! not sent (a reply carries the inbound message's `channel_data.telegram`).
//!
//! Send answers: `result.message_id` with `result.chat.id` is the provider id,
//! `<chat id>:<message id>`. 429 with `parameters.retry_after` pauses the channel that many
//! seconds; other 429s and 5xx are retried; every other refusal is final, with Telegram's
//! `description` (403 `Forbidden: bot was blocked by the user`, 400 `Bad Request: chat not
//! found`; a group upgraded to a supergroup names its new chat id). Telegram has no
//! delivery reports for bots.

use crate::message::{Attachment, Message};
use crate::transports::aggregator::{
    self, Inbound, InboundMedia, MediaAt, Provider, ProviderRequest, ProviderResponse, Received,
    Refusal, RequestBody, SendContext, SendOutcome,
};
use crate::transports::{Callback, CallbackResponse};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

const LIVE: &str = "https://api.telegram.org";
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// Longest caption Telegram takes (it counts UTF-16 code units, after entity parsing: the
/// raw text's count is never less).
const MAX_CAPTION: usize = 1024;
/// Keys of `channel_data.telegram` passed on to the send methods.
const PASSED: &[&str] = &[
    "parse_mode",
    "entities",
    "link_preview_options",
    "disable_notification",
    "protect_content",
    "message_thread_id",
    "reply_markup",
];
/// Of those, the ones only `sendMessage` takes.
const TEXT_ONLY: &[&str] = &["entities", "link_preview_options"];

fn default_timeout() -> f64 {
    10.0
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot's token from @BotFather (`123456789:AA…`): part of every API URL, never shown.
    pub bot_token: String,
    /// The bot's username (`to` of inbound messages; a leading `@` is dropped). Default: the
    /// bot's numeric id, from the token.
    #[serde(default)]
    pub bot_username: Option<String>,
    /// Replaces `https://api.telegram.org` (a local Bot API server, a test stub).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    #[serde(default)]
    pub transport_type: Option<String>,
}

/// Whether `token` looks like a bot token: the bot's id, `:`, then letters, digits, `_`, `-`
/// (it goes into URL paths as it is).
fn token_like(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, rest)) => {
            !id.is_empty()
                && id.chars().all(|c| c.is_ascii_digit())
                && !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }
        None => false,
    }
}

impl aggregator::TypeConfig for TelegramConfig {
    fn check(&mut self) -> Result<(), String> {
        if self.bot_token.is_empty() {
            return Err("bot_token must not be empty".into());
        }
        if !token_like(&self.bot_token) {
            // (The token itself is not repeated.)
            return Err(
                "bot_token must look like 123456789:AAH… (the token @BotFather gave)".into(),
            );
        }
        if let Some(u) = &mut self.bot_username {
            let name = u.trim_start_matches('@').to_string();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err("bot_username must be letters, digits and _".into());
            }
            *u = name;
        }
        if let Some(b) = &self.api_url {
            crate::transports::check_http_url("api_url", b)?;
        }
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `telegram` channel type.
pub type TelegramFactory = aggregator::Factory<Telegram>;

impl aggregator::HttpType for Telegram {
    const TYPE: &'static str = "telegram";
    const TRANSPORT_TYPE: &'static str = "telegram";
    const ACTIONS: &'static [&'static str] = &["receive"];
    const MEDIA: bool = true;
    type Config = TelegramConfig;

    fn new(cfg: TelegramConfig, cx: &aggregator::StartContext) -> Self {
        Telegram {
            secret_token: secret_token(&cfg.bot_token, cx.channel_id),
            webhook_url: cx.callback_base.map(|b| format!("{b}/receive")),
            cfg,
        }
    }
}

pub struct Telegram {
    pub cfg: TelegramConfig,
    /// `setWebhook`'s `url`; `None` when the public listener is off.
    webhook_url: Option<String>,
    /// `setWebhook`'s `secret_token`, which every update must carry.
    secret_token: String,
}

/// The webhook's `secret_token` of channel `channel_id`: the hex HMAC-SHA256 of
/// `hornbill telegram webhook <channel id>` keyed with the bot token (64 characters of the
/// 1-256 `A-Z a-z 0-9 _ -` Telegram allows).
pub fn secret_token(bot_token: &str, channel_id: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(bot_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC keys may have any length"));
    mac.update(format!("hornbill telegram webhook {channel_id}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A chat id or user id as text (Telegram sends numbers; up to 52 bits).
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The send method and its file field for a medium of this content type.
fn send_method(content_type: Option<&str>) -> (&'static str, &'static str) {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let base = ct.split(';').next().unwrap_or("").trim();
    if base == "image/gif" {
        ("sendAnimation", "animation")
    } else if base.starts_with("image/") {
        ("sendPhoto", "photo")
    } else if base.starts_with("video/") {
        ("sendVideo", "video")
    } else if base == "audio/ogg" || base == "audio/opus" {
        ("sendVoice", "voice")
    } else if base.starts_with("audio/") {
        ("sendAudio", "audio")
    } else {
        ("sendDocument", "document")
    }
}

/// The medium of a message, if any: (its file id, content type, kind).
fn medium(m: &Value) -> Option<(String, String, &'static str)> {
    if let Some(sizes) = m["photo"].as_array() {
        // The sizes of one photo; the largest is the photo.
        let largest = sizes.iter().max_by_key(|p| {
            let area = p["width"].as_u64().unwrap_or(0) * p["height"].as_u64().unwrap_or(0);
            (area, p["file_size"].as_u64().unwrap_or(0))
        })?;
        return Some((
            str_of(largest, "file_id")?.to_string(),
            "image/jpeg".into(),
            "photo",
        ));
    }
    // `animation` first: a message with one has `document` too (Telegram's compatibility).
    for (kind, default_type) in [
        ("animation", "video/mp4"),
        ("video", "video/mp4"),
        ("video_note", "video/mp4"),
        ("voice", "audio/ogg"),
        ("audio", "audio/mpeg"),
        ("document", "application/octet-stream"),
    ] {
        let o = &m[kind];
        if let Some(id) = str_of(o, "file_id") {
            let ct = str_of(o, "mime_type").unwrap_or(default_type);
            return Some((id.to_string(), ct.to_string(), kind));
        }
    }
    let s = &m["sticker"];
    let id = str_of(s, "file_id")?;
    let ct = if s["is_animated"].as_bool() == Some(true) {
        "application/x-tgsticker"
    } else if s["is_video"].as_bool() == Some(true) {
        "video/webm"
    } else {
        "image/webp"
    };
    Some((id.to_string(), ct.into(), "sticker"))
}

impl Telegram {
    fn api(&self) -> &str {
        self.cfg
            .api_url
            .as_deref()
            .unwrap_or(LIVE)
            .trim_end_matches('/')
    }

    /// `POST {api}/bot<token>/{method}` with a JSON body.
    fn call(&self, method: &str, body: Value) -> ProviderRequest {
        ProviderRequest::new(
            "POST",
            format!("{}/bot{}/{method}", self.api(), self.cfg.bot_token),
            RequestBody::Json(body),
        )
    }

    /// `to` of inbound messages: the bot's username, else its numeric id.
    fn bot(&self) -> String {
        match &self.cfg.bot_username {
            Some(u) => u.clone(),
            None => self
                .cfg
                .bot_token
                .split_once(':')
                .map(|(id, _)| id.to_string())
                .unwrap_or_default(),
        }
    }

    /// One update's `message` (`None`: a service message, nothing for the application).
    pub fn read_message(&self, m: &Value, update_id: &Value) -> Result<Option<Inbound>, String> {
        let chat = &m["chat"];
        let chat_id = id_text(&chat["id"]).ok_or("a message without chat.id")?;
        let chat_type = str_of(chat, "type").unwrap_or("private");
        let content = str_of(m, "text")
            .or_else(|| str_of(m, "caption"))
            .map(str::to_string);
        let mut app = Map::new();
        let mut media = Vec::new();
        if let Some((file_id, content_type, kind)) = medium(m) {
            let o = &m[kind];
            if let Some(name) = o.get("file_name") {
                app.insert("file_name".into(), name.clone());
            }
            if kind == "sticker"
                && let Some(e) = o.get("emoji")
            {
                app.insert("sticker_emoji".into(), e.clone());
            }
            media.push(InboundMedia {
                at: MediaAt::Provider(file_id),
                content_type: Some(content_type),
                caption: str_of(m, "caption").map(str::to_string),
            });
        }
        for k in ["location", "venue", "contact"] {
            if let Some(v) = m.get(k) {
                app.insert(k.into(), v.clone());
            }
        }
        if content.is_none() && media.is_empty() && app.is_empty() {
            return Ok(None);
        }
        for k in ["from", "chat", "message_id", "media_group_id"] {
            if let Some(v) = m.get(k) {
                app.insert(k.into(), v.clone());
            }
        }
        if let Some(r) = m["reply_to_message"].get("message_id") {
            app.insert("reply_to_message_id".into(), r.clone());
        }
        let mut meta = Map::new();
        meta.insert("update_id".into(), update_id.clone());
        meta.insert("chat_id".into(), chat["id"].clone());
        meta.insert("chat_type".into(), Value::String(chat_type.into()));
        for k in ["message_id", "date"] {
            if let Some(v) = m.get(k) {
                meta.insert(k.into(), v.clone());
            }
        }
        if m["is_topic_message"].as_bool() == Some(true)
            && let Some(t) = m.get("message_thread_id")
        {
            meta.insert("message_thread_id".into(), t.clone());
            app.insert("message_thread_id".into(), t.clone());
        }
        Ok(Some(
            self.inbound(chat_id, chat_type, content, meta, app, media),
        ))
    }

    /// An inbound message from chat `chat_id`: `app` goes to its `channel_data.telegram`; a
    /// group's or supergroup's messages have the chat as their `group` too.
    fn inbound(
        &self,
        chat_id: String,
        chat_type: &str,
        content: Option<String>,
        mut metadata: Map<String, Value>,
        app: Map<String, Value>,
        media: Vec<InboundMedia>,
    ) -> Inbound {
        metadata.insert(
            aggregator::CHANNEL_DATA.into(),
            json!({ "telegram": Value::Object(app) }),
        );
        let group = matches!(chat_type, "group" | "supergroup").then(|| chat_id.clone());
        Inbound {
            from: chat_id,
            to: self.bot(),
            group,
            content,
            metadata,
            media,
        }
    }

    /// A press of an inline keyboard's button (`callback_query`): an inbound message from
    /// the chat the keyboard is in, its `data` the content (`None`: no data, a game's).
    pub fn read_callback_query(
        &self,
        q: &Value,
        update_id: &Value,
    ) -> Result<Option<Inbound>, String> {
        let query_id = str_of(q, "id").ok_or("a callback_query without id")?;
        let Some(data) = str_of(q, "data") else {
            return Ok(None);
        };
        // A keyboard under an inline-mode message has no chat: the presser's private chat.
        let chat = &q["message"]["chat"];
        let chat_value = if chat.get("id").is_some() {
            chat["id"].clone()
        } else {
            q["from"]["id"].clone()
        };
        let chat_id = id_text(&chat_value).ok_or("a callback_query without a chat or a sender")?;
        let chat_type = str_of(chat, "type").unwrap_or("private");
        let mut app = Map::new();
        app.insert("callback_query_id".into(), query_id.into());
        app.insert("callback_data".into(), data.into());
        for k in ["from", "inline_message_id"] {
            if let Some(v) = q.get(k) {
                app.insert(k.into(), v.clone());
            }
        }
        if chat.is_object() {
            app.insert("chat".into(), chat.clone());
        }
        if let Some(v) = q["message"].get("message_id") {
            // The message that carries the keyboard.
            app.insert("keyboard_message_id".into(), v.clone());
        }
        let mut meta = Map::new();
        meta.insert("update_id".into(), update_id.clone());
        meta.insert("chat_id".into(), chat_value);
        meta.insert("chat_type".into(), Value::String(chat_type.into()));
        meta.insert("callback_query_id".into(), query_id.into());
        let content = Some(data.to_string());
        Ok(Some(self.inbound(
            chat_id,
            chat_type,
            content,
            meta,
            app,
            Vec::new(),
        )))
    }

    /// What one `Update` holds for the channel.
    pub fn read_update(&self, body: &Value) -> Result<Received, Refusal> {
        let Some(update_id) = body.get("update_id").filter(|u| u.is_u64()) else {
            return Err(Refusal::bad_request("not a Telegram update (no update_id)"));
        };
        if let Some(q) = body.get("callback_query").filter(|q| q.is_object()) {
            return Ok(
                match self
                    .read_callback_query(q, update_id)
                    .map_err(Refusal::bad_request)?
                {
                    Some(inbound) => Received::Messages(vec![inbound]),
                    None => Received::Ignored(format!(
                        "update {update_id}: a button press without data (a game)"
                    )),
                },
            );
        }
        let Some(m) = body.get("message").filter(|m| m.is_object()) else {
            let kinds: Vec<&str> = body
                .as_object()
                .map(|o| {
                    o.keys()
                        .map(String::as_str)
                        .filter(|k| *k != "update_id")
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Received::Ignored(format!(
                "update {update_id}: no message ({})",
                kinds.join(", ")
            )));
        };
        Ok(
            match self
                .read_message(m, update_id)
                .map_err(Refusal::bad_request)?
            {
                Some(inbound) => Received::Messages(vec![inbound]),
                None => {
                    let kinds: Vec<&str> = m
                        .as_object()
                        .map(|o| {
                            o.keys()
                                .map(String::as_str)
                                .filter(|k| !matches!(*k, "message_id" | "from" | "chat" | "date"))
                                .collect()
                        })
                        .unwrap_or_default();
                    Received::Ignored(format!(
                        "update {update_id}: a service message ({})",
                        kinds.join(", ")
                    ))
                }
            },
        )
    }

    fn check_secret(&self, cb: &Callback) -> Result<(), Refusal> {
        let refuse = |why: &str| Refusal::with(CallbackResponse::text(403, why), why);
        let Some(given) = cb.header(SECRET_HEADER) else {
            return Err(refuse("missing X-Telegram-Bot-Api-Secret-Token"));
        };
        use subtle::ConstantTimeEq;
        let ok: bool = given.as_bytes().ct_eq(self.secret_token.as_bytes()).into();
        if ok {
            Ok(())
        } else {
            Err(refuse("invalid X-Telegram-Bot-Api-Secret-Token"))
        }
    }

    /// The `channel_data.telegram` keys passed on to the send methods, checked.
    fn passed(&self, msg: &Message) -> Result<Map<String, Value>, String> {
        let Some(data) = msg.helper_metadata.get("telegram") else {
            return Ok(Map::new());
        };
        let Some(data) = data.as_object() else {
            return Err("channel_data.telegram must be an object".into());
        };
        let out: Map<String, Value> = data
            .iter()
            .filter(|(k, _)| PASSED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(p) = out.get("parse_mode")
            && !matches!(p.as_str(), Some("HTML" | "MarkdownV2" | "Markdown"))
        {
            return Err(
                "channel_data.telegram.parse_mode must be HTML, MarkdownV2 or Markdown".into(),
            );
        }
        if out.get("reply_markup").is_some_and(|r| !r.is_object()) {
            return Err("channel_data.telegram.reply_markup must be an object".into());
        }
        Ok(out)
    }

    /// What a reply quotes: the message it answers, when that came from the same chat.
    fn quoted(&self, msg: &Message, chat: &str) -> Option<(Value, Option<Value>)> {
        msg.in_reply_to.as_ref()?;
        let t = msg.transport_metadata.get("telegram")?;
        if id_text(&t["chat_id"]).as_deref() != Some(chat) {
            return None;
        }
        let mid = t.get("message_id").filter(|v| v.is_u64())?;
        Some((mid.clone(), t.get("message_thread_id").cloned()))
    }
}

impl Provider for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn secrets(&self) -> Vec<String> {
        vec![self.cfg.bot_token.clone(), self.secret_token.clone()]
    }

    fn build_send(&self, msg: &Message, cx: &SendContext) -> Result<ProviderRequest, String> {
        self.build_sends(msg, cx)?
            .into_iter()
            .next()
            .ok_or_else(|| "Nothing to send".into())
    }

    fn build_sends(
        &self,
        msg: &Message,
        _cx: &SendContext,
    ) -> Result<Vec<ProviderRequest>, String> {
        let to = msg
            .to_addr
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("The message has no to address")?;
        // Digits, `-` first for a group (`i64::from_str` would also take `+254…`, a phone
        // number: not a chat).
        let digits = to.strip_prefix('-').unwrap_or(&to);
        let numeric = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
        let chat_id = match to.parse::<i64>() {
            Ok(n) if numeric => json!(n),
            _ => {
                let name = to.strip_prefix('@').unwrap_or("");
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!(
                        "The to address {to:?} is not a Telegram chat id (digits, or @channelusername)"
                    ));
                }
                Value::String(to.clone())
            }
        };
        let passed = self.passed(msg)?;
        let attachments: Vec<Attachment> = msg.attachments();
        let text = msg.content.clone().filter(|c| !c.is_empty());
        let mut text_left = text;
        // (method, body) of each request, in order.
        let mut parts: Vec<(&'static str, Map<String, Value>)> = Vec::new();
        for (i, a) in attachments.iter().enumerate() {
            let (method, field) = send_method(a.content_type.as_deref());
            let mut body = Map::new();
            body.insert(field.into(), Value::String(a.url.clone()));
            let mut caption = a.caption.clone().filter(|c| !c.is_empty());
            if i == 0
                && caption.is_none()
                && text_left
                    .as_ref()
                    .is_some_and(|t| t.encode_utf16().count() <= MAX_CAPTION)
            {
                caption = text_left.take();
            }
            if let Some(c) = caption {
                body.insert("caption".into(), Value::String(c));
            }
            parts.push((method, body));
        }
        if let Some(t) = text_left {
            let mut body = Map::new();
            body.insert("text".into(), Value::String(t));
            parts.push(("sendMessage", body));
        }
        if parts.is_empty() {
            return Err("The message has no content".into());
        }
        let quoted = self.quoted(msg, &to);
        let last = parts.len() - 1;
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(i, (method, fields))| {
                let mut body = Map::new();
                body.insert("chat_id".into(), chat_id.clone());
                body.extend(fields);
                for (k, v) in &passed {
                    let fits = method == "sendMessage" || !TEXT_ONLY.contains(&k.as_str());
                    if fits && (k != "reply_markup" || i == last) {
                        body.insert(k.clone(), v.clone());
                    }
                }
                if let Some((mid, thread)) = &quoted {
                    if i == 0 {
                        body.insert(
                            "reply_parameters".into(),
                            json!({"message_id": mid, "allow_sending_without_reply": true}),
                        );
                    }
                    if let Some(t) = thread {
                        body.entry("message_thread_id").or_insert(t.clone());
                    }
                }
                self.call(method, Value::Object(body))
            })
            .collect())
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        let body = resp.json().unwrap_or(Value::Null);
        let by_status = aggregator::status_outcome(resp);
        if by_status.is_none() && body["ok"].as_bool() == Some(true) {
            let result = &body["result"];
            return SendOutcome::Accepted(
                match (
                    id_text(&result["chat"]["id"]),
                    id_text(&result["message_id"]),
                ) {
                    (Some(chat), Some(mid)) => Some(format!("{chat}:{mid}")),
                    // Sent all the same: never sent twice for a missing id.
                    _ => None,
                },
            );
        }
        if body["ok"].as_bool() != Some(false) {
            // Not the Bot API's answer (a proxy's page): the HTTP status decides.
            return by_status.unwrap_or_else(|| {
                SendOutcome::Failed(format!(
                    "Telegram: an answer that is not the Bot API's: {}",
                    aggregator::quote(&resp.body)
                ))
            });
        }
        let code = body["error_code"]
            .as_u64()
            .unwrap_or(u64::from(resp.status));
        let mut reason = format!(
            "Telegram {code}: {}",
            aggregator::quote(body["description"].as_str().unwrap_or("no description"))
        );
        let params = &body["parameters"];
        if let Some(to) = id_text(&params["migrate_to_chat_id"]) {
            reason.push_str(&format!(" (the chat is now {to})"));
        }
        if let Some(secs) = params["retry_after"].as_u64() {
            return SendOutcome::RetryAfter(reason, Duration::from_secs(secs.max(1)));
        }
        if code == 429 || code >= 500 || matches!(by_status, Some(SendOutcome::Retry(_))) {
            return SendOutcome::Retry(reason);
        }
        SendOutcome::Failed(reason)
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        if cb.action != "receive" {
            return Err(Refusal::bad_request(format!("no action {}", cb.action)));
        }
        if !cb.method.eq_ignore_ascii_case("POST") {
            return Err(Refusal::with(
                CallbackResponse::text(405, "Telegram posts updates"),
                format!("a {} request, not Telegram's POST", cb.method),
            ));
        }
        self.check_secret(cb)?;
        let body: Value = serde_json::from_slice(&cb.body)
            .map_err(|e| Refusal::bad_request(format!("unable to parse request JSON: {e}")))?;
        let received = self.read_update(&body)?;
        // A button press is answered in the webhook's answer (a Bot API call Telegram makes
        // for us), so the user's client stops showing its progress bar; anything else gets an
        // empty 200, which calls nothing.
        if let Some(id) = str_of(&body["callback_query"], "id") {
            let answer = json!({"method": "answerCallbackQuery", "callback_query_id": id});
            return Ok((received, CallbackResponse::json(200, &answer)));
        }
        Ok((received, CallbackResponse::text(200, "")))
    }

    fn maps_ids(&self) -> bool {
        // No delivery reports name them.
        false
    }

    fn setup(&self) -> Vec<ProviderRequest> {
        match &self.webhook_url {
            Some(url) => vec![self.call(
                "setWebhook",
                json!({"url": url, "secret_token": self.secret_token,
                       "allowed_updates": ["message", "callback_query"]}),
            )],
            None => Vec::new(),
        }
    }

    fn read_setup(&self, resp: &ProviderResponse) -> Result<(), String> {
        let body = resp.json().unwrap_or(Value::Null);
        match body["ok"].as_bool() {
            Some(true) if (200..300).contains(&resp.status) => Ok(()),
            Some(_) => Err(format!(
                "Telegram {}: {}",
                body["error_code"]
                    .as_u64()
                    .unwrap_or(u64::from(resp.status)),
                aggregator::quote(body["description"].as_str().unwrap_or("no description"))
            )),
            None => Err(format!(
                "HTTP {}: an answer that is not the Bot API's: {}",
                resp.status,
                aggregator::quote(&resp.body)
            )),
        }
    }

    fn media_request(&self, media_ref: &str) -> Option<ProviderRequest> {
        let file_id_like = !media_ref.is_empty()
            && media_ref.len() <= 256
            && media_ref
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !file_id_like {
            return None;
        }
        Some(ProviderRequest::new(
            "GET",
            format!(
                "{}/bot{}/getFile?file_id={media_ref}",
                self.api(),
                self.cfg.bot_token
            ),
            RequestBody::None,
        ))
    }

    fn media_follow(&self, first: &ProviderResponse) -> Result<Option<ProviderRequest>, String> {
        let body = first.json().unwrap_or(Value::Null);
        if body["ok"].as_bool() != Some(true) {
            return Err(format!(
                "Telegram getFile: {}",
                aggregator::quote(body["description"].as_str().unwrap_or("no file"))
            ));
        }
        let path = str_of(&body["result"], "file_path").ok_or("Telegram gave no file_path")?;
        let safe = !path.starts_with('/')
            && path
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..")
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c));
        if !safe {
            return Err("Telegram gave a file_path hornbill does not follow".into());
        }
        Ok(Some(ProviderRequest::new(
            "GET",
            format!("{}/file/bot{}/{path}", self.api(), self.cfg.bot_token),
            RequestBody::None,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    fn tg(extra: Value) -> Telegram {
        let mut config = json!({"bot_token": TOKEN});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        <Telegram as aggregator::HttpType>::new(
            aggregator::parse_config(&config).unwrap(),
            &aggregator::StartContext {
                channel_id: "chan1",
                callback_base: Some("https://hb.example/channels/chan1/s3cret"),
                callback_secret: Some("s3cret"),
            },
        )
    }

    fn body(r: &ProviderRequest) -> &Value {
        let RequestBody::Json(b) = &r.body else {
            panic!("not JSON: {r:?}")
        };
        b
    }

    #[test]
    fn configs() {
        let p = |c: Value| aggregator::parse_config::<TelegramConfig>(&c);
        assert!(p(json!({"bot_token": TOKEN})).is_ok());
        for bad in ["", "AAHdq", "12:", ":abc", "12:ab/../x", "12:ab?x=1"] {
            let e = p(json!({"bot_token": bad})).unwrap_err();
            assert!(e.contains("bot_token"), "{bad}: {e}");
        }
        let c = p(json!({"bot_token": TOKEN, "bot_username": "@hornbill_bot"})).unwrap();
        assert_eq!(c.bot_username.as_deref(), Some("hornbill_bot"));
        assert!(p(json!({"bot_token": TOKEN, "bot_username": "a b"})).is_err());
        assert!(p(json!({"bot_token": TOKEN, "api_url": "ftp://x"})).is_err());
        let e = p(json!({"bot_token": TOKEN, "token": "x"})).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn the_secret_token_is_stable_per_channel_and_allowed_by_telegram() {
        let a = secret_token(TOKEN, "chan1");
        assert_eq!(a, secret_token(TOKEN, "chan1"));
        assert_ne!(a, secret_token(TOKEN, "chan2"));
        assert_ne!(a, secret_token("1:other", "chan1"));
        assert!((1..=256).contains(&a.len()));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(!a.contains(TOKEN));
    }

    #[test]
    fn set_webhook_at_start() {
        let t = tg(json!({"api_url": "http://stub/"}));
        let s = t.setup();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].url, format!("http://stub/bot{TOKEN}/setWebhook"));
        assert_eq!(
            body(&s[0]),
            &json!({"url": "https://hb.example/channels/chan1/s3cret/receive",
                    "secret_token": secret_token(TOKEN, "chan1"),
                    "allowed_updates": ["message", "callback_query"]})
        );
        let ok = ProviderResponse::new(
            200,
            r#"{"ok":true,"result":true,"description":"Webhook was set"}"#,
        );
        assert_eq!(t.read_setup(&ok), Ok(()));
        let refused = ProviderResponse::new(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: bad webhook: HTTPS url must be provided for webhook"}"#,
        );
        assert_eq!(
            t.read_setup(&refused).unwrap_err(),
            "Telegram 400: Bad Request: bad webhook: HTTPS url must be provided for webhook"
        );
        assert!(t.read_setup(&ProviderResponse::new(502, "<html>")).is_err());
    }

    #[test]
    fn messages_and_media() {
        let t = tg(json!({"bot_username": "hornbill_bot"}));
        let update = json!({"update_id": 10000, "message": {"message_id": 1365,
            "date": 1441645532,
            "chat": {"id": -1001234567890i64, "type": "supergroup", "title": "Team"},
            "from": {"id": 1111111, "is_bot": false, "first_name": "Ann", "username": "ann"},
            "caption": "Look",
            "photo": [
                {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 67, "file_size": 1000},
                {"file_id": "large", "file_unique_id": "l", "width": 1280, "height": 960, "file_size": 90000},
                {"file_id": "mid", "file_unique_id": "m", "width": 320, "height": 240, "file_size": 9000}]}});
        let Received::Messages(m) = t.read_update(&update).unwrap() else {
            panic!()
        };
        assert_eq!(m[0].from, "-1001234567890");
        assert_eq!(m[0].group.as_deref(), Some("-1001234567890"));
        assert_eq!(m[0].to, "hornbill_bot");
        assert_eq!(m[0].content.as_deref(), Some("Look"));
        assert_eq!(m[0].media[0].at, MediaAt::Provider("large".into()));
        assert_eq!(m[0].media[0].content_type.as_deref(), Some("image/jpeg"));
        assert_eq!(
            m[0].metadata["channel_data"]["telegram"]["from"]["username"],
            "ann"
        );
        assert_eq!(m[0].metadata["message_id"], 1365);
        // An animation comes with a document too: it is one attachment.
        let gif = json!({"update_id": 2, "message": {"message_id": 2,
            "chat": {"id": 5, "type": "private"},
            "animation": {"file_id": "anim", "mime_type": "video/mp4", "file_name": "a.mp4"},
            "document": {"file_id": "anim", "mime_type": "video/mp4", "file_name": "a.mp4"}}});
        let Received::Messages(m) = t.read_update(&gif).unwrap() else {
            panic!()
        };
        assert_eq!(m[0].media.len(), 1);
        assert_eq!(m[0].group, None);
        // Service messages and other updates are nobody's message.
        let joined = json!({"update_id": 3, "message": {"message_id": 3,
            "chat": {"id": -5, "type": "group"}, "new_chat_members": [{"id": 1}]}});
        assert!(matches!(
            t.read_update(&joined).unwrap(),
            Received::Ignored(_)
        ));
        let edit = json!({"update_id": 4, "edited_message": {"message_id": 3}});
        assert!(matches!(
            t.read_update(&edit).unwrap(),
            Received::Ignored(_)
        ));
        assert!(t.read_update(&json!({"message": {}})).is_err());
    }

    #[test]
    fn media_is_fetched_with_get_file_then_the_file_path() {
        let t = tg(json!({"api_url": "http://stub"}));
        let r = t.media_request("AgACAgQAAxkBAAIB_x-1").unwrap();
        assert_eq!(
            r.url,
            format!("http://stub/bot{TOKEN}/getFile?file_id=AgACAgQAAxkBAAIB_x-1")
        );
        assert!(t.media_request("a/../b").is_none());
        assert!(t.media_request("").is_none());
        let answer = |path: &str| {
            ProviderResponse::new(
                200,
                json!({"ok": true, "result": {"file_id": "x", "file_path": path}}).to_string(),
            )
        };
        let next = t
            .media_follow(&answer("photos/file_0.jpg"))
            .unwrap()
            .unwrap();
        assert_eq!(
            next.url,
            format!("http://stub/file/bot{TOKEN}/photos/file_0.jpg")
        );
        for bad in ["../x", "/etc/passwd", "a/../../b", "a?b", "a//b"] {
            assert!(t.media_follow(&answer(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn sends_text_media_and_replies() {
        let t = tg(json!({"api_url": "http://stub"}));
        let cx = SendContext {
            channel_id: "chan1",
            callback_base: None,
        };
        let mut msg = Message::new(Some("12345".into()), None, Some("Look".into()));
        msg.set_attachments(vec![
            Attachment {
                url: "https://x/a.jpg".into(),
                content_type: Some("image/jpeg".into()),
                caption: None,
            },
            Attachment {
                url: "https://x/v.ogg".into(),
                content_type: Some("audio/ogg; codecs=opus".into()),
                caption: Some("listen".into()),
            },
        ]);
        msg.helper_metadata.insert(
            "telegram".into(),
            json!({"parse_mode": "HTML", "reply_markup": {"remove_keyboard": true},
                   "from": {"id": 1}, "link_preview_options": {"is_disabled": true}}),
        );
        let r = t.build_sends(&msg, &cx).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].url, format!("http://stub/bot{TOKEN}/sendPhoto"));
        assert_eq!(
            body(&r[0]),
            &json!({"chat_id": 12345, "photo": "https://x/a.jpg", "caption": "Look",
                    "parse_mode": "HTML"})
        );
        assert_eq!(r[1].url, format!("http://stub/bot{TOKEN}/sendVoice"));
        assert_eq!(
            body(&r[1]),
            &json!({"chat_id": 12345, "voice": "https://x/v.ogg", "caption": "listen",
                    "parse_mode": "HTML", "reply_markup": {"remove_keyboard": true}})
        );
        // 600 emoji are 600 characters but 1200 UTF-16 units, as Telegram counts: too long
        // for a caption, so a text after the photo.
        let mut emoji = Message::new(Some("12345".into()), None, Some("🐦".repeat(600)));
        emoji.set_attachments(vec![Attachment {
            url: "https://x/a.jpg".into(),
            content_type: Some("image/jpeg".into()),
            caption: None,
        }]);
        let r = t.build_sends(&emoji, &cx).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(body(&r[0]).get("caption"), None);
        assert_eq!(r[1].url, format!("http://stub/bot{TOKEN}/sendMessage"));
        // A reply quotes the message it answers, in its chat.
        let mut reply = Message::new(Some("-100777".into()), None, Some("ok".into()));
        reply.in_reply_to = Some("m1".into());
        reply.transport_metadata.insert(
            "telegram".into(),
            json!({"chat_id": -100777, "message_id": 42, "message_thread_id": 7}),
        );
        let r = t.build_sends(&reply, &cx).unwrap();
        assert_eq!(
            body(&r[0]),
            &json!({"chat_id": -100777, "text": "ok", "message_thread_id": 7,
                    "reply_parameters": {"message_id": 42, "allow_sending_without_reply": true}})
        );
        for to in ["+254 711", "+254711000001", "12a", "-", "@"] {
            let bad = Message::new(Some(to.into()), None, Some("x".into()));
            assert!(
                t.build_sends(&bad, &cx).unwrap_err().contains("chat id"),
                "{to}"
            );
        }
        let mut bad = Message::new(Some("@news_channel".into()), None, Some("x".into()));
        assert!(t.build_sends(&bad, &cx).is_ok());
        bad.helper_metadata
            .insert("telegram".into(), json!({"parse_mode": "rtf"}));
        assert!(t.build_sends(&bad, &cx).unwrap_err().contains("parse_mode"));
    }

    #[test]
    fn send_answers() {
        let t = tg(json!({}));
        let r = |status, body: &str| t.read_send(&ProviderResponse::new(status, body));
        assert_eq!(
            r(
                200,
                r#"{"ok":true,"result":{"message_id":77,"chat":{"id":12345,"type":"private"},"date":1,"text":"hi"}}"#
            ),
            SendOutcome::Accepted(Some("12345:77".into()))
        );
        assert_eq!(
            r(
                429,
                r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#
            ),
            SendOutcome::RetryAfter(
                "Telegram 429: Too Many Requests: retry after 7".into(),
                Duration::from_secs(7)
            )
        );
        assert_eq!(
            r(
                403,
                r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#
            ),
            SendOutcome::Failed("Telegram 403: Forbidden: bot was blocked by the user".into())
        );
        assert_eq!(
            r(
                400,
                r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890}}"#
            ),
            SendOutcome::Failed(
                "Telegram 400: Bad Request: group chat was upgraded to a supergroup chat (the chat is now -1001234567890)".into()
            )
        );
        assert!(matches!(
            r(502, "<html>Bad Gateway</html>"),
            SendOutcome::Retry(_)
        ));
        assert!(matches!(
            r(
                500,
                r#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#
            ),
            SendOutcome::Retry(_)
        ));
    }
}
