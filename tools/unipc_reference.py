#!/usr/bin/env python3
"""Reference data for `sd-schedulers`' UniPC, produced by AUTOMATIC1111's own UniPC code.

Runs A1111 1.10's `unipc` sampler function (`modules/sd_samplers_timesteps_impl.py`: its `UniPCCFG`
subclass over `modules/models/diffusion/uni_pc/uni_pc.py`'s `UniPC` and `NoiseScheduleVP('discrete')`)
from a checkout given with `--a1111`, with the analytic denoiser, the fixed initial noise and the
A1111 timesteps of tools/sampler_reference.py. For the committed fixture the two files were taken
from stored copies of the repository (`uni_pc.py` at commit 0251dfb250a7ab6b1568dcd56a2b08ed0469dfd4,
its code verbatim, long docstrings shortened, the unused `model_wrapper` left out; the v1.10-era
`sd_samplers_timesteps_impl.py` that tools/sampler_reference.py uses).

A1111 reads UniPC's options from its global settings (`modules/shared_options.py`): `uni_pc_variant`
("bh1", "bh2", "vary_coeff"; default "bh1"), `uni_pc_skip_type` ("time_uniform", "time_quadratic",
"logSNR"; default "time_uniform"), `uni_pc_order` (1..50, default 3) and `uni_pc_lower_order_final`
(default True). A stub `modules.shared` holds them; each case sets them.

img2img is A1111's `CompVisSampler.sample_img2img` glue (reproduced here, as sampler_reference.py
reproduces the txt2img glue): `t_enc = int(min(strength, 0.999) * steps)`, the sampler gets
`timesteps[:t_enc]` and `is_img2img=True` (UniPC then starts at `timesteps[-1] / 1000 + 1 / 1000`),
and the start latent is `init * sqrt(a) + noise * sqrt(1 - a)` with a = alphas_cumprod[timesteps[t_enc]].

Where A1111 fails, the failure is recorded instead of a run: with `method="multistep"` UniPC asserts
`steps >= order` ("UniPC order must be < sampling steps"), so the default order 3 fails at 1 and 2
steps (A1111 passes `len(timesteps)` as the step count: 1 and 2 there; note 30 steps are 31 there).

REFERENCE PRECISION: as in sampler_reference.py the latents and the analytic denoiser run in float64
while every schedule quantity stays the float32 value A1111 computes (`alphas_cumprod` is float32, so
`NoiseScheduleVP`, the time grid, lambda, h, the B(h) coefficients and the solved rho are float32).
uni_pc.py contracts those float32 coefficient vectors with the float64 latents in `torch.einsum`,
which refuses mixed dtypes; a shim in front of `torch` inside uni_pc.py casts the operands of
`einsum` to float64 (exactly representable: the values are unchanged) and nothing else.

Each step's callback (`after_update`) gives x after the step and the model's data prediction at the
predictor's x; at the last step UniPC skips the corrector and passes `denoised=None`, stored as NaN.

Usage:
    python tools/unipc_reference.py --a1111 /path/to/stable-diffusion-webui [--out fixtures/samplers]
"""

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
import types

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sampler_reference import (  # noqa: E402
    SEED, SHAPE, EpsOfAnalytic, FakeLdm, a1111_timesteps, ldm_alphas_cumprod,
)

DEFAULTS = {"uni_pc_variant": "bh1", "uni_pc_skip_type": "time_uniform", "uni_pc_order": 3,
            "uni_pc_lower_order_final": True}

# (case name, option overrides, step counts, img2img denoising strength or None)
CASES = [
    ("UniPC", {}, [1, 2, 10, 30], None),
    ("UniPC bh2", {"uni_pc_variant": "bh2"}, [1, 2, 10], None),
    ("UniPC vary_coeff", {"uni_pc_variant": "vary_coeff"}, [1, 2, 10], None),
    ("UniPC order 1", {"uni_pc_order": 1}, [1, 2, 10], None),
    ("UniPC order 2", {"uni_pc_order": 2}, [1, 2, 10], None),
    ("UniPC order 4", {"uni_pc_order": 4}, [10], None),
    ("UniPC vary_coeff order 2", {"uni_pc_variant": "vary_coeff", "uni_pc_order": 2}, [2, 10], None),
    ("UniPC logSNR", {"uni_pc_skip_type": "logSNR"}, [10, 30], None),
    ("UniPC time_quadratic", {"uni_pc_skip_type": "time_quadratic"}, [10], None),
    ("UniPC no lower order final", {"uni_pc_lower_order_final": False}, [10], None),
    ("UniPC img2img", {}, [30], 0.5),
    ("UniPC img2img logSNR", {"uni_pc_skip_type": "logSNR"}, [10], 0.75),
    ("UniPC img2img time_quadratic", {"uni_pc_skip_type": "time_quadratic"}, [10], 0.75),
]


class Float64Einsum:
    """`torch` as uni_pc.py sees it, except that `einsum` promotes its operands to a common dtype."""

    def __getattr__(self, item):
        return getattr(torch, item)

    @staticmethod
    def einsum(eq, *ops):
        dtype = torch.float64 if any(o.dtype == torch.float64 for o in ops) else ops[0].dtype
        return torch.einsum(eq, *[o.to(dtype) for o in ops])


def install_a1111(path):
    """A1111's timestep samplers with the real uni_pc.py and a stub `modules.shared`."""
    modules = types.ModuleType("modules")
    modules.__path__ = [os.path.join(path, "modules")]
    shared = types.ModuleType("modules.shared")
    shared.opts = types.SimpleNamespace(**DEFAULTS)
    shared.sd_model = types.SimpleNamespace(is_sdxl=False)
    modules.shared = shared
    sys.modules["modules"] = modules
    sys.modules["modules.shared"] = shared
    uni_pc = importlib.import_module("modules.models.diffusion.uni_pc.uni_pc")
    uni_pc.torch = Float64Einsum()
    ts = importlib.import_module("modules.sd_samplers_timesteps_impl")
    return shared, ts


class RecordingEps(EpsOfAnalytic):
    """sampler_reference.py's ε-model (fractional t → σ by k-diffusion's t_to_sigma), recording t."""

    def __init__(self, ldm, kmodel):
        super().__init__(ldm, kmodel)
        self.t_inputs = []

    def forward(self, x, t):
        self.t_inputs.append(float(torch.as_tensor(t, dtype=torch.float32).reshape(-1)[0]))
        return super().forward(x, t)


def run(ts, ldm, kmodel, n, x_start, timesteps, is_img2img):
    model = RecordingEps(ldm, kmodel)
    cb = []

    def callback(d):
        den = d["denoised"]
        cb.append((d["x"].clone(), torch.full(d["x"].shape, float("nan"), dtype=torch.float64) if den is None else den.clone()))

    with contextlib.redirect_stdout(io.StringIO()):  # uni_pc.py prints a line per run
        out = ts.unipc(model, x_start.double(), timesteps, extra_args={}, callback=callback, disable=True,
                       is_img2img=is_img2img)
    return cb, model.t_inputs, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout (v1.10.x)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "samplers"))
    args = ap.parse_args()
    shared, ts = install_a1111(args.a1111)
    import k_diffusion.external as ke

    ac = ldm_alphas_cumprod()
    ldm = FakeLdm(ac)
    kmodel = ke.CompVisDenoiser(ldm)

    # The initial noise of samplers.safetensors' x_init, cut to its top-left 2x2 pixels to keep the
    # file small (the analytic denoiser acts elementwise, so this is exactly that part of a full-size
    # run), and an "encoded image" for img2img.
    gen = torch.Generator().manual_seed(SEED + 2)
    x_init = torch.randn(SHAPE, generator=gen)[:, :, :2, :2].contiguous()
    gen = torch.Generator().manual_seed(SEED + 3)
    init_latent = torch.randn(SHAPE, generator=gen)[:, :, :2, :2].contiguous()
    tensors = {"x_init": x_init, "init_latent": init_latent}
    cases = []
    for case, overrides, steps, strength in CASES:
        opts = dict(DEFAULTS, **overrides)
        shared.opts = types.SimpleNamespace(**opts)
        errors = {}
        done = []
        for n in steps:
            timesteps = a1111_timesteps(n)
            if strength is None:
                x_start, sched = x_init.double(), timesteps
            else:
                t_enc = int(min(strength, 0.999) * n)
                sched = timesteps[:t_enc]
                a = ac[timesteps[t_enc]]
                x_start = init_latent.double() * a.sqrt().double() + x_init.double() * (1 - a).sqrt().double()
            try:
                cb, t_inputs, out = run(ts, ldm, kmodel, n, x_start, sched, strength is not None)
            except AssertionError as e:  # A1111's own failure (order > steps)
                errors[n] = f"AssertionError: {e}"
                continue
            key = f"{case}/{n}"
            tensors[f"{key}/timesteps"] = sched.float().contiguous()
            tensors[f"{key}/start"] = x_start.float().contiguous()
            tensors[f"{key}/t_input"] = torch.tensor(t_inputs, dtype=torch.float32)
            tensors[f"{key}/x"] = torch.stack([c[0] for c in cb]).float()
            tensors[f"{key}/denoised"] = torch.stack([c[1] for c in cb]).float()
            tensors[f"{key}/out"] = out.float().contiguous()
            done.append(n)
        cases.append({"case": case, "variant": opts["uni_pc_variant"], "skip_type": opts["uni_pc_skip_type"],
                      "order": opts["uni_pc_order"], "lower_order_final": opts["uni_pc_lower_order_final"],
                      "img2img_strength": strength, "steps": done, "errors": errors})
    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "unipc.safetensors"))
    with open(os.path.join(args.out, "unipc_cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
