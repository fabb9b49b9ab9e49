//! The glue behind [`service!`](crate::service): turns a wasi:http incoming
//! request into a [`Request`], and a [`Response`] back into wasi:http calls.

use crate::bindings::wasi::http::types::{
    Fields, IncomingRequest, OutgoingResponse, ResponseOutparam,
};
use crate::{Method, Request, Response, Service, body};

/// Handle one incoming request with `S`.
pub fn serve<S: Service>(request: IncomingRequest, response_out: ResponseOutparam) {
    let response = match read_request(request) {
        Ok(req) => S::handle(req),
        Err(message) => Response::error(400, "bad_request", message),
    };
    send_response(response, response_out);
}

fn read_request(request: IncomingRequest) -> Result<Request, String> {
    let method = Method::from(request.method());
    let path = request.path_with_query().unwrap_or_else(|| "/".to_string());
    let headers = request.headers().entries();
    let body = body::read_to_end(
        request
            .consume()
            .map_err(|()| "request body already consumed")?,
    )
    .map_err(|e| e.message)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn send_response(mut response: Response, response_out: ResponseOutparam) {
    let outgoing = match outgoing_response(&response) {
        Ok(outgoing) => outgoing,
        Err(message) => {
            // The handler produced something wasi:http refuses (e.g. a bad
            // header name or status); answer with a plain 500 instead.
            response = Response::error(500, "internal", message);
            outgoing_response(&response).expect("a plain JSON response is always valid")
        }
    };
    let Ok(body) = outgoing.body() else {
        unreachable!("fresh response has a body")
    };
    ResponseOutparam::set(response_out, Ok(outgoing));
    // The client may have gone away; there is nobody left to tell.
    let _ = body::write_all(body, &response.body);
}

fn outgoing_response(response: &Response) -> Result<OutgoingResponse, String> {
    let headers = Fields::from_list(&response.headers)
        .map_err(|e| format!("invalid response header: {e:?}"))?;
    let length = response.body.len().to_string().into_bytes();
    headers
        .set("content-length", &[length])
        .map_err(|e| format!("cannot set content-length: {e:?}"))?;
    let outgoing = OutgoingResponse::new(headers);
    outgoing
        .set_status_code(response.status)
        .map_err(|()| format!("invalid status code {}", response.status))?;
    Ok(outgoing)
}
