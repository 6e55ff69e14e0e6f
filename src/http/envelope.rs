//! Junebug's response envelope (`JUNEBUG-API.md` §1.1) and its error catalogue (§1.4).

use crate::api_schema::SchemaError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

/// The werkzeug text Junebug answered unknown paths with.
pub const NOT_FOUND_TEXT: &str = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
pub const METHOD_TEXT: &str = "The method is not allowed for the requested URL.";

/// Twisted's reason phrase for a status code.
pub fn reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => status.canonical_reason().unwrap_or(""),
    }
}

/// `{"status", "code", "description", "result"}` as JSON.
pub fn envelope(status: StatusCode, description: Option<&str>, result: Value) -> HttpResponse {
    let body = json!({
        "status": status.as_u16(),
        "code": reason(status),
        "description": description,
        "result": result,
    });
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body.to_string())
}

pub fn ok(description: &str, result: Value) -> HttpResponse {
    envelope(StatusCode::OK, Some(description), result)
}

pub fn created(description: &str, result: Value) -> HttpResponse {
    envelope(StatusCode::CREATED, Some(description), result)
}

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("json decode error: {0}")]
    JsonDecode(String),
    #[error("api usage error")]
    Schema(Vec<SchemaError>),
    #[error("api usage error: {0}")]
    Usage(String),
    #[error("channel not found")]
    ChannelNotFound,
    #[error("message not found: {0}")]
    MessageNotFound(String),
    #[error("message too long: {0}")]
    MessageTooLong(String),
    #[error("invalid channel type: {0}")]
    InvalidChannelType(String),
    #[error("invalid channel config: {0}")]
    InvalidChannelConfig(String),
    #[error("router {0} not found")]
    RouterNotFound(String),
    #[error("destination {1} of router {0} not found")]
    DestinationNotFound(String, String),
    #[error("invalid router type: {0}")]
    InvalidRouterType(String),
    #[error("invalid router config: {0}")]
    InvalidRouterConfig(String),
    #[error("invalid router destination config: {0}")]
    InvalidDestinationConfig(String),
    #[error("{0}")]
    ConfigDefined(String),
    #[error("not found")]
    NoRoute,
    /// With the methods the resource allows (its `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    /// With the `WWW-Authenticate` challenges.
    #[error("unauthorized")]
    Unauthorized(Vec<&'static str>),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("request body too large")]
    TooLarge,
    #[error("queue full: {0}")]
    QueueFull(String),
    #[error("amqp connection error: {0}")]
    BusUnavailable(String),
    #[error("store unavailable: {0}")]
    Store(String),
    #[error("generic error: {0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, Value) {
        let err = |t: &str, m: &str| json!({"errors": [{"type": t, "message": m}]});
        match self {
            ApiError::JsonDecode(m) => (
                StatusCode::BAD_REQUEST,
                "json decode error",
                err("JsonDecodeError", m),
            ),
            ApiError::Schema(errors) => (
                StatusCode::BAD_REQUEST,
                "api usage error",
                json!({"errors": errors.iter().map(SchemaError::to_json).collect::<Vec<_>>()}),
            ),
            ApiError::Usage(m) => (
                StatusCode::BAD_REQUEST,
                "api usage error",
                err("ApiUsageError", m),
            ),
            ApiError::ChannelNotFound => (
                StatusCode::NOT_FOUND,
                "channel not found",
                err("ChannelNotFound", ""),
            ),
            ApiError::MessageNotFound(m) => (
                StatusCode::BAD_REQUEST,
                "message not found",
                err("MessageNotFound", m),
            ),
            ApiError::MessageTooLong(m) => (
                StatusCode::BAD_REQUEST,
                "message too long",
                err("MessageTooLong", m),
            ),
            ApiError::InvalidChannelType(m) => (
                StatusCode::BAD_REQUEST,
                "invalid channel type",
                err("InvalidChannelType", m),
            ),
            ApiError::InvalidChannelConfig(m) => (
                StatusCode::BAD_REQUEST,
                "invalid channel config",
                err("InvalidChannelConfig", m),
            ),
            ApiError::RouterNotFound(rid) => (
                StatusCode::NOT_FOUND,
                "router not found",
                err(
                    "RouterNotFound",
                    &format!("Router with ID {rid} cannot be found"),
                ),
            ),
            ApiError::DestinationNotFound(rid, did) => (
                StatusCode::NOT_FOUND,
                "destination not found",
                err(
                    "DestinationNotFound",
                    &format!("Cannot find destination with ID {did} for router {rid}"),
                ),
            ),
            ApiError::InvalidRouterType(m) => (
                StatusCode::BAD_REQUEST,
                "invalid router type",
                err("InvalidRouterType", m),
            ),
            ApiError::InvalidRouterConfig(m) => (
                StatusCode::BAD_REQUEST,
                "invalid router config",
                err("InvalidRouterConfig", m),
            ),
            ApiError::InvalidDestinationConfig(m) => (
                StatusCode::BAD_REQUEST,
                "invalid router destination config",
                err("InvalidRouterDestinationConfig", m),
            ),
            ApiError::ConfigDefined(m) => (
                StatusCode::FORBIDDEN,
                "defined in the config file",
                err("ConfigDefined", m),
            ),
            ApiError::NoRoute => (
                StatusCode::NOT_FOUND,
                NOT_FOUND_TEXT,
                json!({"errors": [{"code": 404, "type": "Not Found", "message": format!("404 Not Found: {NOT_FOUND_TEXT}")}]}),
            ),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                METHOD_TEXT,
                json!({"errors": [{"code": 405, "type": "Method Not Allowed", "message": format!("405 Method Not Allowed: {METHOD_TEXT}")}]}),
            ),
            ApiError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                err("Unauthorized", "This API needs credentials"),
            ),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", err("Forbidden", m)),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request entity too large",
                err(
                    "RequestEntityTooLarge",
                    &format!("The request body is larger than {MAX_BODY} bytes"),
                ),
            ),
            ApiError::QueueFull(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "message not sent",
                err("QueueFull", &format!("Message not sent: {m}")),
            ),
            ApiError::BusUnavailable(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "amqp connection error",
                err(
                    "AmqpConnectionError",
                    "Message not sent, AMQP connection error.",
                ),
            ),
            ApiError::Store(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "generic error",
                err("StoreUnavailable", m),
            ),
            ApiError::Internal(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "generic error",
                err("InternalError", m),
            ),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, description, result) = self.parts();
        let mut resp = envelope(status, Some(description), result);
        let headers = resp.headers_mut();
        match self {
            ApiError::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Unauthorized(challenges) => {
                for c in challenges {
                    headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<crate::actors::engine::EngineError> for ApiError {
    fn from(e: crate::actors::engine::EngineError) -> Self {
        use crate::actors::engine::EngineError;
        match e {
            EngineError::NotFound => ApiError::ChannelNotFound,
            EngineError::RouterNotFound(r) => ApiError::RouterNotFound(r),
            EngineError::DestinationNotFound(r, d) => ApiError::DestinationNotFound(r, d),
            EngineError::ConfigDefined(_) => ApiError::ConfigDefined(e.to_string()),
            EngineError::Store(s) => ApiError::Store(s.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Store(e.to_string())
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Parses a request body as JSON (any content type), as Junebug did.
pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::JsonDecode(
            "No JSON object could be decoded".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::JsonDecode(e.to_string()))
}

/// Largest request body the API reads.
pub const MAX_BODY: usize = 1 << 20;

/// A request body read whole, with the API's own error for one that is too large or broken
/// (actix-web's `Bytes` extractor answers those outside the envelope).
pub struct Body(pub bytes::Bytes);

impl actix_web::FromRequest for Body {
    type Error = ApiError;
    type Future = futures::future::LocalBoxFuture<'static, Result<Body, ApiError>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        use futures::StreamExt;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY) {
            return Box::pin(async { Err(ApiError::TooLarge) });
        }
        let mut payload = payload.take();
        Box::pin(async move {
            let mut buf = bytes::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|e| ApiError::JsonDecode(format!("could not read the body: {e}")))?;
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(ApiError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Body(buf.freeze()))
        })
    }
}

impl From<crate::actors::router::RouterError> for ApiError {
    fn from(e: crate::actors::router::RouterError) -> Self {
        use crate::actors::router::RouterError;
        match e {
            RouterError::Type(m) => ApiError::InvalidRouterType(m),
            RouterError::Config(m) => ApiError::InvalidRouterConfig(m),
            RouterError::DestinationConfig(m) => ApiError::InvalidDestinationConfig(m),
        }
    }
}
