#!/usr/bin/env python3
"""End-to-end reference for "Eta noise seed delta" (ENSD), "Resize seed from W×H" and the
variation seed in `sd-core`'s txt2img pipeline: latents on the tiny SD 1.x model as
AUTOMATIC1111 computes them with "Random number generator source: CPU".

What is A1111's own code (imported from `--a1111`, nothing of it is stored in this repo):
* `modules/rng.py` `ImageRNG` (with `modules/rng_philox.py`, which it imports), loaded by
  `noise_reference.load_a1111` with stub `modules.shared` / `modules.devices` (options
  `randn_source = "CPU"` and `eta_noise_seed_delta`, CPU device). One `ImageRNG` per batch,
  built as `process_images_inner` builds `p.rng`: shape `(4, H/8, W/8)`, `p.seeds`,
  `subseeds=p.subseeds`, `subseed_strength`, `seed_resize_from_h/_w`. Its `next()` gives the
  initial noise (`first()`: variation seed, resize, then the re-seeding of every image's
  generator with `seed + eta_noise_seed_delta`) and then, through `TorchHijack.randn_like`,
  every per-step noise of the ancestral sampler.
* the infotext fields: `create_infotext` (`modules/processing.py`),
  `is_sampler_using_eta_noise_seed_delta` and `SamplerData` (`modules/sd_samplers_common.py`),
  `find_sampler_config` (`modules/sd_samplers.py`), the `samplers_k_diffusion` table and
  `samplers_data_k_diffusion` (`modules/sd_samplers_kdiffusion.py`) and `quote`
  (`modules/infotext_utils.py`): those definitions are taken from the files with `ast`, as
  written, and run in namespaces of stubs (importing the modules themselves would pull in
  gradio, the model loader and the UI). The stub options: A1111's defaults, except model /
  VAE name and hash, version and user off (the tiny model has no A1111 hash); `p.scheduler`
  is "Automatic", `p.eta` is None and `p.sampler.eta` is 1.0 (`opts.eta_ancestral`, what
  `KDiffusionSampler.initialize` stores), as after a txt2img run from the UI. Only the
  k-diffusion samplers are in the sampler table (enough for these cases).
* k-diffusion's `sample_euler_ancestral` / `sample_euler` over `CompVisDenoiser`, as in
  `tools/pipeline_reference.py` (whose `Model`, `LdmLike`, `Cfg`, `TorchHijack` and
  `k_func` are imported, not copied).

What is reproduced here (A1111 glue, a few lines, cited from v1.10.1):
* `process_images_inner`: `all_seeds = [seed + (i if subseed_strength == 0 else 0)]` (with a
  variation seed every image of the batch gets THE SAME seed, hence the same per-step noise
  under ENSD), `all_subseeds = [subseed + i]`;
* `KDiffusionSampler.sample`: `sigmas = model_wrap.get_sigmas(steps)` (Automatic schedule for
  Euler / Euler a), `x = noise · σ₀`, η = 1, s_noise = 1; the CFG glue as in
  pipeline_reference.py.

Cases (`CASES`): tiny-sd1, CFG 7, Euler a (and one Euler), ENSD 31337 / 0, "Resize seed
from" smaller / larger / odd / below 8 px, a variation seed with resize and ENSD.

Checks run every time (the script fails if one does not hold): ENSD 0 without resize or
variation gives exactly the latents of plain per-image generators
(`pipeline_reference.ImageRng`); with ENSD ≠ 0 the k-th per-step noise of image i is the
k-th draw of `torch.Generator().manual_seed(seed_i + ENSD)`, the initial noise is the same as
with ENSD 0 and the Euler a latents differ, while Euler's latents do not change; with resize
and ENSD 0 the per-step noise is the seed's own stream after one full-size draw.

Output (`--out`, default fixtures/pipeline/): `seed_options_cases.json` (the case list, each
also with `image_seeds` / `image_subseeds`, what `ImageRNG` got; `infotext`, the fields
"Seed resize from" and "ENSD" as `create_infotext` writes them, null where it leaves them out;
`infotext_params`, the last line of every image's infotext) and
`seed_options.safetensors` (`{name}.noise` = `ImageRNG.first()` [B, 4, H/8, W/8],
`{name}.step_noise` = every later `next()` [n, B, 4, H/8, W/8], `{name}.latents` = final
latents [B, 4, H/8, W/8]; float32).

The committed fixtures were made with the A1111 files of v1.10.1 (commit
82a973c04367123ae98bd9abdf80d9eda9b910e2).

Usage:
    python tools/seed_options_reference.py --a1111 /path/to/stable-diffusion-webui [--out fixtures/pipeline]
"""

import argparse
import ast
import collections
import json
import os
import sys
import types

import torch
from safetensors.torch import save_file

import k_diffusion.external
import k_diffusion.sampling

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noise_reference import load_a1111  # noqa: E402
from pipeline_reference import ROOT, Cfg, ImageRng, LdmLike, Model, TorchHijack, k_func  # noqa: E402

_COMMON = dict(model="tiny-sd1", cfg=7.0, sampler="Euler a", negative="blurry", subseed=None,
               subseed_strength=0.0, seed_resize_from=None)

CASES = [dict(_COMMON, **c) for c in [
    # ENSD with a batch: each image's per-step generator is re-seeded with seed_i + 31337.
    dict(name="ensd_31337_batch2", prompt="a red fox in the snow", seed=1234, batch=2,
         width=64, height=64, steps=6, eta_noise_seed_delta=31337),
    # Control: ENSD 0 keeps drawing from the seeds' own streams (= plain generators).
    dict(name="ensd_0_batch1", prompt="a red fox in the snow", seed=1234, batch=1,
         width=64, height=64, steps=6, eta_noise_seed_delta=0),
    # Resize from 48x80 px (6x10 latents) onto 8x8: narrower, taller;
    # x[:, 0:8, 1:7] = noise[:, 1:9, 0:6].
    dict(name="resize_48x80", prompt="a castle on a hill", seed=777, batch=1,
         width=64, height=64, steps=8, eta_noise_seed_delta=0, seed_resize_from=[48, 80]),
    # Resize from 96x32 px (12x4 latents) onto 64x48 px (8x6): wider, shorter, with ENSD;
    # x[:, 1:5, 0:8] = noise[:, 0:4, 2:10].
    dict(name="resize_96x32_ensd", prompt="a castle on a hill", seed=778, batch=1,
         width=64, height=48, steps=8, eta_noise_seed_delta=31337, seed_resize_from=[96, 32]),
    # Odd difference and a non-multiple of 8: 88x36 px -> 11x4 latents. dx = (8 - 11) // 2
    # = -2 (floor), so only 11 - 4 = 7 columns are pasted: x[:, 2:6, 0:7] = noise[:, 0:4, 2:9];
    # column 7 keeps the generator's own noise.
    dict(name="resize_88x36_odd", prompt="still life with apples", seed=31, batch=1,
         width=64, height=64, steps=6, eta_noise_seed_delta=0, seed_resize_from=[88, 36]),
    # Below 8 px: 4 // 8 = 0 columns; A1111 draws an empty tensor and pastes nothing, so the
    # noise is the plain seed's, yet the infotext still says "Seed resize from: 4x100".
    dict(name="resize_4x100_degenerate", prompt="still life with apples", seed=32, batch=1,
         width=64, height=64, steps=6, eta_noise_seed_delta=0, seed_resize_from=[4, 100]),
    # Variation seed + resize + ENSD, batch 2: both images get seed 4242 (A1111's all_seeds),
    # subseeds 12345 and 12346; the subseed noise is drawn at the resize shape and slerped
    # there, before the paste.
    dict(name="variation_resize_ensd_batch2", prompt="a lighthouse at night", seed=4242,
         batch=2, width=64, height=64, steps=8, eta_noise_seed_delta=31337,
         seed_resize_from=[80, 48], subseed=12345, subseed_strength=0.3),
    # Euler: ENSD changes nothing (k-diffusion's sample_euler draws a noise every step but
    # uses it only with s_churn > 0), and the infotext omits it (no `uses_ensd` option).
    dict(name="euler_ensd_unused", prompt="a red fox in the snow", seed=1234, batch=1,
         width=64, height=64, steps=6, eta_noise_seed_delta=31337, sampler="Euler"),
]]


KEYS = ["name", "model", "prompt", "negative", "seed", "batch", "width", "height", "steps", "cfg",
        "sampler", "eta_noise_seed_delta", "seed_resize_from", "subseed", "subseed_strength"]
assert all(sorted(c) == sorted(KEYS) for c in CASES)


def a1111_seeds(case):
    """`process_images_inner`: p.all_seeds / p.all_subseeds for one batch (n_iter = 1)."""
    b, strength = case["batch"], case["subseed_strength"]
    seeds = [int(case["seed"]) + (x if strength == 0 else 0) for x in range(b)]
    subseeds = None if case["subseed"] is None else [int(case["subseed"]) + x for x in range(b)]
    return seeds, subseeds


class Recording:
    """Hands an ImageRNG's `next()` on and keeps a copy of every tensor."""

    def __init__(self, rng):
        self.rng = rng
        self.draws = []

    def next(self):
        x = self.rng.next()
        self.draws.append(x.clone())
        return x


def run_sampler(case, model, rng):
    """A1111's txt2img with a k-diffusion sampler: `x = p.rng.next()`, then
    `KDiffusionSampler.sample` with `k_diffusion.sampling.torch = TorchHijack(p)`."""
    b = case["batch"]
    rec = Recording(rng)
    noise = rec.next()
    cond = torch.cat([model.encode_prompt(case["prompt"])] * b)
    uncond = torch.cat([model.encode_prompt(case["negative"])] * b)
    wrap = k_diffusion.external.CompVisDenoiser(LdmLike(model), quantize=False)
    func, karras = k_func(case["sampler"])
    assert not karras
    sigmas = wrap.get_sigmas(case["steps"])
    extra = {"Euler a": dict(eta=1.0, s_noise=1.0),
             "Euler": dict(s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0)}[case["sampler"]]
    k_diffusion.sampling.torch = TorchHijack(rec)
    try:
        samples = getattr(k_diffusion.sampling, func)(
            Cfg(wrap), noise * sigmas[0], sigmas,
            extra_args=dict(cond=cond, uncond=uncond, cond_scale=case["cfg"]), disable=True, **extra)
    finally:
        k_diffusion.sampling.torch = torch
    return noise, rec.draws[1:], samples.detach().clone()


class A1111:
    def __init__(self, a1111_dir):
        self.dir = a1111_dir
        self.shared, self.rng, _ = load_a1111(a1111_dir)
        assert self.shared.opts.randn_source == "CPU"
        self._load_infotext()

    def image_rng(self, case):
        seeds, subseeds = a1111_seeds(case)
        w, h = case["seed_resize_from"] or (0, 0)
        self.shared.opts.eta_noise_seed_delta = case["eta_noise_seed_delta"]
        return self.rng.ImageRNG((4, case["height"] // 8, case["width"] // 8), seeds, subseeds=subseeds,
                                 subseed_strength=case["subseed_strength"],
                                 seed_resize_from_h=h, seed_resize_from_w=w)

    # --- the infotext: A1111's definitions, taken from its files with `ast` ------------------

    def _defs(self, rel, names, namespace):
        path = os.path.join(self.dir, "modules", rel)
        with open(path, encoding="utf8") as f:
            tree = ast.parse(f.read(), path)
        found = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                found[node.name] = node
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id in names:
                        found[t.id] = node
        missing = [n for n in names if n not in found]
        assert not missing, f"{rel}: {missing} not found"
        body = [found[n] for n in names]
        exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), namespace)
        return [namespace[n] for n in names]

    def _load_infotext(self):
        ns = {"namedtuple": collections.namedtuple}
        _, sampler_data = self._defs("sd_samplers_common.py", ["SamplerDataTuple", "SamplerData"], ns)
        kd = {"sd_samplers_extra": types.SimpleNamespace(restart_sampler=lambda *a, **k: None),
              "sd_samplers_common": types.SimpleNamespace(SamplerData=sampler_data),
              "KDiffusionSampler": None, "k_diffusion": k_diffusion}
        _, data = self._defs("sd_samplers_kdiffusion.py", ["samplers_k_diffusion", "samplers_data_k_diffusion"], kd)
        sm = {"all_samplers": list(data), "all_samplers_map": {x.name: x for x in data}}
        (find,) = self._defs("sd_samplers.py", ["find_sampler_config"], sm)
        common = {"sd_samplers": types.SimpleNamespace(find_sampler_config=find)}
        (uses,) = self._defs("sd_samplers_common.py", ["is_sampler_using_eta_noise_seed_delta"], common)
        (quote,) = self._defs("infotext_utils.py", ["quote"], {"json": json})
        self.opts = types.SimpleNamespace(
            CLIP_stop_at_last_layers=1, eta_noise_seed_delta=0, face_restoration_model=None,
            add_model_hash_to_info=False, add_model_name_to_info=False, add_vae_hash_to_info=False,
            add_vae_name_to_info=False, fp8_storage="Disable", cache_fp16_weight=False,
            inpainting_mask_weight=1.0, randn_source="CPU", add_version_to_infotext=False,
            add_user_name_to_info=False)
        proc = {"opts": self.opts, "shared": types.SimpleNamespace(opts=self.opts),
                "sd_samplers_common": types.SimpleNamespace(is_sampler_using_eta_noise_seed_delta=uses),
                "devices": types.SimpleNamespace(fp8=False),
                "infotext_utils": types.SimpleNamespace(quote=quote),
                "errors": None, "program_version": None}
        (self.create_infotext,) = self._defs("processing.py", ["create_infotext"], proc)

    def infotext(self, case):
        """The parameters line of every image's infotext (A1111's `create_infotext`)."""
        seeds, subseeds = a1111_seeds(case)
        b = case["batch"]
        w, h = case["seed_resize_from"] or (0, 0)
        self.opts.eta_noise_seed_delta = case["eta_noise_seed_delta"]

        class P(types.SimpleNamespace):
            def get_token_merging_ratio(self, for_hr=False):
                return 0

        p = P(batch_size=b, all_prompts=[case["prompt"]] * b, all_negative_prompts=[case["negative"]] * b,
              main_prompt=case["prompt"], main_negative_prompt=case["negative"], steps=case["steps"],
              sampler_name=case["sampler"], scheduler="Automatic", cfg_scale=case["cfg"],
              all_seeds=seeds, all_subseeds=subseeds or [-1] * b, restore_faces=False,
              width=case["width"], height=case["height"], sd_model_hash=None, sd_model_name=None,
              sd_vae_hash=None, sd_vae_name=None, subseed_strength=case["subseed_strength"],
              seed_resize_from_w=w, seed_resize_from_h=h, extra_generation_params={},
              is_using_inpainting_conditioning=False, tiling=False, user=None, eta=None,
              sampler=types.SimpleNamespace(eta=1.0))
        lines = []
        for i in range(b):
            text = self.create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, index=i,
                                        all_negative_prompts=p.all_negative_prompts)
            lines.append(text.split("\n")[-1])
        # The two fields, as written (no value here contains a quoted comma).
        fields = dict(kv.split(": ", 1) for kv in lines[0].split(", "))
        ensd = fields.get("ENSD")
        return {"Seed resize from": fields.get("Seed resize from"),
                "ENSD": None if ensd is None else int(ensd)}, lines


def check(name, ok):
    print(f"  check {name}: {'ok' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit(f"check failed: {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a1111", required=True, help="stable-diffusion-webui checkout")
    parser.add_argument("--out", default=os.path.join(ROOT, "fixtures", "pipeline"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a1111 = A1111(os.path.abspath(args.a1111))
    model = Model("tiny-sd1")
    tensors, cases, results = {}, [], {}
    for case in CASES:
        noise, steps, latents = run_sampler(case, model, a1111.image_rng(case))
        results[case["name"]] = (noise, steps, latents)
        tensors[f"{case['name']}.noise"] = noise.contiguous().float()
        tensors[f"{case['name']}.step_noise"] = (torch.stack(steps) if steps else
                                                 noise.new_zeros((0, *noise.shape))).contiguous().float()
        tensors[f"{case['name']}.latents"] = latents.contiguous().float()
        seeds, subseeds = a1111_seeds(case)
        infotext, lines = a1111.infotext(case)
        cases.append(dict({k: case[k] for k in KEYS}, image_seeds=seeds, image_subseeds=subseeds,
                          infotext=infotext, infotext_params=lines))
        print(case["name"], tuple(latents.shape), f"{len(steps)} step noises,",
              f"|latents|max {float(latents.abs().max()):.4f};", lines[0])

    print("sanity checks:")
    shape_of = lambda c: (4, c["height"] // 8, c["width"] // 8)  # noqa: E731
    by_name = {c["name"]: c for c in CASES}
    for case in CASES:
        name, ensd = case["name"], case["eta_noise_seed_delta"]
        noise, steps, latents = results[name]
        seeds, _ = a1111_seeds(case)
        plain_case = case["seed_resize_from"] is None and case["subseed_strength"] == 0
        if plain_case:
            p_noise, p_steps, p_latents = run_sampler(case, model, ImageRng(seeds, shape_of(case)))
            if ensd == 0:
                check(f"{name}: ENSD 0 == plain per-image generators (noise, step noise, latents)",
                      torch.equal(noise, p_noise) and all(map(torch.equal, steps, p_steps))
                      and torch.equal(latents, p_latents))
            else:
                check(f"{name}: initial noise unchanged by ENSD", torch.equal(noise, p_noise))
                if case["sampler"] == "Euler a":
                    check(f"{name}: ENSD {ensd} latents differ from plain generators' "
                          f"(max |diff| {float((latents - p_latents).abs().max()):.4f})",
                          not torch.allclose(latents, p_latents, atol=1e-3))
                else:
                    check(f"{name}: {case['sampler']} latents unchanged by ENSD", torch.equal(latents, p_latents))
        if ensd != 0 and steps:
            gens = [torch.Generator().manual_seed(s + ensd) for s in seeds]
            want = [torch.stack([torch.randn(shape_of(case), generator=g) for g in gens]) for _ in steps]
            check(f"{name}: step noise k of image i = k-th draw of seed_i + {ensd}",
                  all(map(torch.equal, steps, want)))
        if ensd == 0 and steps and not plain_case:
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            want = [torch.stack([torch.randn(shape_of(case), generator=g) for g in gens]) for _ in range(len(steps) + 1)][1:]
            check(f"{name}: step noise = the seed's stream after one full-size draw",
                  all(map(torch.equal, steps, want)))
    a, b = results["ensd_31337_batch2"], results["ensd_0_batch1"]
    check("ensd_31337_batch2[0] vs ensd_0_batch1: same initial noise", torch.equal(a[0][:1], b[0]))
    check("ensd_31337_batch2[0] vs ensd_0_batch1: latents differ", not torch.allclose(a[2][:1], b[2], atol=1e-3))
    deg = by_name["resize_4x100_degenerate"]
    plain = ImageRng(a1111_seeds(deg)[0], shape_of(deg)).next()
    check("resize_4x100_degenerate: initial noise = plain seed's", torch.equal(results[deg["name"]][0], plain))
    var = results["variation_resize_ensd_batch2"]
    check("variation_resize_ensd_batch2: both images share the per-step noise (same seed)",
          all(torch.equal(s[0], s[1]) for s in var[1]))

    os.makedirs(args.out, exist_ok=True)
    st = os.path.join(args.out, "seed_options.safetensors")
    save_file(tensors, st)
    with open(os.path.join(args.out, "seed_options_cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases, {len(tensors)} tensors, {os.path.getsize(st)} bytes to {st}")


if __name__ == "__main__":
    main()
