#!/usr/bin/env python3
"""End-to-end reference for `sd-core`'s pipeline: txt2img and img2img on the tiny models, as
AUTOMATIC1111 runs them with `--rng cpu`, computed with the real libraries.

* Networks: transformers' `CLIPTextModel` and diffusers' `UNet2DConditionModel` /
  `AutoencoderKL`, loaded from `fixtures/tiny-sd1/` and `fixtures/tiny-sd2/`, float32.
* Samplers: k-diffusion's `sample_euler`, `sample_euler_ancestral`, `sample_lms`,
  `sample_dpmpp_2m` over `k_diffusion.external.CompVisDenoiser` / `CompVisVDenoiser` (the
  wrappers A1111's `KDiffusionSampler` uses), and A1111's own DDIM
  (`modules/sd_samplers_timesteps_impl.py`, imported from `--a1111` as in
  `sampler_reference.py`).
* Noise: torch's CPU generator, as A1111's `ImageRNG` with "Random number generator source: CPU":
  one `torch.Generator().manual_seed(seed + i)` per image; the first draw of shape
  `[4, H/8, W/8]` is the initial noise, later draws from the same generators are the per-step
  noise that A1111's `TorchHijack.randn_like` hands the ancestral samplers.

What is reproduced here (A1111 glue, a few lines each, cited):
* the conditioning of a plain prompt (no emphasis, < 75 tokens): `[BOS] + tokens + [EOS]`
  padded to 77 with EOS (SD 1.x) or with 0 after the EOS (SD 2.x, OpenCLIP), the text
  encoder's last hidden state (the SD 2 folder's encoder already stops at the penultimate
  layer). "Original" emphasis with all weights 1 is the identity;
* `CFGDenoiser.combine_denoised`: `uncond + (cond − uncond) · cfg_scale`, cond and uncond in
  one batch (cond rows first);
* `KDiffusionSampler.get_sigmas` (Automatic = `model_wrap.get_sigmas(steps)`; Karras with the
  model's σ_min/σ_max, ρ = 7), `x = noise · σ₀`;
* `CompVisSampler.get_timesteps` for DDIM; in the timestep samplers the model is the ε of
  the same guided UNet (CFG on ε equals CFG on the denoised estimate: the map is affine with
  the same coefficients for both halves);
* img2img (`sample_img2img`, `setup_img2img_steps` with "fix steps" off):
  `t_enc = int(min(strength, 0.999) · steps)`, k-diffusion starts from
  `x0 + noise · σ[steps − t_enc − 1]` over `σ[steps − t_enc − 1:]`; DDIM from
  `√ᾱ·x0 + √(1−ᾱ)·noise` at `timesteps[t_enc]` over `timesteps[:t_enc]`. The init latent is
  the VAE posterior's mean × 0.18215 (A1111 samples the posterior with torch's unseeded
  global generator, which no one can replay; the mean is the deterministic choice, and
  what `sd-core` uses).

Inpainting (A1111 v1.10, whole picture) is the second half of the file (`INPAINT_CASES`,
`write_inpaint`): it also writes `fixtures/tiny-sd1-inpaint/` (a tiny 9-channel UNet beside
links to tiny-sd1's text encoder, tokenizer and VAE), `inpaint.safetensors` and
`inpaint_cases.json`.

Usage:
    python tools/pipeline_reference.py --a1111 /path/to/stable-diffusion-webui [--out fixtures/pipeline]
        [--inpaint-only]
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

import k_diffusion.external
import k_diffusion.sampling
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sampler_reference import install_a1111, ldm_alphas_cumprod  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = [
    # `strength` makes an img2img case; `pixels` also stores the VAE decode of the result.
    dict(name="euler", model="tiny-sd1", sampler="Euler", steps=8, cfg=7.0, seed=3711471449,
         width=64, height=64, batch=1, prompt="a red fox in the snow", negative="blurry",
         pixels=True),
    dict(name="euler_a_batch2", model="tiny-sd1", sampler="Euler a", steps=6, cfg=5.0, seed=123,
         width=64, height=48, batch=2, prompt="portrait of an old man", negative=""),
    dict(name="lms", model="tiny-sd1", sampler="LMS", steps=10, cfg=7.5, seed=1,
         width=48, height=64, batch=1, prompt="a castle on a hill, sunset", negative="ugly"),
    dict(name="dpmpp_2m_karras", model="tiny-sd1", sampler="DPM++ 2M Karras", steps=8, cfg=6.0,
         seed=42, width=64, height=64, batch=1, prompt="still life with apples", negative=""),
    dict(name="ddim", model="tiny-sd1", sampler="DDIM", steps=10, cfg=7.0, seed=7,
         width=64, height=64, batch=1, prompt="a lighthouse at night", negative="text"),
    dict(name="sd2_euler_v", model="tiny-sd2", sampler="Euler", steps=6, cfg=7.0, seed=99,
         width=64, height=64, batch=1, prompt="a mountain lake", negative="fog",
         pixels=True),
    dict(name="img2img_euler", model="tiny-sd1", sampler="Euler", steps=10, cfg=7.0, seed=5,
         width=64, height=64, batch=1, prompt="a watercolor landscape", negative="",
         strength=0.6),
    dict(name="img2img_euler_a", model="tiny-sd1", sampler="Euler a", steps=8, cfg=7.0, seed=6,
         width=64, height=64, batch=1, prompt="a watercolor landscape", negative="dark",
         strength=0.75),
    dict(name="img2img_ddim", model="tiny-sd1", sampler="DDIM", steps=10, cfg=7.0, seed=8,
         width=64, height=64, batch=1, prompt="a watercolor landscape", negative="",
         strength=0.5),
]


def init_image(width, height):
    """A deterministic test picture (uint8 RGB): gradients and a checker pattern."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    b = ((((x // 8) + (y // 8)) % 2) * 200 + 30).astype(np.uint8)
    return np.stack([r, g, b], axis=-1)


class Model:
    def __init__(self, name):
        folder = os.path.join(ROOT, "fixtures", name)
        self.sd2 = name == "tiny-sd2"
        self.tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").float().eval()
        self.unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").float().eval()
        self.vae = AutoencoderKL.from_pretrained(folder, subfolder="vae").float().eval()
        self.alphas_cumprod = ldm_alphas_cumprod()
        self.v = self.sd2  # the tiny SD2 is a v-prediction model

    def encode_prompt(self, text):
        ids = self.tokenizer(text, truncation=False, add_special_tokens=False).input_ids
        assert len(ids) <= 75, "plain prompts only"
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        pad = 0 if self.sd2 else eos
        chunk = [bos] + ids + [eos] + [pad] * (75 - len(ids))
        with torch.no_grad():
            return self.text_encoder(torch.tensor([chunk])).last_hidden_state


class LdmLike(torch.nn.Module):
    """What k-diffusion's CompVis wrappers call: `apply_model(x, t, cond)` and `alphas_cumprod`."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.alphas_cumprod = model.alphas_cumprod

    def apply_model(self, x, t, cond):
        with torch.no_grad():
            return self.model.unet(x, t, encoder_hidden_states=cond).sample


class Cfg(torch.nn.Module):
    """A1111's CFGDenoiser for one prompt per image: one batch, cond rows then uncond rows."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, sigma, cond, uncond, cond_scale):
        b = x.shape[0]
        x_in = torch.cat([x, x])
        sigma_in = torch.cat([sigma, sigma])
        out = self.inner(x_in, sigma_in, cond=torch.cat([cond, uncond]))
        c, u = out[:b], out[b:]
        return u + (c - u) * cond_scale


class ImageRng:
    """A1111's ImageRNG with the CPU source: a generator per image."""

    def __init__(self, seeds, shape):
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.shape = shape

    def next(self):
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.gens])


class TorchHijack:
    def __init__(self, rng):
        self.rng = rng

    def __getattr__(self, item):
        return getattr(torch, item)

    def randn_like(self, x):
        return self.rng.next()


def k_func(sampler):
    return {
        "Euler": ("sample_euler", False),
        "Euler a": ("sample_euler_ancestral", False),
        "LMS": ("sample_lms", False),
        "DPM++ 2M Karras": ("sample_dpmpp_2m", True),
    }[sampler]


def run_case(case, model, ts_impl):
    seeds = [case["seed"] + i for i in range(case["batch"])]
    shape = (4, case["height"] // 8, case["width"] // 8)
    rng = ImageRng(seeds, shape)
    noise = rng.next()
    cond = torch.cat([model.encode_prompt(case["prompt"])] * case["batch"])
    uncond = torch.cat([model.encode_prompt(case["negative"])] * case["batch"])
    out = {}
    strength = case.get("strength")
    x0 = None
    if strength is not None:
        image = init_image(case["width"], case["height"])
        pixels = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        pixels = torch.cat([pixels] * case["batch"]) * 2 - 1
        with torch.no_grad():
            x0 = model.vae.encode(pixels).latent_dist.mean * 0.18215
        out["init_latent"] = x0.clone()
    k_diffusion.sampling.torch = TorchHijack(rng)
    ldm = LdmLike(model)
    steps = case["steps"]
    if case["sampler"] == "DDIM":
        assert not model.v
        timesteps = torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)
        ac = model.alphas_cumprod
        inner = ldm

        class Eps:
            def __init__(self):
                self.inner_model = types_ns(inner_model=types_ns(alphas_cumprod=ac))

            def __call__(self, x, t, cond, uncond, cond_scale):
                b = x.shape[0]
                e = inner.apply_model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))
                return e[b:] + (e[:b] - e[b:]) * cond_scale

        if strength is None:
            x = noise
            sched = timesteps
        else:
            t_enc = int(min(strength, 0.999) * steps)
            a = ac[timesteps[t_enc]]
            x = x0 * torch.sqrt(a) + noise * torch.sqrt(1 - a)
            sched = timesteps[:t_enc]
        samples = ts_impl.ddim(Eps(), x, sched, extra_args=dict(cond=cond, uncond=uncond,
                                                                cond_scale=case["cfg"]),
                               disable=True, eta=0.0)
    else:
        wrap_cls = k_diffusion.external.CompVisVDenoiser if model.v else k_diffusion.external.CompVisDenoiser
        wrap = wrap_cls(ldm, quantize=False)
        func, karras = k_func(case["sampler"])
        if karras:
            sigmas = k_diffusion.sampling.get_sigmas_karras(
                n=steps, sigma_min=wrap.sigmas[0].item(), sigma_max=wrap.sigmas[-1].item())
        else:
            sigmas = wrap.get_sigmas(steps)
        if strength is None:
            x = noise * sigmas[0]
            sched = sigmas
        else:
            t_enc = int(min(strength, 0.999) * steps)
            sched = sigmas[steps - t_enc - 1:]
            x = x0 + noise * sched[0]
        extra = {}
        if case["sampler"] == "Euler":
            extra = dict(s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0)
        if case["sampler"] == "Euler a":
            extra = dict(eta=1.0, s_noise=1.0)
        samples = getattr(k_diffusion.sampling, func)(
            Cfg(wrap), x, sched,
            extra_args=dict(cond=cond, uncond=uncond, cond_scale=case["cfg"]),
            disable=True, **extra)
    out["latents"] = samples.detach().clone()
    if case.get("pixels"):
        with torch.no_grad():
            out["pixels"] = model.vae.decode(samples / 0.18215).sample.detach().clone()
    out["noise"] = noise.clone()
    return out


def types_ns(**kw):
    import types
    return types.SimpleNamespace(**kw)


# ---------------------------------------------------------------------------------------------
# Inpainting (A1111 v1.10 `StableDiffusionProcessingImg2Img.init` / `.sample`, whole-picture
# mode, "Mask blur" 0 because OpenCV is not part of this environment; see `INPAINT_CASES`).
#
# What is reproduced (A1111 glue, cited; the pixel operations are PIL's own):
# * the mask: an "L" picture as `create_binary_mask` leaves it (grey levels are NOT
#   thresholded), `resize_image(0, ...)` to W×H (PIL returns a copy at the same size),
#   `mask_for_overlay = clip(mask · 2, 0, 255)` (float32, truncated to uint8);
# * the overlay: `Image.new('RGBa')`, `paste(image.convert("RGBA").convert("RGBa"),
#   mask=ImageOps.invert(mask_for_overlay))`, `.convert('RGBA')`; after decoding,
#   `apply_overlay`: `image.convert('RGBA').alpha_composite(overlay).convert('RGB')`;
# * "Masked content" other than original (1): `masking.fill(image, latent_mask)` (PIL
#   Gaussian blurs composited; `modules/masking.py`, reproduced in `a1111_fill`);
# * the latent mask: `mask.convert('RGB').resize((W/8, H/8))` (PIL's default BICUBIC), `/255`,
#   `np.around`, `mask = 1 − latmask` (keep), `nmask = latmask`; latent noise:
#   `init_latent·mask + create_random_tensors(...)·nmask` (a fresh ImageRNG of the same
#   seeds), latent nothing: `init_latent·mask`;
# * sampling: k-diffusion samplers blend `denoised·nmask + init_latent·mask` after every
#   CFG evaluation (`CFGDenoiser.forward`, `mask_before_denoising` off); the timestep
#   samplers (`CFGDenoiserTimesteps`, `mask_before_denoising = True`) blend the INPUT x the
#   same way before the model, and DDIM's update uses its own, unblended x; after sampling
#   `samples·nmask + init_latent·mask`;
# * 9-channel models (`inpainting_image_conditioning`): `m = round(mask / 255)` at full size,
#   `lerp(src, src·(1 − m), 1.0)` with `src = filled image·2 − 1`, encoded (posterior mean ×
#   0.18215, as the init latent), `F.interpolate(m, latent size)` (nearest), cond =
#   `cat([m, latent], 1)`, the same for the cond and uncond rows.
# ---------------------------------------------------------------------------------------------

INPAINT_CASES = [
    # `overlaid` stores the final picture (decoded, truncated to uint8, overlay pasted).
    dict(name="inpaint_euler_original", model="tiny-sd1", sampler="Euler", steps=8, cfg=7.0,
         seed=31337, width=64, height=64, batch=1, prompt="a red apple on a table",
         negative="blurry", strength=0.75, fill="original", mask_blur=0, overlaid=True),
    dict(name="inpaint_euler_a_latent_noise", model="tiny-sd1", sampler="Euler a", steps=8,
         cfg=6.0, seed=4242, width=64, height=64, batch=1, prompt="a small boat",
         negative="", strength=0.9, fill="latent noise", mask_blur=0, overlaid=True),
    dict(name="inpaint_ddim_latent_nothing", model="tiny-sd1", sampler="DDIM", steps=10,
         cfg=7.0, seed=777, width=64, height=64, batch=1, prompt="a stone wall",
         negative="text", strength=0.8, fill="latent nothing", mask_blur=0, overlaid=True),
    dict(name="inpaint_9ch_euler_fill", model="tiny-sd1-inpaint", sampler="Euler", steps=8,
         cfg=7.5, seed=2024, width=64, height=64, batch=1, prompt="a cat sleeping",
         negative="", strength=1.0, fill="fill", mask_blur=0, overlaid=True),
]

FILL_CODES = {"fill": 0, "original": 1, "latent noise": 2, "latent nothing": 3}


def inpaint_mask(width, height):
    """A soft-edged ellipse (uint8 L, 255 = repaint) with a ~10 px grey ramp."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    d = np.sqrt(((x - width * 0.55) / (width * 0.3)) ** 2 + ((y - height * 0.45) / (height * 0.24)) ** 2)
    return np.round(np.clip((1.3 - d) / 0.6, 0.0, 1.0) * 255.0).astype(np.uint8)


def a1111_fill(image, mask):
    """`modules/masking.py` `fill` (A1111 v1.10), verbatim but for the names."""
    from PIL import Image, ImageFilter, ImageOps
    image_mod = Image.new('RGBA', (image.width, image.height))
    image_masked = Image.new('RGBa', (image.width, image.height))
    image_masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert('L')))
    image_masked = image_masked.convert('RGBa')
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = image_masked.filter(ImageFilter.GaussianBlur(radius)).convert('RGBA')
        for _ in range(repeats):
            image_mod.alpha_composite(blurred)
    return image_mod.convert("RGB")


def a1111_overlay(image, mask_for_overlay):
    """The overlay picture `StableDiffusionProcessingImg2Img.init` keeps per image."""
    from PIL import Image, ImageOps
    image_masked = Image.new('RGBa', (image.width, image.height))
    image_masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask_for_overlay.convert('L')))
    return image_masked.convert('RGBA')


def a1111_apply_overlay(image, overlay):
    """`processing.apply_overlay` without a paste location."""
    image = image.convert('RGBA')
    image.alpha_composite(overlay)
    return image.convert('RGB')


def a1111_latmask(image_mask, latent_w, latent_h):
    """The rounded latent mask (`nmask`, 1 = repaint), and PIL's bicubic shrink before /255."""
    latmask = image_mask.convert('RGB').resize((latent_w, latent_h))
    raw = np.array(latmask)[:, :, 0].copy()
    latmask = np.moveaxis(np.array(latmask, dtype=np.float32), 2, 0) / 255
    latmask = latmask[0]
    latmask = np.around(latmask)
    return latmask, raw


def make_inpaint_model(root):
    """`fixtures/tiny-sd1-inpaint/`: tiny-sd1 with a 9-channel UNet (tools/sdtools/tiny.py
    conventions: seeded weights rounded to float16; smaller channels to stay < 1 MB). The
    text encoder, tokenizer and VAE are tiny-sd1's (symbolic links), as real inpainting
    checkpoints share SD 1.5's."""
    from diffusers import UNet2DConditionModel as Unet
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from sdtools import tiny
    folder = os.path.join(root, "tiny-sd1-inpaint")
    os.makedirs(folder, exist_ok=True)
    unet = Unet(
        sample_size=8, in_channels=9, out_channels=4,
        down_block_types=tiny.DOWN_TYPES, up_block_types=tiny.UP_TYPES,
        block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=tiny.TEXT_WIDTH, attention_head_dim=2,
        use_linear_projection=False, upcast_attention=False, flip_sin_to_cos=True, freq_shift=0,
    ).eval()
    tiny.randomise(unet, torch.Generator().manual_seed(9))
    unet.to(torch.float16).save_pretrained(os.path.join(folder, "unet"), safe_serialization=True)
    src = os.path.join(root, "tiny-sd1")
    for part in ("text_encoder", "tokenizer", "vae"):
        link = os.path.join(folder, part)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "tiny-sd1", part), link)
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    for rel in ("model_index.json", os.path.join("scheduler", "scheduler_config.json")):
        with open(os.path.join(src, rel), "rb") as f:
            data = f.read()
        with open(os.path.join(folder, rel), "wb") as f:
            f.write(data)


class InpaintLdm(torch.nn.Module):
    """`apply_model(x, t, cond)` with A1111's `c_concat` (9-channel models) in `cond`."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.alphas_cumprod = model.alphas_cumprod

    def apply_model(self, x, t, cond):
        context, concat = cond
        if concat is not None:
            x = torch.cat([x, concat], 1)
        with torch.no_grad():
            return self.model.unet(x, t, encoder_hidden_states=context).sample


def run_inpaint_case(case, model, ts_impl):
    from PIL import Image
    w, h, b = case["width"], case["height"], case["batch"]
    seeds = [case["seed"] + i for i in range(b)]
    shape = (4, h // 8, w // 8)
    rng = ImageRng(seeds, shape)
    noise = rng.next()
    cond = torch.cat([model.encode_prompt(case["prompt"])] * b)
    uncond = torch.cat([model.encode_prompt(case["negative"])] * b)
    out = {}
    init = Image.fromarray(init_image(w, h))
    image_mask = Image.fromarray(inpaint_mask(w, h), mode="L")  # create_binary_mask: as is
    assert case["mask_blur"] == 0
    image_mask = image_mask.resize((w, h), resample=Image.LANCZOS)  # resize_image(0, ...)
    np_mask = np.array(image_mask)
    mask_for_overlay = Image.fromarray(np.clip(np_mask.astype(np.float32) * 2, 0, 255).astype(np.uint8))
    overlay = a1111_overlay(init, mask_for_overlay)
    fill = FILL_CODES[case["fill"]]
    image = init
    if fill != 1:
        image = a1111_fill(image, image_mask)
        out["filled"] = torch.from_numpy(np.array(image).astype(np.float32))
    arr = np.moveaxis(np.array(image).astype(np.float32) / 255.0, 2, 0)
    batch_images = torch.from_numpy(np.expand_dims(arr, axis=0).repeat(b, axis=0))
    with torch.no_grad():
        x0 = model.vae.encode(batch_images * 2 - 1).latent_dist.mean * 0.18215
    latmask, raw = a1111_latmask(image_mask, w // 8, h // 8)
    out["latmask_u8"] = torch.from_numpy(raw.astype(np.float32))
    latmask = np.tile(latmask[None], (4, 1, 1))
    mask = torch.asarray(1.0 - latmask)[None].float()
    nmask = torch.asarray(latmask)[None].float()
    out["nmask"] = nmask[0, 0].clone()
    if fill == 2:
        x0 = x0 * mask + ImageRng(seeds, shape).next() * nmask
    elif fill == 3:
        x0 = x0 * mask
    out["init_latent"] = x0.clone()
    image_cond = None
    if model.unet.config.in_channels == 9:
        cm = np.array(image_mask.convert("L")).astype(np.float32) / 255.0
        cm = torch.round(torch.from_numpy(cm[None, None]))
        src = batch_images * 2 - 1
        ci = torch.lerp(src, src * (1.0 - cm), 1.0)
        with torch.no_grad():
            ci = model.vae.encode(ci).latent_dist.mean * 0.18215
        cm = torch.nn.functional.interpolate(cm, size=x0.shape[-2:])
        image_cond = torch.cat([cm.expand(ci.shape[0], -1, -1, -1), ci], dim=1)
        out["image_cond"] = image_cond.clone()
    concat = None if image_cond is None else torch.cat([image_cond, image_cond])
    k_diffusion.sampling.torch = TorchHijack(rng)
    ldm = InpaintLdm(model)
    steps = case["steps"]
    strength = case["strength"]
    t_enc = int(min(strength, 0.999) * steps)
    if case["sampler"] == "DDIM":
        timesteps = torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)
        ac = model.alphas_cumprod

        class Eps:
            def __init__(self):
                self.inner_model = types_ns(inner_model=types_ns(alphas_cumprod=ac))

            def __call__(self, x, t, cond, uncond, cond_scale):
                x = x * nmask + x0 * mask  # mask_before_denoising
                n = x.shape[0]
                e = ldm.apply_model(torch.cat([x, x]), torch.cat([t, t]),
                                    (torch.cat([cond, uncond]), concat))
                return e[n:] + (e[:n] - e[n:]) * cond_scale

        a = ac[timesteps[t_enc]]
        x = x0 * torch.sqrt(a) + noise * torch.sqrt(1 - a)
        samples = ts_impl.ddim(Eps(), x, timesteps[:t_enc],
                               extra_args=dict(cond=cond, uncond=uncond, cond_scale=case["cfg"]),
                               disable=True, eta=0.0)
    else:
        wrap = k_diffusion.external.CompVisDenoiser(ldm, quantize=False)

        class MaskedCfg(torch.nn.Module):
            def forward(self, x, sigma, cond, uncond, cond_scale):
                n = x.shape[0]
                d = wrap(torch.cat([x, x]), torch.cat([sigma, sigma]),
                         cond=(torch.cat([cond, uncond]), concat))
                denoised = d[n:] + (d[:n] - d[n:]) * cond_scale
                return denoised * nmask + x0 * mask  # apply_blend after

        func, _ = k_func(case["sampler"])
        sched = wrap.get_sigmas(steps)[steps - t_enc - 1:]
        x = x0 + noise * sched[0]
        extra = dict(s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0) \
            if case["sampler"] == "Euler" else dict(eta=1.0, s_noise=1.0)
        samples = getattr(k_diffusion.sampling, func)(
            MaskedCfg(), x, sched,
            extra_args=dict(cond=cond, uncond=uncond, cond_scale=case["cfg"]),
            disable=True, **extra)
    samples = samples * nmask + x0 * mask
    out["latents"] = samples.detach().clone()
    out["noise"] = noise.clone()
    if case.get("overlaid"):
        with torch.no_grad():
            decoded = model.vae.decode(samples / 0.18215).sample
        x_sample = torch.clamp((decoded[0] + 1.0) / 2.0, min=0.0, max=1.0)
        x_sample = (255. * np.moveaxis(x_sample.cpu().numpy(), 0, 2)).astype(np.uint8)
        final = a1111_apply_overlay(Image.fromarray(x_sample), overlay)
        out["decoded"] = torch.from_numpy(x_sample.astype(np.float32))
        out["overlaid"] = torch.from_numpy(np.array(final).astype(np.float32))
    return out


def pil_resample_cases():
    """PIL's own resampler on odd sizes (what `pil_resize.rs` ports), L mode."""
    from PIL import Image
    y, x = np.mgrid[0:29, 0:37]
    src = ((x * 37 + y * 91 + (x * y) % 17 * 11) % 256).astype(np.uint8)
    src[10:18, 5:30] = 255
    src[3:6, :] = 0
    im = Image.fromarray(src, mode="L")
    out = {"resize.src": torch.from_numpy(src.astype(np.float32))}
    for name, filt in (("bicubic", Image.BICUBIC), ("lanczos", Image.LANCZOS)):
        for (tw, th) in ((8, 5), (50, 40), (37, 12), (64, 64)):
            r = np.array(im.resize((tw, th), resample=filt)).astype(np.float32)
            out[f"resize.{name}_{tw}x{th}"] = torch.from_numpy(r)
    return out


def write_inpaint(out_dir, models, ts_impl):
    make_inpaint_model(os.path.join(ROOT, "fixtures"))
    tensors = {
        "inputs.init_image": torch.from_numpy(init_image(64, 64).astype(np.float32)),
        "inputs.mask": torch.from_numpy(inpaint_mask(64, 64).astype(np.float32)),
    }
    tensors.update(pil_resample_cases())
    for case in INPAINT_CASES:
        model = models.setdefault(case["model"], Model(case["model"]))
        out = run_inpaint_case(case, model, ts_impl)
        for key, value in out.items():
            tensors[f"{case['name']}.{key}"] = value.contiguous().float()
        print(case["name"], tuple(out["latents"].shape), float(out["latents"].abs().max()))
    save_file(tensors, os.path.join(out_dir, "inpaint.safetensors"))
    with open(os.path.join(out_dir, "inpaint_cases.json"), "w") as f:
        json.dump(INPAINT_CASES, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout")
    parser.add_argument("--out", default=os.path.join(ROOT, "fixtures", "pipeline"))
    parser.add_argument("--inpaint-only", action="store_true",
                        help="write only inpaint.safetensors / inpaint_cases.json (and the "
                             "tiny inpainting model), leave pipeline.safetensors alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    _, ts_impl, _ = install_a1111(args.a1111)
    os.makedirs(args.out, exist_ok=True)
    models = {}
    if not args.inpaint_only:
        write_txt2img_img2img(args, models, ts_impl)
    write_inpaint(args.out, models, ts_impl)


def write_txt2img_img2img(args, models, ts_impl):
    tensors = {}
    for case in CASES:
        model = models.setdefault(case["model"], Model(case["model"]))
        out = run_case(case, model, ts_impl)
        for key, value in out.items():
            tensors[f"{case['name']}.{key}"] = value.contiguous().float()
        print(case["name"], tuple(out["latents"].shape), float(out["latents"].abs().max()))
    save_file(tensors, os.path.join(args.out, "pipeline.safetensors"))
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
