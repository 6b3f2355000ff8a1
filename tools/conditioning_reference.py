#!/usr/bin/env python3
"""Reference data for `sd-core`'s `conditioning` module, produced by AUTOMATIC1111's own code.

What runs is A1111's real prompt-to-conditioning logic, loaded from a checkout given with
`--a1111`:

* `modules/sd_hijack_clip.py` (imported whole): `FrozenCLIPEmbedderWithCustomWords(Base)`:
  `tokenize_line` (75-token chunks, comma backtrack, BREAK, embeddings), `process_texts`,
  `forward` (batching of chunk i over the texts, `empty_chunk` padding), `process_tokens`
  (SD2 padding after the first EOS), `encode_with_transformers` (CLIP skip);
* `modules/sd_hijack_open_clip.py` (imported whole): `FrozenOpenCLIPEmbedderWithCustomWords`;
* `modules/sd_emphasis.py` (imported whole): the "Original" emphasis;
* `modules/prompt_parser.py` (imported whole): `parse_prompt_attention`,
  `get_learned_conditioning`, `get_multicond_learned_conditioning`, `reconstruct_cond_batch`,
  `reconstruct_multicond_batch`;
* from `modules/sd_hijack.py` the class `EmbeddingsWithFixes`, from
  `modules/textual_inversion/textual_inversion.py` the classes `Embedding` and
  `EmbeddingDatabase` (`register_embedding`, `find_embedding_at_position`), and from
  `modules/sd_samplers_cfg_denoiser.py` `pad_cond` and `CFGDenoiser.pad_cond_uncond[_v0]`:
  these are taken out of their files by name (with `ast`) because the rest of those files
  imports half of the web UI. A full checkout works; so does a folder holding just those
  classes (what the committed fixtures were made from, see below).

Only `modules.shared` (the options and `sd_model`), `modules.devices`, and OpenCLIP's tokenizer
are stubbed, with the settings A1111 ships with (emphasis "Original", comma backtrack 20).

The text encoders are transformers' `CLIPTextModel` loaded from the tiny fixtures. SD 1.x:
A1111 wraps `FrozenCLIPEmbedder`, whose `.transformer` *is* a `CLIPTextModel`, so it is used as
is. SD 2.x: A1111 wraps ldm's `FrozenOpenCLIPEmbedder` (`layer="penultimate"`); `open_clip` is
not installed here, so its `encode_with_transformer` is stood in for by the tiny-sd2 diffusers
text encoder, which holds exactly the OpenCLIP layers before the penultimate output (the LDM
single file is that plus one unused layer, see tools/make_fixtures.py), followed by its
final layer norm (`ln_final`); and OpenCLIP's `SimpleTokenizer` by the tiny-sd2 tokenizer
(same BPE; `<start_of_text>`/`<end_of_text>` are its BOS/EOS).

Version used for the committed fixtures: stable-diffusion-webui master
(sd_hijack_clip.py 00e09382cd85c77ac35545c7264855823dfc2eb1, sd_emphasis.py
f8391b8a8ff61bf7ebcddc9b387e6c2f206ed056, prompt_parser.py 28bd8e142d5f77b71ae8d7d7140b5da1b3a49906,
sd_hijack.py b55127bbd4071c89f3a322b561ff28668ed2eac2, textual_inversion.py
22ecb78b51f7e6f0234cbc0efbde4ee9a2dc466f, sd_samplers_cfg_denoiser.py
72632242f7d612c7cb1c1b0b9f86ffcbfeb4e1e8), torch 2.15.0, transformers 5.23.0, lark 1.x.

Usage:
    tools/.venv/bin/python tools/conditioning_reference.py --a1111 /path/to/stable-diffusion-webui \\
        [--out fixtures/conditioning]

Writes `cases.json` (inputs, and A1111's chunks: tokens, weights, fixes, token counts) and
`tensors.safetensors` (embedding vectors and every output tensor, float32).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

REPO = Path(__file__).resolve().parent.parent

# A1111's defaults (modules/shared_options.py) for every option the code reads.
OPTS = dict(
    emphasis="Original",
    comma_padding_backtrack=20,
    CLIP_stop_at_last_layers=1,
    use_old_emphasis_implementation=False,
    textual_inversion_add_hashes_to_infotext=True,
    sdxl_clip_l_skip=False,
)

# Fake textual-inversion embeddings: names that take several tokens in the tiny vocabulary, and
# two that share their first token (so the longest-first candidate order matters).
EMBEDDINGS = [("realbenny-t2", 3), ("realbenny", 1)]

WORDS = "red cat on a blue hat with green eyes under the tall tree near old house".split()


def words(n: int, start: int = 0) -> str:
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


# (name, texts encoded together as one batch, clip skip, models whose output tensor is stored).
# Texts of one batch are what A1111 encodes together: the scheduled texts of one prompt. Every
# case's chunks are stored; output tensors only where they test the encoding (the fixture budget
# is ~500 KB, 9.6 KB per chunk).
BOTH, SD1, NONE = ("tiny-sd1", "tiny-sd2"), ("tiny-sd1",), ()
CASES = [
    ("plain", ["a photo of a cat"], 1, BOTH),
    ("weighted", ["a (photo:1.3) of a [cat], (dog:0.5) and (((hat)))"], 1, BOTH),
    ("nested", ["((a (cat:1.5) in [[a hat]] (x:0)) and [y)"], 1, SD1),
    ("long2", [f"a photo of {words(60)} (and more:1.2) {words(20, 3)}"], 1, NONE),
    ("long3", [f"{words(70)} [{words(40, 5)}] {words(50, 7)}"], 1, BOTH),
    ("break", ["a cat BREAK a (dog:1.2) hat"], 1, SD1),
    ("break_twice", ["a cat BREAK a (dog:1.2) BREAK BREAK hat BREAK"], 1, NONE),
    ("comma_backtrack", [f"{words(62)}, {words(30, 2)}"], 1, NONE),
    ("comma_too_far", [f"{words(40)}, {words(60, 1)}"], 1, NONE),
    ("comma_at_boundary", [f"{words(74)}, {words(10, 4)}"], 1, NONE),
    ("comma_weighted", [f"{words(60)}, ({words(30, 2)}:1.2), {words(5)}"], 1, NONE),
    ("embedding", ["a photo of realbenny-t2 with realbenny, (realbenny:1.2) [realbenny-t2]"], 1, BOTH),
    ("embedding_straddle", [f"{words(73)} realbenny-t2 in a hat"], 1, SD1),
    ("embedding_break", ["realbenny BREAK realbenny-t2"], 1, NONE),
    ("empty", [""], 1, BOTH),
    ("batch", ["a (cat:1.4)", f"a dog {words(80)}", "a (cat:1.4)"], 1, SD1),
    ("skip2_plain", ["a photo of a cat"], 2, BOTH),
    ("skip2_weighted", [f"a (photo:1.3) of realbenny-t2 {words(80)}"], 2, SD1),
]

# Multicond: (name, prompts, negative prompts, steps, steps to reconstruct at, models). The AND
# parts have different chunk counts (reconstruct_multicond_batch pads them), so do cond and
# uncond (the pad_cond_uncond options).
MULTICOND = [
    ("multicond", [f"a [cat:dog:0.5] [x|y] AND {words(80)} (hat:1.2):0.5"],
     ["blurry, (ugly:1.3)"], 10, [0, 6], SD1),
]


def extract(path: Path, names: list[str], namespace: dict) -> dict:
    """Executes only the top-level classes and functions called `names` of A1111's file `path`
    in `namespace`, methods of a class restricted to `names` too when given as `Class.method`."""
    tree = ast.parse(path.read_text(), str(path))
    wanted = {n.split(".")[0] for n in names}
    body = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in wanted:
            methods = [n.split(".", 1)[1] for n in names if n.startswith(node.name + ".")]
            if methods and isinstance(node, ast.ClassDef):
                node.body = [m for m in node.body
                             if isinstance(m, ast.FunctionDef) and m.name in methods]
                node.bases = []
            body.append(node)
    missing = wanted - {n.name for n in body}
    if missing:
        raise SystemExit(f"{path}: no {sorted(missing)}")
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


def install_stubs(a1111: Path, open_clip_tokenizer) -> None:
    """`modules` as a package over A1111's folder, with `shared`, `devices`, `sd_hijack`,
    `textual_inversion.textual_inversion` and `open_clip.tokenizer` stubbed or extracted."""
    pkg = types.ModuleType("modules")
    pkg.__path__ = [str(a1111 / "modules")]
    sys.modules["modules"] = pkg

    shared = types.ModuleType("modules.shared")
    shared.opts = SimpleNamespace(**OPTS)
    shared.sd_model = None
    sys.modules["modules.shared"] = pkg.shared = shared

    devices = types.ModuleType("modules.devices")
    devices.device = torch.device("cpu")
    devices.cond_cast_unet = lambda x: x
    devices.torch_npu_set_device = lambda: None
    sys.modules["modules.devices"] = pkg.devices = devices

    hijack = types.ModuleType("modules.sd_hijack")
    hijack.torch, hijack.devices = torch, devices
    extract(a1111 / "modules/sd_hijack.py", ["EmbeddingsWithFixes"], hijack.__dict__)
    sys.modules["modules.sd_hijack"] = pkg.sd_hijack = hijack

    ti = types.ModuleType("modules.textual_inversion.textual_inversion")
    ti.torch, ti.shared = torch, shared
    extract(a1111 / "modules/textual_inversion/textual_inversion.py",
            ["Embedding", "EmbeddingDatabase"], ti.__dict__)
    sys.modules["modules.textual_inversion.textual_inversion"] = ti

    cfg = types.ModuleType("modules.sd_samplers_cfg_denoiser")
    cfg.torch, cfg.shared = torch, shared
    extract(a1111 / "modules/sd_samplers_cfg_denoiser.py",
            ["pad_cond", "CFGDenoiser.pad_cond_uncond", "CFGDenoiser.pad_cond_uncond_v0"],
            cfg.__dict__)
    sys.modules["modules.sd_samplers_cfg_denoiser"] = cfg

    oc = types.ModuleType("open_clip")
    oc_tok = types.ModuleType("open_clip.tokenizer")
    oc_tok._tokenizer = open_clip_tokenizer
    oc.tokenizer = oc_tok
    sys.modules["open_clip"], sys.modules["open_clip.tokenizer"] = oc, oc_tok


class OpenClipTokenizerStandIn:
    """OpenCLIP's `SimpleTokenizer` interface (`encoder`, `encode`) over a CLIP BPE tokenizer."""

    def __init__(self, hf: CLIPTokenizer):
        self.hf = hf
        self.encoder = dict(hf.get_vocab())
        self.encoder["<start_of_text>"] = hf.bos_token_id
        self.encoder["<end_of_text>"] = hf.eos_token_id

    def encode(self, text):
        return self.hf(text, add_special_tokens=False)["input_ids"]


def build(model: str, sd_hijack_clip, sd_hijack_open_clip, hijack_mod):
    folder = REPO / "fixtures" / model
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    text_model = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=torch.float32).eval()
    if not hasattr(text_model, "text_model"):
        # transformers 5 flattened `CLIPTextModel.text_model` (transformers 4, which A1111 pins,
        # has it): the same modules under the name A1111 uses, without registering a submodule.
        object.__setattr__(text_model, "text_model", text_model)
    hijack = SimpleNamespace(fixes=None, embedding_db=None, extra_generation_params={})
    embeddings = text_model.text_model.embeddings
    embeddings.token_embedding = hijack_mod.EmbeddingsWithFixes(embeddings.token_embedding, hijack)
    if model == "tiny-sd1":
        wrapped = SimpleNamespace(tokenizer=tokenizer, transformer=text_model)
        clip = sd_hijack_clip.FrozenCLIPEmbedderWithCustomWords(wrapped, hijack)
    else:
        # ldm's FrozenOpenCLIPEmbedder.encode_with_transformer: token embedding (hijacked),
        # + positions, the layers up to the penultimate output, ln_final.
        wrapped = SimpleNamespace(
            model=SimpleNamespace(token_embedding=embeddings.token_embedding),
            encode_with_transformer=lambda tokens: text_model(input_ids=tokens).last_hidden_state,
        )
        clip = sd_hijack_open_clip.FrozenOpenCLIPEmbedderWithCustomWords(wrapped, hijack)
    return clip, hijack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a1111", type=Path, required=True, help="stable-diffusion-webui folder")
    parser.add_argument("--out", type=Path, default=REPO / "fixtures" / "conditioning")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    sd2_tok = CLIPTokenizer.from_pretrained(REPO / "fixtures/tiny-sd2/tokenizer")
    install_stubs(args.a1111.resolve(), OpenClipTokenizerStandIn(sd2_tok))
    shared = sys.modules["modules.shared"]
    hijack_mod = sys.modules["modules.sd_hijack"]
    ti = sys.modules["modules.textual_inversion.textual_inversion"]
    cfg = sys.modules["modules.sd_samplers_cfg_denoiser"]
    sd_hijack_clip = importlib.import_module("modules.sd_hijack_clip")
    sd_hijack_open_clip = importlib.import_module("modules.sd_hijack_open_clip")
    prompt_parser = importlib.import_module("modules.prompt_parser")

    g = torch.Generator().manual_seed(1234)
    tensors: dict[str, torch.Tensor] = {}
    vecs = {}
    for name, n in EMBEDDINGS:
        vecs[name] = torch.randn(n, 32, generator=g).half().float()
        tensors[f"embedding.{name}"] = vecs[name]
    out = {"embeddings": [{"name": n, "vectors": k} for n, k in EMBEDDINGS], "models": {}}

    for model in ["tiny-sd1", "tiny-sd2"]:
        clip, hijack = build(model, sd_hijack_clip, sd_hijack_open_clip, hijack_mod)
        sd_model = SimpleNamespace(cond_stage_model=clip,
                                   get_learned_conditioning=lambda texts, c=clip: c(texts))
        shared.sd_model = sd_model
        db = ti.EmbeddingDatabase()
        emb_index = {}
        for i, (name, n) in enumerate(EMBEDDINGS):
            e = ti.Embedding(vecs[name], name)
            e.vectors, e.shape = n, 32
            db.register_embedding(e, sd_model)
            emb_index[name] = i
        hijack.embedding_db = db
        sd_model.cond_stage_model_empty_prompt = clip([""])
        cases = []
        for name, texts, skip, stored in CASES:
            shared.opts.CLIP_stop_at_last_layers = skip
            lines = []
            for text in texts:
                chunks, count = clip.tokenize_line(text)
                lines.append({
                    "text": text,
                    "token_count": count,
                    "target_token_count": clip.get_target_prompt_token_count(count),
                    "tokens": [c.tokens for c in chunks],
                    "weights": [c.multipliers for c in chunks],
                    "fixes": [[[f.offset, emb_index[f.embedding.name]] for f in c.fixes]
                              for c in chunks],
                })
            if model in stored:
                with torch.no_grad():
                    tensors[f"{model}.{name}"] = clip(texts).contiguous()
            cases.append({"name": name, "clip_skip": skip, "lines": lines})
        shared.opts.CLIP_stop_at_last_layers = 1

        multiconds = []
        for name, prompts, negatives, steps, at, stored in MULTICOND:
            if model not in stored:
                continue
            with torch.no_grad():
                c = prompt_parser.get_multicond_learned_conditioning(sd_model, prompts, steps)
                uc = prompt_parser.get_learned_conditioning(sd_model, negatives, steps)
                recon = []
                for step in at:
                    conds_list, stacked = prompt_parser.reconstruct_multicond_batch(c, step)
                    uncond = prompt_parser.reconstruct_cond_batch(uc, step)
                    tensors[f"{model}.{name}.cond.{step}"] = stacked.contiguous()
                    tensors[f"{model}.{name}.uncond.{step}"] = uncond.contiguous()
                    if step == at[0]:
                        # cond/uncond of different lengths: the two padding options.
                        denoiser = cfg.CFGDenoiser()
                        pc, pu = denoiser.pad_cond_uncond(stacked, uncond)
                        assert pc is stacked, "the cond is the longer one here"
                        tensors[f"{model}.{name}.pad.uncond"] = pu.clone()
                        _, pu0 = denoiser.pad_cond_uncond_v0(stacked, uncond)
                        tensors[f"{model}.{name}.pad_v0.uncond"] = pu0.clone()
                    recon.append({"step": step, "conds_list": conds_list})
            multiconds.append({"name": name, "prompts": prompts, "negatives": negatives,
                               "steps": steps, "reconstruct": recon})
        out["models"][model] = {"cases": cases, "multicond": multiconds}

    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(out, indent=1)
    # Lists of numbers on one line each (a chunk's 77 tokens is one line).
    text = re.sub(r"\[\s+([-+\d.e,\s]+?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    (args.out / "cases.json").write_text(text + "\n")
    save_file({k: v.float().contiguous() for k, v in tensors.items()},
              args.out / "tensors.safetensors")
    size = sum(v.numel() * 4 for v in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
