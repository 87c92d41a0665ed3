//! Text rewriting the ComfyUI frontend does before it sends a prompt: dynamic prompts (`{a|b}`
//! choices, comments), and `%date:FORMAT%` / `%Node.widget%` placeholders in filename prefixes.
//! The server does neither, so a converter that skips them sends different text than the UI.

use serde::{Deserialize, Serialize};

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

/// Removes `/* ... */` and `// ...` comments the way the frontend's regular expression does: a
/// block comment needs its terminator, a line comment runs to the end of the line.
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
                .find('\n')
                .map_or("", |end| after_open.get(end..).unwrap_or(""));
        } else {
            result.push('/');
            rest = from_slash.get(1..).unwrap_or("");
        }
    }
    result.push_str(rest);
    result
}

/// Resolves a dynamic prompt: strips comments, replaces each `{a|b|c}` (nested allowed) with one
/// choice, and finally turns `\{`, `\|`, `\}` into plain characters.
pub fn process_dynamic_prompt(text: &str, random: &mut ChoiceRandom) -> String {
    let stripped = strip_comments(text);
    let characters: Vec<char> = stripped.chars().collect();
    expand(&characters, random, 0)
}

/// Nesting deeper than this is left as text rather than recursed into.
const MAXIMUM_CHOICE_DEPTH: usize = 64;

fn expand(characters: &[char], random: &mut ChoiceRandom, depth: usize) -> String {
    let mut output = String::new();
    let mut position = 0;
    while let Some(&character) = characters.get(position) {
        position += 1;
        match character {
            '\\' => {
                output.push('\\');
                if let Some(&escaped) = characters.get(position) {
                    output.push(escaped);
                    position += 1;
                }
            }
            '{' if depth < MAXIMUM_CHOICE_DEPTH => {
                let (options, next) = choice_block(characters, position);
                position = next;
                let chosen = options
                    .get(random.pick(options.len()))
                    .cloned()
                    .unwrap_or_default();
                output.push_str(&expand(&chosen, random, depth + 1));
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
                if let Some(&escaped) = characters.get(position) {
                    current.push(escaped);
                    position += 1;
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
            [single] if single.starts_with("date:") => match now {
                Some(now) => result.push_str(&format_date(single.get(5..).unwrap_or(""), now)),
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
}
