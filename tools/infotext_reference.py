#!/usr/bin/env python3
"""Reference data for `sd_core::infotext`, produced by AUTOMATIC1111's own infotext code.

What runs is A1111's real `modules/infotext_utils.py` (`parse_generation_parameters`, `quote`,
`unquote`, `restore_old_hires_fix_params`) and `modules/infotext_versions.py` (`backcompat`),
imported from the `--a1111` directory; only the modules they import for the UI (gradio,
`modules.shared`, `modules.processing`, ...) are stubbed. `modules.shared.opts` carries
A1111's defaults for the options these functions read (`use_old_hires_fix_width_height`
False, `auto_backcompat` True, `infotext_skip_pasting` []), except `infotext_styles`, which is
"Ignore": with the default "Apply if any" and no styles.csv the result is the same, and the
Rust side has no styles database.

`create_infotext` itself needs a whole processing object, so the writer cases rebuild its
`generation_params` dict (same keys, same order, same None rules, copied beside
`create_infotext` below) and then run its own last three lines, with A1111's real `quote`.

PNG fixtures are written by PIL exactly as A1111's `images.save_image_with_geninfo` does
(`PngInfo().add_text(k, str(v))`: tEXt when the text is latin-1, iTXt otherwise), plus zTXt
and compressed iTXt variants (`zip=True`), and read back with `Image.open(...).info`, as
`images.read_info_from_image` does.

Version used for the committed fixtures: stable-diffusion-webui v1.10.x
(`modules/infotext_utils.py` at commit 036500223de0a3caaa86360a8ad3ed301e4367b0), Python
3.11.7, Pillow 13.0.0, packaging 26.4. Output is byte-for-byte reproducible (PNG bytes
depend on the Pillow/zlib version).

Usage:
    python tools/infotext_reference.py --a1111 /path/to/stable-diffusion-webui [--out fixtures/infotext]

A directory holding just `modules/infotext_utils.py` and `modules/infotext_versions.py` is
enough for `--a1111`. None of A1111's code is copied into this project.
"""

import argparse
import importlib
import io
import json
import math
import os
import sys
import types
import unicodedata


# ---------------------------------------------------------------------------------------------
# Cases: infotexts as A1111 (and other tools) write them, plus the corners of the parser.

BASE = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"

PARSE_CASES = [
    ("docstring", "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate\nNegative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing\n" + BASE),
    ("v1_10_txt2img", "a photo of realbenny-t2 as a pixar character\nNegative prompt: blurry, lowres\nSteps: 30, Sampler: LMS, Schedule type: Automatic, CFG scale: 7, Seed: 3711471449, Size: 512x512, Model hash: 7460a6fa, Model: v1-5-pruned-emaonly, Version: v1.10.1"),
    ("v1_10_img2img_mask", "a cat\nNegative prompt: dog\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 12345, Size: 768x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.75, Mask blur: 4, Version: v1.10.1"),
    ("no_negative", "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"),
    ("cfg_float", "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7.0, Seed: 1, Size: 512x512, Denoising strength: 1.0"),
    ("multiline_prompt", "line one,\nline two\n  indented three  \nNegative prompt: neg one\nneg two\n" + BASE),
    ("multiline_negative_blank", "p\nNegative prompt: a\n\nb\n" + BASE),
    ("negative_only", "Negative prompt: only negative\n" + BASE),
    ("empty_prompt", "\n" + BASE),
    ("empty_text", ""),
    ("only_prompt", "just a prompt, with commas: and colons"),
    ("two_params_only", "a cat\nSteps: 20, Seed: 5"),
    ("three_params", "a cat\nSteps: 20, Seed: 5, Size: 64x64"),
    ("params_no_prompt", BASE),
    ("quoted_ti_hashes", 'a <lora:x:1> emb1\n' + BASE + ', Lora hashes: "x: 0123456789ab", TI hashes: "emb1: 1a2b3c4d5e6f, emb2: abcdef012345", Version: v1.7.0'),
    ("quoted_escapes", 'a\n' + BASE + ', Hires prompt: "a \\"quoted\\" prompt, with comma\\nand newline", Hires negative prompt: "c:\\\\path\\\\x"'),
    ("quoted_unicode_escape", 'a\n' + BASE + ', Template: "caf\\u00e9, na\\u00efve: x", Other: "tab\\there, ok"'),
    ("quoted_invalid_json", 'a\n' + BASE + ', Bad: "unterminated \\q, x", Next: 1'),
    ("quoted_then_garbage", 'a\n' + BASE + ', Weird: "a"b, Next: 2'),
    ("single_quote_char", 'a\n' + BASE + ', Q: ", R: 1'),
    ("empty_value", "a\nSteps: 20, Model: , Seed: 1, Size: 512x512"),
    ("empty_quoted", 'a\n' + BASE + ', E: "", F: x'),
    ("unicode_prompt", "ein Hund, café, 猫, 🐱 emoji\nNegative prompt: schlecht, ぼやけた\n" + BASE + ", Model: モデル"),
    ("unicode_key", "a\n" + BASE + ", Größe Faktor: 2, 模型: x"),
    ("old_sampler_name", "a\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689, Model: sd15, Version: v1.6.0"),
    ("old_sampler_karras_sde", "a\nSteps: 25, Sampler: DPM++ SDE Karras, CFG scale: 6, Seed: 1, Size: 512x768, Clip skip: 2, ENSD: 31337"),
    ("hires_fields", "a\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 2, Size: 512x512, Model hash: aa, Denoising strength: 0.7, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, Version: v1.10.1"),
    ("hires_resize", "a\n" + BASE + ", Denoising strength: 0.7, Hires resize: 1024x1024, Hires upscaler: R-ESRGAN 4x+, Hires sampler: Euler, Hires schedule type: Karras, Hires CFG Scale: 5"),
    ("first_pass_size", "a\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x768, First pass size: 512x384, Denoising strength: 0.7"),
    ("first_pass_size_zero", "a\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x768, First pass size: 0x0, Denoising strength: 0.7"),
    ("first_pass_size_no_size", "a\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, First pass size: 0x0"),
    ("variation_seed", "a\n" + BASE + ", Variation seed: 42, Variation seed strength: 0.3, Seed resize from: 768x512"),
    ("rng_cpu", "a\n" + BASE + ", RNG: CPU, Version: v1.10.1"),
    ("clip_skip", "a\n" + BASE + ", Clip skip: 2"),
    ("hypernet", "a\n" + BASE + ", Hypernet: anime (abcdef12), Hypernet strength: 0.5"),
    ("hypernet_default_strength", "a\n" + BASE + ", Hypernet: anime"),
    ("version_old_brackets", "[a:b:5] cat\nSteps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1, Size: 512x512, Version: v1.5.1"),
    ("version_git_describe", "a\n" + BASE + ", Version: v1.6.0-2-g4afaaf8a"),
    ("version_tsnr_boundary", "a\n" + BASE + ", Version: v1.7.0-225-gabcdef"),
    ("version_tsnr_before", "a\n" + BASE + ", Version: v1.7.0-224-gabcdef"),
    ("version_refiner", "a\n" + BASE + ", Refiner: sdxl_refiner [7440042bbd], Refiner switch at: 0.8, Version: v1.7.0"),
    ("version_forge", "a\n" + BASE + ", Version: f2.0.1v1.10.1-previous-519-g44eb4ea8"),
    ("version_rc", "a\n" + BASE + ", Version: v1.6.0-RC-28-gabc"),
    ("version_garbage", "a\n" + BASE + ", Version: banana"),
    ("fp8", "a\n" + BASE + ", FP8 weight: Enable for SDXL, Cache FP16 weight for LoRA: True"),
    ("fp8_no_cache", "a\n" + BASE + ", FP8 weight: Enable"),
    ("key_with_slash_dash", "a\n" + BASE + ", ControlNet 0: \"Module: canny, Model: control_sd15 [fef5e48e], Weight: 1\", Face restoration: CodeFormer, Token merging ratio: 0.5, Sde-x/y: 3"),
    ("single_char_key", "a\n" + BASE + ", A: 1, BB: 2"),
    ("no_space_after_comma", "a\nSteps: 20,Sampler: Euler,CFG scale: 7,Seed: 1"),
    ("extra_spaces", "a\nSteps:   20 ,  Sampler: Euler a  , CFG scale:7, Seed: 1  "),
    ("trailing_comma", "a\n" + BASE + ","),
    ("crlf", "a cat\r\nNegative prompt: dog\r\n" + BASE),
    ("surrounding_whitespace", "\n\n   a cat  \n" + BASE + "  \n\n"),
    ("duplicate_keys", "a\nSteps: 20, Sampler: Euler, Steps: 30, Seed: 1"),
    ("bare_word_param", "a\n" + BASE + ", Tiling, NGMS: 1"),
    ("size_like_value", "a\n" + BASE + ", Seed resize from: -1x-1, Odd: 12x"),
    ("negative_prompt_in_middle", "Negative prompt: first\nsecond line mentions Negative prompt: again\n" + BASE),
    ("negative_prompt_no_space", "p\nNegative prompt:tight\n" + BASE),
    ("colons_in_prompt_last_line", "a: b, c: d, e: f"),
    ("emphasis", "a\n" + BASE + ", Emphasis: No norm, Schedule type: Karras, Schedule max sigma: 14.6, Schedule min sigma: 0.03, Schedule rho: 7"),
    ("inpaint_fields", "a\n" + BASE + ", Mask blur: 8, Mask mode: Inpaint not masked, Masked content: fill, Inpaint area: Only masked, Masked area padding: 64, Denoising strength: 0.5"),
    ("novelai_like", "masterpiece, best quality\nSteps: 28, Sampler: k_euler_ancestral, CFG scale: 11, Seed: 2435462381, Size: 512x768"),
    ("control_char", "a\x01b\n" + BASE + ', Ctl: "x\\u0001y, z"'),
    ("tab_in_params", "a\nSteps: 20,\tSampler: Euler,\tCFG scale: 7"),
    ("space_class_1c", "a\x1c\nSteps: 20, Sampler: Euler, Seed: 1\x1c"),
    ("unicode_digits_size", "a\nSteps: 20, Sampler: Euler, Seed: 1, Size: ٥١٢x٥١٢"),
    ("json_size", 'a\nSteps: 20, Sampler: Euler, Seed: 1, Size: "512x512\\n"'),
]

# Writer cases: the values create_infotext reads from `p` and `opts`, as A1111's UI hands them
# in (gradio sends integral slider values as JSON integers, so CFG 7 is the int 7).
WRITE_CASES = [
    ("txt2img_default", dict(prompt="a photo of realbenny-t2 as a pixar character", negative_prompt="blurry, lowres", steps=30, sampler="LMS", scheduler="Automatic", cfg_scale=7, seed=3711471449, width=512, height=512, model_hash="7460a6fa", model="v1-5-pruned-emaonly", version="v1.10.1")),
    ("no_negative", dict(prompt="a cat", negative_prompt="", steps=20, sampler="Euler a", scheduler="Automatic", cfg_scale=7.5, seed=1, width=512, height=768)),
    ("cfg_float_seven", dict(prompt="a cat", negative_prompt="", steps=20, sampler="Euler", scheduler="Karras", cfg_scale=7.0, seed=1, width=512, height=512)),
    ("img2img_mask", dict(prompt="a cat", negative_prompt="dog", steps=30, sampler="DPM++ 2M", scheduler="Karras", cfg_scale=7, seed=12345, width=768, height=512, model_hash="6ce0161689", model="sd15", denoising_strength=0.75, mask_blur=4, version="v1.10.1")),
    ("variation", dict(prompt="a", negative_prompt="", steps=20, sampler="Euler", scheduler="Automatic", cfg_scale=7, seed=5, width=512, height=512, subseed=42, subseed_strength=0.3, seed_resize_from_w=768, seed_resize_from_h=512)),
    ("variation_zero_strength", dict(prompt="a", negative_prompt="", steps=20, sampler="Euler", scheduler="Automatic", cfg_scale=7, seed=5, width=512, height=512, subseed=42, subseed_strength=0, seed_resize_from_w=-1, seed_resize_from_h=-1)),
    ("clip_skip_rng", dict(prompt="a", negative_prompt="", steps=20, sampler="Euler", scheduler="Automatic", cfg_scale=7, seed=5, width=512, height=512, clip_skip=2, randn_source="CPU", eta_noise_seed_delta=31337)),
    ("clip_skip_one_gpu", dict(prompt="a", negative_prompt="", steps=20, sampler="Euler", scheduler="Automatic", cfg_scale=7, seed=5, width=512, height=512, clip_skip=1, randn_source="GPU")),
    ("multiline_and_quotes", dict(prompt="line one\nline two, \"quoted\"", negative_prompt="neg: x\ny", steps=20, sampler="DDIM", scheduler="Automatic", cfg_scale=7, seed=5, width=512, height=512, model="model, with comma", extra=[("TI hashes", "emb1: 1a2b3c4d5e6f, emb2: abcdef012345"), ("Template", "a photo of [name]\twith tab")])),
    ("unicode_values", dict(prompt="café 猫", negative_prompt="ぼやけた", steps=20, sampler="Euler", scheduler="Automatic", cfg_scale=7, seed=5, width=512, height=512, model="モデル: v2", extra=[("Größe", "x")])),
    ("hires", dict(prompt="a", negative_prompt="", steps=20, sampler="DPM++ 2M", scheduler="Karras", cfg_scale=7, seed=2, width=512, height=512, model_hash="aa", denoising_strength=0.7, extra=[("Hires upscale", 2), ("Hires steps", 10), ("Hires upscaler", "Latent")], version="v1.10.1")),
    ("small_and_large_floats", dict(prompt="a", negative_prompt="", steps=20, sampler="Euler", scheduler="Automatic", cfg_scale=0.00001, seed=5, width=512, height=512, denoising_strength=1e16, subseed=1, subseed_strength=1e-4)),
    ("seed_zero_empty_prompt", dict(prompt="", negative_prompt="", steps=1, sampler="Euler", scheduler="Automatic", cfg_scale=1, seed=0, width=64, height=64)),
    ("key_equals_value", dict(prompt="a", negative_prompt="", steps=20, sampler="Euler", scheduler="Automatic", cfg_scale=7, seed=5, width=512, height=512, extra=[("Tiling2", "Tiling2"), ("User", "bob")], version="v1.10.1")),
]


# ---------------------------------------------------------------------------------------------
# Stubs for what infotext_utils imports for the UI.

class _Opts:
    # A1111 defaults (modules/shared_options.py) for the options the parser reads.
    infotext_styles = "Ignore"
    use_old_hires_fix_width_height = False
    auto_backcompat = True
    infotext_skip_pasting = []


def old_hires_fix_first_pass_dimensions(width, height):
    """modules/processing.py, verbatim (A1111 v1.10): old algorithm for auto-calculating first pass size"""

    desired_pixel_count = 512 * 512
    actual_pixel_count = width * height
    scale = math.sqrt(desired_pixel_count / actual_pixel_count)
    width = math.ceil(scale * width / 64) * 64
    height = math.ceil(scale * height / 64) * 64

    return width, height


def load_a1111(root):
    modules_dir = os.path.join(root, "modules")
    pkg = types.ModuleType("modules")
    pkg.__path__ = [modules_dir]
    sys.modules["modules"] = pkg

    gr = types.ModuleType("gradio")
    gr.update = lambda **kw: {"__type__": "update", **kw}
    gr.components = types.SimpleNamespace(Component=object)
    gr.Button = gr.Gallery = gr.Dropdown = object
    sys.modules["gradio"] = gr

    stubs = {
        "paths": dict(data_path="/nonexistent"),
        "shared": dict(opts=_Opts(), cmd_opts=types.SimpleNamespace(hide_ui_dir_config=True)),
        "ui_tempdir": {},
        "script_callbacks": {},
        "processing": dict(old_hires_fix_first_pass_dimensions=old_hires_fix_first_pass_dimensions),
    }
    for name, attrs in stubs.items():
        m = types.ModuleType(f"modules.{name}")
        m.__dict__.update(attrs)
        sys.modules[f"modules.{name}"] = m
        setattr(pkg, name, m)

    versions = importlib.import_module("modules.infotext_versions")
    pkg.infotext_versions = versions
    utils = importlib.import_module("modules.infotext_utils")
    return utils


# ---------------------------------------------------------------------------------------------
# The writer: create_infotext's dict and its last three lines.

def create_infotext_like(utils, f):
    """`modules/processing.py` `create_infotext` (v1.10) with `p`'s fields taken from `f`.

    Same keys in the same order with the same None rules; options at A1111's defaults
    (model hash and name shown, VAE hash/name not, version added when given)."""
    subseed_strength = f.get("subseed_strength", 0)
    sw, sh = f.get("seed_resize_from_w", -1), f.get("seed_resize_from_h", -1)
    clip_skip = f.get("clip_skip", 1)
    randn_source = f.get("randn_source", "GPU")
    ensd = f.get("eta_noise_seed_delta", 0)
    extra = {}
    if "denoising_strength" in f:
        extra["Denoising strength"] = f["denoising_strength"]
    if "mask_blur" in f:
        extra["Mask blur"] = f["mask_blur"]
    extra.update(dict(f.get("extra", [])))

    generation_params = {
        "Steps": f["steps"],
        "Sampler": f["sampler"],
        "Schedule type": f["scheduler"],
        "CFG scale": f["cfg_scale"],
        "Image CFG scale": None,
        "Seed": f["seed"],
        "Face restoration": None,
        "Size": f"{f['width']}x{f['height']}",
        "Model hash": f.get("model_hash"),
        "Model": f.get("model"),
        "FP8 weight": None,
        "Cache FP16 weight for LoRA": None,
        "VAE hash": None,
        "VAE": None,
        "Variation seed": (None if subseed_strength == 0 else f["subseed"]),
        "Variation seed strength": (None if subseed_strength == 0 else subseed_strength),
        "Seed resize from": (None if sw <= 0 or sh <= 0 else f"{sw}x{sh}"),
        "Denoising strength": extra.get("Denoising strength"),
        "Conditional mask weight": None,
        "Clip skip": None if clip_skip <= 1 else clip_skip,
        "ENSD": ensd if ensd != 0 else None,
        "Token merging ratio": None,
        "Token merging ratio hr": None,
        "Init image hash": None,
        "RNG": randn_source if randn_source != "GPU" else None,
        "Tiling": None,
        **extra,
        "Version": f.get("version"),
        "User": None,
    }
    # The last lines of create_infotext, verbatim.
    prompt_text = f["prompt"]
    negative_prompt = f["negative_prompt"]
    generation_params_text = ", ".join([k if k == v else f'{k}: {utils.quote(v)}' for k, v in generation_params.items() if v is not None])

    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""

    text = f"{prompt_text}{negative_prompt_text}\n{generation_params_text}".strip()
    return text, generation_params


def rust_fields(f, generation_params):
    """The same parameters as `sd_core::infotext::GenerationParameters` JSON (serde names),
    holding exactly the keys create_infotext wrote (None ones left out)."""
    g = {k: v for k, v in generation_params.items() if v is not None}
    out = {"prompt": f["prompt"], "negative_prompt": f["negative_prompt"]}
    typed = {
        "Steps": "steps", "Sampler": "sampler", "Schedule type": "schedule_type", "CFG scale": "cfg_scale",
        "Seed": "seed", "Model hash": "model_hash", "Model": "model", "Variation seed": "variation_seed",
        "Variation seed strength": "variation_seed_strength", "Denoising strength": "denoising_strength",
        "Clip skip": "clip_skip", "ENSD": "ensd", "RNG": "rng", "Mask blur": "mask_blur", "Version": "version",
    }
    extra, layout = [], []
    for k, v in g.items():
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
            # Rust prints an integral f64 as A1111's UI does (`7`); a Python float 7.0 prints
            # `7.0`, which the Rust side is told through `layout` (the spelling to keep).
            layout.append([k, str(v)])
        if k == "Size":
            out["width"], out["height"] = f["width"], f["height"]
        elif k == "Seed resize from":
            out["seed_resize_from"] = [f["seed_resize_from_w"], f["seed_resize_from_h"]]
        elif k in typed:
            out[typed[k]] = v
        else:
            extra.append([k, str(v)])
    out["extra"] = extra
    if layout:
        out["layout"] = layout
    return out


def raw_pairs(utils, lastline):
    """The key/value pairs parse_generation_parameters reads from the last line, in dict order,
    before it splits sizes and adds defaults (its own loop, minus the size split)."""
    d = {}
    for k, v in utils.re_param.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = utils.unquote(v)
            d[k] = v
        except Exception:
            pass
    return d


def a1111_rewrite(utils, text):
    """What create_infotext's formatting makes of a parsed infotext: the prompt and negative
    prompt parse_generation_parameters found, and the last line's pairs in order."""
    res = utils.parse_generation_parameters(text)
    *_, lastline = text.strip().split("\n")
    if len(utils.re_param.findall(lastline)) < 3:
        lastline = ""
    g = raw_pairs(utils, lastline)
    generation_params_text = ", ".join([k if k == v else f'{k}: {utils.quote(v)}' for k, v in g.items() if v is not None])
    negative_prompt = res["Negative prompt"]
    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    prompt_text = res["Prompt"] if "Hypernet" not in g else None
    if prompt_text is None:
        return None  # the parser appended <hypernet:...> to the prompt: no faithful rewrite
    return f"{prompt_text}{negative_prompt_text}\n{generation_params_text}".strip()


# ---------------------------------------------------------------------------------------------
# PNG files written by PIL as A1111 writes them.

def png_cases(out_dir):
    from PIL import Image, PngImagePlugin

    img = Image.new("RGB", (4, 3))
    img.putdata([(i * 20 % 256, i * 50 % 256, i * 90 % 256) for i in range(12)])
    latin = "a photo of a cat, café\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 4x3"
    uni = "猫の写真, 🐱\nNegative prompt: ぼやけた\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 4x3"
    specs = [
        ("pil_text.png", [("parameters", latin, False)]),
        ("pil_itxt.png", [("parameters", uni, False)]),
        ("pil_ztxt.png", [("Software", "x", False), ("parameters", latin, True)]),
        ("pil_itxt_zip.png", [("parameters", uni, True), ("Comment", "other chunk", False)]),
        ("pil_no_params.png", [("Software", "nothing here", False)]),
    ]
    cases = []
    for name, chunks in specs:
        info = PngImagePlugin.PngInfo()
        for k, v, z in chunks:
            info.add_text(k, str(v), zip=z)
        buf = io.BytesIO()
        img.save(buf, format="PNG", pnginfo=info)
        data = buf.getvalue()
        with open(os.path.join(out_dir, name), "wb") as fh:
            fh.write(data)
        back = Image.open(io.BytesIO(data))
        back.load()
        cases.append({"file": name, "parameters": back.info.get("parameters"),
                      "pixels": [list(p) for p in getattr(back, "get_flattened_data", back.getdata)()], "size": list(back.size)})
    return cases


# ---------------------------------------------------------------------------------------------

def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in obj) + "\n]\n")
    print(f"wrote {len(obj)} cases to {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a1111", help="directory holding modules/infotext_utils.py and modules/infotext_versions.py")
    ap.add_argument("--out", default="fixtures/infotext")
    args = ap.parse_args()
    if not args.a1111:
        ap.error("--a1111 is required")
    utils = load_a1111(args.a1111)
    os.makedirs(args.out, exist_ok=True)

    parse = []
    for name, text in PARSE_CASES:
        res = utils.parse_generation_parameters(text)
        rewrite = a1111_rewrite(utils, text)
        parse.append({"name": name, "text": text, "a1111": [[k, v] for k, v in res.items()],
                      "rewrite": rewrite, "round_trips": rewrite == text})
    dump(os.path.join(args.out, "parse.json"), parse)

    write = []
    for name, f in WRITE_CASES:
        text, g = create_infotext_like(utils, f)
        write.append({"name": name, "params": rust_fields(f, g), "text": text,
                      "a1111": [[k, v] for k, v in utils.parse_generation_parameters(text).items()]})
    dump(os.path.join(args.out, "write.json"), write)

    dump(os.path.join(args.out, "png.json"), png_cases(args.out))


if __name__ == "__main__":
    main()
