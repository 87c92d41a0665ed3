"""Tiny random-weight video and audio models that ComfyUI's real loaders and samplers accept.

Imported by make_models.py (which owns the shared helpers); run that, not this file. What each
file is, and why it has the shape it has (ComfyUI 0.3.75 and 0.26.0 must both detect and run it):

    diffusion_models/tiny-wan21-t2v.safetensors  Wan 2.1 text-to-video: one block, 128 wide (one head),
                                                 sized from the weights by ComfyUI's detection
                                                 (`head.modulation`). Its text embedding is 4096 wide
                                                 (0.3.75 reads that from nowhere else).
    vae/tiny-wan21-vae.safetensors               Wan 2.1's causal video VAE at width 16 (ComfyUI reads
                                                 the width from `decoder.head.0.gamma`): 8x space, 4x time.
    text_encoders/tiny-clip-l.pt                 CLIP-L (fixed size, 123 M parameters) with every tensor a
                                                 view into a few shared random storages (about 1 MB). Loaded
                                                 by CLIPLoader as type `sd3`, it gives SD3's conditioning:
                                                 CLIP-L's 768 channels padded to 4096, what Wan expects. The
                                                 real encoder, UMT5-XXL, is 5.7 B parameters whatever its
                                                 weights: far too slow on a CPU.
    text_encoders/tiny-t5-base.pt                T5 v1.0 base (fixed size, 110 M parameters), views as above.
                                                 CLIPLoader type `stable_audio` detects it as T5 base
                                                 (`encoder.block.0.layer.0.SelfAttention.k.weight`).
    checkpoints/tiny-stable-audio.ckpt           Stable Audio Open 1.0 at full size (0.3.75 builds its DiT
                                                 from a fixed config: 1536 wide, 24 blocks, 1 B parameters),
                                                 with the Oobleck VAE and the seconds embedders, views as
                                                 above (a few MB on disk, about 5 GB in memory once loaded).
                                                 The buffer detection looks for,
                                                 `transformer.rotary_pos_emb.inv_freq`, has the
                                                 real model's values.

Why not LTX-Video: its transformer needs the attention mask only T5-XXL's encoders return.
ACE-Step v1 is a fixed 3.5 B model in 0.3.75. Both are covered by tests that the server accepts
their template graphs except for the missing files.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import make_models as shared

WAN_NAME = "tiny-wan21-t2v.safetensors"
WAN_VAE_NAME = "tiny-wan21-vae.safetensors"
CLIP_L_NAME = "tiny-clip-l.pt"
T5_NAME = "tiny-t5-base.pt"
STABLE_AUDIO_NAME = "tiny-stable-audio.ckpt"

# Wan 2.1: ComfyUI takes dim from head.modulation (heads = dim / 128), ffn_dim from the first
# block, counts the blocks and reads in_dim from the patch embedding; text_dim stays 4096.
WAN_MODEL = dict(
    model_type="t2v",
    patch_size=(1, 2, 2),
    in_dim=16,
    dim=128,
    ffn_dim=256,
    freq_dim=256,
    text_dim=4096,
    out_dim=16,
    num_heads=1,
    num_layers=1,
    window_size=(-1, -1),
    qk_norm=True,
    cross_attn_norm=True,
    eps=1e-6,
)
# Wan 2.1's VAE: ComfyUI fixes everything but the width.
WAN_VAE = dict(
    dim=16,
    z_dim=16,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
)

PROJECTION_KEY = "text_projection.weight"
# The key ComfyUI recognises Stable Audio by.
INV_FREQ_KEY = "model.model.transformer.rotary_pos_emb.inv_freq"

T5_SEED_OFFSET = 10
CLIP_SEED_OFFSET = 15
WAN_SEED_OFFSET = 20
STABLE_AUDIO_SEED_OFFSET = 30


# ----------------------------------------------------------------------------- initial values


def value_kinds(torch, module, prefix: str) -> dict:
    """key -> "ones" | "zeros" | ("randn", std) for every parameter of `module`.

    Unlike make_models.param_kinds (which knows torch's own norm classes), the video and audio
    models use their own norms (T5's RMS norm weight, the DiT's and Wan's `gamma`) and Snake
    activations: a gamma or a one-dimensional weight is a scale (ones); Snake's log-scale alpha
    and beta are zeros (a scale of exp(0) = 1), as are other one-dimensional values.
    """
    kinds = {}
    for mod_name, mod in module.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            key = prefix + (f"{mod_name}.{p_name}" if mod_name else p_name)
            if p_name == "gamma" or (p.dim() < 2 and p_name == "weight"):
                kinds[key] = "ones"  # a norm's scale, whatever its shape (Wan's VAE: C x 1 x 1)
            elif p.dim() < 2:
                kinds[key] = "zeros"
            else:
                std = 1.0 / math.sqrt(max(1, p[0].numel()))
                kinds[key] = ("randn", round(std, 5))
    return kinds


def initialise(torch, module, gen) -> None:
    """Real values (not views) for the small models, with the same rules as value_kinds.
    A saved buffer would keep whatever memory it was allocated with, so none may exist."""
    buffers = set(module.state_dict()) - set(dict(module.named_parameters()))
    if buffers:
        raise SystemExit(f"{type(module).__name__} saves buffers without a value: {sorted(buffers)[:5]}")
    with torch.no_grad():
        for key, kind in value_kinds(torch, module, "").items():
            p = module.get_parameter(key)
            if kind == "ones":
                p.fill_(1.0)
            elif kind == "zeros":
                p.fill_(0.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * kind[1])


def shapes_of(module, prefix: str) -> dict:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


def save_views(torch, sd: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": sd}, str(path))


# ----------------------------------------------------------------------------- T5 base


def build_t5(torch, comfy):
    import comfy.text_encoders.t5

    config_path = Path(comfy.text_encoders.t5.__file__).parent / "t5_config_base.json"
    config = json.loads(config_path.read_text())
    return comfy.text_encoders.t5.T5(config, torch.float32, "cpu", comfy.ops.disable_weight_init)


def make_t5(torch, comfy, path: Path) -> None:
    gen = torch.Generator().manual_seed(shared.SEED + T5_SEED_OFFSET)
    t5 = build_t5(torch, comfy)
    kinds = value_kinds(torch, t5, "")
    # Token embeddings are looked up, not multiplied: unit variance, like a trained T5's.
    kinds["shared.weight"] = ("randn", 1.0)
    sd = shared.views_state_dict(torch, kinds, shapes_of(t5, ""), gen, shared.REGION)
    save_views(torch, sd, path)
    shared.log(f"{path.name}: {len(sd)} tensors, {path.stat().st_size / 1e6:.2f} MB")


# ----------------------------------------------------------------------------- Wan 2.1


def build_clip_l(torch, comfy):
    import comfy.clip_model

    config_path = Path(comfy.clip_model.__file__).parent / "sd1_clip_config.json"
    config = json.loads(config_path.read_text())
    return comfy.clip_model.CLIPTextModel(config, torch.float32, "cpu", comfy.ops.disable_weight_init)


def make_clip_l(torch, comfy, path: Path) -> None:
    gen = torch.Generator().manual_seed(shared.SEED + CLIP_SEED_OFFSET)
    clip = build_clip_l(torch, comfy)
    kinds = value_kinds(torch, clip, "")
    kinds.pop(PROJECTION_KEY)
    shapes = {k: v for k, v in shapes_of(clip, "").items() if k in kinds}
    sd = shared.views_state_dict(torch, kinds, shapes, gen, shared.REGION)
    # SD3's CLIP-L reads the projection (for its pooled output); the identity, stored whole.
    sd[PROJECTION_KEY] = torch.eye(768, dtype=torch.float16)
    save_views(torch, sd, path)
    shared.log(f"{path.name}: {len(sd)} tensors, {path.stat().st_size / 1e6:.2f} MB")


def calibrate_wan_vae(torch, vae, gen) -> None:
    """Rescale the decoder's last conv so decoded frames are visible noise, not a clamped
    black or white: ComfyUI maps the output from [-1, 1] to [0, 1]; aim at mean 0, std 0.4."""
    last = vae.decoder.head[-1]
    with torch.no_grad():
        latents = torch.randn(1, 16, 3, 4, 4, generator=gen) * 2.0
        out = vae.decode(latents)
        mean = out.mean().item()
        scale = 0.4 / max(out.std().item(), 1e-6)
        last.weight.mul_(scale)
        last.bias.copy_((last.bias - mean) * scale)


def make_wan(torch, comfy, diffusion_path: Path, vae_path: Path) -> None:
    import comfy.ldm.wan.model
    import comfy.ldm.wan.vae

    gen = torch.Generator().manual_seed(shared.SEED + WAN_SEED_OFFSET)
    model = comfy.ldm.wan.model.WanModel(
        **WAN_MODEL, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init,
    )
    initialise(torch, model, gen)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "modelspec.title": "tiny-wan21-t2v",
        "modelspec.description": "Random weights for tests (comfyui-mcp rig). Produces noise.",
        "comfyui_mcp_rig.seed": str(shared.SEED + WAN_SEED_OFFSET),
    }
    diffusion_path.parent.mkdir(parents=True, exist_ok=True)
    shared.save_file(sd, str(diffusion_path), metadata=metadata)
    shared.log(f"{diffusion_path.name}: {len(sd)} tensors, {diffusion_path.stat().st_size / 1e6:.2f} MB")

    vae = comfy.ldm.wan.vae.WanVAE(**WAN_VAE)
    initialise(torch, vae, gen)
    calibrate_wan_vae(torch, vae, gen)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in vae.state_dict().items()}
    vae_path.parent.mkdir(parents=True, exist_ok=True)
    shared.save_file(sd, str(vae_path), metadata={"comfyui_mcp_rig.seed": str(shared.SEED + WAN_SEED_OFFSET)})
    shared.log(f"{vae_path.name}: {len(sd)} tensors, {vae_path.stat().st_size / 1e6:.2f} MB")


# ----------------------------------------------------------------------------- Stable Audio


def build_stable_audio(torch, comfy):
    """(prefix, module) pairs of a Stable Audio Open checkpoint, the modules left uninitialised
    (disable_weight_init allocates without touching memory, so 1 B parameters cost nothing)."""
    import comfy.ldm.audio.autoencoder
    import comfy.ldm.audio.dit
    import comfy.ldm.audio.embedders

    dit = comfy.ldm.audio.dit.AudioDiffusionTransformer(
        dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init,
    )
    vae = comfy.ldm.audio.autoencoder.AudioOobleckVAE()
    start = comfy.ldm.audio.embedders.NumberConditioner(768, min_val=0, max_val=512)
    total = comfy.ldm.audio.embedders.NumberConditioner(768, min_val=0, max_val=512)
    return dit, [
        ("model.model.", dit),
        ("pretransform.model.", vae),
        ("conditioner.conditioners.seconds_start.", start),
        ("conditioner.conditioners.seconds_total.", total),
    ]


def make_stable_audio(torch, comfy, path: Path) -> None:
    gen = torch.Generator().manual_seed(shared.SEED + STABLE_AUDIO_SEED_OFFSET)
    dit, parts = build_stable_audio(torch, comfy)
    kinds, shapes = {}, {}
    for prefix, module in parts:
        kinds.update(value_kinds(torch, module, prefix))
        shapes.update(shapes_of(module, prefix))
    shapes.pop(INV_FREQ_KEY, None)
    missing = [k for k in shapes if k not in kinds]
    if missing:
        raise SystemExit(f"Stable Audio keys without an initial value: {missing[:5]}")
    sd = shared.views_state_dict(torch, kinds, shapes, gen, shared.REGION)
    # Detection's key, the rotary embedding's frequencies: a buffer ComfyUI leaves empty and
    # loads from the checkpoint, so it is stored with the values it has in the real model.
    half = dit.transformer.rotary_pos_emb.inv_freq.shape[0]
    sd[INV_FREQ_KEY] = 1.0 / (10000.0 ** (torch.arange(0, 2 * half, 2).float() / (2 * half)))
    save_views(torch, sd, path)
    shared.log(f"{path.name}: {len(sd)} tensors, {path.stat().st_size / 1e6:.2f} MB")


# ----------------------------------------------------------------------------- entry points


def make_all(torch, comfy, out: Path) -> None:
    make_clip_l(torch, comfy, out / "text_encoders" / CLIP_L_NAME)
    make_t5(torch, comfy, out / "text_encoders" / T5_NAME)
    make_wan(torch, comfy, out / "diffusion_models" / WAN_NAME, out / "vae" / WAN_VAE_NAME)
    make_stable_audio(torch, comfy, out / "checkpoints" / STABLE_AUDIO_NAME)


def check_all(torch, comfy, out: Path) -> None:
    """Load each file with ComfyUI's own loaders and check what they detect."""
    import comfy.sd
    import comfy.utils

    for name, clip_type, width in ((CLIP_L_NAME, "SD3", 4096), (T5_NAME, "STABLE_AUDIO", 768)):
        t0 = time.monotonic()
        clip = comfy.sd.load_clip(ckpt_paths=[str(out / "text_encoders" / name)],
                                  clip_type=getattr(comfy.sd.CLIPType, clip_type))
        cond = clip.encode_from_tokens(clip.tokenize("a tiny test"), return_pooled=False)
        finite = bool(cond.isfinite().all())
        if cond.shape[-1] != width or not finite or float(cond.std()) == 0.0:
            raise SystemExit(f"{name}: conditioning {tuple(cond.shape)}, finite={finite}")
        shared.log(f"check {name}: conditioning {tuple(cond.shape)} in {time.monotonic() - t0:.2f} s")
        del clip

    model = comfy.sd.load_diffusion_model(str(out / "diffusion_models" / WAN_NAME))
    kind = type(model.model.model_config).__name__
    if not kind.startswith("WAN21"):
        raise SystemExit(f"{WAN_NAME}: detected {kind}")
    shared.log(f"check {WAN_NAME}: {kind}")
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(out / "vae" / WAN_VAE_NAME)))
    if vae.latent_channels != 16 or vae.latent_dim != 3:
        raise SystemExit(f"{WAN_VAE_NAME}: {vae.latent_channels} channels, {vae.latent_dim} dims")
    shared.log(f"check {WAN_VAE_NAME}: Wan 2.1 VAE")
    del model, vae

    t0 = time.monotonic()
    model, _, vae, _ = comfy.sd.load_checkpoint_guess_config(
        str(out / "checkpoints" / STABLE_AUDIO_NAME), output_vae=True, output_clip=False,
    )
    kind = type(model.model.model_config).__name__
    if kind != "StableAudio" or vae is None:
        raise SystemExit(f"{STABLE_AUDIO_NAME}: detected {kind}, vae={vae is not None}")
    shared.log(f"check {STABLE_AUDIO_NAME}: {kind}, loaded in {time.monotonic() - t0:.2f} s")
