//! The dashboard: one static page at `/ui/` (its script and style beside it), compiled into
//! the binary. It reads and drives the JSON API from the browser, same origin: channels with
//! their status, rates and queues, a 15-minute chart of each (drawn in the page from the
//! polled status, `chart.js`), the cluster's nodes and which holds each channel, a channel's
//! live log, message lookup, a test send.
//!
//! The five files are served without credentials (they hold no data); when the API is
//! protected, the page asks for a token (or a username and password) on its first 401, keeps
//! the `Authorization` value in the tab's `sessionStorage`, and sends it with every request.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const CHART: &str = include_str!("ui/chart.js");
const STYLE: &str = include_str!("ui/style.css");

/// Scripts and styles from these files only, requests to this origin only: no inline code,
/// so text from the API can never run even if it reached the page as markup.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const PATHS: [&str; 5] = ["/ui", "/ui/", "/ui/app.js", "/ui/style.css", "/ui/chart.js"];

/// The paths `access::guard` lets through without credentials: the dashboard's static files.
pub fn is_public(path: &str) -> bool {
    PATHS.contains(&path)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn chart() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CHART)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// `/ui` to `/ui/` (relative, so it also works behind a proxy that adds a prefix), where
/// the page's relative links resolve.
async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "ui/"))
        .finish()
}

/// Registers the dashboard's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let na = || super::not_allowed("GET");
    cfg.service(
        web::resource(PATHS[0])
            .route(web::get().to(redirect))
            .default_service(na()),
    )
    .service(
        web::resource(PATHS[1])
            .route(web::get().to(index))
            .default_service(na()),
    )
    .service(
        web::resource(PATHS[2])
            .route(web::get().to(script))
            .default_service(na()),
    )
    .service(
        web::resource(PATHS[3])
            .route(web::get().to(style))
            .default_service(na()),
    )
    .service(
        web::resource(PATHS[4])
            .route(web::get().to(chart))
            .default_service(na()),
    );
}
