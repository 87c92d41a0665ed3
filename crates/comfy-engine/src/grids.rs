//! Variations and X/Y grids: one generation request swept over the values of one or two
//! parameters (seed, steps, cfg, sampler, scheduler, denoise, prompt, a prompt search/replace,
//! the negative prompt, the checkpoint, the style, the quality), queued as one batch; when the jobs end, an annotated
//! contact sheet (axis labels drawn) is kept in the library and every cell's output is tagged with
//! the grid and its parameter values.

use comfy_api::OutputFile;
use image::RgbaImage;
use serde::Serialize;
use serde_json::{Value, json};

use crate::generate::GenerateRequest;
use crate::imaging::{Provenance, ResultImage, ResultPixels};
use crate::{Engine, EngineError, media};

/// Most values on one axis.
pub const MAXIMUM_AXIS_VALUES: usize = 16;
/// Most cells in one grid.
pub const MAXIMUM_CELLS: usize = 64;
/// The longer side a sheet is kept within (cells are scaled down to fit).
const SHEET_SIDE: u32 = 2048;

/// The parameters an axis can sweep.
pub const GRID_PARAMETERS: &[&str] = &[
    "seed",
    "steps",
    "cfg",
    "sampler",
    "scheduler",
    "denoise",
    "prompt",
    "prompt_replace",
    "negative_prompt",
    "checkpoint",
    "style",
    "quality",
];

/// One axis: a parameter and its values. For `prompt_replace` the first value is the text to
/// find in the prompt and every value (the first included) replaces it in turn.
#[derive(Debug, Clone)]
pub struct GridAxis {
    pub parameter: String,
    pub values: Vec<Value>,
}

/// One cell: its place and the request it runs.
#[derive(Debug, Clone, Serialize)]
pub struct GridCell {
    pub column: usize,
    pub row: usize,
    /// The swept parameters' values here.
    pub settings: serde_json::Map<String, Value>,
    #[serde(skip)]
    pub request: GenerateRequest,
}

/// Every cell of a grid, and its labels.
#[derive(Debug, Clone)]
pub struct GridPlan {
    /// What the cells are: `grid`, or `experiment` (its variants and seeds).
    pub kind: &'static str,
    /// A short id the cells' tags carry (`<kind> <id>`).
    pub id: String,
    pub columns: usize,
    pub cells: Vec<GridCell>,
    pub column_labels: Vec<String>,
    pub row_labels: Vec<String>,
}

/// Plans the cells of `base` swept over `x` (columns) and `y` (rows), and `z` (blocks of rows,
/// one per value, on the same sheet: row labels then name both values).
pub fn plan_grid(
    base: &GenerateRequest,
    x: &GridAxis,
    y: Option<&GridAxis>,
    z: Option<&GridAxis>,
) -> Result<GridPlan, EngineError> {
    check_axis(x)?;
    let axes: Vec<&GridAxis> = [Some(x), y, z].into_iter().flatten().collect();
    if z.is_some() && y.is_none() {
        return Err(EngineError::bad_input("a z axis needs a y axis"));
    }
    for (index, axis) in axes.iter().enumerate().skip(1) {
        check_axis(axis)?;
        if axes[..index]
            .iter()
            .any(|earlier| earlier.parameter == axis.parameter)
        {
            return Err(EngineError::bad_input(format!(
                "two axes sweep the same parameter ({})",
                axis.parameter
            )));
        }
    }
    let y_values = y.map_or(1, |y| y.values.len());
    let z_values = z.map_or(1, |z| z.values.len());
    let rows = y_values * z_values;
    // One seed for every cell the axes leave it to, so cells differ only by what is swept.
    let mut base = base.clone();
    base.seed = base
        .seed
        .or_else(|| Some(i128::from(crate::generate::random_seed())));
    if x.values.len() * rows > MAXIMUM_CELLS {
        return Err(EngineError::bad_input(format!(
            "{} cells ({}) are over the {MAXIMUM_CELLS} one grid may have",
            x.values.len() * rows,
            axes.iter()
                .map(|axis| axis.values.len().to_string())
                .collect::<Vec<_>>()
                .join(" x ")
        )));
    }
    let mut cells = Vec::new();
    for row in 0..rows {
        for column in 0..x.values.len() {
            let mut request = base.clone();
            let mut settings = serde_json::Map::new();
            apply(&mut request, x, column, &mut settings)?;
            if let Some(y) = y {
                apply(&mut request, y, row % y_values, &mut settings)?;
            }
            if let Some(z) = z {
                apply(&mut request, z, row / y_values, &mut settings)?;
            }
            cells.push(GridCell {
                column,
                row,
                settings,
                request,
            });
        }
    }
    let y_labels = y.map(labels).unwrap_or_default();
    let row_labels = match z {
        None => y_labels,
        Some(z) => labels(z)
            .iter()
            .flat_map(|z_label| {
                y_labels
                    .iter()
                    .map(move |y_label| format!("{z_label} / {y_label}"))
            })
            .collect(),
    };
    Ok(GridPlan {
        kind: "grid",
        id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        columns: x.values.len(),
        cells,
        column_labels: labels(x),
        row_labels,
    })
}

fn check_axis(axis: &GridAxis) -> Result<(), EngineError> {
    if !GRID_PARAMETERS.contains(&axis.parameter.as_str()) {
        return Err(EngineError::bad_input(format!(
            "a grid cannot sweep {:?}; it sweeps {}",
            axis.parameter,
            GRID_PARAMETERS.join(", ")
        )));
    }
    if axis.values.is_empty() || axis.values.len() > MAXIMUM_AXIS_VALUES {
        return Err(EngineError::bad_input(format!(
            "an axis takes 1 to {MAXIMUM_AXIS_VALUES} values; {} has {}",
            axis.parameter,
            axis.values.len()
        )));
    }
    Ok(())
}

fn labels(axis: &GridAxis) -> Vec<String> {
    axis.values
        .iter()
        .map(|value| {
            let shown = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            format!("{} {shown}", axis.parameter)
        })
        .collect()
}

/// Sets `axis`'s value number `index` on `request`.
fn apply(
    request: &mut GenerateRequest,
    axis: &GridAxis,
    index: usize,
    settings: &mut serde_json::Map<String, Value>,
) -> Result<(), EngineError> {
    let value = &axis.values[index];
    if axis.parameter == "prompt_replace" {
        let find = axis.values[0]
            .as_str()
            .ok_or_else(|| wrong_value(&axis.parameter, value, "text"))?;
        let replacement = value
            .as_str()
            .ok_or_else(|| wrong_value(&axis.parameter, value, "text"))?;
        if !request.prompt.contains(find) {
            return Err(EngineError::bad_input(format!(
                "prompt_replace looks for its first value {find:?} in the prompt, which does not contain it"
            )));
        }
        request.prompt = request.prompt.replace(find, replacement);
    } else {
        set_parameter(request, &axis.parameter, value)?;
    }
    settings.insert(axis.parameter.clone(), value.clone());
    Ok(())
}

fn wrong_value(parameter: &str, value: &Value, kind: &str) -> EngineError {
    EngineError::bad_input(format!("{parameter} values must be {kind}; {value} is not"))
}

/// Sets one generation parameter by name from a JSON value (what grids sweep and experiments'
/// variants change): seed, steps, cfg, denoise, width, height, sampler, scheduler, prompt,
/// negative_prompt, checkpoint, style, quality, backend.
pub(crate) fn set_parameter(
    request: &mut GenerateRequest,
    parameter: &str,
    value: &Value,
) -> Result<(), EngineError> {
    let wrong = |kind: &str| wrong_value(parameter, value, kind);
    let text = || value.as_str().map(str::to_owned).ok_or_else(|| wrong("text"));
    let number = || value.as_f64().ok_or_else(|| wrong("numbers"));
    let integer = || value.as_i64().ok_or_else(|| wrong("whole numbers"));
    match parameter {
        "seed" => {
            request.seed = Some(i128::from(
                value.as_u64().ok_or_else(|| wrong("whole numbers from 0"))?,
            ))
        }
        "steps" => request.steps = Some(integer()?),
        "width" => request.width = Some(integer()?),
        "height" => request.height = Some(integer()?),
        "cfg" => request.cfg = Some(number()?),
        "denoise" => request.denoise = Some(number()?),
        "sampler" => request.sampler = Some(text()?),
        "scheduler" => request.scheduler = Some(text()?),
        "prompt" => request.prompt = text()?,
        "negative_prompt" => request.negative_prompt = Some(text()?),
        "checkpoint" => request.checkpoint = Some(text()?),
        "style" => request.style = Some(text()?),
        "quality" => request.quality = Some(text()?),
        "backend" => request.backend = Some(text()?),
        other => {
            return Err(EngineError::bad_input(format!(
                "{other:?} is not a generation parameter here"
            )));
        }
    }
    Ok(())
}

/// A finished cell: where its outputs are and which job made them.
#[derive(Debug, Clone)]
pub struct FinishedCell {
    pub backend: String,
    pub job_id: String,
    pub outputs: Vec<OutputFile>,
}

/// The sheet of a grid and what was tagged.
#[derive(Debug, Clone, Serialize)]
pub struct GridSheet {
    /// The tag every cell's output carries.
    pub tag: String,
    pub sheet: ResultImage,
    /// Cells whose output was tagged in the library.
    pub tagged: usize,
}

impl Engine {
    /// Draws the sheet of `plan` from its finished cells (`None`: failed or unfinished, drawn
    /// grey), keeps it, and tags every finished cell's library records.
    pub async fn assemble_grid(
        &self,
        plan: &GridPlan,
        finished: &[Option<FinishedCell>],
        budget: Option<usize>,
    ) -> Result<GridSheet, EngineError> {
        let mut images: Vec<Option<RgbaImage>> = Vec::new();
        let mut backends = Vec::new();
        for cell in finished {
            images.push(match cell {
                Some(cell) => self.first_image(cell).await,
                None => None,
            });
            backends.push(cell.as_ref().map(|cell| cell.backend.clone()));
        }
        let native = images
            .iter()
            .flatten()
            .map(RgbaImage::dimensions)
            .next()
            .unwrap_or((256, 256));
        let rows = plan.cells.len().div_ceil(plan.columns) as u32;
        let fit = f64::from(SHEET_SIDE)
            / (f64::from(native.0) * plan.columns as f64).max(f64::from(native.1) * f64::from(rows));
        let factor = fit.min(1.0);
        let cell = (
            ((f64::from(native.0) * factor) as u32).max(16),
            ((f64::from(native.1) * factor) as u32).max(16),
        );
        let (columns, column_labels, row_labels) =
            (plan.columns, plan.column_labels.clone(), plan.row_labels.clone());
        let sheet = self
            .compute(move || {
                comfy_imaging::sheet::labelled_grid(&images, columns, cell, &column_labels, &row_labels)
            })
            .await?;
        let tag = format!("{} {}", plan.kind, plan.id);
        let provenance = Provenance {
            operation: plan.kind,
            parameters: json!({
                plan.kind: plan.id,
                "cells": plan.cells.iter().zip(finished).map(|(cell, done)| json!({
                    "column": cell.column, "row": cell.row, "settings": cell.settings,
                    "job_id": done.as_ref().map(|done| done.job_id.clone()),
                })).collect::<Vec<_>>(),
            }),
            sources: vec![format!("{} jobs", plan.cells.len())],
            backend: None,
        };
        let sheet = self
            .keep_image(ResultPixels::Color(sheet), provenance, &backends, budget)
            .await?;
        let mut tagged = 0;
        // One short bound for all the cells' records, so tagging never holds the call long.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        for (cell, done) in plan.cells.iter().zip(finished) {
            let Some(done) = done else { continue };
            let mut tags = vec![tag.clone()];
            tags.extend(cell.settings.iter().map(|(name, value)| {
                let shown = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                format!("{name}={shown}")
            }));
            if self.tag_job_outputs(&done.job_id, tags, deadline).await {
                tagged += 1;
            }
        }
        Ok(GridSheet { tag, sheet, tagged })
    }

    /// The first image a cell made, decoded; `None` when it made none or it cannot be read.
    async fn first_image(&self, cell: &FinishedCell) -> Option<RgbaImage> {
        let output = cell
            .outputs
            .iter()
            .find(|output| output.media_type().starts_with("image/"))?;
        let entry = self.pick_backend(Some(&cell.backend)).ok()?;
        let bytes = self
            .download(entry, &output.file, crate::outputs::MAXIMUM_PREVIEW_SOURCE_BYTES)
            .await
            .ok()?;
        media::off_the_workers(move || media::decode(&bytes).map(|image| image.into_rgba8()))
            .await
            .flatten()
    }

    /// Tags the library records of `job_id`'s outputs. The job's recorder indexes them as the job
    /// ends, which may be a moment after a caller saw it end: they are looked for until `deadline`.
    async fn tag_job_outputs(&self, job_id: &str, tags: Vec<String>, deadline: tokio::time::Instant) -> bool {
        loop {
            let query = comfy_store::OutputQuery {
                job_id: Some(job_id.to_owned()),
                ..Default::default()
            };
            if let Ok(records) = self.store.search_outputs(query).await
                && !records.is_empty()
            {
                let ids = records.iter().map(|record| record.id).collect();
                return self.tag_outputs(ids, tags).await.is_ok();
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(parameter: &str, values: Value) -> GridAxis {
        GridAxis {
            parameter: parameter.to_owned(),
            values: values.as_array().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn a_plan_sweeps_columns_then_rows() {
        let base = GenerateRequest {
            prompt: "a red fox in snow".into(),
            ..Default::default()
        };
        let plan = plan_grid(
            &base,
            &axis("seed", json!([1, 2, 3])),
            Some(&axis("prompt_replace", json!(["red", "grey"]))),
            None,
        )
        .unwrap();
        assert_eq!(plan.cells.len(), 6);
        assert_eq!(plan.columns, 3);
        assert_eq!(plan.column_labels, ["seed 1", "seed 2", "seed 3"]);
        assert_eq!(plan.row_labels, ["prompt_replace red", "prompt_replace grey"]);
        let last = &plan.cells[5];
        assert_eq!((last.column, last.row), (2, 1));
        assert_eq!(last.request.seed, Some(3));
        assert_eq!(last.request.prompt, "a grey fox in snow");
        assert_eq!(plan.cells[0].request.prompt, "a red fox in snow");
    }

    #[test]
    fn a_z_axis_adds_blocks_of_rows() {
        let base = GenerateRequest {
            prompt: "a red fox".into(),
            ..Default::default()
        };
        let plan = plan_grid(
            &base,
            &axis("seed", json!([1, 2])),
            Some(&axis("cfg", json!([4, 7]))),
            Some(&axis("steps", json!([10, 20, 30]))),
        )
        .unwrap();
        assert_eq!(plan.cells.len(), 12);
        assert_eq!(plan.row_labels.len(), 6);
        assert_eq!(plan.row_labels[0], "steps 10 / cfg 4");
        assert_eq!(plan.row_labels[3], "steps 20 / cfg 7");
        // Row 3 is the second z block's second y value.
        let cell = plan
            .cells
            .iter()
            .find(|cell| (cell.column, cell.row) == (1, 3))
            .unwrap();
        assert_eq!(cell.request.seed, Some(2));
        assert_eq!(cell.request.cfg, Some(7.0));
        assert_eq!(cell.request.steps, Some(20));
        assert_eq!(cell.settings.len(), 3);
        let no_y = plan_grid(
            &base,
            &axis("seed", json!([1])),
            None,
            Some(&axis("cfg", json!([1]))),
        );
        assert!(no_y.unwrap_err().to_string().contains("needs a y axis"));
        let same = plan_grid(
            &base,
            &axis("seed", json!([1])),
            Some(&axis("cfg", json!([1]))),
            Some(&axis("seed", json!([2]))),
        );
        assert!(same.unwrap_err().to_string().contains("same parameter (seed)"));
    }

    #[test]
    fn wrong_axes_are_refused_by_name() {
        let base = GenerateRequest {
            prompt: "a cat".into(),
            ..Default::default()
        };
        let refusals = [
            (axis("colour", json!([1])), "cannot sweep \"colour\""),
            (axis("seed", json!([])), "1 to 16 values"),
            (
                axis("steps", json!(["many"])),
                "steps values must be whole numbers",
            ),
            (
                axis("prompt_replace", json!(["dog", "cow"])),
                "does not contain it",
            ),
        ];
        for (wrong, expected) in refusals {
            let error = plan_grid(&base, &wrong, None, None).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        let many = axis("seed", Value::Array((0..16).map(|seed| json!(seed)).collect()));
        let error = plan_grid(&base, &many, Some(&axis("cfg", json!([1, 2, 3, 4, 5]))), None).unwrap_err();
        assert!(error.to_string().contains("over the 64"), "{error}");
        assert!(
            plan_grid(
                &base,
                &axis("cfg", json!([1])),
                Some(&axis("cfg", json!([2]))),
                None
            )
            .is_err()
        );
    }
}
