//! A backend's node definitions (`/object_info`): the largest answer ComfyUI gives (1.35 MB and
//! half a second on 0.26), and needed by every validation. So they are
//!
//! - fetched once at a time: every call that needs them while a fetch runs shares it;
//! - kept in memory for [`TTL`], and dropped when we know they changed (an upload);
//! - kept on disk per backend URL, so a new process (MCP clients start one per session) has them
//!   at once; a copy from disk is revalidated in the background a little after start (not at once:
//!   serving `/object_info` costs ComfyUI CPU that the first job needs) and is never trusted to
//!   reject a request: a graph that fails against it is checked again against a fresh fetch.
//!
//! They are parsed from the text ComfyUI sent, in its order (the inputs of a V3 dynamic combo's
//! options are laid out in it, and UI -> API conversion follows that layout), and the disk copy is
//! that text. Each fetch also asks `/system_stats` for the server's version, which decides the
//! checks it makes (V3 combo values from 0.4 on, see [`validation_options`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use comfy_api::{ClientError, ComfyClient};
use comfy_workflow::{ObjectInfo, ValidationOptions};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

/// How long fetched definitions are trusted before being fetched again (model lists change).
pub const TTL: Duration = Duration::from_secs(300);
/// How long after start a disk copy is revalidated in the background, when no validation failure
/// has refetched it before: late enough not to slow the session's first job.
pub const REVALIDATE_DISK_COPY_AFTER: Duration = Duration::from_secs(20);

/// What one fetch brings: the definitions, and the version of the ComfyUI that sent them when
/// `/system_stats` answered.
type Fetched = (Arc<ObjectInfo>, Option<String>);

/// One fetch that every caller arriving while it runs shares.
type Fetch = Shared<BoxFuture<'static, Result<Fetched, Arc<ClientError>>>>;

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
    /// The backend's ComfyUI version (`system.comfyui_version`), once known: from the last fetch
    /// or status that had it, else from the disk copy.
    comfyui_version: RwLock<Option<String>>,
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
            comfyui_version: RwLock::new(None),
        }
    }

    /// The backend's ComfyUI version, when a fetch, a status or the disk copy told it.
    pub fn comfyui_version(&self) -> Option<String> {
        self.comfyui_version.read().ok()?.clone()
    }

    /// Records the version ComfyUI reported (`/system_stats` answered someone).
    pub fn note_comfyui_version(&self, version: &str) {
        if let Ok(mut guard) = self.comfyui_version.write()
            && guard.as_deref() != Some(version)
        {
            *guard = Some(version.to_owned());
        }
    }

    /// How to validate for this backend: the checks its version makes.
    pub fn validation_options(&self) -> ValidationOptions {
        validation_options(self.comfyui_version().as_deref())
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
        let (info, version) = result?;
        if let Some(version) = &version {
            self.note_comfyui_version(version);
        }
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
            // The version costs one small request beside the largest one, once per fetch.
            let (text, stats) = tokio::join!(client.object_info_text(), client.system_stats());
            let text = text.map_err(Arc::new)?;
            let version = stats.ok().map(|stats| stats.system.comfyui_version);
            let decode_failed = |message: String| {
                Arc::new(ClientError::Decode {
                    url: format!("{}/object_info", client.base_url().trim_end_matches('/')),
                    message,
                })
            };
            let (parsed, text) = tokio::task::spawn_blocking(move || (parse(&text), text))
                .await
                .map_err(|error| decode_failed(error.to_string()))?;
            let info = parsed.map_err(decode_failed)?;
            if let Some(path) = disk {
                save(path, text, version.clone()).await;
            }
            Ok((Arc::new(info), version))
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
        let Some((info, version)) = loaded else {
            return false;
        };
        if let Some(version) = version
            && let Ok(mut guard) = self.comfyui_version.write()
            && guard.is_none()
        {
            *guard = Some(version);
        }
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

/// Whether a ComfyUI of this version checks V3 `COMBO` values against their options when a
/// prompt is queued: 0.26 does, 0.3.75 does not, and the rule is any version from 0.4 on (a
/// leading `v` and a suffix after the numbers, as in `0.27.0-rc1`, are allowed). An unknown or
/// unreadable version does not: a check ComfyUI skips would refuse graphs it runs.
pub fn checks_v3_combos(comfyui_version: &str) -> bool {
    let mut parts = comfyui_version.trim().trim_start_matches('v').split('.');
    let mut number = || -> Option<u64> {
        let digits: String = parts.next()?.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number(), number()) {
        (Some(major), Some(minor)) => (major, minor) >= (0, 4),
        _ => false,
    }
}

/// How to validate a prompt for a ComfyUI of this version (`None`: unknown, validated as 0.3.75):
/// from 0.4 on, V3 combo values are checked and a missing node class is `missing_node_type`.
pub fn validation_options(comfyui_version: Option<&str>) -> ValidationOptions {
    let current = comfyui_version.is_some_and(checks_v3_combos);
    ValidationOptions {
        check_v3_combos: current,
        missing_node_type: current,
        ..ValidationOptions::default()
    }
}

/// Parses an `/object_info` document from its text, keeping the server's order. It must be a JSON
/// object (of node classes).
fn parse(text: &str) -> Result<ObjectInfo, String> {
    if !text.trim_start().starts_with('{') {
        return Err(format!(
            "not a JSON object of node classes; body starts with {:?}",
            text.chars().take(80).collect::<String>()
        ));
    }
    ObjectInfo::from_json_text(text).map_err(|error| error.to_string())
}

/// The file beside a copy that holds the version of the ComfyUI that sent it.
fn version_file(path: &Path) -> PathBuf {
    path.with_extension("version")
}

fn read_copy(path: &Path) -> Option<(ObjectInfo, Option<String>)> {
    let text = fs_err::read_to_string(path).ok()?;
    let info = parse(&text).ok()?;
    let version = fs_err::read_to_string(version_file(path))
        .ok()
        .map(|version| version.trim().to_owned())
        .filter(|version| !version.is_empty());
    Some((info, version))
}

/// Writes the copy (the text ComfyUI sent) and its version through temporary files and renames,
/// so a reader never sees half of one; a failure only costs the next process its head start.
async fn save(path: PathBuf, text: String, version: Option<String>) {
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(directory) = path.parent() {
            fs_err::create_dir_all(directory)?;
        }
        let write = |path: &Path, bytes: &[u8]| -> std::io::Result<()> {
            let temporary = path.with_extension(format!("{}.partial", uuid::Uuid::new_v4().simple()));
            fs_err::write(&temporary, bytes)?;
            fs_err::rename(&temporary, path).inspect_err(|_| {
                let _ = fs_err::remove_file(&temporary);
            })
        };
        // A version left beside another copy by a failed write only lasts until the first fetch:
        // a disk copy never refuses a request on its own.
        let versioned = version_file(&path);
        match &version {
            Some(version) => write(&versioned, version.as_bytes())?,
            None => {
                let _ = fs_err::remove_file(&versioned);
            }
        }
        write(&path, text.as_bytes())
    })
    .await;
    if let Ok(Err(error)) = written {
        tracing::debug!(%error, "node definitions not cached on disk");
    }
}

/// One backend's node definitions and version, fetched once.
pub struct FetchedOnce {
    pub info: ObjectInfo,
    /// `system.comfyui_version`, when `/system_stats` answered.
    pub comfyui_version: Option<String>,
}

impl FetchedOnce {
    /// How to validate for this backend: the checks its version makes.
    pub fn validation_options(&self) -> ValidationOptions {
        validation_options(self.comfyui_version.as_deref())
    }
}

/// One backend's node definitions fetched once (in the server's order, with its version), without
/// starting an engine (the CLI's `convert`/`validate`/`params` need nothing else: no database, no
/// websocket).
pub async fn fetch_once(backend: &crate::BackendSettings) -> Result<FetchedOnce, crate::EngineError> {
    let failed = |source| crate::EngineError::Backend {
        backend: format!("{} ({})", backend.name, backend.url),
        source,
    };
    let options = comfy_api::ClientOptions {
        headers: backend.headers.clone(),
        ..comfy_api::ClientOptions::default()
    };
    let client = ComfyClient::new(&backend.url, options).map_err(failed)?;
    let (text, stats) = tokio::join!(client.object_info_text(), client.system_stats());
    let text = text.map_err(failed)?;
    let url = format!("{}/object_info", client.base_url().trim_end_matches('/'));
    let info = tokio::task::spawn_blocking(move || parse(&text))
        .await
        .map_err(|error| error.to_string())
        .and_then(|parsed| parsed)
        .map_err(|message| failed(ClientError::Decode { url, message }))?;
    Ok(FetchedOnce {
        info,
        comfyui_version: stats.ok().map(|stats| stats.system.comfyui_version),
    })
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
        let raw = r#"{"KSampler": {"input": {"required": {}}, "output": ["LATENT"]}}"#;
        let path = definitions.disk.clone().unwrap();
        save(path.clone(), raw.to_owned(), Some("0.26.0".to_owned())).await;
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            raw,
            "the copy is the text as sent"
        );
        assert!(definitions.load_from_disk().await);
        assert!(!definitions.load_from_disk().await, "read once per process");
        assert!(definitions.current().is_some());
        assert_eq!(definitions.age(), Some(Duration::MAX));
        assert_eq!(definitions.comfyui_version().as_deref(), Some("0.26.0"));
        assert!(definitions.validation_options().check_v3_combos);
        definitions.forget();
        assert!(definitions.current().is_none());
        std::fs::remove_dir_all(&directory).ok();
    }

    #[test]
    fn v3_combos_are_checked_from_comfyui_0_4_on() {
        for version in ["0.26.0", "0.4.0", "v0.27.1", "1.0.0", "0.26.0-rc1", " 0.26 "] {
            assert!(checks_v3_combos(version), "{version}");
        }
        for version in ["0.3.75", "0.3.0", "0.2.7", "", "unknown", "0", "x.26"] {
            assert!(!checks_v3_combos(version), "{version}");
        }
        let current = validation_options(Some("0.26.0"));
        assert!(current.check_v3_combos && current.missing_node_type);
        let older = validation_options(Some("0.3.75"));
        assert!(!older.check_v3_combos && !older.missing_node_type);
        assert!(!validation_options(None).check_v3_combos);
    }

    #[test]
    fn definitions_keep_the_servers_order_inside_dynamic_combos() {
        // `z` before `a` in the option's inputs: a parsed `Value` would sort them.
        let text = r#"{"Node": {"input": {"required": {"mode": ["COMFY_DYNAMICCOMBO_V3", {"options": [
            {"key": "one", "inputs": {"required": {"z": ["INT", {}], "a": ["INT", {}]}}}]}]}},
            "output": [], "output_node": true, "display_name": null}}"#;
        let info = parse(text).unwrap();
        let node = info.node("Node").unwrap();
        let comfy_workflow::object_info::InputKind::DynamicCombo(options) = &node.inputs[0].kind else {
            panic!("a dynamic combo: {:?}", node.inputs[0]);
        };
        let names: Vec<&str> = options[0]
            .inputs
            .iter()
            .map(|input| input.name.as_str())
            .collect();
        assert_eq!(names, ["mode.z", "mode.a"]);
        assert_eq!(
            node.display_name, "Node",
            "a null display name falls back to the class"
        );
        assert!(parse("[]").is_err());
        assert!(parse("<html>").is_err());
        assert!(parse(r#"{"a": "#).is_err());
    }
}
