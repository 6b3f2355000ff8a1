#!/usr/bin/env python3
"""The PyTorch side of `examples/ops_bench.rs`: the same shapes, the same JSON lines.

    python tools/bench_ops.py [--threads N] [--reps 5]

Run it right after (or interleaved with) `cargo run --release --example ops_bench` on the
same machine and divide the medians for the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def timed(name: str, flops: float, reps: int, fn) -> None:
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    median = statistics.median(times)
    print(json.dumps({"op": name, "device": "torch-cpu", "median_s": median,
                      "gflops": flops / median / 1e9, "times_s": times}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x = torch.randn(2, 320, 64, 64)
    w = torch.randn(320, 320, 3, 3)
    with torch.no_grad():
        timed("conv2d_3x3_b2_c320_64x64", 2.0 * 2 * 320 * 320 * 9 * 64 * 64, args.reps,
              lambda: F.conv2d(x, w, padding=1))

    xb = torch.randn(1, 320, 32, 32, requires_grad=True)
    wb = torch.randn(320, 320, 3, 3, requires_grad=True)

    def backward():
        F.conv2d(xb, wb, padding=1).sum().backward()

    timed("conv2d_3x3_backward_b1_c320_32x32", 2.0 * 2.0 * 320 * 320 * 9 * 32 * 32, args.reps, backward)

    q, k, v = (torch.randn(2, 8, 4096, 40) for _ in range(3))
    attention_flops = 2.0 * 2.0 * 16 * 4096 * 4096 * 40
    with torch.no_grad():
        timed("attention_fused_b2h8_4096x40", attention_flops, args.reps,
              lambda: F.scaled_dot_product_attention(q, k, v))

        def per_head():
            heads = [torch.softmax(q[b, h] @ k[b, h].T / 40 ** 0.5, -1) @ v[b, h]
                     for b in range(2) for h in range(8)]
            return torch.stack(heads)

        timed("attention_matmul_softmax_per_head_b2h8_4096x40", attention_flops, args.reps,
              per_head)

    a = torch.randn(2, 4096, 320)
    b = torch.randn(2, 320, 320)
    with torch.no_grad():
        timed("matmul_b2_4096x320x320", 2.0 * 2 * 4096 * 320 * 320, args.reps, lambda: a @ b)
        a2 = torch.randn(1024, 1024)
        b2 = torch.randn(1024, 1024)
        timed("matmul_1024", 2.0 * 1024 ** 3, args.reps, lambda: a2 @ b2)


if __name__ == "__main__":
    main()
