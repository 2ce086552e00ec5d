"""Simulator speed of decoder builds, side by side in one run.

    python benchmarks/sim_speed.py BUILD_DIR [BUILD_DIR ...] --weights IMAGE.hex [--tokens 64]
        [--repeats 5] [--json]

Each BUILD_DIR is a cached build of decoder/build.py (`build/rtl/<key>/`, its binary in
obj/Vharness), e.g. the same config at two commits; IMAGE.hex the weight image they read
(`build/weights/`).  Per build: the harness is started and reset with no tokens
(startup: mostly `$readmemh` of the image), and then run for N greedy tokens from BOS;
each `repeats` times, the builds taking turns, and the fastest time of each kept (this
machine's neighbours only ever add time).  Simulation seconds = run - startup.  The
cycles are the harness's own count, so two builds of the same decoder must agree on them
(a check that the comparison is fair); builds of different decoders compare tok/s."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


class BenchError(Exception):
    """A build or run that cannot be measured: one `error:` line, exit 2."""


def _time(binary: Path, image: Path, script: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(binary), f"+weights={image}", "+latency=2", "+bytes_per_cycle=0"],
                          input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"{binary} exited with status {proc.returncode}: {last}")
    return time.perf_counter() - t0, proc.stdout


def measure(builds: list[Path], image: Path, tokens: int, repeats: int) -> list[dict]:
    """Per build: startup and run times, interleaved across the builds (a slow spell of the
    machine hits every build alike), the minimum of the repeats (other work on the machine
    only ever adds time)."""
    binaries = []
    for build in builds:
        binary = build / "obj" / "Vharness"
        if not binary.exists():
            raise BenchError(f"no harness binary in {build} (a build directory of build/rtl/)")
        binaries.append(binary)
    start = [[] for _ in builds]
    runs = [[] for _ in builds]
    cycles = [None for _ in builds]
    for _ in range(repeats):
        for i, binary in enumerate(binaries):
            start[i].append(_time(binary, image, "reset 0 0\nquit\n")[0])
            t, out = _time(binary, image, f"reset 0 0\ntok 1 1\nrun {tokens} 1000000000\nquit\n")
            done = [line.split() for line in out.splitlines() if line.startswith("done")]
            if not done:
                raise BenchError(f"{binary} did not finish {tokens} tokens")
            runs[i].append(t)
            cycles[i] = int(done[0][1])
    rows = []
    for i, build in enumerate(builds):
        sim = max(1e-9, min(runs[i]) - min(start[i]))
        key = json.loads((build / "key.json").read_text()) if (build / "key.json").exists() else {}
        rows.append({"build": str(build), "config": key.get("config"), "lanes": key.get("lanes"),
                     "bits": key.get("bits"), "tokens": tokens, "cycles": cycles[i], "startup_s": min(start[i]),
                     "sim_s": sim, "sim_tokens_per_s": tokens / sim, "cycles_per_s": cycles[i] / sim,
                     "run_s_median": statistics.median(runs[i])})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", type=Path, metavar="BUILD_DIR")
    ap.add_argument("--weights", type=Path, required=True, metavar="IMAGE.hex")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON list instead of the table")
    a = ap.parse_args(argv)
    if not a.weights.exists():
        print(f"error: no weight image {a.weights}", file=sys.stderr)
        return 2
    if a.tokens < 1 or a.repeats < 1:
        print("error: --tokens and --repeats must be at least 1", file=sys.stderr)
        return 2
    try:
        rows = measure(a.builds, a.weights, a.tokens, a.repeats)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| build | L | w | tokens | cycles | startup s | sim s | sim tok/s | M cycles/s | vs first |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['build']).name[:12]} | {r['lanes']} | {r['bits']} | {r['tokens']} | {r['cycles']} | "
              f"{r['startup_s']:.2f} | {r['sim_s']:.2f} | {r['sim_tokens_per_s']:.2f} | "
              f"{r['cycles_per_s'] / 1e6:.2f} | {rows[0]['sim_s'] / r['sim_s']:.2f}x |")
    if len({r["cycles"] for r in rows}) > 1:
        print("note: the builds disagree on cycles: they are not the same decoder (compare sim tok/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
