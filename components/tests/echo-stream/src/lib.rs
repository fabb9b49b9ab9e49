//! Test guest: `echo-stream-service`, routes `/echo-stream/...`. Sends its
//! response head at once (no `Content-Length`), then echoes the request body
//! chunk by chunk as it arrives, and finishes its response normally when the
//! request body ends — or fails, which it does not tell apart.
//!
//! A request body that passes its limit after the head has gone out must
//! still reach the client as a failed exchange: the host ends the response
//! stream with an error instead of the clean end this guest asks for.

use hms_guest::ServiceInfo;
use hms_guest::bindings::exports::hms::core::manifest;
use hms_guest::bindings::exports::wasi::http::incoming_handler;
use hms_guest::bindings::wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The most one `blocking-write-and-flush` call may write.
const WRITE_LIMIT: usize = 4096;

struct EchoStream;

impl incoming_handler::Guest for EchoStream {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(200).expect("valid status");
        let body = response.body().expect("fresh response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        let incoming = request.consume().expect("fresh request has a body");
        {
            let input = incoming.stream().expect("fresh body has a stream");
            let output = body.write().expect("fresh body has a stream");
            // Ends on the body's end and on its failure alike.
            while let Ok(chunk) = input.blocking_read(64 << 10) {
                for piece in chunk.chunks(WRITE_LIMIT) {
                    if output.blocking_write_and_flush(piece).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = IncomingBody::finish(incoming);
        let _ = OutgoingBody::finish(body, None);
    }
}

impl manifest::Guest for EchoStream {
    fn describe() -> ServiceInfo {
        ServiceInfo {
            name: "echo-stream-service".into(),
            routes: vec!["/echo-stream/...".into()],
        }
    }

    fn callers() -> Option<Vec<String>> {
        None
    }
}

hms_guest::bindings::export!(EchoStream with_types_in hms_guest::bindings);
