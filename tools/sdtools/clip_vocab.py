"""The standard CLIP BPE vocabulary, derived from `bpe_simple_vocab_16e6.txt.gz`.

OpenAI's CLIP (`clip-anytorch` on PyPI) and OpenCLIP ship the merges list as `bpe_simple_vocab_16e6.txt.gz` (MIT
licence). The vocabulary is built from it in a fixed order: the 256 byte symbols, the same
with the word-end marker `</w>`, one token per merge in merge order, then
`<|startoftext|>` and `<|endoftext|>`; 49 408 tokens with the standard 48 894 merges.

Keeping only the first `n_merges` merges gives a smaller vocabulary that is still a valid
BPE model (every merge's parts are earlier tokens), which is how the tiny fixture models cut
their embedding tables ("a documented cut" of the real vocabulary).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

STANDARD_MERGES = 49152 - 256 - 2


def bundled_bpe_path() -> Path:
    """Locates the vocabulary file inside the installed `clip` package (`clip-anytorch`, a
    k-diffusion dependency), without importing it."""
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("clip-anytorch is not installed: pip install -r tools/requirements.txt")
    return Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, which CLIP uses too."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def load_merges(n_merges: int = STANDARD_MERGES) -> list[tuple[str, str]]:
    lines = gzip.open(bundled_bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1:STANDARD_MERGES + 1]
    if n_merges > len(merges):
        raise ValueError(f"only {len(merges)} merges exist")
    return [tuple(m.split()) for m in merges[:n_merges]]  # type: ignore[misc]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def write_tokenizer_files(folder: Path, n_merges: int) -> tuple[Path, Path]:
    """Writes `vocab.json` and `merges.txt` in the layout transformers' CLIPTokenizer reads."""
    folder.mkdir(parents=True, exist_ok=True)
    merges = load_merges(n_merges)
    vocab = build_vocab(merges)
    vocab_path = folder / "vocab.json"
    merges_path = folder / "merges.txt"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), "utf-8")
    merges_path.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), "utf-8")
    return vocab_path, merges_path
