//! Prometheus metrics for the send pipeline, rendered at `GET /metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    pub messages_accepted: Counter,
    attempts: Family<Labels, Counter>,
    /// Seconds from accepting a message to its successful delivery.
    pub delivery_latency: Histogram,
    /// Seconds one HTTP attempt took.
    pub attempt_duration: Histogram,
    /// Deliveries scheduled or leased in the store (sampled when scraped).
    pub queue_depth: Gauge,
    /// Deliveries held in this node's memory: queued or in flight.
    pub in_memory: Gauge,
}

/// How an attempt ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy)]
pub enum AttemptOutcome {
    Success,
    /// The endpoint answered with a non-2xx status.
    HttpError,
    /// No response: connect error, timeout, refused by the SSRF guard.
    NetworkError,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookd");
        let messages_accepted = Counter::default();
        registry.register("messages_accepted", "Messages accepted through the API", messages_accepted.clone());
        let attempts = Family::<Labels, Counter>::default();
        registry.register("attempts", "Delivery attempts by outcome", attempts.clone());
        let delivery_latency = Histogram::new(exponential_buckets(0.001, 2.0, 20));
        registry.register(
            "delivery_latency_seconds",
            "Time from accepting a message to its successful delivery",
            delivery_latency.clone(),
        );
        let attempt_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("attempt_duration_seconds", "Duration of one HTTP attempt", attempt_duration.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Deliveries scheduled or leased, in the store", queue_depth.clone());
        let in_memory = Gauge::default();
        registry.register("deliveries_in_memory", "Deliveries queued or in flight on this node", in_memory.clone());
        Metrics { registry, messages_accepted, attempts, delivery_latency, attempt_duration, queue_depth, in_memory }
    }
}

impl Metrics {
    pub fn attempt(&self, outcome: AttemptOutcome) {
        let label = match outcome {
            AttemptOutcome::Success => "success",
            AttemptOutcome::HttpError => "http_error",
            AttemptOutcome::NetworkError => "network_error",
        };
        self.attempts.get_or_create(&vec![("outcome", label)]).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
