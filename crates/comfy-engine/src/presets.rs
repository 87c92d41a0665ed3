//! Presets as a service: saving a workflow (API format, or UI format converted with the backend's
//! node definitions), applying a preset with overrides, graph-aware diffs between versions, three-way
//! merges with a computed common base, and bundle files. Plain lookups, tags and shares are direct
//! store calls that the front ends make themselves.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use comfy_api::SubmittedJob;
use comfy_store::{Preset, PresetBundle, PresetVersion, SavePreset, StoreError, VersionSummary};
use comfy_workflow::{ApiPrompt, Conflict, ConvertOptions, Diagnostic, Format, GraphDiff};
use serde_json::{Map, Value};

use super::generate::parse_api_workflow;
use super::workflows::{describe_errors, load_workflow};
use super::{BackendEntry, Engine, EngineError};

/// A preset operation that failed; every variant renders as a readable tool error.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    /// The store refused or failed (unknown preset or version, taken name, share refusals...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Converting, validating or running the workflow failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{message}")]
    BadInput { message: String },
    /// A stored version whose content is not an API workflow (e.g. imported from elsewhere).
    #[error("version {version} does not hold an API workflow: {reason}")]
    NotAWorkflow { version: String, reason: String },
    /// The two versions share no history and no base was given.
    #[error(
        "versions {ours} and {theirs} share no history, so there is no common base to merge from; pass `base` (a version both derive from) explicitly"
    )]
    NoCommonBase { ours: String, theirs: String },
    /// Reading or writing a bundle file on this machine failed.
    #[error(transparent)]
    LocalFile(#[from] super::local_files::LocalFileError),
}

impl PresetError {
    fn bad_input(message: impl Into<String>) -> Self {
        PresetError::BadInput {
            message: message.into(),
        }
    }
}

/// What to save.
#[derive(Debug, Clone)]
pub struct PresetSaveRequest {
    pub name: String,
    /// API or UI format; UI workflows are converted with `backend`'s node definitions.
    pub workflow: Value,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub message: Option<String>,
    pub backend: Option<String>,
}

/// A saved preset and how its workflow was read.
#[derive(Debug, Clone)]
pub struct SavedPreset {
    pub preset: Preset,
    /// Whether the workflow came in UI format and was converted.
    pub converted_from_ui: bool,
    /// Warnings of the UI conversion (nothing is dropped silently).
    pub warnings: Vec<Diagnostic>,
    /// The head before saving; equal to the new head when the content did not change.
    pub previous_head: Option<String>,
}

/// Two versions and what changed from the first to the second.
#[derive(Debug, Clone)]
pub struct VersionDiff {
    pub from: VersionSummary,
    pub to: VersionSummary,
    pub from_prompt: ApiPrompt,
    pub to_prompt: ApiPrompt,
    pub diff: GraphDiff,
}

/// What to merge into a preset's head.
#[derive(Debug, Clone, Default)]
pub struct MergeRequest {
    /// The preset whose head receives the merge ("ours").
    pub name: String,
    /// Take "theirs" from this preset (its head, or `version` in it).
    pub from_preset: Option<String>,
    /// "Theirs": a version reference (tag, `head`, id or id prefix).
    pub version: Option<String>,
    /// The common base; computed from history when `None`.
    pub base: Option<String>,
    /// A resolved merged workflow to store instead of the automatic merge (after conflicts).
    pub resolution: Option<Value>,
    pub message: Option<String>,
    pub backend: Option<String>,
}

/// How a merge ended.
#[derive(Debug, Clone)]
pub enum MergeOutcome {
    /// "Theirs" is already in the history of "ours": nothing to do.
    UpToDate {
        ours: VersionSummary,
        theirs: VersionSummary,
    },
    /// The edits disagree; nothing was stored. `draft` holds "ours" at each conflict.
    Conflicts {
        base: VersionSummary,
        ours: VersionSummary,
        theirs: VersionSummary,
        conflicts: Vec<Conflict>,
        draft: ApiPrompt,
    },
    /// A merge version with parents ours and theirs is the preset's new head.
    Merged {
        base: Option<VersionSummary>,
        ours: VersionSummary,
        theirs: VersionSummary,
        version: PresetVersion,
        /// What the merge changed relative to "ours".
        changes: GraphDiff,
        ours_prompt: ApiPrompt,
        merged_prompt: ApiPrompt,
    },
}

/// Reads a stored version's content as an API prompt.
pub fn version_prompt(version: &PresetVersion) -> Result<ApiPrompt, PresetError> {
    parse_api_workflow(&version.content).map_err(|error| PresetError::NotAWorkflow {
        version: version.summary.id.clone(),
        reason: error.to_string(),
    })
}

impl Engine {
    /// Reads a workflow in API or UI format; UI workflows are converted the way ComfyUI's frontend
    /// does it, with the node definitions of `backend` (or the best backend). Conversion errors
    /// refuse the workflow; warnings come back with it.
    pub async fn workflow_from_any_format(
        &self,
        workflow: &Value,
        backend: Option<&str>,
    ) -> Result<(ApiPrompt, bool, Vec<Diagnostic>), PresetError> {
        let (prompt, converted, warnings) = match comfy_workflow::detect_format(workflow) {
            Format::Ui => {
                let entry: &BackendEntry = self.pick_backend(backend)?;
                let info = self.object_info(entry, false).await?;
                let options = ConvertOptions {
                    frontend: entry.frontend_generation(),
                    ..ConvertOptions::default()
                };
                let loaded = load_workflow(workflow, &info, &options)?;
                if loaded.conversion_errors().next().is_some() {
                    return Err(PresetError::bad_input(format!(
                        "the UI workflow cannot be converted faithfully with the node definitions of {}; nothing was saved:{}",
                        entry.label(),
                        describe_errors(&loaded.conversion)
                    )));
                }
                (loaded.prompt, true, loaded.conversion)
            }
            Format::Api | Format::Unknown => (parse_api_workflow(workflow)?, false, Vec::new()),
        };
        if prompt.nodes.is_empty() {
            return Err(PresetError::bad_input("the workflow has no nodes"));
        }
        Ok((prompt, converted, warnings))
    }

    /// Saves a new preset, or a new version of an existing one (its head becomes the parent).
    pub async fn save_preset(&self, request: PresetSaveRequest) -> Result<SavedPreset, PresetError> {
        let (prompt, converted_from_ui, warnings) = self
            .workflow_from_any_format(&request.workflow, request.backend.as_deref())
            .await?;
        let previous_head = match self.store.get_preset(&request.name).await {
            Ok(preset) => Some(preset.summary.head_version),
            Err(StoreError::PresetNotFound { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        let preset = self
            .store
            .save_preset(SavePreset {
                name: request.name,
                description: request.description,
                tags: request.tags,
                content: prompt.to_json(),
                message: request.message,
            })
            .await?;
        Ok(SavedPreset {
            preset,
            converted_from_ui,
            warnings,
            previous_head,
        })
    }

    /// Runs a preset's head with overrides as `run_workflow` takes them (validated first), recorded
    /// as workflow `preset:NAME`, and counts one use for `client` once the job is queued.
    pub async fn apply_preset(
        &self,
        name: &str,
        overrides: &Map<String, Value>,
        backend: Option<&str>,
        client: &str,
    ) -> Result<(&BackendEntry, SubmittedJob, Preset), PresetError> {
        let preset = self.store.get_preset(name).await?;
        let label = format!("preset:{}", preset.summary.name);
        let started = self
            .run_workflow_as(&label, &preset.content, overrides, backend)
            .await?;
        let (entry, job) = (started.entry, started.job);
        let preset = match self.store.apply_preset(name, Some(client.to_owned())).await {
            Ok(applied) => applied,
            Err(error) => {
                // The job runs anyway; only its usage count is missing.
                tracing::warn!(preset = %name, %error, "preset use not recorded");
                preset
            }
        };
        Ok((entry, job, preset))
    }

    /// What changed between two versions of a preset: `to` defaults to the head, `from` to the first
    /// parent of `to`.
    pub async fn diff_preset_versions(
        &self,
        name: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<VersionDiff, PresetError> {
        let to = self.store.get_preset_version(name, to.unwrap_or("head")).await?;
        let from_reference = match from {
            Some(reference) => reference.to_owned(),
            None => to.summary.parents.first().cloned().ok_or_else(|| {
                PresetError::bad_input(format!(
                    "version {} is the first of its history and has no parent to compare with; pass `from`",
                    to.summary.id
                ))
            })?,
        };
        let from = self.store.get_preset_version(name, &from_reference).await?;
        let (from_prompt, to_prompt) = (version_prompt(&from)?, version_prompt(&to)?);
        let diff = comfy_workflow::diff(&from_prompt, &to_prompt);
        Ok(VersionDiff {
            from: from.summary,
            to: to.summary,
            from_prompt,
            to_prompt,
            diff,
        })
    }

    /// Three-way merge of another version ("theirs") into a preset's head ("ours") from their
    /// common base. A clean merge (or an explicit resolution) is stored as a version with both as
    /// parents; conflicts are reported and nothing is stored.
    pub async fn merge_preset_versions(&self, request: MergeRequest) -> Result<MergeOutcome, PresetError> {
        let store = &self.store;
        let ours = store.get_preset_version(&request.name, "head").await?;
        let theirs = match (&request.from_preset, &request.version) {
            (Some(other), version) => {
                store
                    .get_preset_version(other, version.as_deref().unwrap_or("head"))
                    .await?
            }
            (None, Some(version)) => store.get_preset_version(&request.name, version).await?,
            (None, None) => {
                return Err(PresetError::bad_input(
                    "say what to merge: `from_preset` (another preset's head, e.g. a fork) and/or `version` (a version reference)",
                ));
            }
        };
        // Everything both histories are made of, by id, with parents.
        let mut known: HashMap<String, Vec<String>> = HashMap::new();
        let ours_history = store.preset_log(&request.name, None).await?;
        for version in &ours_history {
            known.insert(version.id.clone(), version.parents.clone());
        }
        if let Some(other) = &request.from_preset {
            for version in store.preset_log(other, None).await? {
                known.entry(version.id).or_insert(version.parents);
            }
        }
        let ours_ancestors: HashSet<&str> = ours_history.iter().map(|version| version.id.as_str()).collect();
        if ours_ancestors.contains(theirs.summary.id.as_str()) {
            return Ok(MergeOutcome::UpToDate {
                ours: ours.summary,
                theirs: theirs.summary,
            });
        }
        let theirs_ancestors = self
            .ancestors(&request.name, &theirs.summary.id, &mut known)
            .await?;
        let base = match &request.base {
            Some(reference) => Some(store.get_preset_version(&request.name, reference).await?),
            None => match ours_history
                .iter()
                .find(|version| theirs_ancestors.contains(&version.id))
            {
                Some(common) => Some(store.get_preset_version(&request.name, &common.id).await?),
                None if request.resolution.is_some() => None,
                None => {
                    return Err(PresetError::NoCommonBase {
                        ours: ours.summary.id,
                        theirs: theirs.summary.id,
                    });
                }
            },
        };
        let ours_prompt = version_prompt(&ours)?;
        let merged = match &request.resolution {
            Some(resolution) => {
                self.workflow_from_any_format(resolution, request.backend.as_deref())
                    .await?
                    .0
            }
            None => {
                let Some(base) = &base else {
                    return Err(PresetError::NoCommonBase {
                        ours: ours.summary.id,
                        theirs: theirs.summary.id,
                    });
                };
                let result =
                    comfy_workflow::merge(&version_prompt(base)?, &ours_prompt, &version_prompt(&theirs)?);
                if !result.is_clean() {
                    return Ok(MergeOutcome::Conflicts {
                        base: base.summary.clone(),
                        ours: ours.summary,
                        theirs: theirs.summary,
                        conflicts: result.conflicts,
                        draft: result.merged,
                    });
                }
                result.merged
            }
        };
        let changes = comfy_workflow::diff(&ours_prompt, &merged);
        let message = request
            .message
            .clone()
            .unwrap_or_else(|| match &request.from_preset {
                Some(other) => format!(
                    "merge {} of {other} into {}",
                    short_id(&theirs.summary.id),
                    request.name
                ),
                None => format!("merge {} into {}", short_id(&theirs.summary.id), request.name),
            });
        let version = store
            .merge_preset(&request.name, &theirs.summary.id, merged.to_json(), Some(message))
            .await?;
        Ok(MergeOutcome::Merged {
            base: base.map(|base| base.summary),
            ours: ours.summary,
            theirs: theirs.summary,
            version,
            changes,
            ours_prompt,
            merged_prompt: merged,
        })
    }

    /// `start` and all its ancestors. Parents are taken from `known`, and fetched (by id, which the
    /// store resolves across presets) when a history did not include them.
    async fn ancestors(
        &self,
        preset: &str,
        start: &str,
        known: &mut HashMap<String, Vec<String>>,
    ) -> Result<HashSet<String>, PresetError> {
        let mut seen = HashSet::new();
        let mut waiting = vec![start.to_owned()];
        while let Some(id) = waiting.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let parents = match known.get(&id) {
                Some(parents) => parents.clone(),
                None => {
                    let parents = match self.store.get_preset_version(preset, &id).await {
                        Ok(version) => version.summary.parents,
                        // A parent this database never received (a partial import) ends the walk.
                        Err(StoreError::VersionNotFound { .. }) => Vec::new(),
                        Err(error) => return Err(error.into()),
                    };
                    known.insert(id.clone(), parents.clone());
                    parents
                }
            };
            waiting.extend(parents);
        }
        Ok(seen)
    }

    /// A preset with its whole history as a bundle; also written to `path` when given (a new file
    /// unless `overwrite`).
    pub async fn export_preset_bundle(
        &self,
        name: &str,
        path: Option<&Path>,
        overwrite: bool,
    ) -> Result<PresetBundle, PresetError> {
        let bundle = self.store.export_preset(name).await?;
        if let Some(path) = path {
            let text = serde_json::to_vec_pretty(&bundle).unwrap_or_default();
            super::local_files::write_atomically(path, text, overwrite).await?;
        }
        Ok(bundle)
    }

    /// Imports a bundle given inline or read from `path`, as a new preset (named `name`, or as in
    /// the bundle). The store checks every hash and id first.
    pub async fn import_preset_bundle(
        &self,
        bundle: Option<Value>,
        path: Option<&Path>,
        name: Option<String>,
    ) -> Result<Preset, PresetError> {
        let value = match (bundle, path) {
            (Some(bundle), None) => bundle,
            (None, Some(path)) => {
                let bytes =
                    super::local_files::read_bounded(path, super::local_files::MAXIMUM_DOCUMENT_BYTES)
                        .await?;
                serde_json::from_slice(&bytes).map_err(|error| {
                    PresetError::bad_input(format!("{} is not JSON: {error}", path.display()))
                })?
            }
            _ => return Err(PresetError::bad_input("give exactly one of `bundle` or `path`")),
        };
        let bundle: PresetBundle = serde_json::from_value(value).map_err(|error| {
            PresetError::bad_input(format!(
                "not a preset bundle (as preset_share action=export_bundle writes it): {error}"
            ))
        })?;
        Ok(self.store.import_preset_bundle(bundle, name).await?)
    }
}

/// The first 12 characters of a version id, enough to name it in messages and references.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_never_panic() {
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("ééééééééééé"), "éééééé");
    }
}
