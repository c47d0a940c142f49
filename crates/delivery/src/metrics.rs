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
    /// Seconds the earliest scheduled delivery has been due (sampled when scraped).
    pub queue_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    attempt_failures: Family<Labels, Counter>,
    /// 1 when the last read of the store for a scrape worked, else 0.
    pub database_up: Gauge,
    /// Deliveries held in this node's memory: queued or in flight.
    pub in_memory: Gauge,
    /// Endpoints this node holds with their circuit breaker open or half-open.
    pub breakers_open: Gauge,
    breaker_transitions: Family<Labels, Counter>,
    /// Times an endpoint was held back (throttling response or breaker).
    pub endpoint_holds: Counter,
    endpoints_disabled: Family<Labels, Counter>,
    receiver_signals: Family<Labels, Counter>,
    inbound_requests: Family<Labels, Counter>,
    slas: Family<Labels, Gauge>,
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
        let queue_lag = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "queue_lag_seconds",
            "How long the earliest scheduled delivery has been due (0: nothing overdue)",
            queue_lag.clone(),
        );
        let attempt_failures = Family::<Labels, Counter>::default();
        registry.register(
            "attempt_failures",
            "Failed attempts by class (http4xx, http5xx, timeout, connection, tls, other)",
            attempt_failures.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "1 when this node could read its store for this scrape, 0 when not",
            database_up.clone(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        registry.register("build_info", "hookd's version (always 1)", build_info.clone());
        build_info.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION"))]).set(1);
        // Every class exists from the start, so rates over them have a baseline.
        for class in ["http4xx", "http5xx", "timeout", "connection", "tls", "other"] {
            let _created = attempt_failures.get_or_create(&vec![("class", class)]);
        }
        let in_memory = Gauge::default();
        registry.register("deliveries_in_memory", "Deliveries queued or in flight on this node", in_memory.clone());
        let breakers_open = Gauge::default();
        registry.register(
            "endpoint_breakers_open",
            "Endpoints delivered from this node whose circuit breaker is open or half-open",
            breakers_open.clone(),
        );
        let breaker_transitions = Family::<Labels, Counter>::default();
        registry.register(
            "endpoint_breaker_transitions",
            "Circuit breaker state changes, by the state entered",
            breaker_transitions.clone(),
        );
        let endpoint_holds = Counter::default();
        registry.register(
            "endpoint_holds",
            "Times an endpoint was held back (429/502/503/504, Retry-After, an opening breaker)",
            endpoint_holds.clone(),
        );
        let endpoints_disabled = Family::<Labels, Counter>::default();
        registry.register(
            "endpoints_disabled",
            "Endpoints disabled by delivery, by reason (gone, receiver, failing)",
            endpoints_disabled.clone(),
        );
        let receiver_signals = Family::<Labels, Counter>::default();
        registry.register(
            "receiver_signals",
            "webhook-delivery response headers acted on, by signal",
            receiver_signals.clone(),
        );
        let inbound_requests = Family::<Labels, Counter>::default();
        registry.register(
            "inbound_requests",
            "Requests received by inbound sources, by outcome (accepted, duplicate, ignored, rejected, limited, handshake)",
            inbound_requests.clone(),
        );
        let slas = Family::<Labels, Gauge>::default();
        registry.register(
            "slas",
            "SLAs by state (met, breached, unknown) as last judged on this node (no per-SLA labels: tenants' data stays out of /metrics)",
            slas.clone(),
        );
        Metrics {
            registry,
            messages_accepted,
            attempts,
            delivery_latency,
            attempt_duration,
            queue_depth,
            queue_lag,
            attempt_failures,
            database_up,
            in_memory,
            breakers_open,
            breaker_transitions,
            endpoint_holds,
            endpoints_disabled,
            receiver_signals,
            inbound_requests,
            slas,
        }
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

    /// Counts a failed attempt by its class (a success is not counted here).
    pub fn attempt_failed(&self, class: hookd_store::AttemptClass) {
        use hookd_store::AttemptClass::*;
        let label = match class {
            Success => return,
            Http4xx => "http4xx",
            Http5xx => "http5xx",
            Timeout => "timeout",
            Connection => "connection",
            Tls => "tls",
            Other => "other",
        };
        self.attempt_failures.get_or_create(&vec![("class", label)]).inc();
    }

    pub fn breaker_moved(&self, to: hookd_store::BreakerState) {
        let label = match to {
            hookd_store::BreakerState::Closed => "closed",
            hookd_store::BreakerState::Open => "open",
            hookd_store::BreakerState::HalfOpen => "half_open",
        };
        self.breaker_transitions.get_or_create(&vec![("to", label)]).inc();
    }

    pub fn endpoint_disabled(&self, reason: &'static str) {
        self.endpoints_disabled.get_or_create(&vec![("reason", reason)]).inc();
    }

    pub fn receiver_signal(&self, signal: &'static str) {
        self.receiver_signals.get_or_create(&vec![("signal", signal)]).inc();
    }

    pub fn inbound_request(&self, outcome: &'static str) {
        self.inbound_requests.get_or_create(&vec![("outcome", outcome)]).inc();
    }

    /// How many SLAs are in each state, after a round of judging.
    pub fn slas_judged(&self, met: i64, breached: i64, unknown: i64) {
        for (state, n) in [("met", met), ("breached", breached), ("unknown", unknown)] {
            self.slas.get_or_create(&vec![("state", state)]).set(n);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
