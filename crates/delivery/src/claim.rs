//! The claim loop: leases due deliveries from the store — retries whose time
//! came, work committed scheduled (by an API node, or beyond this node's room),
//! and deliveries whose lease a dead node left behind (rescued first) — as far
//! as this node has room, and submits them to the dispatcher. It also keeps this
//! node's leases alive and its endpoint snapshots fresh.

use std::time::{Duration, Instant};

use hookd_core::timefmt::now_millis;

use crate::dispatcher::Dispatcher;

/// Most deliveries claimed in one query.
const CLAIM_BATCH: usize = 500;
/// Most expired leases rescued in one query.
const RESCUE_BATCH: usize = 1000;

pub async fn run(dispatcher: Dispatcher) {
    let interval = dispatcher.config().poll_interval;
    // Renew well before leases run out: three chances per lease.
    let renew_every = dispatcher.config().lease_duration / 3;
    let mut renewed = Instant::now();
    let mut rescued = Instant::now() - interval;
    loop {
        if dispatcher.is_closing() {
            return;
        }
        if renewed.elapsed() >= renew_every {
            renew(&dispatcher).await;
            renewed = Instant::now();
        }
        if rescued.elapsed() >= interval {
            rescue(&dispatcher).await;
            rescued = Instant::now();
        }
        let room = dispatcher.room().min(CLAIM_BATCH);
        let mut claimed = 0;
        if room > 0 {
            let skip = dispatcher.skip_endpoints();
            match dispatcher.queue().claim_due(&dispatcher.lease(), room, &skip).await {
                Ok(jobs) => {
                    claimed = jobs.len();
                    dispatcher.submit(jobs);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming due deliveries failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        // A full batch means more may be due: go again at once.
        if claimed == room && room > 0 {
            continue;
        }
        let wait = interval.min(renew_every);
        tokio::select! {
            _ = dispatcher.queue().wait_for_work(wait) => {}
            _ = dispatcher.wake_handle().notified() => {}
        }
    }
}

/// Deliveries whose lease expired (their node died, or lost the database for
/// longer than a lease) become due again, here or on any node.
async fn rescue(dispatcher: &Dispatcher) {
    match dispatcher.queue().rescue_expired(RESCUE_BATCH).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deliveries = n, "took back deliveries whose lease expired"),
        Err(e) => tracing::warn!(error = %e, "rescuing expired leases failed"),
    }
}

/// Extends the leases of everything held here, and the ownership of the
/// endpoints they go to, so no other node takes them while this one works; then
/// picks up edits to those endpoints made anywhere.
async fn renew(dispatcher: &Dispatcher) {
    let (deliveries, endpoints) = dispatcher.held();
    if deliveries.is_empty() && endpoints.is_empty() {
        dispatcher.forget_idle_controls();
        dispatcher.renewed(now_millis());
        return;
    }
    let started = now_millis();
    match dispatcher.queue().renew(&dispatcher.lease(), &deliveries, &endpoints).await {
        Ok(()) => dispatcher.renewed(started),
        Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
    }
    dispatcher.forget_idle_controls();
    match dispatcher.queue().changed_endpoints(&dispatcher.endpoint_revisions()).await {
        Ok(changed) => dispatcher.refresh_endpoints(changed),
        Err(e) => tracing::warn!(error = %e, "reading endpoint changes failed"),
    }
}
