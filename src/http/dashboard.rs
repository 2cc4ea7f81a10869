//! The live dashboard: one page in the spirit of the Hystrix dashboard, a
//! tile per service (a circle coloured by health and sized by request
//! rate, sparklines, error %, p50/p99, the breaker state with a countdown
//! to its next probe, flaps, restarts, degraded replies), the trading-mode
//! banner, the health score with its components and trends, a live log,
//! and the admin buttons.
//!
//! The page is compiled into the binary and loads nothing from anywhere
//! else (its content security policy forbids it). It reads only the live
//! stream and posts only to the admin routes; the operator's token is kept
//! in the tab's session storage and sent as a bearer header, never in a
//! URL.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page: HTML, CSS and script in one file.
const PAGE: &str = include_str!("dashboard/index.html");

/// Scripts and styles are inline and all requests go to this origin.
const POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

pub(crate) async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}
