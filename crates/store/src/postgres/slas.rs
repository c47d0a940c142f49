//! SLAs and their history.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, QueryBuilder, Row};

use super::rows;
use crate::codec::json;
use crate::model::Page;
use crate::sla::*;
use crate::{Result, StoreError};

const COLUMNS: &str = "org_id, id, app_id, spec, state, state_since, figures, evaluated_at, created_at, updated_at";

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> sqlx::Result<T> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn sla(r: &PgRow) -> sqlx::Result<Sla> {
    let figures: Option<String> = r.try_get(6)?;
    Ok(Sla {
        org_id: r.try_get(0)?,
        id: r.try_get(1)?,
        app_id: r.try_get(2)?,
        spec: decode(&r.try_get::<String, _>(3)?)?,
        state: SlaState::parse(&r.try_get::<String, _>(4)?),
        state_since: r.try_get(5)?,
        figures: figures.map(|f| decode(&f)).transpose()?,
        evaluated_at: r.try_get(7)?,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
    })
}

pub async fn list(c: &mut PgConnection, org_id: &str, page: &Page) -> Result<Vec<Sla>> {
    let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM sla WHERE org_id = "));
    q.push_bind(org_id);
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, sla)
}

pub async fn get(c: &mut PgConnection, org_id: &str, id: &str) -> Result<Sla> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sla WHERE org_id = $1 AND id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_one(c)
        .await?;
    Ok(sla(&row)?)
}

pub async fn insert(c: &mut PgConnection, s: &Sla) -> Result<()> {
    // One writer per organisation at a time, so the cap holds.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sla:' || $1))").bind(&s.org_id).execute(&mut *c).await?;
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sla WHERE org_id = $1").bind(&s.org_id).fetch_one(&mut *c).await?;
    if n as usize >= MAX_SLAS_PER_ORG {
        return Err(StoreError::Invalid {
            field: "sla",
            msg: format!("at most {MAX_SLAS_PER_ORG} SLAs per organisation"),
        });
    }
    sqlx::query(&format!("INSERT INTO sla ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
        .bind(&s.org_id)
        .bind(&s.id)
        .bind(&s.app_id)
        .bind(json(&s.spec))
        .bind(s.state.as_str())
        .bind(s.state_since)
        .bind(s.figures.as_ref().map(json))
        .bind(s.evaluated_at)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(c)
        .await?;
    Ok(())
}

/// A new spec: the SLA is judged afresh.
pub async fn update(c: &mut PgConnection, org_id: &str, id: &str, spec: &SlaSpec, now: i64) -> Result<Sla> {
    let row = sqlx::query(&format!(
        "UPDATE sla SET spec = $3, state = 'unknown', state_since = NULL, figures = NULL, evaluated_at = NULL,
         updated_at = $4 WHERE org_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(org_id)
    .bind(id)
    .bind(json(spec))
    .bind(now)
    .fetch_optional(c)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(sla(&row)?)
}

pub async fn delete(c: &mut PgConnection, org_id: &str, id: &str) -> Result<()> {
    let n = sqlx::query("DELETE FROM sla WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM sla_event WHERE org_id = $1 AND sla_id = $2").bind(org_id).bind(id).execute(c).await?;
    Ok(())
}

pub async fn events(c: &mut PgConnection, org_id: &str, sla_id: &str, page: &Page) -> Result<Vec<SlaEvent>> {
    let mut q = QueryBuilder::new("SELECT id, sla_id, state, figures, at FROM sla_event WHERE org_id = ");
    q.push_bind(org_id).push(" AND sla_id = ").push_bind(sla_id);
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, |r| {
        Ok(SlaEvent {
            id: r.try_get(0)?,
            sla_id: r.try_get(1)?,
            state: SlaState::parse(&r.try_get::<String, _>(2)?),
            figures: decode(&r.try_get::<String, _>(3)?)?,
            at: r.try_get(4)?,
        })
    })
}

/// See `Queue::slas_after`.
pub async fn after(c: &mut PgConnection, after: Option<&str>, limit: usize) -> Result<Vec<Sla>> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM sla WHERE id > $1 ORDER BY id LIMIT $2"))
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(c)
        .await?;
    rows::collect(rows, sla)
}

/// See `Queue::judge_sla`.
pub async fn judge(c: &mut PgConnection, j: &SlaJudgement) -> Result<bool> {
    let figures = json(&j.figures);
    let moved = sqlx::query(
        "UPDATE sla SET state = $4, figures = $5, evaluated_at = $6,
             state_since = CASE WHEN state = $4 THEN state_since ELSE $6 END
         WHERE org_id = $1 AND id = $2 AND state = $3",
    )
    .bind(&j.org_id)
    .bind(&j.sla_id)
    .bind(j.from.as_str())
    .bind(j.to.as_str())
    .bind(&figures)
    .bind(j.at)
    .execute(&mut *c)
    .await?
    .rows_affected()
        > 0;
    if moved && j.from != j.to {
        sqlx::query("INSERT INTO sla_event (org_id, id, sla_id, state, figures, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&j.org_id)
            .bind(&j.event_id)
            .bind(&j.sla_id)
            .bind(j.to.as_str())
            .bind(&figures)
            .bind(j.at)
            .execute(c)
            .await?;
    }
    Ok(moved && j.from != j.to)
}
