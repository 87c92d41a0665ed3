//! The one error type of the store. Variants carry the context a reader needs (database path, job id,
//! preset name) so that a message is useful without a backtrace.

use std::path::PathBuf;

use crate::job_state::JobState;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("no platform data directory is known for this user: configure the database path explicitly")]
    NoDataDirectory,
    #[error("cannot create directory {} for the database: {source}", .path.display())]
    CreateDirectory { path: PathBuf, source: std::io::Error },
    #[error("cannot start the store thread for {}: {source}", .path.display())]
    Thread { path: PathBuf, source: std::io::Error },
    #[error(
        "{} is not a usable SQLite database (corrupt, or another kind of file); it was left untouched: {source}",
        .path.display()
    )]
    Corrupt { path: PathBuf, source: rusqlite::Error },
    #[error(
        "database {} is locked by another process or connection and stayed locked past the busy timeout: {source}",
        .path.display()
    )]
    Busy { path: PathBuf, source: rusqlite::Error },
    #[error("disk full (or database size limit reached) while writing {}; the change was rolled back", .path.display())]
    DiskFull { path: PathBuf, source: rusqlite::Error },
    #[error(
        "database {} has schema version {found}, newer than this build knows ({known}): use a newer comfyui-mcp",
        .path.display()
    )]
    SchemaTooNew { path: PathBuf, found: i64, known: i64 },
    #[error(
        "migration {version} ({name}) recorded in {} differs from the one in this build: applied migrations must never change",
        .path.display()
    )]
    MigrationChanged {
        path: PathBuf,
        version: i64,
        name: String,
    },
    #[error("migration {version} ({name}) failed on {}: {source}", .path.display())]
    Migration {
        path: PathBuf,
        version: i64,
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("database error on {}: {source}", .path.display())]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("the store is closed")]
    Closed,
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },
    #[error("stored {what} {id} is not valid JSON: {source}")]
    StoredJson {
        what: &'static str,
        id: String,
        source: serde_json::Error,
    },
    #[error("job {id} not found")]
    JobNotFound { id: String },
    #[error("job {id} already exists")]
    JobExists { id: String },
    #[error("job {id} cannot go from {from} to {to}")]
    InvalidJobTransition {
        id: String,
        from: JobState,
        to: JobState,
    },
    #[error("preset {name} not found")]
    PresetNotFound { name: String },
    #[error("preset {name} already exists")]
    PresetExists { name: String },
    #[error("version {reference} not found")]
    VersionNotFound { reference: String },
    #[error("version reference {reference} matches more than one version: give more characters")]
    AmbiguousVersion { reference: String },
    #[error("no share matches this access code")]
    ShareNotFound,
    #[error("this share was revoked")]
    ShareRevoked,
    #[error("this share has expired")]
    ShareExpired,
    #[error("this share has reached its use limit")]
    ShareUsedUp,
    #[error("this share needs a password")]
    PasswordRequired,
    #[error("wrong password for this share")]
    WrongPassword,
    #[error("too many failed share attempts from client {client}: retry in {retry_after_ms} ms")]
    RateLimited { client: String, retry_after_ms: i64 },
    #[error("password hashing failed: {message}")]
    PasswordHash { message: String },
    #[error("the operating system random source failed: {message}")]
    Random { message: String },
    #[error("invalid preset bundle: {reason}")]
    InvalidBundle { reason: String },
    #[error("output {id} not found")]
    OutputNotFound { id: i64 },
    #[error("collection {name} not found")]
    CollectionNotFound { name: String },
    #[error("experiment {id} not found")]
    ExperimentNotFound { id: String },
}

impl From<rusqlite::Error> for StoreError {
    /// Query code uses `?` on SQLite errors; the store replaces the empty path with the database path
    /// and sorts the error into its kind (corrupt, busy, disk full) before any caller sees it.
    fn from(source: rusqlite::Error) -> Self {
        StoreError::Sqlite {
            path: PathBuf::new(),
            source,
        }
    }
}

impl StoreError {
    /// Gives an SQLite error its database path and its kind.
    pub(crate) fn with_path(self, path: &std::path::Path) -> Self {
        match self {
            StoreError::Sqlite { source, .. } => classify(source, path),
            other => other,
        }
    }
}

pub(crate) fn classify(source: rusqlite::Error, path: &std::path::Path) -> StoreError {
    use rusqlite::ErrorCode;
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt { path, source },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { path, source },
        Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, source },
        _ => StoreError::Sqlite { path, source },
    }
}

pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidInput {
        field,
        reason: reason.into(),
    }
}
