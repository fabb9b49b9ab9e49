//! Reading and writing whole wasi:http bodies.

use crate::bindings::wasi::http::types::{IncomingBody, OutgoingBody};
use crate::bindings::wasi::io::streams::StreamError;

/// Largest body [`read_to_end`] accepts.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Read a body to its end (blocking on the stream's pollable as needed).
pub fn read_to_end(body: IncomingBody) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    {
        // The stream is a child of the body and must be dropped first.
        let stream = body
            .stream()
            .map_err(|()| "body stream already taken".to_string())?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(format!("reading body failed: {}", e.to_debug_string()));
                }
            }
            if data.len() > MAX_BODY {
                return Err(format!("body larger than {MAX_BODY} bytes"));
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(data)
}

/// Write `data` as the whole body and finish it.
pub fn write_all(body: OutgoingBody, data: &[u8]) -> Result<(), String> {
    {
        let stream = body
            .write()
            .map_err(|()| "body stream already taken".to_string())?;
        // blocking-write-and-flush accepts at most 4096 bytes per call.
        for chunk in data.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("writing body failed: {e:?}"))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("finishing body failed: {e:?}"))
}
