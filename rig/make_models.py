#!/usr/bin/env python3
"""Generate tiny, deterministic, random-weight models that ComfyUI's real loaders accept.

Runs inside the rig's venv (it needs torch, safetensors and spandrel) and imports module classes
from the ComfyUI tree given with --comfyui-dir, so the files have exactly the layout ComfyUI
expects. Nothing here is a trained model: outputs are noise, but every loader, patcher and
sampler path runs for real.

    python make_models.py --comfyui-dir DIR --out MODELS_DIR [--no-check]

Writes (relative to MODELS_DIR):
    checkpoints/tiny-sd15-micro.ckpt          SD1.5-detected checkpoint, every tensor a view
                                              into a few shared storages (about 2.5 MB)
    checkpoints/tiny-sd15-fp16.safetensors    the same architecture, UNet fp16, CLIP fp8,
                                              TAESD fp16, with __metadata__
    loras/tiny-lora.safetensors               kohya-style rank-4 LoRA (UNet attention + CLIP)
    upscale_models/tiny-compact-x2.safetensors  spandrel Compact x2 upscaler
    controlnet/tiny-controlnet.safetensors    ldm ControlNet matching the tiny UNet
    embeddings/tiny-embedding.safetensors     textual-inversion embedding, 2 x 768
and the video and audio models of tiny_media.py (Wan 2.1 text-to-video with its VAE, CLIP-L and
T5 base text encoders, Stable Audio Open).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

SEED = 20251123
REGION = 1 << 16  # values per random region of the shared storage (micro checkpoint)
CONST_REGION = 1  # ones and zeros are broadcast with stride 0

# Tiny SD1.5-compatible UNet. supported_models.SD15 matches context_dim 768, model_channels 320,
# use_linear_in_transformer False, adm_in_channels None, use_temporal_attention False; levels and
# block counts are free.
UNET_CONFIG = dict(
    image_size=32,
    in_channels=4,
    out_channels=4,
    model_channels=320,
    num_res_blocks=[1],
    channel_mult=[1],
    transformer_depth=[1],
    transformer_depth_output=[0, 0],
    transformer_depth_middle=-2,  # no middle block
    num_heads=8,
    num_head_channels=-1,
    context_dim=768,
    use_spatial_transformer=True,
    use_linear_in_transformer=False,
    legacy=False,
    adm_in_channels=None,
    use_temporal_attention=False,
    use_temporal_resblock=False,
)

LORA_RANK = 4
LORA_TRIGGER = "tinytrigger"


def log(msg: str) -> None:
    print(f"[make_models] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- file writing


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """safetensors.torch.save_file with a byte-for-byte reproducible header.

    safetensors writes __metadata__ in hash-map order, which changes from run to run; the
    header is rewritten here with sorted keys (offsets are explicit, so order is free).
    """
    import safetensors.torch

    blob = safetensors.torch.save(tensors, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        fh.write(blob[8 + n:])


# ----------------------------------------------------------------------------- ComfyUI import


def import_comfy(comfyui_dir: Path):
    sys.path.insert(0, str(comfyui_dir))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # must be set before comfy.model_management is imported
    import comfy.ops  # noqa: F401
    import comfy.model_management  # noqa: F401
    import comfy.ldm.modules.diffusionmodules.openaimodel  # noqa: F401
    import comfy.clip_model  # noqa: F401
    import comfy.taesd.taesd  # noqa: F401
    import comfy.cldm.cldm  # noqa: F401

    return comfy


# ----------------------------------------------------------------------------- initialisation


# Extra factor on the init std of some weights, by key in the checkpoint (none needed so far).
STD_SCALE: dict[str, float] = {}


def init_module(torch, module, gen, prefix: str = "") -> None:
    """Deterministic init for modules built with disable_weight_init (which leaves memory as is).

    Norm weights 1, biases 0, other weights normal(0, STD_SCALE / sqrt(fan_in)).
    """
    norm_types = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.BatchNorm2d)
    with torch.no_grad():
        for mod_name, mod in module.named_modules():
            for p_name, p in mod.named_parameters(recurse=False):
                if isinstance(mod, norm_types):
                    p.fill_(1.0 if p_name == "weight" else 0.0)
                elif p_name == "bias" or p.dim() < 2:
                    p.fill_(1.0 if p_name == "vae_scale" else 0.0)
                else:
                    fan_in = p[0].numel()
                    key = prefix + (f"{mod_name}.{p_name}" if mod_name else p_name)
                    std = STD_SCALE.get(key, 1.0) / math.sqrt(fan_in)
                    p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std)


def param_kinds(torch, module, prefix: str) -> dict:
    """key -> ("ones" | "zeros" | ("randn", std)) for the shared-storage checkpoint."""
    norm_types = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.BatchNorm2d)
    kinds = {}
    for mod_name, mod in module.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            key = prefix + (f"{mod_name}.{p_name}" if mod_name else p_name)
            if isinstance(mod, norm_types):
                kinds[key] = "ones" if p_name == "weight" else "zeros"
            elif p_name == "bias" or p.dim() < 2:
                kinds[key] = "ones" if p_name == "vae_scale" else "zeros"
            else:
                std = STD_SCALE.get(key, 1.0) / math.sqrt(p[0].numel())
                kinds[key] = ("randn", round(std, 5))
    return kinds


# ----------------------------------------------------------------------------- model builders


def build_unet(torch, comfy, dtype):
    ops = comfy.ops.disable_weight_init
    cfg = dict(UNET_CONFIG)
    return comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel(
        **cfg, dtype=dtype, device="cpu", operations=ops
    )


def build_clip(torch, comfy, dtype):
    cfg_path = Path(comfy.clip_model.__file__).parent / "sd1_clip_config.json"
    config = json.loads(cfg_path.read_text())
    return comfy.clip_model.CLIPTextModel(config, dtype, "cpu", comfy.ops.disable_weight_init)


def build_taesd(torch, comfy):
    return comfy.taesd.taesd.TAESD(latent_channels=4)


def checkpoint_modules(torch, comfy):
    """(prefix, module) pairs of an SD1.5 checkpoint; text_projection is left out on purpose."""
    unet = build_unet(torch, comfy, torch.float32)
    clip = build_clip(torch, comfy, torch.float32)
    taesd = build_taesd(torch, comfy)
    return [
        ("model.diffusion_model.", unet),
        ("cond_stage_model.transformer.", clip),
        (TAESD_PREFIX, taesd),
    ]


TAESD_PREFIX = "first_stage_model."
TAESD_LAST = "taesd_decoder.19."  # the decoder's final conv (64 -> 3 channels)


def calibrate_taesd(torch, taesd, gen) -> None:
    """Rescale the decoder's final conv so that decoded images are visible noise.

    With random weights the decoder's output sits almost entirely on one side of [0, 1], and
    ComfyUI clamps it to a black or white picture. Sampled latents from a random UNet are large,
    so the decoder's input Clamp saturates; calibrate on such inputs to mean 0.5, std 0.2.
    """
    dec = taesd.taesd_decoder
    last = dec[19]
    with torch.no_grad():
        latents = torch.randn(4, 4, 8, 8, generator=gen) * 50.0
        # A plain Sequential of the first 19 layers: slicing `dec` itself rebuilds its class,
        # which newer ComfyUI versions (0.26) give an __init__ that takes no module list.
        head = torch.nn.Sequential(*list(dec)[:19])
        feats = head(latents.to(last.weight.dtype)).float()
        out = torch.nn.functional.conv2d(feats, last.weight.float(), None, padding=1)
        mean = out.mean(dim=(0, 2, 3))
        std = out.std(dim=(0, 2, 3)).clamp_min(1e-6)
        scale = 0.2 / std
        last.weight.copy_((last.weight.float() * scale[:, None, None, None]).to(last.weight.dtype))
        last.bias.copy_((0.5 - mean * scale).to(last.bias.dtype))


def skip_key(key: str) -> bool:
    # Without text_projection ComfyUI uses its default (identity-like) handling for SD1 CLIP.
    return key.endswith("text_projection.weight")


# ----------------------------------------------------------------------------- micro .ckpt


def strided_view(torch, base, region_start: int, region_len: int, shape, gen):
    """A view of `shape` inside base[region_start : region_start + region_len].

    Inner dimensions stay contiguous while they fit in half the region; an outer one that does
    not fit gets a small stride (its slices are shifted copies of each other).
    """
    shape = list(shape)
    strides = [0] * len(shape)
    extent = 1  # highest index used + 1
    for i in range(len(shape) - 1, -1, -1):
        d = shape[i]
        if d == 1:
            strides[i] = extent
            continue
        if extent * d <= region_len // 2:
            strides[i] = extent
        else:
            strides[i] = (region_len - extent) // (d - 1)
            if strides[i] < 1:
                raise SystemExit(f"shape {shape} does not fit a region of {region_len}")
        extent += (d - 1) * strides[i]
    off = int(torch.randint(0, region_len - extent + 1, (1,), generator=gen).item())
    return base.as_strided(shape, strides, region_start + off)


def views_state_dict(torch, kinds: dict, shapes: dict, gen, region: int) -> dict:
    """Every tensor a view into one float16 storage: ones and zeros broadcast (stride 0), random
    ones strided into a region of normal values, one region per standard deviation."""
    stds = sorted({kind[1] for kind in kinds.values() if isinstance(kind, tuple)})
    # storage layout: [one][zero][region for std0][region for std1]...
    base = torch.empty(2 + region * len(stds), dtype=torch.float16)
    base[0] = 1.0
    base[1] = 0.0
    region_of = {}
    for i, std in enumerate(stds):
        start = 2 + i * region
        base[start:start + region] = (torch.randn(region, generator=gen) * std).to(torch.float16)
        region_of[std] = start
    sd = {}
    for key in sorted(kinds):
        kind, shape = kinds[key], shapes[key]
        if kind in ("ones", "zeros"):
            sd[key] = base.as_strided(shape, [0] * len(shape), 0 if kind == "ones" else 1)
        else:
            sd[key] = strided_view(torch, base, region_of[kind[1]], region, shape, gen)
    return sd


def make_micro_ckpt(torch, comfy, path: Path) -> None:
    gen = torch.Generator().manual_seed(SEED + 1)
    shapes = {}
    kinds = {}
    for prefix, module in checkpoint_modules(torch, comfy):
        kinds.update(param_kinds(torch, module, prefix))
        for k, v in module.state_dict().items():
            shapes[prefix + k] = tuple(v.shape)
    kinds = {k: v for k, v in kinds.items() if not skip_key(k)}
    missing = [k for k in shapes if k not in kinds and not skip_key(k)]
    if missing:
        raise SystemExit(f"state-dict keys without an init rule (buffers?): {missing[:5]}")
    sd = views_state_dict(torch, kinds, shapes, gen, REGION)
    # The decoder's last conv is calibrated on the view-based weights and stored on its own.
    taesd = build_taesd(torch, comfy)
    taesd.load_state_dict({k[len(TAESD_PREFIX):]: v.float() for k, v in sd.items()
                           if k.startswith(TAESD_PREFIX)})
    calibrate_taesd(torch, taesd, gen)
    for name in ("weight", "bias"):
        key = TAESD_PREFIX + TAESD_LAST + name
        sd[key] = getattr(taesd.taesd_decoder[19], name).detach().to(torch.float16).clone()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": sd}, str(path))
    log(f"{path.name}: {len(sd)} tensors, {path.stat().st_size / 1e6:.2f} MB")


# ----------------------------------------------------------------------------- fp16 safetensors


def make_fp16_safetensors(torch, comfy, path: Path) -> None:
    gen = torch.Generator().manual_seed(SEED + 2)
    sd = {}
    for prefix, module in checkpoint_modules(torch, comfy):
        init_module(torch, module, gen, prefix)
        if prefix == TAESD_PREFIX:
            calibrate_taesd(torch, module, gen)
        if prefix == "cond_stage_model.transformer.":
            dtype = torch.float8_e4m3fn  # full-size CLIP-L; fp8 halves the file
        else:
            dtype = torch.float16
        for k, v in module.state_dict().items():
            key = prefix + k
            if skip_key(key):
                continue
            sd[key] = v.detach().to(dtype).contiguous()
    metadata = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "modelspec.title": "tiny-sd15-fp16",
        "modelspec.description": "Random weights for tests (comfyui-mcp rig). Produces noise.",
        "modelspec.resolution": "64x64",
        "format": "pt",
        "comfyui_mcp_rig.seed": str(SEED + 2),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=metadata)
    log(f"{path.name}: {len(sd)} tensors, {path.stat().st_size / 1e6:.2f} MB")


# ----------------------------------------------------------------------------- LoRA


def make_lora(torch, comfy, path: Path) -> None:
    gen = torch.Generator().manual_seed(SEED + 3)
    unet = build_unet(torch, comfy, torch.float32)
    clip = build_clip(torch, comfy, torch.float32)
    targets = []  # (kohya name, in_features, out_features)
    for name, mod in unet.named_modules():
        if (".attn1." in name or ".attn2." in name) and isinstance(mod, torch.nn.Linear):
            targets.append(("lora_unet_" + name.replace(".", "_"), mod.in_features, mod.out_features))
    for name, mod in clip.named_modules():
        if ".self_attn." in name and isinstance(mod, torch.nn.Linear):
            # text_model.encoder.layers.N.self_attn.q_proj -> lora_te_text_model_encoder_layers_N_self_attn_q_proj
            targets.append(("lora_te_" + name.replace(".", "_"), mod.in_features, mod.out_features))
    sd = {}
    for key, fin, fout in sorted(targets):
        down = torch.randn(LORA_RANK, fin, generator=gen) / math.sqrt(fin)
        up = torch.randn(fout, LORA_RANK, generator=gen) * (0.1 / math.sqrt(LORA_RANK))
        sd[f"{key}.lora_down.weight"] = down.to(torch.float16)
        sd[f"{key}.lora_up.weight"] = up.to(torch.float16)
        sd[f"{key}.alpha"] = torch.tensor(float(LORA_RANK), dtype=torch.float16)
    metadata = {
        "ss_base_model_version": "sd_v1",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(LORA_RANK),
        "ss_network_alpha": str(float(LORA_RANK)),
        "ss_output_name": "tiny-lora",
        "ss_sd_model_name": "tiny-sd15-fp16.safetensors",
        "ss_resolution": "(64, 64)",
        "ss_num_train_images": "3",
        "ss_training_comment": f"random weights for tests; trigger word: {LORA_TRIGGER}",
        "ss_tag_frequency": json.dumps({"1_tiny": {LORA_TRIGGER: 3, "tiny": 2, "rig": 1}}),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.title": "tiny-lora",
        "modelspec.trigger_phrase": LORA_TRIGGER,
        "modelspec.description": "Random rank-4 LoRA for tests (comfyui-mcp rig).",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=metadata)
    log(f"{path.name}: {len(targets)} layers, {path.stat().st_size / 1e3:.0f} KB")


# ----------------------------------------------------------------------------- upscaler


def make_upscaler(torch, path: Path) -> None:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(SEED + 4)
    net = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=1, upscale=2,
                          act_type="prelu")
    gen = torch.Generator().manual_seed(SEED + 4)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.dim() == 4:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
            else:  # PReLU slopes
                p.fill_(0.25)
    sd = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata={"comfyui_mcp_rig.arch": "Compact num_feat=8 num_conv=1 x2"})
    log(f"{path.name}: {path.stat().st_size / 1e3:.1f} KB")


# ----------------------------------------------------------------------------- ControlNet


def make_controlnet(torch, comfy, path: Path) -> None:
    gen = torch.Generator().manual_seed(SEED + 5)
    cfg = dict(UNET_CONFIG)
    cfg.pop("out_channels")
    cfg.pop("transformer_depth_output")
    cfg.pop("use_temporal_attention")
    cfg.pop("use_temporal_resblock")
    # A ControlNet always has a middle block; -1 makes it a single ResBlock (no transformer),
    # which keeps the file small. ComfyUI detects it as transformer_depth_middle -1.
    cfg["transformer_depth_middle"] = -1
    net = comfy.cldm.cldm.ControlNet(
        **cfg, hint_channels=3, dtype=torch.float32, device="cpu",
        operations=comfy.ops.disable_weight_init,
    )
    init_module(torch, net, gen)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("zero_convs.") or name.startswith("middle_block_out."):
                p.mul_(0.01)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata={"comfyui_mcp_rig.seed": str(SEED + 5)})
    log(f"{path.name}: {len(sd)} tensors, {path.stat().st_size / 1e6:.2f} MB")


# ----------------------------------------------------------------------------- embedding


def make_embedding(torch, path: Path) -> None:
    gen = torch.Generator().manual_seed(SEED + 6)
    emb = torch.randn(2, 768, generator=gen) * 0.02
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": emb.to(torch.float32)}, str(path),
              metadata={"comfyui_mcp_rig.seed": str(SEED + 6), "vectors": "2"})
    log(f"{path.name}: {path.stat().st_size / 1e3:.1f} KB")


# ----------------------------------------------------------------------------- self-check


def check(torch, comfy, out: Path) -> None:
    """Load every file with ComfyUI's own loaders, as the server would."""
    import comfy.sd
    import comfy.controlnet
    import comfy.utils
    import comfy.sd1_clip

    for name in ("tiny-sd15-micro.ckpt", "tiny-sd15-fp16.safetensors"):
        t0 = time.monotonic()
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
            str(out / "checkpoints" / name), output_vae=True, output_clip=True,
            embedding_directory=str(out / "embeddings"),
        )
        kind = type(model.model.model_config).__name__
        if kind != "SD15" or clip is None or vae is None:
            raise SystemExit(f"{name}: detected {kind}, clip={clip is not None}, vae={vae is not None}")
        log(f"check {name}: {kind}, loaded in {time.monotonic() - t0:.2f} s")
        del model, clip, vae

    sd = comfy.utils.load_torch_file(str(out / "upscale_models" / "tiny-compact-x2.safetensors"))
    from spandrel import ModelLoader

    desc = ModelLoader().load_from_state_dict(sd)
    if desc.architecture.id != "Compact" or desc.scale != 2:
        raise SystemExit(f"upscaler detected as {desc.architecture.id} x{desc.scale}")
    log("check tiny-compact-x2: Compact x2")

    cn = comfy.controlnet.load_controlnet(str(out / "controlnet" / "tiny-controlnet.safetensors"))
    if cn is None:
        raise SystemExit("controlnet not recognised")
    log(f"check tiny-controlnet: {type(cn).__name__}")

    emb = comfy.sd1_clip.load_embed("tiny-embedding", [str(out / "embeddings")], 768)
    if emb is None or tuple(emb.shape) != (2, 768):
        raise SystemExit(f"embedding not loaded: {None if emb is None else emb.shape}")
    log("check tiny-embedding: 2 x 768")

    import tiny_media

    tiny_media.check_all(torch, comfy, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui-dir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--no-check", action="store_true", help="skip loading the files back")
    args = ap.parse_args()

    t0 = time.monotonic()
    comfy = import_comfy(args.comfyui_dir.resolve())
    import torch

    torch.manual_seed(SEED)
    out = args.out
    make_micro_ckpt(torch, comfy, out / "checkpoints" / "tiny-sd15-micro.ckpt")
    make_fp16_safetensors(torch, comfy, out / "checkpoints" / "tiny-sd15-fp16.safetensors")
    make_lora(torch, comfy, out / "loras" / "tiny-lora.safetensors")
    make_upscaler(torch, out / "upscale_models" / "tiny-compact-x2.safetensors")
    make_controlnet(torch, comfy, out / "controlnet" / "tiny-controlnet.safetensors")
    make_embedding(torch, out / "embeddings" / "tiny-embedding.safetensors")
    import tiny_media  # beside this file; it uses the helpers above

    tiny_media.make_all(torch, comfy, out)
    for f in out.rglob("*"):
        if f.is_file():
            f.chmod(0o644)  # safetensors writes 0600; the cache is shared
    log(f"generated in {time.monotonic() - t0:.1f} s")
    if not args.no_check:
        check(torch, comfy, out)
    log(f"done in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
