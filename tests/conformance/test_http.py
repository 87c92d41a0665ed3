"""Streamable HTTP at the wire: Origin validation (403), the bearer token (401), and the shape of
raw 2026-07-28 exchanges. Plain HTTP requests, so that status codes and headers are seen as sent."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from checks import EXPECTED_TOOLS, sse_or_json_messages
from conftest import HttpServer

FOREIGN_ORIGINS = [
    "http://evil.example",
    "null",
    "http://localhost.evil.example",
    "http://127.0.0.1.evil.example:8000",
]
ACCEPT = "application/json, text/event-stream"
CLIENT_INFO = {"name": "conformance-raw", "version": "1"}


def initialize_body(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT_INFO},
    }


def modern_body(method: str, request_id: int = 1, version: str = "2026-07-28") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": method,
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": version,
                "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }


def modern_headers(method: str, version: str = "2026-07-28") -> dict[str, str]:
    return {"Accept": ACCEPT, "MCP-Protocol-Version": version, "Mcp-Method": method}


def post(server: HttpServer, body: Any, headers: dict[str, str]) -> httpx2.Response:
    return httpx2.post(server.url, json=body, headers={"Accept": ACCEPT, **headers}, timeout=30)


def messages(response: httpx2.Response) -> list[dict[str, Any]]:
    return sse_or_json_messages(response.headers.get("content-type", ""), response.text)


def open_session(server: HttpServer, headers: dict[str, str] | None = None) -> str:
    """A 2025-11-25 session by hand: initialize, then notifications/initialized."""
    headers = headers or {}
    response = post(server, initialize_body(), headers)
    assert response.status_code == 200, (response.status_code, response.text)
    session = response.headers["mcp-session-id"]
    assert messages(response)[0]["result"]["protocolVersion"] == "2025-11-25"
    notified = post(
        server,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"},
    )
    assert notified.status_code == 202, (notified.status_code, notified.text)
    return session


# --- Origin -------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_foreign_origin_gets_403(http_server: HttpServer, origin: str) -> None:
    """Spec (Streamable HTTP, security): servers MUST validate Origin and answer 403 when invalid.
    Checked for every kind of request: a 2025-11-25 initialize, a 2026-07-28 request, the GET
    stream, and DELETE."""
    bad = {"Origin": origin}
    initialize = post(http_server, initialize_body(), bad)
    assert initialize.status_code == 403, (initialize.status_code, initialize.text)
    assert "mcp-session-id" not in initialize.headers
    modern = post(http_server, modern_body("tools/list"), {**modern_headers("tools/list"), **bad})
    assert modern.status_code == 403, (modern.status_code, modern.text)
    stream = httpx2.get(http_server.url, headers={"Accept": "text/event-stream", **bad}, timeout=30)
    assert stream.status_code == 403, stream.status_code
    delete = httpx2.delete(http_server.url, headers={"Mcp-Session-Id": "anything", **bad}, timeout=30)
    assert delete.status_code == 403, delete.status_code


def test_foreign_origin_inside_an_open_session_gets_403(http_server: HttpServer) -> None:
    """A valid session id does not excuse a foreign Origin (the rebinding attack reuses sessions)."""
    session = open_session(http_server)
    headers = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    refused = post(http_server, listing, {**headers, "Origin": "http://evil.example"})
    assert refused.status_code == 403, (refused.status_code, refused.text)
    allowed = post(http_server, listing, headers)
    assert allowed.status_code == 200, (allowed.status_code, allowed.text)
    assert {tool["name"] for tool in messages(allowed)[0]["result"]["tools"]} >= EXPECTED_TOOLS
    closed = httpx2.delete(http_server.url, headers=headers, timeout=30)
    assert closed.status_code < 300 or closed.status_code == 405, closed.status_code


def test_local_origins_are_allowed(http_server: HttpServer) -> None:
    """Browser pages on this machine (and clients that send no Origin at all) get through."""
    for origin in (None, f"http://127.0.0.1:{http_server.port}", "http://localhost:3000", "http://[::1]:8080"):
        headers = {"Origin": origin} if origin else {}
        response = post(http_server, initialize_body(), headers)
        assert response.status_code == 200, (origin, response.status_code, response.text)
        httpx2.delete(http_server.url, headers={"Mcp-Session-Id": response.headers["mcp-session-id"]}, timeout=30)


# --- bearer token -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Bearer", "Basic dXNlcjpwYXNz", "TOKEN"],
    ids=["none", "wrong", "empty", "basic", "bare-token"],
)
def test_missing_or_wrong_token_gets_401(http_server_with_token: HttpServer, authorization: str | None) -> None:
    server = http_server_with_token
    if authorization == "TOKEN":
        authorization = server.token  # the right secret without the Bearer scheme
    headers = {"Authorization": authorization} if authorization is not None else {}
    for body, extra in ((initialize_body(), {}), (modern_body("tools/list"), modern_headers("tools/list"))):
        response = post(server, body, {**extra, **headers})
        assert response.status_code == 401, (response.status_code, response.text)
        # RFC 6750 section 3: a 401 for a bearer-protected resource carries WWW-Authenticate: Bearer.
        assert response.headers.get("www-authenticate", "").startswith("Bearer"), dict(response.headers)
        assert "mcp-session-id" not in response.headers


def test_right_token_works_and_origin_is_still_checked(http_server_with_token: HttpServer) -> None:
    server = http_server_with_token
    auth = {"Authorization": f"Bearer {server.token}"}
    session = open_session(server, auth)
    httpx2.delete(server.url, headers={**auth, "Mcp-Session-Id": session}, timeout=30)
    modern = post(server, modern_body("tools/list"), {**modern_headers("tools/list"), **auth})
    assert modern.status_code == 200, (modern.status_code, modern.text)
    assert {tool["name"] for tool in messages(modern)[0]["result"]["tools"]} >= EXPECTED_TOOLS
    foreign = post(server, initialize_body(), {**auth, "Origin": "http://evil.example"})
    assert foreign.status_code == 403, (foreign.status_code, foreign.text)


def test_bearer_scheme_is_case_insensitive(http_server_with_token: HttpServer) -> None:
    server = http_server_with_token
    response = post(server, initialize_body(), {"Authorization": f"bearer {server.token}"})
    assert response.status_code == 200, (response.status_code, response.text)
    httpx2.delete(
        server.url,
        headers={"Authorization": f"Bearer {server.token}", "Mcp-Session-Id": response.headers["mcp-session-id"]},
        timeout=30,
    )


# --- raw 2026-07-28 -----------------------------------------------------------------------------


def test_modern_discover_and_list_are_stateless(http_server: HttpServer) -> None:
    """server/discover and tools/list at 2026-07-28: no session, resultType and cache hints present,
    both protocol versions advertised."""
    discover = post(http_server, modern_body("server/discover"), modern_headers("server/discover"))
    assert discover.status_code == 200, (discover.status_code, discover.text)
    assert "mcp-session-id" not in discover.headers
    result = messages(discover)[0]["result"]
    assert result["resultType"] == "complete", result
    assert {"2025-11-25", "2026-07-28"} <= set(result["supportedVersions"]), result["supportedVersions"]
    assert "tools" in result["capabilities"] and "resources" in result["capabilities"], result["capabilities"]

    listing = post(http_server, modern_body("tools/list", 2), modern_headers("tools/list"))
    assert listing.status_code == 200, (listing.status_code, listing.text)
    assert "mcp-session-id" not in listing.headers
    result = messages(listing)[0]["result"]
    assert result["resultType"] == "complete", {k: v for k, v in result.items() if k != "tools"}
    assert isinstance(result.get("ttlMs"), int) and result["ttlMs"] >= 0, result.get("ttlMs")
    assert result.get("cacheScope") in ("public", "private"), result.get("cacheScope")
    assert {tool["name"] for tool in result["tools"]} >= EXPECTED_TOOLS


def test_modern_unsupported_version_is_refused(http_server: HttpServer) -> None:
    """A request at a version the server does not speak: error -32022 naming the supported ones."""
    response = post(
        http_server, modern_body("tools/list", version="2099-01-01"), modern_headers("tools/list", "2099-01-01")
    )
    assert response.status_code == 400, (response.status_code, response.text)
    error = messages(response)[0]["error"]
    assert error["code"] == -32022, error
    assert {"2025-11-25", "2026-07-28"} <= set(error["data"]["supported"]), error
