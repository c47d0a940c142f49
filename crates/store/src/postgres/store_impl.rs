//! [`Store`] for PostgreSQL: each call runs its queries on a pooled connection,
//! and what SQLite does in one write closure in one transaction here.

use async_trait::async_trait;

use super::{apps, deliveries, endpoints, event_types, messages, owners, tokens, PostgresStore};
use crate::model::*;
use crate::{Result, Store};

/// Runs `$body` in a transaction on a pooled connection, bound to `$tx`, and
/// commits; an error (`?` inside the body) rolls back. Evaluates to a `Result`.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:block) => {
        async {
            let mut $tx = $store.pool.begin().await?;
            let out = $body;
            $tx.commit().await?;
            Ok::<_, $crate::StoreError>(out)
        }
        .await
    };
}

impl PostgresStore {
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        Ok(self.pool.acquire().await?)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn default_org(&self) -> Result<String> {
        transaction!(self, |tx| { tokens::default_org(&mut tx).await? })
    }

    async fn insert_token(&self, token: ApiToken) -> Result<()> {
        tokens::insert_token(&mut *self.conn().await?, &token).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        tokens::token_by_hash(&mut *self.conn().await?, hash).await
    }

    async fn has_admin_token(&self, org_id: &str) -> Result<bool> {
        tokens::has_admin_token(&mut *self.conn().await?, org_id).await
    }

    async fn idempotency_lookup(&self, org_id: &str, key: &IdempotencyKey) -> Result<Option<IdempotencyOutcome>> {
        let now = hookd_core::timefmt::now_millis();
        tokens::idempotency_lookup(&mut *self.conn().await?, org_id, key, now).await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        transaction!(self, |tx| { tokens::purge_expired(&mut tx, now).await? })
    }

    async fn list_apps(&self, org_id: &str, page: &Page) -> Result<Vec<Application>> {
        apps::list(&mut *self.conn().await?, org_id, page).await
    }

    async fn get_app(&self, org_id: &str, id_or_uid: &str) -> Result<Application> {
        apps::get(&mut *self.conn().await?, org_id, id_or_uid).await
    }

    async fn create_app(&self, app: Application, idem: Option<IdempotencyRecord>) -> Result<Application> {
        let created = transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            apps::insert(&mut tx, &app).await?;
        });
        match created {
            Ok(()) => Ok(app),
            Err(e) => Err(apps::uid_conflict(&self.pool, e, &app).await),
        }
    }

    async fn update_app(&self, app: Application) -> Result<Application> {
        match apps::update(&mut *self.conn().await?, &app).await {
            Ok(()) => Ok(app),
            Err(e) => Err(apps::uid_conflict(&self.pool, e, &app).await),
        }
    }

    async fn delete_app(&self, org_id: &str, app_id: &str) -> Result<()> {
        transaction!(self, |tx| { apps::delete(&mut tx, org_id, app_id).await? })
    }

    async fn list_event_types(&self, org_id: &str, page: &Page, include_archived: bool) -> Result<Vec<EventType>> {
        event_types::list(&mut *self.conn().await?, org_id, page, include_archived).await
    }

    async fn get_event_type(&self, org_id: &str, name: &str) -> Result<EventType> {
        event_types::get(&mut *self.conn().await?, org_id, name).await
    }

    async fn create_event_type(&self, et: EventType, idem: Option<IdempotencyRecord>) -> Result<EventType> {
        transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            event_types::insert(&mut tx, &et).await?;
        })?;
        Ok(et)
    }

    async fn update_event_type(&self, et: EventType) -> Result<EventType> {
        event_types::update(&mut *self.conn().await?, &et).await?;
        Ok(et)
    }

    async fn delete_event_type(&self, org_id: &str, name: &str) -> Result<()> {
        event_types::delete(&mut *self.conn().await?, org_id, name).await
    }

    async fn list_endpoints(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>> {
        endpoints::list(&mut *self.conn().await?, org_id, app_id, page).await
    }

    async fn get_endpoint(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
        endpoints::get(&mut *self.conn().await?, org_id, app_id, id_or_uid).await
    }

    async fn create_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint> {
        transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            endpoints::insert(&mut tx, &ep).await?;
        })?;
        Ok(ep)
    }

    async fn update_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint> {
        transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            endpoints::update(&mut tx, &ep).await?;
        })?;
        Ok(ep)
    }

    async fn delete_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()> {
        transaction!(self, |tx| { endpoints::delete(&mut tx, org_id, app_id, endpoint_id).await? })
    }

    async fn endpoint_stats(&self, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats> {
        endpoints::stats(&mut *self.conn().await?, org_id, endpoint_id, since, until).await
    }

    async fn create_message(
        &self,
        msg: Message,
        only_endpoint: Option<String>,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>> {
        let (jobs, unleased) = transaction!(self, |tx| {
            messages::create(&mut tx, &msg, only_endpoint.as_deref(), lease.as_ref(), idem.as_ref()).await?
        })?;
        if unleased > 0 {
            self.work.raise();
        }
        Ok(jobs)
    }

    async fn list_messages(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<Message>> {
        messages::list(&mut *self.conn().await?, org_id, app_id, filter, page).await
    }

    async fn get_message(&self, org_id: &str, app_id: &str, id_or_event_id: &str) -> Result<Message> {
        messages::get(&mut *self.conn().await?, org_id, app_id, id_or_event_id).await
    }

    async fn expunge_message_content(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<()> {
        messages::expunge_content(&mut *self.conn().await?, org_id, app_id, msg_id).await
    }

    async fn list_attempts(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>> {
        deliveries::list_attempts(&mut *self.conn().await?, org_id, app_id, filter, page).await
    }

    async fn get_attempt(&self, org_id: &str, app_id: &str, msg_id: &str, attempt_id: &str) -> Result<Attempt> {
        deliveries::get_attempt(&mut *self.conn().await?, org_id, app_id, msg_id, attempt_id).await
    }

    async fn list_message_destinations(
        &self,
        org_id: &str,
        _app_id: &str,
        msg_id: &str,
        page: &Page,
    ) -> Result<Vec<(Delivery, Endpoint)>> {
        deliveries::message_destinations(&mut *self.conn().await?, org_id, msg_id, page).await
    }

    async fn list_endpoint_messages(
        &self,
        org_id: &str,
        _app_id: &str,
        endpoint_id: &str,
        status: Option<i64>,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<(Delivery, Message)>> {
        deliveries::endpoint_messages(&mut *self.conn().await?, org_id, endpoint_id, status, filter, page).await
    }

    async fn resend(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        endpoint_id: &str,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>> {
        let jobs = transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            let msg = messages::get(&mut tx, org_id, app_id, msg_id).await?;
            endpoints::get(&mut tx, org_id, app_id, endpoint_id).await?;
            let now = hookd_core::timefmt::now_millis();
            deliveries::resend(&mut tx, &msg, endpoint_id, lease.as_ref(), now).await?
        })?;
        if jobs.is_empty() {
            self.work.raise();
        }
        Ok(jobs)
    }

    async fn recover_failed(
        &self,
        org_id: &str,
        _app_id: &str,
        endpoint_id: &str,
        since: i64,
        until: i64,
        idem: Option<IdempotencyRecord>,
    ) -> Result<u64> {
        let n = transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            let now = hookd_core::timefmt::now_millis();
            deliveries::recover_failed(&mut tx, org_id, endpoint_id, since, until, now).await?
        })?;
        if n > 0 {
            self.work.raise();
        }
        Ok(n)
    }

    async fn replay_missing(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        since: i64,
        until: i64,
        idem: Option<IdempotencyRecord>,
    ) -> Result<u64> {
        let n = transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            let ep = endpoints::get(&mut tx, org_id, app_id, endpoint_id).await?;
            let now = hookd_core::timefmt::now_millis();
            messages::replay_missing(&mut tx, &ep, since, until, now).await?
        })?;
        if n > 0 {
            self.work.raise();
        }
        Ok(n)
    }

    async fn claim_due(
        &self,
        lease: &Lease,
        now: i64,
        limit: usize,
        skip_endpoints: &[String],
    ) -> Result<Vec<DeliveryJob>> {
        deliveries::claim_due(&mut *self.conn().await?, lease, now, limit, skip_endpoints).await
    }

    async fn renew(&self, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String]) -> Result<()> {
        owners::renew(&mut *self.conn().await?, lease, delivery_ids, endpoint_ids).await
    }

    async fn release_endpoints(&self, owner: &str) -> Result<()> {
        owners::release_all(&mut *self.conn().await?, owner).await
    }

    async fn wait_for_work(&self, timeout: std::time::Duration) {
        self.work.wait(timeout).await
    }

    async fn record_outcomes(&self, outcomes: std::sync::Arc<[Outcome]>, held_by: Option<&str>) -> Result<()> {
        deliveries::record_outcomes(&mut *self.conn().await?, &outcomes, held_by).await
    }

    async fn pending_count(&self) -> Result<u64> {
        deliveries::pending_count(&mut *self.conn().await?).await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
