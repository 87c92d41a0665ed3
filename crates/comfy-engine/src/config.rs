//! What the engine is configured with: the backends and the limits its services keep. The front
//! end reads the environment, the file and the command line and hands the engine this, resolved
//! and validated; the engine never reads configuration itself.

use std::path::PathBuf;
use std::time::Duration;

/// The engine's part of the validated configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub backends: Vec<BackendSettings>,
    /// Longest wait for a job inside one call.
    pub wait: Duration,
    /// Most bytes of preview images in one result.
    pub preview_bytes: usize,
    /// Largest file read whole for a front end (an MCP resource); larger ones are links.
    pub resource_bytes: u64,
    /// Whether inputs fetched by URL may come from loopback, private or link-local addresses.
    pub allow_private_urls: bool,
    /// The checkpoint `generate` uses when the request names none.
    pub default_checkpoint: Option<String>,
    /// `None`: the platform data directory.
    pub database: Option<PathBuf>,
    /// Saved workflows exposed as tools; `None`: no workflow tools.
    pub workflows_dir: Option<PathBuf>,
    /// Where node definitions are kept between processes; `None`: not kept.
    pub cache_dir: Option<PathBuf>,
    /// The `preview_method` every prompt asks ComfyUI for (`latent2rgb`, `taesd`, `auto`,
    /// `none`): the sampler's live frames. `None` leaves ComfyUI's own setting.
    pub preview_method: Option<String>,
    /// ComfyUI's CLIP vocabulary (`comfy/sd1_tokenizer`, or its `merges.txt`) for counting
    /// prompt tokens; `None`: prompts are analysed without token counts.
    pub clip_vocabulary: Option<PathBuf>,
}

/// One ComfyUI server.
#[derive(Clone)]
pub struct BackendSettings {
    pub name: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// ComfyUI's output directory as seen from this machine, when the operator configured it.
    pub output_dir: Option<PathBuf>,
}

impl std::fmt::Debug for BackendSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BackendSettings")
            .field("name", &self.name)
            .field("url", &self.url)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| format!("{name}: <redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("output_dir", &self.output_dir)
            .finish()
    }
}
