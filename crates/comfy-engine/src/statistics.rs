//! The tests an experiment's verdict rests on: an exact binomial test with a Clopper-Pearson
//! interval (two variants judged in pairs), a Bradley-Terry model with a likelihood-ratio test
//! (several variants judged in pairs), Mann-Whitney U (two variants rated or measured) and
//! Kruskal-Wallis H (several). Each answers as scipy.stats does (the unit tests hold the values
//! scipy 1.17 gives); the distributions come from `statrs`. Pure: numbers in, numbers out.

use schemars::JsonSchema;
use serde::Serialize;
use statrs::distribution::{Beta, Binomial, ChiSquared, ContinuousCDF, Discrete, Normal};

/// The two-sided exact binomial test of `successes` in `trials` against one half.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct BinomialTest {
    pub successes: u64,
    pub trials: u64,
    /// `successes / trials`.
    pub proportion: f64,
    pub p_value: f64,
    /// The exact (Clopper-Pearson) 95% interval of the proportion.
    pub interval_95: [f64; 2],
}

/// The exact binomial test (scipy's `binomtest(k, n, 0.5)`); `None` for no trials.
pub fn binomial_test(successes: u64, trials: u64) -> Option<BinomialTest> {
    if trials == 0 || successes > trials {
        return None;
    }
    let distribution = Binomial::new(0.5, trials).ok()?;
    // Two-sided as scipy sums it: every outcome at most as likely as the one seen (with its
    // relative tolerance, so equal probabilities computed two ways still count).
    let observed = distribution.pmf(successes) * (1.0 + 1e-7);
    let p_value: f64 = (0..=trials)
        .map(|outcome| distribution.pmf(outcome))
        .filter(|probability| *probability <= observed)
        .sum();
    Some(BinomialTest {
        successes,
        trials,
        proportion: successes as f64 / trials as f64,
        p_value: p_value.min(1.0),
        interval_95: clopper_pearson(successes, trials, 0.05),
    })
}

fn clopper_pearson(successes: u64, trials: u64, alpha: f64) -> [f64; 2] {
    let (k, n) = (successes as f64, trials as f64);
    let lower = if successes == 0 {
        0.0
    } else {
        Beta::new(k, n - k + 1.0).map_or(0.0, |beta| beta.inverse_cdf(alpha / 2.0))
    };
    let upper = if successes == trials {
        1.0
    } else {
        Beta::new(k + 1.0, n - k).map_or(1.0, |beta| beta.inverse_cdf(1.0 - alpha / 2.0))
    };
    [lower, upper]
}

/// A rank test between groups of ratings.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RankTest {
    /// `mann_whitney_u` or `kruskal_wallis_h`.
    pub test: &'static str,
    /// U of the first group (Mann-Whitney) or H (Kruskal-Wallis).
    pub statistic: f64,
    pub p_value: f64,
    /// `exact` or `asymptotic` (normal with tie and continuity corrections; chi-square for H).
    pub method: &'static str,
    /// Mann-Whitney only: the probability that a rating of the first group beats one of the
    /// second (ties half), i.e. U / (n1 n2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability_of_superiority: Option<f64>,
    /// Each group's mean rank (1 = lowest rating).
    pub mean_ranks: Vec<f64>,
}

/// Ranks of every value (1-based, ties share their mean rank) and, per tied value, its count.
fn ranks(values: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|left, right| values[*left].total_cmp(&values[*right]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let shared = (start + end + 1) as f64 / 2.0;
        for index in &order[start..end] {
            ranks[*index] = shared;
        }
        if end - start > 1 {
            ties.push(end - start);
        }
        start = end;
    }
    (ranks, ties)
}

/// Two-sided Mann-Whitney U (scipy's `mannwhitneyu(first, second)`, method `auto`: exact when
/// either group has at most 8 values and there are no ties); `None` when a group is empty.
pub fn mann_whitney(first: &[f64], second: &[f64]) -> Option<RankTest> {
    let (n1, n2) = (first.len(), second.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let all: Vec<f64> = first.iter().chain(second).copied().collect();
    let (ranks, ties) = ranks(&all);
    let rank_sum: f64 = ranks[..n1].iter().sum();
    let u1 = rank_sum - (n1 * (n1 + 1)) as f64 / 2.0;
    let pairs = (n1 * n2) as f64;
    let larger = u1.max(pairs - u1);
    let exact = ties.is_empty() && (n1 <= 8 || n2 <= 8) && n1 * n2 <= 2_500;
    let p_value = if exact {
        2.0 * exact_u_upper_tail(n1, n2, larger.round() as usize)
    } else {
        let n = (n1 + n2) as f64;
        let tie_term: f64 = ties.iter().map(|t| (t * t * t - t) as f64).sum::<f64>() / (n * (n - 1.0));
        let sigma = (pairs / 12.0 * ((n + 1.0) - tie_term)).sqrt();
        if sigma == 0.0 {
            1.0
        } else {
            let z = (larger - pairs / 2.0 - 0.5) / sigma;
            2.0 * Normal::standard().sf(z)
        }
    };
    Some(RankTest {
        test: "mann_whitney_u",
        statistic: u1,
        p_value: p_value.clamp(0.0, 1.0),
        method: if exact { "exact" } else { "asymptotic" },
        probability_of_superiority: Some(u1 / pairs),
        mean_ranks: vec![rank_sum / n1 as f64, ranks[n1..].iter().sum::<f64>() / n2 as f64],
    })
}

/// P(U >= u) for groups of `n1` and `n2` without ties: the number of arrangements with each U
/// counted by the usual recurrence over the largest value's group, two layers of the table at a
/// time (memory grows with n2 x n1 n2, not n1 x n2 x n1 n2).
fn exact_u_upper_tail(n1: usize, n2: usize, u: usize) -> f64 {
    let maximum = n1 * n2;
    // previous[b][k], current[b][k]: arrangements of a - 1 (a) and b values with U = k.
    let mut previous = vec![vec![0.0f64; maximum + 1]; n2 + 1];
    for row in &mut previous {
        row[0] = 1.0;
    }
    for a in 1..=n1 {
        let mut current = vec![vec![0.0f64; maximum + 1]; n2 + 1];
        current[0][0] = 1.0;
        for b in 1..=n2 {
            for k in 0..=a * b {
                // The largest value belongs to the first group (it beats all b) or the second.
                let from_first = if k >= b { previous[b][k - b] } else { 0.0 };
                current[b][k] = from_first + current[b - 1][k];
            }
        }
        previous = current;
    }
    let counts = &previous[n2];
    let total: f64 = counts.iter().sum();
    counts[u.min(maximum)..].iter().sum::<f64>() / total
}

/// Kruskal-Wallis H with the tie correction (scipy's `kruskal(*groups)`); `None` with fewer than
/// two non-empty groups or when every value is the same.
pub fn kruskal_wallis(groups: &[Vec<f64>]) -> Option<RankTest> {
    if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
        return None;
    }
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    let n = all.len() as f64;
    let (ranks, ties) = ranks(&all);
    let mut offset = 0;
    let mut h = 0.0;
    let mut mean_ranks = Vec::new();
    for group in groups {
        let sum: f64 = ranks[offset..offset + group.len()].iter().sum();
        offset += group.len();
        h += sum * sum / group.len() as f64;
        mean_ranks.push(sum / group.len() as f64);
    }
    h = 12.0 / (n * (n + 1.0)) * h - 3.0 * (n + 1.0);
    let correction = 1.0 - ties.iter().map(|t| (t * t * t - t) as f64).sum::<f64>() / (n * n * n - n);
    if correction <= 0.0 {
        return None;
    }
    h /= correction;
    let p_value = ChiSquared::new((groups.len() - 1) as f64).ok()?.sf(h);
    Some(RankTest {
        test: "kruskal_wallis_h",
        statistic: h,
        p_value,
        method: "asymptotic",
        probability_of_superiority: None,
        mean_ranks,
    })
}

/// A Bradley-Terry model fitted to pairwise wins.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct BradleyTerry {
    /// Each variant's strength, summing to 1: variant i beats j with probability
    /// s_i / (s_i + s_j).
    pub strengths: Vec<f64>,
    /// The likelihood-ratio statistic against all strengths equal (chi-square, k - 1 degrees).
    pub likelihood_ratio: f64,
    pub p_value: f64,
    pub iterations: usize,
}

/// Fits Bradley-Terry to `wins[i][j]` (times i beat j) by Hunter's MM iteration, and tests it
/// against equal strengths; `None` with fewer than two variants or no comparisons.
pub fn bradley_terry(wins: &[Vec<f64>]) -> Option<BradleyTerry> {
    let k = wins.len();
    if k < 2 || wins.iter().any(|row| row.len() != k) {
        return None;
    }
    let compared = |i: usize, j: usize| wins[i][j] + wins[j][i];
    let total: f64 = (0..k)
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .map(|(i, j)| wins[i][j])
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut strengths = vec![1.0 / k as f64; k];
    let mut iterations = 0;
    while iterations < 10_000 {
        iterations += 1;
        let mut next = strengths.clone();
        for i in 0..k {
            let won: f64 = wins[i].iter().sum();
            let denominator: f64 = (0..k)
                .filter(|j| *j != i && compared(i, *j) > 0.0)
                .map(|j| compared(i, j) / (strengths[i] + strengths[j]))
                .sum();
            // A variant that never won tends to 0; a floor keeps the ratios finite.
            next[i] = if denominator > 0.0 {
                (won / denominator).max(1e-12)
            } else {
                strengths[i]
            };
        }
        let sum: f64 = next.iter().sum();
        next.iter_mut().for_each(|strength| *strength /= sum);
        let change = next
            .iter()
            .zip(&strengths)
            .map(|(new, old)| (new - old).abs())
            .fold(0.0, f64::max);
        strengths = next;
        if change < 1e-12 {
            break;
        }
    }
    let mut fitted = 0.0;
    for i in 0..k {
        for j in 0..k {
            if i != j && wins[i][j] > 0.0 {
                fitted += wins[i][j] * (strengths[i] / (strengths[i] + strengths[j])).ln();
            }
        }
    }
    let equal = -total * std::f64::consts::LN_2;
    let likelihood_ratio = (2.0 * (fitted - equal)).max(0.0);
    let p_value = ChiSquared::new((k - 1) as f64).ok()?.sf(likelihood_ratio);
    Some(BradleyTerry {
        strengths,
        likelihood_ratio,
        p_value,
        iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tolerance: f64) {
        assert!((actual - expected).abs() <= tolerance, "{actual} != {expected}");
    }

    #[test]
    fn binomial_tests_match_scipy() {
        let nine = binomial_test(9, 10).unwrap();
        close(nine.p_value, 0.021484375, 1e-12);
        close(nine.interval_95[0], 0.5549838829718047, 1e-9);
        close(nine.interval_95[1], 0.9974714214555375, 1e-9);
        close(binomial_test(7, 10).unwrap().p_value, 0.34375, 1e-12);
        let three = binomial_test(3, 12).unwrap();
        close(three.p_value, 0.14599609375, 1e-12);
        close(three.interval_95[0], 0.05486064452799241, 1e-9);
        close(three.interval_95[1], 0.5718584618780997, 1e-9);
        let none = binomial_test(0, 5).unwrap();
        close(none.p_value, 0.0625, 1e-12);
        assert_eq!(none.interval_95[0], 0.0);
        close(binomial_test(5, 10).unwrap().p_value, 1.0, 1e-12);
        assert!(binomial_test(0, 0).is_none());
        assert!(binomial_test(3, 2).is_none());
    }

    #[test]
    fn mann_whitney_matches_scipy_both_ways() {
        let tied = mann_whitney(
            &[3.0, 4.0, 2.0, 5.0, 4.0, 4.0, 3.0],
            &[2.0, 1.0, 3.0, 2.0, 2.0, 1.0, 3.0],
        )
        .unwrap();
        assert_eq!(tied.method, "asymptotic");
        close(tied.statistic, 43.5, 1e-12);
        close(tied.p_value, 0.01503275867491311, 1e-12);
        let exact = mann_whitney(&[0.81, 0.92, 0.77, 0.88], &[0.61, 0.72, 0.59, 0.70]).unwrap();
        assert_eq!(exact.method, "exact");
        close(exact.statistic, 16.0, 1e-12);
        close(exact.p_value, 0.02857142857142857, 1e-12);
        close(exact.probability_of_superiority.unwrap(), 1.0, 1e-12);
        assert!(mann_whitney(&[], &[1.0]).is_none());
        // Every value the same: no evidence either way, never a division by zero.
        close(
            mann_whitney(&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]).unwrap().p_value,
            1.0,
            1e-12,
        );
    }

    #[test]
    fn kruskal_wallis_matches_scipy() {
        let groups = vec![
            vec![3.0, 4.0, 2.0, 5.0, 4.0],
            vec![2.0, 1.0, 3.0, 2.0, 2.0],
            vec![5.0, 5.0, 4.0, 4.0, 3.0],
        ];
        let test = kruskal_wallis(&groups).unwrap();
        close(test.statistic, 7.87894736842106, 1e-9);
        close(test.p_value, 0.019458453342014067, 1e-9);
        assert!(kruskal_wallis(&[vec![1.0], vec![1.0]]).is_none());
    }

    #[test]
    fn bradley_terry_matches_the_maximum_likelihood_fit() {
        // Strengths and test from scipy.optimize on the same likelihood.
        let wins = vec![vec![0.0, 7.0, 9.0], vec![3.0, 0.0, 6.0], vec![1.0, 4.0, 0.0]];
        let fit = bradley_terry(&wins).unwrap();
        for (strength, expected) in fit.strengths.iter().zip([0.66250275, 0.21969896, 0.11779829]) {
            close(*strength, expected, 1e-6);
        }
        close(fit.likelihood_ratio, 8.938849845026297, 1e-6);
        close(fit.p_value, 0.011453900837393586, 1e-6);
        // One variant that never won stays finite and last.
        let sweep = bradley_terry(&[vec![0.0, 5.0], vec![0.0, 0.0]]).unwrap();
        assert!(sweep.strengths[0] > 0.99 && sweep.p_value < 0.01, "{sweep:?}");
        assert!(bradley_terry(&[vec![0.0, 0.0], vec![0.0, 0.0]]).is_none());
    }
}
