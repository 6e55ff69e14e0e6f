//! Channel type `whatsapp`: the WhatsApp Business Platform's Cloud API (Meta's Graph API,
//! `POST {base_url}/{api_version}/{phone_number_id}/messages`, JSON, `Authorization: Bearer
//! <access_token>`), from one business phone number.
//!
//! Callback (`{public}/channels/{id}/{secret}/receive`), the app's webhook for the
//! `messages` field of its WhatsApp Business Account:
//! - `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`: the verification request
//!   Meta makes when the webhook is set; answered with the challenge when `verify_token` is
//!   the channel's, 403 otherwise;
//! - `POST`: notifications (`object: whatsapp_business_account`, `entry[].changes[].value`
//!   with `metadata.phone_number_id`, `contacts`, `messages`, `statuses`), which must carry
//!   `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with app_secret>` (403
//!   otherwise). Changes for another phone number of the account (the webhook is per app) are
//!   ignored.
//!
//! Inbound messages: `from` is the user's WhatsApp id (`wa_id`, digits without `+`, as Meta
//! gives it), `to` the channel's `phone_number_id`. `text` is the content; `image`, `video`,
//! `audio` (voice notes too), `document` and `sticker` become an attachment whose URL is
//! hornbill's `…/media/{media id}` (the media is fetched with the access token: `GET
//! /{version}/{media id}` gives a short-lived URL, then that URL with the token), with the
//! caption as content and as the attachment's caption; an `interactive` reply (button or
//! list) has the chosen title as content, its id in `transport_metadata.whatsapp.interactive`;
//! a template's quick-reply `button` has its text as content and its payload in the metadata;
//! a `reaction` has its emoji as content; `location`, `contacts` and anything unsupported come
//! without content, the object in the metadata. The application sees the profile name, the
//! `context` (the message replied to), and the interactive reply, button payload, reaction,
//! location or contacts in the message's `channel_data.whatsapp`; the wamid, timestamp and
//! type are kept in `transport_metadata.whatsapp`.
//!
//! Statuses: `sent` is pending, `delivered` and `read` delivered, `failed` failed (Meta's error
//! code and title in the log); others (`deleted`, `warning`) are ignored.
//!
//! Sends: a text message (`preview_url` false); a template when the send's
//! `channel_data.whatsapp.template` is an object (`name`, `language` — a code or `{"code"}` —
//! and `components`, as Meta documents them; the content is then not sent); media: one
//! message per attachment (the API takes one medium per message), its kind from the content
//! type (`image/webp` a sticker, `image/*`, `video/*`, `audio/*`, anything else a document
//! named after the URL's last segment), sent by `link`. The message's content becomes the
//! caption of the first attachment when that one has none and its kind takes one (not audio
//! or stickers); otherwise it is sent as a text message after the media. Each part's wamid is
//! mapped to the message, so each part's statuses are the message's events.
//!
//! Send answers: `messages[0].id` (the wamid) is the provider id. Errors are Graph API error
//! objects (`error.code`, `message`, `error_data.details`): throughput and rate limits (4,
//! 80007, 130429, 131048, 131056) and temporary failures (1, 2, 131000, 131016, 133004), like
//! any 5xx, are retried; everything else (131047: more than 24 hours since the user last
//! wrote, send a template; 131026: undeliverable; 190: the access token expired; 100:
//! invalid parameter; 132000/132001: template parameters or name) is final, the reason
//! naming the code. A `Retry-After` header, if Meta sends one, sets the pause.

use crate::message::{Attachment, DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, InboundMedia, MediaAt, Provider, ProviderRequest, ProviderResponse, Received,
    Refusal, Report, RequestBody, SendContext, SendOutcome,
};
use crate::transports::{Callback, CallbackResponse};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

const LIVE: &str = "https://graph.facebook.com";
const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// Graph API error codes that mean "too many, slow down".
const THROTTLED: &[u64] = &[4, 80007, 130429, 131048, 131056];
/// Graph API error codes that mean "try again later".
const TEMPORARY: &[u64] = &[1, 2, 131000, 131016, 133004];

fn default_timeout() -> f64 {
    10.0
}

fn default_version() -> String {
    "v21.0".into()
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppConfig {
    /// The business phone number's id (not the number): messages go from it, and webhook
    /// notifications for the account's other numbers are ignored.
    pub phone_number_id: String,
    /// A system user's access token with `whatsapp_business_messaging`.
    pub access_token: String,
    /// The Meta app's secret: notifications must be signed with it (`X-Hub-Signature-256`).
    pub app_secret: String,
    /// The verify token entered in the app's webhook settings.
    pub verify_token: String,
    /// Graph API version in the URLs.
    #[serde(default = "default_version")]
    pub api_version: String,
    /// Replaces `https://graph.facebook.com` (a proxy, a test stub).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Refuse notifications without a valid `X-Hub-Signature-256`.
    #[serde(default = "default_true")]
    pub validate_signature: bool,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for WhatsAppConfig {
    fn check(&mut self) -> Result<(), String> {
        for (k, v) in [
            ("phone_number_id", &self.phone_number_id),
            ("access_token", &self.access_token),
            ("app_secret", &self.app_secret),
            ("verify_token", &self.verify_token),
        ] {
            if v.is_empty() {
                return Err(format!("{k} must not be empty"));
            }
        }
        // Path segments of the API's URLs.
        if !self.phone_number_id.chars().all(|c| c.is_ascii_digit()) {
            return Err("phone_number_id must be digits (the number's id, not the number)".into());
        }
        let v = self.api_version.strip_prefix('v').unwrap_or("");
        if v.is_empty() || !v.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err("api_version must look like v21.0".into());
        }
        if let Some(b) = &self.base_url {
            crate::transports::check_http_url("base_url", b)?;
        }
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `whatsapp` channel type.
pub type WhatsAppFactory = aggregator::Factory<WhatsApp>;

impl aggregator::HttpType for WhatsApp {
    const TYPE: &'static str = "whatsapp";
    const TRANSPORT_TYPE: &'static str = "whatsapp";
    const ACTIONS: &'static [&'static str] = &["receive"];
    const MEDIA: bool = true;
    type Config = WhatsAppConfig;

    fn new(cfg: WhatsAppConfig, _cx: &aggregator::StartContext) -> Self {
        WhatsApp { cfg }
    }
}

pub struct WhatsApp {
    pub cfg: WhatsAppConfig,
}

/// `sha256=<hex HMAC-SHA256 of body>`, as Meta signs notifications.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC keys may have any length"));
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn signature_valid(app_secret: &str, body: &[u8], given: &str) -> bool {
    let Some(hex) = given.trim().strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let Ok(given): Result<Vec<u8>, _> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect()
    else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC keys may have any length"));
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The kind of WhatsApp message that carries a medium of this content type.
fn media_kind(content_type: Option<&str>) -> &'static str {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct == "image/webp" {
        "sticker"
    } else if ct.starts_with("image/") {
        "image"
    } else if ct.starts_with("video/") {
        "video"
    } else if ct.starts_with("audio/") {
        "audio"
    } else {
        "document"
    }
}

fn takes_caption(kind: &str) -> bool {
    matches!(kind, "image" | "video" | "document")
}

/// A document's file name: the URL's last path segment.
fn file_name(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let last = u.path_segments()?.next_back()?.to_string();
    let last = percent_encoding::percent_decode_str(&last)
        .decode_utf8_lossy()
        .into_owned();
    (!last.is_empty()).then_some(last)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// One message of a notification's `messages`, from the user `from` (pure).
pub fn read_message(m: &Value, phone_number_id: &str, value: &Value) -> Result<Inbound, String> {
    let from = str_of(m, "from").ok_or("a message without 'from'")?;
    let kind = str_of(m, "type").unwrap_or("unknown");
    let mut meta = Map::new();
    for k in ["id", "timestamp", "type"] {
        if let Some(v) = m.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    let meta_of = &value["metadata"];
    if let Some(d) = meta_of.get("display_phone_number") {
        meta.insert("display_phone_number".into(), d.clone());
    }
    if let Some(contacts) = value["contacts"].as_array()
        && let Some(name) = contacts
            .iter()
            .find(|c| c["wa_id"].as_str() == Some(from))
            .and_then(|c| c["profile"]["name"].as_str())
    {
        meta.insert("profile_name".into(), Value::String(name.into()));
    }
    if let Some(ctx) = m.get("context") {
        meta.insert("context".into(), ctx.clone());
    }
    let mut content = None;
    let mut media = Vec::new();
    match kind {
        "text" => content = str_of(&m["text"], "body").map(str::to_string),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let obj = &m[kind];
            let id = str_of(obj, "id").ok_or_else(|| format!("a {kind} without an id"))?;
            let caption = str_of(obj, "caption").map(str::to_string);
            if let Some(f) = obj.get("filename") {
                meta.insert("filename".into(), f.clone());
            }
            if obj.get("voice").and_then(Value::as_bool) == Some(true) {
                meta.insert("voice".into(), Value::Bool(true));
            }
            content = caption.clone();
            media.push(InboundMedia {
                at: MediaAt::Provider(id.to_string()),
                content_type: str_of(obj, "mime_type").map(str::to_string),
                caption,
            });
        }
        "interactive" => {
            let i = &m["interactive"];
            let itype = str_of(i, "type").unwrap_or("");
            let reply = &i[itype];
            content = str_of(reply, "title")
                .or_else(|| str_of(reply, "body"))
                .map(str::to_string);
            let mut shown = Map::new();
            shown.insert("type".into(), Value::String(itype.into()));
            for k in ["id", "description", "response_json", "name"] {
                if let Some(v) = reply.get(k) {
                    shown.insert(k.into(), v.clone());
                }
            }
            meta.insert("interactive".into(), Value::Object(shown));
        }
        "button" => {
            content = str_of(&m["button"], "text").map(str::to_string);
            if let Some(p) = m["button"].get("payload") {
                meta.insert("button_payload".into(), p.clone());
            }
        }
        "reaction" => {
            content = str_of(&m["reaction"], "emoji").map(str::to_string);
            meta.insert("reaction".into(), m["reaction"].clone());
        }
        other => {
            if let Some(v) = m.get(other) {
                meta.insert(other.into(), v.clone());
            }
            if let Some(e) = m.get("errors") {
                meta.insert("errors".into(), e.clone());
            }
        }
    }
    // What the application needs goes to its `channel_data.whatsapp`.
    let app: Map<String, Value> = [
        "profile_name",
        "context",
        "interactive",
        "button_payload",
        "reaction",
        "location",
        "contacts",
    ]
    .iter()
    .filter_map(|k| meta.remove(*k).map(|v| (k.to_string(), v)))
    .collect();
    if !app.is_empty() {
        meta.insert(
            aggregator::CHANNEL_DATA.into(),
            json!({ "whatsapp": Value::Object(app) }),
        );
    }
    Ok(Inbound {
        group: None,
        from: from.to_string(),
        to: phone_number_id.to_string(),
        content,
        metadata: meta,
        media,
    })
}

/// One of a notification's `statuses` (`None`: a status no event stands for).
pub fn read_status(s: &Value) -> Result<Option<Report>, String> {
    let id = str_of(s, "id").ok_or("a status without 'id'")?;
    let word = str_of(s, "status").ok_or("a status without 'status'")?;
    let status = match word {
        "sent" => DeliveryStatus::Pending,
        "delivered" | "read" => DeliveryStatus::Delivered,
        "failed" => DeliveryStatus::Failed,
        _ => return Ok(None),
    };
    let mut detail = word.to_string();
    if let Some(e) = s["errors"].as_array().and_then(|e| e.first()) {
        let code = e["code"]
            .as_u64()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let title = str_of(e, "title").or_else(|| str_of(e, "message"));
        detail = format!(
            "{word} (WhatsApp {code}: {})",
            aggregator::quote(title.unwrap_or(""))
        );
    }
    Ok(Some(Report {
        provider_id: Some(id.to_string()),
        message_id: None,
        status,
        detail,
    }))
}

impl WhatsApp {
    fn base(&self) -> String {
        format!(
            "{}/{}",
            self.cfg
                .base_url
                .as_deref()
                .unwrap_or(LIVE)
                .trim_end_matches('/'),
            self.cfg.api_version
        )
    }

    fn post(&self, body: Value) -> ProviderRequest {
        ProviderRequest::new(
            "POST",
            format!("{}/{}/messages", self.base(), self.cfg.phone_number_id),
            RequestBody::Json(body),
        )
        .header("Authorization", format!("Bearer {}", self.cfg.access_token))
    }

    /// The verification request (`GET`): the challenge, when the token is ours.
    fn verify(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let q: Vec<(String, String)> = url::form_urlencoded::parse(cb.query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| aggregator::form_field(&q, k);
        let (Some(mode), Some(token), Some(challenge)) = (
            get("hub.mode"),
            get("hub.verify_token"),
            get("hub.challenge"),
        ) else {
            return Err(Refusal::bad_request(
                "hub.mode, hub.verify_token and hub.challenge required",
            ));
        };
        use subtle::ConstantTimeEq;
        let ok: bool = token
            .as_bytes()
            .ct_eq(self.cfg.verify_token.as_bytes())
            .into();
        if mode != "subscribe" || !ok {
            return Err(Refusal::with(
                CallbackResponse::text(403, "verification failed"),
                "webhook verification with a wrong hub.verify_token (or hub.mode)",
            ));
        }
        Ok((
            Received::Ignored("webhook verification answered".into()),
            CallbackResponse::text(200, challenge),
        ))
    }

    fn check_signature(&self, cb: &Callback) -> Result<(), Refusal> {
        if !self.cfg.validate_signature {
            return Ok(());
        }
        let refuse = |why: &str| Refusal::with(CallbackResponse::text(403, why), why);
        let Some(given) = cb.header(SIGNATURE_HEADER) else {
            return Err(refuse("missing X-Hub-Signature-256"));
        };
        if signature_valid(&self.cfg.app_secret, &cb.body, given) {
            Ok(())
        } else {
            Err(refuse("invalid X-Hub-Signature-256"))
        }
    }

    /// What a notification's body holds for this channel's number.
    pub fn read_notification(&self, body: &Value) -> Result<Received, Refusal> {
        if body["object"].as_str() != Some("whatsapp_business_account") {
            return Err(Refusal::bad_request(
                "not a whatsapp_business_account notification",
            ));
        }
        let mut messages = Vec::new();
        let mut reports = Vec::new();
        let mut skipped = Vec::new();
        for entry in body["entry"].as_array().into_iter().flatten() {
            for change in entry["changes"].as_array().into_iter().flatten() {
                let field = change["field"].as_str().unwrap_or("");
                if field != "messages" {
                    skipped.push(format!("a {field:?} change"));
                    continue;
                }
                let value = &change["value"];
                let number = value["metadata"]["phone_number_id"].as_str().unwrap_or("");
                if number != self.cfg.phone_number_id {
                    skipped.push(format!("a change for phone number id {number:?}"));
                    continue;
                }
                for m in value["messages"].as_array().into_iter().flatten() {
                    messages.push(
                        read_message(m, &self.cfg.phone_number_id, value)
                            .map_err(Refusal::bad_request)?,
                    );
                }
                for s in value["statuses"].as_array().into_iter().flatten() {
                    match read_status(s).map_err(Refusal::bad_request)? {
                        Some(r) => reports.push(r),
                        None => {
                            skipped.push(format!("status {:?}", s["status"].as_str().unwrap_or("")))
                        }
                    }
                }
                if let Some(e) = value.get("errors") {
                    skipped.push(format!("errors {}", aggregator::quote(&e.to_string())));
                }
            }
        }
        Ok(match (messages.is_empty(), reports.is_empty()) {
            (false, false) => Received::Both(messages, reports),
            (false, true) => Received::Messages(messages),
            (true, false) => Received::Reports(reports),
            (true, true) => Received::Ignored(if skipped.is_empty() {
                "a notification without messages or statuses".into()
            } else {
                format!("nothing for this channel: {}", skipped.join(", "))
            }),
        })
    }

    /// The template of a send (`channel_data.whatsapp.template`), checked.
    fn template(&self, msg: &Message) -> Result<Option<Value>, String> {
        let Some(t) = msg
            .helper_metadata
            .get("whatsapp")
            .and_then(|w| w.get("template"))
        else {
            return Ok(None);
        };
        let mut t = t.clone();
        let Some(obj) = t.as_object_mut() else {
            return Err("channel_data.whatsapp.template must be an object".into());
        };
        if !obj.get("name").is_some_and(Value::is_string) {
            return Err("channel_data.whatsapp.template needs a name".into());
        }
        match obj.get("language") {
            Some(Value::String(code)) => {
                let code = code.clone();
                obj.insert("language".into(), json!({ "code": code }));
            }
            Some(Value::Object(l)) if l.get("code").is_some_and(Value::is_string) => {}
            _ => return Err("channel_data.whatsapp.template needs a language code".into()),
        }
        Ok(Some(t))
    }
}

impl Provider for WhatsApp {
    fn name(&self) -> &'static str {
        "whatsapp"
    }

    fn secrets(&self) -> Vec<String> {
        vec![
            self.cfg.access_token.clone(),
            self.cfg.app_secret.clone(),
            self.cfg.verify_token.clone(),
        ]
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
        let envelope = |kind: &str, body: Value| {
            let mut m = json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                               "to": to, "type": kind});
            m[kind] = body;
            m
        };
        let attachments: Vec<Attachment> = msg.attachments();
        if let Some(t) = self.template(msg)? {
            if !attachments.is_empty() {
                return Err("A template message cannot carry attachments".into());
            }
            return Ok(vec![self.post(envelope("template", t))]);
        }
        let text = msg.content.clone().filter(|c| !c.is_empty());
        let mut text_left = text.clone();
        let mut out = Vec::new();
        for (i, a) in attachments.iter().enumerate() {
            let kind = media_kind(a.content_type.as_deref());
            let mut body = json!({"link": a.url});
            let mut caption = a.caption.clone().filter(|c| !c.is_empty());
            if i == 0 && caption.is_none() && takes_caption(kind) {
                caption = text_left.take();
            }
            if let Some(c) = caption.filter(|_| takes_caption(kind)) {
                body["caption"] = Value::String(c);
            }
            if kind == "document"
                && let Some(name) = file_name(&a.url)
            {
                body["filename"] = Value::String(name);
            }
            out.push(self.post(envelope(kind, body)));
        }
        if let Some(t) = text_left {
            out.push(self.post(envelope("text", json!({"body": t, "preview_url": false}))));
        }
        if out.is_empty() {
            return Err("The message has no content".into());
        }
        Ok(out)
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        let body = resp.json().unwrap_or(Value::Null);
        let by_status = aggregator::status_outcome(resp);
        let error = &body["error"];
        if by_status.is_none() && error.is_null() {
            return match str_of(&body["messages"][0], "id") {
                Some(id) => SendOutcome::Accepted(Some(id.to_string())),
                None => SendOutcome::Failed("WhatsApp: no message id in the answer".into()),
            };
        }
        let Some(code) = error["code"].as_u64() else {
            // Not a Graph API error (a proxy's page): the HTTP status decides.
            return by_status.unwrap_or_else(|| SendOutcome::Failed("WhatsApp: no id".into()));
        };
        let mut reason = format!(
            "WhatsApp {code}: {}",
            aggregator::quote(error["message"].as_str().unwrap_or("no message"))
        );
        if let Some(d) = str_of(&error["error_data"], "details") {
            reason = format!("{reason} ({})", aggregator::quote(d));
        }
        if code == 131047 {
            reason.push_str(" [more than 24 hours since the user last wrote: send a template]");
        }
        let wait = resp
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let again = THROTTLED.contains(&code)
            || TEMPORARY.contains(&code)
            || matches!(by_status, Some(SendOutcome::Retry(_)));
        match (again, wait) {
            (true, Some(s)) => SendOutcome::RetryAfter(reason, Duration::from_secs(s)),
            (true, None) => SendOutcome::Retry(reason),
            (false, _) => SendOutcome::Failed(reason),
        }
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        if cb.action != "receive" {
            return Err(Refusal::bad_request(format!("no action {}", cb.action)));
        }
        if cb.method.eq_ignore_ascii_case("GET") {
            return self.verify(cb);
        }
        self.check_signature(cb)?;
        let body: Value = serde_json::from_slice(&cb.body)
            .map_err(|e| Refusal::bad_request(format!("unable to parse request JSON: {e}")))?;
        let received = self.read_notification(&body)?;
        Ok((received, aggregator::accepted("Events Handled")))
    }

    fn media_request(&self, media_ref: &str) -> Option<ProviderRequest> {
        if media_ref.is_empty() || !media_ref.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(
            ProviderRequest::new(
                "GET",
                format!("{}/{media_ref}", self.base()),
                RequestBody::None,
            )
            .header("Authorization", format!("Bearer {}", self.cfg.access_token)),
        )
    }

    fn media_follow(&self, first: &ProviderResponse) -> Result<Option<ProviderRequest>, String> {
        let body = first.json().unwrap_or(Value::Null);
        let url = str_of(&body, "url").ok_or("WhatsApp gave no media url")?;
        let parsed = url::Url::parse(url).map_err(|_| "WhatsApp gave a bad media url")?;
        // The token goes only to Meta's hosts (or the configured base URL's).
        let host = parsed.host_str().unwrap_or("");
        let own = self
            .cfg
            .base_url
            .as_deref()
            .and_then(|b| url::Url::parse(b).ok())
            .and_then(|b| b.host_str().map(str::to_string));
        let meta = [".fbsbx.com", ".facebook.com", ".whatsapp.net"]
            .iter()
            .any(|d| host.ends_with(d));
        let allowed = own.as_deref() == Some(host) || (parsed.scheme() == "https" && meta);
        if !allowed {
            return Err(format!("WhatsApp gave a media url on {host}, not Meta's"));
        }
        Ok(Some(
            ProviderRequest::new("GET", url, RequestBody::None)
                .header("Authorization", format!("Bearer {}", self.cfg.access_token)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wa(extra: Value) -> WhatsApp {
        let mut config = json!({"phone_number_id": "1234567890", "access_token": "EAAtok",
                                "app_secret": "appsecret1", "verify_token": "verify-me"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        WhatsApp {
            cfg: aggregator::parse_config(&config).unwrap(),
        }
    }

    fn notification(value: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "8856996819413533",
               "changes": [{"field": "messages", "value": value}]}]})
    }

    #[test]
    fn configs() {
        let p = |c: Value| aggregator::parse_config::<WhatsAppConfig>(&c);
        let ok = json!({"phone_number_id": "1", "access_token": "a", "app_secret": "b",
                        "verify_token": "c"});
        assert!(p(ok.clone()).is_ok());
        let mut bad = ok.clone();
        bad["phone_number_id"] = json!("+250788");
        assert!(p(bad).unwrap_err().contains("digits"));
        let mut bad = ok.clone();
        bad["api_version"] = json!("21/../x");
        assert!(p(bad).is_err());
        let mut bad = ok.clone();
        bad["token"] = json!("typo");
        assert!(p(bad).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn signatures() {
        let sig = signature("appsecret1", b"{\"a\":1}");
        assert!(signature_valid("appsecret1", b"{\"a\":1}", &sig));
        assert!(!signature_valid("appsecret1", b"{\"a\":2}", &sig));
        assert!(!signature_valid("other", b"{\"a\":1}", &sig));
        assert!(!signature_valid("appsecret1", b"{\"a\":1}", "sha256=zz"));
        // The same scheme's published example (GitHub's webhook docs: hex HMAC-SHA256 of the
        // raw body, `sha256=` first).
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn messages_statuses_and_other_numbers() {
        let w = wa(json!({}));
        let value = json!({"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "+250 788 123 200", "phone_number_id": "1234567890"},
            "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "5678"}],
            "messages": [
                {"from": "5678", "id": "wamid.1", "timestamp": "1454119029", "type": "image",
                 "image": {"id": "id_image", "mime_type": "image/jpeg", "caption": "My phone"}},
                {"from": "5678", "id": "wamid.2", "timestamp": "1454119029", "type": "interactive",
                 "interactive": {"type": "list_reply", "list_reply": {"id": "l1", "title": "Yes"}}}],
            "statuses": [{"id": "wamid.9", "status": "failed", "recipient_id": "5678",
                          "errors": [{"code": 131014, "title": "Request for url failed"}]}]});
        let Received::Both(m, r) = w.read_notification(&notification(value.clone())).unwrap()
        else {
            panic!()
        };
        assert_eq!(m[0].from, "5678");
        assert_eq!(m[0].to, "1234567890");
        assert_eq!(m[0].content.as_deref(), Some("My phone"));
        assert_eq!(m[0].media[0].at, MediaAt::Provider("id_image".into()));
        assert_eq!(
            m[0].metadata["channel_data"]["whatsapp"]["profile_name"],
            "Kerry Fisher"
        );
        assert_eq!(m[1].content.as_deref(), Some("Yes"));
        assert_eq!(
            m[1].metadata["channel_data"]["whatsapp"]["interactive"]["id"],
            "l1"
        );
        assert_eq!(r[0].status, DeliveryStatus::Failed);
        assert_eq!(
            r[0].detail,
            "failed (WhatsApp 131014: Request for url failed)"
        );
        let mut other = value;
        other["metadata"]["phone_number_id"] = json!("999");
        assert!(matches!(
            w.read_notification(&notification(other)).unwrap(),
            Received::Ignored(_)
        ));
    }

    #[test]
    fn sends_one_request_per_attachment() {
        let w = wa(json!({"base_url": "http://stub"}));
        let cx = SendContext {
            channel_id: "c",
            callback_base: None,
        };
        let mut msg = Message::new(Some("5678".into()), None, Some("Look".into()));
        msg.set_attachments(vec![
            Attachment {
                url: "https://x/a.jpg".into(),
                content_type: Some("image/jpeg".into()),
                caption: None,
            },
            Attachment {
                url: "https://x/r%20port.pdf".into(),
                content_type: Some("application/pdf".into()),
                caption: Some("the report".into()),
            },
        ]);
        let r = w.build_sends(&msg, &cx).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].url, "http://stub/v21.0/1234567890/messages");
        let RequestBody::Json(b0) = &r[0].body else {
            panic!()
        };
        assert_eq!(
            b0["image"],
            json!({"link": "https://x/a.jpg", "caption": "Look"})
        );
        let RequestBody::Json(b1) = &r[1].body else {
            panic!()
        };
        assert_eq!(
            b1["document"],
            json!({"link": "https://x/r%20port.pdf", "caption": "the report", "filename": "r port.pdf"})
        );
        // Audio takes no caption: the content is a text message after it.
        msg.set_attachments(vec![Attachment {
            url: "https://x/v.ogg".into(),
            content_type: Some("audio/ogg".into()),
            caption: None,
        }]);
        let r = w.build_sends(&msg, &cx).unwrap();
        assert_eq!(r.len(), 2);
        let RequestBody::Json(b1) = &r[1].body else {
            panic!()
        };
        assert_eq!(b1["text"]["body"], "Look");
    }

    #[test]
    fn send_answers() {
        let w = wa(json!({}));
        let r = |status, body: &str| w.read_send(&ProviderResponse::new(status, body));
        assert_eq!(
            r(
                200,
                r#"{"messaging_product":"whatsapp","contacts":[{"input":"5678","wa_id":"5678"}],"messages":[{"id":"wamid.X"}]}"#
            ),
            SendOutcome::Accepted(Some("wamid.X".into()))
        );
        assert!(matches!(
            r(
                400,
                r#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429}}"#
            ),
            SendOutcome::Retry(_)
        ));
        assert_eq!(
            r(
                400,
                r#"{"error":{"message":"(#131026) Message Undeliverable.","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Message Undeliverable."}}}"#
            ),
            SendOutcome::Failed(
                "WhatsApp 131026: (#131026) Message Undeliverable. (Message Undeliverable.)".into()
            )
        );
        assert!(matches!(r(502, "bad gateway"), SendOutcome::Retry(_)));
        let throttled = ProviderResponse::new(429, r#"{"error":{"message":"x","code":4}}"#)
            .with_header("Retry-After", "7");
        assert_eq!(
            w.read_send(&throttled),
            SendOutcome::RetryAfter("WhatsApp 4: x".into(), Duration::from_secs(7))
        );
    }
}
