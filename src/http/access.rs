//! Who may use the management API: the `Host` it is asked for (`[server] allowed_hosts`), the
//! web page a browser request comes from (`Origin`, `[server] cors_origins`) and the
//! credentials (`[server] auth_token`, or `username` and `password`).
//!
//! Refusals use Junebug's envelope: 403 for a host or an origin, 401 with `WWW-Authenticate`
//! for credentials. Credentials are compared in constant time; scheme names in any case.

use super::envelope::ApiError;
use super::{State, openapi, ui};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The API's access rules, built once from `[server]`.
#[derive(Clone, Debug, Default)]
pub struct Access {
    token: Option<Vec<u8>>,
    /// `username:password`.
    basic: Option<Vec<u8>>,
    cors_origins: Vec<String>,
    /// Lower-case host names; `None`: any host.
    allowed_hosts: Option<Vec<String>>,
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

impl Access {
    pub fn new(settings: &crate::config::ServerSettings) -> Access {
        let basic = match (&settings.username, &settings.password) {
            (Some(u), Some(p)) => Some(format!("{u}:{p}").into_bytes()),
            _ => None,
        };
        let loopback = settings
            .host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(settings.host == "localhost");
        let allowed_hosts = match &settings.allowed_hosts {
            Some(hosts) if hosts.iter().any(|h| h == "*") => None,
            Some(hosts) => Some(hosts.iter().map(|h| bare_host(h).to_string()).collect()),
            None if loopback => Some(LOOPBACK_NAMES.iter().map(|h| h.to_string()).collect()),
            None => None,
        };
        Access {
            token: settings.auth_token.clone().map(String::into_bytes),
            basic,
            cors_origins: settings.cors_origins.clone(),
            allowed_hosts,
        }
    }

    /// Whether the API needs credentials at all.
    pub fn protected(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    /// Whether an `Authorization` header value opens the API.
    pub fn authorized(&self, header: &str) -> bool {
        let Some((scheme, given)) = header.trim().split_once(' ') else {
            return false;
        };
        let given = given.trim();
        if scheme.eq_ignore_ascii_case("token") {
            self.token
                .as_ref()
                .is_some_and(|t| bool::from(t.as_slice().ct_eq(given.as_bytes())))
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(given)
                .unwrap_or_default();
            self.basic
                .as_ref()
                .is_some_and(|b| bool::from(b.as_slice().ct_eq(&decoded)))
        } else {
            false
        }
    }

    /// The `WWW-Authenticate` challenges of a 401. The dashboard (which sends
    /// `X-Requested-With`) asks for credentials itself, so its Basic challenge is named
    /// `xBasic`: a browser opens its own login dialog only for `Basic`.
    pub fn challenges(&self, headers: &HeaderMap) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.token.is_some() {
            out.push("Token realm=\"hornbill\"");
        }
        if self.basic.is_some() {
            if headers.contains_key("x-requested-with") {
                out.push("xBasic realm=\"hornbill\"");
            } else {
                out.push("Basic realm=\"hornbill\", charset=\"UTF-8\"");
            }
        }
        out
    }

    /// Whether the API answers to this `Host` header value (`None`: a request without one,
    /// answered only when any host is).
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        match (&self.allowed_hosts, host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(hosts), Some(host)) => {
                let name = bare_host(host);
                hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
            }
        }
    }

    /// Whether a browser request from `origin` may use the API: the API's own origin (the
    /// same host and port as `host`), or one of `cors_origins`.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        same_origin(origin, host)
            || self
                .cors_origins
                .iter()
                .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    /// The CORS headers (preflight answers, `Access-Control-Allow-Origin`) for the origins
    /// allowed above.
    pub fn cors(&self) -> actix_cors::Cors {
        let access = self.clone();
        actix_cors::Cors::default()
            .allowed_origin_fn(move |origin, head| {
                let host = head.headers.get(header::HOST).and_then(|h| h.to_str().ok());
                origin
                    .to_str()
                    .is_ok_and(|o| access.origin_allowed(o, host))
            })
            .allow_any_method()
            .allow_any_header()
            .expose_any_header()
            .max_age(3600)
    }
}

/// A `Host` value without its port or IPv6 brackets.
fn bare_host(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// Whether `origin` (`scheme://host[:port]`) names the server the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let (Ok(origin), Some(host)) = (url::Url::parse(origin), host) else {
        return false;
    };
    let Some(origin_host) = origin.host_str() else {
        return false;
    };
    let origin_host = origin_host.trim_start_matches('[').trim_end_matches(']');
    let port = host
        .rsplit_once(':')
        .filter(|(name, port)| !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .or(origin.port_or_known_default());
    origin_host.eq_ignore_ascii_case(bare_host(host)) && origin.port_or_known_default() == port
}

/// The middleware: host, origin, then credentials.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let access = &state.access;
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    // `/health` answers whatever the host (a load balancer's or monitor's probe, perhaps
    // HTTP/1.0 without a Host); it says nothing a rebinding page could use.
    let health = matches!(req.path(), "/health" | "/health/");
    let refusal = if !health && !access.host_allowed(host.as_deref()) {
        Some(ApiError::Forbidden(format!(
            "This API does not answer to the host {:?} (see [server] allowed_hosts)",
            host.unwrap_or_default()
        )))
    } else if let Some(origin) = headers.get(header::ORIGIN)
        && !origin
            .to_str()
            .is_ok_and(|o| access.origin_allowed(o, host.as_deref()))
    {
        Some(ApiError::Forbidden(format!(
            "Requests from web pages at {:?} are not allowed (see [server] cors_origins)",
            origin.to_str().unwrap_or("?")
        )))
    } else {
        let preflight = req.method() == actix_web::http::Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let path = req.path();
        let open = preflight
            || path == "/health"
            || path == "/health/"
            || ui::is_public(path)
            || openapi::is_public(path);
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        (access.protected() && !open && !given.is_some_and(|g| access.authorized(g)))
            .then(|| ApiError::Unauthorized(access.challenges(headers)))
    };
    match refusal {
        Some(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerSettings;

    fn access(f: impl FnOnce(&mut ServerSettings)) -> Access {
        let mut s = ServerSettings::default();
        f(&mut s);
        Access::new(&s)
    }

    #[test]
    fn schemes_in_any_case_and_exact_credentials() {
        let a = access(|s| {
            s.auth_token = Some("t0k".into());
            s.username = Some("u".into());
            s.password = Some("p".into());
        });
        assert!(a.authorized("Token t0k"));
        assert!(a.authorized("token t0k"));
        assert!(a.authorized("TOKEN  t0k "));
        assert!(!a.authorized("Token t0"));
        assert!(!a.authorized("Token t0kk"));
        assert!(!a.authorized("Bearer t0k"));
        assert!(!a.authorized("t0k"));
        assert!(a.authorized("basic dTpw"));
        assert!(!a.authorized("Basic dTpx"));
        assert!(!a.authorized("Basic !!"));
        let open = access(|_| {});
        assert!(!open.protected());
        assert!(!open.authorized("Token "));
    }

    #[test]
    fn hosts_default_to_loopback_names_on_a_loopback_address() {
        let a = access(|_| {});
        for h in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:8080"] {
            assert!(a.host_allowed(Some(h)), "{h}");
        }
        assert!(!a.host_allowed(Some("evil.example:8080")));
        assert!(!a.host_allowed(None), "no Host: not one of the names");
        let public = access(|s| s.host = "0.0.0.0".into());
        assert!(public.host_allowed(Some("evil.example")));
        assert!(
            public.host_allowed(None),
            "any host: an HTTP/1.0 request without one too"
        );
        let listed = access(|s| {
            s.host = "0.0.0.0".into();
            s.allowed_hosts = Some(vec!["sms.example.org".into()]);
        });
        assert!(listed.host_allowed(Some("sms.example.org:443")));
        assert!(!listed.host_allowed(Some("other.example.org")));
        let any = access(|s| s.allowed_hosts = Some(vec!["*".into()]));
        assert!(any.host_allowed(Some("anything")));
    }

    #[test]
    fn own_origin_or_listed() {
        let a = access(|s| s.cors_origins = vec!["https://admin.example.org".into()]);
        assert!(a.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(a.origin_allowed("http://localhost", Some("localhost")));
        assert!(a.origin_allowed("http://[::1]:8080", Some("[::1]:8080")));
        assert!(!a.origin_allowed("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        assert!(!a.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!a.origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(a.origin_allowed("https://admin.example.org", Some("127.0.0.1:8080")));
        assert!(!a.origin_allowed("https://admin.example.org.evil", None));
    }
}
