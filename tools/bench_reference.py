#!/usr/bin/env python3
"""The PyTorch side of `examples/bench.rs`: the same work, the same shapes, the same weights,
the same JSON line (plus `gflop`).

    tools/.venv/bin/python tools/bench_reference.py --model $SD_FULLSIZE_DIR/sd15-random \\
        --work unet --batch 2 [--width 512 --height 512 --reps 3 --threads N]

`--model` is a diffusers folder (fp16 or fp32 weights; every network is cast to fp32);
`--work load` times `StableDiffusionPipeline.from_single_file` on `--single-file` (the LDM
file), with the folder as its `config` so nothing is fetched. Every work loads the text
encoder, UNet and VAE, as `bench.rs` loads the whole model, so peak memory compares like with
like. `--threads` defaults to all cores (rayon's default in burn's flex backend).

`gflop` is counted by `torch.utils.flop_counter.FlopCounterMode` on a copy of the networks on
the `meta` device (no compute: the count is free), with diffusers' classic attention processor
and transformers' eager attention so every matmul is counted; GroupNorm, softmax and the
other element-wise work are not (FlopCounterMode counts matmuls and convolutions only).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

PROMPT = "a photograph of an astronaut riding a horse"


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def load_components(folder: Path, device: str = "cpu"):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    f32 = torch.float32
    tok = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    text = CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=f32).eval()
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=f32).eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=f32).eval()
    for m in (text, unet, vae):
        m.requires_grad_(False)
    return tok, text, unet, vae


def meta_components(text, unet, vae):
    """Weightless copies on the meta device, with attention written as matmuls."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor
    from transformers import CLIPTextModel

    with torch.device("meta"):
        cfg = text.config.__class__.from_dict(text.config.to_dict())
        cfg._attn_implementation = "eager"
        mtext = CLIPTextModel(cfg).eval()
        munet = UNet2DConditionModel.from_config(unet.config).eval()
        mvae = AutoencoderKL.from_config(vae.config).eval()
    munet.set_attn_processor(AttnProcessor())
    mvae.set_attn_processor(AttnProcessor())
    for m in (mtext, munet, mvae):
        m.requires_grad_(False)
    return mtext, munet, mvae


def clip_ids(tok, batch: int, device) -> torch.Tensor:
    texts = [PROMPT if i % 2 == 0 else "" for i in range(batch)]
    ids = tok(texts, padding="max_length", max_length=77, truncation=True,
              return_tensors="pt").input_ids
    return ids.to(device)


def make_work(args, tok, text, unet, vae, device):
    """A closure running the work once, for real (`device` cpu) or to count (`meta`)."""
    b, lh, lw = args.batch, args.height // 8, args.width // 8
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g).to(device)  # noqa: E731

    if args.work == "clip":
        ids = clip_ids(tok, b, device)

        def run():
            with torch.no_grad():
                return text(ids)[0]
    elif args.work == "unet":
        x, ctx = rand(b, 4, lh, lw), rand(b, 77, unet.config.cross_attention_dim)
        t = torch.full((b,), 500.0, device=device)

        def run():
            with torch.no_grad():
                return unet(x, t, encoder_hidden_states=ctx).sample
    elif args.work == "vae-decode":
        z = rand(b, 4, lh, lw)

        def run():
            with torch.no_grad():
                return vae.decode(z).sample
    elif args.work == "vae-encode":
        px = (torch.rand(b, 3, args.height, args.width, generator=g) * 2 - 1).to(device)

        def run():
            with torch.no_grad():
                return vae.encode(px).latent_dist.mean
    elif args.work == "ti-step":
        run = ti_step(args, tok, text, unet, device, rand)
    else:
        raise SystemExit(f"work {args.work!r} has no PyTorch counterpart here")
    return run


def ti_step(args, tok, text, unet, device, rand):
    """A1111's step: the embedding's vector replaces its token's row of the token embedding
    (`EmbeddingsWithFixes`, here a forward hook), ldm's noising at t, the UNet, MSE against ε,
    backward to the vector, `torch.optim.AdamW(weight_decay=0)`."""
    import numpy as np

    b, lh, lw = args.batch, args.height // 8, args.width // 8
    dim = text.config.hidden_size
    vec = (torch.sin(torch.arange(dim, dtype=torch.float32) * 0.37) * 0.01).reshape(1, dim)
    vec = vec.to(device).requires_grad_(True)
    prefix = tok("a photo of", add_special_tokens=False).input_ids
    row = [tok.bos_token_id, *prefix, 0, tok.eos_token_id]
    slot = len(prefix) + 1
    row += [tok.eos_token_id] * (77 - len(row))
    ids = torch.tensor([row] * b, device=device)

    def splice(_module, _inputs, output):
        out = output.clone()
        out[:, slot:slot + 1] = vec.unsqueeze(0).expand(b, 1, dim)
        return out

    text.get_input_embeddings().register_forward_hook(splice)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64).numpy() ** 2
    ac = np.cumprod(1.0 - betas)
    a, s = float(np.sqrt(ac[500])), float(np.sqrt(1.0 - ac[500]))
    x0, noise = rand(b, 4, lh, lw), rand(b, 4, lh, lw)
    t = torch.full((b,), 500, dtype=torch.long, device=device)
    opt = torch.optim.AdamW([vec], lr=0.005, weight_decay=0.0) if device != "meta" else None

    def run():
        cond = text(ids)[0]
        pred = unet(a * x0 + s * noise, t, encoder_hidden_states=cond).sample
        loss = ((pred - noise) ** 2).mean()
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if opt is not None:
            opt.step()
        return loss

    return run


def count_gflop(args, tok, text, unet, vae) -> float | None:
    from torch.utils.flop_counter import FlopCounterMode

    if args.work in ("load", "txt2img"):
        return None
    mtext, munet, mvae = meta_components(text, unet, vae)
    run = make_work(args, tok, mtext, munet, mvae, "meta")
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return counter.get_total_flops() / 1e9


def txt2img(args, tok, text, unet, vae):
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    sched = EulerDiscreteScheduler.from_pretrained(args.model / "scheduler")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet,
                                   scheduler=sched, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe(PROMPT, num_inference_steps=args.steps, guidance_scale=7.0,
                    width=args.width, height=args.height, num_images_per_prompt=args.batch,
                    generator=torch.Generator().manual_seed(1), output_type="np").images

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="diffusers folder")
    p.add_argument("--single-file", type=Path, help="LDM single file, for --work load")
    p.add_argument("--work", required=True)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--flops-only", action="store_true",
                   help="print the GFLOP count of the work (from the configs alone) and exit")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.flops_only:
        from types import SimpleNamespace

        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTokenizer

        tok = CLIPTokenizer.from_pretrained(args.model / "tokenizer")
        text = SimpleNamespace(config=CLIPTextConfig.from_pretrained(args.model / "text_encoder"))
        unet = SimpleNamespace(config=UNet2DConditionModel.load_config(args.model / "unet"))
        vae = SimpleNamespace(config=AutoencoderKL.load_config(args.model / "vae"))
        print(json.dumps({"work": args.work, "width": args.width, "height": args.height,
                          "batch": args.batch, "gflop": count_gflop(args, tok, text, unet, vae)}))
        return

    if args.work == "load":
        from diffusers import StableDiffusionPipeline

        if args.single_file is None:
            raise SystemExit("--work load needs --single-file")
        times = []
        for _ in range(args.reps):
            start = time.perf_counter()
            pipe = StableDiffusionPipeline.from_single_file(
                str(args.single_file), config=str(args.model), torch_dtype=torch.float32,
                local_files_only=True, safety_checker=None, requires_safety_checker=False)
            times.append(time.perf_counter() - start)
            del pipe
        load_s, gflop = times[0], None
    else:
        import diffusers  # noqa: F401  (imports are not load time)
        import transformers  # noqa: F401

        start = time.perf_counter()
        tok, text, unet, vae = load_components(args.model)
        load_s = time.perf_counter() - start
        gflop = count_gflop(args, tok, text, unet, vae)
        if args.work == "txt2img":
            run = txt2img(args, tok, text, unet, vae)
        else:
            # One untimed run at 64×64 pixels first (bench.rs does the same), so one-off
            # start-up costs (lazy initialisation, first allocations) stay out of the timings.
            warm_args = argparse.Namespace(**{**vars(args), "width": 64, "height": 64})
            make_work(warm_args, tok, text, unet, vae, "cpu")()
            text.get_input_embeddings()._forward_hooks.clear()
            run = make_work(args, tok, text, unet, vae, "cpu")
        times = []
        for _ in range(args.reps):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    print(json.dumps({
        "work": args.work, "width": args.width, "height": args.height, "batch": args.batch,
        "steps": args.steps, "device": "cpu", "impl": "torch " + torch.__version__,
        "threads": torch.get_num_threads(), "load_s": load_s, "times_s": times,
        "peak_rss_mib": peak_rss_mib(), "gflop": gflop,
        **({"warmup": "one untimed run at 64x64"} if args.work not in ("load", "txt2img") else {}),
    }), flush=True)


if __name__ == "__main__":
    main()
