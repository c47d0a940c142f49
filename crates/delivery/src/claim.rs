//! The claim loop: leases due deliveries from the store — retries whose time
//! came, work committed unleased, and leases a dead node left behind — as far
//! as this node has room, and submits them to the dispatcher.

use std::time::Duration;

use hookd_core::timefmt::now_millis;

use crate::dispatcher::Dispatcher;

/// Most deliveries claimed in one query.
const CLAIM_BATCH: usize = 500;

pub async fn run(dispatcher: Dispatcher) {
    let interval = dispatcher.config().poll_interval;
    loop {
        if dispatcher.is_closing() {
            return;
        }
        let room = dispatcher.room().min(CLAIM_BATCH);
        let mut claimed = 0;
        if room > 0 {
            match dispatcher
                .store()
                .claim_due(&dispatcher.lease(), now_millis(), room)
                .await
            {
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
        let _ = tokio::time::timeout(interval, dispatcher.wake_handle().notified()).await;
    }
}
