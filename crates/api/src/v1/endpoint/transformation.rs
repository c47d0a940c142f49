//! An endpoint's transformation (Svix's `…/endpoint/{id}/transformation`): a
//! JavaScript `handler(webhook)` run before each send when enabled, and
//! `…/transformation/simulate` to try code on a sample payload.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_shaping::transform::{self, Limits, WebhookIn, MAX_CODE_LEN, MIN_CODE_LEN};
use hookd_store::{EndpointChange, EndpointSettings, Transformation};
use serde::{Deserialize, Serialize};

use super::{change_endpoint, load_endpoint};
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, RawBody};
use crate::v1::now;
use crate::wire::patch_field;
use crate::AppState;

/// Variables an endpoint's transformation may have at most, and their size.
const MAX_VARIABLES: usize = 64;
const MAX_VARIABLE_LEN: usize = 4096;

/// `EndpointTransformationOut`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformationOut {
    pub code: Option<String>,
    pub enabled: bool,
    pub variables: Option<BTreeMap<String, String>>,
    pub updated_at: Option<String>,
}

/// `EndpointTransformationPatch` (and the older `EndpointTransformationIn`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformationPatch {
    #[serde(default, deserialize_with = "patch_field")]
    pub code: Option<Option<String>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "patch_field")]
    pub variables: Option<Option<BTreeMap<String, String>>>,
}

/// `TransformationSimulateIn`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulateIn {
    pub code: String,
    pub event_type: String,
    pub payload: serde_json::Value,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
}

/// `TransformationSimulateOut`, with the headers the code added (an extension).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulateOut {
    pub url: String,
    pub payload: String,
    pub method: Option<String>,
    pub cancel: bool,
    pub headers: BTreeMap<String, String>,
}

/// Checks code before it is stored or run: its length, and that it compiles
/// and defines `handler` (its top level runs, on a blocking thread).
pub async fn check_code(code: &str) -> ApiResult<()> {
    check_code_at("code", code).await
}

/// [`check_code`], the error at `field`.
pub async fn check_code_at(field: &str, code: &str) -> ApiResult<()> {
    let chars = code.chars().count();
    if !(MIN_CODE_LEN..=MAX_CODE_LEN).contains(&chars) {
        return Err(ApiError::body_field(field, format!("{MIN_CODE_LEN} to {MAX_CODE_LEN} characters")));
    }
    let code = code.to_string();
    tokio::task::spawn_blocking(move || transform::check(&code))
        .await
        .map_err(|e| ApiError::Internal(format!("checking the code did not finish: {e}")))?
        .map_err(|e| ApiError::body_field(field, e.to_string()))
}

pub fn check_variables(vars: &BTreeMap<String, String>) -> ApiResult<()> {
    if vars.len() > MAX_VARIABLES
        || vars.iter().any(|(k, v)| k.is_empty() || k.len() > 256 || v.len() > MAX_VARIABLE_LEN)
    {
        return Err(ApiError::body_field(
            "variables",
            format!("at most {MAX_VARIABLES} variables, names of 1 to 256 characters, values up to {MAX_VARIABLE_LEN}"),
        ));
    }
    Ok(())
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<TransformationOut>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let t = ep.control.transformation.unwrap_or_default();
    Ok(Json(TransformationOut {
        code: t.code,
        enabled: t.enabled,
        variables: (!t.variables.is_empty()).then_some(t.variables),
        updated_at: (t.updated_at > 0).then(|| hookd_core::timefmt::format_millis(t.updated_at)),
    }))
}

pub async fn patch(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let p: TransformationPatch = parse_json(&body)?;
    if let Some(Some(code)) = &p.code {
        check_code(code).await?;
    }
    if let Some(Some(vars)) = &p.variables {
        check_variables(vars)?;
    }
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    if ep.control.batch.is_some() {
        return Err(ApiError::body_field("code", "a batched endpoint cannot have a transformation"));
    }
    let mut t = ep.control.transformation.clone().unwrap_or_default();
    if let Some(code) = p.code {
        t.code = code;
    }
    if let Some(enabled) = p.enabled {
        t.enabled = enabled;
    }
    if let Some(vars) = p.variables {
        t.variables = vars.unwrap_or_default();
    }
    if t.enabled && t.code.is_none() {
        return Err(ApiError::body_field("enabled", "there is no code to run: set `code` first"));
    }
    t.updated_at = now();
    let keep = t.code.is_some() || t.enabled || !t.variables.is_empty();
    let settings = EndpointSettings { transformation: Some(keep.then_some(t)), ..Default::default() };
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Settings(settings), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn simulate(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<SimulateOut>> {
    let input: SimulateIn = parse_json(&body)?;
    check_code(&input.code).await?;
    hookd_core::validate::event_type_name(&input.event_type).map_err(|e| ApiError::body_field("eventType", e))?;
    if let Some(vars) = &input.variables {
        check_variables(vars)?;
    }
    if let Some(channels) = &input.channels {
        if channels.len() > hookd_core::validate::MAX_CHANNELS {
            return Err(ApiError::body_field(
                "channels",
                format!("at most {} channels", hookd_core::validate::MAX_CHANNELS),
            ));
        }
        for c in channels {
            hookd_core::validate::channel(c).map_err(|e| ApiError::body_field("channels", e))?;
        }
    }
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let variables = input
        .variables
        .or_else(|| ep.control.transformation.as_ref().map(|t: &Transformation| t.variables.clone()))
        .unwrap_or_default();
    let webhook = WebhookIn {
        method: "POST".into(),
        url: ep.url.clone(),
        event_type: input.event_type,
        msg_id: hookd_core::id::new_id(hookd_core::id::IdPrefix::Message),
        channels: input.channels,
        payload: input.payload,
        headers: BTreeMap::new(),
        variables,
    };
    let code = input.code;
    let out = tokio::task::spawn_blocking(move || transform::run(&code, &webhook, &Limits::default()))
        .await
        .map_err(|e| ApiError::Internal(format!("the transformation did not finish: {e}")))?
        .map_err(|e| ApiError::body_field("code", e.to_string()))?;
    Ok(Json(SimulateOut {
        url: out.url,
        payload: String::from_utf8_lossy(&out.body).into_owned(),
        method: Some(out.method),
        cancel: out.cancel,
        headers: out.headers,
    }))
}
