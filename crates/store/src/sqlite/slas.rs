//! SLAs and their history.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::rows;
use crate::codec::json;
use crate::model::Page;
use crate::sla::*;
use crate::{Result, StoreError};

const COLUMNS: &str = "org_id, id, app_id, spec, state, state_since, figures, evaluated_at, created_at, updated_at";

fn decode<T: serde::de::DeserializeOwned>(text: &str, i: usize) -> rusqlite::Result<T> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn sla(r: &Row) -> rusqlite::Result<Sla> {
    let figures: Option<String> = r.get(6)?;
    Ok(Sla {
        org_id: r.get(0)?,
        id: r.get(1)?,
        app_id: r.get(2)?,
        spec: decode(&r.get::<_, String>(3)?, 3)?,
        state: SlaState::parse(&r.get::<_, String>(4)?),
        state_since: r.get(5)?,
        figures: figures.map(|f| decode(&f, 6)).transpose()?,
        evaluated_at: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

pub fn list(c: &Connection, org_id: &str, page: &Page) -> Result<Vec<Sla>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into()];
    let sql = format!("SELECT {COLUMNS} FROM sla WHERE org_id = ?{}", rows::page_clause(page, "id", &mut params));
    rows::collect(&mut *c.prepare_cached(&sql)?, params, sla)
}

pub fn get(c: &Connection, org_id: &str, id: &str) -> Result<Sla> {
    Ok(c.prepare_cached(&format!("SELECT {COLUMNS} FROM sla WHERE org_id = ?1 AND id = ?2"))?
        .query_row(params![org_id, id], sla)?)
}

pub fn insert(c: &Connection, s: &Sla) -> Result<()> {
    let n: i64 = c.query_row("SELECT COUNT(*) FROM sla WHERE org_id = ?1", params![s.org_id], |r| r.get(0))?;
    if n as usize >= MAX_SLAS_PER_ORG {
        return Err(StoreError::Invalid {
            field: "sla",
            msg: format!("at most {MAX_SLAS_PER_ORG} SLAs per organisation"),
        });
    }
    c.prepare_cached(&format!("INSERT INTO sla ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"))?
        .execute(params![
            s.org_id,
            s.id,
            s.app_id,
            json(&s.spec),
            s.state.as_str(),
            s.state_since,
            s.figures.as_ref().map(json),
            s.evaluated_at,
            s.created_at,
            s.updated_at
        ])?;
    Ok(())
}

/// A new spec: the SLA is judged afresh.
pub fn update(c: &Connection, org_id: &str, id: &str, spec: &SlaSpec, now: i64) -> Result<Sla> {
    let n = c
        .prepare_cached(
            "UPDATE sla SET spec = ?3, state = 'unknown', state_since = NULL, figures = NULL, evaluated_at = NULL,
             updated_at = ?4 WHERE org_id = ?1 AND id = ?2",
        )?
        .execute(params![org_id, id, json(spec), now])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    get(c, org_id, id)
}

pub fn delete(c: &Connection, org_id: &str, id: &str) -> Result<()> {
    let n = c.execute("DELETE FROM sla WHERE org_id = ?1 AND id = ?2", params![org_id, id])?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    c.execute("DELETE FROM sla_event WHERE org_id = ?1 AND sla_id = ?2", params![org_id, id])?;
    Ok(())
}

pub fn events(c: &Connection, org_id: &str, sla_id: &str, page: &Page) -> Result<Vec<SlaEvent>> {
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), sla_id.to_string().into()];
    let sql = format!(
        "SELECT id, sla_id, state, figures, at FROM sla_event WHERE org_id = ? AND sla_id = ?{}",
        rows::page_clause(page, "id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, |r| {
        Ok(SlaEvent {
            id: r.get(0)?,
            sla_id: r.get(1)?,
            state: SlaState::parse(&r.get::<_, String>(2)?),
            figures: decode(&r.get::<_, String>(3)?, 3)?,
            at: r.get(4)?,
        })
    })
}

/// See `Queue::slas_after`.
pub fn after(c: &Connection, after: Option<&str>, limit: usize) -> Result<Vec<Sla>> {
    let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM sla WHERE id > ?1 ORDER BY id LIMIT ?2"))?;
    let rows = stmt.query_map(params![after.unwrap_or(""), limit as i64], sla)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// See `Queue::judge_sla`.
pub fn judge(c: &Connection, j: &SlaJudgement) -> Result<bool> {
    let figures = json(&j.figures);
    let moved = c
        .prepare_cached(
            "UPDATE sla SET state = ?4, figures = ?5, evaluated_at = ?6,
                 state_since = CASE WHEN state = ?4 THEN state_since ELSE ?6 END
             WHERE org_id = ?1 AND id = ?2 AND state = ?3 RETURNING 1",
        )?
        .query_row(params![j.org_id, j.sla_id, j.from.as_str(), j.to.as_str(), figures, j.at], |_| Ok(()))
        .optional()?
        .is_some();
    if moved && j.from != j.to {
        c.prepare_cached(
            "INSERT INTO sla_event (org_id, id, sla_id, state, figures, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![j.org_id, j.event_id, j.sla_id, j.to.as_str(), figures, j.at])?;
    }
    Ok(moved && j.from != j.to)
}
