//! The SLA judge: every `interval`, each delivering node reads every SLA's
//! window from the statistics rollups and records the judgement. A change of
//! state is a conditional update, so exactly one node records it, adds it to
//! the SLA's history and announces it (`sla.breached`, `sla.recovered`) as an
//! operational webhook. Each node exports how many SLAs are in each state.

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
        loop {
            tokio::time::sleep(self.interval).await;
            if let Err(e) = self.judge_all().await {
                tracing::warn!(error = %e, "judging SLAs failed; trying again later");
            }
        }
    }

    /// Judges every SLA once and exports how many are in each state.
    pub async fn judge_all(&self) -> Result<()> {
        let (mut met, mut breached, mut unknown) = (0, 0, 0);
        let mut after: Option<String> = None;
        loop {
            let page = self.queue.slas_after(after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for sla in page {
                match self.judge(&sla).await {
                    Ok(SlaState::Met) => met += 1,
                    Ok(SlaState::Breached) => breached += 1,
                    Ok(SlaState::Unknown) => unknown += 1,
                    Err(e) => {
                        unknown += 1;
                        tracing::warn!(error = %e, sla = %sla.id, "judging an SLA failed");
                    }
                }
            }
        }
        self.metrics.slas_judged(met, breached, unknown);
        Ok(())
    }

    async fn judge(&self, sla: &Sla) -> Result<SlaState> {
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
        let (state, figures) = spec.judge(sla.state, &total);
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
            _ => return Ok(state),
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
        Ok(state)
    }
}
