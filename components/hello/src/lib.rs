//! A plain `wasi:http/proxy` component: no hms:core imports, no manifest, so
//! the very same `hello.wasm` runs under hms-host (as service `hello`, under
//! `/hello/...`) and under `wasmtime serve`. Every request gets the same
//! small JSON answer, naming the path it reached the component with (see
//! how `routes` and `strip_prefix` in the config file change it).

mod bindings {
    wit_bindgen::generate!({
        world: "wasi:http/proxy@0.2.12",
        // Only the vendored WASI packages, in dependency order: no hms:core.
        path: [
            "../../wit/deps/io",
            "../../wit/deps/clocks",
            "../../wit/deps/random",
            "../../wit/deps/filesystem",
            "../../wit/deps/sockets",
            "../../wit/deps/cli",
            "../../wit/deps/http",
        ],
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

/// `{"message": ..., "ok": true, "path": PATH}`.
fn body(path: &str) -> Vec<u8> {
    let mut escaped = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c if c.is_control() => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    format!(r#"{{"message":"hello from a wasi:http component","ok":true,"path":"{escaped}"}}"#)
        .into_bytes()
}

impl Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        let body_bytes = body(path);
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"application/json".to_vec()),
            (
                "content-length".to_string(),
                body_bytes.len().to_string().into_bytes(),
            ),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(200).expect("valid status");
        let body = response.body().expect("fresh response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        {
            let stream = body.write().expect("fresh body has a stream");
            // Small enough for one call (the limit is 4096 bytes) for any
            // path a client can send within the header limits.
            for piece in body_bytes.chunks(4096) {
                let _ = stream.blocking_write_and_flush(piece);
            }
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

bindings::export!(Hello with_types_in bindings);
