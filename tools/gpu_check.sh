#!/usr/bin/env bash
# The prepared GPU check (issue 25): SD 1.5 at full size with random weights built in memory
# (no checkpoint to carry), on every GPU backend that builds here, beside PyTorch fp16 SDPA on
# the same machine when torch can use its GPU.
#
#   tools/gpu_check.sh [--bench PATH] [--out DIR] [--reps N] [--skip-cuda]
#
# 1. Builds `bench` with `--features wgpu` (and `--features cuda`, which needs to download LLVM:
#    skipped when that fails), unless `--bench PATH` names a wgpu binary built elsewhere.
# 2. Runs, per backend: txt2img 512² × 20 Euler steps (CFG, batch 1, CLIP and VAE included)
#    and the textual-inversion step at 512², batch 1 and 4, in f32 and with `--precision f16`
#    (as PyTorch's fp16 figures). Prints it/s and the device memory
#    burn's allocator reserved (its high-water mark: pools keep their pages).
# 3. Runs tools/gpu_reference.py (PyTorch, fp16, diffusers' SDPA attention) when
#    `python3 -c 'import torch, diffusers, transformers'` works and torch sees a GPU.
#
# Every JSON line goes to DIR/gpu-check.jsonl (DIR defaults to $OUT or ./gpu-check); the
# summary table to DIR/summary.txt. A work that fails is reported and the check goes on.
set -uo pipefail
cd "$(dirname "$0")/.."

bench=""
out="${OUT:-gpu-check}"
reps=3
skip_cuda=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) bench="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --skip-cuda) skip_cuda=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
log="$out/gpu-check.jsonl"
: >"$log"
say() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
start=$(date +%s)

say "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
    || echo "no nvidia-smi"; nproc; } | tee "$out/machine.txt"

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
target="${CARGO_TARGET_DIR:-target}"
declare -A binaries=()
if [ -n "$bench" ]; then
  binaries[wgpu]="$bench"
else
  say "build: bench --features wgpu"
  if CARGO_TARGET_DIR="$target-wgpu" cargo build --release -p sd-examples --features wgpu \
       --example bench 2>&1 | tail -3; then
    binaries[wgpu]="$target-wgpu/release/examples/bench"
  fi
fi
if [ "$skip_cuda" -eq 0 ]; then
  say "build: bench --features cuda (needs LLVM from the network; skipped if it fails)"
  if timeout 900 env CARGO_TARGET_DIR="$target-cuda" cargo build --release -p sd-examples \
       --features cuda --example bench >"$out/cuda-build.log" 2>&1; then
    binaries[cuda]="$target-cuda/release/examples/bench"
  else
    echo "cuda build failed; last lines:"; tail -3 "$out/cuda-build.log"
  fi
fi

run_ours() { # backend, then bench arguments
  local backend="$1"; shift
  local line
  if line=$("${binaries[$backend]}" --random-weights sd15 --device "$backend" "$@" \
              2>>"$out/$backend.stderr"); then
    echo "$line" | tee -a "$log"
  else
    echo "{\"device\": \"$backend\", \"failed\": \"$*\"}" | tee -a "$log"
    tail -3 "$out/$backend.stderr"
  fi
}
for backend in "${!binaries[@]}"; do
  say "ours on $backend"
  run_ours "$backend" --work txt2img --steps 20 --reps "$reps"
  run_ours "$backend" --work ti-step --batch 1 --reps "$reps"
  run_ours "$backend" --work ti-step --batch 4 --reps "$reps"
  # Half precision, as PyTorch's figures below (`--precision f16`: the frozen networks in
  # f16, the embedding f32, the loss scaled); a device without f16 shaders refuses it.
  run_ours "$backend" --precision f16 --work txt2img --steps 20 --reps "$reps"
  run_ours "$backend" --precision f16 --work ti-step --batch 1 --reps "$reps"
  run_ours "$backend" --precision f16 --work ti-step --batch 4 --reps "$reps"
done

say "PyTorch fp16 SDPA"
if python3 -c 'import torch, diffusers, transformers; assert torch.cuda.is_available()' \
     2>/dev/null; then
  python3 tools/gpu_reference.py --reps "$reps" 2>"$out/torch.stderr" | tee -a "$log" \
    || tail -3 "$out/torch.stderr"
else
  echo "no torch with CUDA and diffusers here: PyTorch's figures skipped" | tee -a "$out/machine.txt"
fi

say "summary"
if command -v python3 >/dev/null; then
  python3 - "$log" <<'EOF' | tee "$out/summary.txt"
import json, sys
print(f"{'impl':<22} {'device':<26} {'prec':<5} {'work':<8} {'batch':>5} {'it/s':>8} {'GPU MiB':>9}")
for raw in open(sys.argv[1]):
    r = json.loads(raw)
    if "failed" in r:
        print(f"{'burn':<22} {r['device']:<26} failed: {r['failed']}")
        continue
    best = min(r["times_s"])
    its = r.get("it_per_s") or (r.get("steps", 20) if r["work"] == "txt2img" else 1) / best
    mib = r.get("peak_gpu_mib") or r.get("gpu_reserved_mib") or float("nan")
    prec = r.get("precision", "fp16" if r["impl"] != "burn" else "f32")
    print(f"{r['impl']:<22} {str(r['device'])[:26]:<26} {prec:<5} {r['work']:<8} {r['batch']:>5} "
          f"{its:>8.2f} {mib:>9.0f}")
EOF
else
  cat "$log"
fi
echo "gpu_check took $(( $(date +%s) - start )) s"
