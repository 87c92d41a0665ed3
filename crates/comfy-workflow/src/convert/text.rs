//! Text rewriting the ComfyUI frontend does before it sends a prompt: dynamic prompts (`{a|b}`
//! choices, comments), and `%date:FORMAT%` / `%Node.widget%` placeholders in filename prefixes.
//! The server does neither, so a converter that skips them sends different text than the UI.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A local date and time, injected by the caller so conversion stays deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDateTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// A small deterministic random number generator (SplitMix64): dynamic prompts only need a
/// reproducible choice, not cryptographic quality.
#[derive(Debug, Clone)]
pub struct ChoiceRandom {
    state: u64,
}

impl ChoiceRandom {
    pub fn new(seed: u64) -> Self {
        ChoiceRandom { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// An index below `count` (which must be positive to be meaningful; 0 gives 0).
    pub fn pick(&mut self, count: usize) -> usize {
        if count == 0 {
            return 0;
        }
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        usize::try_from(self.next() % count).unwrap_or(0)
    }
}

/// Removes `/* ... */` and `// ...` comments the way the frontend's regular expression
/// (`/\/\*[\s\S]*?\*\/|\/\/.*/g`) does: a block comment needs its terminator, a line comment runs
/// to the end of the line (`.` stops at `\n`, `\r`, U+2028 and U+2029). URLs lose their `//...`
/// part too, exactly as in the frontend.
pub fn strip_comments(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find('/') {
        let (before, from_slash) = rest.split_at(position);
        result.push_str(before);
        if let Some(after_open) = from_slash.strip_prefix("/*")
            && let Some(end) = after_open.find("*/")
        {
            rest = after_open.get(end + 2..).unwrap_or("");
        } else if let Some(after_open) = from_slash.strip_prefix("//") {
            rest = after_open
                .find(['\n', '\r', '\u{2028}', '\u{2029}'])
                .map_or("", |end| after_open.get(end..).unwrap_or(""));
        } else {
            result.push('/');
            rest = from_slash.get(1..).unwrap_or("");
        }
    }
    result.push_str(rest);
    result
}

/// Resolves a dynamic prompt like the frontend's `processDynamicPrompt`: strips comments,
/// replaces each `{a|b|c}` (nested allowed) with one choice, which is itself processed again, and
/// finally turns `\{`, `\|`, `\}` into plain characters. A block with one option (`{abc}`) always
/// yields it; a trailing backslash becomes `\undefined`, as in JavaScript.
pub fn process_dynamic_prompt(text: &str, random: &mut ChoiceRandom) -> String {
    process_at_depth(text, random, 0)
}

/// Nesting deeper than this is left as text rather than recursed into.
const MAXIMUM_CHOICE_DEPTH: usize = 64;

fn process_at_depth(text: &str, random: &mut ChoiceRandom, depth: usize) -> String {
    let stripped = strip_comments(text);
    let characters: Vec<char> = stripped.chars().collect();
    let mut output = String::new();
    let mut position = 0;
    while let Some(&character) = characters.get(position) {
        position += 1;
        match character {
            '\\' => {
                output.push('\\');
                match characters.get(position) {
                    Some(&escaped) => {
                        output.push(escaped);
                        position += 1;
                    }
                    None => output.push_str("undefined"),
                }
            }
            '{' if depth < MAXIMUM_CHOICE_DEPTH => {
                let (options, next) = choice_block(&characters, position);
                position = next;
                let chosen = options
                    .get(random.pick(options.len()))
                    .map(|option| option.iter().collect::<String>())
                    .unwrap_or_default();
                output.push_str(&process_at_depth(&chosen, random, depth + 1));
            }
            other => output.push(other),
        }
    }
    unescape_choice_characters(&output)
}

/// Splits a `{...}` block starting after its `{` into its top-level options; returns them and the
/// position after the closing `}` (or the end when it is unclosed).
fn choice_block(characters: &[char], start: usize) -> (Vec<Vec<char>>, usize) {
    let mut options = Vec::new();
    let mut current = Vec::new();
    let mut depth = 0usize;
    let mut position = start;
    while let Some(&character) = characters.get(position) {
        position += 1;
        match character {
            '\\' => {
                current.push('\\');
                match characters.get(position) {
                    Some(&escaped) => {
                        current.push(escaped);
                        position += 1;
                    }
                    None => current.extend("undefined".chars()),
                }
                continue;
            }
            '{' => depth += 1,
            '}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            '|' if depth == 0 => {
                options.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    options.push(current);
    (options, position)
}

fn unescape_choice_characters(text: &str) -> String {
    let mut result = String::with_capacity(text.len());
    let mut characters = text.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '\\'
            && let Some(&next) = characters.peek()
            && matches!(next, '{' | '}' | '|')
        {
            result.push(next);
            characters.next();
        } else {
            result.push(character);
        }
    }
    result
}

/// Formats the frontend's date tokens: `yyyy`, `yy`, and `d M h m s`, each one or two letters
/// (two letters pad with a zero). Other text is kept.
pub fn format_date(format: &str, now: &LocalDateTime) -> String {
    let characters: Vec<char> = format.chars().collect();
    let mut result = String::new();
    let mut position = 0;
    while let Some(&character) = characters.get(position) {
        let run = characters
            .get(position..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&next| next == character)
            .count();
        match character {
            'y' if run >= 2 => {
                // The pattern matches yy, yyy or yyyy greedily; only yy and yyyy are replaced.
                let taken = run.min(4);
                match taken {
                    2 => result.push_str(&format!("{:02}", now.year.rem_euclid(100))),
                    4 => result.push_str(&now.year.to_string()),
                    _ => result.push_str("yyy"),
                }
                position += taken;
            }
            'd' | 'M' | 'h' | 'm' | 's' => {
                let taken = run.min(2);
                let value = match character {
                    'd' => now.day,
                    'M' => now.month,
                    'h' => now.hour,
                    'm' => now.minute,
                    _ => now.second,
                };
                if taken == 2 {
                    result.push_str(&format!("{value:02}"));
                } else {
                    result.push_str(&value.to_string());
                }
                position += taken;
            }
            other => {
                result.push(other);
                position += 1;
            }
        }
    }
    result
}

/// Replaces characters that are unsafe in file names, as the frontend does for `%Node.widget%`.
pub fn sanitize_file_name_part(text: &str) -> String {
    text.chars()
        .map(|character| {
            if matches!(character, '/' | '?' | '<' | '>' | '\\' | ':' | '*' | '|' | '"')
                || character.is_ascii_control()
            {
                '_'
            } else {
                character
            }
        })
        .collect()
}

/// JavaScript's `String(value)` for JSON values (`null` gives `"null"`, arrays join their items with
/// commas, objects give `"[object Object]"`).
pub fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => js_number(number),
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                if item.is_null() {
                    String::new()
                } else {
                    js_string(item)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// JavaScript's number to string conversion (`1.0` is `"1"`, `1e21` is `"1e+21"`).
pub fn js_number(number: &serde_json::Number) -> String {
    if let Some(integer) = number.as_i64() {
        return format_js_float(integer as f64).unwrap_or_else(|| integer.to_string());
    }
    if let Some(integer) = number.as_u64() {
        return format_js_float(integer as f64).unwrap_or_else(|| integer.to_string());
    }
    number
        .as_f64()
        .and_then(format_js_float)
        .unwrap_or_else(|| number.to_string())
}

/// Formats a finite float the way `Number.prototype.toString` does.
pub fn format_js_float(float: f64) -> Option<String> {
    if !float.is_finite() {
        return Some(
            if float.is_nan() {
                "NaN"
            } else if float > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }
            .to_owned(),
        );
    }
    if float == 0.0 {
        return Some("0".to_owned());
    }
    // Shortest round-trip digits and exponent, from Rust's scientific formatting.
    let scientific = format!("{:e}", float.abs());
    let (mantissa, exponent) = scientific.split_once('e')?;
    let exponent: i32 = exponent.parse().ok()?;
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let count = i32::try_from(digits.len()).ok()?;
    let sign = if float < 0.0 { "-" } else { "" };
    let point = exponent + 1;
    let text = if (-6..=20).contains(&exponent) {
        if point >= count {
            format!("{digits}{}", "0".repeat(usize::try_from(point - count).ok()?))
        } else if point > 0 {
            let split = usize::try_from(point).ok()?;
            format!("{}.{}", digits.get(..split)?, digits.get(split..)?)
        } else {
            format!("0.{}{digits}", "0".repeat(usize::try_from(-point).ok()?))
        }
    } else {
        let rest = digits.get(1..).unwrap_or("");
        let mantissa = if rest.is_empty() {
            digits.get(..1).unwrap_or("").to_owned()
        } else {
            format!("{}.{rest}", digits.get(..1).unwrap_or(""))
        };
        let exponent_sign = if exponent < 0 { "-" } else { "+" };
        format!("{mantissa}e{exponent_sign}{}", exponent.abs())
    };
    Some(format!("{sign}{text}"))
}

/// JavaScript's `JSON.stringify` for JSON values (numbers as JavaScript writes them; object keys
/// in the order they are stored).
pub fn js_json_stringify(value: &Value) -> String {
    match value {
        Value::Number(number) => {
            let text = js_number(number);
            if text == "NaN" || text.ends_with("Infinity") {
                "null".to_owned()
            } else {
                text
            }
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(js_json_stringify).collect::<Vec<_>>().join(",")
        ),
        Value::Object(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(key, item)| format!("{}:{}", Value::String(key.clone()), js_json_stringify(item)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// Why a placeholder stayed as it was.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaceholderProblem {
    /// `%date:...%` without a clock value in the options.
    NoClock(String),
    /// `%Node.widget%` naming a node or widget that does not exist.
    Unresolved(String),
}

/// Replaces `%date:FORMAT%` and `%Node.widget%` placeholders. `%width%`, `%height%` and the other
/// single-word placeholders are left for the server. `lookup(node, widget)` returns the widget's
/// value as text.
pub fn replace_placeholders(
    text: &str,
    now: Option<&LocalDateTime>,
    lookup: &dyn Fn(&str, &str) -> Option<String>,
) -> (String, Vec<PlaceholderProblem>) {
    let mut result = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let (before, from_percent) = rest.split_at(start);
        result.push_str(before);
        let after_percent = from_percent.get(1..).unwrap_or("");
        let Some(end) = after_percent.find('%').filter(|end| *end > 0) else {
            // "%%" or an unmatched "%": keep one "%" and continue after it.
            result.push('%');
            rest = after_percent;
            continue;
        };
        let inner = after_percent.get(..end).unwrap_or("");
        let whole = from_percent.get(..end + 2).unwrap_or(from_percent);
        let parts: Vec<&str> = inner.split('.').collect();
        match parts.as_slice() {
            [node, widget] => match lookup(node, widget) {
                Some(value) => result.push_str(&sanitize_file_name_part(&value)),
                None => {
                    problems.push(PlaceholderProblem::Unresolved(whole.to_owned()));
                    result.push_str(whole);
                }
            },
            // Any other number of dots: a date when the first part starts with `date:`; the
            // frontend formats only that first part (`%date:yyyy.MM%` has one dot and is a
            // node lookup, `%date:yyyy.MM.dd%` gives the year alone), else left for the server.
            [first, ..] if first.starts_with("date:") => match now {
                Some(now) => result.push_str(&format_date(first.get(5..).unwrap_or(""), now)),
                None => {
                    problems.push(PlaceholderProblem::NoClock(whole.to_owned()));
                    result.push_str(whole);
                }
            },
            _ => result.push_str(whole),
        }
        rest = after_percent.get(end + 1..).unwrap_or("");
    }
    result.push_str(rest);
    (result, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: LocalDateTime = LocalDateTime {
        year: 2026,
        month: 3,
        day: 7,
        hour: 14,
        minute: 5,
        second: 9,
    };

    #[test]
    fn comments_are_stripped_like_the_frontend() {
        assert_eq!(strip_comments("a /* b */ c"), "a  c");
        assert_eq!(strip_comments("a // b\nc"), "a \nc");
        assert_eq!(strip_comments("see http://x.y/z"), "see http:");
        assert_eq!(strip_comments("a /* open"), "a /* open");
        assert_eq!(strip_comments("1/2"), "1/2");
    }

    #[test]
    fn choices_are_resolved_deterministically() {
        let mut random = ChoiceRandom::new(7);
        let first = process_dynamic_prompt("a {red|green|blue} car", &mut random);
        assert!(["a red car", "a green car", "a blue car"].contains(&first.as_str()));
        let mut again = ChoiceRandom::new(7);
        assert_eq!(
            process_dynamic_prompt("a {red|green|blue} car", &mut again),
            first
        );
    }

    #[test]
    fn nested_choices_and_escapes() {
        let mut random = ChoiceRandom::new(1);
        for _ in 0..20 {
            let text = process_dynamic_prompt("{x|{y|z}}", &mut random);
            assert!(["x", "y", "z"].contains(&text.as_str()), "{text}");
        }
        let mut random = ChoiceRandom::new(1);
        assert_eq!(
            process_dynamic_prompt(r"\{not a choice\} a\|b", &mut random),
            "{not a choice} a|b"
        );
        assert_eq!(process_dynamic_prompt(r"{only\|one}", &mut random), "only|one");
        assert_eq!(process_dynamic_prompt("{}", &mut random), "");
        let unclosed = process_dynamic_prompt("{unclosed|x", &mut random);
        assert!(["unclosed", "x"].contains(&unclosed.as_str()), "{unclosed}");
        assert_eq!(process_dynamic_prompt(r"keep \n", &mut random), r"keep \n");
    }

    #[test]
    fn dates_use_the_frontend_tokens() {
        assert_eq!(format_date("yyyy-MM-dd", &NOON), "2026-03-07");
        assert_eq!(format_date("yy/M/d h:mm:ss", &NOON), "26/3/7 14:05:09");
        assert_eq!(format_date("yyy x", &NOON), "yyy x");
    }

    #[test]
    fn placeholders_are_replaced() {
        let lookup = |node: &str, widget: &str| {
            (node == "Empty Latent Image" && widget == "width").then(|| "512".to_owned())
        };
        let (text, problems) = replace_placeholders(
            "%date:yyyy-MM-dd%/img_%Empty Latent Image.width%_%width%",
            Some(&NOON),
            &lookup,
        );
        assert_eq!(text, "2026-03-07/img_512_%width%");
        assert!(problems.is_empty());
        let (text, problems) = replace_placeholders("%date:yyyy% %Nope.x% 100%", None, &lookup);
        assert_eq!(text, "%date:yyyy% %Nope.x% 100%");
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn replaced_values_are_sanitized() {
        let lookup = |_: &str, _: &str| Some("a/b:c".to_owned());
        assert_eq!(replace_placeholders("%N.w%", None, &lookup).0, "a_b_c");
    }

    #[test]
    fn numbers_and_values_are_written_as_javascript_writes_them() {
        let number = |value: serde_json::Value| js_string(&value);
        assert_eq!(number(serde_json::json!(1.0)), "1");
        assert_eq!(number(serde_json::json!(0.1)), "0.1");
        assert_eq!(number(serde_json::json!(1e21)), "1e+21");
        assert_eq!(number(serde_json::json!(1e20)), "100000000000000000000");
        assert_eq!(number(serde_json::json!(0.000_001)), "0.000001");
        assert_eq!(number(serde_json::json!(1e-7)), "1e-7");
        assert_eq!(number(serde_json::json!(-2.5)), "-2.5");
        assert_eq!(number(serde_json::json!([1, null, "a"])), "1,,a");
        assert_eq!(number(serde_json::json!({"a": 1})), "[object Object]");
        assert_eq!(
            js_json_stringify(&serde_json::json!({"b": [1.0, 2.5], "a": "x\"y"})),
            "{\"a\":\"x\\\"y\",\"b\":[1,2.5]}"
        );
    }

    #[test]
    fn comments_end_at_any_line_terminator() {
        assert_eq!(strip_comments("a // b\rc"), "a \rc");
        assert_eq!(strip_comments("a // b\u{2028}c"), "a \u{2028}c");
    }
}
