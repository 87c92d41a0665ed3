//! CLIP's byte-level BPE from ComfyUI's merges file: token ids, and text back from them.

use crate::TextError;

/// The file ComfyUI ships the merges in, inside `comfy/sd1_tokenizer/`.
pub const VOCABULARY_FILE: &str = "merges.txt";
/// CLIP's vocabulary: 256 bytes, 256 end-of-word bytes, 48,894 merges, start and end.
const VOCABULARY_SIZE: u16 = 49_408;
/// The merges file's size is about 525 KB; anything far larger is not one.
const MAXIMUM_MERGES_BYTES: usize = 4 * 1024 * 1024;

/// A loaded CLIP tokenizer.
pub struct ClipTokenizer {
    inner: instant_clip_tokenizer::Tokenizer,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClipTokenizer")
    }
}

impl ClipTokenizer {
    /// Loads the merges (`#version` header, then one merge per line).
    pub fn from_merges(merges: &str) -> Result<ClipTokenizer, TextError> {
        if merges.len() > MAXIMUM_MERGES_BYTES || !merges.starts_with("#version") {
            return Err(TextError::Vocabulary {
                reason: "it must start with a #version line and be at most 4 MiB".to_owned(),
            });
        }
        // The crate reads a merges list and stops at the vocabulary size; a merge line that is
        // not two symbols is an error there, which is kept.
        let inner =
            instant_clip_tokenizer::Tokenizer::with_vocabulary(std::io::Cursor::new(merges), VOCABULARY_SIZE)
                .map_err(|error| TextError::Vocabulary {
                    reason: error.to_string(),
                })?;
        Ok(ClipTokenizer { inner })
    }

    /// The ids of `text` without start and end tokens.
    pub fn encode(&self, text: &str) -> Vec<u16> {
        let mut tokens = Vec::new();
        self.inner.encode(text, &mut tokens);
        tokens
            .into_iter()
            .map(instant_clip_tokenizer::Token::to_u16)
            .collect()
    }

    /// Text back from ids (lowercased, words separated by spaces, as CLIP sees it).
    pub fn decode(&self, tokens: &[u16]) -> String {
        let tokens = tokens
            .iter()
            .filter_map(|token| instant_clip_tokenizer::Token::from_u16(*token, &self.inner));
        self.inner.decode(tokens).trim().to_owned()
    }
}
