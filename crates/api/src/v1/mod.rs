//! The Svix-compatible `/api/v1` routes, one module per resource.

pub mod application;
pub mod attempt;
pub mod background_task;
pub mod connector;
pub mod endpoint;
pub mod environment;
pub mod event_type;
pub mod event_type_openapi;
pub mod health;
pub mod management;
pub mod mcp_token;
pub mod message;
pub mod operational;
pub mod poller;
pub mod portal;
pub mod settings;
pub mod sla;
pub mod stats;
pub mod template;
pub mod trail;

use axum::routing::{delete, get, post};
use axum::Router;
use hookd_store::{Application, Metadata};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

const MAX_METADATA_ENTRIES: usize = 64;
const MAX_METADATA_VALUE_LEN: usize = 4096;

pub fn router() -> Router<AppState> {
    let app = "/api/v1/app/{app_id}";
    let ep = "/api/v1/app/{app_id}/endpoint/{endpoint_id}";
    let msg = "/api/v1/app/{app_id}/msg/{msg_id}";
    Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/app", get(application::list).post(application::create))
        .route(
            app,
            get(application::get).put(application::upsert).patch(application::patch).delete(application::delete),
        )
        .route("/api/v1/event-type", get(event_type::list).post(event_type::create))
        .route("/api/v1/event-type/import/openapi", post(event_type_openapi::import))
        .route("/api/v1/event-type/export/openapi", post(event_type_openapi::export))
        .route(
            "/api/v1/event-type/{name}",
            get(event_type::get).put(event_type::upsert).patch(event_type::patch).delete(event_type::delete),
        )
        .route(
            "/api/v1/event-type/{name}/retry-schedule",
            get(event_type::get_retry_schedule).put(event_type::put_retry_schedule),
        )
        .route(&format!("{app}/endpoint"), get(endpoint::crud::list).post(endpoint::crud::create))
        .route(
            ep,
            get(endpoint::crud::get)
                .put(endpoint::crud::upsert)
                .patch(endpoint::crud::patch)
                .delete(endpoint::crud::delete),
        )
        .route(&format!("{ep}/secret"), get(endpoint::secret::get))
        .route(&format!("{ep}/secret/rotate"), post(endpoint::secret::rotate))
        .route(
            &format!("{ep}/headers"),
            get(endpoint::headers::get).put(endpoint::headers::update).patch(endpoint::headers::patch),
        )
        .route(
            &format!("{ep}/oauth"),
            get(endpoint::auth::get_oauth).put(endpoint::auth::put_oauth).delete(endpoint::auth::delete_oauth),
        )
        .route(&format!("{ep}/oauth-config"), get(endpoint::auth::get_oauth))
        .route(
            &format!("{ep}/mtls"),
            get(endpoint::auth::get_mtls).put(endpoint::auth::put_mtls).delete(endpoint::auth::delete_mtls),
        )
        .route(&format!("{ep}/mtls-config"), get(endpoint::auth::get_mtls))
        .route(&format!("{ep}/ca"), get(endpoint::auth::get_ca).put(endpoint::auth::put_ca))
        .route(
            &format!("{ep}/auth"),
            get(endpoint::auth::get_auth).put(endpoint::auth::put_auth).delete(endpoint::auth::delete_auth),
        )
        .route(
            &format!("{ep}/transformation"),
            get(endpoint::transformation::get).patch(endpoint::transformation::patch),
        )
        .route(&format!("{ep}/transformation/simulate"), post(endpoint::transformation::simulate))
        .route(
            &format!("{ep}/connector"),
            get(connector::get_for_endpoint).put(connector::put_for_endpoint).delete(connector::delete_for_endpoint),
        )
        .route("/api/v1/connector", get(connector::list).post(connector::create))
        .route(
            "/api/v1/connector/{connector_id}",
            get(connector::get).put(connector::upsert).patch(connector::patch).delete(connector::delete),
        )
        .route("/api/v1/connector-preset", get(connector::list_presets))
        .route("/api/v1/connector-preset/{preset}", get(connector::get_preset))
        .route("/api/v1/template", get(template::list).post(template::create))
        .route("/api/v1/template/{template_id}", get(template::get).patch(template::patch).delete(template::delete))
        .route("/api/v1/template/{template_id}/version", get(template::list_versions).post(template::create_version))
        .route("/api/v1/template/{template_id}/version/{version}", get(template::get_version))
        .route("/api/v1/template/{template_id}/render", post(template::render))
        .route(&format!("{ep}/send-example"), post(endpoint::recovery::send_example))
        .route(&format!("{ep}/recover"), post(endpoint::recovery::recover))
        .route(&format!("{ep}/replay-missing"), post(endpoint::recovery::replay_missing))
        .route(&format!("{ep}/bulk-replay"), post(endpoint::recovery::bulk_replay))
        .route(&format!("{ep}/stats"), get(endpoint::stats::get))
        .route(&format!("{ep}/check"), get(endpoint::check::get).post(endpoint::check::run))
        .route(&format!("{ep}/health-history"), get(endpoint::check::health_history))
        .route("/api/v1/stats/app/{app_id}/attempt", get(stats::app_attempt_series))
        .route(&format!("{app}/stats/attempts"), get(stats::app_attempt_totals))
        .route(&format!("{app}/stats/summary"), get(stats::app_summary))
        .route(&format!("{app}/trail"), get(trail::export))
        .route("/api/v1/environment/export", post(environment::export))
        .route("/api/v1/environment/import", post(environment::import))
        .route("/api/v1/sla", get(sla::list).post(sla::create))
        .route("/api/v1/sla/{sla_id}", get(sla::get).patch(sla::patch).delete(sla::delete))
        .route("/api/v1/sla/{sla_id}/history", get(sla::history))
        .route(&format!("{ep}/rate-limit-status"), get(endpoint::control::rate_limit_status))
        .route(&format!("{ep}/msg"), get(attempt::list_attempted_messages))
        .route(&format!("{app}/msg"), get(message::list).post(message::create))
        .route(msg, get(message::get))
        .route(&format!("{msg}/content"), delete(message::expunge_content))
        .route(&format!("{msg}/cancel"), post(message::cancel))
        .route(&format!("{msg}/attempt/{{attempt_id}}"), get(attempt::get))
        .route(&format!("{msg}/attempt/{{attempt_id}}/headers"), get(attempt::headers))
        .route(&format!("{msg}/endpoint"), get(attempt::list_attempted_destinations))
        .route(&format!("{msg}/endpoint/{{endpoint_id}}/resend"), post(attempt::resend))
        .route(&format!("{app}/attempt/endpoint/{{endpoint_id}}"), get(attempt::list_by_endpoint))
        .route(&format!("{app}/attempt/msg/{{msg_id}}"), get(attempt::list_by_msg))
        .route(&format!("{app}/attempt/{{attempt_id}}"), get(attempt::get_by_id))
        .route(&format!("{app}/stream/sink"), get(poller::sink::list).post(poller::sink::create))
        .route(
            &format!("{app}/stream/sink/{{sink_id}}"),
            get(poller::sink::get).put(poller::sink::upsert).patch(poller::sink::patch).delete(poller::sink::delete),
        )
        .route(&format!("{app}/destination"), get(poller::sink::list).post(poller::sink::create))
        .route(
            &format!("{app}/destination/{{sink_id}}"),
            get(poller::sink::get).put(poller::sink::upsert).patch(poller::sink::patch).delete(poller::sink::delete),
        )
        .route(&format!("{app}/poller/{{sink_id}}"), get(poller::consume::poll))
        .route(&format!("{app}/poller/{{sink_id}}/consumer/{{consumer_id}}"), get(poller::consume::consumer_poll))
        .route(&format!("{app}/poller/{{sink_id}}/consumer/{{consumer_id}}/seek"), post(poller::consume::consumer_seek))
        .route(&format!("{app}/polling-endpoint/{{sink_id}}/consumer/{{consumer_id}}"), get(poller::consume::v2_poll))
        .route(
            &format!("{app}/polling-endpoint/{{sink_id}}/consumer/{{consumer_id}}/commit"),
            post(poller::consume::v2_commit),
        )
        .route("/api/v1/auth/app/{app_id}/poller/{sink_id}/token", get(poller::token::get))
        .route("/api/v1/auth/app/{app_id}/poller/{sink_id}/token/rotate", post(poller::token::rotate))
        .route("/api/v1/auth/app-portal-access/{app_id}", post(portal::app_portal_access))
        .route("/api/v1/auth/whoami", get(portal::whoami))
        .route("/api/v1/auth/one-time-token", post(portal::exchange_one_time_token))
        .route("/api/v1/auth/app/{app_id}/expire-all", post(portal::expire_all))
        .route("/api/v1/auth/app/{app_id}/mcp-token", get(mcp_token::list_for_app).post(mcp_token::create_for_app))
        .route("/api/v1/auth/app/{app_id}/mcp-token/{token_id}", delete(mcp_token::revoke_for_app))
        .route(
            "/api/v1/auth/dashboard/mcp-token",
            get(mcp_token::list_for_dashboard).post(mcp_token::create_for_dashboard),
        )
        .route("/api/v1/auth/dashboard/mcp-token/{token_id}", delete(mcp_token::revoke_for_dashboard))
        .route("/api/v1/operational-webhook/endpoint", get(operational::list).post(operational::create))
        .route(
            "/api/v1/operational-webhook/endpoint/{endpoint_id}",
            get(operational::get).put(operational::upsert).delete(operational::delete),
        )
        .route("/api/v1/operational-webhook/endpoint/{endpoint_id}/secret", get(operational::get_secret))
        .route("/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate", post(operational::rotate_secret))
        .route(
            "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
            get(operational::get_headers).put(operational::update_headers),
        )
        .route(
            "/api/v1/management/environment",
            get(management::list_environments).post(management::create_environment),
        )
        .route(
            "/api/v1/management/environment/{env_id}",
            get(management::get_environment).put(management::update_environment).delete(management::delete_environment),
        )
        .route(
            "/api/v1/management/authentication/{env_id}/api-token",
            get(management::list_tokens).post(management::create_token),
        )
        .route(
            "/api/v1/management/authentication/{env_id}/api-token/{key_id}",
            get(management::get_token).put(management::update_token).patch(management::update_token),
        )
        .route("/api/v1/management/authentication/{env_id}/api-token/{key_id}/expire", post(management::expire_token))
        .route("/api/v1/management/environment-settings", get(settings::get).put(settings::put).patch(settings::patch))
        .route("/api/v1/environment/settings", get(settings::environment))
        .route("/api/v1/background-task", get(background_task::list))
        .route("/api/v1/background-task/{task_id}", get(background_task::get))
}

/// The application named by `id_or_uid`, if the caller may see it (for the few
/// routes whose application comes from elsewhere than the path's `{app_id}`).
pub async fn load_app(state: &AppState, auth: &Auth, id_or_uid: &str) -> ApiResult<Application> {
    let app = state.resources.get_app(&auth.org_id, id_or_uid).await?;
    auth.check_app(&app.id)?;
    Ok(app)
}

pub fn validate_metadata(m: &Metadata) -> ApiResult<()> {
    if m.len() > MAX_METADATA_ENTRIES {
        return Err(ApiError::body_field("metadata", format!("at most {MAX_METADATA_ENTRIES} entries")));
    }
    if m.iter().any(|(k, v)| k.len() > 256 || v.len() > MAX_METADATA_VALUE_LEN) {
        return Err(ApiError::body_field(
            "metadata",
            format!("keys are at most 256 bytes and values at most {MAX_METADATA_VALUE_LEN}"),
        ));
    }
    Ok(())
}

pub fn validate_uid(field: &str, uid: Option<&str>) -> ApiResult<()> {
    match uid {
        Some(u) => hookd_core::validate::uid(u).map_err(|e| ApiError::body_field(field, e)),
        None => Ok(()),
    }
}

pub fn now() -> i64 {
    hookd_core::timefmt::now_millis()
}
