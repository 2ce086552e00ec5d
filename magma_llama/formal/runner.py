"""Plan and run the proof jobs of the design table: prove, cover, and one job per mutant.

Designs are compiled (with their properties) in this process, one after the
other; the sby runs, which take the time, go to a thread pool."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from magma_llama import paths
from magma_llama.formal import sby
from magma_llama.formal.designs import UnknownDesignError, select
from magma_llama.verilog.emit import compile_verilog

KINDS = ("prove", "cover", "mutant")


def plan(names: list[str] | None = None, root: Path | None = None) -> list[sby.Job]:
    """Compile what the named jobs need; `fifo` means all jobs of fifo, `fifo.X` one mutant."""
    root = Path(root or paths.build_dir() / "formal").resolve()   # sby runs in the job folder
    names = list(names or [])
    jobs: list[sby.Job] = []
    for design in select(names):
        if design.formal is None:
            if names:
                raise UnknownDesignError(f"{design.name} has no proofs (it is emit only)")
            continue
        wanted = [n for n in names if n.split(".", 1)[0] == design.name]
        whole = not names or design.name in wanted
        variants = []
        if whole:
            variants += [(None, "prove", design.depth), (None, "cover", design.cover_depth)]
        for mutant in design.mutants:
            if whole or f"{design.name}.{mutant}" in wanted:
                variants.append((mutant, "mutant", design.mutant_depth))
        compiled: dict = {}
        for mutant, kind, depth in variants:
            name = design.name + (f".{mutant}" if mutant else "")
            workdir = root / name
            if mutant not in compiled:
                circuit = design.formal(mutant=mutant)
                compiled[mutant] = (circuit.name, compile_verilog(circuit, workdir))
            top, verilog = compiled[mutant]
            jobs.append(sby.Job(name, kind, top, verilog, depth, workdir))
    return jobs


def run(jobs: list[sby.Job], workers: int = 2) -> list[sby.Result]:
    """Run the jobs, `workers` at a time; results in the order of `jobs`."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(sby.run, jobs))


def prove(names=None, workers: int = 2, root: Path | None = None) -> tuple[list[sby.Result], float]:
    t0 = time.perf_counter()
    results = run(plan(names, root), workers)
    return results, time.perf_counter() - t0
