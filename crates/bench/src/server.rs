//! The measured path: `comfyui-mcp serve` spawned as a child process and driven over stdio by
//! rmcp's client, as an MCP host would. Also reads the child's memory from `/proc` and the time
//! each tool call took inside the server from its log on stderr.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use rmcp::model::{CallToolRequestParams, CallToolResult, PaginatedRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

use crate::direct::{TimedRun, wall_clock_milliseconds};
use crate::workload;

/// Lines of the server's stderr kept for error messages.
const STDERR_TAIL: usize = 30;
/// Longest a server may take to answer `initialize`.
const INITIALIZE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one `generate_image` call.
const CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// The server's own bound on a tool call's wait, above any run the tiny model makes.
const SERVER_WAIT_SECONDS: &str = "300";

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    pub binary: PathBuf,
    pub comfyui_url: String,
    /// The server's job database: a fresh one for the bench, not the user's.
    pub database: PathBuf,
    /// The server's cache directory (node definitions kept between processes); `None`: no disk
    /// cache, so each process starts with nothing.
    pub cache_dir: Option<PathBuf>,
}

/// The tools one server lists.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolList {
    pub names: Vec<String>,
    /// Bytes of the `tools/list` result serialized as compact JSON, all pages together.
    pub bytes: usize,
}

/// One `generate_image` call, timed from the client.
#[derive(Debug)]
pub struct GenerateRun {
    pub timed: TimedRun,
    /// The call's time inside the server, from its `tool call` log line.
    pub inside_server: Option<Duration>,
    /// When the server logged that line (wall-clock milliseconds): the end of its work.
    pub logged_at_milliseconds: Option<f64>,
    /// Bytes of the serialized tool result (text, inline preview, links).
    pub result_bytes: usize,
    pub parameters: Value,
}

/// A running server with an initialized MCP session.
pub struct ServerSession {
    service: RunningService<RoleClient, ()>,
    process_id: u32,
    tool_times: mpsc::UnboundedReceiver<ToolCallLine>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ServerCommand {
    /// Spawns the server and completes `initialize`; returns the session and the time from spawn
    /// to a completed handshake.
    pub async fn start(&self, toolsets: Option<&str>) -> anyhow::Result<(ServerSession, Duration)> {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("--comfyui-url")
            .arg(&self.comfyui_url)
            .arg("--wait-seconds")
            .arg(SERVER_WAIT_SECONDS);
        if let Some(toolsets) = toolsets {
            command.arg("--toolsets").arg(toolsets);
        }
        command.arg("serve");
        // Killed with the session even if the bench is interrupted part-way.
        command.kill_on_drop(true);
        // The server's defaults, not whatever this shell configures: no configuration file (the
        // default one lives under XDG_CONFIG_HOME) and no tuning variables.
        for name in [
            "COMFYUI_MCP_CONFIG",
            "COMFYUI_MCP_TOOLSETS",
            "COMFYUI_MCP_WAIT_SECONDS",
            "COMFYUI_MCP_PREVIEW_BYTES",
            "COMFYUI_MCP_DEFAULT_CHECKPOINT",
            "COMFYUI_TOKEN",
        ] {
            command.env_remove(name);
        }
        command.env("XDG_CONFIG_HOME", "/nonexistent/comfyui-mcp-bench");
        command.env("COMFYUI_MCP_DATABASE", &self.database);
        match &self.cache_dir {
            Some(directory) => command.env("COMFYUI_MCP_CACHE_DIR", directory),
            None => command.env("COMFYUI_MCP_CACHE_DIR", ""),
        };
        // `info` is the server's default; it carries the per-call `tool call ... elapsed_ms` line.
        command.env("COMFYUI_MCP_LOG", "info");

        let started = Instant::now();
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        let process_id = transport
            .id()
            .context("the server process has no id (did it exit at once?)")?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (time_sender, tool_times) = mpsc::unbounded_channel();
        if let Some(stderr) = stderr {
            tokio::spawn(read_stderr(stderr, time_sender, stderr_tail.clone()));
        }
        let initialized = tokio::time::timeout(INITIALIZE_TIMEOUT, ().serve(transport)).await;
        let initialize_time = started.elapsed();
        let service = match initialized {
            Ok(Ok(service)) => service,
            Ok(Err(error)) => {
                bail!(
                    "MCP initialize with {} failed: {error}{}",
                    self.binary.display(),
                    tail_text(&stderr_tail).await
                )
            }
            Err(_) => bail!(
                "{} did not answer initialize within {INITIALIZE_TIMEOUT:?}{}",
                self.binary.display(),
                tail_text(&stderr_tail).await
            ),
        };
        Ok((
            ServerSession {
                service,
                process_id,
                tool_times,
                stderr_tail,
            },
            initialize_time,
        ))
    }
}

/// The server's last stderr lines, after a moment for a dying process to write them.
async fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<String> = tail
        .lock()
        .map(|lines| lines.iter().cloned().collect())
        .unwrap_or_default();
    if lines.is_empty() {
        String::new()
    } else {
        format!("\nlast lines of its stderr:\n{}", lines.join("\n"))
    }
}

/// The server's `tool call` log line: how long the call took and when it ended.
#[derive(Debug, Clone, Copy)]
struct ToolCallLine {
    elapsed: Duration,
    logged_at_milliseconds: Option<f64>,
}

async fn read_stderr(
    stderr: tokio::process::ChildStderr,
    tool_times: mpsc::UnboundedSender<ToolCallLine>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(elapsed) = tool_call_milliseconds(&line) {
            let _ = tool_times.send(ToolCallLine {
                elapsed: Duration::from_millis(elapsed),
                logged_at_milliseconds: log_timestamp_milliseconds(&line),
            });
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// `elapsed_ms` from the server's `tool call` log line.
fn tool_call_milliseconds(line: &str) -> Option<u64> {
    if !line.contains("tool call") {
        return None;
    }
    let (_, rest) = line.split_once("elapsed_ms=")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The leading RFC 3339 UTC timestamp of a tracing line (`2026-11-23T23:08:15.744304Z`) in
/// milliseconds since the Unix epoch.
fn log_timestamp_milliseconds(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut date_parts = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let mut time_parts = time.splitn(3, ':');
    let hours: f64 = time_parts.next()?.parse().ok()?;
    let minutes: f64 = time_parts.next()?.parse().ok()?;
    let seconds: f64 = time_parts.next()?.parse().ok()?;
    let days = days_since_epoch(year, month, day) as f64;
    Some((((days * 24.0 + hours) * 60.0 + minutes) * 60.0 + seconds) * 1000.0)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`...).
pub fn process_memory_bytes(process_id: u32, field: &str) -> anyhow::Result<u64> {
    let path = Path::new("/proc").join(process_id.to_string()).join("status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("{} has no {field}", path.display()))?;
    let kilobytes: u64 = line
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{field} in {} is not a number: {line:?}", path.display()))?;
    Ok(kilobytes * 1024)
}

impl ServerSession {
    pub fn process_id(&self) -> u32 {
        self.process_id
    }

    /// Name, version and negotiated protocol version from the server's `initialize` answer.
    pub fn server_description(&self) -> String {
        let Some(info) = self.service.peer_info() else {
            return "(no server info)".to_owned();
        };
        let protocol = serde_json::to_value(&info.protocol_version)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        match &info.server_info {
            Some(implementation) => format!(
                "{} {} (MCP {protocol})",
                implementation.name, implementation.version
            ),
            None => format!("(unnamed server, MCP {protocol})"),
        }
    }

    /// Every tool the server lists, following cursors.
    pub async fn list_tools(&self) -> anyhow::Result<ToolList> {
        let mut names = Vec::new();
        let mut bytes = 0;
        let mut cursor = None;
        loop {
            let parameters = cursor.map(|cursor| PaginatedRequestParams::default().with_cursor(Some(cursor)));
            let page = self
                .service
                .list_tools(parameters)
                .await
                .context("tools/list failed")?;
            bytes += serde_json::to_vec(&page)
                .context("cannot serialize tools/list")?
                .len();
            names.extend(page.tools.iter().map(|tool| tool.name.to_string()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(ToolList { names, bytes })
    }

    /// Runs the benchmark job through `generate_image` and checks that it succeeded; a failure
    /// carries the server's last stderr lines.
    pub async fn generate(&mut self, prompt: &str) -> anyhow::Result<GenerateRun> {
        match self.generate_once(prompt).await {
            Ok(run) => Ok(run),
            Err(error) => Err(anyhow!("{error:#}{}", tail_text(&self.stderr_tail).await)),
        }
    }

    async fn generate_once(&mut self, prompt: &str) -> anyhow::Result<GenerateRun> {
        // A log line of an earlier call must not be taken for this one.
        while self.tool_times.try_recv().is_ok() {}
        let request =
            CallToolRequestParams::new("generate_image").with_arguments(workload::tool_arguments(prompt));
        let sent_at_milliseconds = wall_clock_milliseconds();
        let started = Instant::now();
        let result = tokio::time::timeout(CALL_TIMEOUT, self.service.call_tool(request))
            .await
            .map_err(|_| anyhow!("generate_image did not answer within {CALL_TIMEOUT:?}"))?
            .context("tools/call generate_image failed")?;
        let elapsed = started.elapsed();
        let done_at_milliseconds = wall_clock_milliseconds();
        let summary = result_summary(&result)?;
        let prompt_id = summary["job_id"]
            .as_str()
            .context("generate_image's result names no job_id")?
            .to_owned();
        let logged = tokio::time::timeout(Duration::from_secs(1), self.tool_times.recv())
            .await
            .ok()
            .flatten();
        let result_bytes = serde_json::to_vec(&result).map_or(0, |bytes| bytes.len());
        Ok(GenerateRun {
            timed: TimedRun {
                prompt_id,
                elapsed,
                sent_at_milliseconds,
                done_at_milliseconds,
            },
            inside_server: logged.map(|line| line.elapsed),
            logged_at_milliseconds: logged.and_then(|line| line.logged_at_milliseconds),
            result_bytes,
            parameters: summary["parameters"].clone(),
        })
    }

    /// Closes the session and waits briefly for the process to go, so spawns do not pile up.
    pub async fn stop(self) {
        let process_id = self.process_id;
        let _ = self.service.cancel().await;
        let path = Path::new("/proc").join(process_id.to_string());
        for _ in 0..100 {
            let gone = std::fs::read_to_string(path.join("stat"))
                .map(|stat| {
                    stat.rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            if gone {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The JSON summary `generate_image` puts in its first text block, checked for success.
fn result_summary(result: &CallToolResult) -> anyhow::Result<Value> {
    let text = result
        .content
        .iter()
        .find_map(|block| block.as_text().map(|text| text.text.clone()))
        .unwrap_or_default();
    if result.is_error == Some(true) {
        bail!("generate_image failed: {text}");
    }
    let summary: Value = serde_json::from_str(&text)
        .with_context(|| format!("generate_image's summary is not JSON: {text}"))?;
    match summary["status"].as_str() {
        // The server has said both over time; either means the job finished well.
        Some("succeeded" | "success") => Ok(summary),
        other => bail!(
            "generate_image ended with status {} instead of success: {text}",
            other.unwrap_or("unknown")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_tool_call_log_line() {
        let line = "2026-11-05T22:40:01.123456Z  INFO comfyui_mcp::mcp: tool call tool=generate_image error=false elapsed_ms=512";
        assert_eq!(tool_call_milliseconds(line), Some(512));
        assert_eq!(
            tool_call_milliseconds("INFO websocket connected elapsed_ms=3"),
            None
        );
        assert_eq!(tool_call_milliseconds("tool call tool=x"), None);
    }

    #[test]
    fn reads_log_timestamps() {
        let line = "2026-11-23T23:08:15.744304Z  INFO comfyui_mcp::mcp: tool call elapsed_ms=734";
        let expected = 1_795_475_295_744.304;
        let parsed = log_timestamp_milliseconds(line).unwrap();
        assert!((parsed - expected).abs() < 0.01, "{parsed}");
        assert_eq!(days_since_epoch(1970, 1, 1), 0);
        assert_eq!(days_since_epoch(2000, 3, 1), 11_017);
        assert_eq!(log_timestamp_milliseconds("INFO no timestamp"), None);
    }

    #[test]
    fn reads_this_process_memory() {
        let bytes = process_memory_bytes(std::process::id(), "VmRSS").unwrap();
        assert!(bytes > 1024 * 1024, "{bytes}");
        assert!(process_memory_bytes(std::process::id(), "NoSuchField").is_err());
    }
}
