//! Per-endpoint queues: the dispatcher's unit is an endpoint, so each endpoint's
//! concurrency cap (and later its throttle, breaker and ordering) hangs off one
//! [`EndpointQueue`]. A global cap bounds requests in flight across endpoints.
//!
//! Work arrives by [`Dispatcher::submit`]: fresh deliveries straight from the
//! enqueue that committed them, and due ones from the claim loop. Every delivery
//! held here is leased to this node in the store under a fencing token; its
//! outcome carries the token, so it lands only while the lease is still this
//! node's. When the node stops, unsent deliveries are released back to the store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookd_core::timefmt::now_millis;
use hookd_core::RetrySchedule;
use hookd_store::{DeliveryJob, Endpoint, Lease, Outcome, Queue};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::held::HeldLeases;
use crate::metrics::Metrics;
use crate::record::{self, attempt_outcome};
use crate::sender::HttpSender;

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
}

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
}

/// Everything held in memory, under one lock.
#[derive(Default)]
struct Queues {
    by_endpoint: HashMap<String, EndpointQueue>,
    /// The deliveries queued, in flight, or with an outcome not yet written.
    held: HeldLeases,
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
}

impl Dispatcher {
    /// Starts the dispatcher, its outcome recorder and the claim loop.
    pub fn start(config: DispatcherConfig, queue: Arc<dyn Queue>, sender: HttpSender, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
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
        });
        let dispatcher = Dispatcher { inner };
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
            for job in &jobs {
                self.emit_for(job, record::released(job));
            }
            return;
        }
        let mut touched: Vec<String> = Vec::new();
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut added = 0;
        let mut added_bytes = 0;
        let cap = self.endpoint_queue_cap();
        let now = now_millis();
        for job in jobs {
            if queues.held.renew_if_held(job.delivery_id, job.lease_token, now) {
                continue;
            }
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
        for job in jobs {
            self.emit_for(job, make(job));
        }
        self.inner.in_memory.fetch_sub(jobs.len(), Ordering::Relaxed);
        self.inner.in_memory_bytes.fetch_sub(jobs.iter().map(payload_size).sum(), Ordering::Relaxed);
        self.inner.metrics.in_memory.dec_by(jobs.len() as i64);
        self.inner.drained.notify_waiters();
    }

    /// Deliveries one endpoint may have here, queued and in flight.
    fn endpoint_queue_cap(&self) -> usize {
        (self.inner.config.endpoint_concurrency * ENDPOINT_QUEUE_FACTOR).max(MIN_ENDPOINT_QUEUE)
    }

    /// Endpoints whose queue here is at its cap: the claim loop skips them.
    pub fn full_endpoints(&self) -> Vec<String> {
        let cap = self.endpoint_queue_cap();
        let queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues
            .by_endpoint
            .iter()
            .filter(|(_, q)| q.waiting.len() + q.in_flight >= cap)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Starts as many of the endpoint's waiting deliveries as its cap allows.
    fn pump(&self, queues: &mut Queues, endpoint_id: &str) {
        let cap = self.inner.config.endpoint_concurrency;
        let Some(q) = queues.by_endpoint.get_mut(endpoint_id) else {
            return;
        };
        while q.in_flight < cap {
            let Some(mut job) = q.waiting.pop_front() else {
                break;
            };
            if !Arc::ptr_eq(&job.endpoint, &q.endpoint) {
                job.endpoint = q.endpoint.clone();
            }
            q.in_flight += 1;
            let this = self.clone();
            tokio::spawn(async move { this.deliver(job).await });
        }
        if q.in_flight == 0 && q.waiting.is_empty() {
            queues.by_endpoint.remove(endpoint_id);
        }
    }

    /// Sends one delivery and hands its outcome to the recorder.
    async fn deliver(self, job: DeliveryJob) {
        let permit = self.inner.permits.acquire().await;
        let outcome = if self.is_closing() || permit.is_err() || self.lease_may_be_lost(job.delivery_id, now_millis()) {
            record::released(&job)
        } else if job.endpoint.disabled {
            record::paused(&job)
        } else {
            match &job.payload {
                // Expunged after the delivery was made.
                None => record::canceled(&job),
                Some(body) => {
                    let result = self.inner.sender.send(&job, body, now_millis()).await;
                    let now = now_millis();
                    record::count_attempt(&self.inner.metrics, &job, &result, now);
                    attempt_outcome(&job, &result, &self.inner.config.retry_schedule, now)
                }
            }
        };
        drop(permit);
        self.emit_for(&job, outcome);
        self.finished(&job);
    }

    /// Hands an outcome of a held delivery to the recorder, under the newest
    /// token this node holds it by.
    fn emit_for(&self, job: &DeliveryJob, mut outcome: Outcome) {
        {
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
            outcome.lease_token = queues.held.emitted(job.delivery_id, outcome.lease_token);
        }
        self.emit(outcome);
    }

    fn emit(&self, outcome: Outcome) {
        self.inner.unrecorded.fetch_add(1, Ordering::SeqCst);
        if self.inner.outcomes.send(outcome).is_err() {
            self.inner.unrecorded.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn finished(&self, job: &DeliveryJob) {
        {
            let cap = self.endpoint_queue_cap();
            let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
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
        for o in written {
            queues.held.written(o.delivery_id, o.lease_token);
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

fn payload_size(job: &DeliveryJob) -> usize {
    job.payload.as_ref().map_or(0, |p| p.len())
}
