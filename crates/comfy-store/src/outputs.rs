//! The outputs library: every produced file indexed with what made it (job, prompt, parameters,
//! model, seed, size), searchable by full text (FTS5), by perceptual-hash similarity, by tags and
//! collections; exported as a JSON or CSV catalog; cleaned up by age with a dry run. Files themselves
//! live on the backends; records here point at them.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_ms;
use crate::error::{StoreError, invalid};
use crate::presets::{clean_name, clean_tags};
use crate::query::{Conditions, limit_value, text};
use crate::store::Store;

/// Where a file is, in ComfyUI's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileReference {
    pub backend_id: String,
    pub filename: String,
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    pub file_type: String,
}

/// An output to index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOutput {
    pub job_id: Option<String>,
    pub prompt_text: String,
    pub parameters: Value,
    pub model: Option<String>,
    pub seed: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A MIME type such as `image/png`.
    pub media_type: String,
    pub file: FileReference,
    pub perceptual_hash: Option<u64>,
    pub created_at_ms: i64,
}

/// An indexed output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    pub id: i64,
    #[serde(flatten)]
    pub output: NewOutput,
    pub tags: Vec<String>,
    pub collections: Vec<String>,
}

/// Which outputs to return. With `text`, results are ranked by relevance; otherwise newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputQuery {
    /// Words to find in the prompt or parameters (all of them, stemmed: "cats" finds "cat").
    pub text: Option<String>,
    pub model: Option<String>,
    pub media_type: Option<String>,
    pub job_id: Option<String>,
    pub tag: Option<String>,
    pub collection: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// An output and how far its perceptual hash is from the one searched for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarOutput {
    /// Hamming distance in bits, 0 to 64.
    pub distance: u32,
    pub output: OutputRecord,
}

/// A collection with its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSummary {
    pub name: String,
    pub description: Option<String>,
    pub outputs: u64,
    pub created_at_ms: i64,
}

/// Catalog formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogFormat {
    Json,
    Csv,
}

/// What retention cleanup removes: outputs created before `created_before_ms`, except those kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    pub created_before_ms: i64,
    pub keep_tagged: bool,
    pub keep_in_collections: bool,
    /// Report what would go without deleting anything.
    pub dry_run: bool,
}

/// What cleanup removed (or, in a dry run, would remove). The caller deletes the files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub outputs: Vec<OutputRecord>,
}

// SQLite integers are signed; u64 values keep their bits.
fn to_stored(value: u64) -> i64 {
    i64::from_ne_bytes(value.to_ne_bytes())
}

fn from_stored(value: i64) -> u64 {
    u64::from_ne_bytes(value.to_ne_bytes())
}

const COLUMNS: &str = "o.id, o.job_id, o.prompt_text, o.parameters, o.model, o.seed, o.width, o.height, o.media_type, \
     o.backend_id, o.filename, o.subfolder, o.file_type, o.perceptual_hash, o.created_at";

fn record_from_row(transaction: &Transaction<'_>, row: &Row<'_>) -> Result<OutputRecord, StoreError> {
    let id: i64 = row.get(0)?;
    let raw_parameters: String = row.get(3)?;
    let parameters = serde_json::from_str(&raw_parameters).map_err(|source| StoreError::StoredJson {
        what: "output parameters",
        id: id.to_string(),
        source,
    })?;
    let output = NewOutput {
        job_id: row.get(1)?,
        prompt_text: row.get(2)?,
        parameters,
        model: row.get(4)?,
        seed: row.get::<_, Option<i64>>(5)?.map(from_stored),
        width: row.get(6)?,
        height: row.get(7)?,
        media_type: row.get(8)?,
        file: FileReference {
            backend_id: row.get(9)?,
            filename: row.get(10)?,
            subfolder: row.get(11)?,
            file_type: row.get(12)?,
        },
        perceptual_hash: row.get::<_, Option<i64>>(13)?.map(from_stored),
        created_at_ms: row.get(14)?,
    };
    let mut tags_statement =
        transaction.prepare_cached("SELECT tag FROM output_tags WHERE output_id = ?1 ORDER BY tag")?;
    let tags = tags_statement
        .query_map([id], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let mut collections_statement = transaction.prepare_cached(
        "SELECT c.name FROM collections c JOIN collection_outputs co ON co.collection_id = c.id
         WHERE co.output_id = ?1 ORDER BY c.name",
    )?;
    let collections = collections_statement
        .query_map([id], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(OutputRecord {
        id,
        output,
        tags,
        collections,
    })
}

fn collect(
    transaction: &Transaction<'_>,
    sql: &str,
    conditions: &Conditions,
) -> Result<Vec<OutputRecord>, StoreError> {
    let mut statement = transaction.prepare(sql)?;
    let mut rows = statement.query(conditions.values())?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        records.push(record_from_row(transaction, row)?);
    }
    Ok(records)
}

fn get(transaction: &Transaction<'_>, id: i64) -> Result<OutputRecord, StoreError> {
    let mut conditions = Conditions::default();
    conditions.push("o.id = ?", [id.into()]);
    collect(
        transaction,
        &format!("SELECT {COLUMNS} FROM outputs o{}", conditions.where_clause()),
        &conditions,
    )?
    .pop()
    .ok_or(StoreError::OutputNotFound { id })
}

/// Turns free text into an FTS5 query that cannot be a syntax error: every word becomes a quoted
/// phrase, and the phrases are ANDed.
fn full_text_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|character: char| !character.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| format!("\"{word}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

fn search(transaction: &Transaction<'_>, query: &OutputQuery) -> Result<Vec<OutputRecord>, StoreError> {
    let mut conditions = Conditions::default();
    let full_text = query.text.as_deref().and_then(full_text_query);
    if let Some(full_text) = &full_text {
        conditions.push("outputs_search MATCH ?", [text(full_text)]);
    }
    if let Some(model) = &query.model {
        conditions.push("o.model = ?", [text(model)]);
    }
    if let Some(media_type) = &query.media_type {
        conditions.push("o.media_type = ?", [text(media_type)]);
    }
    if let Some(job_id) = &query.job_id {
        conditions.push("o.job_id = ?", [text(job_id)]);
    }
    if let Some(tag) = &query.tag {
        conditions.push(
            "o.id IN (SELECT output_id FROM output_tags WHERE tag = ?)",
            [text(tag.trim())],
        );
    }
    if let Some(collection) = &query.collection {
        conditions.push(
            "o.id IN (SELECT co.output_id FROM collection_outputs co JOIN collections c ON c.id = co.collection_id
             WHERE c.name = ?)",
            [text(collection.trim())],
        );
    }
    if let Some(since) = query.since_ms {
        conditions.push("o.created_at >= ?", [since.into()]);
    }
    if let Some(until) = query.until_ms {
        conditions.push("o.created_at < ?", [until.into()]);
    }
    conditions.push_value(limit_value(query.limit));
    conditions.push_value(i64::from(query.offset.unwrap_or(0)).into());
    let sql = if full_text.is_some() {
        format!(
            "SELECT {COLUMNS} FROM outputs o JOIN outputs_search ON outputs_search.rowid = o.id{}
             ORDER BY outputs_search.rank, o.created_at DESC, o.id DESC LIMIT ? OFFSET ?",
            conditions.where_clause()
        )
    } else {
        format!(
            "SELECT {COLUMNS} FROM outputs o{} ORDER BY o.created_at DESC, o.id DESC LIMIT ? OFFSET ?",
            conditions.where_clause()
        )
    };
    collect(transaction, &sql, &conditions)
}

fn insert(transaction: &Transaction<'_>, output: &NewOutput) -> Result<OutputRecord, StoreError> {
    if output.file.filename.is_empty() {
        return Err(invalid("output filename", "must not be empty"));
    }
    if output.media_type.trim().is_empty() {
        return Err(invalid("output media type", "must not be empty"));
    }
    let file = &output.file;
    let existing: Option<i64> = transaction
        .query_row(
            "SELECT id FROM outputs WHERE backend_id = ?1 AND file_type = ?2 AND subfolder = ?3 AND filename = ?4",
            params![file.backend_id, file.file_type, file.subfolder, file.filename],
            |row| row.get(0),
        )
        .optional()?;
    // Indexing the same file twice (a retried job, a rescan) keeps the first record.
    if let Some(id) = existing {
        return get(transaction, id);
    }
    transaction.execute(
        "INSERT INTO outputs (job_id, prompt_text, parameters, model, seed, width, height, media_type, backend_id,
         filename, subfolder, file_type, perceptual_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            output.job_id,
            output.prompt_text,
            output.parameters.to_string(),
            output.model,
            output.seed.map(to_stored),
            output.width,
            output.height,
            output.media_type,
            file.backend_id,
            file.filename,
            file.subfolder,
            file.file_type,
            output.perceptual_hash.map(to_stored),
            output.created_at_ms
        ],
    )?;
    get(transaction, transaction.last_insert_rowid())
}

fn collection_id(transaction: &Transaction<'_>, name: &str) -> Result<i64, StoreError> {
    transaction
        .query_row(
            "SELECT id FROM collections WHERE name = ?1",
            [name.trim()],
            |row| row.get(0),
        )
        .optional()?
        .ok_or_else(|| StoreError::CollectionNotFound {
            name: name.trim().to_owned(),
        })
}

fn require_outputs(transaction: &Transaction<'_>, ids: &[i64]) -> Result<(), StoreError> {
    for id in ids {
        let exists: Option<i64> = transaction
            .query_row("SELECT 1 FROM outputs WHERE id = ?1", [id], |row| row.get(0))
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::OutputNotFound { id: *id });
        }
    }
    Ok(())
}

/// Quotes a CSV field (RFC 4180). Text that a spreadsheet would run as a formula gets a leading
/// apostrophe, because prompts come from agents and users and a catalog is opened in spreadsheets.
fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn optional_number<T: ToString>(value: Option<T>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

const CSV_HEADER: &str = "id,created_at_ms,job_id,media_type,backend_id,file_type,subfolder,filename,model,seed,\
     width,height,perceptual_hash,prompt_text,parameters,tags,collections";

fn catalog_csv(records: &[OutputRecord]) -> String {
    let mut csv = String::from(CSV_HEADER);
    csv.push_str("\r\n");
    for record in records {
        let output = &record.output;
        let fields = [
            record.id.to_string(),
            output.created_at_ms.to_string(),
            csv_field(output.job_id.as_deref().unwrap_or_default()),
            csv_field(&output.media_type),
            csv_field(&output.file.backend_id),
            csv_field(&output.file.file_type),
            csv_field(&output.file.subfolder),
            csv_field(&output.file.filename),
            csv_field(output.model.as_deref().unwrap_or_default()),
            optional_number(output.seed),
            optional_number(output.width),
            optional_number(output.height),
            output
                .perceptual_hash
                .map(|hash| format!("{hash:016x}"))
                .unwrap_or_default(),
            csv_field(&output.prompt_text),
            csv_field(&output.parameters.to_string()),
            csv_field(&record.tags.join(";")),
            csv_field(&record.collections.join(";")),
        ];
        csv.push_str(&fields.join(","));
        csv.push_str("\r\n");
    }
    csv
}

impl Store {
    /// Indexes an output; indexing the same file again returns the existing record.
    pub async fn add_output(&self, output: NewOutput) -> Result<OutputRecord, StoreError> {
        self.write(move |transaction| insert(transaction, &output)).await
    }

    pub async fn get_output(&self, id: i64) -> Result<OutputRecord, StoreError> {
        self.read(move |transaction| get(transaction, id)).await
    }

    /// Sets the perceptual hash once it is computed (it may come after indexing).
    pub async fn set_output_perceptual_hash(&self, id: i64, hash: u64) -> Result<OutputRecord, StoreError> {
        self.write(move |transaction| {
            transaction.execute(
                "UPDATE outputs SET perceptual_hash = ?2 WHERE id = ?1",
                params![id, to_stored(hash)],
            )?;
            get(transaction, id)
        })
        .await
    }

    /// Removes an output's record (not its file).
    pub async fn delete_output(&self, id: i64) -> Result<(), StoreError> {
        self.write(move |transaction| {
            if transaction.execute("DELETE FROM outputs WHERE id = ?1", [id])? == 0 {
                return Err(StoreError::OutputNotFound { id });
            }
            Ok(())
        })
        .await
    }

    /// Outputs matching `query`: by relevance with text, otherwise newest first.
    pub async fn search_outputs(&self, query: OutputQuery) -> Result<Vec<OutputRecord>, StoreError> {
        self.read(move |transaction| search(transaction, &query)).await
    }

    /// Outputs whose perceptual hash is within `max_distance` bits of `hash`, nearest first.
    pub async fn similar_outputs(
        &self,
        hash: u64,
        max_distance: u32,
        limit: Option<u32>,
    ) -> Result<Vec<SimilarOutput>, StoreError> {
        self.read(move |transaction| {
            // SQLite has no popcount; comparing 8-byte hashes in Rust is fast even for large libraries.
            let mut statement = transaction.prepare(
                "SELECT id, perceptual_hash FROM outputs WHERE perceptual_hash IS NOT NULL ORDER BY created_at DESC, id DESC",
            )?;
            let mut near: Vec<(u32, i64)> = statement
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(|(id, stored)| ((from_stored(stored) ^ hash).count_ones(), id))
                .filter(|(distance, _)| *distance <= max_distance)
                .collect();
            // Stable: equal distances keep newest first.
            near.sort_by_key(|(distance, _)| *distance);
            near.truncate(limit.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX)));
            near.into_iter().map(|(distance, id)| Ok(SimilarOutput { distance, output: get(transaction, id)? })).collect()
        })
        .await
    }

    /// Adds tags to outputs.
    pub async fn tag_outputs(&self, ids: Vec<i64>, tags: Vec<String>) -> Result<(), StoreError> {
        self.write(move |transaction| {
            let tags = clean_tags(&tags)?;
            require_outputs(transaction, &ids)?;
            for id in &ids {
                for tag in &tags {
                    transaction.execute(
                        "INSERT OR IGNORE INTO output_tags (output_id, tag) VALUES (?1, ?2)",
                        params![id, tag],
                    )?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Removes a tag from an output; returns whether it had it.
    pub async fn untag_output(&self, id: i64, tag: &str) -> Result<bool, StoreError> {
        let tag = tag.trim().to_owned();
        self.write(move |transaction| {
            Ok(transaction.execute(
                "DELETE FROM output_tags WHERE output_id = ?1 AND tag = ?2",
                params![id, tag],
            )? > 0)
        })
        .await
    }

    pub async fn create_collection(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<CollectionSummary, StoreError> {
        let name = name.to_owned();
        self.write(move |transaction| {
            let name = clean_name("collection name", &name)?;
            let created_at = now_ms();
            let inserted = transaction.execute(
                "INSERT OR IGNORE INTO collections (name, description, created_at) VALUES (?1, ?2, ?3)",
                params![name, description, created_at],
            )?;
            if inserted == 0 {
                return Err(invalid("collection name", format!("{name} already exists")));
            }
            Ok(CollectionSummary {
                name,
                description,
                outputs: 0,
                created_at_ms: created_at,
            })
        })
        .await
    }

    pub async fn list_collections(&self) -> Result<Vec<CollectionSummary>, StoreError> {
        self.read(|transaction| {
            let mut statement = transaction.prepare(
                "SELECT c.name, c.description, count(co.output_id), c.created_at FROM collections c
                 LEFT JOIN collection_outputs co ON co.collection_id = c.id GROUP BY c.id ORDER BY c.name",
            )?;
            let collections = statement
                .query_map([], |row| {
                    Ok(CollectionSummary {
                        name: row.get(0)?,
                        description: row.get(1)?,
                        outputs: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                        created_at_ms: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(collections)
        })
        .await
    }

    /// Deletes a collection (its outputs stay).
    pub async fn delete_collection(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |transaction| {
            let id = collection_id(transaction, &name)?;
            transaction.execute("DELETE FROM collections WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    pub async fn add_to_collection(&self, name: &str, ids: Vec<i64>) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |transaction| {
            let collection = collection_id(transaction, &name)?;
            require_outputs(transaction, &ids)?;
            let now = now_ms();
            for id in ids {
                transaction.execute(
                    "INSERT OR IGNORE INTO collection_outputs (collection_id, output_id, added_at) VALUES (?1, ?2, ?3)",
                    params![collection, id, now],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Removes an output from a collection; returns whether it was in it.
    pub async fn remove_from_collection(&self, name: &str, id: i64) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |transaction| {
            let collection = collection_id(transaction, &name)?;
            Ok(transaction.execute(
                "DELETE FROM collection_outputs WHERE collection_id = ?1 AND output_id = ?2",
                params![collection, id],
            )? > 0)
        })
        .await
    }

    /// The catalog of outputs matching `query` as JSON (an array of records) or CSV (one header line,
    /// CRLF line ends, perceptual hashes as 16 hex digits).
    pub async fn export_catalog(
        &self,
        query: OutputQuery,
        format: CatalogFormat,
    ) -> Result<String, StoreError> {
        let records = self.search_outputs(query).await?;
        match format {
            CatalogFormat::Json => {
                serde_json::to_string_pretty(&records).map_err(|source| StoreError::StoredJson {
                    what: "catalog",
                    id: String::new(),
                    source,
                })
            }
            CatalogFormat::Csv => Ok(catalog_csv(&records)),
        }
    }

    /// Retention: removes (or, in a dry run, lists) outputs older than the policy's cutoff, keeping
    /// tagged or collected ones when asked. Returns the records so the caller can delete the files.
    pub async fn cleanup_outputs(&self, policy: RetentionPolicy) -> Result<CleanupReport, StoreError> {
        let select = move |transaction: &Transaction<'_>| {
            let mut conditions = Conditions::default();
            conditions.push("o.created_at < ?", [policy.created_before_ms.into()]);
            if policy.keep_tagged {
                conditions.push(
                    "NOT EXISTS (SELECT 1 FROM output_tags t WHERE t.output_id = o.id)",
                    [],
                );
            }
            if policy.keep_in_collections {
                conditions.push(
                    "NOT EXISTS (SELECT 1 FROM collection_outputs co WHERE co.output_id = o.id)",
                    [],
                );
            }
            collect(
                transaction,
                &format!(
                    "SELECT {COLUMNS} FROM outputs o{} ORDER BY o.created_at, o.id",
                    conditions.where_clause()
                ),
                &conditions,
            )
        };
        if policy.dry_run {
            let outputs = self.read(select).await?;
            return Ok(CleanupReport {
                dry_run: true,
                outputs,
            });
        }
        self.write(move |transaction| {
            let outputs = select(transaction)?;
            for output in &outputs {
                transaction.execute("DELETE FROM outputs WHERE id = ?1", [output.id])?;
            }
            Ok(CleanupReport {
                dry_run: false,
                outputs,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_becomes_quoted_words() {
        assert_eq!(
            full_text_query("red cat, \"NEAR\" OR *").as_deref(),
            Some("\"red\" \"cat\" \"NEAR\" \"OR\"")
        );
        assert_eq!(full_text_query(" -*- "), None);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn unsigned_values_keep_their_bits() {
        for value in [0, 1, u64::MAX, 1 << 63, 0xdead_beef_cafe_f00d] {
            assert_eq!(from_stored(to_stored(value)), value);
        }
    }
}
