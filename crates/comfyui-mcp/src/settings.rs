//! Configuration: raw inputs (flags > environment > TOML file > defaults) parsed once into a
//! validated [`Settings`] that the rest of the program trusts. Every environment variable is a
//! constant here and documented in the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Environment variables, all documented in the README.
pub mod env {
    /// ComfyUI base URL(s), comma separated (`http://127.0.0.1:8188`).
    pub const COMFYUI_URL: &str = "COMFYUI_URL";
    /// A bearer token sent to every ComfyUI backend (for auth proxies).
    pub const COMFYUI_TOKEN: &str = "COMFYUI_TOKEN";
    /// Path of the TOML configuration file.
    pub const CONFIG: &str = "COMFYUI_MCP_CONFIG";
    /// Toolsets to expose, comma separated, or `all`.
    pub const TOOLSETS: &str = "COMFYUI_MCP_TOOLSETS";
    /// Longest time in seconds a tool call waits for a job before returning its handle.
    pub const WAIT_SECONDS: &str = "COMFYUI_MCP_WAIT_SECONDS";
    /// Largest inline preview, in bytes of base64.
    pub const PREVIEW_BYTES: &str = "COMFYUI_MCP_PREVIEW_BYTES";
    /// Largest file an MCP `resources/read` returns inline, in bytes (larger ones answer with an
    /// error giving the size and the URL).
    pub const MAX_RESOURCE_BYTES: &str = "COMFYUI_MCP_MAX_RESOURCE_BYTES";
    /// `true` lets inputs given by URL come from loopback, private and link-local addresses
    /// (refused by default, so a caller cannot make this server reach the operator's network).
    pub const ALLOW_PRIVATE_URLS: &str = "COMFYUI_MCP_ALLOW_PRIVATE_URLS";
    /// Checkpoint used when a generate call names none.
    pub const DEFAULT_CHECKPOINT: &str = "COMFYUI_MCP_DEFAULT_CHECKPOINT";
    /// The live preview frames every prompt asks ComfyUI for: `latent2rgb` (the default: cheap),
    /// `taesd`, `auto`, `none`, or `comfyui` to leave ComfyUI's own `--preview-method`.
    pub const PREVIEW_METHOD: &str = "COMFYUI_MCP_PREVIEW_METHOD";
    /// ComfyUI's CLIP vocabulary for prompt token counts: its `comfy/sd1_tokenizer` folder (or
    /// the `merges.txt` in it). Unset: prompts are analysed without token counts.
    pub const CLIP_VOCABULARY: &str = "COMFYUI_MCP_CLIP_VOCABULARY";
    /// Bearer token required on the Streamable HTTP endpoint.
    pub const HTTP_TOKEN: &str = "COMFYUI_MCP_HTTP_TOKEN";
    /// Most live MCP sessions on the HTTP endpoint; an `initialize` beyond it gets 503.
    pub const HTTP_MAX_SESSIONS: &str = "COMFYUI_MCP_HTTP_MAX_SESSIONS";
    /// Seconds an HTTP client has to send a request's headers (and an idle connection stays open).
    pub const HTTP_HEADER_TIMEOUT_SECONDS: &str = "COMFYUI_MCP_HTTP_HEADER_TIMEOUT_SECONDS";
    /// Extra allowed browser origins for the HTTP endpoint, comma separated.
    pub const ALLOWED_ORIGINS: &str = "COMFYUI_MCP_ALLOWED_ORIGINS";
    /// Whether tools may read files from this machine's disk (`upload_image` with `path`).
    pub const ALLOW_LOCAL_FILES: &str = "COMFYUI_MCP_ALLOW_LOCAL_FILES";
    /// Only these tools, comma separated (of the enabled toolsets).
    pub const TOOLS: &str = "COMFYUI_MCP_TOOLS";
    /// Tools to leave out, comma separated.
    pub const EXCLUDE_TOOLS: &str = "COMFYUI_MCP_EXCLUDE_TOOLS";
    /// `true` leaves out every tool marked destructive.
    pub const NO_DESTRUCTIVE_TOOLS: &str = "COMFYUI_MCP_NO_DESTRUCTIVE_TOOLS";
    /// `true` starts with only the toolset tools; the client enables toolsets as it needs them.
    pub const DYNAMIC_TOOLSETS: &str = "COMFYUI_MCP_DYNAMIC_TOOLSETS";
    /// Log filter (`info`, `debug`, `comfy_api=debug`...); logs go to stderr.
    pub const LOG: &str = "COMFYUI_MCP_LOG";
    /// Directory for what may be thrown away (each backend's node definitions); empty: none.
    pub const CACHE_DIR: &str = "COMFYUI_MCP_CACHE_DIR";
    /// `1` lets rmcp's debug logs through, whole MCP messages (passwords, access codes) included.
    pub const LOG_PROTOCOL: &str = "COMFYUI_MCP_LOG_PROTOCOL";
    /// Path of the SQLite database (jobs, presets, outputs library, metrics, audit).
    pub const DATABASE: &str = "COMFYUI_MCP_DATABASE";
    /// ComfyUI's output directory on this machine (`PATH`, or `NAME=PATH,...` per backend): lets
    /// retention cleanup delete output files, which ComfyUI's HTTP API cannot.
    pub const OUTPUT_DIR: &str = "COMFYUI_MCP_OUTPUT_DIR";
    /// Directory whose `*.json` workflows each become an MCP tool `workflow_<name>`.
    pub const WORKFLOWS_DIR: &str = "COMFYUI_MCP_WORKFLOWS_DIR";
}

/// Toolsets this build knows (each is one file in `mcp/`).
pub const KNOWN_TOOLSETS: &[&str] = &[
    "core",
    "workflows",
    "templates",
    "library",
    "insights",
    "edit",
    "enhance",
    "analysis",
];

/// A problem in the configuration, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid value {value:?} for {source_name}: {reason}")]
    Invalid {
        source_name: String,
        value: String,
        reason: String,
    },
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    #[serde(default)]
    pub backends: Vec<FileBackend>,
    pub toolsets: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub exclude_tools: Option<Vec<String>>,
    pub no_destructive_tools: Option<bool>,
    pub dynamic_toolsets: Option<bool>,
    pub wait_seconds: Option<f64>,
    pub preview_bytes: Option<usize>,
    pub max_resource_bytes: Option<u64>,
    pub allow_private_urls: Option<bool>,
    pub default_checkpoint: Option<String>,
    pub allow_local_files: Option<bool>,
    pub database: Option<PathBuf>,
    pub workflows_dir: Option<PathBuf>,
    pub http: Option<FileHttp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBackend {
    pub url: String,
    pub name: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// This backend's output directory on this machine, for retention cleanup.
    pub output_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHttp {
    pub token: Option<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// Values given on the command line (each overrides the environment and the file).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct CommandLineSettings {
    /// ComfyUI base URL; repeat for several backends [env: COMFYUI_URL]
    #[arg(long = "comfyui-url", global = true)]
    pub comfyui_urls: Vec<String>,
    /// TOML configuration file [env: COMFYUI_MCP_CONFIG]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Toolsets to expose, comma separated, or `all` [env: COMFYUI_MCP_TOOLSETS]
    #[arg(long, global = true)]
    pub toolsets: Option<String>,
    /// Only these tools, comma separated, from the enabled toolsets [env: COMFYUI_MCP_TOOLS]
    #[arg(long, global = true)]
    pub tools: Option<String>,
    /// Leave these tools out, comma separated [env: COMFYUI_MCP_EXCLUDE_TOOLS]
    #[arg(long, global = true)]
    pub exclude_tools: Option<String>,
    /// Leave out every tool marked destructive [env: COMFYUI_MCP_NO_DESTRUCTIVE_TOOLS]
    #[arg(long, global = true)]
    pub no_destructive_tools: bool,
    /// Start with only the toolset tools; the client enables toolsets as it needs them
    /// [env: COMFYUI_MCP_DYNAMIC_TOOLSETS]
    #[arg(long, global = true)]
    pub dynamic_toolsets: bool,
    /// Longest wait for a job inside one tool call, in seconds [env: COMFYUI_MCP_WAIT_SECONDS]
    #[arg(long, global = true)]
    pub wait_seconds: Option<f64>,
    /// SQLite database file [env: COMFYUI_MCP_DATABASE; default: the platform data directory]
    #[arg(long, global = true)]
    pub database: Option<PathBuf>,
    /// Directory of saved workflows, each exposed as a tool `workflow_<name>` [env: COMFYUI_MCP_WORKFLOWS_DIR]
    #[arg(long, global = true)]
    pub workflows_dir: Option<PathBuf>,
}

pub use comfy_engine::{BackendSettings, EngineConfig};

/// The validated configuration.
#[derive(Clone)]
pub struct Settings {
    /// What the engine's services need: backends, waits, paths.
    pub engine: EngineConfig,
    pub toolsets: Vec<String>,
    /// Only these tools (of the enabled toolsets); `None`: all of them.
    pub tools: Option<Vec<String>>,
    /// Tools left out.
    pub exclude_tools: Vec<String>,
    /// Whether tools marked destructive are left out.
    pub no_destructive_tools: bool,
    /// Whether toolsets are enabled at run time by the client (`enable_toolset`).
    pub dynamic_toolsets: bool,
    pub allow_local_files: Option<bool>,
    pub http_token: Option<String>,
    pub allowed_origins: Vec<String>,
    /// Most live MCP sessions on the HTTP endpoint.
    pub http_max_sessions: usize,
    /// Time an HTTP client has to send a request's headers.
    pub http_header_timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Settings")
            .field("engine", &self.engine)
            .field("toolsets", &self.toolsets)
            .field("tools", &self.tools)
            .field("exclude_tools", &self.exclude_tools)
            .field("no_destructive_tools", &self.no_destructive_tools)
            .field("dynamic_toolsets", &self.dynamic_toolsets)
            .field("allow_local_files", &self.allow_local_files)
            .field("http_token", &self.http_token.as_ref().map(|_| "<redacted>"))
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// The URL used when nothing is configured: ComfyUI's default port.
pub const DEFAULT_COMFYUI_URL: &str = "http://127.0.0.1:8188";
const DEFAULT_WAIT_SECONDS: f64 = 45.0;
const DEFAULT_PREVIEW_BYTES: usize = 700_000;
const DEFAULT_MAX_RESOURCE_BYTES: u64 = 16 * 1024 * 1024;

impl Settings {
    /// Reads the environment and the configuration file and applies the command line on top.
    pub fn load(command_line: &CommandLineSettings) -> Result<Settings, SettingsError> {
        Self::resolve(command_line, &|name| {
            // A blank HTTP token is kept for `resolve` to refuse: read as unset, it would turn
            // authentication off without a word.
            std::env::var(name)
                .ok()
                .filter(|value| name == env::HTTP_TOKEN || !value.trim().is_empty())
        })
    }

    /// [`Settings::load`] with an injected environment, for tests.
    pub fn resolve(
        command_line: &CommandLineSettings,
        environment: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let config_path = command_line
            .config
            .clone()
            .or_else(|| environment(env::CONFIG).map(PathBuf::from))
            .or_else(default_config_path);
        let explicit_config = command_line.config.is_some() || environment(env::CONFIG).is_some();
        let file = match config_path {
            Some(path) if explicit_config || path.exists() => read_file(&path)?,
            _ => FileSettings::default(),
        };

        let token_header = environment(env::COMFYUI_TOKEN)
            .map(|token| ("Authorization".to_owned(), format!("Bearer {token}")));
        let urls: Vec<String> = if !command_line.comfyui_urls.is_empty() {
            command_line.comfyui_urls.clone()
        } else if let Some(urls) = environment(env::COMFYUI_URL) {
            split_list(&urls)
        } else {
            Vec::new()
        };
        let mut backends: Vec<BackendSettings> = if urls.is_empty() {
            file.backends
                .iter()
                .enumerate()
                .map(|(index, backend)| BackendSettings {
                    name: backend
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("backend-{}", index + 1)),
                    url: backend.url.clone(),
                    headers: backend
                        .headers
                        .iter()
                        .map(|(name, value)| (name.clone(), value.clone()))
                        .collect(),
                    output_dir: backend.output_dir.clone(),
                })
                .collect()
        } else {
            urls.iter()
                .enumerate()
                .map(|(index, url)| BackendSettings {
                    name: format!("backend-{}", index + 1),
                    url: url.clone(),
                    headers: Vec::new(),
                    output_dir: None,
                })
                .collect()
        };
        if backends.is_empty() {
            backends.push(BackendSettings {
                name: "local".to_owned(),
                url: DEFAULT_COMFYUI_URL.to_owned(),
                headers: Vec::new(),
                output_dir: None,
            });
        }
        for backend in &mut backends {
            let mut url = url::Url::parse(&backend.url).map_err(|error| SettingsError::Invalid {
                source_name: format!("backend {}", backend.name),
                value: without_credentials(&backend.url),
                reason: error.to_string(),
            })?;
            if move_credentials_to_header(&mut url, &mut backend.headers) {
                backend.url = url.to_string().trim_end_matches('/').to_owned();
            }
            if !matches!(url.scheme(), "http" | "https") {
                return Err(SettingsError::Invalid {
                    source_name: format!("backend {}", backend.name),
                    value: backend.url.clone(),
                    reason: "use an http:// or https:// URL".to_owned(),
                });
            }
            if let Some(header) = &token_header
                && !backend
                    .headers
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            {
                backend.headers.push(header.clone());
            }
        }

        if let Some(raw) = environment(env::OUTPUT_DIR) {
            apply_output_directories(&mut backends, &raw)?;
        }

        let toolsets_raw = command_line
            .toolsets
            .clone()
            .map(|value| (value, "--toolsets".to_owned()))
            .or_else(|| environment(env::TOOLSETS).map(|value| (value, env::TOOLSETS.to_owned())))
            .map(|(value, source_name)| (split_list(&value), source_name, value))
            .or_else(|| {
                file.toolsets
                    .clone()
                    .map(|list| (list.clone(), "toolsets".to_owned(), list.join(",")))
            });
        let toolsets = match toolsets_raw {
            None => vec!["core".to_owned()],
            Some((list, source_name, raw)) => {
                if list.iter().any(|name| name == "all") {
                    KNOWN_TOOLSETS.iter().map(|name| (*name).to_owned()).collect()
                } else {
                    for name in &list {
                        if !KNOWN_TOOLSETS.contains(&name.as_str()) {
                            return Err(SettingsError::Invalid {
                                source_name,
                                value: raw,
                                reason: format!(
                                    "unknown toolset {name:?}; known: {}, all",
                                    KNOWN_TOOLSETS.join(", ")
                                ),
                            });
                        }
                    }
                    list
                }
            }
        };

        let wait_seconds = match command_line.wait_seconds {
            Some(value) => value,
            None => match environment(env::WAIT_SECONDS) {
                Some(raw) => parse_number(&raw, env::WAIT_SECONDS)?,
                None => file.wait_seconds.unwrap_or(DEFAULT_WAIT_SECONDS),
            },
        };
        if !(0.0..=86_400.0).contains(&wait_seconds) {
            return Err(SettingsError::Invalid {
                source_name: "wait seconds".to_owned(),
                value: wait_seconds.to_string(),
                reason: "must be between 0 and 86400".to_owned(),
            });
        }
        let preview_bytes = match environment(env::PREVIEW_BYTES) {
            Some(raw) => parse_number::<usize>(&raw, env::PREVIEW_BYTES)?,
            None => file.preview_bytes.unwrap_or(DEFAULT_PREVIEW_BYTES),
        };
        if preview_bytes < 1024 {
            return Err(SettingsError::Invalid {
                source_name: env::PREVIEW_BYTES.to_owned(),
                value: preview_bytes.to_string(),
                reason: "must be at least 1024".to_owned(),
            });
        }
        let resource_bytes = match environment(env::MAX_RESOURCE_BYTES) {
            Some(raw) => parse_number::<u64>(&raw, env::MAX_RESOURCE_BYTES)?,
            None => file.max_resource_bytes.unwrap_or(DEFAULT_MAX_RESOURCE_BYTES),
        };
        if !(1024..=1 << 30).contains(&resource_bytes) {
            return Err(SettingsError::Invalid {
                source_name: env::MAX_RESOURCE_BYTES.to_owned(),
                value: resource_bytes.to_string(),
                reason: "must be between 1024 and 1073741824 (1 GiB)".to_owned(),
            });
        }
        let allow_private_urls = match environment(env::ALLOW_PRIVATE_URLS) {
            Some(raw) => parse_bool(&raw, env::ALLOW_PRIVATE_URLS)?,
            None => file.allow_private_urls.unwrap_or(false),
        };
        let preview_method = preview_method(environment(env::PREVIEW_METHOD))?;
        let allow_local_files = match environment(env::ALLOW_LOCAL_FILES) {
            Some(raw) => Some(parse_bool(&raw, env::ALLOW_LOCAL_FILES)?),
            None => file.allow_local_files,
        };
        let http = file.http.unwrap_or_default();
        let mut allowed_origins = http.allowed_origins;
        if let Some(raw) = environment(env::ALLOWED_ORIGINS) {
            allowed_origins.extend(split_list(&raw));
        }
        let workflows_dir = command_line
            .workflows_dir
            .clone()
            .map(|path| (path, "--workflows-dir".to_owned()))
            .or_else(|| {
                environment(env::WORKFLOWS_DIR)
                    .map(|path| (PathBuf::from(path), env::WORKFLOWS_DIR.to_owned()))
            })
            .or_else(|| {
                file.workflows_dir
                    .clone()
                    .map(|path| (path, "workflows_dir".to_owned()))
            });
        if let Some((path, source_name)) = &workflows_dir
            && !path.is_dir()
        {
            return Err(SettingsError::Invalid {
                source_name: source_name.clone(),
                value: path.display().to_string(),
                reason: "not a directory".to_owned(),
            });
        }
        let (http_max_sessions, http_header_timeout) = http_limits(environment)?;
        Ok(Settings {
            engine: EngineConfig {
                backends,
                wait: Duration::from_secs_f64(wait_seconds),
                preview_bytes,
                resource_bytes,
                allow_private_urls,
                default_checkpoint: environment(env::DEFAULT_CHECKPOINT).or(file.default_checkpoint),
                database: command_line
                    .database
                    .clone()
                    .or_else(|| environment(env::DATABASE).map(PathBuf::from))
                    .or(file.database),
                workflows_dir: workflows_dir.map(|(path, _)| path),
                cache_dir: cache_directory(environment),
                preview_method,
                clip_vocabulary: environment(env::CLIP_VOCABULARY).map(PathBuf::from),
            },
            toolsets,
            tools: command_line
                .tools
                .as_deref()
                .map(split_list)
                .or_else(|| environment(env::TOOLS).map(|value| split_list(&value)))
                .or(file.tools),
            exclude_tools: command_line
                .exclude_tools
                .as_deref()
                .map(split_list)
                .or_else(|| environment(env::EXCLUDE_TOOLS).map(|value| split_list(&value)))
                .or(file.exclude_tools)
                .unwrap_or_default(),
            no_destructive_tools: flag(
                command_line.no_destructive_tools,
                environment(env::NO_DESTRUCTIVE_TOOLS),
                file.no_destructive_tools,
                env::NO_DESTRUCTIVE_TOOLS,
            )?,
            dynamic_toolsets: flag(
                command_line.dynamic_toolsets,
                environment(env::DYNAMIC_TOOLSETS),
                file.dynamic_toolsets,
                env::DYNAMIC_TOOLSETS,
            )?,
            allow_local_files,
            http_token: http_token(environment(env::HTTP_TOKEN), http.token)?,
            allowed_origins,
            http_max_sessions,
            http_header_timeout,
        })
    }

    pub fn toolset_enabled(&self, name: &str) -> bool {
        self.toolsets.iter().any(|toolset| toolset == name)
    }
}

/// The HTTP bearer token, the environment's over the file's. Surrounding whitespace is trimmed, not
/// refused: HTTP strips it from header values (and `serve` trims the presented credentials), so a
/// token that kept it could never match, and it is mostly a newline from a secrets file. A token
/// that is empty or blank is refused: taken as "no token", it would turn authentication off.
fn http_token(
    from_environment: Option<String>,
    from_file: Option<String>,
) -> Result<Option<String>, SettingsError> {
    let (raw, source_name) = match (from_environment, from_file) {
        (Some(raw), _) => (raw, env::HTTP_TOKEN),
        (None, Some(raw)) => (raw, "[http] token"),
        (None, None) => return Ok(None),
    };
    let token = raw.trim();
    if token.is_empty() {
        return Err(SettingsError::Invalid {
            source_name: source_name.to_owned(),
            value: raw.clone(),
            reason: "blank, which would turn authentication off: set a token or drop the setting".to_owned(),
        });
    }
    Ok(Some(token.to_owned()))
}

/// Live MCP sessions at most, unless [`env::HTTP_MAX_SESSIONS`] says otherwise. A session costs
/// about 55 KB, so the default bounds them near 55 MB. Idle sessions still expire after rmcp's
/// 5 minutes: shorter would cut off clients that think between tool calls.
pub const DEFAULT_MAX_SESSIONS: usize = 1_000;
/// Time a client has to send a request's headers, unless [`env::HTTP_HEADER_TIMEOUT_SECONDS`] says
/// otherwise. Hyper also applies it to an idle keep-alive connection waiting for its next request.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The HTTP session cap and header timeout from the environment (blank values count as unset).
fn http_limits(environment: &dyn Fn(&str) -> Option<String>) -> Result<(usize, Duration), SettingsError> {
    let read = |name: &str| environment(name).filter(|value| !value.trim().is_empty());
    let max_sessions = match read(env::HTTP_MAX_SESSIONS) {
        Some(raw) => parse_limit(&raw, env::HTTP_MAX_SESSIONS, "at least 1", |value: usize| {
            value >= 1
        })?,
        None => DEFAULT_MAX_SESSIONS,
    };
    let header_timeout = match read(env::HTTP_HEADER_TIMEOUT_SECONDS) {
        Some(raw) => Duration::from_secs_f64(parse_limit(
            &raw,
            env::HTTP_HEADER_TIMEOUT_SECONDS,
            "between 0.1 and 3600",
            |value: f64| (0.1..=3600.0).contains(&value),
        )?),
        None => DEFAULT_HEADER_TIMEOUT,
    };
    Ok((max_sessions, header_timeout))
}

fn parse_limit<T: std::str::FromStr + Copy>(
    raw: &str,
    source_name: &str,
    range: &str,
    acceptable: impl Fn(T) -> bool,
) -> Result<T, SettingsError> {
    let reason = match raw.trim().parse::<T>() {
        Ok(value) if acceptable(value) => return Ok(value),
        Ok(_) => format!("must be {range}"),
        Err(_) => "not a number".to_owned(),
    };
    Err(SettingsError::Invalid {
        source_name: source_name.to_owned(),
        value: raw.to_owned(),
        reason,
    })
}

/// A switch: set on the command line, else `true`/`false` (or 1/0, yes/no) in the environment, else
/// the file's value, else off.
fn flag(
    command_line: bool,
    environment: Option<String>,
    file: Option<bool>,
    name: &str,
) -> Result<bool, SettingsError> {
    if command_line {
        return Ok(true);
    }
    match environment.as_deref().map(str::trim) {
        None => Ok(file.unwrap_or(false)),
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(SettingsError::Invalid {
                source_name: name.to_owned(),
                value: value.to_owned(),
                reason: "use true or false".to_owned(),
            }),
        },
    }
}

/// `COMFYUI_MCP_CACHE_DIR`, where an empty value turns the disk copy of definitions off.
fn cache_directory(environment: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match environment(env::CACHE_DIR) {
        Some(path) if path.trim().is_empty() => None,
        Some(path) => Some(PathBuf::from(path)),
        None => default_cache_directory(),
    }
}

/// The platform's cache directory for this program: `$XDG_CACHE_HOME/comfyui-mcp` (or
/// `~/.cache/comfyui-mcp`), `~/Library/Caches/comfyui-mcp` on macOS, `%LOCALAPPDATA%\comfyui-mcp`
/// on Windows.
pub fn default_cache_directory() -> Option<PathBuf> {
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let base = if cfg!(target_os = "windows") {
        absolute("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        absolute("HOME").map(|home| home.join("Library").join("Caches"))
    } else {
        absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|home| home.join(".cache")))
    }?;
    Some(base.join("comfyui-mcp"))
}

/// `$XDG_CONFIG_HOME/comfyui-mcp/config.toml` (or `~/.config/...`).
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("comfyui-mcp").join("config.toml"))
}

/// A URL as it may be shown: `user:password@` cut out (also from text that does not parse).
fn without_credentials(raw: &str) -> String {
    match raw.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://<credentials>@{}", &rest[at + 1..]),
                None => raw.to_owned(),
            }
        }
        None => raw.to_owned(),
    }
}

/// Credentials written into a backend URL (`http://user:pass@host`) become an `Authorization:
/// Basic` header and leave the URL, so no status, log line or error message can show them; a
/// configured `Authorization` header wins.
fn move_credentials_to_header(url: &mut url::Url, headers: &mut Vec<(String, String)>) -> bool {
    if url.username().is_empty() && url.password().is_none() {
        return false;
    }
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or(""))
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
    {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        headers.push(("Authorization".to_owned(), format!("Basic {encoded}")));
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    true
}

fn read_file(path: &Path) -> Result<FileSettings, SettingsError> {
    let text = fs_err::read_to_string(path).map_err(|source| SettingsError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    // toml's own message quotes the offending line, which may hold a token: say only where.
    toml::from_str(&text).map_err(|error| SettingsError::ParseFile {
        path: path.to_owned(),
        message: match error.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("{} (line {line})", error.message())
            }
            None => error.message().to_owned(),
        },
    })
}

/// `COMFYUI_MCP_OUTPUT_DIR`: one `PATH` for a single backend, or `NAME=PATH` entries separated by
/// commas. Each directory must exist.
fn apply_output_directories(backends: &mut [BackendSettings], raw: &str) -> Result<(), SettingsError> {
    let invalid = |reason: String| SettingsError::Invalid {
        source_name: env::OUTPUT_DIR.to_owned(),
        value: raw.to_owned(),
        reason,
    };
    let named = |entry: &str| {
        entry
            .split_once('=')
            .filter(|(name, _)| backends.iter().any(|backend| backend.name == name.trim()))
            .map(|(name, path)| (name.trim().to_owned(), PathBuf::from(path.trim())))
    };
    let entries: Vec<(String, PathBuf)> = if split_list(raw).iter().all(|entry| named(entry).is_some()) {
        split_list(raw).iter().filter_map(|entry| named(entry)).collect()
    } else if backends.len() == 1 {
        vec![(backends[0].name.clone(), PathBuf::from(raw.trim()))]
    } else {
        return Err(invalid(format!(
            "with several backends give NAME=PATH entries, comma separated; backends: {}",
            backends
                .iter()
                .map(|backend| backend.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    for (name, path) in entries {
        if !path.is_dir() {
            return Err(invalid(format!("{} is not a directory", path.display())));
        }
        if let Some(backend) = backends.iter_mut().find(|backend| backend.name == name) {
            backend.output_dir = Some(path);
        }
    }
    Ok(())
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_number<T: std::str::FromStr>(raw: &str, source_name: &str) -> Result<T, SettingsError> {
    raw.trim().parse().map_err(|_| SettingsError::Invalid {
        source_name: source_name.to_owned(),
        value: raw.to_owned(),
        reason: "not a number".to_owned(),
    })
}

/// The `preview_method` prompts ask for; `None` leaves ComfyUI's own.
fn preview_method(raw: Option<String>) -> Result<Option<String>, SettingsError> {
    let Some(raw) = raw else {
        return Ok(Some("latent2rgb".to_owned()));
    };
    match raw.trim().to_ascii_lowercase().as_str() {
        "comfyui" => Ok(None),
        method @ ("latent2rgb" | "taesd" | "auto" | "none") => Ok(Some(method.to_owned())),
        _ => Err(SettingsError::Invalid {
            source_name: env::PREVIEW_METHOD.to_owned(),
            value: raw,
            reason: "use latent2rgb, taesd, auto, none or comfyui".to_owned(),
        }),
    }
}

fn parse_bool(raw: &str, source_name: &str) -> Result<bool, SettingsError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(SettingsError::Invalid {
            source_name: source_name.to_owned(),
            value: raw.to_owned(),
            reason: "use true or false".to_owned(),
        }),
    }
}

/// Where the HTTP transport listens; loopback unless the operator says otherwise.
pub fn parse_listen_address(raw: &str) -> Result<SocketAddr, SettingsError> {
    raw.parse().map_err(|_| SettingsError::Invalid {
        source_name: "--http".to_owned(),
        value: raw.to_owned(),
        reason: "expected IP:PORT such as 127.0.0.1:8000".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(pairs: &[(&str, &str)], command_line: CommandLineSettings) -> Result<Settings, SettingsError> {
        let environment: HashMap<String, String> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let mut command_line = command_line;
        command_line.config = command_line
            .config
            .or_else(|| Some(PathBuf::from("/nonexistent/comfyui-mcp.toml")));
        // An explicit missing file is an error; tests that don't want a file pass none via env.
        Settings::resolve(&command_line, &|name| environment.get(name).cloned()).or_else(
            |error| match error {
                SettingsError::ReadFile { .. } => {
                    let mut without_file = command_line.clone();
                    without_file.config = None;
                    Settings::resolve(&without_file, &|name| {
                        if name == env::CONFIG {
                            None
                        } else {
                            environment.get(name).cloned()
                        }
                    })
                }
                other => Err(other),
            },
        )
    }

    #[test]
    fn flags_override_environment() {
        let settings = resolve(
            &[
                (env::COMFYUI_URL, "http://a:1, http://b:2"),
                (env::WAIT_SECONDS, "10"),
            ],
            CommandLineSettings {
                wait_seconds: Some(3.0),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(settings.engine.backends.len(), 2);
        assert_eq!(settings.engine.backends[1].url, "http://b:2");
        assert_eq!(settings.engine.wait, Duration::from_secs(3));
        let settings = resolve(
            &[(env::COMFYUI_URL, "http://a:1")],
            CommandLineSettings {
                comfyui_urls: vec!["http://c:3".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(settings.engine.backends[0].url, "http://c:3");
    }

    #[test]
    fn rejects_bad_values_with_their_source() {
        let error = resolve(&[(env::TOOLSETS, "core,bogus")], CommandLineSettings::default()).unwrap_err();
        assert!(error.to_string().contains("COMFYUI_MCP_TOOLSETS"), "{error}");
        assert!(error.to_string().contains("bogus"));
        assert!(resolve(&[(env::WAIT_SECONDS, "soon")], CommandLineSettings::default()).is_err());
        assert!(resolve(&[(env::COMFYUI_URL, "ftp://x")], CommandLineSettings::default()).is_err());
    }

    #[test]
    fn defaults_and_token_redaction() {
        let settings = resolve(
            &[
                (env::COMFYUI_TOKEN, "secret-token"),
                (env::HTTP_TOKEN, "other-secret"),
            ],
            CommandLineSettings::default(),
        )
        .unwrap();
        assert_eq!(settings.engine.backends[0].url, DEFAULT_COMFYUI_URL);
        assert_eq!(settings.toolsets, ["core"]);
        assert_eq!(settings.engine.wait, Duration::from_secs(45));
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("secret-token") && !shown.contains("other-secret"),
            "{shown}"
        );
    }

    #[test]
    fn blank_http_tokens_are_refused_and_real_ones_trimmed() {
        for blank in ["", "   ", "\t\n"] {
            let error = resolve(&[(env::HTTP_TOKEN, blank)], CommandLineSettings::default()).unwrap_err();
            assert!(error.to_string().contains(env::HTTP_TOKEN), "{error}");
        }
        let settings = resolve(&[(env::HTTP_TOKEN, " s3cret\n")], CommandLineSettings::default()).unwrap();
        assert_eq!(settings.http_token.as_deref(), Some("s3cret"));
        let path = std::env::temp_dir().join(format!("comfyui-mcp-blank-token-{}.toml", std::process::id()));
        std::fs::write(&path, "[http]\ntoken = \"  \"\n").unwrap();
        let from_file = Settings::resolve(
            &CommandLineSettings {
                config: Some(path.clone()),
                ..Default::default()
            },
            &|_| None,
        );
        std::fs::remove_file(&path).ok();
        let error = from_file.unwrap_err();
        assert!(error.to_string().contains("[http] token"), "{error}");
    }

    #[test]
    fn output_directories_by_backend() {
        let directory = std::env::temp_dir();
        let path = directory.to_str().unwrap();
        let single = resolve(&[(env::OUTPUT_DIR, path)], CommandLineSettings::default()).unwrap();
        assert_eq!(
            single.engine.backends[0].output_dir.as_deref(),
            Some(directory.as_path())
        );
        let pairs = format!("backend-2={path}");
        let several = resolve(
            &[
                (env::COMFYUI_URL, "http://a:1,http://b:2"),
                (env::OUTPUT_DIR, &pairs),
            ],
            CommandLineSettings::default(),
        )
        .unwrap();
        assert_eq!(several.engine.backends[0].output_dir, None);
        assert_eq!(
            several.engine.backends[1].output_dir.as_deref(),
            Some(directory.as_path())
        );
        let ambiguous = resolve(
            &[
                (env::COMFYUI_URL, "http://a:1,http://b:2"),
                (env::OUTPUT_DIR, path),
            ],
            CommandLineSettings::default(),
        )
        .unwrap_err();
        assert!(ambiguous.to_string().contains("NAME=PATH"), "{ambiguous}");
        let missing = resolve(
            &[(env::OUTPUT_DIR, "/nonexistent/comfyui-output")],
            CommandLineSettings::default(),
        )
        .unwrap_err();
        assert!(missing.to_string().contains("not a directory"), "{missing}");
    }

    #[test]
    fn reads_the_toml_file() {
        let path = std::env::temp_dir().join(format!("comfyui-mcp-settings-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "toolsets = [\"all\"]\nwait_seconds = 5\n[[backends]]\nurl = \"http://gpu:8188\"\nname = \"gpu\"\nheaders = { X-Key = \"k\" }\n",
        )
        .unwrap();
        let settings = Settings::resolve(
            &CommandLineSettings {
                config: Some(path.clone()),
                ..Default::default()
            },
            &|_| None,
        )
        .unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(settings.engine.backends[0].name, "gpu");
        assert_eq!(
            settings.engine.backends[0].headers,
            vec![("X-Key".to_owned(), "k".to_owned())]
        );
        assert_eq!(settings.toolsets, KNOWN_TOOLSETS);
        let broken =
            std::env::temp_dir().join(format!("comfyui-mcp-settings-bad-{}.toml", std::process::id()));
        std::fs::write(&broken, "wait_secs = 5\n").unwrap();
        let error = Settings::resolve(
            &CommandLineSettings {
                config: Some(broken.clone()),
                ..Default::default()
            },
            &|_| None,
        )
        .unwrap_err();
        std::fs::remove_file(&broken).ok();
        assert!(error.to_string().contains("wait_secs"), "{error}");
    }

    #[test]
    fn workflows_dir_must_be_a_directory() {
        let directory = std::env::temp_dir();
        let settings = resolve(
            &[(env::WORKFLOWS_DIR, directory.to_str().unwrap())],
            CommandLineSettings::default(),
        )
        .unwrap();
        assert_eq!(
            settings.engine.workflows_dir.as_deref(),
            Some(directory.as_path())
        );
        assert_eq!(
            resolve(&[], CommandLineSettings::default())
                .unwrap()
                .engine
                .workflows_dir,
            None
        );
        let error = resolve(
            &[(env::WORKFLOWS_DIR, "/nonexistent/comfyui-mcp-workflows")],
            CommandLineSettings::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains(env::WORKFLOWS_DIR), "{error}");
        assert!(error.to_string().contains("not a directory"), "{error}");
    }

    #[test]
    fn credentials_in_a_backend_url_become_a_header() {
        let settings = resolve(
            &[(env::COMFYUI_URL, "http://alice:s%40cret@gpu:8188/base")],
            CommandLineSettings::default(),
        )
        .unwrap();
        let backend = &settings.engine.backends[0];
        assert_eq!(backend.url, "http://gpu:8188/base");
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s@cret")
        );
        assert!(
            backend
                .headers
                .iter()
                .any(|(name, value)| name == "Authorization" && *value == expected)
        );
        assert_eq!(
            without_credentials("http://u:p@host:1/x@y"),
            "http://<credentials>@host:1/x@y"
        );
        let error = resolve(
            &[(env::COMFYUI_URL, "http://u:hunter2@[bad")],
            CommandLineSettings::default(),
        )
        .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn toml_errors_do_not_quote_the_file() {
        let path = std::env::temp_dir().join(format!("comfyui-mcp-bad-{}.toml", std::process::id()));
        std::fs::write(&path, "toolsets = [\"core\"]\n[http]\ntoken = \"hunter2-secret\n").unwrap();
        let error = read_file(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).ok();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("line 3"), "{error}");
    }
    #[test]
    fn limits_come_from_the_environment() {
        let defaults = http_limits(&|_| None).unwrap();
        assert_eq!(defaults.0, DEFAULT_MAX_SESSIONS);
        assert_eq!(defaults.1, DEFAULT_HEADER_TIMEOUT);
        let tuned = http_limits(&|name| match name {
            env::HTTP_MAX_SESSIONS => Some("3".to_owned()),
            env::HTTP_HEADER_TIMEOUT_SECONDS => Some("1.5".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(tuned.0, 3);
        assert_eq!(tuned.1, Duration::from_millis(1500));
        let zero = http_limits(&|name| (name == env::HTTP_MAX_SESSIONS).then(|| "0".to_owned()));
        assert!(zero.unwrap_err().to_string().contains(env::HTTP_MAX_SESSIONS));
    }
}
