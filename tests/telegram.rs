//! Channel type `telegram` against a stub of the Telegram Bot API: the shared case tables
//! (updates checked with the webhook's secret token — text, group chats, media fetched
//! through hornbill with getFile, locations, ignored updates — and sends: text, media by
//! content type, passed-through fields, the Bot API's error answers), plus `setWebhook` at
//! start, a reply quoting its message, `retry_after` honoured, and the bot token and the
//! secret token kept out of logs and API answers.

mod common;
use common::cases::*;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

macro_rules! token {
    () => {
        "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    };
}
const TOKEN: &str = token!();
const SEND_PATH: &str = concat!("/bot", token!(), "/sendMessage");
const PHOTO_PATH: &str = concat!("/bot", token!(), "/sendPhoto");
const DOCUMENT_PATH: &str = concat!("/bot", token!(), "/sendDocument");
const AUDIO_PATH: &str = concat!("/bot", token!(), "/sendAudio");
const SET_WEBHOOK_PATH: &str = concat!("/bot", token!(), "/setWebhook");
const GET_FILE_PATH: &str = concat!("/bot", token!(), "/getFile");
const FILE_PATH: &str = concat!("/file/bot", token!(), "/photos/file_0.jpg");
const BOT: &str = "hornbill_bot";
const USER: i64 = 1111111;
const GROUP: i64 = -1001234567890;
const PHOTO_ID: &str = "AgACAgQAAxkBAAMFZ3x_large-0";

/// The webhook secret token hornbill gives Telegram for channel `cid`: the hex
/// HMAC-SHA256 of `hornbill telegram webhook <cid>` keyed with the bot token.
fn secret_for(cid: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(format!("hornbill telegram webhook {cid}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The channel id in a callback URL (`…/channels/{cid}/{secret}/receive`).
fn cid_of(url: &str) -> String {
    let rest = url.split("/channels/").nth(1).unwrap_or("");
    rest.split('/').next().unwrap_or("").to_string()
}

/// What Telegram adds to every update it posts: the channel's secret token.
fn sign(url: &str, _body: &Body) -> Vec<(String, String)> {
    vec![(
        "X-Telegram-Bot-Api-Secret-Token".into(),
        secret_for(&cid_of(url)),
    )]
}

fn table() -> Table {
    Table {
        channel_type: "telegram",
        config: Box::new(
            |stub| json!({"bot_token": TOKEN, "bot_username": format!("@{BOT}"), "api_url": stub}),
        ),
        send: ("POST", SEND_PATH),
        secrets: vec![TOKEN],
        signer: Some(Box::new(sign)),
    }
}

fn ok(result: Value) -> String {
    json!({"ok": true, "result": result}).to_string()
}

fn error(code: u16, description: &str, parameters: Option<Value>) -> String {
    let mut e = json!({"ok": false, "error_code": code, "description": description});
    if let Some(p) = parameters {
        e["parameters"] = p;
    }
    e.to_string()
}

/// The Bot API's answer to a send it took: the sent `Message`.
fn sent(chat: i64, message_id: u64) -> String {
    ok(json!({"message_id": message_id, "date": 1733570000,
              "chat": {"id": chat, "type": if chat < 0 { "supergroup" } else { "private" }},
              "from": {"id": 110201543, "is_bot": true, "first_name": "Hornbill",
                       "username": BOT},
              "text": "…"}))
}

/// `setWebhook` answered as Telegram does when it takes it.
fn webhook_set() -> Vec<Stub> {
    vec![Stub {
        method: "POST",
        path: SET_WEBHOOK_PATH,
        status: 200,
        content_type: "application/json",
        body: json!({"ok": true, "result": true, "description": "Webhook was set"})
            .to_string()
            .into_bytes(),
        ..Default::default()
    }]
}

fn user() -> Value {
    json!({"id": USER, "is_bot": false, "first_name": "Ann", "last_name": "Mwangi",
           "username": "ann_m", "language_code": "en"})
}

/// An update carrying a message in the user's private chat, with `extra` fields.
fn private(extra: Value) -> Body {
    let mut m = json!({"message_id": 1365, "date": 1733570000, "from": user(),
        "chat": {"id": USER, "type": "private", "first_name": "Ann", "username": "ann_m"}});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    Body::Json(json!({"update_id": 975000001, "message": m}))
}

const JPEG: &[u8] = b"\xff\xd8\xff\xe0 not really a jpeg";

/// getFile, then the file itself (both only under the bot token's path).
fn file_stubs() -> Vec<Stub> {
    vec![
        Stub {
            method: "GET",
            path: GET_FILE_PATH,
            status: 200,
            content_type: "application/json",
            body: ok(json!({"file_id": PHOTO_ID, "file_unique_id": "AQADx",
                            "file_size": 23, "file_path": "photos/file_0.jpg"}))
            .into_bytes(),
            ..Default::default()
        },
        Stub {
            method: "GET",
            path: FILE_PATH,
            status: 200,
            content_type: "image/jpeg",
            body: JPEG.to_vec(),
            ..Default::default()
        },
    ]
}

#[tokio::test]
async fn incoming_cases() {
    run_incoming_with(
        &table(),
        &webhook_set(),
        &[
            Incoming {
                label: "a text message",
                action: "receive",
                body: private(json!({"text": "Hello World"})),
                signed: true,
                status: 200,
                response: Some(""),
                inbound: Some(json!({"from": USER.to_string(), "to": BOT,
                    "content": "Hello World", "group": null,
                    "channel_data": {"telegram": {"message_id": 1365,
                        "from": {"id": USER, "username": "ann_m", "first_name": "Ann"},
                        "chat": {"id": USER, "type": "private"}}}})),
                ..Default::default()
            },
            Incoming {
                label: "a message in a group: from and group are the group's chat",
                action: "receive",
                body: Body::Json(json!({"update_id": 975000002, "message": {
                    "message_id": 88, "date": 1733570001, "from": user(),
                    "chat": {"id": GROUP, "type": "supergroup", "title": "Field team"},
                    "text": "/report@hornbill_bot 12 bags",
                    "entities": [{"offset": 0, "length": 19, "type": "bot_command"}],
                    "reply_to_message": {"message_id": 80, "date": 1733560000,
                        "chat": {"id": GROUP, "type": "supergroup"}}}})),
                signed: true,
                status: 200,
                inbound: Some(json!({"from": GROUP.to_string(), "to": BOT,
                    "group": GROUP.to_string(), "content": "/report@hornbill_bot 12 bags",
                    "channel_data": {"telegram": {"from": {"id": USER},
                        "chat": {"title": "Field team", "type": "supergroup"},
                        "reply_to_message_id": 80}}})),
                ..Default::default()
            },
            Incoming {
                label: "a press of an inline keyboard's button: its data is the content, the press answered in the webhook's answer",
                action: "receive",
                body: Body::Json(json!({"update_id": 975000003, "callback_query": {
                    "id": "4382bfdwdsb323b2d9", "from": user(), "chat_instance": "-5938711203",
                    "data": "vote:yes",
                    "message": {"message_id": 1370, "date": 1733570100,
                        "chat": {"id": USER, "type": "private"},
                        "text": "Do you agree?",
                        "reply_markup": {"inline_keyboard": [[
                            {"text": "Yes", "callback_data": "vote:yes"},
                            {"text": "No", "callback_data": "vote:no"}]]}}}})),
                signed: true,
                status: 200,
                response_contains: vec![
                    "\"method\":\"answerCallbackQuery\"",
                    "\"callback_query_id\":\"4382bfdwdsb323b2d9\"",
                ],
                inbound: Some(json!({"from": USER.to_string(), "to": BOT,
                    "content": "vote:yes", "group": null,
                    "channel_data": {"telegram": {"callback_query_id": "4382bfdwdsb323b2d9",
                        "callback_data": "vote:yes", "keyboard_message_id": 1370,
                        "from": {"id": USER}}}})),
                ..Default::default()
            },
            Incoming {
                label: "a game's button press (no data): answered, nothing delivered",
                action: "receive",
                body: Body::Json(json!({"update_id": 975000004, "callback_query": {
                    "id": "4382bfdwdsb323b2e0", "from": user(), "chat_instance": "-5938711203",
                    "game_short_name": "quiz"}})),
                signed: true,
                status: 200,
                response_contains: vec!["answerCallbackQuery"],
                log_contains: vec!["a button press without data"],
                inbound: None,
                ..Default::default()
            },
            Incoming {
                label: "an update without the secret token",
                action: "receive",
                body: private(json!({"text": "forged"})),
                status: 403,
                response_contains: vec!["missing X-Telegram-Bot-Api-Secret-Token"],
                log_contains: vec!["Refused a receive callback (403)"],
                ..Default::default()
            },
            Incoming {
                label: "an update with a forged secret token",
                action: "receive",
                body: private(json!({"text": "forged"})),
                headers: vec![("X-Telegram-Bot-Api-Secret-Token", "guessed_token".into())],
                status: 403,
                response_contains: vec!["invalid X-Telegram-Bot-Api-Secret-Token"],
                log_contains: vec![
                    "Refused a receive callback (403)",
                    "invalid X-Telegram-Bot-Api-Secret-Token",
                ],
                ..Default::default()
            },
            Incoming {
                label: "an update with another channel's secret token",
                action: "receive",
                body: private(json!({"text": "forged"})),
                headers: vec![(
                    "X-Telegram-Bot-Api-Secret-Token",
                    secret_for("another-channel"),
                )],
                status: 403,
                log_contains: vec!["invalid X-Telegram-Bot-Api-Secret-Token"],
                ..Default::default()
            },
            Incoming {
                label: "a photo with a caption, fetched through hornbill",
                action: "receive",
                body: private(json!({"caption": "My new phone", "photo": [
                    {"file_id": "AgACAgQAAxkBAAMFZ3x_small", "file_unique_id": "AQADs",
                     "file_size": 1191, "width": 90, "height": 67},
                    {"file_id": PHOTO_ID, "file_unique_id": "AQADx",
                     "file_size": 86712, "width": 1280, "height": 960},
                    {"file_id": "AgACAgQAAxkBAAMFZ3x_mid", "file_unique_id": "AQADm",
                     "file_size": 15243, "width": 320, "height": 240}]})),
                signed: true,
                status: 200,
                inbound: Some(json!({"from": USER.to_string(), "content": "My new phone",
                    "attachments": [{"url": format!("{{callback}}/media/{PHOTO_ID}"),
                                     "content_type": "image/jpeg",
                                     "caption": "My new phone"}]})),
                stubs: file_stubs(),
                media: Some(MediaFetch {
                    index: 0,
                    status: 200,
                    content_type: "image/jpeg",
                    body: JPEG.to_vec(),
                }),
                ..Default::default()
            },
            Incoming {
                label: "a file Telegram no longer has: 404 through hornbill",
                action: "receive",
                body: private(
                    json!({"video": {"file_id": "BAACAgQAAxkBgone", "file_unique_id": "x",
                    "width": 640, "height": 360, "duration": 3, "mime_type": "video/mp4"}}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": null,
                    "attachments": [{"url": "{callback}/media/BAACAgQAAxkBgone",
                                     "content_type": "video/mp4"}]})),
                stubs: vec![Stub {
                    method: "GET",
                    path: GET_FILE_PATH,
                    status: 400,
                    content_type: "application/json",
                    body: error(400, "Bad Request: invalid file_id", None).into_bytes(),
                    ..Default::default()
                }],
                media: Some(MediaFetch {
                    index: 0,
                    status: 404,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Incoming {
                label: "a voice note",
                action: "receive",
                body: private(
                    json!({"voice": {"file_id": "AwACAgQAAxkBvoice", "file_unique_id": "v",
                    "duration": 4, "mime_type": "audio/ogg", "file_size": 9120}}),
                ),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": null,
                    "attachments": [{"url": "{callback}/media/AwACAgQAAxkBvoice",
                                     "content_type": "audio/ogg"}]})),
                ..Default::default()
            },
            Incoming {
                label: "a document with its file name",
                action: "receive",
                body: private(json!({"caption": "My invoice", "document": {
                    "file_id": "BQACAgQAAxkBdoc", "file_unique_id": "d",
                    "file_name": "invoice.pdf", "mime_type": "application/pdf"}})),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": "My invoice",
                    "attachments": [{"url": "{callback}/media/BQACAgQAAxkBdoc",
                                     "content_type": "application/pdf",
                                     "caption": "My invoice"}],
                    "channel_data": {"telegram": {"file_name": "invoice.pdf"}}})),
                ..Default::default()
            },
            Incoming {
                label: "a location",
                action: "receive",
                body: private(json!({"location": {"latitude": -1.9441, "longitude": 30.0619}})),
                signed: true,
                status: 200,
                inbound: Some(json!({"content": null, "channel_data": {"telegram": {
                    "location": {"latitude": -1.9441, "longitude": 30.0619}}}})),
                ..Default::default()
            },
            Incoming {
                label: "an edited message is ignored",
                action: "receive",
                body: Body::Json(json!({"update_id": 975000003, "edited_message": {
                    "message_id": 1365, "date": 1733570000, "edit_date": 1733570100,
                    "chat": {"id": USER, "type": "private"}, "from": user(),
                    "text": "Hello World!"}})),
                signed: true,
                status: 200,
                log_contains: vec!["Ignored a receive callback", "edited_message"],
                ..Default::default()
            },
            Incoming {
                label: "a service message is ignored",
                action: "receive",
                body: Body::Json(json!({"update_id": 975000004, "message": {
                    "message_id": 90, "date": 1733570002, "from": user(),
                    "chat": {"id": GROUP, "type": "supergroup", "title": "Field team"},
                    "new_chat_members": [{"id": 2222, "is_bot": false, "first_name": "Bo"}]}})),
                signed: true,
                status: 200,
                log_contains: vec!["Ignored a receive callback", "new_chat_members"],
                ..Default::default()
            },
            Incoming {
                label: "a body that is not JSON",
                action: "receive",
                body: Body::Raw("application/json", "{\"update_id\": ".into()),
                signed: true,
                status: 400,
                response_contains: vec!["unable to parse request JSON"],
                ..Default::default()
            },
            Incoming {
                label: "a message without a chat",
                action: "receive",
                body: Body::Json(json!({"update_id": 975000005,
                                        "message": {"message_id": 1, "text": "x"}})),
                signed: true,
                status: 400,
                response_contains: vec!["a message without chat.id"],
                ..Default::default()
            },
            Incoming {
                label: "a GET is not Telegram's",
                action: "receive",
                method: "GET",
                signed: true,
                status: 405,
                log_contains: vec!["Refused a receive callback (405)"],
                ..Default::default()
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn outgoing_cases() {
    let text = json!({"to": USER.to_string(), "content": "Simple Message ☺"});
    let answered = |path: &'static str, chat: i64, id: u64| Stub {
        method: "POST",
        path,
        status: 200,
        content_type: "application/json",
        body: sent(chat, id).into_bytes(),
        ..Default::default()
    };
    let long = "a long text ".repeat(100);
    run_outgoing_with(
        &table(),
        &webhook_set(),
        &[
            Outgoing {
                label: "a text",
                send: text.clone(),
                responses: vec![(200, sent(USER, 77))],
                request: ExpectRequest {
                    headers: vec![("content-type", "application/json".into())],
                    json: Some(json!({"chat_id": USER, "text": "Simple Message ☺",
                                      "reply_parameters": null, "parse_mode": null})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "to a group chat",
                send: json!({"to": GROUP.to_string(), "content": "Meeting at 10"}),
                responses: vec![(200, sent(GROUP, 78))],
                request: ExpectRequest {
                    json: Some(json!({"chat_id": GROUP, "text": "Meeting at 10"})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a photo with the content as its caption",
                send: json!({"to": USER.to_string(), "content": "Look",
                    "attachments": [{"url": "https://media.example/cat.jpg",
                                     "content_type": "image/jpeg"}]}),
                stubs: vec![answered(PHOTO_PATH, USER, 79)],
                request: ExpectRequest {
                    path: Some(PHOTO_PATH),
                    json: Some(json!({"chat_id": USER, "photo": "https://media.example/cat.jpg",
                                      "caption": "Look", "text": null})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "audio and a document: one request each, the content the first caption",
                send: json!({"to": USER.to_string(), "content": "Here you are",
                    "attachments": [
                        {"url": "https://media.example/song.mp3", "content_type": "audio/mpeg"},
                        {"url": "https://media.example/report.pdf",
                         "content_type": "application/pdf", "caption": "The report"}]}),
                stubs: vec![
                    answered(AUDIO_PATH, USER, 80),
                    answered(DOCUMENT_PATH, USER, 81),
                ],
                request: ExpectRequest {
                    path: Some(AUDIO_PATH),
                    json: Some(json!({"chat_id": USER, "audio": "https://media.example/song.mp3",
                                      "caption": "Here you are"})),
                    ..Default::default()
                },
                more: vec![ExpectRequest {
                    path: Some(DOCUMENT_PATH),
                    json: Some(json!({"chat_id": USER,
                                      "document": "https://media.example/report.pdf",
                                      "caption": "The report"})),
                    ..Default::default()
                }],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a text too long for a caption goes after the photo",
                send: json!({"to": USER.to_string(), "content": long,
                    "attachments": [{"url": "https://media.example/cat.jpg",
                                     "content_type": "image/jpeg"}]}),
                stubs: vec![answered(PHOTO_PATH, USER, 82)],
                responses: vec![(200, sent(USER, 83))],
                request: ExpectRequest {
                    path: Some(PHOTO_PATH),
                    json: Some(json!({"photo": "https://media.example/cat.jpg",
                                      "caption": null})),
                    ..Default::default()
                },
                more: vec![ExpectRequest {
                    json: Some(json!({"chat_id": USER, "text": long})),
                    ..Default::default()
                }],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "parse_mode and a keyboard from channel_data.telegram, other keys not sent",
                send: json!({"to": USER.to_string(), "content": "<b>Choose</b>",
                    "channel_data": {"telegram": {"parse_mode": "HTML",
                        "reply_markup": {"keyboard": [[{"text": "Yes"}, {"text": "No"}]],
                                         "one_time_keyboard": true},
                        "from": {"id": 1}, "bot_token": "not sent"}}}),
                responses: vec![(200, sent(USER, 84))],
                request: ExpectRequest {
                    json: Some(json!({"chat_id": USER, "text": "<b>Choose</b>",
                        "parse_mode": "HTML",
                        "reply_markup": {"keyboard": [[{"text": "Yes"}, {"text": "No"}]],
                                         "one_time_keyboard": true},
                        "from": null, "bot_token": null})),
                    ..Default::default()
                },
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "an unknown parse_mode is rejected unsent",
                send: json!({"to": USER.to_string(), "content": "x",
                    "channel_data": {"telegram": {"parse_mode": "rtf"}}}),
                responses: vec![(200, sent(USER, 0))],
                unsent: true,
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "channel_data.telegram.parse_mode must be HTML, MarkdownV2 or Markdown"}}),
                ..Default::default()
            },
            Outgoing {
                label: "a phone number is not a chat id: rejected unsent",
                send: json!({"to": "+254711000001", "content": "x"}),
                responses: vec![(200, sent(USER, 0))],
                unsent: true,
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "The to address \"+254711000001\" is not a Telegram chat id (digits, or @channelusername)"}}),
                ..Default::default()
            },
            Outgoing {
                label: "blocked by the user (403) is rejected with the reason",
                send: text.clone(),
                responses: vec![(403, error(403, "Forbidden: bot was blocked by the user", None))],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Telegram 403: Forbidden: bot was blocked by the user"}}),
                ..Default::default()
            },
            Outgoing {
                label: "chat not found (400) is rejected with the reason",
                send: text.clone(),
                responses: vec![(400, error(400, "Bad Request: chat not found", None))],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Telegram 400: Bad Request: chat not found"}}),
                ..Default::default()
            },
            Outgoing {
                label: "a group upgraded to a supergroup: rejected naming the new chat",
                send: json!({"to": "-4012345", "content": "x"}),
                responses: vec![(400, error(400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    Some(json!({"migrate_to_chat_id": GROUP}))))],
                event: json!({"event_type": "rejected", "event_details": {
                    "reason": "Telegram 400: Bad Request: group chat was upgraded to a supergroup chat (the chat is now -1001234567890)"}}),
                ..Default::default()
            },
            Outgoing {
                label: "flood control (429, retry_after) then accepted",
                send: text.clone(),
                responses: vec![
                    (429, error(429, "Too Many Requests: retry after 1",
                                Some(json!({"retry_after": 1})))),
                    (200, sent(USER, 85)),
                ],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
            Outgoing {
                label: "a 502 then accepted",
                send: text.clone(),
                responses: vec![(502, "<html>Bad Gateway</html>".into()), (200, sent(USER, 86))],
                attempts: 2,
                event: json!({"event_type": "submitted"}),
                ..Default::default()
            },
        ],
    )
    .await;
}

/// A stub answer that notes when each request came.
struct Timed {
    at: Arc<Mutex<Vec<Instant>>>,
    answers: Vec<ResponseTemplate>,
}

impl Respond for Timed {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut at = self.at.lock().unwrap();
        let n = at.len().min(self.answers.len() - 1);
        at.push(Instant::now());
        self.answers[n].clone()
    }
}

async fn telegram_stub() -> MockServer {
    let stub = MockServer::start().await;
    mount_stubs(&stub, &webhook_set()).await;
    stub
}

async fn telegram_channel(bench: &Bench, stub: &MockServer, label: &str) -> (String, String) {
    bench.channel(&table(), &stub.uri(), label).await
}

#[tokio::test]
async fn set_webhook_at_start_names_the_callback_url_and_the_secret_token() {
    let bench = Bench::start("").await;
    let stub = telegram_stub().await;
    let (cid, _) = telegram_channel(&bench, &stub, "webhook").await;
    let set = eventually("setWebhook", || async {
        stub.received_requests()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.url.path() == SET_WEBHOOK_PATH)
    })
    .await;
    assert_eq!(set.method.as_str(), "POST");
    let body: Value = serde_json::from_slice(&set.body).unwrap();
    assert_eq!(
        body,
        json!({"url": format!("{}/receive", callback_base(&bench.public, &cid)),
               "secret_token": secret_for(&cid), "allowed_updates": ["message", "callback_query"]})
    );
    let token = secret_for(&cid);
    assert!(token.len() <= 256 && token.chars().all(|c| c.is_ascii_alphanumeric()));
    let status = eventually("setup_done", || async {
        let st = bench.api.channel(&cid).await["status"].clone();
        (st["components"]["telegram"]["type"] == "setup_done").then_some(st)
    })
    .await;
    assert_eq!(status["components"]["telegram"]["status"], "ok", "{status}");
    // The update Telegram then posts, with that token, is taken.
    let url = format!("{}/receive", callback_base(&bench.public, &cid));
    let resp = reqwest::Client::new()
        .post(&url)
        .header(
            "X-Telegram-Bot-Api-Secret-Token",
            body["secret_token"].as_str().unwrap(),
        )
        .header("Content-Type", "application/json")
        .body(
            json!({"update_id": 1, "message": {"message_id": 1, "date": 1,
                   "chat": {"id": USER, "type": "private"}, "text": "hi"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Neither the bot token nor the secret token is in the log, the channel or the output.
    let logs = serde_json::to_string(&bench.api.logs(&cid).await).unwrap();
    let shown = bench.api.get(&format!("/channels/{cid}")).await.text;
    let list = bench.api.get("/channels/").await.text;
    for secret in [TOKEN, token.as_str()] {
        assert!(!logs.contains(secret), "{secret} in {logs}");
        assert!(!shown.contains(secret), "{secret} in {shown}");
        assert!(!list.contains(secret), "{secret} in {list}");
        assert!(!bench.server.output().contains(secret));
    }
    assert!(
        logs.contains("bot***/setWebhook"),
        "the setup line shows the URL with the token scrubbed: {logs}"
    );
}

#[tokio::test]
async fn a_refused_set_webhook_is_setup_failed_and_tried_again() {
    let bench = Bench::start("").await;
    let stub = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SET_WEBHOOK_PATH))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            error(
                400,
                "Bad Request: bad webhook: HTTPS url must be provided for webhook",
                None,
            ),
            "application/json",
        ))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&stub)
        .await;
    mount_stubs(&stub, &webhook_set()).await;
    let (cid, _) = telegram_channel(&bench, &stub, "refused").await;
    // Down, with Telegram's description, for the 1 s and then 2 s before the next tries.
    let failed = eventually("setup_failed", || async {
        let st = bench.api.channel(&cid).await["status"].clone();
        (st["components"]["telegram"]["type"] == "setup_failed").then_some(st)
    })
    .await;
    let component = &failed["components"]["telegram"];
    assert_eq!(component["status"], "down", "{failed}");
    assert!(
        component["message"].as_str().unwrap_or("").contains(
            "Telegram 400: Bad Request: bad webhook: HTTPS url must be provided for webhook"
        ),
        "{failed}"
    );
    // Tried again with backoff: taken at the third try.
    eventually("setup_done after the retry", || async {
        let st = bench.api.channel(&cid).await["status"].clone();
        (st["components"]["telegram"]["type"] == "setup_done").then_some(())
    })
    .await;
    let tries = stub
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == SET_WEBHOOK_PATH)
        .count();
    assert_eq!(tries, 3);
    let logs = serde_json::to_string(&bench.api.logs(&cid).await).unwrap();
    assert!(!logs.contains(TOKEN), "{logs}");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let bench = Bench::start("").await;
    let stub = telegram_stub().await;
    let at = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(Timed {
            at: at.clone(),
            answers: vec![
                ResponseTemplate::new(429).set_body_raw(
                    error(
                        429,
                        "Too Many Requests: retry after 2",
                        Some(json!({"retry_after": 2})),
                    ),
                    "application/json",
                ),
                ResponseTemplate::new(200).set_body_raw(sent(USER, 90), "application/json"),
            ],
        })
        .mount(&stub)
        .await;
    let (cid, tag) = telegram_channel(&bench, &stub, "retry_after").await;
    let event = bench
        .event_of(
            &cid,
            json!({"to": USER.to_string(), "content": "later"}),
            &tag,
        )
        .await;
    assert_eq!(event["event_type"], "submitted", "{event}");
    let at = at.lock().unwrap().clone();
    assert_eq!(at.len(), 2, "one refused, one taken");
    let waited = at[1] - at[0];
    assert!(
        waited >= Duration::from_secs(2),
        "tried again after {waited:?}, before retry_after (2 s)"
    );
}

#[tokio::test]
async fn a_reply_goes_to_the_chat_and_quotes_the_message() {
    let bench = Bench::start("").await;
    let stub = telegram_stub().await;
    mount_answers(&stub, &table(), &[(200, sent(GROUP, 501))]).await;
    let (cid, tag) = telegram_channel(&bench, &stub, "reply").await;
    let update = Incoming {
        action: "receive",
        body: Body::Json(json!({"update_id": 975000010, "message": {
            "message_id": 4242, "date": 1733570001, "from": user(),
            "message_thread_id": 17, "is_topic_message": true,
            "chat": {"id": GROUP, "type": "supergroup", "title": "Field team",
                     "is_forum": true},
            "text": "How many bags?"}})),
        signed: true,
        ..Default::default()
    };
    let (status, _) = bench.call(&table(), &cid, &update).await;
    assert_eq!(status, 200);
    let inbound = bench.nth_inbound(&tag, 0).await;
    assert_eq!(inbound["from"], GROUP.to_string());
    let sent_reply = bench
        .api
        .send(
            &cid,
            json!({"reply_to": inbound["message_id"], "content": "12 bags"}),
        )
        .await;
    let mid = sent_reply["message_id"].as_str().unwrap().to_string();
    let request = eventually("the reply's sendMessage", || async {
        stub.received_requests()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.url.path() == SEND_PATH)
    })
    .await;
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"chat_id": GROUP, "text": "12 bags", "message_thread_id": 17,
               "reply_parameters": {"message_id": 4242, "allow_sending_without_reply": true}})
    );
    // Acked with Telegram's id: chat and message.
    eventually("the provider id in the message's story", || async {
        let story = bench
            .api
            .get(&format!("/channels/{cid}/messages/{mid}/logs"))
            .await
            .text;
        story
            .contains(&format!("the provider accepted it as {GROUP}:501"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn configs_are_checked_and_the_token_hidden() {
    let bench = Bench::start("").await;
    for (config, why) in [
        (
            json!({"bot_token": "not a token"}),
            "bot_token must look like",
        ),
        (json!({"bot_token": ""}), "bot_token must not be empty"),
        (
            json!({"bot_token": TOKEN, "bot_username": "hornbill bot"}),
            "bot_username",
        ),
        (json!({"bot_token": TOKEN, "api_url": "ftp://x"}), "api_url"),
        (
            json!({"bot_token": TOKEN, "token": "x"}),
            "unknown field `token`",
        ),
    ] {
        let reply = bench
            .api
            .post(
                "/channels/",
                json!({"type": "telegram", "config": config, "mo_url": "http://127.0.0.1:9/mo"}),
            )
            .await;
        assert_eq!(reply.status, 400, "{config}: {}", reply.text);
        assert!(reply.text.contains(why), "{config}: {}", reply.text);
        assert!(!reply.text.contains(TOKEN), "{}", reply.text);
    }
    let cid = bench
        .api
        .create(json!({"type": "telegram",
                       "config": {"bot_token": TOKEN, "api_url": "http://127.0.0.1:9"},
                       "mo_url": "http://127.0.0.1:9/mo"}))
        .await;
    let shown = bench.api.get(&format!("/channels/{cid}")).await.text;
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("\"bot_token\":\"***\""), "{shown}");
}

#[tokio::test]
async fn log_protocol_writes_each_request_answer_and_update_with_secrets_scrubbed() {
    let bench = Bench::start("").await;
    let stub = telegram_stub().await;
    mount_answers(&stub, &table(), &[(200, sent(USER, 601))]).await;
    let cid = bench
        .api
        .create(json!({"type": "telegram", "log_protocol": true,
                       "config": (table().config)(&stub.uri()),
                       "mo_url": format!("{}/mo/protocol", bench.hooks.uri())}))
        .await;
    eventually("setup_done", || async {
        let st = bench.api.channel(&cid).await["status"].clone();
        (st["components"]["telegram"]["type"] == "setup_done").then_some(())
    })
    .await;
    let event = bench
        .event_of(
            &cid,
            json!({"to": USER.to_string(), "content": "over the wire"}),
            "protocol",
        )
        .await;
    assert_eq!(event["event_type"], "submitted", "{event}");
    let mid = event["message_id"].as_str().unwrap().to_string();
    let update = Incoming {
        action: "receive",
        body: private(json!({"text": "and back"})),
        signed: true,
        ..Default::default()
    };
    assert_eq!(bench.call(&table(), &cid, &update).await.0, 200);
    bench.nth_inbound("protocol", 0).await;

    // The message's story: its request and Telegram's answer.
    let story: Vec<String> = eventually("the message's protocol lines", || async {
        let story = bench
            .api
            .get(&format!("/channels/{cid}/messages/{mid}/logs"))
            .await
            .body["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let lines: Vec<String> = story
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .filter(|m| m.starts_with(">> ") || m.starts_with("<< "))
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert_eq!(
        story[0],
        format!(
            r#">> POST {}/bot***/sendMessage {{"chat_id":{USER},"text":"over the wire"}}"#,
            stub.uri()
        )
    );
    assert!(
        story[1].starts_with(r#"<< 200 {"ok":true,"result":{"message_id":601"#),
        "{story:?}"
    );
    // The setup and the update, in the channel's log.
    let logs: Vec<String> = eventually("the update's protocol lines", || async {
        let lines: Vec<String> = bench
            .api
            .logs(&cid)
            .await
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect();
        lines
            .iter()
            .any(|l| l.starts_with("<< POST receive {"))
            .then_some(lines)
    })
    .await;
    let find = |prefix: &str| {
        logs.iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {logs:#?}"))
            .clone()
    };
    let set = find(&format!(">> POST {}/bot***/setWebhook ", stub.uri()));
    assert!(set.contains(r#""secret_token":"***""#), "{set}");
    assert!(
        set.contains(&format!("{}/channels/{cid}/***/receive", bench.public)),
        "the callback secret is scrubbed from the URL given: {set}"
    );
    assert!(find("<< 200 {\"ok\":true,\"result\":true").contains("Webhook was set"));
    assert!(find("<< POST receive {").contains(r#""text":"and back""#));
    assert!(logs.iter().any(|l| l == ">> 200"), "{logs:#?}");
    let all = logs.join("\n");
    for secret in [TOKEN, secret_for(&cid).as_str()] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
}
