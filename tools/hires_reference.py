#!/usr/bin/env python3
"""End-to-end reference for the hires fix: txt2img with `enable_hr` on the tiny models, as
AUTOMATIC1111 (`StableDiffusionProcessingTxt2Img.sample` / `sample_hr_pass`, v1.10) runs it
with `--rng cpu`, on `pipeline_reference.py`'s path (k-diffusion samplers over diffusers'
UNet, A1111's CFG glue, torch's CPU generator).

What is reproduced (A1111's code, cited):

* `calculate_target_resolution`: `hr_scale`, or `hr_resize_x/y` with the aspect kept and
  `truncate_x/y` latent columns/rows cropped (half each side) after upscaling;
* latent upscalers (`shared.latent_upscale_modes`): the real
  `torch.nn.functional.interpolate(samples, size=(h // 8, w // 8), mode, antialias)`;
* picture upscalers: the first pass decoded, `clamp((x + 1) / 2)`, `255 * x` cast to uint8,
  `images.resize_image(0, image, w, h, upscaler_name)` with `Upscaler.upscale` and
  `UpscalerLanczos` / `UpscalerNearest` (transcribed below, PIL's own resizes), then the
  VAE posterior's mean × 0.18215 (A1111 samples it with torch's unseeded generator; the mean
  is the deterministic choice, as in `sd-core`'s img2img);
* the second pass: `self.rng = ImageRNG(samples.shape[1:], self.seeds, ...)`, its first draw
  as the noise, the hires prompt's conditioning, the hires sampler, and
  `sample_img2img(..., steps=hr_second_pass_steps or steps)`: `setup_img2img_steps` with
  the steps given, `steps = int(requested / min(strength, 0.999))`, `t_enc = requested - 1`,
  `sigma_sched = sigmas[steps - t_enc - 1:]`, `xi = x + noise * sigma_sched[0]`; the
  ancestral noise continues from the new generators (`TorchHijack`).

Usage:
    python tools/hires_reference.py   # writes fixtures/hires/
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

import k_diffusion.external
import k_diffusion.sampling

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline_reference as pipeline  # noqa: E402

ROOT = pipeline.ROOT
OUT = os.path.join(ROOT, "fixtures", "hires")

LATENT_MODES = {
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (antialiased)": {"mode": "bilinear", "antialias": True},
    "Latent (bicubic)": {"mode": "bicubic", "antialias": False},
    "Latent (bicubic antialiased)": {"mode": "bicubic", "antialias": True},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
    "Latent (nearest-exact)": {"mode": "nearest-exact", "antialias": False},
}


def case(name, **kw):
    base = dict(name=name, model="tiny-sd1", sampler="Euler a", steps=6, cfg=7.0, seed=11,
                width=32, height=32, batch=1, prompt="a red disc", negative="",
                hr_scale=2.0, hr_resize_x=0, hr_resize_y=0, hr_upscaler="Latent",
                hr_second_pass_steps=0, denoising_strength=0.6, hr_sampler=None,
                hr_prompt="", hr_negative_prompt="", hr_cfg_scale=None)
    base.update(kw)
    return base


CASES = [
    case("latent_euler_a"),
    case("latent_antialiased_euler", sampler="Euler", hr_upscaler="Latent (antialiased)",
         hr_scale=1.5, hr_second_pass_steps=4, denoising_strength=0.5,
         hr_prompt="a red disc, sharp", hr_cfg_scale=5.0),
    case("latent_bicubic_batch2", hr_upscaler="Latent (bicubic)", batch=2, seed=5,
         negative="blurry", hr_negative_prompt="ugly"),
    case("latent_bicubic_antialiased", hr_upscaler="Latent (bicubic antialiased)",
         hr_scale=1.75, denoising_strength=0.75),
    case("latent_nearest_dpmpp", sampler="DPM++ 2M Karras", hr_upscaler="Latent (nearest)",
         hr_sampler="Euler a", denoising_strength=0.45),
    case("latent_nearest_exact_resize", model="tiny-sd2", hr_upscaler="Latent (nearest-exact)",
         hr_resize_x=64, hr_resize_y=48, seed=77, sampler="Euler"),
    case("lanczos_euler_a", hr_upscaler="Lanczos", seed=3, denoising_strength=0.55),
    case("nearest_resize_width", hr_upscaler="Nearest", hr_resize_x=56, seed=8, width=32,
         height=40, denoising_strength=0.65),
    case("none_upscaler_sd2", model="tiny-sd2", hr_upscaler="None", hr_scale=1.25,
         sampler="Euler a", seed=21),
    # int(40 * 1.3) is 52 (Python floats); the f32 1.3 widened would give 51.
    case("scale_1_3_lanczos", hr_upscaler="Lanczos", hr_scale=1.3, width=40, height=32,
         seed=13, denoising_strength=0.7, steps=10, sampler="Euler"),
]


def target(c):
    """A1111's `calculate_target_resolution`: (upscale_to_x, upscale_to_y, truncate_x, truncate_y)."""
    w, h, rx, ry = c["width"], c["height"], c["hr_resize_x"], c["hr_resize_y"]
    if rx == 0 and ry == 0:
        return int(w * c["hr_scale"]), int(h * c["hr_scale"]), 0, 0
    if ry == 0:
        return rx, rx * h // w, 0, 0
    if rx == 0:
        return ry * w // h, ry, 0, 0
    if w / h < rx / ry:
        x, y = rx, rx * h // w
    else:
        x, y = ry * w // h, ry
    return x, y, (x - rx) // 8, (y - ry) // 8


def upscaler_upscale(img, scale, do_upscale):
    """A1111's `Upscaler.upscale` (v1.10)."""
    dest_w = int((img.width * scale) // 8 * 8)
    dest_h = int((img.height * scale) // 8 * 8)
    for i in range(3):
        if img.width >= dest_w and img.height >= dest_h and (i > 0 or scale != 1):
            break
        shape = (img.width, img.height)
        img = do_upscale(img, scale)
        if shape == (img.width, img.height):
            break
    if img.width != dest_w or img.height != dest_h:
        img = img.resize((int(dest_w), int(dest_h)), resample=Image.LANCZOS)
    return img


def resize_image(im, w, h, upscaler_name):
    """A1111's `images.resize_image(0, im, w, h, upscaler_name)` with its model-free upscalers."""
    if upscaler_name == "None":
        return im.resize((w, h), resample=Image.LANCZOS)
    scale = max(w / im.width, h / im.height)
    if scale > 1.0:
        resample = Image.LANCZOS if upscaler_name == "Lanczos" else Image.NEAREST
        im = upscaler_upscale(
            im, scale,
            lambda img, s: img.resize((int(img.width * s), int(img.height * s)), resample=resample))
    if im.width != w or im.height != h:
        im = im.resize((w, h), resample=Image.LANCZOS)
    return im


def sample(model, sampler, steps, x_or_noise, cond, uncond, cfg, rng, img2img=None):
    """k-diffusion as A1111's `KDiffusionSampler.sample` / `sample_img2img`."""
    k_diffusion.sampling.torch = pipeline.TorchHijack(rng)
    ldm = pipeline.LdmLike(model)
    wrap_cls = k_diffusion.external.CompVisVDenoiser if model.v else k_diffusion.external.CompVisDenoiser
    wrap = wrap_cls(ldm, quantize=False)
    func, karras = pipeline.k_func(sampler)

    def sigmas_for(n):
        if karras:
            return k_diffusion.sampling.get_sigmas_karras(
                n=n, sigma_min=wrap.sigmas[0].item(), sigma_max=wrap.sigmas[-1].item())
        return wrap.get_sigmas(n)

    if img2img is None:
        sigmas = sigmas_for(steps)
        x = x_or_noise * sigmas[0]
        sched = sigmas
    else:
        latent, strength = img2img
        total = int(steps / min(strength, 0.999))
        t_enc = steps - 1
        sched = sigmas_for(total)[total - t_enc - 1:]
        x = latent + x_or_noise * sched[0]
    extra = {}
    if sampler == "Euler":
        extra = dict(s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0)
    if sampler == "Euler a":
        extra = dict(eta=1.0, s_noise=1.0)
    return getattr(k_diffusion.sampling, func)(
        pipeline.Cfg(wrap), x, sched, extra_args=dict(cond=cond, uncond=uncond, cond_scale=cfg),
        disable=True, **extra)


def run(c, model):
    seeds = [c["seed"] + i for i in range(c["batch"])]
    rng = pipeline.ImageRng(seeds, (4, c["height"] // 8, c["width"] // 8))
    noise = rng.next()
    cond = torch.cat([model.encode_prompt(c["prompt"])] * c["batch"])
    uncond = torch.cat([model.encode_prompt(c["negative"])] * c["batch"])
    first = sample(model, c["sampler"], c["steps"], noise, cond, uncond, c["cfg"], rng)

    tw, th, tx, ty = target(c)
    if c["hr_upscaler"] in LATENT_MODES:
        m = LATENT_MODES[c["hr_upscaler"]]
        samples = F.interpolate(first, size=(th // 8, tw // 8), mode=m["mode"], antialias=m["antialias"])
    else:
        with torch.no_grad():
            decoded = model.vae.decode(first / 0.18215).sample
        lowres = torch.clamp((decoded + 1.0) / 2.0, min=0.0, max=1.0)
        batch = []
        for x_sample in lowres:
            x = (255. * np.moveaxis(x_sample.numpy(), 0, 2)).astype(np.uint8)
            image = resize_image(Image.fromarray(x), tw, th, c["hr_upscaler"])
            batch.append(np.moveaxis(np.array(image).astype(np.float32) / 255.0, 2, 0))
        pixels = torch.from_numpy(np.array(batch)) * 2 - 1
        with torch.no_grad():
            samples = model.vae.encode(pixels).latent_dist.mean * 0.18215
    samples = samples[:, :, ty // 2:samples.shape[2] - (ty + 1) // 2, tx // 2:samples.shape[3] - (tx + 1) // 2]

    rng2 = pipeline.ImageRng(seeds, tuple(samples.shape[1:]))
    noise2 = rng2.next()
    hr_prompt = c["hr_prompt"] or c["prompt"]
    hr_negative = c["hr_negative_prompt"] or c["negative"]
    hr_cond = torch.cat([model.encode_prompt(hr_prompt)] * c["batch"])
    hr_uncond = torch.cat([model.encode_prompt(hr_negative)] * c["batch"])
    steps = c["hr_second_pass_steps"] or c["steps"]
    cfg = c["hr_cfg_scale"] if c["hr_cfg_scale"] is not None else c["cfg"]
    final = sample(model, c["hr_sampler"] or c["sampler"], steps, noise2, hr_cond, hr_uncond,
                   cfg, rng2, img2img=(samples, c["denoising_strength"]))
    return {"first": first, "upscaled": samples, "latents": final}


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    models = {}
    tensors = {}
    for c in CASES:
        model = models.setdefault(c["model"], pipeline.Model(c["model"]))
        out = run(c, model)
        for key, value in out.items():
            tensors[f"{c['name']}.{key}"] = value.detach().contiguous().float()
        print(c["name"], tuple(out["upscaled"].shape), tuple(out["latents"].shape))
    save_file(tensors, os.path.join(OUT, "hires.safetensors"))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
