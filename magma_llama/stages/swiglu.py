"""SwiGLU: o = silu(h1) * h3, element by element, the gate of the FFN.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `H1`, `H3` (in): the two halves of the FFN's first layer (W1 x and W3 x), one Q12.20
  element per beat, in the same order.  The stage joins them: a pair moves only when
  both are valid and the output register is free (neither input is taken alone).
- `O` (out): sat32(rshr(silu(h1) * h3, F)), `golden.stages.swiglu`, one per pair.

silu is the shared unit of `stages/units.py` (a combinational exp, reciprocal and
multiply); the product with h3 is 32 x 32 bits, rounded by F and saturated by the
shared rshr/sat units.  One pair per cycle while `O` is not stalled; the result is
registered, so `O.valid` comes one cycle after the pair's transfer.  The formal build
(`formal=True`) uses h1 xor h3 as payload with the same control code.
"""

from __future__ import annotations

import magma as m

from magma_llama.numerics.fixed import ACT_BITS, ACT_FRAC
from magma_llama.stages import units
from magma_llama.streams._base import check_mutant, clocked, ctrl_reg, data_reg
from magma_llama.streams.types import StreamIn, StreamOut

ACT = m.Bits[ACT_BITS]
PROD_BITS = 64                     # |silu(h1)| <= |h1| < 2^31: the product fits 63 bits

# control mutants (the formal build must give a counterexample) ...
CONTROL_MUTANTS = {
    "eager_join": "takes an H1 beat while H3 is empty (the halves drift apart)",
    "overwrite": "takes a pair while O is stalled, overwriting the unread result",
}
# ... and a payload mutant, caught by the bit-exact simulation
MUTANTS = CONTROL_MUTANTS | {
    "floor_shift": "drops the rounding half of the final shift by F (truncates)",
}


def swiglu_payload(h1, h3, mutant=None):
    """sat32(rshr(silu(h1) * h3, F)) of one element pair, combinational."""
    g = m.sext_to(m.sint(units.silu(h1)), PROD_BITS)
    p = g * m.sext_to(m.sint(h3), PROD_BITS)
    shifted = p >> m.sint(ACT_FRAC, PROD_BITS) if mutant == "floor_shift" else units.rshr(p, ACT_FRAC)
    return m.bits(units.sat(shifted, ACT_BITS))


class SwiGlu(m.Generator2):
    def __init__(self, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "swiglu")
        self.name = "SwiGlu" + (f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        self.io = io = clocked(H1=StreamIn(ACT), H3=StreamIn(ACT), O=StreamOut(ACT))

        o_valid = ctrl_reg(m.Bit, "o_valid")
        o_data = data_reg(ACT, "o_data")
        o_free = ~o_valid.O | io.O.ready
        if mutant == "overwrite":
            o_free = m.bit(1)
        fire = io.H1.valid & io.H3.valid & o_free
        if formal:
            # cheap payload for the solver: h1 xor h3 (the control is the same code)
            out = io.H1.data ^ io.H3.data
        else:
            out = swiglu_payload(io.H1.data, io.H3.data, mutant)

        o_valid.I @= fire | (o_valid.O & ~io.O.ready)
        o_data.I @= m.mux([o_data.O, out], fire)
        io.H1.ready @= o_free & (m.bit(1) if mutant == "eager_join" else io.H3.valid)
        io.H3.ready @= o_free & io.H1.valid
        io.O.valid @= o_valid.O
        io.O.data @= o_data.O

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            h1, h3, o = p.monitor(io.H1), p.monitor(io.H3), p.monitor(io.O)
            ov = p.sig(o_valid.O)
            bits = 4
            # the halves move together, and each pair gives one O beat
            f_h1 = p.counter(h1["fire"], bits, "h1_in")
            f_h3 = p.counter(h3["fire"], bits, "h3_in")
            f_out = p.counter(o["fire"], bits, "out")
            p.assert_(f"{f_h1} == {f_h3}")
            p.assert_(f"({f_h1} - {f_out}) == {ov}")
            # one arbitrary pair (number f_idx, data d1, d3) comes out as f(d1, d3) at number f_idx
            f_idx = p.anyconst(bits, "idx")
            d1, d3 = p.anyconst(ACT_BITS, "d1"), p.anyconst(ACT_BITS, "d3")
            p.assume(f"!({h1['valid']} && {f_h1} == {f_idx}) || {h1['data']} == {d1}")
            p.assume(f"!({h3['valid']} && {f_h3} == {f_idx}) || {h3['data']} == {d3}")
            p.assert_(f"!({ov} && {f_out} == {f_idx}) || {p.sig(o_data.O)} == ({d1} ^ {d3})")
            # covers: four results delivered, one of them after a stall with both halves waiting
            stalled = p.sticky(f"{ov} && !{o['ready']} && {h1['valid']} && {h3['valid']}", "stalled")
            p.cover(f"{stalled} && {o['fire']} && {f_out} == 3")
            p.emit()


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import Design
    return [Design("swiglu", "SwiGLU silu(h1)*h3 (emit) / control with an xor payload (proof): "
                             "halves joined, one O per pair, in order",
                   emit=SwiGlu, formal=lambda mutant=None: SwiGlu(mutant=mutant, formal=True),
                   mutants=tuple(CONTROL_MUTANTS), depth=4)]
