//! Sharing presets: portable bundles (a preset with its version history as JSON) and access codes
//! that let another client import a shared version, with optional password, expiry, use limit and
//! revocation. Failed redemptions are rate-limited per client and written to the audit log.

use std::collections::BTreeMap;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access_code::{self, AccessCode};
use crate::audit::{self, AuditEntry, AuditOutcome};
use crate::clock::now_ms;
use crate::error::{StoreError, invalid};
use crate::hashing::{content_hash, sha256_hex};
use crate::presets::{
    self, Preset, clean_name, clean_tags, create_preset, full_preset, history, insert_version_with_id,
    require_preset, resolve_version, store_content, version_id,
};
use crate::store::Store;

/// The `format` field of every bundle.
pub const BUNDLE_FORMAT: &str = "comfyui-mcp/preset-bundle";
/// The bundle layout this build writes and reads.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;
/// The tool name under which refused and successful redemptions appear in the audit log.
pub const SHARE_AUDIT_TOOL: &str = "share_redeem";

/// A preset with its history, for export and import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresetBundle {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub head_version: String,
    /// The head and its ancestors, each before its parents.
    pub versions: Vec<BundleVersion>,
    /// Version tags: tag name to version id.
    pub version_tags: BTreeMap<String, String>,
}

/// One version in a bundle; its id and content hash are checked on import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleVersion {
    pub id: String,
    pub content_hash: String,
    pub parents: Vec<String>,
    pub message: Option<String>,
    pub created_at_ms: i64,
    pub content: Value,
}

/// What to share.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ShareRequest {
    pub preset: String,
    /// A version reference; the head when `None`.
    pub version: Option<String>,
    /// Hashed with argon2id; never stored in clear.
    pub password: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub max_uses: Option<u32>,
    pub created_by: Option<String>,
}

impl std::fmt::Debug for ShareRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ShareRequest")
            .field("preset", &self.preset)
            .field("version", &self.version)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("max_uses", &self.max_uses)
            .field("created_by", &self.created_by)
            .finish()
    }
}

/// A share as stored (without its code, which only its creator ever sees).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    pub id: i64,
    pub preset: String,
    pub version_id: String,
    pub has_password: bool,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub max_uses: Option<u32>,
    pub use_count: i64,
    pub revoked_at_ms: Option<i64>,
}

/// A new share and its code; the code is shown once and cannot be recovered later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedShare {
    pub code: AccessCode,
    pub share: ShareRecord,
}

/// A redemption attempt.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Redemption {
    /// As typed: case, spaces and hyphens do not matter.
    pub code: String,
    pub password: Option<String>,
    /// The client identity the audit log records (what the client calls itself).
    pub client: String,
    /// What the wrong-code rate limit counts against: the connection (an HTTP peer address, a
    /// stdio process), which a client cannot rename; the client name when empty.
    pub connection: String,
}

impl std::fmt::Debug for Redemption {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Redemption")
            .field("code", &"<redacted>")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client", &self.client)
            .field("connection", &self.connection)
            .finish()
    }
}

fn bundle_for(
    transaction: &Transaction<'_>,
    preset: &presets::PresetRow,
    head: &str,
) -> Result<PresetBundle, StoreError> {
    let versions = history(transaction, Some(preset.id), head)?
        .into_iter()
        .map(|version| {
            let content = presets::full_version(transaction, None, &version.id)?.content;
            Ok(BundleVersion {
                id: version.id,
                content_hash: version.content_hash,
                parents: version.parents,
                message: version.message,
                created_at_ms: version.created_at_ms,
                content,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut statement = transaction
        .prepare("SELECT tag, version_id FROM preset_version_tags WHERE preset_id = ?1 ORDER BY tag")?;
    let version_tags = statement
        .query_map([preset.id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|(_, id)| versions.iter().any(|version| &version.id == id))
        .collect();
    let tags = presets::preset_tags(transaction, preset.id)?;
    Ok(PresetBundle {
        format: BUNDLE_FORMAT.to_owned(),
        format_version: BUNDLE_FORMAT_VERSION,
        name: preset.name.clone(),
        description: preset.description.clone(),
        tags,
        head_version: head.to_owned(),
        versions,
        version_tags,
    })
}

fn bad_bundle(reason: impl Into<String>) -> StoreError {
    StoreError::InvalidBundle {
        reason: reason.into(),
    }
}

/// Checks a bundle's integrity: every content matches its hash and every id matches its version.
fn check_bundle(bundle: &PresetBundle) -> Result<(), StoreError> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(bad_bundle(format!(
            "format is {:?}, expected {BUNDLE_FORMAT:?}",
            bundle.format
        )));
    }
    if bundle.format_version != BUNDLE_FORMAT_VERSION {
        return Err(bad_bundle(format!(
            "format version {} is not supported (this build reads {BUNDLE_FORMAT_VERSION})",
            bundle.format_version
        )));
    }
    for version in &bundle.versions {
        if content_hash(&version.content) != version.content_hash {
            return Err(bad_bundle(format!(
                "the content of version {} does not match its hash",
                version.id
            )));
        }
        let expected = version_id(
            &version.content_hash,
            &version.parents,
            version.message.as_deref(),
            version.created_at_ms,
        );
        if expected != version.id {
            return Err(bad_bundle(format!(
                "version {} does not match its fields",
                version.id
            )));
        }
    }
    let known = |id: &String| bundle.versions.iter().any(|version| &version.id == id);
    if !known(&bundle.head_version) {
        return Err(bad_bundle("the head version is not in the bundle"));
    }
    if let Some((tag, _)) = bundle.version_tags.iter().find(|(_, id)| !known(id)) {
        return Err(bad_bundle(format!("version tag {tag} points outside the bundle")));
    }
    Ok(())
}

fn import_bundle(
    transaction: &Transaction<'_>,
    bundle: &PresetBundle,
    name: Option<&str>,
) -> Result<Preset, StoreError> {
    check_bundle(bundle)?;
    let name = clean_name("preset name", name.unwrap_or(&bundle.name))?;
    let tags = clean_tags(&bundle.tags)?;
    // Parents first, so that a version's parents exist when it is inserted wherever they can.
    for version in bundle.versions.iter().rev() {
        let hash = store_content(transaction, &version.content)?;
        insert_version_with_id(
            transaction,
            &version.id,
            &hash,
            &version.parents,
            version.message.as_deref(),
            version.created_at_ms,
        )?;
    }
    let row = create_preset(
        transaction,
        &name,
        bundle.description.as_deref(),
        &tags,
        &bundle.head_version,
    )?;
    for (tag, id) in &bundle.version_tags {
        transaction.execute(
            "INSERT INTO preset_version_tags (preset_id, tag, version_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![row.id, clean_name("version tag", tag)?, id, now_ms()],
        )?;
    }
    full_preset(transaction, row)
}

const SHARE_COLUMNS: &str = "s.id, p.name, s.version_id, s.password_hash IS NOT NULL, s.created_by, s.created_at, \
     s.expires_at, s.max_uses, s.use_count, s.revoked_at";

fn share_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ShareRecord> {
    Ok(ShareRecord {
        id: row.get(0)?,
        preset: row.get(1)?,
        version_id: row.get(2)?,
        has_password: row.get(3)?,
        created_by: row.get(4)?,
        created_at_ms: row.get(5)?,
        expires_at_ms: row.get(6)?,
        max_uses: row.get(7)?,
        use_count: row.get(8)?,
        revoked_at_ms: row.get(9)?,
    })
}

fn share_by_id(transaction: &Transaction<'_>, id: i64) -> Result<Option<ShareRecord>, StoreError> {
    Ok(transaction
        .query_row(
            &format!("SELECT {SHARE_COLUMNS} FROM preset_shares s JOIN presets p ON p.id = s.preset_id WHERE s.id = ?1"),
            [id],
            share_from_row,
        )
        .optional()?)
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    if password.is_empty() {
        return Err(invalid(
            "share password",
            "must not be empty (leave it out for no password)",
        ));
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| StoreError::PasswordHash {
            message: error.to_string(),
        })
}

fn password_matches(password: &str, stored: &str) -> Result<bool, StoreError> {
    let parsed = PasswordHash::new(stored).map_err(|error| StoreError::PasswordHash {
        message: error.to_string(),
    })?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// The parts of a share a redemption checks.
struct ShareGate {
    id: i64,
    preset_id: i64,
    version_id: String,
    password_hash: Option<String>,
    expires_at: Option<i64>,
    max_uses: Option<i64>,
    use_count: i64,
    revoked_at: Option<i64>,
}

struct Limits {
    attempts: u32,
    window_ms: i64,
}

/// Checks a redemption and, when it is good, counts a use and returns the shared bundle. Every
/// outcome is audited; failures of code or password also count against the client's rate limit.
/// The returned flag says whether to commit: refusals commit too, so their record survives.
fn redeem(
    transaction: &Transaction<'_>,
    redemption: &Redemption,
    limits: &Limits,
    started: std::time::Instant,
) -> (Result<PresetBundle, StoreError>, bool) {
    match redeem_checked(transaction, redemption, limits, started) {
        Ok(outcome) => (outcome, true),
        // A database failure while recording: nothing is trustworthy, roll back.
        Err(error) => (Err(error), false),
    }
}

fn redeem_checked(
    transaction: &Transaction<'_>,
    redemption: &Redemption,
    limits: &Limits,
    started: std::time::Instant,
) -> Result<Result<PresetBundle, StoreError>, StoreError> {
    let now = now_ms();
    let client = redemption.client.trim();
    let limited = match redemption.connection.trim() {
        "" => client,
        connection => connection,
    };
    let digest =
        access_code::normalize(&redemption.code).map(|code| sha256_hex(format!("audit:{code}").as_bytes()));
    let audit = |outcome: AuditOutcome, detail: &str| {
        audit::insert(
            transaction,
            &AuditEntry {
                at_ms: now,
                client: Some(client.to_owned()),
                tool: SHARE_AUDIT_TOOL.to_owned(),
                argument_digest: digest.clone(),
                outcome,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                detail: Some(detail.to_owned()),
            },
        )
    };
    let window_start = now.saturating_sub(limits.window_ms);
    let (failures, oldest): (i64, Option<i64>) = transaction.query_row(
        "SELECT count(*), min(attempted_at) FROM share_attempts WHERE client = ?1 AND attempted_at > ?2",
        params![limited, window_start],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    if failures >= i64::from(limits.attempts) {
        audit(AuditOutcome::RateLimited, "too many failed attempts")?;
        let retry_after_ms = oldest
            .map_or(limits.window_ms, |oldest| oldest + limits.window_ms - now)
            .max(1);
        return Ok(Err(StoreError::RateLimited {
            client: limited.to_owned(),
            retry_after_ms,
        }));
    }
    let failed_attempt = |detail: &str| -> Result<(), StoreError> {
        transaction.execute(
            "INSERT INTO share_attempts (client, attempted_at) VALUES (?1, ?2)",
            params![limited, now],
        )?;
        audit(AuditOutcome::Denied, detail)?;
        Ok(())
    };
    let gate = match access_code::normalize(&redemption.code) {
        Some(code) => transaction
            .query_row(
                "SELECT id, preset_id, version_id, password_hash, expires_at, max_uses, use_count, revoked_at
                 FROM preset_shares WHERE code_hash = ?1",
                [access_code::code_hash(&code)],
                |row| {
                    Ok(ShareGate {
                        id: row.get(0)?,
                        preset_id: row.get(1)?,
                        version_id: row.get(2)?,
                        password_hash: row.get(3)?,
                        expires_at: row.get(4)?,
                        max_uses: row.get(5)?,
                        use_count: row.get(6)?,
                        revoked_at: row.get(7)?,
                    })
                },
            )
            .optional()?,
        None => None,
    };
    let Some(gate) = gate else {
        failed_attempt("wrong access code")?;
        return Ok(Err(StoreError::ShareNotFound));
    };
    if gate.revoked_at.is_some() {
        audit(AuditOutcome::Denied, "share revoked")?;
        return Ok(Err(StoreError::ShareRevoked));
    }
    if gate.expires_at.is_some_and(|expires_at| expires_at <= now) {
        audit(AuditOutcome::Denied, "share expired")?;
        return Ok(Err(StoreError::ShareExpired));
    }
    if gate.max_uses.is_some_and(|max_uses| gate.use_count >= max_uses) {
        audit(AuditOutcome::Denied, "share used up")?;
        return Ok(Err(StoreError::ShareUsedUp));
    }
    if let Some(stored) = &gate.password_hash {
        let Some(password) = &redemption.password else {
            failed_attempt("password missing")?;
            return Ok(Err(StoreError::PasswordRequired));
        };
        if !password_matches(password, stored)? {
            failed_attempt("wrong password")?;
            return Ok(Err(StoreError::WrongPassword));
        }
    }
    transaction.execute(
        "UPDATE preset_shares SET use_count = use_count + 1 WHERE id = ?1",
        [gate.id],
    )?;
    let name: String = transaction.query_row(
        "SELECT name FROM presets WHERE id = ?1",
        [gate.preset_id],
        |row| row.get(0),
    )?;
    let preset = require_preset(transaction, &name)?;
    let bundle = bundle_for(transaction, &preset, &gate.version_id)?;
    audit(AuditOutcome::Success, "share redeemed")?;
    Ok(Ok(bundle))
}

impl Store {
    /// The preset with its whole history, as a portable bundle.
    pub async fn export_preset(&self, name: &str) -> Result<PresetBundle, StoreError> {
        let name = name.to_owned();
        self.read(move |transaction| {
            let preset = require_preset(transaction, &name)?;
            let head = preset.head_version.clone();
            bundle_for(transaction, &preset, &head)
        })
        .await
    }

    /// Creates a preset from a bundle (under `name`, or the bundle's name), keeping version ids so
    /// history stays comparable across databases. The bundle's hashes and ids are checked first.
    pub async fn import_preset_bundle(
        &self,
        bundle: PresetBundle,
        name: Option<String>,
    ) -> Result<Preset, StoreError> {
        self.write(move |transaction| import_bundle(transaction, &bundle, name.as_deref()))
            .await
    }

    /// Shares a version of a preset and returns its access code, which is not stored and is shown
    /// only here.
    pub async fn share_preset(&self, request: ShareRequest) -> Result<CreatedShare, StoreError> {
        if request.max_uses == Some(0) {
            return Err(invalid("share use limit", "must be at least 1"));
        }
        let password_hash = match request.password.clone() {
            // Argon2 is slow on purpose; keep it off the writer thread and off the async runtime.
            Some(password) => Some(
                tokio::task::spawn_blocking(move || hash_password(&password))
                    .await
                    .map_err(|error| StoreError::PasswordHash {
                        message: error.to_string(),
                    })??,
            ),
            None => None,
        };
        let code = access_code::generate()?;
        let normalized = access_code::normalize(code.reveal())
            .ok_or_else(|| invalid("access code", "generated code did not normalize"))?;
        self.write(move |transaction| {
            let preset = require_preset(transaction, &request.preset)?;
            let version = match &request.version {
                Some(reference) => resolve_version(transaction, Some(&preset), reference)?,
                None => preset.head_version.clone(),
            };
            transaction.execute(
                "INSERT INTO preset_shares (code_hash, preset_id, version_id, password_hash, created_by, created_at,
                 expires_at, max_uses) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    access_code::code_hash(&normalized),
                    preset.id,
                    version,
                    password_hash,
                    request.created_by,
                    now_ms(),
                    request.expires_at_ms,
                    request.max_uses
                ],
            )?;
            let id = transaction.last_insert_rowid();
            let share = share_by_id(transaction, id)?.ok_or(StoreError::ShareNotFound)?;
            Ok(CreatedShare { code, share })
        })
        .await
    }

    /// Shares of one preset, or of all presets, newest first.
    pub async fn list_shares(&self, preset: Option<String>) -> Result<Vec<ShareRecord>, StoreError> {
        self.read(move |transaction| {
            let mut statement = transaction.prepare(&format!(
                "SELECT {SHARE_COLUMNS} FROM preset_shares s JOIN presets p ON p.id = s.preset_id
                 WHERE ?1 IS NULL OR p.name = ?1 ORDER BY s.created_at DESC, s.id DESC"
            ))?;
            let shares = statement
                .query_map([preset.as_deref().map(str::trim)], share_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(shares)
        })
        .await
    }

    /// Revokes a share; its code stops working at once. Revoking twice is harmless.
    pub async fn revoke_share(&self, id: i64) -> Result<ShareRecord, StoreError> {
        self.write(move |transaction| {
            transaction.execute(
                "UPDATE preset_shares SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now_ms()],
            )?;
            share_by_id(transaction, id)?.ok_or(StoreError::ShareNotFound)
        })
        .await
    }

    /// Redeems an access code: checks it (rate limit, code, revocation, expiry, use limit, password),
    /// counts a use and returns the shared version with its history as a bundle.
    pub async fn redeem_share(&self, redemption: Redemption) -> Result<PresetBundle, StoreError> {
        let limits = self.share_limits();
        let started = std::time::Instant::now();
        self.write_outcome(move |transaction| redeem(transaction, &redemption, &limits, started))
            .await
    }

    /// Redeems an access code and imports what it shares as a new preset (named `name`, or as shared),
    /// all in one transaction: a use is counted only if the import succeeds.
    pub async fn import_shared_preset(
        &self,
        redemption: Redemption,
        name: Option<String>,
    ) -> Result<Preset, StoreError> {
        let limits = self.share_limits();
        let started = std::time::Instant::now();
        self.write_outcome(
            move |transaction| match redeem(transaction, &redemption, &limits, started) {
                (Ok(bundle), _) => {
                    // A name already taken fails the import and rolls back the redemption with it.
                    match import_bundle(transaction, &bundle, name.as_deref()) {
                        Ok(preset) => (Ok(preset), true),
                        Err(error) => (Err(error), false),
                    }
                }
                (Err(error), commit) => (Err(error), commit),
            },
        )
        .await
    }

    fn share_limits(&self) -> Limits {
        let options = self.options();
        Limits {
            attempts: options.share_attempt_limit,
            window_ms: i64::try_from(options.share_attempt_window.as_millis()).unwrap_or(i64::MAX),
        }
    }
}
