#!/usr/bin/env python3
"""Random-weight detection models for the ComfyUI versions that have the nodes (0.26 on).

The shared models (make_models.py) are built once with whichever ComfyUI installs first, so a
model only newer trees can describe is made here, per install, with that install's own tree:

    diffusion_models/random-rt_detr_v4.pt   RT-DETR v4 (HGNetv2-B5 backbone, the encoder
                                            narrowed to 64 channels), as ComfyUI's RTv4 class
                                            lays it out, every weight a view into one small
                                            shared storage

Its backbone is fixed by ComfyUI's class, so it is not small in memory (tens of millions of
parameters); its boxes and scores are noise, but UNETLoader's detection, RTDETR_detect and
DrawBBoxes run for real. A tree without comfy/ldm/rt_detr gets nothing.

    python tiny_detection.py --comfyui-dir DIR --out MODELS_DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_models  # noqa: E402  (beside this file: ComfyUI import, init and file helpers)

SEED = 20261204
ENCODER_CHANNELS = 64  # model_detection reads it back from encoder.pan_blocks.1.cv4
RT_DETR_FILE = Path("diffusion_models") / "random-rt_detr_v4.pt"
# Parameters the class sets to fixed values the decoder depends on; kept as constructed.
FIXED_PARAMETERS = ("up", "reg_scale")


def has_rt_detr(comfyui_dir: Path) -> bool:
    return (comfyui_dir / "comfy" / "ldm" / "rt_detr" / "rtdetr_v4.py").is_file()


def make_rt_detr(torch, comfy, path: Path) -> None:
    """Every weight a view into one shared fp16 storage (make_models' micro layout), so the file
    is small; buffers and the decoder's fixed parameters are stored as the class makes them."""
    import comfy.ldm.rt_detr.rtdetr_v4 as rtdetr

    model = rtdetr.RTv4(enc_h=ENCODER_CHANNELS, dtype=torch.float32,
                        operations=comfy.ops.disable_weight_init)
    gen = torch.Generator().manual_seed(SEED)
    kinds = {key: kind for key, kind in make_models.param_kinds(torch, model, "").items()
             if key.rsplit(".", 1)[-1] not in FIXED_PARAMETERS}
    state = model.state_dict()
    shapes = {key: tuple(state[key].shape) for key in kinds}
    sd = make_models.views_state_dict(torch, kinds, shapes, gen, make_models.REGION)
    for key, value in state.items():
        if key not in sd:  # buffers (anchors, projections, norm statistics), fixed parameters
            sd[key] = value.detach().clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": sd}, str(path))
    count = sum(value.numel() for value in sd.values())
    make_models.log(f"{path.name}: {count / 1e6:.1f} M values, {path.stat().st_size / 1e6:.1f} MB")


def check(torch, comfy, out: Path) -> None:
    """Loads the model as UNETLoader does and runs one detection."""
    import comfy.sd

    t0 = time.monotonic()
    patcher = comfy.sd.load_diffusion_model(str(out / RT_DETR_FILE))
    kind = type(patcher.model.model_config).__name__
    if kind != "RT_DETR_v4":
        raise SystemExit(f"{RT_DETR_FILE.name}: detected as {kind}")
    image = torch.rand(1, 3, 640, 640)
    with torch.no_grad():
        found = patcher.model.diffusion_model(image, (64, 48))
    scores = found[0]["scores"]
    if not bool(torch.isfinite(scores).all()) or not bool(torch.isfinite(found[0]["boxes"]).all()):
        raise SystemExit(f"{RT_DETR_FILE.name}: non-finite boxes or scores")
    make_models.log(f"check {RT_DETR_FILE.name}: {kind}, {scores.numel()} boxes, "
                    f"scores {float(scores.min()):.3f}..{float(scores.max()):.3f}, "
                    f"{time.monotonic() - t0:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui-dir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    comfyui_dir = args.comfyui_dir.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if not has_rt_detr(comfyui_dir):
        make_models.log("this ComfyUI has no RT-DETR: no detection model")
        return 0
    comfy = make_models.import_comfy(comfyui_dir)
    import torch

    torch.manual_seed(SEED)
    make_rt_detr(torch, comfy, args.out / RT_DETR_FILE)
    for f in args.out.rglob("*"):
        if f.is_file():
            f.chmod(0o644)
    check(torch, comfy, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
