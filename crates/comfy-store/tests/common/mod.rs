//! Helpers shared by the integration tests: a fresh temporary directory per test, removed afterwards.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use comfy_store::{Store, StoreOptions};

/// A unique directory under the system temporary directory, deleted on drop.
pub struct TempDirectory {
    path: PathBuf,
}

impl TempDirectory {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "comfy-store-{label}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            comfy_store::now_ms()
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDirectory { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn database(&self) -> PathBuf {
        self.path.join("store.sqlite3")
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A store in a fresh directory; keep the directory alive as long as the store.
pub async fn open_store(label: &str) -> (TempDirectory, Store) {
    let directory = TempDirectory::new(label);
    let store = Store::open(StoreOptions::new(directory.database()))
        .await
        .expect("open store");
    (directory, store)
}
