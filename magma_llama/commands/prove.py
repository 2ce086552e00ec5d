"""`magma-llama prove [--json] [NAME...]`: k-induction proofs, mutants and covers of the design table."""

from __future__ import annotations

import json

from magma_llama.errors import UsageError


def _workers(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        raise UsageError(f"--jobs must be an integer, got {s!r}") from None
    if n < 1:
        raise UsageError(f"--jobs must be >= 1, got {s}")
    return n


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prove", help="run the formal proofs (k-induction), mutants and covers with SymbiYosys + z3")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="design (all its jobs) or design.mutant; default: every design")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of {"name", "kind", "status", "seconds"}')
    p.add_argument("-j", "--jobs", type=_workers, default=2, help="parallel sby runs (default 2)")
    p.add_argument("--list", action="store_true", help="list the designs and their mutants, prove nothing")
    p.set_defaults(func=cmd_prove)


def cmd_prove(args) -> int:
    from magma_llama.formal import runner
    from magma_llama.formal.designs import select

    if args.list:
        for d in select(args.names):
            muts = ", ".join(f"{d.name}.{x}" for x in d.mutants) or "-"
            print(f"{d.name:<10} {'prove' if d.formal else 'emit only':<9} {d.doc}  [mutants: {muts}]")
        return 0
    results, wall = _prove_with_progress(args.names, args.jobs)
    if args.json:
        print(json.dumps([r.as_json() for r in results], indent=1))
    else:
        rows = [("name", "kind", "result", "engine", "seconds")]
        rows += [(r.name, r.kind, r.status, r.engine, f"{r.seconds:.2f}") for r in results]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        bad = [r for r in results if not r.ok]
        for r in bad:
            print(f"unexpected: {r.name} {r.kind} {r.status}: {r.detail}")
        print(f"{len(results)} jobs, {len(results) - len(bad)} as expected "
              f"(prove pass, mutant cex, cover pass), wall {wall:.1f} s")
    return 0 if all(r.ok for r in results) else 1


def _prove_with_progress(names, workers: int):
    """runner.prove, with `[done/total] jobs` rewritten in place on stderr when it is a terminal."""
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    from magma_llama.formal import runner, sby

    if not sys.stderr.isatty():
        return runner.prove(names, workers=workers)
    t0 = time.perf_counter()
    print("\rcompiling the designs...", end="", file=sys.stderr, flush=True)
    jobs = runner.plan(names)
    done = [0]

    def one(job):
        result = sby.run(job)
        done[0] += 1
        bar = "#" * (20 * done[0] // len(jobs))
        print(f"\r\033[K[{bar:<20}] {done[0]}/{len(jobs)} jobs, {time.perf_counter() - t0:.0f} s",
              end="", file=sys.stderr, flush=True)
        return result
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, jobs))
    print("\r\033[K", end="", file=sys.stderr, flush=True)
    return results, time.perf_counter() - t0
