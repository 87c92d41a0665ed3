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
    let within = |left: &str, right: &str| {
        // Most candidates share too few characters to be close: a count of them says so in
        // linear time, before the quadratic distance.
        if character_difference(left, right) > allowed {
            return None;
        }
        let left: Vec<char> = left.chars().collect();
        let right: Vec<char> = right.chars().collect();
        distance_within(&left, &right, allowed)
    };
    let distance = within(query_lower, &candidate_lower);
    let stem_distance = if query_stem == query_lower && candidate_stem == candidate_lower {
        distance
    } else {
        within(query_stem, candidate_stem)
    };
    let best = [distance, stem_distance].into_iter().flatten().min()?;
    Some(200 + best)
}

/// A lower bound of the edit distance: how many characters one side has that the other lacks
/// (counted in 128 buckets; characters sharing a bucket can only lower it). A swap, a deletion,
/// an insertion or a substitution changes each side's surplus by at most one.
fn character_difference(left: &str, right: &str) -> usize {
    let mut counts = [0_i32; 128];
    for character in left.chars() {
        counts[character as usize % 128] += 1;
    }
    for character in right.chars() {
        counts[character as usize % 128] -= 1;
    }
    let (mut surplus, mut deficit) = (0_usize, 0_usize);
    for count in counts {
        let size = count.unsigned_abs() as usize;
        if count > 0 {
            surplus += size;
        } else {
            deficit += size;
        }
    }
    surplus.max(deficit)
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
/// (`stpes` is one edit from `steps`).
pub fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let bound = left.len().max(right.len());
    distance_within(&left, &right, bound).unwrap_or(bound)
}

/// [`edit_distance`] when it is at most `bound`, else `None`: only the cells within `bound` of
/// the diagonal are computed, keeping three rows, and a row whose every cell exceeds `bound`
/// ends the search (suggestions compare a name with hundreds of candidates, most far off).
fn distance_within(left: &[char], right: &[char], bound: usize) -> Option<usize> {
    if left.len().abs_diff(right.len()) > bound {
        return None;
    }
    let beyond = bound.saturating_add(1);
    let width = right.len() + 1;
    let mut before_previous: Vec<usize> = vec![beyond; width];
    let mut previous: Vec<usize> = (0..width).map(|column| column.min(beyond)).collect();
    let mut current: Vec<usize> = vec![beyond; width];
    for (row, left_char) in left.iter().enumerate() {
        current.fill(beyond);
        current[0] = (row + 1).min(beyond);
        let mut row_minimum = current[0];
        let first = (row + 1).saturating_sub(bound).max(1);
        let last = (row + 1).saturating_add(bound).min(right.len());
        for column in first..=last {
            let right_char = right[column - 1];
            let cost = usize::from(*left_char != right_char);
            let mut best = (previous[column - 1] + cost)
                .min(previous[column] + 1)
                .min(current[column - 1] + 1);
            let swapped =
                row > 0 && column > 1 && left[row - 1] == right_char && right[column - 2] == *left_char;
            if swapped {
                best = best.min(before_previous[column - 2] + 1);
            }
            current[column] = best.min(beyond);
            row_minimum = row_minimum.min(current[column]);
        }
        if row_minimum > bound {
            return None;
        }
        std::mem::swap(&mut before_previous, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let distance = previous[right.len()];
    (distance <= bound).then_some(distance)
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

    #[test]
    fn bounded_distance_agrees_with_the_full_one() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "steps",
            "stpes",
            "kitten",
            "sitting",
            "euler",
            "eulr",
            "KSamplerAdvanced",
            "KSampler",
            "ksampleradvanced",
            "CheckpointLoaderSimple",
            "checkpointloader",
            "ümlaut",
            "umlaut",
            "flaw",
            "lawn",
        ];
        for left in words {
            for right in words {
                let full = edit_distance(left, right);
                let (left_chars, right_chars): (Vec<char>, Vec<char>) =
                    (left.chars().collect(), right.chars().collect());
                for bound in 0..6 {
                    let expected = (full <= bound).then_some(full);
                    assert_eq!(
                        distance_within(&left_chars, &right_chars, bound),
                        expected,
                        "{left:?} {right:?} within {bound}"
                    );
                }
                assert!(character_difference(left, right) <= full, "{left:?} {right:?}");
            }
        }
    }
}
