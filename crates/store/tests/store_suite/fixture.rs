//! What every case starts from: a store of the backend under test, its default
//! organisation and one application, and helpers that build rows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_core::Secret;
use hookd_store::postgres::PostgresStore;
use hookd_store::sqlite::SqliteStore;
use hookd_store::*;

pub const DATABASE_URL_VAR: &str = "HOOKD_TEST_DATABASE_URL";

pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub org: String,
    pub app: String,
    backend: Backend,
}

enum Backend {
    /// The store's directory, kept until the fixture is dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        url: String,
        schema: String,
    },
}

impl Fixture {
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open_dir(dir.path()).unwrap());
        Fixture::with_store(store, Backend::Sqlite(dir)).await
    }

    /// A store in a fresh schema of the database `HOOKD_TEST_DATABASE_URL` names,
    /// and the schema, to drop once the case is done; `None` when the variable is
    /// unset. In CI (`CI=true`) a missing database fails the test instead.
    pub async fn postgres() -> Option<(Fixture, Schema)> {
        let Ok(url) = std::env::var(DATABASE_URL_VAR) else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{DATABASE_URL_VAR} must name a PostgreSQL database in CI");
            }
            println!("skipped: {DATABASE_URL_VAR} is not set");
            return None;
        };
        let schema = Schema::unique(&url);
        let store = Arc::new(PostgresStore::connect_in_schema(&url, &schema.name).await.unwrap());
        let backend = Backend::Postgres { url, schema: schema.name.clone() };
        Some((Fixture::with_store(store, backend).await, schema))
    }

    async fn with_store(store: Arc<dyn Store>, backend: Backend) -> Fixture {
        let org = store.default_org().await.unwrap();
        let t = now_millis();
        let app = store
            .create_app(
                Application {
                    org_id: org.clone(),
                    id: new_id(IdPrefix::Application),
                    uid: Some("acme".into()),
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
        Fixture { store, org, app: app.id, backend }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// The PostgreSQL database under test, if this is that backend.
    pub fn database_url(&self) -> Option<&str> {
        match &self.backend {
            Backend::Postgres { url, .. } => Some(url),
            Backend::Sqlite(_) => None,
        }
    }

    /// The PostgreSQL schema the case runs in, if this is that backend.
    pub fn schema(&self) -> Option<&str> {
        match &self.backend {
            Backend::Postgres { schema, .. } => Some(schema),
            Backend::Sqlite(_) => None,
        }
    }

    /// A second store on the same database, as another node would open it. The
    /// embedded store admits one process per file, so there it is the same store
    /// (still used by another owner, as a second claim loop would).
    pub async fn another_node(&self) -> Arc<dyn Store> {
        match &self.backend {
            Backend::Sqlite(_) => self.store.clone(),
            Backend::Postgres { url, schema } => Arc::new(PostgresStore::connect_in_schema(url, schema).await.unwrap()),
        }
    }

    pub fn endpoint_row(&self, event_types: Option<Vec<&str>>, channels: Option<Vec<&str>>) -> Endpoint {
        let t = now_millis();
        Endpoint {
            org_id: self.org.clone(),
            app_id: self.app.clone(),
            id: new_id(IdPrefix::Endpoint),
            uid: None,
            url: "https://example.com/hook".into(),
            description: String::new(),
            version: 1,
            disabled: false,
            event_types: event_types.map(|v| v.into_iter().map(String::from).collect()),
            channels: channels.map(|v| v.into_iter().map(String::from).collect()),
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
        }
    }

    pub async fn endpoint(&self, event_types: Option<Vec<&str>>, channels: Option<Vec<&str>>) -> Endpoint {
        self.store.create_endpoint(self.endpoint_row(event_types, channels), None).await.unwrap()
    }

    pub fn message(&self, event_type: &str, event_id: Option<&str>, channels: Option<Vec<&str>>) -> Message {
        Message {
            org_id: self.org.clone(),
            app_id: self.app.clone(),
            id: new_id(IdPrefix::Message),
            event_id: event_id.map(String::from),
            event_type: event_type.into(),
            channels: channels.map(|v| v.into_iter().map(String::from).collect()),
            tags: None,
            payload: Some(Arc::from(&b"{\"a\":1}"[..])),
            created_at: now_millis(),
            expires_at: now_millis() + 86_400_000,
            deliver_at: None,
        }
    }

    /// Creates an unleased message; returns it.
    pub async fn send(&self, event_type: &str) -> Message {
        let msg = self.message(event_type, None, None);
        self.store.enqueue(msg.clone(), None, None, None).await.unwrap();
        msg
    }

    /// The delivery of `msg` to `endpoint_id`, as the lists show it.
    pub async fn delivery(&self, msg_id: &str, endpoint_id: &str) -> Delivery {
        let rows = self.store.list_message_destinations(&self.org, &self.app, msg_id, &page(50)).await.unwrap();
        rows.into_iter().find(|(_, ep)| ep.id == endpoint_id).expect("a delivery to the endpoint").0
    }

    /// An attempt of `msg` to `ep` that got `code` (0: no response).
    pub fn attempt(&self, msg_id: &str, ep: &Endpoint, code: i32) -> Attempt {
        Attempt {
            id: new_id(IdPrefix::Attempt),
            org_id: self.org.clone(),
            app_id: self.app.clone(),
            msg_id: msg_id.into(),
            endpoint_id: ep.id.clone(),
            url: ep.url.clone(),
            status: if (200..300).contains(&code) { MessageStatus::Success } else { MessageStatus::Fail },
            response_status_code: code,
            response: String::new(),
            response_duration_ms: 3,
            trigger: hookd_core::AttemptTrigger::Scheduled,
            created_at: now_millis(),
            headers: None,
            facts: Some(AttemptFacts {
                event_type: "test.event".into(),
                class: if code == 0 { AttemptClass::Timeout } else { AttemptClass::of_status(code as u16) },
                bytes: 100,
                delivered_after_ms: (200..300).contains(&code).then_some(7),
            }),
        }
    }
}

/// Retention that deletes nothing a test made: a day for messages and tasks.
pub const KEEP: Retention = Retention { messages_ms: 86_400_000, tasks_ms: 86_400_000 };

pub fn lease(owner: &str, ms: i64) -> Lease {
    Lease { owner: owner.into(), duration_ms: ms }
}

/// The end of `job`'s lease: `next`, after `attempts` attempts, with `attempt`.
pub fn outcome(job: &DeliveryJob, attempt: Option<Attempt>, next: NextState, attempts: u32) -> Outcome {
    Outcome { delivery_id: job.delivery_id, lease_token: job.lease_token, attempt, next, attempts }
}

pub fn page(limit: usize) -> Page {
    Page { limit, iterator: None, backwards: false, descending: false }
}

pub fn ids<T>(rows: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    rows.iter().map(|r| id(r).to_string()).collect()
}

/// A schema of its own for one test, so tests run in parallel. Dropped with
/// [`Schema::drop_now`] once the case is done, while the test's runtime still runs
/// (sqlx rolls back an abandoned transaction from a spawned task, and `DROP SCHEMA`
/// waits for that); a case that panics leaves it to `Drop`, best effort.
pub struct Schema {
    url: String,
    name: String,
    dropped: bool,
}

impl Schema {
    pub fn unique(url: &str) -> Schema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name =
            format!("hookd_test_{}_{}_{}", now_millis(), std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Schema { url: url.into(), name, dropped: false }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn drop_now(mut self) {
        self.dropped = drop_schema(&self.url, &self.name, "30s").await;
    }
}

async fn drop_schema(url: &str, name: &str, lock_timeout: &str) -> bool {
    use sqlx::Connection;
    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else { return false };
    let sql = format!("SET lock_timeout = '{lock_timeout}'; DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
    sqlx::raw_sql(&sql).execute(&mut conn).await.is_ok()
}

impl Drop for Schema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (url, name) = (self.url.clone(), self.name.clone());
        // This blocks the test's runtime: a lock held by one of its connections
        // would never be released, hence the short lock timeout.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            Some(rt.block_on(drop_schema(&url, &name, "2s")))
        })
        .join();
        if !matches!(dropped, Ok(Some(true))) {
            eprintln!("could not drop test schema {}", self.name);
        }
    }
}
