//! Insights from recorded history: a generation-time estimate fitted on past jobs. Execution time is
//! modelled as a line in the work of a job, `steps x megapixels x batch` (sampling dominates and
//! scales with both), fitted by least squares per model and backend, with an approximate 95%
//! prediction range. With too little history the answer says so instead of guessing.

use comfy_store::{JobMetrics, MetricQuery};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::library::library_error;
use super::{Engine, EngineError};

/// The most recent successful jobs an estimate looks at.
const HISTORY_WINDOW: u32 = 500;

/// Fewest samples with different work sizes for a least-squares line with a stated uncertainty.
pub const MINIMUM_SAMPLES_FOR_FIT: usize = 3;

/// How much work a job is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Work {
    pub steps: u32,
    pub width: u32,
    pub height: u32,
    pub batch_size: u32,
}

impl Work {
    /// `steps x megapixels x batch`: the fit's variable.
    pub fn megapixel_steps(&self) -> f64 {
        f64::from(self.steps) * f64::from(self.width) * f64::from(self.height) / 1_000_000.0
            * f64::from(self.batch_size.max(1))
    }
}

/// What to estimate.
#[derive(Debug, Clone)]
pub struct EstimateRequest {
    pub model: Option<String>,
    pub backend: Option<String>,
    pub work: Work,
}

/// A least-squares line `execution = intercept + slope x work`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct LinearFit {
    pub intercept_seconds: f64,
    pub seconds_per_megapixel_step: f64,
    /// Residual standard error of the fit.
    pub residual_seconds: f64,
    /// Share of the variance the line explains, 0 to 1.
    pub r_squared: f64,
    #[serde(skip)]
    samples: usize,
    #[serde(skip)]
    mean_work: f64,
    #[serde(skip)]
    work_spread: f64,
}

impl LinearFit {
    /// The prediction at `work` and the half-width of its approximate 95% prediction interval.
    pub fn predict(&self, work: f64) -> (f64, f64) {
        let predicted = self.intercept_seconds + self.seconds_per_megapixel_step * work;
        let count = self.samples as f64;
        let leverage = 1.0 + 1.0 / count + (work - self.mean_work).powi(2) / self.work_spread;
        let half_width =
            student_t_975(self.samples.saturating_sub(2)) * self.residual_seconds * leverage.sqrt();
        (predicted, half_width)
    }
}

/// The 97.5% quantile of Student's t with `degrees` degrees of freedom (two-sided 95%).
fn student_t_975(degrees: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042,
    ];
    match degrees {
        0 => f64::INFINITY,
        1..=30 => TABLE[degrees - 1],
        31..=60 => 2.0,
        _ => 1.96,
    }
}

/// Least squares of `y` on `x`; `None` with fewer than [`MINIMUM_SAMPLES_FOR_FIT`] points or when
/// every `x` is the same (no slope can be told apart).
pub fn fit_line(points: &[(f64, f64)]) -> Option<LinearFit> {
    let samples = points.len();
    if samples < MINIMUM_SAMPLES_FOR_FIT {
        return None;
    }
    let count = samples as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / count;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / count;
    let spread_x: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let spread_y: f64 = points.iter().map(|(_, y)| (y - mean_y).powi(2)).sum();
    if spread_x <= f64::EPSILON * count * mean_x.abs().max(1.0) {
        return None;
    }
    let covariance: f64 = points.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let slope = covariance / spread_x;
    let intercept = mean_y - slope * mean_x;
    let residual_sum: f64 = points
        .iter()
        .map(|(x, y)| (y - intercept - slope * x).powi(2))
        .sum();
    let residual = (residual_sum / (count - 2.0)).sqrt();
    let r_squared = if spread_y > 0.0 {
        (1.0 - residual_sum / spread_y).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(LinearFit {
        intercept_seconds: intercept,
        seconds_per_megapixel_step: slope,
        residual_seconds: residual,
        r_squared,
        samples,
        mean_work: mean_x,
        work_spread: spread_x,
    })
}

/// The answer of an estimate.
/// What `estimate_generation_time` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TimeEstimate {
    /// The model estimated for (absent: every model pooled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The backend estimated for (absent: every backend pooled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    pub work: Work,
    pub megapixel_steps: f64,
    /// Successful jobs in the history that match the model and backend.
    pub matching_jobs: usize,
    /// Those whose steps and size could be read (the fit's sample count).
    pub samples_used: usize,
    /// `least_squares`, `proportional` (all history has one work size, or too few samples for a
    /// line) or `none` (no usable history).
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_seconds: Option<f64>,
    /// Approximate 95% range of the execution time; absent when it cannot be stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_range_seconds: Option<[f64; 2]>,
    /// Median queue wait and transfer of the same jobs, added to make a typical total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_queue_wait_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_transfer_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<LinearFit>,
    pub note: String,
}

fn positive_integer(value: Option<&Value>) -> Option<u32> {
    value
        .and_then(Value::as_u64)
        .and_then(|number| u32::try_from(number).ok())
        .filter(|number| *number > 0)
}

/// The work of a recorded job: from `generate_image`'s parameters, else read off the API graph
/// (the largest `steps` input, and the width, height and batch of a latent-image node).
pub fn work_of(request: &Value) -> Option<Work> {
    let parameters = request.get("parameters");
    let from_parameters = |key: &str| positive_integer(parameters.and_then(|parameters| parameters.get(key)));
    if let (Some(steps), Some(width), Some(height)) = (
        from_parameters("steps"),
        from_parameters("width"),
        from_parameters("height"),
    ) {
        return Some(Work {
            steps,
            width,
            height,
            batch_size: from_parameters("batch_size").unwrap_or(1),
        });
    }
    let nodes = request.get("prompt")?.as_object()?;
    let inputs = || {
        nodes
            .values()
            .filter_map(|node| Some((node.get("class_type")?.as_str()?, node.get("inputs")?)))
    };
    let steps = inputs()
        .filter_map(|(_, inputs)| positive_integer(inputs.get("steps")))
        .max()?;
    let (width, height, batch_size) = inputs()
        .filter(|(class_type, _)| class_type.contains("Latent"))
        .chain(inputs())
        .find_map(|(_, inputs)| {
            Some((
                positive_integer(inputs.get("width"))?,
                positive_integer(inputs.get("height"))?,
                positive_integer(inputs.get("batch_size")).unwrap_or(1),
            ))
        })?;
    Some(Work {
        steps,
        width,
        height,
        batch_size,
    })
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        f64::midpoint(values[middle - 1], values[middle])
    } else {
        values[middle]
    })
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn seconds(milliseconds: i64) -> f64 {
    milliseconds as f64 / 1000.0
}

/// The estimate from samples already paired with their work (pure, for tests).
pub fn estimate_from(
    request: &EstimateRequest,
    matching: &[JobMetrics],
    points: &[(f64, f64)],
) -> TimeEstimate {
    let work = request.work.megapixel_steps();
    let mut estimate = TimeEstimate {
        model: request.model.clone(),
        backend: request.backend.clone(),
        work: request.work,
        megapixel_steps: round(work, 4),
        matching_jobs: matching.len(),
        samples_used: points.len(),
        method: "none",
        execution_seconds: None,
        execution_range_seconds: None,
        median_queue_wait_seconds: median(
            &mut matching
                .iter()
                .map(|sample| seconds(sample.queue_wait_ms))
                .collect::<Vec<_>>(),
        )
        .map(|value| round(value, 2)),
        median_transfer_seconds: median(
            &mut matching
                .iter()
                .map(|sample| seconds(sample.transfer_ms))
                .collect::<Vec<_>>(),
        )
        .map(|value| round(value, 2)),
        total_seconds: None,
        fit: None,
        note: String::new(),
    };
    let scope = match (&request.model, &request.backend) {
        (Some(model), Some(backend)) => format!("model {model} on backend {backend}"),
        (Some(model), None) => format!("model {model} (all backends)"),
        (None, Some(backend)) => format!("backend {backend} (all models pooled)"),
        (None, None) => "all models and backends pooled".to_owned(),
    };
    if points.is_empty() {
        estimate.note = format!(
            "no usable history for {scope}: {} successful job(s) match, none with readable steps and size; \
             run a few jobs first (the estimate needs at least {MINIMUM_SAMPLES_FOR_FIT} with different steps or sizes)",
            matching.len()
        );
        return estimate;
    }
    let execution = match fit_line(points) {
        Some(fit) => {
            let (predicted, half_width) = fit.predict(work);
            let predicted = predicted.max(0.0);
            estimate.method = "least_squares";
            estimate.execution_range_seconds = half_width.is_finite().then(|| {
                [
                    round((predicted - half_width).max(0.0), 2),
                    round(predicted + half_width, 2),
                ]
            });
            let extrapolated = points.iter().all(|(x, _)| *x < work) || points.iter().all(|(x, _)| *x > work);
            estimate.note = format!(
                "least squares over {} job(s) of {scope}; the range is an approximate 95% prediction interval{}{}",
                points.len(),
                if points.len() < 10 {
                    " (few samples: treat it as rough)"
                } else {
                    ""
                },
                if extrapolated {
                    "; this request is outside the recorded work sizes, so it is extrapolated"
                } else {
                    ""
                }
            );
            estimate.fit = Some(LinearFit {
                intercept_seconds: round(fit.intercept_seconds, 4),
                seconds_per_megapixel_step: round(fit.seconds_per_megapixel_step, 4),
                residual_seconds: round(fit.residual_seconds, 4),
                r_squared: round(fit.r_squared, 4),
                ..fit
            });
            predicted
        }
        None => {
            // Seconds per unit of work, scaled to the request; no line can be fitted.
            let mut rates: Vec<f64> = points
                .iter()
                .filter(|(x, _)| *x > 0.0)
                .map(|(x, y)| y / x)
                .collect();
            let Some(rate) = median(&mut rates) else {
                estimate.note = format!("no usable history for {scope}");
                return estimate;
            };
            estimate.method = "proportional";
            if rates.len() >= MINIMUM_SAMPLES_FOR_FIT {
                let low = rates.first().copied().unwrap_or(rate);
                let high = rates.last().copied().unwrap_or(rate);
                estimate.execution_range_seconds = Some([round(low * work, 2), round(high * work, 2)]);
            }
            estimate.note = format!(
                "too little history for a fitted line ({} usable job(s) of {scope}{}): the estimate scales the median \
                 seconds per megapixel-step proportionally{}; it becomes a least-squares fit with an uncertainty once at \
                 least {MINIMUM_SAMPLES_FOR_FIT} jobs with different steps or sizes are recorded",
                points.len(),
                if points.len() >= MINIMUM_SAMPLES_FOR_FIT {
                    ", all of one work size"
                } else {
                    ""
                },
                if estimate.execution_range_seconds.is_some() {
                    " and the range spans the fastest to the slowest recorded rate"
                } else {
                    " and no uncertainty can be stated"
                }
            );
            rate * work
        }
    };
    estimate.execution_seconds = Some(round(execution, 2));
    estimate.total_seconds = Some(round(
        execution
            + estimate.median_queue_wait_seconds.unwrap_or(0.0)
            + estimate.median_transfer_seconds.unwrap_or(0.0),
        2,
    ));
    estimate
}

impl Engine {
    /// Estimates a generation's time from the recorded history of successful jobs.
    pub async fn estimate_generation_time(
        &self,
        request: EstimateRequest,
    ) -> Result<TimeEstimate, EngineError> {
        if let Some(backend) = &request.backend {
            self.pick_backend(Some(backend))?;
        }
        let matching = self
            .store
            .metric_samples(MetricQuery {
                model: request.model.clone(),
                backend_id: request.backend.clone(),
                succeeded: Some(true),
                limit: Some(HISTORY_WINDOW),
                ..MetricQuery::default()
            })
            .await
            .map_err(library_error)?;
        let mut points = Vec::with_capacity(matching.len());
        for sample in &matching {
            let Ok(job) = self.store.get_job(&sample.job_id).await else {
                continue;
            };
            if let Some(work) = work_of(&job.request) {
                points.push((work.megapixel_steps(), seconds(sample.execution_ms)));
            }
        }
        Ok(estimate_from(&request, &matching, &points))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(steps: u32) -> EstimateRequest {
        EstimateRequest {
            model: Some("m".to_owned()),
            backend: None,
            work: Work {
                steps,
                width: 1000,
                height: 1000,
                batch_size: 1,
            },
        }
    }

    fn sample(execution_ms: i64) -> JobMetrics {
        JobMetrics {
            job_id: "j".to_owned(),
            workflow: None,
            model: Some("m".to_owned()),
            backend_id: None,
            succeeded: true,
            queue_wait_ms: 100,
            execution_ms,
            transfer_ms: 50,
            total_ms: execution_ms + 150,
            recorded_at_ms: 0,
        }
    }

    #[test]
    fn a_perfect_line_is_recovered() {
        let fit = fit_line(&[(1.0, 3.0), (2.0, 5.0), (3.0, 7.0), (4.0, 9.0)]).unwrap();
        assert!((fit.seconds_per_megapixel_step - 2.0).abs() < 1e-9);
        assert!((fit.intercept_seconds - 1.0).abs() < 1e-9);
        assert!(fit.residual_seconds < 1e-9);
        assert!((fit.r_squared - 1.0).abs() < 1e-9);
        let (predicted, half_width) = fit.predict(10.0);
        assert!((predicted - 21.0).abs() < 1e-9);
        assert!(half_width < 1e-6);
    }

    #[test]
    fn noisy_history_has_an_uncertainty_that_shrinks_with_samples() {
        let noisy = |count: usize| -> Vec<(f64, f64)> {
            (0..count)
                .map(|index| {
                    let x = (index % 5 + 1) as f64;
                    let noise = if index % 2 == 0 { 0.3 } else { -0.3 };
                    (x, 0.5 + 2.0 * x + noise)
                })
                .collect()
        };
        let few = fit_line(&noisy(5)).unwrap().predict(3.0).1;
        let many = fit_line(&noisy(50)).unwrap().predict(3.0).1;
        assert!(few > many && many > 0.0, "{few} {many}");
    }

    #[test]
    fn too_little_history_is_said_plainly() {
        assert!(fit_line(&[(1.0, 1.0), (2.0, 2.0)]).is_none());
        assert!(fit_line(&[(2.0, 1.0), (2.0, 1.2), (2.0, 0.9)]).is_none());
        let empty = estimate_from(&request(20), &[], &[]);
        assert_eq!(empty.method, "none");
        assert!(empty.execution_seconds.is_none());
        assert!(empty.note.contains("no usable history"), "{}", empty.note);
        let single = estimate_from(&request(20), &[sample(10_000)], &[(10.0, 10.0)]);
        assert_eq!(single.method, "proportional");
        assert_eq!(single.execution_seconds, Some(20.0));
        assert!(single.execution_range_seconds.is_none());
        assert!(single.note.contains("too little history"), "{}", single.note);
        assert_eq!(single.total_seconds, Some(20.15));
    }

    #[test]
    fn a_fitted_estimate_reports_samples_and_range() {
        let samples: Vec<JobMetrics> = [2_000, 4_100, 5_900, 8_000].into_iter().map(sample).collect();
        let points = [(2.0, 2.0), (4.0, 4.1), (6.0, 5.9), (8.0, 8.0)];
        let estimate = estimate_from(&request(5), &samples, &points);
        assert_eq!(estimate.method, "least_squares");
        assert_eq!(estimate.samples_used, 4);
        let execution = estimate.execution_seconds.unwrap();
        assert!((execution - 5.0).abs() < 0.2, "{execution}");
        let [low, high] = estimate.execution_range_seconds.unwrap();
        assert!(low < execution && execution < high);
    }

    #[test]
    fn work_is_read_from_parameters_or_the_graph() {
        let generated = json!({"parameters": {"steps": 4, "width": 64, "height": 64, "batch_size": 2}});
        assert_eq!(
            work_of(&generated),
            Some(Work {
                steps: 4,
                width: 64,
                height: 64,
                batch_size: 2
            })
        );
        let workflow = json!({"parameters": {"3.seed": 1}, "prompt": {
            "3": {"class_type": "KSampler", "inputs": {"steps": 12, "seed": 1}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
            "9": {"class_type": "ImageScale", "inputs": {"width": 1024, "height": 1024}},
        }});
        let work = work_of(&workflow).unwrap();
        assert_eq!((work.steps, work.width, work.height), (12, 512, 768));
        assert!(work_of(&json!({"prompt": {"1": {"class_type": "LoadImage", "inputs": {}}}})).is_none());
        assert!(work_of(&json!("garbage")).is_none());
    }
}
