#!/usr/bin/env python3
"""Reference data for the `sd-schedulers` crate, produced by k-diffusion and AUTOMATIC1111's own code.

Every expected value is computed by the real libraries, never by a re-implementation of the maths:

* k-diffusion (`k_diffusion.sampling`, `k_diffusion.external`; PyPI 0.1.1.post1, whose
  `sampling.py` and `external.py` are byte-identical to crowsonkb/k-diffusion at
  ab527a9a6d347f364e3d185ba6d714e22d80cb3c, the commit A1111 1.6-1.10 pins): the noise schedule
  of `CompVisDenoiser` / `CompVisVDenoiser`, `get_sigmas_karras` / `_exponential` /
  `_polyexponential`, and every `sample_*` function.
* A1111's `modules/sd_schedulers.py` (SGM Uniform, KL Optimal, Align Your Steps, Simple, Normal,
  DDIM, Beta), `modules/sd_samplers_timesteps_impl.py` (DDIM, PLMS) and
  `modules/sd_samplers_extra.py` (Restart), imported from a checkout given with `--a1111`
  (stable-diffusion-webui v1.10.x). For the committed fixtures the three files were copied from
  stored copies of the repository: `sd_schedulers.py` as of commit
  5bbbda473fc87c161ec7f5351d78b8c43799d436 (the v1.10 list: Automatic ... Beta), and the
  v1.10-era `sd_samplers_timesteps_impl.py` (with the `s_x` batch fix) and
  `sd_samplers_extra.py`; check them against your checkout. Those files import
  `modules.shared`; a stub stands in for it with A1111's default options (Beta α = β = 0.6,
  SD1 model); UniPC's module is stubbed out (not generated).
* diffusers' `DDPMScheduler` for the training-side forward process (`add_noise`,
  `get_velocity`).

What is reproduced here (and only here) is A1111's glue in `KDiffusionSampler.get_sigmas` /
`CompVisSampler.get_timesteps`: which schedule a sampler defaults to, "discard penultimate sigma",
`x = noise * sigmas[0]`, the extra parameters (eta = 1 for ancestral/SDE samplers, s_tmax = inf),
and the sigma_min/sigma_max/n that DPM fast/adaptive receive.

The denoiser is analytic and deterministic: D(x, σ) = x / sqrt(1 + σ²) + 0.1·tanh(x). The timestep
samplers (DDIM, PLMS) call an ε-model of (x, t); it is the same D seen through k-diffusion's
ε-parameterisation at σ = sigmas[t]: eps(x, t) = (x·sqrt(1+σ²) − D(x·sqrt(1+σ²), σ)) / σ.

Per-step noise is recorded: `torch.randn_like` inside the samplers is replaced (as A1111's
TorchHijack does) by a seeded generator that records every tensor it returns, and the SDE samplers
get a `BrownianTreeNoiseSampler` (A1111's `create_noise_sampler`: one tree per seed) wrapped in a
recorder. The Rust tests replay the recorded noise, so they are exact.

REFERENCE PRECISION: the sampler runs are made in float64 (latents, sigmas and the analytic
denoiser; the schedules themselves stay the float32 values A1111 computes). In float32, torch's
CPU kernels round some operations differently from IEEE (on this machine `sqrt` of a 0-dim
float32 tensor is not correctly rounded), and ancestral steps to a tiny σ cancel
catastrophically in `get_ancestral_step` (σ_down = sqrt(σ_next² − σ_up²)), so a float32 reference
carries errors of ~2e-4 that no independent float32 implementation can reproduce. The float64
run is the same algorithm with that rounding noise removed; the Rust float32 implementation
(which computes such step coefficients in float64) is compared to it.

Usage:
    python tools/sampler_reference.py --a1111 /path/to/stable-diffusion-webui [--out fixtures/samplers]
"""

import argparse
import json
import math
import os
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

SHAPE = (1, 4, 4, 4)
STEPS = [1, 2, 10, 30]
SEED = 1234


def install_a1111(path):
    """Imports A1111's modules with a stub `modules.shared` (default options, an SD1 model)."""
    modules = types.ModuleType("modules")
    modules.__path__ = [os.path.join(path, "modules")]
    shared = types.ModuleType("modules.shared")
    shared.opts = types.SimpleNamespace(beta_dist_alpha=0.6, beta_dist_beta=0.6,
                                        uni_pc_variant="bh1", uni_pc_skip_type="time_uniform",
                                        uni_pc_order=3, uni_pc_lower_order_final=True)
    shared.sd_model = types.SimpleNamespace(is_sdxl=False)
    modules.shared = shared
    sys.modules["modules"] = modules
    sys.modules["modules.shared"] = shared
    # sd_samplers_timesteps_impl imports UniPC at module level; UniPC is not generated here.
    for name in ["modules.models", "modules.models.diffusion", "modules.models.diffusion.uni_pc"]:
        m = types.ModuleType(name)
        m.__path__ = []
        sys.modules[name] = m
    uni_pc = types.ModuleType("modules.models.diffusion.uni_pc.uni_pc")
    uni_pc.UniPC = object
    sys.modules["modules.models.diffusion.uni_pc.uni_pc"] = uni_pc
    sys.modules["modules.models.diffusion.uni_pc"].uni_pc = uni_pc
    import importlib
    sched = importlib.import_module("modules.sd_schedulers")
    ts = importlib.import_module("modules.sd_samplers_timesteps_impl")
    extra = importlib.import_module("modules.sd_samplers_extra")
    return sched, ts, extra


def ldm_alphas_cumprod():
    """LDM's `register_schedule`: linear betas in sqrt space, float64, stored as float32."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
    return torch.tensor(alphas_cumprod, dtype=torch.float32)


class FakeLdm(torch.nn.Module):
    """Just what CompVisDenoiser reads from an LDM model: its `alphas_cumprod` buffer."""

    def __init__(self, alphas_cumprod):
        super().__init__()
        self.alphas_cumprod = alphas_cumprod


def analytic_denoiser(x, sigma):
    sigma = sigma.reshape(-1, *([1] * (x.ndim - 1))) if torch.is_tensor(sigma) else sigma
    return x / (1 + sigma ** 2) ** 0.5 + 0.1 * torch.tanh(x)


class Recorder:
    """Stands in for `torch` inside the samplers (as A1111's TorchHijack) and records noise."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.calls = []  # (sigma, sigma_next, tensor)

    def __getattr__(self, item):
        return getattr(torch, item)

    def randn_like(self, x):
        n = torch.randn(x.shape, generator=self.gen, dtype=torch.float32)
        self.calls.append((float("nan"), float("nan"), n.clone()))
        return n.to(x.dtype)


class RecordingNoiseSampler:
    def __init__(self, inner, recorder):
        self.inner = inner
        self.recorder = recorder

    def __call__(self, sigma, sigma_next):
        # Stored (and replayed) as float32; the run continues with exactly the stored values.
        n = self.inner(sigma, sigma_next).float()
        self.recorder.calls.append((float(sigma), float(sigma_next), n.clone()))
        return n.double()


# A1111 1.10's sampler table (modules/sd_samplers_kdiffusion.py, sd_samplers_timesteps.py):
# label -> (function, options).
K_SAMPLERS = {
    "DPM++ 2M": ("sample_dpmpp_2m", {"scheduler": "karras"}),
    "DPM++ SDE": ("sample_dpmpp_sde", {"scheduler": "karras", "second_order": True, "brownian_noise": True}),
    "DPM++ 2M SDE": ("sample_dpmpp_2m_sde", {"scheduler": "exponential", "brownian_noise": True}),
    "DPM++ 2M SDE Heun": ("sample_dpmpp_2m_sde", {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"}),
    "DPM++ 2S a": ("sample_dpmpp_2s_ancestral", {"scheduler": "karras", "uses_ensd": True, "second_order": True}),
    "DPM++ 3M SDE": ("sample_dpmpp_3m_sde", {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True}),
    "Euler a": ("sample_euler_ancestral", {"uses_ensd": True}),
    "Euler": ("sample_euler", {}),
    "LMS": ("sample_lms", {}),
    "Heun": ("sample_heun", {"second_order": True}),
    "DPM2": ("sample_dpm_2", {"scheduler": "karras", "discard_next_to_last_sigma": True, "second_order": True}),
    "DPM2 a": ("sample_dpm_2_ancestral", {"scheduler": "karras", "discard_next_to_last_sigma": True, "uses_ensd": True, "second_order": True}),
    "DPM fast": ("sample_dpm_fast", {"uses_ensd": True}),
    "DPM adaptive": ("sample_dpm_adaptive", {"uses_ensd": True}),
    "Restart": ("restart", {"scheduler": "karras", "second_order": True}),
}
TIMESTEP_SAMPLERS = ["DDIM", "PLMS"]


def schedule_sigmas(sched, model, name, n):
    """A1111's get_sigmas for one schedule (no discard): the scheduler function with its kwargs."""
    s = sched.schedulers_map[name]
    sigma_min, sigma_max = model.sigmas[0].item(), model.sigmas[-1].item()
    if s.function is None:
        return model.get_sigmas(n)
    kwargs = {"sigma_min": sigma_min, "sigma_max": sigma_max}
    if s.need_inner_model:
        kwargs["inner_model"] = model
    return s.function(n=n, **kwargs, device="cpu")


def sampler_sigmas(sched, model, options, n, schedule=None):
    discard = options.get("discard_next_to_last_sigma", False)
    steps = n + (1 if discard else 0)
    name = schedule or options.get("scheduler") or "Automatic"
    sigmas = schedule_sigmas(sched, model, name, steps).float()
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


def run_k(sched, extra, model, label, n, x_init, params, schedule=None):
    import k_diffusion.sampling as ks
    funcname, options = K_SAMPLERS[label]
    sigmas = sampler_sigmas(sched, model, options, n, schedule)
    rec = Recorder(SEED + n)
    ks.torch = rec
    cb = []

    def callback(d):
        cb.append((float(d["sigma_hat"]) if "sigma_hat" in d else float("nan"), d["x"].clone(), d["denoised"].clone()))

    # float64 run: see REFERENCE PRECISION in the module docstring.
    x = x_init.double() * sigmas.double()[0]
    kwargs = dict(params)
    if funcname == "restart":
        func = extra.restart_sampler
    else:
        func = getattr(ks, funcname)
    import inspect
    sig = inspect.signature(func).parameters
    if "sigma_min" in sig:
        kwargs["sigma_min"] = model.sigmas[0].item()
        kwargs["sigma_max"] = model.sigmas[-1].item()
        if "n" in sig:
            kwargs["n"] = n
    else:
        kwargs["sigmas"] = sigmas.double()
    if options.get("brownian_noise"):
        smin, smax = sigmas[sigmas > 0].min(), sigmas.max()
        kwargs["noise_sampler"] = RecordingNoiseSampler(
            ks.BrownianTreeNoiseSampler(x, smin, smax, seed=[SEED + 7 * n]), rec)
    if options.get("solver_type"):
        kwargs["solver_type"] = options["solver_type"]
    out = func(analytic_denoiser, x, extra_args={}, callback=callback, disable=True, **kwargs)
    ks.torch = torch
    return sigmas, cb, rec.calls, out


class EpsOfAnalytic(torch.nn.Module):
    """The ε-model DDIM/PLMS call: D seen through k-diffusion's ε-parameterisation at sigmas[t]."""

    def __init__(self, ldm, kmodel):
        super().__init__()
        self.inner_model = types.SimpleNamespace(inner_model=ldm)
        self.kmodel = kmodel

    def forward(self, x, t):
        sigma = self.kmodel.t_to_sigma(torch.as_tensor(t, dtype=torch.float32)).reshape(-1, 1, 1, 1).double()
        x_ve = x * (1 + sigma ** 2) ** 0.5
        return (x_ve - analytic_denoiser(x_ve, sigma)) / sigma


def a1111_timesteps(steps):
    return torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)


def run_timesteps(ts, ldm, kmodel, label, n, x_init, params):
    import k_diffusion.sampling as ks
    timesteps = a1111_timesteps(n)
    rec = Recorder(SEED + n)
    ks.torch = rec
    cb = []

    def callback(d):
        cb.append((float("nan"), d["x"].clone(), d["denoised"].clone()))

    func = ts.ddim if label == "DDIM" else ts.plms
    out = func(EpsOfAnalytic(ldm, kmodel), x_init.double(), timesteps, extra_args={}, callback=callback, disable=True, **params)
    ks.torch = torch
    return timesteps.float(), cb, rec.calls, out


def stack(ts):
    return torch.stack(ts) if ts else torch.zeros((0, *SHAPE))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout (v1.10.x)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "samplers"))
    args = ap.parse_args()
    sched, ts, extra = install_a1111(args.a1111)
    import k_diffusion.external as ke
    from diffusers import DDPMScheduler

    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)

    ac = ldm_alphas_cumprod()
    ldm = FakeLdm(ac)
    eps_model = ke.CompVisDenoiser(ldm)
    v_model = ke.CompVisVDenoiser(ldm)

    # ---- noise schedule, sigma <-> t, denoiser scalings, schedules -------------------------
    t = {}
    t["alphas_cumprod"] = ac
    t["sigmas"] = eps_model.sigmas.float()
    probe_sigmas = torch.tensor([0.0292, 0.03, 0.1, 0.5, 1.0, 2.5, 7.0, 14.0, 14.6146, 0.02916753],
                                dtype=torch.float32)
    t["probe/sigmas"] = probe_sigmas
    t["probe/sigma_to_t"] = eps_model.sigma_to_t(probe_sigmas)
    probe_t = torch.tensor([0.0, 0.25, 1.0, 10.5, 123.456, 500.0, 998.9, 999.0], dtype=torch.float32)
    t["probe/t"] = probe_t
    t["probe/t_to_sigma"] = eps_model.t_to_sigma(probe_t)
    gen = torch.Generator().manual_seed(SEED)
    xin = torch.randn(SHAPE, generator=gen)
    t["probe/x"] = xin
    inner_out = torch.randn(SHAPE, generator=gen)
    t["probe/model_out"] = inner_out
    for s in [0.1, 1.0, 14.6146]:
        sig = torch.tensor([s], dtype=torch.float32)
        seen = {}

        def inner(x_in, tt, **kw):
            seen["x_in"], seen["t"] = x_in.clone(), tt.clone()
            return inner_out
        eps_model.get_eps = inner
        t[f"probe/eps/{s}"] = eps_model(xin, sig)
        t[f"probe/eps/{s}/x_in"] = seen["x_in"]
        t[f"probe/eps/{s}/t"] = seen["t"]
        v_model.get_v = inner
        t[f"probe/v/{s}"] = v_model(xin, sig)
        t[f"probe/v/{s}/t"] = seen["t"]

    schedules = [s.label for s in sched.schedulers]
    for label in schedules:
        for n in [1, 2, 3, 10, 11, 20, 30]:
            t[f"schedule/{label}/{n}"] = schedule_sigmas(sched, eps_model, label, n).float()
    # Karras/Exponential/Polyexponential with non-default knobs, as A1111's options allow.
    t["schedule/Karras rho=3/10"] = sched.schedulers_map["Karras"].function(n=10, sigma_min=0.1, sigma_max=10.0, rho=3.0)
    t["schedule/Polyexponential rho=2/10"] = sched.schedulers_map["Polyexponential"].function(
        n=10, sigma_min=eps_model.sigmas[0].item(), sigma_max=eps_model.sigmas[-1].item(), rho=2.0)
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(args.out, "schedules.safetensors"),
              metadata={"schedules": json.dumps(schedules)})

    # ---- DDPM forward process (diffusers) ---------------------------------------------------
    ddpm = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    gen = torch.Generator().manual_seed(SEED + 1)
    x0 = torch.randn((3, 4, 4, 4), generator=gen)
    noise = torch.randn((3, 4, 4, 4), generator=gen)
    steps = torch.tensor([0, 499, 999])
    d = {"x0": x0, "noise": noise, "timesteps": steps.float(),
         "add_noise": ddpm.add_noise(x0, noise, steps), "velocity": ddpm.get_velocity(x0, noise, steps)}
    save_file(d, os.path.join(args.out, "ddpm.safetensors"))

    # ---- samplers ---------------------------------------------------------------------------
    gen = torch.Generator().manual_seed(SEED + 2)
    x_init = torch.randn(SHAPE, generator=gen)
    cases = []
    # (case name, sampler label, schedule override or None, params, step counts)
    ancestral = {"eta": 1.0, "s_noise": 1.0}
    churn_default = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": float("inf"), "s_noise": 1.0}
    plan = []
    for label in K_SAMPLERS:
        func = K_SAMPLERS[label][0]
        if func in ("sample_euler", "sample_heun", "sample_dpm_2"):
            params = dict(churn_default)
        elif func in ("sample_lms", "sample_dpmpp_2m", "restart"):
            params = {}
        else:
            params = dict(ancestral)
        plan.append((label, label, None, params, STEPS))
    plan += [
        ("Euler churn", "Euler", None, {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 10.0, "s_noise": 1.003}, [10]),
        ("Heun churn", "Heun", None, {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 10.0, "s_noise": 1.003}, [10]),
        ("DPM2 churn", "DPM2", None, {"s_churn": 1.0, "s_tmin": 0.5, "s_tmax": 10.0, "s_noise": 1.003}, [10]),
        ("Euler a eta=0.5", "Euler a", None, {"eta": 0.5, "s_noise": 1.0}, [10]),
        ("DPM++ 2M SDE eta=0", "DPM++ 2M SDE", None, {"eta": 0.0, "s_noise": 1.0}, [10]),
        ("DPM++ SDE eta=0.5", "DPM++ SDE", None, {"eta": 0.5, "s_noise": 1.0}, [10]),
        ("DPM fast eta=0", "DPM fast", None, {"eta": 0.0, "s_noise": 1.0}, [10]),
        ("Euler Karras", "Euler", "Karras", dict(churn_default), [10]),
        ("LMS Karras", "LMS", "Karras", {}, [10]),
        ("DPM++ 2M Uniform", "DPM++ 2M", "Uniform", {}, [10]),
        ("Euler a Exponential", "Euler a", "Exponential", dict(ancestral), [10]),
        ("DDIM eta=0.5", "DDIM", None, {"eta": 0.5}, [10]),
    ]
    plan += [(label, label, None, {"eta": 0.0} if label == "DDIM" else {}, STEPS) for label in TIMESTEP_SAMPLERS]

    tensors = {"x_init": x_init}
    for case, label, schedule, params, steps in plan:
        errors = {}
        for n in steps:
            try:
                if label in TIMESTEP_SAMPLERS:
                    sig, cb, calls, out = run_timesteps(ts, ldm, eps_model, label, n, x_init, params)
                else:
                    sig, cb, calls, out = run_k(sched, extra, eps_model, label, n, x_init, params, schedule)
            except UnboundLocalError as e:  # k-diffusion's own failures (e.g. 2M/3M SDE at one step)
                import k_diffusion.sampling as ks
                ks.torch = torch
                errors[n] = f"{type(e).__name__}: {e}"
                continue
            key = f"{case}/{n}"
            tensors[f"{key}/sigmas"] = sig.float().contiguous()
            tensors[f"{key}/cb_sigma"] = torch.tensor([c[0] for c in cb], dtype=torch.float32)
            tensors[f"{key}/x"] = stack([c[1] for c in cb]).float()
            tensors[f"{key}/denoised"] = stack([c[2] for c in cb]).float()
            tensors[f"{key}/noise"] = stack([c[2] for c in calls])
            tensors[f"{key}/noise_sigmas"] = torch.tensor([[c[0], c[1]] for c in calls], dtype=torch.float32).reshape(-1, 2)
            tensors[f"{key}/out"] = out.float().contiguous()
        clean = {k: (v if not (isinstance(v, float) and math.isinf(v)) else "inf") for k, v in params.items()}
        cases.append({"case": case, "sampler": label, "schedule": schedule, "params": clean,
                      "steps": [n for n in steps if n not in errors], "errors": errors})
    save_file(tensors, os.path.join(args.out, "samplers.safetensors"))
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
