//! {{name}}: an hms service in Rust, written with hms-guest.
//!
//! `GET /{{name}}/hello/{who}` answers `{"greeting": "Hello, <who>",
//! "count": N}`, counting greetings per name in the service's own store.

use hms_guest::logging::{self, Level};
use hms_guest::serde_json::json;
use hms_guest::{Answer, Params, Request, Response, Router, Service, ServiceInfo, store};

pub struct App;

impl Service for App {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "{{name}}".into(),
            routes: vec!["/{{name}}/...".into()],
        }
    }

    fn router() -> Router {
        Router::new().get("/{{name}}/hello/{who}", hello)
    }
}

fn hello(_: &Request, params: &Params) -> Answer {
    let who = &params["who"];
    if who.len() > 64 {
        return Err(Response::error(400, "bad_request", "a name has at most 64 characters"));
    }
    let count = store::increment(&format!("greeted/{who}"), 1)
        .map_err(|e| Response::error(503, "store_unavailable", format!("{e:?}")))?;
    logging::log_event(Level::Info, &format!("greeted {who} ({count} times)"));
    Ok(Response::json(200, &json!({ "greeting": format!("Hello, {who}"), "count": count })))
}

// The component's exports; only in the wasm build (`cargo test` builds this
// crate for the build host, where such export names cannot be linked).
#[cfg(target_arch = "wasm32")]
hms_guest::service!(App);

#[cfg(test)]
mod tests {
    //! What is answered before any Core call runs on the build host:
    //! `cargo test`.

    use super::*;
    use hms_guest::Method;

    fn call(method: Method, path: &str) -> Response {
        App::handle(Request {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        })
    }

    #[test]
    fn routes_and_errors() {
        let r = call(Method::Post, "/{{name}}/hello/Ada");
        assert_eq!(r.status, 405);
        let r = call(Method::Get, "/{{name}}/other");
        assert_eq!(r.status, 404);
        let r = call(Method::Get, &format!("/{{name}}/hello/{}", "x".repeat(65)));
        assert_eq!(r.status, 400);
    }
}
