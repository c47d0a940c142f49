//! Faults on purpose: hookd nodes as child processes under steady load, a
//! fault injected and healed, and what the receiver got counted against what
//! was acknowledged: lost (must be 0), duplicates, out of order on the
//! ordered endpoint, time to drain the backlog, and requests sent by a node
//! that could no longer have held its lease.
//!
//! Each scenario runs small in the test suite (seconds) and at full size with
//! `HOOKD_CHAOS=full` (`scripts/chaos`), which also appends each report as a
//! JSON line to `$HOOKD_CHAOS_REPORT`. docs/reliability.md has the figures.

mod clock;
mod crashes;
mod database;
mod disk;
pub mod harness;
mod partition;
mod receivers;

use std::time::Duration;

use harness::{ClientView, Tally};

/// Whether the scenarios run at full size.
pub fn full() -> bool {
    std::env::var("HOOKD_CHAOS").as_deref() == Ok("full")
}

/// `small` in the test suite, `large` with `HOOKD_CHAOS=full`.
pub fn size<T>(small: T, large: T) -> T {
    if full() {
        large
    } else {
        small
    }
}

/// One scenario's figures.
pub struct Report<'a> {
    pub scenario: &'a str,
    pub store: &'a str,
    pub tally: &'a Tally,
    pub client: &'a ClientView,
    /// From the heal until every message acknowledged before it was delivered.
    pub recovery: Option<Duration>,
    /// Requests a node sent when it could no longer have held the lease.
    pub fenced: Option<usize>,
    pub notes: String,
}

impl Report<'_> {
    /// Prints the report and, with `HOOKD_CHAOS_REPORT`, appends it there.
    pub fn publish(&self) {
        let t = self.tally;
        let unavailable = self.client.statuses.get(&503).copied().unwrap_or(0);
        let line = serde_json::json!({
            "scenario": self.scenario,
            "store": self.store,
            "acked": t.acked,
            "delivered": t.delivered,
            "lost": t.lost,
            "duplicates": t.duplicates,
            "outOfOrder": t.out_of_order,
            "recoverySeconds": self.recovery.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
            "fencedRequests": self.fenced,
            "answered503": unavailable,
            "noAnswer": self.client.no_answer,
            "wrongAnswers": self.client.wrong.len(),
            "notes": self.notes,
            "full": full(),
        });
        println!("chaos report: {line}");
        if let Ok(path) = std::env::var("HOOKD_CHAOS_REPORT") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("report file");
            writeln!(f, "{line}").unwrap();
        }
    }

    /// The guarantees every scenario holds to.
    pub fn assert_held(&self) {
        let t = self.tally;
        assert!(t.acked > 0, "{}: the load ran ({} acknowledged)", self.scenario, t.acked);
        assert_eq!(t.lost, 0, "{}: acknowledged messages lost: {t:?}", self.scenario);
        assert_eq!(t.out_of_order, 0, "{}: out of order on the ordered endpoint: {t:?}", self.scenario);
        assert!(
            self.client.wrong.is_empty(),
            "{}: answers other than 2xx or 503 with Retry-After: {:?}",
            self.scenario,
            &self.client.wrong[..self.client.wrong.len().min(5)]
        );
        if let Some(n) = self.fenced {
            assert_eq!(n, 0, "{}: requests sent without a live lease", self.scenario);
        }
    }
}
