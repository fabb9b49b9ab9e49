//! Prometheus metrics: what `GET /_hms/metrics` (and `--metrics-listen`)
//! serve, in the Prometheus text format (0.0.4), built on the
//! `prometheus-client` crate.
//!
//! Events are recorded where they happen, into the families of [`Metrics`]
//! (requests, latencies, instance memory, compile time, audit commits,
//! store operations, token verifications, refusals). What is a state rather
//! than an event — requests in flight, the limit counters the services
//! already keep, a cluster host's heartbeat age and database pool — is read
//! at scrape time from the running host ([`Metrics::set_live`]), so it is
//! counted in one place only.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    /// `2xx`, `4xx`, ...
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    service: String,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// What the running host is doing right now, read at every scrape.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Per service: requests in flight, and each limit counter by name.
    pub services: Vec<LiveService>,
    /// In a cluster: seconds since this host's last heartbeat the database
    /// took.
    pub heartbeat_age: Option<Duration>,
    /// In a cluster: the database pool.
    pub pool: Option<PoolState>,
}

#[derive(Clone, Debug, Default)]
pub struct LiveService {
    pub name: String,
    pub in_flight: u32,
    /// Instances kept for its next requests (`requests_per_instance`).
    pub kept: u32,
    /// `(limit name, times hit)`, e.g. `("busy", 3)`.
    pub limits: Vec<(&'static str, u64)>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PoolState {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

type LiveSource = Box<dyn Fn() -> Live + Send + Sync>;

/// Every metric of the host.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<ServiceLabel, Histogram>,
    instance_memory: Family<ServiceLabel, Histogram>,
    load_seconds: Family<ServiceLabel, Histogram>,
    audit_commit_seconds: Histogram,
    audit_commit_events: Histogram,
    store_seconds: Family<OpLabel, Histogram>,
    token_verifications: Family<ResultLabel, Counter>,
    refusals: Family<RefusalLabel, Counter>,
    live: Arc<OnceLock<LiveSource>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Seconds, from 0.5 ms to about 16 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hms");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests a service answered, by status class (in-process calls included)",
            requests.clone(),
        );
        let request_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Time until a service's response head, per service hop",
            request_seconds.clone(),
        );
        let instance_memory = Family::new_with_constructor(
            (|| Histogram::new(exponential_buckets(65536.0, 2.0, 14))) as fn() -> Histogram,
        );
        registry.register(
            "instance_memory_bytes",
            "Linear memory an instance had grown to when it ended",
            instance_memory.clone(),
        );
        let load_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "component_load_duration_seconds",
            "Time to compile (or load from the cache) and validate a component",
            load_seconds.clone(),
        );
        let audit_commit_seconds = seconds();
        registry.register(
            "audit_commit_duration_seconds",
            "Time of one audit group commit",
            audit_commit_seconds.clone(),
        );
        let audit_commit_events = Histogram::new(exponential_buckets(1.0, 2.0, 13));
        registry.register(
            "audit_commit_events",
            "Events stored by one audit group commit",
            audit_commit_events.clone(),
        );
        let store_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "store_operation_duration_seconds",
            "Time of a store operation a component made, by operation",
            store_seconds.clone(),
        );
        let token_verifications = Family::<ResultLabel, Counter>::default();
        registry.register(
            "token_verifications",
            "Tokens components asked Core to verify, by result",
            token_verifications.clone(),
        );
        let refusals = Family::<RefusalLabel, Counter>::default();
        registry.register(
            "refusals",
            "Requests refused before any component ran: rate_limited (token exchange throttled), audit_unavailable",
            refusals.clone(),
        );
        let live: Arc<OnceLock<LiveSource>> = Arc::default();
        registry.register_collector(Box::new(LiveCollector(live.clone())));
        Metrics {
            registry,
            requests,
            request_seconds,
            instance_memory,
            load_seconds,
            audit_commit_seconds,
            audit_commit_events,
            store_seconds,
            token_verifications,
            refusals,
            live,
        }
    }

    /// Where scrapes read the host's current state from (set once).
    pub fn set_live(&self, source: impl Fn() -> Live + Send + Sync + 'static) {
        let _ = self.live.set(Box::new(source));
    }

    /// Service `name`'s handles, to keep: recording through them is a few
    /// atomic operations, with no label lookup per request.
    pub fn service(&self, name: &str) -> ServiceMetrics {
        let service = ServiceLabel {
            service: name.to_string(),
        };
        ServiceMetrics {
            by_class: std::array::from_fn(|i| {
                self.requests.get_or_create_owned(&RequestLabels {
                    service: name.to_string(),
                    class: format!("{}xx", i + 1),
                })
            }),
            latency: self.request_seconds.get_or_create_owned(&service),
            memory: self.instance_memory.get_or_create_owned(&service),
        }
    }

    /// A component of `service` was compiled or loaded in `took`.
    pub fn component_loaded(&self, service: &str, took: Duration) {
        self.load_seconds
            .get_or_create(&ServiceLabel {
                service: service.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Handles the audit writer records its commits into.
    pub fn audit(&self) -> AuditMetrics {
        AuditMetrics {
            commit_seconds: self.audit_commit_seconds.clone(),
            commit_events: self.audit_commit_events.clone(),
        }
    }

    /// A store operation `op` took `took`.
    pub fn store_operation(&self, op: &str, took: Duration) {
        self.store_seconds
            .get_or_create(&OpLabel { op: op.to_string() })
            .observe(took.as_secs_f64());
    }

    /// A token was verified for a component: valid or not.
    pub fn token_verified(&self, valid: bool) {
        let result = if valid { "valid" } else { "invalid" };
        self.token_verifications
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// A request was refused before anything ran, for `reason`.
    pub fn refused(&self, reason: &str) {
        self.refusals
            .get_or_create(&RefusalLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing into a String does not fail");
        out
    }
}

/// One service's request metrics ([`Metrics::service`]); clones share
/// their state.
#[derive(Clone, Debug)]
pub struct ServiceMetrics {
    /// Requests answered `1xx` … `5xx`.
    by_class: [Counter; 5],
    latency: Histogram,
    memory: Histogram,
}

impl ServiceMetrics {
    /// Handles registered nowhere (a component tried at load time).
    pub fn detached() -> ServiceMetrics {
        ServiceMetrics {
            by_class: Default::default(),
            latency: seconds(),
            memory: seconds(),
        }
    }

    /// The service answered with `status` after `took`.
    pub fn request(&self, status: http::StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// An instance of the service ended with `bytes` of linear memory.
    pub fn instance_memory(&self, bytes: usize) {
        self.memory.observe(bytes as f64);
    }
}

/// The audit writer's metrics (histograms share their state when cloned).
#[derive(Clone, Debug)]
pub struct AuditMetrics {
    pub commit_seconds: Histogram,
    pub commit_events: Histogram,
}

/// Encodes [`Live`] at scrape time.
struct LiveCollector(Arc<OnceLock<LiveSource>>);

impl std::fmt::Debug for LiveCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCollector")
    }
}

impl Collector for LiveCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(source) = self.0.get() else {
            return Ok(());
        };
        let live = source();
        let in_flight = Family::<ServiceLabel, Gauge>::default();
        let kept = Family::<ServiceLabel, Gauge>::default();
        let limits = Family::<LimitLabels, Counter>::default();
        for s in &live.services {
            let label = ServiceLabel {
                service: s.name.clone(),
            };
            in_flight.get_or_create(&label).set(i64::from(s.in_flight));
            kept.get_or_create(&label).set(i64::from(s.kept));
            for (limit, hits) in &s.limits {
                limits
                    .get_or_create(&LimitLabels {
                        service: s.name.clone(),
                        limit: limit.to_string(),
                    })
                    .inc_by(*hits);
            }
        }
        in_flight.encode(encoder.encode_descriptor(
            "requests_in_flight",
            "Requests a service is serving now",
            None,
            MetricType::Gauge,
        )?)?;
        kept.encode(encoder.encode_descriptor(
            "instances_kept",
            "Instances a service keeps for its next requests (requests_per_instance over 1)",
            None,
            MetricType::Gauge,
        )?)?;
        limits.encode(encoder.encode_descriptor(
            "limit_hits",
            "Times a service hit one of its limits (busy, timeout, memory_limit, trap, ...)",
            None,
            MetricType::Counter,
        )?)?;
        if let Some(age) = live.heartbeat_age {
            let gauge = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            gauge.set(age.as_secs_f64());
            gauge.encode(encoder.encode_descriptor(
                "cluster_heartbeat_age_seconds",
                "Time since this host's last heartbeat the cluster database took",
                None,
                MetricType::Gauge,
            )?)?;
        }
        if let Some(pool) = live.pool {
            let states = Family::<StateLabel, Gauge>::default();
            for (state, n) in [
                ("max", pool.max_size),
                ("open", pool.size),
                ("idle", pool.available),
                ("waiting", pool.waiting),
            ] {
                states
                    .get_or_create(&StateLabel {
                        state: state.to_string(),
                    })
                    .set(n as i64);
            }
            states.encode(encoder.encode_descriptor(
                "cluster_db_connections",
                "The cluster database pool: max, open, idle connections and callers waiting",
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_and_live_values_render_in_the_prometheus_text_format() {
        let m = Metrics::new();
        let identity = m.service("identity-service");
        identity.request(http::StatusCode::OK, Duration::from_millis(3));
        m.service("identity-service")
            .request(http::StatusCode::OK, Duration::from_millis(5));
        identity.request(http::StatusCode::NOT_FOUND, Duration::from_millis(1));
        m.token_verified(false);
        m.set_live(|| Live {
            services: vec![LiveService {
                name: "identity-service".into(),
                in_flight: 2,
                kept: 4,
                limits: vec![("busy", 7)],
            }],
            heartbeat_age: Some(Duration::from_millis(250)),
            pool: Some(PoolState {
                max_size: 16,
                size: 3,
                available: 2,
                waiting: 0,
            }),
        });
        let text = m.render();
        for line in [
            "# TYPE hms_requests_total counter",
            r#"hms_requests_total{service="identity-service",class="2xx"} 2"#,
            r#"hms_requests_total{service="identity-service",class="4xx"} 1"#,
            r#"hms_requests_total{service="identity-service",class="5xx"} 0"#,
            r#"hms_request_duration_seconds_count{service="identity-service"} 3"#,
            r#"hms_token_verifications_total{result="invalid"} 1"#,
            r#"hms_requests_in_flight{service="identity-service"} 2"#,
            r#"hms_instances_kept{service="identity-service"} 4"#,
            r#"hms_limit_hits_total{service="identity-service",limit="busy"} 7"#,
            "hms_cluster_heartbeat_age_seconds 0.25",
            r#"hms_cluster_db_connections{state="open"} 3"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
