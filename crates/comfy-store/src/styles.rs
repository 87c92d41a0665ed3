//! Saved style presets: a named prompt template (`{prompt}` marks where the caller's prompt goes),
//! a negative prompt and generation settings. Saving a name again replaces it.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_ms;
use crate::error::{StoreError, invalid};
use crate::presets::clean_name;
use crate::store::Store;

/// A style preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Style {
    pub name: String,
    pub description: String,
    /// The prompt with `{prompt}` where the caller's prompt goes.
    pub prompt: String,
    pub negative_prompt: String,
    /// Generation settings (steps, cfg, sampler, scheduler...) a request's own values override.
    pub settings: serde_json::Map<String, Value>,
}

/// Longest prompt template or negative prompt kept.
const MAXIMUM_TEXT: usize = 4096;

fn check(style: &Style) -> Result<Style, StoreError> {
    let name = clean_name("name", &style.name)?;
    if !style.prompt.contains("{prompt}") {
        return Err(invalid(
            "prompt",
            "must contain {prompt}, where the caller's prompt goes",
        ));
    }
    for (field, text) in [
        ("prompt", &style.prompt),
        ("negative_prompt", &style.negative_prompt),
    ] {
        if text.chars().count() > MAXIMUM_TEXT {
            return Err(invalid(
                field,
                format!("must be at most {MAXIMUM_TEXT} characters"),
            ));
        }
    }
    Ok(Style {
        name,
        ..style.clone()
    })
}

impl Store {
    /// Saves `style`, replacing one of the same name.
    pub async fn save_style(&self, style: Style) -> Result<Style, StoreError> {
        let style = check(&style)?;
        let settings = serde_json::to_string(&style.settings).unwrap_or_else(|_| "{}".to_owned());
        let saved = style.clone();
        self.write(move |transaction| {
            let now = now_ms();
            transaction.execute(
                "INSERT INTO styles (name, description, prompt, negative_prompt, settings, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description, prompt = excluded.prompt,
                 negative_prompt = excluded.negative_prompt, settings = excluded.settings, updated_at = excluded.updated_at",
                params![style.name, style.description, style.prompt, style.negative_prompt, settings, now],
            )?;
            Ok(())
        })
        .await?;
        Ok(saved)
    }

    /// Every saved style, by name.
    pub async fn list_styles(&self) -> Result<Vec<Style>, StoreError> {
        self.read(|transaction| {
            let mut statement = transaction.prepare(
                "SELECT name, description, prompt, negative_prompt, settings FROM styles ORDER BY name",
            )?;
            let rows = statement.query_map([], style_of_row)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(StoreError::from)
        })
        .await
    }

    /// The saved style `name`, if there is one.
    pub async fn get_style(&self, name: &str) -> Result<Option<Style>, StoreError> {
        let name = name.trim().to_owned();
        self.read(move |transaction| {
            transaction
                .query_row(
                    "SELECT name, description, prompt, negative_prompt, settings FROM styles WHERE name = ?1",
                    [name],
                    style_of_row,
                )
                .optional()
                .map_err(StoreError::from)
        })
        .await
    }

    /// Deletes the saved style `name`; whether there was one.
    pub async fn delete_style(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.trim().to_owned();
        self.write(move |transaction| {
            Ok(transaction.execute("DELETE FROM styles WHERE name = ?1", [name])? > 0)
        })
        .await
    }
}

fn style_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Style> {
    let settings: String = row.get(4)?;
    Ok(Style {
        name: row.get(0)?,
        description: row.get(1)?,
        prompt: row.get(2)?,
        negative_prompt: row.get(3)?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
    })
}
