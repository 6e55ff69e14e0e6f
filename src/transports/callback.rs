//! What the public listener hands a channel's transport: a provider's request
//! (`/channels/{channel_id}/{callback_secret}/{action}`, its method, query, headers and body)
//! and the answer the transport gives back, in the provider's own format.

use serde_json::Value;

/// A provider's request to the public listener (`/channels/{channel_id}/{secret}/{action}`), handed
/// to the channel's running transport, which answers it through `reply`.
#[derive(Debug)]
pub struct Callback {
    /// One of the factory's `callback_actions`.
    pub action: String,
    pub method: String,
    /// The URL the provider called, as it knows it (`[public] base_url` + path + query).
    pub url: String,
    /// The raw query string (no `?`).
    pub query: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
    pub reply: tokio::sync::oneshot::Sender<CallbackResponse>,
}

impl Callback {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The form fields of the request: its query string, then (for a form body, URL-encoded
    /// or multipart) its body. A multipart body that cannot be read adds nothing (`try_form`
    /// says why).
    pub fn form(&self) -> Vec<(String, String)> {
        self.try_form().unwrap_or_else(|_| self.query_fields())
    }

    /// As `form`, but a multipart body that cannot be read is an error (its reason).
    pub fn try_form(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = self.query_fields();
        let content_type = self.header("content-type").unwrap_or("");
        let kind = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match kind.as_str() {
            "application/x-www-form-urlencoded" => {
                out.extend(url::form_urlencoded::parse(&self.body).into_owned());
            }
            "multipart/form-data" => out.extend(multipart_fields(content_type, &self.body)?),
            _ => {}
        }
        Ok(out)
    }

    fn query_fields(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// A callback as the public listener would hand it over, for unit tests of providers.
    #[cfg(test)]
    pub fn for_test(action: &str, query: &str, content_type: &str, body: &str) -> Callback {
        Callback {
            action: action.into(),
            method: "POST".into(),
            url: format!("https://hb.example/channels/c/{action}"),
            query: query.into(),
            headers: vec![("content-type".into(), content_type.into())],
            body: bytes::Bytes::from(body.to_string()),
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    /// Answers the provider (it may have given up waiting: then nothing happens).
    pub fn respond(self, response: CallbackResponse) {
        let _ = self.reply.send(response);
    }
}

/// The text fields of a `multipart/form-data` body (RFC 7578), in order; file parts (those
/// with a `filename`) are left out. The body is already in memory, so multer's parser, which
/// reads from a stream, finishes without waiting: a parse that would wait is an error.
fn multipart_fields(
    content_type: &str,
    body: &bytes::Bytes,
) -> Result<Vec<(String, String)>, String> {
    use futures::FutureExt;
    let boundary = multer::parse_boundary(content_type).map_err(|e| e.to_string())?;
    let chunk = body.clone();
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(chunk) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let read = async move {
        let mut out = Vec::new();
        while let Some(field) = parts.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().map(str::to_string);
            let is_file = field.file_name().is_some();
            let text = field.text().await.map_err(|e| e.to_string())?;
            if let (Some(name), false) = (name, is_file) {
                out.push((name, text));
            }
        }
        Ok(out)
    };
    read.now_or_never()
        .unwrap_or_else(|| Err("the multipart body is incomplete".into()))
}

/// What the public listener answers a provider.
#[derive(Clone, Debug, PartialEq)]
pub struct CallbackResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Further headers (e.g. `WWW-Authenticate` on a 401).
    pub headers: Vec<(&'static str, String)>,
}

impl CallbackResponse {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        CallbackResponse {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn json(status: u16, body: &Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }
}
