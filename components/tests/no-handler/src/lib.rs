//! Test guest: a component of the Core imports world that exports no
//! `wasi:http/incoming-handler`. Deploying it must be refused.

wit_bindgen::generate!({
    world: "hms:core/imports",
    path: "../../../wit",
    generate_all,
});

/// Keeps one Core import in the component.
#[unsafe(no_mangle)]
pub extern "C" fn log_hello() {
    hms::core::logging::log_event(hms::core::logging::Level::Info, "hello");
}
