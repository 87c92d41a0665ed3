//! The `workflows` toolset's presets: named workflows with git-like versions and sharing, as three
//! tools whose `action` picks the operation (`preset`, `preset_version`, `preset_share`). Each tool
//! parses its arguments, calls the engine or the store and renders; nothing else.

use std::path::Path;

use comfy_engine::types::{Redemption, ShareRequest, StoreError, VersionSummary};
use comfy_workflow::{ApiPrompt, Change, Conflict, InputValue};
use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::render::{engine_error, error_text, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool, follow_job, job_answer, wait_limit};
use comfy_engine::presets::{MergeOutcome, MergeRequest, PresetError, PresetSaveRequest, short_id};

/// What `preset` does: the action picks the operation, and each action takes only its own fields.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum PresetArguments {
    /// Store `workflow` as preset `name` (a new preset, or a new version of it).
    Save {
        /// The preset's name.
        name: String,
        /// The workflow in API format (node id -> {class_type, inputs}, as "Export (API)" saves it)
        /// or UI format (a saved .json with nodes and links; converted with the backend's node definitions).
        workflow: Value,
        /// What the preset is for (replaces the old description).
        description: Option<String>,
        /// The preset's tags (replace the old ones).
        tags: Option<Vec<String>>,
        /// Like a commit message for the new version.
        message: Option<String>,
        /// The backend whose node definitions convert a UI-format workflow, when several are configured.
        backend: Option<String>,
    },
    /// Presets with tags and usage counts.
    List {
        /// Only presets with this tag.
        tag: Option<String>,
    },
    /// A preset's workflow (its head, or `version`).
    Get {
        /// The preset's name.
        name: String,
        /// Which version: a version tag, "head", a version id or an id prefix (at least 6 characters).
        version: Option<String>,
    },
    /// Run the preset's head with `overrides`, wait like run_workflow, count one use.
    Apply {
        /// The preset's name.
        name: String,
        /// Input overrides as run_workflow takes them, e.g. {"3.seed": 42, "6.text": "a red fox"}
        /// ("NODE_ID.INPUT"; see the workflow from action=get for node ids).
        overrides: Option<Map<String, Value>>,
        /// Seconds to wait before returning the job id instead (default and maximum: the server's limit).
        wait_seconds: Option<f64>,
        /// Backend name when several are configured.
        backend: Option<String>,
    },
    /// Remove the preset with its history, tags and shares.
    Delete {
        /// The preset's name.
        name: String,
    },
}

/// What `preset_version` does to one preset's history.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum PresetVersionArguments {
    /// The history from the head back (ids, parents, messages, tags), newest first.
    Log {
        /// The preset.
        name: String,
        /// At most this many versions (default all).
        limit: Option<u32>,
    },
    /// What changed between two versions, node by node.
    Diff {
        /// The preset.
        name: String,
        /// The older version (default: the first parent of `to`).
        from: Option<String>,
        /// The newer version (default: the head).
        to: Option<String>,
    },
    /// A new head version with the content of `version` (history is kept).
    Rollback {
        /// The preset.
        name: String,
        /// The target: a version tag, "head", a version id or an id prefix (at least 6 characters).
        version: String,
        /// The new version's message.
        message: Option<String>,
    },
    /// A new preset `new_name` starting at `version` (default the head).
    Fork {
        /// The preset.
        name: String,
        /// The fork point (default the head).
        version: Option<String>,
        /// The new preset's name.
        new_name: String,
        /// The new preset's description (default: the source's).
        description: Option<String>,
    },
    /// Three-way merge of "theirs" (`from_preset`'s head and/or `version`) into this preset's head
    /// from their common base; a clean merge becomes the new head, conflicts are listed and nothing
    /// is stored.
    Merge {
        /// The preset merged into.
        name: String,
        /// "Theirs": a version reference (in `from_preset` when given).
        version: Option<String>,
        /// Take "theirs" from this preset (typically a fork): its head, or `version` in it.
        from_preset: Option<String>,
        /// The common base (default: the newest version both histories share).
        base: Option<String>,
        /// After conflicts, the resolved workflow to store as the merge (API or UI format).
        workflow: Option<Value>,
        /// The new version's message.
        message: Option<String>,
        /// With a UI-format `workflow`: the backend whose node definitions convert it.
        backend: Option<String>,
    },
    /// Point version tag `tag` at `version` (default the head).
    Tag {
        /// The preset.
        name: String,
        /// The version tag's name, e.g. "v1" or "approved".
        tag: String,
        /// The version to tag (default the head).
        version: Option<String>,
    },
    /// Remove version tag `tag`.
    Untag {
        /// The preset.
        name: String,
        /// The version tag's name.
        tag: String,
    },
}

/// What `preset_share` does: access codes and bundles.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum PresetShareArguments {
    /// Make an access code for preset `name` (its head, or `version`), shown once.
    Share {
        /// The preset.
        name: String,
        /// Which version (default the head): a version tag, "head", an id or an id prefix.
        version: Option<String>,
        /// Require this password to redeem.
        password: Option<String>,
        /// The code stops working after this many seconds (default never).
        expires_in_seconds: Option<f64>,
        /// The code works this many times (default unlimited).
        max_uses: Option<u32>,
    },
    /// Shares with their use counts.
    List {
        /// Only this preset's shares.
        name: Option<String>,
    },
    /// Stop share `share_id` at once.
    Revoke {
        /// The share's id (from share or list).
        share_id: i64,
    },
    /// Redeem `code` (with `password`) into a new preset.
    ImportCode {
        /// The access code as given (case, spaces and hyphens do not matter).
        code: String,
        /// The share's password.
        password: Option<String>,
        /// The new preset's name (default the shared name).
        name: Option<String>,
    },
    /// The preset with its whole history as JSON, returned inline or written to `path`.
    ExportBundle {
        /// The preset.
        name: String,
        /// A file on the machine running this server (only where local files are allowed);
        /// without it the bundle is returned inline.
        path: Option<String>,
        /// With `path`: replace an existing file (default false: refuse).
        #[serde(default)]
        overwrite: bool,
    },
    /// A bundle from `bundle` (inline JSON) or `path` as a new preset.
    ImportBundle {
        /// The bundle JSON as export_bundle returned it (an object, or that object as a string).
        bundle: Option<Value>,
        /// A bundle file on the machine running this server (only where local files are allowed).
        path: Option<String>,
        /// The new preset's name (default the bundle's).
        name: Option<String>,
    },
}

/// This toolset's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "preset",
        "Saved workflows (presets) by name. action=save stores a workflow (API or UI format) as a new preset or a new \
             version of one, with description and tags; list shows presets with tags and usage counts (filter by tag); \
             get returns a preset's workflow (head or any version); apply runs the head with overrides like run_workflow's \
             (validated first, bounded wait, outputs or a job_id for get_job) and counts a use; \
             delete removes a preset with its history and shares.",
        Hints::new(false, true, false),
        PresetArguments,
        preset,
    ),
    declare_tool!(
        "preset_version",
        "Git-like history of a preset: every save is a content-addressed version with parents. action=log lists \
             versions newest first; diff compares two versions node by node (node added/removed, input old -> new, link \
             rewired); rollback makes a new head with an older version's content; fork copies a version into a new \
             preset; merge does a three-way merge of another version or a fork's head into the head from their common \
             base (conflicts are listed and nothing is stored; call again with `workflow` to store a resolution); \
             tag/untag name versions (usable wherever a version is asked for).",
        Hints::CREATES,
        PresetVersionArguments,
        preset_version,
    ),
    declare_tool!(
        "preset_share",
        "Share presets. action=share makes an access code for a preset version (shown only once) with optional \
             password, expiry and use limit; list shows shares and their use counts; revoke stops a share at once; \
             import_code redeems a code (+ password) into a new local preset with its history (failed attempts are \
             rate-limited and audited); export_bundle gives a preset with its whole history as JSON (inline, or to a \
             file where local files are allowed); import_bundle loads such a bundle (inline or from a file) after \
             checking its hashes.",
        Hints::CREATES,
        PresetShareArguments,
        preset_share,
    ),
];

/// A readable tool error with a hint at the tool that helps; share refusals say only what the store
/// says (it never tells a wrong code from a wrong password beyond its own messages).
fn preset_error(error: &PresetError) -> CallToolResult {
    let PresetError::Store(store) = error else {
        return match error {
            PresetError::Engine(engine) => engine_error(engine),
            other => error_text(other.to_string()),
        };
    };
    let text = match store {
        StoreError::PresetNotFound { name } => {
            format!("preset {name:?} not found; preset action=list shows the saved presets")
        }
        StoreError::PresetExists { name } => format!(
            "a preset named {name:?} already exists; choose another name (import actions take `name`), or delete it first"
        ),
        StoreError::VersionNotFound { reference } => format!(
            "version {reference:?} not found; preset_version action=log lists version ids and tags (a reference is a tag, \"head\", an id or an id prefix of at least 6 characters)"
        ),
        StoreError::ShareNotFound
        | StoreError::ShareRevoked
        | StoreError::ShareExpired
        | StoreError::ShareUsedUp
        | StoreError::PasswordRequired
        | StoreError::WrongPassword => format!("access code refused: {store}"),
        StoreError::RateLimited { retry_after_ms, .. } => format!(
            "access code refused: too many failed attempts from this client; retry in {} s",
            (retry_after_ms + 999) / 1000
        ),
        StoreError::InvalidInput { .. }
        | StoreError::InvalidBundle { .. }
        | StoreError::AmbiguousVersion { .. } => store.to_string(),
        other => format!("database: {other}"),
    };
    error_text(text)
}

fn failed(error: impl Into<PresetError>) -> CallToolResult {
    preset_error(&error.into())
}

/// Refuses arguments the chosen action does not use, so a misplaced argument is never ignored.
/// The client identity for share rate limits and usage: the MCP client's name, or "anonymous".
fn client_identity(context: &RequestContext<RoleServer>) -> String {
    super::tool::client_name(context).unwrap_or_else(|| "anonymous".to_owned())
}

fn local_path<'a>(server: &ComfyServer, path: &'a str) -> Result<&'a Path, CallToolResult> {
    if !server.local_files_allowed() {
        return Err(error_text(
            "local files are disabled on this server (set COMFYUI_MCP_ALLOW_LOCAL_FILES=true to allow them); pass the bundle inline instead",
        ));
    }
    Ok(Path::new(path))
}

fn version_json(version: &VersionSummary) -> Value {
    json!({
        "id": version.id,
        "short_id": short_id(&version.id),
        "parents": version.parents.iter().map(|parent| short_id(parent)).collect::<Vec<_>>(),
        "message": version.message,
        "created_at_ms": version.created_at_ms,
        "tags": version.tags,
    })
}

fn summary_json(summary: &comfy_engine::types::PresetSummary) -> Value {
    json!({
        "name": summary.name,
        "description": summary.description,
        "tags": summary.tags,
        "head_version": summary.head_version,
        "use_count": summary.use_count,
        "last_used_at_ms": summary.last_used_at_ms,
        "created_at_ms": summary.created_at_ms,
        "updated_at_ms": summary.updated_at_ms,
    })
}

// ---------------------------------------------------------------------------------------------
// preset

async fn preset(
    server: &ComfyServer,
    arguments: PresetArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    match arguments {
        PresetArguments::Save {
            name,
            workflow,
            description,
            tags,
            message,
            backend,
        } => {
            let request = PresetSaveRequest {
                name,
                workflow,
                description,
                tags,
                message,
                backend,
            };
            let saved = engine.save_preset(request).await.map_err(failed)?;
            let head = &saved.preset.summary.head_version;
            let created = saved.previous_head.as_deref() != Some(head.as_str());
            let mut value = json!({
                "saved": saved.preset.summary.name,
                "version": head,
                "short_id": short_id(head),
                "new_version": created,
                "parent": saved.previous_head.as_deref().filter(|_| created),
                "converted_from_ui": saved.converted_from_ui,
                "preset": summary_json(&saved.preset.summary),
            });
            if !created {
                value["note"] = json!(
                    "the workflow equals the head version: no new version (description and tags updated)"
                );
            }
            if !saved.warnings.is_empty() {
                value["conversion_warnings"] = serde_json::to_value(&saved.warnings).unwrap_or(Value::Null);
            }
            Ok(json_result(&value))
        }
        PresetArguments::List { tag } => {
            let presets = engine.list_presets(tag.clone()).await.map_err(failed)?;
            Ok(json_result(&json!({
                "count": presets.len(),
                "tag": tag,
                "presets": presets.iter().map(summary_json).collect::<Vec<_>>(),
            })))
        }
        PresetArguments::Get { name, version } => {
            let name = name.as_str();
            let preset = engine.get_preset(name).await.map_err(failed)?;
            let version = engine
                .get_preset_version(name, version.as_deref().unwrap_or("head"))
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "preset": summary_json(&preset.summary),
                "version": version_json(&version.summary),
                "is_head": version.summary.id == preset.summary.head_version,
                "workflow": version.content,
            })))
        }
        PresetArguments::Apply {
            name,
            overrides,
            wait_seconds,
            backend,
        } => {
            let name = name.as_str();
            let limit = wait_limit(server, wait_seconds, server.engine.config.wait)?;
            let overrides = overrides.clone().unwrap_or_default();
            let (entry, mut job, preset) = engine
                .apply_preset(name, &overrides, backend.as_deref(), &client_identity(context))
                .await
                .map_err(failed)?;
            let outcome = follow_job(server, entry, &mut job.subscription, &limit, &context.ct, context)
                .await
                .map_err(|error| engine_error(&error))?;
            let parameters = json!({
                "preset": preset.summary.name,
                "version": preset.summary.head_version,
                "overrides": overrides,
                "use_count": preset.summary.use_count,
            });
            let mut result = job_answer(server, entry, &outcome, Some(parameters)).await;
            if !job.accepted.node_errors.is_empty() {
                result.content.push(ContentBlock::text(format!(
                    "ComfyUI queued only part of the workflow; node errors: {}",
                    serde_json::to_string(&job.accepted.node_errors).unwrap_or_default()
                )));
            }
            Ok(result)
        }
        PresetArguments::Delete { name } => {
            let name = name.as_str();
            engine.delete_preset(name).await.map_err(failed)?;
            Ok(json_result(&json!({
                "deleted": name.trim(),
                "note": "its versions, tags, usage and shares are gone (versions a fork still uses are kept for the fork)",
            })))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// preset_version

/// A link or constant input value, as a reader wants to see it.
fn show_value(value: Option<&Value>) -> String {
    match value {
        None => "(unset)".to_owned(),
        Some(value) => match InputValue::from_json(value) {
            InputValue::Link(link) => format!("output {} of node {}", link.output_index, link.node_id),
            InputValue::Constant(constant) => {
                let text = constant.to_string();
                if text.chars().count() > 200 {
                    format!("{}...", text.chars().take(200).collect::<String>())
                } else {
                    text
                }
            }
        },
    }
}

fn class_of<'a>(node_id: &str, new: &'a ApiPrompt, old: &'a ApiPrompt) -> &'a str {
    new.get(node_id)
        .or_else(|| old.get(node_id))
        .map_or("?", |node| node.class_type.as_str())
}

/// One line per change: `+` added, `-` removed, `~` changed.
fn change_lines(changes: &[Change], old: &ApiPrompt, new: &ApiPrompt) -> Vec<String> {
    changes
        .iter()
        .map(|change| match change {
            Change::NodeAdded { node_id, class_type } => format!("+ node {node_id} ({class_type}) added"),
            Change::NodeRemoved { node_id, class_type } => format!("- node {node_id} ({class_type}) removed"),
            Change::ClassChanged { node_id, old, new } => format!("~ node {node_id} class: {old} -> {new}"),
            Change::InputChanged {
                node_id,
                input,
                old: before,
                new: after,
            } => format!(
                "~ node {node_id} ({}) input {input}: {} -> {}",
                class_of(node_id, new, old),
                show_value(before.as_ref()),
                show_value(after.as_ref())
            ),
            Change::LinkRewired {
                node_id,
                input,
                old: before,
                new: after,
            } => format!(
                "~ node {node_id} ({}) link {input} rewired: {} -> {}",
                class_of(node_id, new, old),
                show_value(before.as_ref()),
                show_value(after.as_ref())
            ),
            Change::TitleChanged {
                node_id,
                old: before,
                new: after,
            } => format!(
                "~ node {node_id} ({}) title: {} -> {}",
                class_of(node_id, new, old),
                before.as_deref().unwrap_or("(none)"),
                after.as_deref().unwrap_or("(none)")
            ),
        })
        .collect()
}

fn conflict_json(conflict: &Conflict) -> Value {
    serde_json::to_value(conflict).unwrap_or(Value::Null)
}

async fn preset_version(
    server: &ComfyServer,
    arguments: PresetVersionArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    let store = &**engine;
    match arguments {
        PresetVersionArguments::Log { name, limit } => {
            let name = name.as_str();
            let versions = store.preset_log(name, limit).await.map_err(failed)?;
            Ok(json_result(&json!({
                "preset": name.trim(),
                "head": versions.first().map(|version| version.id.clone()),
                "count": versions.len(),
                "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
            })))
        }
        PresetVersionArguments::Diff { name, from, to } => {
            let name = name.as_str();
            let compared = engine
                .diff_preset_versions(name, from.as_deref(), to.as_deref())
                .await
                .map_err(failed)?;
            let lines = change_lines(&compared.diff.changes, &compared.from_prompt, &compared.to_prompt);
            Ok(json_result(&json!({
                "preset": name.trim(),
                "from": version_json(&compared.from),
                "to": version_json(&compared.to),
                "identical": compared.diff.is_empty(),
                "change_count": lines.len(),
                "changes": lines,
            })))
        }
        PresetVersionArguments::Rollback {
            name,
            version,
            message,
        } => {
            let name = name.as_str();
            let target = &version;
            let version = store
                .rollback_preset(name, target, message.clone())
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "preset": name.trim(),
                "rolled_back_to": target,
                "head": version_json(&version.summary),
                "note": "a new head version with the old content; the versions in between stay in the log",
            })))
        }
        PresetVersionArguments::Fork {
            name,
            version,
            new_name,
            description,
        } => {
            let name = name.as_str();
            let new_name = &new_name;
            let forked = store
                .fork_preset(name, version.clone(), new_name, description.clone())
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "forked_from": name.trim(),
                "preset": summary_json(&forked.summary),
                "note": format!(
                    "merge it back with preset_version action=merge name={:?} from_preset={:?}",
                    name.trim(),
                    forked.summary.name
                ),
            })))
        }
        PresetVersionArguments::Merge {
            name,
            version,
            from_preset,
            base,
            workflow,
            message,
            backend,
        } => {
            let name = name.as_str();
            let request = MergeRequest {
                name: name.to_owned(),
                from_preset: from_preset.clone(),
                version: version.clone(),
                base: base.clone(),
                resolution: workflow.clone(),
                message: message.clone(),
                backend: backend.clone(),
            };
            match engine.merge_preset_versions(request).await.map_err(failed)? {
                MergeOutcome::UpToDate { ours, theirs } => Ok(json_result(&json!({
                    "status": "up_to_date",
                    "ours": version_json(&ours),
                    "theirs": version_json(&theirs),
                    "note": "theirs is already part of this preset's history; nothing was stored",
                }))),
                MergeOutcome::Conflicts {
                    base,
                    ours,
                    theirs,
                    conflicts,
                    draft,
                } => {
                    let value = json!({
                        "status": "conflicts",
                        "stored": false,
                        "base": version_json(&base),
                        "ours": version_json(&ours),
                        "theirs": version_json(&theirs),
                        "conflict_count": conflicts.len(),
                        "conflicts": conflicts.iter().map(conflict_json).collect::<Vec<_>>(),
                        "draft": draft.to_json(),
                        "how_to_resolve": "nothing was stored. The draft holds every non-conflicting change and ours at each conflict: edit it and call preset_version action=merge again with the same name/from_preset/version and workflow=<the resolved draft>",
                    });
                    Ok(CallToolResult::error(vec![ContentBlock::text(
                        serde_json::to_string_pretty(&value).unwrap_or_default(),
                    )]))
                }
                MergeOutcome::Merged {
                    base,
                    ours,
                    theirs,
                    version,
                    changes,
                    ours_prompt,
                    merged_prompt,
                } => {
                    let lines = change_lines(&changes.changes, &ours_prompt, &merged_prompt);
                    Ok(json_result(&json!({
                        "status": "merged",
                        "head": version_json(&version.summary),
                        "base": base.as_ref().map(version_json),
                        "ours": version_json(&ours),
                        "theirs": version_json(&theirs),
                        "changes_to_ours": lines,
                    })))
                }
            }
        }
        PresetVersionArguments::Tag { name, tag, version } => {
            let name = name.as_str();
            let tag = &tag;
            let version = store
                .tag_preset_version(name, tag, version.as_deref().unwrap_or("head"))
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "preset": name.trim(),
                "tag": tag.trim(),
                "version": version_json(&version),
                "note": format!("use {:?} wherever a version is asked for", tag.trim()),
            })))
        }
        PresetVersionArguments::Untag { name, tag } => {
            let name = name.as_str();
            let tag = &tag;
            let removed = store.untag_preset_version(name, tag).await.map_err(failed)?;
            if !removed {
                return Err(error_text(format!(
                    "preset {:?} has no version tag {:?}; preset_version action=log shows the tags",
                    name.trim(),
                    tag.trim()
                )));
            }
            Ok(json_result(
                &json!({"preset": name.trim(), "removed_tag": tag.trim()}),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// preset_share

async fn preset_share(
    server: &ComfyServer,
    arguments: PresetShareArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    let store = &**engine;
    match arguments {
        PresetShareArguments::Share {
            name,
            version,
            password,
            expires_in_seconds,
            max_uses,
        } => {
            let name = &name;
            let expires_at_ms = match expires_in_seconds {
                None => None,
                Some(seconds)
                    if seconds.is_finite() && seconds > 0.0 && seconds <= 10.0 * 365.0 * 86_400.0 =>
                {
                    // Bounded above, so the product fits an i64 of milliseconds.
                    let milliseconds = (seconds * 1000.0).round() as i64;
                    Some(comfy_engine::types::now_ms() + milliseconds)
                }
                Some(seconds) => {
                    return Err(error_text(format!(
                        "expires_in_seconds must be more than 0 and at most ten years, got {seconds}"
                    )));
                }
            };
            let created = store
                .share_preset(ShareRequest {
                    preset: name.clone(),
                    version: version.clone(),
                    password: password.clone(),
                    expires_at_ms,
                    max_uses,
                    created_by: Some(client_identity(context)),
                })
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "access_code": created.code.reveal(),
                "note": "the code is shown only now and cannot be recovered: pass it on (with the password, separately) to whoever imports it with preset_share action=import_code",
                "share": created.share,
            })))
        }
        PresetShareArguments::List { name } => {
            let shares = store.list_shares(name.clone()).await.map_err(failed)?;
            Ok(json_result(&json!({"count": shares.len(), "shares": shares})))
        }
        PresetShareArguments::Revoke { share_id } => {
            let id = share_id;
            let share = store.revoke_share(id).await.map_err(|error| match error {
                StoreError::ShareNotFound => error_text(format!(
                    "no share with id {id}; preset_share action=list shows the shares"
                )),
                other => failed(other),
            })?;
            Ok(json_result(&json!({"revoked": true, "share": share})))
        }
        PresetShareArguments::ImportCode { code, password, name } => {
            let code = &code;
            let redemption = Redemption {
                code: code.clone(),
                password: password.clone(),
                client: client_identity(context),
                connection: super::tool::connection_key(context),
            };
            let preset = store
                .import_shared_preset(redemption, name.clone())
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "imported": preset.summary.name,
                "preset": summary_json(&preset.summary),
                "note": "a local preset with the shared version and its history; run it with preset action=apply",
            })))
        }
        PresetShareArguments::ExportBundle {
            name,
            path,
            overwrite,
        } => {
            let name = &name;
            let path = path.as_deref().map(|path| local_path(server, path)).transpose()?;
            let bundle = engine
                .export_preset_bundle(name, path, overwrite)
                .await
                .map_err(failed)?;
            match path {
                Some(path) => Ok(json_result(&json!({
                    "exported": bundle.name,
                    "path": path.display().to_string(),
                    "versions": bundle.versions.len(),
                    "head_version": bundle.head_version,
                }))),
                None => Ok(json_result(&json!({
                    "exported": bundle.name,
                    "versions": bundle.versions.len(),
                    "bundle": bundle,
                }))),
            }
        }
        PresetShareArguments::ImportBundle { bundle, path, name } => {
            let path = path.as_deref().map(|path| local_path(server, path)).transpose()?;
            // Some clients send JSON arguments as text.
            let bundle = match bundle.clone() {
                Some(Value::String(text)) => Some(
                    serde_json::from_str(&text)
                        .map_err(|error| error_text(format!("bundle is text but not JSON: {error}")))?,
                ),
                other => other,
            };
            let preset = engine
                .import_preset_bundle(bundle, path, name.clone())
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "imported": preset.summary.name,
                "preset": summary_json(&preset.summary),
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_workflow::Node;

    fn prompt(steps: u32, latent_from: &str) -> ApiPrompt {
        let mut prompt = ApiPrompt::new();
        prompt
            .nodes
            .insert("1".into(), Node::new("EmptyLatentImage").with("width", 64));
        prompt.nodes.insert(
            "2".into(),
            Node::new("KSampler")
                .with("steps", steps)
                .with_link("latent_image", latent_from, 0),
        );
        prompt
    }

    #[test]
    fn changes_read_as_one_line_each() {
        let old = prompt(4, "1");
        let mut new = prompt(8, "9");
        new.nodes.insert("9".into(), Node::new("EmptyLatentImage"));
        new.nodes.remove("1");
        let lines = change_lines(&comfy_workflow::diff(&old, &new).changes, &old, &new);
        assert_eq!(
            lines,
            [
                "- node 1 (EmptyLatentImage) removed",
                "~ node 2 (KSampler) link latent_image rewired: output 0 of node 1 -> output 0 of node 9",
                "~ node 2 (KSampler) input steps: 4 -> 8",
                "+ node 9 (EmptyLatentImage) added",
            ]
        );
    }

    #[test]
    fn arguments_an_action_does_not_use_are_refused() {
        let refused =
            serde_json::from_value::<PresetArguments>(json!({"action": "list", "tag": "x", "workflow": {}}))
                .expect_err("workflow is not used by list");
        assert!(
            refused.to_string().contains("unknown field `workflow`"),
            "{refused}"
        );
        let missing =
            serde_json::from_value::<PresetVersionArguments>(json!({"action": "rollback", "name": "p"}))
                .expect_err("rollback needs a version");
        assert!(
            missing.to_string().contains("missing field `version`"),
            "{missing}"
        );
        assert!(serde_json::from_value::<PresetArguments>(json!({"action": "list", "tag": "x"})).is_ok());
    }

    #[test]
    fn long_constants_are_shortened() {
        let long = Value::String("x".repeat(500));
        assert!(show_value(Some(&long)).chars().count() < 210);
        assert_eq!(show_value(None), "(unset)");
    }
}
