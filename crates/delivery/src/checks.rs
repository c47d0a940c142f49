//! Endpoint checks over time: a check stored with its endpoint, and the
//! certificate watch — delivering nodes re-check every endpoint with a TLS
//! certificate once per `interval` (one node each, by a claim in the store),
//! and warn with an operational webhook (`endpoint.certificate.expiring`) when
//! it expires within `warn_days`.

use std::sync::Arc;
use std::time::Duration;

use hookd_core::timefmt::{format_millis, now_millis};
use hookd_store::{Endpoint, EndpointCheckRow, Queue, Resources, StoreError};
use serde_json::json;

use crate::operational::Operational;
use crate::orgs::OrgSettingsCache;
use crate::probe::{check_endpoint, EndpointCheck};
use crate::sender::HttpSender;

/// How long each part of a check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks `ep` now and stores the result.
pub async fn check_and_store(
    sender: &HttpSender,
    orgs: &OrgSettingsCache,
    resources: &dyn Resources,
    ep: &Endpoint,
    send_test: bool,
) -> Result<EndpointCheck, StoreError> {
    // As deliveries do: without the organisation's settings, nothing is sent.
    let org = orgs.get(&ep.org_id).await.map_err(StoreError::Unavailable)?;
    let policy = Some(&org.policy).filter(|p| !p.is_empty());
    let check = check_endpoint(sender, ep, policy, send_test, CHECK_TIMEOUT).await;
    resources
        .put_endpoint_check(EndpointCheckRow {
            org_id: ep.org_id.clone(),
            app_id: ep.app_id.clone(),
            endpoint_id: ep.id.clone(),
            result: serde_json::to_string(&check).unwrap_or_default(),
            cert_not_after: check.tls.as_ref().and_then(|t| t.not_after_ms),
            checked_at: now_millis(),
            warned_at: None,
        })
        .await?;
    Ok(check)
}

pub struct CertWatch {
    pub sender: HttpSender,
    pub orgs: Arc<OrgSettingsCache>,
    pub resources: Arc<dyn Resources>,
    pub queue: Arc<dyn Queue>,
    pub ops: Operational,
    /// Each certificate is checked again this long after its last check.
    pub interval: Duration,
    /// A certificate expiring within this many days is warned of (once per interval).
    pub warn_days: i64,
}

impl CertWatch {
    pub async fn run(self) {
        let every = (self.interval / 4).clamp(Duration::from_millis(200), Duration::from_secs(3600));
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "re-checking endpoint certificates failed; trying again later");
            }
        }
    }

    /// Re-checks the certificates due; returns how many.
    pub async fn round(&self) -> Result<usize, StoreError> {
        let interval = self.interval.as_millis() as i64;
        let mut done = 0;
        loop {
            let now = now_millis();
            let due = self.queue.claim_cert_rechecks(now - interval, now, 20).await?;
            if due.is_empty() {
                return Ok(done);
            }
            for row in due {
                done += 1;
                let ep = match self.resources.get_endpoint(&row.org_id, &row.app_id, &row.endpoint_id).await {
                    Ok(ep) => ep,
                    Err(StoreError::NotFound) => {
                        self.queue.delete_endpoint_check(&row.endpoint_id).await?;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let check = check_and_store(&self.sender, &self.orgs, &*self.resources, &ep, false).await?;
                let Some(tls) = check.tls.as_ref() else { continue };
                let (Some(days), Some(not_after)) = (tls.days_left, tls.not_after_ms) else { continue };
                let warned_lately = row.warned_at.is_some_and(|w| now - w < interval);
                if days <= self.warn_days && !warned_lately {
                    tracing::warn!(endpoint = %ep.id, days_left = days, "an endpoint's TLS certificate expires soon");
                    let extra = json!({
                        "url": ep.url,
                        "notAfter": format_millis(not_after),
                        "daysLeft": days,
                        "subject": tls.subject,
                    });
                    self.ops.emit_for_endpoint("endpoint.certificate.expiring", &ep, extra).await;
                    self.queue.mark_cert_warned(&ep.id, now).await?;
                }
            }
        }
    }
}
