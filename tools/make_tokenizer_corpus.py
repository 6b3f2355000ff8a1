#!/usr/bin/env python3
"""The CLIP tokenizer corpus: texts and the token ids the reference tokenizers give them.

    tools/.venv-tokenizer/bin/python tools/make_tokenizer_corpus.py   # fixtures/tokenizer/a1111.json
    tools/.venv/bin/python tools/make_tokenizer_corpus.py --reference transformers5   # corpus.json
    tools/.venv-tokenizer/bin/python tools/make_tokenizer_corpus.py --tables   # sd-clip's data

`--reference a1111` (the default; the side environment of `tools/requirements-tokenizer.txt`)
writes what A1111 gives: SD 1.x ids from transformers 4.30.2's slow `CLIPTokenizer` with
ftfy 6.3.1 installed (`tokenizer(text, add_special_tokens=False).input_ids`: ftfy's
`fix_text`, whitespace clean-up and `lower()` on each piece between special tokens), and
SD 2.x ids from OpenCLIP 2.20.0's `SimpleTokenizer.encode(text)` (ftfy, `html.unescape`
twice, strip, whitespace clean-up, `lower()`). Both with the standard vocabulary
(`crates/sd-clip/assets/bpe_simple_vocab_16e6.txt.gz`, 48 894 merges, 49 408 tokens) and
with the tiny fixtures' own tokenizer folder (`fixtures/tiny-sd1/tokenizer`, its first 7678
merges, 8192 tokens). It also records, for the text-fixing sections, `ftfy.fix_text(text)`
and OpenCLIP's cleaned text, so the Rust normalisation is checked string by string.

`--reference transformers5` (the main environment, `tools/requirements.txt`) writes
`corpus.json`: transformers 5's `CLIPTokenizer` (no ftfy) on the prompts and corner cases.

`--tables` writes `crates/sd-clip/src/normalize/tables.rs` and
`crates/sd-clip/assets/html5_entities.txt`: the character data sd-clip's ftfy port reads
(the single-byte codecs, ftfy's character classes, Python's `\\w`, `\\d` and `lower()`
sets, the width and ligature maps, `html.entities.html5`), derived from Python 3.11 and
ftfy's own tables.

Everything is deterministic (a seeded `random.Random`). Sections of the a1111 corpus:
`prompts` (ordinary prompts assembled from lists of subjects, artists, styles and A1111
syntax, plus the prompt-syntax cases of `fixtures/prompt/cases.json`), `curated` (corner
cases: punctuation, digits, contractions, scripts, emoji, special-token text, whitespace),
and one section per thing ftfy fixes (`quotes`, `ligatures`, `width`, `html`, `mojibake`,
`spaces`, `controls`, `escapes`, `c1`, `byte_a0`, `lossy`, `inconsistent`, `line_breaks`,
`surrogates`), then `scripts` and `long` (words of 1 000+ characters). Ids are stored once
per case as `sd1`; `open_clip` only where OpenCLIP differs.
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


WORDS = [
    "café", "naïve", "résumé", "Ünïcödé", "Straße", "smörgåsbord", "façade", "jalapeño", "Zürich", "São Paulo",
    "Привет мир", "Москва", "日本語", "漢字", "한국어", "Ελληνικά", "العربية", "עברית", "हिन्दी", "ไทย",
    "“quoted”", "it’s", "don’t", "—", "…", "€100", "©2024", "™", "½", "°C", "±5", "→", "✔", "★",
    "😀", "🎨", "👍🏽", "🇯🇵", "💩", "✨", "ąčęėįšųūž", "łódź", "Ærøskøbing", "İstanbul", "Ελλάδα", "№5",
]
HTML_TAILS = ["", "", " <", " >", "\n<x>", "\n&amp;"]
MOJIBAKE_CODECS = [
    "latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250", "sloppy-windows-1253",
    "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2", "macroman", "cp437",
]
ENTITY_TEXTS = [
    "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&nbsp;", "&copy;", "&eacute;", "&EACUTE;", "&Eacute;", "&hellip;",
    "&mdash;", "&ndash;", "&rsquo;", "&ldquo;", "&rdquo;", "&#39;", "&#x27;", "&#8217;", "&#x2019;", "&#128;",
    "&#0;", "&#x110000;", "&#xD800;", "&#65;", "&#65", "&amp", "&ampx", "&notit;", "&notin;", "&not", "&SZLIG;",
    "&NTILDE;", "&nTILDE;", "&Jscr;", "&HilbertSpace;", "&checkmark;", "&NotEqualTilde;", "&unknown;", "&;",
    "&#;", "&#x;", "& amp;", "&amp;amp;", "&amp;lt;b&amp;gt;", "&#1234567;", "&#x1F600;", "&#9;", "&#10;",
    "&#x0c;", "&#x1c;", "&#13;", "&#xFFFE;", "&AMP;", "&Amp;", "&frac12;", "&frac12", "&pound;", "&euro;",
]


def sloppy_decode(data: bytes, codec: str) -> str:
    return data.decode(codec)


def mojibake(rng: random.Random, text: str) -> str:
    codec = rng.choice(MOJIBAKE_CODECS)
    try:
        return text.encode("utf-8").decode(codec)
    except UnicodeDecodeError:
        return text.encode("utf-8").decode("sloppy-windows-1252")


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS + SUBJECTS + STYLES) for _ in range(rng.randint(1, 5)))


def ftfy_sections(rng: random.Random) -> dict[str, list[str]]:
    """Texts for each thing ftfy fixes (and for the scripts around it)."""
    s: dict[str, list[str]] = {}
    s["quotes"] = [
        "don’t", "it’s a “test”", "‘single’ ‛reversed‛ ‚low‚ „low“", "ʼn ʼs", "‟x‟", "«guillemets» ‹x›",
        "the 90’s", "rock’n’roll", "“”‘’", "I’M", "’s", "’t", "’re’ve’ll’d’m",
    ] + [f"{rng.choice(SUBJECTS)}’s {rng.choice(STYLES)}, “{rng.choice(ARTISTS)}”" for _ in range(40)]
    s["ligatures"] = ["ﬁne ﬂow", "ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ", "ĳ Ĳ ŉ", "Ǳ ǲ ǳ Ǆ ǅ ǆ Ǉ ǈ ǉ Ǌ ǋ ǌ", "ﬃrst eﬀect", "ﬓ ﬔ"] + [
        rng.choice(["ﬁ", "ﬂ", "ﬀ"]).join(rng.sample(["a", "b", "ce", "do", "ne", "ow"], 3)) for _ in range(30)
    ]
    full = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
    s["width"] = ["ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "ＬＯＵＤ　ＮＯＩＳＥＳ", "ﾊﾝｶｸ ｶﾀｶﾅ", "Ｕﾀｰﾝ", "ﾡﾢﾣ ￠￡￢￣￤￥￦",
                  "＜｜ｅｎｄｏｆｔｅｘｔ｜＞", "＜ｓｔａｒｔ＿ｏｆ＿ｔｅｘｔ＞", "ｗｏｒｄ　ｗｏｒｄ"] + [
        "".join(full.get(ch, ch) for ch in random_prompt(rng)) for _ in range(40)
    ]
    s["html"] = list(ENTITY_TEXTS) + [
        "a &amp; b", "<b>a &amp; b</b>", "x &amp;\n<b>\n&amp;", "&amp;\n&lt;\n<\n&amp;", "1 < 2 &amp; 3",
        "tom &amp; jerry, &quot;cartoon&quot;", "P&EACUTE;REZ", "caf&eacute; &amp; cr&egrave;me", "&lt;lora:x:1&gt;",
        "&lt;|endoftext|&gt;", "&amp;lt;|endoftext|&amp;gt;", "a&nbsp;b", "a&#160;b", "&#x3000;x", "&ampamp;",
    ] + [
        " ".join([rng.choice(SUBJECTS), rng.choice(ENTITY_TEXTS), rng.choice(STYLES)]) + rng.choice(HTML_TAILS)
        for _ in range(80)
    ]
    s["mojibake"] = ["cafÃ©", "sÃ³", "voilÃ le travail", "âœ” No problems", "Ã³ and cafÃ©", "ÐŸÑ€Ð¸Ð²ÐµÑ‚",
                     "&macr;\\_(ã\x83\x84)_/&macr;", "Ã¢â‚¬Å“double mojibakeÃ¢â‚¬Â\x9d", "â€œ like this â€\ufffd",
                     "Ã¡ Ã© Ã­ Ã³ Ãº", "Ã ", "Ã", "Ã©Ã©Ã©", "ÃƒÂ©", "â€™", "â€", "ð\x9f\x98\x80", "ðŸ˜€"] + [
        mojibake(rng, sentence(rng)) for _ in range(150)
    ] + [mojibake(rng, mojibake(rng, rng.choice(WORDS))) for _ in range(20)]
    s["spaces"] = [
        "a\u00a0b", "a\u2003b", "a\u3000b", "a\u200bb", "a\u2009b", "a\u202fb", "a\u205fb", "a\u1680b", "a\u180eb",
        "\u00a0\u00a0", "a\u2000\u2001\u2002b", "\u2007x\u2008", "a\u200a\u200c\u200d\u2060b", "x\u00a0", "\u00a0x",
        "a\u0085b", "a\u001cb", "a\u001db\u001ec\u001fd", "\u001cx\u001f", "tab\there", "a\x0bb\x0cc",
    ] + [rng.choice(["\u00a0", "\u2003", "\u3000", "\u2009", " \u00a0 "]).join(rng.sample(STYLES, 3)) for _ in range(30)]
    s["controls"] = [
        "a\u0000b", "a\u0007b", "a\u0008b", "\u007fdel", "a\u206ab\u206f", "\ufeffbom", "a\ufeffb", "x\ufff9y\ufffbz",
        "obj\ufffc", "a\ufffdb", "\u200e\u200frtl", "\u202ax\u202e", "\U000e0067tag", "\U0001d173m", "\x01\x02\x03",
    ] + [rng.choice(SUBJECTS) + chr(rng.choice([0, 1, 8, 0xB, 0xE, 0x1F, 0x7F, 0xFEFF, 0x206C])) + rng.choice(STYLES)
         for _ in range(30)]
    s["escapes"] = [
        "\x1b[31mred\x1b[0m", "\x1b[36;44mI'm blue\x1b[0m", "\x1b[1;2;3m", "\x1b[m", "\x1b[٣m", "\x1b[", "\x1b[1",
        "\x1b[;;K", "\x1b]0;title\x07", "\x1bx", "a\x1b[2Jb",
    ] + [f"\x1b[{rng.randint(0, 99)}m{rng.choice(SUBJECTS)}\x1b[0m" for _ in range(20)]
    s["c1"] = ["\x80", "\x93quoted\x94", "a\x85b", "\x81\x8d\x8f\x90\x9d", "caf\x82", "\x96 dash", "x\x99y",
               "\x91\x92", "\x9f"] + [rng.choice(SUBJECTS) + chr(rng.randint(0x80, 0x9F)) + rng.choice(STYLES)
                                        for _ in range(30)]
    s["byte_a0"] = [
        "voilÃ le travail", "Ã  la carte", "Ã quele", "Ã s ", "Ã¢â‚¬Å“", "Ã  ", "Ã©t Ã  Paris", "ðŸ ", "â€ x",
        "Â abc", "a Â b", "Ã", "Ã\u00a0", "cÃ´tÃ© Ã  cÃ´tÃ©",
    ] + [mojibake(rng, sentence(rng)).replace("\u00a0", " ") for _ in range(30)]
    s["lossy"] = [
        "â€œ like this â€\ufffd", "â€\ufffd", "Ã\ufffd", "Ã?", "Ã¢â‚¬\ufffd", "ðŸ\ufffd\ufffd", "\ufffd",
        "\ufffd\ufffd\ufffd", "í\ufffd½í²©",
    ] + [
        sentence(rng).encode("utf-8").decode("windows-1252", errors="replace") for _ in range(40)
    ]
    s["inconsistent"] = [
        "café cafÃ©", "Привет ÐŸÑ€Ð¸Ð²ÐµÑ‚", "✔ âœ” ok", "日本 æ—¥æœ¬", "a â€œquoteâ€\x9d and “real”",
    ] + [
        f"{rng.choice(WORDS)} {mojibake(rng, rng.choice(WORDS))} {rng.choice(WORDS)}" for _ in range(60)
    ]
    s["line_breaks"] = [
        "a\r\nb", "a\rb", "a\u2028b", "a\u2029b", "a\x85b", "\r\n\r\n", "line1\nline2\n", "a\n\n\nb", "\n<x>\n&amp;",
        "&amp;\r&lt;\r<", "caf\u00c3\u00a9\r\nna\u00c3\u00afve", "\r", "x\r\n",
    ] + ["\n".join(random_prompt(rng) for _ in range(rng.randint(2, 4))) for _ in range(20)]
    cesu = lambda t: b"".join(  # noqa: E731 (CESU-8: each astral character as two 3-byte surrogates)
        (ch.encode("utf-16-be", "surrogatepass") and
         "".join(chr(u) for u in __import__("struct").unpack(">2H", ch.encode("utf-16-be"))).encode("utf-8", "surrogatepass"))
        if ord(ch) > 0xFFFF else ch.encode("utf-8") for ch in t)
    s["surrogates"] = [
        cesu("💩").decode("latin-1"), cesu("😀 ok").decode("sloppy-windows-1252"), cesu("a🎨b").decode("latin-1"),
        "í\u00a0½í²©", "í ½í²©", "í\u00a0½", b"\xed\xa0\xbd".decode("latin-1"), "\xc0\x80", "Ã€\u0080",
        "null \xc0\x80 here",
    ] + [cesu(rng.choice(["😀", "🎨", "👍", "🇯🇵", "💩"]) + " " + rng.choice(WORDS)).decode(
        rng.choice(["latin-1", "sloppy-windows-1252"])) for _ in range(20)]
    s["scripts"] = [
        "一只猫的照片", "猫の写真、高品質", "고양이 사진", "фотография кошки", "φωτογραφία μιας γάτας", "صورة قطة",
        "תמונה של חתול", "एक बिल्ली की तस्वीर", "ভালো ছবি", "நல்ல படம்", "ಚಿತ್ರ", "ภาพถ่ายของแมว", "ảnh của một con mèo",
        "ΟΔΟΣ Σ ΣΑ", "İstanbul ıi", "ẞ ß", "ǅ ǈ ǋ ǲ", "ſ 'ſ", "don'ſ", "K Å Ω", "ﬅ", "cafe\u0301", "e\u0301\u0301",
        "\u0301alone", "\u1112\u1161\u11ab", "A\u030a \u212b", "ᾼ ᾳ ῼ", "Ⓐⓑ", "ǰ̌", "ŉ", "ΐ ΰ", "Ꞌ ꞌ",
        "👨‍👩‍👧‍👦", "🏳️‍🌈", "🧑🏻‍🚀", "1️⃣", "🫠", "©️ ®️", "👍🏽👍🏿", "🇺🇸🇯🇵", "\U0001F9D1\u200D\U0001F4BB",
        "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|EndOfText|>", "<|endoftext|><|endoftext|>",
        "x <|startoftext|> y", "!<|endoftext|>", "<start_of_text>", "<end_of_text>", "<START_OF_TEXT>x",
        "a<end_of_text>b", "<|ſtartoftext|>", "cafÃ© <|endoftext|> cafÃ©", "cafÃ <|endoftext|>", "&lt;end_of_text&gt;",
        "", " ", "   ", "\t", "\n", " \t\n\r ", "\u3000", "\u00a0", "\ufeff", "\x00",
    ]
    lower_changing = "".join(chr(c) for c in range(0x10000) if chr(c).lower() != chr(c))
    s["scripts"] += [lower_changing[i:i + 300] for i in range(0, len(lower_changing), 300)]
    s["long"] = [
        "a" * 1000, "pneumonoultramicroscopicsilicovolcanoconiosis" * 25, "ab" * 600, "x" * 2500, "é" * 1200,
        "ﬁ" * 1000, "Ã©" * 600, "日本" * 600, "!" * 1500, "1" * 1200, "-".join(["word"] * 300), "🎨" * 500,
        "&amp;" * 300, " ".join(["cafÃ©"] * 300), "’" * 1000, "ｗ" * 1000, "abc\u0301" * 400,
    ]
    return s


def corpus(n_random: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    sections = {"prompts": prompt_syntax_cases(400) + [random_prompt(rng) for _ in range(n_random)],
                "curated": list(CURATED)}
    sections.update(ftfy_sections(rng))
    seen: set[str] = set()
    for name, texts in sections.items():
        sections[name] = [t for t in dict.fromkeys(texts) if not (t in seen or seen.add(t))]
    return sections


def open_clip_module():
    """OpenCLIP's `tokenizer.py`, imported on its own (the package imports the whole model
    code). It imports torch only for `tokenize()`'s tensors: where torch is absent, a stub
    module stands in, which `SimpleTokenizer` never touches."""
    import importlib.util
    import types

    try:
        import torch  # noqa: F401
    except ImportError:
        stub = types.ModuleType("torch")
        stub.LongTensor = stub.Tensor = object
        sys.modules["torch"] = stub
    spec = importlib.util.find_spec("open_clip")
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def open_clip_tokenizer(module, merges_txt: Path, tmp: Path):
    """A `SimpleTokenizer` over a `merges.txt` (gzipped as OpenCLIP reads it: a header line,
    then the merges, no final newline)."""
    import gzip

    lines = merges_txt.read_text("utf-8").strip().split("\n")
    gz = tmp / f"{merges_txt.parent.name}-{len(lines)}.txt.gz"
    with gzip.open(gz, "wb") as f:
        f.write("\n".join(lines).encode("utf-8"))
    return module.SimpleTokenizer(str(gz))


def a1111_reference(args) -> None:
    import importlib.metadata

    import ftfy
    import regex
    import transformers
    from transformers import CLIPTokenizer

    assert transformers.__version__ == "4.30.2" and ftfy.__version__ == "6.3.1", "see tools/requirements-tokenizer.txt"
    sections = corpus(args.random, args.seed)
    bpe_gz = REPO / "crates/sd-clip/assets/bpe_simple_vocab_16e6.txt.gz"
    clip_vocab.bundled_bpe_path = lambda: bpe_gz
    oc_module = open_clip_module()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip_vocab.write_tokenizer_files(tmp / "standard", clip_vocab.STANDARD_MERGES)
        standard = CLIPTokenizer.from_pretrained(tmp / "standard")
        assert standard.fix_text is not None, "ftfy must be installed"
        standard_oc = open_clip_tokenizer(oc_module, tmp / "standard/merges.txt", tmp)
        tiny_dir = REPO / "fixtures/tiny-sd1/tokenizer"
        tiny = CLIPTokenizer.from_pretrained(tiny_dir)
        tiny_oc = open_clip_tokenizer(oc_module, tiny_dir / "merges.txt", tmp)
    assert len(standard) == 49408 and len(standard_oc.encoder) == 49408, len(standard)
    assert len(tiny) == 8192 and len(tiny_oc.encoder) == 8192
    vocab = json.loads((tiny_dir / "vocab.json").read_text("utf-8"))
    assert all(vocab[t] == i for t, i in tiny_oc.encoder.items() if not t.endswith("_of_text>"))

    def case(text, slow, oc, with_clean):
        ids = slow(text, add_special_tokens=False).input_ids
        out = {"text": text, "sd1": ids}
        try:
            oc_ids = oc.encode(text)
        except Exception as e:  # noqa: BLE001 (recorded, so the Rust side knows to skip it)
            oc_ids = f"{type(e).__name__}: {e}"
        if oc_ids != ids:
            out["open_clip"] = oc_ids
        if with_clean:
            out["ftfy"] = ftfy.fix_text(text)
            out["open_clip_clean"] = oc_module.whitespace_clean(oc_module.basic_clean(text)).lower()
        return out

    full = {name: [case(t, standard, standard_oc, name != "prompts") for t in texts]
            for name, texts in sections.items()}
    tiny_sections = {name: [case(t, tiny, tiny_oc, False) for t in texts[:200 if name == "prompts" else 60]]
                     for name, texts in sections.items()}
    head = {
        "generator": "tools/make_tokenizer_corpus.py --reference a1111",
        "versions": {"python": sys.version.split()[0], "transformers": transformers.__version__,
                     "tokenizers": __import__("tokenizers").__version__, "ftfy": ftfy.__version__,
                     "open_clip_torch": importlib.metadata.version("open_clip_torch"),
                     "regex": regex.__version__},
        "sd1": "CLIPTokenizer.from_pretrained(dir)(text, add_special_tokens=False).input_ids (slow, ftfy installed)",
        "open_clip": "open_clip.tokenizer.SimpleTokenizer(bpe).encode(text); only where it differs from sd1",
        "vocabulary": "bpe_simple_vocab_16e6.txt.gz, 48894 merges, 49408 tokens (BOS 49406, EOS 49407)",
        "tiny_vocabulary": "fixtures/tiny-sd1/tokenizer (7678 merges, 8192 tokens, BOS 8190, EOS 8191)",
    }
    write_json(args.out or REPO / "fixtures/tokenizer/a1111.json", head, {"sections": full, "tiny": tiny_sections})
    for name, cases in full.items():
        print(f"{name}: {len(cases)} cases ({len(tiny_sections[name])} tiny)")


def write_json(path: Path, head: dict, groups: dict[str, dict[str, list[dict]]]) -> None:
    """One case per line: small diffs when the corpus changes."""
    dump = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    text = "{\n" + "".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n" for k, v in head.items())
    parts = []
    for group, sections in groups.items():
        inner = ",\n".join(f"{json.dumps(name)}: [\n" + ",\n".join(dump(c) for c in cases) + "\n]"
                           for name, cases in sections.items())
        parts.append(f"{json.dumps(group)}: {{\n{inner}\n}}")
    text += ",\n".join(parts) + "\n}\n"
    assert json.loads(text) == {**head, **groups}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    print(f"{path}: {len(text.encode())} bytes")


def transformers5_texts(n_random: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = list(CURATED) + prompt_syntax_cases(400)
    texts += [random_prompt(rng) for _ in range(n_random)]
    return list(dict.fromkeys(texts))


def transformers5_reference(args) -> None:
    """The transformers 5 corpus (`corpus.json`), in its original layout and order."""

    import tokenizers
    import transformers
    from transformers import CLIPTokenizer

    texts = transformers5_texts(600, 4)
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
    out_path = args.out or REPO / "fixtures/tokenizer/corpus.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # One case per line: small diffs when the corpus changes, and well under 1 MB.
    lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in out["cases"]]
    tiny_lines = [json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in out["tiny_cut"]["cases"]]
    head = {k: v for k, v in out.items() if k not in ("cases", "tiny_cut")}
    text = "{\n" + "".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n" for k, v in head.items())
    text += '"cases": [\n' + ",\n".join(lines) + "\n],\n"
    text += '"tiny_cut": {"tokenizer": ' + json.dumps(out["tiny_cut"]["tokenizer"]) + ', "cases": [\n'
    text += ",\n".join(tiny_lines) + "\n]}\n}\n"
    assert json.loads(text) == out
    out_path.write_text(text, "utf-8")
    print(f"{out_path}: {len(texts)} standard cases, {len(tiny_texts)} tiny-cut cases, {len(text.encode())} bytes")


def ranges(codepoints):
    out = []
    for c in sorted(codepoints):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out

def strided(codepoints):
    out = []
    for c in sorted(codepoints):
        if out and c - out[-1][1] == out[-1][2]:
            out[-1][1] = c
        elif out and out[-1][0] == out[-1][1] and c - out[-1][1] <= 2:
            out[-1][1], out[-1][2] = c, c - out[-1][1]
        else:
            out.append([c, c, 1])
    return out

def write_tables(tables_rs: Path, entities_txt: Path) -> None:
    """sd-clip's normalisation data (see the module docstring)."""
    import html
    import html.entities
    import re
    import unicodedata

    import ftfy
    import ftfy.bad_codecs  # noqa: F401 (registers the sloppy codecs)
    from ftfy import badness, chardata

    ENC = ["latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250", "sloppy-windows-1253",
           "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2", "macroman", "cp437", "windows-1252"]
    assert ENC[:10] == chardata.CHARMAP_ENCODINGS
    lines = []
    w = lines.append
    w("// @generated by `tools/make_tokenizer_corpus.py --tables` from Python %s (Unicode %s) and ftfy %s."
      % (sys.version.split()[0], unicodedata.unidata_version, ftfy.__version__))
    w("// Data only (code points), regenerated rather than edited.")
    w("")
    w("/// Marks a byte a strict codec cannot decode.")
    w("pub(super) const UNDEFINED: u32 = u32::MAX;")
    w("")
    w("/// Bytes 0x80..=0xFF of each single-byte codec, as Python decodes them, in the order of")
    w("/// [`super::encoding::Codec`]. Bytes 0x00..=0x7F decode to ASCII in all of them (the sloppy")
    w("/// codecs but for 0x1A, which they decode to U+FFFD).")
    w("pub(super) const CHARMAP_HIGH: [[u32; 128]; %d] = [" % len(ENC))
    for enc in ENC:
        low = bytes(range(128)).decode(enc, errors="replace")
        expect = "".join(chr(i) for i in range(128))
        if enc.startswith("sloppy"):
            expect = expect[:0x1A] + "\ufffd" + expect[0x1B:]
        assert low == expect, enc
        row = []
        for b in range(0x80, 0x100):
            try:
                row.append(ord(bytes([b]).decode(enc)))
            except UnicodeDecodeError:
                row.append(None)
        full = [c for c in row if c is not None]
        assert len(set(full)) == len(full), enc
        w("    // %s" % enc)
        w("    [" + ", ".join("UNDEFINED" if c is None else "0x%X" % c for c in row) + "],")
    w("];")
    w("")

    CATS = ["common", "c1", "bad", "law", "currency", "start_punctuation", "end_punctuation", "numeric", "kaomoji",
            "upper_accented", "lower_accented", "upper_common", "lower_common", "box"]
    CLUES = ["utf8_first_of_2", "utf8_first_of_3", "utf8_first_of_4", "utf8_continuation", "utf8_continuation_strict"]
    masks = {}
    for bit, name in enumerate(CATS + CLUES):
        source = badness.MOJIBAKE_CATEGORIES[name] if name in CATS else chardata.UTF8_CLUES[name]
        cls = re.compile("[" + source + "]")
        for c in range(0x10000):
            if cls.match(chr(c)):
                masks[c] = masks.get(c, 0) | (1 << bit)
    w("/// ftfy's character classes (its badness categories, then its UTF-8 clues), one bit each in")
    w("/// this order: " + ", ".join(CATS + CLUES) + ".")
    w("pub(super) const CLASSES: &[(u32, u32)] = &[")
    items = sorted(masks.items())
    for i in range(0, len(items), 6):
        w("    " + " ".join("(0x%X, 0x%X)," % kv for kv in items[i:i + 6]))
    w("];")
    w("")

    word = [c for c in range(0x110000) if re.match(r"\w", chr(c))]
    w("/// Python `re`'s `\\w` on `str` (`str.isalnum()` or `_`): inclusive ranges.")
    w("pub(super) const WORD: &[(u32, u32)] = &[")
    rr = ranges(word)
    for i in range(0, len(rr), 8):
        w("    " + " ".join("(0x%X, 0x%X)," % tuple(r) for r in rr[i:i + 8]))
    w("];")
    w("")
    lower = [c for c in range(0x110000) if chr(c).lower() != chr(c)]
    w("/// The code points Python's `str.lower()` changes: (first, last, step) runs.")
    w("pub(super) const LOWERED: &[(u32, u32, u32)] = &[")
    ss = strided(lower)
    assert sorted(c for a, b, s in ss for c in range(a, b + 1, s)) == lower
    for i in range(0, len(ss), 6):
        w("    " + " ".join("(0x%X, 0x%X, %d)," % tuple(r) for r in ss[i:i + 6]))
    w("];")
    w("")

    def rust_str(s):
        return '"' + "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "\\u{%X}" % ord(ch) for ch in s) + '"'

    w("/// ftfy's `fix_character_width` map (halfwidth and fullwidth forms → NFKC).")
    w("pub(super) const WIDTH: &[(u32, &str)] = &[")
    for k, v in sorted(chardata.WIDTH_MAP.items()):
        w("    (0x%X, %s)," % (k, rust_str(v)))
    w("];")
    w("")
    w("/// ftfy's `fix_latin_ligatures` map.")
    w("pub(super) const LIGATURES: &[(u32, &str)] = &[")
    for k, v in sorted(chardata.LIGATURES.items()):
        w("    (0x%X, %s)," % (k, rust_str(v)))
    w("];")
    dec = [c for c in range(0x110000) if re.match(r"\d", chr(c))]
    w("")
    w("/// Python `re`'s `\\d` on `str` (`str.isdecimal()`): inclusive ranges.")
    w("pub(super) const DECIMAL: &[(u32, u32)] = &[")
    rr = ranges(dec)
    for i in range(0, len(rr), 8):
        w("    " + " ".join("(0x%X, 0x%X)," % tuple(r) for r in rr[i:i + 8]))
    w("];")
    w("")
    w("/// `html.unescape`'s replacements for the numeric references HTML5 calls invalid.")
    w("pub(super) const INVALID_CHARREFS: &[(u32, u32)] = &[")
    w("    " + " ".join("(0x%X, 0x%X)," % (k, ord(v)) for k, v in sorted(html._invalid_charrefs.items())))
    w("];")
    w("")
    w("/// The code points `html.unescape` drops from numeric references.")
    w("pub(super) const INVALID_CODEPOINTS: &[(u32, u32)] = &[")
    rr = ranges(html._invalid_codepoints)
    for i in range(0, len(rr), 8):
        w("    " + " ".join("(0x%X, 0x%X)," % tuple(r) for r in rr[i:i + 8]))
    w("];")
    Path(tables_rs).write_text("\n".join(lines) + "\n", "utf-8")

    # The HTML5 named character references: `name hex[,hex]` per line; `!NAME hex` lines are
    # ftfy's extra all-caps forms.
    ent = []
    for name, value in sorted(html.entities.html5.items()):
        ent.append(name + " " + ",".join("%X" % ord(c) for c in value))
    for key, value in sorted(chardata.HTML_ENTITIES.items()):
        name = key[1:]
        if html.entities.html5.get(name) != value:
            ent.append("!" + name + " " + ",".join("%X" % ord(c) for c in value))
    Path(entities_txt).write_text("\n".join(ent) + "\n", "utf-8")
    print(f"{tables_rs}, {entities_txt}: {len(items)} classified characters, {len(ent)} entities")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", choices=["a1111", "transformers5"], default="a1111")
    parser.add_argument("--tables", action="store_true", help="write sd-clip's normalisation tables instead")
    parser.add_argument("--out", type=Path, help="output file (default: by --reference)")
    parser.add_argument("--random", type=int, default=1300, help="number of assembled prompts (a1111)")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    if args.tables:
        write_tables(REPO / "crates/sd-clip/src/normalize/tables.rs", REPO / "crates/sd-clip/assets/html5_entities.txt")
    elif args.reference == "a1111":
        import ftfy.bad_codecs  # noqa: F401 (the sloppy codecs the mojibake sections use)

        a1111_reference(args)
    else:
        transformers5_reference(args)


if __name__ == "__main__":
    main()
