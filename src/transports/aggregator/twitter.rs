//! Channel type `twitter`: direct messages of one X (Twitter) account. Sends with the X API
//! v2 (`POST {base_url}/2/dm_conversations/with/{participant_id}/messages`, JSON `{"text"}`,
//! OAuth 1.0a user context: the app's API key and secret, the account's access token and
//! secret, HMAC-SHA1 signed); receives through the Account Activity API webhook.
//!
//! Callback (`{public}/channels/{id}/{secret}/receive`), the webhook registered for the
//! account:
//! - `GET ?crc_token=…`: the challenge-response check X makes when the webhook is registered
//!   and then hourly, answered `{"response_token": "sha256=<base64 HMAC-SHA256 of the token
//!   with api_key_secret>"}`. A token that is not the short base64-like string X sends (more
//!   than 256 characters, or other characters) is refused with 400: the answer would otherwise
//!   be a valid signature for any body the caller chose;
//! - `POST`: account events, which must carry `X-Twitter-Webhooks-Signature: sha256=<base64
//!   HMAC-SHA256 of the body with api_key_secret>` (403 otherwise). Events for another
//!   `for_user_id` are ignored.
//!
//! `direct_message_events` of type `message_create` are inbound messages (Courier's payload):
//! `from` the sender's user id, `to` the channel's `user_id`, the text as content (X escapes
//! `&`, `<` and `>` as HTML entities: they are unescaped; the `t.co` link X appends for an
//! attached medium is taken off). The medium (`attachment.media`: a photo's
//! `media_url_https`, a video's or GIF's best `video/mp4` variant) is an attachment: DM media
//! on `ton.twitter.com` needs the account's OAuth credentials, so its URL is hornbill's
//! `…/media/{ref}`, fetched with them; other URLs are passed as they are. A quick-reply
//! choice keeps its label as content and its `metadata` in `channel_data.twitter.quick_reply`;
//! the sender's `screen_name` and `name` (from `users`) are in `channel_data.twitter` too.
//! Messages the account sent itself (echoes, `sender_id` = `user_id`) are ignored.
//!
//! There are no DM delivery reports; a `direct_message_mark_read_events` entry from the
//! other user names the last DM they read (`last_read_event_id`): that message gets
//! `delivery_succeeded` (earlier unread ones get nothing).
//!
//! Sends: `to` is the user's numeric id (a screen name is refused, unsent). The X API takes
//! media only as a `media_id` uploaded beforehand (a separate, chunked upload of the bytes);
//! hornbill does not upload: a message's attachments are sent as links, one line each after
//! the content (the attachment's caption, if any, before its URL), in the one DM. Answers:
//! `data.dm_event_id` is the provider id; 429 (`x-rate-limit-reset`: epoch seconds) pauses
//! the channel until the reset; 5xx are retried; any other refusal is final, with X's
//! problem `title` and `detail` (or `errors[].message`) in the reason (403: the user does not
//! accept DMs from the account; 401: bad credentials).

use crate::message::{DeliveryStatus, Message};
use crate::transports::aggregator::{
    self, Inbound, InboundMedia, MediaAt, Provider, ProviderRequest, ProviderResponse, Received,
    Refusal, Report, RequestBody, SendContext, SendOutcome,
};
use crate::transports::{Callback, CallbackResponse};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

const LIVE: &str = "https://api.x.com";
const TON: &str = "https://ton.twitter.com";
const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";
/// Longest `crc_token` answered.
const MAX_CRC: usize = 256;

fn default_timeout() -> f64 {
    10.0
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwitterConfig {
    /// The account's numeric user id (`to` of its inbound DMs).
    pub user_id: String,
    /// The app's API key (OAuth 1.0a consumer key).
    pub api_key: String,
    /// The app's API key secret: signs requests, answers CRC checks, checks webhook signatures.
    pub api_key_secret: String,
    /// The account's access token (OAuth 1.0a, with DM read and write).
    pub access_token: String,
    pub access_token_secret: String,
    /// Replaces `https://api.x.com` (a proxy, a test stub).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Replaces `https://ton.twitter.com`, where DM media is fetched.
    #[serde(default)]
    pub media_base_url: Option<String>,
    /// Seconds per request.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Refuse events without a valid `X-Twitter-Webhooks-Signature`.
    #[serde(default = "default_true")]
    pub validate_signature: bool,
    #[serde(default)]
    pub transport_type: Option<String>,
}

impl aggregator::TypeConfig for TwitterConfig {
    fn check(&mut self) -> Result<(), String> {
        for (k, v) in [
            ("user_id", &self.user_id),
            ("api_key", &self.api_key),
            ("api_key_secret", &self.api_key_secret),
            ("access_token", &self.access_token),
            ("access_token_secret", &self.access_token_secret),
        ] {
            if v.is_empty() {
                return Err(format!("{k} must not be empty"));
            }
        }
        if !self.user_id.chars().all(|c| c.is_ascii_digit()) {
            return Err("user_id must be the account's numeric id".into());
        }
        for (k, v) in [
            ("base_url", &self.base_url),
            ("media_base_url", &self.media_base_url),
        ] {
            if let Some(b) = v {
                crate::transports::check_http_url(k, b)?;
            }
        }
        crate::transports::check_seconds(&[("timeout", self.timeout)])?;
        Ok(())
    }

    fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// The `twitter` channel type.
pub type TwitterFactory = aggregator::Factory<Twitter>;

impl aggregator::HttpType for Twitter {
    const TYPE: &'static str = "twitter";
    const TRANSPORT_TYPE: &'static str = "twitter";
    const ACTIONS: &'static [&'static str] = &["receive"];
    const MEDIA: bool = true;
    type Config = TwitterConfig;

    fn new(cfg: TwitterConfig, _cx: &aggregator::StartContext) -> Self {
        Twitter { cfg }
    }
}

pub struct Twitter {
    pub cfg: TwitterConfig,
}

/// RFC 3986 percent-encoding, as OAuth 1.0a wants it (unreserved characters kept).
const OAUTH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, OAUTH).to_string()
}

/// OAuth 1.0a credentials.
pub struct OAuth<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    pub token: &'a str,
    pub token_secret: &'a str,
}

/// The OAuth 1.0a `Authorization` header (HMAC-SHA1) of a request to `url` (its query and
/// `form` parameters signed; a JSON body is not), with this nonce and timestamp.
pub fn oauth_header(
    creds: &OAuth,
    method: &str,
    url: &str,
    form: &[(String, String)],
    nonce: &str,
    timestamp: &str,
) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut oauth = vec![
        ("oauth_consumer_key", creds.consumer_key.to_string()),
        ("oauth_nonce", nonce.to_string()),
        ("oauth_signature_method", "HMAC-SHA1".to_string()),
        ("oauth_timestamp", timestamp.to_string()),
        ("oauth_token", creds.token.to_string()),
        ("oauth_version", "1.0".to_string()),
    ];
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .chain(form.iter().cloned())
        .chain(oauth.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .map(|(k, v)| (enc(&k), enc(&v)))
        .collect();
    params.sort();
    let joined: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let text = format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        enc(base),
        enc(&joined.join("&"))
    );
    let key = format!("{}&{}", enc(creds.consumer_secret), enc(creds.token_secret));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC keys may have any length"));
    mac.update(text.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    oauth.push(("oauth_signature", sig));
    oauth.sort();
    let parts: Vec<String> = oauth
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", enc(v)))
        .collect();
    format!("OAuth {}", parts.join(", "))
}

/// `sha256=<base64 HMAC-SHA256>` of `data` with `secret` (CRC answers, event signatures).
pub fn signature(secret: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC keys may have any length"));
    mac.update(data);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn signature_valid(secret: &str, body: &[u8], given: &str) -> bool {
    let Some(b64) = given.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC keys may have any length"));
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// X's HTML escapes in DM text, undone.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A content type from a media URL's extension.
fn type_of(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(
        match ext.as_str() {
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "gif" => "image/gif",
            "webp" => "image/webp",
            "mp4" => "video/mp4",
            _ => return None,
        }
        .into(),
    )
}

impl Twitter {
    fn api(&self) -> &str {
        self.cfg
            .base_url
            .as_deref()
            .unwrap_or(LIVE)
            .trim_end_matches('/')
    }

    fn ton(&self) -> &str {
        self.cfg
            .media_base_url
            .as_deref()
            .unwrap_or(TON)
            .trim_end_matches('/')
    }

    fn creds(&self) -> OAuth<'_> {
        OAuth {
            consumer_key: &self.cfg.api_key,
            consumer_secret: &self.cfg.api_key_secret,
            token: &self.cfg.access_token,
            token_secret: &self.cfg.access_token_secret,
        }
    }

    /// `request` signed with the account's credentials (a fresh nonce and timestamp).
    fn signed(&self, request: ProviderRequest) -> ProviderRequest {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let header = oauth_header(
            &self.creds(),
            request.method,
            &request.url,
            &[],
            &nonce,
            &now,
        );
        request.header("Authorization", header)
    }

    /// Where an inbound medium is fetched: by reference when it is on X's DM media host.
    fn media_at(&self, url: &str) -> MediaAt {
        for host in [TON, self.ton()] {
            if let Some(path) = url.strip_prefix(host).and_then(|p| p.strip_prefix('/'))
                && path.starts_with("1.1/ton/data/")
            {
                return MediaAt::Provider(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(path),
                );
            }
        }
        MediaAt::Url(url.to_string())
    }

    /// One `message_create` event (`None`: the account's own echo).
    pub fn read_dm(&self, e: &Value, users: &Value) -> Result<Option<Inbound>, String> {
        let mc = &e["message_create"];
        let sender = str_of(mc, "sender_id").ok_or("a message_create without sender_id")?;
        if sender == self.cfg.user_id {
            return Ok(None);
        }
        if !sender.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("invalid sender_id {sender:?}"));
        }
        let data = &mc["message_data"];
        let mut text = unescape(data["text"].as_str().unwrap_or(""));
        let mut media = Vec::new();
        let m = &data["attachment"]["media"];
        if m.is_object() {
            // X appends the medium's t.co link to the text.
            if let Some(link) = str_of(m, "url")
                && let Some(stripped) = text.trim_end().strip_suffix(link)
            {
                text = stripped.trim_end().to_string();
            }
            let video = m["video_info"]["variants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["content_type"] == "video/mp4")
                .max_by_key(|v| v["bitrate"].as_u64().unwrap_or(0))
                .and_then(|v| str_of(v, "url"));
            if let Some(url) = video.or_else(|| str_of(m, "media_url_https")) {
                media.push(InboundMedia {
                    at: self.media_at(url),
                    content_type: type_of(url),
                    caption: None,
                });
            }
        }
        let mut meta = Map::new();
        for k in ["id", "created_timestamp"] {
            if let Some(v) = e.get(k) {
                meta.insert(k.into(), v.clone());
            }
        }
        let mut app = Map::new();
        let user = &users[sender];
        for k in ["screen_name", "name"] {
            if let Some(v) = str_of(user, k) {
                app.insert(k.into(), Value::String(v.into()));
            }
        }
        if let Some(q) = data["quick_reply_response"].get("metadata") {
            app.insert("quick_reply".into(), q.clone());
        }
        if !app.is_empty() {
            meta.insert(
                aggregator::CHANNEL_DATA.into(),
                json!({ "twitter": Value::Object(app) }),
            );
        }
        Ok(Some(Inbound {
            group: None,
            from: sender.to_string(),
            to: self.cfg.user_id.clone(),
            content: (!text.is_empty()).then_some(text),
            metadata: meta,
            media,
        }))
    }

    /// What an Account Activity event body holds for this channel.
    pub fn read_events(&self, body: &Value) -> Result<Received, Refusal> {
        let for_user = body["for_user_id"].as_str().unwrap_or("");
        if !for_user.is_empty() && for_user != self.cfg.user_id {
            return Ok(Received::Ignored(format!(
                "events for another account ({for_user:?})"
            )));
        }
        let mut messages = Vec::new();
        for e in body["direct_message_events"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if e["type"] != "message_create" {
                continue;
            }
            if let Some(m) = self
                .read_dm(e, &body["users"])
                .map_err(Refusal::bad_request)?
            {
                messages.push(m);
            }
        }
        let mut reports = Vec::new();
        for r in body["direct_message_mark_read_events"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let reader = str_of(r, "sender_id").unwrap_or("");
            if reader == self.cfg.user_id {
                continue;
            }
            if let Some(id) = str_of(r, "last_read_event_id") {
                reports.push(Report {
                    provider_id: Some(id.to_string()),
                    message_id: None,
                    status: DeliveryStatus::Delivered,
                    detail: format!("read by {reader}"),
                });
            }
        }
        Ok(match (messages.is_empty(), reports.is_empty()) {
            (false, false) => Received::Both(messages, reports),
            (false, true) => Received::Messages(messages),
            (true, false) => Received::Reports(reports),
            (true, true) => {
                let kinds: Vec<&str> = body
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .map(String::as_str)
                            .filter(|k| *k != "for_user_id" && *k != "users")
                            .collect()
                    })
                    .unwrap_or_default();
                Received::Ignored(format!(
                    "no direct message for this channel ({})",
                    kinds.join(", ")
                ))
            }
        })
    }

    fn crc(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        let q: Vec<(String, String)> = url::form_urlencoded::parse(cb.query.as_bytes())
            .into_owned()
            .collect();
        let token = aggregator::form_field(&q, "crc_token")
            .ok_or_else(|| Refusal::bad_request("missing required 'crc_token' query parameter"))?;
        let token_like = token.len() <= MAX_CRC
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c));
        if !token_like {
            return Err(Refusal::bad_request(
                "crc_token is not a token (too long, or characters X does not send)",
            ));
        }
        Ok((
            Received::Ignored("CRC check answered".into()),
            CallbackResponse::json(
                200,
                &json!({"response_token": signature(&self.cfg.api_key_secret, token.as_bytes())}),
            ),
        ))
    }

    fn check_signature(&self, cb: &Callback) -> Result<(), Refusal> {
        if !self.cfg.validate_signature {
            return Ok(());
        }
        let refuse = |why: &str| Refusal::with(CallbackResponse::text(403, why), why);
        let Some(given) = cb.header(SIGNATURE_HEADER) else {
            return Err(refuse("missing X-Twitter-Webhooks-Signature"));
        };
        if signature_valid(&self.cfg.api_key_secret, &cb.body, given) {
            Ok(())
        } else {
            Err(refuse("invalid X-Twitter-Webhooks-Signature"))
        }
    }
}

impl Provider for Twitter {
    fn name(&self) -> &'static str {
        "twitter"
    }

    fn secrets(&self) -> Vec<String> {
        vec![
            self.cfg.api_key_secret.clone(),
            self.cfg.access_token.clone(),
            self.cfg.access_token_secret.clone(),
        ]
    }

    fn build_send(&self, msg: &Message, _cx: &SendContext) -> Result<ProviderRequest, String> {
        let to = msg
            .to_addr
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or("The message has no to address")?;
        if !to.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("The to address {to:?} is not a numeric X user id"));
        }
        let mut lines: Vec<String> = msg
            .content
            .clone()
            .filter(|c| !c.is_empty())
            .into_iter()
            .collect();
        for a in msg.attachments() {
            match a.caption.filter(|c| !c.is_empty()) {
                Some(c) => lines.push(format!("{c} {}", a.url)),
                None => lines.push(a.url),
            }
        }
        if lines.is_empty() {
            return Err("The message has no content".into());
        }
        Ok(self.signed(ProviderRequest::new(
            "POST",
            format!("{}/2/dm_conversations/with/{to}/messages", self.api()),
            RequestBody::Json(json!({"text": lines.join("\n")})),
        )))
    }

    fn read_send(&self, resp: &ProviderResponse) -> SendOutcome {
        let body = resp.json().unwrap_or(Value::Null);
        let by_status = aggregator::status_outcome(resp);
        if by_status.is_none()
            && let Some(id) = str_of(&body["data"], "dm_event_id")
        {
            return SendOutcome::Accepted(Some(id.to_string()));
        }
        let mut said: Vec<String> = Vec::new();
        if let Some(t) = str_of(&body, "title") {
            said.push(t.to_string());
        }
        if let Some(d) = str_of(&body, "detail").filter(|d| Some(*d) != str_of(&body, "title")) {
            said.push(d.to_string());
        }
        for e in body["errors"].as_array().into_iter().flatten() {
            if let Some(m) = str_of(e, "message") {
                said.push(m.to_string());
            }
        }
        let said = if said.is_empty() {
            aggregator::quote(&resp.body)
        } else {
            aggregator::quote(&said.join(": "))
        };
        let reason = format!("X {}: {said}", resp.status);
        if resp.status == 429 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            return match resp
                .header("x-rate-limit-reset")
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(reset) => SendOutcome::RetryAfter(
                    reason,
                    Duration::from_secs(reset.saturating_sub(now).max(1)),
                ),
                None => SendOutcome::Retry(reason),
            };
        }
        match by_status {
            Some(SendOutcome::Retry(_)) => SendOutcome::Retry(reason),
            _ => SendOutcome::Failed(reason),
        }
    }

    fn receive(&self, cb: &Callback) -> Result<(Received, CallbackResponse), Refusal> {
        if cb.action != "receive" {
            return Err(Refusal::bad_request(format!("no action {}", cb.action)));
        }
        if cb.method.eq_ignore_ascii_case("GET") {
            return self.crc(cb);
        }
        self.check_signature(cb)?;
        let body: Value = serde_json::from_slice(&cb.body)
            .map_err(|e| Refusal::bad_request(format!("unable to parse request JSON: {e}")))?;
        let received = self.read_events(&body)?;
        Ok((received, aggregator::accepted("Events Handled")))
    }

    fn media_request(&self, media_ref: &str) -> Option<ProviderRequest> {
        let path = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(media_ref)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let safe = path.starts_with("1.1/ton/data/")
            && !path.contains("..")
            && !path.contains(['?', '#', '\\', '@']);
        if !safe {
            return None;
        }
        Some(self.signed(ProviderRequest::new(
            "GET",
            format!("{}/{path}", self.ton()),
            RequestBody::None,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tw(extra: Value) -> Twitter {
        let mut config = json!({"user_id": "835740314006511618", "api_key": "apiKey",
            "api_key_secret": "apiSecret", "access_token": "accessToken",
            "access_token_secret": "accessTokenSecret"});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        Twitter {
            cfg: aggregator::parse_config(&config).unwrap(),
        }
    }

    #[test]
    fn configs() {
        let p = |c: Value| aggregator::parse_config::<TwitterConfig>(&c);
        let ok = json!({"user_id": "1", "api_key": "k", "api_key_secret": "s",
                        "access_token": "t", "access_token_secret": "ts"});
        assert!(p(ok.clone()).is_ok());
        let mut bad = ok.clone();
        bad["user_id"] = json!("@resistbot");
        assert!(p(bad).unwrap_err().contains("numeric"));
        let mut bad = ok.clone();
        bad["access_token_secret"] = json!("");
        assert!(p(bad).unwrap_err().contains("must not be empty"));
        let mut bad = ok.clone();
        bad["consumer_key"] = json!("k");
        assert!(p(bad).unwrap_err().contains("unknown field"));
        let mut bad = ok;
        bad["media_base_url"] = json!("ftp://x");
        assert!(p(bad).is_err());
    }

    #[test]
    fn the_oauth_signature_of_xs_docs_example() {
        // "Creating a signature" in X's OAuth 1.0a documentation.
        let creds = OAuth {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog",
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            token: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            token_secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        };
        let header = oauth_header(
            &creds,
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
            &[(
                "status".into(),
                "Hello Ladies + Gentlemen, a signed OAuth request!".into(),
            )],
            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            "1318622958",
        );
        assert!(
            header.contains(r#"oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D""#),
            "{header}"
        );
        assert!(header.starts_with("OAuth oauth_consumer_key=\"xvz1evFS4wEEPTGEFPHBog\""));
    }

    #[test]
    fn crc_and_signatures() {
        // The CRC answer is the signature of the token.
        let s = signature("apiSecret", b"crcToken");
        assert!(signature_valid("apiSecret", b"crcToken", &s));
        assert!(!signature_valid("apiSecret", b"other", &s));
        assert!(!signature_valid("apiSecret", b"crcToken", "sha256=@@"));
    }

    #[test]
    fn dms_media_and_reads() {
        let t = tw(json!({}));
        let body = json!({"for_user_id": "835740314006511618",
            "direct_message_events": [
                {"type": "message_create", "id": "958501034212564996",
                 "created_timestamp": "1517359429301",
                 "message_create": {"target": {"recipient_id": "835740314006511618"},
                    "sender_id": "272953809",
                    "message_data": {"text": "Look &amp; see https://t.co/abc",
                        "attachment": {"type": "media", "media": {
                            "url": "https://t.co/abc", "type": "photo",
                            "media_url_https": "https://ton.twitter.com/1.1/ton/data/dm/958501034212564996/958501012345/pic.jpg"}}}}},
                {"type": "message_create", "id": "2",
                 "message_create": {"target": {"recipient_id": "272953809"},
                    "sender_id": "835740314006511618", "message_data": {"text": "echo"}}}],
            "direct_message_mark_read_events": [{"sender_id": "272953809",
                "target": {"recipient_id": "835740314006511618"},
                "last_read_event_id": "1111"}],
            "users": {"272953809": {"id": "272953809", "name": "Nicolas Pottier",
                                    "screen_name": "nicpottier"}}});
        let Received::Both(m, r) = t.read_events(&body).unwrap() else {
            panic!()
        };
        assert_eq!(m.len(), 1, "the echo is left out");
        assert_eq!(m[0].content.as_deref(), Some("Look & see"));
        assert_eq!(m[0].from, "272953809");
        assert_eq!(m[0].media[0].content_type.as_deref(), Some("image/jpeg"));
        let MediaAt::Provider(r0) = &m[0].media[0].at else {
            panic!()
        };
        let req = t.media_request(r0).unwrap();
        assert_eq!(
            req.url,
            "https://ton.twitter.com/1.1/ton/data/dm/958501034212564996/958501012345/pic.jpg"
        );
        assert!(req.headers[0].1.starts_with("OAuth "));
        assert_eq!(r[0].provider_id.as_deref(), Some("1111"));
        // A reference outside DM media is no media.
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("2/users/me");
        assert!(t.media_request(&other).is_none());
    }

    #[test]
    fn send_answers() {
        let t = tw(json!({}));
        let r = |status, body: &str| t.read_send(&ProviderResponse::new(status, body));
        assert_eq!(
            r(
                201,
                r#"{"data":{"dm_conversation_id":"1-2","dm_event_id":"1582838223467"}}"#
            ),
            SendOutcome::Accepted(Some("1582838223467".into()))
        );
        assert_eq!(
            r(
                403,
                r#"{"detail":"You are not permitted to send a message to this user","type":"about:blank","title":"Forbidden","status":403}"#
            ),
            SendOutcome::Failed(
                "X 403: Forbidden: You are not permitted to send a message to this user".into()
            )
        );
        assert!(matches!(r(429, "{}"), SendOutcome::Retry(_)));
        assert!(matches!(r(503, "down"), SendOutcome::Retry(_)));
    }
}
