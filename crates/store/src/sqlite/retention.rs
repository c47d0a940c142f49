//! The retention sweep: expired payloads and response bodies, old keys and
//! tasks, in small batches (each one write among the others in a group commit,
//! so delivery keeps flowing), and the space they leave given back to the file
//! system by incremental vacuum.

use hookd_core::id::{id_floor_at, IdPrefix};
use rusqlite::{params, Connection};

use crate::task::{PruneReport, Retention};
use crate::Result;

pub fn prune(c: &Connection, now: i64, batch: usize, limits: Retention) -> Result<PruneReport> {
    let ids: Vec<String> = {
        let mut stmt = c.prepare_cached(
            "SELECT id FROM message WHERE expires_at <= ?1 AND payload IS NOT NULL ORDER BY expires_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, batch as i64], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut report = PruneReport::default();
    let mut expunge = c.prepare_cached("UPDATE message SET payload = NULL WHERE id = ?1")?;
    // The response's body and both headers go with the payload.
    let mut clear = c.prepare_cached(
        "UPDATE attempt SET response = '', sent_headers = NULL, response_headers = NULL
         WHERE msg_id = ?1 AND (response <> '' OR sent_headers IS NOT NULL OR response_headers IS NOT NULL)",
    )?;
    let mut cancel = c.prepare_cached(
        "UPDATE delivery SET state = 'canceled', due_at = NULL, updated_at = ?2
         WHERE msg_id = ?1 AND state IN ('scheduled', 'paused')",
    )?;
    for id in &ids {
        report.messages += expunge.execute([id])? as u64;
        report.attempts += clear.execute([id])? as u64;
        report.canceled += cancel.execute(params![id, now])? as u64;
        super::ordering::release_heads_of_msg(c, id, now)?;
    }
    report.housekeeping += c
        .prepare_cached(
            "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency WHERE expires_at < ?1 LIMIT ?2)",
        )?
        .execute(params![now, batch as i64])? as u64;
    // The oldest messages, by id (ids sort by creation time), with their
    // deliveries and attempts (foreign keys cascade); not while one of its
    // deliveries is in flight. Deleting in creation order empties whole pages,
    // which incremental vacuum then gives back.
    let cutoff = id_floor_at(IdPrefix::Message, (now - limits.messages_ms).max(0) as u64);
    report.deleted = c
        .prepare_cached(
            "DELETE FROM message WHERE id IN (SELECT m.id FROM message m WHERE m.id < ?1
                 AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.msg_id = m.id AND d.state = 'leased')
                 ORDER BY m.id LIMIT ?2)",
        )?
        .execute(params![cutoff, batch as i64])? as u64;
    // An ordered endpoint's queue whose head went with its message moves on.
    report.housekeeping += super::ordering::release_stuck(c, now)?;
    // Inbound requests are kept as long as messages.
    let request_cutoff = id_floor_at(IdPrefix::InboundRequest, (now - limits.messages_ms).max(0) as u64);
    report.housekeeping += c
        .prepare_cached(
            "DELETE FROM ingest_request WHERE id IN (SELECT id FROM ingest_request WHERE id < ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![request_cutoff, batch as i64])? as u64;
    // A tracked object is forgotten once nothing has been heard of it for as long.
    report.housekeeping += c
        .prepare_cached(
            "DELETE FROM ingest_object WHERE rowid IN (SELECT rowid FROM ingest_object WHERE updated_at < ?1 LIMIT ?2)",
        )?
        .execute(params![now - limits.messages_ms, batch as i64])? as u64;
    report.housekeeping += c
        .prepare_cached("DELETE FROM api_token WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
        .execute([now])? as u64;
    report.housekeeping +=
        c.prepare_cached("DELETE FROM one_time_token WHERE expires_at <= ?1")?.execute([now])? as u64;
    report.housekeeping += c
        .prepare_cached(
            "DELETE FROM background_task WHERE id IN (SELECT id FROM background_task
                 WHERE status <> 'running' AND updated_at < ?1 LIMIT ?2)",
        )?
        .execute(params![now - limits.tasks_ms, batch as i64])? as u64;
    Ok(report)
}

/// `PRAGMA incremental_vacuum(max_pages)`; returns the pages given back. Also
/// lets SQLite refresh its planner statistics where they drifted (`PRAGMA
/// optimize`, cheap when nothing changed much).
pub fn reclaim(c: &Connection, max_pages: u64) -> Result<u64> {
    c.execute_batch("PRAGMA optimize")?;
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
