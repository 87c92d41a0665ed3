//! The audit log: one entry per tool call (time, client identity, tool, a digest of the arguments
//! rather than the arguments themselves, outcome, duration), queryable and pruned by age.

use rusqlite::{Row, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::error::{StoreError, invalid};
use crate::query::{Conditions, limit_value, text};
use crate::store::Store;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Failure,
    /// Refused for lack of permission or a wrong secret (access code, password).
    Denied,
    RateLimited,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
            AuditOutcome::RateLimited => "rate_limited",
        }
    }

    pub fn parse(name: &str) -> Option<AuditOutcome> {
        [
            AuditOutcome::Success,
            AuditOutcome::Failure,
            AuditOutcome::Denied,
            AuditOutcome::RateLimited,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == name)
    }
}

/// One audit entry to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub client: Option<String>,
    pub tool: String,
    /// For example [`crate::content_hash`] of the arguments: enough to match repeated calls without
    /// keeping prompts or secrets in the log.
    pub argument_digest: Option<String>,
    pub outcome: AuditOutcome,
    pub duration_ms: i64,
    /// A short reason for failures; never secrets.
    pub detail: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which entries [`Store::query_audit`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Entries at or after this time.
    pub since_ms: Option<i64>,
    /// Entries strictly before this time.
    pub until_ms: Option<i64>,
    pub tool: Option<String>,
    pub client: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub limit: Option<u32>,
}

pub(crate) fn insert(transaction: &Transaction<'_>, entry: &AuditEntry) -> Result<i64, StoreError> {
    if entry.tool.trim().is_empty() {
        return Err(invalid("audit tool", "must not be empty"));
    }
    transaction.execute(
        "INSERT INTO audit_log (at, client, tool, argument_digest, outcome, duration_ms, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            entry.at_ms,
            entry.client,
            entry.tool,
            entry.argument_digest,
            entry.outcome.as_str(),
            entry.duration_ms.max(0),
            entry.detail
        ],
    )?;
    Ok(transaction.last_insert_rowid())
}

fn record_from_row(row: &Row<'_>) -> Result<AuditRecord, StoreError> {
    let outcome_name: String = row.get(5)?;
    let outcome = AuditOutcome::parse(&outcome_name)
        .ok_or_else(|| invalid("stored audit outcome", format!("unknown outcome {outcome_name}")))?;
    Ok(AuditRecord {
        id: row.get(0)?,
        entry: AuditEntry {
            at_ms: row.get(1)?,
            client: row.get(2)?,
            tool: row.get(3)?,
            argument_digest: row.get(4)?,
            outcome,
            duration_ms: row.get(6)?,
            detail: row.get(7)?,
        },
    })
}

impl Store {
    /// Appends one entry and returns its id.
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<i64, StoreError> {
        self.write(move |transaction| insert(transaction, &entry)).await
    }

    /// Entries matching `query`, newest first.
    pub async fn query_audit(&self, query: AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conditions = Conditions::default();
        if let Some(since) = query.since_ms {
            conditions.push("at >= ?", [since.into()]);
        }
        if let Some(until) = query.until_ms {
            conditions.push("at < ?", [until.into()]);
        }
        if let Some(tool) = &query.tool {
            conditions.push("tool = ?", [text(tool)]);
        }
        if let Some(client) = &query.client {
            conditions.push("client = ?", [text(client)]);
        }
        if let Some(outcome) = query.outcome {
            conditions.push("outcome = ?", [text(outcome.as_str())]);
        }
        conditions.push_value(limit_value(query.limit));
        self.read(move |transaction| {
            let sql = format!(
                "SELECT id, at, client, tool, argument_digest, outcome, duration_ms, detail FROM audit_log{}
                 ORDER BY at DESC, id DESC LIMIT ?",
                conditions.where_clause()
            );
            let mut statement = transaction.prepare(&sql)?;
            let mut rows = statement.query(conditions.values())?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records.push(record_from_row(row)?);
            }
            Ok(records)
        })
        .await
    }

    /// How many entries [`Store::prune_audit`] with the same `before_ms` would delete, counted in
    /// SQL rather than read.
    pub async fn count_audit_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.read(move |transaction| {
            let count: i64 = transaction.query_row(
                "SELECT count(*) FROM audit_log WHERE at < ?1",
                [before_ms],
                |row| row.get(0),
            )?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    /// Retention: deletes entries older than `before_ms` and returns how many went.
    pub async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write(move |transaction| {
            let deleted = transaction.execute("DELETE FROM audit_log WHERE at < ?1", [before_ms])?;
            Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
        })
        .await
    }
}
