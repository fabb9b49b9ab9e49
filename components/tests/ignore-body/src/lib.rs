//! Test guest (hostile): `ignore-body-service`, routes `/ignore-body/...`.
//! Every request is answered 200 `{"ignored":true}` at once, without ever
//! calling `consume()` on the incoming request, so its body is never read.
//!
//! A client may keep sending a huge (or endless) body nobody reads. The host
//! must still deliver the response, enforce its request body limit and
//! request timeout on what the client sends, and not buffer the unread body
//! without bound; the instance must be reusable or cleanly discarded.
//!
//! The exports are written by hand because `hms_guest::service!` always reads
//! the whole request body before the handler runs.

use hms_guest::ServiceInfo;
use hms_guest::bindings::exports::hms::core::manifest;
use hms_guest::bindings::exports::wasi::http::incoming_handler;
use hms_guest::bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

const BODY: &[u8] = br#"{"ignored":true}"#;

struct IgnoreBody;

impl incoming_handler::Guest for IgnoreBody {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        // Never consumed: the request body is not even opened.
        drop(request);
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

impl manifest::Guest for IgnoreBody {
    fn describe() -> ServiceInfo {
        ServiceInfo {
            name: "ignore-body-service".into(),
            routes: vec!["/ignore-body/...".into()],
        }
    }

    fn callers() -> Option<Vec<String>> {
        None
    }
}

hms_guest::bindings::export!(IgnoreBody with_types_in hms_guest::bindings);
