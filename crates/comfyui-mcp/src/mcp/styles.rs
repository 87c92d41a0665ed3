//! `style_preset` (part of the `workflows` toolset): the built-in and saved style presets that
//! `generate_image` takes as `style`, and saving or deleting one's own.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::render::{engine_error, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool};
use comfy_engine::types::Style;

/// What `style_preset` does.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum StylePresetArguments {
    /// Every style (built-in and saved) with its template, negative prompt and settings, and the
    /// quality levels.
    List {},
    /// Save a style (a new name, or replace a saved one; built-in names are kept).
    Save {
        /// The style's name.
        name: String,
        /// The prompt template; {prompt} marks where the caller's prompt goes.
        prompt: String,
        /// Added to the caller's negative prompt.
        #[serde(default)]
        negative_prompt: String,
        #[serde(default)]
        description: String,
        /// steps, cfg, sampler, scheduler, width, height: used where a request leaves them out.
        #[serde(default)]
        settings: Map<String, Value>,
    },
    /// Delete a saved style.
    Delete {
        /// The style's name.
        name: String,
    },
}

/// This tool, declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[declare_tool!(
    "style_preset",
    "Style presets for generate_image's style argument: list the built-in and saved ones (prompt template, negative prompt, settings) and the quality levels, save your own, delete one.",
    Hints::UPDATES,
    StylePresetArguments,
    style_preset,
)];

async fn style_preset(
    server: &ComfyServer,
    arguments: StylePresetArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    let answer = match arguments {
        StylePresetArguments::List {} => {
            serde_json::to_value(engine.list_styles().await.map_err(|error| engine_error(&error))?)
                .unwrap_or_default()
        }
        StylePresetArguments::Save {
            name,
            prompt,
            negative_prompt,
            description,
            settings,
        } => {
            let style = Style {
                name,
                description,
                prompt,
                negative_prompt,
                settings,
            };
            let saved = engine
                .save_style(style)
                .await
                .map_err(|error| engine_error(&error))?;
            json!({"saved": saved})
        }
        StylePresetArguments::Delete { name } => {
            let deleted = engine
                .delete_style(&name)
                .await
                .map_err(|error| engine_error(&error))?;
            json!({"name": name, "deleted": deleted})
        }
    };
    Ok(json_result(&answer))
}
