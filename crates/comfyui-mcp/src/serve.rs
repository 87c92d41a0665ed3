//! Running the MCP server over stdio or Streamable HTTP. HTTP binds to loopback unless told
//! otherwise, checks `Host` and `Origin` (DNS rebinding), and requires a bearer token when one is
//! configured.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::mcp::ComfyServer;

/// Serves MCP on stdin/stdout until the client closes the stream or a signal arrives.
pub async fn stdio(engine: Arc<Engine>) -> anyhow::Result<()> {
    let server = ComfyServer::new(engine, true);
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .context("MCP initialization over stdio failed")?;
    tokio::select! {
        result = service.waiting() => { result.context("MCP stdio session failed")?; }
        () = shutdown_signal() => {}
    }
    Ok(())
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
pub async fn http(engine: Arc<Engine>, address: SocketAddr) -> anyhow::Result<()> {
    let token = engine.settings.http_token.clone();
    if !address.ip().is_loopback() && token.is_none() {
        tracing::warn!(%address, "listening beyond loopback without COMFYUI_MCP_HTTP_TOKEN: anyone who can reach this port can use your ComfyUI");
    }
    let cancel = CancellationToken::new();
    let mut origins = default_origins(&address);
    origins.extend(engine.settings.allowed_origins.iter().cloned());
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_cancellation_token(cancel.child_token());
    if !address.ip().is_loopback() {
        // Remote clients use whatever host name points here; the token is the gate then.
        config = config.disable_allowed_hosts();
    }
    let server = ComfyServer::new(engine, false);
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    let router =
        axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(token),
                require_token,
            ));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    // The one line a launcher reads to learn the port (stderr: stdout is not the protocol here, but
    // keep all human output on stderr anyway).
    eprintln!("comfyui-mcp listening on http://{bound}/mcp");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            cancel.cancel();
        })
        .await
        .context("HTTP server failed")?;
    Ok(())
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
}
