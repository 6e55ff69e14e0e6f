//! The API's edge, as a browser, a proxy or a careless client meets it: `Allow` on 405, web
//! pages of other origins refused unless `[server] cors_origins` lists them (with CORS
//! headers and preflight answers then), the `Host` checked against `[server] allowed_hosts`
//! (DNS rebinding), and one process-log line per event whatever a refused value holds.

mod common;
use common::*;
use serde_json::json;

async fn request(
    api: &Api,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> reqwest::Response {
    let mut req = api
        .http
        .request(method.parse().unwrap(), format!("{}{path}", api.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_method_not_allowed_names_the_ones_that_are() {
    let server = Server::start("");
    let api = server.api();
    let cid = api.create(telnet_body("http://127.0.0.1:9/x").0).await;
    for (method, path, allow) in [
        ("PUT", "/channels/".to_string(), "GET, POST"),
        ("PATCH", format!("/channels/{cid}"), "GET, POST, DELETE"),
        ("GET", format!("/channels/{cid}/messages/"), "POST, DELETE"),
        ("DELETE", "/health".to_string(), "GET"),
        ("POST", "/routers/x".to_string(), "GET, PUT, PATCH, DELETE"),
        ("POST", "/openapi.json".to_string(), "GET"),
    ] {
        let resp = request(&api, method, &path, &[], None).await;
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(
            resp.headers()["Allow"].to_str().unwrap(),
            allow,
            "{method} {path}"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "Method Not Allowed");
    }
}

#[tokio::test]
async fn web_pages_of_other_origins_cannot_use_the_api() {
    let server = Server::start("");
    let api = server.api();
    let own = api.base.clone();
    let body = telnet_body("http://127.0.0.1:9/x").0.to_string();

    // A page elsewhere posts a channel as text/plain (a "simple" request, no preflight).
    let resp = request(
        &api,
        "POST",
        "/channels/",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        Some(&body),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let env: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(env["code"], "Forbidden");
    assert_eq!(env["result"]["errors"][0]["type"], "Forbidden");
    let listed = api.get("/channels/").await.ok(200, "channels listed");
    assert_eq!(listed, json!([]), "nothing was created");

    // Reading is refused too (a page could read the channel list and its status).
    let resp = request(&api, "GET", "/channels/", &[("Origin", "null")], None).await;
    assert_eq!(resp.status(), 403);

    // The API's own pages (the dashboard) and clients without an Origin are served.
    let resp = request(
        &api,
        "POST",
        "/channels/",
        &[("Origin", own.as_str())],
        Some(&body),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let resp = request(&api, "GET", "/channels/", &[], None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn listed_origins_get_cors_headers_and_preflight_answers() {
    let server = Server::start(
        "[server]\nport = 0\ncors_origins = [\"https://admin.example.org\"]\nauth_token = \"tok\"\n",
    );
    let api = server.api();
    let origin = ("Origin", "https://admin.example.org");

    // The preflight needs no credentials (browsers send none with it).
    let resp = request(
        &api,
        "OPTIONS",
        "/channels/",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        None,
    )
    .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        resp.headers()["Access-Control-Allow-Origin"],
        "https://admin.example.org"
    );
    let allowed = resp.headers()["Access-Control-Allow-Headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");

    let resp = request(
        &api,
        "GET",
        "/channels/",
        &[origin, ("Authorization", "Token tok")],
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["Access-Control-Allow-Origin"],
        "https://admin.example.org"
    );
    // Listed is not authorised: credentials are still needed.
    let resp = request(&api, "GET", "/channels/", &[origin], None).await;
    assert_eq!(resp.status(), 401);
    let resp = request(
        &api,
        "GET",
        "/channels/",
        &[
            ("Origin", "https://admin.example.org.evil.example"),
            ("Authorization", "Token tok"),
        ],
        None,
    )
    .await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn a_rebound_host_name_is_refused() {
    // On loopback (the default), only the loopback names: a page at evil.example whose name
    // now resolves to 127.0.0.1 is same-origin to the browser, but not to the API.
    let server = Server::start("");
    let api = server.api();
    let port = api.base.rsplit(':').next().unwrap().to_string();
    let evil = format!("evil.example:{port}");
    let resp = request(&api, "GET", "/channels/", &[("Host", evil.as_str())], None).await;
    assert_eq!(resp.status(), 403);
    let env: serde_json::Value = resp.json().await.unwrap();
    assert!(
        env["result"]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_hosts"),
        "{env}"
    );
    let local = format!("localhost:{port}");
    let resp = request(&api, "GET", "/channels/", &[("Host", local.as_str())], None).await;
    assert_eq!(resp.status(), 200);

    // Named hosts: those, and nothing else.
    let server = Server::start("[server]\nport = 0\nallowed_hosts = [\"sms.example.org\"]\n");
    let api = server.api();
    let resp = request(&api, "GET", "/health", &[("Host", "sms.example.org")], None).await;
    assert_eq!(resp.status(), 200);
    let resp = request(&api, "GET", "/channels/", &[("Host", "127.0.0.1")], None).await;
    assert_eq!(resp.status(), 403);
    // A probe of /health is answered whatever its Host.
    let resp = request(&api, "GET", "/health", &[("Host", "127.0.0.1")], None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_newline_in_a_refused_value_cannot_forge_a_log_line() {
    let server = Server::start("");
    let api = server.api();
    let cid = api
        .create(
            json!({"type": "africastalking", "mo_url": "http://127.0.0.1:9/mo",
                       "config": {"username": "hornbill", "api_key": "atsk_0123456789", "from": "21512"}}),
        )
        .await;
    // A delivery report whose status is not one of Africa's Talking's: refused, logged.
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/status",
            callback_base(&server.public_url(), &cid)
        ))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("id=ATXid_1&status=x%0AINFO%20hornbill:%20forged")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let out = eventually("the refusal in the process log", || async {
        let out = server.output();
        out.contains("unknown status 'x").then_some(out)
    })
    .await;
    assert!(
        out.contains("unknown status 'x\\nINFO hornbill: forged'"),
        "{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("INFO hornbill: forged")),
        "{out}"
    );
}
