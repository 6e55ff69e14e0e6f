//! Media on messages (`attachments`, hornbill's extension of Junebug's send body): checked at
//! the API, refused with a clear 400 by channel types that cannot carry them, kept on the
//! message and shown in its API view.

mod common;
use common::*;
use serde_json::{Value, json};

fn usage(r: &Reply) -> Vec<Value> {
    r.error(400, "Bad Request", "api usage error")
}

#[tokio::test]
async fn a_channel_type_without_media_refuses_attachments_and_bad_lists_are_named() {
    let hooks = receiver().await;
    let server = Server::start("");
    let api = server.api();
    let (body, _port) = telnet_body(&format!("{}/mo", hooks.uri()));
    let cid = api.create(body).await;
    let path = format!("/channels/{cid}/messages/");
    let cat = json!([{"url": "https://cdn.example/cat.jpg", "content_type": "image/jpeg"}]);

    let r = api
        .post(
            &path,
            json!({"to": "u1", "content": "look", "attachments": cat}),
        )
        .await;
    assert_eq!(
        usage(&r),
        vec![json!({"type": "ApiUsageError",
                    "message": "Channel type u'telnet' cannot carry attachments"})]
    );

    // Schema: a list, not an object.
    let r = api
        .post(
            &path,
            json!({"to": "u1", "content": "x", "attachments": {"url": "x"}}),
        )
        .await;
    let errors = usage(&r);
    assert_eq!(errors[0]["type"], "invalid_body", "{}", r.text);
    assert_eq!(
        errors[0]["schema_path"],
        json!(["properties", "attachments", "type"])
    );

    // Each item: an http(s) url, and only the three keys.
    for (bad, says) in [
        (
            json!([{"content_type": "image/png"}]),
            "attachments[0]: missing field `url`",
        ),
        (
            json!([{"url": "ftp://x/y.png"}]),
            "attachments[0]: url must be an http(s) URL",
        ),
        (
            json!([{"url": "https://x/y.png"}, {"url": "https://x/z", "size": 3}]),
            "attachments[1]: only url, content_type and caption are allowed",
        ),
    ] {
        let r = api
            .post(
                &path,
                json!({"to": "u1", "content": "x", "attachments": bad}),
            )
            .await;
        let errors = usage(&r);
        assert_eq!(errors[0]["message"], json!(says), "{}", r.text);
    }

    // An empty list is no media: the send goes.
    let r = api
        .post(
            &path,
            json!({"to": "u1", "content": "plain", "attachments": []}),
        )
        .await;
    let sent = r.ok(201, "message submitted");
    assert!(sent.get("attachments").is_none(), "{sent}");
}

#[tokio::test]
async fn attachments_are_kept_on_the_message_and_shown_by_the_api() {
    let provider = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(201)
                .set_body_json(json!({"sid": "SM1", "status": "queued"})),
        )
        .mount(&provider)
        .await;
    let server = Server::start("");
    let api = server.api();
    let cid = api
        .create(
            json!({"type": "twilio", "mo_url": "http://127.0.0.1:9/mo", "config": {
            "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "tok_123456",
            "from": "+12028831111", "base_url": provider.uri()}}),
        )
        .await;
    let media = json!([{"url": "https://cdn.example/cat.jpg", "content_type": "image/jpeg",
                        "caption": "a cat"}]);
    let sent = api
        .send(
            &cid,
            json!({"to": "+254711000001", "content": "look", "attachments": media}),
        )
        .await;
    assert_eq!(sent["attachments"], media);
    assert!(
        sent["channel_data"].get("attachments").is_none(),
        "shown once, as the message's own key: {sent}"
    );
    let request = eventually("the provider's request", || async {
        provider
            .received_requests()
            .await
            .and_then(|r| r.first().cloned())
    })
    .await;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert!(
        form.contains(&("MediaUrl".into(), "https://cdn.example/cat.jpg".into())),
        "{form:?}"
    );
}
