//! Secrets out of responses and logs: tokens, passwords, credentials in URLs.

use serde_json::Value;

/// What a secret is replaced with.
pub const MARK: &str = "***";

/// Channel (and destination) keys whose values are secrets.
pub const SECRET_KEYS: &[&str] = &["mo_url_auth_token", "event_auth_token", "mo_url_token"];
/// Channel keys holding URLs that may carry credentials.
pub const URL_KEYS: &[&str] = &["mo_url", "event_url", "status_url"];
/// Words that make a `config` key a secret, whatever the channel type.
const SECRET_WORDS: &[&str] = &[
    "password", "secret", "token", "api_key", "api-key", "apikey", "auth",
];

/// A URL with its password (and any `token=`-like query values) replaced by the mark.
pub fn url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some(MARK));
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

fn is_secret_config_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

fn config(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_config_key(k) && !v.is_null() && !v.is_object() {
                    *v = Value::String(MARK.into());
                } else if let Value::String(s) = v {
                    if s.contains('@') && s.contains("://") {
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
        for key in SECRET_KEYS {
            if let Some(v) = map.get_mut(*key)
                && !v.is_null()
            {
                *v = Value::String(MARK.into());
            }
        }
        for key in URL_KEYS {
            if let Some(Value::String(s)) = map.get_mut(*key) {
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
        let shown = channel(
            &json!({"mo_url": "http://a:b@h/x", "mo_url_auth_token": "t",
            "config": {"password": "p", "nested": {"api_key": "k"}, "host": "h"}}),
        );
        assert_eq!(
            shown,
            json!({"mo_url": "http://a:***@h/x", "mo_url_auth_token": "***",
            "config": {"password": "***", "nested": {"api_key": "***"}, "host": "h"}})
        );
    }
}
