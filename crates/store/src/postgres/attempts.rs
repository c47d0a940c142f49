//! The attempt log, and deliveries listed by message and by endpoint.

use sqlx::{PgConnection, QueryBuilder};

use super::messages;
use super::rows::{self, ATTEMPT_COLUMNS, DELIVERY_COLUMNS, MESSAGE_COLUMNS, MESSAGE_COLUMNS_NO_PAYLOAD};
use crate::model::*;
use crate::states::status_condition;
use crate::Result;

pub async fn list_attempts(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    f: &AttemptFilter,
    page: &Page,
) -> Result<Vec<Attempt>> {
    let mut q = QueryBuilder::new(format!("SELECT {ATTEMPT_COLUMNS} FROM attempt WHERE org_id = "));
    q.push_bind(org_id).push(" AND app_id = ").push_bind(app_id);
    if let Some(m) = &f.msg_id {
        q.push(" AND msg_id = ").push_bind(m.clone());
    }
    if let Some(e) = &f.endpoint_id {
        q.push(" AND endpoint_id = ").push_bind(e.clone());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").push_bind(s as i16);
    }
    if let Some(class) = f.status_code_class {
        q.push(" AND response_status_code >= ").push_bind(class);
        q.push(" AND response_status_code < ").push_bind(if class == 0 { 1 } else { class + 100 });
    }
    if !messages::filter_is_empty(&f.message) {
        q.push(" AND EXISTS (SELECT 1 FROM message m WHERE m.id = attempt.msg_id");
        messages::push_filter(&mut q, &f.message);
        q.push(")");
    }
    if let Some(b) = f.before {
        q.push(" AND created_at < ").push_bind(b);
    }
    if let Some(a) = f.after {
        q.push(" AND created_at > ").push_bind(a);
    }
    rows::push_page(&mut q, page, "id");
    rows::collect(q.build().fetch_all(c).await?, rows::attempt)
}

pub async fn get_attempt(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    msg_id: Option<&str>,
    attempt_id: &str,
) -> Result<Attempt> {
    let row = sqlx::query(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempt
         WHERE org_id = $1 AND app_id = $2 AND ($3::text IS NULL OR msg_id = $3) AND id = $4"
    ))
    .bind(org_id)
    .bind(app_id)
    .bind(msg_id)
    .bind(attempt_id)
    .fetch_one(c)
    .await?;
    Ok(rows::attempt(&row)?)
}

pub async fn get_attempt_headers(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    msg_id: &str,
    attempt_id: &str,
) -> Result<AttemptHeaders> {
    let (sent, received) = sqlx::query_as(
        "SELECT sent_headers, response_headers FROM attempt
         WHERE org_id = $1 AND app_id = $2 AND msg_id = $3 AND id = $4",
    )
    .bind(org_id)
    .bind(app_id)
    .bind(msg_id)
    .bind(attempt_id)
    .fetch_one(c)
    .await?;
    Ok(AttemptHeaders { sent, received })
}

pub async fn message_destinations(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    msg_id: &str,
    page: &Page,
) -> Result<Vec<(Delivery, Endpoint)>> {
    let mut q = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLUMNS}, {} FROM delivery d JOIN endpoint e ON e.id = d.endpoint_id WHERE d.org_id = ",
        rows::ENDPOINT_COLUMNS
    ));
    q.push_bind(org_id).push(" AND d.app_id = ").push_bind(app_id).push(" AND d.msg_id = ").push_bind(msg_id);
    rows::push_page(&mut q, page, "d.endpoint_id");
    rows::collect(q.build().fetch_all(c).await?, |r| {
        Ok((rows::delivery(r)?, rows::endpoint_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}

pub async fn endpoint_messages(
    c: &mut PgConnection,
    org_id: &str,
    app_id: &str,
    endpoint_id: &str,
    status: StatusFilter,
    f: &MessageFilter,
    page: &Page,
) -> Result<Vec<(Delivery, Message)>> {
    let cols = if f.with_content { MESSAGE_COLUMNS } else { MESSAGE_COLUMNS_NO_PAYLOAD };
    let mut q = QueryBuilder::new(format!(
        "SELECT {DELIVERY_COLUMNS}, {cols} FROM delivery d JOIN message m ON m.id = d.msg_id WHERE d.org_id = "
    ));
    q.push_bind(org_id).push(" AND d.app_id = ").push_bind(app_id).push(" AND d.endpoint_id = ").push_bind(endpoint_id);
    if let Some(s) = status {
        q.push(" AND ").push(status_condition(s));
    }
    messages::push_filter(&mut q, f);
    rows::push_page(&mut q, page, "d.msg_id");
    rows::collect(q.build().fetch_all(c).await?, |r| {
        Ok((rows::delivery(r)?, rows::message_at(r, rows::DELIVERY_COLUMN_COUNT)?))
    })
}
