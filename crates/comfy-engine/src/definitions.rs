//! A backend's node definitions (`/object_info`): the largest answer ComfyUI gives (1.35 MB and
//! half a second on 0.26), and needed by every validation. So they are
//!
//! - fetched once at a time: every call that needs them while a fetch runs shares it;
//! - kept in memory for [`TTL`], and dropped when we know they changed (an upload);
//! - kept on disk per backend URL, so a new process (MCP clients start one per session) has them
//!   at once; a copy from disk is revalidated in the background a little after start (not at once:
//!   serving `/object_info` costs ComfyUI CPU that the first job needs) and is never trusted to
//!   reject a request: a graph that fails against it is checked again against a fresh fetch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use comfy_api::{ClientError, ComfyClient};
use comfy_workflow::ObjectInfo;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::Value;

/// How long fetched definitions are trusted before being fetched again (model lists change).
pub const TTL: Duration = Duration::from_secs(300);
/// How long after start a disk copy is revalidated in the background, when no validation failure
/// has refetched it before: late enough not to slow the session's first job.
pub const REVALIDATE_DISK_COPY_AFTER: Duration = Duration::from_secs(20);

/// One fetch that every caller arriving while it runs shares.
type Fetch = Shared<BoxFuture<'static, Result<Arc<ObjectInfo>, Arc<ClientError>>>>;

#[derive(Clone)]
struct Cached {
    info: Arc<ObjectInfo>,
    /// When ComfyUI sent them; `None` for a copy read from disk, which is never trusted to refuse.
    fetched: Option<Instant>,
}

/// The definitions of one backend: memory, the fetch in flight, and the disk copy.
pub struct Definitions {
    cached: RwLock<Option<Cached>>,
    /// The fetch in flight, with the epoch it started in.
    fetching: Mutex<Option<(u64, Fetch)>>,
    /// Bumped when the definitions are known to have changed: a fetch that started before is
    /// neither joined nor kept.
    epoch: AtomicU64,
    /// Where this backend's copy lives on disk, when there is a cache directory.
    disk: Option<PathBuf>,
    /// Set once the disk copy has been read (or found missing): it is read once per process.
    disk_read: tokio::sync::OnceCell<()>,
}

impl Definitions {
    /// Definitions for the backend at `url`, with their disk copy under `cache_directory`.
    pub fn new(url: &str, cache_directory: Option<&Path>) -> Self {
        let disk = cache_directory.map(|directory| disk_file(url, directory));
        Definitions {
            cached: RwLock::new(None),
            fetching: Mutex::new(None),
            epoch: AtomicU64::new(0),
            disk,
            disk_read: tokio::sync::OnceCell::new(),
        }
    }

    /// The definitions in memory, if fetched within [`TTL`] or read from disk and not yet replaced.
    pub fn current(&self) -> Option<Arc<ObjectInfo>> {
        let cached = self.cached.read().ok()?.clone()?;
        match cached.fetched {
            Some(fetched) if fetched.elapsed() >= TTL => None,
            _ => Some(cached.info),
        }
    }

    /// How old the definitions in memory are; [`Duration::MAX`] for a disk copy not yet revalidated.
    pub fn age(&self) -> Option<Duration> {
        let guard = self.cached.read().ok()?;
        let cached = guard.as_ref()?;
        Some(cached.fetched.map_or(Duration::MAX, |fetched| fetched.elapsed()))
    }

    /// Forgets the definitions after a change they list (an upload adds a LoadImage choice).
    pub fn forget(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut guard) = self.cached.write() {
            *guard = None;
        }
    }

    /// Fetches them from ComfyUI, joining the fetch in flight if there is one, for at most
    /// `limit`; `Ok(None)` when the limit passed first (the fetch goes on for whoever asks next).
    pub async fn fetch(
        &self,
        client: &ComfyClient,
        limit: Duration,
    ) -> Result<Option<Arc<ObjectInfo>>, Arc<ClientError>> {
        let (epoch, fetch) = self.join(client);
        let Ok(result) = tokio::time::timeout(limit, fetch.clone()).await else {
            return Ok(None);
        };
        if let Ok(mut slot) = self.fetching.lock()
            && slot.as_ref().is_some_and(|(_, current)| current.ptr_eq(&fetch))
        {
            *slot = None;
        }
        let info = result?;
        if let Ok(mut guard) = self.cached.write()
            && self.epoch.load(Ordering::SeqCst) == epoch
        {
            *guard = Some(Cached {
                info: info.clone(),
                fetched: Some(Instant::now()),
            });
        }
        Ok(Some(info))
    }

    fn join(&self, client: &ComfyClient) -> (u64, Fetch) {
        let mut slot = self
            .fetching
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some((started, fetch)) = slot.as_ref()
            && *started == epoch
        {
            return (epoch, fetch.clone());
        }
        let client = client.clone();
        let disk = self.disk.clone();
        let fetch = async move {
            let raw = client.object_info().await.map_err(Arc::new)?;
            let (info, raw) = tokio::task::spawn_blocking(move || (ObjectInfo::from_json(&raw), raw))
                .await
                .map_err(|error| {
                    Arc::new(ClientError::Decode {
                        url: client.base_url().to_owned(),
                        message: error.to_string(),
                    })
                })?;
            if let Some(path) = disk {
                save(path, raw).await;
            }
            Ok(Arc::new(info))
        }
        .boxed()
        .shared();
        *slot = Some((epoch, fetch.clone()));
        (epoch, fetch)
    }

    /// Puts the disk copy in memory unless something fresher is there, once per process; callers
    /// that arrive while it is read wait for it. Whether this call put one there.
    pub async fn load_from_disk(&self) -> bool {
        let mut loaded = false;
        self.disk_read
            .get_or_init(|| async { loaded = self.read_disk_copy().await })
            .await;
        loaded
    }

    async fn read_disk_copy(&self) -> bool {
        let Some(path) = self.disk.clone() else {
            return false;
        };
        let epoch = self.epoch.load(Ordering::SeqCst);
        let loaded = tokio::task::spawn_blocking(move || read_copy(&path))
            .await
            .ok()
            .flatten();
        let Some(info) = loaded else {
            return false;
        };
        match self.cached.write() {
            Ok(mut guard) if guard.is_none() && self.epoch.load(Ordering::SeqCst) == epoch => {
                *guard = Some(Cached {
                    info: Arc::new(info),
                    fetched: None,
                });
                true
            }
            _ => false,
        }
    }
}

/// Where the copy of the backend at `url` lives under `directory`.
pub fn disk_file(url: &str, directory: &Path) -> PathBuf {
    directory.join("definitions").join(disk_name(url))
}

/// The file name of a backend's copy: a digest of its URL, so each backend has its own and no
/// URL (with whatever it holds) is written into a file name.
fn disk_name(url: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(url.trim_end_matches('/').as_bytes());
    let hex: String = digest.iter().take(12).map(|byte| format!("{byte:02x}")).collect();
    format!("object_info-{hex}.json")
}

fn read_copy(path: &Path) -> Option<ObjectInfo> {
    let bytes = std::fs::read(path).ok()?;
    let raw: Value = serde_json::from_slice(&bytes).ok()?;
    raw.is_object().then(|| ObjectInfo::from_json(&raw))
}

/// Writes the copy through a temporary file and a rename, so a reader never sees half of one;
/// a failure only costs the next process its head start.
async fn save(path: PathBuf, raw: Value) {
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(directory) = path.parent() {
            std::fs::create_dir_all(directory)?;
        }
        let temporary = path.with_extension(format!("{}.partial", uuid::Uuid::new_v4().simple()));
        std::fs::write(&temporary, serde_json::to_vec(&raw).unwrap_or_default())?;
        std::fs::rename(&temporary, &path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    })
    .await;
    if let Ok(Err(error)) = written {
        tracing::debug!(%error, "node definitions not cached on disk");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_backend_has_its_own_file_without_its_url_in_the_name() {
        let first = disk_name("http://127.0.0.1:8188");
        assert_eq!(first, disk_name("http://127.0.0.1:8188/"));
        assert_ne!(first, disk_name("http://127.0.0.1:8189"));
        assert!(!first.contains("127"), "{first}");
    }

    #[tokio::test]
    async fn a_disk_copy_is_served_but_never_counts_as_fresh() {
        let directory =
            std::env::temp_dir().join(format!("comfyui-mcp-definitions-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&directory).unwrap();
        let definitions = Definitions::new("http://127.0.0.1:1", Some(&directory));
        let raw = serde_json::json!({"KSampler": {"input": {"required": {}}, "output": ["LATENT"]}});
        save(definitions.disk.clone().unwrap(), raw).await;
        assert!(definitions.load_from_disk().await);
        assert!(!definitions.load_from_disk().await, "read once per process");
        assert!(definitions.current().is_some());
        assert_eq!(definitions.age(), Some(Duration::MAX));
        definitions.forget();
        assert!(definitions.current().is_none());
        std::fs::remove_dir_all(&directory).ok();
    }
}

/// One backend's node definitions fetched once, without starting an engine (the CLI's
/// `convert`/`validate`/`params` need nothing else: no database, no websocket).
pub async fn fetch_once(backend: &crate::BackendSettings) -> Result<ObjectInfo, crate::EngineError> {
    let failed = |source| crate::EngineError::Backend {
        backend: format!("{} ({})", backend.name, backend.url),
        source,
    };
    let options = comfy_api::ClientOptions {
        headers: backend.headers.clone(),
        ..comfy_api::ClientOptions::default()
    };
    let client = ComfyClient::new(&backend.url, options).map_err(failed)?;
    let raw = client.object_info().await.map_err(failed)?;
    Ok(ObjectInfo::from_json(&raw))
}
