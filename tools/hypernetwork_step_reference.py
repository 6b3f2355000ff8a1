#!/usr/bin/env python3
"""Reference for ONE hypernetwork training step, as A1111's `train_hypernetwork` takes it.

    tools/.venv/bin/python tools/hypernetwork_step_reference.py   # writes fixtures/hypernetwork/step.safetensors

Reuses `hypernetwork_reference.py` (A1111's transcribed `HypernetworkModule`,
`Hypernetwork.load`, `apply_hypernetworks` and the diffusers `HypernetworkAttnProcessor` that
applies them to every attention's k/v inputs). What A1111's training adds is transcribed here:

* `Hypernetwork.train()`: every module in train mode (so `HypernetworkModule.forward` uses
  multiplier 1 whatever was set) and `requires_grad = True` on its parameters;
  `Hypernetwork.weights()`: the parameters of every (k, v) module of every width, in order.
  The same module object serves every attention layer of its width, so its gradient is the
  sum over those layers. The UNet is frozen.
* The loss is ldm's `LatentDiffusion.forward` -> `p_losses` (eps-prediction) for given
  timesteps and noise: `x_t = sqrt_alphas_cumprod[t] * x0 + sqrt_one_minus_alphas_cumprod[t] * noise`
  with ldm's `register_schedule` buffers (betas = linspace(sqrt(beta_start), sqrt(beta_end),
  1000, float64) ** 2, alphas_cumprod = cumprod(1 - betas) in float64; every buffer, including
  the two square roots, computed in float64 and stored as float32); `loss = mean over each
  sample of (unet(x_t, t, context) - noise)^2, then mean over the batch` (`l_simple_weight` 1,
  `logvar` 0, `original_elbo_weight` 0) -- with equal-sized samples this is the mean over all
  elements. `gradient_step` 1; A1111's GradScaler scales by a power of two and unscales before
  the step, which is exact, so it is left out.
* The update is `torch.optim.AdamW(params=hypernetwork.weights(), lr=1e-3)` with torch's
  defaults (betas (0.9, 0.999), eps 1e-8, weight_decay 0.01), one step.

Inputs (torch.Generator seed 77, in this order): x0 = randn(2,4,8,8), noise = randn(2,4,8,8),
context = randn(2,77,32); timesteps [150, 700].

`step.safetensors` (float32): `x0`, `noise`, `context`, `timesteps` [2], `loss` [1],
`alphas_cumprod_t`, `sqrt_alphas_cumprod_t`, `sqrt_one_minus_alphas_cumprod_t` (the float32
buffer values at the two timesteps, [2]), and for every parameter of every module
`grad.<width>.<k|v>.<state-dict key>` and `updated.<width>.<k|v>.<state-dict key>` (the
parameter after the AdamW step), PyTorch shapes (Linear weights [out, in]).

Caveat: the gradient of each k module's LAST bias (`grad.<w>.k.linear.2.bias`) is zero
analytically: that bias adds the same vector `to_k(b)` to every key, which shifts each query's
logits by a constant and cancels in the softmax (float64 gives ~1e-17). The stored float32
values (~1e-9) are round-off, and AdamW's first step, lr * g / (|g| + eps) with eps 1e-8, turns
that noise into moves of up to ~3e-4 in `updated.<w>.k.linear.2.bias`. Compare those gradients
with an absolute tolerance only, and those updated biases to within ~lr of
`p * (1 - lr * 0.01)`, not elementwise tightly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hypernetwork_reference as ref  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "fixtures" / "tiny-sd1"
OUT = REPO / "fixtures" / "hypernetwork"
HN_FILE = OUT / "hn-plain.pt"
SEED = 77
TIMESTEPS = [150, 700]
LR = 1e-3


# ---------------------------------------------------------------------------------------
# Transcribed from A1111's Hypernetwork (the methods hypernetwork_reference.py left out).
# ---------------------------------------------------------------------------------------


def hn_weights(hn: ref.Hypernetwork) -> list:
    res = []
    for k, layers in hn.layers.items():
        for layer in layers:
            res += layer.parameters()
    return res


def hn_train(hn: ref.Hypernetwork, mode: bool = True) -> None:
    for k, layers in hn.layers.items():
        for layer in layers:
            layer.train(mode=mode)
            for param in layer.parameters():
                param.requires_grad = mode


# ---------------------------------------------------------------------------------------


def schedule_buffers():
    """ldm's `register_schedule` (beta_schedule "linear" in ldm = diffusers' "scaled_linear")."""
    cfg = json.loads((MODEL / "scheduler" / "scheduler_config.json").read_text())
    assert cfg["beta_schedule"] == "scaled_linear" and cfg["prediction_type"] == "epsilon"
    assert cfg["num_train_timesteps"] == 1000 and cfg["trained_betas"] is None
    start, end, n = cfg["beta_start"], cfg["beta_end"], cfg["num_train_timesteps"]
    betas = torch.linspace(start ** 0.5, end ** 0.5, n, dtype=torch.float64).numpy() ** 2
    ac = np.cumprod(1.0 - betas, axis=0)
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return f32(ac), f32(np.sqrt(ac)), f32(np.sqrt(1.0 - ac)), ac


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    hn = ref.Hypernetwork()
    hn.load(str(HN_FILE))
    assert sorted(hn.layers) == [16, 32] and hn.layer_structure == [1, 2, 1]
    assert hn.activation_func == "relu" and not hn.add_layer_norm and not any(hn.dropout_structure)
    hn.set_multiplier(0.37)  # ignored in train mode (A1111 trains with multiplier 1)
    hn_train(hn)
    initial = {(w, kv, key): t.detach().clone()
               for w, mods in hn.layers.items() for kv, m in zip("kv", mods)
               for key, t in m.state_dict().items()}

    unet = UNet2DConditionModel.from_pretrained(MODEL / "unet", torch_dtype=torch.float32)
    unet.eval()  # (no dropout in the tiny UNet either way)
    for p in unet.parameters():
        p.requires_grad_(False)
    proc = ref.HypernetworkAttnProcessor()
    proc.hypernetworks = [hn]
    unet.set_attn_processor(proc)

    ac32, sqrt_ac, sqrt_1m_ac, ac64 = schedule_buffers()

    g = torch.Generator().manual_seed(SEED)
    x0 = torch.randn(2, 4, 8, 8, generator=g)
    noise = torch.randn(2, 4, 8, 8, generator=g)
    context = torch.randn(2, 77, 32, generator=g)
    t = torch.tensor(TIMESTEPS, dtype=torch.long)

    params = hn_weights(hn)
    optimizer = torch.optim.AdamW(params=params, lr=LR)
    assert optimizer.defaults["weight_decay"] == 0.01 and optimizer.defaults["betas"] == (0.9, 0.999)
    assert optimizer.defaults["eps"] == 1e-8

    def loss_and_grads():
        optimizer.zero_grad(set_to_none=True)
        a = sqrt_ac[t].reshape(-1, 1, 1, 1)
        b = sqrt_1m_ac[t].reshape(-1, 1, 1, 1)
        x_t = a * x0 + b * noise
        proc.calls = {}
        pred = unet(x_t, t, encoder_hidden_states=context).sample
        loss = ((pred.float() - noise.float()) ** 2).mean([1, 2, 3]).mean()
        loss.backward()
        return loss.detach().clone(), [p.grad.detach().clone() for p in params], dict(proc.calls)

    loss1, grads1, calls = loss_and_grads()
    loss2, grads2, _ = loss_and_grads()
    assert torch.equal(loss1, loss2), (loss1.item(), loss2.item())
    assert all(torch.equal(a, b) for a, b in zip(grads1, grads2))
    print("loss and gradients bitwise identical over two runs")
    print("attention calls (kind, context width) -> count:", calls)
    # The mean over all elements (the samples are equal-sized) agrees.
    print(f"loss = {loss1.item():.9g}")

    # Gradients per module / key, before the step.
    tensors = {
        "x0": x0, "noise": noise, "context": context,
        "timesteps": t.to(torch.float32),
        "loss": loss1.reshape(1),
        "alphas_cumprod_t": ac32[t], "sqrt_alphas_cumprod_t": sqrt_ac[t],
        "sqrt_one_minus_alphas_cumprod_t": sqrt_1m_ac[t],
    }
    for w, mods in hn.layers.items():
        for kv, m in zip("kv", mods):
            for key, p in m.named_parameters():
                assert p.grad is not None
                nz = int((p.grad != 0).sum())
                assert p.grad.abs().max() > 0, f"zero gradient: {w}.{kv}.{key}"
                tensors[f"grad.{w}.{kv}.{key}"] = p.grad.detach().clone()
                print(f"grad.{w}.{kv}.{key:<16} shape {list(p.shape)!s:<9} norm {p.grad.norm().item():.6e} "
                      f"nonzero {nz}/{p.numel()}")

    optimizer.step()
    for w, mods in hn.layers.items():
        for kv, m in zip("kv", mods):
            for key, p in m.named_parameters():
                tensors[f"updated.{w}.{kv}.{key}"] = p.detach().clone()
                delta = (p.detach() - initial[(w, kv, key)]).abs().max().item()
                assert delta > 0
    # Sanity: the first AdamW step is p*(1 - lr*wd) - lr * g / (|g| + eps) (bias-corrected).
    for (w, kv, key), p0 in initial.items():
        gr = tensors[f"grad.{w}.{kv}.{key}"]
        expect = p0 * (1 - LR * 0.01) - LR * gr / (gr.abs() + 1e-8)
        assert torch.allclose(tensors[f"updated.{w}.{kv}.{key}"], expect, atol=1e-6), (w, kv, key)

    for ti in TIMESTEPS:
        print(f"t={ti}: alphas_cumprod f64 {ac64[ti]!r} f32 {ac32[ti].item()!r}; "
              f"sqrt_ac f32 {sqrt_ac[ti].item()!r} (sqrt of f32 ac: {ac32[ti].sqrt().item()!r}); "
              f"sqrt_1m_ac f32 {sqrt_1m_ac[ti].item()!r} (sqrt(1 - f32 ac): {(1 - ac32[ti]).sqrt().item()!r})")

    path = OUT / "step.safetensors"
    # No metadata: safetensors writes its entries in hash order, which would make the bytes vary.
    save_file({k: v.to(torch.float32).contiguous() for k, v in tensors.items()}, path)
    print(f"{path.relative_to(REPO)}: {path.stat().st_size} bytes, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
