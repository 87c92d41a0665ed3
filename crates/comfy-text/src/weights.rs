//! ComfyUI's weight syntax: `(text)` multiplies by 1.1, `(text:1.5)` sets 1.5, nesting multiplies,
//! `\(` and `\)` are literal brackets. Parsed exactly as `parse_parentheses` and `token_weights`
//! do, unbalanced brackets included (an unclosed `(` takes the rest of the prompt, a stray `)`
//! closes nothing and vanishes).

use schemars::JsonSchema;
use serde::Serialize;

/// Stand-ins for escaped brackets while parsing, as ComfyUI's `escape_important` uses.
const OPEN: &str = "\u{0}\u{2}";
const CLOSE: &str = "\u{0}\u{1}";

/// A run of text and the weight ComfyUI gives its tokens.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct WeightedSpan {
    pub text: String,
    pub weight: f64,
}

/// Top-level parts: bracketed groups (with their brackets) and the text between them.
fn parse_parentheses(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut depth: i64 = 0;
    for character in text.chars() {
        match character {
            '(' => {
                if depth == 0 && !current.is_empty() {
                    parts.push(std::mem::take(&mut current));
                }
                current.push('(');
                depth += 1;
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    current.push(')');
                    parts.push(std::mem::take(&mut current));
                } else {
                    current.push(')');
                }
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

fn token_weights(text: &str, weight: f64, depth: usize, out: &mut Vec<WeightedSpan>) {
    for part in parse_parentheses(text) {
        let bracketed = part.len() >= 2 && part.starts_with('(') && part.ends_with(')');
        // Nesting past 64 levels is no prompt anyone writes; it stays text, the stack bounded.
        if !bracketed || depth > 64 {
            out.push(WeightedSpan { text: part, weight });
            continue;
        }
        let mut inner = &part[1..part.len() - 1];
        let mut inner_weight = weight * 1.1;
        if let Some(colon) = inner.rfind(':')
            && colon > 0
            && let Ok(explicit) = inner[colon + 1..].trim().parse::<f64>()
            && explicit.is_finite()
        {
            inner_weight = explicit;
            inner = &inner[..colon];
        }
        token_weights(inner, inner_weight, depth + 1, out);
    }
}

/// The prompt's spans with their weights, brackets resolved and escapes turned back into
/// literal brackets.
pub fn parse_weights(prompt: &str) -> Vec<WeightedSpan> {
    let escaped = prompt.replace("\\)", CLOSE).replace("\\(", OPEN);
    let mut spans = Vec::new();
    token_weights(&escaped, 1.0, 0, &mut spans);
    for span in &mut spans {
        span.text = span.text.replace(CLOSE, ")").replace(OPEN, "(");
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(prompt: &str) -> Vec<(String, f64)> {
        parse_weights(prompt)
            .into_iter()
            .map(|span| (span.text, (span.weight * 10_000.0).round() / 10_000.0))
            .collect()
    }

    #[test]
    fn weights_follow_comfyui() {
        assert_eq!(spans("a cat"), [("a cat".into(), 1.0)]);
        assert_eq!(
            spans("a (red:1.5) fox, ((snow))"),
            [
                ("a ".into(), 1.0),
                ("red".into(), 1.5),
                (" fox, ".into(), 1.0),
                ("snow".into(), 1.21)
            ]
        );
        // An explicit weight replaces, nesting multiplies what is inside.
        assert_eq!(spans("((a:0.5) b)"), [("a".into(), 0.5), (" b".into(), 1.1)]);
        // Not a number after the colon: the colon is text and the group is 1.1.
        assert_eq!(spans("(time: noon)"), [("time: noon".into(), 1.1)]);
        // Escaped brackets are text.
        assert_eq!(spans(r"a \(b\) c"), [("a (b) c".into(), 1.0)]);
        // An unclosed bracket takes the rest; a stray one closes nothing.
        assert_eq!(spans("a (b c"), [("a ".into(), 1.0), ("(b c".into(), 1.0)]);
        assert_eq!(spans("a) b"), [("a) b".into(), 1.0)]);
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
        let parsed = parse_weights(&deep);
        assert!(!parsed.is_empty());
    }
}
