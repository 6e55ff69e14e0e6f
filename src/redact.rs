//! Secrets out of responses and logs: tokens, passwords, credentials and secret-looking
//! query values in URLs, request headers a channel sends.

use serde_json::Value;

/// What a secret is replaced with.
pub const MARK: &str = "***";

/// Whether a channel's or destination's key holds a secret (`defs` marks them; the
/// callback secrets are kept with the channel's properties).
fn is_secret_key(key: &str) -> bool {
    use crate::defs::{CALLBACK_SECRET, CHANNEL_KEYS, DESTINATION_KEYS, PREVIOUS_CALLBACK_SECRET};
    key == CALLBACK_SECRET
        || key == PREVIOUS_CALLBACK_SECRET
        || CHANNEL_KEYS
            .iter()
            .chain(DESTINATION_KEYS)
            .any(|k| k.secret && k.name == key)
}

/// Whether a channel's or destination's key holds a URL that may carry credentials.
fn is_url_key(key: &str) -> bool {
    use crate::defs::{CHANNEL_KEYS, DESTINATION_KEYS};
    CHANNEL_KEYS
        .iter()
        .chain(DESTINATION_KEYS)
        .any(|k| k.url && k.name == key)
}

/// Words that make a `config` key a secret, whatever the channel type.
const SECRET_WORDS: &[&str] = &[
    "password", "secret", "token", "api_key", "api-key", "apikey", "auth",
];

/// A URL with its password, and the values of secret-looking query parameters
/// (`?token=…`, `api_key`, `password`, `signature`, …), replaced by the mark.
pub fn url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some(MARK));
            }
            if u.query_pairs().any(|(k, _)| is_secret_query_key(&k)) {
                // Part by part, so that what is not hidden keeps its exact text (templates
                // such as `{to}` included).
                let query: Vec<String> = u
                    .query()
                    .unwrap_or_default()
                    .split('&')
                    .map(|part| match part.split_once('=') {
                        Some((k, _)) if is_secret_query_key(&percent_decode(k)) => {
                            format!("{k}={MARK}")
                        }
                        _ => part.to_string(),
                    })
                    .collect();
                u.set_query(Some(&query.join("&")));
            }
            u.to_string()
        }
        // Not a URL we can parse: hide anything between "//" and "@".
        Err(_) => match (raw.find("//"), raw.find('@')) {
            (Some(s), Some(a)) if a > s => format!("{}{MARK}{}", &raw[..s + 2], &raw[a..]),
            _ => raw.to_string(),
        },
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("{s}=").as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

fn is_secret_config_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// Query parameter names whose values are credentials: the config words, plus the short
/// names providers use (`key`, `pass`, `sig`, `pwd`, …).
fn is_secret_query_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    is_secret_config_key(&key)
        || [
            "key",
            "pass",
            "pwd",
            "sig",
            "signature",
            "passwd",
            "credential",
        ]
        .iter()
        .any(|w| key == *w || key.ends_with(&format!("_{w}")) || key.ends_with(&format!("-{w}")))
}

fn config(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_config_key(k) && !v.is_null() && !v.is_object() {
                    *v = Value::String(MARK.into());
                } else if k.eq_ignore_ascii_case("headers") && v.is_object() {
                    // Request headers a channel sends: any of them may be a credential
                    // (`X-Key`, `Ocp-Apim-Subscription-Key`), whatever its name says.
                    for h in v.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                        *h = Value::String(MARK.into());
                    }
                } else if let Value::String(s) = v {
                    if s.contains("://") {
                        *s = url(s);
                    }
                } else {
                    config(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(config),
        _ => {}
    }
}

/// A channel's properties as the API shows them.
pub fn channel(props: &Value) -> Value {
    let mut out = props.clone();
    if let Value::Object(map) = &mut out {
        for (key, v) in map.iter_mut() {
            if is_secret_key(key) && !v.is_null() {
                *v = Value::String(MARK.into());
            } else if is_url_key(key)
                && let Value::String(s) = v
            {
                *s = url(s);
            }
        }
        if let Some(c) = map.get_mut("config") {
            config(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_and_keys() {
        assert_eq!(url("http://u:pw@h:1/p"), "http://u:***@h:1/p");
        assert_eq!(url("http://h/p"), "http://h/p");
        assert_eq!(
            url("https://h/send?user=me&password=pw&to=%2B27&api_key=k&token=t&sig=s&a=b"),
            "https://h/send?user=me&password=***&to=%2B27&api_key=***&token=***&sig=***&a=b"
        );
        assert_eq!(
            url("http://h/e?id=1&keyword=x"),
            "http://h/e?id=1&keyword=x"
        );
        let shown = channel(
            &json!({"mo_url": "http://a:b@h/x", "mo_url_auth_token": "t",
            "config": {"password": "p", "nested": {"api_key": "k"}, "host": "h",
                       "send_url": "http://h/s?pass=p&to={to}",
                       "headers": {"X-Key": "xk", "Ocp-Apim-Subscription-Key": "sk"}}}),
        );
        assert_eq!(
            shown,
            json!({"mo_url": "http://a:***@h/x", "mo_url_auth_token": "***",
            "config": {"password": "***", "nested": {"api_key": "***"}, "host": "h",
                       "send_url": "http://h/s?pass=***&to={to}",
                       "headers": {"X-Key": "***", "Ocp-Apim-Subscription-Key": "***"}}})
        );
    }
}
