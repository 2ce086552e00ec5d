"""Cycles of the MatVec engine per matrix, measured in Verilator, against rows * cols / L.

Each engine is simulated with its streams always valid / ready (no stalls) for two
matrices: the first vector is loaded (one activation a cycle), then the rows stream
while the second vector loads into the other bank; the figures are read from the
per-cycle trace.  "steady" is the period of a matrix once the banks overlap loading
and computing (last Y of matrix 1 to last Y of matrix 2).  One Verilator build per
(L, rows, cols), in forked processes.

  .venv/bin/python benchmarks/matvec_cycles.py [--lanes 4 16 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
from pathlib import Path

SHAPES = [(64, 64), (172, 64), (64, 172)]   # (rows, cols)
BITS = 16


def _wrapper(L, rows, cols):
    import magma as m
    from magma_llama.numerics.fixed import ACT_BITS
    from magma_llama.stages.matvec import MatVec
    dut = MatVec(L, BITS, cols, rows)

    class Wrap(m.Circuit):
        name = f"MatVecCycles_L{L}_r{rows}_c{cols}"
        io = m.IO(X_ready=m.Out(m.Bit), W_ready=m.Out(m.Bit), Y_valid=m.Out(m.Bit),
                  Y_data=m.Out(m.Bits[ACT_BITS])) + m.ClockIO(has_reset=True)
        d = dut()
        d.X.valid @= m.bit(1)
        d.X.data @= m.bits(1 << 20, ACT_BITS)
        d.W.valid @= m.bit(1)
        for j in range(L):
            d.W.data.mant[j] @= m.bits(1, BITS)
            d.W.data.exp[j] @= m.bits(0, 8)
        d.Y.ready @= m.bit(1)
        io.X_ready @= d.X.ready
        io.W_ready @= d.W.ready
        io.Y_valid @= d.Y.valid
        io.Y_data @= d.Y.data
    return Wrap


def measure(job):
    L, rows, cols = job
    from magma_llama.verilog.emit import MLIR_OPTS
    from magma_llama.streams.testbench import fault_ready, sram_libraries
    fault = fault_ready()
    circ = _wrapper(L, rows, cols)
    n = cols + 2 * rows * (-(-cols // L)) + 16
    t = fault.Tester(circ, circ.CLK)
    t.poke(circ.RESET, 1)
    t.step(2)
    t.poke(circ.RESET, 0)
    loop = t.loop(n)
    loop.print("c %x %x %x ;\\n", circ.X_ready, circ.W_ready, circ.Y_valid)
    loop.step(2)
    with tempfile.TemporaryDirectory() as d:
        t.compile_and_run("verilator", directory=d, magma_output="mlir-verilog", magma_opts=MLIR_OPTS,
                          flags=["-Wno-fatal", "--output-split", "0"], disp_type="on_error",
                          include_verilog_libraries=sram_libraries(d))
        log = (Path(d) / "obj_dir" / f"{circ.name}.log").read_text()
    rows_log = [tuple(int(x, 16) for x in r.split()[1:]) for r in (s.strip() for s in log.split(";"))
                if r.startswith("c ")]
    w = [c for c, (x, wr, _) in enumerate(rows_log) if wr]
    y = [c for c, (_, _, yv) in enumerate(rows_log) if yv]
    first_vec_w = w[:rows * (-(-cols // L))]
    last_y = y[rows - 1]
    return {"lanes": L, "rows": rows, "cols": cols, "beats_per_row": -(-cols // L),
            "load_cycles": cols, "weight_cycles": first_vec_w[-1] - first_vec_w[0] + 1,
            "total_cycles": last_y + 1, "latency": last_y - first_vec_w[-1],
            "steady_cycles": y[2 * rows - 1] - last_y, "ideal": rows * cols / L}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args(argv)
    import magma  # noqa: F401  (imported before forking)
    jobs = [(L, r, c) for r, c in SHAPES for L in a.lanes]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(a.jobs, maxtasksperchild=1) as pool:
        res = pool.map(measure, jobs, chunksize=1)
    if a.json:
        print(json.dumps(res, indent=1))
        return 0
    print("| rows x cols | L | beats/row | load X | weight beats (cycles) | first matrix (reset to last Y) | "
          "steady cycles/matrix | ideal rows*cols/L | steady / ideal |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in res:
        print(f"| {r['rows']}x{r['cols']} | {r['lanes']} | {r['beats_per_row']} | {r['load_cycles']} | "
              f"{r['weight_cycles']} | {r['total_cycles']} | {r['steady_cycles']} | {r['ideal']:g} | "
              f"{r['steady_cycles'] / r['ideal']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
