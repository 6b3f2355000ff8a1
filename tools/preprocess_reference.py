"""Reference outputs of A1111's "Preprocess images" for sd-textual-inversion's preprocess module.

Runs A1111's own `preprocess_work`, `split_pic`, `autocrop.crop_image` and
`images.resize_image` (Pillow underneath) on small deterministic pictures and stores what
they write under fixtures/preprocess/:

  input/                   the pictures (+ one caption sidecar, one corrupt file)
  expected/<case>/         A1111's output folder for each option set in CASES
  expected/<case>.json     the options and the sorted list of files written
  focal.json               autocrop's scaled size, focal point and crop box per picture
  bilevel.png              Pillow's convert("1") (Floyd-Steinberg) of input/a_wide.png

A1111's files are not vendored: save them outside the repository and pass the folder with
--a1111 (it must hold modules/textual_inversion/preprocess.py, .../autocrop.py and
modules/images_resize.py, the verbatim excerpts described in the report of issue 9). This
script stubs `modules.shared`, `modules.paths`, `modules.deepbooru`, `modules.images` and
`cv2` (OpenCV is not installed here: `goodFeaturesToTrack` finds no corners, so the reference
focal crops use the entropy point alone, with edges weight 0 to say so; faces weight 0).

    tools/.venv/bin/python tools/preprocess_reference.py --a1111 /path/to/a1111-excerpts

Byte-for-byte reproducible for a given Pillow/numpy (Pillow 13.0.0, numpy 1.26.4 here).
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import types

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "preprocess")

# (name, options for preprocess_work); width/height small to keep fixtures tiny.
CASES = [
    ("center_flip_copy", dict(width=32, height=32, txt="copy", flip=True, split=False, focal=False)),
    ("split_prepend", dict(width=32, height=32, txt="prepend", flip=False, split=True, focal=False)),
    ("focal_append", dict(width=32, height=32, txt="append", flip=False, split=False, focal=True)),
    ("rect_split_focal", dict(width=48, height=32, txt="ignore", flip=True, split=True, focal=True,
                              threshold=0.7, overlap=0.35)),
]


def install_stubs(a1111):
    """Registers fake `modules.*` packages around A1111's real preprocess/autocrop code."""
    modules = types.ModuleType("modules")
    modules.__path__ = []
    sys.modules["modules"] = modules

    shared = types.ModuleType("modules.shared")

    class State:
        interrupted = False
        job = textinfo = ""
        job_count = 0

        def nextjob(self):
            pass

    shared.state = State()
    sys.modules["modules.shared"] = shared
    paths = types.ModuleType("modules.paths")
    paths.models_path = "/nonexistent"
    sys.modules["modules.paths"] = paths
    sys.modules["modules.deepbooru"] = types.ModuleType("modules.deepbooru")

    cv2 = types.ModuleType("cv2")
    cv2.goodFeaturesToTrack = lambda *a, **k: None  # OpenCV absent: no corner points.
    sys.modules["cv2"] = cv2

    def load(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    images = load("modules.images", os.path.join(a1111, "modules", "images_resize.py"))
    for name, mod in [("paths", paths), ("shared", shared), ("images", images),
                      ("deepbooru", sys.modules["modules.deepbooru"])]:
        setattr(modules, name, mod)
    ti = types.ModuleType("modules.textual_inversion")
    ti.__path__ = []
    sys.modules["modules.textual_inversion"] = ti
    modules.textual_inversion = ti
    autocrop = load("modules.textual_inversion.autocrop",
                    os.path.join(a1111, "modules", "textual_inversion", "autocrop.py"))
    ti.autocrop = autocrop
    preprocess = load("modules.textual_inversion.preprocess",
                      os.path.join(a1111, "modules", "textual_inversion", "preprocess.py"))
    # A1111 lists with os.listdir (file-system order); the Rust port sorts by name.
    preprocess.listfiles = lambda d: sorted(os.listdir(d))
    return preprocess, autocrop


def make_inputs(folder):
    """Small deterministic pictures covering the odd inputs preprocessing must take: wide,
    tall and panorama shapes, caption sidecars, grayscale, RGBA, an EXIF rotation, a corrupt
    file, a CMYK JPEG and a flat picture."""
    rng = np.random.RandomState(1234)
    os.makedirs(folder)

    def textured(w, h):
        # Mid grey with gentle gradients (dithers to a balanced black/white mix) and a bright
        # noisy patch three quarters along the long side: A1111's entropy measure
        # (-sum(log2 p)) peaks on the most unbalanced window, so the focal point lands there.
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([110 + x * 40 // max(w - 1, 1), 110 + y * 40 // max(h - 1, 1),
                         np.full((h, w), 128)], -1).astype(np.int32)
        noise = rng.randint(-30, 31, size=(h, w, 3))
        mask = np.zeros((h, w, 1), bool)
        if w >= h:
            mask[h // 4: 3 * h // 4, 5 * w // 8: 7 * w // 8] = True
        else:
            mask[5 * h // 8: 7 * h // 8, w // 4: 3 * w // 4] = True
        return np.clip(base + (noise + 110) * mask, 0, 255).astype(np.uint8)

    Image.fromarray(textured(96, 64)).save(os.path.join(folder, "a_wide.png"))
    with open(os.path.join(folder, "a_wide.txt"), "w", encoding="utf8") as f:
        f.write("  a wide picture, red\n")
    Image.fromarray(textured(40, 120)).save(os.path.join(folder, "b_tall.png"))
    with open(os.path.join(folder, "b_tall.txt"), "w", encoding="utf8") as f:
        f.write("tall")
    gray = textured(50, 50)[:, :, 0]
    Image.fromarray(gray, "L").save(os.path.join(folder, "c_gray.png"))
    rgba = np.concatenate([textured(64, 48), rng.randint(0, 256, (48, 64, 1)).astype(np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(folder, "d_rgba.png"))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display.
    Image.fromarray(textured(30, 20)).save(os.path.join(folder, "e_exif.png"), exif=exif.tobytes())
    with open(os.path.join(folder, "f_broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n this is not a picture")
    Image.fromarray(textured(24, 16)).convert("CMYK").save(os.path.join(folder, "g_cmyk.jpg"), quality=95)
    Image.fromarray(textured(200, 40)).save(os.path.join(folder, "h_panorama.png"))
    # Flat white: every window has entropy 0, which exposes A1111's aliasing of crop_best.
    Image.new("RGB", (60, 30), (255, 255, 255)).save(os.path.join(folder, "i_flat.png"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--a1111", required=True, help="folder with the saved A1111 files")
    args = parser.parse_args()
    preprocess, autocrop = install_stubs(os.path.abspath(args.a1111))

    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    inputs = os.path.join(OUT, "input")
    make_inputs(inputs)

    for name, o in CASES:
        dst = os.path.join(OUT, "expected", name)
        preprocess.preprocess_work(
            inputs, dst, o["width"], o["height"], o["txt"], False, o["flip"], o["split"], False,
            False, o.get("threshold", 0.5), o.get("overlap", 0.2), o["focal"],
            process_focal_crop_face_weight=0.0, process_focal_crop_entropy_weight=0.3,
            process_focal_crop_edges_weight=0.0)
        files = sorted(os.listdir(dst))
        captions = {f: open(os.path.join(dst, f), encoding="utf8").read()
                    for f in files if f.endswith(".txt")}
        with open(os.path.join(OUT, "expected", f"{name}.json"), "w") as f:
            json.dump({"options": o, "files": files, "captions": captions}, f, indent=1)

    # autocrop internals, recomputed the way crop_image does, for the crop boxes.
    focal = {}
    for target in [(32, 32), (48, 32)]:
        for fname in sorted(os.listdir(inputs)):
            try:
                from PIL import ImageOps
                im = ImageOps.exif_transpose(Image.open(os.path.join(inputs, fname))).convert("RGB")
            except Exception:
                continue
            s = autocrop.Settings(crop_width=target[0], crop_height=target[1],
                                  corner_points_weight=0.0, entropy_points_weight=0.3,
                                  face_points_weight=0.0)
            result = autocrop.crop_image(im, s)[0]
            # Repeat crop_image's arithmetic to expose the box (same code path as above).
            if autocrop.is_landscape(im.width, im.height):
                scale_by = s.crop_height / im.height
            elif autocrop.is_portrait(im.width, im.height):
                scale_by = s.crop_width / im.width
            elif autocrop.is_portrait(s.crop_width, s.crop_height):
                scale_by = s.crop_height / im.height
            else:
                scale_by = s.crop_width / im.width
            scaled = im.resize((int(im.width * scale_by), int(im.height * scale_by)))
            p = autocrop.focal_point(scaled, s)
            x1 = p.x - int(s.crop_width / 2)
            if x1 < 0:
                x1 = 0
            elif x1 + s.crop_width > scaled.width:
                x1 = scaled.width - s.crop_width
            y1 = p.y - int(s.crop_height / 2)
            if y1 < 0:
                y1 = 0
            elif y1 + s.crop_height > scaled.height:
                y1 = scaled.height - s.crop_height
            focal[f"{target[0]}x{target[1]}/{fname}"] = {
                "scaled_size": list(scaled.size), "focal_point": [p.x, p.y],
                "crop_box": [x1, y1, x1 + s.crop_width, y1 + s.crop_height],
                "output_size": list(result.size)}
    with open(os.path.join(OUT, "focal.json"), "w") as f:
        json.dump(focal, f, indent=1)

    Image.open(os.path.join(inputs, "a_wide.png")).convert("RGB").convert("1").save(
        os.path.join(OUT, "bilevel.png"))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
