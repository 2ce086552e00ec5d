"""SymbiYosys + z3 on the stream blocks: every proof passes by k-induction, every mutant
yields a counterexample, every cover is reached; the monitor itself can fail."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_cli_error, run_cli
from tests.streams_sim import once_per_test_run


def _prove_all(workdir):
    from magma_llama.formal import runner
    res, _ = runner.prove(None, workers=2, root=workdir)
    return {(r.name, r.kind): r for r in res}


@pytest.fixture(scope="session")
def results(request):
    return once_per_test_run(request, "formal", _prove_all)


def test_every_block_is_proven_by_induction(results):
    from magma_llama.formal.designs import select
    provable = [d for d in select([]) if d.formal]
    assert len(provable) >= 10
    for d in provable:
        r = results[(d.name, "prove")]
        assert r.status == "pass", (d.name, r.detail)


def test_every_cover_is_reached(results):
    covers = [r for (n, k), r in results.items() if k == "cover"]
    assert covers and all(r.status == "pass" for r in covers), [(r.name, r.detail) for r in covers if r.status != "pass"]


def test_every_mutant_gives_a_counterexample(results):
    from magma_llama.formal.designs import select
    for d in select([]):
        if d.formal is None:
            continue
        assert d.mutants, f"{d.name} has no mutant"
        for mutant in d.mutants:
            r = results[(f"{d.name}.{mutant}", "mutant")]
            assert r.status == "cex", (r.name, r.detail)


def test_monitor_alone_catches_a_broken_producer(tmp_path):
    """A producer that drops valid before the transfer: only the stream monitor can object."""
    import magma as m
    from magma_llama.formal import sby
    from magma_llama.verilog.emit import compile_verilog
    from magma_llama.formal.props import Props
    from magma_llama.streams.types import StreamOut

    class Blinker(m.Circuit):
        io = m.IO(O=StreamOut(m.Bits[2])) + m.ClockIO(has_reset=True)
        r = m.Register(m.Bit, init=0, reset_type=m.Reset)()
        r.I @= ~r.O
        io.O.valid @= r.O
        io.O.data @= m.bits(1, 2)
        p = Props(io)
        p.monitor(io.O)
        p.emit()

    v = compile_verilog(Blinker, tmp_path)
    r = sby.run(sby.Job("blinker", "mutant", Blinker.name, v, 6, tmp_path))
    assert r.status == "cex", r.detail


def test_cli_prove_json_subset():
    proc = run_cli("prove", "--json", "skid", "fifo.full_off_by_one", check=True)
    rows = json.loads(proc.stdout)
    assert [(r["name"], r["kind"], r["status"]) for r in rows] == [
        ("skid", "prove", "pass"), ("skid", "cover", "pass"), ("skid.drop", "mutant", "cex"),
        ("fifo.full_off_by_one", "mutant", "cex")]
    assert all(set(r) == {"name", "kind", "status", "seconds"} and r["seconds"] > 0 for r in rows)


def test_cli_prove_table():
    proc = run_cli("prove", "pipe.overwrite", check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "result", "engine", "seconds"]
    assert any(ln.split()[:3] == ["pipe.overwrite", "mutant", "cex"] for ln in lines)


@pytest.mark.parametrize("args,frag", [(["prove", "nosuch"], "unknown design"),
                                       (["prove", "fifo.nosuch"], "unknown mutant"),
                                       (["prove", "--jobs", "0"], "--jobs"),
                                       (["prove", "chain"], "emit only"),
                                       (["emit", "--format", "vhdl"], "invalid choice")])
def test_cli_bad_input(args, frag):
    assert_cli_error(run_cli(*args), frag)
