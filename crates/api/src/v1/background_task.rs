//! Background tasks: `GET /api/v1/background-task` and `…/{task_id}` (Svix
//! `BackgroundTaskOut`). `data.messagesSent` counts the deliveries a recover or
//! replay made due so far; a failed task says why in `data.error`.

use axum::extract::{OriginalUri, Path, State};
use axum::Json;
use hookd_core::timefmt::format_millis;
use hookd_store::{BackgroundTask, TaskFilter, TaskKind, TaskStatus};
use serde::Serialize;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::AppState;

/// `BackgroundTaskOut`; also the `RecoverOut`/`ReplayOut` of the calls that
/// start one (which carry no `data`, and the SDKs ignore it there).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOut {
    pub id: String,
    pub status: &'static str,
    pub task: &'static str,
    pub data: Value,
    pub updated_at: String,
}

impl From<&BackgroundTask> for TaskOut {
    fn from(t: &BackgroundTask) -> Self {
        let mut data = match t.result.as_deref().and_then(|r| serde_json::from_str(r).ok()) {
            Some(result) => result,
            None => json!({ "messagesSent": t.messages_sent, "endpointId": t.endpoint_id, "appId": t.app_id }),
        };
        if let Some(e) = &t.error {
            data["error"] = json!(e);
        }
        TaskOut {
            id: t.id.clone(),
            status: t.status.as_str(),
            task: t.kind.as_str(),
            data,
            updated_at: format_millis(t.updated_at),
        }
    }
}

/// An app-scoped (portal) token sees its application's tasks only.
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<TaskOut>>> {
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Descending)?;
    let status = match q.get("status").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            TaskStatus::parse(s)
                .ok_or_else(|| ApiError::query_field("status", "status is running, finished or failed"))?,
        ),
        None => None,
    };
    let kind = match q.get("task").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            TaskKind::parse(s)
                .ok_or_else(|| ApiError::query_field("task", "task is endpoint.recover or endpoint.replay"))?,
        ),
        None => None,
    };
    let filter = TaskFilter { app_id: auth.app_id.clone(), status, kind };
    let rows = state.resources.list_tasks(&auth.org_id, &filter, &page).await?;
    Ok(Json(list_response(&page, rows, |t| t.id.clone(), |t| TaskOut::from(&t))))
}

pub async fn get(State(state): State<AppState>, auth: Auth, Path(task_id): Path<String>) -> ApiResult<Json<TaskOut>> {
    let task = state.resources.get_task(&auth.org_id, &task_id).await?;
    auth.check_app(&task.app_id)?;
    Ok(Json(TaskOut::from(&task)))
}
