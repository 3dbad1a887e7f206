//! The web pages: the demo shop page with the chat widget, the widget
//! script itself, and the staff console.
//!
//! The files in `web/` are compiled into the binary, so a server needs no
//! build step and no files beside it, and what runs is what was tested.
//! For working on them, `SHOPCHAT_WEB_DIR=web` serves them from disk
//! instead, read at each request.
//!
//! Every file goes out with `X-Content-Type-Options: nosniff`; the two pages
//! with a Content-Security-Policy that allows scripts from this server only
//! (no inline script: the demo page's own script is `demo.js`). The console
//! may not be framed by any page (it acts with a staff session); the widget
//! script carries no framing rule, because shops embed it in their pages.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const WIDGET_JS: &str = include_str!("../../../web/widget.js");
const CONSOLE_HTML: &str = include_str!("../../../web/console.html");
const CONSOLE_JS: &str = include_str!("../../../web/console.js");
const DEMO_JS: &str = include_str!("../../../web/demo.js");

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// What a page may load and who may frame it. Styles may be inline (the
/// pages carry their own `<style>`, the widget sets element styles); scripts
/// may not. `'self'` covers the chat websocket on the same host.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'self'";

/// Who may frame a page: the demo page only itself, the console nobody.
#[derive(Clone, Copy)]
enum Framing {
    SameOrigin,
    Nobody,
}

/// The demo page or the console, with its policy headers.
fn page(name: &str, embedded: &'static str, framing: Framing) -> Response {
    let (ancestors, frame_options) = match framing {
        Framing::SameOrigin => ("'self'", "SAMEORIGIN"),
        Framing::Nobody => ("'none'", "DENY"),
    };
    let policy = format!("{PAGE_POLICY}; frame-ancestors {ancestors}");
    let mut response = file(name, embedded, HTML);
    let headers = response.headers_mut();
    let policy = HeaderValue::from_str(&policy).expect("the policy is visible ASCII");
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(frame_options));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// One of the embedded files, or its copy on disk under `SHOPCHAT_WEB_DIR`.
fn file(name: &str, embedded: &'static str, content_type: &'static str) -> Response {
    let body = match std::env::var_os("SHOPCHAT_WEB_DIR") {
        Some(dir) => std::fs::read_to_string(std::path::Path::new(&dir).join(name))
            .unwrap_or_else(|_| embedded.to_owned()),
        None => embedded.to_owned(),
    };
    // Pages change with the binary, so browsers revalidate rather than keep
    // an old widget after an upgrade.
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    page("index.html", INDEX_HTML, Framing::SameOrigin)
}

pub async fn demo_script() -> Response {
    file("demo.js", DEMO_JS, JAVASCRIPT)
}

pub async fn widget() -> Response {
    file("widget.js", WIDGET_JS, JAVASCRIPT)
}

pub async fn console() -> Response {
    page("console.html", CONSOLE_HTML, Framing::Nobody)
}

pub async fn console_script() -> Response {
    file("console.js", CONSOLE_JS, JAVASCRIPT)
}
