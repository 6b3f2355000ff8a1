#!/usr/bin/env python3
"""The committed kohya LoRA fixtures with their UNet modules named as the original
(CompVis LDM) UNet names its layers, as some early trainers wrote them and A1111 reads them
natively: `lora_unet_input_blocks_4_1_proj_in` for diffusers' `lora_unet_down_blocks_1_
attentions_0_proj_in`, resnet `in_layers_2` for `conv1`, and so on.

The renaming is `tools/sdtools/ldm_keys.py::unet_to_ldm` (checked against diffusers' own
single-file loader by `tools/check_single_files.py`), applied to each module's diffusers
path; the tensors are the same bytes. Text-encoder modules keep their names (kohya and A1111
write `lora_te_text_model_…` either way).

Usage:
    python tools/lora_ldm_names.py   # writes fixtures/lora/<model>-lora-ldm.safetensors
"""

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

from sdtools import ldm_keys, tiny

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    for name in ("tiny-sd1", "tiny-sd2"):
        unet = UNet2DConditionModel.from_pretrained(REPO / "fixtures" / name / "unet")
        up_with_attention = {i for i, t in enumerate(unet.config.up_block_types)
                             if t.startswith("CrossAttn")}
        renames = {}
        for path, _ in unet.named_modules():
            if not path:
                continue
            key = f"{path}.weight"
            try:
                ldm = ldm_keys.unet_to_ldm({key: torch.zeros(1)}, unet.config.layers_per_block,
                                           len(unet.config.block_out_channels),
                                           up_with_attention)
            except (KeyError, ValueError, IndexError):
                continue
            (ldm_key,) = ldm.keys()
            ldm_path = ldm_key.removeprefix("model.diffusion_model.").removesuffix(".weight")
            renames[f"lora_unet_{path.replace('.', '_')}"] = f"lora_unet_{ldm_path.replace('.', '_')}"
        lora = load_file(REPO / "fixtures" / "lora" / f"{name}-lora.safetensors")
        out = {}
        renamed = 0
        for key, value in lora.items():
            module, _, part = key.partition(".")
            if module in renames:
                module = renames[module]
                renamed += 1
            out[f"{module}.{part}"] = value
        assert renamed > 0
        save_file(out, REPO / "fixtures" / "lora" / f"{name}-lora-ldm.safetensors")
        print(name, f"{renamed} tensors renamed, e.g.",
              next(k for k in out if "input_blocks" in k))


if __name__ == "__main__":
    main()
