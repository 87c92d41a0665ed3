//! Python-compatible value coercion and number comparison, as ComfyUI applies them to widget inputs.
//!
//! ComfyUI runs `int(v)`, `float(v)`, `str(v)` or `bool(v)` on constant inputs before range checks,
//! so `"16"` is a valid INT and `8.9` becomes `8`, while `"8.9"` is not. Bounds reach 2^64-1 (seeds),
//! beyond `i64`, so integers are kept as `i128` and compared exactly against floats.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// A number as ComfyUI's Python code sees it: an int or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Numeric {
    Integer(i128),
    Float(f64),
}

impl Numeric {
    /// Reads a JSON number; integers stay exact up to 2^64-1.
    pub fn from_json(value: &Value) -> Option<Numeric> {
        let Value::Number(number) = value else {
            return None;
        };
        if let Some(integer) = number.as_i64() {
            return Some(Numeric::Integer(i128::from(integer)));
        }
        if let Some(integer) = number.as_u64() {
            return Some(Numeric::Integer(i128::from(integer)));
        }
        number.as_f64().map(Numeric::Float)
    }

    pub fn as_f64(self) -> f64 {
        match self {
            // Precision loss only matters beyond 2^53, where callers compare with `compare` instead.
            #[allow(clippy::cast_precision_loss)]
            Numeric::Integer(integer) => integer as f64,
            Numeric::Float(float) => float,
        }
    }

    /// Python's mixed int/float comparison: exact, and `None` when a NaN is involved.
    pub fn compare(self, other: Numeric) -> Option<Ordering> {
        match (self, other) {
            (Numeric::Integer(left), Numeric::Integer(right)) => Some(left.cmp(&right)),
            (Numeric::Float(left), Numeric::Float(right)) => left.partial_cmp(&right),
            (Numeric::Integer(left), Numeric::Float(right)) => compare_integer_float(left, right),
            (Numeric::Float(left), Numeric::Integer(right)) => {
                compare_integer_float(right, left).map(Ordering::reverse)
            }
        }
    }

    /// The value as JSON, for writing back a coerced input.
    pub fn to_json(self) -> Value {
        match self {
            Numeric::Integer(integer) => {
                if let Ok(small) = i64::try_from(integer) {
                    Value::from(small)
                } else if let Ok(unsigned) = u64::try_from(integer) {
                    Value::from(unsigned)
                } else {
                    Value::from(self.as_f64())
                }
            }
            Numeric::Float(float) => Value::from(float),
        }
    }
}

impl fmt::Display for Numeric {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Numeric::Integer(integer) => write!(formatter, "{integer}"),
            // Python prints whole floats with a trailing `.0`; matching it keeps messages familiar.
            Numeric::Float(float) if float.is_finite() && float.fract() == 0.0 && float.abs() < 1e16 => {
                write!(formatter, "{float:.1}")
            }
            Numeric::Float(float) => write!(formatter, "{float}"),
        }
    }
}

/// 2^127 as a float: every float strictly inside (-2^127, 2^127) truncates into an `i128`.
const TWO_POW_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

fn compare_integer_float(integer: i128, float: f64) -> Option<Ordering> {
    if float.is_nan() {
        return None;
    }
    if float >= TWO_POW_127 {
        return Some(Ordering::Less);
    }
    if float < -TWO_POW_127 {
        return Some(Ordering::Greater);
    }
    #[allow(clippy::cast_possible_truncation)]
    let truncated = float.trunc() as i128;
    match integer.cmp(&truncated) {
        Ordering::Equal => {
            let fraction = float - float.trunc();
            Some(if fraction > 0.0 {
                Ordering::Less
            } else if fraction < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            })
        }
        other => Some(other),
    }
}

/// Python's `int(value)`. Huge values beyond `i128` come back as floats, which compare correctly
/// against any bound ComfyUI uses.
pub fn to_integer(value: &Value) -> Result<Numeric, String> {
    match value {
        Value::Bool(flag) => Ok(Numeric::Integer(i128::from(*flag))),
        Value::Number(_) => match Numeric::from_json(value) {
            Some(Numeric::Integer(integer)) => Ok(Numeric::Integer(integer)),
            Some(Numeric::Float(float)) => float_to_integer(float),
            None => Err("invalid number".to_owned()),
        },
        Value::String(text) => parse_python_integer(text)
            .ok_or_else(|| format!("invalid literal for int() with base 10: '{text}'")),
        Value::Null => Err(
            "int() argument must be a string, a bytes-like object or a real number, not 'NoneType'"
                .to_owned(),
        ),
        Value::Array(_) => Err(
            "int() argument must be a string, a bytes-like object or a real number, not 'list'".to_owned(),
        ),
        Value::Object(_) => Err(
            "int() argument must be a string, a bytes-like object or a real number, not 'dict'".to_owned(),
        ),
    }
}

fn float_to_integer(float: f64) -> Result<Numeric, String> {
    if float.is_nan() {
        return Err("cannot convert float NaN to integer".to_owned());
    }
    if float.is_infinite() {
        return Err("cannot convert float infinity to integer".to_owned());
    }
    if float.abs() < TWO_POW_127 {
        #[allow(clippy::cast_possible_truncation)]
        let truncated = float.trunc() as i128;
        Ok(Numeric::Integer(truncated))
    } else {
        Ok(Numeric::Float(float.trunc()))
    }
}

/// Python's `float(value)`.
pub fn to_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Bool(flag) => Ok(if *flag { 1.0 } else { 0.0 }),
        Value::Number(_) => Numeric::from_json(value)
            .map(Numeric::as_f64)
            .ok_or_else(|| "invalid number".to_owned()),
        Value::String(text) => {
            parse_python_float(text).ok_or_else(|| format!("could not convert string to float: '{text}'"))
        }
        Value::Null => Err("float() argument must be a string or a real number, not 'NoneType'".to_owned()),
        Value::Array(_) => Err("float() argument must be a string or a real number, not 'list'".to_owned()),
        Value::Object(_) => Err("float() argument must be a string or a real number, not 'dict'".to_owned()),
    }
}

/// Python's `bool(value)`: only empty or zero values are false, so the string `"false"` is true.
pub fn to_boolean(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(_) => Numeric::from_json(value).is_some_and(|number| number.as_f64() != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(entries) => !entries.is_empty(),
    }
}

/// Python's `str(value)` for JSON values as they arrive from `json.loads`.
pub fn to_python_string(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::String(text) => text.clone(),
        Value::Number(_) => Numeric::from_json(value).map_or_else(String::new, |number| number.to_string()),
        other => other.to_string(),
    }
}

/// Digits with single underscores between them, as Python's numeric literals allow.
fn without_underscores(digits: &str) -> Option<String> {
    let mut result = String::with_capacity(digits.len());
    let mut previous_was_digit = false;
    let mut characters = digits.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '_' {
            let next_is_digit = characters.peek().is_some_and(char::is_ascii_digit);
            if !previous_was_digit || !next_is_digit {
                return None;
            }
            previous_was_digit = false;
        } else {
            previous_was_digit = character.is_ascii_digit();
            result.push(character);
        }
    }
    Some(result)
}

fn parse_python_integer(text: &str) -> Option<Numeric> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let digits = without_underscores(digits)?;
    if digits.is_empty() || !digits.chars().all(|character| character.is_ascii_digit()) {
        return None;
    }
    let signed = if negative { format!("-{digits}") } else { digits };
    match signed.parse::<i128>() {
        Ok(integer) => Some(Numeric::Integer(integer)),
        Err(_) => signed.parse::<f64>().ok().map(Numeric::Float),
    }
}

fn parse_python_float(text: &str) -> Option<f64> {
    let trimmed = text.trim();
    let unsigned = trimmed.trim_start_matches(['+', '-']);
    if unsigned.len() + 1 < trimmed.len() {
        return None;
    }
    let lower = unsigned.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return trimmed.parse::<f64>().ok();
    }
    // Rust also accepts forms Python rejects only for the special words above; plain decimals agree.
    if !unsigned
        .chars()
        .all(|character| character.is_ascii_digit() || matches!(character, '.' | 'e' | 'E' | '+' | '-' | '_'))
    {
        return None;
    }
    let cleaned = without_underscores(trimmed)?;
    cleaned.parse::<f64>().ok()
}

/// Python's `==` between JSON values: `1 == 1.0 == True`, strings exact, containers element-wise.
pub fn python_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Array(left_items), Value::Array(right_items)) => {
            left_items.len() == right_items.len()
                && left_items
                    .iter()
                    .zip(right_items)
                    .all(|(left_item, right_item)| python_equal(left_item, right_item))
        }
        (Value::Object(left_entries), Value::Object(right_entries)) => {
            left_entries.len() == right_entries.len()
                && left_entries.iter().all(|(key, left_value)| {
                    right_entries
                        .get(key)
                        .is_some_and(|right_value| python_equal(left_value, right_value))
                })
        }
        (Value::Number(_) | Value::Bool(_), Value::Number(_) | Value::Bool(_)) => {
            match (as_python_number(left), as_python_number(right)) {
                (Some(left_number), Some(right_number)) => {
                    left_number.compare(right_number) == Some(Ordering::Equal)
                }
                _ => false,
            }
        }
        _ => left == right,
    }
}

fn as_python_number(value: &Value) -> Option<Numeric> {
    match value {
        Value::Bool(flag) => Some(Numeric::Integer(i128::from(*flag))),
        other => Numeric::from_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_follow_python_int() {
        assert_eq!(to_integer(&json!("16")), Ok(Numeric::Integer(16)));
        assert_eq!(to_integer(&json!(" -1_000 ")), Ok(Numeric::Integer(-1000)));
        assert_eq!(to_integer(&json!(8.9)), Ok(Numeric::Integer(8)));
        assert_eq!(to_integer(&json!(-8.9)), Ok(Numeric::Integer(-8)));
        assert_eq!(to_integer(&json!(true)), Ok(Numeric::Integer(1)));
        assert!(to_integer(&json!("8.9")).is_err());
        assert!(to_integer(&json!("abc")).is_err());
        assert!(to_integer(&json!("1__0")).is_err());
        assert!(to_integer(&json!(null)).is_err());
        assert!(to_integer(&json!([1])).is_err());
        assert_eq!(
            to_integer(&json!(18_446_744_073_709_551_615u64)),
            Ok(Numeric::Integer(18_446_744_073_709_551_615))
        );
        assert!(matches!(
            to_integer(&json!("99999999999999999999999999999999999999999999")),
            Ok(Numeric::Float(_))
        ));
    }

    #[test]
    fn floats_follow_python_float() {
        assert_eq!(to_float(&json!("1.5")), Ok(1.5));
        assert_eq!(to_float(&json!(" 1e3 ")), Ok(1000.0));
        assert_eq!(to_float(&json!(3)), Ok(3.0));
        assert!(to_float(&json!("inf")).is_ok_and(f64::is_infinite));
        assert!(to_float(&json!("abc")).is_err());
        assert!(to_float(&json!("0x10")).is_err());
        assert!(to_float(&json!("--1")).is_err());
    }

    #[test]
    fn booleans_follow_python_truthiness() {
        assert!(to_boolean(&json!("false")));
        assert!(!to_boolean(&json!("")));
        assert!(!to_boolean(&json!(0)));
        assert!(to_boolean(&json!(0.5)));
    }

    #[test]
    fn mixed_comparisons_are_exact() {
        let max = Numeric::Integer(18_446_744_073_709_551_615);
        assert_eq!(
            Numeric::Float(18_446_744_073_709_551_616.0).compare(max),
            Some(Ordering::Greater)
        );
        assert_eq!(
            Numeric::Integer(1).compare(Numeric::Float(1.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            Numeric::Integer(1).compare(Numeric::Float(1.5)),
            Some(Ordering::Less)
        );
        assert_eq!(
            Numeric::Integer(-1).compare(Numeric::Float(-1.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(Numeric::Integer(0).compare(Numeric::Float(f64::NAN)), None);
        assert_eq!(Numeric::Float(0.0).to_string(), "0.0");
        assert_eq!(max.to_json(), json!(18_446_744_073_709_551_615u64));
    }

    #[test]
    fn equality_is_pythons() {
        assert!(python_equal(&json!(1), &json!(1.0)));
        assert!(python_equal(&json!(true), &json!(1)));
        assert!(!python_equal(&json!("1"), &json!(1)));
        assert!(python_equal(&json!(["a", 1]), &json!(["a", 1.0])));
    }
}
