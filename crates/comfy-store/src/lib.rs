//! The product's memory: an embedded SQLite database (bundled, WAL) holding jobs, presets with
//! git-like versions, shares, the outputs library, experiments, job metrics and the audit log. This crate is the
//! only code that speaks SQL; it knows neither ComfyUI's wire format nor MCP and stores the typed
//! records the rest of the product hands it.
//!
//! Open a [`Store`] with [`StoreOptions`]; every operation is an `async fn` on it. Writes run one at a
//! time on a dedicated thread that owns the write connection, reads on a second connection, so async
//! callers never block and a write is either wholly on disk or not at all.

mod access_code;
mod audit;
mod clock;
mod error;
mod experiments;
mod hashing;
mod job_state;
mod jobs;
mod metrics;
mod migrations;
mod outputs;
mod paths;
mod presets;
mod query;
mod sharing;
mod store;
mod styles;

pub use access_code::{ACCESS_CODE_SYMBOLS, AccessCode};
pub use audit::{AuditEntry, AuditOutcome, AuditQuery, AuditRecord};
pub use clock::now_ms;
pub use error::StoreError;
pub use experiments::{Experiment, ExperimentSummary, Judgement, NewExperiment, Trial, Verdict};
pub use hashing::{canonical_json, content_hash, sha256_hex};
pub use jobs::{JobQuery, JobRecord, JobState, JobUpdate, NewJob};
pub use metrics::{JobMetrics, MetricGrouping, MetricQuery, MetricSummary, Percentiles};
pub use migrations::latest_schema_version;
pub use outputs::{
    CatalogFormat, CleanupReport, CollectionSummary, FileReference, NewOutput, OutputQuery, OutputRecord,
    RetentionPolicy, SimilarOutput,
};
pub use paths::{APPLICATION_DIRECTORY, DATABASE_FILE_NAME, default_database_path};
pub use presets::{Preset, PresetSummary, PresetVersion, SavePreset, VersionSummary};
pub use sharing::{
    BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, BundleVersion, CreatedShare, PresetBundle, Redemption,
    SHARE_AUDIT_TOOL, ShareRecord, ShareRequest,
};
pub use store::{Store, StoreOptions};
pub use styles::Style;
