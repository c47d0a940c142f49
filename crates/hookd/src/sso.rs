//! The server's part of the console's single sign-on
//! ([`hookd_console::oidc`]): sealing the sign-in state with the encryption
//! key, making each session's short-lived API token in the store, recording
//! sign-ins and sign-outs in the audit trail, and ending tokens at sign-out.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::bail;
use hookd_api::auth::hash_token;
use hookd_api::AppState;
use hookd_console::oidc::{Grant, Role, SessionError, SsoServer, TOKEN_NAME_PREFIX};
use hookd_core::timefmt::now_millis;
use hookd_store::crypt::Keyring;
use hookd_store::{AuditEvent, StoreError, TokenRole};

/// Single sign-on over this server's store and keyring.
pub struct StoreSessions {
    state: AppState,
    keyring: Arc<Keyring>,
}

impl StoreSessions {
    /// Needs the encryption keyring: the sign-in state a browser holds is
    /// sealed with it, so every node (given the same key) can finish a sign-in.
    pub fn new(state: AppState) -> anyhow::Result<StoreSessions> {
        let Some(keyring) = hookd_store::crypt::keyring() else {
            bail!(
                "single sign-on seals its sign-in state with the encryption key: give --encryption-key \
                 (hookd encryption generate-key), the same on every node"
            );
        };
        Ok(StoreSessions { state, keyring })
    }

    /// Warns of mappings to organisations that do not exist (yet): signing in
    /// through them is refused until they do.
    pub async fn check_mappings(&self, mappings: &[hookd_console::oidc::Mapping]) {
        for m in mappings {
            let org = self.org_id(&m.org);
            if let Err(StoreError::NotFound) = self.state.resources.get_org(&org).await {
                tracing::warn!(group = %m.group, org = %m.org, "--oidc-map names an organisation that does not exist");
            }
        }
    }

    /// `default` is the server's default organisation.
    fn org_id(&self, mapped: &str) -> String {
        if mapped == "default" {
            self.state.org_id.clone()
        } else {
            mapped.to_string()
        }
    }

    async fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.state.resources.append_audit(vec![event]).await {
            tracing::error!(error = %e, "recording an audit entry failed");
        }
    }
}

#[async_trait::async_trait]
impl SsoServer for StoreSessions {
    fn seal(&self, plain: &str, context: &str) -> String {
        self.keyring.seal(plain, context)
    }

    fn open(&self, sealed: &str, context: &str) -> Option<String> {
        // The keyring reads an unsealed value as it is (data from before
        // encryption); a browser's cookie must be sealed, or it was forged.
        if !sealed.starts_with("enc1:") {
            return None;
        }
        self.keyring.open(sealed, context).ok()
    }

    async fn start_session(&self, grant: &Grant, address: Option<IpAddr>) -> Result<String, SessionError> {
        let org_id = self.org_id(&grant.org);
        let unavailable = |e: StoreError| {
            tracing::error!(error = %e, "single sign-on could not start a session");
            SessionError::Unavailable
        };
        match self.state.resources.get_org(&org_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => return Err(SessionError::UnknownOrg),
            Err(e) => return Err(unavailable(e)),
        }
        let role = match grant.role {
            Role::Admin => TokenRole::Admin,
            Role::ReadOnly => TokenRole::ReadOnly,
        };
        let (token, mut row) = hookd_api::v1::management::new_token(&org_id, role, Some(grant.token_name()));
        row.expires_at = Some(row.created_at + grant.ttl.as_millis() as i64);
        let token_id = row.id.clone();
        self.state.resources.insert_token(row).await.map_err(unavailable)?;
        // Who signed in is the actor; the changes the session makes are then
        // recorded under its token's id, which this entry names.
        self.audit(AuditEvent {
            org_id: org_id.clone(),
            at: now_millis(),
            actor: format!("sso:{}", grant.who),
            action: format!("console.sso-sign-in ({})", grant.role.as_str()),
            target: format!("/api/v1/management/authentication/{org_id}/api-token/{token_id}"),
            status: 0,
            address: address.map(|a| a.to_string()),
        })
        .await;
        Ok(token)
    }

    async fn end_session(&self, token: &str, address: Option<IpAddr>) {
        let mut row = match self.state.resources.token_by_hash(&hash_token(token)).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "single sign-on could not end a session's token");
                return;
            }
        };
        let made_by_sso = row.name.as_deref().is_some_and(|n| n.starts_with(TOKEN_NAME_PREFIX))
            && matches!(row.role, TokenRole::Admin | TokenRole::ReadOnly);
        let now = now_millis();
        if !made_by_sso || row.expires_at.is_some_and(|e| e <= now) {
            return;
        }
        row.expires_at = Some(now);
        let (org_id, token_id) = (row.org_id.clone(), row.id.clone());
        if let Err(e) = self.state.resources.update_token(row).await {
            tracing::error!(error = %e, "single sign-on could not end a session's token");
            return;
        }
        // This node stops accepting it at once; others within their token cache's 10 s.
        self.state.tokens.clear();
        self.audit(AuditEvent {
            org_id: org_id.clone(),
            at: now,
            actor: token_id.clone(),
            action: "console.sso-sign-out".into(),
            target: format!("/api/v1/management/authentication/{org_id}/api-token/{token_id}"),
            status: 0,
            address: address.map(|a| a.to_string()),
        })
        .await;
    }
}
