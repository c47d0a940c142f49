//! Endpoints of an application: `/api/v1/app/{app}/endpoint`, with their
//! secret, headers, recovery and stats sub-resources.

pub mod crud;
pub mod headers;
pub mod recovery;
pub mod secret;
pub mod stats;

use std::collections::BTreeMap;

use hookd_store::{Application, Endpoint};

use super::load_app;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The application and endpoint named in the path (each by id or uid).
pub async fn load_endpoint(
    state: &AppState,
    auth: &Auth,
    app_id: &str,
    endpoint_id: &str,
) -> ApiResult<(Application, Endpoint)> {
    let app = load_app(state, auth, app_id).await?;
    let ep = state.store.get_endpoint(&auth.org_id, &app.id, endpoint_id).await?;
    Ok((app, ep))
}

/// Custom headers: bounded in number and size, valid names, no CR/LF in values,
/// and none of the headers hookd sets itself.
pub fn validate_headers(headers: &BTreeMap<String, String>) -> ApiResult<()> {
    if headers.len() > hookd_core::validate::MAX_HEADERS {
        return Err(ApiError::body_field("headers", format!("at most {} headers", hookd_core::validate::MAX_HEADERS)));
    }
    for (name, value) in headers {
        hookd_core::validate::custom_header(name, value).map_err(|e| ApiError::body_field("headers", e))?;
    }
    Ok(())
}
