"""SwiGLU: o = silu(h1) * h3, element by element, the gate of the FFN.

Ports (ready/valid streams, CLK and a synchronous RESET):
- `H1`, `H3` (in): the two halves of the FFN's first layer (W1 x and W3 x), one Q12.20
  element per beat, in the same order.  The stage joins them: a pair moves only when
  both are valid and the output register is free (neither input is taken alone).
- `O` (out): sat32(rshr(silu(h1) * h3, F)), `golden.stages.swiglu`, one per pair.

silu is the shared unit of `stages/units.py` (a combinational exp, reciprocal and
multiply); the product with h3 is 32 x 32 bits, rounded by F and saturated by the
shared rshr/sat units.  The control is a `streams.ZipWith`: one pair per cycle while
`O` is not stalled; the result is registered, so `O.valid` comes one cycle after the
pair's transfer.  The formal build (`formal=True`) is ZipWith's: h1 xor h3 as payload
with the same control code.
"""

from __future__ import annotations

import magma as m

from magma_llama.numerics.fixed import ACT_BITS, ACT_FRAC
from magma_llama.stages import units
from magma_llama.streams._base import check_mutant
from magma_llama.streams.zip_with import ZipWith

ACT = m.Bits[ACT_BITS]
PROD_BITS = 64                     # |silu(h1)| <= |h1| < 2^31: the product fits 63 bits

# control mutants (the formal build must give a counterexample): ZipWith's, by their names here ...
ZIP_MUTANT = {"eager_join": "eager", "overwrite": "overwrite"}
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


class SwiGlu(ZipWith):
    def __init__(self, mutant=None, formal=False):
        check_mutant(mutant, MUTANTS, "swiglu")
        name = "SwiGlu" + (f"_mut_{mutant}" if mutant else "") + ("_formal" if formal else "")
        super().__init__(ACT, lambda h1, h3: swiglu_payload(h1, h3, mutant), ports=("H1", "H3", "O"),
                         name=name, mutant=ZIP_MUTANT.get(mutant), formal=formal)


def designs():
    """Rows of `magma-llama prove` / `emit` (formal/designs.py)."""
    from magma_llama.formal.designs import stage_row
    return [stage_row("swiglu", "SwiGLU silu(h1)*h3 (emit) / control with an xor payload (proof): "
                      "halves joined, one O per pair, in order",
                      SwiGlu, (), (), CONTROL_MUTANTS, depth=4)]
