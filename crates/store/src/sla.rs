//! SLAs: a target success ratio (and optionally an accept-to-delivery latency
//! percentile) over a sliding window, for an application or one of its
//! endpoints, judged from the statistics rollups by the delivering nodes.

use serde::{Deserialize, Serialize};

/// At most this many SLAs per organisation.
pub const MAX_SLAS_PER_ORG: usize = 100;

/// What an SLA promises, as the API takes it (stored as one JSON document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The endpoint it covers (by id); `None`: the whole application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    /// Event types it covers; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// Successful attempts over all attempts in the window, at least this.
    pub target_success_ratio: f64,
    /// This percentile (e.g. 99) of accept-to-delivery time…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_percentile: Option<f64>,
    /// …at most this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_target_ms: Option<u64>,
    pub window_seconds: u64,
    /// Fewer attempts than this in the window are not judged (the SLA is met).
    pub min_attempts: u64,
}

/// Where an SLA stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaState {
    /// Not judged yet.
    Unknown,
    Met,
    Breached,
}

impl SlaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlaState::Unknown => "unknown",
            SlaState::Met => "met",
            SlaState::Breached => "breached",
        }
    }

    pub fn parse(s: &str) -> SlaState {
        match s {
            "met" => SlaState::Met,
            "breached" => SlaState::Breached,
            _ => SlaState::Unknown,
        }
    }
}

/// The figures of one judgement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaFigures {
    pub attempts: u64,
    pub success: u64,
    /// `None` without attempts.
    pub success_ratio: Option<f64>,
    /// The spec's latency percentile, when it sets one and anything was delivered.
    pub latency_ms: Option<f64>,
    /// Why it is breached (empty when met).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub org_id: String,
    pub id: String,
    pub app_id: String,
    pub spec: SlaSpec,
    pub state: SlaState,
    /// When it entered its state.
    pub state_since: Option<i64>,
    /// The last judgement's figures and time.
    pub figures: Option<SlaFigures>,
    pub evaluated_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A change of state, kept as the SLA's history.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaEvent {
    pub id: String,
    pub sla_id: String,
    pub state: SlaState,
    pub figures: SlaFigures,
    pub at: i64,
}

/// A judgement to record: the SLA moves from `from` to `to` (the same state to
/// refresh the figures only).
#[derive(Debug, Clone)]
pub struct SlaJudgement {
    pub org_id: String,
    pub sla_id: String,
    pub from: SlaState,
    pub to: SlaState,
    pub figures: SlaFigures,
    pub at: i64,
    /// The history entry's id (used when the state changes).
    pub event_id: String,
}

impl SlaSpec {
    /// Judges the window's rollup against the spec. Too few attempts to judge
    /// leave the state as it was (`was`; met when it was never judged): an
    /// endpoint that stopped getting attempts (its breaker open, disabled) has
    /// not recovered.
    pub fn judge(&self, was: SlaState, rollup: &crate::Rollup) -> (SlaState, SlaFigures) {
        let mut f = SlaFigures {
            attempts: rollup.attempts,
            success: rollup.success,
            success_ratio: (rollup.attempts > 0).then(|| rollup.success as f64 / rollup.attempts as f64),
            latency_ms: self.latency_percentile.and_then(|p| rollup.delivery.quantile(p / 100.0)),
            reasons: Vec::new(),
        };
        if rollup.attempts < self.min_attempts.max(1) {
            let keep = if was == SlaState::Unknown { SlaState::Met } else { was };
            if keep == SlaState::Breached {
                f.reasons.push(format!("too few attempts to judge ({}): still breached", rollup.attempts));
            }
            return (keep, f);
        }
        if let Some(ratio) = f.success_ratio {
            if ratio < self.target_success_ratio {
                f.reasons
                    .push(format!("success ratio {:.4} is below the target {:.4}", ratio, self.target_success_ratio));
            }
        }
        if let (Some(p), Some(target), Some(ms)) = (self.latency_percentile, self.latency_target_ms, f.latency_ms) {
            if ms > target as f64 {
                f.reasons.push(format!("p{p} accept-to-delivery time {ms} ms is above the target {target} ms"));
            }
        }
        let state = if f.reasons.is_empty() { SlaState::Met } else { SlaState::Breached };
        (state, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SlaSpec {
        SlaSpec {
            name: "t".into(),
            description: None,
            endpoint_id: None,
            event_types: vec![],
            target_success_ratio: 0.9,
            latency_percentile: Some(90.0),
            latency_target_ms: Some(500),
            window_seconds: 60,
            min_attempts: 10,
        }
    }

    #[test]
    fn judged_by_success_ratio_latency_and_enough_attempts() {
        let facts =
            |class, after| crate::AttemptFacts { event_type: "e".into(), class, bytes: 1, delivered_after_ms: after };
        let mut r = crate::Rollup::default();
        for _ in 0..9 {
            r.add(&facts(crate::AttemptClass::Success, Some(100)), 5);
        }
        assert_eq!(spec().judge(SlaState::Unknown, &r).0, SlaState::Met, "nine attempts are too few to judge");
        assert_eq!(spec().judge(SlaState::Breached, &r).0, SlaState::Breached, "and do not end a breach");
        r.add(&facts(crate::AttemptClass::Http5xx, None), 5);
        let (state, f) = spec().judge(SlaState::Unknown, &r);
        assert_eq!((state, f.success_ratio), (SlaState::Met, Some(0.9)));
        for _ in 0..9 {
            r.add(&facts(crate::AttemptClass::Success, Some(2_000)), 5);
        }
        let (state, f) = spec().judge(SlaState::Unknown, &r);
        assert_eq!(state, SlaState::Breached);
        assert_eq!(f.reasons.len(), 1, "{:?}", f.reasons);
        assert!(f.reasons[0].contains("p90 accept-to-delivery time"), "{:?}", f.reasons);
        r.add(&facts(crate::AttemptClass::Timeout, None), 5);
        r.add(&facts(crate::AttemptClass::Timeout, None), 5);
        r.add(&facts(crate::AttemptClass::Timeout, None), 5);
        assert_eq!(spec().judge(SlaState::Unknown, &r).1.reasons.len(), 2);
    }
}
