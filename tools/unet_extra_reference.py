#!/usr/bin/env python3
"""Extra UNet reference cases beyond `make_fixtures.py`'s, for the `sd-unet` golden tests.

    python tools/unet_extra_reference.py     # writes fixtures/reference/unet_extra/*.safetensors

Runs diffusers' own `UNet2DConditionModel` (loaded from the committed tiny fixture folders)
on inputs `make_fixtures.py` does not cover:

* `odd_size`: a latent whose sides are not multiples of the UNet's 4× reduction
  ([1, 4, 7, 10]), which makes diffusers forward the skip sizes to the upsamplers
  (`forward_upsample_size`);
* `timesteps`: a batch of 4 with the timestep range's ends and fractional values
  ([0.0, 0.5, 999.999, 261.37]) and a 231-token context (three A1111 chunks).

Keys: `<case>.sample`, `<case>.timesteps`, `<case>.context`, `<case>.out`, float32.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "odd_size": ([1, 4, 7, 10], [741.5], 77),
    "timesteps": ([4, 4, 8, 8], [0.0, 0.5, 999.999, 261.37], 231),
}


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out_dir = REPO / "fixtures" / "reference" / "unet_extra"
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed, model in enumerate(("tiny-sd1", "tiny-sd2")):
        unet = UNet2DConditionModel.from_pretrained(
            REPO / "fixtures" / model, subfolder="unet", torch_dtype=torch.float32).eval()
        g = torch.Generator().manual_seed(1000 + seed)
        tensors = {}
        with torch.no_grad():
            for name, (shape, t, ctx) in CASES.items():
                sample = torch.randn(shape, generator=g)
                context = torch.randn(shape[0], ctx, unet.config.cross_attention_dim, generator=g)
                timesteps = torch.tensor(t, dtype=torch.float32)
                tensors[f"{name}.sample"] = sample
                tensors[f"{name}.timesteps"] = timesteps
                tensors[f"{name}.context"] = context
                tensors[f"{name}.out"] = unet(sample, timesteps,
                                              encoder_hidden_states=context).sample
        save_file({k: v.contiguous() for k, v in tensors.items()}, out_dir / f"{model}.safetensors")


if __name__ == "__main__":
    main()
