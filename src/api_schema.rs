//! Junebug's request schemas (`JUNEBUG-API.md` §1.3), checked with Junebug's error texts.
//!
//! Junebug validated with Python 2 `jsonschema` (draft 4) and returned one `invalid_body`
//! entry per violation, with the library's message text (`u'a' is not of type 'integer'`) and
//! the failing `schema_path`. Clients and operators read those texts, so they are reproduced
//! here for the few fixed schemas the API has, rather than through a general validator whose
//! wording would differ.

use serde_json::{Map, Value, json};

/// One schema violation, as Junebug reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaError {
    pub message: String,
    pub schema_path: Vec<String>,
}

impl SchemaError {
    pub fn to_json(&self) -> Value {
        json!({"type": "invalid_body", "message": self.message, "schema_path": self.schema_path})
    }
}

use crate::defs::{CHANNEL_KEYS, DESTINATION_KEYS, Key, KeyType as Ty, MESSAGE_KEYS, ROUTER_KEYS};
pub use crate::defs::{
    MAX_CHARACTER_LIMIT, MAX_RATE_LIMIT_COUNT, MAX_RATE_LIMIT_WINDOW, MAX_WINDOW, as_count,
};

/// Python 2 `repr()` of a JSON value, as jsonschema put it in its messages.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("u'");
            for c in s.chars() {
                match c {
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 || (0x7f..0x100).contains(&(c as u32)) => {
                        out.push_str(&format!("\\x{:02x}", c as u32))
                    }
                    c if (c as u32) >= 0x100 && (c as u32) < 0x10000 => {
                        out.push_str(&format!("\\u{:04x}", c as u32))
                    }
                    c if (c as u32) >= 0x10000 => out.push_str(&format!("\\U{:08x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('\'');
            out
        }
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn check_field(name: &str, ty: Ty, v: &Value, nullable: bool, errors: &mut Vec<SchemaError>) {
    let path = |kw: &str| vec!["properties".to_string(), name.to_string(), kw.to_string()];
    let type_error = |expected: &str| SchemaError {
        message: format!("{} is not of type {expected}", py_repr(v)),
        schema_path: path("type"),
    };
    match ty {
        Ty::Str | Ty::StrOrNull if nullable || matches!(ty, Ty::StrOrNull) => {
            if !(v.is_string() || v.is_null()) {
                errors.push(type_error("'string', 'null'"))
            }
        }
        Ty::Str | Ty::StrOrNull => {
            if !v.is_string() {
                errors.push(type_error("'string'"))
            }
        }
        Ty::Obj => {
            if !v.is_object() {
                errors.push(type_error("'object'"))
            }
        }
        Ty::Bool => {
            if !v.is_boolean() {
                errors.push(type_error("'boolean'"))
            }
        }
        Ty::List => {
            if !v.is_array() {
                errors.push(type_error("'array'"))
            }
        }
        Ty::Int(max) => match (v, as_count(v)) {
            (Value::Number(n), _) if n.as_i64().is_some_and(|i| i < 0) => {
                errors.push(SchemaError {
                    message: format!("{n} is less than the minimum of 0"),
                    schema_path: path("minimum"),
                })
            }
            (Value::Number(n), Some(count)) => {
                if count > max {
                    errors.push(SchemaError {
                        message: format!("{n} is greater than the maximum of {max}"),
                        schema_path: path("maximum"),
                    })
                }
            }
            _ => errors.push(type_error("'integer'")),
        },
    }
}

fn not_object(v: &Value) -> Vec<SchemaError> {
    vec![SchemaError {
        message: format!("{} is not of type 'object'", py_repr(v)),
        schema_path: vec!["type".into()],
    }]
}

fn required(obj: &Map<String, Value>, names: &[&str], errors: &mut Vec<SchemaError>) {
    for name in names {
        if !obj.contains_key(*name) {
            errors.push(SchemaError {
                message: format!("'{name}' is a required property"),
                schema_path: vec!["required".into()],
            });
        }
    }
}

fn sorted(mut errors: Vec<SchemaError>) -> Vec<SchemaError> {
    errors.sort_by(|a, b| a.message.cmp(&b.message));
    errors
}

/// The channel schema: `create` requires `type` and `config`; modify (`create == false`)
/// requires nothing and lets `mo_url`/`status_url` be null. Extra keys are allowed.
pub fn validate_channel(body: &Value, create: bool) -> Vec<SchemaError> {
    let Value::Object(obj) = body else {
        return not_object(body);
    };
    let mut errors = Vec::new();
    if create {
        required(obj, &["type", "config"], &mut errors);
    }
    for key in CHANNEL_KEYS {
        if let Some(v) = obj.get(key.name) {
            let nullable = !create && key.modify_nullable;
            check_field(key.name, key.ty, v, nullable, &mut errors);
        }
    }
    sorted(errors)
}

/// The send schema (channel and destination sends): `content` required, nothing extra.
pub fn validate_message(body: &Value) -> Vec<SchemaError> {
    closed(body, MESSAGE_KEYS, &["content"])
}

/// The router schema: `type` and `config` required on POST and PUT (`full`), nothing on
/// PATCH; nothing extra.
pub fn validate_router(body: &Value, full: bool) -> Vec<SchemaError> {
    closed(
        body,
        ROUTER_KEYS,
        if full { &["type", "config"] } else { &[] },
    )
}

/// The destination schema: `config` required on POST and PUT; nothing extra.
pub fn validate_destination(body: &Value, full: bool) -> Vec<SchemaError> {
    closed(body, DESTINATION_KEYS, if full { &["config"] } else { &[] })
}

/// A schema with `additionalProperties: false`.
fn closed(body: &Value, fields: &[Key], needed: &[&str]) -> Vec<SchemaError> {
    let Value::Object(obj) = body else {
        return not_object(body);
    };
    let mut errors = Vec::new();
    required(obj, needed, &mut errors);
    for key in fields {
        if let Some(v) = obj.get(key.name) {
            check_field(key.name, key.ty, v, false, &mut errors);
        }
    }
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !fields.iter().any(|f| f.name == k.as_str()))
        .map(|k| py_repr(&Value::String(k.clone())))
        .collect();
    if !extra.is_empty() {
        let verb = if extra.len() == 1 { "was" } else { "were" };
        errors.push(SchemaError {
            message: format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                extra.join(", ")
            ),
            schema_path: vec!["additionalProperties".into()],
        });
    }
    sorted(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_2_texts() {
        let errs = validate_channel(
            &json!({"label": 5, "rate_limit_count": -3, "character_limit": "many"}),
            true,
        );
        let texts: Vec<_> = errs.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "'config' is a required property",
                "'type' is a required property",
                "-3 is less than the minimum of 0",
                "5 is not of type 'string'",
                "u'many' is not of type 'integer'",
            ]
        );
        assert_eq!(
            errs[2].schema_path,
            vec!["properties", "rate_limit_count", "minimum"]
        );
    }

    #[test]
    fn message_schema() {
        let errs = validate_message(&json!({"to": "x", "content": "x", "surprise": true}));
        assert_eq!(
            errs[0].message,
            "Additional properties are not allowed (u'surprise' was unexpected)"
        );
        assert_eq!(
            validate_message(&json!({"to": "x", "content": null, "priority": 1}))[0].message,
            "1 is not of type 'string'"
        );
        assert!(validate_message(&json!({"to": "x", "content": null, "from": null})).is_empty());
        assert_eq!(
            validate_channel(
                &json!({"type": "t", "config": {}, "character_limit": true}),
                true
            )[0]
            .message,
            "True is not of type 'integer'"
        );
        assert_eq!(py_repr(&json!("caf\u{e9}")), "u'caf\\xe9'");
    }

    /// The request bodies in the OpenAPI document (`http::openapi`) say what these schemas
    /// check: the same keys, types, required keys, nulls, and closed schemas.
    #[test]
    fn openapi_bodies_match() {
        use std::collections::BTreeSet;
        use utoipa::OpenApi;
        let spec = serde_json::to_value(crate::http::openapi::ApiDoc::openapi()).unwrap();
        let check = |name: &str, fields: &[Key], required: &[&str], nullable: bool| {
            let schema = &spec["components"]["schemas"][name];
            let props = schema["properties"].as_object().expect(name);
            let names: BTreeSet<&str> = props.keys().map(String::as_str).collect();
            let expected: BTreeSet<&str> = fields.iter().map(|k| k.name).collect();
            assert_eq!(names, expected, "{name}: keys");
            for key in fields {
                let (field, ty) = (&key.name, key.ty);
                let p = &props[*field];
                let base = match ty {
                    Ty::Str | Ty::StrOrNull => "string",
                    Ty::Obj => "object",
                    Ty::Int(_) => "integer",
                    Ty::Bool => "boolean",
                    Ty::List => "array",
                };
                let want = if matches!(ty, Ty::StrOrNull) || (nullable && key.modify_nullable) {
                    json!([base, "null"])
                } else {
                    json!(base)
                };
                assert_eq!(p["type"], want, "{name}.{field}");
                if let Ty::Int(max) = ty {
                    assert_eq!(p["minimum"], json!(0), "{name}.{field}");
                    assert_eq!(p["maximum"], json!(max), "{name}.{field}");
                }
            }
            let found: BTreeSet<&str> = schema["required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let required: BTreeSet<&str> = required.iter().copied().collect();
            assert_eq!(found, required, "{name}: required");
            schema["additionalProperties"] == json!(false)
        };
        type Body<'a> = (&'a str, &'a [Key], &'a [&'a str], bool, bool);
        let bodies: [Body; 7] = [
            // name, keys, required, nullable, closed (no other keys)
            (
                "ChannelCreate",
                CHANNEL_KEYS,
                &["type", "config"],
                false,
                false,
            ),
            ("ChannelModify", CHANNEL_KEYS, &[], true, false),
            ("MessageSend", MESSAGE_KEYS, &["content"], false, true),
            ("RouterBody", ROUTER_KEYS, &["type", "config"], false, true),
            ("RouterPatch", ROUTER_KEYS, &[], false, true),
            (
                "DestinationBody",
                DESTINATION_KEYS,
                &["config"],
                false,
                true,
            ),
            ("DestinationPatch", DESTINATION_KEYS, &[], false, true),
        ];
        for (name, fields, required, nullable, closed) in bodies {
            assert_eq!(
                check(name, fields, required, nullable),
                closed,
                "{name}: closed"
            );
        }
    }
}
