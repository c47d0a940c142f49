//! The SLA judge: every `interval`, each delivering node reads every SLA's
//! window from the statistics rollups and records the judgement. A change of
//! state is a conditional update, so exactly one node records it, adds it to
//! the SLA's history and announces it (`sla.breached`, `sla.recovered`) as an
//! operational webhook. Each node exports the SLAs it judged as metrics.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_store::{Queue, Resources, Result, Rollup, Sla, SlaJudgement, SlaState, StatsQuery};
use serde_json::json;

use crate::metrics::Metrics;
use crate::operational::Operational;

/// SLAs read per page.
const PAGE: usize = 200;

pub struct SlaJudge {
    pub resources: Arc<dyn Resources>,
    pub queue: Arc<dyn Queue>,
    pub ops: Operational,
    pub metrics: Arc<Metrics>,
    pub interval: Duration,
}

impl SlaJudge {
    pub async fn run(self) {
        let mut known: HashSet<String> = HashSet::new();
        loop {
            tokio::time::sleep(self.interval).await;
            match self.judge_all().await {
                Ok(seen) => {
                    for gone in known.difference(&seen) {
                        self.metrics.sla_forget(gone);
                    }
                    known = seen;
                }
                Err(e) => tracing::warn!(error = %e, "judging SLAs failed; trying again later"),
            }
        }
    }

    /// Judges every SLA once; returns their ids.
    pub async fn judge_all(&self) -> Result<HashSet<String>> {
        let mut seen = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.queue.slas_after(after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for sla in page {
                seen.insert(sla.id.clone());
                if let Err(e) = self.judge(&sla).await {
                    tracing::warn!(error = %e, sla = %sla.id, "judging an SLA failed");
                }
            }
        }
        Ok(seen)
    }

    async fn judge(&self, sla: &Sla) -> Result<()> {
        let now = now_millis();
        let spec = &sla.spec;
        let window = (spec.window_seconds as i64).saturating_mul(1000);
        let rows = self
            .resources
            .stats(StatsQuery {
                org_id: sla.org_id.clone(),
                app_id: sla.app_id.clone(),
                endpoint_id: spec.endpoint_id.clone(),
                event_types: spec.event_types.clone(),
                since: now - window,
                until: now + 60_000,
                period_ms: i64::MAX,
            })
            .await?;
        let mut total = Rollup::default();
        for r in &rows {
            total.merge(&r.rollup);
        }
        let (state, figures) = spec.judge(&total);
        self.metrics.sla_judged(&sla.id, state == SlaState::Breached, figures.success_ratio, spec.target_success_ratio);
        let changed = self
            .queue
            .judge_sla(SlaJudgement {
                org_id: sla.org_id.clone(),
                sla_id: sla.id.clone(),
                from: sla.state,
                to: state,
                figures: figures.clone(),
                at: now,
                event_id: new_id(IdPrefix::SlaEvent),
            })
            .await?;
        let event = match (sla.state, state) {
            (SlaState::Met | SlaState::Unknown, SlaState::Breached) => "sla.breached",
            (SlaState::Breached, SlaState::Met) => "sla.recovered",
            _ => return Ok(()),
        };
        if changed {
            tracing::info!(sla = %sla.id, app = %sla.app_id, state = state.as_str(), "SLA {}", state.as_str());
            let data = json!({
                "slaId": sla.id,
                "name": spec.name,
                "appId": sla.app_id,
                "endpointId": spec.endpoint_id,
                "state": state.as_str(),
                "since": format_millis(now),
                "windowSeconds": spec.window_seconds,
                "targetSuccessRatio": spec.target_success_ratio,
                "latencyPercentile": spec.latency_percentile,
                "latencyTargetMs": spec.latency_target_ms,
                "figures": figures,
            });
            self.ops.emit(&sla.org_id, event, data).await;
        }
        Ok(())
    }
}
