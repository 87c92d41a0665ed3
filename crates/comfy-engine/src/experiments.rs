//! Experiments: an A/B (or n-way) test of prompts or parameters. Every variant runs on the same
//! seeds, so a difference is the variant's, not the noise's. Judgements come from the person
//! (choices between two variants on one seed, ties, ratings) or from automatic measures of the
//! images (sharpness, contrast, colourfulness, saturation, similarity to a reference), are kept in
//! the store, and the report states the verdict with the test it rests on: an exact binomial test
//! for two variants' choices, Bradley-Terry with a likelihood-ratio test for more, Mann-Whitney U
//! or Kruskal-Wallis for ratings. The winner can be saved as a preset version.

use comfy_store::{Experiment, ExperimentSummary, Judgement, NewExperiment, Trial, Verdict};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::generate::GenerateRequest;
use crate::grids::{GridCell, GridPlan, set_parameter};
use crate::imaging::{ImageSource, SourceImage};
use crate::library::library_error;
use crate::presets::{PresetError, PresetSaveRequest, SavedPreset};
use crate::statistics::{self, BinomialTest, BradleyTerry, RankTest};
use crate::{Engine, EngineError};

/// Most variants in one experiment.
pub const MAXIMUM_VARIANTS: usize = 8;
/// Most seeds in one experiment.
pub const MAXIMUM_SEEDS: usize = 16;
/// Most trials (variants x seeds) in one experiment.
pub const MAXIMUM_TRIALS: usize = 64;
/// What a person's judgements are recorded as.
pub const PERSON: &str = "person";

/// What the variants may change, and what the base request may set (with `prompt`).
pub const VARIANT_PARAMETERS: &[&str] = &[
    "prompt",
    "negative_prompt",
    "steps",
    "cfg",
    "sampler",
    "scheduler",
    "denoise",
    "checkpoint",
    "style",
    "quality",
    "width",
    "height",
];

/// One variant: a name and the parameters it changes from the base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Variant {
    pub name: String,
    pub changes: Map<String, Value>,
}

/// What an experiment runs: the base request's parameters, the variants, the seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentDefinition {
    pub base: Map<String, Value>,
    pub variants: Vec<Variant>,
    pub seeds: Vec<u64>,
}

/// The automatic measures: each scores one image, higher is better.
pub const MEASURES: &[&str] = &[
    "sharpness",
    "contrast",
    "colorfulness",
    "saturation",
    "similarity",
];

/// Checks a definition and plans its trials, seed by seed (rows), variant by variant (columns).
pub fn plan_trials(id: &str, definition: &ExperimentDefinition) -> Result<GridPlan, EngineError> {
    let variants = &definition.variants;
    if variants.len() < 2 || variants.len() > MAXIMUM_VARIANTS {
        return Err(EngineError::bad_input(format!(
            "an experiment compares 2 to {MAXIMUM_VARIANTS} variants; {} given",
            variants.len()
        )));
    }
    if definition.seeds.is_empty() || definition.seeds.len() > MAXIMUM_SEEDS {
        return Err(EngineError::bad_input(format!(
            "an experiment runs on 1 to {MAXIMUM_SEEDS} seeds; {} given",
            definition.seeds.len()
        )));
    }
    if variants.len() * definition.seeds.len() > MAXIMUM_TRIALS {
        return Err(EngineError::bad_input(format!(
            "{} variants x {} seeds is over the {MAXIMUM_TRIALS} trials one experiment may run",
            variants.len(),
            definition.seeds.len()
        )));
    }
    for (index, variant) in variants.iter().enumerate() {
        let name = variant.name.trim();
        if name.is_empty() || name.chars().count() > 40 {
            return Err(EngineError::bad_input(format!(
                "variant {} needs a name of 1 to 40 characters",
                index + 1
            )));
        }
        if variants[..index].iter().any(|other| other.name.trim() == name) {
            return Err(EngineError::bad_input(format!("two variants are named {name:?}")));
        }
    }
    let mut base = GenerateRequest::default();
    apply_all(&mut base, &definition.base, "base")?;
    let mut cells = Vec::new();
    for (row, seed) in definition.seeds.iter().enumerate() {
        for (column, variant) in variants.iter().enumerate() {
            let mut request = base.clone();
            apply_all(&mut request, &variant.changes, &variant.name)?;
            request.seed = Some(i128::from(*seed));
            let mut settings = Map::new();
            settings.insert("variant".to_owned(), Value::from(variant.name.trim()));
            settings.insert("seed".to_owned(), Value::from(*seed));
            cells.push(GridCell {
                column,
                row,
                settings,
                request,
            });
        }
    }
    if cells.iter().any(|cell| cell.request.prompt.trim().is_empty()) {
        return Err(EngineError::bad_input(
            "every variant needs a prompt (in the base or its changes)",
        ));
    }
    Ok(GridPlan {
        kind: "experiment",
        id: id.to_owned(),
        columns: variants.len(),
        cells,
        column_labels: variants
            .iter()
            .map(|variant| variant.name.trim().to_owned())
            .collect(),
        row_labels: definition
            .seeds
            .iter()
            .map(|seed| format!("seed {seed}"))
            .collect(),
    })
}

fn apply_all(
    request: &mut GenerateRequest,
    changes: &Map<String, Value>,
    whose: &str,
) -> Result<(), EngineError> {
    for (parameter, value) in changes {
        if !VARIANT_PARAMETERS.contains(&parameter.as_str()) {
            return Err(EngineError::bad_input(format!(
                "{whose} sets {parameter:?}; an experiment's base and variants set {}",
                VARIANT_PARAMETERS.join(", ")
            )));
        }
        set_parameter(request, parameter, value)?;
    }
    Ok(())
}

fn store_error(error: comfy_store::StoreError) -> EngineError {
    match error {
        comfy_store::StoreError::ExperimentNotFound { id } => EngineError::bad_input(format!(
            "no experiment {id}: experiment with action list shows the ones there are"
        )),
        other => library_error(other),
    }
}

/// A stored experiment's definition.
pub fn definition_of(experiment: &Experiment) -> Result<ExperimentDefinition, EngineError> {
    serde_json::from_value(experiment.definition.clone()).map_err(|error| {
        EngineError::bad_input(format!(
            "experiment {} has a definition this version cannot read: {error}",
            experiment.id
        ))
    })
}

impl Engine {
    /// Records a new experiment and plans its trials (nothing is queued yet).
    pub async fn create_experiment(
        &self,
        name: &str,
        definition: ExperimentDefinition,
        client: Option<String>,
    ) -> Result<(Experiment, GridPlan), EngineError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let plan = plan_trials(&id, &definition)?;
        let experiment = self
            .store
            .create_experiment(NewExperiment {
                id,
                name: name.to_owned(),
                variants: definition.variants.len(),
                seeds: definition.seeds.len(),
                definition: serde_json::to_value(&definition).unwrap_or_default(),
                client,
            })
            .await
            .map_err(store_error)?;
        Ok((experiment, plan))
    }

    /// Records which job ran a trial, or why it was not queued.
    pub async fn record_trial(&self, id: &str, trial: Trial) -> Result<(), EngineError> {
        self.store.record_trial(id, trial).await.map_err(store_error)
    }

    pub async fn experiment(&self, id: &str) -> Result<Experiment, EngineError> {
        self.store.get_experiment(id).await.map_err(store_error)
    }

    pub async fn list_experiments(&self, limit: usize) -> Result<Vec<ExperimentSummary>, EngineError> {
        self.store.list_experiments(limit).await.map_err(store_error)
    }

    pub async fn delete_experiment(&self, id: &str) -> Result<bool, EngineError> {
        self.store.delete_experiment(id).await.map_err(store_error)
    }

    /// Adds judgements (all or none), each on a seed by its position (0-based).
    pub async fn judge_experiment(
        &self,
        id: &str,
        verdicts: Vec<(usize, Verdict)>,
        source: &str,
        client: Option<String>,
    ) -> Result<usize, EngineError> {
        let judgements = verdicts
            .into_iter()
            .map(|(seed_index, verdict)| Judgement {
                seed_index,
                verdict,
                source: source.to_owned(),
                client: client.clone(),
                created_at_ms: 0,
            })
            .collect();
        self.store
            .add_judgements(id, judgements)
            .await
            .map_err(store_error)
    }

    /// Scores every trial's first image with `measure` (one of [`MEASURES`]; `similarity` needs
    /// `reference`), replacing that measure's earlier scores; how many trials were scored.
    pub async fn measure_experiment(
        &self,
        id: &str,
        measure: &str,
        reference: Option<SourceImage>,
    ) -> Result<usize, EngineError> {
        if !MEASURES.contains(&measure) {
            return Err(EngineError::bad_input(format!(
                "no measure {measure:?}; the measures are {}",
                MEASURES.join(", ")
            )));
        }
        let reference = match (measure, reference) {
            ("similarity", None) => {
                return Err(EngineError::bad_input(
                    "the similarity measure needs a reference image",
                ));
            }
            (_, reference) => reference.map(|reference| std::sync::Arc::new(reference.image)),
        };
        let experiment = self.experiment(id).await?;
        let mut verdicts = Vec::new();
        for trial in &experiment.trials {
            let Some(job_id) = &trial.job_id else { continue };
            let Some(image) = self.first_output_image(job_id).await else {
                continue;
            };
            let (measure, reference) = (measure.to_owned(), reference.clone());
            let score = self
                .compute(move || score_image(&measure, &image.image, reference.as_deref()))
                .await?;
            verdicts.push((
                trial.seed_index,
                Verdict::Rating {
                    variant: trial.variant,
                    score,
                },
            ));
        }
        self.store
            .clear_judgements(id, measure)
            .await
            .map_err(store_error)?;
        let scored = verdicts.len();
        self.judge_experiment(id, verdicts, measure, None).await?;
        Ok(scored)
    }

    /// The first image in the library from `job_id`, decoded.
    async fn first_output_image(&self, job_id: &str) -> Option<SourceImage> {
        let query = comfy_store::OutputQuery {
            job_id: Some(job_id.to_owned()),
            ..Default::default()
        };
        let records = self.store.search_outputs(query).await.ok()?;
        let record = records
            .iter()
            .find(|record| record.output.media_type.starts_with("image/"))?;
        self.load_image(ImageSource::Library(record.id)).await.ok()
    }

    /// The experiment's verdict at significance level `alpha`.
    pub async fn experiment_report(&self, id: &str, alpha: f64) -> Result<ExperimentReport, EngineError> {
        if !(0.0..=0.5).contains(&alpha) || alpha == 0.0 {
            return Err(EngineError::bad_input("alpha must be above 0 and at most 0.5"));
        }
        let experiment = self.experiment(id).await?;
        let definition = definition_of(&experiment)?;
        Ok(report(&experiment, &definition, alpha))
    }

    /// Saves the winning variant's graph (its first finished trial) as a version of preset
    /// `name`; `variant` names one to save instead of the verdict's winner.
    pub async fn save_experiment_winner(
        &self,
        id: &str,
        name: &str,
        variant: Option<&str>,
        alpha: f64,
    ) -> Result<(SavedPreset, String), EngineError> {
        let report = self.experiment_report(id, alpha).await?;
        let chosen = match variant {
            Some(wanted) => report
                .variants
                .iter()
                .position(|variant| variant.name == wanted.trim())
                .ok_or_else(|| {
                    EngineError::bad_input(format!("experiment {id} has no variant {wanted:?}"))
                })?,
            None => report.winner_index.ok_or_else(|| {
                EngineError::bad_input(format!(
                    "experiment {id} has no winner yet ({}); name a variant to save it anyway",
                    report.conclusion
                ))
            })?,
        };
        let experiment = self.experiment(id).await?;
        let mut graph = None;
        for trial in experiment.trials.iter().filter(|trial| trial.variant == chosen) {
            let Some(job_id) = &trial.job_id else { continue };
            if let Ok(job) = self.store.get_job(job_id).await
                && job.state == comfy_store::JobState::Succeeded
            {
                graph = Some(job.request);
                break;
            }
        }
        let variant_name = report.variants[chosen].name.clone();
        let graph = graph.ok_or_else(|| {
            EngineError::bad_input(format!("variant {variant_name:?} has no finished trial to save"))
        })?;
        let message = format!("experiment {id} ({}): {}", experiment.name, report.conclusion);
        let saved = self
            .save_preset(PresetSaveRequest {
                name: name.to_owned(),
                workflow: graph,
                description: Some(format!("variant {variant_name:?} of experiment {id}")),
                tags: Some(vec!["experiment".to_owned()]),
                message: Some(message),
                backend: None,
            })
            .await
            .map_err(preset_error)?;
        Ok((saved, variant_name))
    }
}

fn preset_error(error: PresetError) -> EngineError {
    match error {
        PresetError::Engine(error) => error,
        PresetError::Store(error) => library_error(error),
        other => EngineError::bad_input(other.to_string()),
    }
}

/// One image's score by `measure`, higher is better.
fn score_image(
    measure: &str,
    image: &image::RgbaImage,
    reference: Option<&image::RgbaImage>,
) -> Result<f64, comfy_imaging::ImagingError> {
    if measure == "similarity" {
        let Some(reference) = reference else {
            return Ok(0.0);
        };
        let resized;
        let candidate = if image.dimensions() == reference.dimensions() {
            image
        } else {
            let (width, height) = reference.dimensions();
            resized = image::imageops::resize(image, width, height, image::imageops::FilterType::Triangle);
            &resized
        };
        return Ok(comfy_imaging::compare::compare(reference, candidate)?.ssim);
    }
    let composition = comfy_imaging::analyze::analyze(image, 1)?;
    Ok(match measure {
        "sharpness" => composition.sharpness.laplacian_variance,
        "contrast" => composition.contrast.rms,
        "colorfulness" => composition.color.colorfulness,
        _ => composition.color.mean_saturation,
    })
}

/// A variant as the report shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VariantSummary {
    pub name: String,
    pub changes: Map<String, Value>,
    /// Trials with a job.
    pub trials: usize,
}

/// What the person's choices say.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChoiceAnalysis {
    /// Choices with a winner.
    pub decided: usize,
    pub ties: usize,
    /// `wins[i][j]`: how often variant i was chosen over j.
    pub wins: Vec<Vec<u64>>,
    /// Two variants: the exact two-sided binomial test of the first variant's share of wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binomial: Option<BinomialTest>,
    /// More variants: Bradley-Terry strengths and the likelihood-ratio test against equal ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bradley_terry: Option<BradleyTerry>,
    pub conclusion: String,
    #[serde(skip)]
    winner: Option<usize>,
}

/// What one source's ratings say (the person's, or a measure's).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RatingAnalysis {
    pub source: String,
    /// Per variant: how many ratings and their mean.
    pub counts: Vec<usize>,
    pub means: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<RankTest>,
    pub conclusion: String,
    #[serde(skip)]
    winner: Option<usize>,
}

/// An experiment's verdict.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ExperimentReport {
    pub id: String,
    pub name: String,
    pub variants: Vec<VariantSummary>,
    pub seeds: Vec<u64>,
    pub alpha: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<ChoiceAnalysis>,
    pub ratings: Vec<RatingAnalysis>,
    /// The winning variant's name, when a test shows one at `alpha`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    /// What the verdict rests on, in a sentence.
    pub conclusion: String,
    #[serde(skip)]
    pub winner_index: Option<usize>,
}

/// The verdict: the person's choices when there are any, else the person's ratings, else the
/// first measure taken.
pub fn report(experiment: &Experiment, definition: &ExperimentDefinition, alpha: f64) -> ExperimentReport {
    let names: Vec<String> = definition
        .variants
        .iter()
        .map(|variant| variant.name.trim().to_owned())
        .collect();
    let choices = analyze_choices(experiment, &names, alpha);
    let mut sources: Vec<&str> = Vec::new();
    for judgement in &experiment.judgements {
        if matches!(judgement.verdict, Verdict::Rating { .. })
            && !sources.contains(&judgement.source.as_str())
        {
            sources.push(&judgement.source);
        }
    }
    // The person's ratings come first: they outrank any measure.
    sources.sort_by_key(|source| *source != PERSON);
    let ratings: Vec<RatingAnalysis> = sources
        .iter()
        .map(|source| analyze_ratings(experiment, source, &names, alpha))
        .collect();
    let (winner_index, conclusion) = match (&choices, ratings.first()) {
        (Some(choices), _) => (
            choices.winner,
            format!("by the person's choices: {}", choices.conclusion),
        ),
        (None, Some(rating)) => (
            rating.winner,
            format!("by {} ratings: {}", rating.source, rating.conclusion),
        ),
        (None, None) => (
            None,
            "no judgements yet: judge the trials (action judge or ask) or take a measure".to_owned(),
        ),
    };
    ExperimentReport {
        id: experiment.id.clone(),
        name: experiment.name.clone(),
        variants: definition
            .variants
            .iter()
            .enumerate()
            .map(|(index, variant)| VariantSummary {
                name: names[index].clone(),
                changes: variant.changes.clone(),
                trials: experiment
                    .trials
                    .iter()
                    .filter(|trial| trial.variant == index && trial.job_id.is_some())
                    .count(),
            })
            .collect(),
        seeds: definition.seeds.clone(),
        alpha,
        choices,
        ratings,
        winner: winner_index.map(|index| names[index].clone()),
        conclusion,
        winner_index,
    }
}

fn percent(value: f64) -> String {
    format!("{:.0}%", value * 100.0)
}

fn analyze_choices(experiment: &Experiment, names: &[String], alpha: f64) -> Option<ChoiceAnalysis> {
    let k = names.len();
    let mut wins = vec![vec![0u64; k]; k];
    let mut ties = 0;
    for judgement in experiment
        .judgements
        .iter()
        .filter(|judgement| judgement.source == PERSON)
    {
        match judgement.verdict {
            Verdict::Choice { winner, loser } if winner < k && loser < k => wins[winner][loser] += 1,
            Verdict::Tie { .. } => ties += 1,
            _ => {}
        }
    }
    let decided: u64 = wins.iter().flatten().sum();
    if decided == 0 && ties == 0 {
        return None;
    }
    let mut analysis = ChoiceAnalysis {
        decided: usize::try_from(decided).unwrap_or(usize::MAX),
        ties,
        wins: wins.clone(),
        binomial: None,
        bradley_terry: None,
        conclusion: String::new(),
        winner: None,
    };
    if decided == 0 {
        analysis.conclusion = format!("{ties} ties and no decided choice: no variant is preferred");
        return Some(analysis);
    }
    if k == 2 {
        let test = statistics::binomial_test(wins[0][1], decided)?;
        let leader = usize::from(wins[1][0] > wins[0][1]);
        let leader_wins = wins[leader][1 - leader];
        let share = leader_wins as f64 / decided as f64;
        let interval = if leader == 0 {
            test.interval_95
        } else {
            [1.0 - test.interval_95[1], 1.0 - test.interval_95[0]]
        };
        let evidence = format!(
            "{} chosen in {leader_wins} of {decided} decided choices ({}, 95% interval {}-{}), exact two-sided binomial p = {:.4}",
            names[leader],
            percent(share),
            percent(interval[0]),
            percent(interval[1]),
            test.p_value
        );
        analysis.conclusion = if test.p_value < alpha && wins[0][1] != wins[1][0] {
            analysis.winner = Some(leader);
            format!("{} is preferred: {evidence} < {alpha}", names[leader])
        } else {
            format!(
                "no variant is preferred at the {alpha} level: {evidence}; more judgements would tell more"
            )
        };
        analysis.binomial = Some(test);
        return Some(analysis);
    }
    let matrix: Vec<Vec<f64>> = wins
        .iter()
        .map(|row| row.iter().map(|count| *count as f64).collect())
        .collect();
    let fit = statistics::bradley_terry(&matrix)?;
    let strongest = (0..k)
        .max_by(|left, right| fit.strengths[*left].total_cmp(&fit.strengths[*right]))
        .unwrap_or(0);
    let evidence = format!(
        "Bradley-Terry over {decided} decided choices gives {} the most strength ({:.2} of 1), likelihood-ratio test against equal strengths p = {:.4}",
        names[strongest], fit.strengths[strongest], fit.p_value
    );
    analysis.conclusion = if fit.p_value < alpha {
        analysis.winner = Some(strongest);
        format!("{} is preferred: {evidence} < {alpha}", names[strongest])
    } else {
        format!("no variant is preferred at the {alpha} level: {evidence}; more judgements would tell more")
    };
    analysis.bradley_terry = Some(fit);
    Some(analysis)
}

fn analyze_ratings(experiment: &Experiment, source: &str, names: &[String], alpha: f64) -> RatingAnalysis {
    let k = names.len();
    let mut groups = vec![Vec::new(); k];
    for judgement in experiment
        .judgements
        .iter()
        .filter(|judgement| judgement.source == source)
    {
        if let Verdict::Rating { variant, score } = judgement.verdict
            && variant < k
        {
            groups[variant].push(score);
        }
    }
    let counts: Vec<usize> = groups.iter().map(Vec::len).collect();
    let means: Vec<f64> = groups
        .iter()
        .map(|group| {
            if group.is_empty() {
                0.0
            } else {
                group.iter().sum::<f64>() / group.len() as f64
            }
        })
        .collect();
    let test = if k == 2 {
        statistics::mann_whitney(&groups[0], &groups[1])
    } else {
        statistics::kruskal_wallis(&groups)
    };
    let mut analysis = RatingAnalysis {
        source: source.to_owned(),
        counts,
        means,
        test: None,
        conclusion: String::new(),
        winner: None,
    };
    let Some(test) = test else {
        analysis.conclusion = "too few ratings to test: every variant needs at least one".to_owned();
        return analysis;
    };
    let best = (0..k)
        .max_by(|left, right| test.mean_ranks[*left].total_cmp(&test.mean_ranks[*right]))
        .unwrap_or(0);
    let name = if k == 2 {
        "Mann-Whitney U"
    } else {
        "Kruskal-Wallis H"
    };
    let evidence = format!(
        "{} ranks highest (mean {:.4} over {} ratings), {name} {} p = {:.4}",
        names[best], analysis.means[best], analysis.counts[best], test.method, test.p_value
    );
    analysis.conclusion = if test.p_value < alpha {
        analysis.winner = Some(best);
        format!("{} rates best: {evidence} < {alpha}", names[best])
    } else {
        format!("no variant rates better at the {alpha} level: {evidence}")
    };
    analysis.test = Some(test);
    analysis
}

/// The definition's base and variants as JSON, for a tool's answer.
pub fn describe_definition(definition: &ExperimentDefinition) -> Value {
    json!({"base": definition.base, "variants": definition.variants, "seeds": definition.seeds})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> ExperimentDefinition {
        let map = |value: Value| value.as_object().cloned().unwrap_or_default();
        ExperimentDefinition {
            base: map(json!({"prompt": "a red fox", "steps": 4})),
            variants: vec![
                Variant {
                    name: "plain".into(),
                    changes: Map::new(),
                },
                Variant {
                    name: "cinematic".into(),
                    changes: map(json!({"style": "cinematic", "cfg": 5.5})),
                },
            ],
            seeds: vec![11, 12, 13],
        }
    }

    fn experiment(judgements: Vec<Judgement>) -> Experiment {
        Experiment {
            id: "e".into(),
            name: "test".into(),
            definition: Value::Null,
            variants: 2,
            seeds: 10,
            client: None,
            created_at_ms: 0,
            trials: Vec::new(),
            judgements,
        }
    }

    fn judged(verdict: Verdict, source: &str) -> Judgement {
        Judgement {
            seed_index: 0,
            verdict,
            source: source.into(),
            client: None,
            created_at_ms: 0,
        }
    }

    #[test]
    fn trials_share_seeds_across_variants() {
        let plan = plan_trials("e1", &definition()).unwrap();
        assert_eq!(plan.cells.len(), 6);
        assert_eq!(plan.column_labels, ["plain", "cinematic"]);
        assert_eq!(plan.row_labels, ["seed 11", "seed 12", "seed 13"]);
        let (first, second) = (&plan.cells[0].request, &plan.cells[1].request);
        assert_eq!((first.seed, second.seed), (Some(11), Some(11)));
        assert_eq!(second.style.as_deref(), Some("cinematic"));
        assert_eq!((first.cfg, second.cfg), (None, Some(5.5)));
        assert_eq!(first.steps, Some(4));
    }

    #[test]
    fn wrong_definitions_are_refused_by_what_is_wrong() {
        let mut one = definition();
        one.variants.truncate(1);
        let mut twins = definition();
        twins.variants[1].name = " plain".into();
        let mut unknown = definition();
        unknown.variants[1].changes.insert("colour".into(), json!("red"));
        let mut many = definition();
        many.seeds = (0..17).collect();
        let mut no_prompt = definition();
        no_prompt.base.remove("prompt");
        for (wrong, expected) in [
            (one, "2 to 8 variants"),
            (twins, "two variants are named"),
            (unknown, "sets \"colour\""),
            (many, "1 to 16 seeds"),
            (no_prompt, "needs a prompt"),
        ] {
            let error = plan_trials("e", &wrong).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn two_variants_choices_give_the_binomial_verdict() {
        let mut judgements: Vec<Judgement> = (0..9)
            .map(|_| judged(Verdict::Choice { winner: 1, loser: 0 }, PERSON))
            .collect();
        judgements.push(judged(Verdict::Choice { winner: 0, loser: 1 }, PERSON));
        judgements.push(judged(Verdict::Tie { first: 0, second: 1 }, PERSON));
        let verdict = report(&experiment(judgements), &definition(), 0.05);
        assert_eq!(verdict.winner.as_deref(), Some("cinematic"));
        let choices = verdict.choices.unwrap();
        assert_eq!((choices.decided, choices.ties), (10, 1));
        assert!((choices.binomial.unwrap().p_value - 0.021484375).abs() < 1e-12);
        assert!(verdict.conclusion.contains("9 of 10"), "{}", verdict.conclusion);
        assert!(
            verdict.conclusion.contains("95% interval 55%-100%"),
            "{}",
            verdict.conclusion
        );
        // 7 of 10 is not enough at 0.05.
        let mut judgements: Vec<Judgement> = (0..7)
            .map(|_| judged(Verdict::Choice { winner: 1, loser: 0 }, PERSON))
            .collect();
        judgements.extend((0..3).map(|_| judged(Verdict::Choice { winner: 0, loser: 1 }, PERSON)));
        let verdict = report(&experiment(judgements), &definition(), 0.05);
        assert_eq!(verdict.winner, None);
        assert!(
            verdict.conclusion.contains("p = 0.3438"),
            "{}",
            verdict.conclusion
        );
    }

    #[test]
    fn ratings_give_the_mann_whitney_verdict_and_measures_come_after_the_person() {
        let mut judgements = Vec::new();
        for (variant, scores) in [(0, [0.81, 0.92, 0.77, 0.88]), (1, [0.61, 0.72, 0.59, 0.70])] {
            for score in scores {
                judgements.push(judged(Verdict::Rating { variant, score }, "sharpness"));
            }
        }
        let verdict = report(&experiment(judgements.clone()), &definition(), 0.05);
        assert_eq!(verdict.winner.as_deref(), Some("plain"));
        let test = verdict.ratings[0].test.clone().unwrap();
        assert!((test.p_value - 0.02857142857142857).abs() < 1e-12, "{test:?}");
        judgements.push(judged(
            Verdict::Rating {
                variant: 1,
                score: 5.0,
            },
            PERSON,
        ));
        let verdict = report(&experiment(judgements), &definition(), 0.05);
        assert_eq!(verdict.ratings[0].source, PERSON);
        assert_eq!(verdict.winner, None, "{}", verdict.conclusion);
    }
}
