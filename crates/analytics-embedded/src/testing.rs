//! A database file of its own per test (feature `testing`), in the system's temporary
//! directory, deleted (with its WAL files) on drop.

use std::path::PathBuf;

use analytics_core::time::Calendar;
use uuid::Uuid;

use crate::EmbeddedStore;

/// An embedded store on a fresh file.
#[derive(Debug)]
pub struct TestEmbedded {
    path: PathBuf,
    store: EmbeddedStore,
}

impl TestEmbedded {
    /// A fresh database for the Asia/Shanghai calendar.
    ///
    /// # Panics
    ///
    /// When the file cannot be created: the test fails and says why.
    pub async fn new() -> TestEmbedded {
        let path =
            std::env::temp_dir().join(format!("analytics-test-{}.db", Uuid::now_v7().simple()));
        let store = EmbeddedStore::open(&TestEmbedded::url_of(&path), Calendar::default())
            .await
            .unwrap_or_else(|error| panic!("cannot open {}: {error:?}", path.display()));
        TestEmbedded { path, store }
    }

    fn url_of(path: &std::path::Path) -> String {
        format!("sqlite://{}", path.display())
    }

    /// The store.
    pub fn store(&self) -> &EmbeddedStore {
        &self.store
    }

    /// The database's `sqlite:` URL, to open it again.
    pub fn url(&self) -> String {
        TestEmbedded::url_of(&self.path)
    }
}

impl Drop for TestEmbedded {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}
