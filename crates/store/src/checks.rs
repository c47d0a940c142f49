//! Endpoint checks as stored: the last one of each endpoint, and what the
//! daily certificate re-check needs.

/// The last check of an endpoint (`hookd_delivery::probe`), as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointCheckRow {
    pub org_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    /// The check, as JSON.
    pub result: String,
    /// When its TLS certificate expires, if it has one.
    pub cert_not_after: Option<i64>,
    pub checked_at: i64,
    /// When an expiry warning was last sent.
    pub warned_at: Option<i64>,
}

/// Where an endpoint stands, from its delivering node's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Healthy,
    /// Held back (throttled by the receiver) or probing (breaker half-open).
    Degraded,
    /// Its breaker is open, or every attempt has failed for a while.
    Failing,
    Disabled,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Failing => "failing",
            HealthState::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> HealthState {
        match s {
            "degraded" => HealthState::Degraded,
            "failing" => HealthState::Failing,
            "disabled" => HealthState::Disabled,
            _ => HealthState::Healthy,
        }
    }
}

/// The state a health report puts an endpoint in, and why.
pub fn health_state(disabled: bool, health: Option<&crate::EndpointHealth>, now: i64) -> (HealthState, String) {
    if disabled {
        return (HealthState::Disabled, "the endpoint is disabled".into());
    }
    let Some(h) = health else { return (HealthState::Healthy, String::new()) };
    match h.breaker {
        crate::BreakerState::Open => {
            return (
                HealthState::Failing,
                format!("circuit breaker open: {} of {} requests failed", h.failures, h.requests),
            )
        }
        crate::BreakerState::HalfOpen => return (HealthState::Degraded, "circuit breaker half-open: probing".into()),
        crate::BreakerState::Closed => {}
    }
    if let Some(since) = h.failing_since {
        return (
            HealthState::Failing,
            format!("every attempt has failed since {}", hookd_core::timefmt::format_millis(since)),
        );
    }
    if h.throttled_until.is_some_and(|u| u > now) {
        return (HealthState::Degraded, "held back: the receiver asked to slow down".into());
    }
    (HealthState::Healthy, String::new())
}

/// A change of an endpoint's health state.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    pub id: i64,
    pub endpoint_id: String,
    pub state: HealthState,
    pub reason: String,
    pub at: i64,
}
