"""How far the hardware's integer arithmetic is from llama2.c, per weight format.

For each weight format and each scenario (greedy from BOS, and after two prompts):
- leading: generated tokens (after the prompt) equal to the float reference's, from the start;
- forced: teacher-forced top-1 agreement (golden fed the reference's tokens; its argmax
  compared with the reference's choice at every sampled position);
- max / median |logit error| over every logit of the teacher-forced run;
- min gap: the reference's smallest top-1/top-2 logit gap (how close the race ever is).
The float reference equals run.c token for token (tests/test_reference.py), so
"equal to the reference" is "equal to llama2.c".

    .venv/bin/python benchmarks/fidelity.py [--formats w8,w16,w24] [--group 32] [--rule mse|fit]
        [--frac 20] [--steps 256] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from magma_llama import paths  # noqa: E402
from magma_llama.golden.model import GoldenTransformer  # noqa: E402
from magma_llama.io.checkpoint import read_checkpoint  # noqa: E402
from magma_llama.io.tokenizer import BOS, read_tokenizer  # noqa: E402
from magma_llama.numerics.fixed import to_float  # noqa: E402
from magma_llama.numerics.functions import argmax  # noqa: E402
from magma_llama.numerics.image import from_bytes, quantize_checkpoint, to_bytes  # noqa: E402
from magma_llama.numerics.weights import DEFAULT_RULE, weight_format  # noqa: E402
from magma_llama.reference.forward import FloatTransformer  # noqa: E402

PROMPTS = ["", "Once upon a time", "Lily and Tom went"]


def greedy(forward, prompt: list[int], steps: int, keep_logits: bool = False):
    """run.c's greedy loop: ids chosen at each position (forced prompt included), logits per position."""
    token, ids, logits = prompt[0], [], []
    for pos in range(steps):
        lg = forward(token, pos)
        if keep_logits:
            logits.append(np.array(lg))
        nxt = prompt[pos + 1] if pos < len(prompt) - 1 else argmax(lg)
        ids.append(nxt)
        if nxt == BOS:
            break
        token = nxt
    return ids, logits


def measure(ckpt, tok, fmt_name: str, group: int, rule: str, frac: int, steps: int, refs: dict) -> list[dict]:
    fmt = weight_format(fmt_name, group, rule)
    image = from_bytes(to_bytes(quantize_checkpoint(ckpt, fmt)))
    rows = []
    for prompt_text in PROMPTS:
        prompt = tok.encode(prompt_text.encode(), bos=True)
        n = steps if not prompt_text else min(steps, 200)
        ref_ids, ref_logits = refs[prompt_text]
        start = len(prompt) - 1                      # first sampled position
        t0 = time.perf_counter()
        gold_ids, _ = greedy(GoldenTransformer(image, frac).forward, prompt, n)
        seconds = time.perf_counter() - t0
        leading = 0
        for a, b in zip(gold_ids[start:], ref_ids[start:]):
            if a != b:
                break
            leading += 1
        # teacher-forced: feed the reference's tokens
        g = GoldenTransformer(image, frac)
        agree, errs, gaps = 0, [], []
        for pos in range(len(ref_ids)):
            token = prompt[0] if pos == 0 else ref_ids[pos - 1]
            lg = to_float(g.forward(token, pos), frac)
            if pos < start:
                continue
            rl = ref_logits[pos].astype(np.float64)
            agree += int(argmax(lg) == ref_ids[pos])
            errs.append(np.abs(lg - rl))
            top = np.sort(rl)[-2:]
            gaps.append(top[1] - top[0])
        e = np.concatenate(errs)
        rows.append({
            "format": fmt_name, "group": group, "rule": rule, "frac": frac, "prompt": prompt_text or "(BOS)",
            "generated": len(ref_ids) - start, "leading": leading, "forced": agree, "forced_of": len(errs),
            "max_err": float(e.max()), "median_err": float(np.median(e)), "min_gap": float(min(gaps)),
            "min_gap_pos": start + int(np.argmin(gaps)),
            "golden_seconds": round(seconds, 2),
        })
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(paths.default_model()))
    ap.add_argument("--tokenizer", default=str(paths.default_tokenizer()))
    ap.add_argument("--formats", default="w8,w16,w24")
    ap.add_argument("--group", type=int, default=32)
    ap.add_argument("--rule", default=DEFAULT_RULE, choices=["fit", "mse"])
    ap.add_argument("--frac", type=int, default=None, help="activation fraction bits (default: ACT_FRAC)")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from magma_llama.numerics.fixed import ACT_FRAC
    frac = args.frac or ACT_FRAC
    ckpt = read_checkpoint(args.model)
    tok = read_tokenizer(args.tokenizer, ckpt.config.vocab_size)
    refs = {}
    for p in PROMPTS:
        n = args.steps if not p else min(args.steps, 200)
        refs[p] = greedy(FloatTransformer(ckpt).forward, tok.encode(p.encode(), bos=True), n, keep_logits=True)
    rows = []
    for f in args.formats.split(","):
        rows += measure(ckpt, tok, f, args.group, args.rule, frac, args.steps, refs)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"model {os.path.basename(args.model)}, activations Q{32 - frac}.{frac}, group {args.group}, "
          f"exponent rule {args.rule}")
    print("| weights | prompt | leading = ref | teacher-forced top-1 | max logit err | median logit err "
          "| min ref top-2 gap |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['format']} | {r['prompt']} | {r['leading']}/{r['generated']} | {r['forced']}/{r['forced_of']} "
              f"| {r['max_err']:.2g} | {r['median_err']:.2g} | {r['min_gap']:.2g} (pos {r['min_gap_pos']}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
