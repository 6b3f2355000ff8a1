#!/usr/bin/env python3
"""Reference data for the `sd-prompt` crate, produced by AUTOMATIC1111's own prompt parser.

The expected values are computed by importing `modules/prompt_parser.py` from a checkout of
stable-diffusion-webui, never by a re-implementation of it. That file needs only `lark`
(`pip install lark`). Its last line imports torch; only the functions that
never touch torch are called here, so a stub module stands in for it.

Version used for the committed fixtures: stable-diffusion-webui commit
28bd8e142d5f77b71ae8d7d7140b5da1b3a49906 (v1.10.x; the grammar with `[WHITESPACE]` around the
`when` number, empty alternatives and the hires-fix/old-scheduling `when` rules), Python 3.11.7
(Unicode 14.0.0 for `\\s`, `\\w`, `\\d`), and lark 1.1.2, the version A1111 pins
(`pip install --target DIR lark==1.1.2`, then `--lark-path DIR`), run under
twelve hash seeds (see `reference` below for why).

Usage:
    python tools/prompt_reference.py --a1111 /path/to/stable-diffusion-webui \\
        [--cases fixtures/prompt/cases.json] [--out fixtures/prompt/expected.json]
    python tools/prompt_reference.py --write-cases [--random 1200 --seed 3] [--cases PATH]
    python tools/prompt_reference.py --unicode-tables crates/sd-prompt/src/unicode_tables.rs

`cases.json` is a list of objects `{"prompt": str, "steps": [int, ...],
"hires_steps": int|null, "old_scheduling": bool}` (one case per prompt and step-setting
combination, `steps` being the base steps to evaluate at). `expected.json` holds, per case and
per step count: the AND split (`get_multicond_prompt_list`: each subprompt's text and weight),
the schedule of every subprompt (`get_learned_conditioning_prompt_schedules`) and
`parse_prompt_attention` of every scheduled text. Where A1111 itself raises (an invalid
weight such as `(a:1.2.3)`, a `when` that overflows to infinity, nesting beyond Python's
recursion limit) the case records `"error": "<exception type>"` instead; where A1111's answer
depends on the hash seed it records `"variants": [answer, ...]`.

Only A1111's file is read from the checkout (`modules/prompt_parser.py`); a directory holding
just that file under `modules/` is enough. None of A1111's code is copied into this project.
"""

import argparse
import json
import sys
import types
import unicodedata


# Hand-written prompts: A1111's doctests, the seed's prompts, and the corners of each rule.
CURATED = [
    # A1111 doctests (schedules and attention)
    "test", "a [b:3]", "a [b: 3]", "a [[[b]]:2]", "[(a:2):3]", "a [b : c : 1] d", "a[b:[c:d:2]:1]e",
    "a [unbalanced", "a [b:.5] c", "a [{b|d{:.5] c", "((a][:b:c [d:3]", "[a|(b:1.1)]", "[fe|]male",
    "[fe|||]male", "a [b:1.5] c", "normal text", "an (important) word", "(unbalanced", "\\(literal\\]",
    "(unnecessary)(parens)", "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]",
    "a red crown", "a [blue:green:5] jeweled crown",
    # the seed's prompts
    "half (realbenny-t1 | yoda) person, star war, art by artgerm and greg rutkowski and alphonse mucha",
    "half [realbenny-t1 | yoda] person, star war, art by artgerm and greg rutkowski and alphonse mucha",
    "half [realbenny-t1|yoda] person, star war, art by artgerm and greg rutkowski and alphonse mucha",
    "a photo of realbenny-t2 as a pixar character", "a photo of (realbenny-t2:1.2) as a pixar character",
    "a photo of [realbenny-t2] as a pixar character", "[realbenny-t1:yoda:0.5]", "[realbenny-t1:yoda:10]",
    "realbenny-t2, portrait, (realbenny-t1 AND yoda)", "a photo of realbenny-t2 AND a pixar character:0.7",
    "realbenny-t2 BREAK pixar character", "(realbenny-t2:1.5) [yoda:realbenny-t1:3]",
    # cheat sheet
    "(word)", "((word))", "[word]", "(word:1.5)", "(word:0.25)", "\\(word\\)", "[[word]]", "(((word)))",
    "(word: 1.5)", "(word :1.5 )", "(word:+1.5)", "(word:-1)", "(word:0)", "(word:1)", "(word:1.)", "(word:.5)",
    "(word:1.0)", "(word:2)", "(word:1e3)", "(word:abc)", "(word:)", "(word:1.5", "word:1.5)", "(a:1.5)(b:1.5)",
    "(a (b:1.5) c)", "[a (b) c]", "((a:2):2)", "([a]:2)", "[(a:2)]", "(a:2) (b:0.5) c",
    # editing
    "[a:b:0.5]", "[a:b:5]", "[a:b:1]", "[a:b:0]", "[a:b:-1]", "[a:b:1.0]", "[a:b:.5]", "[a:b:0.99]", "[a:b:10]",
    "[a:b:11]", "[a:b:100]", "[a:b:2.5]", "[a:b:1.5]", "[a::0.5]", "[:b:0.5]", "[::3]", "[b:3]", "[b:0.3]",
    "[a:b: 3 ]", "[a:b:3 ]", "[a:b:\t3]", "[a:b:+3]", "[a:b:1e1]", "[a:b:5.e-1]", "[a:b:3.]", "[a:b:-0.5]",
    "[a:b:0.3]", "[a:b:0.7]", "[a:b:0.1]", "[a:b:0.9]", "[a:b:0.33]", "[a:b:0.66]", "[a:b:c]", "[a:b:3:4]",
    "[a:b:3x]", "[a:b:1e]", "[a:b:1 2]", "[a:[b:c:2]:5]", "[[a:b:2]:c:5]", "[a:b:[c:3]]", "[a [b:c:2]:d:5]",
    "[(a:1.2):(b:0.8):0.5]", "([a:b:0.5]:1.3)", "[a:b:0.5] [c:d:0.5]", "[a:b:2][c:d:4][e:f:6]",
    "[a\\]:b:3]", "[a\\::b:3]", "[\\[a:b\\]:3]", "[a:b\\:c:3]", "\\[a:b:3\\]", "[a:b:3]]", "[[a:b:3]", "(([a:b:3]",
    "[a:b:3]))", "x [a: b : 3] y", "[ a : b : 3 ]", "[a:b:0.5]:2", "a:b:3", "[a:b]", "[a:b:]", "[:3]", "[:]",
    "[a:(b:c:d):3]", "[(a:b):3]", "[a:b:3",
    # alternation
    "[a|b]", "[a|b|c]", "[a|b|c|d|e]", "[|a]", "[a|]", "[|]", "[||]", "[a||b]", "[ a | b ]", "[a|[b|c]]",
    "[[a|b]|c]", "[a|b] [c|d|e]", "[a|(b:1.2)]", "[a|[b:c:3]]", "[[a|b]:c:3]", "[a|b:3]", "a|b", "(a|b)",
    "x | y [a:3]", "[a|b|]", "[(a)|[b]]", "[a\\|b]", "a\\|b", "[a|b]]", "[[a|b]", "([a|b])", "(x:y:[a|b])",
    # AND
    "a AND b", "a AND b AND c", "a AND b:0.5", "a:0.5 AND b:1.5", "a :0.5 AND b : 1.5", "a AND", "AND b",
    "AND", "a ANDb", "aAND b", "a and b", "a And b", "a AND\tb", "a\nAND\nb", "a AND b:-1", "a AND b:+2",
    "a AND b:.5", "a AND b:5.", "a AND b:1.2.3", "a AND b:1e3", "a:2", "a : 2 ", "a:2:3", "a::2", "a:", ":2",
    "a:b", "(a:1.2) AND [b|c]:0.5", "[a:b:3] AND [c|d]", "a AND  AND b", "ANDAND", "_AND_", "-AND-",
    "a AND b:٣", "a:١.٥", "a AND (b:1.5):2", "a (AND) b", "a [AND] b", "[a AND b:3]",
    # BREAK
    "a BREAK b", "a BREAK", "BREAK b", "BREAK", "BREAK BREAK", "a  BREAK  b", "aBREAK b", "a BREAKb",
    "a break b", "(a BREAK b)", "(BREAK)", "[BREAK]", "(a:1.2) BREAK (b:0.8)", "a\nBREAK\nb", "a,BREAK,b",
    "a BREAK_ b", "a éBREAK b", "a BREAK\u00a0b", "a\u3000BREAK b", "(BREAK:-1)", "\\(BREAK\\)",
    "a [b BREAK:c:3] d", "[a|BREAK]",
    # escapes and backslashes
    "\\\\", "\\", "a\\", "a\\\nb", "\\a", "\\\\(a)", "\\((a)\\)", "(a\\)", "[a\\]", "(a\\):1.2)", "a\\:b",
    "\\:", "(a\\:1.5)", "\\ ", "(a)\\", "[a]\\", "\\\\\\(", "(\\\\)", "[\\|]",
    # unbalanced and odd
    "(((a", "[[[a", "a)))", "a]]]", "(a]", "[a)", "([a)]", "(a [b) c]", ")(", "][", "(", ")", "[", "]", ":",
    "::", "((", "))", "(a))", "((a)", "[a]]", "[[a]", "(a:1.2))", "((a:1.2)", "([a:1.2])", "(a:1.2:1.3)",
    "(a:(b:1.2))", "(:1.2)", "(a:1.2 )", "( a : 1.2 )", "(a:1..2)", "(a:.)", "(a:-.5)", "(a:+)", "(a:1.2.3)",
    "a:1.5)", ":1.5)", "(a:١.٥)", "(a:٣)",
    # whitespace, unicode, emoji
    "", " ", "  a  ", "\t", "\n", "a\r\nb", "a\u00a0b", "日本語の(猫:1.2)", "🐱 (🐶) [🐭]", "[🐱:🐶:0.5]",
    "[🐱|🐶]", "café (crème)", "Ünïcödé [ä|ö]", "ḁ̈ (x)", "a\u200bb", "(a\u3000:1.5)", "(a:\u30001.5)",
    "((🦄:1.3))", "\u0660", "[a:b:\u0663]",
    # embedding names with digits and hyphens
    "realbenny-t1", "(realbenny-t1:1.1)", "[realbenny-t1|realbenny-t2]", "realbenny-t1-1000 realbenny_t2",
    "style-by-x123, [sd15-emb:sd21-emb:0.3]",
    # longer realistic prompts
    "masterpiece, best quality, (ultra-detailed:1.2), [cinematic|dramatic] lighting, 8k, (((realbenny-t2))), [bokeh::0.8]",
    "portrait of a woman, (freckles:0.8), [[blurry]], (sharp focus:1.3) BREAK background, forest, [spring:autumn:0.5]",
    "a [dog:cat:0.3] sitting on a [red|blue|green] chair AND a window:0.5 AND (sunlight:1.2):0.25",
]


def load_prompt_parser(a1111):  # noqa: D103
    # prompt_parser.py ends with `import torch` when imported as a module; nothing we call uses it.
    sys.modules.setdefault("torch", types.ModuleType("torch"))
    sys.path.insert(0, a1111)
    from modules import prompt_parser  # noqa: E402

    return prompt_parser


def evaluate(pp, prompt, steps, hires_steps, old_scheduling):
    res_indexes, flat, _ = pp.get_multicond_prompt_list([prompt])
    schedules = pp.get_learned_conditioning_prompt_schedules(
        flat, steps, hires_steps, old_scheduling
    )
    subprompts = []
    for index, weight in res_indexes[0]:
        schedule = []
        for end_at_step, text in schedules[index]:
            attention = [[t, float(w)] for t, w in pp.parse_prompt_attention(text)]
            schedule.append({"end_at_step": end_at_step, "text": text, "attention": attention})
        subprompts.append({"text": flat[index], "weight": float(weight), "schedule": schedule})
    return subprompts


def run_cases(pp, cases):
    out = []
    for case in cases:
        results = []
        for steps in case["steps"]:
            entry = {"steps": steps}
            try:
                entry["subprompts"] = evaluate(
                    pp, case["prompt"], steps, case.get("hires_steps"), case.get("old_scheduling", False)
                )
            except Exception as e:  # A1111 itself fails on this input: record that.
                entry["error"] = type(e).__name__
            results.append(entry)
        out.append(results)
    return out


def worker(args):
    if args.lark_path:
        sys.path.insert(0, args.lark_path)
    pp = load_prompt_parser(args.a1111)
    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    json.dump(run_cases(pp, cases), sys.stdout, ensure_ascii=False)


def reference(args):
    """Runs the cases once per hash seed and merges the answers.

    lark's Earley parser resolves some ambiguities of this grammar (for example whether the
    `[a:3]` of `[a:3]))` is an edit or literal text) by the iteration order of Python sets,
    which in lark 1.1.2 (the version A1111 pins) follows `PYTHONHASHSEED`: A1111 answers
    differently from one launch to the next. Each seed runs in its own process; where they
    disagree the case keeps every distinct answer under `"variants"`.
    """
    import subprocess

    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    seeds = [int(s) for s in args.seeds.split(",")]
    procs = []
    for seed in seeds:
        cmd = [sys.executable, __file__, "--worker", "--a1111", args.a1111, "--cases", args.cases]
        if args.lark_path:
            cmd += ["--lark-path", args.lark_path]
        env = dict(__import__("os").environ, PYTHONHASHSEED=str(seed))
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env))
    runs = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(f"worker failed with {p.returncode}")
        runs.append(json.loads(stdout))
    out, ambiguous = [], 0
    for i, case in enumerate(cases):
        results = []
        for j, steps in enumerate(case["steps"]):
            answers = []
            for run in runs:
                if run[i][j] not in answers:
                    answers.append(run[i][j])
            if len(answers) == 1:
                results.append(answers[0])
            else:
                ambiguous += 1
                results.append({"steps": steps, "variants": answers})
        out.append(
            {
                "prompt": case["prompt"],
                "hires_steps": case.get("hires_steps"),
                "old_scheduling": case.get("old_scheduling", False),
                "results": results,
            }
        )
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in out) + "\n]\n")
    print(f"wrote {len(out)} cases to {args.out} ({ambiguous} evaluations differ between hash seeds)")

RANDOM_PIECES = ["(", ")", "[", "]", ":", "|", "\\", " ", "AND", "BREAK", "a", "b", "x", "1", "2", "0",
                 ".", "5", "-", "+", "\t", "\n", "é", "🐱", "_", "e", "٣", "\u00a0"]


def random_prompt(rng):
    """A random string over the prompt language's alphabet (weighted towards structure)."""
    n = rng.randint(0, 24)
    return "".join(rng.choice(RANDOM_PIECES) for _ in range(n))


def make_cases(n_random, seed):
    import random

    rng = random.Random(seed)
    cases = []
    for p in CURATED:
        cases.append({"prompt": p, "steps": [0, 1, 10, 23], "hires_steps": None, "old_scheduling": False})
        cases.append({"prompt": p, "steps": [20], "hires_steps": 10, "old_scheduling": False})
        cases.append({"prompt": p, "steps": [10], "hires_steps": None, "old_scheduling": True})
        cases.append({"prompt": p, "steps": [20], "hires_steps": 10, "old_scheduling": True})
    settings = [([7], None, False), ([12], 6, False), ([9], None, True)]
    for i in range(n_random):
        steps, hires, old = settings[i % len(settings)]
        cases.append({"prompt": random_prompt(rng), "steps": steps, "hires_steps": hires, "old_scheduling": old})
    return cases


def write_cases(args):
    cases = make_cases(args.random, args.seed)
    with open(args.cases, "w", encoding="utf-8") as f:
        # One case a line: small, and diffs stay readable.
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
    print(f"wrote {len(cases)} cases to {args.cases}")


def ranges(pred):
    out, start = [], None
    for c in range(0x110000):
        ok = not (0xD800 <= c <= 0xDFFF) and pred(chr(c))
        if ok and start is None:
            start = c
        if not ok and start is not None:
            out.append((start, c - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return out


def unicode_tables(path):
    word = ranges(lambda ch: ch.isalnum() or ch == "_")
    space = ranges(lambda ch: ch.isspace())
    nd = ranges(lambda ch: unicodedata.category(ch) == "Nd")
    for a, b in nd:  # Every Nd block is a run of whole 0..9 sequences, so a zero point suffices.
        assert (b - a + 1) % 10 == 0
        assert all(unicodedata.decimal(chr(a + i)) == i % 10 for i in range(b - a + 1))

    def table(name, doc, rs):
        rows = "\n".join(f"    (0x{a:04X}, 0x{b:04X})," for a, b in rs)
        return f"/// {doc}\npub(crate) const {name}: &[(u32, u32)] = &[\n{rows}\n];\n"

    text = (
        "// @generated by tools/prompt_reference.py --unicode-tables "
        f"(Python {sys.version.split()[0]}, Unicode {unicodedata.unidata_version}).\n"
        "// Python's `re` classes for `str` patterns, which A1111's regexes use.\n\n"
        + table("WORD", "`\\w`: `str.isalnum()` or `_`.", word)
        + "\n"
        + table("SPACE", "`\\s`: `str.isspace()`.", space)
        + "\n"
        + table("DECIMAL", "`\\d`: general category Nd; each range is whole runs of 0..=9.", nd)
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a1111", help="path to a stable-diffusion-webui checkout (containing modules/prompt_parser.py)")
    ap.add_argument("--cases", default="fixtures/prompt/cases.json")
    ap.add_argument("--out", default="fixtures/prompt/expected.json")
    ap.add_argument("--unicode-tables", metavar="PATH", help="write the Rust Unicode tables instead")
    ap.add_argument("--lark-path", help="a directory holding the lark package to use (e.g. pip install --target DIR lark==1.1.2)")
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9,10,11", help="PYTHONHASHSEED values to run under")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--write-cases", action="store_true", help="write the cases file (curated + random) instead")
    ap.add_argument("--random", type=int, default=1200, help="random prompts in --write-cases")
    ap.add_argument("--seed", type=int, default=3, help="seed of the random prompts")
    args = ap.parse_args()
    if args.worker:
        worker(args)
    elif args.write_cases:
        write_cases(args)
    elif args.unicode_tables:
        unicode_tables(args.unicode_tables)
    elif args.a1111:
        reference(args)
    else:
        ap.error("give --a1111 PATH or --unicode-tables PATH")


if __name__ == "__main__":
    main()
