//! Channel type `twitter` against a stub of the X API: the shared case tables (CRC checks,
//! signed Account Activity events with Courier's payload shapes — DMs, media fetched through
//! hornbill with OAuth, quick replies, read receipts — and v2 DM sends, OAuth 1.0a signed,
//! with X's error answers).

mod common;
use base64::Engine;
use common::cases::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

const USER_ID: &str = "835740314006511618";
const API_KEY: &str = "xApiKey4411";
const API_SECRET: &str = "xApiSecret_9a8b7c6d5e4f";
const ACCESS_TOKEN: &str = "835740314006511618-xAccessTok3n";
const ACCESS_SECRET: &str = "xAccessSecret_1f2e3d4c";
const SENDER: &str = "272953809";
const SEND_PATH: &str = "/2/dm_conversations/with/272953809/messages";
const TON_PATH: &str = "/1.1/ton/data/dm/958501034212564996/958501012345/Xp1c.jpg";

fn b64_hmac256(data: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(API_SECRET.as_bytes()).unwrap();
    mac.update(data);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// X's event signature: base64 HMAC-SHA256 of the body with the API key secret.
fn sign(_url: &str, body: &Body) -> Vec<(String, String)> {
    let raw = match body {
        Body::Json(v) => v.to_string(),
        Body::Raw(_, t) => t.clone(),
        _ => String::new(),
    };
    vec![(
        "X-Twitter-Webhooks-Signature".into(),
        format!("sha256={}", b64_hmac256(raw.as_bytes())),
    )]
}

fn table() -> Table {
    Table {
        channel_type: "twitter",
        config: Box::new(|stub| {
            json!({"user_id": USER_ID, "api_key": API_KEY, "api_key_secret": API_SECRET,
                   "access_token": ACCESS_TOKEN, "access_token_secret": ACCESS_SECRET,
                   "base_url": stub, "media_base_url": stub})
        }),
        send: ("POST", SEND_PATH),
        secrets: vec![API_SECRET, ACCESS_TOKEN, ACCESS_SECRET],
        signer: Some(Box::new(sign)),
    }
}

fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Checks a request's OAuth 1.0a header as X would: every `oauth_*` parameter, and the
/// HMAC-SHA1 signature recomputed here from the method, URL and parameters.
fn oauth_ok(r: &wiremock::Request) -> Result<(), String> {
    let header = r
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let rest = header.strip_prefix("OAuth ").ok_or("not OAuth")?;
    let mut params: Vec<(String, String)> = rest
        .split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let v = v.trim_matches('"');
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .unwrap()
                .to_string();
            (k.to_string(), v)
        })
        .collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    for (k, want) in [
        ("oauth_consumer_key", API_KEY),
        ("oauth_token", ACCESS_TOKEN),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_version", "1.0"),
    ] {
        if get(k) != want {
            return Err(format!("{k} is {:?}", get(k)));
        }
    }
    if get("oauth_nonce").len() < 16 || get("oauth_timestamp").parse::<u64>().is_err() {
        return Err(format!("nonce or timestamp missing: {header}"));
    }
    let given = get("oauth_signature");
    params.retain(|(k, _)| k != "oauth_signature");
    params.extend(r.url.query_pairs().into_owned());
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    encoded.sort();
    let joined: Vec<String> = encoded.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // The URL hornbill called: wiremock's `url` does not keep the Host's port.
    let host = r
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Host")?;
    let base_url = format!("http://{host}{}", r.url.path());
    let text = format!(
        "{}&{}&{}",
        r.method.as_str(),
        enc(&base_url),
        enc(&joined.join("&"))
    );
    let key = format!("{}&{}", enc(API_SECRET), enc(ACCESS_SECRET));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if given == want {
        Ok(())
    } else {
        Err(format!(
            "bad oauth_signature {given:?}, want {want:?} for {text}"
        ))
    }
}

fn users() -> Value {
    json!({
        "272953809": {"id": "272953809", "created_timestamp": "1301236201000",
                      "name": "Nicolas Pottier", "screen_name": "nicpottier"},
        USER_ID: {"id": USER_ID, "created_timestamp": "1488090992969",
                  "name": "Resistbot", "screen_name": "resistbot"}
    })
}

/// An Account Activity body with one DM from `sender` (Courier's shape).
fn dm(sender: &str, message_data: Value) -> Body {
    Body::Json(json!({"for_user_id": USER_ID, "direct_message_events": [{
        "type": "message_create", "id": "958501034212564996",
        "created_timestamp": "1517359429301",
        "message_create": {"target": {"recipient_id": USER_ID}, "sender_id": sender,
                           "message_data": message_data}}],
        "users": users()}))
}

fn read_receipt(last_read: &str) -> Body {
    Body::Json(
        json!({"for_user_id": USER_ID, "direct_message_mark_read_events": [{
        "created_timestamp": "1517359429301", "sender_id": SENDER,
        "target": {"recipient_id": USER_ID}, "last_read_event_id": last_read}],
        "users": users()}),
    )
}

fn created(id: &str) -> String {
    json!({"data": {"dm_conversation_id": format!("{SENDER}-{USER_ID}"), "dm_event_id": id}})
        .to_string()
}

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 a DM photo";

#[tokio::test]
async fn incoming_cases() {
    let crc = format!("sha256={}", b64_hmac256(b"a1B2c3D4e5F6"));
    let crc_answer: &'static str = Box::leak(
        json!({ "response_token": crc })
            .to_string()
            .into_boxed_str(),
    );
    let media_url = format!("https://ton.twitter.com{TON_PATH}");
    let media_ref = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&TON_PATH[1..]);
    run_incoming(
        &table(),
        &[
            Incoming {
                label: "the CRC check",
                action: "receive",
                method: "GET",
                query: query(&[("crc_token", "a1B2c3D4e5F6"), ("nonce", "MTUxNzM1")]),
                status: 200,
                response: Some(crc_answer),
                ..Default::default()
            },
            Incoming {
                label: "a CRC without a token",
                action: "receive",
                method: "GET",
                status: 400,
                response_contains: vec!["missing required 'crc_token'"],
                ..Default::default()
            },
            Incoming {
                label: "a CRC token that is a body to sign",
                action: "receive",
                method: "GET",
                query: query(&[("crc_token", r#"{"for_user_id":"1"}"#)]),
                status: 400,
                response_contains: vec!["crc_token is not a token"],
                ..Default::default()
            },
            Incoming {
                label: "a signed DM",
                action: "receive",
                body: dm(SENDER, json!({"text": "Hello World &amp; good wishes."})),
                signed: true,
                status: 200,
                inbound: Some(json!({"from": SENDER, "to": USER_ID,
                    "content": "Hello World & good wishes.",
                    "channel_data": {"twitter": {"screen_name": "nicpottier",
                                                 "name": "Nicolas Pottier"}}})),
                ..Default::default()
            },
            Incoming {
                label: "a DM without a signature",
                action: "receive",
                body: dm(SENDER, json!({"text": "Hello"})),
                status: 403,
                response_contains: vec!["missing X-Twitter-Webhooks-Signature"],
                log_contains: vec!["Refused a receive callback (403)"],
                ..Default::default()
            },
            Incoming {
                label: "a DM with a forged signature",
                action: "receive",
                body: dm(SENDER, json!({"text": "Hello"})),
                headers: vec![(
                    "X-Twitter-Webhooks-Signature",
                    format!("sha256={}", b64_hmac256(b"another body")),
                )],
                status: 403,
                response_contains: vec!["invalid X-Twitter-Webhooks-Signature"],
                ..Default::default()
            },
            Incoming {
                label: "a photo, fetched through hornbill with OAuth",
                action: "receive",
                body: dm(
                    SENDER,
                    json!({"text": "Hello https://t.co/7Y2Xc1", "attachment": {"type": "media",
                        "media": {"id": 958501012345u64, "id_str": "958501012345",
                                  "url": "https://t.co/7Y2Xc1", "type": "photo",
                                  "media_url_https": media_url}}}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"from": SENDER, "content": "Hello",
                    "attachments": [{"url": format!("{{callback}}/media/{media_ref}"),
                                     "content_type": "image/jpeg"}]})),
                stubs: vec![Stub {
                    method: "GET",
                    path: TON_PATH,
                    status: 200,
                    content_type: "image/jpeg",
                    body: JPEG.to_vec(),
                    ..Default::default()
                }],
                media: Some(MediaFetch {
                    index: 0,
                    status: 200,
                    content_type: "image/jpeg",
                    body: JPEG.to_vec(),
                }),
                ..Default::default()
            },
            Incoming {
                label: "a quick-reply choice",
                action: "receive",
                body: dm(
                    SENDER,
                    json!({"text": "Red", "quick_reply_response": {"type": "options",
                                                                   "metadata": "color_red"}}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": "Red",
                    "channel_data": {"twitter": {"quick_reply": "color_red"}}})),
                ..Default::default()
            },
            Incoming {
                label: "the account's own DM (an echo)",
                action: "receive",
                body: dm(USER_ID, json!({"text": "we said this"})),
                signed: true,
                status: 200,
                log_contains: vec!["Ignored a receive callback"],
                ..Default::default()
            },
            Incoming {
                label: "events for another account",
                action: "receive",
                body: Body::Json(json!({"for_user_id": "1", "direct_message_events": []})),
                signed: true,
                status: 200,
                log_contains: vec!["events for another account"],
                ..Default::default()
            },
            Incoming {
                label: "not JSON",
                action: "receive",
                body: Body::Raw("application/json", "blargh".into()),
                signed: true,
                status: 400,
                response_contains: vec!["unable to parse request JSON"],
                ..Default::default()
            },
            Incoming {
                label: "a read receipt",
                action: "receive",
                body: read_receipt("1582838223467"),
                signed: true,
                prior_send: Some((201, created("1582838223467"))),
                prior_to: Some(SENDER),
                status: 200,
                event: Some(json!({"event_type": "delivery_succeeded"})),
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases() {
    let text = json!({"to": SENDER, "content": "Simple Message ☺ & more"});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    run_outgoing(
        &table(),
        &[
            Outgoing {
                label: "a text, OAuth-signed",
                send: text.clone(),
                responses: vec![(201, created("1582838223467"))],
                request: ExpectRequest {
                    headers: vec![("content-type", "application/json".into())],
                    json: Some(json!({"text": "Simple Message ☺ & more"})),
                    verify: Some(oauth_ok),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "attachments as links",
                send: json!({"to": SENDER, "content": "See these",
                    "attachments": [
                        {"url": "https://media.example/cat.jpg", "content_type": "image/jpeg"},
                        {"url": "https://media.example/r.pdf", "caption": "The report"}]}),
                responses: vec![(201, created("1582838223468"))],
                request: ExpectRequest {
                    json: Some(json!({"text":
                        "See these\nhttps://media.example/cat.jpg\nThe report https://media.example/r.pdf"})),
                    verify: Some(oauth_ok),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a screen name is not an id: rejected unsent",
                send: json!({"to": "@nicpottier", "content": "hi"}),
                responses: vec![(201, created("never"))],
                unsent: true,
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "The to address \"@nicpottier\" is not a numeric X user id"}}),
                ..Default::default()
            },
            Outgoing {
                label: "DMs closed (403) is final",
                send: text.clone(),
                responses: vec![(
                    403,
                    json!({"detail": "You are not permitted to send a message to this user",
                           "type": "about:blank", "title": "Forbidden", "status": 403})
                    .to_string(),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "X 403: Forbidden: You are not permitted to send a message to this user"}}),
                ..Default::default()
            },
            Outgoing {
                label: "bad credentials (401) is final",
                send: text.clone(),
                responses: vec![(
                    401,
                    json!({"title": "Unauthorized", "type": "about:blank", "status": 401,
                           "detail": "Unauthorized"})
                    .to_string(),
                )],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "X 401: Unauthorized"}}),
                ..Default::default()
            },
            Outgoing {
                label: "rate limited (429) until x-rate-limit-reset, then accepted",
                send: text.clone(),
                responses: vec![
                    (
                        429,
                        json!({"title": "Too Many Requests", "detail": "Too Many Requests",
                               "type": "about:blank", "status": 429})
                        .to_string(),
                    ),
                    (201, created("1582838223469")),
                ],
                response_headers: vec![
                    ("x-rate-limit-limit", "15".into()),
                    ("x-rate-limit-remaining", "0".into()),
                    ("x-rate-limit-reset", (now + 1).to_string()),
                ],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a 503 then accepted",
                send: text.clone(),
                responses: vec![
                    (503, "Service Unavailable".into()),
                    (201, created("1582838223470")),
                ],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
        ],
    )
    .await;
}
