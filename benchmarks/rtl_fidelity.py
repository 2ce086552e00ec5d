"""The RTL against the golden model and run.c: `magma-llama generate --ids` vs `golden --ids`
for each weight format, greedy from BOS and after a prompt, plus run.c's ids for w16 greedy
(tests/data/runc_oracle.json holds them).  Prints a table; --json prints the rows.

    .venv/bin/python benchmarks/rtl_fidelity.py [--formats w8,w16,w24] [--lanes 16] [--steps 64]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from magma_llama import paths  # noqa: E402

CLI = [sys.executable, "-m", "magma_llama"]
PROMPTS = ["", "Once upon a time"]


def ids(*args) -> tuple[list[int], str, float]:
    t = time.perf_counter()
    p = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise SystemExit(f"error: magma-llama {' '.join(map(str, args))}: {p.stderr.strip()}")
    return list(map(int, p.stdout.split())), p.stderr, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default="w8,w16,w24")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    oracle = json.load(open(os.path.join(ROOT, "tests", "data", "runc_oracle.json")))["generate"]
    model, tok = str(paths.default_model()), str(paths.default_tokenizer())
    rows = []
    for fmt in a.formats.split(","):
        for prompt in PROMPTS:
            common = ["-m", model, "-z", tok, "--weights", fmt, "-t", 0, "-n", a.steps, "-i", prompt, "--ids"]
            rtl, err, secs = ids("generate", "--lanes", a.lanes, *common)
            gold, _, _ = ids("golden", *common)
            runc = oracle["greedy" if not prompt else "prompt_greedy"]
            flags = runc["flags"]
            runc_prompt = flags[flags.index("-i") + 1] if "-i" in flags else ""
            rc = runc["ids"][:a.steps] if runc_prompt == prompt else None
            stat = next((line for line in err.splitlines() if line.startswith("rtl:")), "")
            rows.append({"weights": fmt, "prompt": prompt, "steps": len(rtl), "rtl_equals_golden": rtl == gold,
                         "rtl_equals_runc": (rtl == rc) if rc is not None else None,
                         "rtl": stat, "seconds": round(secs, 1)})
    if a.json:
        print(json.dumps(rows))
        return 0
    print(f"{'weights':<8} {'prompt':<18} {'steps':>5}  {'= golden':<9} {'= run.c':<8} rtl")
    for r in rows:
        rc = "-" if r["rtl_equals_runc"] is None else ("yes" if r["rtl_equals_runc"] else "NO")
        print(f"{r['weights']:<8} {repr(r['prompt']):<18} {r['steps']:>5}  "
              f"{'yes' if r['rtl_equals_golden'] else 'NO':<9} {rc:<8} {r['rtl']}")
    return 0 if all(r["rtl_equals_golden"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
