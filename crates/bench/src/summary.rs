//! Turns the measurements into what the bench prints: a few lines on the conditions (machine
//! load, run counts, the job), the results beside their targets, and where the time goes.

use crate::measure::{FirstCall, Measurements, PairedRun, Probed, ProbedRun, WARMUP_SPAWNS};
use crate::report::{Table, Verdict, kilobytes, mebibytes, milliseconds, signed_milliseconds};
use crate::statistics::{median, percentile, range};
use crate::workload;

/// Targets printed beside the figures; missing one is reported, never an error.
pub const INITIALIZE_TARGET_MILLISECONDS: f64 = 20.0;
pub const RESIDENT_TARGET_MEBIBYTES: f64 = 15.0;
pub const OVERHEAD_TARGET_MILLISECONDS: f64 = 20.0;
pub const RATIO_TARGET: f64 = 1.05;

/// What the report needs beyond the measurements themselves.
#[derive(Debug, Clone)]
pub struct Conditions {
    pub comfyui_url: String,
    /// How the ComfyUI came to be: a private rig instance or one given by the user.
    pub comfyui_origin: String,
    pub server_binary: String,
    pub processors: usize,
    pub load_before: String,
    pub load_after: String,
}

/// Everything to print, in both forms.
#[derive(Debug)]
pub struct Summary {
    pub conditions: Vec<(String, String)>,
    pub results: Table,
    pub breakdown: Table,
    /// The diagnostic runs through the timing proxy, when there were any: a warm call, and the
    /// first call of a fresh process.
    pub inside: Option<Table>,
    pub inside_first: Option<Table>,
    pub notes: Vec<String>,
}

impl Summary {
    pub fn plain(&self) -> String {
        let mut text = String::from("comfyui-mcp benchmark\n");
        let width = self
            .conditions
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, value) in &self.conditions {
            text.push_str(&format!("  {name:<width$}  {value}\n"));
        }
        text.push('\n');
        text.push_str(&self.results.plain());
        text.push('\n');
        text.push_str(&self.breakdown.plain());
        for inside in self.inside.iter().chain(&self.inside_first) {
            text.push('\n');
            text.push_str(&inside.plain());
        }
        for note in &self.notes {
            text.push_str(&format!("\nnote: {note}"));
        }
        if !self.notes.is_empty() {
            text.push('\n');
        }
        text
    }

    pub fn markdown(&self) -> String {
        let mut text = String::new();
        for (name, value) in &self.conditions {
            text.push_str(&format!("- **{name}**: {value}\n"));
        }
        text.push('\n');
        text.push_str(&self.results.markdown());
        text.push('\n');
        text.push_str(&self.breakdown.markdown());
        for inside in self.inside.iter().chain(&self.inside_first) {
            text.push('\n');
            text.push_str(&inside.markdown());
        }
        for note in &self.notes {
            text.push_str(&format!("\n> {note}\n"));
        }
        text
    }
}

/// One segment of a paired run's timeline: (direct, through the server), in milliseconds.
type Segment = fn(&PairedRun) -> (f64, f64);
/// When a diagnostic run passed one step (wall-clock milliseconds), if it was seen.
type Step = fn(&ProbedRun) -> Option<f64>;

fn column(pairs: &[PairedRun], value: impl Fn(&PairedRun) -> f64) -> Vec<f64> {
    pairs.iter().map(value).collect()
}

fn median_text(values: &[f64]) -> String {
    median(values).map_or_else(|| "n/a".to_owned(), milliseconds)
}

/// One row for paired overheads in milliseconds: their median and range, against the overhead
/// target.
fn push_overhead(results: &mut Table, label: &str, overheads: &[f64]) {
    let overhead_median = median(overheads);
    results.push_measure(
        label,
        format!(
            "median {}{}",
            overhead_median.map_or_else(|| "n/a".to_owned(), signed_milliseconds),
            range(overheads).map_or_else(String::new, |(low, high)| format!(
                " (from {} to {})",
                signed_milliseconds(low),
                signed_milliseconds(high)
            ))
        ),
        &format!("<= {OVERHEAD_TARGET_MILLISECONDS:.0} ms"),
        Verdict::from_check(overhead_median.is_some_and(|value| value <= OVERHEAD_TARGET_MILLISECONDS)),
    );
}

/// One row for a first-call measure: the paired overhead and ratio, against the overhead target
/// (what a user feels is the first call of each session).
fn push_first_calls(results: &mut Table, label: &str, calls: &[FirstCall]) {
    let overheads: Vec<f64> = calls.iter().map(|call| call.server - call.direct).collect();
    let ratios: Vec<f64> = calls.iter().map(|call| call.server / call.direct).collect();
    let overhead = median(&overheads);
    results.push_measure(
        label,
        format!(
            "median {} (x{}; direct {}, server {})",
            overhead.map_or_else(|| "n/a".to_owned(), signed_milliseconds),
            median(&ratios).map_or_else(|| "n/a".to_owned(), |ratio| format!("{ratio:.3}")),
            median_text(&calls.iter().map(|call| call.direct).collect::<Vec<_>>()),
            median_text(&calls.iter().map(|call| call.server).collect::<Vec<_>>()),
        ),
        &format!("<= {OVERHEAD_TARGET_MILLISECONDS:.0} ms"),
        Verdict::from_check(overhead.is_some_and(|value| value <= OVERHEAD_TARGET_MILLISECONDS)),
    );
    let outside: Vec<f64> = calls.iter().map(|call| call.outside_execution).collect();
    push_overhead(
        results,
        &format!("{label}, outside ComfyUI's execution"),
        &outside,
    );
}

pub fn summarize(measurements: &Measurements, conditions: &Conditions) -> Summary {
    let pairs = &measurements.pairs;
    let spawns = measurements.initialize_milliseconds.len();
    let direct_first = pairs.iter().filter(|pair| pair.direct_first).count();
    let condition_lines = vec![
        (
            "server".to_owned(),
            format!(
                "{} at {}, spawned as `comfyui-mcp serve` (stdio), driven by rmcp's client",
                measurements.server_description, conditions.server_binary
            ),
        ),
        (
            "ComfyUI".to_owned(),
            format!(
                "{} at {} ({})",
                measurements.comfyui_version, conditions.comfyui_url, conditions.comfyui_origin
            ),
        ),
        (
            "machine".to_owned(),
            format!(
                "{} CPUs; load average (1, 5, 15 min) {} before, {} after",
                conditions.processors, conditions.load_before, conditions.load_after
            ),
        ),
        (
            "runs".to_owned(),
            format!(
                "{spawns} spawns (after {WARMUP_SPAWNS} unmeasured); {} paired txt2img runs after {} warm-up pairs, {direct_first} with the direct path first and {} with the server first",
                pairs.len(),
                measurements.warmup_pairs,
                pairs.len() - direct_first
            ),
        ),
        (
            "job".to_owned(),
            format!(
                "txt2img {side}x{side}, {} steps, seed {}, {}, a new prompt text every run; the direct path posts the graph of comfy_workflow's TextToImage builder, which generate_image uses",
                workload::STEPS,
                workload::SEED,
                workload::CHECKPOINT,
                side = workload::SIDE
            ),
        ),
    ];

    let mut results = Table::new(&["measure", "value", "target", "met"]);
    let initialize = &measurements.initialize_milliseconds;
    let initialize_median = median(initialize);
    results.push_measure(
        "spawn -> initialize",
        format!(
            "median {}, p95 {} ({spawns} spawns)",
            median_text(initialize),
            percentile(initialize, 0.95).map_or_else(|| "n/a".to_owned(), milliseconds)
        ),
        &format!("<= {INITIALIZE_TARGET_MILLISECONDS:.0} ms"),
        Verdict::from_check(initialize_median.is_some_and(|value| value <= INITIALIZE_TARGET_MILLISECONDS)),
    );
    results.push_measure(
        "tools/list, default toolsets",
        format!(
            "{} tools, {}",
            measurements.default_tools.names.len(),
            kilobytes(measurements.default_tools.bytes)
        ),
        "",
        Verdict::NoTarget,
    );
    let all_tools = if measurements.all_tools == measurements.default_tools {
        "same as the default".to_owned()
    } else {
        format!(
            "{} tools, {}",
            measurements.all_tools.names.len(),
            kilobytes(measurements.all_tools.bytes)
        )
    };
    results.push_measure("tools/list, --toolsets all", all_tools, "", Verdict::NoTarget);
    let resident_median = median(&measurements.resident_bytes);
    results.push_measure(
        "RSS after initialize",
        format!(
            "median {} ({spawns} spawns)",
            resident_median.map_or_else(|| "n/a".to_owned(), mebibytes)
        ),
        &format!("<= {RESIDENT_TARGET_MEBIBYTES:.0} MiB"),
        Verdict::from_check(
            resident_median.is_some_and(|bytes| bytes <= RESIDENT_TARGET_MEBIBYTES * 1024.0 * 1024.0),
        ),
    );
    let direct_times = column(pairs, |pair| pair.direct.elapsed.as_secs_f64() * 1000.0);
    let server_times = column(pairs, |pair| pair.server.timed.elapsed.as_secs_f64() * 1000.0);
    let overheads: Vec<f64> = server_times
        .iter()
        .zip(&direct_times)
        .map(|(server, direct)| server - direct)
        .collect();
    let ratios: Vec<f64> = server_times
        .iter()
        .zip(&direct_times)
        .map(|(server, direct)| server / direct)
        .collect();
    results.push_measure(
        "txt2img direct to ComfyUI",
        format!("median {}", median_text(&direct_times)),
        "",
        Verdict::NoTarget,
    );
    results.push_measure(
        "txt2img through comfyui-mcp",
        format!("median {}", median_text(&server_times)),
        "",
        Verdict::NoTarget,
    );
    push_overhead(&mut results, "overhead (server - direct, paired)", &overheads);
    let outside: Vec<f64> = column(pairs, |pair| {
        let server = pair.server_timeline.before_execution + pair.server_timeline.after_execution;
        let direct = pair.direct_timeline.before_execution + pair.direct_timeline.after_execution;
        server - direct
    });
    push_overhead(
        &mut results,
        "overhead outside ComfyUI's execution (paired)",
        &outside,
    );
    push_first_calls(
        &mut results,
        "first call in a fresh process, definitions on disk",
        &measurements.first_calls,
    );
    push_first_calls(
        &mut results,
        "first call in a fresh process, no disk cache",
        &measurements.first_calls_without_cache,
    );
    let ratio_median = median(&ratios);
    results.push_measure(
        "ratio (server / direct, paired)",
        format!(
            "median x{}{}",
            ratio_median.map_or_else(|| "n/a".to_owned(), |ratio| format!("{ratio:.3}")),
            range(&ratios).map_or_else(String::new, |(low, high)| format!(
                " (from x{low:.3} to x{high:.3})"
            ))
        ),
        &format!("<= x{RATIO_TARGET:.2}"),
        Verdict::from_check(ratio_median.is_some_and(|value| value <= RATIO_TARGET)),
    );
    results.push_measure(
        "same graph on both paths",
        format!(
            "{} of {} server runs (checked in ComfyUI's history)",
            measurements.identical_graphs,
            pairs.len()
        ),
        "all",
        Verdict::from_check(measurements.identical_graphs == pairs.len()),
    );
    if let (Some(current), Some(peak)) = (
        measurements.session_resident_bytes,
        measurements.session_peak_resident_bytes,
    ) {
        results.push_measure(
            "server RSS after the txt2img runs",
            format!("{} (peak {})", mebibytes(current as f64), mebibytes(peak as f64)),
            "",
            Verdict::NoTarget,
        );
    }

    let mut breakdown = Table::new(&[
        "where the time goes (medians of the measured pairs)",
        "direct",
        "through comfyui-mcp",
        "difference",
    ]);
    let segments: [(&str, Segment); 4] = [
        ("sent -> ComfyUI starts executing", |pair| {
            (
                pair.direct_timeline.before_execution,
                pair.server_timeline.before_execution,
            )
        }),
        ("ComfyUI executing (its own timestamps)", |pair| {
            (pair.direct_timeline.execution, pair.server_timeline.execution)
        }),
        ("ComfyUI done -> result in the client", |pair| {
            (
                pair.direct_timeline.after_execution,
                pair.server_timeline.after_execution,
            )
        }),
        ("total", |pair| {
            (
                pair.direct.elapsed.as_secs_f64() * 1000.0,
                pair.server.timed.elapsed.as_secs_f64() * 1000.0,
            )
        }),
    ];
    for (name, segment) in segments {
        let direct = column(pairs, |pair| segment(pair).0);
        let server = column(pairs, |pair| segment(pair).1);
        let differences = column(pairs, |pair| {
            let (direct, server) = segment(pair);
            server - direct
        });
        breakdown.push(vec![
            name.to_owned(),
            median_text(&direct),
            median_text(&server),
            median(&differences).map_or_else(|| "n/a".to_owned(), signed_milliseconds),
        ]);
    }
    let inside: Vec<f64> = pairs
        .iter()
        .filter_map(|pair| {
            pair.server
                .inside_server
                .map(|inside| inside.as_secs_f64() * 1000.0)
        })
        .collect();
    let transport: Vec<f64> = pairs
        .iter()
        .filter_map(|pair| {
            pair.server
                .inside_server
                .map(|inside| (pair.server.timed.elapsed.as_secs_f64() - inside.as_secs_f64()) * 1000.0)
        })
        .collect();
    breakdown.push(vec![
        "  of which inside comfyui-mcp (its `tool call` log, whole ms)".to_owned(),
        String::new(),
        median_text(&inside),
        String::new(),
    ]);
    breakdown.push(vec![
        "  of which stdio and rmcp client (total - inside)".to_owned(),
        String::new(),
        median_text(&transport),
        String::new(),
    ]);
    let views: Vec<f64> = pairs
        .iter()
        .filter_map(|pair| pair.view_time.map(|view| view.as_secs_f64() * 1000.0))
        .collect();
    breakdown.push(vec![
        "GET /view of the image for the preview (timed apart)".to_owned(),
        String::new(),
        median_text(&views),
        String::new(),
    ]);
    let result_bytes: Vec<f64> = pairs.iter().map(|pair| pair.server.result_bytes as f64).collect();
    breakdown.push(vec![
        "tool result size (summary, inline preview, link)".to_owned(),
        String::new(),
        median(&result_bytes).map_or_else(|| "n/a".to_owned(), |bytes| kilobytes(bytes as usize)),
        String::new(),
    ]);

    let mut notes = vec![
        "overhead outside ComfyUI's execution = (sent -> execution starts) + (execution ends -> result in the client), server minus direct, per pair: the end-to-end overhead without the run-to-run jitter of ComfyUI's own execution time.".to_owned(),
        "medians do not add up: each row is the median of its own column. ComfyUI's timestamps are whole milliseconds of its wall clock, compared with the bench's wall clock on the same machine.".to_owned(),
    ];
    let mut inside_first = None;
    let inside = match &measurements.probed {
        Ok(Probed { warm: probed, first }) if !probed.is_empty() => {
            if let Some(run) = first.first() {
                notes.push(format!(
                    "requests a fresh server made to ComfyUI during its first call (first of the first-call diagnostics): {}",
                    request_list(run)
                ));
            }
            if !first.is_empty() {
                inside_first = Some(inside_table(
                    first,
                    &format!(
                        "inside the first generate_image of a fresh process ({} fresh servers through a timing proxy, definitions on disk)",
                        first.len()
                    ),
                ));
            }
            if let Some(first) = probed.first() {
                notes.push(format!(
                    "requests the server made to ComfyUI in the first diagnostic run (time after tools/call was sent; later ones come from work after the answer): {}",
                    request_list(first)
                ));
            }
            Some(inside_table(
                probed,
                &format!(
                    "inside one generate_image call ({} runs through a timing proxy)",
                    probed.len()
                ),
            ))
        }
        Ok(_) => None,
        Err(reason) => {
            notes.push(reason.clone());
            None
        }
    };
    if !measurements.graph_differences.is_empty() {
        notes.push(format!(
            "the server's graph differed from the direct one: {}",
            measurements.graph_differences.join("; ")
        ));
    }
    if let Some(parameters) = pairs.first().map(|pair| &pair.server.parameters) {
        notes.push(format!("generate_image reported these parameters: {parameters}"));
    }
    Summary {
        conditions: condition_lines,
        results,
        breakdown,
        inside,
        inside_first,
        notes,
    }
}

/// A run's requests to ComfyUI with their times after tools/call was sent.
fn request_list(run: &ProbedRun) -> String {
    let requests: Vec<String> = run
        .requests
        .iter()
        .map(|(offset, request)| format!("{} {}", signed_milliseconds(*offset), shorten_ids(request)))
        .collect();
    requests.join(", ")
}

/// Prompt ids in request paths replaced by `<id>`, so paths read the same across runs.
fn shorten_ids(request: &str) -> String {
    match request.split_once("/history/") {
        Some((head, _)) => format!("{head}/history/<id>"),
        None => request.to_owned(),
    }
}

/// One generate_image call step by step, from the diagnostic runs through the timing proxy.
fn inside_table(probed: &[ProbedRun], title: &str) -> Table {
    let steps: [(&str, Step); 9] = [
        ("tools/call sent by the client", |run| Some(run.sent)),
        ("server sends POST /prompt", |run| run.prompt_posted),
        ("ComfyUI starts executing", |run| run.execution_started),
        ("ComfyUI finishes executing (execution_success)", |run| {
            run.execution_succeeded
        }),
        ("end-of-prompt frame passes toward the server", |run| {
            run.end_frame
        }),
        ("server requests GET /history/<id>", |run| run.history_requested),
        ("server requests GET /view", |run| run.view_requested),
        ("server logs the end of the tool call", |run| run.tool_call_logged),
        ("client holds the result", |run| Some(run.done)),
    ];
    let mut table = Table::new(&[
        title,
        "median since the step before",
        "median since ComfyUI finished",
    ]);
    let mut previous: Option<Step> = None;
    for (name, step) in steps {
        let since_previous: Vec<f64> = match previous {
            Some(previous) => probed
                .iter()
                .filter_map(|run| Some(step(run)? - previous(run)?))
                .collect(),
            None => Vec::new(),
        };
        let since_finished: Vec<f64> = probed
            .iter()
            .filter_map(|run| Some(step(run)? - run.execution_succeeded?))
            .collect();
        let seen = probed.iter().filter(|run| step(run).is_some()).count();
        let label = if seen == probed.len() {
            name.to_owned()
        } else {
            format!("{name} (seen in {seen} of {} runs)", probed.len())
        };
        table.push(vec![
            label,
            median(&since_previous).map_or_else(String::new, signed_milliseconds),
            median(&since_finished).map_or_else(String::new, signed_milliseconds),
        ]);
        previous = Some(step);
    }
    table
}
