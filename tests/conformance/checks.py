"""Assertions shared by the tests: PNG decoding without Pillow, progress sequences, tool listings."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import zlib
from typing import Any

def declared_tools(toolset: str = "core") -> set[str]:
    """The tools of `toolset` as the server under test declares them (`comfyui-mcp tools`), so the
    expected list is the server's own, never a copy kept by hand."""
    binary = os.environ.get("COMFYUI_MCP_BINARY", "")
    assert binary, "COMFYUI_MCP_BINARY is not set: the conformance tests need the built binary"
    listing = subprocess.run([binary, "tools"], capture_output=True, text=True, timeout=30, check=True)
    tools = [json.loads(line) for line in listing.stdout.splitlines() if line.strip()]
    names = {tool["name"] for tool in tools if tool["toolset"] == toolset}
    assert "generate_image" in names or toolset != "core", f"no generate_image among {names}"
    return names


EXPECTED_TOOLS = declared_tools()

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_size(data: bytes) -> tuple[int, int]:
    """Validates a PNG fully enough to trust it (signature, every chunk's CRC, IHDR first, IEND last,
    image data inflating to exactly the size IHDR implies) and returns (width, height)."""
    assert data[:8] == PNG_SIGNATURE, f"not a PNG: starts with {data[:8]!r}"
    position, chunks, idat = 8, [], b""
    while position < len(data):
        assert position + 12 <= len(data), "truncated PNG chunk header"
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        assert len(body) == length, f"truncated PNG chunk {kind!r}"
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in PNG chunk {kind!r}"
        chunks.append((kind, body))
        if kind == b"IDAT":
            idat += body
        position += 12 + length
    assert chunks[0][0] == b"IHDR", f"first PNG chunk is {chunks[0][0]!r}, not IHDR"
    assert chunks[-1][0] == b"IEND", f"last PNG chunk is {chunks[-1][0]!r}, not IEND"
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert colour in CHANNELS, f"unknown PNG colour type {colour}"
    if interlace == 0:
        row = (width * CHANNELS[colour] * depth + 7) // 8
        raw = zlib.decompress(idat)
        assert len(raw) == height * (1 + row), f"PNG image data is {len(raw)} bytes, IHDR implies {height * (1 + row)}"
    return width, height


def png_size_b64(encoded: str) -> tuple[int, int]:
    return png_size(base64.b64decode(encoded, validate=True))


def png_b64(width: int, height: int) -> str:
    """A grey RGB PNG of this size, base64 encoded (for uploads)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))
    data = PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    assert png_size(data) == (width, height)
    return base64.b64encode(data).decode("ascii")


def check_progress(events: list[tuple[float, float | None, str | None]], minimum: int = 4) -> None:
    assert len(events) >= minimum, f"expected at least {minimum} progress notifications, got {events}"
    values = [progress for progress, _total, _message in events]
    assert all(a < b for a, b in zip(values, values[1:])), f"progress did not increase: {values}"
    for progress, total, _message in events:
        if total is not None:
            assert 0 <= progress <= total, f"progress {progress} outside 0..{total}"


def check_tool_listing(tools: list[Any]) -> None:
    names = [tool.name for tool in tools]
    assert len(names) == len(set(names)), f"duplicate tool names: {names}"
    missing = EXPECTED_TOOLS - set(names)
    assert not missing, f"tools missing from tools/list: {sorted(missing)} (got {names})"
    for tool in tools:
        schema = tool.input_schema
        assert isinstance(schema, dict) and schema.get("type") == "object", (
            f"tool {tool.name}: inputSchema must be a JSON Schema object with type 'object', got {schema!r}"
        )
        assert tool.description, f"tool {tool.name} has no description"


def sse_or_json_messages(content_type: str, body: str) -> list[dict[str, Any]]:
    """JSON-RPC messages from a Streamable HTTP response body (application/json or text/event-stream)."""
    if content_type.startswith("application/json"):
        parsed = json.loads(body)
        return parsed if isinstance(parsed, list) else [parsed]
    assert content_type.startswith("text/event-stream"), f"unexpected content type {content_type!r}"
    messages = []
    for event in body.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].lstrip(" ") for line in event.split("\n") if line.startswith("data:"))
        if data.strip():
            messages.append(json.loads(data))
    return messages


def check_era_in_server_log(era: str, stderr: str) -> None:
    """Checks a stdio server's own log (its stderr, which the Inspector passes through) against the
    era the client chose. When rmcp logs how the session started, it must match: an initialize at
    2025-11-25 for legacy, no initialize at all for 2026-07-28. A log without that line passes."""
    lines = [line for line in stderr.splitlines() if "Service initialized as server" in line]
    if not lines:
        return
    if era in ("legacy", "2025-11-25"):
        assert 'ProtocolVersion("2025-11-25")' in lines[0], lines[0]
    else:
        assert "InitializeRequestParams" not in lines[0], lines[0]
