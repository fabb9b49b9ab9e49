//! The one wasmtime `Engine`: pooling allocator, epoch interruption driven by
//! a ticker thread, and compiled components cached on disk so a restart does
//! not recompile.

use sha2::{Digest, Sha256};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Epoch tick: guest code running this long yields its thread, and the
/// request deadline is checked at this granularity; 10 ms keeps the ticker's
/// cost negligible.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each table (function references) kept resident when its slot
/// is freed, as [`crate::config::DEFAULT_KEEP_RESIDENT`] for memories.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// The shared engine and its compile cache.
pub struct WasmEngine {
    engine: Engine,
    cache_dir: PathBuf,
    _ticker: EpochTicker,
}

impl WasmEngine {
    /// Builds the engine for up to `max_instances` instances alive at once,
    /// none with more than `max_memory` bytes of linear memory, keeping
    /// `keep_resident` bytes of each freed memory slot to reset in place;
    /// compiled artifacts are cached under `cache_dir`.
    pub fn new(
        max_instances: u32,
        max_memory: u64,
        keep_resident: usize,
        cache_dir: &Path,
    ) -> anyhow::Result<WasmEngine> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(max_instances)
            .total_core_instances(max_instances * 4)
            .total_memories(max_instances * 2)
            .total_tables(max_instances * 4)
            .total_stacks(max_instances)
            .max_memory_size(max_memory as usize);
        // Freed slots are reset in place (see config::DEFAULT_KEEP_RESIDENT);
        // PAGEMAP_SCAN, where the kernel has it, finds the pages to rewrite.
        pool.linear_memory_keep_resident(keep_resident)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        std::fs::create_dir_all(cache_dir)?;
        Ok(WasmEngine {
            _ticker: EpochTicker::start(engine.clone()),
            engine,
            cache_dir: cache_dir.to_path_buf(),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `bytes` (a component whose digest is `digest`), or loads the
    /// artifact an earlier run cached for this exact engine configuration.
    pub fn compile(&self, bytes: &[u8], digest: &str) -> anyhow::Result<Component> {
        let path = self.cache_path(digest);
        if path.exists() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (part of its name), in
            // our own data directory; wasmtime still checks its header.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    "ignoring unusable cached artifact {}: {e:#}",
                    path.display()
                ),
            }
        }
        let artifact = self.engine.precompile_component(bytes)?;
        // Atomically, under a temporary name of its own: a crash, or an
        // upload and a file event compiling the same digest at once, never
        // leaves a torn artifact that a later start would map as code.
        if let Err(e) = crate::base::files::write_atomically(&path, &artifact) {
            tracing::warn!(
                "could not cache compiled component at {}: {e}",
                path.display()
            );
        }
        // SAFETY: `artifact` was produced just now by this engine.
        Ok(unsafe { Component::deserialize(&self.engine, &artifact)? })
    }

    fn cache_path(&self, digest: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let name = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.cache_dir
            .join(format!("{name}-{:016x}.cwasm", h.finish()))
    }
}

/// `sha256:<hex>` of a component's bytes: its version.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Advances the engine's epoch every [`EPOCH_TICK`]; stopped and joined on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("hms-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch ticker");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
