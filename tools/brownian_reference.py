#!/usr/bin/env python3
"""Reference data for sd-noise's Brownian tree (crates/sd-noise/src/brownian/):
k-diffusion's `BrownianTreeNoiseSampler` over torchsde's `BrownianTree`, as A1111 uses it for
its SDE samplers (`Sampler.create_noise_sampler`: `BrownianTreeNoiseSampler(x, sigma_min,
sigma_max, seed=<the batch's seeds>)`, sigma_min/max = `sigmas[sigmas > 0].min(), sigmas.max()`).

Everything is computed by the real libraries (torchsde 0.2.6, k-diffusion 0.1.1.post1, numpy's
SeedSequence), on the CPU in float32 (A1111's latents are float32; the tree draws its node noise
with `torch.randn` on the latent's device, here the CPU):

a) numpy `SeedSequence(entropy, spawn_key, pool_size).generate_state(n)` for a few inputs
   (the integer hashing torchsde seeds every tree node with);
b) raw noise-sampler values for several seeds, latent shapes and query sequences: the order
   DPM++ 2M SDE asks (σ_i, σ_{i+1}), the order DPM++ SDE asks (σ_i, σ_mid), (σ_i, σ_{i+1})
   with σ_mid computed as k-diffusion does (float32 `t.neg().exp()`), then repeated, reversed,
   spanning and out-of-range queries;
c) full `sample_dpmpp_2m_sde` (midpoint and Heun), `sample_dpmpp_sde` and `sample_dpmpp_3m_sde` runs (batch 2, two seeds, 10 Karras steps)
   with the analytic denoiser D(x, σ) = x/√(1+σ²) + 0.1·tanh(x) of tools/sampler_reference.py
   and a `BrownianTreeNoiseSampler`, recording every callback x, the output, and the (σ, σ_next)
   of every noise-sampler call. The runs are float32 torch, as in A1111.

Usage:
    tools/.venv/bin/python tools/brownian_reference.py [--out fixtures/noise]

Output: <out>/brownian.safetensors (float32 tensors) and <out>/brownian.json (the cases).
"""

import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import k_diffusion.sampling as ks

SIGMA_MIN, SIGMA_MAX = 0.0291675, 14.614642  # SD's model sigmas (CompVisDenoiser) as float32


def analytic_denoiser(x, sigma):
    sigma = sigma.reshape(-1, *([1] * (x.ndim - 1))) if torch.is_tensor(sigma) else sigma
    return x / (1 + sigma ** 2) ** 0.5 + 0.1 * torch.tanh(x)


def karras(n):
    return ks.get_sigmas_karras(n, SIGMA_MIN, SIGMA_MAX).float()


def dpmpp_sde_queries(sigmas):
    """The (σ, σ_next) pairs `sample_dpmpp_sde` hands its noise sampler, computed as it does."""
    sigma_fn = lambda t: t.neg().exp()
    t_fn = lambda sigma: sigma.log().neg()
    out = []
    for i in range(len(sigmas) - 1):
        if sigmas[i + 1] == 0:
            continue
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        s = t + h * 0.5
        out.append((sigma_fn(t), sigma_fn(s)))
        out.append((sigma_fn(t), sigma_fn(t_next)))
    return out


def seed_sequence_cases():
    cases = []
    for entropy, spawn_key, pool_size, n in [
        (0, (), 4, 4),
        (3711471449, (), 24, 3),
        (3711471449, (0, 0), 24, 4),
        (12345, (5, 3), 24, 4),
        (2**40 + 7, (2**33 + 1, 40), 24, 4),
        (1, (1,), 4, 6),
    ]:
        state = np.random.SeedSequence(entropy, spawn_key=spawn_key, pool_size=pool_size).generate_state(n)
        cases.append({"entropy": entropy, "spawn_key": list(spawn_key), "pool_size": pool_size,
                      "state": [int(v) for v in state]})
    return cases


def raw_cases(tensors):
    sig = karras(10)
    pos = sig[sig > 0]
    smin, smax = pos.min(), sig.max()
    two_m = [(sig[i], sig[i + 1]) for i in range(len(sig) - 1) if sig[i + 1] > 0]
    sde = dpmpp_sde_queries(sig)
    f = lambda v: torch.tensor(v, dtype=torch.float32)
    extras = [
        (sig[2], sig[3]),           # repeated
        (sig[5], sig[3]),           # reversed (ascending)
        (sig[1], sig[6]),           # spanning several cached nodes
        (f(20.0), sig[1]),          # above sigma_max: clamped
        (sig[8], f(0.001)),         # below sigma_min: clamped
        (sig[0], pos[-1]),          # the whole interval
    ]
    specs = [
        ("vec_2m", [4, 4, 4], [3711471449, 3711471450], two_m + extras),
        ("vec_sde", [4, 4, 4], [0, 4294967295], sde + extras),
        ("scalar_2m", [1, 2, 3], [1234], two_m + extras),
        ("tail_sde", [3, 5, 7], [2**40 + 5], sde),
    ]
    cases = []
    for name, shape, seeds, queries in specs:
        x = torch.zeros([len(seeds), *shape], dtype=torch.float32)
        ns = ks.BrownianTreeNoiseSampler(x, smin, smax, seed=seeds)
        q = []
        divisors = []
        for k, (a, b) in enumerate(queries):
            tensors[f"raw/{name}/{k}"] = ns(a, b).contiguous()
            # The divisor torch used, so the test can tell the tree's increment (bit-exact)
            # from torch's float32 sqrt (MKL; not always correctly rounded).
            divisors.append(float((b - a).abs().sqrt()))
            q.append([float(a), float(b)])
        cases.append({"name": name, "shape": shape, "seeds": seeds, "sigma_min": float(smin),
                      "sigma_max": float(smax), "queries": q, "divisors": divisors})
    # A full-size latent (4×64×64), one image: the first 2M query, every 97th value.
    x = torch.zeros([1, 4, 64, 64], dtype=torch.float32)
    ns = ks.BrownianTreeNoiseSampler(x, smin, smax, seed=[3711471449])
    tensors["raw/big/0"] = ns(sig[0], sig[1]).flatten()[::97].contiguous()
    tensors["raw/big/1"] = ns(sig[7], sig[8]).flatten()[::97].contiguous()
    cases.append({"name": "big", "shape": [4, 64, 64], "seeds": [3711471449], "sigma_min": float(smin),
                  "sigma_max": float(smax), "stride": 97,
                  "queries": [[float(sig[0]), float(sig[1])], [float(sig[7]), float(sig[8])]]})
    return cases


class Recording:
    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __call__(self, sigma, sigma_next):
        self.calls.append([float(sigma), float(sigma_next)])
        return self.inner(sigma, sigma_next)


def sampler_runs(tensors):
    seeds = [3711471449, 3711471450]
    sig = karras(10)
    g = torch.Generator().manual_seed(7)
    x_init = torch.randn([2, 4, 4, 4], generator=g, dtype=torch.float32)
    tensors["run/sigmas"] = sig.contiguous()
    tensors["run/x_init"] = x_init
    runs = []
    for name, func, kwargs in [
        ("dpmpp_2m_sde", ks.sample_dpmpp_2m_sde, {}),
        ("dpmpp_2m_sde_heun", ks.sample_dpmpp_2m_sde, {"solver_type": "heun"}),
        ("dpmpp_sde", ks.sample_dpmpp_sde, {}),
        ("dpmpp_3m_sde", ks.sample_dpmpp_3m_sde, {}),
    ]:
        x = x_init * sig[0]
        smin, smax = sig[sig > 0].min(), sig.max()
        ns = Recording(ks.BrownianTreeNoiseSampler(x, smin, smax, seed=seeds))
        xs = []
        out = func(analytic_denoiser, x, sig, extra_args={}, callback=lambda d: xs.append(d["x"].clone()),
                   disable=True, noise_sampler=ns, **kwargs)
        tensors[f"run/{name}/x"] = torch.stack(xs).contiguous()
        tensors[f"run/{name}/out"] = out.contiguous()
        tensors[f"run/{name}/noise_sigmas"] = torch.tensor(ns.calls, dtype=torch.float32)
        runs.append({"name": name, "seeds": seeds, **kwargs})
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "noise"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    tensors = {}
    index = {
        "generator": "tools/brownian_reference.py",
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "torchsde": __import__("torchsde").__version__},
        "seed_sequence": seed_sequence_cases(),
        "raw": raw_cases(tensors),
        "runs": sampler_runs(tensors),
    }
    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "brownian.safetensors"))
    with open(os.path.join(args.out, "brownian.json"), "w") as fh:
        json.dump(index, fh, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
