#!/usr/bin/env python3
"""Reference noise for the sd-noise crate (crates/sd-noise, fixtures/noise/).

Runs the real things: `torch.randn` on the CPU (torch's MT19937 + AVX2 Box-Muller) and
AUTOMATIC1111's own `modules/rng_philox.py` and `modules/rng.py` (ImageRNG, slerp),
imported from a checkout given with --a1111 (nothing of A1111 is stored in this repo).
A1111's `modules.shared` / `modules.devices` are replaced by small stubs that only
provide the options those two files read (randn_source, eta_noise_seed_delta) and the
CPU device.

Usage (regenerates fixtures/noise/ byte for byte on an x86-64 AVX2 CPU with torch 2.x):
    tools/.venv/bin/python tools/noise_reference.py --a1111 /path/to/stable-diffusion-webui

Output: fixtures/noise/index.json (one entry per case) and fixtures/noise/values.bin
(little-endian float32, the entries' `values` slices back to back). Big tensors store
an FNV-1a 64 hash of all their float32 bytes plus a strided sample of the values.
"""

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import types

import numpy as np
import torch

FULL_LIMIT = 1024  # tensors up to this many values are stored whole
SAMPLE_STRIDE = 61  # bigger ones: every 61st value (a prime, so it walks all channels/rows)


def fnv1a64(arr: np.ndarray) -> str:
    """FNV-1a 64 of the little-endian float32 bytes, as a hex string."""
    h = 0xCBF29CE484222325
    for b in np.ascontiguousarray(arr, dtype="<f4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class Writer:
    def __init__(self):
        self.cases = []
        self.chunks = []
        self.offset = 0

    def add(self, name, kind, params, outputs):
        """outputs: list of numpy float32 arrays (one per call)."""
        outs = []
        for arr in outputs:
            flat = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
            entry = {"len": int(flat.size), "fnv1a64": fnv1a64(flat)}
            if flat.size <= FULL_LIMIT:
                vals, entry["stride"] = flat, 1
            else:
                vals, entry["stride"] = flat[::SAMPLE_STRIDE], SAMPLE_STRIDE
            entry["offset"] = self.offset
            entry["count"] = int(vals.size)
            self.chunks.append(vals.astype("<f4").tobytes())
            self.offset += int(vals.size)
            outs.append(entry)
        self.cases.append({"name": name, "kind": kind, **params, "outputs": outs})

    def save(self, out_dir):
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "values.bin"), "wb") as f:
            f.write(b"".join(self.chunks))
        meta = {
            "generator": "tools/noise_reference.py",
            "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "numpy": np.__version__,
            "cases": self.cases,
        }
        with open(os.path.join(out_dir, "index.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")


def load_a1111(a1111_dir):
    """Import A1111's rng.py and rng_philox.py from a temp copy with stub siblings."""
    tmp = tempfile.mkdtemp(prefix="a1111_rng_")
    pkg = os.path.join(tmp, "modules")
    os.makedirs(pkg)
    for f in ("rng.py", "rng_philox.py"):
        shutil.copy(os.path.join(a1111_dir, "modules", f), pkg)
    open(os.path.join(pkg, "__init__.py"), "w").close()
    # Stubs: only what rng.py reads.
    with open(os.path.join(pkg, "devices.py"), "w") as f:
        f.write("import torch\ndevice = torch.device('cpu')\ncpu = torch.device('cpu')\n")
    with open(os.path.join(pkg, "shared.py"), "w") as f:
        f.write(
            "import types, torch\n"
            "opts = types.SimpleNamespace(randn_source='CPU', eta_noise_seed_delta=0)\n"
            "device = torch.device('cpu')\n"
        )
    sys.path.insert(0, tmp)
    shared = importlib.import_module("modules.shared")
    rng = importlib.import_module("modules.rng")
    rng_philox = importlib.import_module("modules.rng_philox")
    return shared, rng, rng_philox


SEEDS = [0, 1, 2**31, 2**32 - 1, 3711471449, 2**32 + 5, 12345, 987654321]
SHAPES = [(1,), (3,), (15,), (16,), (17,), (31,), (32,), (33,), (4, 8, 8), (2, 4, 17, 9), (4, 64, 64)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout (reads modules/rng*.py)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures", "noise"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    shared, rng, rng_philox = load_a1111(args.a1111)
    w = Writer()

    # 1. torch.randn on the CPU, one call per fresh seed.
    for seed in SEEDS:
        for shape in SHAPES:
            g = torch.Generator("cpu").manual_seed(seed)
            x = torch.randn(shape, generator=g, dtype=torch.float32)
            w.add(f"cpu seed={seed} shape={shape}", "cpu", {"seed": seed, "sizes": [x.numel()]}, [x.numpy()])
    big = torch.randn((4, 128, 128), generator=torch.Generator("cpu").manual_seed(3711471449))
    w.add("cpu big", "cpu", {"seed": 3711471449, "sizes": [big.numel()]}, [big.numpy()])

    # 2. Successive calls on one generator (the scalar path caches a normal between calls).
    for seed, sizes in [(7, [3, 20, 5, 16, 1, 7, 2]), (3711471449, [256, 256, 256]), (99, [1, 1, 1, 33, 1]),
                        (2**31, [15, 17, 15, 4096])]:
        g = torch.Generator("cpu").manual_seed(seed)
        outs = [torch.randn((n,), generator=g).numpy() for n in sizes]
        w.add(f"cpu successive seed={seed}", "cpu", {"seed": seed, "sizes": sizes}, outs)

    # 3. A1111's Philox (NV), fresh generators and successive calls.
    for seed in SEEDS:
        for shape in [(1,), (3, 4), (33,), (4, 8, 8), (2, 4, 17, 9), (4, 64, 64)]:
            x = rng_philox.Generator(seed).randn(shape)
            n = int(np.prod(shape))
            w.add(f"nv seed={seed} shape={shape}", "nv", {"seed": seed, "sizes": [n]}, [x])
    g = rng_philox.Generator(42)
    sizes = [12, 12, 5, 256]
    w.add("nv successive seed=42", "nv", {"seed": 42, "sizes": sizes}, [g.randn((n,)) for n in sizes])

    # 4. A1111's ImageRNG: batch of 3, first() then two next() calls.
    image_cases = [
        # source, shape, seeds, subseeds, strength, resize (h, w) px, ensd
        ("CPU", (4, 8, 8), [100, 101, 102], None, 0.0, (0, 0), 0),
        ("NV", (4, 8, 8), [100, 101, 102], None, 0.0, (0, 0), 0),
        ("CPU", (4, 8, 8), [100, 101, 102], [7, 8, 9], 0.3, (0, 0), 0),
        ("NV", (4, 8, 8), [100, 101, 102], [7, 8, 9], 0.3, (0, 0), 0),
        ("CPU", (4, 8, 8), [2**32 - 1, 0, 5], [1], 1.0, (0, 0), 0),
        ("CPU", (4, 8, 8), [100, 101, 102], [100, 101, 102], 0.5, (0, 0), 0),
        ("CPU", (4, 8, 8), [100, 101, 102], None, 0.0, (0, 0), 31337),
        ("NV", (4, 8, 8), [100, 101, 102], None, 0.0, (0, 0), 31337),
        ("CPU", (4, 8, 8), [100, 101, 102], None, 0.0, (96, 48), 0),
        ("CPU", (4, 8, 8), [100, 101, 102], [7, 8, 9], 0.25, (40, 32), 0),
        ("NV", (4, 8, 8), [100, 101, 102], [7, 8, 9], 0.25, (72, 40), 31337),
        ("CPU", (4, 3, 3), [5, 6, 7], None, 0.0, (0, 0), 0),
        ("CPU", (4, 64, 64), [3711471449], [1234], 0.2, (0, 0), 0),
    ]
    for source, shape, seeds, subseeds, strength, (rh, rw), ensd in image_cases:
        shared.opts.randn_source = source
        shared.opts.eta_noise_seed_delta = ensd
        r = rng.ImageRNG(shape, seeds, subseeds=subseeds, subseed_strength=strength,
                         seed_resize_from_h=rh, seed_resize_from_w=rw)
        outs = [r.next().numpy() for _ in range(3)]
        params = {"source": source, "shape": list(shape), "seeds": seeds, "subseeds": subseeds or [],
                  "subseed_strength": strength, "resize_hw": [rh, rw], "eta_noise_seed_delta": ensd}
        w.add(f"image_rng {source} {shape} seeds={seeds} sub={subseeds}@{strength} resize={rh}x{rw} ensd={ensd}",
              "image_rng", params, outs)

    w.save(os.path.abspath(args.out))
    print(f"wrote {len(w.cases)} cases, {w.offset} values to {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
