//! What Vumi's `HttpRpcTransport` (vumi 0.6.19 `vumi/transports/httprpc/httprpc.py`), the
//! base class of its synchronous HTTP transports, did to a provider's request, shared by the
//! channel types ported from them (`dmark`, `aat`): HTTP Basic auth (`web_username` /
//! `web_password`), the request's arguments (query string and form body, first value of a
//! repeated one, values decoded as UTF-8), their check against the type's fields
//! (`validation_mode` strict or permissive) and the JSON bodies of the 400 answers, written
//! as Python 2's `json.dumps` wrote them (ASCII only, `", "` and `": "` separators).
//!
//! What the base class did that hornbill does otherwise: its own TCP listener (`web_port`,
//! `web_path`, `health_path`) is hornbill's public listener (`/channels/{id}/<action>`,
//! `/health`); its timeout answer (`request_timeout_status_code`, default 504, with
//! `request_timeout_body`) is the channel's `timeout_message` as a session end, so the user
//! is told; its response-time status events are not published.

use crate::transports::aggregator::Refusal;
use crate::transports::{Callback, CallbackResponse};
use serde_json::{Map, Value, json};

/// `validation_mode` values.
/// Vumi keys a Junebug config of an HTTP RPC transport may carry that hornbill accepts and
/// ignores: its public listener takes the callbacks, at `/channels/{id}/<action>`
/// (`web_path`, `web_port`, and `health_path`: `/health`); a request left waiting is answered
/// with `timeout_message` (`request_timeout_status_code`, `request_timeout_body`, and
/// `request_cleanup_interval`: requests are checked five times a second); no response-time
/// statuses (`response_time_degraded`, `response_time_down`); Basic auth's realm is Vumi's
/// default (`web_auth_domain`); logs are the channel log (`noisy`). (The keys of every Vumi
/// worker, `transports::VUMI_WORKER_KEYS`, every channel type ignores.)
pub const IGNORED_HTTPRPC_KEYS: &[&str] = &[
    "web_path",
    "web_port",
    "web_auth_domain",
    "health_path",
    "request_timeout_status_code",
    "request_timeout_body",
    "request_cleanup_interval",
    "response_time_degraded",
    "response_time_down",
    "noisy",
];

/// The realm of the Basic auth challenge (Vumi's default `web_auth_domain`).
const REALM: &str = "Vumi HTTP RPC transport";

pub const STRICT: &str = "strict";
pub const PERMISSIVE: &str = "permissive";

/// Checks the keys the base class checks when its config is loaded.
pub fn check_config(
    username: &Option<String>,
    password: &Option<String>,
    validation_mode: &str,
) -> Result<(), String> {
    if username.is_some() != password.is_some() {
        return Err(
            "If either web_username or web_password is specified, both must be specified".into(),
        );
    }
    if validation_mode != STRICT && validation_mode != PERMISSIVE {
        return Err(format!("Invalid validation mode: {validation_mode}"));
    }
    Ok(())
}

/// `text` as Python 2's `json.dumps` writes a string: `\uXXXX` (lower-case hex, UTF-16)
/// for everything outside printable ASCII but the short escapes.
fn py_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn py_value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => py_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_string(out, k);
                out.push_str(": ");
                py_value(out, item);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `v` as Python 2's `json.dumps(v)` writes it (object keys in their order here).
pub fn dumps(v: &Value) -> String {
    let mut out = String::new();
    py_value(&mut out, v);
    out
}

/// A Vumi JSON answer. Vumi never set a content type other than its transports'
/// `text/plain`, JSON bodies included; providers built against it got that.
pub fn answer(status: u16, body: &Value) -> CallbackResponse {
    CallbackResponse::text(status, dumps(body))
}

/// Refuses methods other than GET, POST and PUT, as Twisted did (the resource had no other
/// `render_*`).
pub fn check_method(cb: &Callback) -> Result<(), Refusal> {
    match cb.method.as_str() {
        "GET" | "POST" | "PUT" => Ok(()),
        other => Err(Refusal::with(
            CallbackResponse::text(405, "Method Not Allowed"),
            format!("method {other} not allowed"),
        )),
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Requires HTTP Basic credentials when the channel has them (`web_username` /
/// `web_password`): anything else gets Twisted's 401 `Unauthorized`.
pub fn check_auth(cb: &Callback, credentials: Option<(&str, &str)>) -> Result<(), Refusal> {
    use base64::Engine;
    let Some((user, password)) = credentials else {
        return Ok(());
    };
    let given = cb
        .header("authorization")
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        });
    let ok = given.as_deref().is_some_and(|raw| {
        let (u, p) = match raw.iter().position(|b| *b == b':') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, &[][..]),
        };
        // Both compared, whatever the first gives.
        let u_ok = same(u, user.as_bytes());
        let p_ok = same(p, password.as_bytes());
        u_ok & p_ok
    });
    if ok {
        Ok(())
    } else {
        let why = if given.is_some() {
            "wrong HTTP Basic credentials"
        } else {
            "no HTTP Basic credentials"
        };
        // Twisted's challenge, with Vumi's default realm, for clients that send
        // credentials only when asked.
        let challenge = format!("basic realm=\"{REALM}\"");
        Err(Refusal::with(
            CallbackResponse::text(401, "Unauthorized").with_header("WWW-Authenticate", challenge),
            why,
        ))
    }
}

/// One `application/x-www-form-urlencoded` part, decoded (`+` is a space).
fn decode(part: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = part
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

fn pairs(raw: &[u8], out: &mut Vec<(String, Vec<u8>)>) {
    for part in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        out.push((
            String::from_utf8_lossy(&decode(name)).into_owned(),
            decode(value),
        ));
    }
}

/// `Dash-Capitalized` as Twisted shows header names.
fn header_name(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &cs.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Vumi's 400 to a request with a value that is not UTF-8: the request, described
/// (`content`, `path`, `headers`, `uri`, `method`, in Python 2's order). The
/// `Authorization` header's value is not given back.
fn invalid_request(cb: &Callback) -> Refusal {
    let parsed = url::Url::parse(&cb.url).ok();
    let path = parsed
        .as_ref()
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let uri = if cb.query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{}", cb.query)
    };
    let mut headers = Map::new();
    for (k, v) in &cb.headers {
        let shown = if k.eq_ignore_ascii_case("authorization") {
            crate::redact::MARK.to_string()
        } else {
            v.clone()
        };
        let entry = headers
            .entry(header_name(k))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(Value::String(shown));
        }
    }
    let body = json!({"invalid_request": {
        "content": String::from_utf8_lossy(&cb.body),
        "path": path,
        "headers": headers,
        "uri": uri,
        "method": cb.method,
    }});
    Refusal::with(answer(400, &body), "a parameter is not valid UTF-8")
}

/// The request's arguments as Twisted's `request.args` held them (the query string, then a
/// form body), values decoded as UTF-8 (one that is not is Vumi's 400 `invalid_request`).
pub fn args(cb: &Callback) -> Result<Vec<(String, String)>, Refusal> {
    let mut raw = Vec::new();
    pairs(cb.query.as_bytes(), &mut raw);
    let is_form = cb
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        pairs(&cb.body, &mut raw);
    }
    raw.into_iter()
        .map(|(k, v)| match String::from_utf8(v) {
            Ok(v) => Ok((k, v)),
            Err(_) => Err(invalid_request(cb)),
        })
        .collect()
}

/// A request's values of a type's fields.
#[derive(Debug, Default, PartialEq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The value of a field (the first, when it was repeated), if it was given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required field (`field_values` checked it is there).
    pub fn req(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }
}

/// Vumi's `get_field_values`: every one of `expected` must be there (an empty value counts),
/// `optional` may be; in strict mode any other is refused too. The refusal is Vumi's 400,
/// `{"missing_parameter": [...], "unexpected_parameter": [...]}` (either key only when it
/// has names; missing ones in the order given, which callers make Python 2's set order).
pub fn field_values(
    args: Vec<(String, String)>,
    expected: &[&str],
    optional: &[&str],
    strict: bool,
) -> Result<Fields, Refusal> {
    let mut unexpected: Vec<String> = Vec::new();
    let mut values = Vec::new();
    for (k, v) in args {
        if expected.contains(&k.as_str()) || optional.contains(&k.as_str()) {
            values.push((k, v));
        } else if strict && !unexpected.contains(&k) {
            unexpected.push(k);
        }
    }
    let fields = Fields(values);
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|f| fields.get(f).is_none())
        .collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(fields);
    }
    let mut errors = Map::new();
    if !missing.is_empty() {
        errors.insert("missing_parameter".into(), json!(missing));
    }
    if !unexpected.is_empty() {
        errors.insert("unexpected_parameter".into(), json!(unexpected));
    }
    let body = Value::Object(errors);
    let reason = format!("invalid fields: {}", dumps(&body));
    Err(Refusal::with(answer(400, &body), reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(query: &str, headers: &[(&str, &str)]) -> Callback {
        let (reply, _) = tokio::sync::oneshot::channel();
        Callback {
            action: "ussd".into(),
            method: "GET".into(),
            url: format!("http://h:1/channels/c/ussd?{query}"),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: bytes::Bytes::new(),
            reply,
        }
    }

    #[test]
    fn json_as_python_2_wrote_it() {
        assert_eq!(
            dumps(&json!({"responseString": "Thrëë ☃ 😀 \"/\\ \n\u{1}\u{7f}", "action": "end"})),
            r#"{"responseString": "Thr\u00eb\u00eb \u2603 \ud83d\ude00 \"/\\ \n\u0001\u007f", "action": "end"}"#
        );
        assert_eq!(
            dumps(&json!({"missing_parameter": ["a", "b"]})),
            r#"{"missing_parameter": ["a", "b"]}"#
        );
    }

    #[test]
    fn fields_missing_and_unexpected() {
        let args = vec![
            ("a".to_string(), "".to_string()),
            ("x".to_string(), "1".to_string()),
            ("x".to_string(), "2".to_string()),
        ];
        let refused = field_values(args.clone(), &["a", "b", "c"], &[], true).unwrap_err();
        assert_eq!(refused.response.status, 400);
        assert_eq!(
            refused.response.body,
            r#"{"missing_parameter": ["b", "c"], "unexpected_parameter": ["x"]}"#
        );
        let refused = field_values(args.clone(), &["a"], &[], true).unwrap_err();
        assert_eq!(refused.response.body, r#"{"unexpected_parameter": ["x"]}"#);
        let ok = field_values(args.clone(), &["a"], &[], false).unwrap();
        assert_eq!(ok.get("a"), Some(""));
        assert_eq!(ok.get("x"), None);
        let ok = field_values(args, &["a"], &["x", "y"], true).unwrap();
        assert_eq!(ok.get("x"), Some("1"));
        assert_eq!(ok.get("y"), None);
    }

    #[test]
    fn arguments_must_be_utf8() {
        let cb = callback("a=%2A121%23&b=caf%C3%A9+x", &[]);
        assert_eq!(
            args(&cb).unwrap(),
            vec![
                ("a".to_string(), "*121#".to_string()),
                ("b".to_string(), "café x".to_string())
            ]
        );
        let cb = callback(
            "ussdRequestString=%FF%FEW%00",
            &[("connection", "close"), ("authorization", "Basic eDp5")],
        );
        let refused = args(&cb).unwrap_err();
        assert_eq!(refused.response.status, 400);
        assert_eq!(
            refused.response.body,
            r#"{"invalid_request": {"content": "", "path": "/channels/c/ussd", "headers": {"Connection": ["close"], "Authorization": ["***"]}, "uri": "/channels/c/ussd?ussdRequestString=%FF%FEW%00", "method": "GET"}}"#
        );
    }

    #[test]
    fn basic_auth() {
        let creds = Some(("user", "pa:ss"));
        // "user:pa:ss"
        let good = callback("", &[("authorization", "Basic dXNlcjpwYTpzcw==")]);
        assert!(check_auth(&good, creds).is_ok());
        assert!(check_auth(&good, None).is_ok());
        let wrong = callback("", &[("authorization", "Basic dXNlcjpwYXNz")]);
        let refused = check_auth(&wrong, creds).unwrap_err();
        assert_eq!(
            (refused.response.status, refused.response.body.as_str()),
            (401, "Unauthorized")
        );
        assert_eq!(
            refused.response.headers,
            vec![(
                "WWW-Authenticate",
                "basic realm=\"Vumi HTTP RPC transport\"".to_string()
            )]
        );
        assert!(check_auth(&callback("", &[]), creds).is_err());
    }

    #[test]
    fn config_checks() {
        assert!(check_config(&None, &None, "strict").is_ok());
        assert!(check_config(&Some("u".into()), &Some("p".into()), "permissive").is_ok());
        assert_eq!(
            check_config(&Some("u".into()), &None, "strict").unwrap_err(),
            "If either web_username or web_password is specified, both must be specified"
        );
        assert_eq!(
            check_config(&None, &None, "lax").unwrap_err(),
            "Invalid validation mode: lax"
        );
    }
}
