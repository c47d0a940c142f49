//! Connectors (Svix's `/api/v1/connector`, transformation templates): named
//! transformations an endpoint may use, made by the organisation or from one
//! of hookd's presets (`/api/v1/connector-preset`, an extension), and the
//! endpoint's `…/connector`: which one it uses, set in one call with the
//! variables and credentials the destination needs.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::format_millis;
use hookd_shaping::presets::{self, Credentials, Preset, VarKind};
use hookd_store::{
    AuthChange, BasicAuth, Connector, ConnectorSpec, Endpoint, EndpointChange, EndpointSettings, OauthAuthMethod,
    OauthConfig, OauthGrant, StoreError, Transformation,
};
use serde::{Deserialize, Serialize};

use super::endpoint::crud::check_destination;
use super::endpoint::transformation::{check_code_at, check_variables};
use super::endpoint::{change_endpoint, load_endpoint};
use super::{now, validate_uid};
use crate::auth::{AppAuth, OrgAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::wire::patch_field;
use crate::AppState;

/// Svix's `ConnectorKind`.
const KINDS: &[&str] = &[
    "Custom",
    "AgenticCommerceProtocol",
    "CloseCRM",
    "CustomerIO",
    "Discord",
    "Hubspot",
    "Inngest",
    "Loops",
    "Otel",
    "Resend",
    "Salesforce",
    "Segment",
    "Sendgrid",
    "Slack",
    "Teams",
    "TriggerDev",
    "Windmill",
    "Zapier",
];
const PRODUCTS: &[&str] = &["Dispatch", "Stream"];
const MAX_NAME_LEN: usize = 256;
const MAX_TEXT_LEN: usize = 64 * 1024;
const MAX_LIST: usize = 100;

/// `ConnectorIn` (and `ConnectorUpsertIn`), with `preset` (an extension): the
/// preset fills what is left out.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorIn {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub logo: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub allowed_event_types: Option<Vec<String>>,
    #[serde(default)]
    pub transformation: Option<String>,
    #[serde(default)]
    pub feature_flags: Option<Vec<String>>,
    #[serde(default)]
    pub product_type: Option<String>,
    #[serde(default)]
    pub preset: Option<String>,
}

/// `ConnectorPatch`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "patch_field")]
    pub logo: Option<Option<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default, deserialize_with = "patch_field")]
    pub allowed_event_types: Option<Option<Vec<String>>>,
    #[serde(default)]
    pub transformation: Option<String>,
    #[serde(default, deserialize_with = "patch_field")]
    pub feature_flags: Option<Option<Vec<String>>>,
}

/// `ConnectorOut`, with `preset` (an extension).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorOut {
    pub id: String,
    pub org_id: String,
    pub uid: Option<String>,
    pub kind: String,
    pub name: String,
    pub logo: Option<String>,
    pub description: String,
    pub instructions: String,
    pub allowed_event_types: Option<Vec<String>>,
    pub transformation: String,
    pub created_at: String,
    pub updated_at: String,
    pub transformation_updated_at: String,
    pub feature_flags: Option<Vec<String>>,
    pub product_type: String,
    pub preset: Option<String>,
}

impl From<Connector> for ConnectorOut {
    fn from(c: Connector) -> Self {
        ConnectorOut {
            id: c.id,
            org_id: c.org_id,
            uid: c.uid,
            kind: c.spec.kind,
            name: c.spec.name,
            logo: c.spec.logo,
            description: c.spec.description,
            instructions: c.spec.instructions,
            allowed_event_types: c.spec.allowed_event_types,
            transformation: c.spec.transformation,
            created_at: format_millis(c.created_at),
            updated_at: format_millis(c.updated_at),
            transformation_updated_at: format_millis(c.spec.transformation_updated_at),
            feature_flags: c.spec.feature_flags,
            product_type: c.spec.product_type.unwrap_or_else(|| "Dispatch".into()),
            preset: c.spec.preset,
        }
    }
}

/// A preset as a connector the organisation has not stored: its id is the
/// preset's name prefixed with `preset:`.
fn preset_out(p: &Preset, org_id: &str) -> ConnectorOut {
    ConnectorOut {
        id: format!("preset:{}", p.name),
        org_id: org_id.to_string(),
        uid: Some(p.name.to_string()),
        kind: p.kind.to_string(),
        name: p.title.to_string(),
        logo: None,
        description: p.description.to_string(),
        instructions: p.instructions.to_string(),
        allowed_event_types: None,
        transformation: p.code.to_string(),
        created_at: format_millis(0),
        updated_at: format_millis(0),
        transformation_updated_at: format_millis(0),
        feature_flags: None,
        product_type: "Dispatch".into(),
        preset: Some(p.name.to_string()),
    }
}

fn text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.len() > max {
        return Err(ApiError::body_field(field, format!("at most {max} bytes")));
    }
    Ok(())
}

fn names(field: &str, list: &Option<Vec<String>>) -> ApiResult<()> {
    let Some(list) = list else { return Ok(()) };
    if list.is_empty() || list.len() > MAX_LIST {
        return Err(ApiError::body_field(field, format!("1 to {MAX_LIST} names, or null")));
    }
    for n in list {
        hookd_core::validate::event_type_name(n).map_err(|e| ApiError::body_field(field, e))?;
    }
    Ok(())
}

/// Checks every field of a connector, its code last (it runs).
async fn check_spec(spec: &ConnectorSpec) -> ApiResult<()> {
    if spec.name.trim().is_empty() || spec.name.len() > MAX_NAME_LEN {
        return Err(ApiError::body_field("name", format!("1 to {MAX_NAME_LEN} characters")));
    }
    if !KINDS.contains(&spec.kind.as_str()) {
        return Err(ApiError::body_field("kind", format!("one of {}", KINDS.join(", "))));
    }
    if let Some(p) = &spec.product_type {
        if !PRODUCTS.contains(&p.as_str()) {
            return Err(ApiError::body_field("productType", "Dispatch or Stream"));
        }
    }
    if let Some(logo) = &spec.logo {
        text("logo", logo, hookd_core::validate::MAX_URL_LEN)?;
        if !url::Url::parse(logo).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(ApiError::body_field("logo", "an http or https URL"));
        }
    }
    text("description", &spec.description, MAX_TEXT_LEN)?;
    text("instructions", &spec.instructions, MAX_TEXT_LEN)?;
    names("allowedEventTypes", &spec.allowed_event_types)?;
    if let Some(flags) = &spec.feature_flags {
        if flags.len() > MAX_LIST || flags.iter().any(|f| hookd_core::validate::uid(f).is_err()) {
            return Err(ApiError::body_field("featureFlags", "at most 100 flags of letters, digits, '-', '_' and '.'"));
        }
    }
    check_code_at("transformation", &spec.transformation).await
}

/// The connector `input` describes (a preset filling what it leaves out).
fn spec_of(input: ConnectorIn, t: i64) -> ApiResult<ConnectorSpec> {
    let preset = match input.preset.as_deref() {
        None => None,
        Some(name) => Some(presets::get(name).ok_or_else(|| {
            let known: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
            ApiError::body_field("preset", format!("one of {}", known.join(", ")))
        })?),
    };
    let name = input.name.or(preset.map(|p| p.title.to_string()));
    let transformation = input.transformation.or(preset.map(|p| p.code.to_string()));
    Ok(ConnectorSpec {
        name: name.ok_or_else(|| ApiError::body_field("name", "field required"))?,
        kind: input.kind.or(preset.map(|p| p.kind.to_string())).unwrap_or_else(|| "Custom".into()),
        logo: input.logo,
        description: input.description.or(preset.map(|p| p.description.to_string())).unwrap_or_default(),
        instructions: input.instructions.or(preset.map(|p| p.instructions.to_string())).unwrap_or_default(),
        allowed_event_types: input.allowed_event_types,
        transformation: transformation.ok_or_else(|| ApiError::body_field("transformation", "field required"))?,
        feature_flags: input.feature_flags,
        product_type: input.product_type,
        transformation_updated_at: t,
        preset: preset.map(|p| p.name.to_string()),
    })
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<ConnectorOut>>> {
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_connectors(&auth.org_id, &page).await?;
    Ok(Json(list_response(&page, rows, |c| c.id.clone(), ConnectorOut::from)))
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<ConnectorOut>)> {
    let mut input: ConnectorIn = parse_json(&body)?;
    let uid = input.uid.take();
    validate_uid("uid", uid.as_deref())?;
    let t = now();
    let spec = spec_of(input, t)?;
    check_spec(&spec).await?;
    let ticket = match idempotency::begin(&state, &auth.org_id, uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => {
            let c = state.resources.get_connector(&auth.org_id, &prev.resource_id.unwrap_or_default()).await?;
            return Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::CREATED), Json(c.into())));
        }
        Begin::Fresh(t) => t,
    };
    let connector = Connector {
        org_id: auth.org_id.clone(),
        id: new_id(IdPrefix::Connector),
        uid,
        spec,
        created_at: t,
        updated_at: t,
    };
    let record = idempotency::record(&ticket, 201, Some(connector.id.clone()));
    match state.resources.create_connector(connector, record).await {
        Ok(c) => Ok((StatusCode::CREATED, Json(c.into()))),
        Err(StoreError::IdempotencyReplay(prev)) => {
            let prev = idempotency::replay_after_race(&ticket, prev)?;
            let c = state.resources.get_connector(&auth.org_id, &prev.resource_id.unwrap_or_default()).await?;
            Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::CREATED), Json(c.into())))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn get(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectorOut>> {
    Ok(Json(state.resources.get_connector(&auth.org_id, &id).await?.into()))
}

/// `ConnectorUpsertIn`: replaces the connector, or makes it with the path as its uid.
pub async fn upsert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<ConnectorOut>)> {
    let existing = match state.resources.get_connector(&auth.org_id, &id).await {
        Ok(c) => Some(c),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let mut input: ConnectorIn = parse_json(&body)?;
    input.uid = None;
    if input.name.is_none() && input.preset.is_none() {
        input.name = Some(existing.as_ref().map(|c| c.spec.name.clone()).unwrap_or_default());
    }
    let t = now();
    let spec = spec_of(input, t)?;
    check_spec(&spec).await?;
    match existing {
        Some(c) => {
            let transformation_updated_at = match c.spec.transformation == spec.transformation {
                true => c.spec.transformation_updated_at,
                false => t,
            };
            let spec = ConnectorSpec { transformation_updated_at, ..spec };
            Ok((
                StatusCode::OK,
                Json(state.resources.update_connector(Connector { spec, updated_at: t, ..c }).await?.into()),
            ))
        }
        None => {
            validate_uid("connector_id", Some(&id)).map_err(|_| ApiError::NotFound)?;
            let c = Connector {
                org_id: auth.org_id.clone(),
                id: new_id(IdPrefix::Connector),
                uid: Some(id),
                spec,
                created_at: t,
                updated_at: t,
            };
            Ok((StatusCode::CREATED, Json(state.resources.create_connector(c, None).await?.into())))
        }
    }
}

pub async fn patch(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<ConnectorOut>> {
    let mut c = state.resources.get_connector(&auth.org_id, &id).await?;
    let p: ConnectorPatch = parse_json(&body)?;
    let t = now();
    let s = &mut c.spec;
    if let Some(v) = p.name {
        s.name = v;
    }
    if let Some(v) = p.logo {
        s.logo = v;
    }
    if let Some(v) = p.description {
        s.description = v;
    }
    if let Some(v) = p.kind {
        s.kind = v;
    }
    if let Some(v) = p.instructions {
        s.instructions = v;
    }
    if let Some(v) = p.allowed_event_types {
        s.allowed_event_types = v;
    }
    if let Some(v) = p.feature_flags {
        s.feature_flags = v;
    }
    if let Some(v) = p.transformation {
        if v != s.transformation {
            s.transformation = v;
            s.transformation_updated_at = t;
        }
    }
    check_spec(&c.spec).await?;
    c.updated_at = t;
    Ok(Json(state.resources.update_connector(c).await?.into()))
}

pub async fn delete(State(state): State<AppState>, auth: OrgAuth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let c = state.resources.get_connector(&auth.org_id, &id).await?;
    state.resources.delete_connector(&auth.org_id, &c.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A preset as the form for it needs it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresetOut {
    pub name: &'static str,
    pub title: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    pub instructions: &'static str,
    pub example_url: &'static str,
    pub variables: Vec<VariableOut>,
    /// `none`, `bearer`, `apiKey`, `apiToken`, `oauth` or `bearerOrOauth`.
    pub credentials: &'static str,
    pub token_url: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct VariableOut {
    pub name: &'static str,
    pub required: bool,
    pub kind: &'static str,
    pub help: &'static str,
}

fn preset_info(p: &Preset) -> PresetOut {
    let (credentials, token_url) = match p.credentials {
        Credentials::None => ("none", None),
        Credentials::Bearer => ("bearer", None),
        Credentials::BasicApiKey => ("apiKey", None),
        Credentials::Header(_) => ("apiToken", None),
        Credentials::OauthRefresh { token_url } => ("oauth", Some(token_url)),
        Credentials::BearerOrOauth { token_url } => ("bearerOrOauth", Some(token_url)),
    };
    PresetOut {
        name: p.name,
        title: p.title,
        kind: p.kind,
        description: p.description,
        instructions: p.instructions,
        example_url: p.example_url,
        variables: p
            .variables
            .iter()
            .map(|v| VariableOut {
                name: v.name,
                required: v.required,
                kind: match v.kind {
                    VarKind::Name | VarKind::Matches { .. } => "name",
                    VarKind::Text => "text",
                    VarKind::FieldMap => "fieldMap",
                    VarKind::ColumnList => "columnList",
                    VarKind::OneOf(_) => "oneOf",
                },
                help: v.help,
            })
            .collect(),
        credentials,
        token_url,
    }
}

/// `GET /api/v1/connector-preset`: every preset, in one page.
pub async fn list_presets(_auth: OrgAuth) -> Json<ListResponse<PresetOut>> {
    Json(ListResponse {
        data: presets::PRESETS.iter().map(preset_info).collect(),
        iterator: None,
        prev_iterator: None,
        done: true,
    })
}

pub async fn get_preset(_auth: OrgAuth, Path(name): Path<String>) -> ApiResult<Json<PresetOut>> {
    presets::get(&name).map(|p| Json(preset_info(p))).ok_or(ApiError::NotFound)
}

/// Which connector an endpoint uses, with what (an extension: `PUT
/// …/endpoint/{id}/connector`, and `connector` on `EndpointIn`). Its `Debug`
/// leaves the credentials out.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectorUse {
    /// A connector's id or uid, or a preset's name.
    pub connector: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub credentials: Option<CredentialsIn>,
}

impl std::fmt::Debug for ConnectorUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorUse")
            .field("connector", &self.connector)
            .field("variables", &self.variables.keys().collect::<Vec<_>>())
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsIn {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_token: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
}

/// What applying a connector to an endpoint writes, checked before anything is.
pub struct Applied {
    /// Credentials cleared and set, in order.
    credentials: Vec<EndpointChange>,
    settings: EndpointSettings,
}

/// The headers presets keep credentials in.
fn preset_headers() -> Vec<String> {
    presets::PRESETS
        .iter()
        .filter_map(|p| match p.credentials {
            Credentials::Header(name) => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

const MAX_SECRET: usize = 8 * 1024;

fn secret(field: &str, v: &Option<String>) -> ApiResult<String> {
    match v {
        Some(s) if !s.is_empty() && s.len() <= MAX_SECRET && s.bytes().all(|b| (0x21..0x7f).contains(&b)) => {
            Ok(s.clone())
        }
        Some(_) => Err(ApiError::invalid(&["body", "credentials", field], "1 to 8192 visible characters")),
        None => Err(ApiError::invalid(&["body", "credentials", field], "field required")),
    }
}

/// Checks `using` against the endpoint (its URL, its event types, the
/// preset's variables and credentials) and says what to write. A preset's
/// credentials replace the endpoint's OAuth, basic, bearer and JWT
/// credentials and the headers presets use, so nothing meant for one
/// provider is sent to the next.
pub async fn prepare(state: &AppState, org_id: &str, ep: &Endpoint, using: ConnectorUse) -> ApiResult<Applied> {
    let at_connector = |msg: String| ApiError::invalid(&["body", "connector"], msg);
    if ep.control.batch.is_some() {
        return Err(at_connector("a batched endpoint sends payloads as they are: it cannot use a connector".into()));
    }
    let (code, reference, preset) = match presets::get(&using.connector) {
        Some(p) => (p.code.to_string(), format!("preset:{}", p.name), Some(p)),
        None => match state.resources.get_connector(org_id, &using.connector).await {
            Ok(c) => {
                if let Some(allowed) = &c.spec.allowed_event_types {
                    let fits = ep.event_types.as_ref().is_some_and(|t| t.iter().all(|t| allowed.contains(t)));
                    if !fits {
                        return Err(at_connector(format!(
                            "this connector is for {} only: give the endpoint event types among them",
                            allowed.join(", ")
                        )));
                    }
                }
                let preset = c.spec.preset.as_deref().and_then(presets::get);
                (c.spec.transformation, c.id, preset)
            }
            Err(StoreError::NotFound) => {
                return Err(at_connector(format!("no connector or preset is called {:?}", using.connector)))
            }
            Err(e) => return Err(e.into()),
        },
    };
    check_variables(&using.variables)?;
    let credentials = using.credentials.unwrap_or_default();
    if credentials.token_url.as_ref().is_some_and(|u| u.len() > hookd_core::validate::MAX_URL_LEN) {
        return Err(ApiError::invalid(
            &["body", "credentials", "tokenUrl"],
            "an http or https URL of at most 2048 bytes",
        ));
    }
    let mut changes = Vec::new();
    if let Some(p) = preset {
        let url = url::Url::parse(&ep.url).map_err(|e| at_connector(e.to_string()))?;
        p.check_url(&url).map_err(at_connector)?;
        p.check_variables(&using.variables)
            .map_err(|(name, msg)| ApiError::invalid(&["body", "variables", &name], msg))?;
        let oauth = |token_url: &str| -> ApiResult<EndpointChange> {
            let config = OauthConfig {
                grant_type: OauthGrant::RefreshToken,
                auth_method: OauthAuthMethod::ClientSecretPost,
                client_id: secret("clientId", &credentials.client_id)?,
                client_secret: Some(secret("clientSecret", &credentials.client_secret)?),
                token_url: credentials.token_url.clone().unwrap_or_else(|| token_url.to_string()),
                scopes: None,
                extra_params: None,
                extra_headers: None,
                refresh_token: Some(secret("refreshToken", &credentials.refresh_token)?),
                jwt_params: None,
            };
            if !url::Url::parse(&config.token_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                return Err(ApiError::invalid(&["body", "credentials", "tokenUrl"], "an http or https URL"));
            }
            Ok(EndpointChange::Auth(AuthChange::Oauth(Some(Box::new(config)))))
        };
        let change = match p.credentials {
            Credentials::None => None,
            Credentials::Bearer => {
                Some(EndpointChange::Auth(AuthChange::Bearer(Some(secret("token", &credentials.token)?))))
            }
            Credentials::BasicApiKey => Some(EndpointChange::Auth(AuthChange::Basic(Some(BasicAuth {
                username: "hookd".into(),
                password: secret("apiKey", &credentials.api_key)?,
            })))),
            Credentials::Header(name) => Some(EndpointChange::Headers {
                set: BTreeMap::from([(name.to_string(), secret("apiToken", &credentials.api_token)?)]),
                remove: Vec::new(),
                replace: false,
            }),
            Credentials::OauthRefresh { token_url } => Some(oauth(token_url)?),
            Credentials::BearerOrOauth { token_url } => match &credentials.token {
                Some(_) => Some(EndpointChange::Auth(AuthChange::Bearer(Some(secret("token", &credentials.token)?)))),
                None => Some(oauth(token_url)?),
            },
        };
        if let Some(EndpointChange::Auth(AuthChange::Oauth(Some(config)))) = &change {
            check_destination(state, org_id, Some(&config.token_url)).await.map_err(|_| {
                ApiError::invalid(
                    &["body", "credentials", "tokenUrl"],
                    "the destination policy does not allow this address",
                )
            })?;
        }
        // What any earlier preset (or anyone) left goes first.
        let stale: Vec<String> =
            preset_headers().into_iter().filter(|h| ep.headers.keys().any(|k| k.eq_ignore_ascii_case(h))).collect();
        if !stale.is_empty() {
            changes.push(EndpointChange::Headers { set: BTreeMap::new(), remove: stale, replace: false });
        }
        changes.push(EndpointChange::Auth(AuthChange::Oauth(None)));
        changes.push(EndpointChange::Auth(AuthChange::Basic(None)));
        changes.extend(change);
    }
    let transformation =
        Transformation { code: Some(code), enabled: true, variables: using.variables, updated_at: now() };
    let settings = EndpointSettings {
        transformation: Some(Some(transformation)),
        connector: Some(Some(reference)),
        ..Default::default()
    };
    Ok(Applied { credentials: changes, settings })
}

/// Writes what [`prepare`] checked: the credentials, then the transformation.
pub async fn apply(state: &AppState, auth: &AppAuth, endpoint_id: &str, applied: Applied) -> ApiResult<()> {
    for change in applied.credentials {
        change_endpoint(state, auth, endpoint_id, change, None).await?;
    }
    change_endpoint(state, auth, endpoint_id, EndpointChange::Settings(applied.settings), None).await?;
    Ok(())
}

/// `GET …/endpoint/{id}/connector`: the connector the endpoint uses (204
/// when none; the preset itself for a preset).
pub async fn get_for_endpoint(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let Some(reference) = ep.control.connector.as_deref() else { return Ok(StatusCode::NO_CONTENT.into_response()) };
    if let Some(p) = reference.strip_prefix("preset:").and_then(presets::get) {
        return Ok(Json(preset_out(p, auth.org_id())).into_response());
    }
    match state.resources.get_connector(auth.org_id(), reference).await {
        Ok(c) => Ok(Json(ConnectorOut::from(c)).into_response()),
        // Deleted since: the endpoint keeps its copy of the code.
        Err(StoreError::NotFound) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(e.into()),
    }
}

/// `PUT …/endpoint/{id}/connector` (an extension): uses a connector or a
/// preset, with its variables and credentials, in one call.
pub async fn put_for_endpoint(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let ep: Endpoint = load_endpoint(&state, &auth, &endpoint_id).await?;
    let using: ConnectorUse = parse_json(&body)?;
    let applied = prepare(&state, auth.org_id(), &ep, using).await?;
    apply(&state, &auth, &ep.id, applied).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/endpoint/{id}/connector` (an extension): the endpoint stops
/// using it, and its transformation with it. Its credentials stay.
pub async fn delete_for_endpoint(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    if ep.control.connector.is_none() {
        return Err(ApiError::NotFound);
    }
    let settings = EndpointSettings { transformation: Some(None), connector: Some(None), ..Default::default() };
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Settings(settings), None).await?;
    Ok(StatusCode::NO_CONTENT)
}
