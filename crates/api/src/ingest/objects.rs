//! Status tracking: `GET …/source/{id}/object/{object_id}`, an object's
//! furthest status and the requests that reported on it, oldest first.

use axum::extract::{Path, State};
use axum::Json;
use hookd_core::timefmt::format_millis;
use hookd_store::{InboundFilter, Page};
use serde::Serialize;

use super::log::{request_out, InboundRequestOut};
use super::sources;
use crate::auth::OrgAuth;
use crate::error::ApiResult;
use crate::AppState;

/// Requests listed with an object at most; `GET …/request?objectId=` pages
/// through the rest.
const HISTORY_MAX: usize = 100;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackedObjectOut {
    pub object_id: String,
    pub source_id: String,
    /// The furthest status reported so far.
    pub status: String,
    /// The request that reported it.
    pub request_id: String,
    pub created_at: String,
    pub updated_at: String,
    /// The requests that reported on the object, oldest first, without content:
    /// `accepted` ones were forwarded, `ignored` ones did not move it forward.
    pub history: Vec<InboundRequestOut>,
    /// More requests than `history` holds.
    pub history_truncated: bool,
}

pub async fn get(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, object_id)): Path<(String, String)>,
) -> ApiResult<Json<TrackedObjectOut>> {
    let src = sources::load(&state, &auth, &source_id).await?;
    let object = state.resources.get_tracked_object(&auth.org_id, &src.id, &object_id).await?;
    let filter = InboundFilter { object_id: Some(object.object_id.clone()), ..Default::default() };
    let page = Page { limit: HISTORY_MAX, iterator: None, backwards: false, descending: false };
    let mut rows = state.resources.list_inbound_requests(&auth.org_id, &src.id, &filter, &page).await?;
    let history_truncated = rows.len() > HISTORY_MAX;
    rows.truncate(HISTORY_MAX);
    Ok(Json(TrackedObjectOut {
        object_id: object.object_id,
        source_id: object.source_id,
        status: object.status,
        request_id: object.request_id,
        created_at: format_millis(object.created_at),
        updated_at: format_millis(object.updated_at),
        history: rows.into_iter().map(|(r, f)| request_out(r, f, false)).collect(),
        history_truncated,
    }))
}
