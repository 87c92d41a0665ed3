//! Prompt text the way ComfyUI reads it (`comfy/sd1_clip.py`, the same in 0.3.75 and 0.26):
//! weight syntax parsed as `token_weights` does, `embedding:` references split out as
//! `tokenize_with_weights` does, every other part tokenized by CLIP's BPE and packed into 77-token
//! windows (start, 75 tokens, end) with ComfyUI's rule that a part of fewer than 8 tokens moves
//! whole to the next window while a longer one is cut. Also what a person wants to know and
//! ComfyUI does not say: duplicated terms, dynamic-prompt choices `{a|b}` (the frontend expands
//! them, ComfyUI never sees them), weights far from 1.
//!
//! Pure: the vocabulary comes in as text (ComfyUI's `comfy/sd1_tokenizer/merges.txt`), read by the
//! caller. The BPE is `instant-clip-tokenizer`'s (a small, exact CLIP implementation: ids are the
//! merge order, as in ComfyUI's `vocab.json`), without its bundled vocabulary.

mod analysis;
mod tokenizer;
mod weights;

pub use analysis::{ChoiceGroup, PromptAnalysis, Window, analyze, terms};
pub use tokenizer::{ClipTokenizer, VOCABULARY_FILE};
pub use weights::{WeightedSpan, parse_weights};

/// Longest prompt analysed.
pub const MAXIMUM_PROMPT_BYTES: usize = 64 * 1024;

/// Why a vocabulary or a prompt was refused.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("the CLIP vocabulary is not a merges file: {reason}")]
    Vocabulary { reason: String },
    #[error("the prompt is {length} bytes, over the {MAXIMUM_PROMPT_BYTES} analysed")]
    TooLong { length: usize },
}
