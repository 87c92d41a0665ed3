//! The HTTP transport's download route, `GET /outputs/<backend>/<type>/<subfolder.../>file`:
//! a backend's file passed on chunk by chunk as ComfyUI sends it, so a client that cannot reach
//! ComfyUI itself still gets a video of any size, and this server never holds it whole (a
//! resource read stops at `COMFYUI_MCP_MAX_RESOURCE_BYTES` and points here). It sits behind the
//! same bearer token as `/mcp`; bound to a loopback address it answers only loopback host names,
//! so a page that rebinds a domain to 127.0.0.1 cannot read files through it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use comfy_engine::types::FileRef;
use comfy_engine::{Engine, EngineError, FailureKind};

use crate::mcp::render::DOWNLOAD_ROUTE;

/// What the route's handler needs.
pub struct Downloads {
    pub engine: Arc<Engine>,
    /// Bound to a loopback address: only loopback host names are answered.
    pub loopback_only: bool,
}

/// The router of the route, to merge with `/mcp` under the token check.
pub fn router(downloads: Downloads) -> axum::Router {
    axum::Router::new()
        .route(
            &format!("{DOWNLOAD_ROUTE}/{{backend}}/{{kind}}/{{*path}}"),
            axum::routing::get(download),
        )
        .with_state(Arc::new(downloads))
}

async fn download(
    State(downloads): State<Arc<Downloads>>,
    Path((backend, kind, path)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if downloads.loopback_only && !loopback_host(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "this server answers loopback host names only\n",
        )
            .into_response();
    }
    let (subfolder, filename) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
    let file = FileRef {
        filename: filename.to_owned(),
        subfolder: subfolder.to_owned(),
        kind,
    };
    let stream = match downloads.engine.stream_output(&backend, &file).await {
        Ok(stream) => stream,
        Err(error) => return (status_of(&error), format!("{error}\n")).into_response(),
    };
    let mut response = Response::new(Body::from_stream(stream.body));
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(stream.media_type));
    if let Some(length) = stream.length {
        response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    // A name with quotes or control characters gets no header rather than a broken one.
    if let Ok(disposition) = HeaderValue::from_str(&format!("inline; filename=\"{}\"", file.filename))
        && !file.filename.contains('"')
    {
        response_headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}

/// Whether the request's Host is a loopback name (with or without a port).
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

fn status_of(error: &EngineError) -> StatusCode {
    match error.kind() {
        FailureKind::BadRequest => StatusCode::BAD_REQUEST,
        FailureKind::NotFound => StatusCode::NOT_FOUND,
        FailureKind::Backend | FailureKind::Other => StatusCode::BAD_GATEWAY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_loopback_names_pass() {
        for good in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:9",
            "[::1]:8000",
            "[::1]",
        ] {
            assert!(loopback_host(&host(good)), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:8000",
            "127.0.0.1.evil.example",
            "[::2]:1",
        ] {
            assert!(!loopback_host(&host(bad)), "{bad}");
        }
        assert!(!loopback_host(&HeaderMap::new()));
    }
}
