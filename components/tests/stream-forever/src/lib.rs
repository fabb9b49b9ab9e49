//! Test guest (hostile): `stream-forever-service`, routes
//! `/stream-forever/...`. Every request gets a 200 head with no
//! content-length, then 64 KiB body chunks forever; the guest stops only
//! when a write fails.
//!
//! The host must cut the response off with its response body size limit
//! and/or its wall-clock deadline (the guest mostly waits in host calls for
//! the stream to accept more, so epoch interruption alone is not enough),
//! never buffer the endless body in memory, and throw the instance away.
//!
//! The exports are written by hand because `hms_guest::service!` only sends
//! whole, buffered bodies.

use hms_guest::ServiceInfo;
use hms_guest::bindings::exports::hms::core::manifest;
use hms_guest::bindings::exports::wasi::http::incoming_handler;
use hms_guest::bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingResponse, ResponseOutparam,
};
use hms_guest::bindings::wasi::io::streams::{OutputStream, StreamError};

const CHUNK: usize = 64 * 1024;

struct StreamForever;

impl incoming_handler::Guest for StreamForever {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        // No content-length: the body's end is never announced.
        let response = OutgoingResponse::new(Fields::new());
        response.set_status_code(200).expect("valid status");
        let body = response.body().expect("fresh response has a body");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("fresh body has a stream");
        let chunk = vec![b'x'; CHUNK];
        while write_chunk(&stream, &chunk).is_ok() {}
        // A write failed (limit hit or client gone). The body is dropped
        // without `finish`, which marks the response as broken.
        drop(stream);
        drop(body);
    }
}

/// Write all of `data` with the check-write / write / flush protocol,
/// waiting on the stream's pollable whenever it accepts nothing.
fn write_chunk(stream: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    let ready = stream.subscribe();
    while !data.is_empty() {
        ready.block();
        let permitted = usize::try_from(stream.check_write()?).unwrap_or(usize::MAX);
        let n = permitted.min(data.len());
        if n > 0 {
            stream.write(&data[..n])?;
            data = &data[n..];
        }
    }
    stream.flush()?;
    Ok(())
}

impl manifest::Guest for StreamForever {
    fn describe() -> ServiceInfo {
        ServiceInfo {
            name: "stream-forever-service".into(),
            routes: vec!["/stream-forever/...".into()],
        }
    }

    fn callers() -> Option<Vec<String>> {
        None
    }
}

hms_guest::bindings::export!(StreamForever with_types_in hms_guest::bindings);
