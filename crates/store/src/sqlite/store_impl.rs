//! [`Resources`] and [`Queue`] for SQLite: each call runs its queries on a read
//! connection or in the writer's next group commit. The writer's clock is the
//! database's clock here: one process owns the file.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookd_core::timefmt::now_millis;

use super::{
    apps, attempts, audit, checks, connectors, deliveries, endpoints, event_types, inbound, mcp_tokens, messages,
    owners, poller, retention, slas, stats, tasks, templates, tokens, SqliteStore,
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

fn s(v: &str) -> String {
    v.to_string()
}

#[async_trait]
impl Resources for SqliteStore {
    async fn default_org(&self) -> Result<String> {
        self.write(tokens::default_org).await
    }

    async fn insert_token(&self, token: ApiToken) -> Result<()> {
        self.write(move |c| tokens::insert_token(c, &token)).await
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        self.read_point(|c| tokens::token_by_hash(c, hash))
    }

    async fn expire_app_tokens(&self, org_id: &str, app_id: &str, at: i64, session_ids: &[String]) -> Result<u64> {
        let (org, app, sessions) = (s(org_id), s(app_id), session_ids.to_vec());
        self.write(move |c| tokens::expire_app_tokens(c, &org, &app, at, &sessions)).await
    }

    async fn list_orgs(&self, page: &Page) -> Result<Vec<Organization>> {
        let page = page.clone();
        self.read(move |c| tokens::list_orgs(c, &page)).await
    }

    async fn get_org(&self, id: &str) -> Result<Organization> {
        self.read_point(|c| tokens::get_org(c, id))
    }

    async fn insert_org(&self, org: Organization) -> Result<()> {
        self.write(move |c| tokens::insert_org(c, &org)).await
    }

    async fn get_portal_settings(&self, org_id: &str) -> Result<Option<String>> {
        self.read_point(|c| tokens::get_portal_settings(c, org_id))
    }

    async fn set_portal_settings(&self, org_id: &str, settings: Option<String>) -> Result<()> {
        let org = s(org_id);
        self.write(move |c| tokens::set_portal_settings(c, &org, settings.as_deref())).await
    }

    async fn update_org(&self, org: Organization) -> Result<()> {
        self.write(move |c| tokens::update_org(c, &org)).await
    }

    async fn delete_org(&self, id: &str) -> Result<()> {
        let id = s(id);
        self.write(move |c| tokens::delete_org(c, &id)).await
    }

    async fn list_tokens(&self, org_id: Option<&str>, page: &Page) -> Result<Vec<ApiToken>> {
        let (org, page) = (org_id.map(s), page.clone());
        self.read(move |c| tokens::list_tokens(c, org.as_deref(), &page)).await
    }

    async fn get_token(&self, id: &str) -> Result<ApiToken> {
        self.read_point(|c| tokens::get_token(c, id))
    }

    async fn update_token(&self, token: ApiToken) -> Result<()> {
        self.write(move |c| tokens::update_token(c, &token)).await
    }

    async fn insert_mcp_token(&self, token: McpToken) -> Result<()> {
        self.write(move |c| mcp_tokens::insert(c, &token)).await
    }

    async fn mcp_token_by_hash(&self, hash: &str) -> Result<Option<McpToken>> {
        self.read_point(|c| mcp_tokens::by_hash(c, hash))
    }

    async fn list_mcp_tokens(&self, org_id: &str, app_id: Option<&str>, page: &Page) -> Result<Vec<McpToken>> {
        let (org, app, page) = (s(org_id), app_id.map(s), page.clone());
        self.read(move |c| mcp_tokens::list(c, &org, app.as_deref(), &page)).await
    }

    async fn delete_mcp_token(&self, org_id: &str, app_id: Option<&str>, id: &str) -> Result<()> {
        let (org, app, id) = (s(org_id), app_id.map(s), s(id));
        self.write(move |c| mcp_tokens::delete(c, &org, app.as_deref(), &id)).await
    }

    async fn has_admin_token(&self, org_id: &str) -> Result<bool> {
        let org = s(org_id);
        self.read(move |c| tokens::has_admin_token(c, &org)).await
    }

    async fn idempotency_lookup(&self, org_id: &str, key: &IdempotencyKey) -> Result<Option<IdempotencyOutcome>> {
        self.read_point(|c| tokens::idempotency_lookup(c, org_id, key, now_millis()))
    }

    async fn list_apps(&self, org_id: &str, page: &Page) -> Result<Vec<Application>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| apps::list(c, &org, &page)).await
    }

    async fn get_app(&self, org_id: &str, id_or_uid: &str) -> Result<Application> {
        self.read_point(|c| apps::get(c, org_id, id_or_uid))
    }

    async fn create_app(&self, app: Application, idem: Option<IdempotencyRecord>) -> Result<Application> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            apps::insert(c, &app)?;
            Ok(app.clone())
        })
        .await
    }

    async fn update_app(&self, app: Application) -> Result<Application> {
        self.write(move |c| {
            apps::update(c, &app)?;
            Ok(app.clone())
        })
        .await
    }

    async fn delete_app(&self, org_id: &str, app_id: &str) -> Result<()> {
        let (org, id, fanout) = (s(org_id), s(app_id), self.fanout.clone());
        self.write(move |c| {
            fanout.forget(&org, &id);
            apps::delete(c, &org, &id)
        })
        .await
    }

    async fn list_event_types(&self, org_id: &str, page: &Page, include_archived: bool) -> Result<Vec<EventType>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| event_types::list(c, &org, &page, include_archived)).await
    }

    async fn get_event_type(&self, org_id: &str, name: &str) -> Result<EventType> {
        self.read_point(|c| event_types::get(c, org_id, name))
    }

    async fn create_event_type(&self, et: EventType, idem: Option<IdempotencyRecord>) -> Result<EventType> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            event_types::insert(c, &et)?;
            Ok(et.clone())
        })
        .await
    }

    async fn update_event_type(&self, et: EventType) -> Result<EventType> {
        self.write(move |c| {
            event_types::update(c, &et)?;
            Ok(et.clone())
        })
        .await
    }

    async fn delete_event_type(&self, org_id: &str, name: &str) -> Result<()> {
        let (org, name) = (s(org_id), s(name));
        self.write(move |c| event_types::delete(c, &org, &name)).await
    }

    async fn set_event_type_retry_schedule(&self, org_id: &str, name: &str, schedule: Option<Vec<u64>>) -> Result<()> {
        let (org, name) = (s(org_id), s(name));
        self.write(move |c| event_types::set_retry_schedule(c, &org, &name, schedule.as_deref(), now_millis())).await
    }

    async fn list_connectors(&self, org_id: &str, page: &Page) -> Result<Vec<Connector>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| connectors::list(c, &org, &page)).await
    }

    async fn get_connector(&self, org_id: &str, id_or_uid: &str) -> Result<Connector> {
        self.read_point(|c| connectors::get(c, org_id, id_or_uid))
    }

    async fn create_connector(&self, connector: Connector, idem: Option<IdempotencyRecord>) -> Result<Connector> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            connectors::insert(c, &connector)?;
            Ok(connector.clone())
        })
        .await
    }

    async fn update_connector(&self, connector: Connector) -> Result<Connector> {
        self.write(move |c| {
            connectors::update(c, &connector)?;
            Ok(connector.clone())
        })
        .await
    }

    async fn delete_connector(&self, org_id: &str, connector_id: &str) -> Result<()> {
        let (org, id) = (s(org_id), s(connector_id));
        self.write(move |c| connectors::delete(c, &org, &id)).await
    }

    async fn list_templates(&self, org_id: &str, page: &Page) -> Result<Vec<Template>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| templates::list(c, &org, &page)).await
    }

    async fn get_template(&self, org_id: &str, id_or_uid: &str) -> Result<Template> {
        self.read_point(|c| templates::get(c, org_id, id_or_uid))
    }

    async fn create_template(
        &self,
        template: Template,
        first: TemplateVersion,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Template> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            templates::insert(c, &template, &first)?;
            Ok(template.clone())
        })
        .await
    }

    async fn update_template(&self, template: Template) -> Result<Template> {
        self.write(move |c| {
            templates::update(c, &template)?;
            Ok(template.clone())
        })
        .await
    }

    async fn delete_template(&self, org_id: &str, template_id: &str) -> Result<()> {
        let (org, id) = (s(org_id), s(template_id));
        self.write(move |c| templates::delete(c, &org, &id)).await
    }

    async fn add_template_version(
        &self,
        org_id: &str,
        template_id: &str,
        format: &str,
        source: &str,
    ) -> Result<TemplateVersion> {
        let (org, id, format, source) = (s(org_id), s(template_id), s(format), s(source));
        self.write(move |c| templates::add_version(c, &org, &id, &format, &source, now_millis())).await
    }

    async fn list_template_versions(
        &self,
        org_id: &str,
        template_id: &str,
        before: Option<u32>,
        limit: usize,
    ) -> Result<Vec<TemplateVersion>> {
        let (org, id) = (s(org_id), s(template_id));
        self.read(move |c| templates::list_versions(c, &org, &id, before, limit)).await
    }

    async fn get_template_version(
        &self,
        org_id: &str,
        template_id: &str,
        version: Option<u32>,
    ) -> Result<TemplateVersion> {
        self.read_point(|c| templates::get_version(c, org_id, template_id, version))
    }

    async fn list_endpoints(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<Endpoint>> {
        let (org, app, page) = (s(org_id), s(app_id), page.clone());
        self.read(move |c| endpoints::list(c, &org, &app, &page)).await
    }

    async fn get_endpoint(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<Endpoint> {
        self.read_point(|c| endpoints::get(c, org_id, app_id, id_or_uid))
    }

    async fn create_endpoint(&self, ep: Endpoint, idem: Option<IdempotencyRecord>) -> Result<Endpoint> {
        let fanout = self.fanout.clone();
        self.write(move |c| {
            fanout.forget(&ep.org_id, &ep.app_id);
            tokens::maybe_idempotency(c, idem.as_ref())?;
            endpoints::insert(c, &ep)?;
            Ok(ep.clone())
        })
        .await
    }

    async fn update_endpoint(
        &self,
        org_id: &str,
        app_id: &str,
        endpoint_id: &str,
        change: EndpointChange,
        idem: Option<IdempotencyRecord>,
    ) -> Result<EndpointUpdated> {
        let (org, app, id, fanout) = (s(org_id), s(app_id), s(endpoint_id), self.fanout.clone());
        let updated = self
            .write(move |c| {
                fanout.forget(&org, &app);
                tokens::maybe_idempotency(c, idem.as_ref())?;
                endpoints::update(c, &org, &app, &id, &change, now_millis())
            })
            .await?;
        if updated.resumed > 0 {
            self.work.notify_one();
        }
        Ok(updated)
    }

    async fn delete_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<()> {
        let (org, app, id, fanout) = (s(org_id), s(app_id), s(endpoint_id), self.fanout.clone());
        self.write(move |c| {
            fanout.forget(&org, &app);
            endpoints::delete(c, &org, &app, &id)
        })
        .await
    }

    async fn endpoint_stats(&self, org_id: &str, endpoint_id: &str, since: i64, until: i64) -> Result<EndpointStats> {
        let (org, id) = (s(org_id), s(endpoint_id));
        self.read(move |c| endpoints::stats(c, &org, &id, since, until)).await
    }

    async fn stats(&self, q: StatsQuery) -> Result<Vec<StatsRow>> {
        self.read(move |c| stats::query(c, &q)).await
    }

    async fn queue_now(&self, org_id: &str, app_id: &str, endpoint_id: Option<&str>) -> Result<QueueNow> {
        let (org, app, ep) = (s(org_id), s(app_id), endpoint_id.map(s));
        self.read(move |c| stats::queue_now(c, &org, &app, ep.as_deref())).await
    }

    async fn put_endpoint_check(&self, row: EndpointCheckRow) -> Result<()> {
        self.write(move |c| checks::put(c, &row)).await
    }

    async fn get_endpoint_check(&self, org_id: &str, endpoint_id: &str) -> Result<Option<EndpointCheckRow>> {
        self.read_point(|c| checks::get(c, org_id, endpoint_id))
    }

    async fn list_endpoint_health_events(
        &self,
        org_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<crate::HealthEvent>> {
        self.read_point(|c| endpoints::health_events(c, org_id, endpoint_id, limit))
    }

    async fn list_slas(&self, org_id: &str, page: &Page) -> Result<Vec<Sla>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| slas::list(c, &org, &page)).await
    }

    async fn get_sla(&self, org_id: &str, id: &str) -> Result<Sla> {
        self.read_point(|c| slas::get(c, org_id, id))
    }

    async fn create_sla(&self, sla: Sla) -> Result<Sla> {
        self.write(move |c| {
            slas::insert(c, &sla)?;
            Ok(sla.clone())
        })
        .await
    }

    async fn update_sla(&self, org_id: &str, id: &str, spec: SlaSpec) -> Result<Sla> {
        let (org, id) = (s(org_id), s(id));
        self.write(move |c| slas::update(c, &org, &id, &spec, now_millis())).await
    }

    async fn delete_sla(&self, org_id: &str, id: &str) -> Result<()> {
        let (org, id) = (s(org_id), s(id));
        self.write(move |c| slas::delete(c, &org, &id)).await
    }

    async fn list_sla_events(&self, org_id: &str, sla_id: &str, page: &Page) -> Result<Vec<SlaEvent>> {
        let (org, id, page) = (s(org_id), s(sla_id), page.clone());
        self.read(move |c| slas::events(c, &org, &id, &page)).await
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
        self.read_point(|c| messages::get(c, org_id, app_id, id_or_event_id))
    }

    async fn cancel_message(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<u64> {
        let (org, app, id) = (s(org_id), s(app_id), s(msg_id));
        self.write(move |c| messages::cancel(c, &org, &app, &id, now_millis())).await
    }

    async fn expunge_message_content(&self, org_id: &str, app_id: &str, msg_id: &str) -> Result<()> {
        let (org, app, id) = (s(org_id), s(app_id), s(msg_id));
        self.write(move |c| messages::expunge_content(c, &org, &app, &id, now_millis())).await
    }

    async fn list_attempts(
        &self,
        org_id: &str,
        app_id: &str,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>> {
        let (org, app, filter, page) = (s(org_id), s(app_id), filter.clone(), page.clone());
        self.read(move |c| attempts::list_attempts(c, &org, &app, &filter, &page)).await
    }

    async fn get_attempt(&self, org_id: &str, app_id: &str, msg_id: Option<&str>, attempt_id: &str) -> Result<Attempt> {
        let (org, app, msg, id) = (s(org_id), s(app_id), msg_id.map(s), s(attempt_id));
        self.read(move |c| attempts::get_attempt(c, &org, &app, msg.as_deref(), &id)).await
    }

    async fn get_attempt_headers(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        attempt_id: &str,
    ) -> Result<AttemptHeaders> {
        let (org, app, msg, id) = (s(org_id), s(app_id), s(msg_id), s(attempt_id));
        self.read(move |c| attempts::get_attempt_headers(c, &org, &app, &msg, &id)).await
    }

    async fn list_message_destinations(
        &self,
        org_id: &str,
        app_id: &str,
        msg_id: &str,
        page: &Page,
    ) -> Result<Vec<(Delivery, Endpoint)>> {
        let (org, app, msg, page) = (s(org_id), s(app_id), s(msg_id), page.clone());
        self.read(move |c| attempts::message_destinations(c, &org, &app, &msg, &page)).await
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
        let (org, app, ep, filter, page) = (s(org_id), s(app_id), s(endpoint_id), filter.clone(), page.clone());
        self.read(move |c| attempts::endpoint_messages(c, &org, &app, &ep, status, &filter, &page)).await
    }

    async fn get_task(&self, org_id: &str, task_id: &str) -> Result<BackgroundTask> {
        self.read_point(|c| tasks::get(c, org_id, task_id))
    }

    async fn list_tasks(&self, org_id: &str, filter: &TaskFilter, page: &Page) -> Result<Vec<BackgroundTask>> {
        let (org, filter, page) = (s(org_id), filter.clone(), page.clone());
        self.read(move |c| tasks::list(c, &org, &filter, &page)).await
    }

    async fn list_sources(&self, org_id: &str, page: &Page) -> Result<Vec<Source>> {
        let (org, page) = (s(org_id), page.clone());
        self.read(move |c| inbound::list(c, &org, &page)).await
    }

    async fn get_source(&self, org_id: &str, id_or_uid: &str) -> Result<Source> {
        self.read_point(|c| inbound::get(c, org_id, id_or_uid))
    }

    async fn source_by_token(&self, token: &str) -> Result<Option<Source>> {
        self.read_point(|c| inbound::by_token(c, token, now_millis()))
    }

    async fn create_source(&self, src: Source, app: Application) -> Result<Source> {
        self.write(move |c| {
            inbound::insert(c, &src, &app)?;
            Ok(src.clone())
        })
        .await
    }

    async fn update_source(&self, src: Source) -> Result<Source> {
        self.write(move |c| {
            inbound::update(c, &src)?;
            Ok(src.clone())
        })
        .await
    }

    async fn delete_source(&self, org_id: &str, id: &str) -> Result<()> {
        let (org, id, fanout) = (s(org_id), s(id), self.fanout.clone());
        self.write(move |c| {
            if let Ok(src) = inbound::get(c, &org, &id) {
                fanout.forget(&org, &src.app_id);
            }
            inbound::delete(c, &org, &id)
        })
        .await
    }

    async fn list_inbound_requests(
        &self,
        org_id: &str,
        source_id: &str,
        filter: &InboundFilter,
        page: &Page,
    ) -> Result<Vec<(InboundRequest, Forwarding)>> {
        let (org, src, filter, page) = (s(org_id), s(source_id), filter.clone(), page.clone());
        self.read(move |c| inbound::list_requests(c, &org, &src, &filter, &page)).await
    }

    async fn get_inbound_request(
        &self,
        org_id: &str,
        source_id: &str,
        id: &str,
    ) -> Result<(InboundRequest, Forwarding)> {
        self.read_point(|c| inbound::get_request(c, org_id, source_id, id))
    }

    async fn insert_one_time_token(&self, org_id: &str, token_id: &str, hash: &str, expires_at: i64) -> Result<()> {
        let (org_id, token_id, hash) = (org_id.to_string(), token_id.to_string(), hash.to_string());
        self.write(move |c| {
            c.execute(
                "INSERT INTO one_time_token (token_hash, org_id, token_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![hash, org_id, token_id, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn take_one_time_token(&self, hash: &str, now: i64) -> Result<Option<(String, String)>> {
        let hash = hash.to_string();
        self.write(move |c| {
            use rusqlite::OptionalExtension;
            Ok(c.prepare_cached(
                "DELETE FROM one_time_token WHERE token_hash = ?1 AND expires_at > ?2 RETURNING org_id, token_id",
            )?
            .query_row(rusqlite::params![hash, now], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
        })
        .await
    }

    async fn get_tracked_object(&self, org_id: &str, source_id: &str, object_id: &str) -> Result<TrackedObject> {
        self.read_point(|c| inbound::get_object(c, org_id, source_id, object_id))
    }

    async fn set_source_schedule(&self, org_id: &str, source_id: &str, due_at: Option<i64>) -> Result<()> {
        let (org_id, source_id) = (org_id.to_string(), source_id.to_string());
        self.write(move |c| inbound::set_schedule(c, &org_id, &source_id, due_at)).await
    }

    async fn get_source_schedule(&self, org_id: &str, source_id: &str) -> Result<Option<SourceSchedule>> {
        self.read_point(|c| inbound::get_schedule(c, org_id, source_id))
    }

    async fn claim_due_source(&self, now: i64, lease_until: i64) -> Result<Option<(Source, i64)>> {
        self.write(move |c| inbound::claim_due(c, now, lease_until)).await
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
        let source_id = source_id.to_string();
        self.write(move |c| inbound::finish_run(c, &source_id, due_at, lease_until, next_due_at, now, &result)).await
    }

    async fn list_poller_sinks(&self, org_id: &str, app_id: &str, page: &Page) -> Result<Vec<PollerSink>> {
        let (org, app, page) = (s(org_id), s(app_id), page.clone());
        self.read(move |c| poller::list(c, &org, &app, &page)).await
    }

    async fn get_poller_sink(&self, org_id: &str, app_id: &str, id_or_uid: &str) -> Result<PollerSink> {
        self.read_point(|c| poller::get(c, org_id, app_id, id_or_uid))
    }

    async fn create_poller_sink(
        &self,
        sink: PollerSink,
        token: PollerToken,
        idem: Option<IdempotencyRecord>,
    ) -> Result<PollerSink> {
        self.write(move |c| {
            tokens::maybe_idempotency(c, idem.as_ref())?;
            poller::insert(c, &sink, &token)
        })
        .await
    }

    async fn update_poller_sink(&self, sink: PollerSink) -> Result<PollerSink> {
        self.write(move |c| poller::update(c, &sink).map(|()| sink.clone())).await
    }

    async fn delete_poller_sink(&self, org_id: &str, app_id: &str, sink_id: &str) -> Result<()> {
        let (org, app, id) = (s(org_id), s(app_id), s(sink_id));
        self.write(move |c| poller::delete(c, &org, &app, &id)).await
    }

    async fn read_poller(&self, sink: &PollerSink, after: i64, only: &PollOnly, limit: usize) -> Result<PollPage> {
        let (sink, only) = (sink.clone(), only.clone());
        self.read(move |c| poller::read(c, &sink, after, &only, limit)).await
    }

    async fn poller_offset_after(&self, sink: &PollerSink, after_ms: i64) -> Result<i64> {
        let (org, app, start) = (sink.org_id.clone(), sink.app_id.clone(), sink.start_offset);
        self.read(move |c| Ok(poller::offset_after(c, &org, &app, after_ms)?.max(start))).await
    }

    async fn poller_consumer(&self, sink: &PollerSink, consumer_id: &str, start: StartAt) -> Result<PollerConsumer> {
        if let Some(found) =
            self.read_point(|c| poller::consumer(c, &sink.org_id, &sink.id, consumer_id, now_millis()))?
        {
            return Ok(found);
        }
        let (sink, consumer) = (sink.clone(), s(consumer_id));
        self.write(move |c| {
            let position = match start {
                StartAt::Earliest => sink.start_offset,
                StartAt::Latest => poller::log_end(c, &sink.org_id, &sink.app_id)?.max(sink.start_offset),
            };
            poller::ensure_consumer(c, &sink.org_id, &sink.id, &consumer, position, now_millis())
        })
        .await
    }

    async fn move_poller_consumer(&self, sink: &PollerSink, consumer_id: &str, position: i64) -> Result<()> {
        let (org, id, consumer) = (sink.org_id.clone(), sink.id.clone(), s(consumer_id));
        self.write(move |c| poller::move_consumer(c, &org, &id, &consumer, position, now_millis())).await
    }

    async fn claim_poller_batch(&self, sink: &PollerSink, consumer_id: &str, claim: PollerClaim) -> Result<bool> {
        let (org, id, consumer) = (sink.org_id.clone(), sink.id.clone(), s(consumer_id));
        self.write(move |c| poller::claim(c, &org, &id, &consumer, claim, now_millis())).await
    }

    async fn commit_poller_consumer(&self, sink: &PollerSink, consumer_id: &str, offset: i64) -> Result<()> {
        let (org, id, consumer) = (sink.org_id.clone(), sink.id.clone(), s(consumer_id));
        self.write(move |c| poller::commit(c, &org, &id, &consumer, offset, now_millis())).await
    }

    async fn current_poller_token(&self, org_id: &str, sink_id: &str) -> Result<Option<PollerToken>> {
        self.read_point(|c| poller::current_token(c, org_id, sink_id))
    }

    async fn rotate_poller_token(&self, token: PollerToken, others_expire_at: i64) -> Result<()> {
        self.write(move |c| poller::rotate_token(c, &token, others_expire_at)).await
    }

    async fn poller_token_by_hash(&self, hash: &str) -> Result<Option<PollerToken>> {
        self.read_point(|c| poller::token_by_hash(c, hash))
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn reseal_secrets(&self, batch: usize) -> Result<u64> {
        self.write(move |c| endpoints::reseal(c, batch)).await
    }

    async fn crypt_marker(&self) -> Result<Option<String>> {
        self.read(endpoints::crypt_marker).await
    }

    async fn set_crypt_marker(&self, sealed: String) -> Result<()> {
        self.write(move |c| endpoints::set_crypt_marker(c, &sealed)).await
    }

    async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<()> {
        self.write(move |c| audit::append(c, &events)).await
    }

    async fn list_audit(&self, org_id: &str, before_seq: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>> {
        let org = s(org_id);
        self.read(move |c| audit::list(c, &org, before_seq, limit)).await
    }

    async fn verify_audit(&self) -> Result<AuditCheck> {
        self.read(audit::verify).await
    }

    async fn prune_audit(&self, before: i64, batch: usize) -> Result<u64> {
        self.write(move |c| audit::prune(c, before, batch)).await
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn enqueue(
        &self,
        msg: Message,
        only_endpoint: Option<String>,
        lease: Option<Lease>,
        idem: Option<IdempotencyRecord>,
    ) -> Result<Vec<DeliveryJob>> {
        let fanout = self.fanout.clone();
        // Scheduled ahead: leased to no one.
        let lease = lease.filter(|_| msg.deliver_at.is_none());
        let (jobs, unleased) = self
            .write(move |c| {
                let only = only_endpoint.as_deref();
                messages::create(c, &fanout, &msg, only, lease.as_ref(), idem.as_ref(), now_millis())
            })
            .await?;
        if unleased > 0 {
            self.work.notify_one();
        }
        Ok(jobs)
    }

    async fn ingest(&self, req: InboundRequest, msg: Option<Message>, lease: Option<Lease>) -> Result<Ingested> {
        let fanout = self.fanout.clone();
        let (ingested, unleased) =
            self.write(move |c| inbound::ingest(c, &fanout, &req, msg.as_ref(), lease.as_ref(), now_millis())).await?;
        if unleased > 0 {
            self.work.notify_one();
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
        let (org, app, msg_id, ep) = (s(org_id), s(app_id), s(msg_id), s(endpoint_id));
        let jobs = self
            .write(move |c| {
                tokens::maybe_idempotency(c, idem.as_ref())?;
                let msg = messages::get(c, &org, &app, &msg_id)?;
                let ep = endpoints::get(c, &org, &app, &ep)?;
                deliveries::resend(c, &msg, &ep, lease.as_ref(), now_millis())
            })
            .await?;
        if jobs.is_empty() {
            self.work.notify_one();
        }
        Ok(jobs)
    }

    async fn claim_due(&self, lease: &Lease, limit: usize, skip_endpoints: &[String]) -> Result<Vec<DeliveryJob>> {
        let (lease, skip) = (lease.clone(), skip_endpoints.to_vec());
        self.write(move |c| deliveries::claim_due(c, &lease, now_millis(), limit, &skip)).await
    }

    async fn rescue_expired(&self, limit: usize) -> Result<u64> {
        self.write(move |c| deliveries::rescue_expired(c, now_millis(), limit)).await
    }

    async fn renew(&self, lease: &Lease, delivery_ids: &[i64], endpoint_ids: &[String]) -> Result<()> {
        let (lease, ids, eps) = (lease.clone(), delivery_ids.to_vec(), endpoint_ids.to_vec());
        self.write(move |c| owners::renew(c, &lease, &ids, &eps, now_millis())).await
    }

    async fn changed_endpoints(&self, known: &[(String, i64)]) -> Result<Vec<Endpoint>> {
        let known = known.to_vec();
        self.read(move |c| endpoints::changed(c, &known)).await
    }

    async fn disable_endpoint(&self, org_id: &str, app_id: &str, endpoint_id: &str) -> Result<EndpointUpdated> {
        let (org, app, id, fanout) = (s(org_id), s(app_id), s(endpoint_id), self.fanout.clone());
        let change = EndpointChange::Settings(EndpointSettings { disabled: Some(true), ..Default::default() });
        self.write(move |c| {
            fanout.forget(&org, &app);
            endpoints::update(c, &org, &app, &id, &change, now_millis())
        })
        .await
    }

    async fn set_endpoint_health(&self, endpoint_id: &str, health: &EndpointHealth) -> Result<()> {
        let (id, health) = (s(endpoint_id), health.clone());
        self.write(move |c| endpoints::set_health(c, &id, &health)).await
    }

    async fn event_type_retry_schedule(&self, org_id: &str, event_type: &str) -> Result<Option<Vec<u64>>> {
        match self.read_point(|c| event_types::get(c, org_id, event_type)) {
            Ok(et) => Ok(et.retry_schedule_ms),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn org_settings(&self, org_id: &str) -> Result<OrgSettings> {
        match self.read_point(|c| tokens::get_org(c, org_id)) {
            Ok(org) => Ok(OrgSettings { policy: org.policy, encrypt_payloads: org.encrypt_payloads }),
            Err(StoreError::NotFound) => Ok(Default::default()),
            Err(e) => Err(e),
        }
    }

    async fn release_endpoints(&self, owner: &str) -> Result<()> {
        let owner = s(owner);
        self.write(move |c| owners::release_all(c, &owner)).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }

    async fn record_outcomes(&self, outcomes: Arc<[Outcome]>) -> Result<()> {
        self.write(move |c| deliveries::record_outcomes(c, &outcomes, now_millis())).await
    }

    async fn pending_count(&self) -> Result<u64> {
        self.read(deliveries::pending_count).await
    }

    async fn oldest_due(&self) -> Result<Option<i64>> {
        self.read(deliveries::oldest_due).await
    }

    async fn create_task(&self, task: BackgroundTask, idem: Option<IdempotencyRecord>) -> Result<BackgroundTask> {
        let created = self
            .write(move |c| {
                tasks::insert(c, &task, idem.as_ref())?;
                Ok(task.clone())
            })
            .await?;
        self.work.notify_one();
        Ok(created)
    }

    async fn claim_task(&self, lease: &Lease) -> Result<Option<TaskLease>> {
        let lease = lease.clone();
        self.write(move |c| tasks::claim(c, &lease, now_millis())).await
    }

    async fn run_task_step(&self, lease: &TaskLease, lease_duration_ms: i64, batch: usize) -> Result<TaskStep> {
        let lease = lease.clone();
        let step = self.write(move |c| tasks::step(c, &lease, lease_duration_ms, batch, now_millis())).await?;
        if step.sent > 0 {
            self.work.notify_one();
        }
        Ok(step)
    }

    async fn fail_task(&self, lease: &TaskLease, error: &str) -> Result<()> {
        let (lease, error) = (lease.clone(), s(error));
        self.write(move |c| tasks::fail(c, &lease, &error, now_millis())).await
    }

    async fn prune(&self, batch: usize, limits: Retention) -> Result<PruneReport> {
        self.write(move |c| retention::prune(c, now_millis(), batch, limits)).await
    }

    async fn claim_cert_rechecks(&self, before: i64, now: i64, limit: usize) -> Result<Vec<EndpointCheckRow>> {
        self.write(move |c| checks::claim(c, before, now, limit)).await
    }

    async fn mark_cert_warned(&self, endpoint_id: &str, at: i64) -> Result<()> {
        let id = s(endpoint_id);
        self.write(move |c| checks::mark_warned(c, &id, at)).await
    }

    async fn delete_endpoint_check(&self, endpoint_id: &str) -> Result<()> {
        let id = s(endpoint_id);
        self.write(move |c| checks::delete(c, &id)).await
    }

    async fn app_traffic(&self, base_since: i64, recent_since: i64) -> Result<Vec<crate::AppTraffic>> {
        self.read(move |c| stats::app_traffic(c, base_since, recent_since)).await
    }

    async fn claim_alert(&self, org_id: &str, app_id: &str, kind: &str, now: i64, quiet_ms: i64) -> Result<bool> {
        let (org, app, kind) = (s(org_id), s(app_id), s(kind));
        self.write(move |c| stats::claim_alert(c, &org, &app, &kind, now, quiet_ms)).await
    }

    async fn slas_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Sla>> {
        let after = after.map(s);
        self.read(move |c| slas::after(c, after.as_deref(), limit)).await
    }

    async fn judge_sla(&self, j: SlaJudgement) -> Result<bool> {
        self.write(move |c| slas::judge(c, &j)).await
    }

    async fn fold_rollups(&self, batch: usize, retention: RollupRetention) -> Result<u64> {
        self.write(move |c| stats::fold(c, now_millis(), batch, retention)).await
    }

    async fn reclaim_space(&self, max_pages: u64) -> Result<u64> {
        self.write(move |c| retention::reclaim(c, max_pages)).await
    }
}
