//! The dashboard at `/` (SPEC §9): one HTML page, its script and style sheet, and
//! Apache ECharts, all compiled into the binary from `web/` (no build step, no outside
//! address: the page works on an intranet). The page reads only the public API under
//! `/api/analytics`, with the `read` key the user gives it (kept in the browser and sent
//! as a bearer header); serving the page itself needs no key, as it holds no data and
//! no secret.
//!
//! Every response carries a strict Content-Security-Policy: scripts, styles, images and
//! requests from this origin only, no inline script or style, no framing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The vendored ECharts release (`scripts/vendor-echarts.sh`); part of its URL, so that
/// browsers may keep it for good.
pub const ECHARTS_VERSION: &str = "5.6.0";

/// The Content-Security-Policy of the page and its files.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");
const FAVICON: &str = include_str!("../web/favicon.svg");
const ECHARTS: &str = include_str!("../web/vendor/echarts.min.js");
const ECHARTS_LICENSE: &str = include_str!("../web/vendor/echarts.LICENSE");

/// How long a browser may keep a file.
#[derive(Clone, Copy)]
enum Cache {
    /// Ask again each time (the page and our own files change with the binary).
    Revalidate,
    /// Versioned by its URL: keep it.
    Forever,
}

fn file(content_type: &'static str, body: &'static str, cache: Cache) -> Response {
    let cache = match cache {
        Cache::Revalidate => "no-cache",
        Cache::Forever => "public, max-age=31536000, immutable",
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    secure(headers);
    response
}

/// The headers every dashboard response carries.
fn secure(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The dashboard (HTML; a strict Content-Security-Policy; it reads only this API).
pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX, Cache::Revalidate)
}

/// `GET /assets/{name}`: the page's files.
pub async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let echarts = format!("echarts-{ECHARTS_VERSION}.min.js");
    match name.as_str() {
        "app.js" => file("text/javascript; charset=utf-8", APP_JS, Cache::Revalidate),
        "app.css" => file("text/css; charset=utf-8", APP_CSS, Cache::Revalidate),
        "favicon.svg" => file("image/svg+xml", FAVICON, Cache::Revalidate),
        "echarts.LICENSE.txt" => file(
            "text/plain; charset=utf-8",
            ECHARTS_LICENSE,
            Cache::Revalidate,
        ),
        _ if name == echarts => file("text/javascript; charset=utf-8", ECHARTS, Cache::Forever),
        _ => ApiError::not_found("no such file of the dashboard").into_response(),
    }
}
