"""Fixtures for sd-core's `torch_file` reader/writer (PyTorch zip/pickle files read as data).

Every tensor file here is written by the real `torch.save`; expected values are read back with
the real `torch.load` and written as JSON (every value of these tiny tensors, as Python floats,
which hold f16/bf16/f32 values exactly) and as a safetensors file written by the real
`safetensors.torch.save_file` (original dtypes). The hostile pickle is assembled from raw
opcode bytes and is NEVER loaded here.

Usage (from the repository root):
    tools/.venv/bin/python tools/torch_file_reference.py            # (re)write the fixtures
    tools/.venv/bin/python tools/torch_file_reference.py --verify-rust
        # after `cargo test -p sd-torch-file --test torch_file -- --ignored write_rust_fixture`:
        # torch.load(weights_only=True) the file our Rust writer produced and compare values.

Values are reproducible (fixed seeds); the zip bytes are not byte-for-byte reproducible because
torch writes a random `.data/serialization_id` record.
"""

import collections
import io
import json
import struct
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "torch_file"


def tensor_json(t: torch.Tensor) -> dict:
    """Everything the Rust side must recover about one tensor, as torch sees it."""
    return {
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        # float() of f16/bf16/f32 is exact; ints here are small, so exact as well.
        "values": t.detach().float().flatten().tolist(),
    }


def make_state_dict_ckpt() -> None:
    """A tiny A1111-style checkpoint: {"state_dict": {...}, "global_step": ..., ...}."""
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(4, 6, generator=g)
    sd = collections.OrderedDict()
    sd["model.f32"] = base.clone()
    sd["model.f16"] = (torch.randn(3, 5, generator=g) * 10).half()
    sd["model.bf16"] = torch.randn(2, 7, generator=g).bfloat16()
    sd["model.f64"] = torch.randn(5, generator=g).double()
    # Views that share `base`'s storage: torch keeps strides and offsets as they are.
    sd["model.transposed"] = base.t()  # stride (1, 6)
    sd["model.sliced"] = base[1:3, 2:5]  # offset 8, stride (6, 1)
    sd["model.stepped"] = base[:, ::2]  # stride (6, 2)
    sd["model.i64"] = torch.arange(-3, 5, dtype=torch.int64).reshape(2, 4)
    sd["model.i32"] = torch.tensor([7, -8, 9], dtype=torch.int32)
    sd["model.u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["model.bool"] = torch.tensor([True, False, True])
    sd["model.scalar"] = torch.tensor(2.5)
    sd["model.empty"] = torch.zeros(0, 3)
    ckpt = {
        "state_dict": sd,
        "global_step": 470000,
        "epoch": 3,
        "lr": 1e-4,
        "name": "tiny ckpt ✓",
        "raw": b"\x00\x01binary",
        "big": 2**70,
        "neg": -(2**40),
        "nested": [1, (2.5, None), {"k": True}],
    }
    torch.save(ckpt, OUT / "state_dict.ckpt")

    data = (OUT / "state_dict.ckpt").read_bytes()
    # A truncated copy: cut inside the central directory, so the zip end record is gone.
    (OUT / "truncated.ckpt").write_bytes(data[: len(data) - 100])

    loaded = torch.load(OUT / "state_dict.ckpt", weights_only=True)
    expected = {
        "tensors": {k: tensor_json(v) for k, v in loaded["state_dict"].items()},
        "global_step": loaded["global_step"],
        "epoch": loaded["epoch"],
        "lr": loaded["lr"],
        "name": loaded["name"],
        "raw": list(loaded["raw"]),
        "big": str(loaded["big"]),
        "neg": loaded["neg"],
    }
    (OUT / "state_dict.expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    # Original dtypes, made contiguous: what our safetensors conversion must equal.
    save_file(
        {k: v.contiguous() for k, v in loaded["state_dict"].items()},
        OUT / "state_dict.expected.safetensors",
    )


def make_embeddings() -> None:
    """A1111 embeddings, the dict A1111's `Embedding.save` writes
    (modules/textual_inversion/textual_inversion.py, AUTOMATIC1111/stable-diffusion-webui), and
    the older layout whose `string_to_param` is a torch.nn.ParameterDict."""
    g = torch.Generator().manual_seed(7)
    vec = torch.randn(2, 8, generator=g).requires_grad_(True)
    emb = {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": vec},
        "name": "tiny-emb",
        "step": 42,
        "sd_checkpoint": "4c86efd062",
        "sd_checkpoint_name": "tiny-sd1",
    }
    torch.save(emb, OUT / "embedding_dict.pt")
    pd = torch.nn.ParameterDict({"*": torch.nn.Parameter(vec.detach().clone())})
    old = dict(emb, string_to_param=pd, name="tiny-emb-pd", sd_checkpoint=None, sd_checkpoint_name=None)
    torch.save(old, OUT / "embedding_paramdict.pt")
    # Legacy (pre-1.6) non-zip serialization of the same embedding, plus an f16 tensor.
    legacy = dict(emb, name="tiny-emb-legacy", extra_f16=vec.detach().half()[1:])
    torch.save(legacy, OUT / "embedding_legacy.pt", _use_new_zipfile_serialization=False)

    expected = {"vec": tensor_json(vec), "vec_f16_row1": tensor_json(vec.detach().half()[1:])}
    (OUT / "embedding.expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def make_malicious() -> None:
    """A zip laid out like torch's whose data.pkl would call os.system('echo pwned') if
    unpickled by Python. Built from raw opcodes; never loaded."""
    pkl = (
        b"\x80\x02"  # PROTO 2
        + b"cposix\nsystem\n"  # GLOBAL 'posix system' (what os.system pickles as on Linux)
        + b"X\x0a\x00\x00\x00echo pwned"  # BINUNICODE
        + b"\x85"  # TUPLE1
        + b"R"  # REDUCE
        + b"."  # STOP
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("malicious/data.pkl", pkl)
        z.writestr("malicious/version", "3\n")
    (OUT / "malicious.pt").write_bytes(buf.getvalue())


def verify_rust() -> None:
    """torch.load(weights_only=True) the file our Rust writer wrote and check its values
    against what the Rust test put in (see tests/torch_file.rs, `rust_written_value`)."""
    path = OUT / "written_by_rust.pt"
    data = torch.load(path, weights_only=True)
    print(data)
    vec = torch.tensor([[i * 0.25 - 1.0 for i in range(8)], [i * 0.5 for i in range(8)]])
    assert set(data) == {"string_to_token", "string_to_param", "name", "step", "sd_checkpoint", "sd_checkpoint_name"}
    assert data["string_to_token"] == {"*": 265}
    assert torch.equal(data["string_to_param"]["*"], vec)
    assert data["string_to_param"]["*"].dtype == torch.float32
    assert data["name"] == "rust-emb" and data["step"] == 500
    assert data["sd_checkpoint"] == "4c86efd062" and data["sd_checkpoint_name"] is None
    names = zipfile.ZipFile(path).namelist()
    print("zip entries:", names)
    print("OK: torch.load(weights_only=True) accepts written_by_rust.pt")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if "--verify-rust" in sys.argv:
        verify_rust()
        return
    make_state_dict_ckpt()
    make_embeddings()
    make_malicious()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
