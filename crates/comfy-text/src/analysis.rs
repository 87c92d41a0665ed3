//! One prompt analysed: its weighted spans, the parts ComfyUI tokenizes (embeddings split out),
//! the 77-token windows they fill, and what a person should look at (duplicates, extreme weights,
//! choices the frontend expands, syntax from other tools).

use schemars::JsonSchema;
use serde::Serialize;

use crate::weights::{WeightedSpan, parse_weights};
use crate::{ClipTokenizer, MAXIMUM_PROMPT_BYTES, TextError};

/// Content tokens of one window (77 less the start and end tokens).
const WINDOW_TOKENS: usize = 75;
/// ComfyUI moves a part of fewer tokens than this whole into the next window.
const MAXIMUM_WORD_TOKENS: usize = 8;
const EMBEDDING: &str = "embedding:";

/// One 77-token window as ComfyUI fills it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Window {
    /// Content tokens (start and end not counted; embeddings not included).
    pub tokens: usize,
    /// The window's text as CLIP reads it (lowercased).
    pub text: String,
}

/// A dynamic-prompt group `{a|b|c}`: the frontend picks one option per run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChoiceGroup {
    pub options: Vec<String>,
}

/// What a prompt is to ComfyUI.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PromptAnalysis {
    /// Whether tokens were counted (they need ComfyUI's vocabulary).
    pub tokens_counted: bool,
    /// Content tokens in all (start and end tokens and embeddings not included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<usize>,
    /// The windows CLIP encodes (each 77 tokens with start, end and padding).
    pub windows: Vec<Window>,
    pub spans: Vec<WeightedSpan>,
    /// Embedding names as written after `embedding:`.
    pub embeddings: Vec<String>,
    /// Comma-separated terms that appear more than once (case and spacing ignored).
    pub duplicates: Vec<String>,
    pub choices: Vec<ChoiceGroup>,
    /// Distinct prompts the choices can make (saturating).
    pub combinations: u64,
    /// The prompt's terms, normalized (lowercase, weights and brackets removed).
    pub terms: Vec<String>,
    pub warnings: Vec<String>,
}

/// The prompt's comma-separated terms: lowercase, single-spaced, without weight syntax; each once.
pub fn terms(prompt: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for term in terms_with_repeats(prompt) {
        if !found.contains(&term) {
            found.push(term);
        }
    }
    found
}

/// The parts ComfyUI tokenizes one by one: each span split before ` embedding:` and
/// `\nembedding:`; `(text, is_embedding)`.
fn parts(spans: &[WeightedSpan]) -> Vec<(String, bool)> {
    let mut parts = Vec::new();
    for span in spans {
        let mut rest = span.text.as_str();
        loop {
            let next = [" embedding:", "\nembedding:"]
                .iter()
                .filter_map(|marker| rest.find(marker))
                .min();
            let (head, tail) = match next {
                Some(index) => (&rest[..index], Some(&rest[index + 1..])),
                None => (rest, None),
            };
            if !head.is_empty() {
                parts.push((head.to_owned(), head.starts_with(EMBEDDING)));
            }
            match tail {
                Some(tail) => rest = tail,
                None => break,
            }
        }
    }
    parts
}

/// The embedding's name as ComfyUI looks it up: the first word after `embedding:`; the rest of
/// the part is tokenized as text.
fn split_embedding(part: &str) -> (String, String) {
    let after = &part[EMBEDDING.len()..];
    let mut words = after.split_whitespace();
    let name = words.next().unwrap_or_default().to_owned();
    (name, words.collect::<Vec<_>>().join(" "))
}

/// Packs token groups into windows as `tokenize_with_weights` does; notes groups moved or cut.
fn windows(
    tokenizer: &ClipTokenizer,
    groups: &[(String, Vec<u16>)],
    warnings: &mut Vec<String>,
) -> Vec<Window> {
    let mut windows: Vec<Vec<u16>> = vec![Vec::new()];
    for (text, group) in groups {
        let large = group.len() >= MAXIMUM_WORD_TOKENS;
        let mut rest = group.as_slice();
        while !rest.is_empty() {
            let current = windows.last().map_or(0, Vec::len);
            if current + rest.len() <= WINDOW_TOKENS {
                if let Some(window) = windows.last_mut() {
                    window.extend_from_slice(rest);
                }
                break;
            }
            let room = WINDOW_TOKENS - current;
            if large {
                let (head, tail) = rest.split_at(room);
                if let Some(window) = windows.last_mut() {
                    window.extend_from_slice(head);
                }
                warnings.push(format!(
                    "window {} ends inside {:?}: the rest goes on in window {} (CLIP sees the two halves apart)",
                    windows.len(),
                    shorten(text),
                    windows.len() + 1
                ));
                rest = tail;
            } else {
                warnings.push(format!(
                    "{:?} did not fit in window {} and moved whole to window {}",
                    shorten(text),
                    windows.len(),
                    windows.len() + 1
                ));
            }
            windows.push(Vec::new());
        }
    }
    windows
        .into_iter()
        .filter(|window| !window.is_empty())
        .map(|window| Window {
            tokens: window.len(),
            text: tokenizer.decode(&window),
        })
        .collect()
}

fn shorten(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= 40 {
        return text.to_owned();
    }
    format!("{}...", text.chars().take(40).collect::<String>())
}

/// Top-level `{a|b}` groups (a nested group is part of one option's text), and whether a `{`
/// is left open.
fn parse_groups(text: &str) -> (Vec<ChoiceGroup>, bool) {
    let mut groups = Vec::new();
    let (mut depth, mut current) = (0usize, String::new());
    for character in text.chars() {
        match character {
            '{' => {
                if depth > 0 {
                    current.push('{');
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let options = split_top_level(&current);
                    if options.len() > 1 {
                        groups.push(ChoiceGroup { options });
                    }
                    current.clear();
                } else {
                    current.push('}');
                }
            }
            other if depth > 0 => current.push(other),
            _ => {}
        }
    }
    (groups, depth > 0)
}

/// The prompts `groups` make: each group's options summed (an option with groups of its own
/// counts what those make), the groups multiplied; nesting past 16 levels counts as one.
fn combinations_of(groups: &[ChoiceGroup], depth: usize) -> u64 {
    groups.iter().fold(1u64, |product, group| {
        let options: u64 = group
            .options
            .iter()
            .map(|option| {
                if depth > 16 || !option.contains('{') {
                    return 1;
                }
                combinations_of(&parse_groups(option).0, depth + 1)
            })
            .fold(0u64, u64::saturating_add);
        product.saturating_mul(options.max(1))
    })
}

fn split_top_level(text: &str) -> Vec<String> {
    let mut options = Vec::new();
    let (mut depth, mut current) = (0usize, String::new());
    for character in text.chars() {
        match character {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => {
                options.push(std::mem::take(&mut current).trim().to_owned());
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    options.push(current.trim().to_owned());
    options
}

/// Analyses `prompt`; without a tokenizer (ComfyUI's vocabulary not found) tokens and windows
/// are left out and a warning says so.
pub fn analyze(tokenizer: Option<&ClipTokenizer>, prompt: &str) -> Result<PromptAnalysis, TextError> {
    if prompt.len() > MAXIMUM_PROMPT_BYTES {
        return Err(TextError::TooLong { length: prompt.len() });
    }
    let mut warnings = Vec::new();
    let spans = parse_weights(prompt);
    for span in &spans {
        if span.weight > 1.6 || span.weight < 0.5 {
            warnings.push(format!(
                "{:?} has weight {:.2}: past about 1.6 (or under 0.5) images tend to break up",
                shorten(&span.text),
                span.weight
            ));
        }
    }
    let mut embeddings = Vec::new();
    let mut groups: Vec<(String, Vec<u16>)> = Vec::new();
    for (part, is_embedding) in parts(&spans) {
        let text = if is_embedding {
            let (name, rest) = split_embedding(&part);
            embeddings.push(name.trim_end_matches(',').to_owned());
            rest
        } else {
            part
        };
        if let Some(tokenizer) = tokenizer {
            let tokens = tokenizer.encode(&text);
            if !tokens.is_empty() {
                groups.push((text, tokens));
            }
        }
    }
    let (tokens, windows) = match tokenizer {
        Some(tokenizer) => (
            Some(groups.iter().map(|(_, tokens)| tokens.len()).sum()),
            windows(tokenizer, &groups, &mut warnings),
        ),
        None => {
            warnings.push(
                "tokens were not counted: ComfyUI's CLIP vocabulary (comfy/sd1_tokenizer/merges.txt) is not configured"
                    .to_owned(),
            );
            (None, Vec::new())
        }
    };
    let mut seen: Vec<String> = Vec::new();
    let mut duplicates: Vec<String> = Vec::new();
    for term in terms_with_repeats(prompt) {
        if seen.contains(&term) && !duplicates.contains(&term) {
            duplicates.push(term);
        } else {
            seen.push(term);
        }
    }
    let pieces: Vec<&str> = prompt.split(',').collect();
    let inner = &pieces[..pieces.len().saturating_sub(1)];
    if pieces.len() > 1 && inner.iter().skip(1).any(|piece| piece.trim().is_empty()) {
        warnings.push("empty terms (two commas with nothing between) add nothing".to_owned());
    }
    if prompt.split_whitespace().any(|word| word == "BREAK") {
        warnings.push(
            "BREAK is A1111 syntax: ComfyUI reads it as the word \"break\" (use ConditioningConcat instead)"
                .to_owned(),
        );
    }
    let (choices, unclosed) = parse_groups(prompt);
    if unclosed {
        warnings.push("a { is never closed: the frontend sends it as text".to_owned());
    }
    let combinations = combinations_of(&choices, 0);
    Ok(PromptAnalysis {
        tokens_counted: tokenizer.is_some(),
        tokens,
        windows,
        spans,
        embeddings,
        duplicates,
        choices,
        combinations,
        terms: terms(prompt),
        warnings,
    })
}

/// Every term in order, repeats kept.
fn terms_with_repeats(prompt: &str) -> Vec<String> {
    let plain: String = parse_weights(prompt)
        .iter()
        .map(|span| span.text.replace(['(', ')'], ""))
        .collect();
    plain
        .split([',', '\n'])
        .map(|term| {
            term.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        })
        .filter(|term| !term.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_drop_weights_and_repeats() {
        assert_eq!(
            terms("A Fox, (red fur:1.2),  snow\nsnow, ((Golden  Hour))"),
            ["a fox", "red fur", "snow", "golden hour"]
        );
    }

    #[test]
    fn without_a_vocabulary_the_rest_is_still_analysed() {
        let analysis = analyze(
            None,
            "a cat, a cat, (fur:1.9), embedding:easynegative, {red|blue|{green|teal}} BREAK sky,, x",
        )
        .unwrap();
        assert!(!analysis.tokens_counted && analysis.tokens.is_none() && analysis.windows.is_empty());
        assert_eq!(analysis.embeddings, ["easynegative"]);
        assert_eq!(analysis.duplicates, ["a cat"]);
        assert_eq!(analysis.choices.len(), 1);
        assert_eq!(analysis.choices[0].options, ["red", "blue", "{green|teal}"]);
        assert_eq!(analysis.combinations, 4);
        let warnings = analysis.warnings.join("\n");
        for expected in ["weight 1.90", "not counted", "BREAK is A1111", "empty terms"] {
            assert!(warnings.contains(expected), "{expected}: {warnings}");
        }
        assert!(analyze(None, &"x".repeat(MAXIMUM_PROMPT_BYTES + 1)).is_err());
    }
}
