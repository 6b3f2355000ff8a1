#!/usr/bin/env python3
"""Writes full-size Stable Diffusion checkpoints with random weights (never committed).

Real weights cannot be downloaded here, but loaders and benchmarks need the real key names,
shapes and sizes. This builds the SD 1.5 (or SD 2.1) architecture with the real diffusers and
transformers classes, random weights, and saves it as a float16 diffusers folder and a float16
LDM-keyed single file (about 2 GB), as A1111 users have them.

    SD_FULLSIZE_DIR=/path/to/dir python tools/make_fullsize_checkpoint.py [--arch sd15|sd21]

Writes `$SD_FULLSIZE_DIR/<arch>-random.safetensors` and `$SD_FULLSIZE_DIR/<arch>-random/`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdtools import clip_vocab, ldm_keys  # noqa: E402


def build(arch: str, scratch: Path):
    from diffusers import (AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    sd2 = arch == "sd21"
    width = 1024 if sd2 else 768
    text = CLIPTextConfig(
        vocab_size=49408, hidden_size=width, intermediate_size=4 * width,
        num_hidden_layers=23 if sd2 else 12, num_attention_heads=16 if sd2 else 12,
        max_position_embeddings=77, hidden_act="gelu" if sd2 else "quick_gelu",
        projection_dim=512 if sd2 else 768, bos_token_id=49406, eos_token_id=49407,
        pad_token_id=0 if sd2 else 49407,
    )
    unet = UNet2DConditionModel(
        sample_size=96 if sd2 else 64, cross_attention_dim=width,
        attention_head_dim=(5, 10, 20, 20) if sd2 else 8,
        use_linear_projection=sd2, upcast_attention=sd2,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
        sample_size=768 if sd2 else 512,
    )
    vocab, merges = clip_vocab.write_tokenizer_files(scratch, clip_vocab.STANDARD_MERGES)
    tokenizer = CLIPTokenizer(str(vocab), str(merges), pad_token="!" if sd2 else "<|endoftext|>",
                              model_max_length=77)
    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                  beta_schedule="scaled_linear", steps_offset=1, set_alpha_to_one=False)
    scheduler = (DDIMScheduler(prediction_type="v_prediction", clip_sample=False, **common) if sd2
                 else PNDMScheduler(skip_prk_steps=True, **common))
    return StableDiffusionPipeline(
        vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tokenizer, unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=["sd15", "sd21"], default="sd15")
    args = parser.parse_args()
    out_dir = os.environ.get("SD_FULLSIZE_DIR")
    if not out_dir:
        raise SystemExit("set SD_FULLSIZE_DIR to the folder that receives the checkpoint")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    scratch = out / "_vocab"
    pipe = build(args.arch, scratch).to(torch.float16)
    folder = out / f"{args.arch}-random"
    if folder.exists():
        shutil.rmtree(folder)
    pipe.save_pretrained(folder, safe_serialization=True)

    unet_cfg = pipe.unet.config
    up_with_attention = {i for i, t in enumerate(unet_cfg.up_block_types) if t.startswith("CrossAttn")}
    state = {}
    state.update(ldm_keys.unet_to_ldm(pipe.unet.state_dict(), unet_cfg.layers_per_block,
                                      len(unet_cfg.block_out_channels), up_with_attention))
    state.update(ldm_keys.vae_to_ldm(pipe.vae.state_dict(), len(pipe.vae.config.block_out_channels)))
    clip_state = {k: v for k, v in pipe.text_encoder.state_dict().items() if "position_ids" not in k}
    if args.arch == "sd21":
        width = pipe.text_encoder.config.hidden_size
        extra = {k.split(".", 3)[-1]: v.clone() for k, v in clip_state.items() if ".layers.22." in k}
        extra = {k.replace("22.", "", 1) if k.startswith("22.") else k: v for k, v in extra.items()}
        state.update(ldm_keys.open_clip_to_ldm(clip_state, extra,
                                               torch.randn(width, 1024, dtype=torch.float16) * 0.02))
    else:
        state.update(ldm_keys.openai_clip_to_ldm(clip_state))
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    state = {k: v.contiguous() for k, v in state.items()}
    state["betas"] = betas.float()
    state["alphas_cumprod"] = torch.cumprod(1.0 - betas, dim=0).float()
    save_file(state, out / f"{args.arch}-random.safetensors", metadata={"format": "pt"})
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {folder} and {out / f'{args.arch}-random.safetensors'}")


if __name__ == "__main__":
    main()
