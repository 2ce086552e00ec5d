"""The random-stall bench itself: the log holds every bit of a payload of any logged
width (fault hands run_bench's format to printf, and Verilator keeps 33..64-bit signals
in 64-bit words), and a payload too wide to print is refused, not garbled."""

from __future__ import annotations

import pytest

from tests.streams_sim import Sim, check_protocol, once_per_test_run, source_prefix

# one pipe per payload width: CData, IData and QData words of Verilator at and around their edges
WIDTHS = (8, 31, 32, 33, 48, 63, 64)
RUNS = [(0x1234, 200, 200), (0x0BAD, 128, 90)]
CYCLES = 400


def _simulate(workdir):
    import magma as m
    from magma_llama.streams import Pipe
    from magma_llama.streams.testbench import make_bench, run_bench
    duts = {f"p{w}": Pipe(m.Bits[w]) for w in WIDTHS}
    bench, infos, extras = make_bench(duts, name="WidthBench")
    return Sim(infos, extras, run_bench(bench, infos, extras, RUNS, CYCLES, workdir))


@pytest.fixture(scope="module")
def sim(request):
    return once_per_test_run(request, "width_bench", _simulate)


@pytest.mark.parametrize("w", WIDTHS)
def test_logged_payload_keeps_every_bit(sim, w):
    """Source beats logged equal the ROM's, and the pipe's output beats equal them."""
    label = f"p{w}"
    high = 0
    for run in sim.runs:
        check_protocol(sim, label, run)
        ins = source_prefix(sim, run, f"{label}_I")
        outs = run.transfers(f"{label}_O")
        assert len(outs) > 50 and outs == ins[:len(outs)], f"{label}: output beats differ from the input"
        assert all(v < (1 << w) for v in ins + outs)
        high += sum(v >> (w - 1) for v in outs)
    assert high > 20, f"{label}: too few beats with the top bit set to show it survives"


def test_payload_wider_than_64_bits_must_be_unprinted(tmp_path):
    import magma as m
    from magma_llama.streams import Pipe
    from magma_llama.streams.testbench import make_bench, run_bench
    bench, infos, extras = make_bench({"p65": Pipe(m.Bits[65])}, name="WideBench")
    with pytest.raises(ValueError, match="p65_I_data"):
        run_bench(bench, infos, extras, RUNS, 10, tmp_path)
