//! Reading and writing whole wasi:http bodies.

use std::fmt;

use crate::bindings::wasi::http::types::{self, ErrorCode, IncomingBody, OutgoingBody};
use crate::bindings::wasi::io::streams::StreamError;

/// Largest body [`read_to_end`] accepts.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why a body could not be read or written.
#[derive(Debug)]
pub struct BodyError {
    /// The wasi:http error behind it, when the stream names one.
    pub code: Option<ErrorCode>,
    pub message: String,
}

impl BodyError {
    fn new(message: impl Into<String>) -> BodyError {
        BodyError {
            code: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Read a body to its end (blocking on the stream's pollable as needed).
pub fn read_to_end(body: IncomingBody) -> Result<Vec<u8>, BodyError> {
    let mut data = Vec::new();
    {
        // The stream is a child of the body and must be dropped first.
        let stream = body
            .stream()
            .map_err(|()| BodyError::new("body stream already taken"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(BodyError {
                        code: types::http_error_code(&e),
                        message: format!("reading body failed: {}", e.to_debug_string()),
                    });
                }
            }
            if data.len() > MAX_BODY {
                return Err(BodyError::new(format!("body larger than {MAX_BODY} bytes")));
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(data)
}

/// Write `data` as the whole body and finish it.
pub fn write_all(body: OutgoingBody, data: &[u8]) -> Result<(), BodyError> {
    {
        let stream = body
            .write()
            .map_err(|()| BodyError::new("body stream already taken"))?;
        // blocking-write-and-flush accepts at most 4096 bytes per call.
        for chunk in data.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| BodyError::new(format!("writing body failed: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| BodyError {
        message: format!("finishing body failed: {e:?}"),
        code: Some(e),
    })
}
