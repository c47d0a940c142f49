//! Waking idle workers on every node when unleased work is committed
//! (`LISTEN/NOTIFY`, decision 7).
//!
//! A commit that left unleased work raises the [`WorkSignal`]: it wakes this
//! node's claim loop at once (no round trip through the database) and asks the
//! notifier task for a `NOTIFY`. The notifier sends at most one at a time, and
//! every signal raised while one is in flight collapses into exactly one more:
//! `NOTIFY` takes a database-wide lock at commit, so one per message would
//! serialise every commit, while one per burst costs nothing. It runs outside
//! the write transactions, after they committed.
//!
//! A listener task holds a `LISTEN` connection of its own and wakes the claim
//! loop on every notification. When its connection is lost (a database restart)
//! it reconnects by itself, and wakes the claim loop once connected again, since
//! notifications sent meanwhile are lost.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The channel every node listens on and notifies.
pub const WORK_CHANNEL: &str = "hookd_work";
/// Pause before trying again to listen after the connection failed.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

pub struct WorkSignal {
    /// Wakes this node's claim loop; `notify_one` keeps a permit when nobody waits.
    local: Arc<Notify>,
    /// Asks the notifier task for one more `NOTIFY`.
    remote: Arc<Notify>,
    tasks: [JoinHandle<()>; 2],
}

impl WorkSignal {
    /// Starts the notifier (on `pool`) and the listener (on `listen_pool`, which
    /// should be its own pool of one connection).
    pub fn start(pool: PgPool, listen_pool: PgPool) -> Self {
        let local = Arc::new(Notify::new());
        let remote = Arc::new(Notify::new());
        let notifier = tokio::spawn(send_coalesced(remote.clone(), move || {
            let pool = pool.clone();
            async move {
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(WORK_CHANNEL).execute(&pool).await {
                    // Other nodes still find the work on their next poll.
                    tracing::debug!(error = %e, "sending a work notification failed");
                }
            }
        }));
        let listener = tokio::spawn(listen(listen_pool, local.clone()));
        WorkSignal { local, remote, tasks: [notifier, listener] }
    }

    /// A commit left unleased work for workers to claim.
    pub fn raise(&self) {
        self.local.notify_one();
        self.remote.notify_one();
    }

    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.local.notified()).await;
    }
}

impl Drop for WorkSignal {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Calls `send` once per batch of requests, never two at a time. `Notify` holds
/// at most one permit, so any number of requests made while `send` runs leave
/// one permit: exactly one more call follows.
async fn send_coalesced<F, Fut>(requests: Arc<Notify>, mut send: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        requests.notified().await;
        send().await;
    }
}

async fn listen(pool: PgPool, work: Arc<Notify>) {
    let mut was_connected = false;
    loop {
        let mut listener = match connect_listener(&pool).await {
            Ok(l) => l,
            Err(e) => {
                if matches!(e, sqlx::Error::PoolClosed) {
                    return;
                }
                tracing::debug!(error = %e, "cannot listen for work notifications yet");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if was_connected {
            tracing::info!("listening for work notifications again");
        }
        was_connected = true;
        // Anything committed while not listening went unannounced: look once.
        work.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => work.notify_one(),
                // The connection was lost and made again: notifications in between are lost.
                Ok(None) => work.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the work notification connection; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

async fn connect_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(WORK_CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn signals_raised_during_a_notify_cause_exactly_one_more() {
        let requests = Arc::new(Notify::new());
        let sent = Arc::new(AtomicUsize::new(0));
        // Each send waits for the test to let it finish, so it stays "in flight".
        let (release_tx, release_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let release_rx = Arc::new(tokio::sync::Mutex::new(release_rx));
        let task = tokio::spawn(send_coalesced(requests.clone(), {
            let sent = sent.clone();
            move || {
                let (sent, release_rx) = (sent.clone(), release_rx.clone());
                async move {
                    sent.fetch_add(1, Ordering::SeqCst);
                    release_rx.lock().await.recv().await;
                }
            }
        }));
        let settle = || tokio::time::sleep(Duration::from_millis(20));

        requests.notify_one();
        settle().await;
        assert_eq!(sent.load(Ordering::SeqCst), 1, "the first signal sends");
        for _ in 0..100 {
            requests.notify_one();
        }
        settle().await;
        assert_eq!(sent.load(Ordering::SeqCst), 1, "one in flight at a time");
        release_tx.send(()).unwrap();
        settle().await;
        assert_eq!(sent.load(Ordering::SeqCst), 2, "a hundred signals meanwhile make one more");
        release_tx.send(()).unwrap();
        settle().await;
        assert_eq!(sent.load(Ordering::SeqCst), 2, "and no third");
        task.abort();
    }
}
