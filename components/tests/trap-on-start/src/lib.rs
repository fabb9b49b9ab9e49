//! Test guest: a service that traps while it is being instantiated (a
//! constructor run by the component's start-up panics). Deploying it must be
//! refused; it must never replace a working version.

use hms_guest::{Request, Response, Service, ServiceInfo};

struct TrapOnStart;

impl Service for TrapOnStart {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "identity-service".into(),
            routes: vec!["/identity/...".into()],
        }
    }

    fn handle(_req: Request) -> Response {
        Response::json(200, &"unreachable")
    }
}

hms_guest::service!(TrapOnStart);

extern "C" fn refuse_to_start() {
    panic!("this component refuses to start");
}

/// Run by `_initialize` when the component is instantiated.
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = refuse_to_start;
