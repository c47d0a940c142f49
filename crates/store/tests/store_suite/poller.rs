//! Poller sinks: the log they read, consumers' positions, leases and commits,
//! and poller tokens.

use std::time::Duration;

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_store::*;

use crate::fixture::Fixture;

fn sink_row(f: &Fixture, event_types: Option<Vec<&str>>, channels: Option<Vec<&str>>) -> PollerSink {
    let t = now_millis();
    PollerSink {
        org_id: f.org.clone(),
        app_id: f.app.clone(),
        id: new_id(IdPrefix::Sink),
        uid: None,
        disabled: false,
        batch_size: 100,
        max_wait_secs: 0,
        event_types: event_types.map(|v| v.into_iter().map(String::from).collect()),
        channels: channels.map(|v| v.into_iter().map(String::from).collect()),
        metadata: Default::default(),
        start_offset: 0,
        created_at: t,
        updated_at: t,
    }
}

fn token_row(sink: &PollerSink, secret: &str) -> PollerToken {
    PollerToken {
        id: new_id(IdPrefix::Token),
        org_id: sink.org_id.clone(),
        app_id: sink.app_id.clone(),
        sink_id: sink.id.clone(),
        token_hash: format!("hash-of-{secret}"),
        token: secret.to_string(),
        created_at: now_millis(),
        expires_at: None,
    }
}

async fn sink(f: &Fixture, event_types: Option<Vec<&str>>, channels: Option<Vec<&str>>) -> PollerSink {
    let row = sink_row(f, event_types, channels);
    let token = token_row(&row, &format!("sk_poll_{}", row.id));
    f.store.create_poller_sink(row, token, None).await.unwrap()
}

async fn send(f: &Fixture, event_type: &str, channels: Option<Vec<&str>>) -> String {
    let msg = f.message(event_type, None, channels);
    f.store.enqueue(msg.clone(), None, None, None).await.unwrap();
    msg.id
}

/// A page of `sink` after `after`; a committed message is readable at once.
async fn read(f: &Fixture, sink: &PollerSink, after: i64, only: &PollOnly, limit: usize) -> PollPage {
    f.store.read_poller(sink, after, only, limit).await.unwrap()
}

fn ids(page: &PollPage) -> Vec<String> {
    page.messages.iter().map(|(_, m)| m.id.clone()).collect()
}

pub async fn poller_sinks_read_what_is_logged_after_them_in_order(f: Fixture) {
    let before = send(&f, "a", None).await;
    let only_a = sink(&f, Some(vec!["a"]), None).await;
    let all = sink(&f, None, None).await;
    let channel_x = sink(&f, None, Some(vec!["x"])).await;
    let a1 = send(&f, "a", None).await;
    // Another millisecond, for the seek by time below.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let b1 = send(&f, "b", Some(vec!["x"])).await;
    let a2 = send(&f, "a", Some(vec!["y", "x"])).await;
    let none = PollOnly::default();

    let page = read(&f, &all, all.start_offset, &none, 50).await;
    assert_eq!(ids(&page), vec![a1.clone(), b1.clone(), a2.clone()], "what came before the sink is not shown");
    assert!(!ids(&page).contains(&before));
    let offsets: Vec<i64> = page.messages.iter().map(|(o, _)| *o).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]) && offsets[0] > all.start_offset, "{offsets:?}");
    assert_eq!((page.next, page.done), (offsets[2], true));
    assert_eq!(page.messages[0].1.payload.as_deref(), Some(&b"{\"a\":1}"[..]), "with its payload");

    // Filters: the sink's event types and channels, as an endpoint's, and a read's own.
    assert_eq!(ids(&read(&f, &only_a, only_a.start_offset, &none, 50).await), vec![a1.clone(), a2.clone()]);
    assert_eq!(ids(&read(&f, &channel_x, channel_x.start_offset, &none, 50).await), vec![b1.clone(), a2.clone()]);
    let only_b = PollOnly { event_type: Some("b".into()), channel: None };
    assert_eq!(ids(&f.store.read_poller(&all, all.start_offset, &only_b, 50).await.unwrap()), vec![b1.clone()]);
    let only_y = PollOnly { event_type: None, channel: Some("y".into()) };
    assert_eq!(ids(&f.store.read_poller(&all, all.start_offset, &only_y, 50).await.unwrap()), vec![a2.clone()]);

    // Pages: each starts after the last one's `next`.
    let first = f.store.read_poller(&only_a, only_a.start_offset, &none, 1).await.unwrap();
    assert_eq!((ids(&first), first.done), (vec![a1.clone()], false));
    let second = f.store.read_poller(&only_a, first.next, &none, 1).await.unwrap();
    assert_eq!(ids(&second), vec![a2.clone()]);
    let third = f.store.read_poller(&only_a, second.next, &none, 1).await.unwrap();
    assert_eq!((ids(&third), third.next, third.done), (vec![], second.next, true));

    // A seek by time: the messages created after it.
    let created = |id: &str| hookd_core::id::id_millis(id).unwrap() as i64;
    let at = f.store.poller_offset_after(&all, created(&b1) - 1).await.unwrap();
    assert_eq!(ids(&f.store.read_poller(&all, at, &none, 50).await.unwrap()), vec![b1.clone(), a2.clone()]);
    let never = f.store.poller_offset_after(&all, 0).await.unwrap();
    assert_eq!(never, all.start_offset, "a seek goes back no further than the sink's start");
    let future = f.store.poller_offset_after(&all, now_millis() + 60_000).await.unwrap();
    assert!(f.store.read_poller(&all, future, &none, 50).await.unwrap().messages.is_empty());

    // Sinks list, change (their start stays) and go.
    let listed = f.store.list_poller_sinks(&f.org, &f.app, &crate::fixture::page(50)).await.unwrap();
    assert_eq!(listed.len(), 3);
    let mut changed = only_a.clone();
    changed.uid = Some("mine".into());
    changed.event_types = Some(vec!["b".into()]);
    changed.start_offset = 0;
    f.store.update_poller_sink(changed).await.unwrap();
    let got = f.store.get_poller_sink(&f.org, &f.app, "mine").await.unwrap();
    assert_eq!((got.id.as_str(), got.start_offset), (only_a.id.as_str(), only_a.start_offset));
    let mut taken = sink_row(&f, None, None);
    taken.uid = Some("mine".into());
    let err = f.store.create_poller_sink(taken.clone(), token_row(&taken, "x"), None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { existing_id: Some(ref id), .. } if *id == only_a.id), "{err:?}");
    f.store.delete_poller_sink(&f.org, &f.app, &only_a.id).await.unwrap();
    assert!(matches!(f.store.get_poller_sink(&f.org, &f.app, &only_a.id).await, Err(StoreError::NotFound)));
}

pub async fn poller_consumers_lease_commit_and_see_again_what_they_did_not_commit(f: Fixture) {
    let s = sink(&f, None, None).await;
    let none = PollOnly::default();
    let m1 = send(&f, "a", None).await;
    let m2 = send(&f, "a", None).await;
    let page = read(&f, &s, s.start_offset, &none, 50).await;
    let (o1, o2) = (page.messages[0].0, page.messages[1].0);
    assert_eq!(ids(&page), vec![m1.clone(), m2.clone()]);

    let c = f.store.poller_consumer(&s, "c1", StartAt::Earliest).await.unwrap();
    assert_eq!((c.position, c.read_end, c.leased), (s.start_offset, s.start_offset, false));
    let again = f.store.poller_consumer(&s, "c1", StartAt::Latest).await.unwrap();
    assert_eq!(again, c, "where a consumer starts counts only when it is made");

    // A leased batch is shown to no one else until it is committed or the lease ends.
    let batch = PollerClaim::Batch { from: c.position, end: o2, lease_ms: 60_000 };
    assert!(f.store.claim_poller_batch(&s, "c1", batch).await.unwrap());
    assert!(!f.store.claim_poller_batch(&s, "c1", batch).await.unwrap(), "leased");
    assert!(f.store.poller_consumer(&s, "c1", StartAt::Earliest).await.unwrap().leased);
    let err = f.store.commit_poller_consumer(&s, "c1", o2 + 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { field: "offset", .. }), "past what it was shown: {err:?}");
    f.store.commit_poller_consumer(&s, "c1", o1).await.unwrap();
    let c = f.store.poller_consumer(&s, "c1", StartAt::Earliest).await.unwrap();
    assert_eq!((c.position, c.leased), (o1, true), "a part commit keeps the lease on the rest");
    f.store.commit_poller_consumer(&s, "c1", o2).await.unwrap();
    let c = f.store.poller_consumer(&s, "c1", StartAt::Earliest).await.unwrap();
    assert_eq!((c.position, c.read_end, c.leased), (o2, o2, false));
    f.store.commit_poller_consumer(&s, "c1", o1).await.unwrap();
    assert_eq!(f.store.poller_consumer(&s, "c1", StartAt::Earliest).await.unwrap().position, o2, "never back");

    // Not committed: once the lease ends, the same batch is taken again.
    f.store.move_poller_consumer(&s, "c2", s.start_offset).await.unwrap();
    let short = PollerClaim::Batch { from: s.start_offset, end: o2, lease_ms: 50 };
    assert!(f.store.claim_poller_batch(&s, "c2", short).await.unwrap());
    assert!(!f.store.claim_poller_batch(&s, "c2", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(f.store.claim_poller_batch(&s, "c2", short).await.unwrap(), "the lease ended: taken again");
    // Without a lease, any read takes it again.
    let open = PollerClaim::Batch { from: s.start_offset, end: o2, lease_ms: 0 };
    f.store.move_poller_consumer(&s, "c3", s.start_offset).await.unwrap();
    assert!(f.store.claim_poller_batch(&s, "c3", open).await.unwrap());
    assert!(f.store.claim_poller_batch(&s, "c3", open).await.unwrap());
    // A claim from a position the consumer left loses.
    f.store.move_poller_consumer(&s, "c3", o1).await.unwrap();
    assert!(!f.store.claim_poller_batch(&s, "c3", open).await.unwrap());
    assert!(f.store.claim_poller_batch(&s, "c3", PollerClaim::Skip { from: o1, to: o2 }).await.unwrap());
    assert_eq!(f.store.poller_consumer(&s, "c3", StartAt::Earliest).await.unwrap().position, o2);

    // A seek (a move) ends the lease and goes anywhere.
    f.store.move_poller_consumer(&s, "c2", o1).await.unwrap();
    let c2 = f.store.poller_consumer(&s, "c2", StartAt::Earliest).await.unwrap();
    assert_eq!((c2.position, c2.leased), (o1, false));

    // A new consumer at the latest offset sees only what comes next; one that
    // never read has nothing to commit.
    let latest = f.store.poller_consumer(&s, "late", StartAt::Latest).await.unwrap();
    assert_eq!(latest.position, o2);
    assert!(matches!(f.store.commit_poller_consumer(&s, "nobody", o1).await, Err(StoreError::NotFound)));
    // Consumers are per sink.
    let other = sink(&f, None, None).await;
    assert_eq!(f.store.poller_consumer(&other, "c1", StartAt::Earliest).await.unwrap().position, other.start_offset);
}

pub async fn poller_tokens_rotate_and_go_with_their_sink(f: Fixture) {
    let s = sink_row(&f, None, None);
    let first = token_row(&s, "sk_poll_first");
    let s = f.store.create_poller_sink(s, first.clone(), None).await.unwrap();
    let current = f.store.current_poller_token(&f.org, &s.id).await.unwrap().unwrap();
    assert_eq!((current.id.as_str(), current.token.as_str()), (first.id.as_str(), "sk_poll_first"));
    let found = f.store.poller_token_by_hash(&first.token_hash).await.unwrap().unwrap();
    assert_eq!((found.sink_id.as_str(), found.app_id.as_str()), (s.id.as_str(), f.app.as_str()));

    let second = token_row(&s, "sk_poll_second");
    let grace = now_millis() + 300_000;
    f.store.rotate_poller_token(second.clone(), grace).await.unwrap();
    assert_eq!(f.store.current_poller_token(&f.org, &s.id).await.unwrap().unwrap().id, second.id);
    let old = f.store.poller_token_by_hash(&first.token_hash).await.unwrap().unwrap();
    assert_eq!(old.expires_at, Some(grace));
    let third = token_row(&s, "sk_poll_third");
    f.store.rotate_poller_token(third, grace + 1000).await.unwrap();
    assert_eq!(
        f.store.poller_token_by_hash(&first.token_hash).await.unwrap().unwrap().expires_at,
        Some(grace),
        "a rotation never extends an older token"
    );
    assert_eq!(f.store.poller_token_by_hash(&second.token_hash).await.unwrap().unwrap().expires_at, Some(grace + 1000));

    // The sink goes with its tokens and consumers; the application with its sinks.
    send(&f, "a", None).await;
    f.store.move_poller_consumer(&s, "c", s.start_offset).await.unwrap();
    f.store.delete_poller_sink(&f.org, &f.app, &s.id).await.unwrap();
    assert!(f.store.poller_token_by_hash(&first.token_hash).await.unwrap().is_none());
    let kept = sink(&f, None, None).await;
    send(&f, "a", None).await;
    f.store.move_poller_consumer(&kept, "c", kept.start_offset).await.unwrap();
    f.store.delete_app(&f.org, &f.app).await.unwrap();
    assert!(matches!(f.store.get_poller_sink(&f.org, &f.app, &kept.id).await, Err(StoreError::NotFound)));
    assert!(f.store.current_poller_token(&f.org, &kept.id).await.unwrap().is_none());
}

/// A message committed late (its transaction began first) is never passed by
/// a reader: it is numbered when it commits, after what was read meanwhile.
pub async fn a_poller_never_passes_a_message_committed_late(f: Fixture) {
    use sqlx::Connection;
    let s = sink(&f, None, None).await;
    let none = PollOnly::default();
    let url = f.database_url().expect("postgres").to_string();
    let mut raw = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("SET search_path TO \"{}\"", f.schema().unwrap())).execute(&mut raw).await.unwrap();
    let mut slow = raw.begin().await.unwrap();
    let late = f.message("a", None, None);
    sqlx::query(
        "INSERT INTO message (org_id, app_id, id, event_type, payload, created_at, expires_at)
         VALUES ($1, $2, $3, 'a', '{}'::bytea, $4, $4 + 86400000)",
    )
    .bind(&late.org_id)
    .bind(&late.app_id)
    .bind(&late.id)
    .bind(late.created_at)
    .execute(&mut *slow)
    .await
    .unwrap();
    let quick = send(&f, "a", None).await;
    let page = f.store.read_poller(&s, s.start_offset, &none, 50).await.unwrap();
    assert_eq!(ids(&page), vec![quick.clone()], "what is committed is readable at once");
    slow.commit().await.unwrap();
    let after = f.store.read_poller(&s, page.next, &none, 50).await.unwrap();
    assert_eq!(ids(&after), vec![late.id.clone()], "the late one comes after what was read, not behind it");
    let all = f.store.read_poller(&s, s.start_offset, &none, 50).await.unwrap();
    assert_eq!(ids(&all), vec![quick, late.id], "in commit order");
}
