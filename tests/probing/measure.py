#!/usr/bin/env python3
"""Measures the faults found by probing, as a hostile or careless user would meet them: what one
request costs in memory and time, whether one slow request blocks the others, whether a burst on a
cold cache keeps the wait bound, and what many HTTP sessions and slow connections cost.

Drives the built binary over stdio (JSON-RPC lines) and Streamable HTTP with the standard library
only. Needs a running ComfyUI (the rig) for the burst:

    python3 tests/probing/measure.py --binary target/release/comfyui-mcp --comfyui http://127.0.0.1:PORT

Prints one JSON object per measure; the figures in the closing notes of the issue came from it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
import zlib
from typing import Any


def rss_kib(pid: int) -> dict[str, int]:
    figures = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0])
    return figures


class StdioServer:
    """A `comfyui-mcp serve` child spoken to in JSON-RPC lines; answers matched by id."""

    def __init__(self, binary: str, environment: dict[str, str]) -> None:
        env = dict(os.environ, **environment)
        self.process = subprocess.Popen(
            [binary, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        self.answers: dict[Any, tuple[float, dict]] = {}
        self.lock = threading.Condition()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.request("initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        })
        self.notify("notifications/initialized", {})

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "id" in message:
                with self.lock:
                    self.answers[message["id"]] = (time.monotonic(), message)
                    self.lock.notify_all()

    def send(self, method: str, params: dict) -> int:
        with self.lock:
            self.next_id += 1
            request_id = self.next_id
        line = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        assert self.process.stdin
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        return request_id

    def notify(self, method: str, params: dict) -> None:
        assert self.process.stdin
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode() + b"\n")
        self.process.stdin.flush()

    def wait(self, request_id: int, timeout: float = 600) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while request_id not in self.answers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer to request {request_id}")
                self.lock.wait(left)
            return self.answers.pop(request_id)

    def request(self, method: str, params: dict, timeout: float = 600) -> dict:
        return self.wait(self.send(method, params), timeout)[1]

    def call(self, tool: str, arguments: dict, timeout: float = 600) -> tuple[float, dict]:
        started = time.monotonic()
        answer = self.request("tools/call", {"name": tool, "arguments": arguments}, timeout)
        return time.monotonic() - started, answer

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def text_of(answer: dict) -> str:
    result = answer.get("result") or {}
    texts = [block.get("text", "") for block in result.get("content", []) if block.get("type") == "text"]
    return (texts[0] if texts else json.dumps(answer.get("error")))[:160]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, extra: list[bytes] = (), rows: bytes | None = None) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = rows if rows is not None else b"\x00" * ((width + 1) * height)
    compressor = zlib.compressobj(9)
    data = compressor.compress(raw) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + b"".join(extra) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def measure_single_requests(binary: str, comfyui: str, database: str) -> None:
    """Fault 3: one request that makes the server read a device, a FIFO, a text bomb, a node bomb."""
    server = StdioServer(binary, {
        "COMFYUI_URL": comfyui, "COMFYUI_MCP_DATABASE": database, "COMFYUI_MCP_TOOLSETS": "all",
        "COMFYUI_MCP_ALLOW_LOCAL_FILES": "true", "COMFYUI_MCP_LOG": "error",
    })
    fifo = os.path.join(tempfile.mkdtemp(), "pipe")
    os.mkfifo(fifo)
    bomb_chunk = png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"\x00" * (32 * 1024 * 1024), 9))
    text_bomb = png(8, 8, [bomb_chunk] * 90)
    cases = [
        ("upload_image /dev/zero", "upload_image", {"path": "/dev/zero"}),
        ("image_metadata /dev/zero", "image_metadata", {"path": "/dev/zero"}),
        ("find_similar_images /dev/zero", "find_similar_images", {"path": "/dev/zero"}),
        ("convert_workflow /dev/zero", "convert_workflow", {"path": "/dev/zero"}),
        ("import_bundle /dev/zero", "preset_share", {"action": "import_bundle", "path": "/dev/zero"}),
        ("image_metadata FIFO", "image_metadata", {"path": fifo}),
        (f"image_metadata zTXt bomb ({len(text_bomb)} bytes, 90 x 32 MiB)", "image_metadata",
         {"data_base64": base64.b64encode(text_bomb).decode()}),
        ("convert_workflow subgraph bomb (depth 18)", "convert_workflow", {"workflow": subgraph_bomb(18)}),
    ]
    for label, tool, arguments in cases:
        before = rss_kib(server.process.pid)
        try:
            elapsed, answer = server.call(tool, arguments, timeout=120)
            outcome = text_of(answer)
        except TimeoutError:
            elapsed, outcome = 120.0, "no answer within 120 s"
        after = rss_kib(server.process.pid)
        print(json.dumps({"measure": "single request", "case": label, "seconds": round(elapsed, 3),
                          "rss_mib": round(after["VmRSS"] / 1024, 1), "peak_rss_mib": round(after["VmHWM"] / 1024, 1),
                          "peak_before_mib": round(before["VmHWM"] / 1024, 1), "answer": outcome}))
    server.close()


def subgraph_bomb(depth: int) -> dict:
    """A UI workflow whose subgraph at each level holds two instances of the next level."""
    definitions = []
    for level in range(depth):
        if level == depth - 1:
            nodes = [{"id": 1, "type": "PrimitiveNode", "mode": 0, "inputs": [], "outputs": [], "widgets_values": [1]}]
        else:
            child = str(uuid.UUID(int=level + 2))
            nodes = [{"id": index, "type": child, "mode": 0, "inputs": [], "outputs": []} for index in (1, 2)]
        definitions.append({
            "id": str(uuid.UUID(int=level + 1)), "name": f"level {level}", "nodes": nodes, "links": [],
            "inputs": [], "outputs": [], "widgets": [], "inputNode": {"id": -10}, "outputNode": {"id": -20},
        })
    top = {"id": 1, "type": str(uuid.UUID(int=1)), "mode": 0, "inputs": [], "outputs": []}
    return {"last_node_id": 1, "last_link_id": 0, "nodes": [top], "links": [], "version": 0.4,
            "definitions": {"subgraphs": definitions}}


def measure_blocking(binary: str, comfyui: str, database: str) -> None:
    """Fault 4: does decoding two huge images hold up an unrelated call?"""
    server = StdioServer(binary, {
        "COMFYUI_URL": comfyui, "COMFYUI_MCP_DATABASE": database, "COMFYUI_MCP_TOOLSETS": "all",
        "COMFYUI_MCP_LOG": "error",
    })
    side = 11000
    rows = b"".join(b"\x00" + bytes((x * 7 + y) & 0xFF for x in range(side)) for y in range(64)) * (side // 64)
    huge = base64.b64encode(png(side, side - side % 64, rows=rows)).decode()
    baseline, _ = server.call("list_jobs", {})
    heavy = [server.send("tools/call", {"name": "find_similar_images", "arguments": {"data_base64": huge}}) for _ in range(2)]
    time.sleep(0.5)
    elapsed, _ = server.call("list_jobs", {})
    decode_seconds = [round(server.wait(request_id)[0], 1) for request_id in heavy]
    print(json.dumps({"measure": "list_jobs during two 11000x11000 decodes", "idle_seconds": round(baseline, 3),
                      "seconds": round(elapsed, 3), "rss_peak_mib": round(rss_kib(server.process.pid)["VmHWM"] / 1024, 1)}))
    del decode_seconds
    server.close()


def measure_burst(binary: str, comfyui: str, database: str, calls: int) -> None:
    """Fault 5: a burst of generations on a fresh process (cold node-definition cache)."""
    server = StdioServer(binary, {
        "COMFYUI_URL": comfyui, "COMFYUI_MCP_DATABASE": database, "COMFYUI_MCP_LOG": "error",
    })
    started = time.monotonic()
    requests = [server.send("tools/call", {"name": "generate_image", "arguments": {
        "prompt": f"burst {uuid.uuid4()}", "width": 64, "height": 64, "steps": 1,
        "checkpoint": "tiny-sd15-micro.ckpt"}}) for _ in range(calls)]
    durations = []
    for request_id in requests:
        answered, _ = server.wait(request_id, timeout=900)
        durations.append(answered - started)
    durations.sort()
    print(json.dumps({"measure": f"{calls} concurrent generate_image, cold cache", "wait_bound_seconds": 45,
                      "slowest_call_seconds": round(durations[-1], 1), "median_call_seconds": round(durations[len(durations) // 2], 1)}))
    server.close()


def measure_sessions(binary: str, comfyui: str, database: str, sessions: int) -> None:
    """Fault 12: many initializes and slow connections on the HTTP endpoint."""
    env = dict(os.environ, COMFYUI_URL=comfyui, COMFYUI_MCP_DATABASE=database, COMFYUI_MCP_LOG="error")
    process = subprocess.Popen([binary, "serve", "--http", "127.0.0.1:0"], stderr=subprocess.PIPE, env=env)
    assert process.stderr
    address = ""
    for line in process.stderr:
        text = line.decode()
        if "listening on" in text:
            address = text.split("http://")[1].split("/mcp")[0]
            break
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    url = f"http://{address}/mcp"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}).encode()
    before = rss_kib(process.pid)["VmRSS"]
    refused = 0
    started = time.monotonic()
    for _ in range(sessions):
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as error:
            refused += error.code == 503
    after = rss_kib(process.pid)["VmRSS"]
    print(json.dumps({"measure": f"{sessions} HTTP initializes", "seconds": round(time.monotonic() - started, 1),
                      "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
                      "refused_503": refused}))
    host, port = address.rsplit(":", 1)
    slow = []
    for _ in range(50):
        connection = socket.create_connection((host, int(port)))
        connection.sendall(b"POST /mcp HTTP/1.1\r\nHost: " + address.encode() + b"\r\n")
        slow.append(connection)
    opened = time.monotonic()
    still_open = 50
    while still_open and time.monotonic() - opened < 75:
        time.sleep(1)
        still_open = 0
        for connection in slow:
            connection.setblocking(False)
            try:
                still_open += connection.recv(1) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
    print(json.dumps({"measure": "50 connections that never finish their headers",
                      "open_after_seconds": round(time.monotonic() - opened, 1), "still_open": still_open}))
    process.kill()
    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--comfyui", required=True)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--only", choices=["single", "blocking", "burst", "sessions"])
    arguments = parser.parse_args()
    database = os.path.join(tempfile.mkdtemp(), "probe.sqlite3")
    measures = {
        "single": lambda: measure_single_requests(arguments.binary, arguments.comfyui, database),
        "blocking": lambda: measure_blocking(arguments.binary, arguments.comfyui, database),
        "burst": lambda: measure_burst(arguments.binary, arguments.comfyui, database, arguments.burst),
        "sessions": lambda: measure_sessions(arguments.binary, arguments.comfyui, database, arguments.sessions),
    }
    for name, measure in measures.items():
        if arguments.only in (None, name):
            measure()


if __name__ == "__main__":
    main()
