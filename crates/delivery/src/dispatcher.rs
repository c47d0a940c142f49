//! Per-endpoint queues: the dispatcher's unit is an endpoint, so each endpoint's
//! concurrency cap, throttle, holds and circuit breaker ([`Control`]) hang off
//! one [`EndpointQueue`]. A global cap bounds requests in flight across endpoints.
//! Only the node that owns an endpoint's queue sends to it, so its throttle and
//! breaker hold cluster-wide.
//!
//! Work arrives by [`Dispatcher::submit`]: fresh deliveries straight from the
//! enqueue that committed them, and due ones from the claim loop. Every delivery
//! held here is leased to this node in the store under a fencing token; its
//! outcome carries the token, so it lands only while the lease is still this
//! node's. When the node stops, unsent deliveries are released back to the store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_core::ordering::OnFailure;
use hookd_core::timefmt::now_millis;
use hookd_core::RetrySchedule;
use hookd_store::{
    AuditEvent, BreakerState, DeliveryJob, Endpoint, EndpointHealth, Lease, NextState, Outcome, Queue, Resources,
};
use tokio::sync::{mpsc, Notify, Semaphore};
use tracing::Instrument;

use crate::control::{Control, ControlConfig, Verdict};
use crate::held::HeldLeases;
use crate::metrics::Metrics;
use crate::operational::Operational;
use crate::orgs::OrgSettingsCache;
use crate::record::{self, attempt_outcome};
use crate::sender::{HttpSender, ReceiverSignal, SendResult};
use crate::shaping::{Shaped, Shaper};

mod batch;

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// This process's lease owner name; unique per start.
    pub node_id: String,
    /// How long a lease protects a delivery held in memory. A crashed node's
    /// deliveries are taken over this long after it last renewed them.
    pub lease_duration: Duration,
    /// Requests in flight to one endpoint at most.
    pub endpoint_concurrency: usize,
    /// Requests in flight across all endpoints at most.
    pub max_in_flight: usize,
    /// Deliveries held in memory (queued or in flight) at most; beyond it fresh
    /// deliveries are committed scheduled and claimed when there is room.
    pub max_in_memory: usize,
    /// Payload bytes held in memory at most (each delivery counts its payload),
    /// so large payloads cannot exhaust memory before the count does.
    pub max_in_memory_bytes: usize,
    /// How often the store is asked for due retries (and expired leases rescued).
    pub poll_interval: Duration,
    pub retry_schedule: RetrySchedule,
    /// Throttling, holds, the breaker and auto-disable.
    pub control: ControlConfig,
    /// Count attempts in the statistics rollups (docs/operations.md).
    pub stats: bool,
    /// How often this node judges the SLAs.
    pub sla_interval: Duration,
    /// How often each endpoint's TLS certificate is checked again…
    pub cert_check_interval: Duration,
    /// …and how many days before it expires that is warned of.
    pub cert_warn_days: i64,
    /// How often this node looks for failure and ingest spikes.
    pub spike_interval: Duration,
}

/// The span a delivery's work runs in: every log line of it carries its ids
/// (a batch's: its first member's message, and the endpoint).
fn delivery_span(job: &DeliveryJob) -> tracing::Span {
    tracing::info_span!(
        "delivery",
        org_id = %job.org_id,
        app_id = %job.app_id,
        msg_id = %job.msg_id,
        endpoint_id = %job.endpoint.id,
        event_type = %job.event_type,
        attempt = job.attempts + 1,
    )
}

/// An event type's own retry schedule as read at a time (Unix ms).
type CachedSchedule = (i64, Option<Arc<RetrySchedule>>);

/// How long an event type's retry schedule is cached.
const SCHEDULE_TTL_MS: i64 = 10_000;
/// Control state of an endpoint with nothing queued is forgotten after this long
/// untouched (what matters of it is on the endpoint row).
const CONTROL_IDLE_MS: i64 = 600_000;

/// An endpoint's queue here holds this many times its concurrency at most…
const ENDPOINT_QUEUE_FACTOR: usize = 8;
/// …and never fewer than this.
const MIN_ENDPOINT_QUEUE: usize = 64;

struct EndpointQueue {
    /// The newest snapshot of the endpoint seen here: each delivery is sent with
    /// it, so an edit reaches deliveries already queued.
    endpoint: Arc<Endpoint>,
    waiting: VecDeque<DeliveryJob>,
    in_flight: usize,
    /// Batched endpoints: requests in flight (each carrying several
    /// deliveries), and since when the next batch has been filling.
    batches: usize,
    filling_since: Option<i64>,
}

/// Everything held in memory, under one lock.
#[derive(Default)]
struct Queues {
    by_endpoint: HashMap<String, EndpointQueue>,
    /// The deliveries queued, in flight, or with an outcome not yet written.
    held: HeldLeases,
    /// Delivery control per endpoint; outlives its queue while it matters.
    controls: HashMap<String, Control>,
    /// Endpoints with a timer armed to pump them (waiting for a throttle token).
    timers: HashSet<String>,
    /// Deliveries to ordered endpoints that are done, their outcome not yet
    /// written: once it is, the next of their key is due, and claimed at once.
    ordered_done: HashSet<i64>,
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    config: DispatcherConfig,
    queue: Arc<dyn Queue>,
    sender: HttpSender,
    metrics: Arc<Metrics>,
    queues: Mutex<Queues>,
    /// Deliveries queued or in flight here.
    in_memory: AtomicUsize,
    /// Payload bytes of those deliveries.
    in_memory_bytes: AtomicUsize,
    permits: Semaphore,
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// Outcomes handed to the recorder and not yet written.
    unrecorded: Arc<AtomicUsize>,
    closing: AtomicBool,
    /// When the last successful lease renewal started (Unix ms).
    renewed_at: AtomicI64,
    /// Wakes the claim loop early.
    pub(crate) wake: Notify,
    /// Signalled whenever a delivery leaves memory.
    drained: Notify,
    /// Endpoint health reports, written in order by one task.
    health: mpsc::UnboundedSender<(String, EndpointHealth)>,
    /// Operational events (endpoint disabled, attempts failing…).
    ops: Operational,
    /// Where hookd's own changes (an endpoint it disabled) are recorded in the audit trail.
    resources: Arc<dyn Resources>,
    /// Templates and transformations.
    shaper: Arc<Shaper>,
    /// Event types' own retry schedules: (org, event type) → (read at, schedule).
    schedules: Mutex<HashMap<(String, String), CachedSchedule>>,
    /// What delivering needs of each organisation (policy, sealed payloads).
    orgs: Arc<OrgSettingsCache>,
}

/// What the dispatcher shares with the rest of the delivering node.
pub struct SharedServices {
    /// Operational events (endpoint disabled, attempts failing…).
    pub ops: Operational,
    /// Where hookd's own changes are recorded in the audit trail.
    pub resources: Arc<dyn Resources>,
    /// What delivering needs of each organisation.
    pub orgs: Arc<OrgSettingsCache>,
    /// Templates and transformations.
    pub shaper: Arc<Shaper>,
}

impl Dispatcher {
    /// A GET under the organisation's destination policy (see [`HttpSender::fetch`]).
    pub async fn fetch(
        &self,
        org_id: &str,
        url: &str,
        headers: reqwest::header::HeaderMap,
        max_bytes: usize,
    ) -> Result<(u16, Vec<u8>), String> {
        let org = self.inner.orgs.get(org_id).await?;
        let policy = (!org.policy.is_empty()).then_some(&org.policy);
        self.inner.sender.fetch(url, headers, max_bytes, policy).await
    }

    /// Starts the dispatcher, its outcome recorder and the claim loop.
    pub fn start(
        config: DispatcherConfig,
        queue: Arc<dyn Queue>,
        sender: HttpSender,
        metrics: Arc<Metrics>,
        shared: SharedServices,
    ) -> Self {
        let SharedServices { ops, resources, orgs, shaper } = shared;
        let (tx, rx) = mpsc::unbounded_channel();
        let (health_tx, mut health_rx) = mpsc::unbounded_channel::<(String, EndpointHealth)>();
        let unrecorded = Arc::new(AtomicUsize::new(0));
        let inner = Arc::new(Inner {
            permits: Semaphore::new(config.max_in_flight),
            config,
            queue,
            sender,
            metrics,
            queues: Mutex::new(Queues::default()),
            in_memory: AtomicUsize::new(0),
            in_memory_bytes: AtomicUsize::new(0),
            outcomes: tx,
            unrecorded: unrecorded.clone(),
            closing: AtomicBool::new(false),
            renewed_at: AtomicI64::new(0),
            wake: Notify::new(),
            drained: Notify::new(),
            health: health_tx,
            ops,
            resources,
            schedules: Mutex::default(),
            orgs,
            shaper,
        });
        let dispatcher = Dispatcher { inner };
        let health_queue = dispatcher.inner.queue.clone();
        tokio::spawn(async move {
            while let Some((endpoint_id, health)) = health_rx.recv().await {
                if let Err(e) = health_queue.set_endpoint_health(&endpoint_id, &health).await {
                    tracing::warn!(error = %e, endpoint = %endpoint_id, "writing endpoint health failed");
                }
            }
        });
        let recorded = dispatcher.clone();
        tokio::spawn(record::run_recorder(
            dispatcher.inner.queue.clone(),
            dispatcher.inner.config.retry_schedule.clone(),
            rx,
            unrecorded,
            move |written| recorded.forget(written),
        ));
        tokio::spawn(crate::claim::run(dispatcher.clone()));
        dispatcher
    }

    pub fn config(&self) -> &DispatcherConfig {
        &self.inner.config
    }

    pub(crate) fn queue(&self) -> &Arc<dyn Queue> {
        &self.inner.queue
    }

    pub(crate) fn wake_handle(&self) -> &Notify {
        &self.inner.wake
    }

    /// A lease for deliveries this node is about to hold.
    pub fn lease(&self) -> Lease {
        Lease {
            owner: self.inner.config.node_id.clone(),
            duration_ms: self.inner.config.lease_duration.as_millis() as i64,
        }
    }

    /// A lease when there is room in memory for more work, else `None` (the
    /// deliveries are then committed scheduled and claimed later).
    pub fn lease_if_room(&self) -> Option<Lease> {
        (!self.is_closing() && self.room() > 0).then(|| self.lease())
    }

    /// How many more deliveries memory may hold.
    pub fn room(&self) -> usize {
        if self.inner.in_memory_bytes.load(Ordering::Relaxed) >= self.inner.config.max_in_memory_bytes {
            return 0;
        }
        self.inner.config.max_in_memory.saturating_sub(self.inner.in_memory.load(Ordering::Relaxed))
    }

    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Relaxed)
    }

    /// Asks the claim loop to look at the store now (after a recover or an enable).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Takes deliveries leased to this node and starts sending them.
    pub fn submit(&self, jobs: Vec<DeliveryJob>) {
        if jobs.is_empty() {
            return;
        }
        if self.is_closing() {
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            let now = now_millis();
            for job in &jobs {
                // A copy still queued or in flight here goes on under the new
                // token (and is released or recorded under it); any other is
                // given back under its own.
                if !queues.held.renew_if_held(job.delivery_id, job.lease_token, now) {
                    self.emit(record::released(job));
                }
            }
            return;
        }
        let mut touched: Vec<String> = Vec::new();
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut added = 0;
        let mut added_bytes = 0;
        let now = now_millis();
        for job in jobs {
            if queues.held.renew_if_held(job.delivery_id, job.lease_token, now) {
                continue;
            }
            let cap = self.endpoint_queue_cap(&job.endpoint);
            // One endpoint's backlog may not fill this node's memory: past its cap,
            // deliveries go back to the store (due now) and wait there.
            let depth = queues.by_endpoint.get(&job.endpoint.id).map_or(0, |q| q.waiting.len() + q.in_flight);
            let size = payload_size(&job);
            let bytes = self.inner.in_memory_bytes.load(Ordering::Relaxed) + added_bytes;
            let over_bytes = bytes + size > self.inner.config.max_in_memory_bytes && bytes > 0;
            if depth >= cap || over_bytes {
                let released = record::released(&job);
                self.emit(released);
                continue;
            }
            queues.held.hold(job.delivery_id, job.lease_token, now);
            added += 1;
            added_bytes += size;
            let id = job.endpoint.id.clone();
            if !touched.contains(&id) {
                touched.push(id.clone());
            }
            let q = queues.by_endpoint.entry(id).or_insert_with(|| EndpointQueue {
                endpoint: job.endpoint.clone(),
                waiting: VecDeque::new(),
                in_flight: 0,
                batches: 0,
                filling_since: None,
            });
            if job.endpoint.revision > q.endpoint.revision {
                q.endpoint = job.endpoint.clone();
            }
            q.waiting.push_back(job);
        }
        self.inner.in_memory.fetch_add(added, Ordering::Relaxed);
        self.inner.in_memory_bytes.fetch_add(added_bytes, Ordering::Relaxed);
        self.inner.metrics.in_memory.inc_by(added as i64);
        for id in &touched {
            self.pump(&mut queues, id);
        }
    }

    /// Endpoints held here with the revision of their snapshot.
    pub(crate) fn endpoint_revisions(&self) -> Vec<(String, i64)> {
        let queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.by_endpoint.iter().map(|(id, q)| (id.clone(), q.endpoint.revision)).collect()
    }

    /// Takes newer snapshots of endpoints (an edit here or on another node):
    /// queued deliveries are sent with them, and a disabled endpoint's queued
    /// deliveries are paused at once instead of sent.
    pub fn refresh_endpoints(&self, endpoints: Vec<Endpoint>) {
        let mut paused = Vec::new();
        {
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            for ep in endpoints {
                if ep.disabled {
                    // Enabled again, it starts afresh.
                    queues.controls.remove(&ep.id);
                }
                let Some(q) = queues.by_endpoint.get_mut(&ep.id) else { continue };
                if ep.revision <= q.endpoint.revision {
                    continue;
                }
                let (id, disabled) = (ep.id.clone(), ep.disabled);
                q.endpoint = Arc::new(ep);
                if disabled {
                    paused.extend(q.waiting.drain(..));
                    // Drop the queue if nothing of it is in flight either.
                    self.pump(&mut queues, &id);
                }
            }
        }
        self.release_queued(&paused, record::paused);
    }

    /// Cancels the deliveries of a message whose content was just expunged that
    /// are queued here (not yet sent): they carry their own copy of the payload.
    pub fn message_expunged(&self, msg_id: &str) {
        let canceled: Vec<DeliveryJob> = {
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            for q in queues.by_endpoint.values_mut() {
                let (gone, keep): (Vec<_>, Vec<_>) = q.waiting.drain(..).partition(|j| j.msg_id == msg_id);
                q.waiting = keep.into();
                out.extend(gone);
            }
            out
        };
        self.release_queued(&canceled, record::canceled);
    }

    /// Lets queued deliveries go (they never started) with the outcome `make` gives.
    fn release_queued(&self, jobs: &[DeliveryJob], make: fn(&DeliveryJob) -> Outcome) {
        if jobs.is_empty() {
            return;
        }
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        self.release_locked(&mut queues.held, jobs, make);
    }

    /// [`Dispatcher::release_queued`] with the queues' lock held.
    fn release_locked(&self, held: &mut HeldLeases, jobs: &[DeliveryJob], make: impl Fn(&DeliveryJob) -> Outcome) {
        if jobs.is_empty() {
            return;
        }
        for job in jobs {
            let mut outcome = make(job);
            outcome.lease_token = held.emitted(job.delivery_id, outcome.lease_token);
            self.emit(outcome);
        }
        self.inner.in_memory.fetch_sub(jobs.len(), Ordering::Relaxed);
        self.inner.in_memory_bytes.fetch_sub(jobs.iter().map(payload_size).sum(), Ordering::Relaxed);
        self.inner.metrics.in_memory.dec_by(jobs.len() as i64);
        self.inner.drained.notify_waiters();
    }

    /// Deliveries one endpoint may have here, queued and in flight: for a
    /// batched endpoint, room for a full batch more than it may have in flight.
    fn endpoint_queue_cap(&self, endpoint: &Endpoint) -> usize {
        let cap = (self.inner.config.endpoint_concurrency * ENDPOINT_QUEUE_FACTOR).max(MIN_ENDPOINT_QUEUE);
        match endpoint.control.batch {
            Some(b) => cap.max(b.max_messages as usize * (self.concurrency_cap(endpoint) + 1)),
            None => cap,
        }
    }

    /// Endpoints the claim loop skips: their queue here is at its cap, or they
    /// are held back (a receiver's hold, an open breaker).
    pub fn skip_endpoints(&self) -> Vec<String> {
        let now = now_millis();
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut skip: Vec<String> = queues
            .by_endpoint
            .iter()
            .filter(|(_, q)| q.waiting.len() + q.in_flight >= self.endpoint_queue_cap(&q.endpoint))
            .map(|(id, _)| id.clone())
            .collect();
        for (id, control) in queues.controls.iter_mut() {
            if control.blocked_until(now).is_some() && !skip.contains(id) {
                skip.push(id.clone());
            }
        }
        skip
    }

    /// Forgets the control state of endpoints with nothing here that have been
    /// quiet for a while.
    pub(crate) fn forget_idle_controls(&self) {
        let now = now_millis();
        let config = &self.inner.config;
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let Queues { by_endpoint, controls, .. } = &mut *queues;
        controls.retain(|id, c| {
            c.expire_window(&config.control, now);
            by_endpoint.contains_key(id)
                || (now - c.touched_at < CONTROL_IDLE_MS && !c.is_idle(config.endpoint_concurrency, now))
        });
    }

    /// Requests in flight to this endpoint at most: the server's cap, or the
    /// endpoint's own when lower.
    fn concurrency_cap(&self, endpoint: &Endpoint) -> usize {
        let cap = self.inner.config.endpoint_concurrency;
        endpoint.control.max_concurrency.map_or(cap, |c| (c as usize).clamp(1, cap))
    }

    /// Starts as many of the endpoint's waiting deliveries as its controls
    /// allow: none while it is held back (those waiting go back to the store,
    /// due when the hold ends), up to its current concurrency, and as fast as its
    /// throttle rate lets (a timer pumps again when the next token is due).
    fn pump(&self, queues: &mut Queues, endpoint_id: &str) {
        let Queues { by_endpoint, held, controls, timers, .. } = queues;
        let Some(q) = by_endpoint.get_mut(endpoint_id) else {
            return;
        };
        let now = now_millis();
        let cap = self.concurrency_cap(&q.endpoint);
        let fresh =
            || Control::new(&self.inner.config.control, cap, q.endpoint.health.as_ref(), q.endpoint.revision, now);
        let control = control_mut(controls, endpoint_id, fresh);
        if control.is_stale(&q.endpoint) {
            *control = fresh();
        }
        if let Some(until) = control.blocked_until(now) {
            let deferred: Vec<DeliveryJob> = q.waiting.drain(..).collect();
            self.release_locked(held, &deferred, |job| record::deferred(job, until - now));
            if until > control.wake_armed {
                control.wake_armed = until;
                self.wake_at(until);
            }
        } else if let Some(batch) = q.endpoint.control.batch.filter(|b| b.max_messages > 1) {
            // Batched: a request goes when it is full or its first message
            // has waited long enough (a timer pumps again then).
            let limit = control.concurrency(cap);
            let queue_cap = self.endpoint_queue_cap(&q.endpoint);
            while q.batches < limit && !q.waiting.is_empty() {
                let since = *q.filling_since.get_or_insert(now);
                let wait_ms = since + batch.max_wait_ms as i64 - now;
                // Full: as many as a request takes, as many as this node may
                // hold for the endpoint, or as many bytes as a request takes.
                let full = q.waiting.len() >= batch.max_messages as usize
                    || q.waiting.len() + q.in_flight >= queue_cap
                    || q.waiting.iter().map(payload_size).sum::<usize>() >= hookd_core::batching::MAX_BATCH_BYTES;
                if !full && wait_ms > 0 && !self.is_closing() {
                    self.pump_later(timers, endpoint_id, wait_ms);
                    break;
                }
                if let Err(wait_ms) = control.take_token(q.endpoint.rate_limit, now) {
                    self.pump_later(timers, endpoint_id, wait_ms);
                    break;
                }
                let mut jobs: Vec<DeliveryJob> = Vec::new();
                let mut bytes = 0;
                while jobs.len() < batch.max_messages as usize {
                    let Some(next) = q.waiting.front() else { break };
                    let size = payload_size(next);
                    if !jobs.is_empty() && bytes + size > hookd_core::batching::MAX_BATCH_BYTES {
                        break;
                    }
                    bytes += size;
                    let Some(mut job) = q.waiting.pop_front() else { break };
                    if !Arc::ptr_eq(&job.endpoint, &q.endpoint) {
                        job.endpoint = q.endpoint.clone();
                    }
                    jobs.push(job);
                }
                // The whole request is the half-open breaker's one probe.
                control.started(jobs[0].delivery_id);
                q.in_flight += jobs.len();
                q.batches += 1;
                q.filling_since = (!q.waiting.is_empty()).then_some(now);
                let this = self.clone();
                let span = delivery_span(&jobs[0]);
                tokio::spawn(async move { this.deliver_batch(jobs).await }.instrument(span));
            }
        } else {
            let limit = control.concurrency(cap);
            while q.in_flight < limit && !q.waiting.is_empty() {
                if let Err(wait_ms) = control.take_token(q.endpoint.rate_limit, now) {
                    self.pump_later(timers, endpoint_id, wait_ms);
                    break;
                }
                let Some(mut job) = q.waiting.pop_front() else { break };
                if !Arc::ptr_eq(&job.endpoint, &q.endpoint) {
                    job.endpoint = q.endpoint.clone();
                }
                control.started(job.delivery_id);
                q.in_flight += 1;
                let this = self.clone();
                let span = delivery_span(&job);
                tokio::spawn(async move { this.deliver(job).await }.instrument(span));
            }
        }
        if q.waiting.is_empty() {
            q.filling_since = None;
        }
        if q.in_flight == 0 && q.waiting.is_empty() {
            by_endpoint.remove(endpoint_id);
            if controls.get(endpoint_id).is_some_and(|c| c.is_idle(self.inner.config.endpoint_concurrency, now)) {
                controls.remove(endpoint_id);
            }
        }
    }

    /// Pumps the endpoint again in `wait_ms` (one timer per endpoint at a time).
    fn pump_later(&self, timers: &mut HashSet<String>, endpoint_id: &str, wait_ms: i64) {
        if timers.insert(endpoint_id.to_string()) {
            let (this, id) = (self.clone(), endpoint_id.to_string());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait_ms.max(0) as u64)).await;
                let mut queues = this.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
                queues.timers.remove(&id);
                this.pump(&mut queues, &id);
            });
        }
    }

    /// Wakes the claim loop at `at` (Unix ms), when held-back deliveries are due.
    fn wake_at(&self, at: i64) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((at - now_millis()).max(0) as u64 + 5)).await;
            this.wake();
        });
    }

    /// Sends one delivery and hands its outcome to the recorder.
    async fn deliver(self, job: DeliveryJob) {
        let permit = self.inner.permits.acquire().await;
        // A plain success is folded into the endpoint's control state when the
        // delivery finishes, under the lock taken then anyway (the hot path).
        let mut plain_success = None;
        let outcome = if self.is_closing() || permit.is_err() || self.lease_may_be_lost(job.delivery_id, now_millis()) {
            record::released(&job)
        } else if job.endpoint.disabled {
            record::paused(&job)
        } else {
            match &job.payload {
                // Expunged after the delivery was made.
                None => record::canceled(&job),
                Some(body) => {
                    let org = self.inner.orgs.get(&job.org_id).await;
                    let ready = org.clone().and_then(|org| Ok((org, open_payload(&job, body)?)));
                    let shaped = match ready {
                        Ok((org, body)) => self.inner.shaper.shape(&job, body).await.map(|s| (org, s)),
                        Err(why) => Err(why),
                    };
                    let result = match shaped {
                        Ok((org, Shaped::Send(out))) => {
                            let policy = (!org.policy.is_empty()).then_some(&org.policy);
                            self.inner.sender.send(&job, &out, now_millis(), policy).await
                        }
                        Ok((_, Shaped::Canceled)) => {
                            drop(permit);
                            self.finished(&job, record::canceled(&job), None);
                            return;
                        }
                        Err(why) => SendResult { body: format!("not sent: {why}"), ..Default::default() },
                    };
                    let seal_response = org.as_ref().is_ok_and(|o| o.encrypt_payloads);
                    let now = now_millis();
                    record::count_attempt(&self.inner.metrics, &job, &result, now);
                    let (next, note) = if result.is_success() && result.signal.is_none() && !result.timed_out {
                        plain_success = Some(now);
                        (NextState::Succeeded, None)
                    } else {
                        self.after_attempt(&job, &result, now).await
                    };
                    let mut outcome = attempt_outcome(&job, result, next, now, self.inner.config.stats);
                    if let (Some(note), Some(a)) = (note, outcome.attempt.as_mut()) {
                        // What hookd did about the answer, recorded with it.
                        a.response.push_str(note);
                    }
                    if seal_response {
                        seal_attempt_response(&mut outcome);
                    }
                    self.attempt_events(&job, &outcome);
                    outcome
                }
            }
        };
        drop(permit);
        self.finished(&job, outcome, plain_success);
    }

    /// Folds an attempt into its endpoint's control state, acts on what the
    /// receiver asked for, and says where the delivery goes next (with a note for
    /// the attempt when hookd acted on a receiver's signal).
    async fn after_attempt(
        &self,
        job: &DeliveryJob,
        result: &SendResult,
        now: i64,
    ) -> (NextState, Option<&'static str>) {
        let config = &self.inner.config.control;
        let endpoint = &job.endpoint;
        // Retry-After counts on 429 and 503, as HTTP has it.
        let retry_after = result
            .retry_after
            .filter(|_| matches!(result.status, Some(429 | 503)))
            .map(|d| d.min(config.retry_after_max));
        let (changed, hold_until, report) = {
            let cap = self.concurrency_cap(endpoint);
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            let control = control_mut(&mut queues.controls, &endpoint.id, || {
                Control::new(config, cap, endpoint.health.as_ref(), endpoint.revision, now)
            });
            let before = control.breaker();
            let changed = control.record(config, Verdict::of(result), retry_after, cap, now);
            let hold_until = control.blocked_until(now);
            let report = changed.health.then(|| control.health(now));
            if before != control.breaker() {
                self.inner.metrics.breaker_moved(control.breaker());
            }
            if changed.health {
                let open = queues.controls.values().filter(|c| c.breaker() != BreakerState::Closed).count();
                self.inner.metrics.breakers_open.set(open as i64);
            }
            (changed, hold_until, report)
        };
        if let Some(health) = report {
            let _ = self.inner.health.send((endpoint.id.clone(), health));
        }
        if changed.held {
            self.inner.metrics.endpoint_holds.inc();
        }

        let gone = result.status == Some(410);
        let asked_to_disable = result.signal == Some(ReceiverSignal::Disable);
        let disabled = if gone || asked_to_disable || changed.disable {
            let reason = if gone {
                "gone"
            } else if asked_to_disable {
                "receiver"
            } else {
                "failing"
            };
            self.disable_endpoint(job, reason).await
        } else {
            false
        };
        let note = if gone {
            Some(" [hookd: 410 Gone: the endpoint was disabled]")
        } else if asked_to_disable {
            self.inner.metrics.receiver_signal("disable");
            Some(" [hookd: webhook-delivery: disable: the endpoint was disabled]")
        } else if changed.disable {
            Some(" [hookd: the endpoint failed for too long and was disabled]")
        } else {
            None
        };
        if result.is_success() {
            return (NextState::Succeeded, note);
        }
        if disabled {
            // It waits for the endpoint to be enabled again, spending nothing.
            return (NextState::Paused, note);
        }
        if result.signal == Some(ReceiverSignal::AbortMessage) {
            self.inner.metrics.receiver_signal("abort_message");
            return (NextState::Failed, Some(" [hookd: webhook-delivery: abort-message: no more attempts]"));
        }
        // An ordered endpoint that skips: this message gives way to the next.
        // (Not when hookd could not even make the request: that is not the
        // receiver failing this message.)
        let requested = result.status.is_some() || result.timed_out || result.headers.sent.is_some();
        if requested && job.endpoint.control.ordering.as_ref().is_some_and(|o| o.on_failure == OnFailure::Skip) {
            return (
                NextState::Failed,
                Some(" [hookd: ordered endpoint (onFailure: skip): no retries; the next message goes]"),
            );
        }
        let schedule = self.schedule_for(job, now).await;
        let attempts = job.attempts + 1;
        let Some(delay) = schedule.next_delay(attempts) else { return (NextState::Failed, note) };
        // Retry-After postpones the next attempt, never brings it forward: a
        // receiver's short Retry-After must not burn the schedule in seconds.
        let mut after_ms = delay.as_millis() as i64;
        if let Some(ra) = retry_after {
            after_ms = after_ms.max(ra.as_millis() as i64);
        }
        if let Some(until) = hold_until {
            after_ms = after_ms.max(until - now);
        }
        (NextState::Retry { after_ms }, note)
    }

    /// Operational events of an attempt, as Svix sends them: `failing` at the
    /// fourth failure, `exhausted` when no attempt is left, `recovered` at a
    /// success after `failing` was sent.
    fn attempt_events(&self, job: &DeliveryJob, outcome: &Outcome) {
        let Some(attempt) = &outcome.attempt else { return };
        let event = match outcome.next {
            NextState::Succeeded if job.attempts >= 4 => "message.attempt.recovered",
            NextState::Failed => "message.attempt.exhausted",
            NextState::Retry { .. } if outcome.attempts == 4 => "message.attempt.failing",
            _ => return,
        };
        let (ops, endpoint, attempt) = (self.inner.ops.clone(), job.endpoint.clone(), attempt.clone());
        tokio::spawn(async move {
            ops.emit_for_attempt(
                event,
                &endpoint,
                &attempt.msg_id,
                None,
                &attempt.id,
                attempt.response_status_code,
                attempt.created_at,
            )
            .await;
        });
    }

    /// Disables the endpoint at a receiver's request or after sustained failure;
    /// whether it is disabled now.
    async fn disable_endpoint(&self, job: &DeliveryJob, reason: &'static str) -> bool {
        match self.inner.queue.disable_endpoint(&job.org_id, &job.app_id, &job.endpoint.id).await {
            Ok(updated) if updated.was_disabled => {
                // Another attempt in flight got there first.
                self.refresh_endpoints(vec![updated.endpoint]);
                true
            }
            Ok(updated) => {
                tracing::info!(endpoint = %job.endpoint.id, reason, "disabled the endpoint");
                self.inner.metrics.endpoint_disabled(reason);
                // Enabled again, it starts afresh (the store clears its health then).
                self.inner.queues.lock().unwrap_or_else(|e| e.into_inner()).controls.remove(&job.endpoint.id);
                let fail_since = updated.endpoint.health.as_ref().and_then(|h| h.failing_since);
                let audit = AuditEvent {
                    org_id: job.org_id.clone(),
                    at: now_millis(),
                    actor: "hookd".into(),
                    action: format!("endpoint.disabled ({reason})"),
                    target: format!("/api/v1/app/{}/endpoint/{}", job.app_id, job.endpoint.id),
                    status: 0,
                    address: None,
                };
                let resources = self.inner.resources.clone();
                tokio::spawn(async move {
                    if let Err(e) = resources.append_audit(vec![audit]).await {
                        tracing::error!(error = %e, "recording an audit entry failed");
                    }
                });
                let ops = self.inner.ops.clone();
                let endpoint = updated.endpoint.clone();
                tokio::spawn(async move {
                    let extra = serde_json::json!({
                        "trigger": "automatic",
                        "reason": reason,
                        "failSince": fail_since.map(hookd_core::timefmt::format_millis),
                    });
                    ops.emit_for_endpoint("endpoint.disabled", &endpoint, extra).await;
                });
                self.refresh_endpoints(vec![updated.endpoint]);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %job.endpoint.id, reason, "disabling the endpoint failed");
                false
            }
        }
    }

    /// The retry schedule for this delivery: the endpoint's own, else its event
    /// type's, else the server's.
    async fn schedule_for(&self, job: &DeliveryJob, now: i64) -> Arc<RetrySchedule> {
        if let Some(ms) = &job.endpoint.control.retry_schedule_ms {
            if let Ok(s) = RetrySchedule::from_millis(ms) {
                return Arc::new(s);
            }
        }
        let key = (job.org_id.clone(), job.event_type.clone());
        let cached = {
            let schedules = self.inner.schedules.lock().unwrap_or_else(|e| e.into_inner());
            schedules.get(&key).filter(|(at, _)| now - at < SCHEDULE_TTL_MS).map(|(_, s)| s.clone())
        };
        let own = match cached {
            Some(s) => s,
            None => {
                let read = match self.inner.queue.event_type_retry_schedule(&job.org_id, &job.event_type).await {
                    Ok(ms) => ms.and_then(|ms| RetrySchedule::from_millis(&ms).ok()).map(Arc::new),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the event type's retry schedule failed");
                        None
                    }
                };
                let mut schedules = self.inner.schedules.lock().unwrap_or_else(|e| e.into_inner());
                if schedules.len() >= 10_000 {
                    schedules.clear();
                }
                schedules.insert(key, (now, read.clone()));
                read
            }
        };
        own.unwrap_or_else(|| Arc::new(self.inner.config.retry_schedule.clone()))
    }

    fn emit(&self, outcome: Outcome) {
        self.inner.unrecorded.fetch_add(1, Ordering::SeqCst);
        if self.inner.outcomes.send(outcome).is_err() {
            self.inner.unrecorded.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The delivery's outcome leaves for the recorder (under the newest token
    /// this node holds it by), its endpoint's control state learns of it, and
    /// its slot goes to the next waiting delivery: all under one lock.
    fn finished(&self, job: &DeliveryJob, mut outcome: Outcome, plain_success: Option<i64>) {
        {
            let cap = self.endpoint_queue_cap(&job.endpoint);
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            outcome.lease_token = queues.held.emitted(job.delivery_id, outcome.lease_token);
            let attempted = outcome.attempt.is_some();
            if job.endpoint.control.ordering.is_some() && !matches!(outcome.next, NextState::Retry { .. }) {
                queues.ordered_done.insert(job.delivery_id);
            }
            self.emit(outcome);
            if let Some(control) = queues.controls.get_mut(&job.endpoint.id) {
                if !attempted {
                    control.not_attempted(job.delivery_id);
                } else if let Some(now) = plain_success {
                    let ok = Verdict { healthy: true, overloaded: false, throttled: false };
                    let endpoint_cap = self.concurrency_cap(&job.endpoint);
                    let before = control.breaker();
                    let changed = control.record(&self.inner.config.control, ok, None, endpoint_cap, now);
                    if changed.health {
                        let report = control.health(now);
                        if before != control.breaker() {
                            self.inner.metrics.breaker_moved(control.breaker());
                            let open = queues.controls.values().filter(|c| c.breaker() != BreakerState::Closed).count();
                            self.inner.metrics.breakers_open.set(open as i64);
                        }
                        let _ = self.inner.health.send((job.endpoint.id.clone(), report));
                    }
                }
            }
            if let Some(q) = queues.by_endpoint.get_mut(&job.endpoint.id) {
                // A full queue may have turned work away to the store: fetch it
                // as soon as there is room, not at the next poll.
                if q.waiting.len() + q.in_flight == cap {
                    self.inner.wake.notify_one();
                }
                q.in_flight -= 1;
            }
            self.pump(&mut queues, &job.endpoint.id);
        }
        self.inner.in_memory.fetch_sub(1, Ordering::Relaxed);
        self.inner.in_memory_bytes.fetch_sub(payload_size(job), Ordering::Relaxed);
        self.inner.metrics.in_memory.dec();
        self.inner.drained.notify_waiters();
    }

    /// Lets go of deliveries whose outcomes are written: from now on the store
    /// alone says what happens to them. (Until then they stay held, so a claim
    /// that reads the store before the outcome lands cannot send them twice.)
    fn forget(&self, written: &[Outcome]) {
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut next_due = false;
        for o in written {
            queues.held.written(o.delivery_id, o.lease_token);
            next_due |= !queues.ordered_done.is_empty() && queues.ordered_done.remove(&o.delivery_id);
        }
        if next_due {
            self.inner.wake.notify_one();
        }
    }

    /// Notes that every lease held when `started` (Unix ms) was renewed.
    pub(crate) fn renewed(&self, started: i64) {
        self.inner.renewed_at.fetch_max(started, Ordering::Relaxed);
    }

    /// Whether this node's lease on a delivery may have run out: neither taken
    /// nor renewed within two thirds of the lease (renewal runs every third).
    /// Such a delivery may be another node's by now and is not sent.
    fn lease_may_be_lost(&self, delivery_id: i64, now: i64) -> bool {
        let leased_at = {
            let queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.held.since(delivery_id).unwrap_or(now)
        };
        let fresh_since = leased_at.max(self.inner.renewed_at.load(Ordering::Relaxed));
        now - fresh_since > self.inner.config.lease_duration.as_millis() as i64 * 2 / 3
    }

    /// Ids of the deliveries held here and of the endpoints they go to.
    pub fn held(&self) -> (Vec<i64>, Vec<String>) {
        let queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        (queues.held.ids(), queues.by_endpoint.keys().cloned().collect())
    }

    /// Deliveries queued or in flight on this node.
    pub fn in_memory(&self) -> usize {
        self.inner.in_memory.load(Ordering::Relaxed)
    }

    /// Stops taking work, releases what has not started, lets requests in flight
    /// finish for up to `grace`, and waits until every outcome is written.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let waiting: Vec<DeliveryJob> = {
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            queues.by_endpoint.values_mut().flat_map(|q| q.waiting.drain(..)).collect()
        };
        self.release_queued(&waiting, record::released);
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_memory() > 0 && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), self.inner.drained.notified()).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.inner.unrecorded.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Let other nodes take this node's endpoints at once.
        if let Err(e) = self.inner.queue.release_endpoints(&self.inner.config.node_id).await {
            tracing::warn!(error = %e, "releasing endpoint ownership failed");
        }
    }
}

/// The endpoint's control state, made with `make` when there is none (without
/// allocating a key on the hot path, where it exists).
fn control_mut<'a>(
    controls: &'a mut HashMap<String, Control>,
    id: &str,
    make: impl FnOnce() -> Control,
) -> &'a mut Control {
    if !controls.contains_key(id) {
        controls.insert(id.to_string(), make());
    }
    controls.get_mut(id).expect("inserted above when missing")
}

/// Seals the attempt's response body and headers (an organisation that
/// encrypts payloads).
pub(crate) fn seal_attempt_response(outcome: &mut Outcome) {
    let Some(a) = outcome.attempt.as_mut() else { return };
    let context = format!("{}:response", a.id);
    if let Some(sealed) = hookd_store::crypt::seal_body(a.response.as_bytes(), &context) {
        a.response = String::from_utf8(sealed).unwrap_or_default();
    }
    // The receiver's headers are sealed like its body.
    let received = a.headers.as_mut().and_then(|h| h.received.as_mut());
    if let Some(received) = received {
        let context = format!("{}:response-headers", a.id);
        if let Some(sealed) = hookd_store::crypt::seal_body(received.as_bytes(), &context) {
            *received = String::from_utf8(sealed).unwrap_or_default();
        }
    }
}

/// The payload as its sender wrote it: opened when sealed at rest.
pub(crate) fn open_payload(job: &DeliveryJob, body: &Arc<[u8]>) -> Result<Arc<[u8]>, String> {
    if !hookd_store::crypt::is_sealed(body) {
        return Ok(body.clone());
    }
    hookd_store::crypt::open_body(body, &format!("{}:payload", job.msg_id))
        .map(Arc::from)
        .map_err(|e| format!("the payload cannot be opened: {e}"))
}

pub(crate) fn payload_size(job: &DeliveryJob) -> usize {
    job.payload.as_ref().map_or(0, |p| p.len())
}
