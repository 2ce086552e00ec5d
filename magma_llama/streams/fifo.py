"""FIFO queue of any depth >= 1, with an occupancy output.

A ring of `depth` registers with read and write pointers and a count.  Output
valid and data come from flops (no combinational path from in to out); in.ready
is `count != depth`, also from flops.  Full throughput for depth >= 2; a
depth-1 queue alternates (use `pipe` for a one-slot full-rate stage)."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import (check_mutant, clocked, ctrl_reg, data_reg, module_name,
                                       select)
from magma_llama.streams.types import StreamIn, StreamOut, clog2

MUTANTS = {
    "full_off_by_one": "full flag one slot late: accepts a beat when already full",
}


def count_bits(depth: int) -> int:
    """Width of the occupancy output (holds 0..depth, and depth+1 for the mutant)."""
    return (depth + 1).bit_length()


class Fifo(m.Generator2):
    def __init__(self, T, depth: int, mutant=None, formal=False):
        if depth < 1:
            raise ValueError(f"fifo depth must be >= 1, got {depth}")
        check_mutant(mutant, MUTANTS, "fifo")
        self.name = module_name("Fifo", T, f"d{depth}", mutant=mutant, formal=formal)
        cw, pw = count_bits(depth), clog2(depth)
        self.io = io = clocked(I=StreamIn(T), O=StreamOut(T), count=m.Out(m.UInt[cw]))
        mem = [data_reg(T, f"mem{k}") for k in range(depth)]
        rd = ctrl_reg(m.UInt[pw], "rd")
        wr = ctrl_reg(m.UInt[pw], "wr")
        count = ctrl_reg(m.UInt[cw], "occupancy")

        limit = depth + 1 if mutant == "full_off_by_one" else depth
        in_ready = count.O != limit
        out_valid = count.O != 0
        push = io.I.valid & in_ready
        pop = out_valid & io.O.ready

        def advance(ptr):
            return m.mux([ptr + 1, m.uint(0, pw)], ptr == depth - 1)

        rd.I @= m.mux([rd.O, advance(rd.O)], pop)
        wr.I @= m.mux([wr.O, advance(wr.O)], push)
        up, down = count.O + 1, count.O - 1
        count.I @= m.mux([count.O, up, down, count.O], m.bits([push, pop]))
        for k, cell in enumerate(mem):
            cell.I @= m.mux([cell.O, io.I.data], push & (wr.O == k))
        io.I.ready @= in_ready
        io.O.valid @= out_valid
        io.O.data @= select([c.O for c in mem], rd.O)
        io.count @= count.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            fw = cw + 2
            t = p.track(i, o, fw)
            c, r, w = p.sig(count.O), p.sig(rd.O), p.sig(wr.O)
            p.assert_(f"{c} <= {depth}")                         # never above depth (never negative: unsigned, and below)
            p.assert_(f"({t['in']} - {t['out']}) == {c}")        # no beat created or lost
            p.assert_(f"{r} < {depth} && {w} < {depth}")
            p.assert_(f"({r} + {c}) % {depth} == {w} || ({c} == {depth} && {r} == {w})")
            pos = p.wire(fw, "pos", f"{t['idx']} - {t['out']}")
            for k, cell in enumerate(mem):
                p.assert_(f"!({pos} < {c} && ({r} + {pos}) % {depth} == {k}) || {p.sig(cell.O)} == {t['data']}")
            p.cover_fill_stall_drain(f"{c} == {depth}", f"{c} == 0", f"{c} != 0 && !{p.sig(io.O.ready)}")
            p.emit()
