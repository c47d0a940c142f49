//! List pagination in Svix's shape: `limit` (default 50, max 250), `iterator`,
//! `order`; responses `{data, iterator, prevIterator, done}`.
//!
//! Iterators are the id (or name) of the last row of a page; a `prevIterator`
//! is the first row's key prefixed with `-`, which pages backwards.

use serde::Serialize;

use crate::error::ApiError;
use crate::extract::QueryParams;
use hookd_store::Page;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 250;
const MAX_ITERATOR_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultOrder {
    Ascending,
    Descending,
}

/// Reads `limit`, `iterator` and `order`.
pub fn page(q: &QueryParams, default_order: DefaultOrder) -> Result<Page, ApiError> {
    let limit = match q.int("limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::query_field("limit", format!("limit must be between 1 and {MAX_LIMIT}"))),
    };
    let descending = match q.get("order") {
        None | Some("") => default_order == DefaultOrder::Descending,
        Some("ascending") => false,
        Some("descending") => true,
        Some(_) => return Err(ApiError::query_field("order", "order must be `ascending` or `descending`")),
    };
    let raw = q.get("iterator").filter(|s| !s.is_empty());
    if raw.is_some_and(|s| s.len() > MAX_ITERATOR_LEN) {
        return Err(ApiError::query_field("iterator", "iterator is too long"));
    }
    let (iterator, backwards) = match raw {
        Some(it) => match it.strip_prefix('-') {
            Some(rest) => (Some(rest.to_string()), true),
            None => (Some(it.to_string()), false),
        },
        None => (None, false),
    };
    Ok(Page { limit, iterator, backwards, descending })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

/// Builds the response from the rows a store list returned (up to `limit + 1`,
/// in walking order), mapping each row and taking its key.
pub fn list_response<R, T>(
    page: &Page,
    mut rows: Vec<R>,
    key: impl Fn(&R) -> String,
    map: impl FnMut(R) -> T,
) -> ListResponse<T> {
    let more = rows.len() > page.limit;
    rows.truncate(page.limit);
    if page.backwards {
        rows.reverse();
    }
    let first = rows.first().map(&key);
    let last = rows.last().map(&key);
    // Walking forwards, `more` says whether later rows exist; backwards, earlier ones.
    let (done, iterator, prev_iterator) = if page.backwards {
        (false, last.or(page.iterator.clone()), if more { first.map(|k| format!("-{k}")) } else { None })
    } else {
        (!more, last.or(page.iterator.clone()), first.or(page.iterator.clone()).map(|k| format!("-{k}")))
    };
    ListResponse { data: rows.into_iter().map(map).collect(), iterator, prev_iterator, done }
}
