//! hookd's storage: the [`Store`] interface every backend implements, the rows it
//! reads and writes, and the backends themselves: `sqlite`, the embedded default,
//! and `postgres`, shared by many nodes.
//!
//! The store is the durable log. Creating a message commits the message and its
//! deliveries in one transaction; the dispatcher gets fresh deliveries handed over
//! in memory and reads the store only for retries and expired leases.
//! Every query is scoped by organisation id.

pub mod codec;
pub mod model;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
pub use model::*;

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
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            other => StoreError::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything hookd keeps. One implementation per database; both behave the same.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Organisations and tokens.
    async fn default_org(&self) -> Result<String>;
    async fn insert_token(&self, token: ApiToken) -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>>;
    async fn has_admin_token(&self, org_id: &str) -> Result<bool>;

    // Idempotency.
    async fn idempotency_lookup(&self, org_id: &str, key: &IdempotencyKey) -> Result<Option<IdempotencyOutcome>>;
    async fn purge_expired(&self, now: i64) -> Result<u64>;

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

    // Endpoints.
    async fn list_endpoints(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>>;
    async fn get_endpoint(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint>;
    async fn create_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint>;
    /// Replaces the endpoint's row (url, filters, headers, secrets…).
    async fn update_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint>;
    async fn delete_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()>;
    /// Deliveries to the endpoint by state, for messages created in [since, until).
    async fn endpoint_stats(&self, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats>;

    // Messages and fan-out.
    /// Commits the message and one delivery per matching endpoint (or only to
    /// `only_endpoint`, for a test send) in one transaction. With a `lease`, the
    /// deliveries to endpoints whose queue `lease.owner` owns (or can take: free
    /// or expired) are leased to it and returned ready to send; the others are
    /// committed unleased for their owner to claim, and waiting workers are woken.
    async fn create_message(
        &self,
        msg: Message,
        only_endpoint: Option<String>,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>>;
    async fn list_messages(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<Message>>;
    async fn get_message(&self, org_id: &str, app_id: &str, id_or_event_id: &str) -> Result<Message>;
    async fn expunge_message_content(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<()>;

    // Deliveries and attempts.
    async fn list_attempts(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>>;
    async fn get_attempt(&self, org_id: &str, app_id: &str, msg_id: &str, attempt_id: &str) -> Result<Attempt>;
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
        status: Option<i64>,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<(Delivery, Message)>>;
    /// Makes the delivery of `msg_id` to `endpoint_id` due now (creating it if the
    /// message was never sent there); returns it leased when `lease` is given.
    async fn resend(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>>;
    /// Makes failed deliveries to the endpoint created in [since, until) due now.
    async fn recover_failed(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        since: i64,
        until: i64,
        idem: Option<IdempotencyRecord>,
    ) -> Result<u64>;
    /// Creates deliveries for messages in [since, until) that match the endpoint
    /// but were never sent to it.
    async fn replay_missing(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        since: i64,
        until: i64,
        idem: Option<IdempotencyRecord>,
    ) -> Result<u64>;

    // The dispatcher's side.
    /// Leases up to `limit` due deliveries (retries that came due, unleased work,
    /// and leases that expired) to `lease.owner`, only of endpoints whose queue it
    /// owns or can take (decision 1: one node at a time owns an endpoint's queue),
    /// except those in `skip_endpoints` (whose queues are full on this node).
    async fn claim_due(
        &self,
        lease: &Lease,
        now: i64,
        limit: usize,
        skip_endpoints: &[String],
    ) -> Result<Vec<DeliveryJob>>;
    /// Extends the leases of deliveries `lease.owner` holds and its ownership of
    /// these endpoints' queues.
    async fn renew(&self, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String]) -> Result<()>;
    /// Gives up every endpoint queue `owner` owns (on shutdown).
    async fn release_endpoints(&self, owner: &str) -> Result<()>;
    /// Returns when work may have been committed for workers to claim (unleased
    /// deliveries, here or by another node), or after `timeout`.
    async fn wait_for_work(&self, timeout: std::time::Duration);
    /// Records attempt outcomes and the deliveries' new states, in one transaction.
    /// With `held_by`, a delivery whose lease that owner no longer holds (another
    /// node took it over) is left as it is, and so is its attempt record.
    async fn record_outcomes(&self, outcomes: std::sync::Arc<[Outcome]>, held_by: Option<&str>) -> Result<()>;
    /// Pending deliveries in the store (the queue depth).
    async fn pending_count(&self) -> Result<u64>;
    async fn ping(&self) -> Result<()>;
}
