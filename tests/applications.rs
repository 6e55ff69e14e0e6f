//! Applications from the config file, used over telnet channels: a USSD menu walked end to
//! end (its answers POSTed at the end), the HTTP relay, and check-config's view of them.

mod common;
use common::*;
use serde_json::json;

const MENU: &str = r#"
[[applications]]
name = "survey"
type = "ussd_menu"
[applications.config]
start = "main"
submit_url = "SUBMIT"
[[applications.config.pages]]
id = "main"
text = "Welcome to the survey"
options = [ { label = "Take part", next = "name" }, { label = "Not now", next = "bye" } ]
[[applications.config.pages]]
id = "name"
text = "Your name?"
input = "name"
next = "colour"
[[applications.config.pages]]
id = "colour"
text = "{name}, your favourite colour?"
options = [ { label = "Red", next = "done" }, { label = "Blue", next = "done" } ]
[[applications.config.pages]]
id = "done"
text = "Thank you, {name}!"
[[applications.config.pages]]
id = "bye"
text = "Goodbye"
"#;

#[tokio::test]
async fn a_ussd_menu_is_walked_end_to_end_over_telnet() {
    let hooks = receiver().await;
    let port = free_port();
    let config = format!(
        "{}\n[[channels]]\ntype = \"telnet\"\napplication = \"survey\"\nconfig = {{ twisted_endpoint = \"tcp:{port}\", to_addr = \"*120*5#\" }}\n",
        MENU.replace("SUBMIT", &format!("{}/answers", hooks.uri()))
    );
    let _server = Server::start(&config);
    let mut user = User::connect(port).await;
    user.wait_line("Welcome to the survey").await;
    user.wait_line("1. Take part").await;
    user.wait_line("2. Not now").await;
    user.say("7").await;
    user.wait_line("Invalid choice. Welcome to the survey")
        .await;
    user.say("1").await;
    user.wait_line("Your name?").await;
    user.say("Thandi").await;
    user.wait_line("Thandi, your favourite colour?").await;
    user.say("2").await;
    user.wait_line("Thank you, Thandi!").await;
    assert!(user.wait_closed().await, "the last page ends the session");
    let (_, _, answers) = wait_hit(&hooks, "the answers", |p, _| p == "/answers").await;
    assert_eq!(answers["from"], json!(user.address));
    assert_eq!(answers["to"], "*120*5#");
    assert_eq!(
        answers["answers"],
        json!({"main": "Take part", "name": "Thandi", "colour": "Blue"})
    );

    // A second session starts again at the first page.
    let mut again = User::connect(port).await;
    again.wait_line("Welcome to the survey").await;
    again.say("2").await;
    again.wait_line("Goodbye").await;
    assert!(again.wait_closed().await);
}

#[tokio::test]
async fn the_http_relay_answers_with_the_response_body() {
    let relay = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::body_partial_json(
        json!({"content": "ping"}),
    ))
    .and(wiremock::matchers::header(
        "authorization",
        "Token relay-secret",
    ))
    .respond_with(
        wiremock::ResponseTemplate::new(200)
            .set_body_json(json!({"content": "pong", "continue_session": false})),
    )
    .mount(&relay)
    .await;
    wiremock::Mock::given(wiremock::matchers::body_partial_json(
        json!({"content": "plain"}),
    ))
    .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("plain answer"))
    .mount(&relay)
    .await;
    let port = free_port();
    let config = format!(
        "[[applications]]\nname = \"relay\"\ntype = \"http_relay\"\nconfig = {{ url = \"{}/app\", auth_token = \"relay-secret\" }}\n\
         [[channels]]\ntype = \"telnet\"\napplication = \"relay\"\nconfig = {{ twisted_endpoint = \"tcp:{port}\" }}\n",
        relay.uri()
    );
    let server = Server::start(&config);
    let mut user = User::connect(port).await;
    user.say("plain").await;
    user.wait_line("plain answer").await;
    user.say("ping").await;
    user.wait_line("pong").await;
    assert!(user.wait_closed().await, "continue_session false closes");
    assert!(
        !server.output().contains("relay-secret"),
        "the relay token is not logged"
    );
}

#[test]
fn check_config_names_bad_applications() {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[[applications]]
name = "menu"
type = "ussd_menu"
config = { start = "main", pages = [ { id = "main", text = "Hi", options = [ { label = "x", next = "nowhere" } ] } ] }

[[applications]]
name = "other"
type = "carrier_pigeon"

[[channels]]
type = "telnet"
application = "missing"
config = { twisted_endpoint = "tcp:9999" }
"#,
    )
    .unwrap();
    let (code, _, err) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no page \"nowhere\""), "{err}");
    assert!(err.contains("carrier_pigeon"), "{err}");
    assert!(err.contains("Unknown application \"missing\""), "{err}");
}

/// A built-in application's reply is queued as an API send is: recorded, counted, and its
/// story starts with the channel's "Accepted" entry.
#[tokio::test]
async fn an_applications_reply_is_queued_like_an_api_send() {
    let server = Server::start("");
    let api = server.api();
    let port = free_port();
    let cid = api
        .create(json!({"type": "telnet", "application": "echo",
                       "config": {"twisted_endpoint": format!("tcp:{port}"), "to_addr": "echo"}}))
        .await;
    let mut user = User::connect(port).await;
    user.say("ping").await;
    user.wait_line("ping").await;
    let reply = eventually("the reply's entry", || async {
        api.logs(&cid).await.into_iter().find(|e| {
            e["message"]
                .as_str()
                .unwrap_or("")
                .contains("from application echo) and queued (realtime)")
        })
    })
    .await;
    let mid = reply["message_id"]
        .as_str()
        .expect("the reply's id")
        .to_string();
    assert_queued_like_an_api_send(&api, &cid, &mid).await;
}
