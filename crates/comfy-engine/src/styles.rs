//! Style presets and quality levels for generation. A style is a prompt template (`{prompt}`
//! marks the caller's prompt), a negative prompt added to the caller's, and settings a request's
//! own values override; the built-in ones below, or saved ones (the store). A quality level
//! scales the model family's default steps: `draft` half, `standard` as is, `high` 1.6 times.

use comfy_store::Style;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::library::library_error;
use crate::{Engine, EngineError};

/// The built-in styles: (name, description, template, negative prompt, cfg).
const BUILT_IN: &[(&str, &str, &str, &str, f64)] = &[
    (
        "photographic",
        "a photograph with natural light",
        "photograph of {prompt}, natural light, sharp focus, fine detail, 35mm lens",
        "drawing, painting, illustration, cartoon, blurry, deformed",
        6.0,
    ),
    (
        "cinematic",
        "a film still with dramatic light",
        "cinematic film still of {prompt}, dramatic lighting, shallow depth of field, anamorphic, color graded",
        "cartoon, flat lighting, oversaturated, blurry",
        6.5,
    ),
    (
        "anime",
        "anime key visual",
        "anime key visual of {prompt}, clean line art, vibrant colors, detailed background",
        "photo, realistic, 3d render, blurry, deformed hands",
        7.0,
    ),
    (
        "digital-art",
        "polished digital painting",
        "digital painting of {prompt}, concept art, highly detailed, smooth shading",
        "photo, blurry, low detail, jpeg artifacts",
        7.0,
    ),
    (
        "watercolor",
        "soft watercolour on paper",
        "watercolor painting of {prompt}, soft washes, paper texture, gentle edges",
        "photo, harsh lines, 3d, oversaturated",
        6.5,
    ),
    (
        "line-art",
        "black ink line drawing",
        "ink line drawing of {prompt}, clean black lines on white, minimal shading",
        "color, photo, gradient, blurry",
        7.0,
    ),
    (
        "pixel-art",
        "retro pixel art",
        "pixel art of {prompt}, limited palette, crisp pixels, 16-bit game style",
        "blurry, smooth gradients, photo, anti-aliasing",
        7.0,
    ),
    (
        "3d-render",
        "a clean 3D render",
        "3d render of {prompt}, studio lighting, soft shadows, physically based materials",
        "drawing, sketch, flat, photo noise",
        6.5,
    ),
    (
        "analog-film",
        "grainy analogue film photo",
        "analog film photo of {prompt}, film grain, faded colors, light leaks, vintage",
        "digital, oversharpened, 3d render, cartoon",
        6.0,
    ),
    (
        "comic-book",
        "inked comic panel",
        "comic book panel of {prompt}, bold ink outlines, halftone shading, dynamic composition",
        "photo, realistic, blurry, muted colors",
        7.0,
    ),
    (
        "isometric",
        "isometric diorama",
        "isometric view of {prompt}, tiny diorama, clean edges, soft global illumination",
        "perspective distortion, blurry, photo",
        7.0,
    ),
    (
        "fantasy-art",
        "epic fantasy illustration",
        "epic fantasy illustration of {prompt}, magical atmosphere, intricate detail, painterly",
        "photo, modern, plain background, blurry",
        7.0,
    ),
];

/// A style as it is listed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StyleSummary {
    pub name: String,
    pub description: String,
    pub prompt: String,
    pub negative_prompt: String,
    pub settings: Map<String, Value>,
    /// `built-in` or `saved`.
    pub source: &'static str,
}

/// Every style: built-in first, then saved.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StyleListing {
    pub styles: Vec<StyleSummary>,
    /// The quality levels generate_image takes.
    pub quality_levels: Vec<&'static str>,
}

/// The settings a style may carry.
const STYLE_SETTINGS: &[&str] = &["steps", "cfg", "sampler", "scheduler", "width", "height"];

/// The built-in style `name`.
pub(crate) fn built_in(name: &str) -> Option<Style> {
    BUILT_IN
        .iter()
        .find(|(known, ..)| *known == name)
        .map(|(name, description, prompt, negative, cfg)| Style {
            name: (*name).to_owned(),
            description: (*description).to_owned(),
            prompt: (*prompt).to_owned(),
            negative_prompt: (*negative).to_owned(),
            settings: json!({"cfg": cfg}).as_object().cloned().unwrap_or_default(),
        })
}

fn summary(style: Style, source: &'static str) -> StyleSummary {
    StyleSummary {
        name: style.name,
        description: style.description,
        prompt: style.prompt,
        negative_prompt: style.negative_prompt,
        settings: style.settings,
        source,
    }
}

/// The steps a quality level asks for, from the family's default.
pub fn quality_steps(quality: &str, default_steps: u32) -> Result<u32, EngineError> {
    match quality {
        "draft" => Ok((default_steps / 2).max(4)),
        "standard" => Ok(default_steps),
        "high" => Ok((f64::from(default_steps) * 1.6).round() as u32),
        other => Err(EngineError::bad_input(format!(
            "quality {other:?} is none of draft, standard, high"
        ))),
    }
}

impl Engine {
    /// Built-in and saved styles.
    pub async fn list_styles(&self) -> Result<StyleListing, EngineError> {
        let mut styles: Vec<StyleSummary> = BUILT_IN
            .iter()
            .filter_map(|(name, ..)| built_in(name))
            .map(|style| summary(style, "built-in"))
            .collect();
        let saved = self.store.list_styles().await.map_err(library_error)?;
        styles.extend(saved.into_iter().map(|style| summary(style, "saved")));
        Ok(StyleListing {
            styles,
            quality_levels: vec!["draft", "standard", "high"],
        })
    }

    /// The style `name`: a built-in one, else a saved one.
    pub async fn style(&self, name: &str) -> Result<Style, EngineError> {
        let name = name.trim();
        if let Some(style) = built_in(name) {
            return Ok(style);
        }
        self.store
            .get_style(name)
            .await
            .map_err(library_error)?
            .ok_or_else(|| {
                let known: Vec<&str> = BUILT_IN.iter().map(|(name, ..)| *name).collect();
                EngineError::bad_input(format!(
                    "no style {name:?}; built in: {}; style_preset action=list shows the saved ones",
                    known.join(", ")
                ))
            })
    }

    /// Saves a style (not over a built-in name; only the known settings).
    pub async fn save_style(&self, style: Style) -> Result<StyleSummary, EngineError> {
        if built_in(style.name.trim()).is_some() {
            return Err(EngineError::bad_input(format!(
                "{:?} is a built-in style; save yours under another name",
                style.name.trim()
            )));
        }
        if let Some(unknown) = style
            .settings
            .keys()
            .find(|key| !STYLE_SETTINGS.contains(&key.as_str()))
        {
            return Err(EngineError::bad_input(format!(
                "a style's settings are {}; {unknown:?} is not one",
                STYLE_SETTINGS.join(", ")
            )));
        }
        let saved = self.store.save_style(style).await.map_err(library_error)?;
        Ok(summary(saved, "saved"))
    }

    /// Deletes a saved style; whether there was one.
    pub async fn delete_style(&self, name: &str) -> Result<bool, EngineError> {
        self.store.delete_style(name).await.map_err(library_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_style_has_the_placeholder() {
        assert!(
            BUILT_IN
                .iter()
                .all(|(_, _, template, ..)| template.contains("{prompt}"))
        );
        assert!(BUILT_IN.iter().all(|(name, ..)| built_in(name).is_some()));
    }

    #[test]
    fn quality_levels_scale_the_family_default() {
        assert_eq!(quality_steps("draft", 20).unwrap(), 10);
        assert_eq!(quality_steps("draft", 4).unwrap(), 4);
        assert_eq!(quality_steps("standard", 28).unwrap(), 28);
        assert_eq!(quality_steps("high", 20).unwrap(), 32);
        assert!(quality_steps("ultra", 20).is_err());
    }
}
