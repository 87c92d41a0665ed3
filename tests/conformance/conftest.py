"""Shared fixtures: the binary, the rig URL, isolated server environments, an HTTP server launcher,
and a final check that no server process outlives the run."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HTTP_START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
RUN_ID = secrets.token_hex(8)
"""Put in every server's environment, so that the end-of-run check finds them wherever they came from."""


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def binary() -> str:
    path = os.environ.get("COMFYUI_MCP_BINARY", "")
    if not path:
        pytest.fail("COMFYUI_MCP_BINARY is not set: the conformance tests need the built binary")
    if not os.access(path, os.X_OK):
        pytest.fail(f"COMFYUI_MCP_BINARY={path} is not executable")
    return path


@pytest.fixture(scope="session")
def comfy_url() -> str:
    url = os.environ.get("COMFYUI_MCP_TEST_URL", "")
    if not url:
        pytest.fail("COMFYUI_MCP_TEST_URL is not set: the conformance tests need a running ComfyUI rig")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="comfyui-mcp-conformance-") as directory:
        yield Path(directory)


@pytest.fixture(scope="session")
def server_env(comfy_url: str, scratch: Path) -> dict[str, str]:
    """The environment for every server process: none of the caller's comfyui-mcp settings leak in,
    configuration and data directories are private to this run."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COMFYUI_MCP_") and key not in ("COMFYUI_URL", "COMFYUI_TOKEN")
    }
    for name in ("config", "data"):
        (scratch / name).mkdir(exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(scratch / "config")
    env["XDG_DATA_HOME"] = str(scratch / "data")
    env["COMFYUI_URL"] = comfy_url
    env["CONFORMANCE_RUN_ID"] = RUN_ID
    return env


@dataclass
class HttpServer:
    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT/mcp
    port: int
    log: Path
    token: str | None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_http_server(binary: str, env: dict[str, str], log: Path, token: str | None = None) -> HttpServer:
    """Starts `serve --http 127.0.0.1:0` (the kernel picks a free loopback port) and reads the port
    from the `listening on` line on stderr."""
    env = dict(env)
    if token is not None:
        env["COMFYUI_MCP_HTTP_TOKEN"] = token
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [binary, "serve", "--http", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + HTTP_START_TIMEOUT
    pattern = re.compile(r"comfyui-mcp listening on (http://127\.0\.0\.1:(\d+)/mcp)")
    while True:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            return HttpServer(process, match.group(1), int(match.group(2)), log, token)
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            pytest.fail(f"the HTTP server did not start (exit {process.returncode}):\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
            pytest.fail(f"pid {process.pid} ignored SIGTERM for {STOP_TIMEOUT} s and was killed")


@pytest.fixture(scope="module")
def http_server(binary: str, server_env: dict[str, str], scratch: Path) -> Iterator[HttpServer]:
    server = start_http_server(binary, server_env, scratch / f"http-{secrets.token_hex(4)}.log")
    yield server
    stop_process(server.process)
    assert server.process.returncode == 0, f"HTTP server exited with {server.process.returncode}:\n{server.log_text()}"


@pytest.fixture(scope="module")
def http_server_with_token(binary: str, server_env: dict[str, str], scratch: Path) -> Iterator[HttpServer]:
    token = secrets.token_urlsafe(24)
    server = start_http_server(binary, server_env, scratch / f"http-token-{secrets.token_hex(4)}.log", token)
    yield server
    stop_process(server.process)
    assert server.process.returncode == 0, f"HTTP server exited with {server.process.returncode}:\n{server.log_text()}"


def _servers_of_this_run() -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose environment carries this run's RUN_ID."""
    marker = f"CONFORMANCE_RUN_ID={RUN_ID}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2 :].split()[0] != "Z":
            found.append((int(entry.name), cmdline))
    return found


@pytest.fixture(scope="session", autouse=True)
def no_stray_processes() -> Iterator[None]:
    """Every server a test starts (stdio, HTTP, or through the Inspector) must be gone at the end."""
    yield
    deadline = time.monotonic() + 5
    leftovers = _servers_of_this_run()
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.1)
        leftovers = _servers_of_this_run()
    assert not leftovers, f"server processes left running by the conformance tests: {leftovers}"
