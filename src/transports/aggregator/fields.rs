//! Helpers the provider files share to read callbacks and write log lines.

use super::Refusal;
use crate::transports::{Callback, CallbackResponse};
use serde_json::{Map, Value};

/// Longest provider answer quoted in the channel log.
const QUOTE: usize = 300;

/// The value of a callback's form field, if present.
pub fn form_field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The named form fields, or a 400 naming the first one missing.
pub fn required_fields<'a>(
    form: &'a [(String, String)],
    names: &[&str],
) -> Result<Vec<&'a str>, Refusal> {
    names
        .iter()
        .map(|n| {
            form_field(form, n).ok_or_else(|| Refusal::bad_request(format!("field '{n}' required")))
        })
        .collect()
}

/// A JSON object body's fields, values as text (nulls left out); `None` when the callback's
/// body is not JSON.
pub fn json_fields(cb: &Callback) -> Result<Option<Vec<(String, String)>>, Refusal> {
    let json = cb
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return Ok(None);
    }
    let body: Value = serde_json::from_slice(&cb.body)
        .map_err(|e| Refusal::bad_request(format!("unable to parse request JSON: {e}")))?;
    let Value::Object(map) = body else {
        return Err(Refusal::bad_request("the JSON body must be an object"));
    };
    Ok(Some(
        map.into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect(),
    ))
}

/// The `{"message": ...}` answer to a callback that was taken.
pub fn accepted(what: &str) -> CallbackResponse {
    CallbackResponse::json(200, &serde_json::json!({"message": what}))
}

/// The named form fields that are present, as transport metadata.
pub fn form_metadata(form: &[(String, String)], keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| form_field(form, k).map(|v| (k.to_string(), Value::String(v.to_string()))))
        .collect()
}

/// `text` cut to `QUOTE` characters for a log line.
pub fn quote(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(QUOTE) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// `text` with every secret replaced by the redaction mark (secrets shorter than 4
/// characters are too likely to match innocent text; configs reject none, so they are
/// scrubbed too when they appear as a whole word of a URL or form).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), crate::redact::MARK);
        let encoded: String =
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        if encoded != *s {
            out = out.replace(&encoded, crate::redact::MARK);
        }
    }
    out
}

/// The URL of a request, as the channel log shows it.
pub(super) fn shown_url(url: &str, secrets: &[String]) -> String {
    scrub(&crate::redact::url(url), secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_plain_and_url_encoded() {
        let secrets = vec!["s3cr3t+key/1".to_string()];
        assert_eq!(
            scrub(
                "GET https://x/?apiKey=s3cr3t%2Bkey%2F1 and s3cr3t+key/1",
                &secrets
            ),
            "GET https://x/?apiKey=*** and ***"
        );
    }
}
