"""Fixtures for sd-core's `embeddings` module: embedding files in every layout, made by the real
libraries, and what AUTOMATIC1111's own loader makes of them.

Files (fixtures/embeddings/dir/, a folder laid out like A1111's `embeddings`):
- torch.save of A1111's `Embedding.save` dict (f32 with requires_grad as training saves it,
  f16, a `torch.nn.ParameterDict` as torch 1.11-era files hold, a legacy non-zip file, a
  1024-wide SD 2.x one, one with two terms), diffusers' `learned_embeds.safetensors` (as its
  textual_inversion.py saves it: `{token: [n, dim]}`, metadata {"format": "pt"}) and an old
  `learned_embeds.bin` (`{token: [dim]}`), a kohya `emb_params` bf16 safetensors, an SDXL
  `{clip_l, clip_g}` file;
- images made by A1111's own `image_embedding.py` (`caption_image_overlay`,
  `insert_image_data_embed`, `embedding_to_b64`): one with the `sd-ti-embedding` text chunk and
  the pixel data, one with the pixel data only, a plain picture, a `*.preview.png`;
- an empty file, a truncated `.pt`, a `.txt`.

Then A1111's `EmbeddingDatabase` (its classes executed from the `--a1111` folder, with
`modules.shared` etc. stubbed and `torch.load` wrapped by A1111's `safe.check_pt` as A1111's
`safe.load` does) loads the folder for a 768-wide model; `expected.json` records per file the
name, shape, checksum, step, checkpoint fields, sha256 and the sha256 of the f32 values, and
the database's loaded/skipped names.

`caption_gradient.png`: A1111's `caption_image_overlay` with the text drawing stubbed out (the
gradient alone) on a synthetic 64x48 picture (pixel formula in `synthetic_picture`).

`--verify`: loads what our writer produced (fixtures/embeddings/written_by_rust/, written by
`cargo test -p sd-core --test embeddings -- --ignored write_rust_fixtures`) with
`torch.load(weights_only=True)`, A1111's `safe.check_pt`, A1111's loader, A1111's
`extract_image_data_embed`, and diffusers' `load_textual_inversion` into fixtures/tiny-sd1;
writes verify.json.

Usage (repository root; the --a1111 folder holds A1111's modules/textual_inversion/
{textual_inversion.py, image_embedding.py} and modules/safe.py, unchanged):
    tools/.venv/bin/python tools/embedding_reference.py --a1111 /path/to/stable-diffusion-webui
    tools/.venv/bin/python tools/embedding_reference.py --a1111 /path/to/stable-diffusion-webui --verify

Reproducible byte for byte (fixed seeds; checked by running it twice with torch 2.15, Pillow 13),
except dir/legacy.pt, whose legacy-format storage keys come from Python object ids, and so its
sha256 in expected.json.
"""

import argparse
import ast
import hashlib
import json
import os
import sys
import traceback
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image, ImageDraw, PngImagePlugin
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "embeddings"
DIR = OUT / "dir"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
ERRORS = []
SAFE_CHECK = [False]
TORCH_LOAD = torch.load


def extract(path: Path, names, namespace: dict) -> dict:
    """Executes only the top-level classes/functions `names` of A1111's file in `namespace`."""
    tree = ast.parse(path.read_text(), str(path))
    body = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in names]
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def install(a1111: Path):
    pkg = types.ModuleType("modules")
    pkg.__path__ = [str(a1111 / "modules")]
    sys.modules["modules"] = pkg
    shared = types.ModuleType("modules.shared")
    shared.opts = SimpleNamespace(font=FONT, textual_inversion_print_at_load=True,
                                  save_optimizer_state=False)
    sys.modules["modules.shared"] = pkg.shared = shared
    errors = types.ModuleType("modules.errors")
    errors.report = lambda msg, exc_info=False: ERRORS.append((msg, traceback.format_exc()))
    sys.modules["modules.errors"] = pkg.errors = errors
    tipkg = types.ModuleType("modules.textual_inversion")
    tipkg.__path__ = [str(a1111 / "modules/textual_inversion")]
    sys.modules["modules.textual_inversion"] = tipkg
    import modules.textual_inversion.image_embedding as ie
    import modules.safe as safe

    def a1111_torch_load(path, *args, **kwargs):
        # A1111's safe.load: the restricted-unpickler check, then torch.load (torch 2.1, which
        # A1111 pins, defaults to weights_only=False). The files torch 2.x saves here carry
        # `.format_version`/`byteorder`/`.data/serialization_id` records that safe.py's name
        # check refuses, so the fixtures are loaded as with `--disable-safe-unpickle`; the files
        # our writer produces are checked with it (--verify).
        if SAFE_CHECK[0]:
            safe.check_pt(path, None)
        return TORCH_LOAD(path, *args, weights_only=False, **kwargs)

    torch_ns = SimpleNamespace(**{k: getattr(torch, k) for k in ("float32", "Tensor")})
    torch_ns.load = a1111_torch_load
    import safetensors.torch
    hashes = SimpleNamespace(sha256=lambda fn, title: hashlib.sha256(Path(fn).read_bytes()).hexdigest())
    ns = dict(os=os, torch=torch_ns, safetensors=safetensors, Image=Image, shared=shared,
              devices=SimpleNamespace(device=torch.device("cpu")), errors=errors, hashes=hashes,
              embedding_from_b64=ie.embedding_from_b64,
              extract_image_data_embed=ie.extract_image_data_embed)
    extract(a1111 / "modules/textual_inversion/textual_inversion.py",
            ["Embedding", "DirWithTextualInversionEmbeddings", "EmbeddingDatabase"], ns)
    return ie, safe, ns, shared


def a1111_pt(vec, name, step=None, ckpt=None, ckpt_name=None, params=None):
    return {"string_to_token": {"*": 265}, "string_to_param": params if params is not None else {"*": vec},
            "name": name, "step": step, "sd_checkpoint": ckpt, "sd_checkpoint_name": ckpt_name}


def synthetic_picture(w, h):
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([(x * 7 + y * 3) % 256, (x * y) % 256, (255 - x * 4) % 256], -1).astype(np.uint8)


def make_files(ie):
    DIR.mkdir(parents=True, exist_ok=True)
    (DIR / "diffusers").mkdir(exist_ok=True)
    for p in list(DIR.rglob("*")):
        if p.is_file():
            p.unlink()
    g = torch.Generator().manual_seed(2026)
    r = lambda *s: torch.randn(*s, generator=g) * 0.02

    # A trained A1111 embedding: requires_grad=True as `train_embedding` leaves it; its stored
    # name differs from the file stem (A1111 names .pt files by stem).
    v = r(3, 768).requires_grad_(True)
    torch.save(a1111_pt(v, "realbenny", 500, "a1b2c3d4e5f6", "sd15-tiny"), DIR / "realbenny-t1.pt")
    torch.save(a1111_pt(r(1, 768).half(), "halfemb", 0), DIR / "Half-F16.pt")
    pd = torch.nn.ParameterDict({"*": torch.nn.Parameter(r(2, 768))})
    torch.save(a1111_pt(None, "pdict", 1000, params=pd), DIR / "paramdict.pt")
    torch.save(a1111_pt(r(2, 768), "legacy", 7), DIR / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save(a1111_pt(r(1, 1024), "sd2wide", 3), DIR / "sd2-wide.pt")
    torch.save(a1111_pt(None, "two", params={"*": r(1, 768), "+": r(1, 768)}), DIR / "two-terms.pt")
    # diffusers examples/textual_inversion/textual_inversion.py save_progress():
    save_file({"<cat-toy>": r(1, 768)}, DIR / "diffusers" / "learned_embeds.safetensors", metadata={"format": "pt"})
    torch.save({"<old-token>": r(768)}, DIR / "old-token.bin")
    save_file({"emb_params": r(2, 768).bfloat16()}, DIR / "kohya-bf16.safetensors")
    save_file({"clip_l": r(2, 768).half(), "clip_g": r(2, 1280).half()}, DIR / "sdxl-emb.safetensors")
    (DIR / "empty.pt").write_bytes(b"")
    full = (DIR / "paramdict.pt").read_bytes()
    (DIR / "truncated.pt").write_bytes(full[: len(full) // 2])
    (DIR / "notes.txt").write_text("not an embedding\n")

    # Image embeddings as train_embedding writes them (save_image_with_stored_embedding).
    pic = Image.fromarray(synthetic_picture(128, 96))
    for fname, stored, with_text in (("image-text.png", "img-text-name", True),
                                     ("image-pixels.png", "img-pixels-name", False)):
        data = a1111_pt(r(1, 768).requires_grad_(True), stored, 250, "a1b2c3d4e5f6", "sd15-tiny")
        info = PngImagePlugin.PngInfo()
        if with_text:
            info.add_text("sd-ti-embedding", ie.embedding_to_b64(data))
        cap = ie.caption_image_overlay(pic, f"<{stored}>", "sd15-tiny", "[a1b2c3d4e5f6]", "1v 250s")
        ie.insert_image_data_embed(cap, data).save(DIR / fname, "PNG", pnginfo=info)
    pic.save(DIR / "plain.png")
    pic.save(DIR / "realbenny-t1.preview.png")


def values_sha(vec: torch.Tensor) -> str:
    return hashlib.sha256(vec.detach().float().contiguous().numpy().astype("<f4").tobytes()).hexdigest()


def load_db(ns, shared, folder: Path, tokenizer, width=768):
    shared.sd_model = SimpleNamespace(cond_stage_model=SimpleNamespace(
        tokenize=lambda texts: [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts],
        encode_embedding_init_text=lambda text, n: torch.zeros(n, width)))
    db = ns["EmbeddingDatabase"]()
    db.add_embedding_dir(str(folder))
    ERRORS.clear()
    db.load_textual_inversion_embeddings(force_reload=True)
    return db


def describe(e) -> dict:
    out = {"name": e.name, "file": Path(e.filename).name, "vectors": e.vectors, "shape": e.shape,
           "step": e.step, "sd_checkpoint": e.sd_checkpoint, "sd_checkpoint_name": e.sd_checkpoint_name,
           "sha256": e.hash}
    if isinstance(e.vec, dict):
        out["values_sha256"] = {k: values_sha(v) for k, v in e.vec.items()}
        out["checksum"] = None
    else:
        out["values_sha256"] = values_sha(e.vec)
        out["first_values"] = e.vec.reshape(-1)[:4].tolist()
        out["checksum"] = e.checksum()
    return out


def caption_gradient(ie):
    # caption_image_overlay with its text drawing disabled: only the gradient composite stays.
    orig = ImageDraw.ImageDraw.text
    ImageDraw.ImageDraw.text = lambda *a, **k: None
    try:
        img = ie.caption_image_overlay(Image.fromarray(synthetic_picture(64, 48)), "<t>", "l", "m", "r")
    finally:
        ImageDraw.ImageDraw.text = orig
    img.convert("RGB").save(OUT / "caption_gradient.png")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a1111", type=Path, required=True)
    ap.add_argument("--verify", action="store_true")
    args = ap.parse_args()
    ie, safe, ns, shared = install(args.a1111.resolve())
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(ROOT / "fixtures" / "tiny-sd1" / "tokenizer")
    if args.verify:
        return verify(ie, safe, ns, shared, tok)
    make_files(ie)
    caption_gradient(ie)
    # The LCG of image_embedding.py.
    gen = ie.lcg()
    lcg_first = [next(gen) for _ in range(16)]
    db = load_db(ns, shared, DIR, tok)
    expected = {
        "lcg_first": lcg_first,
        "loaded": [describe(e) for e in db.word_embeddings.values()],
        "skipped": [describe(e) for e in db.skipped_embeddings.values()],
        "errors": sorted(msg.removeprefix("Error loading embedding ") for msg, _ in ERRORS),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(json.dumps({k: [e["name"] for e in v] if k in ("loaded", "skipped") else v
                      for k, v in expected.items()}, indent=1))


def verify(ie, safe, ns, shared, tok):
    src = OUT / "written_by_rust"
    SAFE_CHECK[0] = True
    claims = json.loads((src / "claims.json").read_text())
    report = {}
    for fname, claim in claims.items():
        path = src / fname
        r = report[fname] = {}
        try:
            if path.suffix in (".pt", ".bin"):
                data = torch.load(path, weights_only=True)
                r["torch_load_weights_only"] = "ok"
                r["keys"] = list(data.keys())
                if "string_to_param" in data:
                    t = data["string_to_param"]["*"]
                    r["tensor"] = {"dtype": str(t.dtype), "shape": list(t.shape), "requires_grad": t.requires_grad,
                                   "type": type(t).__name__}
                    r["string_to_token"] = data["string_to_token"]
                    r["meta"] = {k: data[k] for k in ("name", "step", "sd_checkpoint", "sd_checkpoint_name")}
                safe.check_pt(str(path), None)
                r["a1111_safe_check_pt"] = "ok"
            if path.suffix == ".png":
                d = ie.extract_image_data_embed(Image.open(path))
                sha = values_sha(d["string_to_param"]["*"].float())
                r["a1111_extract_image_data_embed"] = {"name": d["name"], "values_sha256": sha,
                                                       "matches_rust_claim": sha == claim["values_sha256"]}
                d = ie.embedding_from_b64(Image.open(path).text["sd-ti-embedding"])
                sha = values_sha(d["string_to_param"]["*"].float())
                r["a1111_embedding_from_b64"] = {"name": d["name"], "values_sha256": sha,
                                                 "matches_rust_claim": sha == claim["values_sha256"]}
        except Exception as exc:  # recorded, not raised: the report says what failed
            r["error"] = f"{type(exc).__name__}: {exc}"
    # A1111's loader over the whole folder, each file's width as its own model width.
    for width in (32, 768):
        db = load_db(ns, shared, src, tok, width)
        for e in list(db.word_embeddings.values()):
            d = describe(e)
            r = report.setdefault(d["file"], {})
            r["a1111_loader"] = {"name": d["name"], "checksum": d["checksum"], "vectors": d["vectors"],
                                 "shape": d["shape"], "step": d["step"],
                                 "values_sha256": d["values_sha256"],
                                 "matches_rust_claim": d["values_sha256"] == claims[d["file"]]["values_sha256"]
                                 and d["checksum"] == claims[d["file"]]["checksum"]}
        for msg, _ in ERRORS:
            report.setdefault("a1111_loader_errors", []).append(msg)
    # diffusers' load_textual_inversion into the tiny SD1 pipeline (hidden size 32).
    from diffusers import StableDiffusionPipeline
    for fname, claim in claims.items():
        if claim["dim"] != 32 or not fname.endswith((".pt", ".bin", ".safetensors")):
            continue
        r = report[fname]
        try:
            pipe = StableDiffusionPipeline.from_pretrained(ROOT / "fixtures" / "tiny-sd1", safety_checker=None)
            token = f"<{Path(fname).stem}>"
            pipe.load_textual_inversion(str(src / fname), token=token)
            toks = [token] + [f"{token}_{i}" for i in range(1, claim["vectors"])]
            ids = pipe.tokenizer.convert_tokens_to_ids(toks)
            rows = pipe.text_encoder.get_input_embeddings().weight[ids].detach()
            r["diffusers_load_textual_inversion"] = {"tokens": toks, "values_sha256": values_sha(rows),
                                                     "matches_rust_claim": values_sha(rows) == claim["values_sha256"]}
        except Exception as exc:
            r["diffusers_load_textual_inversion"] = {"error": f"{type(exc).__name__}: {exc}"}
    (OUT / "verify.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(json.dumps(report, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
