//! PostgreSQL for the tests: a fresh database on the shared server named by
//! `HOOKD_TEST_DATABASE_URL`, or a private server (initdb + pg_ctl on a temp dir
//! and port) for tests that stop and restart it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared server's URL, or `None` (the caller prints that it skips).
pub fn shared_url() -> Option<String> {
    match std::env::var("HOOKD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must set HOOKD_TEST_DATABASE_URL");
            eprintln!("skipped: HOOKD_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// A database of its own on the shared server, dropped when this is dropped.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create(admin_url: &str) -> TestDatabase {
        let name = format!("hookd_e2e_{}", rand::random::<u64>());
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        TestDatabase { admin_url: admin_url.to_string(), name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.admin_url, "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A PostgreSQL server of the test's own, which it may stop and start.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    /// `None` when the server binaries are not installed (outside CI).
    pub fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists());
        let Some(bin) = bin else {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI needs PostgreSQL's server binaries");
            eprintln!("skipped: PostgreSQL server binaries not found under /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // initdb refuses to run as root: run the server as `postgres`.
        run("chown", &["-R", "postgres", dir.path().to_str().unwrap()]);
        as_postgres(&bin.join("initdb"), &["-D", &data(dir.path()), "-A", "trust", "-U", "postgres", "--no-sync"]);
        let pg = PrivatePostgres { dir, bin, port };
        pg.up();
        Some(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn up(&self) {
        let opts =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.path().display());
        let log = format!("{}/log", self.dir.path().display());
        as_postgres(&self.bin.join("pg_ctl"), &["-D", &data(self.dir.path()), "-o", &opts, "-l", &log, "-w", "start"]);
    }

    pub fn down(&self) {
        as_postgres(&self.bin.join("pg_ctl"), &["-D", &data(self.dir.path()), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data(self.dir.path()), "-m", "immediate", "stop"])
            .output();
    }
}

fn data(dir: &Path) -> String {
    format!("{}/data", dir.display())
}

fn as_postgres(program: &Path, args: &[&str]) {
    let out = Command::new("runuser").args(["-u", "postgres", "--"]).arg(program).args(args).output().expect("runuser");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(program: &str, args: &[&str]) {
    assert!(Command::new(program).args(args).status().expect(program).success(), "{program} {args:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
