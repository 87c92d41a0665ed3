//! Experiments: an n-way test of generation variants over the same seeds. The store keeps the
//! engine's definition as it was given, which job ran each variant on each seed, and every
//! judgement (a person's choice, tie or rating, or an automatic measure's score), checked against
//! the experiment's variant and seed counts so a verdict never rests on a judgement of nothing.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::now_ms;
use crate::error::{StoreError, invalid};
use crate::presets::clean_name;
use crate::store::Store;

/// Most judgements one call adds.
const MAXIMUM_JUDGEMENTS_AT_ONCE: usize = 1_000;

/// An experiment to create.
#[derive(Debug, Clone)]
pub struct NewExperiment {
    pub id: String,
    pub name: String,
    /// The engine's description of it (base request, variants, seeds).
    pub definition: Value,
    pub variants: usize,
    pub seeds: usize,
    pub client: Option<String>,
}

/// One variant's run on one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub variant: usize,
    pub seed_index: usize,
    /// The job that ran it (also its outputs' job in the library).
    pub job_id: Option<String>,
    /// Why it was not queued.
    pub error: Option<String>,
}

/// What a judgement says about one seed's trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    Choice { winner: usize, loser: usize },
    Tie { first: usize, second: usize },
    Rating { variant: usize, score: f64 },
}

/// A judgement, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub seed_index: usize,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// `person`, or the automatic measure that scored it.
    pub source: String,
    pub client: Option<String>,
    pub created_at_ms: i64,
}

/// An experiment with its trials and judgements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    pub definition: Value,
    pub variants: usize,
    pub seeds: usize,
    pub client: Option<String>,
    pub created_at_ms: i64,
    pub trials: Vec<Trial>,
    pub judgements: Vec<Judgement>,
}

/// One line of the experiment list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentSummary {
    pub id: String,
    pub name: String,
    pub variants: usize,
    pub seeds: usize,
    pub judgements: usize,
    pub created_at_ms: i64,
}

fn to_sql(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> usize {
    usize::try_from(value).unwrap_or_default()
}

/// The experiment's counts, or `ExperimentNotFound`.
fn counts(transaction: &Transaction<'_>, id: &str) -> Result<(usize, usize), StoreError> {
    transaction
        .query_row(
            "SELECT variant_count, seed_count FROM experiments WHERE id = ?1",
            [id],
            |row| Ok((from_sql(row.get(0)?), from_sql(row.get(1)?))),
        )
        .optional()?
        .ok_or_else(|| StoreError::ExperimentNotFound { id: id.to_owned() })
}

/// Refuses a judgement that names a variant or seed the experiment does not have, compares a
/// variant with itself, or scores with a number that is not finite.
fn check_judgement(judgement: &Judgement, variants: usize, seeds: usize) -> Result<(), StoreError> {
    if judgement.seed_index >= seeds {
        return Err(invalid(
            "seed",
            format!(
                "seed number {} is not one of this experiment's {seeds}",
                judgement.seed_index + 1
            ),
        ));
    }
    let (first, second) = match judgement.verdict {
        Verdict::Choice { winner, loser } => (winner, Some(loser)),
        Verdict::Tie { first, second } => (first, Some(second)),
        Verdict::Rating { variant, score } => {
            if !score.is_finite() {
                return Err(invalid("score", "must be a finite number"));
            }
            (variant, None)
        }
    };
    for variant in std::iter::once(first).chain(second) {
        if variant >= variants {
            return Err(invalid(
                "variant",
                format!(
                    "variant number {} is not one of this experiment's {variants}",
                    variant + 1
                ),
            ));
        }
    }
    if second == Some(first) {
        return Err(invalid("variant", "a choice compares two different variants"));
    }
    clean_name("source", &judgement.source)?;
    Ok(())
}

impl Store {
    /// Records a new experiment (no trials, no judgements yet).
    pub async fn create_experiment(&self, experiment: NewExperiment) -> Result<Experiment, StoreError> {
        let name = clean_name("name", &experiment.name)?;
        if experiment.variants < 2 || experiment.seeds < 1 {
            return Err(invalid(
                "variants",
                "an experiment has at least two variants and one seed",
            ));
        }
        let definition = serde_json::to_string(&experiment.definition).unwrap_or_else(|_| "{}".to_owned());
        let id = experiment.id.clone();
        self.write(move |transaction| {
            transaction.execute(
                "INSERT INTO experiments (id, name, definition, variant_count, seed_count, client, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    experiment.id,
                    name,
                    definition,
                    to_sql(experiment.variants),
                    to_sql(experiment.seeds),
                    experiment.client,
                    now_ms()
                ],
            )?;
            Ok(())
        })
        .await?;
        self.get_experiment(&id).await
    }

    /// Records which job ran a variant on a seed (or why none did), replacing what was there.
    pub async fn record_trial(&self, id: &str, trial: Trial) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |transaction| {
            let (variants, seeds) = counts(transaction, &id)?;
            if trial.variant >= variants || trial.seed_index >= seeds {
                return Err(invalid(
                    "trial",
                    "names a variant or seed the experiment does not have",
                ));
            }
            transaction.execute(
                "INSERT INTO experiment_trials (experiment_id, variant, seed_index, job_id, error)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (experiment_id, variant, seed_index)
                 DO UPDATE SET job_id = excluded.job_id, error = excluded.error",
                params![
                    id,
                    to_sql(trial.variant),
                    to_sql(trial.seed_index),
                    trial.job_id,
                    trial.error
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Adds judgements, all or none: one that does not fit the experiment refuses the lot.
    pub async fn add_judgements(&self, id: &str, judgements: Vec<Judgement>) -> Result<usize, StoreError> {
        if judgements.len() > MAXIMUM_JUDGEMENTS_AT_ONCE {
            return Err(invalid(
                "judgements",
                format!("at most {MAXIMUM_JUDGEMENTS_AT_ONCE} at once"),
            ));
        }
        let id = id.to_owned();
        self.write(move |transaction| {
            let (variants, seeds) = counts(transaction, &id)?;
            for judgement in &judgements {
                check_judgement(judgement, variants, seeds)?;
            }
            let mut statement = transaction.prepare(
                "INSERT INTO experiment_judgements
                 (experiment_id, seed_index, kind, first, second, score, source, client, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let now = now_ms();
            for judgement in &judgements {
                let (kind, first, second, score) = match judgement.verdict {
                    Verdict::Choice { winner, loser } => ("choice", winner, Some(loser), None),
                    Verdict::Tie { first, second } => ("tie", first, Some(second), None),
                    Verdict::Rating { variant, score } => ("rating", variant, None, Some(score)),
                };
                statement.execute(params![
                    id,
                    to_sql(judgement.seed_index),
                    kind,
                    to_sql(first),
                    second.map(to_sql),
                    score,
                    judgement.source.trim(),
                    judgement.client,
                    now
                ])?;
            }
            Ok(judgements.len())
        })
        .await
    }

    /// Removes the judgements of `source` (an automatic measure about to be taken again).
    pub async fn clear_judgements(&self, id: &str, source: &str) -> Result<usize, StoreError> {
        let (id, source) = (id.to_owned(), source.to_owned());
        self.write(move |transaction| {
            counts(transaction, &id)?;
            Ok(transaction.execute(
                "DELETE FROM experiment_judgements WHERE experiment_id = ?1 AND source = ?2",
                params![id, source],
            )?)
        })
        .await
    }

    /// The experiment `id` with its trials and judgements (oldest first).
    pub async fn get_experiment(&self, id: &str) -> Result<Experiment, StoreError> {
        let id = id.to_owned();
        self.read(move |transaction| read_experiment(transaction, &id))
            .await
    }

    /// The newest experiments first.
    pub async fn list_experiments(&self, limit: usize) -> Result<Vec<ExperimentSummary>, StoreError> {
        let limit = to_sql(limit.clamp(1, 1_000));
        self.read(move |transaction| {
            let mut statement = transaction.prepare(
                "SELECT id, name, variant_count, seed_count, created_at,
                 (SELECT COUNT(*) FROM experiment_judgements WHERE experiment_id = experiments.id)
                 FROM experiments ORDER BY created_at DESC, id LIMIT ?1",
            )?;
            let rows = statement.query_map([limit], |row| {
                Ok(ExperimentSummary {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    variants: from_sql(row.get(2)?),
                    seeds: from_sql(row.get(3)?),
                    created_at_ms: row.get(4)?,
                    judgements: from_sql(row.get(5)?),
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>().map_err(StoreError::from)
        })
        .await
    }

    /// Deletes an experiment with its trials and judgements; whether there was one.
    pub async fn delete_experiment(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |transaction| {
            Ok(transaction.execute("DELETE FROM experiments WHERE id = ?1", [id])? > 0)
        })
        .await
    }
}

fn read_experiment(transaction: &Transaction<'_>, id: &str) -> Result<Experiment, StoreError> {
    let header = transaction
        .query_row(
            "SELECT name, definition, variant_count, seed_count, client, created_at FROM experiments WHERE id = ?1",
            [id],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    from_sql(row.get(2)?),
                    from_sql(row.get(3)?),
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| StoreError::ExperimentNotFound { id: id.to_owned() })?;
    let (name, definition, variants, seeds, client, created_at_ms) = header;
    let definition = serde_json::from_str(&definition).map_err(|source| StoreError::StoredJson {
        what: "experiment",
        id: id.to_owned(),
        source,
    })?;
    let mut statement = transaction.prepare(
        "SELECT variant, seed_index, job_id, error FROM experiment_trials
         WHERE experiment_id = ?1 ORDER BY seed_index, variant",
    )?;
    let trials = statement
        .query_map([id], |row| {
            Ok(Trial {
                variant: from_sql(row.get(0)?),
                seed_index: from_sql(row.get(1)?),
                job_id: row.get(2)?,
                error: row.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut statement = transaction.prepare(
        "SELECT seed_index, kind, first, second, score, source, client, created_at
         FROM experiment_judgements WHERE experiment_id = ?1 ORDER BY id",
    )?;
    let judgements = statement
        .query_map([id], judgement_of_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Experiment {
        id: id.to_owned(),
        name,
        definition,
        variants,
        seeds,
        client,
        created_at_ms,
        trials,
        judgements,
    })
}

fn judgement_of_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Judgement> {
    let kind: String = row.get(1)?;
    let first = from_sql(row.get(2)?);
    let second = row.get::<_, Option<i64>>(3)?.map(from_sql).unwrap_or_default();
    let verdict = match kind.as_str() {
        "choice" => Verdict::Choice {
            winner: first,
            loser: second,
        },
        "tie" => Verdict::Tie { first, second },
        _ => Verdict::Rating {
            variant: first,
            score: row.get::<_, Option<f64>>(4)?.unwrap_or_default(),
        },
    };
    Ok(Judgement {
        seed_index: from_sql(row.get(0)?),
        verdict,
        source: row.get(5)?,
        client: row.get(6)?,
        created_at_ms: row.get(7)?,
    })
}
