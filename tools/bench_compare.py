#!/usr/bin/env python3
"""Runs `examples/bench.rs` (ours, burn) and `tools/bench_reference.py` (PyTorch) on the same
work, alternately in one session, and prints a markdown table of medians and ratios.

    cargo build --release --example bench
    tools/.venv/bin/python tools/bench_compare.py \\
        --single-file $SD_FULLSIZE_DIR/sd15-random.safetensors \\
        --folder $SD_FULLSIZE_DIR/sd15-random [--rounds 2] [--reps 1] [--works unet-b2,vae-decode]
        [--json bench.json]

Each round runs every selected work once per side, each in its own process (so every peak
resident memory is that work's own), alternating which side goes first (A B, then B A) so a
load that drifts on a shared machine falls on both. Medians are over every timed repetition
of every round. `txt2img` (20 Euler steps with CFG at 512²) is estimated from the measured
parts, CLIP + 20 × UNet batch 2 + VAE decode, on both sides (marked "est."). GFLOP counts
come from PyTorch's FlopCounterMode (the same work, so the same count applies to ours).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name: (bench --work, batch, width, height, reps override or None)
WORKS = {
    "load": ("load", 1, 512, 512, 1),
    "clip": ("clip", 2, 512, 512, 5),
    "unet-b1": ("unet", 1, 512, 512, None),
    "unet-b2": ("unet", 2, 512, 512, None),
    "vae-decode": ("vae-decode", 1, 512, 512, None),
    "vae-encode": ("vae-encode", 1, 512, 512, None),
    "ti-step-256": ("ti-step", 1, 256, 256, None),
    "ti-step-512": ("ti-step", 1, 512, 512, None),
    # Ours only: the UNet step timed part by part (no PyTorch counterpart).
    "unet-attention-b2": ("unet-attention", 2, 512, 512, None),
}
DEFAULT = "clip,unet-b1,unet-b2,vae-decode,vae-encode,ti-step-256,ti-step-512,load"


def run(cmd: list[str], log) -> dict | None:
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.write(f"$ {' '.join(cmd)}\n{proc.stderr[-4000:]}\n{proc.stdout}\n")
    log.flush()
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  failed (exit {proc.returncode}): {proc.stderr[-600:]}", file=sys.stderr)
        return None
    out = json.loads(lines[-1])
    print("  ", json.dumps({k: out.get(k) for k in ("times_s", "peak_rss_mib", "gflop")}),
          file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--single-file", type=Path, help="LDM .safetensors (ours)")
    p.add_argument("--folder", type=Path, help="diffusers folder (PyTorch)")
    p.add_argument("--bench", type=Path, default=REPO / "target/release/examples/bench")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--works", default=DEFAULT, help=f"comma list of {', '.join(WORKS)}")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--reps", type=int, default=1, help="timed repetitions per process")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=20, help="txt2img steps of the estimate")
    p.add_argument("--json", type=Path, default=Path("bench-compare.json"))
    p.add_argument("--log", type=Path, default=Path("bench-compare.log"))
    p.add_argument("--table-from", type=Path,
                   help="only print the table of a JSON file this script wrote (even a partial one)")
    args = p.parse_args()
    if args.table_from:
        saved = json.loads(args.table_from.read_text())
        print(table(summarise(saved.get("runs", saved), args.steps)))
        return
    if not (args.single_file and args.folder):
        p.error("--single-file and --folder are required")
    env_nice = ["nice", "-n", "10"]

    results: dict[str, dict[str, list[dict]]] = {}
    with args.log.open("a") as log:
        for name in args.works.split(","):
            work, batch, width, height, reps = WORKS[name]
            reps = reps or args.reps
            common = ["--work", work, "--batch", str(batch), "--width", str(width),
                      "--height", str(height), "--reps", str(reps)]
            ours = [*env_nice, str(args.bench), "--model", str(args.single_file), *common]
            torch = [*env_nice, args.python, str(REPO / "tools/bench_reference.py"),
                     "--model", str(args.folder), "--single-file", str(args.single_file),
                     "--threads", str(args.threads), *common]
            sides = [("ours", ours)] + ([] if work == "unet-attention" else [("torch", torch)])
            results[name] = {"ours": [], "torch": []}
            for r in range(args.rounds):
                order = sides if r % 2 == 0 else sides[::-1]
                for side, cmd in order:
                    out = run(cmd, log)
                    if out is not None:
                        results[name][side].append(out)
            # Write as we go: a long session that dies keeps what it measured.
            args.json.write_text(json.dumps(results, indent=1) + "\n")

    rows = summarise(results, args.steps)
    print(table(rows))
    args.json.write_text(json.dumps({"runs": results, "summary": rows}, indent=1) + "\n")


def side_stats(runs: list[dict]) -> dict | None:
    if not runs:
        return None
    times = [t for r in runs for t in r["times_s"]]
    gflop = next((r.get("gflop") for r in runs if r.get("gflop")), None)
    return {"median_s": statistics.median(times), "times_s": times,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "gflop": gflop,
            "parts_s": runs[0].get("parts_s")}


def summarise(results, steps: int) -> list[dict]:
    rows = []
    for name, sides in results.items():
        ours, torch = side_stats(sides["ours"]), side_stats(sides["torch"])
        gflop = (torch or {}).get("gflop")
        rows.append({"work": name, "ours": ours, "torch": torch, "gflop": gflop,
                     "estimated": False})
    by = {r["work"]: r for r in rows}
    if all(k in by for k in ("clip", "unet-b2", "vae-decode")):
        est = {}
        for side in ("ours", "torch"):
            parts = [by[k][side] for k in ("clip", "unet-b2", "vae-decode")]
            if all(parts):
                est[side] = {
                    "median_s": parts[0]["median_s"] + steps * parts[1]["median_s"]
                    + parts[2]["median_s"],
                    "peak_rss_mib": max(p["peak_rss_mib"] for p in parts), "gflop": None}
        g = [by[k]["gflop"] for k in ("clip", "unet-b2", "vae-decode")]
        rows.append({"work": f"txt2img-{steps}-steps-512", "ours": est.get("ours"),
                     "torch": est.get("torch"),
                     "gflop": g[0] + steps * g[1] + g[2] if all(g) else None,
                     "estimated": True})
    return rows


def table(rows) -> str:
    f = lambda v, d=2: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    out = ["| work | GFLOP | ours median s | PyTorch median s | ours/PyTorch time | "
           "ours GFLOP/s | PyTorch GFLOP/s | ours peak RSS MiB | PyTorch peak RSS MiB | "
           "RSS ratio |", "|" + "---|" * 10]
    for r in rows:
        o, t, g = r["ours"] or {}, r["torch"] or {}, r["gflop"]
        om, tm = o.get("median_s"), t.get("median_s")
        orss, trss = o.get("peak_rss_mib"), t.get("peak_rss_mib")
        out.append("| " + " | ".join([
            r["work"] + (" (est.)" if r["estimated"] else ""), f(g, 1), f(om), f(tm),
            f(om / tm if om and tm else None), f(g / om if g and om else None, 1),
            f(g / tm if g and tm else None, 1), f(orss, 0), f(trss, 0),
            f(orss / trss if orss and trss else None)]) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
