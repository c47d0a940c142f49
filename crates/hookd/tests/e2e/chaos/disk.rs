//! The embedded store's disk fills up under load: writes are answered 503
//! with `Retry-After` (never a 2xx that was not stored), nothing acknowledged
//! before is lost, and hookd carries on by itself once there is room again.

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::harness::{drained_after, node, settle, setup, ChaosSink, Load};
use super::{size, Report};
use crate::support::TestServer;

/// A temp dir with a small tmpfs mounted on it, unmounted when dropped.
struct SmallDisk(Arc<tempfile::TempDir>);

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(SmallDisk(dir))
    }

    /// Writes a file until the disk is full; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let path = self.0.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 256 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // Whatever smaller room is left, too.
        while f.write_all(&chunk[..4096]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_hookd_recovers_when_space_returns() {
    let Some(disk) = SmallDisk::mount(64) else { return };
    let sink = ChaosSink::start(1).await;
    let opts = node(None, &sink, 0, "2s", &[]);
    let server = TestServer::spawn_in(disk.0.clone(), opts).await;
    let (app, paths) = setup(&server, &sink, 2).await;
    let load = Load::start(vec![server.base.clone()], &app, size(8, 16), 20.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let filler = disk.fill();
    let full_for = Duration::from_secs(size(4, 20));
    tokio::time::sleep(full_for).await;
    let during = load.client.lock().unwrap().statuses.get(&503).copied().unwrap_or(0);
    std::fs::remove_file(&filler).unwrap();
    let healed = Instant::now();
    // Acknowledgements resume by themselves.
    let before = load.acked_count();
    let resumed =
        server.eventually(Duration::from_secs(30), || async { (load.acked_count() > before + 20).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &paths, paths.last().map(String::as_str), Duration::from_secs(30)).await;
    let report = Report {
        scenario: "disk full: the embedded store's disk filled under load",
        store: "sqlite",
        tally: &tally,
        client: &client,
        recovery: drained_after(healed, &acked, &sink.arrivals(), &paths),
        fenced: None,
        notes: format!("64 MiB tmpfs filled for {} s; {during} answers 503 while full", full_for.as_secs()),
    };
    report.publish();
    report.assert_held();
    assert!(during > 0, "writes were refused while the disk was full");
    assert!(resumed.is_some(), "messages are acknowledged again once there is room");
}
