//! Prompt tools (part of the `analysis` toolset): `analyze_prompt` reads a prompt as ComfyUI does
//! (tokens and 77-token windows, weights, embeddings checked on the backend, duplicates, dynamic
//! choices) with what recorded experiments say of its terms; `optimize_prompt` asks the client's
//! own model, through MCP sampling, to rewrite a prompt for the target model family, once or in a
//! chain of rounds each improving the last.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ask::{self, Unanswered};
use super::render::{engine_error, error_text, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, declare_tool};
use comfy_engine::generate::parse_family;
use comfy_engine::prompts::{MAXIMUM_ROUNDS, clean_rewrite, rewrite_request};

/// Tokens a rewrite may take.
const REWRITE_TOKENS: u32 = 400;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OptimizePromptArguments {
    prompt: String,
    /// The model family it is for: stable_diffusion (default), stable_diffusion_xl,
    /// stable_diffusion_3 or flux.
    family: Option<String>,
    /// What the rewrite should achieve ("moodier light", "more detail on the face"...).
    goal: Option<String>,
    /// Rewrite rounds, 1 to 4 (default 1): each round improves the previous one's prompt.
    rounds: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AnalyzePromptArguments {
    prompt: String,
    /// Where embeddings are checked (default: the default backend).
    backend: Option<String>,
}

#[derive(Debug, Serialize)]
struct Round {
    prompt: String,
    model: String,
}

/// This file's tools, each declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[
    declare_tool!(
        "analyze_prompt",
        "Read a prompt as ComfyUI does: CLIP tokens and the 77-token windows they fill (where a window cuts a phrase), weights from (text:1.2) syntax with extreme ones flagged, embedding: references checked on the backend, duplicated terms, {a|b} choices and their combinations; plus what your judged experiments say about its terms (wins, p-values, suggestions).",
        Hints::READ_ONLY,
        AnalyzePromptArguments,
        analyze_prompt,
    ),
    declare_tool!(
        "optimize_prompt",
        "Rewrite a prompt for a model family (SD1.5, SDXL, SD3, Flux) with your own model through MCP sampling, once or in a chain of up to 4 rounds each improving the last; the client shows or approves the request. Clients without sampling get a precise refusal.",
        Hints::READ_ONLY,
        OptimizePromptArguments,
        optimize_prompt,
    ),
];

async fn analyze_prompt(
    server: &ComfyServer,
    arguments: AnalyzePromptArguments,
    _context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let report = server
        .engine
        .analyze_prompt(&arguments.prompt, arguments.backend.as_deref())
        .await
        .map_err(|error| engine_error(&error))?;
    Ok(json_result(&serde_json::to_value(report).unwrap_or_default()))
}

async fn optimize_prompt(
    _server: &ComfyServer,
    arguments: OptimizePromptArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let family = parse_family(arguments.family.as_deref().unwrap_or("stable_diffusion"))
        .map_err(|error| engine_error(&error))?;
    let rounds = arguments.rounds.unwrap_or(1);
    if !(1..=MAXIMUM_ROUNDS).contains(&rounds) {
        return Err(error_text(format!(
            "rounds must be 1 to {MAXIMUM_ROUNDS}, got {rounds}"
        )));
    }
    let mut current = arguments.prompt.trim().to_owned();
    let mut done = Vec::new();
    for round in 0..rounds {
        let (system, request) = rewrite_request(family, &current, arguments.goal.as_deref(), round)
            .map_err(|error| engine_error(&error))?;
        let (answer, model) = match ask::sample(
            context,
            &format!("rewrite-{round}"),
            &system,
            request,
            REWRITE_TOKENS,
        )
        .await
        {
            Ok(answer) => answer,
            Err(Unanswered::Asked) => return Err(ask::waiting()),
            Err(Unanswered::Refused(refusal)) => return Err(refusal),
        };
        current = clean_rewrite(&answer).ok_or_else(|| {
            error_text(format!(
                "the client's model ({model}) answered round {} with no prompt",
                round + 1
            ))
        })?;
        done.push(Round {
            prompt: current.clone(),
            model,
        });
    }
    Ok(json_result(&serde_json::json!({
        "original": arguments.prompt.trim(),
        "family": family,
        "prompt": current,
        "rounds": done,
    })))
}
