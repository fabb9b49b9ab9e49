//! A plain `wasi:http/proxy` component: no hms:core imports, no manifest, so
//! the very same `hello.wasm` runs under hms-host (as service `hello`, under
//! `/hello/...`) and under `wasmtime serve`. Every request gets the same
//! small JSON answer.

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

const BODY: &[u8] = br#"{"message":"hello from a wasi:http component","ok":true}"#;

struct Hello;

impl Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"application/json".to_vec()),
            (
                "content-length".to_string(),
                BODY.len().to_string().into_bytes(),
            ),
        ])
        .expect("valid headers");
        let response = OutgoingResponse::new(headers);
        response.set_status_code(200).expect("valid status");
        let body = response.body().expect("fresh response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        {
            let stream = body.write().expect("fresh body has a stream");
            // Small enough for one call (the limit is 4096 bytes).
            let _ = stream.blocking_write_and_flush(BODY);
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

bindings::export!(Hello with_types_in bindings);
