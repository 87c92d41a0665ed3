//! The measurements, in the order they run: server spawns (initialize time, memory, tool list)
//! while ComfyUI is idle, then paired txt2img runs, direct and through the server, alternating
//! which goes first so that neither path always meets a freshly idle (or freshly busy) ComfyUI.

use std::time::Duration;

use anyhow::Context as _;

use crate::direct::{self, DirectClient, TimedRun, Timeline};
use crate::probe::{Event, Sighting, TimingProxy};
use crate::server::{GenerateRun, ServerCommand, ServerSession, ToolList, process_memory_bytes};
use crate::workload;

/// How much to measure.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Measured spawns, and measured txt2img pairs.
    pub runs: usize,
    /// Unmeasured txt2img pairs before the measured ones.
    pub warmup_pairs: usize,
}

/// Unmeasured spawns first: they bring the binary into the page cache.
pub const WARMUP_SPAWNS: usize = 1;
/// Most diagnostic runs through the timing proxy.
pub const PROBED_RUNS: usize = 5;
/// Work the server does after answering (indexing outputs) shows up within this time; each
/// diagnostic run waits it out so that the next one starts clean.
const AFTER_ANSWER: Duration = Duration::from_millis(300);

/// One diagnostic `generate_image` run through the timing proxy: the wall-clock instants
/// (milliseconds) at which it passed each step, where they could be seen.
#[derive(Debug, Clone)]
pub struct ProbedRun {
    pub sent: f64,
    /// The server's `POST /prompt` reached the proxy.
    pub prompt_posted: Option<f64>,
    /// ComfyUI's own `execution_start` and `execution_success` timestamps.
    pub execution_started: Option<f64>,
    pub execution_succeeded: Option<f64>,
    /// ComfyUI's end-of-prompt websocket frame reached the proxy on its way to the server.
    pub end_frame: Option<f64>,
    /// The server's `GET /history/<id>` and first `GET /view` after the end frame.
    pub history_requested: Option<f64>,
    pub view_requested: Option<f64>,
    /// The server logged the end of the tool call.
    pub tool_call_logged: Option<f64>,
    pub done: f64,
    /// Every request the server made during the call: milliseconds after `sent`, method, path.
    pub requests: Vec<(f64, String)>,
}

impl ProbedRun {
    fn new(run: &GenerateRun, history_entry: &serde_json::Value, events: &[Event]) -> ProbedRun {
        let prompt_id = &run.timed.prompt_id;
        let first = |after: f64, wanted: &dyn Fn(&Sighting) -> bool| {
            events
                .iter()
                .find(|event| event.at_milliseconds >= after && wanted(&event.sighting))
                .map(|event| event.at_milliseconds)
        };
        let sent = run.timed.sent_at_milliseconds;
        let prompt_posted = first(
            sent,
            &|sighting| matches!(sighting, Sighting::Request { method, path, .. } if method == "POST" && path == "/prompt"),
        );
        let end_frame = first(
            sent,
            &|sighting| matches!(sighting, Sighting::PromptEnded { prompt_id: ended } if ended == prompt_id),
        );
        let history_path = format!("/history/{prompt_id}");
        let history_requested = end_frame.and_then(|after| {
            first(after, &|sighting| {
                matches!(sighting, Sighting::Request { method, path, .. } if method == "GET" && *path == history_path)
            })
        });
        let view_requested = end_frame.and_then(|after| {
            first(after, &|sighting| {
                matches!(sighting, Sighting::Request { method, path, .. } if method == "GET" && path == "/view")
            })
        });
        let requests = events
            .iter()
            .filter_map(|event| match &event.sighting {
                Sighting::Request { method, path, query } => {
                    // `preview=` tells a preview-sized fetch from a full one.
                    let preview = query
                        .split('&')
                        .find(|pair| pair.starts_with("preview="))
                        .map_or_else(String::new, |pair| format!(" ({})", pair.replace("%3B", ";")));
                    Some((event.at_milliseconds - sent, format!("{method} {path}{preview}")))
                }
                _ => None,
            })
            .collect();
        ProbedRun {
            sent,
            prompt_posted,
            execution_started: direct::message_timestamp(history_entry, "execution_start"),
            execution_succeeded: direct::message_timestamp(history_entry, "execution_success"),
            end_frame,
            history_requested,
            view_requested,
            tool_call_logged: run.logged_at_milliseconds,
            done: run.timed.done_at_milliseconds,
            requests,
        }
    }
}

/// One measured txt2img pair.
#[derive(Debug)]
pub struct PairedRun {
    pub direct_first: bool,
    pub direct: TimedRun,
    pub direct_timeline: Timeline,
    pub server: GenerateRun,
    pub server_timeline: Timeline,
    /// A `GET /view` of the server run's image, timed apart from the run.
    pub view_time: Option<Duration>,
}

/// Everything one bench run measured.
#[derive(Debug)]
pub struct Measurements {
    pub comfyui_version: String,
    pub server_description: String,
    pub initialize_milliseconds: Vec<f64>,
    pub resident_bytes: Vec<f64>,
    pub default_tools: ToolList,
    pub all_tools: ToolList,
    pub pairs: Vec<PairedRun>,
    pub warmup_pairs: usize,
    /// Server runs whose graph in ComfyUI's history equals the direct path's graph.
    pub identical_graphs: usize,
    /// The differences found, for the first mismatching run.
    pub graph_differences: Vec<String>,
    /// The txt2img session's server memory after all runs: current and peak.
    pub session_resident_bytes: Option<u64>,
    pub session_peak_resident_bytes: Option<u64>,
    /// Diagnostic runs through the timing proxy, or why there are none: warm calls of one
    /// session, and the first call of fresh processes (definitions on disk).
    pub probed: Result<Probed, String>,
    /// The first `generate_image` of a freshly spawned server (node definitions on disk from an
    /// earlier process), paired with a direct run.
    pub first_calls: Vec<FirstCall>,
    /// The same without a disk cache: what the first session on a machine meets.
    pub first_calls_without_cache: Vec<FirstCall>,
}

/// The diagnostic runs of both kinds.
#[derive(Debug, Clone, Default)]
pub struct Probed {
    /// Calls of one warm session.
    pub warm: Vec<ProbedRun>,
    /// The first call of each of several freshly spawned servers.
    pub first: Vec<ProbedRun>,
}

/// One pair of the first-call measure, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct FirstCall {
    pub direct: f64,
    pub server: f64,
    /// The server's time outside ComfyUI's execution minus the direct run's (ComfyUI's own
    /// timestamps), the same measure as warm pairs get: without its execution jitter.
    pub outside_execution: f64,
}

/// `runs` pairs: a direct run, and the first call of a server spawned for it (spawn and
/// initialize untimed, as a client does them before the user asks), alternating which goes first.
async fn first_calls(
    server: &ServerCommand,
    direct: &mut DirectClient,
    runs: usize,
) -> anyhow::Result<Vec<FirstCall>> {
    let mut calls = Vec::new();
    for index in 0..runs {
        let graph = workload::graph(&workload::distinct_prompt());
        let prompt = workload::distinct_prompt();
        let mut direct_run = None;
        if index % 2 == 0 {
            direct_run = Some(direct.run(&graph).await?);
        }
        let (mut session, _) = server.start(None).await?;
        let server_run = session.generate(&prompt).await?.timed;
        session.stop().await;
        let (direct_run, direct_entry) = match direct_run {
            Some(run) => run,
            None => direct.run(&graph).await?,
        };
        // Outside the timed windows: ComfyUI's timestamps of both runs.
        let server_entry = direct
            .history_entry(&server_run.prompt_id)
            .await
            .context("reading the first call's history entry")?;
        let outside = |timeline: Timeline| timeline.before_execution + timeline.after_execution;
        let call = FirstCall {
            direct: milliseconds(direct_run.elapsed),
            server: milliseconds(server_run.elapsed),
            outside_execution: outside(Timeline::of(&server_run, &server_entry)?)
                - outside(Timeline::of(&direct_run, &direct_entry)?),
        };
        eprintln!(
            "  first call {}: direct {:.0} ms, server {:.0} ms, {:+.1} ms outside execution",
            index + 1,
            call.direct,
            call.server,
            call.outside_execution
        );
        calls.push(call);
    }
    Ok(calls)
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub async fn run(server: &ServerCommand, comfyui_url: &str, plan: Plan) -> anyhow::Result<Measurements> {
    let mut direct = DirectClient::connect(comfyui_url).await?;
    let comfyui_version = direct.comfyui_version().await?;

    eprintln!(
        "spawn -> initialize: {WARMUP_SPAWNS} unmeasured + {} measured spawns of {}",
        plan.runs,
        server.binary.display()
    );
    let mut initialize_milliseconds = Vec::new();
    let mut resident_bytes = Vec::new();
    let mut default_tools = None;
    let mut server_description = String::new();
    for index in 0..WARMUP_SPAWNS + plan.runs {
        let (session, initialize_time) = server.start(None).await?;
        let resident = process_memory_bytes(session.process_id(), "VmRSS")?;
        if index >= WARMUP_SPAWNS {
            initialize_milliseconds.push(milliseconds(initialize_time));
            resident_bytes.push(resident as f64);
            eprintln!(
                "  spawn {}: initialize {:.1} ms, VmRSS {:.1} MiB",
                index + 1 - WARMUP_SPAWNS,
                milliseconds(initialize_time),
                resident as f64 / 1_048_576.0
            );
            if default_tools.is_none() {
                server_description = session.server_description();
                default_tools = Some(session.list_tools().await?);
            }
        }
        session.stop().await;
    }
    let default_tools = default_tools.context("no measured spawn listed the tools")?;
    let (session, _) = server.start(Some("all")).await?;
    let all_tools = session.list_tools().await?;
    session.stop().await;

    eprintln!(
        "txt2img: {} warm-up pairs + {} measured pairs",
        plan.warmup_pairs, plan.runs
    );
    let (mut session, _) = server.start(None).await?;
    let mut pairs = Vec::new();
    let mut identical_graphs = 0;
    let mut graph_differences = Vec::new();
    for index in 0..plan.warmup_pairs + plan.runs {
        let direct_first = index % 2 == 0;
        let direct_prompt = workload::distinct_prompt();
        let server_prompt = workload::distinct_prompt();
        let direct_graph = workload::graph(&direct_prompt);
        let ((direct_run, direct_entry), server_run) = if direct_first {
            let direct_result = direct.run(&direct_graph).await?;
            (direct_result, session.generate(&server_prompt).await?)
        } else {
            let server_result = session.generate(&server_prompt).await?;
            (direct.run(&direct_graph).await?, server_result)
        };
        let measured = index >= plan.warmup_pairs;
        let label = if measured {
            format!("pair {}", index + 1 - plan.warmup_pairs)
        } else {
            format!("warm-up {}", index + 1)
        };
        eprintln!(
            "  {label} ({} first): direct {:.0} ms, server {:.0} ms",
            if direct_first { "direct" } else { "server" },
            milliseconds(direct_run.elapsed),
            milliseconds(server_run.timed.elapsed)
        );
        if !measured {
            continue;
        }
        // Outside the timed windows: what ComfyUI recorded about the server's run.
        let server_entry = direct
            .history_entry(&server_run.timed.prompt_id)
            .await
            .context("reading the server run's history entry")?;
        let differences = match direct::recorded_graph(&server_entry) {
            Some(received) => workload::differences(&workload::graph(&server_prompt), received),
            None => vec!["ComfyUI's history holds no graph for the server's run".to_owned()],
        };
        if differences.is_empty() {
            identical_graphs += 1;
        } else if graph_differences.is_empty() {
            eprintln!("  the server sent a different graph: {differences:?}");
            graph_differences = differences;
        }
        let view_time = match direct::first_image(&server_entry) {
            Some(file) => Some(direct.time_view(&file).await?.0),
            None => None,
        };
        pairs.push(PairedRun {
            direct_first,
            direct_timeline: Timeline::of(&direct_run, &direct_entry)?,
            direct: direct_run,
            server_timeline: Timeline::of(&server_run.timed, &server_entry)?,
            server: server_run,
            view_time,
        });
    }
    let session_resident_bytes = process_memory_bytes(session.process_id(), "VmRSS").ok();
    let session_peak_resident_bytes = process_memory_bytes(session.process_id(), "VmHWM").ok();
    session.stop().await;

    eprintln!(
        "first call in a fresh process: {} pairs with node definitions on disk, {} without",
        plan.runs, plan.runs
    );
    let first_calls_measured = first_calls(server, &mut direct, plan.runs).await?;
    let without_cache = ServerCommand {
        cache_dir: None,
        ..server.clone()
    };
    let first_calls_without_cache = first_calls(&without_cache, &mut direct, plan.runs).await?;

    let probed = if comfyui_url.starts_with("http://") {
        Ok(probe(server, comfyui_url, &direct, plan.runs.min(PROBED_RUNS)).await?)
    } else {
        Err(
            "the timing proxy speaks plain HTTP only; no diagnostic runs against an https:// ComfyUI"
                .to_owned(),
        )
    };

    Ok(Measurements {
        comfyui_version,
        server_description,
        initialize_milliseconds,
        resident_bytes,
        default_tools,
        all_tools,
        pairs,
        warmup_pairs: plan.warmup_pairs,
        identical_graphs,
        graph_differences,
        session_resident_bytes,
        session_peak_resident_bytes,
        probed,
        first_calls: first_calls_measured,
        first_calls_without_cache,
    })
}

/// Diagnostic runs with a server that reaches ComfyUI through the timing proxy.
async fn probe(
    server: &ServerCommand,
    comfyui_url: &str,
    direct: &DirectClient,
    runs: usize,
) -> anyhow::Result<Probed> {
    eprintln!("diagnostics: 1 warm-up + {runs} server runs through a timing proxy");
    let proxy = TimingProxy::start(comfyui_url).await?;
    let probed_server = ServerCommand {
        comfyui_url: proxy.url.clone(),
        ..server.clone()
    };
    let (mut session, _) = probed_server.start(None).await?;
    let outcome = probe_session(&mut session, &proxy, direct, runs).await;
    session.stop().await;
    let warm = outcome?;
    // The disk copy of definitions is kept per URL: the warm session above wrote the proxy's.
    eprintln!("diagnostics: {runs} first calls of fresh servers through the timing proxy");
    let mut first = Vec::new();
    for index in 0..runs {
        let (mut session, _) = probed_server.start(None).await?;
        // From a second before the call: what the server asked at start shows too.
        let probe = probe_call(&mut session, &proxy, direct, Duration::from_secs(1)).await;
        session.stop().await;
        let probe = probe?;
        eprintln!(
            "  first-call diagnostic {}: {:.0} ms, {} requests to ComfyUI",
            index + 1,
            probe.done - probe.sent,
            probe.requests.len()
        );
        first.push(probe);
    }
    Ok(Probed { warm, first })
}

/// One `generate_image` through the proxy, read back with ComfyUI's history entry.
async fn probe_call(
    session: &mut ServerSession,
    proxy: &TimingProxy,
    direct: &DirectClient,
    before: Duration,
) -> anyhow::Result<ProbedRun> {
    let run = session.generate(&workload::distinct_prompt()).await?;
    tokio::time::sleep(AFTER_ANSWER).await;
    let entry = direct
        .history_entry(&run.timed.prompt_id)
        .await
        .context("reading a diagnostic run's history entry")?;
    let events = proxy.events_between(
        run.timed.sent_at_milliseconds - 1.0 - milliseconds(before),
        run.timed.done_at_milliseconds + AFTER_ANSWER.as_secs_f64() * 1000.0,
    );
    Ok(ProbedRun::new(&run, &entry, &events))
}

async fn probe_session(
    session: &mut ServerSession,
    proxy: &TimingProxy,
    direct: &DirectClient,
    runs: usize,
) -> anyhow::Result<Vec<ProbedRun>> {
    // The first call fetches the node definitions; it is not what these runs look at.
    session.generate(&workload::distinct_prompt()).await?;
    tokio::time::sleep(AFTER_ANSWER).await;
    let mut probed = Vec::new();
    for index in 0..runs {
        let probe = probe_call(session, proxy, direct, Duration::ZERO).await?;
        eprintln!(
            "  diagnostic run {}: {:.0} ms, {} requests to ComfyUI",
            index + 1,
            probe.done - probe.sent,
            probe.requests.len()
        );
        probed.push(probe);
    }
    Ok(probed)
}
