//! The baseline: a deliberately minimal ComfyUI client, independent of the product's own, that
//! posts a prompt with its `client_id`, waits on ComfyUI's websocket for `executing` with
//! `node: null` for that prompt, then reads `/history/<id>`. The bench also uses it, outside any
//! timed window, to read what ComfyUI recorded about the server's runs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for one prompt; the tiny model finishes in about a second.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// What the websocket reader passes on: only the ends of prompts.
#[derive(Debug)]
enum SocketEvent {
    Finished { prompt_id: String },
    Failed { prompt_id: String, message: String },
    Closed { reason: String },
}

/// Milliseconds since the Unix epoch, the clock ComfyUI stamps its history messages with.
pub fn wall_clock_milliseconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

/// One timed prompt: how long it took and the wall-clock instants around it.
#[derive(Debug, Clone)]
pub struct TimedRun {
    pub prompt_id: String,
    pub elapsed: Duration,
    pub sent_at_milliseconds: f64,
    pub done_at_milliseconds: f64,
}

/// Where one run's time went, from ComfyUI's own `execution_start` and `execution_success`
/// timestamps (whole milliseconds) against the client's wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    /// Request sent until ComfyUI starts executing (client, transport, validation, queue).
    pub before_execution: f64,
    /// ComfyUI executing the graph.
    pub execution: f64,
    /// ComfyUI done until the client holds the result (history, files, encoding, transport).
    pub after_execution: f64,
}

impl Timeline {
    pub fn of(run: &TimedRun, history_entry: &Value) -> anyhow::Result<Timeline> {
        let started = message_timestamp(history_entry, "execution_start")
            .with_context(|| format!("history of {} has no execution_start timestamp", run.prompt_id))?;
        let finished = message_timestamp(history_entry, "execution_success")
            .with_context(|| format!("history of {} has no execution_success timestamp", run.prompt_id))?;
        Ok(Timeline {
            before_execution: started - run.sent_at_milliseconds,
            execution: finished - started,
            after_execution: run.done_at_milliseconds - finished,
        })
    }
}

/// The timestamp of one of ComfyUI's status messages (`execution_start`...) in a history entry.
pub fn message_timestamp(history_entry: &Value, name: &str) -> Option<f64> {
    history_entry["status"]["messages"]
        .as_array()?
        .iter()
        .find(|message| message[0] == name)
        .and_then(|message| message[1]["timestamp"].as_f64())
}

/// An output file as ComfyUI's history lists it.
#[derive(Debug, Clone)]
pub struct OutputFile {
    pub filename: String,
    pub subfolder: String,
    pub kind: String,
}

/// The first image a history entry lists.
pub fn first_image(history_entry: &Value) -> Option<OutputFile> {
    let outputs = history_entry["outputs"].as_object()?;
    outputs.values().find_map(|output| {
        let image = output["images"].as_array()?.first()?;
        Some(OutputFile {
            filename: image["filename"].as_str()?.to_owned(),
            subfolder: image["subfolder"].as_str().unwrap_or_default().to_owned(),
            kind: image["type"].as_str().unwrap_or("output").to_owned(),
        })
    })
}

/// The graph ComfyUI ran, as its history records it (`prompt` is `[number, id, graph, ...]`).
pub fn recorded_graph(history_entry: &Value) -> Option<&Value> {
    history_entry["prompt"].get(2)
}

pub struct DirectClient {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
    events: mpsc::UnboundedReceiver<SocketEvent>,
    reader: JoinHandle<()>,
}

impl Drop for DirectClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl DirectClient {
    /// Opens the websocket once; it stays open for every run, as any sensible client would keep it.
    pub async fn connect(base_url: &str) -> anyhow::Result<DirectClient> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let client_id = uuid::Uuid::new_v4().to_string();
        let socket_url = if let Some(rest) = base_url.strip_prefix("http://") {
            format!("ws://{rest}/ws?clientId={client_id}")
        } else if let Some(rest) = base_url.strip_prefix("https://") {
            format!("wss://{rest}/ws?clientId={client_id}")
        } else {
            bail!("the ComfyUI URL must start with http:// or https://, got {base_url}");
        };
        let (socket, _) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async(socket_url.as_str()),
        )
        .await
        .map_err(|_| anyhow!("no websocket connection to {socket_url} within {CONNECT_TIMEOUT:?}"))?
        .with_context(|| format!("cannot open ComfyUI's websocket at {socket_url}"))?;
        let (sender, events) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_socket(socket, sender));
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(DirectClient {
            http,
            base_url,
            client_id,
            events,
            reader,
        })
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {url} answered {status}");
        }
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: the body is not JSON"))
    }

    /// ComfyUI's version from `/system_stats`.
    pub async fn comfyui_version(&self) -> anyhow::Result<String> {
        let stats = self.get_json("/system_stats").await?;
        Ok(stats["system"]["comfyui_version"]
            .as_str()
            .unwrap_or("(unknown version)")
            .to_owned())
    }

    /// ComfyUI's history entry for one prompt.
    pub async fn history_entry(&self, prompt_id: &str) -> anyhow::Result<Value> {
        let mut history = self.get_json(&format!("/history/{prompt_id}")).await?;
        let entry = history
            .get_mut(prompt_id)
            .map(Value::take)
            .with_context(|| format!("ComfyUI's history has no entry for prompt {prompt_id}"))?;
        match entry["status"]["status_str"].as_str() {
            Some("success") => Ok(entry),
            other => bail!(
                "prompt {prompt_id} did not succeed (status {}): {}",
                other.unwrap_or("unknown"),
                entry["status"]["messages"]
            ),
        }
    }

    /// Times a `GET /view` of one file, the fetch `generate_image` makes for its preview.
    pub async fn time_view(&self, file: &OutputFile) -> anyhow::Result<(Duration, usize)> {
        let url = format!("{}/view", self.base_url);
        let started = Instant::now();
        let response = self
            .http
            .get(&url)
            .query(&[
                ("filename", file.filename.as_str()),
                ("subfolder", file.subfolder.as_str()),
                ("type", file.kind.as_str()),
            ])
            .send()
            .await
            .with_context(|| format!("GET {url} for {}", file.filename))?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET {url} for {} answered {status}", file.filename);
        }
        let bytes = response.bytes().await.context("reading /view")?;
        Ok((started.elapsed(), bytes.len()))
    }

    /// Posts `graph`, waits for its end on the websocket and reads its history entry: the whole
    /// of what a client must do to get a result, timed.
    pub async fn run(&mut self, graph: &Value) -> anyhow::Result<(TimedRun, Value)> {
        // Ends of earlier prompts (the server's, for instance) are stale by now.
        while let Ok(event) = self.events.try_recv() {
            if let SocketEvent::Closed { reason } = event {
                bail!("ComfyUI's websocket closed: {reason}");
            }
        }
        let prompt_id = uuid::Uuid::new_v4().to_string();
        let body = json!({ "prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id });
        let url = format!("{}/prompt", self.base_url);
        let sent_at_milliseconds = wall_clock_milliseconds();
        let started = Instant::now();
        let response = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("POST {url} answered {status}: {text}");
        }
        tokio::time::timeout(RUN_TIMEOUT, self.wait_for_end(&prompt_id))
            .await
            .map_err(|_| anyhow!("prompt {prompt_id} did not finish within {RUN_TIMEOUT:?}"))??;
        let entry = self.history_entry(&prompt_id).await?;
        let elapsed = started.elapsed();
        let done_at_milliseconds = wall_clock_milliseconds();
        Ok((
            TimedRun {
                prompt_id,
                elapsed,
                sent_at_milliseconds,
                done_at_milliseconds,
            },
            entry,
        ))
    }

    async fn wait_for_end(&mut self, prompt_id: &str) -> anyhow::Result<()> {
        loop {
            match self.events.recv().await {
                Some(SocketEvent::Finished { prompt_id: finished }) if finished == prompt_id => return Ok(()),
                Some(SocketEvent::Failed {
                    prompt_id: failed,
                    message,
                }) if failed == prompt_id => bail!("ComfyUI failed prompt {prompt_id}: {message}"),
                Some(SocketEvent::Closed { reason }) => bail!("ComfyUI's websocket closed: {reason}"),
                Some(_) => {}
                None => bail!("the websocket reader stopped"),
            }
        }
    }
}

/// Reads every frame so ComfyUI never waits on this socket, and passes on the ends of prompts.
async fn read_socket<S>(mut socket: S, events: mpsc::UnboundedSender<SocketEvent>)
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(frame) = socket.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(close)) => {
                let _ = events.send(SocketEvent::Closed {
                    reason: format!("{close:?}"),
                });
                return;
            }
            Ok(_) => continue,
            Err(error) => {
                let _ = events.send(SocketEvent::Closed {
                    reason: error.to_string(),
                });
                return;
            }
        };
        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let data = &message["data"];
        let Some(prompt_id) = data["prompt_id"].as_str().map(str::to_owned) else {
            continue;
        };
        let event = match message["type"].as_str() {
            Some("executing") if data["node"].is_null() => SocketEvent::Finished { prompt_id },
            Some("execution_error") => SocketEvent::Failed {
                prompt_id,
                message: format!(
                    "{} in node {} ({})",
                    data["exception_message"].as_str().unwrap_or("an error").trim(),
                    data["node_id"],
                    data["node_type"]
                ),
            },
            Some("execution_interrupted") => SocketEvent::Failed {
                prompt_id,
                message: "interrupted".to_owned(),
            },
            _ => continue,
        };
        if events.send(event).is_err() {
            return;
        }
    }
    let _ = events.send(SocketEvent::Closed {
        reason: "the stream ended".to_owned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Value {
        json!({
            "prompt": [3, "abc", {"1": {"class_type": "X", "inputs": {}}}, {}, ["9"]],
            "outputs": {"9": {"images": [{"filename": "a_00001_.png", "subfolder": "", "type": "output"}]}},
            "status": {"status_str": "success", "completed": true, "messages": [
                ["execution_start", {"prompt_id": "abc", "timestamp": 1000}],
                ["execution_cached", {"nodes": [], "prompt_id": "abc", "timestamp": 1001}],
                ["execution_success", {"prompt_id": "abc", "timestamp": 1500}]
            ]}
        })
    }

    #[test]
    fn timeline_from_history_messages() {
        let run = TimedRun {
            prompt_id: "abc".to_owned(),
            elapsed: Duration::from_millis(540),
            sent_at_milliseconds: 990.0,
            done_at_milliseconds: 1530.0,
        };
        let timeline = Timeline::of(&run, &entry()).unwrap();
        assert_eq!(timeline.before_execution, 10.0);
        assert_eq!(timeline.execution, 500.0);
        assert_eq!(timeline.after_execution, 30.0);
        assert!(Timeline::of(&run, &json!({})).is_err());
    }

    #[test]
    fn images_and_graph_from_history() {
        let entry = entry();
        let image = first_image(&entry).unwrap();
        assert_eq!(image.filename, "a_00001_.png");
        assert_eq!(image.kind, "output");
        assert_eq!(recorded_graph(&entry).unwrap()["1"]["class_type"], "X");
        assert!(first_image(&json!({})).is_none());
    }
}
