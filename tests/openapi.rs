//! The OpenAPI documents against the routes really registered.
//!
//! Every route `http::configure` registers must be in `/openapi.json` with exactly the
//! methods it answers, and every documented operation must exist; the same for the public
//! listener (`http::public::configure`) and its document. The routes are read from the
//! running actix app, not from a list kept here: the resources from the app's resource map
//! (actix-web has no public iterator over it, so its `Debug` text is read, and the test
//! fails if that yields nothing recognisable), and each resource's methods by asking it with
//! every method, in-process and without the server's state (a handler that needs it answers
//! 500; a method the resource does not route answers 405; a path nothing routes, 404 from the
//! app's default service). Only the HTML pages (`/docs/`, `/ui/`) are exempt.
//!
//! Then a real server: `/openapi.json` is OpenAPI 3.x JSON, `/docs/` an HTML page reading it,
//! both open when the API needs credentials.

mod common;

use actix_web::{App, http::Method, test as atest, web};
use common::Server;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// Pages for people, not API operations: not in the document.
fn exempt(pattern: &str) -> bool {
    ["/docs", "/ui"]
        .iter()
        .any(|p| pattern == *p || pattern.starts_with(&format!("{p}/")))
}

/// The resources registered on an app, each as its list of patterns, read from the `Debug`
/// text of the app's `ResourceMap` (`patterns: Single("/a")`, `patterns: List(["/b", "/b/"])`).
fn resources(rmap_debug: &str) -> Vec<Vec<String>> {
    let single = regex::Regex::new(r#"patterns: Single\("((?:[^"\\]|\\.)*)"\)"#).unwrap();
    let list =
        regex::Regex::new(r#"patterns: List\(\[((?:[^\]"]|"(?:[^"\\]|\\.)*")*)\]\)"#).unwrap();
    let item = regex::Regex::new(r#""((?:[^"\\]|\\.)*)""#).unwrap();
    let mut found: Vec<(usize, Vec<String>)> = Vec::new();
    for c in single.captures_iter(rmap_debug) {
        found.push((c.get(0).unwrap().start(), vec![c[1].to_string()]));
    }
    for c in list.captures_iter(rmap_debug) {
        let pats = item
            .captures_iter(&c[1])
            .map(|i| i[1].to_string())
            .collect();
        found.push((c.get(0).unwrap().start(), pats));
    }
    found.sort();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (_, pats) in found {
        // The root ("") is the app itself; named resources appear twice.
        if pats.iter().all(String::is_empty) || out.contains(&pats) {
            continue;
        }
        out.push(pats);
    }
    out
}

/// A concrete path for a pattern: each `{name}` or `{name:regex}` segment becomes `x1`, `x2`...
fn concrete(pattern: &str) -> String {
    let var = regex::Regex::new(r"\{[^}]*\}").unwrap();
    let mut n = 0;
    var.replace_all(pattern, |_: &regex::Captures| {
        n += 1;
        format!("x{n}")
    })
    .into_owned()
}

/// The routes an app answers: resource (its patterns) -> the methods it routes.
async fn registered<F>(configure: F) -> Vec<(Vec<String>, BTreeSet<String>)>
where
    F: FnOnce(&mut web::ServiceConfig) + Clone + 'static,
{
    let app = atest::init_service(App::new().configure(configure)).await;
    let probe = atest::TestRequest::get()
        .uri("/no/such/path/at/all")
        .to_request();
    let resp = atest::try_call_service(&app, probe).await.expect("probe");
    let rmap = format!("{:?}", resp.request().resource_map());
    let mut out = Vec::new();
    for pats in resources(&rmap) {
        let mut methods = BTreeSet::new();
        for m in METHODS {
            let req = atest::TestRequest::default()
                .method(Method::from_bytes(m.as_bytes()).unwrap())
                .uri(&concrete(&pats[0]))
                .to_request();
            let resp = atest::try_call_service(&app, req).await.expect("call");
            let status = resp.status().as_u16();
            let matched = resp.request().match_pattern();
            let body = atest::read_body(resp).await;
            let text = String::from_utf8_lossy(&body);
            // The app's default service (nothing routes this method here, e.g. a resource
            // with a guard), or the resource's own 405.
            let fallen_through = status == 404 && text.contains("The requested URL was not found");
            let no_route = status == 405
                || fallen_through
                || status == 404 && text.contains("no such callback");
            if !no_route {
                assert_eq!(
                    matched.as_deref(),
                    Some(pats[0].as_str()),
                    "{m} {} answered by another resource",
                    concrete(&pats[0])
                );
                methods.insert(m.to_string());
            }
        }
        out.push((pats, methods));
    }
    out
}

/// The document's operations: path -> methods (upper case).
fn documented(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let methods = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| METHODS.contains(&k.to_uppercase().as_str()))
            .map(|k| k.to_uppercase())
            .collect();
        out.insert(path.clone(), methods);
    }
    out
}

/// Every registered route is documented with exactly its methods (a resource answering
/// every method, a catch-all, needs at least GET and POST documented), and every documented
/// operation is registered. Returns the problems.
fn compare(
    routes: &[(Vec<String>, BTreeSet<String>)],
    spec: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut matched_paths = BTreeSet::new();
    for (pats, methods) in routes {
        if pats.iter().all(|p| exempt(p)) {
            continue;
        }
        if methods.is_empty() {
            problems.push(format!("{pats:?} answers no method"));
            continue;
        }
        let docs: Vec<&String> = pats.iter().filter(|p| spec.contains_key(*p)).collect();
        let [path] = docs[..] else {
            problems.push(format!(
                "{pats:?} ({}): {} of its patterns documented, not one",
                methods.iter().cloned().collect::<Vec<_>>().join(", "),
                docs.len()
            ));
            continue;
        };
        matched_paths.insert(path.clone());
        let doc = &spec[path];
        let catch_all = methods.len() == METHODS.len();
        let ok = if catch_all {
            doc.contains("GET") && doc.contains("POST") && doc.is_subset(methods)
        } else {
            doc == methods
        };
        if !ok {
            problems.push(format!(
                "{path}: routes {methods:?}, the document has {doc:?}"
            ));
        }
    }
    for path in spec.keys() {
        if !matched_paths.contains(path) {
            problems.push(format!(
                "{path} is documented but no resource has that pattern"
            ));
        }
    }
    problems
}

/// Structural checks: OpenAPI 3.x, every `$ref` resolves, operation ids are unique.
fn check_document(spec: &Value) {
    let version = spec["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "openapi {version}");
    assert!(spec["info"]["title"].is_string());
    let text = spec.to_string();
    let refs = regex::Regex::new(r##""#/components/schemas/([^"]+)""##).unwrap();
    for r in refs.captures_iter(&text) {
        assert!(
            spec["components"]["schemas"].get(&r[1]).is_some(),
            "unresolved $ref {}",
            &r[1]
        );
    }
    let mut ids = BTreeSet::new();
    for item in spec["paths"].as_object().unwrap().values() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                assert!(
                    ids.insert(id.to_string()),
                    "operationId {id} twice ({method})"
                );
            }
        }
    }
}

#[actix_web::test]
async fn every_api_route_is_documented() {
    let routes = registered(hornbill::http::configure).await;
    let flat: Vec<&String> = routes.iter().flat_map(|(p, _)| p).collect();
    // The resource map was read: these are among the routes (else its Debug text changed).
    for known in [
        "/channels/{id}",
        "/routers/{rid}/destinations/{did}",
        "/health",
    ] {
        assert!(
            flat.iter().any(|p| *p == known),
            "{known} not found in the app's resource map: {routes:?}"
        );
    }
    let spec: Value = serde_json::from_str(hornbill::http::openapi::spec_json()).unwrap();
    check_document(&spec);
    let problems = compare(&routes, &documented(&spec));
    assert!(
        problems.is_empty(),
        "the OpenAPI document (src/http/openapi.rs and the #[utoipa::path] attributes) \
         does not match the routes:\n{}",
        problems.join("\n")
    );
}

#[actix_web::test]
async fn every_public_route_is_documented() {
    let routes =
        registered(|cfg: &mut web::ServiceConfig| hornbill::http::public::configure(cfg, 1 << 20))
            .await;
    assert!(
        routes
            .iter()
            .any(|(p, _)| p.contains(&"/channels/{id}/{secret}/{action}".to_string())),
        "{routes:?}"
    );
    let spec: Value = serde_json::from_str(hornbill::http::openapi::public_spec_json()).unwrap();
    check_document(&spec);
    let problems = compare(&routes, &documented(&spec));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The comparison itself: an undocumented route, a missing method, a stale document entry.
#[test]
fn the_comparison_finds_gaps() {
    let set = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let routes = vec![
        (
            vec!["/a".to_string(), "/a/".to_string()],
            set(&["GET", "POST"]),
        ),
        (vec!["/b/{id}".to_string()], set(&["GET"])),
        (vec!["/ui/".to_string()], set(&["GET"])),
    ];
    let mut spec = BTreeMap::new();
    spec.insert("/a/".to_string(), set(&["GET", "POST"]));
    spec.insert("/b/{id}".to_string(), set(&["GET"]));
    assert!(compare(&routes, &spec).is_empty());
    spec.insert("/a/".to_string(), set(&["GET"]));
    spec.remove("/b/{id}");
    spec.insert("/c".to_string(), set(&["GET"]));
    let problems = compare(&routes, &spec);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("/a/: routes"), "{problems:?}");
    assert!(problems[1].contains("/b/{id}"), "{problems:?}");
    assert!(problems[2].starts_with("/c is documented"), "{problems:?}");
    let debug = r#"ResourceMap { pattern: ResourceDef { id: 0, name: None, patterns: Single(""), is_prefix: true }, nodes: Some([ResourceMap { pattern: ResourceDef { id: 0, name: None, patterns: List(["/a", "/a/"]) } }, ResourceMap { pattern: ResourceDef { id: 1, name: None, patterns: Single("/b/{id}") } }]) }"#;
    assert_eq!(
        resources(debug),
        vec![
            vec!["/a".to_string(), "/a/".to_string()],
            vec!["/b/{id}".to_string()]
        ]
    );
    assert_eq!(concrete("/b/{id}/c/{mid:\\d+}"), "/b/x1/c/x2");
}

#[tokio::test]
async fn the_document_and_the_docs_page_are_served() {
    let server = Server::start("[server]\nport = 0\nworkers = 1\nauth_token = \"s3cret\"\n");
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url);

    // The API needs the token; the documents and the page do not.
    let denied = http.get(url("/channels/")).send().await.unwrap();
    assert_eq!(denied.status().as_u16(), 401);

    let resp = http.get(url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let spec: Value = serde_json::from_str(&resp.text().await.unwrap()).expect("JSON");
    check_document(&spec);
    assert!(spec["paths"]["/channels/{id}/messages/"]["post"].is_object());
    assert_eq!(
        spec["components"]["schemas"]["MessageSend"]["additionalProperties"],
        Value::Bool(false)
    );
    // As the API refuses a send naming neither (ApiUsageError).
    assert_eq!(
        spec["components"]["schemas"]["MessageSend"]["anyOf"],
        json!([{"required": ["to"]}, {"required": ["reply_to"]}])
    );

    let public = http.get(url("/openapi/public.json")).send().await.unwrap();
    assert_eq!(public.status().as_u16(), 200);
    let public: Value = serde_json::from_str(&public.text().await.unwrap()).expect("JSON");
    check_document(&public);
    assert!(public["paths"]["/channels/{id}/{secret}/{action}"]["post"].is_object());

    let page = http.get(url("/docs/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let ctype = page.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");

    // The page's script reads our documents, and is served from the binary (no CDN).
    let init = http
        .get(url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status().as_u16(), 200);
    let init = init.text().await.unwrap();
    assert!(init.contains("\"../openapi.json\""), "{init}");
    assert!(init.contains("\"../openapi/public.json\""), "{init}");
    let bundle = http
        .get(url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status().as_u16(), 200);
    assert!(!html.contains("cdn."), "the page loads from a CDN: {html}");

    // `/docs` leads to the page.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = plain.get(url("/docs")).send().await.unwrap();
    assert_eq!(redirect.status().as_u16(), 308);
    assert_eq!(redirect.headers()["location"], "docs/");
}

/// A minimal valid config of every channel type.
fn minimal_configs() -> Vec<(&'static str, Value)> {
    vec![
        ("aat", json!({})),
        (
            "africastalking",
            json!({"username": "hb", "api_key": "atsk_0123456789"}),
        ),
        ("clickatell", json!({"api_key": "ck-key-0123456789"})),
        ("dmark", json!({})),
        (
            "http",
            json!({"send_url": "http://127.0.0.1:9/send", "mo_from_field": "from",
                   "mo_to_field": "to", "mo_text_field": "text"}),
        ),
        (
            "infobip",
            json!({"api_key": "ib-key", "base_url": "http://127.0.0.1:9"}),
        ),
        (
            "irc",
            json!({"network": "127.0.0.1", "nickname": "hornbot"}),
        ),
        (
            "smpp",
            json!({"twisted_endpoint": "tcp:127.0.0.1:2775", "system_id": "hb"}),
        ),
        ("telegram", json!({"bot_token": "123456789:AAH-test_token"})),
        ("telnet", json!({"twisted_endpoint": "tcp:0"})),
        (
            "twilio",
            json!({"account_sid": "AC0123", "auth_token": "tw-token", "from": "+15005550006"}),
        ),
        (
            "twitter",
            json!({"user_id": "835740314006511618", "api_key": "x-key",
                   "api_key_secret": "x-secret", "access_token": "x-token",
                   "access_token_secret": "x-token-secret"}),
        ),
        (
            "vonage",
            json!({"api_key": "vn-key", "api_secret": "vns_0123"}),
        ),
        ("webhook", json!({"url": "http://127.0.0.1:9/send"})),
        (
            "whatsapp",
            json!({"phone_number_id": "1234567890", "access_token": "wa-token",
                   "app_secret": "wa-secret", "verify_token": "wa-verify"}),
        ),
        (
            "xmpp",
            json!({"host": "xmpp.example.org", "username": "bot@example.org",
                   "password": "xmpp-pw"}),
        ),
    ]
}

/// The document states what the validator enforces, type by type: each `config` schema's
/// required keys are the ones a config cannot do without, its duration ranges are the ones
/// refused outside, and no other key is accepted (but the Vumi worker keys, ignored).
#[test]
fn channel_config_schemas_state_what_the_validator_enforces() {
    let spec: Value = serde_json::from_str(hornbill::http::openapi::spec_json()).unwrap();
    let registry = hornbill::transports::Registry::builtin();
    let configs = minimal_configs();
    let names: BTreeSet<&str> = configs.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        names,
        registry.names().into_iter().collect(),
        "a type without a minimal config here"
    );
    let rules = spec["components"]["schemas"]["ChannelCreate"]["allOf"]
        .as_array()
        .expect("ChannelCreate picks the config schema by type");
    assert_eq!(rules.len(), configs.len());
    for (kind, config) in &configs {
        let schema = &spec["components"]["schemas"][format!("ChannelConfig_{kind}")];
        assert!(schema.is_object(), "{kind}: no schema");
        assert_eq!(schema["additionalProperties"], json!(false), "{kind}");
        registry
            .validate(kind, config)
            .unwrap_or_else(|e| panic!("{kind}: the minimal config is refused: {e}"));
        let with = |key: &str, value: Value| {
            let mut c = config.clone();
            c[key] = value;
            registry.validate(kind, &c)
        };
        // Required: what the schema says, and nothing it does not say.
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for key in config.as_object().unwrap().keys() {
            let mut c = config.clone();
            c.as_object_mut().unwrap().remove(key);
            let refused = registry.validate(kind, &c).is_err();
            if required.contains(key.as_str()) {
                let e = registry.validate(kind, &c).unwrap_err().to_string();
                assert!(e.contains(key.as_str()), "{kind}: without {key}: {e}");
            } else if refused {
                // Needed by a rule the schema states otherwise (one of two keys): the
                // schema must at least name the key.
                assert!(schema["properties"].get(key).is_some(), "{kind}.{key}");
            }
        }
        for key in &required {
            assert!(
                config.get(*key).is_some(),
                "{kind}: {key} is required but not in the minimal config"
            );
        }
        // Ranges: the bounds are accepted, beyond them refused, naming the key.
        for (key, prop) in schema["properties"].as_object().unwrap() {
            let (Some(min), Some(max)) = (prop["minimum"].as_f64(), prop["maximum"].as_f64())
            else {
                continue;
            };
            assert!(with(key, json!(min)).is_ok(), "{kind}.{key} = {min}");
            assert!(with(key, json!(max)).is_ok(), "{kind}.{key} = {max}");
            for bad in [min / 2.0, max * 2.0, 1e308] {
                let e = with(key, json!(bad))
                    .expect_err(&format!("{kind}.{key} = {bad}"))
                    .to_string();
                assert!(e.contains(key.as_str()), "{kind}.{key} = {bad}: {e}");
            }
        }
        // No other keys; the Vumi worker keys are accepted.
        let e = with("no_such_key", json!(1)).unwrap_err().to_string();
        assert!(e.contains("no_such_key"), "{kind}: {e}");
        assert!(with("amqp_prefetch_count", json!(20)).is_ok(), "{kind}");
        assert!(
            schema["properties"].get("amqp_prefetch_count").is_some(),
            "{kind}"
        );
    }
}

/// The description of a channel's `type` names every type this server has.
#[test]
fn the_type_description_names_every_channel_type() {
    fn find(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.starts_with("The channel type:") => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| find(x, out)),
            Value::Object(m) => m.values().for_each(|x| find(x, out)),
            _ => {}
        }
    }
    let spec: Value = serde_json::from_str(hornbill::http::openapi::spec_json()).unwrap();
    let mut found = Vec::new();
    find(&spec, &mut found);
    assert!(!found.is_empty(), "no description of a channel's type");
    for text in &found {
        for name in hornbill::transports::Registry::builtin().names() {
            assert!(text.contains(&format!("`{name}`")), "{name} not in: {text}");
        }
    }
}
