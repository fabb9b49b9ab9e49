//! Test guest (probe): `isolation-service`, routes `/isolation/...`. Every
//! request looks for what an earlier request could have left in this
//! instance's memory, then leaves exactly such traces itself, so that if a
//! later request ever ran in the same memory, it would see them.
//!
//! * `GET /isolation/probe` answers 200 `{"static_seen": 0, "data_seen":
//!   false, "heap_seen": false, "page_seen": false}` in a fresh instance:
//!   - `static_seen`: a zero-initialised static counter (`.bss`), read and
//!     incremented by every probe;
//!   - `data_seen`: whether a static with a non-zero initial value (`.data`)
//!     no longer holds it; every probe overwrites it;
//!   - `heap_seen`: whether a heap marker is anywhere between `__heap_base`
//!     and the end of memory; every probe leaks a heap allocation holding
//!     it (found by scanning, so its address need not be known);
//!   - `page_seen`: whether any byte is non-zero in the pages this probe
//!     grew memory by (up to 4 MiB, across the 2 MiB the host's pool resets
//!     in place, into what it hands back with madvise): newly grown memory
//!     is all zero. Every probe fills its pages.
//! * `GET /isolation/probe-twice` runs the probe twice in the same instance
//!   and answers `{"first": {...}, "second": {...}}`: the second must see
//!   the first's traces (`1, true, true, true`). This is the check that the
//!   probe can see traces at all, so a fresh `probe` means something.
//!
//! * `GET /isolation/panic` traps (a Rust panic), so a test can check that
//!   an instance that trapped is never used again.
//!
//! If the probe cannot grow memory by at least one page (memory already
//! past 4 MiB), it answers 500 rather than a vacuous `page_seen: false`.

use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use core::arch::wasm32;
use hms_guest::serde_json::json;
use hms_guest::{Answer, Params, Request, Response, Router, Service, ServiceInfo};
use serde::Serialize;

/// A wasm page.
const PAGE: usize = 64 * 1024;
/// The probe grows memory up to this many pages (4 MiB).
const END_PAGE: usize = 64;
/// What fills the probe's pages.
const FILL: u8 = 0xA5;

/// Probes run in this instance so far (zero-initialised: `.bss`).
static PROBES: AtomicU32 = AtomicU32::new(0);
/// Holds [`DATA_INITIAL`] until a probe has run (`.data`).
static DATA: AtomicU64 = AtomicU64::new(DATA_INITIAL);
const DATA_INITIAL: u64 = 0x1D1E_5EED_0DA7_A5E6;
const DATA_WRITTEN: u64 = 0xDEAD_BEEF_0BAD_F00D;
/// First page of the region the first probe grew memory by (0: none yet).
static OWN_FROM: AtomicUsize = AtomicUsize::new(0);

/// What a probe leaks on the heap; 8-byte aligned words, so the scan only
/// looks at aligned addresses.
const HEAP_MARKER: [u64; 4] = [
    0x6973_6F6C_6174_696F,
    0x6E2D_6865_6170_2D6D,
    0x6172_6B65_722D_7631,
    0x0123_4567_89AB_CDEF,
];

unsafe extern "C" {
    /// Set by the linker: where the heap starts, after the stack and the
    /// static data.
    static __heap_base: u8;
}

#[derive(Serialize)]
struct Seen {
    static_seen: u32,
    data_seen: bool,
    heap_seen: bool,
    page_seen: bool,
}

struct Isolation;

impl Service for Isolation {
    fn info() -> ServiceInfo {
        ServiceInfo {
            name: "isolation-service".into(),
            routes: vec!["/isolation/...".into()],
        }
    }

    fn router() -> Router {
        Router::new()
            .get("/isolation/probe", |_: &Request, _: &Params| {
                Ok::<_, Response>(Response::json(200, &probe()?))
            })
            .get(
                "/isolation/panic",
                |_: &Request, _: &Params| -> Result<Response, Response> {
                    panic!("the probe was asked to trap")
                },
            )
            .get("/isolation/probe-twice", |_: &Request, _: &Params| {
                let first = probe()?;
                let second = probe()?;
                Ok::<_, Response>(Response::json(
                    200,
                    &json!({ "first": first, "second": second }),
                ))
            })
    }
}

hms_guest::service!(Isolation);

/// Look for traces of earlier probes in this instance, then leave new ones.
fn probe() -> Answer<Seen> {
    let static_seen = PROBES.fetch_add(1, Relaxed);
    let data_seen = DATA.swap(DATA_WRITTEN, Relaxed) != DATA_INITIAL;
    let own = own_pages()?;

    // Only the linker symbol's address is taken, never its value.
    let heap_base = ptr::addr_of!(__heap_base) as usize;
    let memory_end = wasm32::memory_size(0) * PAGE;
    let heap_seen = (heap_base.next_multiple_of(8)..memory_end)
        .step_by(8)
        .any(heap_marker_at);
    let page_seen = own.clone().any(|page| !page_is_zero(page));

    // Leave traces for whoever comes next.
    let leaked: &'static mut [u64; 4] = Box::leak(Box::new(HEAP_MARKER));
    std::hint::black_box(leaked);
    for page in own {
        // SAFETY: the page lies in the region only this probe grew memory
        // by (see `own_pages`); nothing else points into it.
        unsafe {
            ptr::write_bytes(
                ptr::with_exposed_provenance_mut::<u8>(page * PAGE),
                FILL,
                PAGE,
            )
        };
    }

    Ok(Seen {
        static_seen,
        data_seen,
        heap_seen,
        page_seen,
    })
}

/// The pages the probe grew memory by: from the end of memory at the first
/// probe up to [`END_PAGE`]. The allocator never gets them, so the probe
/// may write anywhere in them.
fn own_pages() -> Answer<std::ops::Range<usize>> {
    let mut from = OWN_FROM.load(Relaxed);
    if from == 0 {
        from = wasm32::memory_size(0);
        let missing = END_PAGE.saturating_sub(from);
        if missing == 0 || wasm32::memory_grow(0, missing) == usize::MAX {
            return Err(Response::error(
                500,
                "internal",
                format!("cannot grow memory from {from} to {END_PAGE} pages"),
            ));
        }
        OWN_FROM.store(from, Relaxed);
    }
    Ok(from..END_PAGE)
}

/// Whether [`HEAP_MARKER`] is at `addr` (8-byte aligned, in memory).
fn heap_marker_at(addr: usize) -> bool {
    HEAP_MARKER.iter().enumerate().all(|(i, word)| {
        // SAFETY: `addr + 32` is within linear memory, where every address
        // can be read; volatile, so the compiler reads memory as it is.
        let value =
            unsafe { ptr::read_volatile(ptr::with_exposed_provenance::<u64>(addr + 8 * i)) };
        value == *word
    })
}

/// Whether every byte of `page` is zero.
fn page_is_zero(page: usize) -> bool {
    (0..PAGE / 8).all(|i| {
        // SAFETY: the page is in linear memory (see `own_pages`).
        let value =
            unsafe { ptr::read_volatile(ptr::with_exposed_provenance::<u64>(page * PAGE + 8 * i)) };
        value == 0
    })
}
