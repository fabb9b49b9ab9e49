//! Configuration of a host run: one struct, every field documented, defaults
//! in one place. Built from CLI flags and `HMS_*` environment variables by the
//! CLI; after start-up nothing reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default address to serve on: loopback, so a demo is never exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory (keys, audit log, compile cache), relative to the
/// working directory.
pub const DEFAULT_DATA_DIR: &str = "hms-data";

/// Memory one component instance may use. Generous for JSON services (the
/// example services use ~1-2 MiB) while bounding an allocation bomb.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 << 20;
/// Wall-clock budget of one request inside components, nested calls included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of issued tokens: short, so a leaked token is soon useless.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Component instances alive at once across all services; sizes the pooling
/// allocator's slots (virtual memory is reserved up front, physical is not).
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// Everything `hms-host run` needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to serve HTTP on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where keys, the audit log and compiled components are kept.
    pub data_dir: PathBuf,
    /// Component files to deploy at start.
    pub components: Vec<PathBuf>,
    /// Directories whose `*.wasm` files are deployed at start (and, with
    /// `watch`, whenever one appears).
    pub components_dirs: Vec<PathBuf>,
    /// Redeploy a component file when it changes; undeploy it when removed.
    pub watch: bool,
    /// Sandbox limits for every component instance.
    pub limits: Limits,
    /// Lifetime of tokens issued by Core auth.
    pub token_ttl: Duration,
    /// What an audit event survives once its request has been answered.
    pub audit_durability: crate::audit::Durability,
}

/// Per-instance sandbox limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of linear memory an instance may grow to.
    pub memory: u64,
    /// Wall-clock budget of a request; enforced on guest code by epoch
    /// interruption and on the response by a timer.
    pub request_timeout: Duration,
    /// Instances alive at once, host-wide.
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_instances: DEFAULT_MAX_INSTANCES,
        }
    }
}

impl Config {
    /// A configuration with every default and the given components.
    pub fn new(components: Vec<PathBuf>) -> Config {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            components,
            components_dirs: Vec::new(),
            watch: true,
            limits: Limits::default(),
            token_ttl: DEFAULT_TOKEN_TTL,
            audit_durability: crate::audit::Durability::Full,
        }
    }
}
