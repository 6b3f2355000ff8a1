"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ from the committed
fixtures (copied, cut, or re-saved small). Run from the repository root:

    tools/.venv/bin/python fuzz/make_seeds.py

Each file starts with the selector bytes the target reads first (see crates/sd-fuzz/src/lib.rs).
Seeds are capped at SEED_CAP bytes so the committed corpus stays small; the embedding pixel
seeds come from our own writer (`cargo test -p sd-fuzz --test short_fuzz -- --ignored
make_embedding_seeds`).
"""

import base64
import io
import json
import pathlib
import struct
import zipfile
import zlib

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures"
OUT = ROOT / "fuzz" / "corpus"
SEED_CAP = 8 * 1024


def put(target, name, data):
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    if len(data) > SEED_CAP:
        raise SystemExit(f"{target}/{name}: {len(data)} bytes exceeds the seed cap")
    (folder / name).write_bytes(data)


def prompt_seeds():
    cases = json.loads((FIX / "prompt" / "cases.json").read_text())
    seen = set()
    picked = []
    # Spread over the fixture's cases; a few dozen distinct prompts cover its syntax.
    for case in cases[:: max(1, len(cases) // 48)]:
        p = case["prompt"]
        if p in seen or len(p.encode()) > 2000:
            continue
        seen.add(p)
        sel = min(case["steps"][-1], 63) | (0x80 if case.get("old_scheduling") else 0)
        if case.get("hires_steps"):
            sel |= 0x40
        picked.append(bytes([sel]) + p.encode())
    for i, data in enumerate(picked):
        put("prompt", f"case-{i:03}", data)


def pickle_and_torch_seeds():
    tf = FIX / "torch_file"
    torch_files = [
        tf / "embedding_dict.pt",
        tf / "embedding_legacy.pt",
        tf / "embedding_paramdict.pt",
        tf / "malicious.pt",
        tf / "state_dict.ckpt",
        tf / "written_by_rust.pt",
        FIX / "embeddings" / "written_by_rust" / "rust-tiny.pt",
        FIX / "embeddings" / "written_by_rust" / "rust-tiny-bin.bin",
    ]
    for path in torch_files:
        data = path.read_bytes()
        put("torch_zip", path.name, data)
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if name.endswith("data.pkl"):
                        put("pickle", path.stem + ".pkl", z.read(name))
        else:
            # A legacy file starts with its magic-number pickle; the whole stream is a seed too.
            put("pickle", path.stem + ".stream", data[:SEED_CAP])
    put("torch_zip", "truncated-head.ckpt", (tf / "truncated.ckpt").read_bytes()[:1500])
    # Hand-made pickles: every container, memo, big ints, protocol 4 framing.
    import pickle as pk

    values = [
        {"a": [1, 2.5, None, True], "b": (b"\x00\xff", "é"), 3: {4, 5}},
        [2**70, -(2**63), 1e308, float("nan"), "x" * 40],
        {"string_to_param": {"*": [0.5, -1.0]}, "name": "emb", "step": 12},
    ]
    for proto in (2, 4):
        for i, v in enumerate(values):
            put("pickle", f"hand-p{proto}-{i}.pkl", pk.dumps(v, protocol=proto))


def safetensors_seeds():
    for path in [
        FIX / "embeddings" / "written_by_rust" / "rust-tiny-diffusers.safetensors",
        FIX / "embeddings" / "dir" / "diffusers" / "learned_embeds.safetensors",
        FIX / "embeddings" / "dir" / "kohya-bf16.safetensors",
        FIX / "torch_file" / "state_dict.expected.safetensors",
    ]:
        put("safetensors_header", path.parent.name + "-" + path.name, path.read_bytes())

    def st(header, data):
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + data

    put("safetensors_header", "f16-row.safetensors",
        st({"emb": {"dtype": "F16", "shape": [1, 4], "data_offsets": [0, 8]}}, b"\x00\x3c" * 4))
    put("safetensors_header", "sdxl.safetensors",
        st({"clip_l": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]},
            "clip_g": {"dtype": "F32", "shape": [1, 3], "data_offsets": [8, 20]},
            "__metadata__": {"format": "pt"}}, b"\x00\x00\x80\x3f" * 5))


def png_with_text(key, text, size=(1, 1)):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, text)
    buf = io.BytesIO()
    Image.new("RGB", size, (9, 9, 9)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def embedding_text_seeds():
    im = Image.open(FIX / "embeddings" / "dir" / "image-text.png")
    obj = json.loads(base64.b64decode(im.text["sd-ti-embedding"]))
    # Keep 8 values of the vector: the layout, not the width, is what the parser sees.
    vec = obj["string_to_param"]["*"]["TORCHTENSOR"]
    obj["string_to_param"]["*"]["TORCHTENSOR"] = [row[:8] for row in vec[:2]]
    js = json.dumps(obj).encode()
    b64 = base64.b64encode(js)
    put("embedding_png_text", "whole-png", b"\x00" + png_with_text("sd-ti-embedding", b64.decode()))
    put("embedding_png_text", "whole-png-fixcrc", b"\x01" + png_with_text("sd-ti-embedding", b64.decode()))
    put("embedding_png_text", "chunk-text", b"\x02" + b64)
    put("embedding_png_text", "json", b"\x03" + js)
    put("embedding_png_text", "plain-png", b"\x00" + (FIX / "infotext" / "pil_no_params.png").read_bytes())


def infotext_seeds():
    cases = json.loads((FIX / "infotext" / "parse.json").read_text())
    for i, case in enumerate(cases):
        data = b"\x00" + case["text"].encode()
        if len(data) <= SEED_CAP:
            put("infotext", f"text-{i:03}", data)
    for path in sorted((FIX / "infotext").glob("*.png")):
        put("infotext", path.stem + "-fixcrc", b"\x01" + path.read_bytes())
        put("infotext", path.stem + "-raw", b"\x03" + path.read_bytes())


def schedule_seeds():
    for i, s in enumerate([
        "0.005:100, 1e-3:1000, 1e-5",
        "0.005",
        "0.1:10",
        "1e-3:-1",
        " +1_000:20 ,0.5:30, garbage",
        "inf:5, nan:10, -Infinity",
        "0.1:0, 0.2:1, 0.3:99999999999999999999999999999999999999999",
        "5e-3:100,1e-3:200,,0x10",
    ]):
        put("lr_schedule", f"schedule-{i}", bytes([200, 0 if i % 2 else 50]) + s.encode())


def image_seeds():
    for path in sorted((FIX / "preprocess" / "input").glob("*.png")):
        if path.stat().st_size <= SEED_CAP:
            put("preprocess_image", path.name, path.read_bytes())
    base = Image.new("RGB", (5, 3), (200, 30, 90))
    variants = {
        "gray.png": (base.convert("L"), "PNG", {}),
        "gray16.png": (base.convert("I;16"), "PNG", {}),
        "rgba.png": (base.convert("RGBA"), "PNG", {}),
        "palette.png": (base.convert("P"), "PNG", {}),
        "one.png": (Image.new("1", (1, 1)), "PNG", {}),
        "rgb.jpg": (base, "JPEG", {"quality": 50}),
        "gray.jpg": (base.convert("L"), "JPEG", {}),
        "cmyk.jpg": (base.convert("CMYK"), "JPEG", {}),
        "progressive.jpg": (base, "JPEG", {"progressive": True}),
        "rgb.webp": (base, "WEBP", {"lossless": True}),
        "rgba-lossy.webp": (base.convert("RGBA"), "WEBP", {"quality": 50}),
        "rgb.bmp": (base, "BMP", {}),
        "palette.bmp": (base.convert("P"), "BMP", {}),
        "rgb.tiff": (base, "TIFF", {}),
        "lzw.tiff": (base, "TIFF", {"compression": "tiff_lzw"}),
        "gray16.tiff": (base.convert("I;16"), "TIFF", {}),
        "float.tiff": (base.convert("F"), "TIFF", {}),
        "rgb.gif": (base, "GIF", {}),
    }
    for name, (img, fmt, kw) in variants.items():
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        put("preprocess_image", name, buf.getvalue())
    # EXIF orientation 6 (rotate 90) on a JPEG.
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    base.save(buf, "JPEG", exif=exif.tobytes())
    put("preprocess_image", "exif6.jpg", buf.getvalue())
    # An animated GIF: two frames.
    buf = io.BytesIO()
    base.save(buf, "GIF", save_all=True, append_images=[Image.new("RGB", (5, 3))], duration=100)
    put("preprocess_image", "animated.gif", buf.getvalue())


def tokenizer_seeds():
    """Texts of every section of the tokenizer corpus (mojibake, entities, escapes, ...), each
    behind a selector byte that cycles through the normalisations and vocabularies."""
    corpus = json.loads((FIX / "tokenizer" / "a1111.json").read_text("utf-8"))
    n = 0
    for section, cases in corpus["sections"].items():
        for case in cases[:: max(1, len(cases) // 4)][:4]:
            data = case["text"].encode("utf-8")[:SEED_CAP - 1]
            put("tokenizer", f"{section}-{n:03}", bytes([n % 8]) + data)
            n += 1


if __name__ == "__main__":
    prompt_seeds()
    pickle_and_torch_seeds()
    safetensors_seeds()
    embedding_text_seeds()
    infotext_seeds()
    schedule_seeds()
    image_seeds()
    tokenizer_seeds()
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"corpus: {sum(1 for p in OUT.rglob('*') if p.is_file())} files, {total} bytes")
