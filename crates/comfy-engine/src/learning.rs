//! What recorded experiments teach: every choice the person made between two variants is
//! evidence for the prompt terms and parameter values that differed between them. Each term or
//! value gets its record (wins of the comparisons it took part in), an exact binomial test and an
//! effect size (win rate above one half); suggestions are made only from effects significant at
//! the caller's level, and say what they rest on. The best values build a preset.

use comfy_store::{Experiment, Verdict};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::experiments::{PERSON, VARIANT_PARAMETERS, definition_of};
use crate::generate::GenerateRequest;
use crate::grids::set_parameter;
use crate::presets::{PresetSaveRequest, SavedPreset};
use crate::statistics::binomial_test;
use crate::{Engine, EngineError};

/// Most experiments read for insights (the newest).
const MAXIMUM_EXPERIMENTS: usize = 500;

/// One term's or parameter value's record in the person's choices.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Insight {
    /// `term` (of the prompt) or `parameter`.
    pub kind: &'static str,
    /// The term, or `parameter=value`.
    pub name: String,
    /// Comparisons it won, of those decided where the other side lacked it.
    pub wins: u64,
    pub decided: u64,
    pub win_rate: f64,
    /// Exact two-sided binomial test against one half.
    pub p_value: f64,
    pub interval_95: [f64; 2],
    /// Win rate minus one half: positive helps, negative hurts.
    pub effect: f64,
}

/// What the history says.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HistoryInsights {
    pub experiments: usize,
    /// The person's decided choices read.
    pub choices: usize,
    pub alpha: f64,
    /// Most telling first (smallest p-value).
    pub insights: Vec<Insight>,
    /// Only from effects significant at `alpha`; each says what it rests on.
    pub suggestions: Vec<String>,
    pub basis: String,
}

/// Comparisons won and decided, by name.
#[derive(Default)]
struct Tally {
    records: std::collections::BTreeMap<(&'static str, String), (u64, u64)>,
}

impl Tally {
    fn add(&mut self, kind: &'static str, name: String, won: bool) {
        let entry = self.records.entry((kind, name)).or_default();
        entry.0 += u64::from(won);
        entry.1 += 1;
    }
}

/// A variant's settings (the base with its changes) and its prompt's terms.
fn variant_settings(
    base: &Map<String, Value>,
    changes: &Map<String, Value>,
) -> (Map<String, Value>, Vec<String>) {
    let mut settings = base.clone();
    settings.extend(changes.clone());
    let terms = settings
        .get("prompt")
        .and_then(Value::as_str)
        .map(comfy_text::terms)
        .unwrap_or_default();
    (settings, terms)
}

fn shown(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// Adds one experiment's choices to `tally`; how many were decided.
fn tally_experiment(experiment: &Experiment, tally: &mut Tally) -> usize {
    let Ok(definition) = definition_of(experiment) else {
        return 0;
    };
    let variants: Vec<_> = definition
        .variants
        .iter()
        .map(|variant| variant_settings(&definition.base, &variant.changes))
        .collect();
    let mut decided = 0;
    for judgement in experiment
        .judgements
        .iter()
        .filter(|judgement| judgement.source == PERSON)
    {
        let Verdict::Choice { winner, loser } = judgement.verdict else {
            continue;
        };
        let (Some(winning), Some(losing)) = (variants.get(winner), variants.get(loser)) else {
            continue;
        };
        decided += 1;
        for term in &winning.1 {
            if !losing.1.contains(term) {
                tally.add("term", term.clone(), true);
            }
        }
        for term in &losing.1 {
            if !winning.1.contains(term) {
                tally.add("term", term.clone(), false);
            }
        }
        // The prompt is compared by its terms, every other parameter by its value.
        for parameter in VARIANT_PARAMETERS
            .iter()
            .filter(|parameter| **parameter != "prompt")
        {
            let (won, lost) = (winning.0.get(*parameter), losing.0.get(*parameter));
            if won == lost {
                continue;
            }
            let default = || "default".to_owned();
            tally.add(
                "parameter",
                format!("{parameter}={}", won.map_or_else(default, shown)),
                true,
            );
            tally.add(
                "parameter",
                format!("{parameter}={}", lost.map_or_else(default, shown)),
                false,
            );
        }
    }
    decided
}

fn insights_of(tally: Tally) -> Vec<Insight> {
    let mut insights: Vec<Insight> = tally
        .records
        .into_iter()
        .filter_map(|((kind, name), (wins, decided))| {
            let test = binomial_test(wins, decided)?;
            Some(Insight {
                kind,
                name,
                wins,
                decided,
                win_rate: test.proportion,
                p_value: test.p_value,
                interval_95: test.interval_95,
                effect: test.proportion - 0.5,
            })
        })
        .collect();
    insights.sort_by(|left, right| {
        left.p_value
            .total_cmp(&right.p_value)
            .then(right.effect.abs().total_cmp(&left.effect.abs()))
    });
    insights
}

fn evidence(insight: &Insight) -> String {
    format!(
        "won {} of {} decided comparisons ({:.0}%, 95% interval {:.0}%-{:.0}%), binomial p = {:.4}",
        insight.wins,
        insight.decided,
        insight.win_rate * 100.0,
        insight.interval_95[0] * 100.0,
        insight.interval_95[1] * 100.0,
        insight.p_value
    )
}

impl Engine {
    /// What the person's recorded choices say about prompt terms and parameter values; with a
    /// prompt, its own terms and suggestions for it.
    pub async fn history_insights(
        &self,
        prompt: Option<&str>,
        alpha: f64,
    ) -> Result<HistoryInsights, EngineError> {
        if !(alpha > 0.0 && alpha <= 0.5) {
            return Err(EngineError::bad_input("alpha must be above 0 and at most 0.5"));
        }
        let summaries = self.list_experiments(MAXIMUM_EXPERIMENTS).await?;
        let mut tally = Tally::default();
        let mut choices = 0;
        for summary in &summaries {
            if summary.judgements == 0 {
                continue;
            }
            let experiment = self.experiment(&summary.id).await?;
            choices += tally_experiment(&experiment, &mut tally);
        }
        let mut insights = insights_of(tally);
        let mut suggestions = Vec::new();
        if let Some(prompt) = prompt {
            let present = comfy_text::terms(prompt);
            for insight in insights
                .iter()
                .filter(|insight| insight.kind == "term" && insight.p_value < alpha)
            {
                let here = present.contains(&insight.name);
                if here && insight.effect < 0.0 {
                    suggestions.push(format!(
                        "consider removing {:?}: it {}",
                        insight.name,
                        evidence(insight)
                    ));
                } else if !here && insight.effect > 0.0 {
                    suggestions.push(format!(
                        "consider adding {:?}: it {}",
                        insight.name,
                        evidence(insight)
                    ));
                }
            }
            insights.retain(|insight| insight.kind == "parameter" || present.contains(&insight.name));
        }
        for insight in insights
            .iter()
            .filter(|insight| insight.kind == "parameter" && insight.p_value < alpha)
        {
            let verb = if insight.effect > 0.0 { "prefer" } else { "avoid" };
            suggestions.push(format!("{verb} {}: it {}", insight.name, evidence(insight)));
        }
        let basis = format!(
            "{choices} decided choices of the person in {} experiments; a term or value counts where the two images compared differed in it; suggestions only where the exact binomial test gives p < {alpha}",
            summaries.len()
        );
        Ok(HistoryInsights {
            experiments: summaries.len(),
            choices,
            alpha,
            insights,
            suggestions,
            basis,
        })
    }

    /// Saves preset `name`: a generation of `prompt` with, for each compared parameter, the
    /// value the history prefers significantly at `alpha` (the best win rate among those); the
    /// insights it rests on come back with it.
    pub async fn preset_from_history(
        &self,
        name: &str,
        prompt: &str,
        checkpoint: Option<String>,
        alpha: f64,
    ) -> Result<(SavedPreset, Vec<Insight>), EngineError> {
        let history = self.history_insights(None, alpha).await?;
        let mut chosen: Vec<Insight> = Vec::new();
        for insight in history.insights.iter().filter(|insight| {
            insight.kind == "parameter"
                && insight.p_value < alpha
                && insight.effect > 0.0
                && !insight.name.ends_with("=default")
        }) {
            let parameter = insight.name.split('=').next().unwrap_or_default();
            let better = chosen
                .iter()
                .position(|known| known.name.split('=').next() == Some(parameter));
            match better {
                Some(index) if chosen[index].win_rate >= insight.win_rate => {}
                Some(index) => chosen[index] = insight.clone(),
                None => chosen.push(insight.clone()),
            }
        }
        if chosen.is_empty() {
            return Err(EngineError::bad_input(format!(
                "no parameter value is preferred at the {alpha} level yet ({}); run and judge more experiments",
                history.basis
            )));
        }
        let mut request = GenerateRequest {
            prompt: prompt.to_owned(),
            checkpoint,
            ..Default::default()
        };
        for insight in &chosen {
            let (parameter, value) = insight.name.split_once('=').unwrap_or_default();
            // Numbers were recorded as JSON numbers, names as text.
            let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
            set_parameter(&mut request, parameter, &value)?;
        }
        let (_, built) = self.build_generation(&request).await?;
        let message = chosen
            .iter()
            .map(|insight| format!("{} {}", insight.name, evidence(insight)))
            .collect::<Vec<_>>()
            .join("; ");
        let saved = self
            .save_preset(PresetSaveRequest {
                name: name.to_owned(),
                workflow: built.graph.to_json(),
                description: Some("built from the parameters recorded experiments prefer".to_owned()),
                tags: Some(vec!["experiment".to_owned(), "from-history".to_owned()]),
                message: Some(message),
                backend: None,
            })
            .await
            .map_err(|error| EngineError::bad_input(error.to_string()))?;
        Ok((saved, chosen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_store::Judgement;
    use serde_json::json;

    fn choice(winner: usize, loser: usize) -> Judgement {
        Judgement {
            seed_index: 0,
            verdict: Verdict::Choice { winner, loser },
            source: PERSON.into(),
            client: None,
            created_at_ms: 0,
        }
    }

    #[test]
    fn choices_count_for_what_differed() {
        let experiment = Experiment {
            id: "e".into(),
            name: "t".into(),
            definition: json!({
                "base": {"prompt": "a fox, snow", "steps": 4},
                "variants": [
                    {"name": "plain", "changes": {}},
                    {"name": "lit", "changes": {"prompt": "a fox, snow, golden hour", "steps": 8}},
                ],
                "seeds": [1, 2],
            }),
            variants: 2,
            seeds: 2,
            client: None,
            created_at_ms: 0,
            trials: Vec::new(),
            judgements: (0..9).map(|_| choice(1, 0)).chain([choice(0, 1)]).collect(),
        };
        let mut tally = Tally::default();
        assert_eq!(tally_experiment(&experiment, &mut tally), 10);
        let insights = insights_of(tally);
        let golden = insights
            .iter()
            .find(|insight| insight.name == "golden hour")
            .unwrap();
        assert_eq!((golden.wins, golden.decided), (9, 10));
        assert!((golden.p_value - 0.021484375).abs() < 1e-12);
        let eight = insights.iter().find(|insight| insight.name == "steps=8").unwrap();
        assert_eq!((eight.wins, eight.decided), (9, 10));
        let four = insights.iter().find(|insight| insight.name == "steps=4").unwrap();
        assert_eq!((four.wins, four.decided), (1, 10));
        assert!(four.effect < 0.0);
        // Shared terms are no evidence either way.
        assert!(!insights.iter().any(|insight| insight.name == "snow"));
    }
}
