//! `experiment` (part of the `insights` toolset): A/B and n-way tests of prompts or parameters.
//! `create` runs every variant on the same seeds as one batch and answers a sheet (variants as
//! columns, seeds as rows); the person judges through a form (`ask`, MCP elicitation) or the
//! agent records what the person said (`judge`); `measure` scores the images automatically;
//! `report` states the verdict with its test and p-value; `save_winner` keeps the winner's graph
//! as a preset version; `insights` and `preset_from_history` learn from every experiment's choices.

use rmcp::RoleServer;
use rmcp::model::{ElicitationAction, ElicitationSchema};
use rmcp::service::RequestContext;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ask::{self, Unanswered};
use super::enhance::{CellReport, follow_cells, queue_cells};
use super::images::{self, ImageArgument};
use super::render::{engine_error, error_text, json_result};
use super::server::ComfyServer;
use super::tool::{Hints, ToolDeclaration, ToolOutcome, client_name, declare_tool, wait_limit};
use comfy_engine::experiments::{ExperimentDefinition, PERSON, Variant, definition_of};
use comfy_engine::grids::GridSheet;
use comfy_engine::types::{Trial, Verdict};

/// Seeds an experiment runs on when the caller names none.
const DEFAULT_SEEDS: usize = 4;
/// The significance level when the caller names none.
const DEFAULT_ALPHA: f64 = 0.05;

/// What one variant changes from the base (unset: as the base has it).
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct VariantArgument {
    /// A short name (A, B, "with lens words"...), unique in the experiment.
    #[serde(skip_serializing)]
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    negative_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cfg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sampler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    denoise: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
    /// A style preset (built-in or saved).
    #[serde(skip_serializing_if = "Option::is_none")]
    style: Option<String>,
    /// draft, standard or high.
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChoiceArgument {
    /// The seed (as the sheet's rows show it).
    seed: u64,
    /// The variant chosen.
    winner: String,
    /// The variant it was chosen over.
    loser: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TieArgument {
    seed: u64,
    first: String,
    second: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RatingArgument {
    seed: u64,
    variant: String,
    /// Any scale, higher is better (e.g. 1 to 5).
    score: f64,
}

/// What `experiment` does.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum ExperimentArguments {
    /// Run every variant on the same seeds, one batch; answers the sheet and the trials' jobs.
    Create {
        /// The experiment's name.
        name: String,
        /// The base prompt (a variant's prompt replaces it).
        prompt: String,
        negative_prompt: Option<String>,
        checkpoint: Option<String>,
        width: Option<i64>,
        height: Option<i64>,
        steps: Option<i64>,
        cfg: Option<f64>,
        sampler: Option<String>,
        scheduler: Option<String>,
        style: Option<String>,
        quality: Option<String>,
        /// 2 to 8 variants.
        variants: Vec<VariantArgument>,
        /// The seeds every variant runs on (default: 4 random ones).
        seeds: Option<Vec<u64>>,
        wait_seconds: Option<f64>,
        backend: Option<String>,
        max_preview_bytes: Option<usize>,
    },
    /// Record the person's judgements: choices between two variants on a seed, ties, ratings.
    Judge {
        experiment_id: String,
        #[serde(default)]
        choices: Vec<ChoiceArgument>,
        #[serde(default)]
        ties: Vec<TieArgument>,
        #[serde(default)]
        ratings: Vec<RatingArgument>,
    },
    /// Ask the person through the client (a form: the best variant on each seed).
    Ask {
        experiment_id: String,
        /// The seeds to ask about (default: those the person has not judged).
        seeds: Option<Vec<u64>>,
    },
    /// Score every trial's image: sharpness, contrast, colorfulness, saturation, or similarity
    /// (SSIM) to a reference; replaces that measure's earlier scores.
    Measure {
        experiment_id: String,
        measure: String,
        reference: Option<ImageArgument>,
    },
    /// The verdict with its test, p-value and the evidence it rests on.
    Report {
        experiment_id: String,
        /// Significance level (default 0.05).
        alpha: Option<f64>,
    },
    /// Save the winner's graph (or a named variant's) as a new version of a preset.
    SaveWinner {
        experiment_id: String,
        preset: String,
        variant: Option<String>,
        alpha: Option<f64>,
    },
    /// What the person's choices across all experiments say about prompt terms and parameter
    /// values (wins, binomial p, effect); with a prompt, its terms and suggestions for it.
    Insights {
        prompt: Option<String>,
        alpha: Option<f64>,
    },
    /// Save a preset generating `prompt` with the parameter values the history prefers.
    PresetFromHistory {
        preset: String,
        prompt: String,
        checkpoint: Option<String>,
        alpha: Option<f64>,
    },
    /// The newest experiments.
    List { limit: Option<usize> },
    /// Delete an experiment with its judgements (its images stay in the library).
    Delete { experiment_id: String },
}

/// This tool, declared once.
pub(crate) const TOOLS: &[ToolDeclaration] = &[declare_tool!(
    "experiment",
    "A/B and n-way tests of prompts or parameters: create runs 2-8 variants on the same seeds as one batch (sheet: variants as columns, seeds as rows); the person judges through a form (ask) or you record their choices, ties or ratings (judge); measure scores images (sharpness, contrast, colorfulness, saturation, SSIM to a reference); report gives the verdict with its test (exact binomial, Bradley-Terry, Mann-Whitney U or Kruskal-Wallis), p-value and interval; save_winner keeps the winner as a preset version; insights says what all choices so far say about prompt terms and parameter values, preset_from_history builds a preset from the preferred ones.",
    Hints::CREATES,
    ExperimentArguments,
    experiment,
)];

async fn experiment(
    server: &ComfyServer,
    arguments: ExperimentArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let engine = &server.engine;
    let fail = |error: comfy_engine::EngineError| engine_error(&error);
    match arguments {
        ExperimentArguments::Create { .. } => create(server, arguments, context).await,
        ExperimentArguments::Judge {
            experiment_id,
            choices,
            ties,
            ratings,
        } => {
            let experiment = engine.experiment(&experiment_id).await.map_err(fail)?;
            let definition = definition_of(&experiment).map_err(fail)?;
            let verdicts = verdicts_of(&definition, choices, ties, ratings)?;
            let added = engine
                .judge_experiment(&experiment_id, verdicts, PERSON, client_name(context))
                .await
                .map_err(fail)?;
            report_answer(server, &experiment_id, None, json!({"recorded": added})).await
        }
        ExperimentArguments::Ask { experiment_id, seeds } => {
            ask_person(server, &experiment_id, seeds, context).await
        }
        ExperimentArguments::Measure {
            experiment_id,
            measure,
            reference,
        } => {
            let reference = images::load_optional(server, reference.as_ref(), "reference").await?;
            let scored = engine
                .measure_experiment(&experiment_id, measure.trim(), reference)
                .await
                .map_err(fail)?;
            report_answer(
                server,
                &experiment_id,
                None,
                json!({"measure": measure, "scored": scored}),
            )
            .await
        }
        ExperimentArguments::Report { experiment_id, alpha } => {
            report_answer(server, &experiment_id, alpha, json!({})).await
        }
        ExperimentArguments::SaveWinner {
            experiment_id,
            preset,
            variant,
            alpha,
        } => {
            let (saved, variant) = engine
                .save_experiment_winner(
                    &experiment_id,
                    &preset,
                    variant.as_deref(),
                    alpha.unwrap_or(DEFAULT_ALPHA),
                )
                .await
                .map_err(fail)?;
            Ok(json_result(&json!({
                "preset": saved.preset.summary.name,
                "version": saved.preset.summary.head_version,
                "previous_head": saved.previous_head,
                "variant": variant,
            })))
        }
        ExperimentArguments::Insights { prompt, alpha } => {
            let insights = engine
                .history_insights(prompt.as_deref(), alpha.unwrap_or(DEFAULT_ALPHA))
                .await
                .map_err(fail)?;
            Ok(json_result(&serde_json::to_value(insights).unwrap_or_default()))
        }
        ExperimentArguments::PresetFromHistory {
            preset,
            prompt,
            checkpoint,
            alpha,
        } => {
            let (saved, chosen) = engine
                .preset_from_history(&preset, &prompt, checkpoint, alpha.unwrap_or(DEFAULT_ALPHA))
                .await
                .map_err(fail)?;
            Ok(json_result(&json!({
                "preset": saved.preset.summary.name,
                "version": saved.preset.summary.head_version,
                "rests_on": chosen,
            })))
        }
        ExperimentArguments::List { limit } => {
            let experiments = engine.list_experiments(limit.unwrap_or(20)).await.map_err(fail)?;
            Ok(json_result(&json!({"experiments": experiments})))
        }
        ExperimentArguments::Delete { experiment_id } => {
            let deleted = engine.delete_experiment(&experiment_id).await.map_err(fail)?;
            Ok(json_result(
                &json!({"experiment_id": experiment_id, "deleted": deleted}),
            ))
        }
    }
}

#[derive(Debug, Serialize)]
struct CreatedExperiment {
    experiment_id: String,
    variants: Vec<String>,
    seeds: Vec<u64>,
    trials: Vec<CellReport>,
    #[serde(flatten)]
    sheet: GridSheet,
    #[serde(skip_serializing_if = "Option::is_none")]
    unfinished: Option<usize>,
    next: &'static str,
}

async fn create(
    server: &ComfyServer,
    arguments: ExperimentArguments,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let ExperimentArguments::Create {
        name,
        prompt,
        negative_prompt,
        checkpoint,
        width,
        height,
        steps,
        cfg,
        sampler,
        scheduler,
        style,
        quality,
        variants,
        seeds,
        wait_seconds,
        backend,
        max_preview_bytes,
    } = arguments
    else {
        return Err(error_text("not a create action"));
    };
    let limit = wait_limit(server, wait_seconds, server.engine.config.wait)?;
    let base = json!({
        "prompt": prompt, "negative_prompt": negative_prompt, "checkpoint": checkpoint, "width": width,
        "height": height, "steps": steps, "cfg": cfg, "sampler": sampler, "scheduler": scheduler,
        "style": style, "quality": quality,
    });
    let mut base: Map<String, Value> = base.as_object().cloned().unwrap_or_default();
    base.retain(|_, value| !value.is_null());
    let variants = variants
        .into_iter()
        .map(|variant| Variant {
            name: variant.name.trim().to_owned(),
            changes: serde_json::to_value(&variant)
                .ok()
                .and_then(|value| value.as_object().cloned())
                .unwrap_or_default(),
        })
        .collect();
    let seeds = seeds.unwrap_or_else(|| {
        (0..DEFAULT_SEEDS)
            .map(|_| comfy_engine::generate::random_seed())
            .collect()
    });
    let mut definition = ExperimentDefinition {
        base,
        variants,
        seeds,
    };
    if let Some(backend) = backend {
        // Chosen per call, not part of what the variants are compared on.
        definition.base.insert("backend".to_owned(), Value::from(backend));
    }
    let (experiment, plan) = server
        .engine
        .create_experiment(&name, definition.clone(), client_name(context))
        .await
        .map_err(|error| engine_error(&error))?;
    let queued = match queue_cells(server, &plan).await {
        Ok(queued) => queued,
        Err(refusal) => {
            // Nothing ran: an experiment without trials is only clutter.
            let _ = server.engine.delete_experiment(&experiment.id).await;
            return Err(refusal);
        }
    };
    for (cell, job) in plan.cells.iter().zip(&queued) {
        let trial = Trial {
            variant: cell.column,
            seed_index: cell.row,
            job_id: job.as_ref().ok().map(|(_, job)| job.prompt_id.clone()),
            error: job.as_ref().err().cloned(),
        };
        server
            .engine
            .record_trial(&experiment.id, trial)
            .await
            .map_err(|error| engine_error(&error))?;
    }
    let (finished, trials, unfinished) = follow_cells(server, &plan, queued, &limit, context).await?;
    let sheet = server
        .engine
        .assemble_grid(&plan, &finished, max_preview_bytes)
        .await
        .map_err(|error| engine_error(&error))?;
    let created = CreatedExperiment {
        experiment_id: experiment.id,
        variants: plan.column_labels.clone(),
        seeds: definition.seeds,
        trials,
        sheet,
        unfinished: (unfinished > 0).then_some(unfinished),
        next: "judge with action ask (a form for the person) or judge (their choices, ties or ratings), or score with measure; then report",
    };
    Ok(images::answer(&created, &[&created.sheet.sheet]))
}

/// The position of `seed` among the experiment's seeds.
fn seed_index(definition: &ExperimentDefinition, seed: u64) -> Result<usize, rmcp::model::CallToolResult> {
    definition
        .seeds
        .iter()
        .position(|known| *known == seed)
        .ok_or_else(|| {
            error_text(format!(
                "seed {seed} is not one of this experiment's seeds {:?}",
                definition.seeds
            ))
        })
}

/// The position of the variant called `name`.
fn variant_index(
    definition: &ExperimentDefinition,
    name: &str,
) -> Result<usize, rmcp::model::CallToolResult> {
    let names: Vec<&str> = definition
        .variants
        .iter()
        .map(|variant| variant.name.trim())
        .collect();
    names
        .iter()
        .position(|known| *known == name.trim())
        .ok_or_else(|| {
            error_text(format!(
                "no variant {name:?}; the variants are {}",
                names.join(", ")
            ))
        })
}

fn verdicts_of(
    definition: &ExperimentDefinition,
    choices: Vec<ChoiceArgument>,
    ties: Vec<TieArgument>,
    ratings: Vec<RatingArgument>,
) -> Result<Vec<(usize, Verdict)>, rmcp::model::CallToolResult> {
    if choices.is_empty() && ties.is_empty() && ratings.is_empty() {
        return Err(error_text("give choices, ties or ratings to record"));
    }
    let mut verdicts = Vec::new();
    for choice in choices {
        let verdict = Verdict::Choice {
            winner: variant_index(definition, &choice.winner)?,
            loser: variant_index(definition, &choice.loser)?,
        };
        verdicts.push((seed_index(definition, choice.seed)?, verdict));
    }
    for tie in ties {
        let verdict = Verdict::Tie {
            first: variant_index(definition, &tie.first)?,
            second: variant_index(definition, &tie.second)?,
        };
        verdicts.push((seed_index(definition, tie.seed)?, verdict));
    }
    for rating in ratings {
        let verdict = Verdict::Rating {
            variant: variant_index(definition, &rating.variant)?,
            score: rating.score,
        };
        verdicts.push((seed_index(definition, rating.seed)?, verdict));
    }
    Ok(verdicts)
}

/// What a form answer means when nobody is preferred.
const NO_PREFERENCE: &str = "no preference";

/// Asks the person for the best variant on each seed, records the answers, answers the report.
async fn ask_person(
    server: &ComfyServer,
    experiment_id: &str,
    seeds: Option<Vec<u64>>,
    context: &RequestContext<RoleServer>,
) -> ToolOutcome {
    let fail = |error: comfy_engine::EngineError| engine_error(&error);
    let experiment = server.engine.experiment(experiment_id).await.map_err(fail)?;
    let definition = definition_of(&experiment).map_err(fail)?;
    let judged: Vec<usize> = experiment
        .judgements
        .iter()
        .filter(|judgement| judgement.source == PERSON)
        .map(|judgement| judgement.seed_index)
        .collect();
    let asked: Vec<u64> = match seeds {
        Some(seeds) => {
            for seed in &seeds {
                seed_index(&definition, *seed)?;
            }
            seeds
        }
        None => definition
            .seeds
            .iter()
            .enumerate()
            .filter(|(index, _)| !judged.contains(index))
            .map(|(_, seed)| *seed)
            .collect(),
    };
    if asked.is_empty() {
        return report_answer(
            server,
            experiment_id,
            None,
            json!({"asked": 0, "note": "every seed is judged already; name seeds to ask again"}),
        )
        .await;
    }
    let names: Vec<String> = definition
        .variants
        .iter()
        .map(|variant| variant.name.trim().to_owned())
        .collect();
    let mut options = names.clone();
    options.push(NO_PREFERENCE.to_owned());
    let mut properties = Map::new();
    for seed in &asked {
        properties.insert(
            format!("seed_{seed}"),
            json!({"type": "string", "title": format!("Seed {seed}: the best image"), "enum": options}),
        );
    }
    let required: Vec<String> = properties.keys().cloned().collect();
    let schema: ElicitationSchema = serde_json::from_value(json!({
        "type": "object", "properties": properties, "required": required,
    }))
    .map_err(|error| error_text(format!("the form could not be built: {error}")))?;
    let message = format!(
        "Experiment {:?} ({experiment_id}): the sheet shows the variants {} as columns and the seeds as rows. For each seed, pick the image you like best.",
        experiment.name,
        names.join(", ")
    );
    let answer = match ask::elicit(context, &format!("judge-{experiment_id}"), message, schema).await {
        Ok(answer) => answer,
        Err(Unanswered::Asked) => return Err(ask::waiting()),
        Err(Unanswered::Refused(refusal)) => return Err(refusal),
    };
    if answer.action != ElicitationAction::Accept {
        return Err(error_text(format!(
            "the person did not answer the form ({:?}); nothing was recorded",
            answer.action
        )));
    }
    let content = answer.content.unwrap_or_default();
    let mut verdicts = Vec::new();
    for seed in &asked {
        let index = seed_index(&definition, *seed)?;
        let Some(choice) = content.get(format!("seed_{seed}")).and_then(Value::as_str) else {
            continue;
        };
        if choice == NO_PREFERENCE {
            if names.len() == 2 {
                verdicts.push((index, Verdict::Tie { first: 0, second: 1 }));
            }
            continue;
        }
        let winner = variant_index(&definition, choice)?;
        // The best of several beat each of the others on this seed.
        verdicts.extend(
            (0..names.len())
                .filter(|loser| *loser != winner)
                .map(|loser| (index, Verdict::Choice { winner, loser })),
        );
    }
    let recorded = server
        .engine
        .judge_experiment(experiment_id, verdicts, PERSON, client_name(context))
        .await
        .map_err(fail)?;
    report_answer(
        server,
        experiment_id,
        None,
        json!({"asked": asked.len(), "recorded": recorded}),
    )
    .await
}

/// The report, with `extra` facts about what this call did.
async fn report_answer(
    server: &ComfyServer,
    experiment_id: &str,
    alpha: Option<f64>,
    extra: Value,
) -> ToolOutcome {
    let report = server
        .engine
        .experiment_report(experiment_id, alpha.unwrap_or(DEFAULT_ALPHA))
        .await
        .map_err(|error| engine_error(&error))?;
    let mut answer = serde_json::to_value(&report).unwrap_or_default();
    if let (Some(answer), Some(extra)) = (answer.as_object_mut(), extra.as_object()) {
        answer.extend(extra.clone());
    }
    Ok(json_result(&answer))
}
