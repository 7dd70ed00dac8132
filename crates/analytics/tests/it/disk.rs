//! The embedded store on a full disk (a tmpfs of 512 KiB, mounted by the test: it runs
//! as root, as CI does, and fails loudly otherwise): a failed write is never counted
//! stored, nothing answered is lost, and everything is written once the disk has room.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use analytics::core::catalog::EventData;
use analytics::core::memory::MemoryCounters;
use analytics::core::store::Stores;
use analytics::core::time::Calendar;
use analytics::embedded::EmbeddedStore;
use analytics::tracker::{TrackError, Tracker, TrackerConfig};

/// A tmpfs of `size` at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(dir.to_owned())
    }

    fn grow(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the last SQLite connections may still be closing.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Rows in the file, read by a connection of its own.
async fn rows(url: &str) -> i64 {
    let store = EmbeddedStore::open(url, Calendar::default()).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM analytics_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    store.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_nothing_and_counts_nothing_it_did_not_store() {
    let dir = std::env::temp_dir().join(format!("analytics-full-{}", uuid_like()));
    let disk = Tmpfs::mount(&dir, "512k");
    let url = format!("sqlite://{}?mode=rwc", dir.join("analytics.db").display());
    let store = Arc::new(
        EmbeddedStore::open(&url, Calendar::default())
            .await
            .unwrap(),
    );
    let tracker = Tracker::start(
        TrackerConfig {
            batch_size: 200,
            flush_interval: Duration::from_millis(20),
            retry_initial: Duration::from_millis(10),
            retry_max: Duration::from_millis(100),
            store_timeout: Duration::from_secs(2),
            ..TrackerConfig::default()
        },
        Stores {
            events: store.clone(),
            stats: store.clone(),
            counters: Arc::new(MemoryCounters::new()),
            spill: None,
        },
    );
    let note = "x".repeat(120);
    let mut tracked = 0;
    for i in 0..20_000 {
        let event = EventData::SessionStart {
            session_id: format!("s-{i}"),
            customer_id: Some(note.clone()),
            channel: None,
            user_agent: None,
        };
        match tracker.track(event) {
            Ok(_) => tracked += 1,
            Err(TrackError::BufferFull) => break,
            Err(error) => panic!("{error}"),
        }
        if i % 1_000 == 999 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The disk is full: a flush cannot see everything stored.
    assert!(matches!(
        tracker.flush_within(Duration::from_secs(2)).await,
        Err(TrackError::NotStoredInTime(_))
    ));
    let t = tracker.telemetry();
    assert!(t.retries > 0, "the store failed: {t:?}");
    // `/readyz` says why (it reads this).
    let why = tracker.store_error().expect("the store error is known");
    assert!(why.contains("full"), "{why}");
    assert_eq!(
        t.stored as i64,
        rows(&url).await,
        "stored means in the file: {t:?}"
    );

    // Room again: everything answered is written.
    disk.grow("64m");
    tracker.flush_within(Duration::from_secs(30)).await.unwrap();
    assert_eq!(tracker.store_error(), None);
    assert_eq!(rows(&url).await, tracked);
    assert_eq!(tracker.telemetry().stored as i64, tracked);
    assert!(tracker.stop(Duration::from_secs(10)).await.clean);
    store.close().await;
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    )
}
