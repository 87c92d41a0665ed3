//! Running the MCP server over stdio or Streamable HTTP.
//!
//! Stdio answers every line it cannot use (not JSON, not a JSON-RPC message, longer than 16 MiB)
//! with a JSON-RPC error instead of leaving the client waiting. HTTP binds to loopback unless told
//! otherwise, checks `Host` and `Origin` (DNS rebinding), requires a bearer token when one is
//! configured, and bounds what one client can hold: sessions, connections, and the time to send a
//! request's headers and body.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServiceExt};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::mcp::{ComfyServer, PeerAddress};
use crate::settings::Settings;
use comfy_engine::Engine;

/// Serves MCP on stdin/stdout until the client closes the stream or a signal arrives.
pub async fn stdio(engine: Arc<Engine>, settings: Arc<Settings>) -> anyhow::Result<()> {
    let server = ComfyServer::new(engine, settings, true);
    // The pipe flavour keeps a pending stdin read cancellable, so a signal ends the process even
    // while the client is silent.
    let (input, output) = rmcp::transport::stdio_pipes();
    let service = server
        .serve(LineTransport::start(input, output, MAX_LINE_BYTES))
        .await
        .context("MCP initialization over stdio failed")?;
    tokio::select! {
        result = service.waiting() => { result.context("MCP stdio session failed")?; }
        () = shutdown_signal() => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stdio: newline-delimited JSON-RPC that answers what it cannot use.

/// Longest stdin line, newline included: rmcp's own cap, which matches its HTTP client's.
const MAX_LINE_BYTES: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;
/// JSON-RPC 2.0: the text is not JSON.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: the JSON is not a valid request.
const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0, implementation-defined server error: used for the session limit.
const SERVER_BUSY: i64 = -32000;
/// RFC 8259 section 8.1 lets a parser ignore a leading byte order mark; some clients send one.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The stdio transport. rmcp's own drops unparsable and oversized lines without a word, and the
/// client then waits forever for an answer; this one answers them with a JSON-RPC error.
///
/// A reader task owns stdin and hands usable messages over a channel, which keeps `receive`
/// cancellation safe (rmcp polls it inside `select!`). Every line to stdout, rmcp's messages and the
/// reader's error answers alike, is written whole under one lock, so they never interleave.
struct LineTransport<W> {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    output: Arc<Mutex<W>>,
    /// Stops the reader task when the transport goes away.
    _reader: tokio_util::sync::DropGuard,
}

impl<W: AsyncWrite + Send + Unpin + 'static> LineTransport<W> {
    fn start<R: AsyncRead + Send + Unpin + 'static>(input: R, output: W, max_line_bytes: usize) -> Self {
        let output = Arc::new(Mutex::new(output));
        // A small buffer: a client that floods stdin waits for the server instead of filling memory.
        let (sender, incoming) = mpsc::channel(16);
        let lines = BoundedLines::new(input, max_line_bytes);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let reader = read_messages(lines, output.clone(), sender);
        TaskTracker::new().spawn(async move {
            tokio::select! {
                () = stopped.cancelled() => {}
                () = reader => {}
            }
        });
        LineTransport {
            incoming,
            output,
            _reader: stop.drop_guard(),
        }
    }
}

impl<W: AsyncWrite + Send + Unpin + 'static> Transport<RoleServer> for LineTransport<W> {
    type Error = io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), io::Error>> + Send + 'static {
        let output = self.output.clone();
        async move { write_line(&output, &item).await }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ClientJsonRpcMessage>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), io::Error> {
        self.incoming.close();
        Ok(())
    }
}

/// Writes `message` and a newline in one go under the output lock, then flushes.
async fn write_line<W: AsyncWrite + Unpin>(output: &Mutex<W>, message: &impl Serialize) -> io::Result<()> {
    let mut line = serde_json::to_vec(message)?;
    line.push(b'\n');
    let mut output = output.lock().await;
    output.write_all(&line).await?;
    output.flush().await
}

/// The reader task: forwards messages to rmcp and answers the lines it cannot forward, until stdin
/// closes, stdout fails, or rmcp stops listening.
async fn read_messages<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut lines: BoundedLines<R>,
    output: Arc<Mutex<W>>,
    sender: mpsc::Sender<ClientJsonRpcMessage>,
) {
    let max_line_bytes = lines.max_bytes;
    loop {
        let verdict = match lines.next_line().await {
            Ok(Some(LineRead::Complete(line))) => judge_line(line),
            Ok(Some(LineRead::Oversized(prefix))) => answer_oversized(prefix, max_line_bytes),
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot read stdin; ending the MCP session");
                return;
            }
        };
        match verdict {
            Verdict::Forward(message) => {
                if sender.send(*message).await.is_err() {
                    return;
                }
            }
            Verdict::Answer(answer) => {
                if let Err(error) = write_line(&output, &answer).await {
                    tracing::warn!(%error, "cannot write to stdout; ending the MCP session");
                    return;
                }
            }
            Verdict::Ignore => {}
        }
    }
}

/// What to do with one line of stdin.
#[derive(Debug)]
enum Verdict {
    /// A JSON-RPC message for rmcp (boxed: it is far larger than the other verdicts).
    Forward(Box<ClientJsonRpcMessage>),
    /// An error answer to write back.
    Answer(Value),
    /// Blank lines, and notifications nobody should answer (JSON-RPC never answers a notification).
    Ignore,
}

/// Logs never quote the line: it may carry tool arguments, passwords included.
fn judge_line(line: &[u8]) -> Verdict {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Ignore;
    }
    let error = match serde_json::from_slice::<ClientJsonRpcMessage>(text) {
        Ok(message) => return Verdict::Forward(Box::new(message)),
        Err(error) => error,
    };
    if error.is_syntax() || error.is_eof() {
        // Syntax errors name a position, never the text, so they may be logged.
        tracing::warn!(bytes = text.len(), %error, "stdin line is not JSON: answered with a JSON-RPC parse error");
        return Verdict::Answer(error_answer(
            read_id(text),
            PARSE_ERROR,
            &format!("Parse error: {error}"),
        ));
    }
    let Ok(value) = serde_json::from_slice::<Value>(text) else {
        return Verdict::Answer(error_answer(None, PARSE_ERROR, "Parse error"));
    };
    if value.get("method").is_some() && value.get("id").is_none() {
        // A notification of a kind this server does not know, or one with unusable parameters.
        tracing::debug!(bytes = text.len(), "ignoring an unusable notification on stdin");
        return Verdict::Ignore;
    }
    // Data errors may quote values from the message: the client gets them, the log does not.
    tracing::warn!(
        bytes = text.len(),
        "stdin line is not a JSON-RPC message: answered with an invalid request error"
    );
    let id = value.get("id").cloned().filter(is_usable_id);
    Verdict::Answer(error_answer(
        id,
        INVALID_REQUEST,
        &format!("Invalid request: {error}"),
    ))
}

fn answer_oversized(prefix: &[u8], max_bytes: usize) -> Verdict {
    tracing::warn!(
        max_bytes,
        "stdin line longer than the limit: answered with a JSON-RPC parse error, the rest of the line is dropped"
    );
    let message = format!("Parse error: message longer than {max_bytes} bytes, not read");
    Verdict::Answer(error_answer(read_id(prefix), PARSE_ERROR, &message))
}

fn error_answer(id: Option<Value>, code: i64, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    })
}

/// JSON-RPC ids are strings or integers; anything else is answered with a null id.
fn is_usable_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// The `id` member of a top-level JSON object, read as far as the text is valid JSON, so a request
/// that is cut off or broken after its id still gets an answer the client can match.
fn read_id(text: &[u8]) -> Option<Value> {
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    // The error is expected (that is why we are here); what was found before it is what counts.
    let _ = IdFinder { found: &mut found }.deserialize(&mut deserializer);
    found.filter(is_usable_id)
}

/// Walks a JSON object's members, keeping `id` and skipping the rest without building them.
struct IdFinder<'a> {
    found: &'a mut Option<Value>,
}

impl<'de> DeserializeSeed<'de> for IdFinder<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for IdFinder<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "id" {
                *self.found = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// One line read by [`BoundedLines`].
#[derive(Debug, PartialEq)]
enum LineRead<'a> {
    /// A whole line, with its newline unless stdin ended without one.
    Complete(&'a [u8]),
    /// The first `max_bytes` of a longer line; the rest is dropped as it arrives.
    Oversized(&'a [u8]),
}

/// Newline-delimited lines that never hold more than `max_bytes` in memory.
struct BoundedLines<R> {
    input: BufReader<R>,
    line: Vec<u8>,
    max_bytes: usize,
    /// Inside a line already reported as oversized: drop bytes up to its newline.
    discarding: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    fn new(input: R, max_bytes: usize) -> Self {
        BoundedLines {
            input: BufReader::new(input),
            line: Vec::new(),
            max_bytes,
            discarding: false,
        }
    }

    /// The next line; `None` at the end of input. An oversized line is reported as soon as it
    /// crosses the limit, so its client hears back without sending the rest.
    async fn next_line(&mut self) -> io::Result<Option<LineRead<'_>>> {
        self.line.clear();
        loop {
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                let last = !self.discarding && !self.line.is_empty();
                return Ok(last.then_some(LineRead::Complete(&self.line)));
            }
            let newline = available.iter().position(|byte| *byte == b'\n');
            let end = newline.map_or(available.len(), |index| index + 1);
            if self.discarding {
                self.discarding = newline.is_none();
                self.input.consume(end);
                continue;
            }
            let room = self.max_bytes - self.line.len();
            if end > room {
                self.line.extend_from_slice(&available[..room]);
                self.discarding = newline.is_none();
                self.input.consume(end);
                return Ok(Some(LineRead::Oversized(&self.line)));
            }
            self.line.extend_from_slice(&available[..end]);
            self.input.consume(end);
            if newline.is_some() {
                return Ok(Some(LineRead::Complete(&self.line)));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP.

/// Time a client has to send a request's body once its headers are in: 4 MiB (rmcp's body limit)
/// at 140 KB/s.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections at most; further clients wait in the listen backlog until one closes.
const MAX_CONNECTIONS: usize = 1_024;
/// How long shutdown waits for open connections before closing them anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What one client may hold of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HttpLimits {
    max_sessions: usize,
    header_timeout: Duration,
    body_timeout: Duration,
    max_connections: usize,
    max_body_bytes: usize,
}

impl HttpLimits {
    /// The limits: the configured session cap and header timeout, the fixed rest.
    fn from_settings(settings: &crate::settings::Settings) -> Self {
        HttpLimits {
            max_sessions: settings.http_max_sessions,
            header_timeout: settings.http_header_timeout,
            body_timeout: BODY_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_body_bytes: StreamableHttpServerConfig::default().max_request_body_bytes,
        }
    }
}

/// Origins a local browser page may come from; anything else is refused with 403.
fn default_origins(address: &SocketAddr) -> Vec<String> {
    let mut origins = vec![
        "http://localhost:*".to_owned(),
        "http://127.0.0.1:*".to_owned(),
        "http://[::1]:*".to_owned(),
    ];
    if !address.ip().is_loopback() && !address.ip().is_unspecified() {
        origins.push(format!("http://{}:*", address.ip()));
    }
    origins
}

/// Serves MCP over Streamable HTTP at `/mcp` on `address`.
pub async fn http(engine: Arc<Engine>, settings: Arc<Settings>, address: SocketAddr) -> anyhow::Result<()> {
    let limits = HttpLimits::from_settings(&settings);
    if !address.ip().is_loopback() && settings.http_token.is_none() {
        tracing::warn!(%address, "listening beyond loopback without COMFYUI_MCP_HTTP_TOKEN: anyone who can reach this port can use your ComfyUI");
    }
    let shutdown = CancellationToken::new();
    let router = mcp_router(engine, settings, &address, limits, shutdown.child_token());
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    // The one line a launcher reads to learn the port (stderr: stdout is not the protocol here, but
    // keep all human output on stderr anyway).
    eprintln!("comfyui-mcp listening on http://{bound}/mcp");
    let serving = serve_connections(listener, router, limits, shutdown.clone());
    let signal_watch = async {
        shutdown_signal().await;
        shutdown.cancel();
        // Stay pending: the serving future decides when everything has ended.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = serving => {}
        () = signal_watch => {}
    }
    Ok(())
}

/// `/mcp` behind the token check (outermost) and the body and session limits.
fn mcp_router(
    engine: Arc<Engine>,
    settings: Arc<Settings>,
    address: &SocketAddr,
    limits: HttpLimits,
    cancel: CancellationToken,
) -> axum::Router {
    let token = settings.http_token.clone();
    let mut origins = default_origins(address);
    origins.extend(settings.allowed_origins.iter().cloned());
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(limits.max_body_bytes)
        .with_cancellation_token(cancel.clone());
    if !address.ip().is_loopback() {
        // Remote clients use whatever host name points here; the token is the gate then.
        config = config.disable_allowed_hosts();
    }
    let sessions = Arc::new(LocalSessionManager::default());
    let server = ComfyServer::new(engine, settings, false);
    let service = StreamableHttpService::new(move || Ok(server.for_session()), sessions.clone(), config);
    let gate = Arc::new(RequestGate {
        sessions,
        limits,
        opening: AtomicUsize::new(0),
        shutdown: cancel.clone(),
    });
    axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            gate,
            read_body_and_gate_sessions,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ))
}

async fn require_token(State(token): State<Arc<Option<String>>>, request: Request, next: Next) -> Response {
    let Some(expected) = token.as_ref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_credentials);
    match presented {
        Some(presented) if constant_time_equal(presented.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"comfyui-mcp\"")],
            "a valid bearer token is required\n",
        )
            .into_response(),
    }
}

/// The credentials of an `Authorization: Bearer ...` header; the scheme is case-insensitive
/// (RFC 9110 section 11.1).
fn bearer_credentials(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// What the body and session middleware needs. rmcp's session manager has no cap of its own.
struct RequestGate {
    sessions: Arc<LocalSessionManager>,
    limits: HttpLimits,
    /// Initialize requests admitted but not finished: their sessions may not be in the map yet.
    opening: AtomicUsize,
    /// Cut short body reads at shutdown, which would otherwise wait out a slow client.
    shutdown: CancellationToken,
}

/// An admitted initialize request; dropping it releases its place in [`RequestGate::opening`].
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RequestGate {
    /// Admits one more session unless live and opening sessions already reach the cap. Claiming the
    /// place before counting makes concurrent initializes see each other, so the cap holds exactly.
    async fn admit(&self) -> Option<Admission<'_>> {
        let others_opening = self.opening.fetch_add(1, Ordering::SeqCst);
        let admission = Admission(&self.opening);
        let live = self.sessions.sessions.read().await.len();
        (live + others_opening < self.limits.max_sessions).then_some(admission)
    }
}

/// Reads the whole body within [`BODY_TIMEOUT`] (hyper has no body timeout), then refuses an
/// `initialize` that would open a session beyond the cap with 503 and a JSON-RPC error.
async fn read_body_and_gate_sessions(
    State(gate): State<Arc<RequestGate>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = tokio::select! {
        body = read_body(body, &gate.limits) => match body {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        },
        () = gate.shutdown.cancelled() => return BodyError::ShuttingDown.into_response(),
    };
    let opens_session = parts.method == Method::POST && !parts.headers.contains_key("mcp-session-id");
    let initialize_id = opens_session.then(|| initialize_id(&body)).flatten();
    let request = Request::from_parts(parts, Body::from(body));
    let Some(id) = initialize_id else {
        return next.run(request).await;
    };
    match gate.admit().await {
        Some(_admission) => next.run(request).await,
        None => session_limit_response(id, gate.limits.max_sessions),
    }
}

/// The id of an `initialize` request (null when it has none); `None` for anything else.
fn initialize_id(body: &[u8]) -> Option<Value> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        method: Option<Cow<'a, str>>,
        #[serde(default)]
        id: Value,
    }
    let head: Head<'_> = serde_json::from_slice(body).ok()?;
    (head.method.as_deref() == Some("initialize")).then_some(head.id)
}

fn session_limit_response(id: Value, max_sessions: usize) -> Response {
    tracing::warn!(
        max_sessions,
        "refused a new MCP session: the server is at its session limit"
    );
    let message = format!(
        "the server is at its session limit ({max_sessions} sessions): end an unused session \
         (HTTP DELETE with its Mcp-Session-Id) or retry later"
    );
    let id = if is_usable_id(&id) { id } else { Value::Null };
    let body = error_answer(Some(id), SERVER_BUSY, &message);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "30")],
        axum::Json(body),
    )
        .into_response()
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot read the request body: {0}")]
    Unreadable(axum::Error),
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        let status = match self {
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Unreadable(_) => StatusCode::BAD_REQUEST,
            BodyError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        // The rest of the body is still on the wire: the connection cannot carry another request.
        (status, [(header::CONNECTION, "close")], format!("{self}\n")).into_response()
    }
}

async fn read_body(body: Body, limits: &HttpLimits) -> Result<Bytes, BodyError> {
    tokio::time::timeout(limits.body_timeout, collect_body(body, limits.max_body_bytes))
        .await
        .map_err(|_| BodyError::TimedOut(limits.body_timeout))?
}

async fn collect_body(body: Body, max_bytes: usize) -> Result<Bytes, BodyError> {
    let mut chunks = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(BodyError::Unreadable)?;
        if collected.len() + chunk.len() > max_bytes {
            return Err(BodyError::TooLarge(max_bytes));
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(collected))
}

/// Accepts connections until `shutdown`, then lets open ones finish for up to [`SHUTDOWN_GRACE`].
/// A hand-written loop rather than `axum::serve`, which sets no header timeout and no connection cap.
async fn serve_connections(
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    while let Some((stream, peer, slot)) = accept(&listener, &slots, &shutdown).await {
        // Each request carries where its connection comes from: limits on guessing count against it.
        let router = router.clone().layer(axum::Extension(PeerAddress(peer)));
        let connection = serve_connection(stream, router, limits.header_timeout, shutdown.clone());
        connections.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open after the shutdown grace period: closing them"
        );
    }
}

/// The next connection, once a connection slot is free; `None` when shutdown begins.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = tokio::select! {
        slot = slots.clone().acquire_owned() => slot.ok()?,
        () = shutdown.cancelled() => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => return Some((stream, peer, slot)),
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = shutdown.cancelled() => return None,
        }
    }
}

/// Serves one HTTP/1.1 connection; on shutdown, finishes the request in flight and closes.
async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let mut connection = std::pin::pin!(connection);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "HTTP connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_credentials_in_any_case() {
        assert_eq!(bearer_credentials("Bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_credentials("Basic abc"), None);
        assert_eq!(bearer_credentials("Bearerabc"), None);
    }

    #[test]
    fn compares_tokens() {
        assert!(constant_time_equal(b"abc", b"abc"));
        assert!(!constant_time_equal(b"abc", b"abd"));
        assert!(!constant_time_equal(b"abc", b"abcd"));
    }

    fn answer_of(verdict: Verdict) -> Value {
        match verdict {
            Verdict::Answer(answer) => answer,
            other => panic!("expected an error answer, got {other:?}"),
        }
    }

    #[test]
    fn judges_lines() {
        let ping = br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
        assert!(matches!(judge_line(ping), Verdict::Forward(_)));
        assert!(matches!(judge_line(b" \r\n"), Verdict::Ignore));
        let garbage = answer_of(judge_line(b"not json\n"));
        assert_eq!(garbage["error"]["code"], PARSE_ERROR);
        assert_eq!(garbage["id"], Value::Null);
        let cut = answer_of(judge_line(br#"{"jsonrpc":"2.0","id":"a-1","method":"#));
        assert_eq!(cut["id"], "a-1");
        let shapeless = answer_of(judge_line(br#"{"jsonrpc":"2.0","id":4,"result":1,"method":9}"#));
        assert_eq!(shapeless["error"]["code"], INVALID_REQUEST);
        // Notifications are never answered, not even unusable ones.
        let unusable = br#"{"jsonrpc":"1.0","method":"notifications/initialized"}"#;
        assert!(matches!(judge_line(unusable), Verdict::Ignore));
    }

    #[test]
    fn reads_only_a_top_level_id() {
        assert_eq!(read_id(br#"{"params":{"id":5},"id":6"#), Some(json!(6)));
        assert_eq!(read_id(br#"{"params":{"id":5}"#), None);
        assert_eq!(read_id(br#"{"id":{"nested":1}}"#), None);
        assert_eq!(read_id(b"[1,2"), None);
    }

    #[tokio::test]
    async fn bounds_lines_and_drops_the_rest_of_a_long_one() {
        let input: &[u8] = b"short\n0123456789abcdef-tail\nnext\nlast";
        let mut lines = BoundedLines::new(input, 8);
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Complete(b"short\n"))
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Oversized(b"01234567"))
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Complete(b"next\n"))
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(LineRead::Complete(b"last"))
        );
        assert_eq!(lines.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn answers_what_it_cannot_forward_and_forwards_the_rest() {
        let (mut client_input, server_input) = tokio::io::duplex(1 << 16);
        let (server_output, client_output) = tokio::io::duplex(1 << 16);
        let mut transport = LineTransport::start(server_input, server_output, 64);
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\",\"p\":\"{}\"}}\n",
            "x".repeat(100)
        );
        let input = format!("garbage\n{long}{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}}\n");
        client_input.write_all(input.as_bytes()).await.unwrap();
        let forwarded = transport.receive().await.expect("the ping is forwarded");
        assert!(serde_json::to_string(&forwarded).unwrap().contains("\"id\":9"));
        let mut answers = BufReader::new(client_output).lines();
        let first: Value = serde_json::from_str(&answers.next_line().await.unwrap().unwrap()).unwrap();
        let second: Value = serde_json::from_str(&answers.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(
            (first["id"].clone(), first["error"]["code"].clone()),
            (Value::Null, json!(PARSE_ERROR))
        );
        assert_eq!(
            (second["id"].clone(), second["error"]["code"].clone()),
            (json!(8), json!(PARSE_ERROR))
        );
    }

    #[test]
    fn recognizes_initialize_requests() {
        assert_eq!(
            initialize_id(br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#),
            Some(json!(1))
        );
        assert_eq!(
            initialize_id(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            None
        );
        assert_eq!(initialize_id(b"not json"), None);
    }
}
