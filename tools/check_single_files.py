#!/usr/bin/env python3
"""Checks the LDM single files against diffusers' own single-file loader.

`StableDiffusionPipeline.from_single_file` converts LDM keys with diffusers' code; loading our
single file that way must give exactly the weights of the diffusers folder. This proves the
key layout written by `sdtools/ldm_keys.py` is the one real checkpoints use.

    python tools/check_single_files.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

REPO = Path(__file__).resolve().parent.parent
PAIRS = [
    (REPO / "crates/sd-core/assets/tiny-sd1.safetensors", REPO / "fixtures/tiny-sd1"),
    (REPO / "fixtures/tiny-sd2.safetensors", REPO / "fixtures/tiny-sd2"),
]


def main() -> int:
    failures = 0
    for single, folder in PAIRS:
        a = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.float32, local_files_only=True)
        b = StableDiffusionPipeline.from_single_file(str(single), config=str(folder),
                                                     dtype=torch.float32, local_files_only=True)
        for name in ("unet", "vae", "text_encoder"):
            sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
            key_diff = sorted(set(sa) ^ set(sb))
            value_diff = [k for k in sa if k in sb and not torch.equal(sa[k].float(), sb[k].float())]
            ok = not key_diff and not value_diff
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {single.name} {name}: {len(sa)} tensors, "
                  f"key differences {key_diff[:5]}, value differences {value_diff[:5]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
