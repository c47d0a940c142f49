//! The audit trail on SQLite (see `crate::audit`); the single writer orders appends.

use rusqlite::{params, Connection, Row};

use crate::audit::{chain_hash, verify as check, AuditCheck, AuditEntry, AuditEvent, AuditHead};
use crate::Result;

const COLUMNS: &str = "seq, org_id, at, actor, action, target, status, address, prev_hash, hash";

fn entry(r: &Row) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.get(0)?,
        event: AuditEvent {
            org_id: r.get(1)?,
            at: r.get(2)?,
            actor: r.get(3)?,
            action: r.get(4)?,
            target: r.get(5)?,
            status: r.get(6)?,
            address: r.get(7)?,
        },
        prev_hash: r.get(8)?,
        hash: r.get(9)?,
    })
}

fn head(c: &Connection) -> Result<AuditHead> {
    Ok(c.query_row("SELECT seq, hash, cut_seq, cut_hash FROM audit_head WHERE id = 1", [], |r| {
        Ok(AuditHead { seq: r.get(0)?, hash: r.get(1)?, cut_seq: r.get(2)?, cut_hash: r.get(3)? })
    })?)
}

pub fn append(c: &Connection, events: &[AuditEvent]) -> Result<()> {
    let h = head(c)?;
    let (mut seq, mut prev) = (h.seq, h.hash);
    let mut insert = c.prepare_cached(&format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?;
    for e in events {
        seq += 1;
        let hash = chain_hash(&prev, seq, e);
        insert.execute(params![seq, e.org_id, e.at, e.actor, e.action, e.target, e.status, e.address, prev, hash])?;
        prev = hash;
    }
    c.prepare_cached("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1")?.execute(params![seq, prev])?;
    Ok(())
}

pub fn list(c: &Connection, org_id: &str, before: Option<i64>, limit: usize) -> Result<Vec<AuditEntry>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log WHERE org_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![org_id, before.unwrap_or(i64::MAX), limit as i64], entry)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The head and the entries it covers, read in one transaction (one snapshot).
pub fn verify(c: &Connection) -> Result<AuditCheck> {
    let tx = c.unchecked_transaction()?;
    let h = head(&tx)?;
    let entries: Vec<AuditEntry> = {
        let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq <= ?1 ORDER BY seq"))?;
        let rows = stmt.query_map([h.seq], entry)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    tx.finish()?;
    Ok(check(&h, entries.into_iter()))
}

pub fn prune(c: &Connection, before: i64, batch: usize) -> Result<u64> {
    let oldest: Vec<(i64, i64, String)> = {
        let mut stmt = c.prepare_cached("SELECT seq, at, hash FROM audit_log ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map([batch as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // Only from the oldest end: stop at the first entry young enough to keep.
    let Some((seq, _, hash)) = oldest.iter().take_while(|(_, at, _)| *at < before).last().cloned() else {
        return Ok(0);
    };
    let n = c.execute("DELETE FROM audit_log WHERE seq <= ?1", [seq])?;
    c.execute("UPDATE audit_head SET cut_seq = ?1, cut_hash = ?2 WHERE id = 1", params![seq, hash])?;
    Ok(n as u64)
}
