//! What the database keeps that front ends read and edit as it is: presets and their versions,
//! shares, the outputs library's tags and collections, job metrics and the audit log. Each is one
//! engine service over the store, so front ends never hold the store; operations with rules of
//! their own (saving a preset, applying it, merging, recording jobs) live in their own modules.

use comfy_store::{
    AuditEntry, AuditQuery, AuditRecord, CatalogFormat, CollectionSummary, CreatedShare, JobMetrics,
    MetricGrouping, MetricQuery, MetricSummary, OutputQuery, Preset, PresetSummary, PresetVersion,
    Redemption, ShareRecord, ShareRequest, StoreError, VersionSummary,
};

use crate::Engine;

/// Declares engine services that ask the store one thing and hand its answer back.
macro_rules! stored {
    ($( $(#[$doc:meta])* fn $name:ident($($argument:ident: $kind:ty),*) -> $answer:ty; )*) => {
        impl Engine {
            $(
                $(#[$doc])*
                pub async fn $name(&self, $($argument: $kind),*) -> Result<$answer, StoreError> {
                    self.store.$name($($argument),*).await
                }
            )*
        }
    };
}

stored! {
    /// Presets (only those tagged `tag` when given), with usage counts.
    fn list_presets(tag: Option<String>) -> Vec<PresetSummary>;
    fn get_preset(name: &str) -> Preset;
    /// A version by reference: a version tag, "head", an id or an id prefix.
    fn get_preset_version(name: &str, reference: &str) -> PresetVersion;
    /// Removes the preset with its history, tags and shares.
    fn delete_preset(name: &str) -> ();
    /// The history from the head back, newest first.
    fn preset_log(name: &str, limit: Option<u32>) -> Vec<VersionSummary>;
    fn fork_preset(source: &str, reference: Option<String>, new_name: &str, description: Option<String>) -> Preset;
    /// A new head with the content of `reference` (history is kept).
    fn rollback_preset(name: &str, reference: &str, message: Option<String>) -> PresetVersion;
    fn tag_preset_version(name: &str, tag: &str, reference: &str) -> VersionSummary;
    fn untag_preset_version(name: &str, tag: &str) -> bool;
    /// An access code for a preset version, shown once.
    fn share_preset(request: ShareRequest) -> CreatedShare;
    fn list_shares(preset: Option<String>) -> Vec<ShareRecord>;
    fn revoke_share(id: i64) -> ShareRecord;
    /// Redeems an access code (checked and counted by the store) into a new preset.
    fn import_shared_preset(redemption: Redemption, name: Option<String>) -> Preset;
    fn metric_summary(grouping: MetricGrouping, query: MetricQuery) -> Vec<MetricSummary>;
    fn metric_samples(query: MetricQuery) -> Vec<JobMetrics>;
    fn query_audit(query: AuditQuery) -> Vec<AuditRecord>;
    fn record_audit(entry: AuditEntry) -> i64;
    /// The outputs `query` selects, as CSV or JSON text.
    fn export_catalog(query: OutputQuery, format: CatalogFormat) -> String;
    fn tag_outputs(ids: Vec<i64>, tags: Vec<String>) -> ();
    fn untag_output(id: i64, tag: &str) -> bool;
    fn create_collection(name: &str, description: Option<String>) -> CollectionSummary;
    fn add_to_collection(name: &str, ids: Vec<i64>) -> ();
    fn remove_from_collection(name: &str, id: i64) -> bool;
    fn delete_collection(name: &str) -> ();
    fn list_collections() -> Vec<CollectionSummary>;
}

/// Removes audit entries older than `before_ms` (or only counts them), opening the database on
/// its own: pruning needs no backend, so it starts none. Answers how many entries it removed
/// (or would remove).
pub async fn prune_audit_log(
    database: Option<&std::path::Path>,
    before_ms: i64,
    dry_run: bool,
) -> Result<u64, crate::EngineError> {
    let failed = |source| crate::EngineError::Store { source };
    let options = match database {
        Some(path) => comfy_store::StoreOptions::new(path.to_path_buf()),
        None => comfy_store::StoreOptions::at_default_path().map_err(failed)?,
    };
    let store = comfy_store::Store::open(options).await.map_err(failed)?;
    let counted = if dry_run {
        store.count_audit_before(before_ms).await
    } else {
        store.prune_audit(before_ms).await
    };
    store.close().await;
    counted.map_err(failed)
}
