//! Prompts: analysed as ComfyUI reads them (comfy-text, with ComfyUI's own CLIP vocabulary when
//! configured), their `embedding:` references checked against the backend, and what recorded
//! experiments say about their terms; what a rewrite by the client's model is asked (the target
//! family's conventions, the goal) and how its answer is cleaned into one prompt.

use std::sync::Arc;

use comfy_text::{ClipTokenizer, PromptAnalysis, VOCABULARY_FILE};
use comfy_workflow::builders::ModelFamily;
use schemars::JsonSchema;
use serde::Serialize;

use crate::learning::HistoryInsights;
use crate::{Engine, EngineError};

/// A prompt's analysis, with the backend's and the history's word on it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PromptReport {
    #[serde(flatten)]
    pub analysis: PromptAnalysis,
    /// Embeddings the prompt names that the backend does not have (ComfyUI ignores them with a
    /// warning in its log).
    pub missing_embeddings: Vec<String>,
    /// The backend the embeddings were checked on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings_checked_on: Option<String>,
    /// What the person's choices in experiments say about this prompt's terms.
    pub history: HistoryInsights,
}

impl Engine {
    /// The CLIP tokenizer from the configured vocabulary, loaded once (off the async workers).
    async fn tokenizer(&self) -> Result<Arc<ClipTokenizer>, String> {
        let path = self.config.clip_vocabulary.clone();
        self.tokenizer
            .get_or_init(|| async move {
                let Some(path) = path else {
                    return Err(format!(
                        "set COMFYUI_MCP_CLIP_VOCABULARY to ComfyUI's comfy/sd1_tokenizer folder (it holds {VOCABULARY_FILE})"
                    ));
                };
                let file = if path.is_dir() { path.join(VOCABULARY_FILE) } else { path };
                tokio::task::spawn_blocking(move || {
                    let merges = fs_err::read_to_string(&file).map_err(|error| error.to_string())?;
                    ClipTokenizer::from_merges(&merges)
                        .map(Arc::new)
                        .map_err(|error| format!("{}: {error}", file.display()))
                })
                .await
                .unwrap_or_else(|error| Err(error.to_string()))
            })
            .await
            .clone()
    }

    /// Analyses `prompt`: tokens and windows (when the vocabulary is configured), weights,
    /// embeddings checked on `backend`, duplicates, choices, and the history of its terms.
    pub async fn analyze_prompt(
        &self,
        prompt: &str,
        backend: Option<&str>,
    ) -> Result<PromptReport, EngineError> {
        let tokenizer = self.tokenizer().await;
        let text = prompt.to_owned();
        let held = tokenizer.as_ref().ok().cloned();
        let mut analysis = tokio::task::spawn_blocking(move || comfy_text::analyze(held.as_deref(), &text))
            .await
            .map_err(|error| EngineError::bad_input(format!("prompt analysis failed: {error}")))?
            .map_err(|error| EngineError::bad_input(error.to_string()))?;
        if let Err(reason) = &tokenizer {
            for warning in &mut analysis.warnings {
                if warning.starts_with("tokens were not counted") {
                    *warning = format!("tokens were not counted: {reason}");
                }
            }
        }
        let mut missing_embeddings = Vec::new();
        let mut embeddings_checked_on = None;
        if !analysis.embeddings.is_empty() {
            let entry = self.pick_backend(backend)?;
            let known = entry
                .backend
                .client()
                .embeddings()
                .await
                .map_err(|source| entry.error(source))?;
            missing_embeddings = analysis
                .embeddings
                .iter()
                .filter(|name| !known.iter().any(|known| embedding_matches(known, name)))
                .cloned()
                .collect();
            embeddings_checked_on = Some(entry.name.clone());
        }
        let history = self.history_insights(Some(prompt), 0.05).await?;
        Ok(PromptReport {
            analysis,
            missing_embeddings,
            embeddings_checked_on,
            history,
        })
    }
}

/// Whether the backend's embedding `known` (a file name without its extension, maybe in a
/// subfolder) is the one a prompt names (with or without an extension, as ComfyUI looks up).
fn embedding_matches(known: &str, named: &str) -> bool {
    let strip = |name: &str| {
        let name = name.trim().replace('\\', "/");
        [".safetensors", ".pt", ".bin", ".pth"]
            .iter()
            .find_map(|extension| name.strip_suffix(extension).map(str::to_owned))
            .unwrap_or(name)
    };
    strip(known).eq_ignore_ascii_case(&strip(named))
}

/// Longest prompt taken for a rewrite.
pub const MAXIMUM_PROMPT_CHARACTERS: usize = 4_000;
/// Most rewrite rounds in one chain.
pub const MAXIMUM_ROUNDS: usize = 4;

/// How prompts are best written for `family`, as a rewriting model is told.
fn conventions(family: ModelFamily) -> &'static str {
    match family {
        ModelFamily::StableDiffusion => {
            "Stable Diffusion 1.5 reads prompts through CLIP ViT-L in windows of 75 tokens: write comma-separated descriptive phrases, most important first (subject, medium, style, lighting, composition, detail), at most about 60 words; ComfyUI's weight syntax (phrase:1.2) is allowed for a few key phrases, weights between 0.7 and 1.4."
        }
        ModelFamily::StableDiffusionXl => {
            "SDXL reads prompts through two CLIP encoders in windows of 75 tokens: write a short natural description of the subject followed by comma-separated style, lighting and composition phrases, at most about 70 words; ComfyUI's weight syntax (phrase:1.2) is allowed sparingly."
        }
        ModelFamily::StableDiffusion3 | ModelFamily::Flux => {
            "This model reads prompts through a T5 encoder that understands sentences: write one to four plain descriptive sentences (subject, setting, composition, lighting, style), up to about 120 words; no weight syntax, no keyword lists, no negative phrasing."
        }
    }
}

/// The system prompt and the request of one rewrite round.
pub fn rewrite_request(
    family: ModelFamily,
    prompt: &str,
    goal: Option<&str>,
    round: usize,
) -> Result<(String, String), EngineError> {
    if prompt.trim().is_empty() {
        return Err(EngineError::bad_input("prompt must not be empty"));
    }
    if prompt.chars().count() > MAXIMUM_PROMPT_CHARACTERS {
        return Err(EngineError::bad_input(format!(
            "prompt is longer than the {MAXIMUM_PROMPT_CHARACTERS} characters a rewrite takes"
        )));
    }
    let system = format!(
        "You rewrite image-generation prompts for ComfyUI. {} Keep the subject and every concrete detail the user gave; do not add text to be rendered in the image unless asked. Answer with the rewritten prompt only: no preamble, no quotes, no explanation.",
        conventions(family)
    );
    let goal = goal
        .map(str::trim)
        .filter(|goal| !goal.is_empty())
        .map_or_else(String::new, |goal| format!("\nGoal of this rewrite: {goal}"));
    let pass = if round == 0 {
        "Rewrite this prompt"
    } else {
        "Improve this rewritten prompt once more (clearer, more specific, nothing invented beyond the goal)"
    };
    Ok((system, format!("{pass}:{goal}\n\n{}", prompt.trim())))
}

/// A model's answer as one prompt: outer quotes, a leading label and surrounding blank lines
/// removed; `None` when nothing is left.
pub fn clean_rewrite(answer: &str) -> Option<String> {
    let unquote = |text: &str| {
        text.trim()
            .trim_matches(|character| matches!(character, '"' | '\u{201c}' | '\u{201d}' | '`'))
            .trim()
            .to_owned()
    };
    let mut text = unquote(answer);
    for label in ["rewritten prompt:", "prompt:"] {
        if let Some(head) = text.get(..label.len())
            && head.eq_ignore_ascii_case(label)
        {
            text = unquote(&text[label.len()..]);
        }
    }
    (!text.is_empty()).then(|| text.chars().take(MAXIMUM_PROMPT_CHARACTERS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_the_family_and_the_goal() {
        let (system, request) = rewrite_request(ModelFamily::Flux, "a fox", Some("autumn mood"), 0).unwrap();
        assert!(
            system.contains("T5") && system.contains("no weight syntax"),
            "{system}"
        );
        assert!(
            request.contains("Goal of this rewrite: autumn mood") && request.ends_with("a fox"),
            "{request}"
        );
        let (system, request) = rewrite_request(ModelFamily::StableDiffusion, "a fox", None, 1).unwrap();
        assert!(
            system.contains("75 tokens") && request.starts_with("Improve"),
            "{request}"
        );
        assert!(rewrite_request(ModelFamily::Flux, " ", None, 0).is_err());
        assert!(rewrite_request(ModelFamily::Flux, &"x".repeat(4_001), None, 0).is_err());
    }

    #[test]
    fn answers_are_cleaned_into_one_prompt() {
        assert_eq!(
            clean_rewrite("  \"Prompt: a red fox\"  ").as_deref(),
            Some("a red fox")
        );
        assert_eq!(
            clean_rewrite("Prompt: \"a red fox, snow\"").as_deref(),
            Some("a red fox, snow")
        );
        assert_eq!(clean_rewrite(" \n "), None);
    }
}
