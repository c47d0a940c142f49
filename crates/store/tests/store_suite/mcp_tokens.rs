//! MCP tokens: an application's and the dashboard's, found by hash, listed by
//! owner, revoked, and gone with their application.

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_store::*;

use crate::fixture::{ids, page, Fixture};

fn token(f: &Fixture, hash: &str, app_id: Option<&str>, read_only: bool) -> McpToken {
    let now = now_millis();
    McpToken {
        id: new_id(IdPrefix::McpToken),
        org_id: f.org.clone(),
        app_id: app_id.map(String::from),
        token_hash: hash.into(),
        tail: format!("{hash}-tail"),
        read_only,
        created_at: now,
        expires_at: now + 60_000,
    }
}

pub async fn mcp_tokens_belong_to_an_application_or_the_dashboard(f: Fixture) {
    let app = token(&f, "app", Some(&f.app), false);
    let app_ro = token(&f, "app-ro", Some(&f.app), true);
    let dash = token(&f, "dash", None, false);
    for t in [&app, &app_ro, &dash] {
        f.store.insert_mcp_token(t.clone()).await.unwrap();
    }
    let got = f.store.mcp_token_by_hash("app-ro").await.unwrap().unwrap();
    assert_eq!(
        (got.id.as_str(), got.org_id.as_str(), got.app_id.as_deref()),
        (app_ro.id.as_str(), f.org.as_str(), Some(f.app.as_str()))
    );
    assert_eq!(
        (got.read_only, got.tail.as_str(), got.created_at, got.expires_at),
        (true, "app-ro-tail", app_ro.created_at, app_ro.expires_at)
    );
    assert!(f.store.mcp_token_by_hash("unknown").await.unwrap().is_none());
    assert!(f.store.token_by_hash("app").await.unwrap().is_none(), "not an API token");

    // Each owner lists its own, in id order; API token lists show none.
    let of_app = f.store.list_mcp_tokens(&f.org, Some(&f.app), &page(10)).await.unwrap();
    assert_eq!(ids(&of_app, |t| &t.id), [app.id.clone(), app_ro.id.clone()]);
    let of_dashboard = f.store.list_mcp_tokens(&f.org, None, &page(10)).await.unwrap();
    assert_eq!(ids(&of_dashboard, |t| &t.id), vec![dash.id.clone()]);
    assert!(f.store.list_mcp_tokens("org_other", None, &page(10)).await.unwrap().is_empty());
    assert!(f.store.list_tokens(Some(&f.org), &page(10)).await.unwrap().is_empty());

    // Revoking takes the owner into account: the dashboard cannot revoke an
    // application's token, nor another organisation anything.
    let wrong_owner = f.store.delete_mcp_token(&f.org, None, &app.id).await;
    assert!(matches!(wrong_owner, Err(StoreError::NotFound)), "{wrong_owner:?}");
    let wrong_org = f.store.delete_mcp_token("org_other", Some(&f.app), &app.id).await;
    assert!(matches!(wrong_org, Err(StoreError::NotFound)), "{wrong_org:?}");
    f.store.delete_mcp_token(&f.org, Some(&f.app), &app.id).await.unwrap();
    assert!(f.store.mcp_token_by_hash("app").await.unwrap().is_none());
    f.store.delete_mcp_token(&f.org, None, &dash.id).await.unwrap();
    assert!(f.store.list_mcp_tokens(&f.org, None, &page(10)).await.unwrap().is_empty());

    // An application's tokens go with it.
    f.store.delete_app(&f.org, &f.app).await.unwrap();
    assert!(f.store.mcp_token_by_hash("app-ro").await.unwrap().is_none());
}
