"""Trains the tiny SD 1.x fixture into a model that follows its prompt: `tiny-sd1-concept`.

The random `tiny-sd1` cannot show that textual inversion learns anything: its text encoder
barely moves its UNet. This script gives it something to know. Starting from `tiny-sd1`'s
weights (text encoder and tokenizer kept frozen, as in Stable Diffusion), it trains

1. the VAE to reconstruct 64x64 pictures of coloured circles and squares on a grey ground;
2. the UNet (epsilon prediction, the fixture's scaled-linear schedule) on those pictures'
   latents, conditioned on captions such as "a photo of a blue circle", with 10 % empty
   captions so classifier-free guidance works.

The result is written as a diffusers folder `fixtures/tiny-sd1-concept/` (unet/, vae/;
text_encoder/, tokenizer/ and scheduler/ are links to `tiny-sd1`'s, whose weights are
unchanged). The VAE's `scaling_factor` is set to 1/std of the training latents, as SD's
0.18215 was chosen.

Usage: python tools/train_concept_model.py [--out fixtures/tiny-sd1-concept]
(CPU, 2 threads: a few minutes). Seeded, but not bit-reproducible across torch builds or
thread counts; the committed folder is the fixture, this script documents how it was made.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "fixtures" / "tiny-sd1"
COLOURS = {
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.75, 0.15),
    "blue": (0.1, 0.2, 0.9),
    "yellow": (0.9, 0.85, 0.1),
    "purple": (0.6, 0.1, 0.7),
}
SHAPES = ("circle", "square")


def pictures(n: int, g: torch.Generator):
    """n pictures in [-1, 1], [n, 3, 64, 64], with their captions."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    images = torch.empty(n, 3, 64, 64)
    captions = []
    names = list(COLOURS)
    for i in range(n):
        colour = names[int(torch.randint(len(names), (1,), generator=g))]
        shape = SHAPES[int(torch.randint(2, (1,), generator=g))]
        cx, cy = (torch.rand(2, generator=g) * 24 + 20).tolist()
        r = float(torch.rand(1, generator=g) * 8 + 10)
        if shape == "circle":
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r
        else:
            mask = ((xx - cx).abs() <= r * 0.9) & ((yy - cy).abs() <= r * 0.9)
        ground = 0.5 + 0.05 * torch.randn(1, generator=g)
        img = torch.full((3, 64, 64), float(ground))
        for c, v in enumerate(COLOURS[colour]):
            img[c][mask] = v
        images[i] = img * 2 - 1
        captions.append(f"a photo of a {colour} {shape}")
    return images, captions


def train_vae(vae: AutoencoderKL, steps: int, g: torch.Generator) -> None:
    vae.train()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    for step in range(steps):
        x, _ = pictures(8, g)
        posterior = vae.encode(x).latent_dist
        z = posterior.sample(generator=g)
        recon = vae.decode(z).sample
        kl = posterior.kl().mean()
        loss = F.mse_loss(recon, x) + 1e-6 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"vae {step}: recon {F.mse_loss(recon, x).item():.4f} kl {kl.item():.1f}")
    vae.eval()


@torch.no_grad()
def encode_text(text_encoder, tokenizer, captions):
    ids = tokenizer(captions, padding="max_length", max_length=77, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids)[0]


def train_unet(unet, vae, text_encoder, tokenizer, steps: int, g: torch.Generator) -> float:
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0).float()
    # A pool of pictures encoded once (the VAE is frozen from here on), and the text
    # encoder's output for each distinct caption: the UNet's steps then cost only the UNet.
    with torch.no_grad():
        pool, pool_captions = [], []
        for _ in range(24):
            x, captions = pictures(64, g)
            pool.append(vae.encode(x).latent_dist.mean)
            pool_captions += captions
        pool = torch.cat(pool)
        # Scaling factor: unit-variance latents, as SD's 0.18215 was chosen.
        scale = 1.0 / pool.std().item()
        pool = pool * scale
        distinct = sorted(set(pool_captions)) + [""]
        contexts = dict(zip(distinct, encode_text(text_encoder, tokenizer, distinct)))
    print(f"scaling factor {scale:.5f}, {len(pool)} latents")
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-5)
    for step in range(steps):
        idx = torch.randint(0, len(pool), (64,), generator=g)
        latents = pool[idx]
        # 10 % empty captions, so classifier-free guidance has an unconditional model.
        context = torch.stack([
            contexts[pool_captions[i] if torch.rand(1, generator=g) > 0.1 else ""]
            for i in idx.tolist()
        ])
        t = torch.randint(0, 1000, (latents.shape[0],), generator=g)
        noise = torch.randn(latents.shape, generator=g)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        pred = unet(noisy, t, encoder_hidden_states=context).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"unet {step}: loss {loss.item():.4f}")
    unet.eval()
    return scale


def link(out: Path, name: str) -> None:
    target = out / name
    if target.is_symlink() or target.exists():
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    os.symlink(Path("..") / "tiny-sd1" / name, target)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures" / "tiny-sd1-concept")
    parser.add_argument("--vae-steps", type=int, default=200)
    parser.add_argument("--unet-steps", type=int, default=1500)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "2")))
    g = torch.Generator().manual_seed(1234)
    tokenizer = CLIPTokenizer.from_pretrained(BASE / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(BASE / "text_encoder").eval()
    vae = AutoencoderKL.from_pretrained(BASE / "vae")
    unet = UNet2DConditionModel.from_pretrained(BASE / "unet")
    train_vae(vae, args.vae_steps, g)
    scale = train_unet(unet, vae, text_encoder, tokenizer, args.unet_steps, g)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    vae.register_to_config(scaling_factor=round(scale, 5))
    vae.save_pretrained(out / "vae", safe_serialization=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    for name in ("text_encoder", "tokenizer", "scheduler"):
        link(out, name)
    index = json.loads((BASE / "model_index.json").read_text())
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
