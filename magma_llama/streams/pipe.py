"""Pipe stage: a register slice on valid and data, full throughput.

Breaks the forward (valid/data) timing path; `ready` still passes through
combinationally (in.ready = !out.valid || out.ready).  Use `skid` to cut both."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, module_name
from magma_llama.streams.types import StreamIn, StreamOut

MUTANTS = {
    "overwrite": "accepts a new beat while the held one is stalled, overwriting it",
}


class Pipe(m.Generator2):
    def __init__(self, T, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "pipe")
        self.name = module_name("Pipe", T, mutant=mutant, formal=formal)
        self.io = io = clocked(I=StreamIn(T), O=StreamOut(T))
        valid = ctrl_reg(m.Bit, "valid")
        data = data_reg(T, "data")
        in_ready = ~valid.O | io.O.ready
        if mutant == "overwrite":
            in_ready = m.bit(1)
        accept = io.I.valid & in_ready
        valid.I @= m.mux([valid.O, io.I.valid], in_ready)
        data.I @= m.mux([data.O, io.I.data], accept)
        io.I.ready @= in_ready
        io.O.valid @= valid.O
        io.O.data @= data.O
        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            t = p.track(i, o, 4)
            v, d = p.sig(valid.O), p.sig(data.O)
            p.assert_(f"({t['in']} - {t['out']}) == {v}")
            p.assert_(f"!({v} && {t['out']} == {t['idx']}) || {d} == {t['data']}")
            p.cover_fill_stall_drain(v, f"!{v}", f"{v} && !{p.sig(io.O.ready)}")
            p.emit()
