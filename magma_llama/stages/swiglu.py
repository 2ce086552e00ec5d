"""SwiGLU: o = silu(h1) * h3, element by element, the gate of the FFN.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `H1`, `H3` (in): the two halves of the FFN's first layer (W1 x and W3 x), one Q12.20
  element per beat, in the same order.  The stage joins them: a pair moves only when
  both are valid and the pipeline has room (neither input is taken alone).
- `O` (out): sat32(rshr(silu(h1) * h3, F)), `golden.stages.swiglu`, one per pair.

The datapath is the shared units of `stages/units.py` (silu: exp, reciprocal and three
products) given the pipeline's cuts: `stages/latency.SWIGLU_PIPELINE`, every product on
DSP tiles (18 x 18) with a register between the tiles and their sum, every runtime shift in
four stages (amount, high bits, low bits, rounding).  It is a `stages.pipeline.Credited` pipeline: it never stalls inside, one pair a
cycle enters while the pairs owed (in the stages or in the result FIFO) are fewer than the
FIFO holds, and `O.valid` comes `SWIGLU_LATENCY` cycles after a pair's transfer.  Both
readies are flip-flops behind the join (H1.ready = room & H3.valid, H3.ready = room &
H1.valid).  The formal build (`formal=True`) carries h1 xor h3 through a short pipeline
(`SWIGLU_FORMAL_PIPELINE`) with the same control code.
"""

from __future__ import annotations

import magma as m

from magma_llama.numerics.fixed import ACT_BITS, ACT_FRAC
from magma_llama.stages import units
from magma_llama.stages.latency import SWIGLU_PIPELINE
from magma_llama.stages.pipeline import Credited
from magma_llama.streams._base import check_mutant, clocked
from magma_llama.streams.types import StreamIn, StreamOut

ACT = m.Bits[ACT_BITS]
SWIGLU_FORMAL_PIPELINE = ("pair", "mid", "gate")    # the proof's pipeline: the control is the same code

CONTROL_MUTANTS = {
    "eager_join": "takes an H1 beat while H3 is empty (the halves drift apart)",
    "overwrite": "takes a pair without a credit, overflowing the result FIFO",
}
# ... and a payload mutant, caught by the bit-exact simulation
MUTANTS = CONTROL_MUTANTS | {
    "floor_shift": "drops the rounding half of the final shift by F (truncates)",
}


def swiglu_payload(h1, h3, mutant=None, cut=None):
    """sat32(rshr(silu(h1) * h3, F)) of one element pair: combinational, or through `cut`'s
    stages (SWIGLU_PIPELINE), the last rshr and sat after the last cut."""
    h1, h3 = units.cut_at(cut, "pair", m.sint(h1), m.sint(h3))
    kept = units.keep(cut, h3)
    g = units.silu(h1, cut=cut)
    h3, = units.release(cut, kept)
    p = units.product(g, h3, cut, "gate")
    shifted = p >> m.sint(ACT_FRAC, len(p)) if mutant == "floor_shift" else units.rshr(p, ACT_FRAC)
    return m.bits(units.sat(shifted, ACT_BITS))


class SwiGlu(m.Generator2):
    def __init__(self, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "swiglu")
        self.name = "SwiGlu" + (f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        self.io = io = clocked(H1=StreamIn(ACT), H3=StreamIn(ACT), O=StreamOut(ACT))
        stages = SWIGLU_FORMAL_PIPELINE if formal else SWIGLU_PIPELINE
        pipe = Credited(stages, io.CLK)
        room = m.bit(1) if mutant == "overwrite" else pipe.ready
        take = io.H1.valid & io.H3.valid & room
        cut = pipe.feed(take)
        if formal:
            v = io.H1.data ^ io.H3.data
            for st in stages:
                v = cut(st, v)
            result = v
        else:
            result = swiglu_payload(io.H1.data, io.H3.data, mutant, cut)
        valid, data = pipe.finish(result, io.O.ready)
        # each input's ready waits for the other's valid, never for its own
        io.H1.ready @= room & (m.bit(1) if mutant == "eager_join" else io.H3.valid)
        io.H3.ready @= room & io.H1.valid
        io.O.valid @= valid
        io.O.data @= data

        if formal:
            from magma_llama.formal.props import Props
            p = Props(io)
            fa, fb, fo = p.monitor(io.H1), p.monitor(io.H3), p.monitor(io.O)
            bits = 8
            # the inputs move together, and each pair owes one O beat until it leaves
            n_a = p.counter(fa["fire"], bits, "h1_in")
            n_b = p.counter(fb["fire"], bits, "h3_in")
            p.assert_(f"{n_a} == {n_b}")
            pipe.props(p, fa["fire"], fo["fire"], bits)
            # covers: the FIFO full with O stalled and both inputs waiting; results delivered
            # back to back after such a stall
            full = f"!{p.sig(pipe.ready)} && {fa['valid']} && {fb['valid']} && !{fo['ready']}"
            p.cover(full)
            n_o = p.counter(fo["fire"], bits, "o_out")
            p.cover(f"{p.sticky(full, 'was_full')} && {fo['fire']} && {n_o} == {pipe.depth + 1}")
            p.emit()


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("swiglu", "SwiGLU silu(h1)*h3, pipelined (emit) / the credited pipeline's control with an "
                      "xor payload, 3 stages (proof): halves joined, one O per pair, no result lost",
                      SwiGlu, (), (), CONTROL_MUTANTS, depth=4, cover_depth=30, mutant_depth=24)]
