//! Test guest: an HTTP handler that imports an interface the host does not
//! provide (`test:extra/missing`). Deploying it must be refused.

mod bindings {
    wit_bindgen::generate!({
        world: "test:extra/unknown-import",
        path: [
            "../../../wit/deps/io",
            "../../../wit/deps/clocks",
            "../../../wit/deps/random",
            "../../../wit/deps/filesystem",
            "../../../wit/deps/sockets",
            "../../../wit/deps/cli",
            "../../../wit/deps/http",
            "wit",
        ],
        generate_all,
    });
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};

struct UnknownImport;

impl Guest for UnknownImport {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        bindings::test::extra::missing::ping();
    }
}

bindings::export!(UnknownImport with_types_in bindings);
