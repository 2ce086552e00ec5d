"""KV cache (magma_llama/stages/kv_cache.py): fault + Verilator with random writes, reads
and stalls against a Python model of the memory; SymbiYosys proof, cover and mutant.

One Verilator build holds the cache and its `no_bypass` mutant (8 rows x 2 words x 8
bits, so writes and reads of one address in the same cycle are frequent) and is shared
by the tests and pytest-xdist workers."""

from __future__ import annotations

import pytest

from tests.streams_sim import (RUNS, ModelMismatch, Sim, check, check_protocol, fire_cycles,
                               once_per_test_run, source_prefix)

ROWS, WORDS, BITS = 8, 2, 8
CYCLES = 2000


def _rom(label, port, widths, rng):
    # leaves: row, word (and data for W); every address in range
    if port == "W":
        return [rng.randrange(ROWS) | rng.randrange(WORDS) << widths[0]
                | rng.getrandbits(BITS) << (widths[0] + widths[1]) for _ in range(256)]
    return [rng.randrange(ROWS) | rng.randrange(WORDS) << widths[0] for _ in range(256)]


def _simulate(workdir):
    from magma_llama.stages.kv_cache import KvCache
    from magma_llama.streams.testbench import make_bench, run_bench
    duts = {"kv": KvCache(ROWS, WORDS, BITS), "kv_mut": KvCache(ROWS, WORDS, BITS, mutant="no_bypass")}
    bench, infos, extras = make_bench(duts, rom_fn=_rom, name="KvCacheBench")
    runs = run_bench(bench, infos, extras, RUNS, CYCLES, workdir)
    return Sim(infos, extras, runs)


@pytest.fixture(scope="session")
def kv_sim(request) -> Sim:
    return once_per_test_run(request, "kv_cache_bench", _simulate)


def memory_model(sim, label, run):
    """Replay the cycle log on a dict: a read accepted in cycle t returns the latest write
    accepted in a cycle <= t (the same-cycle write included).  Returns (reads checked,
    same-cycle read/write pairs)."""
    source_prefix(sim, run, f"{label}_W")
    source_prefix(sim, run, f"{label}_R")
    w_info, r_info = sim.infos[f"{label}_W"], sim.infos[f"{label}_R"]
    mem, want, bypasses = {}, [], 0
    for r in run.rows:
        w_fire = r[f"{label}_W_valid"] and r[f"{label}_W_ready"]
        wrow, wword, wdata = w_info.split(r[f"{label}_W_data"])
        if r[f"{label}_R_valid"] and r[f"{label}_R_ready"]:
            addr = r_info.split(r[f"{label}_R_data"])
            if w_fire and (wrow, wword) == addr:
                want.append(wdata)
                bypasses += 1
            else:
                want.append(mem.get(addr))      # None: never written, any value allowed
        if w_fire:
            mem[(wrow, wword)] = wdata
    got = run.transfers(f"{label}_D")
    check(0 <= len(want) - len(got) <= 1, f"{label}: {len(want)} reads, {len(got)} answers")
    for k, (g, w) in enumerate(zip(got, want)):
        if w is not None:
            check(g == w, f"{label}: read {k} returned {g:#x}, latest write was {w:#x} (seed {run.seed:#x})")
    # one cycle latency: each answer leaves at or after the cycle following its request
    rc, dc = fire_cycles(run, f"{label}_R"), fire_cycles(run, f"{label}_D")
    check(all(d > q for q, d in zip(rc, dc)), f"{label}: an answer before its request")
    return sum(w is not None for w in want[:len(got)]), bypasses


def test_reads_return_latest_write_under_random_stalls(kv_sim):
    checked = bypasses = 0
    for run in kv_sim.runs:
        check_protocol(kv_sim, "kv", run)
        c, b = memory_model(kv_sim, "kv", run)
        checked += c
        bypasses += b
    assert checked > 2000 and bypasses > 100, (checked, bypasses)


def test_full_read_rate_when_unstalled(kv_sim):
    run = kv_sim.runs[1]                   # sources and sinks ~98% ready
    assert len(run.transfers("kv_D")) / len(run.rows) > 0.9


def test_mutant_without_bypass_is_caught(kv_sim):
    with pytest.raises(ModelMismatch):
        for run in kv_sim.runs:
            check_protocol(kv_sim, "kv_mut", run)
            memory_model(kv_sim, "kv_mut", run)


# -- formal ---------------------------------------------------------------------------------

def _prove(workdir):
    from magma_llama.formal import runner
    res, _ = runner.prove(["kv_cache"], workers=2, root=workdir)
    return {(r.name, r.kind): r for r in res}


@pytest.fixture(scope="session")
def kv_formal(request):
    return once_per_test_run(request, "kv_cache_formal", _prove)


def test_bypass_proven_by_induction(kv_formal):
    r = kv_formal[("kv_cache", "prove")]
    assert r.status == "pass", r.detail


def test_same_cycle_read_write_cover_reached(kv_formal):
    r = kv_formal[("kv_cache", "cover")]
    assert r.status == "pass", r.detail


def test_no_bypass_mutant_gives_counterexample(kv_formal):
    r = kv_formal[("kv_cache.no_bypass", "mutant")]
    assert r.status == "cex", r.detail
