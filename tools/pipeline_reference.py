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

Usage:
    python tools/pipeline_reference.py --a1111 /path/to/stable-diffusion-webui [--out fixtures/pipeline]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout")
    parser.add_argument("--out", default=os.path.join(ROOT, "fixtures", "pipeline"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    _, ts_impl, _ = install_a1111(args.a1111)
    os.makedirs(args.out, exist_ok=True)
    models = {}
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
