#!/usr/bin/env python3
"""PyTorch's side of `tools/gpu_check.sh`: SD 1.5 with random weights on a CUDA GPU, in fp16
with diffusers' default attention (`AttnProcessor2_0`, PyTorch's fused SDPA), timing what
`bench --random-weights sd15 --device wgpu` times on our side. One JSON line per work.

    python tools/gpu_reference.py [--reps 3] [--dtype fp16|fp32]

Works: `txt2img` (512², 20 Euler steps, CFG 7, batch 1: CLIP, UNet × 40 evaluations, VAE
decode) and `ti-step` (512², batch 1 and 4: the step of `tools/bench_reference.py`, under
`torch.autocast` so the frozen networks compute in `--dtype` and the embedding stays f32).
Each line has `times_s`, `it_per_s` (sampling steps or training steps per second) and
`peak_gpu_mib` (`torch.cuda.max_memory_allocated`, weights included). The networks are built
by `make_fullsize_checkpoint.build` from the real configs, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_reference import PROMPT, ti_step  # noqa: E402
from make_fullsize_checkpoint import build  # noqa: E402


def timed(run, reps: int) -> list[float]:
    """One untimed run, then `reps` timed ones, each ended by a device sync."""
    run()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def report(work: str, batch: int, times: list[float], per_run: int, dtype: str) -> None:
    best = min(times)
    print(json.dumps({
        "work": work, "width": 512, "height": 512, "batch": batch, "impl": "torch "
        + torch.__version__, "device": torch.cuda.get_device_name(), "dtype": dtype,
        "attention": "sdpa", "times_s": times, "it_per_s": per_run / best,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20,
    }), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device for PyTorch")
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        pipe = build("sd15", Path(scratch))
    from diffusers import EulerDiscreteScheduler

    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe = pipe.to("cuda", dtype)
    pipe.set_progress_bar_config(disable=True)
    for m in (pipe.text_encoder, pipe.unet, pipe.vae):
        m.requires_grad_(False)

    torch.cuda.reset_peak_memory_stats()

    def txt2img():
        return pipe(PROMPT, num_inference_steps=args.steps, guidance_scale=7.0, width=512,
                    height=512, generator=torch.Generator("cuda").manual_seed(1),
                    output_type="np").images

    report("txt2img", 1, timed(txt2img, args.reps), args.steps, args.dtype)

    for batch in (1, 4):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        step_args = argparse.Namespace(batch=batch, width=512, height=512)
        g = torch.Generator().manual_seed(0)

        def rand(*shape, g=g):
            return torch.randn(*shape, generator=g).to("cuda")

        text = pipe.text_encoder
        step = ti_step(step_args, pipe.tokenizer, text, pipe.unet, "cuda", rand)

        def run(step=step):
            with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                return step()

        report("ti-step", batch, timed(run, args.reps), 1, args.dtype)
        text.get_input_embeddings()._forward_hooks.clear()


if __name__ == "__main__":
    main()
