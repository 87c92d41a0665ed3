//! Graph builders for common tasks (owned by the lead; see issue 2/3).
