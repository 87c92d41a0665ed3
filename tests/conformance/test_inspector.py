"""The MCP Inspector CLI (@modelcontextprotocol/inspector 2.12.0, installed by ./run into a cache
folder) drives the binary: tools/list (with its tool-schema portability check) and tools/call of
`status`, over stdio and over Streamable HTTP with a bearer token, in both protocol eras
(`--protocol-era legacy` = initialize at 2025-11-25, `modern` = 2026-07-28 per-request envelope)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from checks import EXPECTED_TOOLS, check_era_in_server_log
from conftest import HttpServer

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
ERAS = ["legacy", "modern"]
TIMEOUT = 90


@pytest.fixture(scope="module")
def inspector_prefix() -> str:
    prefix = os.environ.get("COMFYUI_MCP_INSPECTOR_PREFIX", "")
    if not prefix or not (Path(prefix) / "node_modules" / "@modelcontextprotocol" / "inspector").is_dir():
        pytest.fail("COMFYUI_MCP_INSPECTOR_PREFIX does not hold the Inspector: run these tests through tests/conformance/run")
    return prefix


def inspector(prefix: str, scratch: Path, *arguments: str) -> tuple[int, Any, str]:
    """Runs `npx --prefix PREFIX @modelcontextprotocol/inspector@2.12.0 --cli --format json ARGUMENTS`
    and returns (exit code, the JSON envelope it printed, stderr)."""
    env = dict(os.environ)
    # Keep the Inspector's catalog, config and OAuth state out of ~/.mcp-inspector.
    state = scratch / "inspector"
    state.mkdir(exist_ok=True)
    env["MCP_STORAGE_DIR"] = str(state)
    env["MCP_CATALOG_PATH"] = str(state / "catalog.json")
    env["MCP_CLIENT_CONFIG_PATH"] = str(state / "client.json")
    env["MCP_INSPECTOR_OAUTH_STATE_PATH"] = str(state / "oauth.json")
    env["npm_config_update_notifier"] = "false"
    # npx finds the package's bin only when run from the prefix itself.
    done = subprocess.run(
        ["npx", "--no-install", "--prefix", prefix, INSPECTOR, "--cli", "--format", "json", *arguments],
        cwd=prefix,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    # --format json: one JSON object, the result on stdout or the error envelope on stderr.
    envelope = None
    try:
        envelope = json.loads(done.stdout)
    except ValueError:
        for line in reversed(done.stderr.strip().splitlines()):
            if line.startswith("{"):
                try:
                    envelope = json.loads(line)
                    break
                except ValueError:
                    continue
    return done.returncode, envelope, done.stderr


def stdio_target(binary: str, server_env: dict[str, str]) -> list[str]:
    """The Inspector gives a stdio server only a default environment plus what -e names."""
    names = ("COMFYUI_URL", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CONFORMANCE_RUN_ID")
    options = [option for name in names for option in ("-e", f"{name}={server_env[name]}")]
    return [*options, binary, "serve"]


def result_of(code: int, envelope: Any, stderr: str) -> dict[str, Any]:
    assert code == 0, f"Inspector exited {code}: {envelope!r}\n{stderr[-3000:]}"
    assert isinstance(envelope, dict) and isinstance(envelope.get("result"), dict), f"no result: {envelope!r}\n{stderr[-3000:]}"
    return envelope["result"]


def check_listing(result: dict[str, Any]) -> None:
    names = [tool["name"] for tool in result["tools"]]
    assert EXPECTED_TOOLS <= set(names), f"missing tools: {sorted(EXPECTED_TOOLS - set(names))}"
    for tool in result["tools"]:
        assert tool["inputSchema"].get("type") == "object", (tool["name"], tool["inputSchema"])


def check_status(result: dict[str, Any]) -> None:
    assert result.get("isError") is False, result
    text = next(block["text"] for block in result["content"] if block["type"] == "text")
    backend = json.loads(text)["backends"][0]
    assert backend["reachable"] is True, backend
    assert backend["comfyui_version"], backend


def test_inspector_version(inspector_prefix: str) -> None:
    done = subprocess.run(
        ["npx", "--no-install", "--prefix", inspector_prefix, INSPECTOR, "--cli", "--version"],
        cwd=inspector_prefix,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "2.12.0", (done.stdout, done.stderr)


@pytest.mark.parametrize("era", ERAS)
def test_stdio_tools_list(era: str, inspector_prefix: str, scratch: Path, binary: str, server_env: dict[str, str]) -> None:
    # --strict: exit 6 on any error-severity tool-schema portability problem (warnings pass).
    code, envelope, stderr = inspector(
        inspector_prefix, scratch, "--protocol-era", era, "--method", "tools/list", "--strict",
        *stdio_target(binary, server_env),
    )  # fmt: skip
    check_listing(result_of(code, envelope, stderr))
    check_era_in_server_log(era, stderr)


def test_every_toolset_lists_without_portability_warnings(inspector_prefix: str, scratch: Path, binary: str, server_env: dict[str, str]) -> None:
    # The Inspector prints "Schema portability: N errors, M warnings" (details with --strict) when a
    # tool schema would trip some client; every schema of every toolset must pass clean.
    code, envelope, stderr = inspector(
        inspector_prefix, scratch, "--method", "tools/list", "--strict",
        "-e", "COMFYUI_MCP_TOOLSETS=all", *stdio_target(binary, server_env),
    )  # fmt: skip
    result = result_of(code, envelope, stderr)
    assert len(result["tools"]) > 20, [tool["name"] for tool in result["tools"]]
    findings = [line for line in stderr.splitlines() if line.startswith(("Warning:", "Error:", "Schema portability"))]
    assert not findings, "\n".join(findings) + "\n" + stderr[-3000:]


@pytest.mark.parametrize("era", ERAS)
def test_stdio_call_status(era: str, inspector_prefix: str, scratch: Path, binary: str, server_env: dict[str, str]) -> None:
    code, envelope, stderr = inspector(
        inspector_prefix, scratch, "--protocol-era", era, "--method", "tools/call", "--tool-name", "status",
        *stdio_target(binary, server_env),
    )  # fmt: skip
    check_status(result_of(code, envelope, stderr))
    check_era_in_server_log(era, stderr)


@pytest.mark.parametrize("era", ERAS)
def test_http_with_token(era: str, inspector_prefix: str, scratch: Path, http_server_with_token: HttpServer) -> None:
    server = http_server_with_token
    common = ["--protocol-era", era, "--transport", "http", "--stored-auth-only"]
    auth = ["--header", f"Authorization: Bearer {server.token}"]
    code, envelope, stderr = inspector(inspector_prefix, scratch, *common, *auth, "--method", "tools/list", server.url)
    check_listing(result_of(code, envelope, stderr))
    code, envelope, stderr = inspector(
        inspector_prefix, scratch, *common, *auth, "--method", "tools/call", "--tool-name", "status", server.url
    )
    check_status(result_of(code, envelope, stderr))
    # No token: the Inspector reports auth_required (and, with --stored-auth-only, starts no OAuth flow).
    code, envelope, stderr = inspector(inspector_prefix, scratch, *common, "--method", "tools/list", server.url)
    assert code != 0, f"the Inspector listed tools without the token: {envelope!r}"
    assert isinstance(envelope, dict) and envelope.get("error", {}).get("code") == "auth_required", (envelope, stderr)
