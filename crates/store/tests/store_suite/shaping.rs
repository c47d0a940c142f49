//! Shaping's side of the store: endpoint filters at fan-out, and templates
//! with their immutable versions.

use std::sync::Arc;

use hookd_core::filter::Filter;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_store::*;

use crate::fixture::{page, Fixture};

pub async fn filters_decide_fan_out(f: Fixture) {
    let filtered = |src: &str| {
        let mut row = f.endpoint_row(None, None);
        row.control.filter = Some(Filter::parse(src).unwrap());
        row
    };
    let big = f.store.create_endpoint(filtered("/amount gt 10"), None).await.unwrap();
    let eu =
        f.store.create_endpoint(filtered(r#"eventType eq "paid" and channels contains "eu""#), None).await.unwrap();
    let all = f.endpoint(None, None).await;
    let send = |event_type: &str, payload: &str, channels: Option<Vec<&str>>| {
        let mut msg = f.message(event_type, None, channels);
        msg.payload = Some(Arc::from(payload.as_bytes()));
        msg
    };
    let cases = [
        (send("paid", r#"{"amount": 50}"#, Some(vec!["eu"])), vec![&big.id, &eu.id, &all.id]),
        (send("paid", r#"{"amount": 5}"#, Some(vec!["us"])), vec![&all.id]),
        (send("refunded", r#"{"amount": 11.5}"#, None), vec![&big.id, &all.id]),
        // A raw payload has no fields: only attribute filters can pass it.
        (send("paid", "\0raw\0text/plain\0amount=50", Some(vec!["eu"])), vec![&eu.id, &all.id]),
    ];
    for (msg, expected) in cases {
        f.store.enqueue(msg.clone(), None, None, None).await.unwrap();
        let rows = f.store.list_message_destinations(&f.org, &f.app, &msg.id, &page(50)).await.unwrap();
        let mut got: Vec<&String> = rows.iter().map(|(_, ep)| &ep.id).collect();
        let mut expected = expected;
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{:?}", std::str::from_utf8(msg.payload.as_deref().unwrap()));
    }
}

pub async fn templates_keep_numbered_versions(f: Fixture) {
    let t = now_millis();
    let template = Template {
        org_id: f.org.clone(),
        id: new_id(IdPrefix::Template),
        uid: Some("slack".into()),
        name: "Slack".into(),
        description: String::new(),
        latest_version: 1,
        created_at: t,
        updated_at: t,
    };
    let first = TemplateVersion {
        org_id: f.org.clone(),
        template_id: template.id.clone(),
        version: 1,
        format: "json".into(),
        source: "{}".into(),
        created_at: t,
    };
    f.store.create_template(template.clone(), first, None).await.unwrap();
    assert_eq!(f.store.get_template(&f.org, "slack").await.unwrap().id, template.id);
    let mut twin = template.clone();
    twin.id = new_id(IdPrefix::Template);
    let twin_first = TemplateVersion {
        template_id: twin.id.clone(),
        ..f.store.get_template_version(&f.org, &template.id, None).await.unwrap()
    };
    assert!(matches!(f.store.create_template(twin, twin_first, None).await, Err(StoreError::Conflict { .. })));

    for n in 2..=4u32 {
        let v = f.store.add_template_version(&f.org, &template.id, "text", &format!("v{n}")).await.unwrap();
        assert_eq!(v.version, n);
    }
    assert_eq!(f.store.get_template(&f.org, &template.id).await.unwrap().latest_version, 4);
    assert_eq!(f.store.get_template_version(&f.org, &template.id, None).await.unwrap().source, "v4");
    assert_eq!(f.store.get_template_version(&f.org, &template.id, Some(1)).await.unwrap().source, "{}");
    assert!(matches!(f.store.get_template_version(&f.org, &template.id, Some(9)).await, Err(StoreError::NotFound)));
    let listed = f.store.list_template_versions(&f.org, &template.id, Some(4), 2).await.unwrap();
    assert_eq!(listed.iter().map(|v| v.version).collect::<Vec<_>>(), vec![3, 2]);
    // Another organisation sees nothing of it.
    assert!(matches!(f.store.get_template("org_other", &template.id).await, Err(StoreError::NotFound)));

    // In use by an endpoint, it stays; once no endpoint uses it, it goes with its versions.
    let mut row = f.endpoint_row(None, None);
    row.control.template = Some(TemplatePin { id: template.id.clone(), version: None });
    let ep = f.store.create_endpoint(row, None).await.unwrap();
    match f.store.delete_template(&f.org, &template.id).await {
        Err(StoreError::Conflict { existing_id, .. }) => assert_eq!(existing_id.as_deref(), Some(ep.id.as_str())),
        other => panic!("{other:?}"),
    }
    let unpin = EndpointSettings { template: Some(None), ..Default::default() };
    f.store.update_endpoint(&f.org, &f.app, &ep.id, EndpointChange::Settings(unpin), None).await.unwrap();
    f.store.delete_template(&f.org, &template.id).await.unwrap();
    assert!(matches!(f.store.get_template_version(&f.org, &template.id, Some(1)).await, Err(StoreError::NotFound)));
}

pub async fn an_export_task_keeps_what_it_made(f: Fixture) {
    let t = now_millis();
    let task = BackgroundTask {
        id: new_id(IdPrefix::Task),
        org_id: f.org.clone(),
        app_id: String::new(),
        endpoint_id: String::new(),
        kind: TaskKind::SdkGenerate,
        status: TaskStatus::Finished,
        since: t,
        until: t,
        cursor: None,
        messages_sent: 0,
        error: None,
        created_at: t,
        updated_at: t,
        filter: None,
        result: Some(r#"{"openapi":{"openapi":"3.1.0"}}"#.into()),
    };
    f.store.create_task(task.clone(), None).await.unwrap();
    let got = f.store.get_task(&f.org, &task.id).await.unwrap();
    assert_eq!(got.kind, TaskKind::SdkGenerate);
    assert_eq!(got.status, TaskStatus::Finished);
    assert_eq!(got.result, task.result);
    // Finished, so no node ever claims it.
    let lease = Lease { owner: "n1".into(), duration_ms: 30_000 };
    assert!(f.store.claim_task(&lease).await.unwrap().is_none());
}

pub async fn connectors_round_trip_within_their_organisation(f: Fixture) {
    let t = now_millis();
    let spec = ConnectorSpec {
        name: "Ops Slack".into(),
        kind: "Slack".into(),
        logo: None,
        description: "the ops channel".into(),
        instructions: String::new(),
        allowed_event_types: Some(vec!["order.paid".into()]),
        transformation: "function handler(webhook) { return webhook; }".into(),
        feature_flags: None,
        product_type: None,
        transformation_updated_at: t,
        preset: Some("slack".into()),
    };
    let c = Connector {
        org_id: f.org.clone(),
        id: new_id(IdPrefix::Connector),
        uid: Some("ops".into()),
        spec: spec.clone(),
        created_at: t,
        updated_at: t,
    };
    f.store.create_connector(c.clone(), None).await.unwrap();
    assert_eq!(f.store.get_connector(&f.org, &c.id).await.unwrap(), c);
    assert_eq!(f.store.get_connector(&f.org, "ops").await.unwrap().id, c.id);
    assert!(matches!(f.store.get_connector("org_other", &c.id).await, Err(StoreError::NotFound)));
    let twin = Connector { id: new_id(IdPrefix::Connector), ..c.clone() };
    assert!(matches!(f.store.create_connector(twin, None).await, Err(StoreError::Conflict { .. })));

    let changed = Connector { spec: ConnectorSpec { name: "Slack".into(), ..spec }, updated_at: t + 1, ..c.clone() };
    f.store.update_connector(changed.clone()).await.unwrap();
    assert_eq!(f.store.get_connector(&f.org, "ops").await.unwrap(), changed);
    assert_eq!(f.store.list_connectors(&f.org, &page(10)).await.unwrap(), vec![changed]);
    assert!(f.store.list_connectors("org_other", &page(10)).await.unwrap().is_empty());
    assert!(matches!(f.store.delete_connector("org_other", &c.id).await, Err(StoreError::NotFound)));
    f.store.delete_connector(&f.org, &c.id).await.unwrap();
    assert!(matches!(f.store.get_connector(&f.org, &c.id).await, Err(StoreError::NotFound)));
}
