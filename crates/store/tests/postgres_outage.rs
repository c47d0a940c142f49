//! The PostgreSQL store through a database outage: while the server is down,
//! calls fail fast with `Unavailable` (the API's 503); once it is back, the pool
//! and the `LISTEN` connection recover by themselves.
//!
//! It stops the server, so it runs one of its own (`initdb` and `pg_ctl` from
//! `/usr/lib/postgresql/*/bin`, as the `postgres` user when run as root) and
//! disturbs no other test. Without those binaries it is skipped, or fails in CI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_core::Secret;
use hookd_store::postgres::PostgresStore;
use hookd_store::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_answers_unavailable_while_the_database_is_down_and_recovers_by_itself() {
    let Some(server) = PrivateServer::start() else { return };
    let node: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url()).await.unwrap());
    let other: Arc<dyn Store> = Arc::new(PostgresStore::connect(&server.url()).await.unwrap());
    let (org, app) = app_with_endpoint(&*node).await;
    node.ping().await.unwrap();
    // Let the listeners' "connected" wake-ups pass.
    node.wait_for_work(Duration::from_millis(500)).await;

    tokio::task::block_in_place(|| server.stop());
    let start = Instant::now();
    let down = node.ping().await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    let down = node.list_apps(&org, &Page { limit: 10, iterator: None, backwards: false, descending: false }).await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    let down = node.enqueue(message(&org, &app), None, None, None).await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    assert!(start.elapsed() < Duration::from_secs(15), "three calls took {:?}", start.elapsed());

    tokio::task::block_in_place(|| server.start_again());
    // Stale pooled connections are checked before use: the first call succeeds.
    node.ping().await.unwrap();
    other.ping().await.unwrap();
    // The listener reconnects and says so (notifications sent meanwhile are lost).
    let start = Instant::now();
    node.wait_for_work(Duration::from_secs(20)).await;
    assert!(start.elapsed() < Duration::from_secs(15), "the listener did not come back");
    // Work committed by another node wakes this one again.
    let waiting = tokio::spawn({
        let node = node.clone();
        async move {
            let start = Instant::now();
            node.wait_for_work(Duration::from_secs(30)).await;
            start.elapsed()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.enqueue(message(&org, &app), None, None, None).await.unwrap();
    let waited = waiting.await.unwrap();
    assert!(waited < Duration::from_secs(10), "woken after {waited:?}");
    assert_eq!(node.pending_count().await.unwrap(), 1);
}

async fn app_with_endpoint(store: &dyn Store) -> (String, String) {
    let org = store.default_org().await.unwrap();
    let t = now_millis();
    let app = store
        .create_app(
            Application {
                org_id: org.clone(),
                id: new_id(IdPrefix::Application),
                uid: None,
                name: "Acme".into(),
                rate_limit: None,
                metadata: Default::default(),
                created_at: t,
                updated_at: t,
            },
            None,
        )
        .await
        .unwrap();
    store
        .create_endpoint(
            Endpoint {
                org_id: org.clone(),
                app_id: app.id.clone(),
                id: new_id(IdPrefix::Endpoint),
                uid: None,
                url: "https://example.com/hook".into(),
                description: String::new(),
                version: 1,
                disabled: false,
                event_types: None,
                channels: None,
                rate_limit: None,
                metadata: Default::default(),
                headers: Default::default(),
                secret: Secret::generate(),
                retired_secrets: Vec::new(),
                created_at: t,
                updated_at: t,
                revision: 0,
                control: Default::default(),
                auth: Default::default(),
                health: None,
            },
            None,
        )
        .await
        .unwrap();
    (org, app.id)
}

fn message(org: &str, app: &str) -> Message {
    Message {
        org_id: org.into(),
        app_id: app.into(),
        id: new_id(IdPrefix::Message),
        event_id: None,
        event_type: "a".into(),
        channels: None,
        tags: None,
        payload: Some(Arc::from(&b"{}"[..])),
        created_at: now_millis(),
        expires_at: now_millis() + 60_000,
        deliver_at: None,
    }
}

/// A throwaway PostgreSQL server on a free loopback port, stopped and deleted on drop.
struct PrivateServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PrivateServer {
    /// `None` (the test is skipped) when the server binaries are missing.
    fn start() -> Option<PrivateServer> {
        let Some(bin) = server_bin() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("the PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are missing in CI");
            }
            println!("skipped: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin");
            return None;
        };
        // initdb refuses to run as root: run the server as `postgres` then.
        let as_postgres = run_output("id", &["-u"]).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            run("chown", &["postgres:", path(dir.path())]);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = PrivateServer { bin, dir, port, as_postgres };
        server.pg("initdb", &["-D", path(&server.data()), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        server.start_again();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start_again(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, path(self.dir.path()));
        let log = self.dir.path().join("server.log");
        self.pg("pg_ctl", &["-D", path(&self.data()), "-l", path(&log), "-o", &options, "-w", "start"]);
    }

    fn stop(&self) {
        self.pg("pg_ctl", &["-D", path(&self.data()), "-m", "fast", "-w", "stop"]);
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        if self.as_postgres {
            let mut all = vec!["-u", "postgres", "--", path(&tool)];
            all.extend_from_slice(args);
            run("runuser", &all);
        } else {
            run(path(&tool), args);
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data();
        let tool = self.bin.join("pg_ctl");
        let args = ["-D", path(&data), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--", path(&tool)]).args(args).output()
        } else {
            Command::new(&tool).args(args).output()
        };
    }
}

/// The newest installed server's `bin` directory.
fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
