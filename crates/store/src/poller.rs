//! Polling endpoints (Svix's poller sinks): for receivers that cannot accept
//! connections, an application's messages read in pages instead of pushed.
//!
//! Every message of an application that has a poller sink is appended, in the
//! transaction that creates it, to a log where it gets an **offset**: a number
//! that only grows, in commit order, so a reader that has seen offset `n` has
//! seen every message before it and none is ever slipped in behind it (message
//! ids are ordered by creation, which is not commit order: two requests race to
//! commit, and nodes' clocks differ). The log is written by a database trigger
//! on `message`, so every way a message is created (the API, inbound sources,
//! operational webhooks) is covered and the send path does not change.
//!
//! A sink shows the log from where it was when the sink was made
//! ([`PollerSink::start_offset`]), filtered by its event types and channels as
//! an endpoint's fan-out is. A consumer of a sink is a named position in it
//! ([`PollerConsumer`]): read and moved by the v1 consumer API, leased and
//! committed by the v2 one, so a consumer that does not commit is shown the same
//! messages again (at least once).

use crate::model::Metadata;

/// Most consumers one sink may have.
pub const MAX_CONSUMERS: i64 = 1000;
/// Most log rows one read examines when a filter may pass over some: a sparse
/// filter answers a short (even empty) page that moves on, not a long scan.
pub const MAX_SCAN: usize = 1000;

#[derive(Debug, Clone)]
pub struct PollerSink {
    pub org_id: String,
    pub app_id: String,
    /// `sink_…`.
    pub id: String,
    pub uid: Option<String>,
    /// A disabled sink shows nothing until it is enabled again; what was
    /// logged meanwhile is then shown.
    pub disabled: bool,
    /// Kept as given; a polling endpoint has no use for them (as in Svix).
    pub batch_size: i32,
    pub max_wait_secs: i32,
    /// The event types it shows (all when `None`).
    pub event_types: Option<Vec<String>>,
    /// The channels it shows (any message when `None`; else one sharing a channel).
    pub channels: Option<Vec<String>>,
    pub metadata: Metadata,
    /// The log's end when the sink was made: it shows the offsets after it.
    /// Set by the store.
    pub start_offset: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PollerSink {
    /// Whether the sink shows a message of this event type and these channels:
    /// the rule of an endpoint's fan-out.
    pub fn matches(&self, event_type: &str, channels: Option<&[String]>) -> bool {
        if let Some(types) = &self.event_types {
            if !types.is_empty() && !types.iter().any(|t| t == event_type) {
                return false;
            }
        }
        if let Some(wanted) = &self.channels {
            if !wanted.is_empty() {
                let Some(have) = channels else { return false };
                if !have.iter().any(|c| wanted.contains(c)) {
                    return false;
                }
            }
        }
        true
    }

    fn filters(&self) -> bool {
        self.event_types.as_ref().is_some_and(|t| !t.is_empty())
            || self.channels.as_ref().is_some_and(|c| !c.is_empty())
    }
}

/// Filters a read adds to its sink's (the v1 poll's `event_type` and `channel`).
#[derive(Debug, Clone, Default)]
pub struct PollOnly {
    pub event_type: Option<String>,
    pub channel: Option<String>,
}

impl PollOnly {
    fn matches(&self, event_type: &str, channels: Option<&[String]>) -> bool {
        self.event_type.as_deref().is_none_or(|t| t == event_type)
            && self.channel.as_deref().is_none_or(|c| channels.is_some_and(|have| have.iter().any(|h| h == c)))
    }

    fn filters(&self) -> bool {
        self.event_type.is_some() || self.channel.is_some()
    }
}

/// One page read from a sink.
#[derive(Debug, Clone)]
pub struct PollPage {
    /// The messages the sink shows, with their offsets, in offset order.
    pub messages: Vec<(i64, crate::model::Message)>,
    /// Where the next read starts (after this offset): the last message's, or
    /// the last offset looked at when fewer than asked for matched; the read's
    /// start when the log had nothing after it.
    pub next: i64,
    /// Whether the read reached the end of the log (as committed now).
    pub done: bool,
}

/// A log row as a read first sees it: enough to filter, without the payload.
#[derive(Debug, Clone)]
pub(crate) struct LogRow {
    pub seq: i64,
    pub msg_id: String,
    pub event_type: String,
    pub channels: Option<Vec<String>>,
}

/// How many log rows a read of `limit` messages looks at.
pub(crate) fn scan_size(sink: &PollerSink, only: &PollOnly, limit: usize) -> usize {
    if sink.filters() || only.filters() {
        MAX_SCAN.max(limit)
    } else {
        limit
    }
}

/// Picks what a page shows from the rows looked at (`scanned` of them were
/// asked for, from after `after`): the matching ids with their offsets, where
/// the next read starts, and whether the log's end was reached.
pub(crate) fn pick(
    rows: Vec<LogRow>,
    sink: &PollerSink,
    only: &PollOnly,
    after: i64,
    limit: usize,
    scanned: usize,
) -> (Vec<(i64, String)>, i64, bool) {
    let reached_end = rows.len() < scanned;
    let total = rows.len();
    let mut picked = Vec::new();
    let mut next = after;
    for (i, row) in rows.into_iter().enumerate() {
        next = row.seq;
        if sink.matches(&row.event_type, row.channels.as_deref())
            && only.matches(&row.event_type, row.channels.as_deref())
        {
            picked.push((row.seq, row.msg_id));
            if picked.len() == limit {
                return (picked, next, reached_end && i + 1 == total);
            }
        }
    }
    (picked, next, reached_end)
}

/// A consumer of a sink: where it is, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollerConsumer {
    pub consumer_id: String,
    /// The last offset it is done with: it reads after it.
    pub position: i64,
    /// The furthest offset it was shown: a commit may not go past it.
    pub read_end: i64,
    /// Whether a batch is leased to it now (by the database's clock): until the
    /// lease ends or is committed, a v2 read shows it nothing new.
    pub leased: bool,
}

/// Where a new consumer starts (Svix's `StartingPosition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Every message the sink shows.
    Earliest,
    /// Only messages logged from now on.
    Latest,
}

/// What a v2 read takes of a sink for a consumer that read from `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollerClaim {
    /// Messages up to offset `end` were shown: leased for `lease_ms` (0: not
    /// leased, shown again to the next read until committed).
    Batch { from: i64, end: i64, lease_ms: i64 },
    /// Nothing up to `to` matched the sink: the consumer moves past it.
    Skip { from: i64, to: i64 },
}

/// A poller token: reads one sink (and moves its consumers), nothing else.
/// Unlike API tokens it is kept (sealed, as endpoint secrets are), because the
/// Svix API shows a sink's current token again (`GET …/poller/{sink}/token`).
#[derive(Clone)]
pub struct PollerToken {
    /// `tok_…`.
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub sink_id: String,
    /// SHA-256 of the token, hex: how a request's token is found.
    pub token_hash: String,
    pub token: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for PollerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollerToken")
            .field("id", &self.id)
            .field("sink_id", &self.sink_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A commit past what the consumer was shown (up to `read_end`).
pub(crate) fn beyond_read(read_end: i64) -> crate::StoreError {
    crate::StoreError::Invalid {
        field: "offset",
        msg: format!(
            "offset is past what this consumer was shown (up to offset {read_end}); commit the offset of the last message it processed"
        ),
    }
}

/// The context a poller token is sealed under.
pub(crate) fn token_context(id: &str) -> String {
    format!("poller_token:{id}:token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(event_types: Option<Vec<&str>>, channels: Option<Vec<&str>>) -> PollerSink {
        PollerSink {
            org_id: "org".into(),
            app_id: "app".into(),
            id: "sink".into(),
            uid: None,
            disabled: false,
            batch_size: 100,
            max_wait_secs: 0,
            event_types: event_types.map(|v| v.into_iter().map(String::from).collect()),
            channels: channels.map(|v| v.into_iter().map(String::from).collect()),
            metadata: Default::default(),
            start_offset: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn row(seq: i64, event_type: &str) -> LogRow {
        LogRow { seq, msg_id: format!("msg_{seq}"), event_type: event_type.into(), channels: None }
    }

    #[test]
    fn sinks_match_as_endpoints_do() {
        let chans = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (sink(None, None), "a", None, true),
            (sink(Some(vec![]), Some(vec![])), "a", None, true),
            (sink(Some(vec!["a"]), None), "a", None, true),
            (sink(Some(vec!["a"]), None), "b", None, false),
            (sink(None, Some(vec!["x"])), "a", None, false),
            (sink(None, Some(vec!["x"])), "a", Some(chans(&["y", "x"])), true),
            (sink(None, Some(vec!["x"])), "a", Some(chans(&["y"])), false),
        ];
        for (s, et, ch, want) in cases {
            assert_eq!(s.matches(et, ch.as_deref()), want, "{:?} {:?} {et} {ch:?}", s.event_types, s.channels);
        }
    }

    #[test]
    fn a_page_stops_at_its_limit_or_at_what_it_looked_at() {
        let s = sink(Some(vec!["a"]), None);
        let only = PollOnly::default();
        let rows = vec![row(3, "a"), row(5, "b"), row(8, "a"), row(9, "b")];
        // Two wanted: the page ends at the second match.
        assert_eq!(pick(rows.clone(), &s, &only, 1, 2, 10), (vec![(3, "msg_3".into()), (8, "msg_8".into())], 8, false));
        // More wanted than match: the page moves past what did not match.
        assert_eq!(pick(rows.clone(), &s, &only, 1, 5, 10), (vec![(3, "msg_3".into()), (8, "msg_8".into())], 9, true));
        // A full window that matched nothing still moves on, and is not the end.
        assert_eq!(pick(vec![row(4, "b"), row(6, "b")], &s, &only, 1, 5, 2), (vec![], 6, false));
        // Nothing after: where it started, at the end.
        assert_eq!(pick(vec![], &s, &only, 7, 5, 10), (vec![], 7, true));
        // The last row fills the page and is the last there is.
        assert_eq!(pick(vec![row(4, "a")], &s, &only, 1, 1, 10), (vec![(4, "msg_4".into())], 4, true));
        let only_b = PollOnly { event_type: Some("b".into()), channel: None };
        assert_eq!(pick(rows, &sink(None, None), &only_b, 1, 5, 10).0, vec![(5, "msg_5".into()), (9, "msg_9".into())]);
    }
}
