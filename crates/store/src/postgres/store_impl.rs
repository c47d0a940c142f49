//! [`Resources`] and [`Queue`] for PostgreSQL: each call runs its queries on a
//! pooled connection, and what SQLite does in one write closure in one
//! transaction here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookd_core::timefmt::now_millis;

use super::PostgresStore;
use super::{
    apps, attempts, audit, batch, checks, connectors, deliveries, endpoints, event_types, inbound, mcp_tokens,
    messages, owners, poller, retention, slas, stats, tasks, templates, tokens,
};
use crate::audit::{AuditCheck, AuditEntry, AuditEvent};
use crate::change::{EndpointChange, EndpointSettings, EndpointUpdated};
use crate::checks::EndpointCheckRow;
use crate::inbound::*;
use crate::model::*;
use crate::poller::{PollOnly, PollPage, PollerClaim, PollerConsumer, PollerSink, PollerToken, StartAt};
use crate::sla::{Sla, SlaEvent, SlaJudgement, SlaSpec};
use crate::stats::{QueueNow, RollupRetention, StatsQuery, StatsRow};
use crate::task::*;
use crate::{Queue, Resources, Result, StoreError};

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
impl Resources for PostgresStore {
    async fn default_org(&self) -> Result<String> {
        transaction!(self, |tx| { tokens::default_org(&mut tx).await? })
    }

    async fn insert_token(&self, token: ApiToken) -> Result<()> {
        tokens::insert_token(&mut *self.conn().await?, &token).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        tokens::token_by_hash(&mut *self.conn().await?, hash).await
    }

    async fn expire_app_tokens(&self, org_id: &str, app_id: &str, at: i64, session_ids: &[String]) -> Result<u64> {
        tokens::expire_app_tokens(&mut *self.conn().await?, org_id, app_id, at, session_ids).await
    }

    async fn list_orgs(&self, page: &Page) -> Result<Vec<Organization>> {
        tokens::list_orgs(&mut *self.conn().await?, page).await
    }

    async fn get_org(&self, id: &str) -> Result<Organization> {
        tokens::get_org(&mut *self.conn().await?, id).await
    }

    async fn insert_org(&self, org: Organization) -> Result<()> {
        tokens::insert_org(&mut *self.conn().await?, &org).await
    }

    async fn get_portal_settings(&self, org_id: &str) -> Result<Option<String>> {
        tokens::get_portal_settings(&mut *self.conn().await?, org_id).await
    }

    async fn set_portal_settings(&self, org_id: &str, settings: Option<String>) -> Result<()> {
        tokens::set_portal_settings(&mut *self.conn().await?, org_id, settings.as_deref()).await
    }

    async fn update_org(&self, org: Organization) -> Result<()> {
        tokens::update_org(&mut *self.conn().await?, &org).await
    }

    async fn delete_org(&self, id: &str) -> Result<()> {
        transaction!(self, |tx| { tokens::delete_org(&mut tx, id).await? })
    }

    async fn list_tokens(&self, org_id: Option<&str>, page: &Page) -> Result<Vec<ApiToken>> {
        tokens::list_tokens(&mut *self.conn().await?, org_id, page).await
    }

    async fn get_token(&self, id: &str) -> Result<ApiToken> {
        tokens::get_token(&mut *self.conn().await?, id).await
    }

    async fn update_token(&self, token: ApiToken) -> Result<()> {
        tokens::update_token(&mut *self.conn().await?, &token).await
    }

    async fn insert_mcp_token(&self, token: McpToken) -> Result<()> {
        mcp_tokens::insert(&mut *self.conn().await?, &token).await
    }

    async fn mcp_token_by_hash(&self, hash: &str) -> Result<Option<McpToken>> {
        mcp_tokens::by_hash(&mut *self.conn().await?, hash).await
    }

    async fn list_mcp_tokens(&self, org_id: &str, app_id: Option<&str>, page: &Page) -> Result<Vec<McpToken>> {
        mcp_tokens::list(&mut *self.conn().await?, org_id, app_id, page).await
    }

    async fn delete_mcp_token(&self, org_id: &str, app_id: Option<&str>, id: &str) -> Result<()> {
        mcp_tokens::delete(&mut *self.conn().await?, org_id, app_id, id).await
    }

    async fn has_admin_token(&self, org_id: &str) -> Result<bool> {
        tokens::has_admin_token(&mut *self.conn().await?, org_id).await
    }

    async fn idempotency_lookup(&self, org_id: &str, key: &IdempotencyKey) -> Result<Option<IdempotencyOutcome>> {
        tokens::idempotency_lookup(&mut *self.conn().await?, org_id, key, now_millis()).await
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

    async fn set_event_type_retry_schedule(&self, org_id: &str, name: &str, schedule: Option<Vec<u64>>) -> Result<()> {
        event_types::set_retry_schedule(&mut *self.conn().await?, org_id, name, schedule.as_deref(), now_millis()).await
    }

    async fn list_connectors(&self, org_id: &str, page: &Page) -> Result<Vec<Connector>> {
        connectors::list(&mut *self.conn().await?, org_id, page).await
    }

    async fn get_connector(&self, org_id: &str, id_or_uid: &str) -> Result<Connector> {
        connectors::get(&mut *self.conn().await?, org_id, id_or_uid).await
    }

    async fn create_connector(&self, connector: Connector, idem: Option<IdempotencyRecord>) -> Result<Connector> {
        transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            connectors::insert(&mut tx, &connector).await?;
        })?;
        Ok(connector)
    }

    async fn update_connector(&self, connector: Connector) -> Result<Connector> {
        connectors::update(&mut *self.conn().await?, &connector).await?;
        Ok(connector)
    }

    async fn delete_connector(&self, org_id: &str, connector_id: &str) -> Result<()> {
        connectors::delete(&mut *self.conn().await?, org_id, connector_id).await
    }

    async fn list_templates(&self, org_id: &str, page: &Page) -> Result<Vec<Template>> {
        templates::list(&mut *self.conn().await?, org_id, page).await
    }

    async fn get_template(&self, org_id: &str, id_or_uid: &str) -> Result<Template> {
        templates::get(&mut *self.conn().await?, org_id, id_or_uid).await
    }

    async fn create_template(
        &self,
        template: Template,
        first: TemplateVersion,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Template> {
        transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            templates::insert(&mut tx, &template, &first).await?;
        })?;
        Ok(template)
    }

    async fn update_template(&self, template: Template) -> Result<Template> {
        templates::update(&mut *self.conn().await?, &template).await?;
        Ok(template)
    }

    async fn delete_template(&self, org_id: &str, template_id: &str) -> Result<()> {
        transaction!(self, |tx| { templates::delete(&mut tx, org_id, template_id).await? })
    }

    async fn add_template_version(
        &self,
        org_id: &str,
        template_id: &str,
        format: &str,
        source: &str,
    ) -> Result<TemplateVersion> {
        transaction!(self, |tx| {
            templates::add_version(&mut tx, org_id, template_id, format, source, now_millis()).await?
        })
    }

    async fn list_template_versions(
        &self,
        org_id: &str,
        template_id: &str,
        before: Option<u32>,
        limit: usize,
    ) -> Result<Vec<TemplateVersion>> {
        templates::list_versions(&mut *self.conn().await?, org_id, template_id, before, limit).await
    }

    async fn get_template_version(
        &self,
        org_id: &str,
        template_id: &str,
        version: Option<u32>,
    ) -> Result<TemplateVersion> {
        templates::get_version(&mut *self.conn().await?, org_id, template_id, version).await
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

    async fn update_endpoint(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        change: EndpointChange,
        idem: Option<IdempotencyRecord>,
    ) -> Result<EndpointUpdated> {
        // A change of ordering makes the deliveries parked behind others due.
        let reorders = matches!(&change, EndpointChange::Settings(s) if s.ordering.is_some());
        let updated = transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            endpoints::update(&mut tx, org_id, app_id, endpoint_id, &change, now_millis()).await?
        })?;
        if updated.resumed > 0 || reorders {
            self.work.raise();
        }
        Ok(updated)
    }

    async fn delete_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()> {
        transaction!(self, |tx| { endpoints::delete(&mut tx, org_id, app_id, endpoint_id).await? })
    }

    async fn endpoint_stats(&self, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats> {
        endpoints::stats(&mut *self.conn().await?, org_id, endpoint_id, since, until).await
    }

    async fn stats(&self, q: StatsQuery) -> Result<Vec<StatsRow>> {
        stats::query(&mut *self.conn().await?, &q).await
    }

    async fn queue_now(&self, org_id: &str, app_id: &str, endpoint_id: Option<&str>) -> Result<QueueNow> {
        stats::queue_now(&mut *self.conn().await?, org_id, app_id, endpoint_id).await
    }

    async fn put_endpoint_check(&self, row: EndpointCheckRow) -> Result<()> {
        checks::put(&mut *self.conn().await?, &row).await
    }

    async fn get_endpoint_check(&self, org_id: &str, endpoint_id: &str) -> Result<Option<EndpointCheckRow>> {
        checks::get(&mut *self.conn().await?, org_id, endpoint_id).await
    }

    async fn list_endpoint_health_events(
        &self,
        org_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<crate::HealthEvent>> {
        endpoints::health_events(&mut *self.conn().await?, org_id, endpoint_id, limit).await
    }

    async fn list_slas(&self, org_id: &str, page: &Page) -> Result<Vec<Sla>> {
        slas::list(&mut *self.conn().await?, org_id, page).await
    }

    async fn get_sla(&self, org_id: &str, id: &str) -> Result<Sla> {
        slas::get(&mut *self.conn().await?, org_id, id).await
    }

    async fn create_sla(&self, sla: Sla) -> Result<Sla> {
        transaction!(self, |tx| { slas::insert(&mut tx, &sla).await? })?;
        Ok(sla)
    }

    async fn update_sla(&self, org_id: &str, id: &str, spec: SlaSpec) -> Result<Sla> {
        slas::update(&mut *self.conn().await?, org_id, id, &spec, hookd_core::timefmt::now_millis()).await
    }

    async fn delete_sla(&self, org_id: &str, id: &str) -> Result<()> {
        transaction!(self, |tx| { slas::delete(&mut tx, org_id, id).await? })
    }

    async fn list_sla_events(&self, org_id: &str, sla_id: &str, page: &Page) -> Result<Vec<SlaEvent>> {
        slas::events(&mut *self.conn().await?, org_id, sla_id, page).await
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

    async fn cancel_message(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<u64> {
        let (canceled, released) =
            transaction!(self, |tx| { messages::cancel(&mut tx, org_id, app_id, msg_id).await? })?;
        if released > 0 {
            self.work.raise();
        }
        Ok(canceled)
    }

    async fn expunge_message_content(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<()> {
        let released = transaction!(self, |tx| { messages::expunge_content(&mut tx, org_id, app_id, msg_id).await? })?;
        if released > 0 {
            self.work.raise();
        }
        Ok(())
    }

    async fn list_attempts(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>> {
        attempts::list_attempts(&mut *self.conn().await?, org_id, app_id, filter, page).await
    }

    async fn get_attempt(&self, org_id: &str, app_id: &str, msg_id: Option<&str>, attempt_id: &str) -> Result<Attempt> {
        attempts::get_attempt(&mut *self.conn().await?, org_id, app_id, msg_id, attempt_id).await
    }

    async fn get_attempt_headers(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        attempt_id: &str,
    ) -> Result<AttemptHeaders> {
        attempts::get_attempt_headers(&mut *self.conn().await?, org_id, app_id, msg_id, attempt_id).await
    }

    async fn list_message_destinations(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        page: &Page,
    ) -> Result<Vec<(Delivery, Endpoint)>> {
        attempts::message_destinations(&mut *self.conn().await?, org_id, app_id, msg_id, page).await
    }

    async fn list_endpoint_messages(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        status: StatusFilter,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<(Delivery, Message)>> {
        attempts::endpoint_messages(&mut *self.conn().await?, org_id, app_id, endpoint_id, status, filter, page).await
    }

    async fn get_task(&self, org_id: &str, task_id: &str) -> Result<BackgroundTask> {
        tasks::get(&mut *self.conn().await?, org_id, task_id).await
    }

    async fn list_tasks(&self, org_id: &str, filter: &TaskFilter, page: &Page) -> Result<Vec<BackgroundTask>> {
        tasks::list(&mut *self.conn().await?, org_id, filter, page).await
    }

    async fn list_sources(&self, org_id: &str, page: &Page) -> Result<Vec<Source>> {
        inbound::list(&mut *self.conn().await?, org_id, page).await
    }

    async fn get_source(&self, org_id: &str, id_or_uid: &str) -> Result<Source> {
        inbound::get(&mut *self.conn().await?, org_id, id_or_uid).await
    }

    async fn source_by_token(&self, token: &str) -> Result<Option<Source>> {
        inbound::by_token(&mut *self.conn().await?, token, now_millis()).await
    }

    async fn create_source(&self, src: Source, app: Application) -> Result<Source> {
        transaction!(self, |tx| { inbound::insert(&mut tx, &src, &app).await? })?;
        Ok(src)
    }

    async fn update_source(&self, src: Source) -> Result<Source> {
        transaction!(self, |tx| { inbound::update(&mut tx, &src).await? })?;
        Ok(src)
    }

    async fn delete_source(&self, org_id: &str, id: &str) -> Result<()> {
        transaction!(self, |tx| { inbound::delete(&mut tx, org_id, id).await? })
    }

    async fn list_inbound_requests(
        &self,
        org_id: &str,
        source_id: &str,
        filter: &InboundFilter,
        page: &Page,
    ) -> Result<Vec<(InboundRequest, Forwarding)>> {
        inbound::list_requests(&mut *self.conn().await?, org_id, source_id, filter, page).await
    }

    async fn get_inbound_request(
        &self,
        org_id: &str,
        source_id: &str,
        id: &str,
    ) -> Result<(InboundRequest, Forwarding)> {
        inbound::get_request(&mut *self.conn().await?, org_id, source_id, id).await
    }

    async fn insert_one_time_token(&self, org_id: &str, token_id: &str, hash: &str, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO one_time_token (token_hash, org_id, token_id, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(org_id)
            .bind(token_id)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_one_time_token(&self, hash: &str, now: i64) -> Result<Option<(String, String)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM one_time_token WHERE token_hash = $1 AND expires_at > $2 RETURNING org_id, token_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    async fn get_tracked_object(&self, org_id: &str, source_id: &str, object_id: &str) -> Result<TrackedObject> {
        inbound::get_object(&mut *self.conn().await?, org_id, source_id, object_id).await
    }

    async fn set_source_schedule(&self, org_id: &str, source_id: &str, due_at: Option<i64>) -> Result<()> {
        inbound::set_schedule(&mut *self.conn().await?, org_id, source_id, due_at).await
    }

    async fn get_source_schedule(&self, org_id: &str, source_id: &str) -> Result<Option<SourceSchedule>> {
        inbound::get_schedule(&mut *self.conn().await?, org_id, source_id).await
    }

    async fn claim_due_source(&self, now: i64, lease_until: i64) -> Result<Option<(Source, i64)>> {
        inbound::claim_due(&mut *self.conn().await?, now, lease_until).await
    }

    async fn finish_source_run(
        &self,
        source_id: &str,
        due_at: i64,
        lease_until: i64,
        next_due_at: i64,
        now: i64,
        result: serde_json::Value,
    ) -> Result<()> {
        inbound::finish_run(&mut *self.conn().await?, source_id, due_at, lease_until, next_due_at, now, &result).await
    }

    async fn list_poller_sinks(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<PollerSink>> {
        poller::list(&mut *self.conn().await?, org_id, app_id, page).await
    }

    async fn get_poller_sink(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<PollerSink> {
        poller::get(&mut *self.conn().await?, org_id, app_id, id_or_uid).await
    }

    async fn create_poller_sink(
        &self,
        sink: PollerSink,
        token: PollerToken,
        idem: Option<IdempotencyRecord>,
    ) -> Result<PollerSink> {
        poller::settle(&self.pool).await?;
        let created = transaction!(self, |tx| {
            tokens::maybe_idempotency(&mut tx, idem.as_ref()).await?;
            poller::insert(&mut tx, &sink, &token).await?
        });
        match created {
            Ok(sink) => Ok(sink),
            Err(e) => Err(poller::uid_conflict(&self.pool, e, &sink).await),
        }
    }

    async fn update_poller_sink(&self, sink: PollerSink) -> Result<PollerSink> {
        match poller::update(&mut *self.conn().await?, &sink).await {
            Ok(()) => Ok(sink),
            Err(e) => Err(poller::uid_conflict(&self.pool, e, &sink).await),
        }
    }

    async fn delete_poller_sink(&self, org_id: &str, app_id: &str, sink_id: &str) -> Result<()> {
        transaction!(self, |tx| { poller::delete(&mut tx, org_id, app_id, sink_id).await? })
    }

    async fn read_poller(&self, sink: &PollerSink, after: i64, only: &PollOnly, limit: usize) -> Result<PollPage> {
        poller::settle(&self.pool).await?;
        poller::read(&mut *self.conn().await?, sink, after, only, limit).await
    }

    async fn poller_offset_after(&self, sink: &PollerSink, after_ms: i64) -> Result<i64> {
        poller::settle(&self.pool).await?;
        let offset = poller::offset_after(&mut *self.conn().await?, &sink.org_id, &sink.app_id, after_ms).await?;
        Ok(offset.max(sink.start_offset))
    }

    async fn poller_consumer(&self, sink: &PollerSink, consumer_id: &str, start: StartAt) -> Result<PollerConsumer> {
        let mut c = self.conn().await?;
        if let Some(found) = poller::consumer(&mut c, &sink.org_id, &sink.id, consumer_id).await? {
            return Ok(found);
        }
        let position = match start {
            StartAt::Earliest => sink.start_offset,
            StartAt::Latest => {
                poller::settle(&self.pool).await?;
                poller::log_end(&mut c, &sink.org_id, &sink.app_id).await?.max(sink.start_offset)
            }
        };
        poller::ensure_consumer(&mut c, &sink.org_id, &sink.id, consumer_id, position).await
    }

    async fn move_poller_consumer(&self, sink: &PollerSink, consumer_id: &str, position: i64) -> Result<()> {
        poller::move_consumer(&mut *self.conn().await?, &sink.org_id, &sink.id, consumer_id, position).await
    }

    async fn claim_poller_batch(&self, sink: &PollerSink, consumer_id: &str, claim: PollerClaim) -> Result<bool> {
        poller::claim(&mut *self.conn().await?, &sink.org_id, &sink.id, consumer_id, claim).await
    }

    async fn commit_poller_consumer(&self, sink: &PollerSink, consumer_id: &str, offset: i64) -> Result<()> {
        transaction!(self, |tx| { poller::commit(&mut tx, &sink.org_id, &sink.id, consumer_id, offset).await? })
    }

    async fn current_poller_token(&self, org_id: &str, sink_id: &str) -> Result<Option<PollerToken>> {
        poller::current_token(&mut *self.conn().await?, org_id, sink_id).await
    }

    async fn rotate_poller_token(&self, token: PollerToken, others_expire_at: i64) -> Result<()> {
        transaction!(self, |tx| { poller::rotate_token(&mut tx, &token, others_expire_at).await? })
    }

    async fn poller_token_by_hash(&self, hash: &str) -> Result<Option<PollerToken>> {
        poller::token_by_hash(&mut *self.conn().await?, hash).await
    }

    async fn ping(&self) -> Result<()> {
        // A pooled connection the server closed in a restart fails its first
        // query (idle ones are only checked after a second, to spare a round
        // trip) and is discarded: one retry on a fresh one tells the truth.
        match sqlx::query("SELECT 1").execute(&self.pool).await.map_err(StoreError::from) {
            Ok(_) => Ok(()),
            Err(StoreError::Unavailable(_)) => {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn reseal_secrets(&self, batch: usize) -> Result<u64> {
        endpoints::reseal(&mut *self.conn().await?, batch).await
    }

    async fn crypt_marker(&self) -> Result<Option<String>> {
        endpoints::crypt_marker(&mut *self.conn().await?).await
    }

    async fn set_crypt_marker(&self, sealed: String) -> Result<()> {
        endpoints::set_crypt_marker(&mut *self.conn().await?, &sealed).await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<()> {
        transaction!(self, |tx| { audit::append(&mut tx, &events).await? })
    }

    async fn list_audit(&self, org_id: &str, before_seq: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>> {
        audit::list(&mut *self.conn().await?, org_id, before_seq, limit).await
    }

    async fn verify_audit(&self) -> Result<AuditCheck> {
        transaction!(self, |tx| {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
            audit::verify(&mut tx).await?
        })
    }

    async fn prune_audit(&self, before: i64, batch: usize) -> Result<u64> {
        transaction!(self, |tx| { audit::prune(&mut tx, before, batch).await? })
    }
}

#[async_trait]
impl Queue for PostgresStore {
    async fn enqueue(
        &self,
        msg: Message,
        only_endpoint: Option<String>,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>> {
        if msg.deliver_at.is_some() {
            // Scheduled ahead: leased to no one, committed on its own (rare,
            // and the group commit's statements assume "due now").
            transaction!(self, |tx| {
                messages::create(&mut tx, &msg, only_endpoint.as_deref(), None, idem.as_ref()).await?
            })?;
            self.work.raise();
            return Ok(Vec::new());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Unavailable("the enqueue workers have stopped".into());
        let request = batch::Request { msg, only_endpoint, lease, idem, reply };
        self.enqueues.send(request).await.map_err(|_| gone())?;
        let (jobs, unleased) = answer.await.map_err(|_| gone())??;
        if unleased > 0 {
            self.work.raise();
        }
        Ok(jobs)
    }

    async fn ingest(&self, req: InboundRequest, msg: Option<Message>, lease: Option<Lease>) -> Result<Ingested> {
        let (ingested, unleased) =
            transaction!(self, |tx| { inbound::ingest(&mut tx, &req, msg.as_ref(), lease.as_ref()).await? })?;
        if unleased > 0 {
            self.work.raise();
        }
        Ok(ingested)
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
            let ep = endpoints::get(&mut tx, org_id, app_id, endpoint_id).await?;
            deliveries::resend(&mut tx, &msg, &ep, lease.as_ref()).await?
        })?;
        if jobs.is_empty() {
            self.work.raise();
        }
        Ok(jobs)
    }

    async fn claim_due(&self, lease: &Lease, limit: usize, skip_endpoints: &[String]) -> Result<Vec<DeliveryJob>> {
        deliveries::claim_due(&mut *self.conn().await?, lease, limit, skip_endpoints).await
    }

    async fn rescue_expired(&self, limit: usize) -> Result<u64> {
        let n = deliveries::rescue_expired(&mut *self.conn().await?, limit).await?;
        if n > 0 {
            self.work.raise();
        }
        Ok(n)
    }

    async fn renew(&self, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String]) -> Result<()> {
        owners::renew(&mut *self.conn().await?, lease, delivery_ids, endpoint_ids).await
    }

    async fn changed_endpoints(&self, known: &[(String, i64)]) -> Result<Vec<Endpoint>> {
        if known.is_empty() {
            return Ok(Vec::new());
        }
        endpoints::changed(&mut *self.conn().await?, known).await
    }

    async fn disable_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<EndpointUpdated> {
        let change = EndpointChange::Settings(EndpointSettings { disabled: Some(true), ..Default::default() });
        transaction!(self, |tx| {
            endpoints::update(&mut tx, org_id, app_id, endpoint_id, &change, now_millis()).await?
        })
    }

    async fn set_endpoint_health(&self, endpoint_id: &str, health: &EndpointHealth) -> Result<()> {
        transaction!(self, |tx| { endpoints::set_health(&mut tx, endpoint_id, health).await? })
    }

    async fn event_type_retry_schedule(&self, org_id: &str, event_type: &str) -> Result<Option<Vec<u64>>> {
        match event_types::get(&mut *self.conn().await?, org_id, event_type).await {
            Ok(et) => Ok(et.retry_schedule_ms),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn org_settings(&self, org_id: &str) -> Result<OrgSettings> {
        match tokens::get_org(&mut *self.conn().await?, org_id).await {
            Ok(org) => Ok(OrgSettings { policy: org.policy, encrypt_payloads: org.encrypt_payloads }),
            Err(StoreError::NotFound) => Ok(Default::default()),
            Err(e) => Err(e),
        }
    }

    async fn release_endpoints(&self, owner: &str) -> Result<()> {
        owners::release_all(&mut *self.conn().await?, owner).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        self.work.wait(timeout).await
    }

    async fn record_outcomes(&self, outcomes: Arc<[Outcome]>) -> Result<()> {
        // Deliveries of ordered endpoints released: due now, maybe another node's.
        if deliveries::record_outcomes(&mut *self.conn().await?, &outcomes).await? > 0 {
            self.work.raise();
        }
        Ok(())
    }

    async fn pending_count(&self) -> Result<u64> {
        deliveries::pending_count(&mut *self.conn().await?).await
    }

    async fn oldest_due(&self) -> Result<Option<i64>> {
        deliveries::oldest_due(&mut *self.conn().await?).await
    }

    async fn create_task(&self, task: BackgroundTask, idem: Option<IdempotencyRecord>) -> Result<BackgroundTask> {
        transaction!(self, |tx| { tasks::insert(&mut tx, &task, idem.as_ref()).await? })?;
        self.work.raise();
        Ok(task)
    }

    async fn claim_task(&self, lease: &Lease) -> Result<Option<TaskLease>> {
        tasks::claim(&mut *self.conn().await?, lease).await
    }

    async fn run_task_step(&self, lease: &TaskLease, lease_duration_ms: i64, batch: usize) -> Result<TaskStep> {
        let step = transaction!(self, |tx| { tasks::step(&mut tx, lease, lease_duration_ms, batch).await? })?;
        if step.sent > 0 {
            self.work.raise();
        }
        Ok(step)
    }

    async fn fail_task(&self, lease: &TaskLease, error: &str) -> Result<()> {
        transaction!(self, |tx| { tasks::fail(&mut tx, lease, error).await? })
    }

    async fn prune(&self, batch: usize, limits: Retention) -> Result<PruneReport> {
        transaction!(self, |tx| { retention::prune(&mut tx, batch, limits).await? })
    }

    async fn claim_cert_rechecks(&self, before: i64, now: i64, limit: usize) -> Result<Vec<EndpointCheckRow>> {
        checks::claim(&mut *self.conn().await?, before, now, limit).await
    }

    async fn mark_cert_warned(&self, endpoint_id: &str, at: i64) -> Result<()> {
        checks::mark_warned(&mut *self.conn().await?, endpoint_id, at).await
    }

    async fn delete_endpoint_check(&self, endpoint_id: &str) -> Result<()> {
        checks::delete(&mut *self.conn().await?, endpoint_id).await
    }

    async fn app_traffic(&self, base_since: i64, recent_since: i64) -> Result<Vec<crate::AppTraffic>> {
        stats::app_traffic(&mut *self.conn().await?, base_since, recent_since).await
    }

    async fn claim_alert(&self, org_id: &str, app_id: &str, kind: &str, now: i64, quiet_ms: i64) -> Result<bool> {
        stats::claim_alert(&mut *self.conn().await?, org_id, app_id, kind, now, quiet_ms).await
    }

    async fn slas_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Sla>> {
        slas::after(&mut *self.conn().await?, after, limit).await
    }

    async fn judge_sla(&self, j: SlaJudgement) -> Result<bool> {
        transaction!(self, |tx| { slas::judge(&mut tx, &j).await? })
    }

    async fn fold_rollups(&self, batch: usize, retention: RollupRetention) -> Result<u64> {
        transaction!(self, |tx| { stats::fold(&mut tx, batch, retention).await? })
    }

    async fn reclaim_space(&self, _max_pages: u64) -> Result<u64> {
        Ok(0)
    }
}
