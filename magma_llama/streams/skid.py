"""Skid buffer: registers valid, data *and* ready, full throughput.

in.ready comes straight from a flop, so the ready path is cut too.  When the
consumer stalls, the one beat already promised by in.ready lands in the skid
register and is sent before anything new."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg, module_name
from magma_llama.streams.types import StreamIn, StreamOut

MUTANTS = {
    "drop": "refills the output from the input and forgets the beat in the skid register",
}


class Skid(m.Generator2):
    def __init__(self, T, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "skid")
        self.name = module_name("Skid", T, mutant=mutant, formal=formal)
        self.io = io = clocked(I=StreamIn(T), O=StreamOut(T))
        ov = ctrl_reg(m.Bit, "out_valid")
        od = data_reg(T, "out_data")
        sv = ctrl_reg(m.Bit, "skid_valid")
        sd = data_reg(T, "skid_data")
        in_ready = ~sv.O
        out_free = ~ov.O | io.O.ready
        accept = io.I.valid & in_ready
        if mutant == "drop":
            refill_valid, refill_data = io.I.valid, io.I.data
        else:
            refill_valid = sv.O | io.I.valid
            refill_data = m.mux([io.I.data, sd.O], sv.O)
        ov.I @= m.mux([ov.O, refill_valid], out_free)
        od.I @= m.mux([od.O, refill_data], out_free)
        sv.I @= m.mux([sv.O | accept, m.bit(0)], out_free)
        sd.I @= m.mux([sd.O, io.I.data], accept & ~out_free)
        io.I.ready @= in_ready
        io.O.valid @= ov.O
        io.O.data @= od.O
        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            t = p.track(i, o, 4)
            v, d, s, k = p.sig(ov.O), p.sig(od.O), p.sig(sv.O), p.sig(sd.O)
            p.assert_(f"!{s} || {v}")
            p.assert_(f"({t['in']} - {t['out']}) == {v} + {s}")
            p.assert_(f"!({v} && {t['out']} == {t['idx']}) || {d} == {t['data']}")
            p.assert_(f"!({s} && {t['out']} + 1'b1 == {t['idx']}) || {k} == {t['data']}")
            p.cover_fill_stall_drain(s, f"!{v}", f"{v} && !{p.sig(io.O.ready)}")
            p.emit()
