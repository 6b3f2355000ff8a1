#!/usr/bin/env python3
"""Tiny models with the libraries' own random initialisation, and their reference outputs.

    python tools/make_random_init_models.py     # writes fixtures/random-init/

The fixtures of `make_fixtures.py` give every parameter a random value (`tiny.randomise`), so
norms and biases are never 0 or 1. Models as users meet them on a first try — diffusers'
`UNet2DConditionModel()` / transformers' `CLIPTextModel()` straight from their configs, with
their default initialisation — differ in one way that matters: every CLIP then ends in a
LayerNorm with weight 1 and bias 0, so each token's output has mean 0 and the mean of a whole
conditioning tensor is rounding noise (~1e-8). A1111's "Original" emphasis divides two such
means; these models are what `crates/sd-textual-inversion/tests/random_init_models.rs` trains
on and what `crates/sd-core/tests/random_init_conditioning.rs` encodes.

Six models, three SD 1.x-like and three SD 2.x-like, of several seeds and shapes (text width,
heads, UNet channels), each a diffusers folder with float16 weights and a tokenizer of the
CLIP vocabulary cut to 2048 tokens (`sdtools.clip_vocab`), padding as tiny-sd1 / tiny-sd2. Beside each folder's weights,
`reference.safetensors` holds, for three prompts, the token ids, transformers' CLIP output
after the final layer norm (`z`, what A1111's `encode_with_transformers` returns), its mean,
the ratio A1111's "Original" emphasis multiplies it by with every multiplier 1 (`a1111_ratio`:
exactly 1, or NaN where the mean is exactly 0.0 — then A1111 itself produces NaN), and
diffusers' UNet output for a seeded latent, timestep and `z` (finite: the models are healthy).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdtools import clip_vocab, tiny  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "fixtures" / "random-init"
# A smaller cut of the CLIP vocabulary than the golden fixtures' (their 8192 tokens would make
# the token table most of each file): the first 1534 merges, 2048 tokens.
VOCAB = 2048
N_MERGES = VOCAB - 512 - 2
BOS, EOS = VOCAB - 2, VOCAB - 1
PROMPTS = ["a photo of a cat", "", "a portrait of a dog, highly detailed, by greg rutkowski"]


@dataclass(frozen=True)
class Spec:
    name: str
    seed: int
    sd2: bool
    text_width: int
    text_heads: int
    unet_channels: tuple[int, int, int]
    unet_heads: int | tuple[int, int, int]


SPECS = [
    Spec("sd1-a", 101, False, 32, 4, (8, 16, 32), 2),
    Spec("sd1-b", 102, False, 48, 6, (8, 16, 16), 1),
    Spec("sd1-c", 103, False, 24, 2, (16, 16, 32), 4),
    Spec("sd2-a", 201, True, 32, 4, (8, 16, 32), (2, 4, 4)),
    Spec("sd2-b", 202, True, 48, 4, (8, 16, 16), (1, 2, 2)),
    Spec("sd2-c", 203, True, 24, 2, (16, 16, 32), (2, 2, 4)),
]


def build(spec: Spec):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(spec.seed)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=VOCAB, hidden_size=spec.text_width, intermediate_size=4 * spec.text_width,
        num_hidden_layers=3, num_attention_heads=spec.text_heads, max_position_embeddings=77,
        hidden_act="gelu" if spec.sd2 else "quick_gelu", projection_dim=spec.text_width,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=0 if spec.sd2 else EOS,
    )).eval()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, down_block_types=tiny.DOWN_TYPES,
        up_block_types=tiny.UP_TYPES, block_out_channels=spec.unet_channels, layers_per_block=2,
        norm_num_groups=8, cross_attention_dim=spec.text_width, attention_head_dim=spec.unet_heads,
        use_linear_projection=spec.sd2, upcast_attention=spec.sd2, flip_sin_to_cos=True,
        freq_shift=0,
    ).eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(tiny.VAE_BLOCK_OUT),
        up_block_types=("UpDecoderBlock2D",) * len(tiny.VAE_BLOCK_OUT),
        block_out_channels=tiny.VAE_BLOCK_OUT, layers_per_block=1, latent_channels=4,
        norm_num_groups=4, sample_size=64, scaling_factor=0.18215,
    ).eval()
    # Round to float16 values, so the float16 files hold exactly what the references used.
    for module in (text, unet, vae):
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(p.half().float())
    return text, unet, vae


@torch.no_grad()
def reference(spec: Spec, text, unet, tokenizer_dir: Path) -> dict[str, torch.Tensor]:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    g = torch.Generator().manual_seed(spec.seed)
    out = {}
    for i, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt, padding="max_length", max_length=77, truncation=True,
                        return_tensors="pt").input_ids
        if spec.sd2:
            # open_clip pads with 0 after the first EOS, as A1111 feeds SD 2.x.
            eos = (ids[0] == EOS).nonzero()[0, 0]
            ids[0, eos + 1:] = 0
        # A diffusers SD 2.x text encoder already ends at OpenCLIP's penultimate layer, and its
        # final layer norm is `ln_final`: `last_hidden_state` is A1111's `z` for both families.
        z = text(ids).last_hidden_state
        # A1111's sd_hijack_clip "Original" emphasis, every multiplier 1: torch reduces the
        # two means of the same bits alike, so the ratio is exactly 1 — or 0/0 = NaN when the
        # mean happens to be exactly 0.0 (it does here: A1111 then sends NaN to the UNet).
        multipliers = torch.ones(1, 77)
        original_mean = z.mean()
        weighted = z * multipliers.reshape(multipliers.shape + (1,)).expand(z.shape)
        ratio = original_mean / weighted.mean()
        assert torch.isnan(ratio) or ratio.item() == 1.0, (spec.name, prompt, ratio)
        sample = torch.randn(1, 4, 8, 12, generator=g)
        timestep = torch.tensor([float(torch.randint(0, 1000, (1,), generator=g))])
        eps = unet(sample, timestep, encoder_hidden_states=z).sample
        assert torch.isfinite(eps).all(), spec.name
        out[f"{i}.input_ids"] = ids.to(torch.int64)
        out[f"{i}.z"] = z
        out[f"{i}.z_mean"] = z.mean().reshape(1)
        out[f"{i}.a1111_ratio"] = ratio.reshape(1)
        out[f"{i}.sample"] = sample
        out[f"{i}.timestep"] = timestep
        out[f"{i}.eps"] = eps
    return out


def write_tokenizer(spec: Spec, folder: Path) -> Path:
    """`vocab.json` + `merges.txt` of the cut vocabulary, and the config of tiny-sd1 or
    tiny-sd2 (which sets the padding token: `!` for SD 2.x)."""
    tok_dir = folder / "tokenizer"
    clip_vocab.write_tokenizer_files(tok_dir, N_MERGES)
    source = REPO / "fixtures" / ("tiny-sd2" if spec.sd2 else "tiny-sd1") / "tokenizer"
    shutil.copy(source / "tokenizer_config.json", tok_dir / "tokenizer_config.json")
    return tok_dir


def write(spec: Spec) -> None:
    from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    folder = OUT / spec.name
    if folder.exists():
        shutil.rmtree(folder)
    text, unet, vae = build(spec)
    scratch = OUT / f"_{spec.name}"
    tok_dir = write_tokenizer(spec, scratch)
    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                  beta_schedule="scaled_linear", steps_offset=1, set_alpha_to_one=False)
    scheduler = (DDIMScheduler(clip_sample=False, prediction_type="v_prediction", **common)
                 if spec.sd2 else PNDMScheduler(skip_prk_steps=True, prediction_type="epsilon", **common))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=CLIPTokenizer.from_pretrained(tok_dir),
        unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    refs = reference(spec, text, unet, tok_dir)
    pipe.to(torch.float16)
    pipe.save_pretrained(folder, safe_serialization=True)
    # Published SD folders hold vocab.json + merges.txt, not transformers 5's tokenizer.json.
    shutil.rmtree(folder / "tokenizer")
    shutil.copytree(tok_dir, folder / "tokenizer")
    shutil.rmtree(scratch)
    save_file({k: v.contiguous() for k, v in refs.items()}, folder / "reference.safetensors")
    print(spec.name, "z mean per prompt:", [float(refs[f"{i}.z_mean"]) for i in range(len(PROMPTS))],
          "A1111's emphasis ratio:", [float(refs[f"{i}.a1111_ratio"]) for i in range(len(PROMPTS))])


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    for spec in SPECS:
        write(spec)


if __name__ == "__main__":
    main()
