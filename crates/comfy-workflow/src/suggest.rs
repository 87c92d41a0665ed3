//! Closest-match suggestions for misspelt names: combo values, model files, node classes, input names
//! and parameter keys.
//!
//! Agents often get a name almost right (`eulr`, `sd15.safetensors` for `SD1.5/sd15.safetensors`,
//! `ksampler`), so a rejection is far more useful when it says what was probably meant.

/// Strings longer than this are not compared by edit distance, which is quadratic in length.
const MAXIMUM_EDIT_LENGTH: usize = 256;

/// Up to `limit` candidates that look like `query`, best first.
///
/// Matches are ranked: same text ignoring case, then the same file name ignoring folders, then the
/// same name ignoring the extension, then one containing the other, then a small edit distance.
pub fn closest_matches<'a, I>(query: &str, candidates: I, limit: usize) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let query_lower = query.to_lowercase();
    let query_base = base_name(&query_lower);
    let query_stem = stem(query_base);
    let mut scored: Vec<(usize, usize, &str)> = Vec::new();
    for (position, candidate) in candidates.into_iter().enumerate() {
        if candidate == query {
            continue;
        }
        if let Some(score) = score(&query_lower, query_base, query_stem, candidate) {
            scored.push((score, position, candidate));
        }
    }
    scored.sort_unstable();
    let mut result: Vec<String> = Vec::new();
    for (_, _, candidate) in scored {
        if result.len() >= limit {
            break;
        }
        if !result.iter().any(|existing| existing == candidate) {
            result.push(candidate.to_owned());
        }
    }
    result
}

/// A sentence offering the candidates, or `None` when there are none.
pub fn did_you_mean(candidates: &[String]) -> Option<String> {
    match candidates {
        [] => None,
        [only] => Some(format!("did you mean '{only}'?")),
        several => Some(format!(
            "did you mean one of {}?",
            several
                .iter()
                .map(|candidate| format!("'{candidate}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Lower is better; `None` means "not similar enough to suggest".
fn score(query_lower: &str, query_base: &str, query_stem: &str, candidate: &str) -> Option<usize> {
    let candidate_lower = candidate.to_lowercase();
    if candidate_lower == query_lower {
        return Some(0);
    }
    let candidate_base = base_name(&candidate_lower);
    if candidate_base == query_base {
        return Some(1);
    }
    let candidate_stem = stem(candidate_base);
    if !candidate_stem.is_empty() && candidate_stem == query_stem {
        return Some(2);
    }
    let length_difference = candidate_stem.len().abs_diff(query_stem.len());
    if query_stem.chars().count() >= 3
        && candidate_stem.chars().count() >= 3
        && (candidate_stem.contains(query_stem) || query_stem.contains(candidate_stem))
    {
        return Some(100 + length_difference.min(99));
    }
    let query_length = query_lower.chars().count();
    let candidate_length = candidate_lower.chars().count();
    if query_length > MAXIMUM_EDIT_LENGTH || candidate_length > MAXIMUM_EDIT_LENGTH {
        return None;
    }
    // Allow roughly one typo per three characters, and at least one.
    let allowed = (query_length.max(candidate_length) / 3).max(1);
    if query_length.abs_diff(candidate_length) > allowed {
        return None;
    }
    let distance = edit_distance(query_lower, &candidate_lower);
    let stem_distance = edit_distance(query_stem, candidate_stem);
    let best = distance.min(stem_distance);
    (best <= allowed).then_some(200 + best)
}

/// The part after the last `/` or `\`.
fn base_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// The name without a short trailing extension such as `.safetensors` or `.png`.
fn stem(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, extension))
            if !stem.is_empty()
                && (1..=12).contains(&extension.len())
                && extension
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric()) =>
        {
            stem
        }
        _ => name,
    }
}

/// Edit distance counting insertions, deletions, substitutions and swaps of adjacent characters
/// (`stpes` is one edit from `steps`), keeping only three rows.
pub fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let width = right.len() + 1;
    let mut before_previous: Vec<usize> = vec![0; width];
    let mut previous: Vec<usize> = (0..width).collect();
    let mut current: Vec<usize> = vec![0; width];
    for (left_index, left_char) in left.iter().enumerate() {
        if let Some(first) = current.first_mut() {
            *first = left_index + 1;
        }
        for (right_index, right_char) in right.iter().enumerate() {
            let cost = usize::from(left_char != right_char);
            let at = |row: &[usize], column: usize| row.get(column).copied().unwrap_or(usize::MAX - 1);
            let mut best = (at(&previous, right_index) + cost)
                .min(at(&previous, right_index + 1) + 1)
                .min(at(&current, right_index) + 1);
            let swapped = left_index > 0
                && right_index > 0
                && left.get(left_index - 1) == Some(right_char)
                && right.get(right_index - 1) == Some(left_char);
            if swapped {
                best = best.min(at(&before_previous, right_index - 1) + 1);
            }
            if let Some(cell) = current.get_mut(right_index + 1) {
                *cell = best;
            }
        }
        std::mem::swap(&mut before_previous, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_operations() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("eulr", "euler"), 1);
        assert_eq!(edit_distance("flaw", "lawn"), 2);
        assert_eq!(edit_distance("stpes", "steps"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }

    #[test]
    fn typo_finds_the_intended_value_first() {
        let samplers = ["euler", "euler_ancestral", "heun", "ddim", "dpmpp_2m"];
        assert_eq!(closest_matches("eulr", samplers, 3)[0], "euler");
        assert_eq!(closest_matches("DDIM", samplers, 3), ["ddim"]);
    }

    #[test]
    fn model_names_match_across_folders_and_extensions() {
        let models = [
            "SD1.5/dreamshaper_8.safetensors",
            "sdxl/juggernaut.safetensors",
            "tiny-sd15.safetensors",
        ];
        assert_eq!(
            closest_matches("dreamshaper_8.safetensors", models, 3),
            ["SD1.5/dreamshaper_8.safetensors"]
        );
        assert_eq!(
            closest_matches("juggernaut.ckpt", models, 3)[0],
            "sdxl/juggernaut.safetensors"
        );
        assert_eq!(closest_matches("sd15", models, 3), ["tiny-sd15.safetensors"]);
    }

    #[test]
    fn unrelated_names_are_not_suggested() {
        assert!(closest_matches("banana", ["euler", "ddim"], 3).is_empty());
        assert!(closest_matches("x", ["euler"], 3).is_empty());
    }

    #[test]
    fn limit_is_respected() {
        let names = ["seed_1", "seed_2", "seed_3", "seed_4"];
        assert_eq!(closest_matches("seed_", names, 3).len(), 3);
        assert_eq!(
            did_you_mean(&["a".to_owned(), "b".to_owned()]).unwrap(),
            "did you mean one of 'a', 'b'?"
        );
        assert_eq!(did_you_mean(&[]), None);
    }
}
