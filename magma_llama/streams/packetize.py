"""Packetizer: pass beats through and set `last` on every K-th one.

Turns a plain stream into packets of K beats (`Packet[T]`); the count moves
only on transfers, so stalls never shift a packet boundary."""

from __future__ import annotations

import magma as m

from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, module_name
from magma_llama.streams.types import Packet, StreamIn, StreamOut, clog2

MUTANTS = {
    "count_valid": "counts cycles with valid instead of transfers, so stalls move `last`",
}


class Packetize(m.Generator2):
    def __init__(self, T, k: int, mutant=None, formal=False):
        if k < 1:
            raise ValueError(f"packetize needs k >= 1 beats per packet, got {k}")
        check_mutant(mutant, MUTANTS, "packetize")
        self.name = module_name("Packetize", T, f"k{k}", mutant=mutant, formal=formal)
        cw = clog2(k)
        self.io = io = clocked(I=StreamIn(T), O=StreamOut(Packet(T)))
        cnt = ctrl_reg(m.UInt[cw], "beat")
        last = cnt.O == k - 1
        step = io.I.valid if mutant == "count_valid" else io.I.valid & io.O.ready
        cnt.I @= m.mux([cnt.O, m.mux([cnt.O + 1, m.uint(0, cw)], last)], step)
        io.O.valid @= io.I.valid
        io.O.data.data @= io.I.data
        io.O.data.last @= last
        io.I.ready @= io.O.ready

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            i, o = p.monitor(io.I), p.monitor(io.O)
            lo = dict(o, data=p.data(io.O.data.data), width=i["width"])
            t = p.track(i, lo, 4)
            p.assert_(f"{t['in']} == {t['out']}")
            # beats sent since the last `last`, counted independently of the block
            seen = p.reg(cw + 1, "since_last")
            ls = p.sig(last)
            p.lines.append(f"always @(posedge {p.clk}) if ({p.rst}) {seen} <= 0; "
                           f"else if ({o['fire']}) {seen} <= {ls} ? 0 : {seen} + 1'b1;")
            p.assert_(f"{seen} < {k}")
            p.assert_(f"!{o['valid']} || ({ls} == ({seen} == {k - 1}))")
            p.assert_(f"{seen} == {p.sig(cnt.O)}")
            p.cover(f"{o['fire']} && {ls}")
            p.cover(f"{o['valid']} && !{o['ready']} && {ls}")
            p.emit()
