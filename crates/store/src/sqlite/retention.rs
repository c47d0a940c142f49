//! The retention sweep: expired payloads and response bodies, old keys and
//! tasks, in small batches (each one write among the others in a group commit,
//! so delivery keeps flowing), and the space they leave given back to the file
//! system by incremental vacuum.

use rusqlite::{params, Connection};

use crate::task::PruneReport;
use crate::Result;

pub fn prune(c: &Connection, now: i64, batch: usize, task_retention_ms: i64) -> Result<PruneReport> {
    let ids: Vec<String> = {
        let mut stmt = c.prepare_cached(
            "SELECT id FROM message WHERE expires_at <= ?1 AND payload IS NOT NULL ORDER BY expires_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, batch as i64], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut report = PruneReport::default();
    let mut expunge = c.prepare_cached("UPDATE message SET payload = NULL WHERE id = ?1")?;
    let mut clear = c.prepare_cached("UPDATE attempt SET response = '' WHERE msg_id = ?1 AND response <> ''")?;
    let mut cancel = c.prepare_cached(
        "UPDATE delivery SET state = 'canceled', due_at = NULL, updated_at = ?2
         WHERE msg_id = ?1 AND state IN ('scheduled', 'paused')",
    )?;
    for id in &ids {
        report.messages += expunge.execute([id])? as u64;
        report.attempts += clear.execute([id])? as u64;
        report.canceled += cancel.execute(params![id, now])? as u64;
    }
    report.housekeeping += c
        .prepare_cached(
            "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![now, batch as i64])? as u64;
    report.housekeeping += c
        .prepare_cached("DELETE FROM api_token WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
        .execute([now])? as u64;
    report.housekeeping += c
        .prepare_cached(
            "DELETE FROM background_task WHERE id IN (SELECT id FROM background_task
                 WHERE status <> 'running' AND updated_at < ?1 LIMIT ?2)",
        )?
        .execute(params![now - task_retention_ms, batch as i64])? as u64;
    Ok(report)
}

/// `PRAGMA incremental_vacuum(max_pages)`; returns the pages given back.
pub fn reclaim(c: &Connection, max_pages: u64) -> Result<u64> {
    let free = |c: &Connection| -> Result<i64> { Ok(c.query_row("PRAGMA freelist_count", [], |r| r.get(0))?) };
    let before = free(c)?;
    if before == 0 {
        return Ok(0);
    }
    // The pragma frees one page per step of its statement.
    let mut stmt = c.prepare(&format!("PRAGMA incremental_vacuum({max_pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    Ok((before - free(c)?).max(0) as u64)
}
