"""The official Python MCP SDK (mcp 2.3.0) drives the binary over stdio and Streamable HTTP, at
protocol versions 2025-11-25 and 2026-07-28.

How SDK 2.3.0 picks the protocol version (mcp/client/client.py, `Client.mode`):
- mode="legacy": the `initialize` handshake, offering LATEST_HANDSHAKE_VERSION = "2025-11-25";
- mode="2026-07-28": no handshake; every request carries the stateless `_meta` envelope
  (`io.modelcontextprotocol/protocolVersion` etc.) and, over HTTP, `MCP-Protocol-Version`;
- mode="auto" (the default): probes `server/discover` at 2026-07-28 and falls back to `initialize`.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jsonschema
import pytest
from mcp import Client, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from checks import check_era_in_server_log, check_progress, check_tool_listing, png_b64, png_size_b64
from conftest import HttpServer

pytestmark = pytest.mark.anyio

MODES = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}
TRANSPORTS = ["stdio", "http"]
CALL_TIMEOUT = 90


class HttpLog:
    """Every HTTP exchange the SDK makes: (method, request headers, JSON-RPC method or None, status,
    response headers)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], str | None]] = []
        self.responses: list[tuple[str, int, dict[str, str]]] = []

    async def on_request(self, request: httpx2.Request) -> None:
        rpc_method = None
        if request.method == "POST":
            try:
                rpc_method = json.loads(request.content).get("method")
            except (ValueError, AttributeError):
                pass
        self.requests.append((request.method, {k.lower(): v for k, v in request.headers.items()}, rpc_method))

    async def on_response(self, response: httpx2.Response) -> None:
        self.responses.append(
            (response.request.method, response.status_code, {k.lower(): v for k, v in response.headers.items()})
        )


@asynccontextmanager
async def connect(
    transport: str,
    mode: str,
    *,
    binary: str,
    env: dict[str, str],
    log_dir: Path,
    server: HttpServer | None = None,
    headers: dict[str, str] | None = None,
    http_log: HttpLog | None = None,
    **client_options: Any,
) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        if transport == "stdio":
            errlog = stack.enter_context(open(log_dir / f"stdio-{uuid.uuid4().hex[:8]}.log", "w"))
            params = StdioServerParameters(command=binary, args=["serve"], env=env)
            wire = stdio_client(params, errlog=errlog)
        else:
            assert server is not None
            http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
            if http_log is not None:
                http.event_hooks = {"request": [http_log.on_request], "response": [http_log.on_response]}
            wire = streamable_http_client(server.url, http_client=http)
        client = await stack.enter_async_context(
            Client(wire, mode=mode, read_timeout_seconds=CALL_TIMEOUT, **client_options)
        )
        yield client


def generate_arguments() -> dict[str, Any]:
    return {
        "prompt": f"conformance {uuid.uuid4()}",
        "width": 64,
        "height": 64,
        "steps": 4,
        "checkpoint": "tiny-sd15-micro.ckpt",
        "seed": random.randrange(2**31),
    }


@pytest.mark.parametrize("version", list(MODES))
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_list_generate_read(
    transport: str, version: str, binary: str, server_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("http_server") if transport == "http" else None
    http_log = HttpLog()
    with anyio.fail_after(CALL_TIMEOUT):
        async with connect(
            transport, MODES[version], binary=binary, env=server_env, log_dir=tmp_path, server=server, http_log=http_log
        ) as client:
            assert client.protocol_version == version

            listing = await client.list_tools()
            check_tool_listing(listing.tools)
            assert listing.next_cursor is None

            progress: list[tuple[float, float | None, str | None]] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append((value, total, message))

            result = await client.call_tool("generate_image", generate_arguments(), progress_callback=on_progress)
            assert not result.is_error, f"generate_image failed: {result.content}"
            check_progress(progress)

            texts = [block for block in result.content if block.type == "text"]
            images = [block for block in result.content if block.type == "image"]
            links = [block for block in result.content if block.type == "resource_link"]
            assert texts and images and links, f"expected text, image and resource_link blocks, got {result.content}"
            assert images[0].mime_type == "image/png"
            assert png_size_b64(images[0].data) == (64, 64)

            summary = json.loads(texts[0].text)
            link = links[0]
            assert link.uri.startswith("comfyui://"), link.uri
            assert link.mime_type == "image/png"
            assert link.uri in {output["resource_uri"] for output in summary["outputs"]}

            resource = await client.read_resource(link.uri, cache_mode="bypass")
            assert len(resource.contents) == 1
            contents = resource.contents[0]
            assert str(contents.uri) == link.uri
            assert contents.mime_type == "image/png"
            assert getattr(contents, "blob", None), "resources/read should return the PNG as a blob"
            assert png_size_b64(contents.blob) == (64, 64)

    if transport == "http":
        check_http_wire(version, http_log)
    else:
        (log,) = tmp_path.glob("stdio-*.log")
        check_era_in_server_log(version, log.read_text(errors="replace"))


def check_http_wire(version: str, log: HttpLog) -> None:
    """What went over the wire matches the protocol version: a session for 2025-11-25, none for
    2026-07-28, and the MCP-Protocol-Version header on every request after negotiation."""
    posts = [(headers, method) for verb, headers, method in log.requests if verb == "POST"]
    rpc_methods = [method for _headers, method in posts]
    assert all(status < 400 for _verb, status, _headers in log.responses), log.responses
    if version == "2025-11-25":
        assert rpc_methods[0] == "initialize", rpc_methods
        first_response = next(headers for verb, _status, headers in log.responses if verb == "POST")
        assert "mcp-session-id" in first_response, "the initialize response must assign an Mcp-Session-Id"
        for headers, method in posts[1:]:
            assert headers.get("mcp-protocol-version") == version, (method, headers)
            assert headers.get("mcp-session-id") == first_response["mcp-session-id"], (method, headers)
    else:
        assert "initialize" not in rpc_methods, rpc_methods
        for headers, method in posts:
            assert headers.get("mcp-protocol-version") == version, (method, headers)
            assert "mcp-session-id" not in headers, (method, headers)
        assert not any("mcp-session-id" in headers for _verb, _status, headers in log.responses), (
            "a 2026-07-28 exchange is stateless: no response may assign an Mcp-Session-Id"
        )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_auto_negotiation_picks_2026_07_28(
    transport: str, binary: str, server_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The SDK's default mode probes server/discover; the server answers it, so the SDK settles on
    2026-07-28 and gets the server's identity from the discover result."""
    server = request.getfixturevalue("http_server") if transport == "http" else None
    with anyio.fail_after(CALL_TIMEOUT):
        async with connect(transport, "auto", binary=binary, env=server_env, log_dir=tmp_path, server=server) as client:
            assert client.protocol_version == "2026-07-28"
            assert client.server_info is not None and client.server_info.name == "comfyui-mcp"
            assert client.server_capabilities.tools is not None
            assert client.server_capabilities.resources is not None
            check_tool_listing((await client.list_tools()).tools)


async def test_tool_list_is_the_same_everywhere(
    binary: str, server_env: dict[str, str], tmp_path: Path, http_server: HttpServer
) -> None:
    """tools/list must not vary per connection (2026-07-28): identical over both transports, both
    versions, and two connections."""
    listings = {}
    with anyio.fail_after(CALL_TIMEOUT):
        for transport in TRANSPORTS:
            for version, mode in MODES.items():
                for attempt in range(2 if transport == "stdio" else 1):
                    async with connect(
                        transport, mode, binary=binary, env=server_env, log_dir=tmp_path, server=http_server
                    ) as client:
                        tools = (await client.list_tools(cache_mode="bypass")).tools
                        listings[(transport, version, attempt)] = [tool.model_dump(by_alias=True) for tool in tools]
    reference = listings[("stdio", "2025-11-25", 0)]
    for key, listing in listings.items():
        assert listing == reference, f"tools/list for {key} differs from stdio 2025-11-25"


@pytest.mark.parametrize("version", list(MODES))
async def test_token_required_when_configured(
    version: str, binary: str, server_env: dict[str, str], tmp_path: Path, http_server_with_token: HttpServer
) -> None:
    """With COMFYUI_MCP_HTTP_TOKEN set, the SDK connects with the right bearer token and fails without."""
    server = http_server_with_token
    good = {"Authorization": f"Bearer {server.token}"}
    with anyio.fail_after(CALL_TIMEOUT):
        async with connect(
            "http", MODES[version], binary=binary, env=server_env, log_dir=tmp_path, server=server, headers=good
        ) as client:
            assert client.protocol_version == version
            check_tool_listing((await client.list_tools()).tools)
            status = await client.call_tool("status", {})
            assert not status.is_error, status.content
            assert json.loads(status.content[0].text)["backends"][0]["reachable"] is True

        for headers in (None, {"Authorization": "Bearer wrong-token"}):
            http_log = HttpLog()
            # The SDK has no 401-specific error without an OAuth provider: the connect just fails.
            with pytest.raises(Exception):
                async with connect(
                    "http",
                    MODES[version],
                    binary=binary,
                    env=server_env,
                    log_dir=tmp_path,
                    server=server,
                    headers=headers,
                    http_log=http_log,
                ) as client:
                    await client.list_tools()
            statuses = [status for _verb, status, _headers in http_log.responses]
            assert statuses and set(statuses) == {401}, f"expected only 401 replies, got {statuses}"


def structured_calls() -> dict[str, list[dict[str, Any]]]:
    """Arguments to call each tool with a declared output schema with, on the rig: every answer
    must carry structured content that validates."""
    return {
        "status": [{}],
        "list_models": [
            {},
            {"folder": "checkpoints"},
            {"folder": "checkpoints", "contains": "tiny"},
            {"folder": "checkpoints", "name": "tiny-sd15-micro.ckpt", "metadata": True},
            {"folder": "checkpoints", "name": "no-such-model.safetensors"},
        ],
        "search_nodes": [{"query": "sampler"}, {"query": "image", "limit": 3}, {"query": "zzz-no-such-node"}],
        "describe_node": [{"class_type": "KSampler"}, {"class_type": "CheckpointLoaderSimple"}, {"class_type": "SaveImage"}],
        "list_jobs": [{}, {"limit": 3}],
        "upload_image": [{"data_base64": png_b64(8, 8), "filename": f"conformance-{uuid.uuid4().hex[:12]}.png"}],
        "search_outputs": [{}, {"text": "conformance", "limit": 2}, {"include_parameters": False, "order": "relevance"}],
        "find_similar_images": [{"data_base64": png_b64(16, 16)}, {"data_base64": png_b64(16, 16), "max_distance": 64}],
        "job_metrics": [{}, {"group_by": "backend", "recent": 5}],
        "estimate_generation_time": [{}, {"steps": 4, "width": 64, "height": 64}],
        "audit_log": [{}, {"limit": 2}],
        "search_templates": [
            {"words": "image generation", "model": "SD1.5"},
            {"media_type": "video", "limit": 3},
            {"include_api": True, "words": "api", "limit": 2},
            {"media_type": "audio", "runnable_only": True},
        ],
        "analyze_image_composition": [
            {"image": {"data_base64": png_b64(32, 24)}},
            {"image": {"data_base64": png_b64(16, 16)}, "palette_size": 2},
        ],
        "list_toolsets": [{}],
        "enable_toolset": [{"toolset": "insights"}],
    }


# Structured tools whose every call needs state the rig cannot promise (a job to cancel): they are
# called when the state is there (see `test_structured_results_validate`), else their error path is.
NEEDS_STATE = {"cancel_job"}


def check_structured(name: str, arguments: dict[str, Any], result: Any, schema: dict[str, Any]) -> None:
    """A successful call of a tool with an output schema: structured content that validates against
    the schema and is exactly the JSON of the text block (what text-only clients read)."""
    assert not result.is_error, f"{name} {arguments} failed: {result.content}"
    structured = result.structured_content
    assert isinstance(structured, dict), f"{name} {arguments}: no structured content (got {structured!r})"
    jsonschema.Draft202012Validator(schema).validate(structured)
    texts = [block.text for block in result.content if block.type == "text"]
    assert texts, f"{name} {arguments}: no text block"
    assert json.loads(texts[0]) == structured, f"{name} {arguments}: the text block is not the structured content"


@pytest.mark.parametrize("version", list(MODES))
async def test_structured_results_validate(
    version: str, binary: str, server_env: dict[str, str], tmp_path: Path
) -> None:
    """Every tool that declares an outputSchema answers structuredContent conforming to it (the
    schemas themselves are valid JSON Schema 2020-12 objects), and its errors stay plain tool
    errors, without structured content."""
    calls = structured_calls()
    env = {**server_env, "COMFYUI_MCP_TOOLSETS": "all"}
    dynamic_env = {**server_env, "COMFYUI_MCP_DYNAMIC_TOOLSETS": "true"}
    with anyio.fail_after(CALL_TIMEOUT * 3):
        for environment in (env, dynamic_env):
            async with connect("stdio", MODES[version], binary=binary, env=environment, log_dir=tmp_path) as client:
                tools = (await client.list_tools()).tools
                schemas = {tool.name: tool.output_schema for tool in tools if tool.output_schema is not None}
                for name, schema in schemas.items():
                    jsonschema.Draft202012Validator.check_schema(schema)
                    assert schema.get("type") == "object", f"{name}: outputSchema {schema!r}"
                    assert name in calls or name in NEEDS_STATE, f"{name} has an outputSchema but no call here"
                for name, schema in schemas.items():
                    for arguments in calls.get(name, []):
                        result = await client.call_tool(name, arguments)
                        check_structured(name, arguments, result, schema)
                if "cancel_job" in schemas:
                    missing = await client.call_tool("cancel_job", {"job_id": str(uuid.uuid4())})
                    assert missing.is_error and missing.structured_content is None, missing
                    jobs = await client.call_tool("list_jobs", {"limit": 1})
                    finished = [
                        job["job_id"]
                        for backend in jobs.structured_content["backends"]
                        for job in backend["comfyui_history"]
                    ]
                    if finished:
                        arguments = {"job_id": finished[0]}
                        result = await client.call_tool("cancel_job", arguments)
                        check_structured("cancel_job", arguments, result, schemas["cancel_job"])
                if "find_similar_images" in schemas:
                    found = await client.call_tool("search_outputs", {"limit": 1})
                    for output in found.structured_content["outputs"]:
                        arguments = {"output_id": output["id"]}
                        result = await client.call_tool("find_similar_images", arguments)
                        check_structured("find_similar_images", arguments, result, schemas["find_similar_images"])
                if "describe_node" in schemas:
                    unknown = await client.call_tool("describe_node", {"class_type": "NoSuchNodeAnywhere"})
                    assert unknown.is_error and unknown.structured_content is None, unknown


@pytest.mark.parametrize("version", list(MODES))
async def test_experiment_asks_the_person_through_elicitation(
    version: str, binary: str, server_env: dict[str, str], tmp_path: Path
) -> None:
    """`experiment action=ask` puts one form to the person (a choice per seed) and records the
    answers: asked directly on a 2025-11-25 session, through an InputRequiredResult and the retried
    call on 2026-07-28. The SDK's own elicitation callback stands in for the person."""
    forms: list[Any] = []

    async def person(context: Any, params: Any) -> types.ElicitResult:
        forms.append(params)
        choices = {key: "more" for key in params.requested_schema["properties"]}
        return types.ElicitResult(action="accept", content=choices)

    env = {**server_env, "COMFYUI_MCP_TOOLSETS": "core,insights"}
    with anyio.fail_after(CALL_TIMEOUT * 2):
        async with connect(
            "stdio", MODES[version], binary=binary, env=env, log_dir=tmp_path, elicitation_callback=person
        ) as client:
            seeds = [random.randrange(2**31) for _ in range(3)]
            created = await client.call_tool(
                "experiment",
                {
                    "action": "create", "name": "conformance", "prompt": f"conformance {uuid.uuid4()}",
                    "checkpoint": "tiny-sd15-micro.ckpt", "width": 64, "height": 64, "seeds": seeds,
                    "variants": [{"name": "few", "steps": 2}, {"name": "more", "steps": 4}],
                },
            )
            assert not created.is_error, created.content
            experiment_id = json.loads(created.content[0].text)["experiment_id"]
            asked = await client.call_tool("experiment", {"action": "ask", "experiment_id": experiment_id})
            assert not asked.is_error, asked.content
            answer = json.loads(asked.content[0].text)
            assert answer["recorded"] == 3, answer
            assert answer["choices"]["wins"] == [[0, 0], [3, 0]], answer
            assert len(forms) == 1, forms
            form = forms[0]
            assert sorted(form.requested_schema["properties"]) == sorted(f"seed_{seed}" for seed in seeds)
            assert form.requested_schema["properties"][f"seed_{seeds[0]}"]["enum"] == ["few", "more", "no preference"]
            # Every seed is judged now: nothing more to ask, no second form.
            again = await client.call_tool("experiment", {"action": "ask", "experiment_id": experiment_id})
            assert json.loads(again.content[0].text)["asked"] == 0
            assert len(forms) == 1


@pytest.mark.parametrize("version", list(MODES))
async def test_optimize_prompt_asks_the_clients_model_through_sampling(
    version: str, binary: str, server_env: dict[str, str], tmp_path: Path
) -> None:
    """`optimize_prompt` with two rounds: two sampling requests, the second rewriting the first's
    answer (on 2026-07-28 the first answer travels back in the request state); a client without
    sampling gets the precise refusal. The SDK's sampling callback stands in for the model."""
    requests: list[Any] = []

    async def model(context: Any, params: Any) -> types.CreateMessageResult:
        requests.append(params)
        text = params.messages[-1].content.text
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f'"round {len(requests)}: {text.splitlines()[-1]}"'),
            model="conformance-model",
        )

    env = {**server_env, "COMFYUI_MCP_TOOLSETS": "analysis"}
    arguments = {"prompt": "a red fox in snow", "family": "flux", "goal": "winter dusk", "rounds": 2}
    with anyio.fail_after(CALL_TIMEOUT):
        async with connect("stdio", MODES[version], binary=binary, env=env, log_dir=tmp_path, sampling_callback=model) as client:
            result = await client.call_tool("optimize_prompt", arguments)
            assert not result.is_error, result.content
            answer = json.loads(result.content[0].text)
            assert [round_["model"] for round_ in answer["rounds"]] == ["conformance-model"] * 2
            assert answer["prompt"] == "round 2: round 1: a red fox in snow", answer
            assert len(requests) == 2, requests
            assert "T5" in requests[0].system_prompt and "Goal of this rewrite: winter dusk" in requests[0].messages[0].content.text
            assert requests[1].messages[0].content.text.endswith("round 1: a red fox in snow")
        async with connect("stdio", MODES[version], binary=binary, env=env, log_dir=tmp_path) as client:
            refused = await client.call_tool("optimize_prompt", arguments)
            assert refused.is_error and "does not support sampling" in refused.content[0].text, refused.content
