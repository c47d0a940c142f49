//! The claim loop: leases due deliveries from the store — retries whose time
//! came, work committed unleased (by an API node, or beyond this node's room),
//! and leases a dead node left behind — as far as this node has room, and
//! submits them to the dispatcher. It also keeps this node's leases alive.

use std::time::{Duration, Instant};

use hookd_core::timefmt::now_millis;

use crate::dispatcher::Dispatcher;

/// Most deliveries claimed in one query.
const CLAIM_BATCH: usize = 500;

pub async fn run(dispatcher: Dispatcher) {
    let interval = dispatcher.config().poll_interval;
    // Renew well before leases run out: three chances per lease.
    let renew_every = dispatcher.config().lease_duration / 3;
    let mut renewed = Instant::now();
    loop {
        if dispatcher.is_closing() {
            return;
        }
        if renewed.elapsed() >= renew_every {
            renew(&dispatcher).await;
            renewed = Instant::now();
        }
        let room = dispatcher.room().min(CLAIM_BATCH);
        let mut claimed = 0;
        if room > 0 {
            let full = dispatcher.full_endpoints();
            match dispatcher.store().claim_due(&dispatcher.lease(), now_millis(), room, &full).await {
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
            _ = dispatcher.store().wait_for_work(wait) => {}
            _ = dispatcher.wake_handle().notified() => {}
        }
    }
}

/// Extends the leases of everything held here, and the ownership of the
/// endpoints they go to, so no other node takes them while this one works.
async fn renew(dispatcher: &Dispatcher) {
    let (deliveries, endpoints) = dispatcher.held();
    if deliveries.is_empty() && endpoints.is_empty() {
        dispatcher.renewed(now_millis());
        return;
    }
    let started = now_millis();
    match dispatcher.store().renew(&dispatcher.lease(), &deliveries, &endpoints).await {
        Ok(()) => dispatcher.renewed(started),
        Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
    }
}
