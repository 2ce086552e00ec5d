#!/usr/bin/env python3
"""Compare magma-llama with llama2.c's run.c built from source on this machine.

    python tools/runc_compare.py --runc-src PATH/TO/llama2.c/run.c [--models DIR]

run.c is not part of this project: point at a checkout of karpathy/llama2.c.
The script compiles two instrumented copies into a temporary folder (one prints
each chosen id to stderr, one exposes encode()), then checks, case by case:
  - `ref --ids` equals run.c's ids (greedy, sampled, top-p, with a prompt);
  - `ref` text equals run.c's text;
  - `encode` equals run.c's encode() on awkward strings, for each tokenizer given.
Exit status 1 if anything differs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HOOK_AFTER = "        pos++;\n"
HOOK = '        fprintf(stderr, "%d ", next);\n'

ENCODE_MAIN = r"""
#define TESTING
#include "run.c"
int main(int argc, char** argv) {
  Tokenizer t; build_tokenizer(&t, argv[1], atoi(argv[2]));
  int n; int* toks = malloc((strlen(argv[3]) + 3) * sizeof(int));
  encode(&t, argv[3], 1, 0, toks, &n);
  for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", toks[i]);
  printf("\n");
  return 0;
}
"""

TEXTS = [
    "Once upon a time",
    "Hello world",
    "   three leading spaces and  two   inside",
    "tab\tseparated\tvalues",
    "naïve café, déjà vu, Ångström",
    "漢字とかな 中文",
    "emoji 🦙🔥 and 👍🏽",
    "digits 0123456789 and 3.14159, -42",
    "punctuation: !@#$%^&*()[]{};:'\",.<>/?\\|`~",
    "a",
    "",
]


def build(src: Path, work: Path) -> tuple[Path, Path]:
    text = src.read_text()
    if HOOK_AFTER not in text:
        sys.exit(f"{src}: cannot find the hook point in generate(); is this llama2.c's run.c?")
    (work / "run.c").write_text(text)
    (work / "run_ids.c").write_text(text.replace(HOOK_AFTER, HOOK_AFTER + HOOK, 1))
    (work / "encode.c").write_text(ENCODE_MAIN)
    for name in ("run_ids", "encode"):
        subprocess.run(["gcc", "-O3", "-o", str(work / name), str(work / f"{name}.c"), "-lm"], check=True)
    return work / "run_ids", work / "encode"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--runc-src", required=True, type=Path)
    ap.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "models")
    ap.add_argument("--magma-llama", default=str(Path(sys.executable).parent / "magma-llama"))
    args = ap.parse_args()
    model, tok512, tok32k = (args.models / n for n in ("stories260K.bin", "tok512.bin", "tokenizer.bin"))
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        run_ids, encode = build(args.runc_src, Path(tmp))
        cases = [
            ("greedy from BOS, 256 steps", ["-t", "0", "-n", "256"]),
            ("t 0.8 p 0.9 s 42", ["-t", "0.8", "-p", "0.9", "-s", "42", "-n", "256"]),
            ("t 1.0 p 1.0 (multinomial) s 7", ["-t", "1.0", "-p", "1.0", "-s", "7", "-n", "256"]),
            ("t 0.5 p 0.5 s 1234", ["-t", "0.5", "-p", "0.5", "-s", "1234", "-n", "256"]),
            ("prompt, greedy", ["-t", "0", "-n", "200", "-i", "Once upon a time"]),
            ("prompt, t 0.8 s 3", ["-t", "0.8", "-s", "3", "-n", "200", "-i", "Lily and Tom went"]),
        ]
        for name, flags in cases:
            c = subprocess.run([str(run_ids), str(model), "-z", str(tok512), *flags],
                               capture_output=True, text=True)
            c_ids = c.stderr.split("achieved")[0].split()
            ours = subprocess.run([args.magma_llama, "ref", "--model", str(model), "--tokenizer", str(tok512),
                                   *flags, "--ids"], capture_output=True, text=True)
            text = subprocess.run([args.magma_llama, "ref", "--model", str(model), "--tokenizer", str(tok512),
                                   *flags], capture_output=True)
            same_ids = ours.stdout.split() == c_ids
            same_text = text.stdout == c.stdout.encode()
            failures += not (same_ids and same_text)
            print(f"{'ok  ' if same_ids and same_text else 'DIFF'} ref {name}: {len(c_ids)} ids "
                  f"{'equal' if same_ids else 'differ'}, text {'equal' if same_text else 'differs'}")
        for tok, vocab in ((tok512, 512), (tok32k, 32000)):
            if not tok.exists():
                print(f"skip encode with {tok.name}: not found")
                continue
            for t in TEXTS:
                c = subprocess.run([str(encode), str(tok), str(vocab), t], capture_output=True, text=True).stdout
                ours = subprocess.run([args.magma_llama, "encode", "--tokenizer", str(tok), t],
                                      capture_output=True, text=True).stdout
                same = c.split() == ours.split()
                failures += not same
                print(f"{'ok  ' if same else 'DIFF'} encode {tok.name} {t!r}: {len(c.split())} ids")
    print(f"{failures} difference(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
