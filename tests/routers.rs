//! Routers and destinations through the API and telnet channels: Junebug's CRUD and error
//! envelopes, each router type routing inbound (and the events of what destinations send),
//! default destinations, sticky sessions, USSD in and SMS out across two channels, config
//! routers, and persistence on Redis.

mod common;
use common::*;
use serde_json::{Value, json};

/// A telnet channel with no destination of its own (a router's to own): (cid, port).
async fn router_channel(api: &Api) -> (String, u16) {
    let port = free_port();
    let cid = api
        .create(json!({"type": "telnet",
                       "config": {"twisted_endpoint": format!("tcp:{port}"), "to_addr": "*120#"}}))
        .await;
    (cid, port)
}

async fn router(api: &Api, kind: &str, config: Value) -> String {
    let r = api
        .post(
            "/routers/",
            json!({"type": kind, "config": config, "label": "test"}),
        )
        .await
        .ok(201, "router created");
    r["id"].as_str().unwrap().to_string()
}

async fn destination(api: &Api, rid: &str, body: Value) -> String {
    let d = api
        .post(&format!("/routers/{rid}/destinations/"), body)
        .await
        .ok(201, "destination created");
    d["id"].as_str().unwrap().to_string()
}

/// Inbound webhooks at `path` from user `from`, as (auth header, body).
async fn inbound_at(
    hooks: &wiremock::MockServer,
    path: &str,
    from: &str,
) -> Vec<(Option<String>, Value)> {
    hits(hooks)
        .await
        .into_iter()
        .filter(|(p, _, b)| p == path && b["from"] == from)
        .map(|(_, a, b)| (a, b))
        .collect()
}

#[tokio::test]
async fn router_and_destination_errors_use_junebugs_envelope() {
    let server = Server::start("");
    let api = server.api();
    let hooks = receiver().await;
    let (cid, _) = router_channel(&api).await;

    let r = api.raw("POST", "/routers/", Some("{nope")).await;
    r.error(400, "Bad Request", "json decode error");
    let errors = api
        .post("/routers/", json!({"type": "from_address", "extra": 1}))
        .await
        .error(400, "Bad Request", "api usage error");
    let messages: Vec<&str> = errors
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&"'config' is a required property"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"Additional properties are not allowed (u'extra' was unexpected)"),
        "{messages:?}"
    );
    let e = api
        .post(
            "/routers/",
            json!({"type": "nope", "config": {"channel": cid}}),
        )
        .await
        .error(400, "Bad Request", "invalid router type");
    assert!(
        e[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid router type nope, must be one of: ")
    );
    for (config, message) in [
        (
            json!({}),
            "Missing required config field 'channel'".to_string(),
        ),
        (
            json!({"channel": "x"}),
            "Field 'channel' is not a valid UUID".to_string(),
        ),
        (
            json!({"channel": "00000000-0000-4000-8000-000000000000"}),
            "Channel 00000000-0000-4000-8000-000000000000 does not exist".to_string(),
        ),
    ] {
        let e = api
            .post(
                "/routers/",
                json!({"type": "from_address", "config": config}),
            )
            .await
            .error(400, "Bad Request", "invalid router config");
        assert_eq!(
            e[0],
            json!({"type": "InvalidRouterConfig", "message": message})
        );
    }
    let owned = api
        .create(json!({"type": "telnet", "mo_url": hooks.uri(),
                       "config": {"twisted_endpoint": format!("tcp:{}", free_port())}}))
        .await;
    let e = api
        .post(
            "/routers/",
            json!({"type": "from_address", "config": {"channel": owned}}),
        )
        .await
        .error(400, "Bad Request", "invalid router config");
    assert_eq!(
        e[0]["message"],
        format!("Channel {owned} already has a destination specified")
    );
    let rid = router(&api, "from_address", json!({"channel": cid})).await;
    let e = api
        .post(
            "/routers/",
            json!({"type": "from_address", "config": {"channel": cid}}),
        )
        .await
        .error(400, "Bad Request", "invalid router config");
    assert_eq!(
        e[0]["message"],
        format!("Router {rid} is already routing channel {cid}")
    );

    let e = api
        .get("/routers/nope")
        .await
        .error(404, "Not Found", "router not found");
    assert_eq!(
        e[0],
        json!({"type": "RouterNotFound", "message": "Router with ID nope cannot be found"})
    );
    let path = format!("/routers/{rid}/destinations/");
    let e = api.post(&path, json!({"config": {}})).await.error(
        400,
        "Bad Request",
        "invalid router destination config",
    );
    assert_eq!(
        e[0],
        json!({"type": "InvalidRouterDestinationConfig",
               "message": "Missing required config field 'regular_expression'"})
    );
    let e = api
        .post(&path, json!({"config": {"regular_expression": "("}}))
        .await
        .error(400, "Bad Request", "invalid router destination config");
    assert!(
        e[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Field 'regular_expression' is not a valid regular expression"),
        "{e:?}"
    );
    let e = api
        .get(&format!("/routers/{rid}/destinations/nope"))
        .await
        .error(404, "Not Found", "destination not found");
    assert_eq!(
        e[0]["message"],
        format!("Cannot find destination with ID nope for router {rid}")
    );

    // Create, read, replace, patch and delete; secrets shown masked.
    let did = destination(
        &api,
        &rid,
        json!({"config": {"regular_expression": "^\\*120"}, "mo_url": hooks.uri(),
               "mo_url_token": "dest-secret", "label": "one"}),
    )
    .await;
    let got = api
        .get(&format!("/routers/{rid}/destinations/{did}"))
        .await
        .ok(200, "destination found");
    assert_eq!(got["mo_url_token"], "***");
    assert_eq!(got["label"], "one");
    let patched = api
        .raw(
            "PATCH",
            &format!("/routers/{rid}/destinations/{did}"),
            Some(&json!({"label": "two"}).to_string()),
        )
        .await
        .ok(200, "destination updated");
    assert_eq!(patched["label"], "two");
    assert_eq!(patched["config"]["regular_expression"], "^\\*120");
    let replaced = api
        .raw(
            "PUT",
            &format!("/routers/{rid}/destinations/{did}"),
            Some(&json!({"config": {"regular_expression": "^x"}}).to_string()),
        )
        .await
        .ok(200, "destination updated");
    assert!(replaced.get("label").is_none(), "{replaced}");
    assert_eq!(
        api.get(&format!("/routers/{rid}/destinations/"))
            .await
            .ok(200, "destinations retrieved"),
        json!([did])
    );
    let patched = api
        .raw(
            "PATCH",
            &format!("/routers/{rid}"),
            Some(&json!({"label": "renamed"}).to_string()),
        )
        .await
        .ok(200, "router updated");
    assert_eq!(patched["label"], "renamed");
    assert_eq!(patched["config"]["channel"], json!(cid));
    let e = api
        .raw(
            "PUT",
            &format!("/routers/{rid}"),
            Some(&json!({"label": "no type"}).to_string()),
        )
        .await
        .error(400, "Bad Request", "api usage error");
    assert!(!e.is_empty());
    api.delete(&format!("/routers/{rid}/destinations/{did}"))
        .await
        .ok(200, "destination deleted");
    api.delete(&format!("/routers/{rid}"))
        .await
        .ok(200, "router deleted");
    assert_eq!(
        api.get("/routers/").await.ok(200, "routers retrieved"),
        json!([])
    );
}

#[tokio::test]
async fn from_address_routes_by_the_channels_address_with_a_default_and_token_auth() {
    let server = Server::start("");
    let api = server.api();
    let hooks = receiver().await;
    let (cid, port) = router_channel(&api).await;
    // A channel owned by a router takes no direct sends (Junebug).
    api.post(
        &format!("/channels/{cid}/messages/"),
        json!({"to": "x", "content": "hi"}),
    )
    .await
    .error(400, "Bad Request", "api usage error");
    let rid = router(&api, "from_address", json!({"channel": cid})).await;
    let other = destination(
        &api,
        &rid,
        json!({"config": {"regular_expression": "^\\*999"}, "mo_url": format!("{}/other", hooks.uri())}),
    )
    .await;
    let fallback = destination(
        &api,
        &rid,
        json!({"config": {"default": true}, "mo_url": format!("{}/default", hooks.uri()),
               "mo_url_token": "dest-token"}),
    )
    .await;
    let mut user = User::connect(port).await;
    user.say("first").await;
    let (auth, body) = eventually("the default destination got it", || async {
        inbound_at(&hooks, "/default", &user.address)
            .await
            .into_iter()
            .find(|(_, b)| b["content"] == "first")
    })
    .await;
    assert_eq!(auth.as_deref(), Some("Token dest-token"));
    assert_eq!(body["channel_id"], json!(cid));
    assert!(inbound_at(&hooks, "/other", &user.address).await.is_empty());

    // Now the other destination matches the channel's address: it alone gets the next one.
    api.raw(
        "PATCH",
        &format!("/routers/{rid}/destinations/{other}"),
        Some(&json!({"config": {"regular_expression": "^\\*120#$"}}).to_string()),
    )
    .await
    .ok(200, "destination updated");
    user.say("second").await;
    let (_, inbound) = eventually("the matching destination got it", || async {
        inbound_at(&hooks, "/other", &user.address)
            .await
            .into_iter()
            .find(|(_, b)| b["content"] == "second")
    })
    .await;
    assert!(
        !inbound_at(&hooks, "/default", &user.address)
            .await
            .iter()
            .any(|(_, b)| b["content"] == "second")
    );

    // The destination replies through the router; the event reaches its event_url and is
    // kept under the destination.
    let sent = api
        .post(
            &format!("/routers/{rid}/destinations/{other}/messages/"),
            json!({"reply_to": inbound["message_id"], "content": "routed reply",
                   "event_url": format!("{}/ev", hooks.uri())}),
        )
        .await
        .ok(201, "message submitted");
    user.wait_line("routed reply").await;
    let mid = sent["message_id"].clone();
    wait_hit(&hooks, "the event of the destination's send", |p, b| {
        p == "/ev" && b["message_id"] == mid && b["event_type"] == "submitted"
    })
    .await;
    let status = eventually("the event under the destination", || async {
        let s = api
            .get(&format!(
                "/routers/{rid}/destinations/{other}/messages/{}",
                mid.as_str().unwrap()
            ))
            .await
            .ok(200, "message status");
        (s["last_event_type"] == "submitted").then_some(s)
    })
    .await;
    assert_eq!(status["events"][0]["channel_id"], json!(cid));
    // The destination's character limit, not the channel's.
    let short = destination(
        &api,
        &rid,
        json!({"config": {"regular_expression": "^nothing$"}, "character_limit": 5}),
    )
    .await;
    let e = api
        .post(
            &format!("/routers/{rid}/destinations/{short}/messages/"),
            json!({"to": user.address, "content": "too long"}),
        )
        .await
        .error(400, "Bad Request", "message too long");
    assert_eq!(e[0]["type"], "MessageTooLong");
    // A reply to a message the destination never got is refused.
    api.post(
        &format!("/routers/{rid}/destinations/{fallback}/messages/"),
        json!({"reply_to": inbound["message_id"], "content": "not mine"}),
    )
    .await
    .error(400, "Bad Request", "message not found");
    let logs = api
        .get(&format!("/routers/{rid}/logs?n=50"))
        .await
        .ok(200, "logs retrieved");
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"] == format!("Routed to {other}")),
        "{logs}"
    );
}

#[tokio::test]
async fn keyword_and_to_and_from_address_rules() {
    let server = Server::start("");
    let api = server.api();
    let hooks = receiver().await;
    let (cid, port) = router_channel(&api).await;
    let rid = router(&api, "keyword", json!({"channel": cid})).await;
    destination(
        &api,
        &rid,
        json!({"config": {"keyword": "join"}, "mo_url": format!("{}/join", hooks.uri())}),
    )
    .await;
    destination(
        &api,
        &rid,
        json!({"config": {"keywords": ["stop", "quit"]}, "mo_url": format!("{}/stop", hooks.uri())}),
    )
    .await;
    let mut user = User::connect(port).await;
    user.say("JOIN the club").await;
    user.say("quit").await;
    user.say("hello").await;
    eventually("keywords routed", || async {
        let join = inbound_at(&hooks, "/join", &user.address).await;
        let stop = inbound_at(&hooks, "/stop", &user.address).await;
        (join.iter().any(|(_, b)| b["content"] == "JOIN the club")
            && stop.iter().any(|(_, b)| b["content"] == "quit"))
        .then_some(())
    })
    .await;
    // No default: "hello" (and the session start) go nowhere, logged on the router.
    eventually("the unrouted message logged", || async {
        let logs = api
            .get(&format!("/routers/{rid}/logs"))
            .await
            .ok(200, "logs retrieved");
        logs.as_array()
            .unwrap()
            .iter()
            .any(|e| {
                e["message"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("No destination")
            })
            .then_some(())
    })
    .await;
    assert!(
        !hits(&hooks)
            .await
            .iter()
            .any(|(_, _, b)| b["content"] == "hello")
    );
    api.delete(&format!("/routers/{rid}"))
        .await
        .ok(200, "router deleted");

    // from_addr: by priority, the first match alone.
    let rid = router(&api, "from_addr", json!({"channel": cid})).await;
    destination(
        &api,
        &rid,
        json!({"config": {"regular_expression": "^127\\.", "priority": 1}, "mo_url": format!("{}/low", hooks.uri())}),
    )
    .await;
    destination(
        &api,
        &rid,
        json!({"config": {"regular_expression": "^127\\.0\\.0\\.1:", "priority": 5}, "mo_url": format!("{}/high", hooks.uri())}),
    )
    .await;
    user.say("by address").await;
    eventually("the higher priority rule", || async {
        inbound_at(&hooks, "/high", &user.address)
            .await
            .iter()
            .any(|(_, b)| b["content"] == "by address")
            .then_some(())
    })
    .await;
    assert!(inbound_at(&hooks, "/low", &user.address).await.is_empty());
}

#[tokio::test]
async fn load_balance_keeps_a_session_with_one_destination() {
    let server = Server::start("");
    let api = server.api();
    let hooks = receiver().await;
    let (cid, port) = router_channel(&api).await;
    let rid = router(&api, "load_balance", json!({"channel": cid})).await;
    for name in ["a", "b"] {
        destination(
            &api,
            &rid,
            json!({"config": {}, "mo_url": format!("{}/{name}", hooks.uri())}),
        )
        .await;
    }
    let mut users = vec![User::connect(port).await, User::connect(port).await];
    for round in 0..3 {
        for u in users.iter_mut() {
            u.say(&format!("round {round}")).await;
        }
    }
    for u in &users {
        eventually("all of a user's messages", || async {
            let n = inbound_at(&hooks, "/a", &u.address).await.len()
                + inbound_at(&hooks, "/b", &u.address).await.len();
            (n == 4).then_some(())
        })
        .await;
    }
    let a: Vec<usize> = {
        let mut v = vec![];
        for u in &users {
            v.push(inbound_at(&hooks, "/a", &u.address).await.len());
        }
        v
    };
    // Each session (new + 3 lines) stayed whole with one destination, and the two
    // sessions went to different ones.
    assert!(
        (a[0] == 4 && a[1] == 0) || (a[0] == 0 && a[1] == 4),
        "split sessions: {a:?}"
    );
}

/// A `channel_to_channel` router from a new USSD (telnet) channel to `reply_channel`, ending
/// sessions with `close_text`; one destination at `{hooks}/app`; a user who dialled in and
/// said `text`. Returns (router, destination, USSD channel, the user, the request as the
/// destination got it).
async fn ussd_request_routed_to(
    api: &Api,
    hooks: &wiremock::MockServer,
    reply_channel: &str,
    close_text: &str,
    text: &str,
) -> (String, String, String, User, Value) {
    let (ussd, port) = router_channel(api).await;
    let rid = router(
        api,
        "channel_to_channel",
        json!({"channel": ussd, "reply_channel": reply_channel,
               "session_close_text": close_text}),
    )
    .await;
    let did = destination(
        api,
        &rid,
        json!({"config": {"regular_expression": ".*"}, "mo_url": format!("{}/app", hooks.uri())}),
    )
    .await;
    let mut user = User::connect(port).await;
    user.say(text).await;
    let (_, inbound) = eventually("the USSD request", || async {
        inbound_at(hooks, "/app", &user.address)
            .await
            .into_iter()
            .find(|(_, b)| b["content"] == text)
    })
    .await;
    (rid, did, ussd, user, inbound)
}

#[tokio::test]
async fn ussd_in_sms_out_across_two_channels() {
    let server = Server::start("");
    let api = server.api();
    let hooks = receiver().await;
    let provider = receiver().await;
    let sms = api
        .create(json!({"type": "webhook", "mo_url": hooks.uri(),
                       "config": {"url": format!("{}/sms", provider.uri())}}))
        .await;
    let close = "Thanks, we will send you an SMS.";
    let (rid, did, _, user, inbound) =
        ussd_request_routed_to(&api, &hooks, &sms, close, "balance").await;
    api.post(
        &format!("/routers/{rid}/destinations/{did}/messages/"),
        json!({"reply_to": inbound["message_id"], "content": "Your balance is 42"}),
    )
    .await
    .ok(201, "message submitted");
    // The answer goes by SMS to the same user; the USSD session ends with the close text.
    let (_, _, sms_body) = wait_hit(&provider, "the SMS", |p, _| p == "/sms").await;
    assert_eq!(sms_body["content"], "Your balance is 42");
    assert_eq!(sms_body["to"], json!(user.address));
    user.wait_line("Thanks, we will send you an SMS.").await;
    assert!(user.wait_closed().await, "the USSD session was closed");
}

#[tokio::test]
async fn config_routers_start_at_boot_and_cannot_be_deleted() {
    let port = free_port();
    let hooks = receiver().await;
    let cid = "6a0b0bde-55e4-4d49-9c4f-0a1f6f1f9e01";
    let config = format!(
        r#"
[[channels]]
id = "{cid}"
type = "telnet"
config = {{ twisted_endpoint = "tcp:{port}", to_addr = "*120#" }}

[[routers]]
id = "ussd-router"
type = "keyword"
config = {{ channel = "{cid}" }}

[[routers.destinations]]
id = "echo"
config = {{ default = true }}
application = "echo"

[[routers.destinations]]
id = "news"
config = {{ keyword = "news" }}
mo_url = "{}/news"
"#,
        hooks.uri()
    );
    let server = Server::start(&config);
    let api = server.api();
    assert_eq!(
        api.get("/routers/").await.ok(200, "routers retrieved"),
        json!(["ussd-router"])
    );
    let mut user = User::connect(port).await;
    user.say("hello there").await;
    user.wait_line("hello there").await;
    user.say("news today").await;
    eventually("the keyword destination", || async {
        inbound_at(&hooks, "/news", &user.address)
            .await
            .iter()
            .any(|(_, b)| b["content"] == "news today")
            .then_some(())
    })
    .await;
    let e = api.delete("/routers/ussd-router").await.error(
        403,
        "Forbidden",
        "defined in the config file",
    );
    assert_eq!(e[0]["type"], "ConfigDefined");
    api.post(
        "/routers/ussd-router/destinations/",
        json!({"config": {"keyword": "x"}}),
    )
    .await
    .error(403, "Forbidden", "defined in the config file");
    api.get("/routers/ussd-router/destinations/echo")
        .await
        .ok(200, "destination found");
}

#[tokio::test]
async fn api_routers_come_back_after_a_restart_on_redis() {
    let prefix = format!("hbtest-routers-{}:", std::process::id());
    let config = format!(
        "[store]\nkind = \"redis\"\nurl = \"{}\"\nkey_prefix = \"{prefix}\"\n",
        redis_url()
    );
    let hooks = receiver().await;
    let server = Server::start(&config);
    let api = server.api();
    let (cid, port) = router_channel(&api).await;
    let rid = router(&api, "from_address", json!({"channel": cid})).await;
    let did = destination(
        &api,
        &rid,
        json!({"config": {"regular_expression": "120"}, "mo_url": format!("{}/mo", hooks.uri())}),
    )
    .await;
    drop(server);
    let server = Server::start(&config);
    let api = server.api();
    assert_eq!(
        api.get(&format!("/routers/{rid}/destinations/"))
            .await
            .ok(200, "destinations retrieved"),
        json!([did])
    );
    let mut user = User::connect(port).await;
    user.say("after the restart").await;
    eventually("routed after the restart", || async {
        inbound_at(&hooks, "/mo", &user.address)
            .await
            .iter()
            .any(|(_, b)| b["content"] == "after the restart")
            .then_some(())
    })
    .await;
    api.delete(&format!("/routers/{rid}"))
        .await
        .ok(200, "router deleted");
    api.delete(&format!("/channels/{cid}"))
        .await
        .ok(200, "channel deleted");
    drop(server);
    let mut r = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}routers*"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(left.is_empty(), "a deleted router leaves nothing: {left:?}");
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut r)
        .await
        .unwrap();
    if !all.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(&all)
            .query_async(&mut r)
            .await
            .unwrap();
    }
}

/// A conversation started over USSD goes on over WhatsApp: the `channel_to_channel` router's
/// reply channel is a `whatsapp` channel, so the destination's answer to a USSD request is
/// sent with the Cloud API's messages endpoint to the same user, the USSD session closes with
/// the router's text, and the send's `submitted` event carries the provider's message id.
#[tokio::test]
async fn ussd_started_conversations_go_on_over_whatsapp() {
    use wiremock::matchers::{method, path};
    let server = Server::start("");
    let api = server.api();
    let hooks = receiver().await;
    let graph = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/v21.0/1234567890/messages"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": "x", "wa_id": "x"}],
            "messages": [{"id": "wamid.HBgLMjUwNzg4MTIzNDU2FQIAERgSQ0VGMzY0"}]
        })))
        .mount(&graph)
        .await;
    let wa = api
        .create(json!({"type": "whatsapp", "mo_url": hooks.uri(),
                       "config": {"phone_number_id": "1234567890",
                                  "access_token": "EAAG-router-test-token",
                                  "app_secret": "router-app-secret",
                                  "verify_token": "router-verify",
                                  "base_url": graph.uri()}}))
        .await;
    let close = "Thanks, we will answer on WhatsApp.";
    let (rid, did, ussd, user, inbound) =
        ussd_request_routed_to(&api, &hooks, &wa, close, "register").await;
    let sent = api
        .post(
            &format!("/routers/{rid}/destinations/{did}/messages/"),
            json!({"reply_to": inbound["message_id"], "content": "You are registered",
                   "event_url": format!("{}/ev", hooks.uri())}),
        )
        .await
        .ok(201, "message submitted");
    let (_, auth, body) = wait_hit(&graph, "the WhatsApp send", |p, _| {
        p == "/v21.0/1234567890/messages"
    })
    .await;
    assert_eq!(auth.as_deref(), Some("Bearer EAAG-router-test-token"));
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], json!(user.address));
    assert_eq!(body["type"], "text");
    assert_eq!(body["text"]["body"], "You are registered");
    user.wait_line("Thanks, we will answer on WhatsApp.").await;
    assert!(user.wait_closed().await, "the USSD session was closed");
    let mid = sent["message_id"].clone();
    wait_hit(&hooks, "the send's event", |p, b| {
        p == "/ev" && b["message_id"] == mid && b["event_type"] == "submitted"
    })
    .await;
    let status = eventually("the event under the destination", || async {
        let s = api
            .get(&format!(
                "/routers/{rid}/destinations/{did}/messages/{}",
                mid.as_str().unwrap()
            ))
            .await
            .ok(200, "message status");
        (s["last_event_type"] == "submitted").then_some(s)
    })
    .await;
    assert_eq!(
        status["events"][0]["channel_id"],
        json!(wa),
        "{status} ussd={ussd}"
    );
}
