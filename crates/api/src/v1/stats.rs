//! Delivery statistics from the rollups (`hookd_store::stats`): Svix's two
//! attempt-statistics paths, and hookd's summary with failure classes, latency
//! percentiles, bytes and the queue now.
//!
//! - `GET /api/v1/stats/app/{app_id}/attempt` (`startDate`, `endDate`,
//!   `period`, `event_types`): success and failure counts per period.
//! - `GET /api/v1/app/{app_id}/stats/attempts` (`since`, `until`,
//!   `event_types`): totals and per event type.
//! - `GET /api/v1/app/{app_id}/stats/summary` (`since`, `until`, `period`,
//!   `endpoint_id`, `event_types`): everything, per period and event type.
//!
//! Attempts are either successes or failures: a canceled delivery makes no
//! attempt, so the `canceled` figures Svix's shapes carry are always 0 here.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, State};
use axum::Json;
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_store::{Rollup, StatsQuery, StatsRow};
use serde::Serialize;
use serde_json::{json, Value};

use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::AppState;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
/// Most periods one read answers.
const MAX_SLOTS: i64 = 1_000;
/// Most event types one read names.
const MAX_EVENT_TYPES: usize = 50;
/// The range read when none is given: the last 28 days (as Svix's dashboard)…
const DEFAULT_RANGE: i64 = 28 * DAY;

/// …or, for a series, a range that suits its period: 28 days by day, 7 days by
/// hour, a day by five minutes, 6 hours by minute.
fn default_range(period: i64) -> i64 {
    match period {
        DAY => DEFAULT_RANGE,
        3_600_000 => 7 * DAY,
        MINUTE => 6 * 3_600_000,
        _ => DAY,
    }
}

/// A statistics period, by Svix's names, plus `OneMinute`.
fn period_ms(name: Option<&str>, default: i64) -> ApiResult<(i64, &'static str)> {
    Ok(match name {
        None | Some("") => match default {
            MINUTE => (MINUTE, "OneMinute"),
            DAY => (DAY, "OneDay"),
            _ => (3_600_000, "OneHour"),
        },
        Some("OneMinute") => (MINUTE, "OneMinute"),
        Some("FiveMinutes") => (5 * MINUTE, "FiveMinutes"),
        Some("OneHour") => (3_600_000, "OneHour"),
        Some("OneDay") => (DAY, "OneDay"),
        Some(_) => {
            return Err(ApiError::query_field("period", "expected one of OneMinute, FiveMinutes, OneHour, OneDay"))
        }
    })
}

fn event_types(q: &QueryParams) -> ApiResult<Vec<String>> {
    let types = q.list("event_types");
    if types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::query_field("event_types", format!("at most {MAX_EVENT_TYPES} event types")));
    }
    if let Some(bad) = types.iter().find(|t| t.len() > 256) {
        let start: String = bad.chars().take(32).collect();
        return Err(ApiError::query_field("event_types", format!("`{start}…` is longer than 256 bytes")));
    }
    Ok(types)
}

/// [since, until) checked: ordered, and at most `MAX_SLOTS` periods long.
fn range(since: i64, until: i64, period: i64, names: (&str, &str)) -> ApiResult<()> {
    if until <= since {
        return Err(ApiError::query_field(names.1, format!("must be after {}", names.0)));
    }
    let slots = ((until - since) as u64).div_ceil(period as u64) as i64;
    if slots > MAX_SLOTS {
        return Err(ApiError::query_field(
            names.0,
            format!("the range holds {slots} periods; at most {MAX_SLOTS} (choose a longer period or a shorter range)"),
        ));
    }
    Ok(())
}

async fn read(state: &AppState, q: StatsQuery) -> ApiResult<Vec<StatsRow>> {
    Ok(state.resources.stats(q).await?)
}

/// `GET /api/v1/stats/app/{app_id}/attempt`.
pub async fn app_attempt_series(
    State(state): State<AppState>,
    auth: AppAuth,
    uri: OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(uri.query());
    let (period, period_name) = period_ms(q.get("period"), DAY)?;
    let end = q.datetime("endDate")?.unwrap_or_else(now_millis);
    let start = q.datetime("startDate")?.unwrap_or(end - default_range(period));
    // Whole periods: the first one holds startDate.
    let first = start.div_euclid(period) * period;
    range(first, end, period, ("startDate", "endDate"))?;
    let query = StatsQuery {
        org_id: auth.org_id().to_string(),
        app_id: auth.app.id.clone(),
        endpoint_id: None,
        event_types: event_types(&q)?,
        since: first,
        until: end,
        period_ms: period,
    };
    let rows = read(&state, query).await?;
    let slots = ((end - first) as u64).div_ceil(period as u64).max(1) as usize;
    let (mut success, mut failure) = (vec![0u64; slots], vec![0u64; slots]);
    for r in rows {
        let i = ((r.slot_start - first) / period) as usize;
        if i < slots {
            success[i] += r.rollup.success;
            failure[i] += r.rollup.failures();
        }
    }
    Ok(Json(json!({
        "startDate": format_millis(first),
        "endDate": format_millis(end),
        "period": period_name,
        "data": {
            "successCount": success,
            "failureCount": failure,
            "canceledCount": vec![0u64; slots],
        },
    })))
}

#[derive(Serialize)]
struct EventTypeCounts {
    success: u64,
    failure: u64,
    canceled: u64,
}

/// `GET /api/v1/app/{app_id}/stats/attempts`.
pub async fn app_attempt_totals(
    State(state): State<AppState>,
    auth: AppAuth,
    uri: OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(uri.query());
    let until = q.datetime("until")?.unwrap_or_else(now_millis);
    let since = q.datetime("since")?.unwrap_or(until - DEFAULT_RANGE);
    if until <= since {
        return Err(ApiError::query_field("until", "must be after since"));
    }
    let query = StatsQuery {
        org_id: auth.org_id().to_string(),
        app_id: auth.app.id.clone(),
        endpoint_id: None,
        event_types: event_types(&q)?,
        since,
        until,
        period_ms: i64::MAX,
    };
    let mut by_type: BTreeMap<String, EventTypeCounts> = BTreeMap::new();
    let (mut success, mut failure) = (0, 0);
    for r in read(&state, query).await? {
        let e = by_type.entry(r.event_type).or_insert(EventTypeCounts { success: 0, failure: 0, canceled: 0 });
        e.success += r.rollup.success;
        e.failure += r.rollup.failures();
        success += r.rollup.success;
        failure += r.rollup.failures();
    }
    Ok(Json(json!({
        "by_event_type": by_type,
        "total_success": success,
        "total_failure": failure,
        "total_canceled": 0,
        "since": format_millis(since),
        "until": format_millis(until),
    })))
}

/// A rollup as the summary shows it.
pub fn figures(r: &Rollup) -> Value {
    let q = |s: &hookd_store::Sketch, p: f64| s.quantile(p);
    json!({
        "attempts": r.attempts,
        "success": r.success,
        "failure": r.failures(),
        "successRatio": (r.attempts > 0).then(|| r.success as f64 / r.attempts as f64),
        "failures": {
            "http4xx": r.fail_4xx,
            "http5xx": r.fail_5xx,
            "timeout": r.fail_timeout,
            "connection": r.fail_connection,
            "tls": r.fail_tls,
            "other": r.fail_other,
        },
        "bytes": r.bytes,
        "latencyMs": {
            "p50": q(&r.latency, 0.5),
            "p90": q(&r.latency, 0.9),
            "p99": q(&r.latency, 0.99),
            "max": (r.attempts > 0).then_some(r.latency_max_ms),
            "mean": (r.attempts > 0).then(|| r.latency_sum_ms as f64 / r.attempts as f64),
        },
        "deliveryLatencyMs": {
            "count": r.delivery.count(),
            "p50": q(&r.delivery, 0.5),
            "p90": q(&r.delivery, 0.9),
            "p99": q(&r.delivery, 0.99),
        },
    })
}

/// `GET /api/v1/app/{app_id}/stats/summary` (a hookd extension).
pub async fn app_summary(State(state): State<AppState>, auth: AppAuth, uri: OriginalUri) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(uri.query());
    let (period, period_name) = period_ms(q.get("period"), 3_600_000)?;
    let until = q.datetime("until")?.unwrap_or_else(now_millis);
    let since = q.datetime("since")?.unwrap_or(until - default_range(period));
    let first = since.div_euclid(period) * period;
    range(first, until, period, ("since", "until"))?;
    let endpoint_id = match q.get("endpoint_id").filter(|v| !v.is_empty()) {
        Some(id) => Some(state.resources.get_endpoint(auth.org_id(), &auth.app.id, id).await?.id),
        None => None,
    };
    let query = StatsQuery {
        org_id: auth.org_id().to_string(),
        app_id: auth.app.id.clone(),
        endpoint_id: endpoint_id.clone(),
        event_types: event_types(&q)?,
        since: first,
        until,
        period_ms: period,
    };
    let rows = read(&state, query).await?;
    let mut total = Rollup::default();
    let mut by_type: BTreeMap<String, Rollup> = BTreeMap::new();
    let mut series: BTreeMap<i64, Rollup> = BTreeMap::new();
    for r in &rows {
        total.merge(&r.rollup);
        by_type.entry(r.event_type.clone()).or_default().merge(&r.rollup);
        series.entry(r.slot_start).or_default().merge(&r.rollup);
    }
    let queue = state.resources.queue_now(auth.org_id(), &auth.app.id, endpoint_id.as_deref()).await?;
    let now = now_millis();
    Ok(Json(json!({
        "since": format_millis(first),
        "until": format_millis(until),
        "period": period_name,
        "endpointId": endpoint_id,
        "totals": figures(&total),
        "byEventType": by_type.iter().map(|(t, r)| (t.clone(), figures(r))).collect::<serde_json::Map<_, _>>(),
        "series": series.iter().map(|(start, r)| {
            let mut v = figures(r);
            v["start"] = json!(format_millis(*start));
            v
        }).collect::<Vec<_>>(),
        "queue": {
            "depth": queue.depth,
            "paused": queue.paused,
            "oldestPendingAgeMs": queue.oldest_created_at.map(|t| (now - t).max(0)),
        },
    })))
}
