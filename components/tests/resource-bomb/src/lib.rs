//! Test guest (hostile): `resource-bomb-service`, routes `/resource-bomb/...`.
//! Every request creates wasi:http header sets (`fields`) forever, each
//! holding a 60 KiB header value, and keeps them all. The value is copied
//! into host memory each time while the guest reuses one buffer, so its own
//! memory limit never stops it: without a cap this costs the host
//! gigabytes.
//!
//! The host must stop it with its per-instance resource-table cap: creating
//! one more resource fails (a trap), the host answers 5xx for this request
//! only, frees the instance's resources and keeps serving.

use std::hint::black_box;

use hms_guest::bindings::wasi::http::types::Fields;
use hms_guest::{Request, Response, Service, ServiceInfo};

struct ResourceBomb;

impl Service for ResourceBomb {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "resource-bomb-service".into(),
            routes: vec!["/resource-bomb/...".into()],
        }
    }

    fn handle(_req: Request) -> Response {
        let value = vec![b'x'; 60 * 1024];
        let mut hoard = Vec::new();
        loop {
            let fields = Fields::from_list(&[("x-bomb".to_string(), value.clone())])
                .expect("a 60 KiB header is within the field size limit");
            hoard.push(black_box(fields));
        }
    }
}

hms_guest::service!(ResourceBomb);
