//! hookd's storage, as two interfaces every backend implements:
//!
//! - [`Resources`]: what the API reads and edits — organisations and tokens,
//!   applications, event types, endpoints, messages, attempts, background tasks,
//!   and poller sinks with their log, consumers and tokens ([`poller`]).
//! - [`Queue`]: the delivery pipeline — enqueueing a message's fan-out, leasing
//!   due deliveries, renewing and rescuing leases, recording outcomes, running
//!   background tasks and the retention sweep.
//!
//! The backends are `sqlite`, the embedded default, and `postgres`, shared by
//! many nodes; one behaviour suite (`tests/store_suite`) holds both to the same
//! contract. A delivery's life is an explicit [`DeliveryState`] column, and every
//! transition is one conditional update naming the state it leaves (and, for a
//! leased delivery, the lease's fencing token), so a resend, a worker, a second
//! node, an endpoint edit or a disable cannot clobber each other. Lease expiry
//! and due times are compared with the database's clock. Every query is scoped
//! by organisation id.

pub mod audit;
pub mod change;
pub mod checks;
pub mod codec;
pub mod crypt;
pub mod inbound;
pub mod model;
pub mod ordering;
pub mod ownership;
pub mod poller;
pub mod postgres;
pub mod recipients;
pub mod sla;
pub mod sqlite;
pub mod states;
pub mod stats;
pub mod task;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use audit::{AuditCheck, AuditEntry, AuditEvent, AuditHead};
pub use change::{AuthChange, EndpointChange, EndpointSettings, EndpointUpdated};
pub use checks::{health_state, EndpointCheckRow, HealthEvent, HealthState};
pub use hookd_core::{DeliveryState, MessageStatus};
pub use inbound::{
    Forwarding, InboundFilter, InboundOutcome, InboundRequest, Ingested, ObjectStatus, Source, SourceSchedule,
    TrackedObject,
};
pub use model::*;
pub use poller::{PollOnly, PollPage, PollerClaim, PollerConsumer, PollerSink, PollerToken, StartAt};
pub use sla::{Sla, SlaEvent, SlaFigures, SlaJudgement, SlaSpec, SlaState, MAX_SLAS_PER_ORG};
pub use stats::{
    AppTraffic, AttemptClass, AttemptFacts, Granularity, QueueNow, Rollup, RollupKey, RollupRetention, Sketch,
    StatsQuery, StatsRow,
};
pub use task::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique key is taken; carries the id of the row that holds it.
    #[error("conflict: {what} already exists")]
    Conflict { what: &'static str, existing_id: Option<String> },
    /// The idempotency key was used before; carries the stored outcome.
    #[error("idempotency key already used")]
    IdempotencyReplay(IdempotencyOutcome),
    /// A change would leave a row invalid (the API answers 422 naming `field`).
    #[error("{field}: {msg}")]
    Invalid { field: &'static str, msg: String },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            // The disk (full, failing, read-only) or the file (locked), not
            // the request: worth retrying once the machine is put right.
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// Tables whose rows carry `org_id`, children first. The audit trail is not
/// among them: it outlives what it records.
pub(crate) const ORG_TABLES: [&str; 28] = [
    "mcp_token",
    "alert_state",
    "endpoint_health_event",
    "endpoint_check",
    "sla_event",
    "sla",
    "stats_rollup",
    "connector",
    "template_version",
    "template",
    "poller_token",
    "poller_consumer",
    "poller_log",
    "poller_sink",
    "one_time_token",
    "ingest_schedule",
    "ingest_object",
    "ingest_request",
    "ingest_source",
    "attempt",
    "delivery",
    "message",
    "endpoint",
    "application",
    "event_type",
    "background_task",
    "idempotency",
    "api_token",
];

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the API reads and edits.
#[async_trait]
pub trait Resources: Send + Sync + 'static {
    // Organisations and tokens.
    async fn default_org(&self) -> Result<String>;
    async fn insert_token(&self, token: ApiToken) -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>>;
    /// Makes the application's tokens (portal access) expire at `at` unless
    /// they expire sooner; returns how many it shortened.
    async fn expire_app_tokens(&self, org_id: &str, app_id: &str, at: i64, session_ids: &[String]) -> Result<u64>;
    async fn has_admin_token(&self, org_id: &str) -> Result<bool>;
    async fn list_orgs(&self, page: &Page) -> Result<Vec<Organization>>;
    async fn get_org(&self, id: &str) -> Result<Organization>;
    async fn insert_org(&self, org: Organization) -> Result<()>;
    async fn update_org(&self, org: Organization) -> Result<()>;
    /// The organisation's portal settings (JSON), `None` when never set;
    /// `NotFound` when there is no such organisation.
    async fn get_portal_settings(&self, org_id: &str) -> Result<Option<String>>;
    async fn set_portal_settings(&self, org_id: &str, settings: Option<String>) -> Result<()>;
    /// Removes the organisation with everything in it (its operational
    /// webhooks too); the audit trail keeps its entries.
    async fn delete_org(&self, id: &str) -> Result<()>;
    /// The organisation's API tokens (not portal tokens), or every organisation's.
    async fn list_tokens(&self, org_id: Option<&str>, page: &Page) -> Result<Vec<ApiToken>>;
    async fn get_token(&self, id: &str) -> Result<ApiToken>;
    /// Stores a one-time token (its hash) standing for the token `token_id`.
    async fn insert_one_time_token(&self, org_id: &str, token_id: &str, hash: &str, expires_at: i64) -> Result<()>;
    /// Takes a one-time token: the first call before it expires gets
    /// `(org_id, token_id)`, every other `None`.
    async fn take_one_time_token(&self, hash: &str, now: i64) -> Result<Option<(String, String)>>;
    /// Stores a token's name, role and expiry.
    async fn update_token(&self, token: ApiToken) -> Result<()>;
    // MCP tokens.
    async fn insert_mcp_token(&self, token: McpToken) -> Result<()>;
    async fn mcp_token_by_hash(&self, hash: &str) -> Result<Option<McpToken>>;
    /// The organisation's MCP tokens of application `app_id`, or its dashboard
    /// tokens (`None`).
    async fn list_mcp_tokens(&self, org_id: &str, app_id: Option<&str>, page: &Page) -> Result<Vec<McpToken>>;
    /// Removes the token `id` of that application (or the dashboard's);
    /// `NotFound` when it has no such token.
    async fn delete_mcp_token(&self, org_id: &str, app_id: Option<&str>, id: &str) -> Result<()>;

    // Idempotency.
    async fn idempotency_lookup(&self, org_id: &str, key: &IdempotencyKey) -> Result<Option<IdempotencyOutcome>>;

    // Applications.
    async fn list_apps(&self, org_id: &str, page: &Page) -> Result<Vec<Application>>;
    async fn get_app(&self, org_id: &str, id_or_uid: &str) -> Result<Application>;
    async fn create_app(&self, app: Application, idem: Option<IdempotencyRecord>) -> Result<Application>;
    async fn update_app(&self, app: Application) -> Result<Application>;
    async fn delete_app(&self, org_id: &str, app_id: &str) -> Result<()>;

    // Event types.
    async fn list_event_types(&self, org_id: &str, page: &Page, include_archived: bool) -> Result<Vec<EventType>>;
    async fn get_event_type(&self, org_id: &str, name: &str) -> Result<EventType>;
    async fn create_event_type(&self, et: EventType, idem: Option<IdempotencyRecord>) -> Result<EventType>;
    async fn update_event_type(&self, et: EventType) -> Result<EventType>;
    async fn delete_event_type(&self, org_id: &str, name: &str) -> Result<()>;
    /// Sets (or with `None` clears) an event type's retry schedule (ms delays).
    async fn set_event_type_retry_schedule(&self, org_id: &str, name: &str, schedule: Option<Vec<u64>>) -> Result<()>;

    // Payload templates and their immutable versions.
    async fn list_templates(&self, org_id: &str, page: &Page) -> Result<Vec<Template>>;
    async fn get_template(&self, org_id: &str, id_or_uid: &str) -> Result<Template>;
    /// Creates the template with its first version.
    async fn create_template(
        &self,
        template: Template,
        first: TemplateVersion,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Template>;
    /// Changes its uid, name and description.
    async fn update_template(&self, template: Template) -> Result<Template>;
    /// Removes it with its versions; `Conflict` while an endpoint renders with it.
    async fn delete_template(&self, org_id: &str, template_id: &str) -> Result<()>;
    /// Adds the next version.
    async fn add_template_version(
        &self,
        org_id: &str,
        template_id: &str,
        format: &str,
        source: &str,
    ) -> Result<TemplateVersion>;
    /// Versions newest first: `limit` of them numbered below `before`.
    async fn list_template_versions(
        &self,
        org_id: &str,
        template_id: &str,
        before: Option<u32>,
        limit: usize,
    ) -> Result<Vec<TemplateVersion>>;
    /// One version; `None` is the latest.
    async fn get_template_version(
        &self,
        org_id: &str,
        template_id: &str,
        version: Option<u32>,
    ) -> Result<TemplateVersion>;

    // Connectors (Svix's transformation templates).
    async fn list_connectors(&self, org_id: &str, page: &Page) -> Result<Vec<Connector>>;
    async fn get_connector(&self, org_id: &str, id_or_uid: &str) -> Result<Connector>;
    async fn create_connector(&self, connector: Connector, idem: Option<IdempotencyRecord>) -> Result<Connector>;
    async fn update_connector(&self, connector: Connector) -> Result<Connector>;
    async fn delete_connector(&self, org_id: &str, connector_id: &str) -> Result<()>;

    // Endpoints.
    async fn list_endpoints(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>>;
    async fn get_endpoint(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint>;
    async fn create_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint>;
    /// Applies `change` to the endpoint as it is in the database, writing only
    /// the columns the change owns. Disabling pauses the endpoint's scheduled
    /// deliveries and enabling makes its paused ones due now, in the same
    /// transaction.
    async fn update_endpoint(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        change: EndpointChange,
        idem: Option<IdempotencyRecord>,
    ) -> Result<EndpointUpdated>;
    async fn delete_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()>;
    /// Deliveries to the endpoint by the status the API shows, for messages
    /// created in [since, until).
    async fn endpoint_stats(&self, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats>;
    /// The statistics rollups `q` asks for, added up per slot and event type
    /// (see [`StatsQuery`]); slots with no attempts are left out.
    async fn stats(&self, q: StatsQuery) -> Result<Vec<StatsRow>>;
    /// Deliveries waiting now for the application's endpoints (or one of them).
    async fn queue_now(&self, org_id: &str, app_id: &str, endpoint_id: Option<&str>) -> Result<QueueNow>;

    // Endpoint checks.
    /// Stores the endpoint's latest check (its warning time stays).
    async fn put_endpoint_check(&self, row: EndpointCheckRow) -> Result<()>;
    async fn get_endpoint_check(&self, org_id: &str, endpoint_id: &str) -> Result<Option<EndpointCheckRow>>;
    /// The endpoint's changes of health state, newest first, at most `limit`.
    async fn list_endpoint_health_events(
        &self,
        org_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<HealthEvent>>;

    // SLAs.
    async fn list_slas(&self, org_id: &str, page: &Page) -> Result<Vec<Sla>>;
    async fn get_sla(&self, org_id: &str, id: &str) -> Result<Sla>;
    /// `Invalid` (`sla`) beyond [`MAX_SLAS_PER_ORG`].
    async fn create_sla(&self, sla: Sla) -> Result<Sla>;
    /// Replaces the spec; the SLA is judged afresh (state `unknown`).
    async fn update_sla(&self, org_id: &str, id: &str, spec: SlaSpec) -> Result<Sla>;
    /// Deletes the SLA with its history.
    async fn delete_sla(&self, org_id: &str, id: &str) -> Result<()>;
    /// The SLA's changes of state.
    async fn list_sla_events(&self, org_id: &str, sla_id: &str, page: &Page) -> Result<Vec<SlaEvent>>;

    // Messages.
    async fn list_messages(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<Message>>;
    async fn get_message(&self, org_id: &str, app_id: &str, id_or_event_id: &str) -> Result<Message>;
    /// Cancels the message's deliveries that wait (scheduled — e.g. for its
    /// `deliverAt` — or paused); returns how many.
    async fn cancel_message(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<u64>;
    /// Removes the payload; its deliveries that wait (scheduled, paused) are canceled.
    async fn expunge_message_content(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<()>;

    // Deliveries and attempts.
    async fn list_attempts(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>>;
    /// The attempt `attempt_id` of the application (of message `msg_id`, when given).
    async fn get_attempt(&self, org_id: &str, app_id: &str, msg_id: Option<&str>, attempt_id: &str) -> Result<Attempt>;
    /// An attempt's headers (both `None` for an attempt stored before hookd
    /// kept them); `NotFound` when there is no such attempt.
    async fn get_attempt_headers(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        attempt_id: &str,
    ) -> Result<AttemptHeaders>;
    /// Deliveries of one message, with their endpoints.
    async fn list_message_destinations(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        page: &Page,
    ) -> Result<Vec<(Delivery, Endpoint)>>;
    /// Deliveries to one endpoint, with their messages.
    async fn list_endpoint_messages(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        status: StatusFilter,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<(Delivery, Message)>>;

    // Background tasks.
    async fn get_task(&self, org_id: &str, task_id: &str) -> Result<BackgroundTask>;
    async fn list_tasks(&self, org_id: &str, filter: &TaskFilter, page: &Page) -> Result<Vec<BackgroundTask>>;

    // Inbound sources.
    async fn list_sources(&self, org_id: &str, page: &Page) -> Result<Vec<Source>>;
    async fn get_source(&self, org_id: &str, id_or_uid: &str) -> Result<Source>;
    /// The source whose URL token is `token`, or was until a rotation less
    /// than its grace period ago.
    async fn source_by_token(&self, token: &str) -> Result<Option<Source>>;
    /// Creates the source and its application in one transaction.
    async fn create_source(&self, src: Source, app: Application) -> Result<Source>;
    /// Stores the source's fields (and its application's name); a rotation
    /// sets `prev_token`.
    async fn update_source(&self, src: Source) -> Result<Source>;
    /// Removes the source with its request log and its application (endpoints,
    /// messages, deliveries, attempts).
    async fn delete_source(&self, org_id: &str, id: &str) -> Result<()>;
    /// The source's request log with how far each request's message got.
    async fn list_inbound_requests(
        &self,
        org_id: &str,
        source_id: &str,
        filter: &InboundFilter,
        page: &Page,
    ) -> Result<Vec<(InboundRequest, Forwarding)>>;
    async fn get_inbound_request(
        &self,
        org_id: &str,
        source_id: &str,
        id: &str,
    ) -> Result<(InboundRequest, Forwarding)>;
    /// A tracked object of the source (status tracking).
    async fn get_tracked_object(&self, org_id: &str, source_id: &str, object_id: &str) -> Result<TrackedObject>;
    /// Sets when a scheduled source runs next (`None`: it runs on no schedule).
    async fn set_source_schedule(&self, org_id: &str, source_id: &str, due_at: Option<i64>) -> Result<()>;
    async fn get_source_schedule(&self, org_id: &str, source_id: &str) -> Result<Option<SourceSchedule>>;
    /// Takes one scheduled source that is due and that no node is running,
    /// for this node until `lease_until`; with the due time it was taken at.
    /// A source that can no longer be read is put off a minute, with the error
    /// as its last result, so it does not hold up the others.
    async fn claim_due_source(&self, now: i64, lease_until: i64) -> Result<Option<(Source, i64)>>;
    /// Records a run of a source taken at `due_at` with the lease `lease_until`:
    /// it runs next at `next_due_at` (unless its schedule was changed
    /// meanwhile). Nothing is written once the lease was lost to another node.
    async fn finish_source_run(
        &self,
        source_id: &str,
        due_at: i64,
        lease_until: i64,
        next_due_at: i64,
        now: i64,
        result: serde_json::Value,
    ) -> Result<()>;

    // Poller sinks (polling endpoints): an application's messages read in
    // pages by offset ([`poller`]).
    async fn list_poller_sinks(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<PollerSink>>;
    async fn get_poller_sink(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<PollerSink>;
    /// Stores a new sink, starting at the end of its application's log (it
    /// shows what is logged from now on), with its first token.
    async fn create_poller_sink(
        &self,
        sink: PollerSink,
        token: PollerToken,
        idem: Option<IdempotencyRecord>,
    ) -> Result<PollerSink>;
    /// Stores the sink's settings; where it starts stays.
    async fn update_poller_sink(&self, sink: PollerSink) -> Result<PollerSink>;
    /// Removes the sink with its consumers and tokens.
    async fn delete_poller_sink(&self, org_id: &str, app_id: &str, sink_id: &str) -> Result<()>;
    /// Up to `limit` messages the sink shows (and `only` lets through) after
    /// offset `after`, in offset order.
    async fn read_poller(&self, sink: &PollerSink, after: i64, only: &PollOnly, limit: usize) -> Result<PollPage>;
    /// The offset to read the sink after to see the messages created after
    /// `after_ms` (and any committed later).
    async fn poller_offset_after(&self, sink: &PollerSink, after_ms: i64) -> Result<i64>;
    /// The consumer, made at `start` when new; `Invalid` (`consumer_id`) when
    /// the sink has [`poller::MAX_CONSUMERS`] already.
    async fn poller_consumer(&self, sink: &PollerSink, consumer_id: &str, start: StartAt) -> Result<PollerConsumer>;
    /// Puts the consumer at `position` (made there when new) and ends its
    /// lease: a v1 read moving on, or a seek.
    async fn move_poller_consumer(&self, sink: &PollerSink, consumer_id: &str, position: i64) -> Result<()>;
    /// Takes a v2 batch for a consumer still at the claim's `from` that holds no
    /// live lease (by the database's clock); false when another read won.
    async fn claim_poller_batch(&self, sink: &PollerSink, consumer_id: &str, claim: PollerClaim) -> Result<bool>;
    /// Records that the consumer is done with every offset up to `offset` (it
    /// never moves back); a commit covering its leased batch ends the lease.
    /// `NotFound` for a consumer that never read, `Invalid` (`offset`) past
    /// what it was shown.
    async fn commit_poller_consumer(&self, sink: &PollerSink, consumer_id: &str, offset: i64) -> Result<()>;
    /// The sink's newest token.
    async fn current_poller_token(&self, org_id: &str, sink_id: &str) -> Result<Option<PollerToken>>;
    /// Stores a new token of its sink; the sink's others expire at
    /// `others_expire_at` unless they expire sooner.
    async fn rotate_poller_token(&self, token: PollerToken, others_expire_at: i64) -> Result<()>;
    async fn poller_token_by_hash(&self, hash: &str) -> Result<Option<PollerToken>>;

    async fn ping(&self) -> Result<()>;

    /// Appends events to the audit trail, chained, in one transaction.
    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<()>;
    /// The organisation's audit entries, newest first, before `before_seq`.
    async fn list_audit(&self, org_id: &str, before_seq: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>>;
    /// Walks the whole trail and checks every link.
    async fn verify_audit(&self) -> Result<AuditCheck>;
    /// Removes up to `batch` of the oldest entries older than `before`, and
    /// records in the head where the trail now starts; returns how many.
    async fn prune_audit(&self, before: i64, batch: usize) -> Result<u64>;

    /// Re-seals up to `batch` endpoints whose secrets or headers are not sealed
    /// under the current key ([`crypt`]): plain text from before encryption, or
    /// an older key after a rotation. Returns how many such rows it found (0:
    /// none is left); 0 without a keyring. Each row is rewritten only if
    /// unchanged since it was read (a concurrent edit seals it itself).
    async fn reseal_secrets(&self, batch: usize) -> Result<u64>;
    /// The value sealed under the key in use, if one was ever recorded.
    async fn crypt_marker(&self) -> Result<Option<String>>;
    async fn set_crypt_marker(&self, sealed: String) -> Result<()>;
}

/// The delivery pipeline's side of the store.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Commits the message and one delivery per matching endpoint (or only to
    /// `only_endpoint`, for a test send) in one transaction. A message with
    /// `deliver_at` has its deliveries scheduled for then, leased to no one. With a `lease`, the
    /// deliveries to endpoints whose queue `lease.owner` owns (or can take: free
    /// or expired) are leased to it and returned ready to send; the others are
    /// committed scheduled for their owner to claim, and waiting workers are woken.
    async fn enqueue(
        &self,
        msg: Message,
        only_endpoint: Option<String>,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>>;
    /// Stores a received request and, with `msg` (an accepted request), its
    /// message and fan-out, in one transaction: once this returns the request
    /// is durable and may be acknowledged. When the message's event id is
    /// already its application's, no message is created: the request is
    /// stored as a duplicate of the first one. Leasing as [`Queue::enqueue`].
    async fn ingest(&self, req: InboundRequest, msg: Option<Message>, lease: Option<Lease>) -> Result<Ingested>;
    /// Sends the message to the endpoint again (creating the delivery if the
    /// message never went there), as a manual attempt. A delivery in any state
    /// but leased becomes due now — leased to `lease.owner` and returned when it
    /// owns the endpoint's queue. A leased one (in flight, maybe on another node)
    /// is left to finish: it is marked, and is due again as soon as its outcome
    /// is recorded. A paused one stays paused until its endpoint is enabled.
    async fn resend(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>>;

    /// Leases up to `limit` due scheduled deliveries to `lease.owner`, only of
    /// endpoints whose queue it owns or can take (decision 1: one node at a time
    /// owns an endpoint's queue), except those in `skip_endpoints` (whose queues
    /// are full on this node).
    async fn claim_due(&self, lease: &Lease, limit: usize, skip_endpoints: &[String]) -> Result<Vec<DeliveryJob>>;
    /// Makes up to `limit` deliveries whose lease expired (their node died or
    /// lost the database) scheduled and due now; returns how many.
    async fn rescue_expired(&self, limit: usize) -> Result<u64>;
    /// Extends the leases of deliveries `lease.owner` holds and its ownership of
    /// these endpoints' queues.
    async fn renew(&self, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String]) -> Result<()>;
    /// The endpoints among `known` (id, revision) whose row changed since: a node
    /// refreshes what it holds with them.
    async fn changed_endpoints(&self, known: &[(String, i64)]) -> Result<Vec<Endpoint>>;
    /// Disables an endpoint at a receiver's request (410 Gone, `webhook-delivery:
    /// disable`) or after sustained failure: as an API disable, its waiting
    /// deliveries are paused in the same transaction.
    async fn disable_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<EndpointUpdated>;
    /// Writes the delivering node's report of an endpoint's health.
    async fn set_endpoint_health(&self, endpoint_id: &str, health: &EndpointHealth) -> Result<()>;
    /// The event type's own retry schedule (ms delays), if it has one.
    async fn event_type_retry_schedule(&self, org_id: &str, event_type: &str) -> Result<Option<Vec<u64>>>;
    /// What delivering needs of the organisation (defaults when it is gone).
    async fn org_settings(&self, org_id: &str) -> Result<OrgSettings>;
    /// Gives up every endpoint queue `owner` owns (on shutdown).
    async fn release_endpoints(&self, owner: &str) -> Result<()>;
    /// Returns when work may have been committed for workers to claim (scheduled
    /// deliveries, tasks), here or by another node, or after `timeout`.
    async fn wait_for_work(&self, timeout: Duration);
    /// Records outcomes and their attempts in one transaction. An outcome whose
    /// delivery is no longer leased under its token (another node took it over,
    /// or the delivery was deleted) is ignored, and so is its attempt.
    async fn record_outcomes(&self, outcomes: Arc<[Outcome]>) -> Result<()>;
    /// Scheduled and leased deliveries in the store (the queue depth).
    async fn pending_count(&self) -> Result<u64>;
    /// When the earliest scheduled delivery fell due (`None` when none is
    /// scheduled): how far behind delivery runs, read from the due index.
    async fn oldest_due(&self) -> Result<Option<i64>>;

    /// Stores a new running task.
    async fn create_task(&self, task: BackgroundTask, idem: Option<IdempotencyRecord>) -> Result<BackgroundTask>;
    /// Leases a running task nobody holds (or whose lease expired) to `lease.owner`.
    async fn claim_task(&self, lease: &Lease) -> Result<Option<TaskLease>>;
    /// Runs one batch of the task (at most `batch` messages) in one transaction
    /// that also advances its cursor and extends its lease; marks it finished
    /// when nothing is left. Fails with `NotFound` when the lease was lost.
    async fn run_task_step(&self, lease: &TaskLease, lease_duration_ms: i64, batch: usize) -> Result<TaskStep>;
    /// Marks the task failed with `error`.
    async fn fail_task(&self, lease: &TaskLease, error: &str) -> Result<()>;

    /// One retention batch: expunges up to `batch` messages whose payload
    /// expired (their attempts' response bodies too; their waiting deliveries
    /// are canceled), deletes up to `batch` messages older than
    /// `limits.messages_ms` with their deliveries and attempts, and removes
    /// expired idempotency keys and tasks finished over `limits.tasks_ms` ago.
    async fn prune(&self, batch: usize, limits: Retention) -> Result<PruneReport>;
    /// Folds up to `batch` statistics rows older than `retention` says into
    /// the next width (minute → hour → day), and deletes day rows past theirs;
    /// returns how many rows it folded or deleted.
    async fn fold_rollups(&self, batch: usize, retention: RollupRetention) -> Result<u64>;
    /// Claims up to `limit` checks with a certificate last checked before
    /// `before` (their `checked_at` becomes `now`, so one node re-checks each).
    async fn claim_cert_rechecks(&self, before: i64, now: i64, limit: usize) -> Result<Vec<EndpointCheckRow>>;
    /// Records that the endpoint's certificate expiry was warned of at `at`.
    async fn mark_cert_warned(&self, endpoint_id: &str, at: i64) -> Result<()>;
    /// Forgets the endpoint's check (the endpoint is gone).
    async fn delete_endpoint_check(&self, endpoint_id: &str) -> Result<()>;
    /// Every application's attempts (from minute rollups) in [recent_since, now)
    /// and in [base_since, recent_since), for those with attempts in the recent window.
    async fn app_traffic(&self, base_since: i64, recent_since: i64) -> Result<Vec<AppTraffic>>;
    /// Records that `kind` was raised for the application at `now`, unless it
    /// was within `quiet_ms` before; `true` when this call recorded it.
    async fn claim_alert(&self, org_id: &str, app_id: &str, kind: &str, now: i64, quiet_ms: i64) -> Result<bool>;
    /// Up to `limit` SLAs of every organisation with ids after `after`, by id.
    async fn slas_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Sla>>;
    /// Records a judgement if the SLA is still in `j.from`; a change of state
    /// is added to its history in the same transaction. Returns whether this
    /// call changed the state (exactly one node sees `true` for a change).
    async fn judge_sla(&self, j: SlaJudgement) -> Result<bool>;
    /// Gives up to `max_pages` free pages back to the file system (SQLite's
    /// incremental vacuum); returns how many. A no-op where the database manages
    /// its own space (PostgreSQL's autovacuum).
    async fn reclaim_space(&self, max_pages: u64) -> Result<u64>;
}

/// Both halves: what a backend is.
pub trait Store: Resources + Queue {}

impl<T: Resources + Queue> Store for T {}
