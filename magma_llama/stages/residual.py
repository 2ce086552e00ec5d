"""Residual: O = sat32(A + B), element by element (`golden.stages.residual`).

Ports (ready/valid streams, CLK and a synchronous RESET):
- `A`, `B` (in): Q12.20 activations, one per beat, the two addends of one element;
- `O` (out): their saturated sum, one beat per element pair.

A join with a register slice behind it (the pattern of streams/join.py and pipe.py):
both inputs are taken in the same cycle, when both are valid and `O` is free (empty or
being read), and the sum lands in the `O` register.  One beat per cycle; latency one
cycle.  The stage has no vector length: the decoder sends `dim` pairs per token."""

from __future__ import annotations

import magma as m

from magma_llama.numerics.fixed import ACT_BITS
from magma_llama.stages import units
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg
from magma_llama.streams.types import StreamIn, StreamOut

ACT = m.Bits[ACT_BITS]

MUTANTS = {
    "eager": "takes an A beat when O is free even though B is empty (A and B drift apart)",
    "overwrite": "takes a pair while O is stalled, overwriting the unread sum",
}


def saturated_sum(a, b):
    """sat32(a + b) of two Q12.20 words (33-bit sum, then the shared saturation unit)."""
    s = m.sext_to(m.sint(a), ACT_BITS + 1) + m.sext_to(m.sint(b), ACT_BITS + 1)
    return units.sat(s, ACT_BITS)


class Residual(m.Generator2):
    def __init__(self, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "residual")
        self.name = "Residual" + (f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        self.io = io = clocked(A=StreamIn(ACT), B=StreamIn(ACT), O=StreamOut(ACT))

        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(ACT, "o_data")
        o_free = ~o_valid.O | io.O.ready
        if mutant == "overwrite":
            o_free = m.bit(1)
        both = io.A.valid & io.B.valid
        take = both & o_free
        io.A.ready @= (o_free if mutant == "eager" else take)
        io.B.ready @= take
        o_valid.I @= take | (o_valid.O & ~io.O.ready)
        o_data.I @= m.mux([o_data.O, m.bits(saturated_sum(io.A.data, io.B.data))], take)
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            a, b, o = p.monitor(io.A), p.monitor(io.B), p.monitor(io.O)
            # every A beat meets the B beat of the same number, and each pair gives one O beat
            f_a = p.counter(a["fire"], 4, "a_in")
            f_b = p.counter(b["fire"], 4, "b_in")
            f_o = p.counter(o["fire"], 4, "o_out")
            p.assert_(f"{f_a} == {f_b}")
            p.assert_(f"({f_a} - {f_o}) == ({o['valid']} ? 4'd1 : 4'd0)")
            p.cover(f"{o['valid']} && !{o['ready']} && {a['valid']} && {b['valid']}")
            p.cover(f"{p.sticky(o['fire'], 'out')} && {a['fire']} && {o['fire']}")
            p.emit()


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import Design
    return [Design("residual", "Residual adder sat32(a + b): a join and the O register, one beat a cycle",
                   emit=Residual,
                   formal=lambda mutant=None: Residual(mutant=mutant, formal=True),
                   mutants=tuple(MUTANTS), depth=4)]
