//! One actor per ComfyUI backend: it owns the single websocket (one `client_id`) shared by every job
//! on that backend and the table of tracked jobs, routes events by `prompt_id`, and keeps going when
//! the socket drops: it reconnects with backoff and fills the gap from `/queue` and `/history`, so no
//! job is lost, stuck or reported twice. Callers hold a cheap [`Backend`] handle and talk to the actor
//! over a channel; nothing here shares a lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::error::ClientError;
use crate::events::{Event, parse_binary_frame, parse_text_frame};
use crate::http::{ClientOptions, ComfyClient};
use crate::jobs::{JobFailure, JobPhase, JobSnapshot, JobTracker, JobUpdate};
use crate::types::{HistoryEntry, PromptAccepted, PromptRequest, QueueSnapshot};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a backend actor behaves.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    pub client: ClientOptions,
    /// First and largest delay between reconnection attempts.
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// With jobs in flight and no websocket frame for this long, their state is checked over HTTP
    /// (ComfyUI can silently stop sending to a socket; see the reconnect pitfall in the contract).
    pub stall_check: Duration,
    /// How many finished jobs stay readable in memory.
    pub finished_jobs_kept: usize,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            client: ClientOptions::default(),
            reconnect_initial: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
            stall_check: Duration::from_secs(20),
            finished_jobs_kept: 2000,
        }
    }
}

/// The websocket's state, for health reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConnectionState {
    pub connected: bool,
    /// How many times the socket was re-opened after a drop.
    pub reconnects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Queue depth from the latest `status` frame.
    pub queue_remaining: u64,
}

/// Live view of one job: the latest snapshot and a stream of updates.
#[derive(Debug)]
pub struct JobSubscription {
    pub snapshot: watch::Receiver<JobSnapshot>,
    pub updates: broadcast::Receiver<JobUpdate>,
}

impl JobSubscription {
    /// The latest snapshot.
    pub fn current(&self) -> JobSnapshot {
        self.snapshot.borrow().clone()
    }

    /// Waits until the job is final; returns `None` if the backend shut down first.
    pub async fn finished(&mut self) -> Option<JobSnapshot> {
        loop {
            {
                let snapshot = self.snapshot.borrow_and_update();
                if snapshot.phase.is_final() {
                    return Some(snapshot.clone());
                }
            }
            if self.snapshot.changed().await.is_err() {
                let snapshot = self.snapshot.borrow().clone();
                return snapshot.phase.is_final().then_some(snapshot);
            }
        }
    }
}

/// A prompt ComfyUI accepted, with its live view.
#[derive(Debug)]
pub struct SubmittedJob {
    pub prompt_id: String,
    pub accepted: PromptAccepted,
    pub subscription: JobSubscription,
}

/// What to send with a prompt besides the graph.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// A prompt id chosen by the caller (a UUID); one is generated otherwise.
    pub prompt_id: Option<String>,
    pub extra_data: Option<Value>,
    /// Jump the queue.
    pub front: bool,
    pub partial_execution_targets: Option<Vec<String>>,
}

/// What cancelling did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It was waiting and has been removed from ComfyUI's queue.
    Dequeued,
    /// It was running and ComfyUI was asked to interrupt exactly that prompt.
    Interrupted,
    /// It had already finished.
    AlreadyFinished,
    /// ComfyUI does not know it.
    Unknown,
}

enum Command {
    Track {
        prompt_id: String,
        titles: BTreeMap<String, String>,
        nodes_total: usize,
        reply: oneshot::Sender<JobSubscription>,
    },
    Attach {
        prompt_id: String,
        reply: oneshot::Sender<JobSubscription>,
    },
    Forget {
        prompt_id: String,
    },
    Snapshot {
        prompt_id: String,
        reply: oneshot::Sender<Option<JobSnapshot>>,
    },
    List {
        reply: oneshot::Sender<Vec<JobSnapshot>>,
    },
    CancelRequested {
        prompt_id: String,
    },
    Dequeued {
        prompt_id: String,
    },
    Connected(Result<Box<Socket>, String>),
    Reconciled {
        queue: Option<QueueSnapshot>,
        histories: Vec<(String, Result<Option<HistoryEntry>, String>)>,
    },
    HistoryFetched {
        prompt_id: String,
        entry: Result<Option<HistoryEntry>, String>,
    },
}

/// Handle to one backend's actor. Cloning is cheap; the actor stops when its cancellation token fires.
#[derive(Clone, Debug)]
pub struct Backend {
    client: ComfyClient,
    client_id: String,
    commands: mpsc::Sender<Command>,
    connection: watch::Receiver<ConnectionState>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Command")
    }
}

impl Backend {
    /// Starts the actor for the ComfyUI at `url`. Its tasks are spawned on `tracker` and stop when
    /// `cancel` fires.
    pub fn start(
        url: &str,
        options: BackendOptions,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Backend, ClientError> {
        let client = ComfyClient::new(url, options.client.clone())?;
        let client_id = uuid::Uuid::new_v4().to_string();
        let (commands, receiver) = mpsc::channel(256);
        let (connection_sender, connection) = watch::channel(ConnectionState::default());
        let actor = Actor {
            client: client.clone(),
            client_id: client_id.clone(),
            options,
            commands: commands.clone(),
            receiver,
            connection: connection_sender,
            jobs: HashMap::new(),
            finished_order: VecDeque::new(),
            socket: None,
            connecting: false,
            reconnect_delay: None,
            reconnect_at: None,
            last_frame: Instant::now(),
            ever_connected: false,
            cancel: cancel.clone(),
            tracker: tracker.clone(),
        };
        tracker.spawn(actor.run());
        Ok(Backend {
            client,
            client_id,
            commands,
            connection,
        })
    }

    /// The HTTP client for this backend.
    pub fn client(&self) -> &ComfyClient {
        &self.client
    }

    pub fn url(&self) -> &str {
        self.client.base_url()
    }

    /// The websocket client id this backend's prompts are sent with.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn connection(&self) -> ConnectionState {
        self.connection.borrow().clone()
    }

    fn closed(&self) -> ClientError {
        ClientError::Closed {
            url: self.url().to_owned(),
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).await.map_err(|_| self.closed())?;
        answer.await.map_err(|_| self.closed())
    }

    /// Waits up to `limit` for the websocket to be connected; true if it is.
    pub async fn wait_connected(&self, limit: Duration) -> bool {
        let mut connection = self.connection.clone();
        tokio::time::timeout(limit, connection.wait_for(|state| state.connected))
            .await
            .is_ok_and(|result| result.is_ok())
    }

    /// Sends a prompt. The job is tracked before the POST so no event can be missed; `titles`
    /// (node id -> title) lets progress name the running node.
    pub async fn submit(
        &self,
        prompt: &Value,
        titles: BTreeMap<String, String>,
        options: SubmitOptions,
    ) -> Result<SubmittedJob, ClientError> {
        let prompt_id = options
            .prompt_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let nodes_total = prompt.as_object().map_or(0, serde_json::Map::len);
        // Per-prompt events go only to a connected client id: give a fresh actor a moment to connect.
        // If it cannot, the job is still followed (the gap is filled from /history on connect).
        self.wait_connected(Duration::from_secs(2)).await;
        let subscription = self
            .ask(|reply| Command::Track {
                prompt_id: prompt_id.clone(),
                titles,
                nodes_total,
                reply,
            })
            .await?;
        let request = PromptRequest {
            prompt: prompt.clone(),
            client_id: self.client_id.clone(),
            prompt_id: prompt_id.clone(),
            extra_data: options.extra_data,
            front: options.front,
            number: None,
            partial_execution_targets: options.partial_execution_targets,
        };
        match self.client.queue_prompt(&request).await {
            Ok(accepted) => Ok(SubmittedJob {
                prompt_id,
                accepted,
                subscription,
            }),
            Err(error) => {
                let _ = self.commands.send(Command::Forget { prompt_id }).await;
                Err(error)
            }
        }
    }

    /// Follows a prompt this actor did not submit (another process, or before a restart).
    pub async fn attach(&self, prompt_id: &str) -> Result<JobSubscription, ClientError> {
        self.ask(|reply| Command::Attach {
            prompt_id: prompt_id.to_owned(),
            reply,
        })
        .await
    }

    /// The latest snapshot of a tracked job.
    pub async fn snapshot(&self, prompt_id: &str) -> Result<Option<JobSnapshot>, ClientError> {
        self.ask(|reply| Command::Snapshot {
            prompt_id: prompt_id.to_owned(),
            reply,
        })
        .await
    }

    /// Every job this actor tracks, newest first.
    pub async fn jobs(&self) -> Result<Vec<JobSnapshot>, ClientError> {
        self.ask(|reply| Command::List { reply }).await
    }

    /// Cancels one job and never another: a pending prompt is removed from the queue, a running one is
    /// interrupted by id (ComfyUI ignores the request if that id is not the one running).
    pub async fn cancel(&self, prompt_id: &str) -> Result<CancelOutcome, ClientError> {
        let _ = self
            .commands
            .send(Command::CancelRequested {
                prompt_id: prompt_id.to_owned(),
            })
            .await;
        // A prompt can move from pending to running between two calls: look again after each step.
        for _ in 0..3 {
            let queue = self.client.queue().await?;
            if queue.is_running(prompt_id) {
                self.client.interrupt(Some(prompt_id)).await?;
                return Ok(CancelOutcome::Interrupted);
            }
            if queue.pending_position(prompt_id).is_some() {
                self.client.delete_from_queue(&[prompt_id.to_owned()]).await?;
                let after = self.client.queue().await?;
                if after.pending_position(prompt_id).is_none() && !after.is_running(prompt_id) {
                    let _ = self
                        .commands
                        .send(Command::Dequeued {
                            prompt_id: prompt_id.to_owned(),
                        })
                        .await;
                    return Ok(CancelOutcome::Dequeued);
                }
                continue;
            }
            return Ok(match self.client.history_entry(prompt_id).await? {
                Some(_) => CancelOutcome::AlreadyFinished,
                None => CancelOutcome::Unknown,
            });
        }
        Ok(CancelOutcome::Interrupted)
    }
}

struct TrackedJob {
    tracker: JobTracker,
    snapshot: watch::Sender<JobSnapshot>,
    updates: broadcast::Sender<JobUpdate>,
    cancel_requested: bool,
    /// A history fetch is under way; don't start another.
    fetching: bool,
    /// Queued by another client id (a previous process): ComfyUI sends its execution frames
    /// there, so the queue changes every client hears are this job's only news.
    attached: bool,
}

impl TrackedJob {
    fn subscribe(&self) -> JobSubscription {
        JobSubscription {
            snapshot: self.snapshot.subscribe(),
            updates: self.updates.subscribe(),
        }
    }

    fn publish(&self, update: Option<JobUpdate>) {
        self.snapshot.send_replace(self.tracker.snapshot.clone());
        if let Some(update) = update {
            // No receivers is normal (nobody watching live).
            let _ = self.updates.send(update);
        }
    }
}

struct Actor {
    client: ComfyClient,
    client_id: String,
    options: BackendOptions,
    commands: mpsc::Sender<Command>,
    receiver: mpsc::Receiver<Command>,
    connection: watch::Sender<ConnectionState>,
    jobs: HashMap<String, TrackedJob>,
    finished_order: VecDeque<String>,
    socket: Option<Box<Socket>>,
    connecting: bool,
    reconnect_delay: Option<Duration>,
    reconnect_at: Option<Instant>,
    last_frame: Instant,
    ever_connected: bool,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Actor {
    async fn run(mut self) {
        self.start_connect();
        let mut stall_timer = tokio::time::interval(self.options.stall_check.max(Duration::from_millis(100)));
        stall_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reconnect_at = self.reconnect_at;
            tokio::select! {
                () = self.cancel.cancelled() => break,
                command = self.receiver.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                frame = next_frame(&mut self.socket) => self.handle_frame(frame).await,
                () = sleep_until_option(reconnect_at) => {
                    self.reconnect_at = None;
                    self.start_connect();
                }
                _ = stall_timer.tick() => self.check_stall(),
            }
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close().await;
        }
        debug!(url = self.client.base_url(), "backend actor stopped");
    }

    fn start_connect(&mut self) {
        if self.connecting || self.socket.is_some() {
            return;
        }
        self.connecting = true;
        let url = self.client.websocket_url(&self.client_id);
        let headers = self.client.options().headers.clone();
        let limit = self.client.options().timeouts.websocket;
        // A silent server accepts the TCP connection and never answers the upgrade: bound the
        // whole attempt so the failure is reported and the reconnect backoff carries on.
        let base = self.client.base_url().to_owned();
        let timed_out = ClientError::Timeout {
            url: base.clone(),
            call: "the websocket upgrade GET /ws".to_owned(),
            limit,
        }
        .to_string();
        let commands = self.commands.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let attempt = async {
                match tokio::time::timeout(limit, open_socket(url, &headers)).await {
                    Ok(Ok(socket)) => Ok(socket),
                    // Reported in health checks: say which backend, as every other error does.
                    Ok(Err(error)) => Err(format!("cannot open the websocket to ComfyUI at {base}: {error}")),
                    Err(_) => Err(timed_out),
                }
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                result = attempt => { let _ = commands.send(Command::Connected(result)).await; }
            }
        });
    }

    fn schedule_reconnect(&mut self, error: String) {
        let delay = self
            .reconnect_delay
            .map_or(self.options.reconnect_initial, |delay| {
                (delay * 2).min(self.options.reconnect_max)
            });
        self.reconnect_delay = Some(delay);
        self.reconnect_at = Some(Instant::now() + delay);
        self.connection.send_modify(|state| {
            state.connected = false;
            state.last_error = Some(error);
        });
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Track {
                prompt_id,
                titles,
                nodes_total,
                reply,
            } => {
                let job = self
                    .jobs
                    .entry(prompt_id.clone())
                    .or_insert_with(|| new_job(&prompt_id, titles, nodes_total));
                let _ = reply.send(job.subscribe());
            }
            Command::Attach { prompt_id, reply } => {
                let known = self.jobs.contains_key(&prompt_id);
                let job = self
                    .jobs
                    .entry(prompt_id.clone())
                    .or_insert_with(|| new_job(&prompt_id, BTreeMap::new(), 0));
                if !known {
                    job.attached = true;
                }
                let _ = reply.send(job.subscribe());
                if !known {
                    self.reconcile(vec![prompt_id]);
                }
            }
            Command::Forget { prompt_id } => {
                self.jobs.remove(&prompt_id);
            }
            Command::Snapshot { prompt_id, reply } => {
                let _ = reply.send(self.jobs.get(&prompt_id).map(|job| job.tracker.snapshot.clone()));
            }
            Command::List { reply } => {
                let mut all: Vec<JobSnapshot> = self
                    .jobs
                    .values()
                    .map(|job| job.tracker.snapshot.clone())
                    .collect();
                all.sort_by_key(|snapshot| std::cmp::Reverse(snapshot.submitted_at_ms));
                let _ = reply.send(all);
            }
            Command::CancelRequested { prompt_id } => {
                if let Some(job) = self.jobs.get_mut(&prompt_id) {
                    job.cancel_requested = true;
                }
            }
            Command::Dequeued { prompt_id } => {
                if let Some(job) = self.jobs.get_mut(&prompt_id)
                    && !job.tracker.snapshot.phase.is_final()
                {
                    job.tracker.finish_without_history(JobPhase::Cancelled, None);
                    job.publish(Some(JobUpdate::Finished));
                    self.finished_order.push_back(prompt_id);
                    self.evict_finished();
                }
            }
            Command::Connected(Ok(socket)) => {
                self.connecting = false;
                self.socket = Some(socket);
                self.last_frame = Instant::now();
                self.reconnect_delay = None;
                let reconnected = self.ever_connected;
                self.ever_connected = true;
                self.connection.send_modify(|state| {
                    state.connected = true;
                    state.last_error = None;
                    if reconnected {
                        state.reconnects += 1;
                    }
                });
                info!(url = self.client.base_url(), reconnected, "websocket connected");
                // Anything that happened while disconnected is read back from ComfyUI.
                let active = self.active_jobs();
                if !active.is_empty() {
                    self.reconcile(active);
                }
            }
            Command::Connected(Err(error)) => {
                self.connecting = false;
                debug!(url = self.client.base_url(), %error, "websocket connect failed");
                self.schedule_reconnect(error);
            }
            Command::Reconciled { queue, histories } => self.apply_reconciliation(queue, histories),
            Command::HistoryFetched { prompt_id, entry } => {
                if let Some(job) = self.jobs.get_mut(&prompt_id) {
                    job.fetching = false;
                }
                match entry {
                    Ok(Some(entry)) => self.finish_with_history(&prompt_id, &entry),
                    // Not there yet or not reachable: the next reconciliation settles it.
                    Ok(None) | Err(_) => self.reconcile(vec![prompt_id]),
                }
            }
        }
    }

    fn active_jobs(&self) -> Vec<String> {
        self.jobs
            .iter()
            .filter(|(_, job)| !job.tracker.snapshot.phase.is_final() && !job.fetching)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn check_stall(&mut self) {
        if self.socket.is_some() && self.last_frame.elapsed() >= self.options.stall_check {
            let active = self.active_jobs();
            if !active.is_empty() {
                debug!(
                    url = self.client.base_url(),
                    jobs = active.len(),
                    "no websocket frames for a while: checking jobs"
                );
                self.reconcile(active);
            }
        }
    }

    /// Reads the queue and the history of `prompt_ids` in a task of its own; the result comes back
    /// as a command so the actor never waits on HTTP.
    fn reconcile(&mut self, prompt_ids: Vec<String>) {
        for prompt_id in &prompt_ids {
            if let Some(job) = self.jobs.get_mut(prompt_id) {
                job.fetching = true;
            }
        }
        let client = self.client.clone();
        let commands = self.commands.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let work = async {
                let queue = client.queue().await.ok();
                let mut histories = Vec::new();
                for prompt_id in prompt_ids {
                    let in_queue = queue.as_ref().is_some_and(|queue| {
                        queue.is_running(&prompt_id) || queue.pending_position(&prompt_id).is_some()
                    });
                    let history = if in_queue {
                        Ok(None)
                    } else {
                        client
                            .history_entry(&prompt_id)
                            .await
                            .map_err(|error| error.to_string())
                    };
                    histories.push((prompt_id, history));
                }
                let _ = commands.send(Command::Reconciled { queue, histories }).await;
            };
            tokio::select! {
                () = cancel.cancelled() => {}
                () = work => {}
            }
        });
    }

    fn apply_reconciliation(
        &mut self,
        queue: Option<QueueSnapshot>,
        histories: Vec<(String, Result<Option<HistoryEntry>, String>)>,
    ) {
        for (prompt_id, history) in histories {
            let Some(job) = self.jobs.get_mut(&prompt_id) else {
                continue;
            };
            job.fetching = false;
            if job.tracker.snapshot.phase.is_final() {
                continue;
            }
            match (&queue, history) {
                (_, Ok(Some(entry))) => self.finish_with_history(&prompt_id, &entry),
                (Some(queue), _)
                    if queue.is_running(&prompt_id) && job.tracker.snapshot.phase == JobPhase::Queued =>
                {
                    let update = job.tracker.on_start();
                    job.publish(update);
                }
                (Some(queue), _) if queue.is_running(&prompt_id) => {}
                (Some(queue), _) if queue.pending_position(&prompt_id).is_some() => {
                    job.tracker.snapshot.queue_position = queue.pending_position(&prompt_id);
                    job.publish(None);
                }
                (Some(_), Ok(None)) => {
                    // Neither queued, running nor in history: ComfyUI lost it (restarted, or cleared).
                    job.tracker.finish_without_history(
                        JobPhase::Failed,
                        Some(JobFailure {
                            message: "ComfyUI no longer knows this prompt: it is not queued, running or in its history (was ComfyUI restarted or its queue cleared?)".to_owned(),
                            node_id: None,
                            node_type: None,
                            exception_type: None,
                        }),
                    );
                    job.publish(Some(JobUpdate::Finished));
                    self.finished_order.push_back(prompt_id);
                }
                // ComfyUI unreachable: keep the job as it is; the next reconnect checks again.
                _ => {}
            }
        }
        self.evict_finished();
    }

    fn finish_with_history(&mut self, prompt_id: &str, entry: &HistoryEntry) {
        let Some(job) = self.jobs.get_mut(prompt_id) else {
            return;
        };
        if job.tracker.snapshot.phase.is_final() {
            return;
        }
        job.tracker.finish_from_history(entry, job.cancel_requested);
        job.publish(Some(JobUpdate::Finished));
        self.finished_order.push_back(prompt_id.to_owned());
        self.evict_finished();
    }

    fn evict_finished(&mut self) {
        while self.finished_order.len() > self.options.finished_jobs_kept {
            if let Some(old) = self.finished_order.pop_front() {
                self.jobs.remove(&old);
            }
        }
    }

    async fn handle_frame(&mut self, frame: Option<Result<Message, String>>) {
        self.last_frame = Instant::now();
        let event = match frame {
            Some(Ok(Message::Text(text))) => parse_text_frame(&text),
            Some(Ok(Message::Binary(bytes))) => parse_binary_frame(&bytes),
            Some(Ok(Message::Close(_))) | None => {
                self.drop_socket("websocket closed by ComfyUI".to_owned()).await;
                None
            }
            Some(Ok(_)) => None,
            Some(Err(error)) => {
                self.drop_socket(error).await;
                None
            }
        };
        if let Some(event) = event {
            self.route(event);
        }
    }

    async fn drop_socket(&mut self, reason: String) {
        if let Some(mut socket) = self.socket.take() {
            // Close our end before reconnecting with the same client id: ComfyUI drops the new
            // registration when the old socket's cleanup runs later.
            let _ = tokio::time::timeout(Duration::from_millis(500), socket.close()).await;
        }
        warn!(url = self.client.base_url(), %reason, "websocket lost; reconnecting");
        self.schedule_reconnect(reason);
    }

    fn route(&mut self, event: Event) {
        if let Event::Status { queue_remaining, .. } = &event {
            let queue_remaining = *queue_remaining;
            self.connection.send_if_modified(|state| {
                let changed = state.queue_remaining != queue_remaining;
                state.queue_remaining = queue_remaining;
                changed
            });
            // ComfyUI writes a finished prompt's history before it broadcasts the shorter queue.
            let deaf: Vec<String> = self
                .jobs
                .iter()
                .filter(|(_, job)| job.attached && !job.fetching && !job.tracker.snapshot.phase.is_final())
                .map(|(id, _)| id.clone())
                .collect();
            if !deaf.is_empty() {
                self.reconcile(deaf);
            }
            return;
        }
        let Some(prompt_id) = event.prompt_id().map(str::to_owned) else {
            return;
        };
        let Some(job) = self.jobs.get_mut(&prompt_id) else {
            return;
        };
        if job.tracker.snapshot.phase.is_final() {
            return;
        }
        let update = match event {
            Event::ExecutionStart { .. } => job.tracker.on_start(),
            Event::ExecutionCached { nodes, .. } => job.tracker.on_cached(&nodes),
            Event::Executing { node: Some(node), .. } => job.tracker.on_executing(&node),
            Event::Executing { node: None, .. } => {
                // The history entry is written before this frame: read the authoritative result.
                if !job.fetching {
                    job.fetching = true;
                    self.fetch_history(prompt_id);
                }
                return;
            }
            Event::Progress { node, value, max, .. } => job.tracker.on_progress(node.as_deref(), value, max),
            Event::Preview {
                node_id,
                media_type,
                image,
                ..
            } => Some(JobUpdate::Preview {
                node_id,
                media_type,
                image,
            }),
            _ => None,
        };
        job.publish(update);
    }

    fn fetch_history(&self, prompt_id: String) {
        let client = self.client.clone();
        let commands = self.commands.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                entry = client.history_entry(&prompt_id) => {
                    let entry = entry.map_err(|error| error.to_string());
                    let _ = commands.send(Command::HistoryFetched { prompt_id, entry }).await;
                }
            }
        });
    }
}

fn new_job(prompt_id: &str, titles: BTreeMap<String, String>, nodes_total: usize) -> TrackedJob {
    let tracker = JobTracker::new(prompt_id, titles, nodes_total);
    let (snapshot, _) = watch::channel(tracker.snapshot.clone());
    let (updates, _) = broadcast::channel(512);
    TrackedJob {
        tracker,
        snapshot,
        updates,
        cancel_requested: false,
        fetching: false,
        attached: false,
    }
}

/// Opens the websocket at `url` with the configured `headers` and announces our features.
async fn open_socket(url: String, headers: &[(String, String)]) -> Result<Box<Socket>, String> {
    let mut request = url.into_client_request().map_err(|error| error.to_string())?;
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|error| error.to_string())?;
        let value = http::HeaderValue::from_str(value).map_err(|error| error.to_string())?;
        request.headers_mut().insert(name, value);
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|error| error.to_string())?;
    // The first client frame negotiates features: previews then carry their prompt id.
    let flags = json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}});
    socket
        .send(Message::Text(flags.to_string().into()))
        .await
        .map_err(|error| error.to_string())?;
    Ok(Box::new(socket))
}

async fn next_frame(socket: &mut Option<Box<Socket>>) -> Option<Result<Message, String>> {
    match socket {
        Some(socket) => socket
            .next()
            .await
            .map(|frame| frame.map_err(|error| error.to_string())),
        None => std::future::pending().await,
    }
}

async fn sleep_until_option(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
