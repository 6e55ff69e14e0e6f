//! The command line: serve with a config file, environment overrides, channels at boot,
//! and check-config reporting every problem.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn channels_in_the_config_start_at_boot_and_env_overrides_apply() {
    let port = free_port();
    let config = format!(
        r#"[server]
port = 1
[[channels]]
id = "7c0b9a52-43a4-4a44-8f0e-6f3fd8a6e2a1"
type = "telnet"
label = "boot"
application = "echo"
config = {{ twisted_endpoint = "tcp:{port}", to_addr = "echo" }}
"#
    );
    // port = 1 in the file cannot be bound; the environment moves it to a free one.
    let server = Server::start_with_env(&config, &[("HORNBILL__SERVER__PORT", "0")]);
    let api = server.api();
    let ids = api.get("/channels").await.ok(200, "channels listed");
    assert_eq!(ids, json!(["7c0b9a52-43a4-4a44-8f0e-6f3fd8a6e2a1"]));
    let ch = api.channel("7c0b9a52-43a4-4a44-8f0e-6f3fd8a6e2a1").await;
    assert_eq!(ch["label"], "boot");
    let mut user = User::connect(port).await;
    user.say("ping").await;
    user.wait_line("ping").await;
}

#[test]
fn check_config_reports_every_problem() {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
port = "eighty"
[bus]
kind = "carrier-pigeon"
[surprise]
x = 1
[[channels]]
type = "telnet"
config = { twisted_endpoint = "udp:9" }
rate_limit_count = -1
[[channels]]
type = "fax"
config = {}
"#,
    )
    .unwrap();
    let (code, _, err) = run_cli(&["check-config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    for expected in [
        "6 problem(s)",
        "unknown section or key `surprise`",
        "[server]: invalid type: string \"eighty\"",
        "[bus] kind = \"carrier-pigeon\"",
        "[[channels]] #1: -1 is less than the minimum of 0",
        "[[channels]] #1: Invalid config for channel type telnet",
        "[[channels]] #2: Invalid channel type u'fax', must be one of: aat, africastalking, clickatell, dmark, http, infobip, irc, smpp, telegram, telnet, twilio, twitter, vonage, webhook, whatsapp, xmpp",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }

    let (code, out, _) = run_cli(
        &[
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("OK (1 channel(s) defined)"), "{out}");

    let (code, _, err) = run_cli(&["check-config", "/nonexistent/hornbill.toml"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn serve_refuses_a_bad_config_with_the_problems() {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(&path, "[log]\nformat = \"xml\"\n").unwrap();
    let (code, _, err) = run_cli(&["serve", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("[log] format = \"xml\""), "{err}");
}

#[tokio::test]
async fn the_api_can_require_a_token_or_basic_credentials() {
    let server = Server::start(
        "[server]\nport = 0\nauth_token = \"api-tok\"\nusername = \"ops\"\npassword = \"pw\"\n",
    );
    let api = server.api();
    let r = api.get("/channels/").await;
    r.error(401, "Unauthorized", "unauthorized");
    // The challenge names both schemes (RFC 9110 §11.6.1).
    let challenges: Vec<String> = api
        .http
        .get(format!("{}/channels/", api.base))
        .send()
        .await
        .unwrap()
        .headers()
        .get_all("WWW-Authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        challenges,
        [
            "Token realm=\"hornbill\"",
            "Basic realm=\"hornbill\", charset=\"UTF-8\""
        ]
    );
    api.get("/health").await.ok(200, "health ok");
    let with = |h: &str| {
        api.http
            .get(format!("{}/channels/", api.base))
            .header("Authorization", h.to_string())
            .send()
    };
    assert_eq!(with("Token api-tok").await.unwrap().status(), 200);
    assert_eq!(with("Basic b3BzOnB3").await.unwrap().status(), 200);
    assert_eq!(with("Token wrong").await.unwrap().status(), 401);
    // Scheme names are case-insensitive (RFC 9110 §11.1); the credentials are not.
    assert_eq!(with("token api-tok").await.unwrap().status(), 200);
    assert_eq!(with("BASIC b3BzOnB3").await.unwrap().status(), 200);
    assert_eq!(with("Token API-TOK").await.unwrap().status(), 401);
    assert_eq!(with("Token api-tok-and-more").await.unwrap().status(), 401);
}

/// The process log: human-readable by default, JSON lines with `--log-format json` or
/// `[log] format = "json"`; the level from `[log] level`, overridden by `RUST_LOG`.
#[tokio::test]
async fn the_process_log_is_text_or_json_at_the_level_asked() {
    let json_lines = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("a JSON log line"))
            .collect()
    };
    let text = Server::start("");
    text.api().get("/health").await;
    eventually("the text log", || async {
        text.output().contains("INFO").then_some(())
    })
    .await;
    assert!(json_lines(&text.output()).is_empty(), "{}", text.output());

    let by_flag = Server::start_with_args("", &[], &["--log-format", "json"]);
    let by_config = Server::start("[log]\nformat = \"json\"\n");
    for server in [&by_flag, &by_config] {
        let lines = eventually("JSON log lines", || async {
            let l = json_lines(&server.output());
            (!l.is_empty()).then_some(l)
        })
        .await;
        assert!(
            lines
                .iter()
                .all(|l| l["level"].is_string() && l["timestamp"].is_string())
        );
        assert!(lines.iter().any(|l| l["level"] == "INFO"));
    }

    // RUST_LOG wins over [log] level: at warn, the start-up's info lines are gone.
    let quiet = Server::start_with_env("[log]\nlevel = \"info\"\n", &[("RUST_LOG", "warn")]);
    quiet.api().get("/health").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!quiet.output().contains("INFO"), "{}", quiet.output());
}
