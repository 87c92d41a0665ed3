//! Parsing JSON the way ComfyUI and its frontend write it: Python's `json` emits the bare tokens
//! `NaN`, `Infinity` and `-Infinity` (in `execution_error.current_inputs`, in saved workflows),
//! which strict JSON parsers reject. The frontend rewrites them to `null` before parsing; so does
//! this module.

use serde_json::Value;

/// Parses `text`, reading the non-finite number tokens outside strings as `null`.
pub fn parse_lenient(text: &str) -> Result<Value, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(value) => Ok(value),
        Err(strict_error) => {
            let rewritten = replace_non_finite_tokens(text);
            if rewritten == text {
                return Err(strict_error);
            }
            serde_json::from_str(&rewritten)
        }
    }
}

/// Replaces `NaN`, `Infinity` and `-Infinity` outside string literals with `null`.
pub(crate) fn replace_non_finite_tokens(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(character) = rest.chars().next() {
        if in_string {
            result.push(character);
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
            rest = rest.get(character.len_utf8()..).unwrap_or("");
            continue;
        }
        if character == '"' {
            in_string = true;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|token| rest.starts_with(token));
        if let Some(token) = token {
            result.push_str("null");
            rest = rest.get(token.len()..).unwrap_or("");
        } else {
            result.push(character);
            rest = rest.get(character.len_utf8()..).unwrap_or("");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_finite_tokens_become_null() {
        let value =
            parse_lenient(r#"{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN stays", "d": "\"NaN"}"#)
                .unwrap();
        assert_eq!(
            value,
            json!({"a": null, "b": [null, null], "c": "NaN stays", "d": "\"NaN"})
        );
    }

    #[test]
    fn strict_errors_are_kept() {
        assert!(parse_lenient("{").is_err());
        assert_eq!(parse_lenient("[1]").unwrap(), json!([1]));
    }
}
