//! The client subcommands of the `hornbill` binary (`logs`, `channels`, `send`, `cluster`): they talk to
//! a running server (hornbill's, or Junebug's) over its HTTP API and print what it answers.
//!
//! Every request goes through [`Client`], which adds the credentials, unwraps Junebug's
//! envelope (`{status, code, description, result}`) and turns a refusal or an unreachable
//! server into an [`Error`] that `main` prints on stderr (exit code 1). Credentials are never
//! printed: URLs are shown through `redact::url`, and reqwest's errors without their URL.

mod channels;
mod cluster;
mod logs;
mod send;

use clap::{Args, Subcommand};
use serde_json::Value;
use std::fmt;
use std::io::Write;
use std::time::Duration;

/// The address the client commands use when neither `--url` nor `HORNBILL_URL` is set.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// How to reach the server. Each option falls back to its environment variable.
#[derive(Args)]
#[command(next_help_heading = "Client options (logs, channels, send)")]
pub struct ClientOpts {
    /// The server's API address [env: HORNBILL_URL] [default: http://127.0.0.1:8080].
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// API token, sent as `Authorization: Token <TOKEN>` (the server's `[server] auth_token`)
    /// [env: HORNBILL_TOKEN]. Prefer the variable: command lines are visible to other users.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// User name for HTTP Basic auth (the server's `[server] username`, or a proxy's)
    /// [env: HORNBILL_USER].
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// Password for HTTP Basic auth, with --user [env: HORNBILL_PASSWORD].
    #[arg(long, global = true, value_name = "PASSWORD")]
    pub password: Option<String>,
}

/// The client commands, flattened into the binary's subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Read a channel's or a router's log (`logs tail`).
    #[command(after_help = logs::LOGS_EXAMPLES)]
    Logs(logs::LogsArgs),
    /// List, show, create, restart and delete channels.
    #[command(after_help = channels::CHANNELS_EXAMPLES)]
    Channels(channels::ChannelsArgs),
    /// Send a message on a channel (a new one with --to, or a reply with --reply-to).
    #[command(after_help = send::SEND_EXAMPLES)]
    Send(send::SendArgs),
    /// The cluster's live nodes: when each was last seen, how many channels and routers it
    /// holds.
    #[command(after_help = cluster::CLUSTER_EXAMPLES)]
    Cluster,
}

/// Runs one client command to completion.
pub fn run(opts: ClientOpts, command: Command) -> Result<(), Error> {
    let client = Client::new(opts)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the I/O runtime: {e}")))?;
    runtime.block_on(async move {
        match command {
            Command::Logs(args) => logs::run(&client, args).await,
            Command::Channels(args) => channels::run(&client, args).await,
            Command::Send(args) => send::run(&client, args).await,
            Command::Cluster => cluster::run(&client).await,
        }
    })
}

/// Why a client command failed; `main` prints it after `hornbill: ` and exits with 1.
#[derive(Debug)]
pub enum Error {
    /// The server answered with an error envelope (or something that is not one).
    Api(Box<ApiFailure>),
    /// The server could not be reached, or did not answer in time.
    Unreachable(String),
    /// Usage or local problems (a file that cannot be read, conflicting credentials).
    Other(String),
    /// stdout was closed (`| head`): not worth a message.
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api(a) => a.fmt(f),
            Error::Unreachable(m) | Error::Other(m) => f.write_str(m),
            Error::Closed => f.write_str("output closed"),
        }
    }
}

impl std::error::Error for Error {}

/// An answer outside 2xx, as the server gave it.
#[derive(Debug)]
pub struct ApiFailure {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Junebug's `code` (the reason phrase), or the HTTP one when the body is no envelope.
    pub code: String,
    pub description: Option<String>,
    /// `result.errors`.
    pub errors: Vec<Value>,
    /// The body, when it was not an envelope (a proxy's page): its start.
    pub body: Option<String>,
    /// Whether credentials were sent (a 401 then means they were refused).
    pub sent_credentials: bool,
}

impl ApiFailure {
    /// The server has no such route (werkzeug's, or hornbill's, "404 Not Found" for an
    /// unknown path), as opposed to an unknown channel or message.
    pub fn is_no_route(&self) -> bool {
        self.status == 404
            && (self.body.is_some()
                || self.errors.is_empty()
                || self
                    .errors
                    .iter()
                    .any(|e| e.get("type").and_then(Value::as_str) == Some("Not Found")))
    }
}

/// An error object's `type`: a string, or (Junebug's InvalidChannelType quirk) a list of one.
fn error_type(e: &Value) -> String {
    match e.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: the server answered {} {}",
            self.method, self.path, self.status, self.code
        )?;
        if let Some(d) = self.description.as_deref().filter(|d| !d.is_empty()) {
            write!(f, ": {d}")?;
        }
        for e in &self.errors {
            let kind = error_type(e);
            let message = e.get("message").and_then(Value::as_str).unwrap_or("");
            write!(f, "\n  - {}", if kind.is_empty() { "error" } else { &kind })?;
            if !message.is_empty() {
                write!(f, ": {message}")?;
            }
            if let Some(Value::Array(path)) = e.get("schema_path") {
                let path: Vec<String> = path
                    .iter()
                    .map(|p| match p {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                write!(f, " (schema: {})", path.join("."))?;
            }
        }
        if let Some(body) = &self.body {
            write!(f, "\n  (not a Junebug envelope) {body}")?;
        }
        if self.status == 401 {
            if self.sent_credentials {
                write!(f, "\nThe credentials given were refused.")?;
            } else {
                write!(
                    f,
                    "\nThe API needs credentials: pass --token (or HORNBILL_TOKEN), or --user and \
                     --password (or HORNBILL_USER and HORNBILL_PASSWORD)."
                )?;
            }
        }
        Ok(())
    }
}

/// Where a value came from: the option, else its environment variable (empty counts as unset).
fn option_or_env(value: Option<String>, var: &str) -> Option<String> {
    value
        .or_else(|| std::env::var(var).ok())
        .filter(|v| !v.is_empty())
}

/// The API client: base URL, credentials, and Junebug's envelope unwrapped.
pub struct Client {
    http: reqwest::Client,
    base: String,
    authorization: Option<String>,
}

impl Client {
    pub fn new(opts: ClientOpts) -> Result<Client, Error> {
        let mut base = option_or_env(opts.url, "HORNBILL_URL")
            .unwrap_or_else(|| DEFAULT_URL.to_string())
            .trim_end_matches('/')
            .to_string();
        if !base.contains("://") {
            base = format!("http://{base}");
        }
        if url::Url::parse(&base).is_err() {
            return Err(Error::Other(format!(
                "--url {} is not a URL (e.g. {DEFAULT_URL})",
                hornbill::redact::url(&base)
            )));
        }
        let token = option_or_env(opts.token, "HORNBILL_TOKEN");
        let user = option_or_env(opts.user, "HORNBILL_USER");
        let password = option_or_env(opts.password, "HORNBILL_PASSWORD");
        let authorization = match (token, user, password) {
            (Some(_), Some(_), _) => {
                return Err(Error::Other(
                    "give either a token (--token, HORNBILL_TOKEN) or a user and password \
                     (--user/--password, HORNBILL_USER/HORNBILL_PASSWORD), not both"
                        .into(),
                ));
            }
            (Some(t), None, _) => Some(format!("Token {t}")),
            (None, Some(u), Some(p)) => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                Some(format!("Basic {encoded}"))
            }
            (None, Some(_), None) => {
                return Err(Error::Other(
                    "--user needs --password (or HORNBILL_PASSWORD)".into(),
                ));
            }
            (None, None, Some(_)) => {
                return Err(Error::Other(
                    "--password needs --user (or HORNBILL_USER)".into(),
                ));
            }
            (None, None, None) => None,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("hornbill-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            authorization,
        })
    }

    /// The base URL, safe to print.
    pub fn shown_url(&self) -> String {
        if self.base.contains('@') {
            hornbill::redact::url(&self.base)
                .trim_end_matches('/')
                .to_string()
        } else {
            self.base.clone()
        }
    }

    /// Sends one request; the envelope's `result` on 2xx, else the failure.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Error> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(auth) = &self.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(e))?;
        let envelope: Option<Value> = serde_json::from_str::<Value>(&text)
            .ok()
            .filter(|v| v.get("status").is_some() && v.get("result").is_some());
        if status.is_success() {
            return match envelope {
                Some(mut v) => Ok(v["result"].take()),
                None => Err(Error::Api(Box::new(ApiFailure {
                    method: method.to_string(),
                    path: path.to_string(),
                    status: status.as_u16(),
                    code: status.canonical_reason().unwrap_or("").to_string(),
                    description: None,
                    errors: Vec::new(),
                    body: Some(snippet(&text)),
                    sent_credentials: self.authorization.is_some(),
                }))),
            };
        }
        let failure = match envelope {
            Some(v) => ApiFailure {
                method: method.to_string(),
                path: path.to_string(),
                status: status.as_u16(),
                code: v["code"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string()),
                description: v["description"].as_str().map(str::to_string),
                errors: v["result"]["errors"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                body: None,
                sent_credentials: self.authorization.is_some(),
            },
            None => ApiFailure {
                method: method.to_string(),
                path: path.to_string(),
                status: status.as_u16(),
                code: status.canonical_reason().unwrap_or("").to_string(),
                description: None,
                errors: Vec::new(),
                body: Some(snippet(&text)),
                sent_credentials: self.authorization.is_some(),
            },
        };
        Err(Error::Api(Box::new(failure)))
    }

    pub async fn get(&self, path: &str) -> Result<Value, Error> {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, Error> {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        let url = self.shown_url();
        // The innermost cause ("Connection refused (os error 111)") says the most.
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        let cause = cause.to_string();
        if e.is_timeout() {
            Error::Unreachable(format!(
                "the server at {url} did not answer in time ({cause})"
            ))
        } else if e.is_connect() {
            Error::Unreachable(format!(
                "cannot reach the server at {url}: {cause}. Is it running? (--url or \
                 HORNBILL_URL sets the address)"
            ))
        } else {
            Error::Unreachable(format!(
                "the request to {url} failed: {}: {cause}",
                e.without_url()
            ))
        }
    }
}

/// The start of a body that is not an envelope, on one line.
fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(200).collect();
    if one_line.chars().count() > 200 {
        out.push('…');
    }
    if out.is_empty() {
        out = "(empty body)".into();
    }
    out
}

/// A path segment (an id given on the command line) escaped for a URL.
pub fn seg(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// Writes one line to stdout; a closed stdout (`| head`) ends the command quietly.
pub fn out(line: impl fmt::Display) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|_| stdout.flush())
        .map_err(|_| Error::Closed)
}

/// Pretty JSON (with a fallback that cannot fail).
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failure(status: u16, errors: Vec<Value>, body: Option<&str>) -> ApiFailure {
        ApiFailure {
            method: "GET".into(),
            path: "/x".into(),
            status,
            code: "Not Found".into(),
            description: Some("channel not found".into()),
            errors,
            body: body.map(str::to_string),
            sent_credentials: false,
        }
    }

    #[test]
    fn no_route_is_told_from_an_unknown_channel() {
        let unknown = failure(
            404,
            vec![json!({"type": "ChannelNotFound", "message": ""})],
            None,
        );
        assert!(!unknown.is_no_route());
        let route = failure(
            404,
            vec![json!({"code": 404, "type": "Not Found", "message": "404 Not Found: ..."})],
            None,
        );
        assert!(route.is_no_route());
        assert!(failure(404, vec![], Some("<html>")).is_no_route());
    }

    #[test]
    fn failures_read_well() {
        let f = failure(
            400,
            vec![
                json!({"type": "invalid_body", "message": "'type' is a required property", "schema_path": ["required"]}),
                json!({"type": ["InvalidChannelType"], "message": "bad"}),
                json!({"type": "ChannelNotFound", "message": ""}),
            ],
            None,
        );
        let text = f.to_string();
        assert!(
            text.starts_with("GET /x: the server answered 400 Not Found: channel not found"),
            "{text}"
        );
        assert!(
            text.contains("\n  - invalid_body: 'type' is a required property (schema: required)")
        );
        assert!(text.contains("\n  - InvalidChannelType: bad"));
        assert!(
            text.contains("\n  - ChannelNotFound\n") || text.ends_with("\n  - ChannelNotFound")
        );
        let unauthorized = failure(401, vec![], None).to_string();
        assert!(unauthorized.contains("--token"), "{unauthorized}");
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        assert_eq!(seg("7c0b9a52-43a4_x.y~"), "7c0b9a52-43a4_x.y~");
    }
}
