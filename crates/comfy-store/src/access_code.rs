//! Access codes for shares: 28 Crockford base32 symbols (140 random bits) in groups of four, easy
//! to read aloud and type. Import is forgiving: case, spaces and hyphens are ignored, and the letters
//! Crockford maps to digits (O to 0, I and L to 1) are accepted.

use crate::error::StoreError;
use crate::hashing::sha256_hex;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a code; each carries 5 bits.
pub const ACCESS_CODE_SYMBOLS: usize = 28;
const GROUP: usize = 4;

/// A freshly made access code. `Debug` and `Display` hide it so it cannot leak into logs by accident;
/// [`AccessCode::reveal`] gives it for showing to the one who shares.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct AccessCode(String);

impl AccessCode {
    /// The code in its grouped form, for example `7K3Q-...`.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AccessCode(<redacted>)")
    }
}

impl std::fmt::Display for AccessCode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("<redacted access code>")
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| StoreError::Random {
        message: error.to_string(),
    })?;
    Ok(bytes)
}

pub(crate) fn generate() -> Result<AccessCode, StoreError> {
    let bytes = random_bytes::<ACCESS_CODE_SYMBOLS>()?;
    let mut code = String::with_capacity(ACCESS_CODE_SYMBOLS + ACCESS_CODE_SYMBOLS / GROUP);
    for (index, byte) in bytes.iter().enumerate() {
        if index > 0 && index % GROUP == 0 {
            code.push('-');
        }
        // 256 is a multiple of 32, so the low five bits of a uniform byte are uniform.
        code.push(char::from(ALPHABET[usize::from(byte & 0x1f)]));
    }
    Ok(AccessCode(code))
}

/// The canonical symbols of a typed code, or `None` if it cannot be one.
pub(crate) fn normalize(typed: &str) -> Option<String> {
    let mut symbols = String::with_capacity(ACCESS_CODE_SYMBOLS);
    for character in typed.chars() {
        if character == '-' || character.is_whitespace() {
            continue;
        }
        let symbol = match character.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        };
        if !symbol.is_ascii() || !ALPHABET.contains(&(symbol as u8)) {
            return None;
        }
        symbols.push(symbol);
        if symbols.len() > ACCESS_CODE_SYMBOLS {
            return None;
        }
    }
    (symbols.len() == ACCESS_CODE_SYMBOLS).then_some(symbols)
}

/// What the database keeps instead of the code.
pub(crate) fn code_hash(normalized: &str) -> String {
    sha256_hex(normalized.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_grouped_distinct_and_normalize_to_themselves() {
        let first = generate().unwrap();
        let second = generate().unwrap();
        assert_ne!(first, second);
        let groups: Vec<&str> = first.reveal().split('-').collect();
        assert_eq!(groups.len(), 7);
        assert!(groups.iter().all(|group| group.len() == 4));
        let normalized = normalize(first.reveal()).unwrap();
        assert_eq!(normalized, first.reveal().replace('-', ""));
        assert!(!format!("{first:?}{first}").contains(&normalized[..8]));
    }

    #[test]
    fn typing_is_forgiving_about_case_spacing_and_look_alike_letters() {
        let canonical = "0123456789ABCDEFGHJKMNPQRSTV";
        assert_eq!(normalize(canonical).as_deref(), Some(canonical));
        assert_eq!(
            normalize("o1l3-4567 89ab cdef-ghjk-mnpq-rstv").as_deref(),
            Some("0113456789ABCDEFGHJKMNPQRSTV")
        );
        assert_eq!(normalize("0123456789ABCDEFGHJKMNPQRST"), None, "too short");
        assert_eq!(normalize("0123456789ABCDEFGHJKMNPQRSTVW"), None, "too long");
        assert_eq!(
            normalize("U123456789ABCDEFGHJKMNPQRSTV"),
            None,
            "U is not a Crockford symbol"
        );
        assert_eq!(normalize("é123456789ABCDEFGHJKMNPQRSTV"), None);
        assert_eq!(normalize(""), None);
    }

    #[test]
    fn every_symbol_appears_in_generated_codes() {
        // With 40 codes (1120 symbols) a missing symbol would mean a biased generator; the chance of a
        // fair one missing any symbol is about 32 * (31/32)^1120, below 1e-13.
        let mut seen = [false; 32];
        for _ in 0..40 {
            for symbol in generate().unwrap().reveal().bytes().filter(|byte| *byte != b'-') {
                if let Some(position) = ALPHABET.iter().position(|candidate| *candidate == symbol) {
                    seen[position] = true;
                }
            }
        }
        assert!(seen.iter().all(|seen| *seen));
    }
}
