#!/usr/bin/env python3
"""Half-precision references for issue 25's `--precision f16|bf16`.

    python tools/precision_reference.py     # writes fixtures/precision/<model>.safetensors

Runs diffusers' `UNet2DConditionModel` and `AutoencoderKL` and transformers' `CLIPTextModel`
(the committed tiny folders `tiny-sd1` and `tiny-sd2`) in float32, float16 and bfloat16 on
the CPU, as `from_pretrained(torch_dtype=...)` gives them (diffusers' default SDPA attention
processor), on the same inputs. The Rust test holds its own half-precision results to
PyTorch's: no further from the f32 reference (root-mean-square relative error) than PyTorch's
own half precision is, within a factor, and from PyTorch's half results within the same bound.

Keys (all stored as float32): `unet.sample`, `unet.timesteps`, `unet.context`,
`vae.latents`, `vae.image`, `clip.input_ids` (int64), and per dtype `d` in f32/f16/bf16:
`unet.out.<d>`, `vae.decoded.<d>`, `vae.encoded_mean.<d>`, `clip.last_hidden_state.<d>`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

REPO = Path(__file__).resolve().parent.parent
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
PROMPT = "a photo of a red disc on a wooden table, (best quality:1.2)"


def main() -> None:
    torch.set_num_threads(1)
    out_dir = REPO / "fixtures" / "precision"
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(("tiny-sd1", "tiny-sd2")):
        folder = REPO / "fixtures" / name
        g = torch.Generator().manual_seed(100 + seed)
        unet32 = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
        vae32 = AutoencoderKL.from_pretrained(folder, subfolder="vae")
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        factor = 2 ** (len(vae32.config.block_out_channels) - 1)
        tensors = {
            "unet.sample": torch.randn(2, unet32.config.in_channels, 8, 8, generator=g),
            "unet.timesteps": torch.tensor([741.5, 20.0]),
            "unet.context": torch.randn(2, 77, unet32.config.cross_attention_dim, generator=g),
            "vae.latents": torch.randn(1, vae32.config.latent_channels, 6, 6, generator=g),
            "vae.image": torch.rand(1, 3, 12 * factor, 12 * factor, generator=g) * 2 - 1,
        }
        ids = tokenizer(PROMPT, padding="max_length", max_length=77,
                        return_tensors="pt").input_ids
        for key, dtype in DTYPES.items():
            unet = UNet2DConditionModel.from_pretrained(
                folder, subfolder="unet", torch_dtype=dtype).eval()
            vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype).eval()
            clip = CLIPTextModel.from_pretrained(
                folder, subfolder="text_encoder", torch_dtype=dtype).eval()
            with torch.no_grad():
                out = unet(tensors["unet.sample"].to(dtype), tensors["unet.timesteps"],
                           tensors["unet.context"].to(dtype)).sample
                decoded = vae.decode(tensors["vae.latents"].to(dtype)).sample
                mean = vae.encode(tensors["vae.image"].to(dtype)).latent_dist.mean
                hidden = clip(ids).last_hidden_state
            tensors[f"unet.out.{key}"] = out.float()
            tensors[f"vae.decoded.{key}"] = decoded.float()
            tensors[f"vae.encoded_mean.{key}"] = mean.float()
            tensors[f"clip.last_hidden_state.{key}"] = hidden.float()
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        tensors["clip.input_ids"] = ids.to(torch.int64).contiguous()
        save_file(tensors, out_dir / f"{name}.safetensors")
        report = []
        for part in ("unet.out", "vae.decoded", "vae.encoded_mean", "clip.last_hidden_state"):
            ref = tensors[f"{part}.f32"]
            for key in ("f16", "bf16"):
                err = (tensors[f"{part}.{key}"] - ref).norm() / ref.norm()
                report.append(f"{part} {key}: {err:.2e}")
        print(name, "; ".join(report))


if __name__ == "__main__":
    main()
