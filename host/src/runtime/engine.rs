//! The one wasmtime `Engine`: pooling allocator, epoch interruption driven by
//! a ticker thread, and compiled components cached on disk so a restart does
//! not recompile.

use crate::config::MemoryReset;
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
    pool: PoolSize,
    _ticker: EpochTicker,
}

/// Core instances, memories and tables the pool reserves per component
/// instance of `--max-instances`. A Rust service takes 1-3 core instances,
/// a JavaScript one (StarlingMonkey) a few more, a Python one
/// (componentize-py) 14: with these, `max_instances` instances of any of
/// them fit at once. Core instance slots are only counted; memory and table
/// slots reserve address space (not memory) each.
const CORE_INSTANCES_PER_INSTANCE: u32 = 16;
const MEMORIES_PER_INSTANCE: u32 = 2;
const TABLES_PER_INSTANCE: u32 = 4;

/// What the instance pool holds at once, host-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSize {
    pub instances: u32,
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
    /// Bytes of the largest linear memory a slot holds.
    pub max_memory: u64,
}

impl PoolSize {
    fn for_instances(instances: u32, max_memory: u64) -> PoolSize {
        PoolSize {
            instances,
            core_instances: instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE),
            memories: instances.saturating_mul(MEMORIES_PER_INSTANCE),
            tables: instances.saturating_mul(TABLES_PER_INSTANCE),
            max_memory,
        }
    }

    /// How many instances of a component needing `need` fit in the pool at
    /// once (with nothing else running).
    pub fn fits(&self, need: &InstanceNeeds) -> u32 {
        let share = |total: u32, per: u32| total.checked_div(per).unwrap_or(u32::MAX);
        self.instances
            .min(share(self.core_instances, need.core_instances))
            .min(share(self.memories, need.memories))
            .min(share(self.tables, need.tables))
    }
}

/// What one instance of a component takes from the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstanceNeeds {
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

impl WasmEngine {
    /// Builds the engine for up to `max_instances` instances alive at once,
    /// none with more than `max_memory` bytes of linear memory, keeping
    /// each freed memory slot made fresh as `reset` says;
    /// compiled artifacts are cached under `cache_dir`.
    pub fn new(
        max_instances: u32,
        max_memory: u64,
        reset: MemoryReset,
        cache_dir: &Path,
    ) -> anyhow::Result<WasmEngine> {
        let size = PoolSize::for_instances(max_instances, max_memory);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(size.instances)
            .total_core_instances(size.core_instances)
            .total_memories(size.memories)
            .total_tables(size.tables)
            .total_stacks(size.instances)
            .max_memory_size(max_memory as usize);
        // Freed slots are reset in place (see config::DEFAULT_KEEP_RESIDENT);
        // PAGEMAP_SCAN, where the kernel has it, finds the pages to rewrite,
        // unless the components dirty too many (config::BULK_RESET_FROM).
        pool.linear_memory_keep_resident(reset.keep_resident)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(if reset.scan {
                Enabled::Auto
            } else {
                Enabled::No
            });
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
            pool: size,
        })
    }

    /// What the instance pool holds at once.
    pub fn pool(&self) -> PoolSize {
        self.pool
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
        let artifact = self.engine.precompile_component(bytes);
        // Compiling a large component (a Python one: 18 MB) grows the
        // allocator's arenas by hundreds of MB that stay resident after the
        // compiler frees them; hand them back to the OS.
        release_free_memory();
        let artifact = artifact?;
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

/// Returns memory the allocator holds free to the OS (glibc keeps freed
/// arena memory resident otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
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
    fn the_pool_fits_max_instances_of_a_python_sized_component() {
        let pool = PoolSize::for_instances(1000, 64 << 20);
        let python = InstanceNeeds {
            core_instances: 14,
            memories: 1,
            tables: 2,
        };
        assert_eq!(pool.fits(&python), 1000);
        let huge = InstanceNeeds {
            core_instances: 40,
            ..python
        };
        assert_eq!(pool.fits(&huge), 400);
        assert_eq!(pool.fits(&InstanceNeeds::default()), 1000);
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
