//! The `workflows` toolset's presets: named workflows with git-like versions and sharing, as three
//! tools whose `action` picks the operation (`preset`, `preset_version`, `preset_share`). Each tool
//! parses its arguments, calls the engine or the store and renders; nothing else.

use std::path::Path;

use comfy_engine::types::{Redemption, ShareRequest, StoreError, VersionSummary};
use comfy_workflow::{ApiPrompt, Change, Conflict, InputValue};
use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::render::{engine_error, error_text, json_result};
use super::{ComfyServer, annotations, arguments, follow_job, job_answer, tool, wait_limit};
use comfy_engine::presets::{MergeOutcome, MergeRequest, PresetError, PresetSaveRequest, short_id};

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum PresetAction {
    Save,
    List,
    Get,
    Apply,
    Delete,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PresetArguments {
    /// save: store `workflow` as preset `name` (a new preset, or a new version of it);
    /// list: presets with tags and usage counts (only those tagged `tag` when given);
    /// get: a preset's workflow (its head, or `version`);
    /// apply: run the preset's head with `overrides`, wait like run_workflow, count one use;
    /// delete: remove the preset with its history, tags and shares.
    action: PresetAction,
    /// The preset's name (every action but list).
    name: Option<String>,
    /// save: the workflow in API format (node id -> {class_type, inputs}, as "Export (API)" saves it)
    /// or UI format (a saved .json with nodes and links; converted with the backend's node definitions).
    workflow: Option<Value>,
    /// save: what the preset is for (replaces the old description).
    description: Option<String>,
    /// save: the preset's tags (replace the old ones).
    tags: Option<Vec<String>>,
    /// save: like a commit message for the new version.
    message: Option<String>,
    /// list: only presets with this tag.
    tag: Option<String>,
    /// get: which version: a version tag, "head", a version id or an id prefix (at least 6 characters).
    version: Option<String>,
    /// apply: input overrides as run_workflow takes them, e.g. {"3.seed": 42, "6.text": "a red fox"}
    /// ("NODE_ID.INPUT"; see the workflow from action=get for node ids).
    overrides: Option<Map<String, Value>>,
    /// apply: seconds to wait before returning the job id instead (default and maximum: the server's limit).
    wait_seconds: Option<f64>,
    /// save (UI format) and apply: backend name when several are configured.
    backend: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum VersionAction {
    Log,
    Diff,
    Rollback,
    Fork,
    Merge,
    Tag,
    Untag,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PresetVersionArguments {
    /// log: the history from the head back (ids, parents, messages, tags), newest first;
    /// diff: what changed between two versions, node by node (`from` defaults to the parent of `to`, `to` to the head);
    /// rollback: a new head version with the content of `version` (history is kept);
    /// fork: a new preset `new_name` starting at `version` (default the head);
    /// merge: three-way merge of "theirs" (`from_preset`'s head and/or `version`) into this preset's head from
    /// their common base; a clean merge becomes the new head, conflicts are listed and nothing is stored;
    /// tag: point version tag `tag` at `version` (default the head); untag: remove version tag `tag`.
    action: VersionAction,
    /// The preset.
    name: String,
    /// A version reference: a version tag, "head", a version id or an id prefix (at least 6 characters).
    /// rollback: the target (required); fork: the fork point; merge: "theirs"; tag: the version to tag.
    version: Option<String>,
    /// diff: the older version (default: the first parent of `to`).
    from: Option<String>,
    /// diff: the newer version (default: the head).
    to: Option<String>,
    /// log: at most this many versions (default all).
    limit: Option<u32>,
    /// fork: the new preset's name.
    new_name: Option<String>,
    /// fork: the new preset's description (default: the source's).
    description: Option<String>,
    /// merge: take "theirs" from this preset (typically a fork): its head, or `version` in it.
    from_preset: Option<String>,
    /// merge: the common base (default: the newest version both histories share).
    base: Option<String>,
    /// merge: after conflicts, the resolved workflow to store as the merge (API or UI format).
    workflow: Option<Value>,
    /// tag, untag: the version tag's name, e.g. "v1" or "approved".
    tag: Option<String>,
    /// rollback, merge: the new version's message.
    message: Option<String>,
    /// merge with a UI-format `workflow`: the backend whose node definitions convert it.
    backend: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ShareAction {
    Share,
    List,
    Revoke,
    ImportCode,
    ExportBundle,
    ImportBundle,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PresetShareArguments {
    /// share: make an access code for preset `name` (its head, or `version`), shown once, with optional
    /// `password`, `expires_in_seconds` and `max_uses`; list: shares (of `name` when given) with their use counts;
    /// revoke: stop share `share_id` at once; import_code: redeem `code` (+ `password`) into a new preset
    /// (named `name`, default the shared name); export_bundle: the preset with its whole history as JSON,
    /// returned inline or written to `path`; import_bundle: a bundle from `bundle` (inline JSON) or `path`
    /// as a new preset (named `name`, default the bundle's).
    action: ShareAction,
    /// share, export_bundle: the preset; list: only its shares; import_code, import_bundle: the new preset's name.
    name: Option<String>,
    /// share: which version (default the head): a version tag, "head", an id or an id prefix.
    version: Option<String>,
    /// share: require this password to redeem; import_code: the share's password.
    password: Option<String>,
    /// share: the code stops working after this many seconds (default never).
    expires_in_seconds: Option<f64>,
    /// share: the code works this many times (default unlimited).
    max_uses: Option<u32>,
    /// revoke: the share's id (from share or list).
    share_id: Option<i64>,
    /// import_code: the access code as given (case, spaces and hyphens do not matter).
    code: Option<String>,
    /// export_bundle, import_bundle: a file on the machine running this server (only where local files
    /// are allowed); export_bundle without it returns the bundle inline.
    path: Option<String>,
    /// export_bundle with `path`: replace an existing file (default false: refuse).
    #[serde(default)]
    overwrite: bool,
    /// import_bundle: the bundle JSON as export_bundle returned it (an object, or that object as a string).
    bundle: Option<Value>,
}

pub fn tools() -> Vec<Tool> {
    vec![
        tool::<PresetArguments>(
            "preset",
            "Saved workflows (presets) by name. action=save stores a workflow (API or UI format) as a new preset or a new \
             version of one, with description and tags; list shows presets with tags and usage counts (filter by tag); \
             get returns a preset's workflow (head or any version); apply runs the head with overrides like run_workflow's \
             (validated first, bounded wait, outputs or a job_id for get_job) and counts a use; \
             delete removes a preset with its history and shares.",
            annotations(false, true, false),
        ),
        tool::<PresetVersionArguments>(
            "preset_version",
            "Git-like history of a preset: every save is a content-addressed version with parents. action=log lists \
             versions newest first; diff compares two versions node by node (node added/removed, input old -> new, link \
             rewired); rollback makes a new head with an older version's content; fork copies a version into a new \
             preset; merge does a three-way merge of another version or a fork's head into the head from their common \
             base (conflicts are listed and nothing is stored; call again with `workflow` to store a resolution); \
             tag/untag name versions (usable wherever a version is asked for).",
            annotations(false, false, false),
        ),
        tool::<PresetShareArguments>(
            "preset_share",
            "Share presets. action=share makes an access code for a preset version (shown only once) with optional \
             password, expiry and use limit; list shows shares and their use counts; revoke stops a share at once; \
             import_code redeems a code (+ password) into a new local preset with its history (failed attempts are \
             rate-limited and audited); export_bundle gives a preset with its whole history as JSON (inline, or to a \
             file where local files are allowed); import_bundle loads such a bundle (inline or from a file) after \
             checking its hashes.",
            annotations(false, false, false),
        ),
    ]
}

/// Runs one of this file's tools; `None` when `name` is not one of them.
pub async fn call(
    server: &ComfyServer,
    name: &str,
    raw: Option<JsonObject>,
    context: &RequestContext<RoleServer>,
) -> Option<CallToolResult> {
    let outcome = match name {
        "preset" => preset(server, raw, context).await,
        "preset_version" => preset_version(server, raw).await,
        "preset_share" => preset_share(server, raw, context).await,
        _ => return None,
    };
    Some(outcome.unwrap_or_else(|error| error))
}

type ToolOutcome = Result<CallToolResult, CallToolResult>;

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
fn only(tool: &str, action: &str, raw: &Option<JsonObject>, allowed: &[&str]) -> Result<(), CallToolResult> {
    let unused: Vec<&str> = raw
        .iter()
        .flat_map(|map| map.keys())
        .map(String::as_str)
        .filter(|key| *key != "action" && !allowed.contains(key))
        .collect();
    if unused.is_empty() {
        return Ok(());
    }
    Err(error_text(format!(
        "{tool} action={action} does not use {}; it takes {}",
        unused.join(", "),
        if allowed.is_empty() {
            "no other arguments".to_owned()
        } else {
            allowed.join(", ")
        }
    )))
}

fn required<'a, T>(value: &'a Option<T>, what: &str, action: &str) -> Result<&'a T, CallToolResult> {
    value
        .as_ref()
        .ok_or_else(|| error_text(format!("action={action} needs `{what}`")))
}

/// The client identity for share rate limits and usage: the MCP client's name, or "anonymous".
fn client_identity(context: &RequestContext<RoleServer>) -> String {
    context
        .peer
        .peer_info()
        .map(|info| info.client_info.name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "anonymous".to_owned())
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
    raw: Option<JsonObject>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let keys = raw.clone();
    let arguments: PresetArguments = arguments("preset", raw)?;
    let engine = &server.engine;
    let name = || required(&arguments.name, "name", "this action");
    match arguments.action {
        PresetAction::Save => {
            only(
                "preset",
                "save",
                &keys,
                &["name", "workflow", "description", "tags", "message", "backend"],
            )?;
            let request = PresetSaveRequest {
                name: required(&arguments.name, "name", "save")?.clone(),
                workflow: required(&arguments.workflow, "workflow", "save")?.clone(),
                description: arguments.description,
                tags: arguments.tags,
                message: arguments.message,
                backend: arguments.backend,
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
        PresetAction::List => {
            only("preset", "list", &keys, &["tag"])?;
            let presets = engine.list_presets(arguments.tag.clone()).await.map_err(failed)?;
            Ok(json_result(&json!({
                "count": presets.len(),
                "tag": arguments.tag,
                "presets": presets.iter().map(summary_json).collect::<Vec<_>>(),
            })))
        }
        PresetAction::Get => {
            only("preset", "get", &keys, &["name", "version"])?;
            let name = name()?;
            let preset = engine.get_preset(name).await.map_err(failed)?;
            let version = engine
                .get_preset_version(name, arguments.version.as_deref().unwrap_or("head"))
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "preset": summary_json(&preset.summary),
                "version": version_json(&version.summary),
                "is_head": version.summary.id == preset.summary.head_version,
                "workflow": version.content,
            })))
        }
        PresetAction::Apply => {
            only(
                "preset",
                "apply",
                &keys,
                &["name", "overrides", "wait_seconds", "backend"],
            )?;
            let name = name()?;
            let limit = wait_limit(server, arguments.wait_seconds, server.engine.config.wait)?;
            let overrides = arguments.overrides.clone().unwrap_or_default();
            let (entry, mut job, preset) = engine
                .apply_preset(
                    name,
                    &overrides,
                    arguments.backend.as_deref(),
                    &client_identity(context),
                )
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
        PresetAction::Delete => {
            only("preset", "delete", &keys, &["name"])?;
            let name = name()?;
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

async fn preset_version(server: &ComfyServer, raw: Option<JsonObject>) -> ToolOutcome {
    let keys = raw.clone();
    let arguments: PresetVersionArguments = arguments("preset_version", raw)?;
    let engine = &server.engine;
    let store = &**engine;
    let name = arguments.name.as_str();
    match arguments.action {
        VersionAction::Log => {
            only("preset_version", "log", &keys, &["name", "limit"])?;
            let versions = store.preset_log(name, arguments.limit).await.map_err(failed)?;
            Ok(json_result(&json!({
                "preset": name.trim(),
                "head": versions.first().map(|version| version.id.clone()),
                "count": versions.len(),
                "versions": versions.iter().map(version_json).collect::<Vec<_>>(),
            })))
        }
        VersionAction::Diff => {
            only("preset_version", "diff", &keys, &["name", "from", "to"])?;
            let compared = engine
                .diff_preset_versions(name, arguments.from.as_deref(), arguments.to.as_deref())
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
        VersionAction::Rollback => {
            only(
                "preset_version",
                "rollback",
                &keys,
                &["name", "version", "message"],
            )?;
            let target = required(&arguments.version, "version", "rollback")?;
            let version = store
                .rollback_preset(name, target, arguments.message.clone())
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "preset": name.trim(),
                "rolled_back_to": target,
                "head": version_json(&version.summary),
                "note": "a new head version with the old content; the versions in between stay in the log",
            })))
        }
        VersionAction::Fork => {
            only(
                "preset_version",
                "fork",
                &keys,
                &["name", "version", "new_name", "description"],
            )?;
            let new_name = required(&arguments.new_name, "new_name", "fork")?;
            let forked = store
                .fork_preset(
                    name,
                    arguments.version.clone(),
                    new_name,
                    arguments.description.clone(),
                )
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
        VersionAction::Merge => {
            only(
                "preset_version",
                "merge",
                &keys,
                &[
                    "name",
                    "version",
                    "from_preset",
                    "base",
                    "workflow",
                    "message",
                    "backend",
                ],
            )?;
            let request = MergeRequest {
                name: name.to_owned(),
                from_preset: arguments.from_preset.clone(),
                version: arguments.version.clone(),
                base: arguments.base.clone(),
                resolution: arguments.workflow.clone(),
                message: arguments.message.clone(),
                backend: arguments.backend.clone(),
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
        VersionAction::Tag => {
            only("preset_version", "tag", &keys, &["name", "tag", "version"])?;
            let tag = required(&arguments.tag, "tag", "tag")?;
            let version = store
                .tag_preset_version(name, tag, arguments.version.as_deref().unwrap_or("head"))
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "preset": name.trim(),
                "tag": tag.trim(),
                "version": version_json(&version),
                "note": format!("use {:?} wherever a version is asked for", tag.trim()),
            })))
        }
        VersionAction::Untag => {
            only("preset_version", "untag", &keys, &["name", "tag"])?;
            let tag = required(&arguments.tag, "tag", "untag")?;
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
    raw: Option<JsonObject>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let keys = raw.clone();
    let arguments: PresetShareArguments = arguments("preset_share", raw)?;
    let engine = &server.engine;
    let store = &**engine;
    match arguments.action {
        ShareAction::Share => {
            only(
                "preset_share",
                "share",
                &keys,
                &["name", "version", "password", "expires_in_seconds", "max_uses"],
            )?;
            let name = required(&arguments.name, "name", "share")?;
            let expires_at_ms = match arguments.expires_in_seconds {
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
                    version: arguments.version.clone(),
                    password: arguments.password.clone(),
                    expires_at_ms,
                    max_uses: arguments.max_uses,
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
        ShareAction::List => {
            only("preset_share", "list", &keys, &["name"])?;
            let shares = store.list_shares(arguments.name.clone()).await.map_err(failed)?;
            Ok(json_result(&json!({"count": shares.len(), "shares": shares})))
        }
        ShareAction::Revoke => {
            only("preset_share", "revoke", &keys, &["share_id"])?;
            let id = *required(&arguments.share_id, "share_id", "revoke")?;
            let share = store.revoke_share(id).await.map_err(|error| match error {
                StoreError::ShareNotFound => error_text(format!(
                    "no share with id {id}; preset_share action=list shows the shares"
                )),
                other => failed(other),
            })?;
            Ok(json_result(&json!({"revoked": true, "share": share})))
        }
        ShareAction::ImportCode => {
            only(
                "preset_share",
                "import_code",
                &keys,
                &["code", "password", "name"],
            )?;
            let code = required(&arguments.code, "code", "import_code")?;
            let redemption = Redemption {
                code: code.clone(),
                password: arguments.password.clone(),
                client: client_identity(context),
                connection: super::connection_key(context),
            };
            let preset = store
                .import_shared_preset(redemption, arguments.name.clone())
                .await
                .map_err(failed)?;
            Ok(json_result(&json!({
                "imported": preset.summary.name,
                "preset": summary_json(&preset.summary),
                "note": "a local preset with the shared version and its history; run it with preset action=apply",
            })))
        }
        ShareAction::ExportBundle => {
            only(
                "preset_share",
                "export_bundle",
                &keys,
                &["name", "path", "overwrite"],
            )?;
            let name = required(&arguments.name, "name", "export_bundle")?;
            let path = arguments
                .path
                .as_deref()
                .map(|path| local_path(server, path))
                .transpose()?;
            let bundle = engine
                .export_preset_bundle(name, path, arguments.overwrite)
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
        ShareAction::ImportBundle => {
            only(
                "preset_share",
                "import_bundle",
                &keys,
                &["bundle", "path", "name"],
            )?;
            let path = arguments
                .path
                .as_deref()
                .map(|path| local_path(server, path))
                .transpose()?;
            // Some clients send JSON arguments as text.
            let bundle = match arguments.bundle.clone() {
                Some(Value::String(text)) => Some(
                    serde_json::from_str(&text)
                        .map_err(|error| error_text(format!("bundle is text but not JSON: {error}")))?,
                ),
                other => other,
            };
            let preset = engine
                .import_preset_bundle(bundle, path, arguments.name.clone())
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
        let raw: Option<JsonObject> =
            serde_json::from_value(json!({"action": "list", "tag": "x", "workflow": {}})).ok();
        let refused = only("preset", "list", &raw, &["tag"]).expect_err("workflow is not used by list");
        let text = refused.content[0]
            .as_text()
            .map(|text| text.text.clone())
            .unwrap_or_default();
        assert!(text.contains("does not use workflow"), "{text}");
        assert!(only("preset", "list", &raw, &["tag", "workflow"]).is_ok());
    }

    #[test]
    fn long_constants_are_shortened() {
        let long = Value::String("x".repeat(500));
        assert!(show_value(Some(&long)).chars().count() < 210);
        assert_eq!(show_value(None), "(unset)");
    }
}
