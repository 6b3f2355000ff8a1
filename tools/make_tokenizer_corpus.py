#!/usr/bin/env python3
"""The CLIP tokenizer corpus: prompts and the token ids transformers' `CLIPTokenizer` gives them.

    python tools/make_tokenizer_corpus.py        # writes fixtures/tokenizer/corpus.json

The ids come from the real library: transformers' `CLIPTokenizer` loaded (`from_pretrained`)
from a `vocab.json` + `merges.txt` folder written by `sdtools.clip_vocab.write_tokenizer_files`
with the standard 48 894 merges of `bpe_simple_vocab_16e6.txt.gz`, which is the vocabulary the
`sd-clip` crate bundles. Ids are `tokenizer(text, add_special_tokens=False).input_ids`: no
BOS/EOS, no truncation, no padding.

A second, smaller section tokenizes some of the same prompts with the tiny fixtures' own
tokenizer folder (`fixtures/tiny-sd1/tokenizer`, the standard vocabulary cut to its first
7678 merges, 8192 tokens), so the Rust side can check a model's own vocabulary files too.

The prompts are deterministic (a seeded `random.Random`): hand-written corner cases
(punctuation, digits, unicode, emoji, apostrophes, very long words, whitespace oddities, mixed
case, non-Latin scripts, special-token text), the A1111 prompt-syntax cases of
`fixtures/prompt/cases.json`, and prompts assembled from lists of subjects, artists, styles
and A1111 emphasis syntax.

Output: `{"generator", "transformers_version", "tokenizers_version", "vocabulary",
"cases": [{"text", "ids"}], "tiny_cut": {"tokenizer", "cases": [{"text", "ids"}]}}`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdtools import clip_vocab  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

CURATED = [
    # empty and blank
    "", " ", "   ", "\t", "\n", " \t\n\r ",
    # the seed's prompts
    "a photo of a cat",
    "half (realbenny-t1 | yoda) person, star war, art by artgerm and greg rutkowski and alphonse mucha",
    "a portrait of realbenny-t2 as a pixar character, 8k, highly detailed, trending on artstation",
    "realbenny-t2", "realbenny-t1", "REALBENNY-T2", "realbenny-t2,realbenny-t1", "(realbenny-t2:1.2)",
    "Ünïcödé text, emoji 🎨🖌️, numbers 1234567890 and punctuation!?;: (weights:1.5) [brackets]",
    # punctuation
    "hello, world!", "what?!?!", "...", "wait... what", "a--b---c", "a_b__c", "snake_case_word",
    "kebab-case-word", "CamelCaseWord", "a/b\\c", "a|b||c", "@user #hashtag $100 %50 ^up &and *star",
    "~tilde `backtick` {braces} <angle> =equals +plus", "email@example.com", "https://example.com/path?q=1&r=2",
    "C:\\Users\\name\\file.png", "(((((", ")))))", "[[[[]]]]", "{{{}}}", "<<>>", "!!!!!!!!!!!!!!!!",
    "?!.,;:", "\"quoted\" 'single' `back`", "«guillemets» „low” “curly” ‘single’", "…ellipsis…",
    "em—dash en–dash", "a·b•c", "§1 ¶2 †3 ‡4", "©2024 ®™", "½ ¼ ¾ ⅓", "°C °F", "±×÷", "µ Ω ∑ ∞ ≈ ≠ ≤ ≥",
    # digits
    "0", "1", "42", "1234567890", "3.14159", "1,000,000", "1e10", "-5", "+7", "0x1F", "1girl", "2boys",
    "8k uhd", "4k", "16:9", "1920x1080", "v1.5", "sd2.1", "1st 2nd 3rd 4th", "year 2077", "00000000",
    "١٢٣ ٤٥٦", "१२३", "一二三", "①②③", "²³¹", "Ⅻ", "𝟙𝟚𝟛",
    # apostrophes and contractions
    "don't", "it's", "we're", "they've", "i'm", "you'll", "he'd", "DON'T", "It'S", "rock'n'roll",
    "o'neill", "'s", "'t", "''", "'''s", "don’t", "it’s", "l'amour", "ma'am", "y'all'd've",
    "'quoted'", "the 90's", "cats' toys", "james's hat",
    # long words
    "pneumonoultramicroscopicsilicovolcanoconiosis", "supercalifragilisticexpialidocious",
    "a" * 100, "ab" * 60, "x" * 300, "hyper" * 20 + "realistic", "Llanfairpwllgwyngyllgogerychwyndrobwllllantysiliogogogoch",
    "donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
    "-".join(["word"] * 40), "_".join(["tag"] * 30), "1" * 50,
    # artists
    "art by greg rutkowski", "by artgerm and alphonse mucha", "in the style of studio ghibli",
    "by hayao miyazaki", "by zdzisław beksiński", "by h.r. giger", "by m.c. escher", "by j.c. leyendecker",
    "by wlop", "by ilya kuvshinov", "by makoto shinkai", "by katsushika hokusai", "by gustav klimt",
    "by pablo picasso", "by vincent van gogh", "by salvador dalí", "by rené magritte", "by frida kahlo",
    "by albrecht dürer", "by andré kertész", "by john singer sargent", "by beeple", "by ross tran",
    # A1111 syntax
    "(masterpiece:1.2), (best quality:1.1), 1girl", "((masterpiece)), [[worst quality]]",
    "[cat:dog:0.5]", "[cat|dog|bird]", "a BREAK b", "cat AND dog:0.5", "(word:1.5)", "(word: 0.8)",
    "\\(escaped\\)", "[from:to:10]", "<lora:name:0.8>", "<hypernet:x:1>", "embedding:realbenny-t2",
    "(a (b (c:1.2):1.1):1.3)", "[[a]:[b]:0.3]", "(unbalanced", "unbalanced)", "[[", "]]",
    # whitespace oddities
    "a  b", "a\tb", "a\nb", "a\r\nb", "  leading", "trailing  ", "a \t \n b", "a\u00a0b", "a\u2003b",
    "a\u3000b", "a\u200bb", "a\u2028b", "a\u0085b", "a\u180eb", "a\ufeffb", "a\u000bb\u000cc", "a\u2009b",
    "a\u202fb", "a\u205fb", "a\u1680b", "\u00a0\u00a0", "word\u200dword", "a\u00adb",
    # mixed case
    "A Photo Of A CAT", "PHOTO", "pHoTo", "ÉCOLE", "ŞİŞLİ İstanbul", "STRASSE Straße ẞ", "ΣΊΣΥΦΟΣ",
    "ǅungla", "ﬁne ﬂow", "İ", "I\u0307", "ΑΒΓ αβγ", "ДОМ дом", "ÅNGSTRÖM",
    # non-Latin scripts
    "一只猫的照片", "猫の写真、高品質", "고양이 사진", "фотография кошки", "φωτογραφία μιας γάτας",
    "صورة قطة", "תמונה של חתול", "एक बिल्ली की तस्वीर", "ภาพถ่ายของแมว", "ảnh của một con mèo",
    "ბეჭედი", "Բարեւ", "ᚠᚢᚦ", "ꦲꦤꦕꦫꦏ", "ᐊᐃᔭᐅᑦ", "𓀀𓀁", "ⴰⵣⵓⵍ", "ශ්‍රී", "ཀ་ཁ", "ጤና",
    "カタカナ ひらがな 漢字", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "ﾊﾝｶｸ", "한국어와 English mixed",
    "Привет, мир! 123", "日本語のプロンプト, masterpiece, best quality",
    # combining characters and normalisation
    "cafe\u0301", "café", "e\u0301\u0301", "n\u0303", "a\u0308o\u0308u\u0308", "\u0301alone",
    "한", "\u1112\u1161\u11ab", "Å", "A\u030a", "\u212b",
    # emoji
    "🎨", "🖌️", "😀😃😄", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵🇺🇸", "❤️", "✨ sparkles ✨", "🔥🔥🔥",
    "cat 🐱 dog 🐶", "1️⃣", "©️", "🫠", "a🙂b", "🧑🏻‍🚀",
    # special-token text
    "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>",
    "<|EndOfText|>", "< |endoftext| >", "<|startoftext|>hello<|endoftext|>", "<|endof", "|>",
    # control and odd characters
    "a\u0000b", "a\u0007b", "\u001b[31mred", "a\ufffdb", "\ue000private", "\U0010ffff", "\\n literal",
]

SUBJECTS = [
    "a cat", "a dog", "an astronaut", "a castle", "a dragon", "a robot", "a woman", "a man", "an old wizard",
    "a cyberpunk city", "a forest", "a bowl of ramen", "a sports car", "a lighthouse", "a samurai",
    "realbenny-t2", "a knight in shining armor", "a steampunk airship", "a cozy cabin", "a mermaid",
    "a portrait of a girl", "a fox", "a teddy bear", "an owl", "a mountain lake", "a spaceship",
]
SETTINGS = [
    "in the rain", "at sunset", "on the moon", "underwater", "in a library", "in tokyo at night",
    "on a beach", "in the desert", "in space", "in a snowy forest", "on mars", "in a cafe",
]
STYLES = [
    "highly detailed", "8k", "4k uhd", "trending on artstation", "octane render", "unreal engine 5",
    "digital painting", "oil on canvas", "watercolor", "concept art", "sharp focus", "bokeh",
    "volumetric lighting", "cinematic", "photorealistic", "anime style", "pixel art", "low poly",
    "35mm photograph", "film grain", "hdr", "f/1.8", "studio lighting", "vaporwave", "ukiyo-e",
]
ARTISTS = [
    "greg rutkowski", "artgerm", "alphonse mucha", "wlop", "ilya kuvshinov", "makoto shinkai",
    "studio ghibli", "zdzisław beksiński", "h.r. giger", "james jean", "craig mullins", "simon stålenhag",
    "moebius", "yoshitaka amano", "rossdraws", "loish", "thomas kinkade", "ruan jia", "krenz cushart",
]
NEGATIVE = [
    "lowres", "bad anatomy", "bad hands", "text", "error", "missing fingers", "extra digit", "cropped",
    "worst quality", "low quality", "jpeg artifacts", "signature", "watermark", "username", "blurry",
]
ODD = [
    "🎨", "✨", "日本", "ß", "é", "İ", "ñ", "’", "\u00a0", "\t", "  ", "!!", "...", "1girl", "(", ")", "[",
    "]", ":", "|", "\\", "-", "_", "'s", "don't", "ÄÖÜ", "猫", "кот", "🐱",
]


def emphasise(rng: random.Random, text: str) -> str:
    """Wraps text in one of A1111's emphasis forms."""
    kind = rng.randrange(7)
    if kind == 0:
        return f"({text}:{rng.choice(['0.5', '0.8', '1.1', '1.2', '1.3', '1.5', '2', '.7'])})"
    if kind == 1:
        return "(" * rng.randint(1, 3) + text + ")" * rng.randint(1, 3)
    if kind == 2:
        return "[" * rng.randint(1, 2) + text + "]" * rng.randint(1, 2)
    if kind == 3:
        return f"[{text}:{rng.choice(SUBJECTS)}:{rng.choice(['0.3', '0.5', '10', '15'])}]"
    if kind == 4:
        return f"[{text}|{rng.choice(SUBJECTS)}]"
    if kind == 5:
        return text.upper() if rng.random() < 0.5 else text.title()
    return text


def random_prompt(rng: random.Random) -> str:
    parts = [rng.choice(SUBJECTS)]
    if rng.random() < 0.6:
        parts[0] += " " + rng.choice(SETTINGS)
    for _ in range(rng.randint(0, 6)):
        parts.append(rng.choice(STYLES))
    if rng.random() < 0.5:
        parts.append("by " + " and ".join(rng.sample(ARTISTS, rng.randint(1, 3))))
    if rng.random() < 0.2:
        parts.extend(rng.sample(NEGATIVE, rng.randint(1, 4)))
    parts = [emphasise(rng, p) if rng.random() < 0.35 else p for p in parts]
    sep = rng.choice([", ", ",", " , ", ". ", " ", " BREAK ", " AND ", ",\n", ", ", ", "])
    text = sep.join(parts)
    if rng.random() < 0.3:
        pos = rng.randrange(len(text) + 1)
        text = text[:pos] + rng.choice(ODD) + text[pos:]
    if rng.random() < 0.1:
        text = "  " + text + " \n"
    return text


def prompt_syntax_cases(limit: int) -> list[str]:
    """The A1111 prompt-syntax corner cases the sd-prompt crate tests with (unique, in order)."""
    path = REPO / "fixtures/prompt/cases.json"
    if not path.exists():
        return []
    prompts = list(dict.fromkeys(case["prompt"] for case in json.loads(path.read_text("utf-8"))))
    return prompts[:limit]


def corpus(n_random: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = list(CURATED) + prompt_syntax_cases(400)
    texts += [random_prompt(rng) for _ in range(n_random)]
    return list(dict.fromkeys(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "fixtures/tokenizer/corpus.json")
    parser.add_argument("--random", type=int, default=600, help="number of assembled prompts")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()

    import tokenizers
    import transformers
    from transformers import CLIPTokenizer

    texts = corpus(args.random, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        clip_vocab.write_tokenizer_files(Path(tmp), clip_vocab.STANDARD_MERGES)
        standard = CLIPTokenizer.from_pretrained(tmp)
        ids = [standard(t, add_special_tokens=False).input_ids for t in texts]
    assert len(standard) == 49408, len(standard)

    tiny_dir = REPO / "fixtures/tiny-sd1/tokenizer"
    tiny = CLIPTokenizer.from_pretrained(tiny_dir)
    tiny_texts = CURATED[:]  # the corner cases are what a cut vocabulary must get right
    tiny_ids = [tiny(t, add_special_tokens=False).input_ids for t in tiny_texts]

    out = {
        "generator": "tools/make_tokenizer_corpus.py",
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "vocabulary": "bpe_simple_vocab_16e6.txt.gz, 48894 merges, 49408 tokens (BOS 49406, EOS 49407)",
        "call": "CLIPTokenizer.from_pretrained(dir)(text, add_special_tokens=False).input_ids",
        "cases": [{"text": t, "ids": i} for t, i in zip(texts, ids)],
        "tiny_cut": {
            "tokenizer": "fixtures/tiny-sd1/tokenizer (7678 merges, 8192 tokens, BOS 8190, EOS 8191)",
            "cases": [{"text": t, "ids": i} for t, i in zip(tiny_texts, tiny_ids)],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One case per line: small diffs when the corpus changes, and well under 1 MB.
    lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in out["cases"]]
    tiny_lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in out["tiny_cut"]["cases"]]
    head = {k: v for k, v in out.items() if k not in ("cases", "tiny_cut")}
    text = "{\n" + "".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n" for k, v in head.items())
    text += '"cases": [\n' + ",\n".join(lines) + "\n],\n"
    text += '"tiny_cut": {"tokenizer": ' + json.dumps(out["tiny_cut"]["tokenizer"]) + ', "cases": [\n'
    text += ",\n".join(tiny_lines) + "\n]}\n}\n"
    assert json.loads(text) == out
    args.out.write_text(text, "utf-8")
    print(f"{args.out}: {len(texts)} standard cases, {len(tiny_texts)} tiny-cut cases, {len(text.encode())} bytes")


if __name__ == "__main__":
    main()
