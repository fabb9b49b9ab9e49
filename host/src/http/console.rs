//! The web console at `/_hms/console`: a one-page app (HTML, one ES module,
//! one stylesheet, an icon) built into the binary. The page itself needs no
//! credential — it is the sign-in form and static code; every piece of data
//! it shows comes from the Core API with the admin credential the operator
//! signs in with. A strict Content-Security-Policy allows nothing but this
//! host: no inline script or style, no other origin, no framing.

use crate::api::error::ApiError;
use crate::api::paths::PREFIX;
use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Where the console is served, below the Core API's prefix.
pub const PATH: &str = "/console";

/// The policy of every console answer: only this host's own script, style,
/// images and API; no inline code, plugins, framing or `<base>`; string
/// sinks such as `innerHTML` refused outright (Trusted Types).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'";

/// Browsers revalidate every time (cheaply, by `ETag`): a host upgraded in
/// place serves its new console at once.
const CACHE_CONTROL: &str = "no-cache";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("console/index.html"),
};

/// Everything under `/console/{asset}`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("console/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("console/console.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("console/icon.svg"),
    },
];

/// Routes of the console (merged into the Core API, so under `/_hms`).
/// Generic over the router's state: the console uses none.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PATH, read_only(get(index)))
        .route(
            &format!("{PATH}/"),
            read_only(get(|| async {
                Redirect::permanent(&format!("{PREFIX}{PATH}"))
            })),
        )
        .route(&format!("{PATH}/{{asset}}"), read_only(get(asset)))
}

/// Other methods get the API's JSON error, not an empty 405.
fn read_only<S: Clone + Send + Sync + 'static>(route: MethodRouter<S>) -> MethodRouter<S> {
    route.fallback(|| async { ApiError::MethodNotAllowed("the console is only read (GET)".into()) })
}

async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => serve(asset, &headers),
        None => ApiError::NotFound(format!("no console asset {name:?}")).into_response(),
    }
}

/// The asset with its type, policy and `ETag`; 304 when the client has it.
fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    let pairs = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, CACHE_CONTROL),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(tag).expect("an ETag is hex in quotes"),
    );
    response
}

/// `"<16 hex digits of the SHA-256 of the body>"`, computed once per asset.
fn etag(asset: &'static Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| {
                let digest = hex::encode(Sha256::digest(a.body));
                (a.name, format!("\"{}\"", &digest[..16]))
            })
            .collect()
    });
    tags.iter()
        .find(|(name, _)| *name == asset.name)
        .map(|(_, tag)| tag.as_str())
        .expect("every asset has a tag")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ErrorBody;
    use axum::body::Body;
    use http::{Method, Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn send(
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (http::response::Parts, bytes::Bytes) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let app: Router = Router::new().nest(PREFIX, routes());
        let response = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    }

    async fn get(path: &str) -> (http::response::Parts, bytes::Bytes) {
        send(Method::GET, path, &[]).await
    }

    fn header(parts: &http::response::Parts, name: header::HeaderName) -> &str {
        parts.headers[name].to_str().unwrap()
    }

    fn assert_hardened(parts: &http::response::Parts) {
        let csp = header(parts, header::CONTENT_SECURITY_POLICY);
        assert_eq!(csp, CSP);
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header(parts, header::CACHE_CONTROL), "no-cache");
        assert_eq!(header(parts, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(parts, header::X_FRAME_OPTIONS), "DENY");
    }

    #[tokio::test]
    async fn the_page_is_html_under_a_strict_policy() {
        let (parts, body) = get("/_hms/console").await;
        assert_eq!(parts.status, 200);
        assert_eq!(
            header(&parts, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert_hardened(&parts);
        let html = std::str::from_utf8(&body).unwrap();
        assert!(html.contains(r#"<script type="module" src="/_hms/console/console.js">"#));
    }

    #[tokio::test]
    async fn every_asset_has_its_type_and_the_policy() {
        for (name, content_type) in [
            ("console.js", "text/javascript; charset=utf-8"),
            ("console.css", "text/css; charset=utf-8"),
            ("icon.svg", "image/svg+xml"),
        ] {
            let (parts, body) = get(&format!("/_hms/console/{name}")).await;
            assert_eq!(parts.status, 200, "{name}");
            assert_eq!(header(&parts, header::CONTENT_TYPE), content_type, "{name}");
            assert_hardened(&parts);
            assert!(!body.is_empty(), "{name}");
        }
    }

    #[tokio::test]
    async fn everything_the_page_loads_is_served_from_here() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        let mut loaded = 0;
        for (i, _) in html.match_indices("=\"/") {
            let url = html[i + 2..].split('"').next().unwrap();
            assert!(url.starts_with("/_hms/console/"), "{url}");
            let (parts, _) = get(url).await;
            assert_eq!(parts.status, 200, "{url}");
            loaded += 1;
        }
        assert!(loaded >= 3, "the page loads its script, style and icon");
        // Nothing inline for the policy to refuse, nothing from elsewhere.
        for refused in [
            "<style",
            " style=",
            " onclick=",
            "<script>",
            "http://",
            "https://",
        ] {
            assert!(!html.contains(refused), "index.html contains {refused:?}");
        }
    }

    #[test]
    fn the_script_never_parses_data_as_markup() {
        let js = std::str::from_utf8(ASSETS[0].body).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "console.js uses {sink}");
        }
    }

    #[tokio::test]
    async fn an_unknown_asset_is_a_json_404() {
        let (parts, body) = get("/_hms/console/secrets.txt").await;
        assert_eq!(parts.status, 404);
        assert_eq!(header(&parts, header::CONTENT_TYPE), "application/json");
        let error: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(error.code, "not_found");
        assert!(error.message.contains("secrets.txt"), "{}", error.message);
    }

    #[tokio::test]
    async fn writes_are_refused_with_the_api_error_shape() {
        let (parts, body) = send(Method::POST, "/_hms/console", &[]).await;
        assert_eq!(parts.status, 405);
        let error: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(error.code, "method_not_allowed");
    }

    #[tokio::test]
    async fn a_client_with_the_current_asset_gets_304() {
        let (parts, _) = get("/_hms/console/console.css").await;
        let tag = header(&parts, header::ETAG).to_string();
        assert_eq!(tag.len(), 18, "{tag}");
        let (parts, body) = send(
            Method::GET,
            "/_hms/console/console.css",
            &[("if-none-match", &tag)],
        )
        .await;
        assert_eq!(parts.status, 304);
        assert!(body.is_empty());
        assert_hardened(&parts);
        let (parts, _) = send(
            Method::GET,
            "/_hms/console/console.css",
            &[("if-none-match", "\"0000000000000000\"")],
        )
        .await;
        assert_eq!(parts.status, 200);
    }

    #[tokio::test]
    async fn a_trailing_slash_redirects_to_the_page() {
        let (parts, _) = get("/_hms/console/").await;
        assert_eq!(parts.status, 308);
        assert_eq!(header(&parts, header::LOCATION), "/_hms/console");
    }
}
