//! The audit trail: who changed what, when, from where. Entries are append-only
//! and hash-chained: each entry's hash covers its fields and the previous
//! entry's hash, and `audit_head` holds the newest one's, so altering, removing
//! or reordering any entry breaks the chain at that entry ([`verify`]).
//! Retention removes only from the oldest end and records the hash it cut at,
//! where verification then starts.

use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: &str = "genesis";

/// One change, as the API (or hookd itself) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub org_id: String,
    pub at: i64,
    /// The token that acted (`tok_…`), `bootstrap` for `--admin-token`,
    /// `unauthenticated` for a failed authentication, `hookd` for hookd itself.
    pub actor: String,
    /// `METHOD /route/{template}`, or a name such as `endpoint.disabled`.
    pub action: String,
    /// The path acted on (ids and uids as given).
    pub target: String,
    /// The HTTP status answered (0 for hookd's own actions).
    pub status: i32,
    /// The client's address.
    pub address: Option<String>,
}

/// An event as stored: its place in the chain and its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The chain's hash of an event at `seq` after `prev_hash`. Fields are
/// length-prefixed, so no two different entries hash the same input.
pub fn chain_hash(prev_hash: &str, seq: i64, e: &AuditEvent) -> String {
    let mut h = Sha256::new();
    // A missing address hashes apart from an empty one.
    let address = match &e.address {
        Some(a) => format!("+{a}"),
        None => "-".to_string(),
    };
    let at = e.at.to_string();
    let seq = seq.to_string();
    let status = e.status.to_string();
    for field in [prev_hash, &seq, &e.org_id, &at, &e.actor, &e.action, &e.target, &status, &address] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hookd_core::text::hex(&h.finalize())
}

/// The head of the chain: the newest entry, and where retention last cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
    pub cut_seq: i64,
    pub cut_hash: String,
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    /// Every entry from `first` to `last` chains; `count` of them.
    Intact { first: i64, last: i64, count: u64 },
    /// The chain breaks at entry `seq`: `why`.
    Broken { seq: i64, why: String },
}

/// Walks entries in `seq` order (as `next` yields them) from the head's cut,
/// recomputing each hash.
pub fn verify(head: &AuditHead, entries: impl Iterator<Item = AuditEntry>) -> AuditCheck {
    let (mut expect_seq, mut prev) = (head.cut_seq + 1, head.cut_hash.clone());
    let mut count = 0;
    for e in entries {
        if e.seq != expect_seq {
            let why = if e.seq > expect_seq {
                format!("entries {expect_seq} to {} are missing", e.seq - 1)
            } else {
                "out of order".into()
            };
            return AuditCheck::Broken { seq: e.seq, why };
        }
        if e.prev_hash != prev {
            return AuditCheck::Broken { seq: e.seq, why: "its link to the previous entry does not match".into() };
        }
        if chain_hash(&prev, e.seq, &e.event) != e.hash {
            return AuditCheck::Broken { seq: e.seq, why: "its content does not match its hash (altered)".into() };
        }
        prev = e.hash;
        expect_seq += 1;
        count += 1;
    }
    if expect_seq - 1 != head.seq || prev != head.hash {
        return AuditCheck::Broken {
            seq: expect_seq,
            why: format!("the newest entries up to {} are missing (the head says so)", head.seq),
        };
    }
    AuditCheck::Intact { first: head.cut_seq + 1, last: head.seq, count }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> AuditEvent {
        AuditEvent {
            org_id: "org".into(),
            at: n,
            actor: "tok_1".into(),
            action: "POST /api/v1/app".into(),
            target: format!("/api/v1/app/{n}"),
            status: 201,
            address: Some("127.0.0.1".into()),
        }
    }

    fn chain(n: i64) -> (AuditHead, Vec<AuditEntry>) {
        let mut prev = GENESIS.to_string();
        let mut out = Vec::new();
        for seq in 1..=n {
            let e = event(seq);
            let hash = chain_hash(&prev, seq, &e);
            out.push(AuditEntry { seq, event: e, prev_hash: prev.clone(), hash: hash.clone() });
            prev = hash;
        }
        (AuditHead { seq: n, hash: prev, cut_seq: 0, cut_hash: GENESIS.into() }, out)
    }

    #[test]
    fn any_change_breaks_the_chain_where_it_was_made() {
        let (head, entries) = chain(5);
        assert_eq!(verify(&head, entries.clone().into_iter()), AuditCheck::Intact { first: 1, last: 5, count: 5 });

        let mut altered = entries.clone();
        altered[2].event.action = "DELETE /api/v1/app".into();
        assert!(matches!(verify(&head, altered.into_iter()), AuditCheck::Broken { seq: 3, .. }));

        let mut removed = entries.clone();
        removed.remove(1);
        assert!(matches!(verify(&head, removed.into_iter()), AuditCheck::Broken { seq: 3, .. }));

        let mut truncated = entries.clone();
        truncated.pop();
        assert!(matches!(verify(&head, truncated.into_iter()), AuditCheck::Broken { seq: 5, .. }));

        // Retention cut the two oldest and recorded where: still intact.
        let cut = AuditHead { cut_seq: 2, cut_hash: entries[1].hash.clone(), ..head };
        assert_eq!(verify(&cut, entries[2..].iter().cloned()), AuditCheck::Intact { first: 3, last: 5, count: 3 });
    }
}
