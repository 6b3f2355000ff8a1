"""Diffusers -> LDM (original CompVis / A1111 single-file) state-dict key conversion.

Single-file checkpoints as A1111 users have them keep the key names of the original
`ldm` code base: `model.diffusion_model.*` for the UNet, `first_stage_model.*` for the VAE and
`cond_stage_model.*` for the text encoder (`transformer.text_model.*` for SD 1.x's OpenAI CLIP,
`model.*` for SD 2.x's OpenCLIP). This module writes that layout from diffusers modules, so the
tiny fixtures exercise the same loader paths as a real `v1-5-pruned-emaonly.safetensors`.
"""

from __future__ import annotations

import torch

RESNET_UNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

RESNET_VAE = {"conv_shortcut": "nin_shortcut"}

VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}


def _rename_inner(rest: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def unet_to_ldm(state: dict[str, torch.Tensor], layers_per_block: int, n_blocks: int,
                attention_up_blocks: set[int]) -> dict[str, torch.Tensor]:
    """Renames a diffusers UNet2DConditionModel state dict to `model.diffusion_model.*`."""
    per = layers_per_block + 1
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("time_embedding.linear_1."):
            new = "time_embed.0." + parts[-1]
        elif key.startswith("time_embedding.linear_2."):
            new = "time_embed.2." + parts[-1]
        elif key.startswith("conv_in."):
            new = "input_blocks.0.0." + parts[-1]
        elif key.startswith("conv_norm_out."):
            new = "out.0." + parts[-1]
        elif key.startswith("conv_out."):
            new = "out.2." + parts[-1]
        elif key.startswith("down_blocks."):
            i, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                new = f"input_blocks.{i * per + j + 1}.0." + _rename_inner(rest, RESNET_UNET)
            elif kind == "attentions":
                new = f"input_blocks.{i * per + j + 1}.1." + rest
            elif kind == "downsamplers":
                # `downsamplers.0.conv.weight` -> `input_blocks.K.0.op.weight`
                new = f"input_blocks.{(i + 1) * per}.0.op." + parts[-1]
            else:
                raise KeyError(key)
        elif key.startswith("mid_block."):
            kind, j = parts[1], int(parts[2])
            rest = ".".join(parts[3:])
            if kind == "resnets":
                new = f"middle_block.{2 * j}." + _rename_inner(rest, RESNET_UNET)
            else:
                new = "middle_block.1." + rest
        elif key.startswith("up_blocks."):
            i, kind, j = int(parts[1]), parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                new = f"output_blocks.{i * per + j}.0." + _rename_inner(rest, RESNET_UNET)
            elif kind == "attentions":
                new = f"output_blocks.{i * per + j}.1." + rest
            elif kind == "upsamplers":
                slot = 2 if i in attention_up_blocks else 1
                new = f"output_blocks.{i * per + layers_per_block}.{slot}.conv." + parts[-1]
            else:
                raise KeyError(key)
        else:
            raise KeyError(f"unexpected UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(state: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
    """Renames a diffusers AutoencoderKL state dict to `first_stage_model.*`.

    LDM stores the mid-block attention projections as 1x1 convolutions: the linear weights
    gain two trailing unit dimensions.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        coder = parts[0]
        if coder in ("quant_conv", "post_quant_conv"):
            out["first_stage_model." + key] = value
            continue
        body = parts[1]
        if body in ("conv_in", "conv_out"):
            new = key
        elif body == "conv_norm_out":
            new = f"{coder}.norm_out." + parts[-1]
        elif body in ("down_blocks", "up_blocks"):
            i, kind = int(parts[2]), parts[3]
            level = i if body == "down_blocks" else n_blocks - 1 - i
            stage = "down" if body == "down_blocks" else "up"
            if kind == "resnets":
                rest = ".".join(parts[5:])
                new = f"{coder}.{stage}.{level}.block.{parts[4]}." + _rename_inner(rest, RESNET_VAE)
            else:
                sampler = "downsample" if body == "down_blocks" else "upsample"
                new = f"{coder}.{stage}.{level}.{sampler}.conv." + parts[-1]
        elif body == "mid_block":
            kind, j = parts[2], int(parts[3])
            rest = ".".join(parts[4:])
            if kind == "resnets":
                new = f"{coder}.mid.block_{j + 1}." + _rename_inner(rest, RESNET_VAE)
            else:
                new = f"{coder}.mid.attn_1." + _rename_inner(rest, VAE_ATTENTION)
                if value.ndim == 2:
                    value = value[:, :, None, None]
        else:
            raise KeyError(f"unexpected VAE key {key}")
        out["first_stage_model." + new] = value
    return out


def with_text_model_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 5 names CLIPTextModel keys without the `text_model.` prefix that every
    published checkpoint (and transformers 4) has; restore it."""
    return {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def openai_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SD 1.x: `cond_stage_model.transformer.text_model.*`, as transformers names it.

    Many published SD 1.x files also carry the `position_ids` buffer (int64); keep it, so
    loaders are tested against it.
    """
    state = with_text_model_prefix(state)
    out = {"cond_stage_model.transformer." + k: v for k, v in state.items()}
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(
        state["text_model.embeddings.position_embedding.weight"].shape[0], dtype=torch.int64
    )[None, :]
    return out


def open_clip_to_ldm(state: dict[str, torch.Tensor], extra_layer: dict[str, torch.Tensor],
                     text_projection: torch.Tensor) -> dict[str, torch.Tensor]:
    """SD 2.x: OpenCLIP's `cond_stage_model.model.*` layout.

    OpenCLIP fuses q/k/v into `in_proj_weight`. Real SD 2.x files hold all 24 ViT-H layers
    while diffusers keeps 23 (SD 2.x conditions on the penultimate layer); `extra_layer` is the
    last resblock that diffusers drops, so the tiny file mirrors that too.
    """
    state = with_text_model_prefix(state)
    p = "cond_stage_model.model."
    out: dict[str, torch.Tensor] = {}
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key == "text_model.embeddings.token_embedding.weight":
            out[p + "token_embedding.weight"] = value
        elif key == "text_model.embeddings.position_embedding.weight":
            out[p + "positional_embedding"] = value
        elif key.startswith("text_model.final_layer_norm."):
            out[p + "ln_final." + key.split(".")[-1]] = value
        elif key.startswith("text_model.encoder.layers."):
            parts = key.split(".")
            layers.setdefault(int(parts[3]), {})[".".join(parts[4:])] = value
        else:
            raise KeyError(f"unexpected CLIP key {key}")
    n = len(layers)
    layers[n] = extra_layer
    for i, layer in layers.items():
        q = f"{p}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[q + f"attn.in_proj_{kind}"] = torch.cat(
                [layer[f"self_attn.{x}_proj.{kind}"] for x in "qkv"], dim=0)
            out[q + f"attn.out_proj.{kind}"] = layer[f"self_attn.out_proj.{kind}"]
            out[q + f"ln_1.{kind}"] = layer[f"layer_norm1.{kind}"]
            out[q + f"ln_2.{kind}"] = layer[f"layer_norm2.{kind}"]
            out[q + f"mlp.c_fc.{kind}"] = layer[f"mlp.fc1.{kind}"]
            out[q + f"mlp.c_proj.{kind}"] = layer[f"mlp.fc2.{kind}"]
    out[p + "text_projection"] = text_projection
    out[p + "logit_scale"] = torch.tensor(4.6052, dtype=torch.float32)
    return out
