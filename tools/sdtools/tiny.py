"""The tiny random-weight Stable Diffusion models the tests and examples use.

Two architectures, each small enough to commit yet exercising every code path of its real
counterpart:

* `tiny-sd1`: SD 1.x-like. OpenAI CLIP text model (quick_gelu, last layer), UNet with conv
  `proj_in`, one head count for every block, epsilon prediction, PNDM scheduler config.
* `tiny-sd2`: SD 2.x-like. OpenCLIP text model (gelu, penultimate layer, pad token `!` = 0),
  UNet with linear `proj_in`, per-block head counts, `upcast_attention`, v-prediction,
  DDIM scheduler config.

Both use a cut of the real CLIP vocabulary (its first `N_MERGES` merges; 8192 tokens), a VAE
with four levels (so latents are 1/8 of the image, as in SD) and GroupNorm with 4 or 8
groups instead of 32 to keep the channel counts small.

Weights are drawn from a seeded generator and rounded to float16 values, so the float16 and
float32 files of a model hold identical numbers and every reference output is computed in
float32 from exactly the weights a loader reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

N_MERGES = 8192 - 512 - 2
VOCAB = 8192
BOS = VOCAB - 2
EOS = VOCAB - 1
TEXT_WIDTH = 32


@dataclass(frozen=True)
class TinySpec:
    name: str
    seed: int
    hidden_act: str
    pad_token: str
    use_linear_projection: bool
    heads: int | tuple[int, ...]
    upcast_attention: bool
    prediction_type: str
    weights_dtype: torch.dtype  # dtype of the diffusers folder's weights
    single_file_dtype: torch.dtype


SD1 = TinySpec("tiny-sd1", 1, "quick_gelu", "<|endoftext|>", False, 2, False, "epsilon",
               torch.float32, torch.float16)
SD2 = TinySpec("tiny-sd2", 2, "gelu", "!", True, (2, 4, 4), True, "v_prediction",
               torch.float16, torch.float16)

UNET_BLOCK_OUT = (16, 32, 32)
LAYERS_PER_BLOCK = 2
DOWN_TYPES = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
UP_TYPES = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
VAE_BLOCK_OUT = (8, 16, 16, 16)


def text_config(spec: TinySpec) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=VOCAB,
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act=spec.hidden_act,
        projection_dim=TEXT_WIDTH,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=EOS if spec.pad_token == "<|endoftext|>" else 0,
    )


def make_text_encoder(spec: TinySpec) -> CLIPTextModel:
    return CLIPTextModel(text_config(spec)).eval()


def make_unet(spec: TinySpec) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=DOWN_TYPES,
        up_block_types=UP_TYPES,
        block_out_channels=UNET_BLOCK_OUT,
        layers_per_block=LAYERS_PER_BLOCK,
        norm_num_groups=8,
        cross_attention_dim=TEXT_WIDTH,
        # diffusers calls the head count `attention_head_dim` (diffusers issue #2011).
        attention_head_dim=spec.heads,
        use_linear_projection=spec.use_linear_projection,
        upcast_attention=spec.upcast_attention,
        flip_sin_to_cos=True,
        freq_shift=0,
    ).eval()


def make_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(VAE_BLOCK_OUT),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_BLOCK_OUT),
        block_out_channels=VAE_BLOCK_OUT,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=0.18215,
    ).eval()


def make_scheduler(spec: TinySpec):
    common = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                  beta_schedule="scaled_linear", steps_offset=1, set_alpha_to_one=False,
                  prediction_type=spec.prediction_type)
    if spec.prediction_type == "epsilon":
        return PNDMScheduler(skip_prk_steps=True, **common)
    return DDIMScheduler(clip_sample=False, **common)


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Gives every parameter seeded random values, rounded to float16.

    Default initialisations leave norms at 1/0 and some biases at 0, which would let a loader
    that drops those keys pass; random values everywhere make every key matter.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            is_norm = any(s in name for s in ("norm", "layer_norm", "ln_"))
            if is_norm and leaf == "weight":
                value = 1.0 + 0.1 * noise
            elif leaf == "bias":
                value = 0.1 * noise
            elif p.ndim >= 2:
                fan_in = p[0].numel()
                value = noise / fan_in ** 0.5
            else:
                value = 0.02 * noise
            p.copy_(value.half().float())


def extra_open_clip_layer(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The last OpenCLIP resblock, which SD 2.x never runs (penultimate layer)."""
    w = TEXT_WIDTH
    shapes = {
        "self_attn.q_proj.weight": (w, w), "self_attn.k_proj.weight": (w, w),
        "self_attn.v_proj.weight": (w, w), "self_attn.out_proj.weight": (w, w),
        "self_attn.q_proj.bias": (w,), "self_attn.k_proj.bias": (w,),
        "self_attn.v_proj.bias": (w,), "self_attn.out_proj.bias": (w,),
        "layer_norm1.weight": (w,), "layer_norm1.bias": (w,),
        "layer_norm2.weight": (w,), "layer_norm2.bias": (w,),
        "mlp.fc1.weight": (4 * w, w), "mlp.fc1.bias": (4 * w,),
        "mlp.fc2.weight": (w, 4 * w), "mlp.fc2.bias": (w,),
    }
    return {k: (torch.randn(s, generator=generator) * 0.1).half().float() for k, s in shapes.items()}
