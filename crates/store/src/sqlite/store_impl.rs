//! [`Store`] for SQLite: each call runs its queries on a read connection or in
//! the writer's next group commit.

use async_trait::async_trait;

use super::{apps, deliveries, endpoints, event_types, messages, owners, tokens, SqliteStore};
use crate::model::*;
use crate::{Result, Store};

fn s(v: &str) -> String {
    v.to_string()
}

#[async_trait]
impl Store for SqliteStore {
    async fn default_org(&self) -> Result<String> {
        self.write(tokens::default_org).await
    }

    async fn insert_token(&self, token: ApiToken) -> Result<()> {
        self.write(move |c| tokens::insert_token(c, &token)).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        let hash = s(hash);
        self.read(move |c| tokens::token_by_hash(c, &hash)).await
    }

    async fn has_admin_token(&self, org_id: &str) -> Result<bool> {
        let org = s(org_id);
        self.read(move |c| tokens::has_admin_token(c, &org)).await
    }

    async fn idempotency_lookup(&self, org_id: &str, key: &IdempotencyKey) -> Result<Option<IdempotencyOutcome>> {
        let (org, key) = (s(org_id), key.clone());
        let now = hookd_core::timefmt::now_millis();
        self.read(move |c| tokens::idempotency_lookup(c, &org, &key, now)).await
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        self.write(move |c| tokens::purge_expired(c, now)).await
    }

    async fn list_apps(&self, org_id: &str, page: &Page) -> Result<Vec<Application>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| apps::list(c, &org, &page)).await
    }

    async fn get_app(&self, org_id: &str, id_or_uid: &str) -> Result<Application> {
        let (org, id) = (s(org_id), s(id_or_uid));
        self.read(move |c| apps::get(c, &org, &id)).await
    }

    async fn create_app(&self, app: Application, idem: Option<IdempotencyRecord>) -> Result<Application> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            apps::insert(c, &app)?;
            Ok(app)
        })
        .await
    }

    async fn update_app(&self, app: Application) -> Result<Application> {
        self.write(move |c| {
            apps::update(c, &app)?;
            Ok(app)
        })
        .await
    }

    async fn delete_app(&self, org_id: &str, app_id: &str) -> Result<()> {
        let (org, id) = (s(org_id), s(app_id));
        self.write(move |c| apps::delete(c, &org, &id)).await
    }

    async fn list_event_types(&self, org_id: &str, page: &Page, include_archived: bool) -> Result<Vec<EventType>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| event_types::list(c, &org, &page, include_archived)).await
    }

    async fn get_event_type(&self, org_id: &str, name: &str) -> Result<EventType> {
        let (org, name) = (s(org_id), s(name));
        self.read(move |c| event_types::get(c, &org, &name)).await
    }

    async fn create_event_type(&self, et: EventType, idem: Option<IdempotencyRecord>) -> Result<EventType> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            event_types::insert(c, &et)?;
            Ok(et)
        })
        .await
    }

    async fn update_event_type(&self, et: EventType) -> Result<EventType> {
        self.write(move |c| {
            event_types::update(c, &et)?;
            Ok(et)
        })
        .await
    }

    async fn delete_event_type(&self, org_id: &str, name: &str) -> Result<()> {
        let (org, name) = (s(org_id), s(name));
        self.write(move |c| event_types::delete(c, &org, &name)).await
    }

    async fn list_endpoints(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>> {
        let (org, app, page) = (s(org_id), s(app_id), page.clone());
        self.read(move |c| endpoints::list(c, &org, &app, &page)).await
    }

    async fn get_endpoint(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
        let (org, app, id) = (s(org_id), s(app_id), s(id_or_uid));
        self.read(move |c| endpoints::get(c, &org, &app, &id)).await
    }

    async fn create_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            endpoints::insert(c, &ep)?;
            Ok(ep)
        })
        .await
    }

    async fn update_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            endpoints::update(c, &ep)?;
            Ok(ep)
        })
        .await
    }

    async fn delete_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()> {
        let (org, app, id) = (s(org_id), s(app_id), s(endpoint_id));
        self.write(move |c| endpoints::delete(c, &org, &app, &id)).await
    }

    async fn endpoint_stats(&self, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats> {
        let (org, id) = (s(org_id), s(endpoint_id));
        self.read(move |c| endpoints::stats(c, &org, &id, since, until)).await
    }

    async fn create_message(
        &self,
        msg: Message,
        only_endpoint: Option<String>,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>> {
        let (jobs, unleased) = self
            .write(move |c| messages::create(c, &msg, only_endpoint.as_deref(), lease.as_ref(), idem.as_ref()))
            .await?;
        if unleased > 0 {
            self.work.notify_one();
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
        let (org, app, filter, page) = (s(org_id), s(app_id), filter.clone(), page.clone());
        self.read(move |c| messages::list(c, &org, &app, &filter, &page)).await
    }

    async fn get_message(&self, org_id: &str, app_id: &str, id_or_event_id: &str) -> Result<Message> {
        let (org, app, id) = (s(org_id), s(app_id), s(id_or_event_id));
        self.read(move |c| messages::get(c, &org, &app, &id)).await
    }

    async fn expunge_message_content(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<()> {
        let (org, app, id) = (s(org_id), s(app_id), s(msg_id));
        self.write(move |c| messages::expunge_content(c, &org, &app, &id)).await
    }

    async fn list_attempts(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>> {
        let (org, app, filter, page) = (s(org_id), s(app_id), filter.clone(), page.clone());
        self.read(move |c| deliveries::list_attempts(c, &org, &app, &filter, &page)).await
    }

    async fn get_attempt(&self, org_id: &str, app_id: &str, msg_id: &str, attempt_id: &str) -> Result<Attempt> {
        let (org, app, msg, id) = (s(org_id), s(app_id), s(msg_id), s(attempt_id));
        self.read(move |c| deliveries::get_attempt(c, &org, &app, &msg, &id)).await
    }

    async fn list_message_destinations(
        &self,
        org_id: &str,
        _app_id: &str,
        msg_id: &str,
        page: &Page,
    ) -> Result<Vec<(Delivery, Endpoint)>> {
        let (org, msg, page) = (s(org_id), s(msg_id), page.clone());
        self.read(move |c| deliveries::message_destinations(c, &org, &msg, &page)).await
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
        let (org, ep, filter, page) = (s(org_id), s(endpoint_id), filter.clone(), page.clone());
        self.read(move |c| deliveries::endpoint_messages(c, &org, &ep, status, &filter, &page)).await
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
        let (org, app, msg_id, ep) = (s(org_id), s(app_id), s(msg_id), s(endpoint_id));
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            let msg = messages::get(c, &org, &app, &msg_id)?;
            endpoints::get(c, &org, &app, &ep)?;
            deliveries::resend(c, &msg, &ep, lease.as_ref(), hookd_core::timefmt::now_millis())
        })
        .await
        .inspect(|jobs| {
            if jobs.is_empty() {
                self.work.notify_one();
            }
        })
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
        let (org, ep) = (s(org_id), s(endpoint_id));
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            deliveries::recover_failed(c, &org, &ep, since, until, hookd_core::timefmt::now_millis())
        })
        .await
        .inspect(|n| {
            if *n > 0 {
                self.work.notify_one();
            }
        })
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
        let (org, app, ep) = (s(org_id), s(app_id), s(endpoint_id));
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            let ep = endpoints::get(c, &org, &app, &ep)?;
            messages::replay_missing(c, &ep, since, until, hookd_core::timefmt::now_millis())
        })
        .await
        .inspect(|n| {
            if *n > 0 {
                self.work.notify_one();
            }
        })
    }

    async fn claim_due(
        &self,
        lease: &Lease,
        now: i64,
        limit: usize,
        skip_endpoints: &[String],
    ) -> Result<Vec<DeliveryJob>> {
        let (lease, skip) = (lease.clone(), skip_endpoints.to_vec());
        self.write(move |c| deliveries::claim_due(c, &lease, now, limit, &skip)).await
    }

    async fn renew(&self, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String]) -> Result<()> {
        let (lease, ids, eps) = (lease.clone(), delivery_ids.to_vec(), endpoint_ids.to_vec());
        self.write(move |c| owners::renew(c, &lease, &ids, &eps)).await
    }

    async fn release_endpoints(&self, owner: &str) -> Result<()> {
        let owner = s(owner);
        self.write(move |c| owners::release_all(c, &owner)).await
    }

    async fn wait_for_work(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }

    async fn record_outcomes(&self, outcomes: std::sync::Arc<[Outcome]>, held_by: Option<&str>) -> Result<()> {
        let held_by = held_by.map(String::from);
        self.write(move |c| deliveries::record_outcomes(c, &outcomes, held_by.as_deref())).await
    }

    async fn pending_count(&self) -> Result<u64> {
        self.read(deliveries::pending_count).await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }
}
