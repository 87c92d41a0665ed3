#!/usr/bin/env python3
"""Smoke test of a running rig instance: every tiny model through the real server.

    python3 rig/smoke.py --url http://127.0.0.1:PORT [--log INSTANCE_DIR/comfyui.log]

Posts API prompts (txt2img with each checkpoint, + LoRA, + upscale model, + ControlNet with an
uploaded PNG, + textual-inversion embedding), interrupts a 200-step run, checks the model and
metadata endpoints, and prints one JSON object with a result per case (exit 1 if any failed).
Standard library only; it polls /history, which is fine for a test utility.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from pathlib import Path

CKPTS = ("tiny-sd15-micro.ckpt", "tiny-sd15-fp16.safetensors")


def log(msg: str) -> None:
    print(f"[smoke] {msg}", file=sys.stderr, flush=True)


class Client:
    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.client_id = "rig-smoke-" + uuid.uuid4().hex

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None, timeout: float = 60) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path: str):
        status, body = self.request("GET", path)
        if status != 200:
            raise AssertionError(f"GET {path} -> {status}: {body[:300]!r}")
        return json.loads(body)

    def post_json(self, path: str, obj) -> tuple[int, bytes]:
        return self.request("POST", path, json.dumps(obj).encode(),
                            {"Content-Type": "application/json"})

    def queue(self, prompt: dict) -> str:
        status, body = self.post_json("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if status != 200:
            raise AssertionError(f"POST /prompt -> {status}: {body[:1000]!r}")
        return json.loads(body)["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hist = self.get_json(f"/history/{prompt_id}")
            entry = hist.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                return entry
            time.sleep(0.05)
        raise AssertionError(f"prompt {prompt_id} not finished after {timeout} s")

    def run(self, prompt: dict) -> tuple[dict, float]:
        t0 = time.monotonic()
        entry = self.wait(self.queue(prompt))
        return entry, time.monotonic() - t0

    def upload_png(self, name: str, data: bytes) -> dict:
        boundary = "rigsmoke" + uuid.uuid4().hex
        parts = [
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n".encode() + data + b"\r\n",
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\n"
            "true\r\n".encode(),
            f"--{boundary}--\r\n".encode(),
        ]
        status, body = self.request(
            "POST", "/upload/image", b"".join(parts),
            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if status != 200:
            raise AssertionError(f"upload -> {status}: {body[:300]!r}")
        return json.loads(body)


def png_bytes(width: int, height: int) -> bytes:
    """A small RGB PNG with a gradient and a cross, written with zlib only."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            edge = 255 if (abs(x - width // 2) < 2 or abs(y - height // 2) < 2) else 0
            row += bytes([(x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1), edge])
        rows.append(bytes(row))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


# ----------------------------------------------------------------------------- prompts


def txt2img(ckpt: str, text: str, seed: int, steps: int = 4, prefix: str = "smoke") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler",
              "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                         "latent_image": ["4", 0], "seed": seed, "steps": steps, "cfg": 7.0,
                         "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def with_lora(p: dict) -> dict:
    p["10"] = {"class_type": "LoraLoader",
               "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "tiny-lora.safetensors",
                          "strength_model": 1.0, "strength_clip": 1.0}}
    p["2"]["inputs"]["clip"] = ["10", 1]
    p["3"]["inputs"]["clip"] = ["10", 1]
    p["5"]["inputs"]["model"] = ["10", 0]
    return p


def with_upscale(p: dict) -> dict:
    p["20"] = {"class_type": "UpscaleModelLoader",
               "inputs": {"model_name": "tiny-compact-x2.safetensors"}}
    p["21"] = {"class_type": "ImageUpscaleWithModel",
               "inputs": {"upscale_model": ["20", 0], "image": ["6", 0]}}
    p["7"]["inputs"]["images"] = ["21", 0]
    return p


def with_controlnet(p: dict, image_name: str) -> dict:
    p["30"] = {"class_type": "ControlNetLoader",
               "inputs": {"control_net_name": "tiny-controlnet.safetensors"}}
    p["31"] = {"class_type": "LoadImage", "inputs": {"image": image_name}}
    p["32"] = {"class_type": "ControlNetApplyAdvanced",
               "inputs": {"positive": ["2", 0], "negative": ["3", 0], "control_net": ["30", 0],
                          "image": ["31", 0], "strength": 1.0, "start_percent": 0.0,
                          "end_percent": 1.0, "vae": ["1", 2]}}
    p["5"]["inputs"]["positive"] = ["32", 0]
    p["5"]["inputs"]["negative"] = ["32", 1]
    return p


# ----------------------------------------------------------------------------- cases


def output_images(c: Client, entry: dict) -> list[bytes]:
    images = []
    for node_out in entry.get("outputs", {}).values():
        for img in node_out.get("images", []):
            q = urllib.parse.urlencode({"filename": img["filename"], "subfolder": img["subfolder"],
                                        "type": img["type"]})
            status, data = c.request("GET", "/view?" + q)
            assert status == 200, f"/view -> {status}"
            images.append(data)
    return images


def expect_success(c: Client, prompt: dict, size: tuple[int, int],
                   differs_from: bytes | None = None) -> dict:
    entry, seconds = c.run(prompt)
    st = entry["status"]
    assert st["status_str"] == "success", f"status {st}"
    images = output_images(c, entry)
    sizes = [png_size(d) for d in images]
    assert sizes == [size], f"outputs {sizes}, expected [{size}]"
    if differs_from is not None:
        assert images[0] != differs_from, "same picture as without the extra model"
    return {"ok": True, "seconds": round(seconds, 3), "images": [list(s) for s in sizes],
            "png": images[0]}


def case_interrupt(c: Client) -> dict:
    prompt = txt2img(CKPTS[0], f"interrupt me {uuid.uuid4().hex}", 7, steps=200, prefix="smoke-int")
    pid = c.queue(prompt)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until it is the running item
        running = c.get_json("/queue")["queue_running"]
        if any(item[1] == pid for item in running):
            break
        time.sleep(0.05)
    time.sleep(1.0)  # well into sampling
    t0 = time.monotonic()
    status, _ = c.post_json("/interrupt", {"prompt_id": pid})
    assert status == 200
    entry = c.wait(pid, timeout=60)
    st = entry["status"]
    kinds = [m[0] for m in st.get("messages", [])]
    assert st["status_str"] == "error" and "execution_interrupted" in kinds, f"status {st}"
    return {"ok": True, "stopped_after_s": round(time.monotonic() - t0, 3), "messages": kinds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--log", help="the instance's comfyui.log, scanned for loader warnings")
    args = ap.parse_args()
    c = Client(args.url)
    results: dict[str, dict] = {}
    tag = uuid.uuid4().hex[:8]
    log_start = Path(args.log).stat().st_size if args.log else 0

    def case(name, fn):
        log(f"case {name}")
        try:
            results[name] = fn()
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        log("  -> " + json.dumps({k: v for k, v in results[name].items() if k != "png"}))

    def endpoints():
        ckpts = c.get_json("/models/checkpoints")
        assert sorted(ckpts) == sorted(CKPTS), ckpts
        embs = c.get_json("/embeddings")
        assert "tiny-embedding" in embs, embs
        meta = c.get_json("/view_metadata/loras?filename=tiny-lora.safetensors")
        assert meta.get("ss_base_model_version") == "sd_v1", meta
        assert "ss_tag_frequency" in meta, meta
        found = {f: c.get_json(f"/models/{f}") for f in ("loras", "upscale_models", "controlnet")}
        assert found == {"loras": ["tiny-lora.safetensors"],
                         "upscale_models": ["tiny-compact-x2.safetensors"],
                         "controlnet": ["tiny-controlnet.safetensors"]}, found
        return {"ok": True, "checkpoints": ckpts, "embeddings": embs, **found,
                "lora_metadata_keys": sorted(meta)}

    case("endpoints", endpoints)
    for i, ckpt in enumerate(CKPTS):
        case(f"txt2img:{ckpt}", lambda ckpt=ckpt, i=i: expect_success(
            c, txt2img(ckpt, f"a cat {tag} {i}", 100 + i), (64, 64)))
    # The extras run the same text and seed as "base", so each must change the picture.
    text = f"tinytrigger a dog {tag}"
    case("base", lambda: expect_success(c, txt2img(CKPTS[0], text, 5), (64, 64)))
    base = results["base"].get("png")
    case("embedding", lambda: expect_success(
        c, txt2img(CKPTS[0], text + " embedding:tiny-embedding", 5), (64, 64), base))
    case("lora", lambda: expect_success(
        c, with_lora(txt2img(CKPTS[0], text, 5)), (64, 64), base))
    case("upscale", lambda: expect_success(
        c, with_upscale(txt2img(CKPTS[0], text, 5)), (128, 128)))

    def controlnet():
        up = c.upload_png(f"smoke-control-{tag}.png", png_bytes(64, 64))
        return expect_success(c, with_controlnet(txt2img(CKPTS[0], text, 5), up["name"]),
                              (64, 64), base)

    case("controlnet", controlnet)
    case("all_extras", lambda: expect_success(
        c, with_controlnet(with_upscale(with_lora(txt2img(CKPTS[1], f"an owl {tag}", 11))),
                           f"smoke-control-{tag}.png"), (128, 128)))
    case("interrupt", lambda: case_interrupt(c))

    if args.log:
        with open(args.log, "rb") as fh:
            fh.seek(log_start)
            text = fh.read().decode(errors="replace")
        bad = [line for line in text.splitlines()
               if any(s in line for s in ("lora key not loaded", "missing controlnet keys",
                                          "does not exist, ignoring", "Traceback",
                                          "invalid value encountered"))]
        results["log_scan"] = {"ok": not bad, "suspicious_lines": bad[:20]}

    for r in results.values():
        r.pop("png", None)
    ok = all(r.get("ok") for r in results.values())
    print(json.dumps({"ok": ok, "cases": results}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
