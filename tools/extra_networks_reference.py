#!/usr/bin/env python3
"""End-to-end reference for prompts with extra networks: txt2img on the tiny models with
`<lora:…>` and `<hypernet:…>` tags, as AUTOMATIC1111 runs them with `--rng cpu`.

The path is `pipeline_reference.py`'s (k-diffusion samplers over diffusers' UNet, A1111's
CFG glue, torch's CPU generator), with the networks changed as A1111 changes them before
sampling:

* LoRA (`<lora:name:te:unet>`): the committed kohya file `fixtures/lora/<model>-lora.safetensors`
  loaded and fused by diffusers' own loader (`load_lora_weights`, then `fuse_lora` with the
  text-encoder and UNet multipliers), as `tools/lora_reference.py` checks it layer by layer;
* hypernetworks (`<hypernet:name:m>`): A1111's `Hypernetwork.load` and
  `apply_hypernetworks` (transcribed in `tools/hypernetwork_reference.py`) on the key and
  value inputs of every attention, through its `HypernetworkAttnProcessor`, with the
  committed files `fixtures/hypernetwork/hn-*.pt`;
* the prompt: A1111's `extra_networks.parse_prompt` removes the tags (`re_extra_net`,
  `<(\w+):([^>]+)>`) before the text is encoded, leaving what was around them (`, ` stays);
  the negative prompt keeps its text. The case's `prompt + tags` is what a user types.

Usage:
    python tools/extra_networks_reference.py   # writes fixtures/extra_networks/
"""

import json
import os
import re
import sys

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hypernetwork_reference as hn  # noqa: E402
import pipeline_reference as pipeline  # noqa: E402

ROOT = pipeline.ROOT
OUT = os.path.join(ROOT, "fixtures", "extra_networks")

CASES = [
    dict(name="sd1_lora_and_hypernet_euler_a", model="tiny-sd1", sampler="Euler a", steps=8,
         cfg=7.0, seed=4242, width=64, height=64, batch=1,
         prompt="a photo of a red disc", negative="blurry",
         tags=" <lora:tiny-sd1-lora:0.6:0.8>, <hypernet:hn-plain:0.7>",
         lora=["tiny-sd1-lora", 0.6, 0.8], hypernetworks=[["hn-plain", 0.7]]),
    dict(name="sd1_two_hypernets_dpmpp_2m_karras", model="tiny-sd1", sampler="DPM++ 2M Karras",
         steps=6, cfg=5.0, seed=77, width=64, height=64, batch=2,
         prompt="a blue square", negative="",
         tags="<hypernet:hn-plain:0.5> <hypernet:hn-norm-dropout>",
         lora=None, hypernetworks=[["hn-plain", 0.5], ["hn-norm-dropout", 1.0]]),
    dict(name="sd2_lora_unet_only_euler", model="tiny-sd2", sampler="Euler", steps=6,
         cfg=7.5, seed=9, width=64, height=64, batch=1,
         prompt="a green circle", negative="ugly",
         tags=" <lora:tiny-sd2-lora:0:1.2>",
         lora=["tiny-sd2-lora", 0.0, 1.2], hypernetworks=[]),
]


def model_with(case):
    """`pipeline.Model` of the case's tiny model with its LoRA fused and hypernetworks set."""
    model = pipeline.Model(case["model"])
    if case["lora"]:
        name, te, unet = case["lora"]
        pipe = StableDiffusionPipeline.from_pretrained(
            os.path.join(ROOT, "fixtures", case["model"]), safety_checker=None,
            requires_safety_checker=False, torch_dtype=torch.float32)
        pipe.load_lora_weights(os.path.join(ROOT, "fixtures", "lora", f"{name}.safetensors"),
                               adapter_name="tag")
        if unet:
            pipe.fuse_lora(components=["unet"], lora_scale=unet, adapter_names=["tag"])
        if te:
            pipe.fuse_lora(components=["text_encoder"], lora_scale=te, adapter_names=["tag"])
        pipe.unload_lora_weights()
        model.unet = pipe.unet.float().eval()
        model.text_encoder = pipe.text_encoder.float().eval()
    if case["hypernetworks"]:
        processor = hn.HypernetworkAttnProcessor()
        for name, multiplier in case["hypernetworks"]:
            h = hn.Hypernetwork()
            h.load(os.path.join(ROOT, "fixtures", "hypernetwork", f"{name}.pt"))
            processor.hypernetworks.append(h.set_multiplier(multiplier))
        model.unet.set_attn_processor(processor)
    return model


# A1111's `modules/extra_networks.py`: `re_extra_net`.
RE_EXTRA_NET = re.compile(r"<(\w+):([^>]+)>")


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    tensors = {}
    for case in CASES:
        model = model_with(case)
        typed = dict(case, prompt=RE_EXTRA_NET.sub("", case["prompt"] + case["tags"]))
        out = pipeline.run_case(typed, model, None)
        tensors[f"{case['name']}.latents"] = out["latents"].contiguous().float()
        plain = pipeline.run_case(typed, pipeline.Model(case["model"]), None)["latents"]
        change = (out["latents"] - plain).norm() / plain.norm()
        print(case["name"], tuple(out["latents"].shape),
              f"the extra networks change the latents by {change:.2e} (relative)")
        assert change > 1e-3, "the extra networks changed nothing"
    save_file(tensors, os.path.join(OUT, "latents.safetensors"))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(CASES, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
