//! A JWT signed for each request (an endpoint extension), sent as
//! `Authorization: Bearer …` beside the Standard Webhooks signature. It binds
//! itself to the request: `webhook_id` is the message, `body_sha256` the
//! base64url SHA-256 of the body as signed (before any compression), `jti`
//! unique per request, and it lasts `lifetimeSecs`.

use base64::Engine;
use hookd_store::JwtAuth;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

/// The claims hookd sets itself; the configured ones cannot replace them.
pub const RESERVED_CLAIMS: [&str; 7] = ["iat", "exp", "jti", "webhook_id", "body_sha256", "iss", "aud"];

/// The key and algorithm of `config`, or why they cannot sign.
pub fn signing_key(config: &JwtAuth) -> Result<(Algorithm, EncodingKey), String> {
    let der = || {
        base64::engine::general_purpose::STANDARD
            .decode(config.key.trim())
            .map_err(|_| "the key is not base64 (of the private key's DER)".to_string())
    };
    match config.algorithm.as_str() {
        "HS256" => Ok((Algorithm::HS256, EncodingKey::from_secret(config.key.as_bytes()))),
        "RS256" => Ok((Algorithm::RS256, EncodingKey::from_rsa_der(&der()?))),
        "EdDSA" => Ok((Algorithm::EdDSA, EncodingKey::from_ed_der(&der()?))),
        other => Err(format!("`{other}` is not HS256, RS256 or EdDSA")),
    }
}

/// The JWT for one request of message `msg_id` with `body`, at `now_secs`.
pub fn token(config: &JwtAuth, msg_id: &str, body: &[u8], now_secs: u64, nonce: u128) -> Result<String, String> {
    let (alg, key) = signing_key(config)?;
    let mut claims = serde_json::Map::new();
    for (k, v) in &config.claims {
        claims.insert(k.clone(), v.clone());
    }
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(body));
    claims.insert("iat".into(), now_secs.into());
    claims.insert("exp".into(), (now_secs + config.lifetime_secs).into());
    claims.insert("jti".into(), format!("{nonce:032x}").into());
    claims.insert("webhook_id".into(), msg_id.into());
    claims.insert("body_sha256".into(), digest.into());
    if let Some(iss) = &config.issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = &config.audience {
        claims.insert("aud".into(), aud.clone().into());
    }
    let header = Header { kid: config.key_id.clone(), ..Header::new(alg) };
    jsonwebtoken::encode(&header, &serde_json::Value::Object(claims), &key)
        .map_err(|_| format!("the endpoint's {} key cannot sign", config.algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hs256_token_binds_the_message_and_body() {
        let config = JwtAuth {
            algorithm: "HS256".into(),
            key: "k3y".into(),
            key_id: Some("k1".into()),
            issuer: Some("hookd".into()),
            audience: None,
            lifetime_secs: 60,
            claims: [("tenant".to_string(), serde_json::json!("acme")), ("iat".to_string(), serde_json::json!(0))]
                .into_iter()
                .collect(),
        };
        let jwt = token(&config, "msg_1", b"{}", 1_000, 7).unwrap();
        let mut check = jsonwebtoken::Validation::new(Algorithm::HS256);
        check.validate_exp = false;
        check.set_required_spec_claims::<&str>(&[]);
        let got =
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &jsonwebtoken::DecodingKey::from_secret(b"k3y"), &check)
                .unwrap();
        let c = got.claims;
        assert_eq!(
            (c["iat"].clone(), c["exp"].clone(), c["iss"].clone()),
            (1_000.into(), 1_060.into(), "hookd".into())
        );
        assert_eq!((c["webhook_id"].clone(), c["tenant"].clone()), ("msg_1".into(), "acme".into()));
        assert_eq!(c["body_sha256"], "RBNvo1WzZ4oRRq0W9-hknpT7T8If536DEMBg9hyq_4o");
        assert_eq!(got.header.kid.as_deref(), Some("k1"));
        assert!(token(&JwtAuth { algorithm: "none".into(), ..config }, "m", b"", 0, 0).is_err());
    }
}
