//! hookd's verifier against the shared Standard Webhooks vectors
//! (conformance/vectors.json, made by conformance/generate.py without hookd).
//!
//! Every vector runs: `v1` ones with `Secret`, `v1a` ones both with `PublicKey`
//! (what a receiver holds) and with the `whsk_` `Secret` (which verifies its own
//! signatures). Each must give the vector's expected verdict, or the one its
//! `deviations` record for "hookd". All mismatches are reported together.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hookd_core::signing::{PublicKey, Secret, SigningError, TIMESTAMP_TOLERANCE_SECS};
use serde::Deserialize;

const VECTORS: &str = include_str!("../../../conformance/vectors.json");
/// This runner's name in a vector's `deviations`.
const RUNNER: &str = "hookd";

#[derive(Deserialize)]
struct VectorFile {
    tolerance_seconds: i64,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    name: String,
    version: String,
    secret: String,
    public_key: Option<String>,
    id: String,
    timestamp: String,
    body: String,
    body_base64: Option<String>,
    signature: String,
    now: i64,
    expected: Verdict,
    reason: String,
    #[serde(default)]
    deviations: HashMap<String, Deviation>,
}

#[derive(Deserialize)]
struct Deviation {
    verdict: Verdict,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Valid,
    Invalid,
}

impl From<Result<(), SigningError>> for Verdict {
    fn from(outcome: Result<(), SigningError>) -> Self {
        match outcome {
            Ok(()) => Verdict::Valid,
            Err(_) => Verdict::Invalid,
        }
    }
}

impl Vector {
    fn body(&self) -> Vec<u8> {
        match &self.body_base64 {
            Some(b64) => B64.decode(b64).unwrap_or_else(|e| panic!("{}: bodyBase64: {e}", self.name)),
            None => self.body.as_bytes().to_vec(),
        }
    }

    fn verdict_for_hookd(&self) -> Verdict {
        self.deviations.get(RUNNER).map_or(self.expected, |d| d.verdict)
    }

    /// The verifiers this vector runs through, each with its verdict.
    fn verdicts(&self) -> Vec<(&'static str, Verdict)> {
        let body = self.body();
        let with_secret = Secret::parse(&self.secret)
            .and_then(|s| s.verify(&self.id, &self.timestamp, &self.signature, &body, self.now))
            .into();
        match self.version.as_str() {
            "v1" => vec![("secret", with_secret)],
            "v1a" => {
                let public_key = self.public_key.as_deref().unwrap_or_else(|| panic!("{}: no publicKey", self.name));
                let with_public_key = PublicKey::parse(public_key)
                    .and_then(|k| k.verify(&self.id, &self.timestamp, &self.signature, &body, self.now))
                    .into();
                vec![("public key", with_public_key), ("secret key", with_secret)]
            }
            other => panic!("{}: unknown version {other:?}", self.name),
        }
    }
}

fn vectors() -> VectorFile {
    serde_json::from_str(VECTORS).expect("conformance/vectors.json parses")
}

#[test]
fn every_vector_gets_its_expected_verdict() {
    let file = vectors();
    let mut mismatches = Vec::new();
    for vector in &file.vectors {
        let expected = vector.verdict_for_hookd();
        for (verifier, verdict) in vector.verdicts() {
            if verdict != expected {
                mismatches.push(format!(
                    "{} ({verifier}): got {verdict:?}, expected {expected:?}: {}",
                    vector.name, vector.reason
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches over {} vectors:\n{}",
        mismatches.len(),
        file.vectors.len(),
        mismatches.join("\n")
    );
}

#[test]
fn the_vectors_use_hookds_tolerance() {
    assert_eq!(vectors().tolerance_seconds, TIMESTAMP_TOLERANCE_SECS);
}

#[test]
fn the_vectors_cover_both_versions_both_ways() {
    let file = vectors();
    for version in ["v1", "v1a"] {
        for verdict in [Verdict::Valid, Verdict::Invalid] {
            let count = file.vectors.iter().filter(|v| v.version == version && v.expected == verdict).count();
            assert!(count >= 5, "only {count} {version} vectors expect {verdict:?}");
        }
    }
}
