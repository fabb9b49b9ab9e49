//! Configuration of a host run: one struct, every field documented, defaults
//! in one place. Built from CLI flags, `HMS_*` environment variables and an
//! optional TOML file (`--config`) by the CLI; after start-up nothing reads
//! the environment.
//!
//! The file sets sandbox limits and outgoing-HTTP grants: `[defaults]` for
//! every service, `[services.NAME]` for one service. A service gets the
//! defaults with its own section's keys laid over them:
//!
//! ```toml
//! [defaults]
//! request_timeout_ms = 5000
//!
//! [services.report-service]
//! max_concurrency = 16
//! allow_outbound = ["statistics.example.gov:80"]
//! requests_per_instance = 1000
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default address to serve on: loopback, so a demo is never exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory (keys, audit log, compile cache), relative to the
/// working directory.
pub const DEFAULT_DATA_DIR: &str = "hms-data";

/// Memory one component instance may use. Generous for JSON services (the
/// example services use ~1-2 MiB) while bounding an allocation bomb.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 << 20;
/// Wall-clock budget of one request inside a component (its own CPU time is
/// cut by epoch interruption, its waiting by a timer).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body a component is handed.
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 1 << 20;
/// Largest response body a component may send.
pub const DEFAULT_MAX_RESPONSE_BODY: u64 = 16 << 20;
/// Instances of one service running at once; more requests get 503 at once
/// rather than waiting in an unbounded queue.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 128;
/// Request headers a component is handed, by count and total bytes.
pub const DEFAULT_MAX_HEADER_COUNT: usize = 64;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 << 10;
/// Bytes (keys plus values) a service may keep in its private store.
pub const DEFAULT_STORE_QUOTA: u64 = 64 << 20;
/// Longest store key, and largest store value, in bytes.
pub const DEFAULT_MAX_KEY_BYTES: usize = 1024;
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 1 << 20;
/// Requests one instance serves: 1, a fresh instance for every request.
/// More trades isolation between a service's own requests for the cost of
/// instantiating (see [`Limits::requests_per_instance`]).
pub const DEFAULT_REQUESTS_PER_INSTANCE: u32 = 1;
/// Lifetime of issued tokens: short, so a leaked token is soon useless.
/// Default interval between signed audit checkpoints.
pub const DEFAULT_CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Time a client has to send each request head, idle keep-alive time
/// included: a connection that trickles its headers or sits silent longer is
/// closed, so slow clients cannot hold connections open forever.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of each linear memory kept resident when its pooled slot is freed,
/// reset in place for the next instance instead of `madvise`d, whose TLB
/// shootdowns across every core cost more than the reset (figures:
/// `bench/results/2026-11-28T08-20-33Z.json`, the README's "What changed").
/// The cost is resident memory: at most this much per warm slot, and only
/// the pages a guest really touched. The reset restores the initial contents
/// exactly as `madvise` would, so nothing of one request is visible to the
/// next (the `isolation` test guest checks both ways).
pub const DEFAULT_KEEP_RESIDENT: usize = 2 << 20;
/// A component whose linear memory starts at least this large (CPython's
/// heap: a componentize-py service starts at 12.4-14 MiB; StarlingMonkey at
/// 9 MiB, Rust at about 1 MiB) dirties pages all over it on every request.
/// Finding them with `PAGEMAP_SCAN` write-protects each again, so every
/// request pays a fault and a TLB shootdown per page, and throughput falls
/// as connections are added. A host serving such a component resets the
/// whole of each freed memory in place instead (figures: the README's
/// "Services in Python and JavaScript").
pub const BULK_RESET_FROM: u64 = 12 << 20;
/// The most a bulk reset keeps resident per slot.
pub const MAX_BULK_KEEP_RESIDENT: u64 = 64 << 20;

/// How freed instance memory is made fresh for the next instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReset {
    /// Bytes of each freed memory reset in place rather than returned to
    /// the kernel (0: `madvise` everything).
    pub keep_resident: usize,
    /// Reset only the pages written since (found with `PAGEMAP_SCAN`,
    /// where the kernel has it), rather than all `keep_resident` bytes.
    pub scan: bool,
}

impl MemoryReset {
    /// For a host whose start-up components' memories start at most at
    /// `largest_initial` bytes: pages found by scan within 2 MiB, or, from
    /// [`BULK_RESET_FROM`], every byte up to that size rounded up to MiB.
    pub fn for_components(largest_initial: u64) -> MemoryReset {
        if largest_initial >= BULK_RESET_FROM {
            let keep = largest_initial.div_ceil(1 << 20) << 20;
            MemoryReset {
                keep_resident: keep.min(MAX_BULK_KEEP_RESIDENT) as usize,
                scan: false,
            }
        } else {
            MemoryReset {
                keep_resident: DEFAULT_KEEP_RESIDENT,
                scan: true,
            }
        }
    }
}
/// How often a cluster host renews its lease.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(2000);
/// How long a cluster host's lease lasts without renewal: a host that
/// stops heartbeating leaves discovery within this plus one heartbeat.
pub const DEFAULT_LEASE: Duration = Duration::from_millis(10_000);
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
    /// Where compiled components are cached (`None`: `DATA_DIR/cache`).
    /// Artifacts are named by component digest and engine configuration, so
    /// hosts and data directories may share one.
    pub cache_dir: Option<PathBuf>,
    /// Component files to deploy at start.
    pub components: Vec<PathBuf>,
    /// Directories whose `*.wasm` files are deployed at start (and, with
    /// `watch`, whenever one appears).
    pub components_dirs: Vec<PathBuf>,
    /// Redeploy a component file when it changes; undeploy it when removed.
    pub watch: bool,
    /// JSON-lines files loaded into services' stores at start, before the
    /// host reports ready: `(service, file)`.
    pub imports: Vec<(String, PathBuf)>,
    /// Per-service sandbox limits and grants.
    pub sandbox: Sandbox,
    /// Instances alive at once, host-wide (sizes the pooling allocator).
    pub max_instances: u32,
    /// Bytes of each freed linear-memory slot reset in place rather than
    /// returned to the kernel (0: always `madvise`), with pages found by
    /// scan. `None`: chosen from the start-up components
    /// ([`MemoryReset::for_components`]).
    pub keep_resident: Option<usize>,
    /// Lifetime of tokens issued by Core auth.
    pub token_ttl: Duration,
    /// What an audit event survives once its request has been answered.
    pub audit_durability: crate::core::audit::Durability,
    /// OTLP/HTTP traces endpoint (`http://HOST:4318/v1/traces`) that every
    /// service hop's span is sent to; `None`: no traces.
    pub otlp_endpoint: Option<String>,
    /// Where to serve `/metrics` without a credential, for scrapers
    /// (`None`: only `/_hms/metrics`, with the admin credential).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How often the audit log signs a checkpoint of what it committed
    /// since the last one (one more is signed at shutdown).
    pub checkpoint_every: Duration,
    /// Time a client has to send each request head.
    pub header_timeout: Duration,
    /// Cluster mode: shared state in PostgreSQL. `None`: standalone.
    pub cluster: Option<crate::core::cluster::ClusterConfig>,
}

/// The sandbox limits of one service's instances.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Bytes of linear memory an instance may grow to.
    pub memory: u64,
    /// Wall-clock budget of a request; enforced on guest code by epoch
    /// interruption and on waiting and streaming by a timer.
    #[serde(serialize_with = "millis", deserialize_with = "from_millis")]
    #[schema(value_type = u64)]
    pub request_timeout: Duration,
    /// Bytes of request body handed to the component (more: 413).
    pub max_request_body: u64,
    /// Bytes of response body the component may send (more: cut off).
    pub max_response_body: u64,
    /// Instances of the service running at once (more: 503).
    pub max_concurrency: u32,
    /// Request headers, by count and by total bytes (more: 431).
    pub max_header_count: usize,
    pub max_header_bytes: usize,
    /// Bytes of keys and values the service may keep in its store.
    pub store_quota: u64,
    /// Longest key, and largest value, in its store.
    pub max_key_bytes: usize,
    pub max_value_bytes: u64,
    /// Requests one instance may serve, one after another. 1 (the default):
    /// every request gets a fresh instance, so nothing one request leaves in
    /// memory is seen by the next. More: an instance whose request ended
    /// cleanly (no trap, no limit hit, no HTTP resource left behind) is kept
    /// for the next request of the same version, up to this many requests,
    /// so the service's module state (and whatever its earlier requests
    /// left in memory) carries over, as in a long-running process.
    #[serde(default = "default_requests_per_instance")]
    pub requests_per_instance: u32,
}

fn default_requests_per_instance() -> u32 {
    DEFAULT_REQUESTS_PER_INSTANCE
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn from_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_millis)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_header_count: DEFAULT_MAX_HEADER_COUNT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            store_quota: DEFAULT_STORE_QUOTA,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            requests_per_instance: DEFAULT_REQUESTS_PER_INSTANCE,
        }
    }
}

/// A `host:port` a service may send HTTP requests to, granted by the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for Destination {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
        if !host_ok || port == 0 {
            return Err(format!("{s:?}: expected host:port"));
        }
        Ok(Destination {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// What one service may do: its limits and the destinations it may call
/// beyond the services of this host and registered external services.
#[derive(Clone, Debug, PartialEq)]
pub struct Grants {
    pub limits: Limits,
    pub allow_outbound: Vec<Destination>,
    /// Where a plain component is served, from its section.
    pub mount: Mount,
}

/// How a service's requests reach it, from its `[services.NAME]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mount {
    /// A plain component's routes (`None`: `/NAME/...`). A service component
    /// declares its own in its manifest.
    pub routes: Option<Vec<String>>,
    /// Hand the component the path below the prefix route it matched:
    /// `/NAME/echo` reaches it as `/echo`, `/NAME` as `/`.
    pub strip_prefix: bool,
}

/// Limits and grants for every service: defaults, and sections by name.
#[derive(Clone, Debug, Default)]
pub struct Sandbox {
    /// Limits of a service without a section of its own (CLI flags set these).
    pub defaults: Limits,
    /// `[defaults]` of the config file; laid over `defaults`.
    pub default_section: Section,
    /// `[services.NAME]` of the config file.
    pub services: BTreeMap<String, Section>,
}

/// One section of the config file: every key optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub memory_mb: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_request_body_kb: Option<u64>,
    pub max_response_body_kb: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub max_header_count: Option<usize>,
    pub max_header_kb: Option<usize>,
    pub store_quota_mb: Option<u64>,
    pub max_key_bytes: Option<usize>,
    pub max_value_kb: Option<u64>,
    pub requests_per_instance: Option<u32>,
    /// `host:port` destinations the service may call over plain HTTP.
    #[serde(default)]
    pub allow_outbound: Vec<String>,
    /// Routes of a plain `wasi:http` component (only in `[services.NAME]`).
    pub routes: Option<Vec<String>>,
    /// Strip the matched prefix route from the path (only in `[services.NAME]`).
    pub strip_prefix: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Section,
    #[serde(default)]
    services: BTreeMap<String, Section>,
}

impl Section {
    fn apply(&self, limits: &mut Limits) {
        if let Some(v) = self.memory_mb {
            limits.memory = v << 20;
        }
        if let Some(v) = self.request_timeout_ms {
            limits.request_timeout = Duration::from_millis(v);
        }
        if let Some(v) = self.max_request_body_kb {
            limits.max_request_body = v << 10;
        }
        if let Some(v) = self.max_response_body_kb {
            limits.max_response_body = v << 10;
        }
        if let Some(v) = self.max_concurrency {
            limits.max_concurrency = v;
        }
        if let Some(v) = self.max_header_count {
            limits.max_header_count = v;
        }
        if let Some(v) = self.max_header_kb {
            limits.max_header_bytes = v << 10;
        }
        if let Some(v) = self.store_quota_mb {
            limits.store_quota = v << 20;
        }
        if let Some(v) = self.max_key_bytes {
            limits.max_key_bytes = v;
        }
        if let Some(v) = self.max_value_kb {
            limits.max_value_bytes = v << 10;
        }
        if let Some(v) = self.requests_per_instance {
            limits.requests_per_instance = v;
        }
    }

    fn check(&self, name: &str) -> Result<(), String> {
        let positive = [
            ("memory_mb", self.memory_mb),
            ("request_timeout_ms", self.request_timeout_ms),
            ("max_request_body_kb", self.max_request_body_kb),
            ("max_response_body_kb", self.max_response_body_kb),
            ("max_concurrency", self.max_concurrency.map(u64::from)),
            ("max_header_count", self.max_header_count.map(|v| v as u64)),
            ("max_header_kb", self.max_header_kb.map(|v| v as u64)),
            ("store_quota_mb", self.store_quota_mb),
            ("max_key_bytes", self.max_key_bytes.map(|v| v as u64)),
            ("max_value_kb", self.max_value_kb),
            (
                "requests_per_instance",
                self.requests_per_instance.map(u64::from),
            ),
        ];
        for (key, value) in positive {
            if value == Some(0) {
                return Err(format!("[{name}] {key} must be at least 1"));
            }
        }
        if self.memory_mb.is_some_and(|m| m > 4096) {
            return Err(format!("[{name}] memory_mb is at most 4096"));
        }
        for d in &self.allow_outbound {
            d.parse::<Destination>()
                .map_err(|e| format!("[{name}] allow_outbound: {e}"))?;
        }
        // Each route's syntax is the router's to check (cli::run does).
        if self.routes.as_ref().is_some_and(|r| r.is_empty()) {
            return Err(format!("[{name}] routes: give at least one route"));
        }
        Ok(())
    }

    fn destinations(&self) -> impl Iterator<Item = Destination> + '_ {
        self.allow_outbound.iter().filter_map(|d| d.parse().ok())
    }
}

impl Sandbox {
    /// The store limits of `service`.
    pub fn store_quota(&self, service: &str) -> crate::core::store::Quota {
        let limits = self.grants(service).limits;
        crate::core::store::Quota {
            total: limits.store_quota,
            key: limits.max_key_bytes,
            value: limits.max_value_bytes,
        }
    }

    /// Reads `[defaults]` and `[services.NAME]` sections from a TOML file.
    pub fn load_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        self.parse(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse(&mut self, text: &str) -> Result<(), String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        file.defaults.check("defaults")?;
        if file.defaults.routes.is_some() || file.defaults.strip_prefix.is_some() {
            return Err(
                "[defaults]: routes and strip_prefix belong in a [services.NAME] section".into(),
            );
        }
        for (name, section) in &file.services {
            crate::core::names::validate_service_name(name)
                .map_err(|e| format!("[services.{name}]: {e}"))?;
            section.check(&format!("services.{name}"))?;
        }
        self.default_section = file.defaults;
        self.services = file.services;
        Ok(())
    }

    /// The limits and grants of service `name`.
    pub fn grants(&self, name: &str) -> Grants {
        let mut limits = self.defaults.clone();
        self.default_section.apply(&mut limits);
        let mut allow_outbound: Vec<Destination> = self.default_section.destinations().collect();
        let mut mount = Mount::default();
        if let Some(section) = self.services.get(name) {
            section.apply(&mut limits);
            allow_outbound.extend(section.destinations());
            mount = Mount {
                routes: section.routes.clone(),
                strip_prefix: section.strip_prefix.unwrap_or(false),
            };
        }
        Grants {
            limits,
            allow_outbound,
            mount,
        }
    }

    /// The `routes` of every `[services.NAME]` section that has them.
    pub fn configured_routes(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.services
            .iter()
            .filter_map(|(name, s)| Some((name.as_str(), s.routes.as_deref()?)))
    }

    /// The most memory any service may have: the size of a pooling slot.
    pub fn max_memory(&self) -> u64 {
        let mut most = self.grants("").limits.memory;
        for name in self.services.keys() {
            most = most.max(self.grants(name).limits.memory);
        }
        most
    }
}

impl Config {
    /// A configuration with every default and the given components.
    pub fn new(components: Vec<PathBuf>) -> Config {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            cache_dir: None,
            components,
            components_dirs: Vec::new(),
            watch: true,
            imports: Vec::new(),
            sandbox: Sandbox::default(),
            max_instances: DEFAULT_MAX_INSTANCES,
            keep_resident: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            audit_durability: crate::core::audit::Durability::Full,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            metrics_listen: None,
            otlp_endpoint: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            cluster: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_section_overrides_the_defaults_it_names() {
        let mut sandbox = Sandbox::default();
        sandbox
            .parse(
                r#"
                [defaults]
                request_timeout_ms = 5000
                allow_outbound = ["stats.example.gov:80"]

                [services.report-service]
                max_concurrency = 4
                memory_mb = 128
                allow_outbound = ["[::1]:9000"]
                "#,
            )
            .unwrap();
        let other = sandbox.grants("identity-service");
        assert_eq!(other.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(other.limits.max_concurrency, DEFAULT_MAX_CONCURRENCY);
        assert_eq!(other.allow_outbound.len(), 1);
        let report = sandbox.grants("report-service");
        assert_eq!(report.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(report.limits.max_concurrency, 4);
        assert_eq!(report.limits.memory, 128 << 20);
        assert_eq!(
            report.allow_outbound[1],
            Destination {
                host: "::1".into(),
                port: 9000
            }
        );
        assert_eq!(sandbox.max_memory(), 128 << 20);
    }

    #[test]
    fn memories_like_cpythons_are_reset_whole_and_others_by_scan() {
        let rust = MemoryReset::for_components(1_114_112);
        assert_eq!(
            (rust.keep_resident, rust.scan),
            (DEFAULT_KEEP_RESIDENT, true)
        );
        let js = MemoryReset::for_components(9_502_720);
        assert!(js.scan);
        let python = MemoryReset::for_components(14_548_992);
        assert_eq!((python.keep_resident, python.scan), (14 << 20, false));
        let huge = MemoryReset::for_components(1 << 30);
        assert_eq!(huge.keep_resident as u64, MAX_BULK_KEEP_RESIDENT);
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let err = |text: &str| Sandbox::default().parse(text).unwrap_err();
        assert!(err("[defaults]\nmemory_mib = 3").contains("memory_mib"));
        assert!(err("[services.Bad_Name]\nmax_concurrency = 1").contains("Bad_Name"));
        assert!(err("[services.x]\nmax_concurrency = 0").contains("max_concurrency"));
        assert!(err("[defaults]\nallow_outbound = [\"nohost\"]").contains("host:port"));
        assert!(err("[defaults]\nallow_outbound = [\"h:99999\"]").contains("port"));
        assert!(err("[defaults]\nroutes = [\"/...\"]").contains("[services.NAME]"));
        assert!(err("[services.x]\nroutes = []").contains("at least one"));
    }

    #[test]
    fn instances_are_fresh_per_request_unless_a_section_says_otherwise() {
        let mut sandbox = Sandbox::default();
        sandbox
            .parse("[services.report-py]\nrequests_per_instance = 500\n")
            .unwrap();
        assert_eq!(
            sandbox.grants("report-py").limits.requests_per_instance,
            500
        );
        assert_eq!(
            sandbox.grants("identity-py").limits.requests_per_instance,
            1
        );
        let err = Sandbox::default()
            .parse("[defaults]\nrequests_per_instance = 0")
            .unwrap_err();
        assert!(
            err.contains("requests_per_instance must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn a_plain_components_mount_comes_from_its_own_section() {
        let mut sandbox = Sandbox::default();
        sandbox
            .parse("[services.p2-api-proxy]\nroutes = [\"/...\", \"/echo\"]\nstrip_prefix = true\n")
            .unwrap();
        let mount = sandbox.grants("p2-api-proxy").mount;
        assert_eq!(mount.routes.unwrap(), ["/...", "/echo"]);
        assert!(mount.strip_prefix);
        assert_eq!(sandbox.grants("other").mount, Mount::default());
    }
}
