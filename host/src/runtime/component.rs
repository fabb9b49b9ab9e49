//! Loading a component file: checks that it is a component of the service
//! world, compiles it (through the engine's cache), pre-instantiates it and
//! asks it for its name and routes.
//!
//! A service component exports `hms:core/manifest` and is asked `describe()`
//! once at load. A plain `wasi:http/proxy` component has no manifest: it is
//! served as service `NAME`, its file stem made a valid name
//! (`p2_api_proxy.wasm`: `p2-api-proxy`), under `/NAME/...` or the `routes`
//! of its `[services.NAME]` section.
//!
//! [`inspect`] reads what a file says about itself without compiling it
//! (what it imports and exports, its core instances, its memories), so a
//! file that cannot run is refused at once, before `run` starts listening.

use crate::core::names::validate_service_name;
use crate::runtime::engine::{InstanceNeeds, WasmEngine, digest};
use crate::runtime::router::Pattern;
use crate::runtime::sandbox::ServiceGuard;
use crate::runtime::state::RequestState;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::{ComponentType, InstancePre, Lift, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// The export a service component describes itself through.
pub const MANIFEST_EXPORT: &str = "hms:core/manifest@0.1.0";

/// One loaded version of a service, ready to instantiate per request.
pub struct Service {
    /// Service name (from the manifest, or the file stem).
    pub name: String,
    /// `sha256:<hex>` of the component's bytes.
    pub version: String,
    /// Routes it serves.
    pub routes: Vec<Pattern>,
    /// Where it came from: a file path, or `upload` for the admin API.
    pub source: String,
    /// Services allowed to call it through the host; `None`: any.
    pub callers: Option<Vec<String>>,
    /// Its sandbox: limits, grants, instance slots and counters (shared by
    /// every version of the service).
    pub guard: Arc<ServiceGuard>,
    /// Hand it the path below the prefix route a request matched.
    pub strip_prefix: bool,
    /// What one instance takes from the host's instance pool.
    pub needs: InstanceNeeds,
    /// Pre-instantiated handler: imports resolved, exports looked up.
    pub pre: ProxyPre<RequestState>,
    /// Instances kept for its next requests (none unless its
    /// `requests_per_instance` allows more than one).
    pub warm: crate::runtime::warm::Warm,
}

/// Why a component file was refused. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a WebAssembly file")]
    NotWasm { file: String },
    #[error(
        "{file}: a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)"
    )]
    CoreModule { file: String },
    #[error("{file}: invalid component: {reason}")]
    Invalid { file: String, reason: String },
    #[error("{file}: {reason}")]
    WrongWorld { file: String, reason: String },
    #[error("{file}: traps while starting: {reason}")]
    Instantiate { file: String, reason: String },
    #[error("{file}: bad manifest: {reason}")]
    Manifest { file: String, reason: String },
    #[error(
        "{file}: its linear memory starts at {needed} bytes ({} MiB), over the memory limit of {} MiB{}; raise --memory-limit-mb, or memory_mb in its [services.NAME] section, to at least {} MiB",
        mib_up(*needed), limit >> 20, service.as_deref().map(|s| format!(" for {s}")).unwrap_or_default(), mib_up(*needed)
    )]
    MemoryTooSmall {
        file: String,
        service: Option<String>,
        needed: u64,
        limit: u64,
    },
    #[error(
        "{file}: one instance of it takes {} core instances, {} memories and {} tables; the host's instance pool has {} core instances, {} memories and {} tables in all: raise --max-instances",
        needs.core_instances, needs.memories, needs.tables, pool.core_instances, pool.memories, pool.tables
    )]
    PoolTooSmall {
        file: String,
        needs: InstanceNeeds,
        pool: crate::runtime::engine::PoolSize,
    },
}

/// Whole MiB, rounded up.
fn mib_up(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// What a component file says about itself, read without compiling it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// It exports `hms:core/manifest`: a service component (else plain).
    pub has_manifest: bool,
    /// Core module instances one instance of it creates.
    pub core_instances: u32,
    /// The largest initial size of a linear memory it defines, in bytes:
    /// what an instance needs before it runs a single instruction.
    pub min_memory: u64,
}

/// Interface packages a component may import: Core, and the WASI 0.2
/// packages the host implements (the linker checks each function later).
const IMPORTABLE: &[&str] = &[
    "hms:core/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:http/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// Reads `bytes` as a component without compiling it: a WebAssembly
/// component (not a core module), importing only interfaces of packages the
/// host provides, exporting `wasi:http/incoming-handler`. Every message
/// names `file`.
pub fn inspect(bytes: &[u8], file: &str) -> Result<Shape, LoadError> {
    check_header(bytes, file)?;
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid {
        file: file.into(),
        reason: e.to_string(),
    };
    let wrong_world = |reason: String| LoadError::WrongWorld {
        file: file.into(),
        reason,
    };
    let mut shape = Shape::default();
    let mut handler = false;
    // 1 inside the component itself, more inside nested components and
    // modules (each starts with a version header and ends with an end).
    let mut depth = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports {
                    let name = import.map_err(invalid)?.name.name;
                    let known = IMPORTABLE.iter().any(|p| name.starts_with(p))
                        && (name.starts_with("hms:") || name.contains("@0.2."));
                    if !known {
                        return Err(wrong_world(format!(
                            "imports {name}, which hms-host does not provide (services may import hms:core and WASI 0.2 interfaces)"
                        )));
                    }
                }
            }
            wasmparser::Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports {
                    let name = export.map_err(invalid)?.name.name;
                    handler |= name.starts_with("wasi:http/incoming-handler@0.2.");
                    shape.has_manifest |= name == MANIFEST_EXPORT;
                }
            }
            wasmparser::Payload::InstanceSection(instances) => {
                for instance in instances {
                    if let wasmparser::Instance::Instantiate { .. } = instance.map_err(invalid)? {
                        shape.core_instances += 1;
                    }
                }
            }
            wasmparser::Payload::MemorySection(memories) => {
                for memory in memories {
                    let memory = memory.map_err(invalid)?;
                    let bytes = memory
                        .initial
                        .saturating_mul(1u64 << memory.page_size_log2());
                    shape.min_memory = shape.min_memory.max(bytes);
                }
            }
            _ => {}
        }
    }
    if !handler {
        return Err(wrong_world(
            "does not export wasi:http/incoming-handler@0.2 (build it for the hms:core/service or wasi:http/proxy world)".into(),
        ));
    }
    Ok(shape)
}

/// Refuses a component whose memory starts above `limit` bytes, before
/// anything is compiled or instantiated.
pub fn check_memory(
    shape: &Shape,
    file: &str,
    service: Option<&str>,
    limit: u64,
) -> Result<(), LoadError> {
    if shape.min_memory > limit {
        return Err(LoadError::MemoryTooSmall {
            file: file.into(),
            service: service.map(str::to_string),
            needed: shape.min_memory,
            limit,
        });
    }
    Ok(())
}

#[derive(ComponentType, Lift)]
#[component(record)]
struct ServiceInfo {
    name: String,
    routes: Vec<String>,
}

/// Validates and loads a component: it must be a component, import nothing
/// the host lacks, export the HTTP handler, and instantiate without trapping.
/// `label` names it in messages; `stem` is the service name of a plain
/// component. `new_store` makes the sandboxed store it is tried in, and
/// `guard_for` the sandbox of the service it turns out to be.
pub async fn load_bytes(
    engine: &WasmEngine,
    linker: &Linker<RequestState>,
    bytes: &[u8],
    label: &str,
    stem: &str,
    new_store: impl FnOnce(&str) -> Store<RequestState>,
    guard_for: impl Fn(&str) -> Arc<ServiceGuard>,
) -> Result<Arc<Service>, LoadError> {
    let file = label.to_string();
    let shape = inspect(bytes, &file)?;
    // The pool's slots are as large as the largest limit: a memory larger
    // than that cannot run under any name, so nothing is compiled for it.
    check_memory(&shape, &file, None, engine.pool().max_memory)?;
    if !shape.has_manifest {
        let limit = guard_for(stem).grants.limits.memory;
        check_memory(&shape, &file, Some(stem), limit)?;
    }
    let version = digest(bytes);
    // Compiling takes up to hundreds of milliseconds of CPU: move it off the
    // async worker so the requests queued there keep being served.
    let compile = || engine.compile(bytes, &version);
    let compiled = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(compile),
        _ => compile(),
    };
    let component = compiled.map_err(|e| LoadError::Invalid {
        file: file.clone(),
        reason: format!("{e:#}"),
    })?;
    let needs = InstanceNeeds {
        core_instances: shape.core_instances,
        ..component
            .resources_required()
            .map(|r| InstanceNeeds {
                core_instances: 0,
                memories: r.num_memories,
                tables: r.num_tables,
            })
            .unwrap_or_default()
    };
    if engine.pool().fits(&needs) == 0 {
        return Err(LoadError::PoolTooSmall {
            file,
            needs,
            pool: engine.pool(),
        });
    }
    let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
        file: file.clone(),
        reason: format!("{e:#}"),
    };
    let instance_pre: InstancePre<RequestState> = linker.instantiate_pre(&component).map_err(|e| {
        wrong_world(e.context("imports something hms-host does not provide (services may import hms:core and wasi:http/proxy interfaces)"))
    })?;
    let pre = ProxyPre::new(instance_pre.clone())
        .map_err(|e| wrong_world(e.context("does not export wasi:http/incoming-handler@0.2")))?;

    // Instantiate once now, so a component that traps while starting is
    // refused at deploy time rather than failing every request.
    let manifest = component.get_export_index(None, MANIFEST_EXPORT);
    let describe = match &manifest {
        Some(iface) => Some(
            component
                .get_export_index(Some(iface), "describe")
                .ok_or_else(|| LoadError::Manifest {
                    file: file.clone(),
                    reason: "no describe function".into(),
                })?,
        ),
        None => None,
    };
    // Optional: components built before `callers` existed allow any caller.
    let callers_fn = manifest
        .as_ref()
        .and_then(|iface| component.get_export_index(Some(iface), "callers"));
    let mut store = new_store(stem);
    let instance = instance_pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| LoadError::Instantiate {
            file: file.clone(),
            reason: e.root_cause().to_string(),
        })?;
    let (name, routes) = match describe {
        Some(describe) => {
            let manifest: wasmtime::Result<ServiceInfo> = async {
                let f = instance.get_typed_func::<(), (ServiceInfo,)>(&mut store, &describe)?;
                let (info,) = f.call_async(&mut store, ()).await?;
                Ok(info)
            }
            .await;
            // Rust guests run their constructors on the first call into
            // them, so a start-up trap surfaces here.
            let info = manifest.map_err(|e| LoadError::Instantiate {
                file: file.clone(),
                reason: format!("describe() failed: {}", e.root_cause()),
            })?;
            (info.name, info.routes)
        }
        None => {
            let routes = guard_for(stem).grants.mount.routes.clone();
            let routes = routes.unwrap_or_else(|| vec![format!("/{stem}/...")]);
            (stem.to_string(), routes)
        }
    };
    let callers = match callers_fn {
        Some(index) => {
            let callers: wasmtime::Result<Option<Vec<String>>> = async {
                let f =
                    instance.get_typed_func::<(), (Option<Vec<String>>,)>(&mut store, &index)?;
                let (callers,) = f.call_async(&mut store, ()).await?;
                Ok(callers)
            }
            .await;
            let callers = callers.map_err(|e| LoadError::Manifest {
                file: file.clone(),
                reason: format!("callers() failed: {}", e.root_cause()),
            })?;
            for name in callers.iter().flatten() {
                validate_service_name(name).map_err(|e| LoadError::Manifest {
                    file: file.clone(),
                    reason: format!("callers(): {e}"),
                })?;
            }
            callers
        }
        None => None,
    };
    validate_service_name(&name).map_err(|e| LoadError::Manifest {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    if routes.is_empty() {
        return Err(LoadError::Manifest {
            file,
            reason: "no routes".into(),
        });
    }
    let routes = routes
        .iter()
        .map(|r| Pattern::parse(r))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Manifest {
            file: file.clone(),
            reason: e.to_string(),
        })?;
    let guard = guard_for(&name);
    if shape.has_manifest && guard.grants.mount.routes.is_some() {
        return Err(LoadError::Manifest {
            file,
            reason: format!(
                "{name} declares its routes; `routes` in its [services.{name}] section is for plain wasi:http components"
            ),
        });
    }
    check_memory(&shape, &file, Some(&name), guard.grants.limits.memory)?;
    Ok(Arc::new(Service {
        name,
        version,
        routes,
        source: file,
        callers,
        strip_prefix: guard.grants.mount.strip_prefix,
        needs,
        warm: crate::runtime::warm::Warm::new(guard.grants.limits.max_concurrency),
        guard,
        pre,
    }))
}

/// Tells a core module or a non-wasm file from a component by the preamble,
/// so the message says what is wrong instead of a parser error.
fn check_header(bytes: &[u8], file: &str) -> Result<(), LoadError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(LoadError::CoreModule { file: file.into() }),
        Some([0, b'a', b's', b'm', ..]) => Ok(()),
        _ => Err(LoadError::NotWasm { file: file.into() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tells_modules_components_and_garbage_apart() {
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0rest", "f"),
            Err(LoadError::CoreModule { .. })
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0rest", "f").is_ok());
        assert!(matches!(
            check_header(b"{\"id\":1}", "f"),
            Err(LoadError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(b"", "f"),
            Err(LoadError::NotWasm { .. })
        ));
        let msg = check_header(b"\0asm\x01\0\0\0", "x.wasm")
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("x.wasm: a core WebAssembly module"),
            "{msg}"
        );
    }
}
