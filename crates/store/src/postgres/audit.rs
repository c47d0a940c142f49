//! The audit trail on PostgreSQL (see `crate::audit`): appends from every node
//! are ordered by the lock on the head row.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::audit::{chain_hash, verify as check, AuditCheck, AuditEntry, AuditEvent, AuditHead};
use crate::Result;

const COLUMNS: &str = "seq, org_id, at, actor, action, target, status, address, prev_hash, hash";

fn entry(r: &PgRow) -> std::result::Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: r.try_get(0)?,
        event: AuditEvent {
            org_id: r.try_get(1)?,
            at: r.try_get(2)?,
            actor: r.try_get(3)?,
            action: r.try_get(4)?,
            target: r.try_get(5)?,
            status: r.try_get(6)?,
            address: r.try_get(7)?,
        },
        prev_hash: r.try_get(8)?,
        hash: r.try_get(9)?,
    })
}

async fn head(c: &mut PgConnection, lock: bool) -> Result<AuditHead> {
    let sql = if lock {
        "SELECT seq, hash, cut_seq, cut_hash FROM audit_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash, cut_seq, cut_hash FROM audit_head WHERE id = 1"
    };
    let (seq, hash, cut_seq, cut_hash): (i64, String, i64, String) = sqlx::query_as(sql).fetch_one(c).await?;
    Ok(AuditHead { seq, hash, cut_seq, cut_hash })
}

/// Run inside a transaction.
pub async fn append(c: &mut PgConnection, events: &[AuditEvent]) -> Result<()> {
    let h = head(&mut *c, true).await?;
    let (mut seq, mut prev) = (h.seq, h.hash);
    for e in events {
        seq += 1;
        let hash = chain_hash(&prev, seq, e);
        sqlx::query(&format!("INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))
            .bind(seq)
            .bind(&e.org_id)
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(e.status)
            .bind(&e.address)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut *c)
            .await?;
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn list(c: &mut PgConnection, org_id: &str, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE org_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
    ))
    .bind(org_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit as i64)
    .fetch_all(c)
    .await?;
    Ok(rows.iter().map(entry).collect::<std::result::Result<_, _>>()?)
}

/// Run inside a repeatable-read transaction, so the head and the entries agree.
pub async fn verify(c: &mut PgConnection) -> Result<AuditCheck> {
    let h = head(&mut *c, false).await?;
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq <= $1 ORDER BY seq"))
        .bind(h.seq)
        .fetch_all(&mut *c)
        .await?;
    let entries: Vec<AuditEntry> = rows.iter().map(entry).collect::<std::result::Result<_, _>>()?;
    Ok(check(&h, entries.into_iter()))
}

/// Run inside a transaction.
pub async fn prune(c: &mut PgConnection, before: i64, batch: usize) -> Result<u64> {
    head(&mut *c, true).await?;
    let oldest: Vec<(i64, i64, String)> = sqlx::query_as("SELECT seq, at, hash FROM audit_log ORDER BY seq LIMIT $1")
        .bind(batch as i64)
        .fetch_all(&mut *c)
        .await?;
    let Some((seq, _, hash)) = oldest.iter().take_while(|(_, at, _)| *at < before).last().cloned() else {
        return Ok(0);
    };
    let n = sqlx::query("DELETE FROM audit_log WHERE seq <= $1").bind(seq).execute(&mut *c).await?.rows_affected();
    sqlx::query("UPDATE audit_head SET cut_seq = $1, cut_hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut *c)
        .await?;
    Ok(n)
}
