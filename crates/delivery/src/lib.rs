//! hookd's delivery engine. [`Deliveries`] is what the API talks to: it commits
//! a message with its fan-out and hands the fresh deliveries to this node's
//! dispatcher ([`Deliveries::accept`]), resends, and starts background tasks —
//! so no caller ever sees a lease. Underneath:
//!
//! - [`dispatcher`]: per-endpoint queues and the concurrency caps.
//! - [`claim`]: the loop that leases due work from the store, rescues expired
//!   leases, renews this node's, and refreshes endpoint snapshots.
//! - [`sender`]: builds and sends one request; [`ssrf`] guards where it may go.
//! - [`record`]: turns a send result into the delivery's next state and writes
//!   outcomes in batches.
//! - [`tasks`]: runs background tasks (recover, replay) in batches.
//! - [`retention`]: the sweep that expires payloads and frees space.

pub mod checks;
pub mod claim;
pub mod control;
pub mod dispatcher;
mod held;
pub mod jwt;
pub mod metrics;
mod oauth;
pub mod operational;
pub mod orgs;
pub mod probe;
pub mod record;
pub mod relay;
pub mod retention;
pub mod sender;
pub mod shaping;
pub mod sla;
pub mod spikes;
pub mod ssrf;
pub mod tasks;
pub mod transport;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

pub use dispatcher::{Dispatcher, DispatcherConfig, SharedServices};
use hookd_store::{
    BackgroundTask, Endpoint, EndpointUpdated, IdempotencyRecord, InboundRequest, Ingested, Message, Queue, Resources,
    Result, StoreError,
};
pub use metrics::Metrics;
pub use operational::Operational;
use orgs::OrgSettingsCache;
pub use retention::RetentionConfig;
pub use sender::{HttpSender, SenderConfig};
use shaping::Shaper;
use tokio::sync::Notify;

/// The delivery pipeline as the API sees it.
#[derive(Clone)]
pub struct Deliveries {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Arc<dyn Queue>,
    /// `None` on a node that only accepts (the `api` role): workers deliver.
    dispatcher: Option<Dispatcher>,
    metrics: Arc<Metrics>,
    /// Wakes this node's task runner when it creates a task.
    tasks: Arc<Notify>,
    closing: Arc<AtomicBool>,
    ops: Operational,
    orgs: Arc<OrgSettingsCache>,
    shaper: Arc<Shaper>,
    /// Sends endpoint checks' probes and test events (on every node).
    checker: HttpSender,
    resources: Arc<dyn Resources>,
}

impl Deliveries {
    /// A delivering node: the dispatcher (with its claim loop and recorder), the
    /// background task runner and the retention sweep.
    pub fn start(
        config: DispatcherConfig,
        retention: RetentionConfig,
        resources: Arc<dyn Resources>,
        queue: Arc<dyn Queue>,
        sender: HttpSender,
        metrics: Arc<Metrics>,
    ) -> Self {
        let orgs = Arc::new(OrgSettingsCache::new(queue.clone()));
        let ops = Operational::new(resources.clone(), queue.clone(), orgs.clone());
        let shaper = Arc::new(Shaper::new(resources.clone()));
        let resources_for_slas = resources.clone();
        let resources_kept = resources.clone();
        let checker = sender.clone();
        let dispatcher = Dispatcher::start(
            config,
            queue.clone(),
            sender,
            metrics.clone(),
            SharedServices { ops: ops.clone(), resources, orgs: orgs.clone(), shaper: shaper.clone() },
        );
        let tasks = Arc::new(Notify::new());
        let closing = Arc::new(AtomicBool::new(false));
        tokio::spawn(
            tasks::TaskRunner {
                queue: queue.clone(),
                lease: dispatcher.lease(),
                poll_interval: dispatcher.config().poll_interval,
                wake: tasks.clone(),
                closing: closing.clone(),
                ops: ops.clone(),
            }
            .run(),
        );
        tokio::spawn(retention::run(queue.clone(), retention));
        tokio::spawn(
            sla::SlaJudge {
                resources: resources_for_slas,
                queue: queue.clone(),
                ops: ops.clone(),
                metrics: metrics.clone(),
                interval: dispatcher.config().sla_interval,
            }
            .run(),
        );
        tokio::spawn(
            spikes::SpikeWatch {
                queue: queue.clone(),
                resources: resources_kept.clone(),
                ops: ops.clone(),
                interval: dispatcher.config().spike_interval,
            }
            .run(),
        );
        tokio::spawn(
            checks::CertWatch {
                sender: checker.clone(),
                orgs: orgs.clone(),
                resources: resources_kept.clone(),
                queue: queue.clone(),
                ops: ops.clone(),
                interval: dispatcher.config().cert_check_interval,
                warn_days: dispatcher.config().cert_warn_days,
            }
            .run(),
        );
        Deliveries {
            inner: Arc::new(Inner {
                queue,
                dispatcher: Some(dispatcher),
                metrics,
                tasks,
                closing,
                ops,
                orgs,
                shaper,
                checker,
                resources: resources_kept,
            }),
        }
    }

    /// A node that accepts and stores only; delivering nodes pick the work up.
    pub fn accept_only(
        resources: Arc<dyn Resources>,
        queue: Arc<dyn Queue>,
        metrics: Arc<Metrics>,
        checker: HttpSender,
    ) -> Self {
        let orgs = Arc::new(OrgSettingsCache::new(queue.clone()));
        let shaper = Arc::new(Shaper::new(resources.clone()));
        let ops = Operational::new(resources.clone(), queue.clone(), orgs.clone());
        Deliveries {
            inner: Arc::new(Inner {
                queue,
                dispatcher: None,
                metrics,
                tasks: Arc::new(Notify::new()),
                closing: Arc::new(AtomicBool::new(false)),
                ops,
                orgs,
                shaper,
                checker,
                resources,
            }),
        }
    }

    /// Checks the endpoint now (DNS, TLS, and a signed test event when
    /// `send_test`), stores the result with it, and answers it.
    pub async fn check_endpoint(&self, ep: &Endpoint, send_test: bool) -> Result<probe::EndpointCheck> {
        checks::check_and_store(&self.inner.checker, &self.inner.orgs, &*self.inner.resources, ep, send_test).await
    }

    /// Forgets a deleted endpoint's check.
    pub async fn forget_check(&self, endpoint_id: &str) {
        if let Err(e) = self.inner.queue.delete_endpoint_check(endpoint_id).await {
            tracing::warn!(error = %e, endpoint = %endpoint_id, "forgetting an endpoint check failed");
        }
    }

    /// Checks the endpoint in the background (after it was made or its URL
    /// changed): DNS and TLS only.
    pub fn check_later(&self, ep: Endpoint) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.check_endpoint(&ep, false).await {
                tracing::warn!(error = %e, endpoint = %ep.id, "storing an endpoint check failed");
            }
        });
    }

    /// Operational webhooks: events about the organisation's endpoints, messages and tasks.
    pub fn operational(&self) -> &Operational {
        &self.inner.ops
    }

    /// Templates and transformations, at send time.
    pub fn shaper(&self) -> &Arc<Shaper> {
        &self.inner.shaper
    }

    pub fn dispatcher(&self) -> Option<&Dispatcher> {
        self.inner.dispatcher.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The `hookd listen` tunnels connected to this node.
    pub fn relay(&self) -> &Arc<relay::RelayHub> {
        self.inner.checker.relay()
    }

    /// Commits the message with its fan-out (to every matching endpoint, or only
    /// to `only_endpoint`) and hands the deliveries this node may send to its
    /// dispatcher. Returns once the commit is durable.
    pub async fn accept(
        &self,
        mut msg: Message,
        only_endpoint: Option<String>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<()> {
        // Commit and hand over in a task of its own: if the client goes away
        // while this runs, the caller is dropped, but committed deliveries must
        // still reach the dispatcher rather than wait out their lease.
        // Sealed first when the organisation encrypts payloads at rest.
        self.inner.orgs.seal_message(&mut msg).await.map_err(StoreError::Unavailable)?;
        let this = self.clone();
        tokio::spawn(async move {
            let dispatcher = this.inner.dispatcher.as_ref();
            let lease = dispatcher.and_then(|d| d.lease_if_room());
            let leased = lease.is_some();
            let jobs = this.inner.queue.enqueue(msg, only_endpoint, lease, idem).await?;
            this.inner.metrics.messages_accepted.inc();
            if let Some(d) = dispatcher {
                if leased {
                    d.submit(jobs);
                } else {
                    d.wake();
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Stores a received request and, for an accepted one, its message with its
    /// fan-out (see `Queue::ingest`), then hands the deliveries this node may
    /// send to its dispatcher. Returns once the commit is durable. The
    /// request's body and the message's payload are sealed when the
    /// organisation encrypts payloads.
    pub async fn ingest(&self, mut req: InboundRequest, mut msg: Option<Message>) -> Result<Ingested> {
        if self.inner.orgs.get(&req.org_id).await.map_err(StoreError::Unavailable)?.encrypt_payloads {
            req.body = hookd_store::crypt::seal_body(&req.body, &format!("{}:body", req.id)).ok_or_else(|| {
                StoreError::Unavailable("the organisation encrypts payloads, and no encryption key was given".into())
            })?;
        }
        if let Some(m) = msg.as_mut() {
            self.inner.orgs.seal_message(m).await.map_err(StoreError::Unavailable)?;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let dispatcher = this.inner.dispatcher.as_ref();
            let lease = dispatcher.and_then(|d| d.lease_if_room());
            let leased = lease.is_some();
            let accepted = msg.is_some();
            let mut ingested = this.inner.queue.ingest(req, msg, lease).await?;
            if accepted && ingested.duplicate_of.is_none() && !ingested.ignored {
                this.inner.metrics.messages_accepted.inc();
            }
            if let Some(d) = dispatcher {
                if leased {
                    d.submit(std::mem::take(&mut ingested.jobs));
                } else {
                    d.wake();
                }
            }
            Ok(ingested)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Sends the message to the endpoint again as a manual attempt (see
    /// `Queue::resend`): now when the delivery waits or is finished, right after
    /// its attempt when one is in flight.
    pub async fn resend(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
        idem: Option<IdempotencyRecord>,
    ) -> Result<()> {
        // In a task of its own, as `accept`: a delivery leased here must reach
        // the dispatcher even if the caller goes away.
        let this = self.clone();
        let (org, app, msg, ep) = (org_id.to_string(), app_id.to_string(), msg_id.to_string(), endpoint_id.to_string());
        tokio::spawn(async move {
            let dispatcher = this.inner.dispatcher.as_ref();
            let lease = dispatcher.and_then(|d| d.lease_if_room());
            let jobs = this.inner.queue.resend(&org, &app, &msg, &ep, lease, idem).await?;
            if let Some(d) = dispatcher {
                if jobs.is_empty() {
                    d.wake();
                } else {
                    d.submit(jobs);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Tells this node that a message's content was expunged: its deliveries
    /// queued here are canceled rather than sent with the copy they hold.
    pub fn message_expunged(&self, msg_id: &str) {
        if let Some(d) = &self.inner.dispatcher {
            d.message_expunged(msg_id);
        }
    }

    /// Scheduled and leased deliveries in the store.
    pub async fn queue_depth(&self) -> Result<u64> {
        self.inner.queue.pending_count().await
    }

    /// How long the earliest scheduled delivery has been due, in milliseconds
    /// (0 when nothing is overdue).
    pub async fn queue_lag_ms(&self) -> Result<i64> {
        let due = self.inner.queue.oldest_due().await?;
        Ok(due.map_or(0, |d| (hookd_core::timefmt::now_millis() - d).max(0)))
    }

    /// Stores a background task; a delivering node runs it.
    pub async fn start_task(&self, task: BackgroundTask, idem: Option<IdempotencyRecord>) -> Result<BackgroundTask> {
        let task = self.inner.queue.create_task(task, idem).await?;
        self.inner.tasks.notify_one();
        Ok(task)
    }

    /// Tells this node about an endpoint edit made here: its queued deliveries
    /// take the new settings now (other nodes see it at their next renewal), and
    /// deliveries an enable resumed are claimed at once.
    pub fn endpoint_changed(&self, updated: &EndpointUpdated) {
        if let Some(d) = &self.inner.dispatcher {
            d.refresh_endpoints(vec![updated.endpoint.clone()]);
            if updated.resumed > 0 {
                d.wake();
            }
        }
    }

    /// Stops the task runner and the dispatcher (see `Dispatcher::shutdown`).
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.tasks.notify_one();
        if let Some(d) = &self.inner.dispatcher {
            d.shutdown(grace).await;
        }
    }
}
