#!/usr/bin/env python3
"""Reference textual-inversion training steps for `sd-textual-inversion`, as A1111's
`train_embedding` takes them, with the real libraries.

* The conditioning is A1111's own: `FrozenCLIPEmbedderWithCustomWords` (SD 1.x) /
  `FrozenOpenCLIPEmbedderWithCustomWords` (SD 2.x) with `EmbeddingsWithFixes` splicing the
  embedding's `vec` (a leaf tensor with `requires_grad`) into the token embeddings, over
  transformers' `CLIPTextModel` from the tiny fixtures — set up exactly as
  `conditioning_reference.py` does (whose stubs and builders are imported).
* The loss is ldm's `LatentDiffusion.forward` → `p_losses` for the given timesteps and noise:
  `x_noisy = sqrt_alphas_cumprod[t]·x + sqrt_one_minus_alphas_cumprod[t]·noise` (the buffers
  computed in float64 and stored as float32, as `register_schedule` does), the diffusers UNet's
  output against ε (SD 1.x) or `v = sqrt_ac[t]·noise − sqrt_1m_ac[t]·x` (SD 2.x v-models),
  `mean` over each sample then over the batch (`l_simple_weight` 1, `logvar` 0,
  `original_elbo_weight` 0).
* The update is `torch.optim.AdamW([vec], lr, weight_decay=0.0)` as A1111 builds it.

Two steps on tiny-sd1 (different batches, so the second exercises AdamW's moments) and one on
tiny-sd2 (v-prediction). Inputs (init vectors, latents, noise, timesteps, prompts) and every
output (loss, gradient, vectors after each step) go to `fixtures/ti_step/`.

Usage:
    tools/.venv/bin/python tools/ti_step_reference.py --a1111 /path/to/stable-diffusion-webui
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conditioning_reference as cr  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NAME = "tiname"
N_VECTORS = 2
LR = 0.005

STEPS = {
    "tiny-sd1": [
        (["a photo of tiname", "tiname, oil painting"], [999, 250]),
        (["tiname in the snow", "a (tiname:1.2) portrait"], [10, 600]),
    ],
    "tiny-sd2": [
        (["a photo of tiname", "tiname on a beach"], [500, 1]),
    ],
}


def schedule_buffers():
    """ldm's `register_schedule` for SD (linear in sqrt space, 0.00085 → 0.012, 1000 steps)."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64).numpy() ** 2
    ac = np.cumprod(1.0 - betas, axis=0)
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return f32(np.sqrt(ac)), f32(np.sqrt(1.0 - ac))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a1111", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO / "fixtures" / "ti_step")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    sd2_tok = CLIPTokenizer.from_pretrained(REPO / "fixtures/tiny-sd2/tokenizer")
    cr.install_stubs(args.a1111.resolve(), cr.OpenClipTokenizerStandIn(sd2_tok))
    shared = sys.modules["modules.shared"]
    hijack_mod = sys.modules["modules.sd_hijack"]
    ti = sys.modules["modules.textual_inversion.textual_inversion"]
    sd_hijack_clip = importlib.import_module("modules.sd_hijack_clip")
    sd_hijack_open_clip = importlib.import_module("modules.sd_hijack_open_clip")
    sqrt_ac, sqrt_1m_ac = schedule_buffers()

    g = torch.Generator().manual_seed(4321)
    tensors: dict[str, torch.Tensor] = {}
    cases = []
    for model, steps in STEPS.items():
        clip, hijack = cr.build(model, sd_hijack_clip, sd_hijack_open_clip, hijack_mod)
        sd_model = SimpleModel(clip)
        shared.sd_model = sd_model
        unet = UNet2DConditionModel.from_pretrained(REPO / "fixtures" / model / "unet",
                                                    torch_dtype=torch.float32).eval()
        for p in list(unet.parameters()) + list(clip.wrapped.parameters() if hasattr(clip.wrapped, "parameters") else []):
            p.requires_grad_(False)
        v_model = model == "tiny-sd2"
        init = (torch.randn(N_VECTORS, 32, generator=g) * 0.3).half().float()
        vec = init.clone().requires_grad_(True)
        emb = ti.Embedding(vec, NAME)
        emb.vectors, emb.shape = N_VECTORS, 32
        db = ti.EmbeddingDatabase()
        db.register_embedding(emb, sd_model)
        hijack.embedding_db = db
        optimizer = torch.optim.AdamW([vec], lr=LR, weight_decay=0.0)
        tensors[f"{model}.init"] = init
        case = {"model": model, "name": NAME, "vectors": N_VECTORS, "lr": LR,
                "prediction": "v" if v_model else "epsilon", "steps": []}
        for i, (texts, timesteps) in enumerate(steps):
            x = torch.randn(len(texts), 4, 8, 8, generator=g)
            noise = torch.randn(len(texts), 4, 8, 8, generator=g)
            t = torch.tensor(timesteps, dtype=torch.long)
            a = sqrt_ac[t].reshape(-1, 1, 1, 1)
            b = sqrt_1m_ac[t].reshape(-1, 1, 1, 1)
            x_noisy = a * x + b * noise
            cond = clip(texts)
            pred = unet(x_noisy, t, encoder_hidden_states=cond).sample
            target = a * noise - b * x if v_model else noise
            loss = ((pred.float() - target.float()) ** 2).mean([1, 2, 3]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            tensors[f"{model}.{i}.latents"] = x
            tensors[f"{model}.{i}.noise"] = noise
            tensors[f"{model}.{i}.grad"] = vec.grad.detach().clone()
            optimizer.step()
            tensors[f"{model}.{i}.vectors"] = vec.detach().clone()
            case["steps"].append({"texts": texts, "timesteps": timesteps, "loss": loss.item()})
            print(model, i, loss.item(), float(vec.grad.abs().max()))
        cases.append(case)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    save_file({k: v.contiguous() for k, v in tensors.items()}, args.out / "tensors.safetensors")


class SimpleModel:
    """What `EmbeddingDatabase.register_embedding` reads from `shared.sd_model`."""

    def __init__(self, clip):
        self.cond_stage_model = clip

    def get_learned_conditioning(self, texts):
        return self.cond_stage_model(texts)


if __name__ == "__main__":
    main()
