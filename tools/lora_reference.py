#!/usr/bin/env python3
"""LoRA references for sd-core's `lora` module (issue 27).

    python tools/lora_reference.py     # writes fixtures/lora/<model>{,-lora,-peft}.safetensors

For each tiny model (`tiny-sd1`, `tiny-sd2`) it writes a random LoRA in kohya's layout
(`lora_unet_*`/`lora_te_*`, `.lora_down`/`.lora_up`/`.alpha`, stored fp16 like most
downloads): every attention projection, the feed-forwards, `proj_in`/`proj_out`, the text
encoder's attention and MLP layers, and LoCon modules on the resnets' 3×3 convolutions and
time projections, with a different rank and alpha per kind. diffusers' own loader
(`load_lora_weights`, which converts kohya files, then `fuse_lora` with separate UNet and
text-encoder scales) gives the references: the UNet's output and CLIP's last hidden state
with the LoRA fused, and without it. The same modules in PEFT's layout
(`<model>-peft.safetensors`: `unet.{path}.lora_A/B.weight`, `text_encoder.text_model.…`, no
alphas: the scale is folded into `lora_B`) check the second reader against the same
references.

Keys of `<model>.safetensors`: `sample`, `timesteps`, `context`, `input_ids`,
`unet.base`, `unet.lora`, `clip.base`, `clip.lora` (float32; ids int64); `scales` =
[text encoder, unet].
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
TE_SCALE, UNET_SCALE = 0.6, 0.8
PROMPT = "a photo of a red disc on a wooden table"


def kohya_name(prefix: str, module_path: str) -> str:
    return f"{prefix}_{module_path.replace('.', '_')}"


def random_lora(unet, text_encoder, generator):
    """Random kohya modules for the layers A1111 and kohya's LoCon target, and the same
    modules in PEFT's layout (no alpha: its scale folded into `lora_B`)."""
    out: dict[str, torch.Tensor] = {}
    peft: dict[str, torch.Tensor] = {}

    def add(prefix, path, layer, rank, alpha):
        name = kohya_name(prefix, path)
        if isinstance(layer, torch.nn.Linear):
            down = torch.randn(rank, layer.in_features, generator=generator) * 0.2
            up = torch.randn(layer.out_features, rank, generator=generator) * 0.2
        else:
            o, i, kh, kw = layer.weight.shape
            down = torch.randn(rank, i, kh, kw, generator=generator) * 0.2
            up = torch.randn(o, rank, 1, 1, generator=generator) * 0.2
        out[f"{name}.lora_down.weight"] = down.half()
        out[f"{name}.lora_up.weight"] = up.half()
        out[f"{name}.alpha"] = torch.tensor(float(alpha)).half()
        component = "unet" if prefix == "lora_unet" else "text_encoder"
        peft[f"{component}.{path}.lora_A.weight"] = down.half()
        # Every alpha / rank here is a power of two: the fold is exact in f16.
        peft[f"{component}.{path}.lora_B.weight"] = up.half() * (alpha / rank)

    for path, layer in unet.named_modules():
        leaf = path.rsplit(".", 1)[-1]
        if "attentions" in path and isinstance(layer, torch.nn.Linear):
            add("lora_unet", path, layer, 4, 2.0)
        elif leaf in ("proj_in", "proj_out"):
            add("lora_unet", path, layer, 2, 1.0)
        elif "resnets" in path and leaf in ("conv1", "conv2"):
            add("lora_unet", path, layer, 3, 3.0)
        elif "resnets" in path and leaf == "time_emb_proj":
            add("lora_unet", path, layer, 2, 4.0)
    for path, layer in text_encoder.named_modules():
        if isinstance(layer, torch.nn.Linear) and ("self_attn" in path or "mlp" in path):
            # kohya names the layers of transformers 4's `CLIPTextModel`, under `text_model.`
            # (transformers 5 dropped that level).
            if not path.startswith("text_model."):
                path = f"text_model.{path}"
            add("lora_te", path, layer, 4, 4.0)
    return out, peft


def main() -> None:
    torch.set_num_threads(1)
    out_dir = REPO / "fixtures" / "lora"
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(("tiny-sd1", "tiny-sd2")):
        g = torch.Generator().manual_seed(300 + seed)
        pipe = StableDiffusionPipeline.from_pretrained(
            REPO / "fixtures" / name, safety_checker=None, requires_safety_checker=False,
            torch_dtype=torch.float32)
        lora, peft = random_lora(pipe.unet, pipe.text_encoder, g)
        lora_path = out_dir / f"{name}-lora.safetensors"
        save_file(lora, lora_path)
        save_file(peft, out_dir / f"{name}-peft.safetensors")
        tensors = {
            "sample": torch.randn(2, 4, 8, 8, generator=g),
            "timesteps": torch.tensor([741.5, 20.0]),
            "context": torch.randn(2, 77, pipe.unet.config.cross_attention_dim, generator=g),
        }
        ids = pipe.tokenizer(PROMPT, padding="max_length", max_length=77,
                             return_tensors="pt").input_ids

        def run(tag):
            with torch.no_grad():
                tensors[f"unet.{tag}"] = pipe.unet(
                    tensors["sample"], tensors["timesteps"], tensors["context"]).sample
                tensors[f"clip.{tag}"] = pipe.text_encoder(ids).last_hidden_state

        run("base")
        pipe.load_lora_weights(str(lora_path), adapter_name="random")
        pipe.fuse_lora(components=["unet"], lora_scale=UNET_SCALE, adapter_names=["random"])
        pipe.fuse_lora(components=["text_encoder"], lora_scale=TE_SCALE,
                       adapter_names=["random"])
        run("lora")
        tensors["scales"] = torch.tensor([TE_SCALE, UNET_SCALE])
        tensors = {k: v.float().contiguous() for k, v in tensors.items()}
        tensors["input_ids"] = ids.to(torch.int64).contiguous()
        save_file(tensors, out_dir / f"{name}.safetensors")
        for part in ("unet", "clip"):
            change = (tensors[f"{part}.lora"] - tensors[f"{part}.base"]).norm() / tensors[
                f"{part}.base"].norm()
            print(f"{name} {part}: the LoRA changes the output by {change:.2e} (relative)")
        print(f"{name}: {len(lora) // 3} modules")


if __name__ == "__main__":
    main()
