#!/usr/bin/env python3
"""Reference data for `sd_textual_inversion::dataset`, produced by A1111's own code.

Two jobs:

1. `--templates-out DIR --rinongal DIR [--a1111-templates DIR]`: writes the prompt templates
   from the MIT-licensed lists of rinongal/textual_inversion (`ldm/data/personalized.py`,
   `ldm/data/personalized_style.py`), read with `ast` (nothing executed), and, when A1111's
   own template folder is given, prints whether each derived file holds the same lines as
   A1111's (A1111's files are only read and compared, never copied).

2. `--a1111 DIR --out FILE`: runs A1111's `modules/textual_inversion/learn_schedule.py` and
   `modules/textual_inversion/dataset.py` (copied from AUTOMATIC1111/stable-diffusion-webui into
   DIR, OUTSIDE this repository: A1111 is AGPL) with `modules.shared`, `modules.devices` and the
   LDM model stubbed, and writes a JSON fixture: learning-rate schedules (values and errors),
   captions extracted from file names and `.txt` sidecars, `create_text` with shuffle/drop-out
   (every random draw recorded so Rust can replay it), `GroupedBatchSampler` batches, and the
   alpha-channel loss weights of `use_weight`.

Regenerate (byte-for-byte reproducible: fixed seeds, sorted keys):
    tools/.venv/bin/python tools/dataset_reference.py --a1111 /path/to/stable-diffusion-webui \
        --out fixtures/dataset/reference.json
    tools/.venv/bin/python tools/dataset_reference.py --rinongal /path/to/textual_inversion/ldm/data \
        --a1111-templates /path/to/stable-diffusion-webui/textual_inversion_templates \
        --templates-out crates/sd-textual-inversion/templates
"""

import argparse
import ast
import contextlib
import json
import os
import random
import sys
import tempfile
import types

# ---------------------------------------------------------------------------------------------
# 1. Templates from rinongal/textual_inversion (MIT)
# ---------------------------------------------------------------------------------------------


def read_list(path, name):
    """The string list assigned to `name` in a Python file, parsed, not executed."""
    tree = ast.parse(open(path, encoding="utf8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    raise KeyError(f"{name} not in {path}")


def derive_templates(rinongal_dir):
    """Template name -> lines, each derived from the MIT lists by a stated rule."""
    objects = read_list(os.path.join(rinongal_dir, "personalized.py"), "imagenet_templates_small")
    duals = read_list(os.path.join(rinongal_dir, "personalized.py"), "imagenet_dual_templates_small")
    styles = read_list(os.path.join(rinongal_dir, "personalized_style.py"), "imagenet_templates_small")
    # The 27 "photo" templates: the dual list with its second slot (" with {}") removed; the same
    # 27 strings open `imagenet_templates_small` (asserted).
    subject = [d.replace(" with {}", "") for d in duals]
    assert subject == objects[: len(subject)], "dual list and object list disagree"
    subject = [s.replace("{}", "[name]") for s in subject]
    style_suffix = " in the style of {}"
    assert all(s.endswith(style_suffix) for s in styles)
    style_heads = [s[: -len(style_suffix)] for s in styles]
    return {
        "none.txt": ["picture"],
        "subject.txt": subject,
        "subject_filewords.txt": [s + ", [filewords]" for s in subject],
        "style.txt": [h + ", art by [name]" for h in style_heads],
        # Unique heads, sorted, with the file words as the painting's subject.
        "style_filewords.txt": sorted({h + " of [filewords], art by [name]" for h in style_heads}),
        "hypernetwork.txt": [s.replace("[name]", "[filewords]") for s in subject],
        # Ours (A1111 ships no such file): the captions alone.
        "filewords.txt": ["[filewords]"],
    }


def a1111_lines(path):
    # Exactly as dataset.py reads a template: every line, stripped.
    with open(path, "r") as f:
        return [x.strip() for x in f.readlines()]


def write_templates(args):
    derived = derive_templates(args.rinongal)
    os.makedirs(args.templates_out, exist_ok=True)
    for name, lines in derived.items():
        with open(os.path.join(args.templates_out, name), "w", encoding="utf8", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
        if args.a1111_templates:
            ref = os.path.join(args.a1111_templates, name)
            if not os.path.exists(ref):
                print(f"{name}: {len(lines)} lines; A1111 has no such file")
                continue
            theirs = a1111_lines(ref)
            ours = a1111_lines(os.path.join(args.templates_out, name))
            how = "same lines, same order" if ours == theirs else (
                "same line multiset, other order" if sorted(ours) == sorted(theirs) else "DIFFERENT")
            print(f"{name}: {len(lines)} lines; vs A1111 ({len(theirs)} lines): {how}")


# ---------------------------------------------------------------------------------------------
# 2. A1111's code, stubbed
# ---------------------------------------------------------------------------------------------


class Recorder(random.Random):
    """Python's own Random, recording every primitive draw (`below n`, `float`) in order.

    `choice` and `shuffle` call `_randbelow`; `random()` and `choices` call `random`; so the
    log is the complete input of the algorithm and Rust replays it through the same algorithm.
    """

    def __init__(self, seed):
        super().__init__(seed)
        self.log = []

    def _randbelow(self, n):
        v = super()._randbelow(n)
        self.log.append(["below", n, v])
        return v

    def random(self):
        v = super().random()
        self.log.append(["float", v])
        return v


def install_stubs(a1111_dir):
    import torch

    sys.path.insert(0, a1111_dir)
    modules = types.ModuleType("modules")
    modules.__path__ = [os.path.join(a1111_dir, "modules")]
    devices = types.ModuleType("modules.devices")
    devices.cpu = torch.device("cpu")
    devices.autocast = contextlib.nullcontext
    shared = types.ModuleType("modules.shared")
    # shared_options.py defaults: "dataset_filename_word_regex": "", "dataset_filename_join_string": " "
    shared.opts = types.SimpleNamespace(dataset_filename_word_regex="", dataset_filename_join_string=" ")
    shared.state = types.SimpleNamespace(interrupted=False)
    modules.devices, modules.shared = devices, shared
    sys.modules.update({"modules": modules, "modules.devices": devices, "modules.shared": shared})
    for name in ["ldm", "ldm.modules", "ldm.modules.distributions"]:
        sys.modules[name] = types.ModuleType(name)
    dist = types.ModuleType("ldm.modules.distributions.distributions")

    class DiagonalGaussianDistribution:
        pass

    dist.DiagonalGaussianDistribution = DiagonalGaussianDistribution
    sys.modules["ldm.modules.distributions.distributions"] = dist

    # torch >= 2.2 dropped `Sampler.__init__(data_source)`, which A1111's GroupedBatchSampler
    # still calls; restore the old no-op signature.
    if torch.utils.data.Sampler.__init__ is object.__init__:
        torch.utils.data.Sampler.__init__ = lambda self, data_source=None: None

    from modules.textual_inversion import dataset, learn_schedule

    return dataset, learn_schedule, shared


class StubModel:
    """The LDM's encoder, reduced to the latent's shape [1, 4, H/8, W/8]."""

    def encode_first_stage(self, x):
        return x

    def get_first_stage_encoding(self, x):
        import torch

        return torch.zeros(1, 4, x.shape[2] // 8, x.shape[3] // 8)


def schedules(learn_schedule):
    cases = []
    strings = [
        "0.005:100, 1e-3:1000, 1e-5",  # A1111's UI placeholder
        "0.001:100, 0.00001:1000, 1e-5:10000",  # learn_schedule.py docstring
        "0.005", "5e-3", " 0.005 ", "0.1:10", "0.1:10, 0.2:20", "0.1:10, 0.2:-1, 0.3",
        "0.1:-1", "0.1:0, 0.2", "0.1:0", "0.1:5, 0.2:5, 0.3", "0.1:50, 0.2:20, 0.3",
        "0.1:100, 0.2:200", "0.1:1000, 0.2:2000", "0.1:999, 0.2:2000", "0.1:30,, 0.2",
        "0.1:30, ,0.2:60", "", " ", ",", "abc", "0.1:abc", "abc:10", "abc:0", "0.1:1e3",
        "0.1:10.0", "0.1:2:3", "0.1:2:3, 0.5", "0.1, garbage", "0.1:+20, 0.2", "0.1: 20 ,0.2",
        "1_000:10, 0.5", "0.1:1_0, 0.2", "inf", "nan:10, 0.1", "-0.5", ".5:10, 1.:20, 2e-1",
        "0.1:-2, 0.2", "0.1:10,0.2:10", "0.005:100, 1e-3:1000, 1e-5:-1", "1e-3:25", "0.1:7, 0.2:8",
        "0x10", "0.1:0x10", "١٢:10", "0.1:١٢, 0.2", "0.1:-0, 0.2", "0.1:010, 0.2",
    ]
    for s in strings:
        for max_steps, cur in [(1000, 0), (40, 0), (40, 15), (100, 100)]:
            case = {"schedule": s, "max_steps": max_steps, "cur_step": cur}
            try:
                sched = learn_schedule.LearnRateScheduler(s, max_steps, cur, verbose=False)
            except Exception as e:  # noqa: BLE001 - A1111 raises bare Exception/StopIteration
                case["error"] = f"{type(e).__name__}: {e}"
                cases.append(case)
                continue
            case["entries"] = [[r, e] for r, e in sched.schedules.rates]
            # The training loop with gradient_accumulation 1: scheduler.apply(step) before each
            # step, stop when finished; record the rate each trained step uses.
            rates, step = [], cur
            while step < max_steps + 5:
                sched.step(step)
                if sched.finished:
                    break
                rates.append(sched.learn_rate)
                step += 1
            # Run-length encoded, [rate, number of steps], to keep the fixture small.
            runs = []
            for r in rates:
                if runs and (runs[-1][0] == r or (r != r and runs[-1][0] != runs[-1][0])):
                    runs[-1][1] += 1
                else:
                    runs.append([r, 1])
            case["trained_rates"] = runs
            case["final_step"] = step
            cases.append(case)
    return cases


CAPTION_NAMES = [
    "00001-0-a photo of a cat.png", "00012-3-red car, blue sky.png", "1.png", "123-456.png",
    "---x.png", "-- 42 spaced.png", "12 34 five.png", "a-1-b.png", "Ünïcødé 名前.png",
    "x.y.z.png", ".hidden.png", "..png", "with.txt.png", "noext", "00001-0-   tabs\tand  spaces.png",
    "00003-1-a,b, c ,d.png", "١٢٣ arabic digits.png", "sidecar.png", "crlf.png", "empty-sidecar.png",
]
SIDECARS = {
    "sidecar.png": "tag one, tag two,tag three\n",
    "crlf.png": "line1\r\nline2\r\n",
    "empty-sidecar.png": "",
}


def make_png(path, size=(8, 8), mode="RGB", data=None):
    from PIL import Image

    img = Image.new(mode, size)
    if data is not None:
        img.putdata(data)
    img.save(path, format="PNG")


def dataset(ds_mod, shared, tmp, names, sidecars, width, height, use_weight, template_lines, **kw):
    tpl = os.path.join(tmp, "_template.tpl")
    with open(tpl, "w") as f:
        f.write("\n".join(template_lines) + "\n")
    ds = ds_mod.PersonalizedBase(
        data_root=os.path.join(tmp, "data"), width=width, height=height, repeats=1,
        placeholder_token="<tok>", model=StubModel(), cond_model=None, device="cpu",
        template_file=tpl, use_weight=use_weight, **kw)
    return ds


def captions(ds_mod, shared):
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        for n in CAPTION_NAMES:
            make_png(os.path.join(data, n))
        for n, text in SIDECARS.items():
            with open(os.path.join(data, os.path.splitext(n)[0] + ".txt"), "w", encoding="utf8", newline="") as f:
                f.write(text)
        # A directory and a non-image file: A1111 skips whatever PIL cannot open.
        os.makedirs(os.path.join(data, "subdir.png"))
        with open(os.path.join(data, "notes.md"), "w") as f:
            f.write("not an image")
        ds = dataset(ds_mod, shared, tmp, None, None, 8, 8, False, ["x"])
        for e in ds.dataset:
            out[os.path.basename(e.filename)] = e.filename_text
    return out


def create_texts(ds_mod):
    cases = []
    lines = ["a photo of [name], [filewords]", "[filewords] by [name]", "plain [name]", "only [filewords]"]
    texts = ["a, b, c", "solo", "x,y,z,w,v,u", "", " spaced , tags ,", "has [name] inside, t2", "a,b\n"]
    seed = 0
    for shuffle_tags in [False, True]:
        for drop in [0, 0.3, 0.5, 1.0]:
            for t in texts:
                seed += 1
                rec = Recorder(seed)
                ds_mod.random = rec
                obj = types.SimpleNamespace(lines=lines, tag_drop_out=drop, shuffle_tags=shuffle_tags,
                                            placeholder_token="<tok>")
                text = ds_mod.PersonalizedBase.create_text(obj, t)
                cases.append({"lines": lines, "filewords": t, "shuffle_tags": shuffle_tags,
                              "tag_drop_out": drop, "placeholder": "<tok>", "draws": rec.log, "text": text})
    ds_mod.random = random
    return cases


def grouped_batches(ds_mod):
    cases = []
    configs = [([[0, 1, 2, 3, 4, 5, 6]], 2), ([[0, 1, 2, 3, 4, 5, 6]], 3), ([[0, 2, 4], [1, 3], [5, 6, 7, 8]], 2),
               ([[0, 2, 4], [1, 3], [5, 6, 7, 8]], 4), ([[0], [1], [2], [3], [4]], 2), ([[0, 1, 2, 3]], 4),
               ([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11]], 5)]
    for k, (groups, b) in enumerate(configs):
        rec = Recorder(100 + k)
        ds_mod.shuffle, ds_mod.choices = rec.shuffle, rec.choices
        n = sum(len(g) for g in groups)
        src = type("Src", (), {"groups": [list(g) for g in groups], "__len__": lambda self: n})()
        sampler = ds_mod.GroupedBatchSampler(src, b)
        epochs = [list(map(list, sampler)) for _ in range(2)]
        cases.append({"groups": groups, "batch_size": b, "len": len(sampler), "n_rand_batches": sampler.n_rand_batches,
                      "probs": sampler.probs, "draws": rec.log, "epochs": epochs})
    ds_mod.shuffle, ds_mod.choices = random.shuffle, random.choices
    return cases


def alpha_weights(ds_mod, shared):
    import numpy as np

    rng = np.random.RandomState(7)
    images = [
        ("rgba_square.png", "RGBA", (50, 50), 64, 64),
        ("rgba_wide.png", "RGBA", (37, 23), 64, 32),  # latent 4 rows x 8 cols: A1111's w/h swap shows
        ("rgba_tall.png", "RGBA", (20, 41), 16, 40),
        ("la_small.png", "LA", (9, 7), 16, 16),  # upsampling
        ("rgba_same.png", "RGBA", (8, 4), 64, 32),  # alpha already latent-sized (no resampling)
        ("rgb.png", "RGB", (10, 10), 16, 16),  # no alpha: ones
        ("rgba_constant.png", "RGBA", (12, 12), 16, 16),  # constant alpha: A1111 divides 0 by 0
    ]
    out = []
    for name, mode, size, width, height in images:
        w, h = size
        alpha = rng.randint(0, 256, size=w * h).astype(int).tolist()
        if name == "rgba_constant.png":
            alpha = [200] * (w * h)
        if mode == "RGBA":
            data = [(i % 256, 2 * i % 256, 3 * i % 256, a) for i, a in enumerate(alpha)]
        elif mode == "LA":
            data = [(i % 256, a) for i, a in enumerate(alpha)]
        else:
            data = [(i % 256, 1, 2) for i in range(w * h)]
            alpha = None
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "data"))
            make_png(os.path.join(tmp, "data", name), size, mode, data)
            ds = dataset(ds_mod, shared, tmp, None, None, width, height, True, ["x"])
            weight = ds.dataset[0].weight
            assert weight.shape[0] == 4 and all(bool((weight[c] == weight[0]).all()) or bool(weight.isnan().all())
                                                for c in range(4))
            flat = [None if v != v else float(v) for v in weight[0].reshape(-1).tolist()]
        out.append({"name": name, "mode": mode, "width": w, "height": h, "alpha": alpha, "train_width": width,
                    "train_height": height, "latent_shape": list(weight.shape), "weight": flat})
    return out


def finite_json(v):
    """JSON has no NaN/Infinity: write those floats as the strings "nan", "inf", "-inf"."""
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, list):
        return [finite_json(x) for x in v]
    if isinstance(v, dict):
        return {k: finite_json(x) for k, x in v.items()}
    return v


def reference(args):
    ds_mod, learn_schedule, shared = install_stubs(args.a1111)
    # A1111's learn_schedule.py prints through tqdm only when verbose; dataset.py prints progress.
    with contextlib.redirect_stdout(sys.stderr):
        result = {
            "source": "AUTOMATIC1111/stable-diffusion-webui modules/textual_inversion/{learn_schedule,dataset}.py, run by tools/dataset_reference.py",
            "schedules": schedules(learn_schedule),
            "captions": captions(ds_mod, shared),
            "create_text": create_texts(ds_mod),
            "grouped_batches": grouped_batches(ds_mod),
            "alpha_weights": alpha_weights(ds_mod, shared),
        }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf8", newline="\n") as f:
        json.dump(finite_json(result), f, allow_nan=False, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a1111", help="folder holding modules/textual_inversion/{learn_schedule,dataset}.py")
    p.add_argument("--out", default="fixtures/dataset/reference.json")
    p.add_argument("--rinongal", help="folder holding personalized.py and personalized_style.py")
    p.add_argument("--a1111-templates", help="A1111's textual_inversion_templates folder, to compare")
    p.add_argument("--templates-out", help="where to write the derived templates")
    args = p.parse_args()
    if args.rinongal and args.templates_out:
        write_templates(args)
    if args.a1111:
        reference(args)
    if not (args.a1111 or (args.rinongal and args.templates_out)):
        p.error("give --a1111 DIR and/or --rinongal DIR --templates-out DIR")


if __name__ == "__main__":
    main()
