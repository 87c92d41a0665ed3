//! Presets: named workflows with git-like history. A version is content-addressed (its content is
//! stored under the SHA-256 of its canonical JSON) and points at its parents: none for a first
//! version, one for an edit, a rollback or a fork, two for a merge. A preset is a name, a head
//! version, tags and usage counts. Diffing and merging graphs happen elsewhere; this module stores
//! and fetches versions.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::error::{StoreError, invalid};
use crate::hashing::{canonical_json, sha256_hex};
use crate::store::Store;

/// Saves a new preset, or a new version of an existing one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavePreset {
    pub name: String,
    /// Replaces the description when set.
    pub description: Option<String>,
    /// Replaces the preset's tags when set.
    pub tags: Option<Vec<String>>,
    /// The workflow and whatever else the caller keeps in a preset.
    pub content: Value,
    /// Like a commit message.
    pub message: Option<String>,
}

/// A preset without its content, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresetSummary {
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// The id of the current version.
    pub head_version: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// How many times the preset was applied.
    pub use_count: i64,
    pub last_used_at_ms: Option<i64>,
}

/// A preset with the content of its head version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    #[serde(flatten)]
    pub summary: PresetSummary,
    pub content: Value,
}

/// One version without its content, as shown in a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSummary {
    /// SHA-256 hex over the content hash, the parents, the message and the time.
    pub id: String,
    /// SHA-256 hex of the canonical JSON of the content.
    pub content_hash: String,
    /// Empty for a first version, two entries for a merge.
    pub parents: Vec<String>,
    pub message: Option<String>,
    pub created_at_ms: i64,
    /// The preset's version tags that point here (only filled in a preset's context).
    pub tags: Vec<String>,
}

/// One version with its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresetVersion {
    #[serde(flatten)]
    pub summary: VersionSummary,
    pub content: Value,
}

pub(crate) struct PresetRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) head_version: String,
    created_at: i64,
    updated_at: i64,
    use_count: i64,
    last_used_at: Option<i64>,
}

/// Trims a user-given name and refuses empty, overlong or control-character names.
pub(crate) fn clean_name(field: &'static str, value: &str) -> Result<String, StoreError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > 200 {
        return Err(invalid(field, "must be at most 200 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(trimmed.to_owned())
}

pub(crate) fn clean_tags(tags: &[String]) -> Result<Vec<String>, StoreError> {
    let mut cleaned = tags
        .iter()
        .map(|tag| clean_name("tag", tag))
        .collect::<Result<Vec<_>, _>>()?;
    cleaned.sort();
    cleaned.dedup();
    Ok(cleaned)
}

pub(crate) fn find_preset(
    transaction: &Transaction<'_>,
    name: &str,
) -> Result<Option<PresetRow>, StoreError> {
    Ok(transaction
        .query_row(
            "SELECT id, name, description, head_version, created_at, updated_at, use_count, last_used_at
             FROM presets WHERE name = ?1",
            [name.trim()],
            |row| {
                Ok(PresetRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    description: row.get(2)?,
                    head_version: row.get(3)?,
                    created_at: row.get(4)?,
                    updated_at: row.get(5)?,
                    use_count: row.get(6)?,
                    last_used_at: row.get(7)?,
                })
            },
        )
        .optional()?)
}

pub(crate) fn require_preset(transaction: &Transaction<'_>, name: &str) -> Result<PresetRow, StoreError> {
    find_preset(transaction, name)?.ok_or_else(|| StoreError::PresetNotFound {
        name: name.trim().to_owned(),
    })
}

pub(crate) fn preset_tags(transaction: &Transaction<'_>, preset_id: i64) -> Result<Vec<String>, StoreError> {
    let mut statement =
        transaction.prepare_cached("SELECT tag FROM preset_tags WHERE preset_id = ?1 ORDER BY tag")?;
    Ok(statement
        .query_map([preset_id], |tag| tag.get(0))?
        .collect::<Result<Vec<String>, _>>()?)
}

fn summary(transaction: &Transaction<'_>, row: PresetRow) -> Result<PresetSummary, StoreError> {
    let tags = preset_tags(transaction, row.id)?;
    Ok(PresetSummary {
        name: row.name,
        description: row.description,
        tags,
        head_version: row.head_version,
        created_at_ms: row.created_at,
        updated_at_ms: row.updated_at,
        use_count: row.use_count,
        last_used_at_ms: row.last_used_at,
    })
}

pub(crate) fn full_preset(transaction: &Transaction<'_>, row: PresetRow) -> Result<Preset, StoreError> {
    let content = content_of_version(transaction, &row.head_version)?;
    Ok(Preset {
        summary: summary(transaction, row)?,
        content,
    })
}

/// Stores `content` under its hash (once) and returns the hash.
pub(crate) fn store_content(transaction: &Transaction<'_>, content: &Value) -> Result<String, StoreError> {
    let canonical = canonical_json(content);
    let hash = sha256_hex(canonical.as_bytes());
    transaction.execute(
        "INSERT OR IGNORE INTO preset_contents (hash, content) VALUES (?1, ?2)",
        params![hash, canonical],
    )?;
    Ok(hash)
}

fn parse_content(hash: &str, raw: &str) -> Result<Value, StoreError> {
    serde_json::from_str(raw).map_err(|source| StoreError::StoredJson {
        what: "preset content",
        id: hash.to_owned(),
        source,
    })
}

fn content_of_version(transaction: &Transaction<'_>, version_id: &str) -> Result<Value, StoreError> {
    let (hash, raw): (String, String) = transaction
        .query_row(
            "SELECT c.hash, c.content FROM preset_versions v JOIN preset_contents c ON c.hash = v.content_hash
             WHERE v.id = ?1",
            [version_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| StoreError::VersionNotFound { reference: version_id.to_owned() })?;
    parse_content(&hash, &raw)
}

pub(crate) fn content_hash_of_version(
    transaction: &Transaction<'_>,
    version_id: &str,
) -> Result<String, StoreError> {
    transaction
        .query_row(
            "SELECT content_hash FROM preset_versions WHERE id = ?1",
            [version_id],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::VersionNotFound {
            reference: version_id.to_owned(),
        })
}

/// The id a version gets: it covers everything that makes the version itself, like a git commit id.
pub(crate) fn version_id(
    content_hash: &str,
    parents: &[String],
    message: Option<&str>,
    created_at: i64,
) -> String {
    crate::hashing::content_hash(&json!({
        "content": content_hash,
        "parents": parents,
        "message": message,
        "created_at_ms": created_at,
    }))
}

/// Inserts a version object (or finds the identical one already stored) and returns its id.
pub(crate) fn insert_version(
    transaction: &Transaction<'_>,
    content_hash: &str,
    parents: &[String],
    message: Option<&str>,
    created_at: i64,
) -> Result<String, StoreError> {
    let id = version_id(content_hash, parents, message, created_at);
    insert_version_with_id(transaction, &id, content_hash, parents, message, created_at)?;
    Ok(id)
}

/// Inserts a version under a given id; imports keep the ids of the exporting database.
pub(crate) fn insert_version_with_id(
    transaction: &Transaction<'_>,
    id: &str,
    content_hash: &str,
    parents: &[String],
    message: Option<&str>,
    created_at: i64,
) -> Result<(), StoreError> {
    let inserted = transaction.execute(
        "INSERT OR IGNORE INTO preset_versions (id, content_hash, message, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, content_hash, message, created_at],
    )?;
    if inserted > 0 {
        for (position, parent) in parents.iter().enumerate() {
            transaction.execute(
                "INSERT INTO preset_version_parents (version_id, position, parent_id) VALUES (?1, ?2, ?3)",
                params![id, i64::try_from(position).unwrap_or(i64::MAX), parent],
            )?;
        }
    }
    Ok(())
}

fn parents_of(transaction: &Transaction<'_>, version_id: &str) -> Result<Vec<String>, StoreError> {
    let mut statement = transaction.prepare_cached(
        "SELECT parent_id FROM preset_version_parents WHERE version_id = ?1 ORDER BY position",
    )?;
    Ok(statement
        .query_map([version_id], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?)
}

fn version_tags(
    transaction: &Transaction<'_>,
    preset_id: Option<i64>,
    version_id: &str,
) -> Result<Vec<String>, StoreError> {
    let Some(preset_id) = preset_id else {
        return Ok(Vec::new());
    };
    let mut statement = transaction.prepare_cached(
        "SELECT tag FROM preset_version_tags WHERE preset_id = ?1 AND version_id = ?2 ORDER BY tag",
    )?;
    Ok(statement
        .query_map(params![preset_id, version_id], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?)
}

pub(crate) fn version_summary(
    transaction: &Transaction<'_>,
    preset_id: Option<i64>,
    version_id: &str,
) -> Result<VersionSummary, StoreError> {
    let (content_hash, message, created_at): (String, Option<String>, i64) = transaction
        .query_row(
            "SELECT content_hash, message, created_at FROM preset_versions WHERE id = ?1",
            [version_id],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?
        .ok_or_else(|| StoreError::VersionNotFound {
            reference: version_id.to_owned(),
        })?;
    Ok(VersionSummary {
        id: version_id.to_owned(),
        content_hash,
        parents: parents_of(transaction, version_id)?,
        message,
        created_at_ms: created_at,
        tags: version_tags(transaction, preset_id, version_id)?,
    })
}

pub(crate) fn full_version(
    transaction: &Transaction<'_>,
    preset_id: Option<i64>,
    version_id: &str,
) -> Result<PresetVersion, StoreError> {
    let summary = version_summary(transaction, preset_id, version_id)?;
    let content = content_of_version(transaction, version_id)?;
    Ok(PresetVersion { summary, content })
}

/// Ids of `head` and all its stored ancestors, in no particular order.
fn ancestor_ids(transaction: &Transaction<'_>, head: &str) -> Result<Vec<String>, StoreError> {
    // UNION (not UNION ALL) visits each version once even where merges make history a diamond.
    let mut statement = transaction.prepare_cached(
        "WITH RECURSIVE ancestry (id) AS (
             SELECT ?1
             UNION
             SELECT p.parent_id FROM preset_version_parents p JOIN ancestry a ON p.version_id = a.id
         )
         SELECT v.id FROM preset_versions v JOIN ancestry a ON v.id = a.id",
    )?;
    Ok(statement
        .query_map([head], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?)
}

/// `head` and all its stored ancestors, every version before its parents and otherwise newest first.
/// Times alone cannot order history: versions saved within one millisecond share a time.
pub(crate) fn history(
    transaction: &Transaction<'_>,
    preset_id: Option<i64>,
    head: &str,
) -> Result<Vec<VersionSummary>, StoreError> {
    use std::collections::{BinaryHeap, HashMap};

    let versions: HashMap<String, VersionSummary> = ancestor_ids(transaction, head)?
        .into_iter()
        .map(|id| Ok((id.clone(), version_summary(transaction, preset_id, &id)?)))
        .collect::<Result<_, StoreError>>()?;
    let mut waiting_children: HashMap<&str, usize> = HashMap::new();
    for version in versions.values() {
        for parent in version
            .parents
            .iter()
            .filter(|parent| versions.contains_key(*parent))
        {
            *waiting_children.entry(parent.as_str()).or_default() += 1;
        }
    }
    let mut ready: BinaryHeap<(i64, &str)> = versions
        .values()
        .filter(|version| !waiting_children.contains_key(version.id.as_str()))
        .map(|version| (version.created_at_ms, version.id.as_str()))
        .collect();
    let mut ordered = Vec::with_capacity(versions.len());
    while let Some((_, id)) = ready.pop() {
        let Some(version) = versions.get(id) else { continue };
        for parent in &version.parents {
            if let Some(count) = waiting_children.get_mut(parent.as_str()) {
                *count = count.saturating_sub(1);
                if *count == 0
                    && let Some(parent_version) = versions.get(parent.as_str())
                {
                    ready.push((parent_version.created_at_ms, parent_version.id.as_str()));
                }
            }
        }
        ordered.push(version.clone());
    }
    Ok(ordered)
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Resolves a version reference: one of the preset's version tags, a full version id, or a unique
/// prefix of at least 6 hex digits.
pub(crate) fn resolve_version(
    transaction: &Transaction<'_>,
    preset: Option<&PresetRow>,
    reference: &str,
) -> Result<String, StoreError> {
    let reference = reference.trim();
    let not_found = || StoreError::VersionNotFound {
        reference: reference.to_owned(),
    };
    if let Some(preset) = preset {
        if reference.eq_ignore_ascii_case("head") {
            return Ok(preset.head_version.clone());
        }
        let tagged: Option<String> = transaction
            .query_row(
                "SELECT version_id FROM preset_version_tags WHERE preset_id = ?1 AND tag = ?2",
                params![preset.id, reference],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(tagged) = tagged {
            return Ok(tagged);
        }
    }
    if reference.len() < 6 || reference.len() > 64 || !is_hex(reference) {
        return Err(not_found());
    }
    let prefix = reference.to_ascii_lowercase();
    // Only hex digits reach LIKE, so the pattern has no wildcards of its own.
    let mut statement =
        transaction.prepare_cached("SELECT id FROM preset_versions WHERE id LIKE ?1 || '%' LIMIT 2")?;
    let matches = statement
        .query_map([&prefix], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    match matches.as_slice() {
        [] => Err(not_found()),
        [only] => Ok(only.clone()),
        _ => Err(StoreError::AmbiguousVersion {
            reference: reference.to_owned(),
        }),
    }
}

fn replace_tags(transaction: &Transaction<'_>, preset_id: i64, tags: &[String]) -> Result<(), StoreError> {
    transaction.execute("DELETE FROM preset_tags WHERE preset_id = ?1", [preset_id])?;
    for tag in tags {
        transaction.execute(
            "INSERT INTO preset_tags (preset_id, tag) VALUES (?1, ?2)",
            params![preset_id, tag],
        )?;
    }
    Ok(())
}

/// Creates a preset whose head is `head_version`.
pub(crate) fn create_preset(
    transaction: &Transaction<'_>,
    name: &str,
    description: Option<&str>,
    tags: &[String],
    head_version: &str,
) -> Result<PresetRow, StoreError> {
    if find_preset(transaction, name)?.is_some() {
        return Err(StoreError::PresetExists {
            name: name.to_owned(),
        });
    }
    let now = now_ms();
    transaction.execute(
        "INSERT INTO presets (name, description, head_version, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![name, description, head_version, now],
    )?;
    let id = transaction.last_insert_rowid();
    replace_tags(transaction, id, tags)?;
    require_preset(transaction, name)
}

/// Appends a version with `content` and `parents` to a preset and moves its head there. Content equal
/// to the head's (with the head as the only parent) is no change and returns the head.
fn commit(
    transaction: &Transaction<'_>,
    preset: &PresetRow,
    content: &Value,
    parents: Vec<String>,
    message: Option<&str>,
) -> Result<String, StoreError> {
    let hash = store_content(transaction, content)?;
    if parents == [preset.head_version.clone()]
        && content_hash_of_version(transaction, &preset.head_version)? == hash
    {
        return Ok(preset.head_version.clone());
    }
    let now = now_ms();
    let id = insert_version(transaction, &hash, &parents, message, now)?;
    transaction.execute(
        "UPDATE presets SET head_version = ?2, updated_at = ?3 WHERE id = ?1",
        params![preset.id, id, now],
    )?;
    Ok(id)
}

fn save(transaction: &Transaction<'_>, request: &SavePreset) -> Result<Preset, StoreError> {
    let name = clean_name("preset name", &request.name)?;
    let tags = request.tags.as_deref().map(clean_tags).transpose()?;
    let message = request.message.as_deref();
    let row = match find_preset(transaction, &name)? {
        Some(row) => {
            let parents = vec![row.head_version.clone()];
            commit(transaction, &row, &request.content, parents, message)?;
            if let Some(description) = &request.description {
                transaction.execute(
                    "UPDATE presets SET description = ?2, updated_at = ?3 WHERE id = ?1",
                    params![row.id, description, now_ms()],
                )?;
            }
            if let Some(tags) = &tags {
                replace_tags(transaction, row.id, tags)?;
            }
            require_preset(transaction, &name)?
        }
        None => {
            let hash = store_content(transaction, &request.content)?;
            let version = insert_version(transaction, &hash, &[], message, now_ms())?;
            create_preset(
                transaction,
                &name,
                request.description.as_deref(),
                &tags.unwrap_or_default(),
                &version,
            )?
        }
    };
    full_preset(transaction, row)
}

/// Removes versions and contents that no preset can reach any more, so deleting a preset really
/// removes its workflows (unless a fork or another preset still holds them).
fn collect_garbage(transaction: &Transaction<'_>) -> Result<(), StoreError> {
    transaction.execute(
        "WITH RECURSIVE reachable (id) AS (
             SELECT head_version FROM presets
             UNION
             SELECT p.parent_id FROM preset_version_parents p JOIN reachable r ON p.version_id = r.id
         )
         DELETE FROM preset_versions WHERE id NOT IN (SELECT id FROM reachable)",
        [],
    )?;
    transaction.execute(
        "DELETE FROM preset_contents WHERE hash NOT IN (SELECT content_hash FROM preset_versions)",
        [],
    )?;
    Ok(())
}

impl Store {
    /// Creates a preset, or appends a version to an existing one (its head becomes the parent).
    /// Saving content identical to the head creates no version but still updates description and tags.
    pub async fn save_preset(&self, request: SavePreset) -> Result<Preset, StoreError> {
        self.write(move |transaction| save(transaction, &request)).await
    }

    /// Records a merge: a new version with `content` whose parents are the preset's head and `other`
    /// (any version reference, typically another preset's head id).
    pub async fn merge_preset(
        &self,
        name: &str,
        other: &str,
        content: Value,
        message: Option<String>,
    ) -> Result<PresetVersion, StoreError> {
        let (name, other) = (name.to_owned(), other.to_owned());
        self.write(move |transaction| {
            let row = require_preset(transaction, &name)?;
            let other = resolve_version(transaction, Some(&row), &other)?;
            let parents = vec![row.head_version.clone(), other];
            let id = commit(transaction, &row, &content, parents, message.as_deref())?;
            full_version(transaction, Some(row.id), &id)
        })
        .await
    }

    /// Presets, by name; only those with `tag` when given.
    pub async fn list_presets(&self, tag: Option<String>) -> Result<Vec<PresetSummary>, StoreError> {
        self.read(move |transaction| {
            let names: Vec<String> = match &tag {
                Some(tag) => {
                    let mut statement = transaction.prepare(
                        "SELECT p.name FROM presets p JOIN preset_tags t ON t.preset_id = p.id
                         WHERE t.tag = ?1 ORDER BY p.name",
                    )?;
                    statement
                        .query_map([tag.trim()], |row| row.get(0))?
                        .collect::<Result<_, _>>()?
                }
                None => {
                    let mut statement = transaction.prepare("SELECT name FROM presets ORDER BY name")?;
                    statement
                        .query_map([], |row| row.get(0))?
                        .collect::<Result<_, _>>()?
                }
            };
            names
                .iter()
                .map(|name| summary(transaction, require_preset(transaction, name)?))
                .collect()
        })
        .await
    }

    /// A preset with the content of its head.
    pub async fn get_preset(&self, name: &str) -> Result<Preset, StoreError> {
        let name = name.to_owned();
        self.read(move |transaction| full_preset(transaction, require_preset(transaction, &name)?))
            .await
    }

    /// Returns the preset's head content and records one use (count, time, client).
    pub async fn apply_preset(&self, name: &str, client: Option<String>) -> Result<Preset, StoreError> {
        let name = name.to_owned();
        self.write(move |transaction| {
            let row = require_preset(transaction, &name)?;
            let now = now_ms();
            transaction.execute(
                "UPDATE presets SET use_count = use_count + 1, last_used_at = ?2 WHERE id = ?1",
                params![row.id, now],
            )?;
            transaction.execute(
                "INSERT INTO preset_uses (preset_id, version_id, client, used_at) VALUES (?1, ?2, ?3, ?4)",
                params![row.id, row.head_version, client, now],
            )?;
            full_preset(transaction, require_preset(transaction, &name)?)
        })
        .await
    }

    /// Deletes a preset with its tags, usage and shares; versions no other preset reaches go too.
    pub async fn delete_preset(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |transaction| {
            let row = require_preset(transaction, &name)?;
            transaction.execute("DELETE FROM presets WHERE id = ?1", [row.id])?;
            collect_garbage(transaction)
        })
        .await
    }

    /// One version of a preset, by reference: a version tag, `head`, an id or an id prefix.
    pub async fn get_preset_version(&self, name: &str, reference: &str) -> Result<PresetVersion, StoreError> {
        let (name, reference) = (name.to_owned(), reference.to_owned());
        self.read(move |transaction| {
            let row = require_preset(transaction, &name)?;
            let id = resolve_version(transaction, Some(&row), &reference)?;
            full_version(transaction, Some(row.id), &id)
        })
        .await
    }

    /// The preset's history from its head back (through merges and into a fork's source), newest first.
    pub async fn preset_log(
        &self,
        name: &str,
        limit: Option<u32>,
    ) -> Result<Vec<VersionSummary>, StoreError> {
        let name = name.to_owned();
        self.read(move |transaction| {
            let row = require_preset(transaction, &name)?;
            let mut versions = history(transaction, Some(row.id), &row.head_version)?;
            versions.truncate(limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX)));
            Ok(versions)
        })
        .await
    }

    /// Points the preset's version tag `tag` at a version in its history (moving it if it existed).
    pub async fn tag_preset_version(
        &self,
        name: &str,
        tag: &str,
        reference: &str,
    ) -> Result<VersionSummary, StoreError> {
        let (name, tag, reference) = (name.to_owned(), tag.to_owned(), reference.to_owned());
        self.write(move |transaction| {
            let tag = clean_name("version tag", &tag)?;
            let row = require_preset(transaction, &name)?;
            let id = resolve_version(transaction, Some(&row), &reference)?;
            if !ancestor_ids(transaction, &row.head_version)?.contains(&id) {
                return Err(StoreError::VersionNotFound { reference: format!("{reference} in the history of {name}") });
            }
            transaction.execute(
                "INSERT INTO preset_version_tags (preset_id, tag, version_id, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (preset_id, tag) DO UPDATE SET version_id = excluded.version_id,
                 created_at = excluded.created_at",
                params![row.id, tag, id, now_ms()],
            )?;
            version_summary(transaction, Some(row.id), &id)
        })
        .await
    }

    /// Removes a version tag; returns whether it existed.
    pub async fn untag_preset_version(&self, name: &str, tag: &str) -> Result<bool, StoreError> {
        let (name, tag) = (name.to_owned(), tag.to_owned());
        self.write(move |transaction| {
            let row = require_preset(transaction, &name)?;
            let removed = transaction.execute(
                "DELETE FROM preset_version_tags WHERE preset_id = ?1 AND tag = ?2",
                params![row.id, tag.trim()],
            )?;
            Ok(removed > 0)
        })
        .await
    }

    /// Makes a new head version whose content is that of an earlier version; history is kept.
    pub async fn rollback_preset(
        &self,
        name: &str,
        reference: &str,
        message: Option<String>,
    ) -> Result<PresetVersion, StoreError> {
        let (name, reference) = (name.to_owned(), reference.to_owned());
        self.write(move |transaction| {
            let row = require_preset(transaction, &name)?;
            let target = resolve_version(transaction, Some(&row), &reference)?;
            let content = content_of_version(transaction, &target)?;
            let message = message.unwrap_or_else(|| format!("rollback to {target}"));
            let parents = vec![row.head_version.clone()];
            let id = commit(transaction, &row, &content, parents, Some(&message))?;
            full_version(transaction, Some(row.id), &id)
        })
        .await
    }

    /// Creates preset `new_name` whose first version has the content of `source`'s version `reference`
    /// (its head when `None`) and points at it.
    pub async fn fork_preset(
        &self,
        source: &str,
        reference: Option<String>,
        new_name: &str,
        description: Option<String>,
    ) -> Result<Preset, StoreError> {
        let (source, new_name) = (source.to_owned(), new_name.to_owned());
        self.write(move |transaction| {
            let new_name = clean_name("preset name", &new_name)?;
            let row = require_preset(transaction, &source)?;
            let from = match &reference {
                Some(reference) => resolve_version(transaction, Some(&row), reference)?,
                None => row.head_version.clone(),
            };
            let hash = content_hash_of_version(transaction, &from)?;
            let message = format!("fork of {} at {from}", row.name);
            let version = insert_version(transaction, &hash, &[from], Some(&message), now_ms())?;
            let tags = summary(transaction, require_preset(transaction, &source)?)?.tags;
            let description = description.or(row.description.clone());
            let created = create_preset(transaction, &new_name, description.as_deref(), &tags, &version)?;
            full_preset(transaction, created)
        })
        .await
    }
}
