//! Applications, endpoints, event types, tokens, and list paging.

use std::sync::Arc;

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_core::Secret;
use hookd_store::postgres::PostgresStore;
use hookd_store::*;

use crate::fixture::{ids, lease, outcome, page, Fixture, Schema, KEEP};

pub async fn lists_page_in_id_order_both_ways(f: Fixture) {
    let mut want = Vec::new();
    for _ in 0..5 {
        want.push(f.endpoint(None, None).await.id);
    }
    let page = |iterator: Option<&String>, backwards, descending| Page {
        limit: 2,
        iterator: iterator.cloned(),
        backwards,
        descending,
    };
    let list = |p: Page| {
        let (store, org, app) = (f.store.clone(), f.org.clone(), f.app.clone());
        async move { ids(&store.list_endpoints(&org, &app, &p).await.unwrap(), |e| &e.id) }
    };
    let first = list(page(None, false, false)).await;
    assert_eq!(first, want[0..3].to_vec(), "limit + 1 rows tell the caller there is more");
    assert_eq!(list(page(Some(&want[1]), false, false)).await, want[2..5].to_vec());
    let back = list(page(Some(&want[3]), true, false)).await;
    assert_eq!(back, vec![want[2].clone(), want[1].clone(), want[0].clone()], "walking back, nearest first");
    let newest = list(page(None, false, true)).await;
    assert_eq!(newest, vec![want[4].clone(), want[3].clone(), want[2].clone()]);
    assert_eq!(list(page(Some(&want[2]), false, true)).await, vec![want[1].clone(), want[0].clone()]);
    assert_eq!(list(page(Some(&want[1]), true, true)).await, want[2..5].to_vec());
}

fn app_row(f: &Fixture, uid: Option<&str>) -> Application {
    let t = now_millis();
    Application {
        org_id: f.org.clone(),
        id: new_id(IdPrefix::Application),
        uid: uid.map(String::from),
        name: "Beta".into(),
        rate_limit: None,
        metadata: Default::default(),
        created_at: t,
        updated_at: t,
    }
}

pub async fn applications_keep_uids_unique(f: Fixture) {
    assert_eq!(f.store.get_app(&f.org, "acme").await.unwrap().id, f.app, "found by uid");
    match f.store.create_app(app_row(&f, Some("acme")), None).await {
        Err(StoreError::Conflict { existing_id, .. }) => assert_eq!(existing_id.as_deref(), Some(f.app.as_str())),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut beta = f.store.create_app(app_row(&f, Some("beta")), None).await.unwrap();
    let no_uid = f.store.create_app(app_row(&f, None), None).await.unwrap();
    f.store.create_app(app_row(&f, None), None).await.unwrap();
    assert_eq!(ids(&f.store.list_apps(&f.org, &page(10)).await.unwrap(), |a| &a.id).len(), 4);

    beta.uid = Some("acme".into());
    match f.store.update_app(beta.clone()).await {
        Err(StoreError::Conflict { existing_id, .. }) => assert_eq!(existing_id.as_deref(), Some(f.app.as_str())),
        other => panic!("expected a conflict, got {other:?}"),
    }
    beta.uid = Some("gamma".into());
    beta.name = "Gamma".into();
    beta.rate_limit = Some(25);
    beta.metadata.insert("team".into(), "billing".into());
    f.store.update_app(beta.clone()).await.unwrap();
    let got = f.store.get_app(&f.org, "gamma").await.unwrap();
    assert_eq!((got.id, got.name, got.rate_limit), (beta.id.clone(), "Gamma".to_string(), Some(25)));
    assert_eq!(got.metadata.get("team").map(String::as_str), Some("billing"));
    assert_eq!(f.store.get_app(&f.org, &no_uid.id).await.unwrap().uid, None);

    let mut ghost = app_row(&f, None);
    ghost.id = "app_ghost".into();
    assert!(matches!(f.store.update_app(ghost).await, Err(StoreError::NotFound)));
    assert!(matches!(f.store.get_app("org_other", &f.app).await, Err(StoreError::NotFound)));
}

pub async fn deleting_an_application_removes_everything_under_it(f: Fixture) {
    let ep = f.endpoint(None, None).await;
    let msg = f.message("a", None, None);
    let jobs = f.store.enqueue(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    let failed = outcome(&jobs[0], Some(f.attempt(&msg.id, &ep, 500)), NextState::Retry { after_ms: 0 }, 1);
    f.store.record_outcomes(Arc::from(vec![failed])).await.unwrap();
    let token = ApiToken {
        id: new_id(IdPrefix::Token),
        org_id: f.org.clone(),
        token_hash: "portal-hash".into(),
        app_id: Some(f.app.clone()),
        created_at: now_millis(),
        expires_at: None,
        name: None,
        role: TokenRole::Portal,
        capabilities: None,
        session_id: None,
        tail: None,
    };
    f.store.insert_token(token).await.unwrap();
    // Another application's rows stay.
    let other = f.store.create_app(app_row(&f, Some("other")), None).await.unwrap();
    let mut other_ep = f.endpoint_row(None, None);
    other_ep.app_id = other.id.clone();
    f.store.create_endpoint(other_ep, None).await.unwrap();
    let mut other_msg = f.message("a", None, None);
    other_msg.app_id = other.id.clone();
    f.store.enqueue(other_msg, None, None, None).await.unwrap();

    f.store.delete_app(&f.org, &f.app).await.unwrap();
    assert!(matches!(f.store.get_app(&f.org, &f.app).await, Err(StoreError::NotFound)));
    assert!(matches!(f.store.get_message(&f.org, &f.app, &msg.id).await, Err(StoreError::NotFound)));
    assert!(f.store.list_endpoints(&f.org, &f.app, &page(10)).await.unwrap().is_empty());
    assert!(f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap().is_empty());
    assert!(f.store.token_by_hash("portal-hash").await.unwrap().is_none());
    assert_eq!(f.store.pending_count().await.unwrap(), 1, "only the other application's delivery");
    assert_eq!(f.store.list_endpoints(&f.org, &other.id, &page(10)).await.unwrap().len(), 1);
    assert!(matches!(f.store.delete_app(&f.org, &f.app).await, Err(StoreError::NotFound)));
}

pub async fn endpoints_round_trip_and_delete_with_their_deliveries(f: Fixture) {
    let mut row = f.endpoint_row(Some(vec!["a", "b"]), Some(vec!["eu"]));
    row.uid = Some("billing".into());
    row.description = "Billing".into();
    row.rate_limit = Some(10);
    row.headers.insert("x-team".into(), "billing".into());
    row.metadata.insert("k".into(), "v".into());
    row.retired_secrets = vec![RetiredSecret { secret: Secret::generate(), expires_at: now_millis() + 1000 }];
    let ep = f.store.create_endpoint(row.clone(), None).await.unwrap();

    let got = f.store.get_endpoint(&f.org, &f.app, "billing").await.unwrap();
    assert_eq!(
        (got.id.as_str(), got.url.as_str(), got.description.as_str()),
        (ep.id.as_str(), row.url.as_str(), "Billing")
    );
    assert_eq!((got.event_types.clone(), got.channels.clone()), (row.event_types.clone(), row.channels.clone()));
    assert_eq!((got.rate_limit, got.version, got.disabled), (Some(10), 1, false));
    assert_eq!((got.headers.clone(), got.metadata.clone()), (row.headers.clone(), row.metadata.clone()));
    assert_eq!(got.secret.expose(), row.secret.expose());
    assert_eq!(got.retired_secrets.len(), 1);
    assert_eq!(got.retired_secrets[0].secret.expose(), row.retired_secrets[0].secret.expose());
    assert_eq!(got.retired_secrets[0].expires_at, row.retired_secrets[0].expires_at);

    let mut taken = f.endpoint_row(None, None);
    taken.uid = Some("billing".into());
    assert!(matches!(f.store.create_endpoint(taken, None).await, Err(StoreError::Conflict { .. })));

    let settings = EndpointSettings {
        url: Some("https://example.com/v2".into()),
        disabled: Some(true),
        event_types: Some(None),
        ..Default::default()
    };
    f.store.update_endpoint(&f.org, &f.app, &ep.id, EndpointChange::Settings(settings), None).await.unwrap();
    let secret = Secret::generate();
    let rotate = EndpointChange::RotateSecret { secret: secret.clone(), grace_ms: 60_000 };
    f.store.update_endpoint(&f.org, &f.app, &ep.id, rotate, None).await.unwrap();
    let got = f.store.get_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
    assert_eq!((got.url.as_str(), got.disabled, got.event_types.clone()), ("https://example.com/v2", true, None));
    assert_eq!((got.description.as_str(), got.rate_limit), ("Billing", Some(10)), "settings not given are kept");
    assert_eq!(got.secret.expose(), secret.expose());
    assert_eq!(got.retired_secrets[0].secret.expose(), row.secret.expose(), "the old secret signs for its grace");
    let ghost = EndpointChange::Settings(EndpointSettings::default());
    assert!(matches!(
        f.store.update_endpoint(&f.org, &f.app, "ep_ghost", ghost, None).await,
        Err(StoreError::NotFound)
    ));

    // Deleting takes its deliveries and attempts along; other endpoints keep theirs.
    let enable = EndpointSettings { disabled: Some(false), ..Default::default() };
    f.store.update_endpoint(&f.org, &f.app, &ep.id, EndpointChange::Settings(enable), None).await.unwrap();
    let keep = f.endpoint(None, None).await;
    let msg = f.message("x", None, Some(vec!["eu"]));
    let jobs = f.store.enqueue(msg.clone(), None, Some(lease("n1", 60_000)), None).await.unwrap();
    assert_eq!(jobs.len(), 2);
    let outcomes: Vec<Outcome> = jobs
        .iter()
        .map(|j| outcome(j, Some(f.attempt(&msg.id, &j.endpoint, 500)), NextState::Retry { after_ms: 0 }, 1))
        .collect();
    f.store.record_outcomes(Arc::from(outcomes)).await.unwrap();
    f.store.delete_endpoint(&f.org, &f.app, &ep.id).await.unwrap();
    assert!(matches!(f.store.get_endpoint(&f.org, &f.app, &ep.id).await, Err(StoreError::NotFound)));
    assert_eq!(f.store.pending_count().await.unwrap(), 1);
    let attempts = f.store.list_attempts(&f.org, &f.app, &AttemptFilter::default(), &page(10)).await.unwrap();
    assert_eq!(ids(&attempts, |a| &a.endpoint_id), vec![keep.id.clone()]);
    assert!(matches!(f.store.delete_endpoint(&f.org, &f.app, &ep.id).await, Err(StoreError::NotFound)));
}

fn event_type(f: &Fixture, name: &str, archived: bool) -> EventType {
    let t = now_millis();
    EventType {
        org_id: f.org.clone(),
        name: name.into(),
        description: format!("{name} happened"),
        archived,
        deprecated: false,
        schemas: None,
        feature_flags: None,
        group_name: None,
        created_at: t,
        updated_at: t,
        retry_schedule_ms: None,
        validate_payloads: false,
    }
}

pub async fn event_types_list_in_byte_order_and_hide_archived(f: Fixture) {
    for (name, archived) in [("b.x", false), ("B.y", false), ("a.z", false), ("c.old", true)] {
        f.store.create_event_type(event_type(&f, name, archived), None).await.unwrap();
    }
    let names = |include_archived| {
        let (store, org) = (f.store.clone(), f.org.clone());
        async move { ids(&store.list_event_types(&org, &page(10), include_archived).await.unwrap(), |e| &e.name) }
    };
    // Byte order, as ids and names compare everywhere: upper case first.
    assert_eq!(names(false).await, vec!["B.y", "a.z", "b.x"]);
    assert_eq!(names(true).await, vec!["B.y", "a.z", "b.x", "c.old"]);
    let after_a = Page { limit: 10, iterator: Some("a.z".into()), backwards: false, descending: false };
    assert_eq!(
        ids(&f.store.list_event_types(&f.org, &after_a, true).await.unwrap(), |e| &e.name),
        vec!["b.x", "c.old"]
    );

    assert!(matches!(
        f.store.create_event_type(event_type(&f, "a.z", false), None).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut changed = event_type(&f, "a.z", false);
    changed.description = "changed".into();
    changed.deprecated = true;
    changed.schemas = Some(r#"{"1":{"type":"object"}}"#.into());
    changed.feature_flags = Some(vec!["beta".into()]);
    changed.group_name = Some("alpha".into());
    f.store.update_event_type(changed.clone()).await.unwrap();
    let got = f.store.get_event_type(&f.org, "a.z").await.unwrap();
    assert_eq!((got.description.as_str(), got.deprecated, got.archived), ("changed", true, false));
    assert_eq!(
        (got.schemas, got.feature_flags, got.group_name),
        (changed.schemas, changed.feature_flags, changed.group_name)
    );
    assert!(matches!(f.store.update_event_type(event_type(&f, "nope", false)).await, Err(StoreError::NotFound)));

    f.store.delete_event_type(&f.org, "a.z").await.unwrap();
    assert!(matches!(f.store.get_event_type(&f.org, "a.z").await, Err(StoreError::NotFound)));
    assert!(matches!(f.store.delete_event_type(&f.org, "a.z").await, Err(StoreError::NotFound)));
}

pub async fn tokens_and_the_default_organisation(f: Fixture) {
    assert_eq!(f.store.default_org().await.unwrap(), f.org);
    assert_eq!(f.another_node().await.default_org().await.unwrap(), f.org, "one default organisation per database");
    assert!(!f.store.has_admin_token(&f.org).await.unwrap());
    let now = now_millis();
    let token = |hash: &str, app_id: Option<String>, expires_at| ApiToken {
        id: new_id(IdPrefix::Token),
        org_id: f.org.clone(),
        token_hash: hash.into(),
        role: if app_id.is_some() { TokenRole::Portal } else { TokenRole::Server },
        app_id,
        created_at: now,
        expires_at,
        name: Some(hash.into()),
        capabilities: Some(vec!["ViewBase".into()]),
        session_id: Some(format!("s-{hash}")),
        tail: Some("abcd".into()),
    };
    f.store.insert_token(token("portal", Some(f.app.clone()), None)).await.unwrap();
    assert!(!f.store.has_admin_token(&f.org).await.unwrap(), "an app-portal token is not an admin token");
    f.store.insert_token(token("admin", None, None)).await.unwrap();
    f.store.insert_token(token("short", None, Some(now + 1000))).await.unwrap();
    assert!(f.store.has_admin_token(&f.org).await.unwrap());
    let got = f.store.token_by_hash("portal").await.unwrap().unwrap();
    assert_eq!(
        (got.org_id, got.app_id, got.created_at, got.expires_at),
        (f.org.clone(), Some(f.app.clone()), now, None)
    );
    assert_eq!(
        (got.role, got.capabilities, got.session_id.as_deref(), got.tail.as_deref()),
        (TokenRole::Portal, Some(vec!["ViewBase".to_string()]), Some("s-portal"), Some("abcd"))
    );
    assert!(f.store.token_by_hash("unknown").await.unwrap().is_none());
    // API tokens list without portal tokens; a session's portal tokens expire alone.
    let listed = f.store.list_tokens(Some(&f.org), &page(10)).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.token_hash.as_str()).collect::<Vec<_>>(), ["admin", "short"]);
    f.store.insert_token(token("portal2", Some(f.app.clone()), None)).await.unwrap();
    let n = f.store.expire_app_tokens(&f.org, &f.app, now, &["s-portal2".to_string()]).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(f.store.token_by_hash("portal").await.unwrap().unwrap().expires_at, None);
    assert_eq!(f.store.token_by_hash("portal2").await.unwrap().unwrap().expires_at, Some(now));
    let mut admin = f.store.token_by_hash("admin").await.unwrap().unwrap();
    admin.name = Some("renamed".into());
    admin.role = TokenRole::ReadOnly;
    f.store.update_token(admin.clone()).await.unwrap();
    let got = f.store.get_token(&admin.id).await.unwrap();
    assert_eq!((got.name.as_deref(), got.role), (Some("renamed"), TokenRole::ReadOnly));
    admin.role = TokenRole::Server;
    f.store.update_token(admin).await.unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(f.store.prune(100, KEEP).await.unwrap().housekeeping >= 1);
    assert!(f.store.token_by_hash("short").await.unwrap().is_none());
    assert!(f.store.token_by_hash("admin").await.unwrap().is_some());
}

/// Nodes starting together on an empty schema: one migrates while the others
/// wait, and they agree on one default organisation.
pub async fn several_nodes_start_at_once_on_a_new_schema(f: Fixture) {
    let url = f.database_url().expect("a PostgreSQL fixture").to_string();
    let schema = Schema::unique(&url);
    let starting: Vec<_> = (0..4)
        .map(|_| {
            let (url, name) = (url.clone(), schema.name().to_string());
            tokio::spawn(async move {
                let store = PostgresStore::connect_in_schema(&url, &name).await.unwrap();
                store.default_org().await.unwrap()
            })
        })
        .collect();
    let mut orgs = Vec::new();
    for node in starting {
        orgs.push(node.await.unwrap());
    }
    orgs.dedup();
    assert_eq!(orgs.len(), 1, "one default organisation: {orgs:?}");
    assert_ne!(orgs[0], f.org, "each schema is a database of its own");
    schema.drop_now().await;

    let refused = PostgresStore::connect_in_schema(&url, "Not-A-Schema; DROP").await;
    assert!(matches!(refused, Err(StoreError::Internal(_))));
}

/// Organisations: created, listed, renamed, and deleted with everything in
/// them while the others keep theirs.
pub async fn organisations_are_created_changed_and_deleted_whole(f: Fixture) {
    let t = now_millis();
    let other = Organization {
        id: new_id(IdPrefix::Organization),
        name: "Other".into(),
        env_type: "production".into(),
        policy: hookd_core::policy::OrgPolicy {
            https_only: true,
            allowed_networks: vec![],
            blocked_networks: vec!["10.0.0.0/8".into()],
        },
        encrypt_payloads: true,
        // Made on a node whose clock is far behind: still not the default.
        created_at: 0,
        updated_at: t,
    };
    f.store.insert_org(other.clone()).await.unwrap();
    let orgs = f.store.list_orgs(&page(10)).await.unwrap();
    assert_eq!(orgs.iter().map(|o| o.id.clone()).collect::<Vec<_>>(), [f.org.clone(), other.id.clone()]);
    assert_eq!(f.store.default_org().await.unwrap(), f.org, "the default is marked, not the oldest");
    let mut renamed = other.clone();
    renamed.name = "Renamed".into();
    f.store.update_org(renamed).await.unwrap();
    assert_eq!(f.store.get_org(&other.id).await.unwrap().name, "Renamed");
    let settings = f.store.org_settings(&other.id).await.unwrap();
    assert_eq!((settings.policy, settings.encrypt_payloads), (other.policy.clone(), true));
    assert_eq!(f.store.org_settings(&f.org).await.unwrap(), OrgSettings::default());
    assert_eq!(f.store.org_settings("org_gone").await.unwrap(), OrgSettings::default());

    // The other organisation gets an application, an endpoint, a message, a token.
    let app = Application {
        org_id: other.id.clone(),
        id: new_id(IdPrefix::Application),
        uid: None,
        name: "theirs".into(),
        rate_limit: None,
        metadata: Default::default(),
        created_at: t,
        updated_at: t,
    };
    f.store.create_app(app.clone(), None).await.unwrap();
    let token = ApiToken {
        id: new_id(IdPrefix::Token),
        org_id: other.id.clone(),
        token_hash: "other-admin".into(),
        app_id: None,
        created_at: t,
        expires_at: None,
        name: None,
        role: TokenRole::Admin,
        capabilities: None,
        session_id: None,
        tail: None,
    };
    f.store.insert_token(token).await.unwrap();
    let ep = f.endpoint(None, None).await;
    let msg = f.message("a", None, None);
    f.store.enqueue(msg.clone(), None, None, None).await.unwrap();

    f.store.delete_org(&other.id).await.unwrap();
    assert!(matches!(f.store.get_org(&other.id).await, Err(StoreError::NotFound)));
    assert!(matches!(f.store.get_app(&other.id, &app.id).await, Err(StoreError::NotFound)));
    assert!(f.store.token_by_hash("other-admin").await.unwrap().is_none());
    assert!(matches!(f.store.delete_org(&other.id).await, Err(StoreError::NotFound)));
    // The default organisation keeps everything.
    assert!(f.store.get_endpoint(&f.org, &f.app, &ep.id).await.is_ok());
    assert!(f.store.get_message(&f.org, &f.app, &msg.id).await.is_ok());
}

/// A portal link's one-time token: taken once, and never after it expires,
/// also when two requests race for it.
pub async fn a_one_time_token_is_taken_once(f: Fixture) {
    let now = now_millis();
    f.store.insert_one_time_token(&f.org, "tok_1", "hash-1", now + 60_000).await.unwrap();
    f.store.insert_one_time_token(&f.org, "tok_2", "hash-2", now - 1).await.unwrap();
    let (a, b) = tokio::join!(f.store.take_one_time_token("hash-1", now), f.store.take_one_time_token("hash-1", now));
    let taken: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken, vec![(f.org.clone(), "tok_1".to_string())]);
    assert!(f.store.take_one_time_token("hash-2", now).await.unwrap().is_none(), "expired");
    assert!(f.store.take_one_time_token("nope", now).await.unwrap().is_none());
}
