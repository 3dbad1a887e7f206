//! The web pages: the demo shop page with the chat widget, the widget
//! script itself, and the staff console.
//!
//! The files in `web/` are compiled into the binary, so a server needs no
//! build step and no files beside it, and what runs is what was tested.
//! For working on them, `SHOPCHAT_WEB_DIR=web` serves them from disk
//! instead, read at each request.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const WIDGET_JS: &str = include_str!("../../../web/widget.js");
const CONSOLE_HTML: &str = include_str!("../../../web/console.html");
const CONSOLE_JS: &str = include_str!("../../../web/console.js");

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// One of the embedded files, or its copy on disk under `SHOPCHAT_WEB_DIR`.
fn file(name: &str, embedded: &'static str, content_type: &'static str) -> Response {
    let body = match std::env::var_os("SHOPCHAT_WEB_DIR") {
        Some(dir) => std::fs::read_to_string(std::path::Path::new(&dir).join(name))
            .unwrap_or_else(|_| embedded.to_owned()),
        None => embedded.to_owned(),
    };
    // Pages change with the binary, so browsers revalidate rather than keep
    // an old widget after an upgrade.
    ([(header::CACHE_CONTROL, "no-cache"), (header::CONTENT_TYPE, content_type)], body)
        .into_response()
}

pub async fn index() -> Response {
    file("index.html", INDEX_HTML, HTML)
}

pub async fn widget() -> Response {
    file("widget.js", WIDGET_JS, JAVASCRIPT)
}

pub async fn console() -> Response {
    file("console.html", CONSOLE_HTML, HTML)
}

pub async fn console_script() -> Response {
    file("console.js", CONSOLE_JS, JAVASCRIPT)
}
