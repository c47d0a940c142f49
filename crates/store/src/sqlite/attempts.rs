//! The attempt log, and deliveries listed by message and by endpoint.

use rusqlite::{params, Connection};

use super::messages;
use super::rows::{self, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD};
use crate::model::*;
use crate::states::status_condition;
use crate::Result;

pub fn list_attempts(
    c: &Connection,
    org_id: &str,
    app_id: &str,
    f: &AttemptFilter,
    page: &Page,
) -> Result<Vec<Attempt>> {
    let mut sql = format!("SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE org_id = ? AND app_id = ?");
    let mut params: Vec<rusqlite::types::Value> = vec![org_id.to_string().into(), app_id.to_string().into()];
    if let Some(m) = &f.msg_id {
        sql.push_str(" AND msg_id = ?");
        params.push(m.clone().into());
    }
    if let Some(e) = &f.endpoint_id {
        sql.push_str(" AND endpoint_id = ?");
        params.push(e.clone().into());
    }
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        params.push((s as i64).into());
    }
    if let Some(class) = f.status_code_class {
        sql.push_str(" AND response_status_code >= ? AND response_status_code < ?");
        params.push(class.into());
        params.push(if class == 0 { 1 } else { class + 100 }.into());
    }
    let mut on_message = String::new();
    messages::filter_conditions(&f.message, &mut on_message, &mut params);
    if !on_message.is_empty() {
        sql.push_str(&format!(" AND EXISTS (SELECT 1 FROM message m WHERE m.id = attempt.msg_id{on_message})"));
    }
    if let Some(b) = f.before {
        sql.push_str(" AND created_at < ?");
        params.push(b.into());
    }
    if let Some(a) = f.after {
        sql.push_str(" AND created_at > ?");
        params.push(a.into());
    }
    sql.push_str(&rows::page_clause(page, "id", &mut params));
    rows::collect(&mut c.prepare(&sql)?, params, rows::attempt)
}

pub fn get_attempt(
    c: &Connection,
    org_id: &str,
    app_id: &str,
    msg_id: Option<&str>,
    attempt_id: &str,
) -> Result<Attempt> {
    Ok(c.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempt
         WHERE org_id = ?1 AND app_id = ?2 AND (?3 IS NULL OR msg_id = ?3) AND id = ?4"
    ))?
    .query_row(params![org_id, app_id, msg_id, attempt_id], rows::attempt)?)
}

pub fn get_attempt_headers(
    c: &Connection,
    org_id: &str,
    app_id: &str,
    msg_id: &str,
    attempt_id: &str,
) -> Result<AttemptHeaders> {
    Ok(c.prepare_cached(
        "SELECT sent_headers, response_headers FROM attempt
         WHERE org_id = ?1 AND app_id = ?2 AND msg_id = ?3 AND id = ?4",
    )?
    .query_row(params![org_id, app_id, msg_id, attempt_id], |r| {
        Ok(AttemptHeaders { sent: r.get(0)?, received: r.get(1)? })
    })?)
}

pub fn message_destinations(
    c: &Connection,
    org_id: &str,
    app_id: &str,
    msg_id: &str,
    page: &Page,
) -> Result<Vec<(Delivery, Endpoint)>> {
    let mut params: Vec<rusqlite::types::Value> =
        vec![org_id.to_string().into(), app_id.to_string().into(), msg_id.to_string().into()];
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, {} FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id
         WHERE d.org_id = ? AND d.app_id = ? AND d.msg_id = ?{}",
        rows::ENDPOINT_COLUMNS,
        rows::page_clause(page, "d.endpoint_id", &mut params)
    );
    rows::collect(&mut *c.prepare_cached(&sql)?, params, |r| {
        Ok((rows::delivery(r)?, rows::endpoint_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}

pub fn endpoint_messages(
    c: &Connection,
    org_id: &str,
    app_id: &str,
    endpoint_id: &str,
    status: StatusFilter,
    f: &MessageFilter,
    page: &Page,
) -> Result<Vec<(Delivery, Message)>> {
    let cols = if f.with_content { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let mut params: Vec<rusqlite::types::Value> =
        vec![org_id.to_string().into(), app_id.to_string().into(), endpoint_id.to_string().into()];
    let mut sql = format!(
        "SELECT {DELIVERY_COLUMNS}, {cols} FROM delivery d JOIN message m ON m.id = d.msg_id
         WHERE d.org_id = ? AND d.app_id = ? AND d.endpoint_id = ?"
    );
    if let Some(s) = status {
        sql.push_str(" AND ");
        sql.push_str(status_condition(s));
    }
    messages::filter_conditions(f, &mut sql, &mut params);
    sql.push_str(&rows::page_clause(page, "d.msg_id", &mut params));
    rows::collect(&mut c.prepare(&sql)?, params, |r| {
        Ok((rows::delivery(r)?, rows::message_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}
