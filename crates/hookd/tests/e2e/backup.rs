//! Backup and restore, as docs/operations.md describes them: `hookd backup`
//! (the embedded store, taken under load) and `pg_dump`/`pg_restore`
//! (PostgreSQL). After a restore every message acknowledged before the backup
//! began is there, and endpoint secrets still unseal (same signatures).

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::mgmt::{secret_of, text};
use crate::postgres::{shared_url, TestDatabase};
use crate::support::{verify_standard_webhook, ServerOptions, Sink, TestServer};

/// Sends messages until told to stop, recording each acknowledged id.
fn keep_sending(
    server: &TestServer,
    app: &str,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<Mutex<bool>>,
) -> tokio::task::JoinHandle<()> {
    let (client, url, token) =
        (server.client.clone(), server.url(&format!("/api/v1/app/{app}/msg")), server.token.clone());
    tokio::spawn(async move {
        let mut n = 0;
        while !*stop.lock().unwrap() {
            n += 1;
            let resp = client
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"eventType": "a.b", "payload": {"n": n}}))
                .send()
                .await;
            if let Ok(r) = resp {
                if r.status().as_u16() == 202 {
                    let body: serde_json::Value = r.json().await.unwrap();
                    acked.lock().unwrap().push(text(&body["id"]));
                }
            }
        }
    })
}

/// `hookd backup` of `data_dir` into `to`.
fn backup(data_dir: &std::path::Path, to: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("backup")
        .arg("--to")
        .arg(to)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

async fn all_present(server: &TestServer, app: &str, ids: &[String]) {
    for id in ids {
        let (status, msg) = server.get(&format!("/api/v1/app/{app}/msg/{id}")).await;
        assert_eq!(status, 200, "acknowledged message {id} is missing after the restore: {msg}");
    }
}

#[tokio::test]
async fn an_embedded_backup_taken_under_load_restores_every_acknowledged_message() {
    let mut server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Backed up").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/in")})).await["id"]);
    let secret = secret_of(&server, &app, &ep).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(Mutex::new(false));
    let load = keep_sending(&server, &app, acked.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Everything acknowledged so far must be in the backup.
    let before: Vec<String> = acked.lock().unwrap().clone();
    let to = tempfile::tempdir().unwrap();
    let backup_dir = to.path().join("backup");
    let out = backup(server.data_dir.path(), &backup_dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("hookd.db") && said.contains("encryption.key"), "{said}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    *stop.lock().unwrap() = true;
    load.await.unwrap();
    server.kill9();
    assert!(before.len() >= 10, "the load ran: {}", before.len());

    // A second backup into the same place is refused.
    let again = backup(server.data_dir.path(), &backup_dir);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    // Restored into a fresh data dir.
    let restored_dir = Arc::new(tempfile::tempdir().unwrap());
    for f in ["hookd.db", "encryption.key"] {
        std::fs::copy(backup_dir.join(f), restored_dir.path().join(f)).unwrap();
    }
    let restored = TestServer::spawn_in(restored_dir, ServerOptions::default()).await;
    all_present(&restored, &app, &before).await;
    // The endpoint's secret unseals with the restored key: new messages are signed with it.
    let n = sink.count();
    restored.send_message(&app, "after.restore", json!({})).await;
    let got = sink.wait_for(n + 1, Duration::from_secs(15)).await;
    let last = got.last().cloned().unwrap();
    assert!(verify_standard_webhook(&secret, &last), "signed with the endpoint's secret as before");
}

#[tokio::test]
async fn a_postgres_dump_restores_every_acknowledged_message() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let made = Command::new(env!("CARGO_BIN_EXE_hookd")).args(["encryption", "generate-key"]).output().unwrap();
    let key = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let opts = ServerOptions {
        extra_args: vec!["--database-url".into(), db.url.clone(), "--encryption-key".into(), key.clone()],
        ..Default::default()
    };
    let mut server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    let app = server.create_app("Dumped").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/in")})).await["id"]);
    let secret = secret_of(&server, &app, &ep).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(Mutex::new(false));
    let load = keep_sending(&server, &app, acked.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    let dump = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--file"])
        .arg(dump.path())
        .arg(&db.url)
        .output()
        .expect("pg_dump");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    *stop.lock().unwrap() = true;
    load.await.unwrap();
    server.kill9();

    let restored_db = TestDatabase::create(&admin);
    let out = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname", &restored_db.url])
        .arg(dump.path())
        .output()
        .expect("pg_restore");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let opts = ServerOptions {
        extra_args: vec!["--database-url".into(), restored_db.url.clone(), "--encryption-key".into(), key],
        ..Default::default()
    };
    let restored = TestServer::spawn_with(opts).await;
    assert!(before.len() >= 10, "the load ran: {}", before.len());
    all_present(&restored, &app, &before).await;
    let n = sink.count();
    restored.send_message(&app, "after.restore", json!({})).await;
    let got = sink.wait_for(n + 1, Duration::from_secs(15)).await;
    assert!(verify_standard_webhook(&secret, got.last().unwrap()));
}
