//! Operational webhooks (Svix's shape): events about an organisation's own
//! endpoints, messages and tasks — `endpoint.created`, `endpoint.disabled`,
//! `message.attempt.exhausted`, `background_task.finished`… — delivered to the
//! endpoints the organisation registered under `/api/v1/operational-webhook`.
//!
//! They ride the same pipeline as any message: each organisation has an
//! application of its own, kept in a separate organisation id ([`ops_org`]) so
//! no API route for ordinary applications ever reaches it, and its endpoints are
//! the operational webhook endpoints. An event is a message to that application
//! (`{"type": …, "data": …}`), durable once stored, signed, retried, throttled
//! and broken like any other. Events about the operational application itself
//! are never emitted (no loops).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_store::{Application, Endpoint, Message, Page, Queue, Resources, StoreError};
use serde_json::{json, Value};

/// The organisation id that holds `org_id`'s operational application. Real
/// organisation ids are base62 and never contain a dot.
pub fn ops_org(org_id: &str) -> String {
    format!("{org_id}.operational")
}

/// The id of `org_id`'s operational application (ids are unique across organisations).
pub fn ops_app(org_id: &str) -> String {
    format!("app.operational.{org_id}")
}

/// Whether `org_id` is an operational organisation (its events are not emitted).
pub fn is_ops_org(org_id: &str) -> bool {
    org_id.ends_with(".operational")
}

/// The operational application row for `org_id`.
pub fn ops_application(org_id: &str) -> Application {
    let t = now_millis();
    Application {
        org_id: ops_org(org_id),
        id: ops_app(org_id),
        uid: None,
        name: "operational webhooks".into(),
        rate_limit: None,
        metadata: Default::default(),
        created_at: t,
        updated_at: t,
    }
}

/// How long "this organisation has operational endpoints" is believed.
const KNOWN_FOR_MS: i64 = 5_000;

/// Emits operational events for the organisations that listen.
#[derive(Clone)]
pub struct Operational {
    inner: Arc<Inner>,
}

struct Inner {
    resources: Arc<dyn Resources>,
    queue: Arc<dyn Queue>,
    /// org → (checked at, has operational endpoints).
    listening: Mutex<HashMap<String, (i64, bool)>>,
    orgs: Arc<crate::orgs::OrgSettingsCache>,
}

impl Operational {
    pub fn new(resources: Arc<dyn Resources>, queue: Arc<dyn Queue>, orgs: Arc<crate::orgs::OrgSettingsCache>) -> Self {
        Operational { inner: Arc::new(Inner { resources, queue, listening: Mutex::default(), orgs }) }
    }

    /// Forgets what is known of the organisation's listeners (after an edit).
    pub fn forget(&self, org_id: &str) {
        self.inner.listening.lock().unwrap_or_else(|e| e.into_inner()).remove(org_id);
    }

    async fn listens(&self, org_id: &str) -> bool {
        let now = now_millis();
        if let Some((at, yes)) = self.inner.listening.lock().unwrap_or_else(|e| e.into_inner()).get(org_id) {
            if now - at < KNOWN_FOR_MS {
                return *yes;
            }
        }
        let page = Page { limit: 1, iterator: None, backwards: false, descending: false };
        let yes = match self.inner.resources.list_endpoints(&ops_org(org_id), &ops_app(org_id), &page).await {
            Ok(eps) => !eps.is_empty(),
            Err(e) => {
                tracing::warn!(error = %e, "reading operational webhook endpoints failed");
                return false;
            }
        };
        let mut listening = self.inner.listening.lock().unwrap_or_else(|e| e.into_inner());
        if listening.len() > 10_000 {
            listening.clear();
        }
        listening.insert(org_id.to_string(), (now, yes));
        yes
    }

    /// Stores the event for the organisation's operational endpoints (if it has
    /// any); delivering nodes send it. Failures are logged, never returned: an
    /// event never fails what caused it.
    pub async fn emit(&self, org_id: &str, event_type: &str, data: Value) {
        if is_ops_org(org_id) || !self.listens(org_id).await {
            return;
        }
        let payload = json!({ "type": event_type, "data": data }).to_string();
        let created_at = now_millis();
        let msg = Message {
            org_id: ops_org(org_id),
            app_id: ops_app(org_id),
            id: new_id(IdPrefix::Message),
            event_id: None,
            event_type: event_type.to_string(),
            channels: None,
            tags: None,
            payload: Some(Arc::from(payload.into_bytes())),
            created_at,
            // Operational events are kept a week.
            expires_at: created_at + 7 * 86_400_000,
            deliver_at: None,
        };
        let mut msg = msg;
        if let Err(e) = self.inner.orgs.seal_message(&mut msg).await {
            tracing::warn!(error = %e, event_type, "storing an operational event failed");
            return;
        }
        match self.inner.queue.enqueue(msg, None, None, None).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => self.forget(org_id),
            Err(e) => tracing::warn!(error = %e, event_type, "storing an operational event failed"),
        }
    }

    /// An event about one endpoint: `appId`, `appUid`, `endpointId`,
    /// `endpointUid`, and `extra` fields. An ingest endpoint's disabling is
    /// `ingest.endpoint.disabled`, with `sourceId` instead of the application.
    pub async fn emit_for_endpoint(&self, event_type: &str, ep: &Endpoint, extra: Value) {
        if is_ops_org(&ep.org_id) || !self.listens(&ep.org_id).await {
            return;
        }
        let (app_uid, source_id) = self.app_of(&ep.org_id, &ep.app_id).await;
        let (event_type, mut data) = match source_id {
            Some(source_id) if event_type == "endpoint.disabled" => (
                "ingest.endpoint.disabled",
                json!({ "sourceId": source_id, "endpointId": ep.id, "endpointUid": ep.uid }),
            ),
            _ => (
                event_type,
                json!({ "appId": ep.app_id, "appUid": app_uid, "endpointId": ep.id, "endpointUid": ep.uid }),
            ),
        };
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        self.emit(&ep.org_id, event_type, data).await;
    }

    /// `message.attempt.failing`, `.exhausted` or `.recovered`; for an ingest
    /// endpoint `ingest.message.attempt.…`, with `sourceId` instead of the application.
    #[allow(clippy::too_many_arguments)]
    pub async fn emit_for_attempt(
        &self,
        event_type: &str,
        ep: &Endpoint,
        msg_id: &str,
        msg_event_id: Option<&str>,
        attempt_id: &str,
        status_code: i32,
        at: i64,
    ) {
        if is_ops_org(&ep.org_id) || !self.listens(&ep.org_id).await {
            return;
        }
        let last_attempt = json!({"id": attempt_id, "responseStatusCode": status_code, "timestamp": format_millis(at)});
        let (app_uid, source_id) = self.app_of(&ep.org_id, &ep.app_id).await;
        let (event_type, data) = match source_id {
            Some(source_id) => (
                format!("ingest.{event_type}"),
                json!({
                    "sourceId": source_id,
                    "msgId": msg_id,
                    "msgEventId": msg_event_id,
                    "endpointId": ep.id,
                    "lastAttempt": last_attempt,
                }),
            ),
            None => (
                event_type.to_string(),
                json!({
                    "appId": ep.app_id,
                    "appUid": app_uid,
                    "msgId": msg_id,
                    "msgEventId": msg_event_id,
                    "endpointId": ep.id,
                    "lastAttempt": last_attempt,
                }),
            ),
        };
        self.emit(&ep.org_id, &event_type, data).await;
    }

    /// `background_task.finished`, with the task as it ended.
    pub async fn task_finished(&self, org_id: &str, task_id: &str) {
        if is_ops_org(org_id) || !self.listens(org_id).await {
            return;
        }
        let task = match self.inner.resources.get_task(org_id, task_id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "reading a finished task failed");
                return;
            }
        };
        let data = json!({
            "taskId": task.id,
            "task": task.kind.as_str(),
            "status": task.status.as_str(),
            "data": {"messagesSent": task.messages_sent},
        });
        self.emit(org_id, "background_task.finished", data).await;
    }

    /// The application's uid, and the inbound source that owns it, if one does.
    async fn app_of(&self, org_id: &str, app_id: &str) -> (Option<String>, Option<String>) {
        match self.inner.resources.get_app(org_id, app_id).await {
            Ok(a) => (a.uid, a.metadata.get("hookd.source").cloned()),
            Err(_) => (None, None),
        }
    }
}
