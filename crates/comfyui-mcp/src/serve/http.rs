//! MCP over Streamable HTTP at `/mcp`: our own accept loop with header, body and connection
//! limits, a session cap, Origin/Host checks and the bearer token in front of rmcp's service.

use std::borrow::Cow;
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
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::jsonrpc::{SERVER_BUSY, error_answer, is_usable_id};
use super::signal::shutdown_signal;
use crate::mcp::{ComfyServer, PeerAddress};
use crate::settings::Settings;
use comfy_engine::Engine;

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

/// `/mcp` and the download route behind the token check (outermost) and the body and session
/// limits.
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
    let downloads = super::downloads::router(super::downloads::Downloads {
        engine: engine.clone(),
        loopback_only: address.ip().is_loopback(),
    });
    let server = ComfyServer::new(engine, settings, false).with_download_route();
    let service = StreamableHttpService::new(move || Ok(server.for_session()), sessions.clone(), config);
    let gate = Arc::new(RequestGate {
        sessions,
        limits,
        opening: AtomicUsize::new(0),
        shutdown: cancel.clone(),
    });
    axum::Router::new()
        .nest_service("/mcp", service)
        .merge(downloads)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
